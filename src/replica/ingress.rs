//! Messages from outside the replica (ingress), the replica's time, and
//! deterministic rounds.
//!
//! An ingress update is first *admitted* (payload size; the canister exists,
//! runs, has a module and the method), then *delivered*: a call context and
//! a task on the canister's queue (or a management job). Under
//! [`Clock::Wall`] delivery is immediate; under [`Clock::Rounds`] admitted
//! messages wait, in arrival order, for the next [`Replica::execute_round`].
//!
//! Time in rounds mode moves as PocketIC (13 and 16) moves a subnet's:
//! - the replica keeps its *time* (what `get_time` shows) and the *last
//!   round's time* (the certified state's batch time), both the start time
//!   at first;
//! - a round runs at the time if it moved since the last round, else 1 ns
//!   after the last round; then both are the round's time;
//! - `set_time(t)` (and `advance_time`, which the clients build from
//!   get_time + set_time) only sets the time: no round runs, nothing
//!   executes, and queries keep seeing the last round's time until the next
//!   round, which runs at exactly `t`; `t` earlier than the time is an
//!   error, equal to it no change;
//! - `set_certified_time(t)` sets both: queries see `t` at once and the next
//!   round runs at `t + 1`;
//! - every execution in a round sees the round's time; query calls and
//!   `canister_inspect_message` see the last round's.
//!
//! A round (rounds mode):
//! 1. takes its time (above), delivers what the previous round carried
//!    over (canisters' calls to the management canister, then the
//!    management canister's responses to canisters) and the waiting
//!    ingress messages;
//! 2. fires what is due at the round's time: global timers, one heartbeat
//!    per canister that has one, expired bounded-wait deadlines, stop
//!    timeouts;
//! 3. runs every canister's queued tasks, and everything they cause (calls
//!    between canisters and their responses, ingress to the management
//!    canister), until nothing is left or [`ROUND_EXECUTION_BUDGET`]
//!    canister tasks have started (the rest stay queued for the next round,
//!    as a busy IC subnet defers work past its round limit). A canister's
//!    call to the management canister is carried to the next round, and the
//!    management canister's response to the round after that: the IC runs
//!    subnet messages at the start of a round and their responses reach
//!    canisters in the next (calls between canisters are inducted between
//!    a round's inner rounds, so they run on within it).
//!
//! So each operation a client awaits takes PocketIC's number of rounds: one
//! for ingress to a canister or to the management canister, two more for
//! each management call a canister makes on the way.
//!
//! Queries are never held: they run at once, ahead of queued replicated
//! tasks (which have not executed, so the query sees the latest committed
//! state).

use std::time::Duration;

use candid::Principal;
use tokio::sync::oneshot;

use std::sync::Arc;

use super::exec::CallerInfo;
use super::scheduler::{Inner, Job};
use super::state::{Origin, State, Task};
use super::{CallResult, Clock, ErrorCode, Reject, Replica, ReplyTo};

/// Canister tasks (executions, installs) one round may start; work beyond
/// it waits for the next round. Enough for every ordinary test flow to
/// finish in one round, few enough that a canister calling itself in a loop
/// cannot keep a round from ending.
pub const ROUND_EXECUTION_BUDGET: usize = 1000;

/// Why the replica's clock cannot be set as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockError {
    /// Time never goes backwards (the caller's mistake).
    #[error("cannot set the time to {requested} ns: it is before the current time {current} ns")]
    TimeIntoPast { current: u64, requested: u64 },
    /// Rounds exist only under [`Clock::Rounds`] (the host's mistake).
    #[error("the replica runs on the wall clock: it has no rounds to execute")]
    NotInRounds,
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Jobs run: canister executions, installs, management calls.
    pub jobs: u64,
    /// Canister tasks still queued for later rounds (the budget ran out).
    pub deferred: usize,
    /// Messages the round carries to the next: canisters' calls to the
    /// management canister and its responses to canisters.
    pub carried: usize,
}

