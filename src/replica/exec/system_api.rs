//! The `ic0` system API's logic, shared by both front ends: which entry
//! points may call each function (a call from anywhere else traps, as on
//! the IC), what each returns, and the effects they stage in the
//! execution's [`ExecContext`] (committed only if the execution returns).
//!
//! The typed WIT interface (components) is implemented here directly as a
//! thin `ic0::Host`; the raw interface over linear memory (core modules) is
//! in `ic0_raw` and calls the same methods.

use candid::Principal;
use wasmtime::StoreContextMut;

use super::component::ic0;
use super::{Continuation, EntryPoint, ExecContext, ExecState, LogLine, OutgoingCall, PrintStyle, Response, trap};
use crate::replica::types::{ErrorCode, RejectCode};

use EntryPoint as E;

/// The largest `certified_data_set` payload.
pub(super) const MAX_CERTIFIED_DATA: usize = 32;

impl ExecState {
    pub(super) fn cx(&mut self, function: &str) -> wasmtime::Result<&mut ExecContext> {
        match self.ctx.as_mut() {
            Some(c) => Ok(c),
            None => trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.{function} called outside of a message execution"),
            ),
        }
    }

    /// The context, if `function` may be called from the current entry point.
    pub(super) fn allowed(&mut self, function: &str, ok: impl Fn(&EntryPoint) -> bool) -> wasmtime::Result<&mut ExecContext> {
        let cx = self.cx(function)?;
        if !ok(&cx.input.entry) {
            let from = cx.input.entry.name();
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("\"ic0.{function}\" cannot be executed in {from} mode"),
            );
        }
        Ok(cx)
    }

    pub(super) fn arg(&mut self) -> wasmtime::Result<&[u8]> {
        Ok(&self.allowed("msg_arg_data_copy", can_read_arg)?.input.arg)
    }

    pub(super) fn caller(&mut self) -> wasmtime::Result<Principal> {
        Ok(self.cx("msg_caller_copy")?.input.caller)
    }

    /// `ic0.msg_caller_info_data_*` (`data`) or `ic0.msg_caller_info_signer_*`:
    /// the sender info of the call context's ingress message; empty without
    /// one (a canister's call, or ingress without sender info). Not in
    /// init, upgrade hooks or system tasks (the spec's U RQ NRQ CQ Ry Rt CRy
    /// CRt C CC F).
    pub(super) fn caller_info(&mut self, function: &str, data: bool) -> wasmtime::Result<&[u8]> {
        let cx = self.allowed(function, |e| {
            matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_) | E::Cleanup(_) | E::Inspect { .. })
        })?;
        Ok(match &cx.info.caller_info {
            Some(info) if data => &info.data,
            Some(info) => &info.signer,
            None => &[],
        })
    }

    pub(super) fn reject_code(&mut self) -> wasmtime::Result<u32> {
        let cx = self.allowed("msg_reject_code", is_callback)?;
        Ok(cx.input.reject.as_ref().map_or(0, |(c, _)| *c as u32))
    }

    pub(super) fn reject_message(&mut self) -> wasmtime::Result<&str> {
        let cx = self.allowed("msg_reject_msg_copy", |e| matches!(e, E::Reject(_)))?;
        Ok(cx.input.reject.as_ref().map_or("", |(_, m)| m.as_str()))
    }

    pub(super) fn deadline(&mut self) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_deadline", |e| matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_)))?;
        Ok(cx.input.deadline)
    }

    /// Only in `canister_inspect_message`.
    pub(super) fn method_name(&mut self) -> wasmtime::Result<&str> {
        match &self.allowed("msg_method_name_copy", |e| matches!(e, E::Inspect { .. }))?.input.entry {
            E::Inspect { method } => Ok(method),
            _ => Ok(""),
        }
    }

    pub(super) fn accept_message(&mut self) -> wasmtime::Result<()> {
        let cx = self.allowed("accept_message", |e| matches!(e, E::Inspect { .. }))?;
        if cx.accepted {
            return trap(ErrorCode::CanisterContractViolation, "ic0.accept_message: the message was already accepted");
        }
        cx.accepted = true;
        Ok(())
    }

    pub(super) fn reply_append(&mut self, data: &[u8]) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reply_data_append", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reply_data_append: the call was already answered");
        }
        let max = cx.max_reply_bytes();
        if cx.reply_buf.len() + data.len() > max {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.msg_reply_data_append: application payload size ({}) cannot be larger than {max}", cx.reply_buf.len() + data.len()),
            );
        }
        cx.reply_buf.extend_from_slice(data);
        Ok(())
    }

    pub(super) fn reply(&mut self) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reply", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reply: the call was already answered (a call gets exactly one response)");
        }
        cx.response = Some(Response::Reply(std::mem::take(&mut cx.reply_buf)));
        Ok(())
    }

    pub(super) fn reject(&mut self, message: String) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reject", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reject: the call was already answered (a call gets exactly one response)");
        }
        cx.response = Some(Response::Reject(message));
        Ok(())
    }

    pub(super) fn cycles_available(&mut self) -> wasmtime::Result<u64> {
        Ok(self.allowed("msg_cycles_available128", can_take_cycles)?.cycles_left())
    }

    pub(super) fn cycles_accept(&mut self, max_amount: u128) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_cycles_accept128", can_take_cycles)?;
        let n = u64::try_from(max_amount).unwrap_or(u64::MAX).min(cx.cycles_left());
        cx.cycles_accepted += n;
        Ok(n)
    }

    pub(super) fn cycles_refunded(&mut self) -> wasmtime::Result<u64> {
        Ok(self.allowed("msg_cycles_refunded128", is_callback)?.input.cycles_refunded)
    }

    /// The balance as this execution has left it so far.
    pub(super) fn balance128(&mut self) -> wasmtime::Result<u128> {
        let cx = self.cx("canister_cycle_balance128")?;
        let attached: u128 = cx.calls.iter().map(|c| u128::from(c.cycles)).sum::<u128>() + cx.pending_call.as_ref().map_or(0, |p| u128::from(p.cycles));
        Ok(cx
            .info
            .balance
            .saturating_add(u128::from(cx.cycles_accepted))
            .saturating_sub(attached)
            .saturating_sub(cx.call_charges)
            .saturating_sub(cx.cycles_burned))
    }

    /// `ic0.canister_cycle_balance` (64-bit: saturates).
    pub(super) fn balance(&mut self) -> wasmtime::Result<u64> {
        Ok(u64::try_from(self.balance128()?).unwrap_or(u64::MAX))
    }

    /// What this execution may still spend: the balance above the
    /// freezing limit (`ic0.canister_liquid_cycle_balance128`).
    pub(super) fn liquid_balance(&mut self) -> wasmtime::Result<u128> {
        let balance = self.balance128()?;
        Ok(balance.saturating_sub(self.cx("canister_liquid_cycle_balance128")?.info.freezing_limit))
    }

    /// What the canister's subnet charges, and whether its module is
    /// Wasm64 (`ic0.cost_*`; outside a message: a 13-node subnet's fees).
    pub(super) fn fees(&self) -> (crate::replica::cycles::Fees, bool) {
        self.ctx.as_ref().map_or((crate::replica::cycles::Fees::default(), false), |c| (c.info.fees, c.info.wasm64))
    }

    /// `ic0.cost_sign_with_*` / `cost_vetkd_derive_key`: the fee for key
    /// `name` (0 where nothing is charged), or 1 (unknown curve or
    /// algorithm) or 2 (no subnet holds the key).
    pub(super) fn threshold_fee(&self, function: &str, name: &str, curve: u32) -> Result<u128, u32> {
        let free = self.fees().0.schedule() == crate::replica::cycles::CostSchedule::Free;
        crate::replica::threshold::cost(&self.key_routing, function, name, curve).map(|fee| if free { 0 } else { fee })
    }

    /// `ic0.cost_http_request`: the legacy outcall fee (0 where nothing is
    /// charged).
    pub(super) fn outcall_fee(&self, request_size: u64, max_res_bytes: u64) -> u128 {
        let fees = self.fees().0;
        if fees.charges() { crate::outcalls::pricing::legacy_fee(fees.nodes(), request_size, max_res_bytes) } else { 0 }
    }

    /// Burns up to `amount` of the liquid balance; returns what was burned.
    pub(super) fn cycles_burn(&mut self, amount: u128) -> wasmtime::Result<u128> {
        let liquid = self.liquid_balance()?;
        let cx = self.allowed("cycles_burn128", |e| !e.is_query())?;
        let n = amount.min(liquid);
        cx.cycles_burned += n;
        Ok(n)
    }

    pub(super) fn self_id(&mut self) -> wasmtime::Result<Principal> {
        Ok(self.cx("canister_self_copy")?.info.id)
    }

    pub(super) fn status(&mut self) -> wasmtime::Result<u32> {
        Ok(self.cx("canister_status")?.info.status)
    }

    pub(super) fn version(&mut self) -> wasmtime::Result<u64> {
        Ok(self.cx("canister_version")?.info.version)
    }

    pub(super) fn controls(&mut self, principal: &[u8]) -> wasmtime::Result<bool> {
        let cx = self.cx("is_controller")?;
        let Ok(p) = Principal::try_from_slice(principal) else {
            return trap(ErrorCode::CanisterContractViolation, "ic0.is_controller: not a valid principal");
        };
        Ok(cx.info.controllers.contains(&p))
    }

    pub(super) fn replicated(&mut self) -> wasmtime::Result<bool> {
        let cx = self.cx("in_replicated_execution")?;
        Ok(cx.input.entry.is_replicated() && !cx.input.composite)
    }

    /// The context, if the current execution may make calls: updates,
    /// callbacks, system tasks, and every execution of a composite query.
    pub(super) fn may_call(&mut self, function: &str) -> wasmtime::Result<&mut ExecContext> {
        if self.cx(function)?.input.composite {
            return self.cx(function);
        }
        self.allowed(function, can_call)
    }

    /// Stages an outgoing call (sent if the execution commits). An `Err`
    /// reject means nothing was staged (the queue to the callee is full).
    pub(super) fn stage_call(&mut self, call: StagedCall) -> wasmtime::Result<Result<(), (RejectCode, String)>> {
        let cx = self.may_call("call_perform")?;
        if cx.input.composite && call.cycles > 0 {
            return trap(ErrorCode::CanisterContractViolation, "\"ic0.call_cycles_add128\" cannot be executed in composite query mode");
        }
        if call.arg.len() > cx.limits.max_inter_canister_payload {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!(
                    "ic0.call_data_append: payload size ({}) cannot be larger than {}",
                    call.arg.len(),
                    cx.limits.max_inter_canister_payload
                ),
            );
        }
        let staged = cx.calls.iter().filter(|c| c.callee == call.callee).count() as u32;
        if cx.input.fail_calls {
            return Ok(Err((
                RejectCode::SysTransient,
                format!("IC0201: the queue from {} to {} is full (simulated fault)", cx.info.id, call.callee),
            )));
        }
        if (cx.outstanding)(&call.callee) + staged >= cx.limits.max_outstanding_calls {
            return Ok(Err((
                RejectCode::SysTransient,
                format!(
                    "IC0201: Canister {} has {} outstanding calls to {}; the queue is full",
                    cx.info.id, cx.limits.max_outstanding_calls, call.callee
                ),
            )));
        }
        let liquid = self.liquid_balance()?;
        let cx = self.cx("call_perform")?;
        if u128::from(call.cycles) > liquid {
            // As `ic0.call_cycles_add128` on the IC: a trap, not a reject.
            return trap(
                ErrorCode::CanisterOutOfCycles,
                format!(
                    "Canister {} is out of cycles: requested {} cycles but the available balance is {liquid} cycles above the freezing limit of {} cycles",
                    cx.info.id, call.cycles, cx.info.freezing_limit
                ),
            );
        }
        // The call's fee and the response's reservation must fit above the
        // freezing limit too; if not, `call_perform` fails (nothing sent).
        let (fees, wasm64) = (cx.info.fees, cx.info.wasm64);
        let fee = fees.call_cost(call.method.len(), call.arg.len());
        let reservation = fees.reserve_response(wasm64);
        let needed = fee + reservation.total() + u128::from(call.cycles);
        if needed > liquid {
            return Ok(Err((
                RejectCode::SysTransient,
                format!(
                    "Canister {} is out of cycles: the call needs {needed} cycles but only {liquid} are available above the freezing limit",
                    cx.info.id
                ),
            )));
        }
        cx.call_charges += fee + reservation.total();
        let timeout_seconds = call.timeout_seconds.map(|t| t.min(cx.limits.max_call_timeout_seconds));
        cx.calls.push(OutgoingCall {
            callee: call.callee,
            method: call.method,
            arg: call.arg,
            cycles: call.cycles,
            timeout_seconds,
            continuation: call.continuation,
            caller_version: cx.info.version,
            fee,
            reservation,
        });
        Ok(Ok(()))
    }

    pub(super) fn time(&mut self) -> wasmtime::Result<u64> {
        Ok(self.cx("time")?.input.time)
    }

    pub(super) fn set_timer(&mut self, timestamp: u64) -> wasmtime::Result<u64> {
        let cx = self.allowed("global_timer_set", |e| !e.is_query())?;
        let previous = cx.timer.unwrap_or(cx.current_timer);
        cx.timer = Some(timestamp);
        Ok(previous)
    }

    pub(super) fn set_certified_data(&mut self, data: &[u8]) -> wasmtime::Result<()> {
        let cx = self.allowed("certified_data_set", |e| !e.is_query())?;
        if data.len() > MAX_CERTIFIED_DATA {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.certified_data_set: certified data is {} bytes; at most {MAX_CERTIFIED_DATA} are allowed", data.len()),
            );
        }
        cx.certified_data = Some(data.to_vec());
        Ok(())
    }

    pub(super) fn env_vars(&mut self) -> wasmtime::Result<std::sync::Arc<Vec<(String, String)>>> {
        Ok(self.cx("env_var_count")?.info.env_vars.clone())
    }

    /// Prints on the host, once, in the runtime's [`PrintStyle`] (the one
    /// place that prints `debug_print` lines), and keeps the line for the
    /// canister's log (which keeps it if the execution is replicated and
    /// commits or traps).
    pub(super) fn print(&mut self, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        match self.print_style {
            PrintStyle::Log => tracing::info!(target: "ww::canister", "[{}] {}", self.log_name, text),
            PrintStyle::PocketIc => {
                use std::io::Write;
                let id = self.ctx.as_ref().map_or_else(|| self.log_name.to_string(), |c| c.info.id.to_text());
                // A closed stderr must not trap the canister: the line is lost.
                let _ = writeln!(std::io::stderr().lock(), "[Canister {id}] {text}");
            }
        }
        let time = self.ctx.as_ref().map_or(0, |c| c.input.time);
        self.log.push(LogLine { time, content: message.to_vec() });
    }

    pub(super) fn trap_with(&mut self, message: String) -> wasmtime::Result<()> {
        if let Some(cx) = self.ctx.as_mut() {
            cx.trap_message = Some(message.clone());
        }
        trap(ErrorCode::CanisterCalledTrap, message)
    }
}

