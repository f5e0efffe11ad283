//! Composite queries: a non-replicated query that may call queries and
//! composite queries of other canisters. The whole call graph runs on the
//! executor thread that took the query: each canister in it is taken out of
//! its slot while it runs (waiting for it to be idle), the calling
//! canister's changes stay staged across its method and its callbacks, and
//! every change is discarded at the end; only the reply is kept.
//!
//! The IC's limits apply: a call graph at most [`MAX_DEPTH`] deep and at
//! most [`MAX_GRAPH_INSTRUCTIONS`] instructions in all. Calls are made one
//! at a time, in the order the canister made them. Calls to an update
//! method are rejected (IC0536), to the management canister too; a call to
//! the composite query's own canister is rejected (its staged state is in
//! use).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candid::Principal;

use super::exec::{CanisterInstance, EntryPoint, MessageInput, MethodKind, Outcome, OutgoingCall, Response};
use super::scheduler::{Inner, cleanup_trap_reject, outstanding_counter, trap_reject};
use super::{CallResult, ErrorCode, Reject, RejectCode};

/// The deepest call graph (the IC's `MAX_QUERY_CALL_DEPTH`).
pub const MAX_DEPTH: u32 = 6;
/// Instructions of a whole call graph (the IC's 5 billion).
pub const MAX_GRAPH_INSTRUCTIONS: u64 = 5_000_000_000;
/// How long a call waits for its callee to be idle.
const CALLEE_WAIT: Duration = Duration::from_secs(10);

pub(super) struct Graph<'a> {
    inner: &'a Arc<Inner>,
    time: u64,
    instructions_left: u64,
}

impl<'a> Graph<'a> {
    pub(super) fn new(inner: &'a Arc<Inner>, time: u64) -> Self {
        Self { inner, time, instructions_left: MAX_GRAPH_INSTRUCTIONS }
    }

    fn input(&self, canister: Principal, entry: EntryPoint, caller: Principal) -> (MessageInput, super::exec::CanisterInfo, u64) {
        let limit = self.inner.config.limits.instructions_per_query.min(self.instructions_left);
        let mut input = MessageInput::new(entry, caller, self.time, limit);
        input.composite = true;
        input.needs_response = true;
        let st = self.inner.lock();
        let (info, timer) = st.canisters.get(&canister).map(|s| (s.info(canister), s.timer)).unwrap_or_else(|| {
            (super::exec::CanisterInfo { id: canister, controllers: vec![], status: 1, version: 0, balance: 0, freezing_limit: 0, fees: Default::default(), wasm64: false, env_vars: Default::default(), certified_data: Default::default(), subnet: super::exec::subnet_id(), caller_info: None, data_certificate: None }, 0)
        });
        (input, info, timer)
    }

    /// Runs composite query `method` of `canister` on `instance` with its
    /// call graph; the instance comes back with every change discarded.
    pub(super) fn run(
        mut self,
        canister: Principal,
        instance: Box<CanisterInstance>,
        method: String,
        arg: Vec<u8>,
        caller: Principal,
        depth: u32,
    ) -> (Box<CanisterInstance>, CallResult) {
        self.run_at(canister, instance, method, arg, caller, depth)
    }

    fn run_at(
        &mut self,
        canister: Principal,
        mut instance: Box<CanisterInstance>,
        method: String,
        arg: Vec<u8>,
        caller: Principal,
        depth: u32,
    ) -> (Box<CanisterInstance>, CallResult) {
        let outstanding = outstanding_counter(self.inner, canister);
        let (mut input, mut info, timer) = self.input(canister, EntryPoint::Query { method, replicated: false }, caller);
        if depth == 1 {
            // The method an outside caller called sees a data certificate.
            info.data_certificate = super::certified_view::data_certificate(self.inner, &canister);
        }
        input.arg = arg;
        let mut outcome = instance.execute(input, info, timer, outstanding.clone());
        let mut pending: VecDeque<OutgoingCall> = VecDeque::new();
        let mut last_trap = None;
        // A callback's trap and then its cleanup's, reported together.
        let mut both_trapped = None;
        let result = loop {
            match outcome {
                Outcome::Trapped { code, message, instructions } => {
                    self.spend(instructions);
                    last_trap = Some(both_trapped.take().unwrap_or_else(|| trap_reject(canister, code, &message)));
                }
                Outcome::Committed(effects) => {
                    self.spend(effects.instructions);
                    match effects.response {
                        Some(Response::Reply(bytes)) => break Ok(bytes),
                        Some(Response::Reject(message)) => break Err(Reject::canister(message)),
                        None => pending.extend(effects.calls),
                    }
                }
            }
            if self.instructions_left == 0 {
                break Err(Reject::system(
                    ErrorCode::QueryCallGraphTotalInstructionLimitExceeded,
                    format!("Error from Canister {canister}: Query call graph exceeded the limit of {MAX_GRAPH_INSTRUCTIONS} instructions."),
                ));
            }
            let Some(call) = pending.pop_front() else {
                break Err(last_trap.unwrap_or_else(|| {
                    Reject::system(ErrorCode::CanisterDidNotReply, format!("Error from Canister {canister}: Canister did not reply to the call"))
                }));
            };
            let result = self.call(canister, &call, depth);
            let (entry, arg, reject) = match result {
                Ok(bytes) => (EntryPoint::Reply(call.continuation), bytes, None),
                Err(r) => (EntryPoint::Reject(call.continuation), Vec::new(), Some((r.code, r.message))),
            };
            let (mut input, info, timer) = self.input(canister, entry, caller);
            input.arg = arg;
            input.reject = reject;
            outcome = instance.execute(input, info.clone(), timer, outstanding.clone());
            if let Outcome::Trapped { code, message, .. } = &outcome {
                // The callback trapped: its cleanup runs; if it traps too,
                // the reject reports both.
                let (mut cleanup, _, _) = self.input(canister, EntryPoint::Cleanup(call.continuation), caller);
                cleanup.needs_response = false;
                match instance.execute(cleanup, info, timer, outstanding.clone()) {
                    Outcome::Committed(e) => self.spend(e.instructions),
                    Outcome::Trapped { code: cleanup_code, message: cleanup_message, instructions } => {
                        self.spend(instructions);
                        both_trapped = Some(cleanup_trap_reject(canister, (*code, message), (cleanup_code, &cleanup_message)));
                    }
                }
            }
        };
        instance.discard_staged();
        (instance, result)
    }