impl Replica {
    /// An update call from outside (ingress), answered asynchronously. A
    /// message that is not admitted is answered at once with the reason;
    /// `canister_inspect_message` runs just before the message executes.
    pub fn submit_call(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> oneshot::Receiver<CallResult> {
        if let Some(forwarded) = self.forward(caller, canister, method, &arg, false) {
            return forwarded;
        }
        let bytes = super::cycles::unsigned_envelope_bytes(&caller, &canister, method, arg.len());
        let payer = Self::ingress_payer(&canister, method, &arg);
        match self.admit(&canister, method, arg.len(), false).and_then(|()| payer.map_or(Ok(()), |p| self.charge_ingress(&p, &caller, bytes))) {
            Ok(()) => self.enter(caller, canister, method, arg, false, None),
            Err(reject) => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(Err(reject));
                rx
            }
        }
    }

    /// An ingress update call as the IC's ingress filter sees it: admitted
    /// (or refused) now; in rounds mode the canister's
    /// `canister_inspect_message` also runs now (a refusal is this
    /// function's error) and the message waits for the next round. The
    /// receiver gets the response.
    pub async fn submit_ingress(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> Result<oneshot::Receiver<CallResult>, Reject> {
        self.submit_ingress_with_info(caller, canister, method, arg, None).await
    }

    /// [`Replica::submit_ingress`] of a message with sender info (what
    /// `ic0.msg_caller_info_*` give every execution of its call context).
    pub async fn submit_ingress_with_info(
        &self,
        caller: Principal,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
        caller_info: Option<CallerInfo>,
    ) -> Result<oneshot::Receiver<CallResult>, Reject> {
        let rounds = self.inner.config.clock != Clock::Wall;
        let bytes = super::cycles::unsigned_envelope_bytes(&caller, &canister, method, arg.len());
        self.admit_ingress(caller, canister, method, arg, caller_info, rounds, bytes).await
    }

    /// An ingress update call as the IC's HTTP interface takes it, in either
    /// clock mode: admitted and inspected (`canister_inspect_message`) now,
    /// so a refusal is this function's error (a non-replicated rejection),
    /// then delivered (wall clock) or held for the next round. The
    /// canister pays for the `envelope_bytes` of the request.
    pub async fn submit_inspected_ingress(
        &self,
        caller: Principal,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
        caller_info: Option<CallerInfo>,
        envelope_bytes: usize,
    ) -> Result<oneshot::Receiver<CallResult>, Reject> {
        self.admit_ingress(caller, canister, method, arg, caller_info, true, envelope_bytes).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn admit_ingress(
        &self,
        caller: Principal,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
        caller_info: Option<CallerInfo>,
        inspect_now: bool,
        envelope_bytes: usize,
    ) -> Result<oneshot::Receiver<CallResult>, Reject> {
        self.admit(&canister, method, arg.len(), false)?;
        let caller_info = caller_info.map(Arc::new);
        if inspect_now && canister != Principal::management_canister() {
            let (tx, rx) = oneshot::channel();
            {
                let mut st = self.lock();
                if let Some(slot) = st.canisters.get_mut(&canister) {
                    let task = Task::Inspect { method: method.to_string(), arg: arg.clone(), caller, caller_info: caller_info.clone(), reply: tx };
                    slot.queue.push_back(task);
                    self.inner.schedule(&mut st, canister);
                }
            }
            // A canister gone meanwhile fails at delivery with the reason.
            if let Ok(verdict) = rx.await {
                verdict?;
            }
        }
        // Inducted: the canister pays for the message (for the management
        // canister's, the canister it is about).
        if let Some(payer) = Self::ingress_payer(&canister, method, &arg) {
            self.charge_ingress(&payer, &caller, envelope_bytes)?;
        }
        Ok(self.enter(caller, canister, method, arg, inspect_now, caller_info))
    }

    /// Delivers an admitted message now, or holds it for the next round.
    fn enter(
        &self,
        caller: Principal,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
        inspected: bool,
        caller_info: Option<Arc<CallerInfo>>,
    ) -> oneshot::Receiver<CallResult> {
        let (tx, rx) = oneshot::channel();
        let method = method.to_string();
        let message = Message { caller, canister, method, arg, caller_info };
        let deliver = move |inner: &Inner, st: &mut State| deliver(inner, st, message, None, inspected, tx);
        let mut st = self.lock();
        if st.manual_time.is_some() {
            st.held.push(Box::new(deliver));
        } else {
            deliver(&self.inner, &mut st);
        }
        rx
    }

    /// A query call from outside (non-replicated; state changes discarded).
    /// Runs at once in either clock mode.
    pub fn submit_query(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> oneshot::Receiver<CallResult> {
        self.submit_query_with_info(caller, canister, method, arg, None)
    }

    /// [`Replica::submit_query`] of a query with sender info.
    pub fn submit_query_with_info(
        &self,
        caller: Principal,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
        caller_info: Option<CallerInfo>,
    ) -> oneshot::Receiver<CallResult> {
        if let Some(forwarded) = self.forward(caller, canister, method, &arg, true) {
            return forwarded;
        }
        let (tx, rx) = oneshot::channel();
        match self.admit(&canister, method, arg.len(), true) {
            Err(reject) => {
                let _ = tx.send(Err(reject));
            }
            Ok(()) => {
                let mut st = self.lock();
                let message = Message { caller, canister, method: method.to_string(), arg, caller_info: caller_info.map(Arc::new) };
                deliver(&self.inner, &mut st, message, Some(false), false, tx);
            }
        }
        rx
    }

    /// An update call; waits for the response (wall clock mode; in rounds
    /// mode the response comes once a round has run the message).
    pub async fn call(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> CallResult {
        self.submit_call(caller, canister, method, arg).await.unwrap_or_else(|_| Err(shutting_down()))
    }

    /// A query call; waits for the response.
    pub async fn query(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> CallResult {
        self.submit_query(caller, canister, method, arg).await.unwrap_or_else(|_| Err(shutting_down()))
    }

    /// Whether a message may enter: every ingress message (to the management
    /// canister too) within the payload limit; a canister's method callable.
    fn admit(&self, canister: &Principal, method: &str, payload: usize, query: bool) -> Result<(), Reject> {
        let limit = self.inner.config.limits.max_inter_canister_payload;
        if payload > limit {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("the ingress payload ({payload} bytes) is larger than {limit} bytes"),
            ));
        }
        if *canister == Principal::management_canister() {
            return Ok(());
        }
        self.lock().check_callable(canister, method, query)
    }

    /// Current replica time (ns). Wall clock mode: the wall clock plus any
    /// advance, strictly increasing. Rounds mode: the time last set or of
    /// the last round, whichever came later (PocketIC's `get_time`); queries
    /// see the last round's time (see the module doc).
    pub fn time(&self) -> u64 {
        self.lock().now()
    }

    /// Moves replica time forward by `d`. On the wall clock, timers and
    /// deadlines due by then fire at once; in rounds mode, at the next round.
    pub fn advance_time(&self, d: Duration) {
        let d = d.as_nanos().min(u64::MAX as u128) as u64;
        {
            let mut st = self.lock();
            match st.manual_time.as_mut() {
                Some(t) => *t = t.saturating_add(d),
                None => st.time_offset = st.time_offset.saturating_add(d),
            }
        }
        if self.inner.config.clock == Clock::Wall {
            self.inner.tick();
        }
        self.inner.clock_changed.notify_all();
    }

    /// Sets replica time to `ns` (never backwards). In rounds mode the next
    /// round runs at exactly `ns` (unless it is the current time, which
    /// changes nothing); until then queries see the last round's time.
    pub fn set_time(&self, ns: u64) -> Result<(), ClockError> {
        let current = self.time();
        if ns < current {
            return Err(ClockError::TimeIntoPast { current, requested: ns });
        }
        self.advance_time(Duration::from_nanos(ns - current));
        Ok(())
    }

    /// Sets replica time to `ns` and, in rounds mode, certifies it: queries
    /// see `ns` at once, as if a round had run at it, and the next round
    /// runs 1 ns later (PocketIC's `set_certified_time`). On the wall clock,
    /// [`Replica::set_time`].
    pub fn set_certified_time(&self, ns: u64) -> Result<(), ClockError> {
        {
            let mut st = self.lock();
            if let Some(current) = st.manual_time {
                if ns < current {
                    return Err(ClockError::TimeIntoPast { current, requested: ns });
                }
                if ns > current {
                    st.manual_time = Some(ns);
                    st.rounds.last_time = ns;
                }
                return Ok(());
            }
        }
        self.set_time(ns)
    }

    /// Runs one round (rounds mode; see the module doc). Blocks until the
    /// round is over: call it off the async runtime's worker threads.
    pub fn execute_round(&self) -> Result<RoundReport, ClockError> {
        if self.inner.config.clock == Clock::Wall {
            return Err(ClockError::NotInRounds);
        }
        let jobs_before = self.inner.jobs_run.load(std::sync::atomic::Ordering::SeqCst);
        {
            let mut st = self.lock();
            let time = st.manual_time.unwrap_or_default();
            let round_time = if time == st.rounds.last_time { time.saturating_add(1) } else { time };
            st.manual_time = Some(round_time);
            st.rounds.last_time = round_time;
            st.round_open = true;
            st.round_budget = ROUND_EXECUTION_BUDGET;
            // What the last round carried over: canisters' management calls
            // (run first, as the IC runs subnet messages), then the
            // management canister's responses; then the new ingress.
            for task in std::mem::take(&mut st.rounds.requests) {
                self.inner.push_job(Job { canister: Principal::management_canister(), instance: None, task });
            }
            for (callback, result) in std::mem::take(&mut st.rounds.responses) {
                super::scheduler::deliver_management_response(&self.inner, &mut st, callback, result);
            }
            for deliver in std::mem::take(&mut st.held) {
                deliver(&self.inner, &mut st);
            }
        }
        self.inner.tick();
        {
            let mut st = self.lock();
            let waiting: Vec<Principal> = st.canisters.iter().filter(|(_, s)| !s.queue.is_empty()).map(|(id, _)| *id).collect();
            for id in waiting {
                self.inner.schedule(&mut st, id);
            }
        }
        self.inner.wait_idle();
        let mut st = self.lock();
        st.round_open = false;
        let deferred = st.canisters.values().map(|s| s.queue.len()).sum();
        let carried = st.rounds.carried();
        Ok(RoundReport { jobs: self.inner.jobs_run.load(std::sync::atomic::Ordering::SeqCst) - jobs_before, deferred, carried })
    }

    /// Ingress messages waiting for the next round.
    pub fn held_ingress(&self) -> usize {
        self.lock().held.len()
    }
}

/// A message from outside, as admitted.
struct Message {
    caller: Principal,
    canister: Principal,
    method: String,
    arg: Vec<u8>,
    caller_info: Option<Arc<CallerInfo>>,
}

/// Delivers an admitted message: a management job, or a call context and a
/// task on the canister's queue (`inspected`: its inspection already ran). Checks again (the canister may have changed
/// since admission) and answers `tx` with the reason if it cannot run.
fn deliver(inner: &Inner, st: &mut State, message: Message, query: Option<bool>, inspected: bool, tx: oneshot::Sender<CallResult>) {
    let Message { caller, canister, method, arg, caller_info } = message;
    if canister == Principal::management_canister() {
        let job = Job {
            canister,
            instance: None,
            task: Task::Management { caller, caller_version: None, method, arg, cycles: 0, reply: ReplyTo::Ingress(tx) },
        };
        // A query (`fetch_canister_logs`) is answered at once, also in a
        // simulated replica.
        if query.is_some() { inner.push_job_now(job) } else { inner.push_job(job) }
        return;
    }
    if let Err(reject) = st.check_callable(&canister, &method, query.is_some()) {
        let _ = tx.send(Err(reject));
        return;
    }
    let context = st.new_context(canister, caller, Origin::Ingress(tx), 0);
    if let Some(ctx) = st.contexts.get_mut(&context) {
        ctx.inspected = inspected;
        ctx.caller_info = caller_info;
    }
    if let Some(slot) = st.canisters.get_mut(&canister) {
        slot.queue.push_back(Task::Call { context, method, arg, caller, query, cycles: 0 });
    }
    inner.schedule(st, canister);
}

fn shutting_down() -> Reject {
    Reject::system(ErrorCode::SubnetOversubscribed, "the replica is shutting down")
}