/// A call as either front end hands it to [`ExecState::stage_call`] (a
/// core module builds it up from `ic0.call_new` to `ic0.call_perform`).
pub(super) struct StagedCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub cycles: u64,
    pub timeout_seconds: Option<u32>,
    pub continuation: Continuation,
}

/// A 128-bit amount for the 64-bit WIT interface.
fn saturate(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `ic0.performance_counter`: needs the store's fuel.
pub(super) fn performance_counter(store: &StoreContextMut<'_, ExecState>, kind: u32) -> wasmtime::Result<u64> {
    let (limit, before) = store
        .data()
        .ctx
        .as_ref()
        .map_or((0, 0), |c| (c.input.instruction_limit, c.input.context_instructions));
    let this_execution = limit.saturating_sub(store.get_fuel().unwrap_or(0));
    match kind {
        // Instructions of this execution.
        0 => Ok(this_execution),
        // Instructions of the whole call context so far.
        1 => Ok(before.saturating_add(this_execution)),
        _ => trap(ErrorCode::CanisterContractViolation, format!("ic0.performance_counter: unknown counter type {kind}")),
    }
}

pub(super) fn can_read_arg(e: &EntryPoint) -> bool {
    matches!(e, E::Init | E::PostUpgrade | E::Update(_) | E::Query { .. } | E::Reply(_) | E::Inspect { .. })
}
fn can_respond(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_))
}
pub(super) fn can_call(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Reply(_) | E::Reject(_) | E::Timer | E::Heartbeat | E::LowMemory)
}
fn is_callback(e: &EntryPoint) -> bool {
    matches!(e, E::Reply(_) | E::Reject(_))
}
/// Where the cycles attached to the call can be seen and accepted.
fn can_take_cycles(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Query { replicated: true, .. } | E::Reply(_) | E::Reject(_))
}