    fn spend(&mut self, instructions: u64) {
        self.instructions_left = self.instructions_left.saturating_sub(instructions);
    }

    /// One call of the graph: `from` calls `call.callee`.
    fn call(&mut self, from: Principal, call: &OutgoingCall, depth: u32) -> CallResult {
        let callee = call.callee;
        let reject = |code: RejectCode, error_code: ErrorCode, message: String| Err(Reject { code, error_code: Some(error_code), message });
        if callee == Principal::management_canister() {
            return reject(RejectCode::DestinationInvalid, ErrorCode::CanisterRejectedMessage, "Composite queries cannot call the management canister".into());
        }
        if callee == from {
            return reject(
                RejectCode::DestinationInvalid,
                ErrorCode::CanisterRejectedMessage,
                format!("Canister {from}: a composite query cannot call its own canister on ww"),
            );
        }
        if depth >= MAX_DEPTH {
            return reject(
                RejectCode::CanisterError,
                ErrorCode::QueryCallGraphTooDeep,
                format!("Error from Canister {from}: Composite query call exceeded the maximum call depth of {MAX_DEPTH}."),
            );
        }
        let (instance, kind) = match self.take(callee, &call.method) {
            Ok(taken) => taken,
            Err(r) => return Err(r),
        };
        let (instance, result) = if kind == MethodKind::CompositeQuery {
            self.run_at(callee, instance, call.method.clone(), call.arg.clone(), from, depth + 1)
        } else {
            let mut instance = instance;
            let limit = self.inner.config.limits.instructions_per_query.min(self.instructions_left);
            let mut input = MessageInput::new(EntryPoint::Query { method: call.method.clone(), replicated: false }, from, self.time, limit);
            input.arg = call.arg.clone();
            input.needs_response = true;
            let (_, info, timer) = self.input(callee, EntryPoint::Query { method: call.method.clone(), replicated: false }, from);
            let result = match instance.execute(input, info, timer, outstanding_counter(self.inner, callee)) {
                Outcome::Committed(e) => {
                    self.spend(e.instructions);
                    match e.response {
                        Some(Response::Reply(bytes)) => Ok(bytes),
                        Some(Response::Reject(m)) => Err(Reject::canister(m)),
                        None => Err(Reject::system(ErrorCode::CanisterDidNotReply, format!("Error from Canister {callee}: Canister did not reply to the call"))),
                    }
                }
                Outcome::Trapped { code, message, instructions } => {
                    self.spend(instructions);
                    Err(trap_reject(callee, code, &message))
                }
            };
            (instance, result)
        };
        self.give_back(callee, instance);
        result
    }

    /// Takes `callee`'s instance out of its slot once it is idle.
    fn take(&self, callee: Principal, method: &str) -> Result<(Box<CanisterInstance>, MethodKind), Reject> {
        let started = Instant::now();
        loop {
            {
                let mut st = self.inner.lock();
                st.check_callable(&callee, method, true).map_err(|r| match r.error_code {
                    Some(ErrorCode::CanisterNotFound) => Reject { code: RejectCode::DestinationInvalid, ..r },
                    _ => r,
                })?;
                let Some(slot) = st.canisters.get_mut(&callee) else {
                    return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {callee} not found")));
                };
                if !slot.busy
                    && let Some(instance) = slot.instance.take()
                {
                    slot.busy = true;
                    let kind = instance.methods().get(method).copied().unwrap_or(MethodKind::Query);
                    return Ok((instance, kind));
                }
            }
            if started.elapsed() > CALLEE_WAIT {
                return Err(Reject::system(
                    ErrorCode::CanisterQueueFull,
                    format!("Canister {callee} stayed busy for {} s; the composite query's call could not run", CALLEE_WAIT.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn give_back(&self, callee: Principal, instance: Box<CanisterInstance>) {
        let mut st = self.inner.lock();
        if let Some(slot) = st.canisters.get_mut(&callee) {
            slot.instance = Some(instance);
            slot.busy = false;
        }
        self.inner.schedule(&mut st, callee);
    }
}