impl ExecContext {
    /// Cycles of the call not accepted yet; none once it is answered (they
    /// went back with the response).
    fn cycles_left(&self) -> u64 {
        if self.response.is_some() || !self.input.needs_response {
            return 0;
        }
        self.input.cycles_available.saturating_sub(self.cycles_accepted)
    }

    fn max_reply_bytes(&self) -> usize {
        match self.input.entry {
            E::Query { replicated: false, .. } => self.limits.max_query_reply,
            _ => self.limits.max_inter_canister_payload,
        }
    }
}

/// The typed WIT `ic0` of component canisters: each function is the shared
/// logic above with owned values.
impl ic0::Host for ExecState {
    fn msg_arg_data(&mut self) -> wasmtime::Result<Vec<u8>> {
        self.arg().map(<[u8]>::to_vec)
    }

    fn msg_caller(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.caller()?.as_slice().to_vec())
    }

    fn msg_reject_code(&mut self) -> wasmtime::Result<u32> {
        self.reject_code()
    }

    fn msg_reject_msg(&mut self) -> wasmtime::Result<String> {
        self.reject_message().map(str::to_string)
    }

    fn msg_deadline(&mut self) -> wasmtime::Result<u64> {
        self.deadline()
    }

    fn msg_method_name(&mut self) -> wasmtime::Result<String> {
        self.method_name().map(str::to_string)
    }

    fn msg_reply_data_append(&mut self, data: Vec<u8>) -> wasmtime::Result<()> {
        self.reply_append(&data)
    }

    fn msg_reply(&mut self) -> wasmtime::Result<()> {
        self.reply()
    }

    fn msg_reject(&mut self, message: String) -> wasmtime::Result<()> {
        self.reject(message)
    }

    fn msg_cycles_available(&mut self) -> wasmtime::Result<u64> {
        self.cycles_available()
    }

    fn msg_cycles_accept(&mut self, max_amount: u64) -> wasmtime::Result<u64> {
        self.cycles_accept(max_amount.into())
    }

    fn msg_cycles_refunded(&mut self) -> wasmtime::Result<u64> {
        self.cycles_refunded()
    }

    fn canister_cycle_balance(&mut self) -> wasmtime::Result<u64> {
        self.balance()
    }

    fn canister_self(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.self_id()?.as_slice().to_vec())
    }

    fn canister_status(&mut self) -> wasmtime::Result<u32> {
        self.status()
    }

    fn canister_version(&mut self) -> wasmtime::Result<u64> {
        self.version()
    }

    fn is_controller(&mut self, principal: Vec<u8>) -> wasmtime::Result<bool> {
        self.controls(&principal)
    }

    fn in_replicated_execution(&mut self) -> wasmtime::Result<bool> {
        self.replicated()
    }

    fn call(&mut self, args: ic0::CallArgs) -> wasmtime::Result<Result<(), ic0::Reject>> {
        self.may_call("call_perform")?;
        let Ok(callee) = Principal::try_from_slice(&args.callee) else {
            return trap(ErrorCode::CanisterContractViolation, "ic0.call_new: callee is not a valid principal");
        };
        let staged = self.stage_call(StagedCall {
            callee,
            method: args.method,
            arg: args.arg,
            cycles: args.cycles,
            timeout_seconds: args.timeout_seconds,
            continuation: Continuation::Component { env: args.env },
        })?;
        Ok(staged.map_err(|(code, message)| ic0::Reject { code: code as u32, message }))
    }

    fn stable_size(&mut self) -> wasmtime::Result<u64> {
        self.cx("stable64_size")?;
        Ok(self.stable.size())
    }

    fn stable_grow(&mut self, new_pages: u64) -> wasmtime::Result<i64> {
        self.cx("stable64_grow")?;
        Ok(self.stable.grow(new_pages))
    }

    fn stable_read(&mut self, offset: u64, length: u64) -> wasmtime::Result<Vec<u8>> {
        self.cx("stable64_read")?;
        self.stable
            .read(offset, length)
            .or_else(|e| trap(ErrorCode::CanisterTrapped, format!("ic0.stable64_read: {e}")))
    }

    fn stable_write(&mut self, offset: u64, data: Vec<u8>) -> wasmtime::Result<()> {
        self.cx("stable64_write")?;
        self.stable
            .write(offset, &data)
            .or_else(|e| trap(ErrorCode::CanisterTrapped, format!("ic0.stable64_write: {e}")))
    }

    fn time(&mut self) -> wasmtime::Result<u64> {
        ExecState::time(self)
    }

    fn global_timer_set(&mut self, timestamp: u64) -> wasmtime::Result<u64> {
        self.set_timer(timestamp)
    }

    fn performance_counter(&mut self, _counter_type: u32) -> wasmtime::Result<u64> {
        // Replaced by a store-aware definition in `component::linker` (it
        // needs the store's fuel); this one is never linked.
        Ok(0)
    }

    fn debug_print(&mut self, message: String) -> wasmtime::Result<()> {
        self.print(message.as_bytes());
        Ok(())
    }

    fn canister_liquid_cycle_balance(&mut self) -> wasmtime::Result<u64> {
        Ok(saturate(self.liquid_balance()?))
    }

    fn cycles_burn(&mut self, amount: u64) -> wasmtime::Result<u64> {
        Ok(saturate(ExecState::cycles_burn(self, u128::from(amount))?))
    }

    fn cost_call(&mut self, method_name_size: u64, payload_size: u64) -> wasmtime::Result<u64> {
        let (fees, wasm64) = self.fees();
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(saturate(fees.cost_call(size(method_name_size), size(payload_size), wasm64)))
    }

    fn cost_create_canister(&mut self) -> wasmtime::Result<u64> {
        Ok(saturate(self.fees().0.creation()))
    }

    fn cost_http_request(&mut self, request_size: u64, max_res_bytes: u64) -> wasmtime::Result<u64> {
        Ok(saturate(self.outcall_fee(request_size, max_res_bytes)))
    }

    fn cost_sign_with_ecdsa(&mut self, key_name: String, curve: u32) -> wasmtime::Result<Result<u64, u32>> {
        Ok(self.threshold_fee("cost_sign_with_ecdsa", &key_name, curve).map(saturate))
    }

    fn cost_sign_with_schnorr(&mut self, key_name: String, algorithm: u32) -> wasmtime::Result<Result<u64, u32>> {
        Ok(self.threshold_fee("cost_sign_with_schnorr", &key_name, algorithm).map(saturate))
    }

    fn cost_vetkd_derive_key(&mut self, key_name: String, curve: u32) -> wasmtime::Result<Result<u64, u32>> {
        Ok(self.threshold_fee("cost_vetkd_derive_key", &key_name, curve).map(saturate))
    }

    fn trap(&mut self, message: String) -> wasmtime::Result<()> {
        self.trap_with(message)
    }
}
