//! The replica as the deterministic simulator (`crate::sim`) drives it: a
//! narrow view that lists what may run next and runs exactly the step the
//! simulator chose, on the caller's thread.
//!
//! A simulated replica is a rounds-mode replica with no executor threads
//! ([`ReplicaConfig::threads`] = 0) on which no round ever opens: nothing
//! replicated starts by itself. [`Replica::sim_steps`] lists the eligible
//! steps: the head of each (caller, callee) request queue (requests of a
//! pair start in send order, as the IC guarantees; ingress is unordered),
//! every queued response (responses have no order), due system tasks, and
//! a lifecycle task (install, uninstall, snapshot) only at the head of its
//! canister's queue, which it keeps as a barrier. [`Replica::sim_execute`]
//! runs one of them; what follows inside the replica without a choice (the
//! management canister's work, its responses, queries) runs at once, in
//! order, on the same thread. Faults the IC allows are separate entry
//! points: a spontaneous reject of a request that has not started
//! ([`Replica::sim_reject`]), a bounded-wait expiry in any position
//! ([`Replica::sim_expire`]), an instruction limit cut for the next
//! execution ([`Replica::sim_cut_instructions`]). What happened is recorded
//! as [`SimEvent`]s, which the simulator's invariants and histories read.

use candid::Principal;
use tokio::sync::oneshot;

use super::scheduler::{Job, deliver_management_response, run_job};
use super::state::{Done, Origin, SystemTask, Task};
use super::{CallResult, ErrorCode, InstallMode, InstallRequest, Reject, RejectCode, Replica, install};

/// Which queued step: stable across runs with the same decisions (ids are
/// counters), unlike positions in queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepId {
    /// A request (from a canister or ingress) that has not started: the
    /// callee's call context.
    Request { context: u64 },
    /// A response to the callback; `expiry` for the `SYS_UNKNOWN` a
    /// bounded-wait deadline produced (the real response may be queued too:
    /// whichever runs first is the answer, the other is dropped).
    Response { callback: u64, expiry: bool },
    /// A system task of the canister.
    System { canister: Principal, task: SystemKind },
    /// The lifecycle task at the head of the canister's queue.
    Lifecycle { canister: Principal },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SystemKind {
    Timer,
    Heartbeat,
    LowMemory,
}

/// An eligible step and what it is.
#[derive(Clone, Debug)]
pub struct Step {
    pub id: StepId,
    /// The canister it runs on.
    pub canister: Principal,
    pub what: StepWhat,
}

#[derive(Clone, Debug)]
pub enum StepWhat {
    /// A request: `callback` is the caller's (None for ingress and calls
    /// from other nodes, `remote`); `bounded` when the caller chose a
    /// bounded wait.
    Request { caller: Principal, method: String, callback: Option<u64>, bounded: bool, remote: bool },
    /// A response for `caller`'s callback; `reject` when it is one.
    Response { callee: Principal, reject: Option<RejectCode> },
    System(SystemKind),
    Lifecycle(&'static str),
}

/// Where a bounded-wait call is when it expires (the three positions the
/// IC's `SYS_UNKNOWN` may hide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExpiryPosition {
    /// The request has not started on the callee.
    RequestInFlight,
    /// The callee's call context is open (it ran, and may still change).
    CalleeRunning,
    /// The callee answered; the response waits for the caller.
    ResponseInFlight,
}

/// What happened inside the replica during a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimEvent {
    /// An execution on `canister` in call context `context` ended; the
    /// cycles it accepted (0 unless it committed).
    Executed { canister: Principal, context: u64, committed: bool, trap: Option<String>, accepted: u128 },
    /// A committed execution sent a call with `cycles` attached.
    CallSent { callback: u64, caller: Principal, callee: Principal, method: String, bounded: bool, cycles: u128 },
    /// A request started executing on its callee.
    RequestStarted { context: u64, callback: Option<u64> },
    /// A callback (reply, reject or cleanup) ran for `callback`, with
    /// `refund` cycles refunded.
    CallbackRan { callback: u64, reject: Option<RejectCode>, refund: u128 },
    /// Call context `context` was answered; `callback` is the caller's
    /// (`None` for ingress and other outside callers), `dropped` when the
    /// caller had already been answered with `SYS_UNKNOWN`.
    Answered { context: u64, callback: Option<u64>, reject: Option<RejectCode>, dropped: bool },
    /// A canister on another node called `callee` here: call context
    /// `context` holds the caller's callback `callback` (on its node).
    RemoteAccepted { context: u64, caller: Principal, callee: Principal, callback: u64 },
}

impl Replica {
    /// Turns event recording on (a simulated replica does it from the start).
    pub fn sim_record(&self) {
        self.lock().sim = Some(Default::default());
    }

    /// The events recorded since the last call.
    pub fn sim_take_events(&self) -> Vec<SimEvent> {
        self.lock().sim.as_mut().map(|s| std::mem::take(&mut s.events)).unwrap_or_default()
    }

    /// The steps that may run now, in a fixed order (by canister, then id).
    pub fn sim_steps(&self) -> Vec<Step> {
        let st = self.lock();
        let mut steps = Vec::new();
        for (id, slot) in &st.canisters {
            if slot.busy {
                continue;
            }
            let mut callers_seen: Vec<Principal> = Vec::new();
            for (i, task) in slot.queue.iter().enumerate() {
                match task {
                    Task::Call { context, method, caller, query: None, .. } => {
                        let ctx = st.contexts.get(context);
                        let callback = ctx.and_then(|c| match c.origin {
                            Origin::Canister { callback } => Some(callback),
                            _ => None,
                        });
                        let remote = ctx.is_some_and(|c| matches!(c.origin, Origin::Remote(_)));
                        let from_canister = callback.is_some() || remote || ctx.is_some_and(|c| matches!(c.origin, Origin::Expired));
                        // Requests of one caller start in send order.
                        if from_canister {
                            if callers_seen.contains(caller) {
                                continue;
                            }
                            callers_seen.push(*caller);
                        }
                        let bounded = ctx.is_some_and(|c| c.deadline > 0);
                        steps.push(Step {
                            id: StepId::Request { context: *context },
                            canister: *id,
                            what: StepWhat::Request { caller: *caller, method: method.clone(), callback, bounded, remote },
                        });
                    }
                    Task::Response { callback, result, .. } => {
                        let expiry = is_expiry(result);
                        let callee = st.callbacks.get(callback).map_or(Principal::anonymous(), |cb| cb.callee);
                        steps.push(Step {
                            id: StepId::Response { callback: *callback, expiry },
                            canister: *id,
                            what: StepWhat::Response { callee, reject: result.as_ref().err().map(|r| r.code) },
                        });
                    }
                    Task::System(t) => {
                        let kind = match t {
                            SystemTask::Timer => SystemKind::Timer,
                            SystemTask::Heartbeat => SystemKind::Heartbeat,
                            SystemTask::LowMemory => SystemKind::LowMemory,
                        };
                        steps.push(Step { id: StepId::System { canister: *id, task: kind }, canister: *id, what: StepWhat::System(kind) });
                    }
                    Task::Install(_) | Task::Uninstall { .. } | Task::Snapshot(_) => {
                        // A barrier: nothing behind it starts before it.
                        if i == 0 {
                            let name = match task {
                                Task::Install(job) => match job.mode {
                                    InstallMode::Install => "install",
                                    InstallMode::Reinstall => "reinstall",
                                    InstallMode::Upgrade => "upgrade",
                                },
                                Task::Uninstall { .. } => "uninstall",
                                _ => "snapshot",
                            };
                            steps.push(Step { id: StepId::Lifecycle { canister: *id }, canister: *id, what: StepWhat::Lifecycle(name) });
                        }
                        break;
                    }
                    // Queries and inspections run at once (never queued
                    // here for long); management work never sits in a
                    // canister's queue.
                    _ => {}
                }
            }
        }
        steps.sort_by_key(|s| (s.canister, s.id));
        steps
    }

    /// Runs step `id` to the end, then everything it causes that needs no
    /// choice. Returns false when the step is no longer queued.
    pub fn sim_execute(&self, id: StepId) -> bool {
        let job = {
            let mut st = self.lock();
            let Some((canister, index)) = find(&st, id) else { return false };
            let Some(slot) = st.canisters.get_mut(&canister) else { return false };
            // A query may be running on it (executor threads run queries).
            if slot.busy {
                return false;
            }
            let Some(task) = slot.queue.remove(index) else { return false };
            slot.busy = true;
            let instance = slot.instance.take();
            let event = match &task {
                Task::Call { context, .. } => {
                    let callback = st.contexts.get(context).and_then(|c| match c.origin {
                        Origin::Canister { callback } => Some(callback),
                        _ => None,
                    });
                    Some(SimEvent::RequestStarted { context: *context, callback })
                }
                Task::Response { callback, result, refund } if st.callbacks.contains_key(callback) => {
                    Some(SimEvent::CallbackRan { callback: *callback, reject: result.as_ref().err().map(|r| r.code), refund: u128::from(*refund) })
                }
                _ => None,
            };
            if let (Some(event), Some(sim)) = (event, st.sim.as_mut()) {
                sim.events.push(event);
            }
            Job { canister, instance, task }
        };
        run_job(&self.inner, job);
        self.sim_settle();
        true
    }

    /// Spontaneously rejects request `context` before it starts (the IC may
    /// reject a request that has not executed, for example under load).
    /// Returns false when the request is no longer queued.
    pub fn sim_reject(&self, context: u64, code: RejectCode) -> bool {
        let mut st = self.lock();
        let Some((canister, index)) = find(&st, StepId::Request { context }) else { return false };
        if let Some(slot) = st.canisters.get_mut(&canister) {
            slot.queue.remove(index);
        }
        let reject = Reject { code, error_code: None, message: format!("the request to {canister} was rejected before it executed (simulated fault)") };
        if let Some((to, task)) = st.respond(context, Err(reject)) {
            self.inner.enqueue(&mut st, to, task);
        }
        st.maybe_close(context);
        drop(st);
        self.sim_settle();
        true
    }

    /// Expires bounded-wait call `callback` now with `SYS_UNKNOWN`, wherever
    /// it is; a response already waiting for the caller is dropped with its
    /// refund (attached cycles are lost, as on the IC). `None` when the call
    /// is unbounded, answered or already expired.
    pub fn sim_expire(&self, callback: u64) -> Option<ExpiryPosition> {
        let mut st = self.lock();
        let cb = st.callbacks.get(&callback)?;
        let (caller, callee_context) = (cb.caller, cb.callee_context);
        let deadline = st.deadlines.iter().find(|(_, c)| *c == callback).copied()?;
        st.deadlines.remove(&deadline);
        let mut position = ExpiryPosition::CalleeRunning;
        if let Some(cctx) = callee_context {
            let queued = find(&st, StepId::Request { context: cctx }).is_some();
            if let Some(c) = st.contexts.get_mut(&cctx)
                && matches!(c.origin, Origin::Canister { .. })
            {
                c.origin = Origin::Expired;
            }
            if queued {
                position = ExpiryPosition::RequestInFlight;
            }
        }
        if let Some((_, index)) = find(&st, StepId::Response { callback, expiry: false }) {
            position = ExpiryPosition::ResponseInFlight;
            if let Some(slot) = st.canisters.get_mut(&caller)
                && let Some(Task::Response { refund, .. }) = slot.queue.remove(index)
            {
                slot.balance = slot.balance.saturating_sub(u128::from(refund));
            }
        }
        let reject = Reject {
            code: RejectCode::SysUnknown,
            error_code: Some(ErrorCode::DeadlineExpired),
            message: "IC0601: the call's deadline expired before a response arrived; the call may or may not have been executed".into(),
        };
        self.inner.enqueue(&mut st, caller, Task::Response { callback, result: Err(reject), refund: 0 });
        Some(position)
    }

    /// The bounded-wait calls that may expire now (callback ids, ascending).
    pub fn sim_bounded_calls(&self) -> Vec<u64> {
        let st = self.lock();
        let mut out: Vec<u64> = st.deadlines.iter().map(|(_, cb)| *cb).filter(|cb| st.callbacks.contains_key(cb)).collect();
        out.sort_unstable();
        out
    }

    /// The next execution (of any kind) runs with at most `instructions`
    /// (an instruction-limit trap the IC may produce); `cleanup_too` cuts the
    /// cleanup callback that follows a trapped callback as well.
    pub fn sim_cut_instructions(&self, instructions: u64, cleanup_too: bool) {
        if let Some(sim) = self.lock().sim.as_mut() {
            let (fail_calls, fail_grow) = sim.cut.map_or((false, false), |c| (c.fail_calls, c.fail_grow));
            sim.cut = Some(InstructionCut { instructions, cleanup_too, fail_calls, fail_grow });
        }
    }

    /// Every `ic0.call_perform` of the next execution fails synchronously
    /// (`SYS_TRANSIENT`, a full queue): the IC may refuse a call so.
    pub fn sim_fail_calls(&self) {
        if let Some(sim) = self.lock().sim.as_mut() {
            let cut = sim.cut.get_or_insert(InstructionCut { instructions: u64::MAX, cleanup_too: false, fail_calls: false, fail_grow: false });
            cut.fail_calls = true;
        }
    }

    /// Every `memory.grow` of the next execution's heap returns -1 (the
    /// IC may refuse to grow a canister without a memory allocation when
    /// its subnet is short of memory). A canister with a memory
    /// allocation is not affected.
    pub fn sim_fail_grow(&self) {
        if let Some(sim) = self.lock().sim.as_mut() {
            let cut = sim.cut.get_or_insert(InstructionCut { instructions: u64::MAX, cleanup_too: false, fail_calls: false, fail_grow: false });
            cut.fail_grow = true;
        }
    }

    /// Drops what was set for the next execution (it did not run).
    pub fn sim_clear_next(&self) {
        if let Some(sim) = self.lock().sim.as_mut() {
            sim.cut = None;
        }
    }

    /// The replica time, and the next time something is due (a timer, a
    /// bounded-wait deadline, a `stop_canister` timeout).
    pub fn sim_next_event(&self) -> Option<u64> {
        self.inner.next_wakeup()
    }

    /// Moves time to `ns` (never backwards) and queues what is due then:
    /// timers, heartbeats, expired deadlines.
    pub fn sim_advance_to(&self, ns: u64) {
        {
            let mut st = self.lock();
            if let Some(t) = st.manual_time.as_mut() {
                *t = (*t).max(ns);
            }
            st.rounds.last_time = st.manual_time.unwrap_or_default();
        }
        self.inner.tick();
        self.sim_settle();
    }

    /// Starts a simulated round, as [`Replica::execute_round`] starts one:
    /// at the time set (or 1 ns after the last round), with the held
    /// ingress inducted and what is due queued (timers, heartbeats,
    /// expired deadlines). The simulator then runs the round's steps.
    pub fn sim_begin_round(&self) {
        // A query or inspection still finishing on an executor thread
        // (its answer may already be out) keeps its canister busy.
        self.wait_for_executors();
        let carried = {
            let mut st = self.lock();
            let time = st.manual_time.unwrap_or_default();
            let round_time = if time == st.rounds.last_time { time.saturating_add(1) } else { time };
            st.manual_time = Some(round_time);
            st.rounds.last_time = round_time;
            // What the last round carried over: canisters' management calls,
            // then the management canister's responses (PocketIC's rounds).
            if st.sim.as_ref().is_some_and(|s| s.carry_management) {
                let requests = std::mem::take(&mut st.rounds.requests);
                for (callback, result) in std::mem::take(&mut st.rounds.responses) {
                    deliver_management_response(&self.inner, &mut st, callback, result);
                }
                requests
            } else {
                Vec::new()
            }
        };
        for task in carried {
            self.inner.push_job(Job { canister: Principal::management_canister(), instance: None, task });
        }
        self.sim_settle();
        self.inner.tick();
        self.sim_settle();
    }

    /// What each canister with queued tasks holds (for diagnostics).
    pub fn sim_queues(&self) -> String {
        let st = self.lock();
        let mut out = Vec::new();
        for (id, slot) in &st.canisters {
            if slot.queue.is_empty() {
                continue;
            }
            let kinds: Vec<&str> = slot
                .queue
                .iter()
                .map(|t| match t {
                    Task::Call { query: None, .. } => "call",
                    Task::Call { .. } => "query",
                    Task::Response { .. } => "response",
                    Task::System(_) => "system",
                    Task::Inspect { .. } => "inspect",
                    Task::Install(_) => "install",
                    Task::Snapshot(_) => "snapshot",
                    Task::Uninstall { .. } => "uninstall",
                    Task::Management { .. } => "management",
                    Task::ManagementResponse { .. } => "management response",
                })
                .collect();
            out.push(format!("{id}{}: {}", if slot.busy { " (busy)" } else { "" }, kinds.join(", ")));
        }
        out.join("; ")
    }

    /// Canisters' calls to the management canister run in the round after
    /// the one that made them, and its responses reach them in the round
    /// after that, as in [`Replica::execute_round`] (PocketIC's rounds);
    /// otherwise (a `ww sim` run) they follow at once.
    pub fn sim_carry_management(&self) {
        if let Some(sim) = self.lock().sim.as_mut() {
            sim.carry_management = true;
        }
    }

    /// `raw_rand` for `canister`. A simulated replica derives it from the
    /// canister and how often that canister asked (BLAKE3 keyed by the
    /// replica's configured seed, which the simulator keeps fixed), so the
    /// bytes do not depend on the order in which canisters ran: a shrunk or
    /// reordered run sees the same randomness.
    pub fn raw_rand_for(&self, canister: &Principal) -> [u8; 32] {
        if !self.inner.config.simulated {
            return self.raw_rand();
        }
        let n = {
            let mut st = self.lock();
            let Some(sim) = st.sim.as_mut() else { return self.raw_rand_unlocked(st) };
            let counter = sim.rand_counters.entry(*canister).or_default();
            *counter += 1;
            *counter
        };
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.inner.config.seed.to_le_bytes());
        let mut h = blake3::Hasher::new_keyed(&key);
        h.update(b"raw_rand");
        h.update(canister.as_slice());
        h.update(&n.to_le_bytes());
        *h.finalize().as_bytes()
    }

    fn raw_rand_unlocked(&self, mut st: std::sync::MutexGuard<'_, super::state::State>) -> [u8; 32] {
        use rand::Rng;
        let mut out = [0u8; 32];
        st.rng.fill_bytes(&mut out);
        out
    }

    /// Waits until no executor thread runs a query or an inspection.
    fn wait_for_executors(&self) {
        if self.inner.config.threads == 0 {
            return;
        }
        loop {
            let active = *self.inner.active.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = self.inner.sim_jobs.lock().unwrap_or_else(|e| e.into_inner()).len();
            if active <= waiting {
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    /// Management calls and responses waiting for the next round.
    pub fn sim_carried(&self) -> usize {
        self.lock().rounds.carried()
    }

    /// Canister tasks still queued (a round's leftovers).
    pub fn sim_queued(&self) -> usize {
        self.lock().canisters.values().map(|s| s.queue.len()).sum()
    }

    /// An ingress update call, inducted at once (its execution is a step).
    pub fn sim_submit(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> oneshot::Receiver<CallResult> {
        let rx = self.submit_call(caller, canister, method, arg);
        self.sim_settle();
        rx
    }

    /// A query, answered at once.
    /// It leaves no events: it changes nothing.
    pub fn sim_query(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> CallResult {
        let recorded = self.lock().sim.as_ref().map_or(0, |s| s.events.len());
        let mut rx = self.submit_query(caller, canister, method, arg);
        self.sim_settle();
        if let Some(sim) = self.lock().sim.as_mut() {
            sim.events.truncate(recorded);
        }
        rx.try_recv().unwrap_or_else(|_| Err(Reject::system(ErrorCode::CanisterNotFound, format!("the query {method} on {canister} got no answer"))))
    }

    /// Drains `canister`'s balance down to its freezing limit (it is
    /// frozen: calls to it are rejected, it cannot pay for new work);
    /// returns what was taken, for [`Replica::sim_unfreeze`].
    pub fn sim_freeze(&self, canister: &Principal) -> Option<u128> {
        let mut st = self.lock();
        let slot = st.canisters.get_mut(canister)?;
        let limit = slot.freezing_limit();
        let drained = slot.balance.saturating_sub(limit);
        slot.balance -= drained;
        Some(drained)
    }

    /// Gives back what [`Replica::sim_freeze`] took.
    pub fn sim_unfreeze(&self, canister: &Principal, amount: u128) {
        if let Some(slot) = self.lock().canisters.get_mut(canister) {
            slot.balance = slot.balance.saturating_add(amount);
        }
    }

    /// How many calls `canister` made that still wait for their response
    /// (their callbacks would run in whatever module it has then).
    pub fn sim_calls_in_flight(&self, canister: &Principal) -> usize {
        self.lock().callbacks.values().filter(|cb| cb.caller == *canister && !cb.orphaned).count()
    }

    /// Queues an install (`mode`) of `module` on `canister` by `caller`; the
    /// receiver gets the outcome once the install step has run.
    pub fn sim_install(
        &self,
        caller: Principal,
        canister: Principal,
        mode: InstallMode,
        module: install::PreparedModule,
        arg: Vec<u8>,
    ) -> oneshot::Receiver<Result<(), Reject>> {
        let (tx, rx) = oneshot::channel();
        // An upgrade of a module with enhanced orthogonal persistence keeps
        // main memory, as deploy tools ask for it (without it the IC refuses).
        let eop = matches!(&module.code, super::exec::Code::Core(m) if m.enhanced_orthogonal_persistence());
        let request = InstallRequest::by_host(caller, canister, mode, (mode == InstallMode::Upgrade && eop).then_some(true));
        self.install_with(request, module, arg, Done::new(Box::new(move |r| {
            let _ = tx.send(r);
        })));
        rx
    }

    /// A digest of the replica's observable state: every canister's status,
    /// version, balance, timer, certified data and queue, the open call
    /// contexts and callbacks, the time; with `memory`, heap and stable
    /// memory too (slower: every byte).
    pub fn sim_digest(&self, memory: bool) -> [u8; 32] {
        let st = self.lock();
        let mut h = blake3::Hasher::new();
        h.update(&st.manual_time.unwrap_or_default().to_le_bytes());
        for (id, slot) in &st.canisters {
            h.update(id.as_slice());
            h.update(&[slot.status as u8]);
            h.update(&slot.version.to_le_bytes());
            h.update(&slot.balance.to_le_bytes());
            h.update(&slot.timer.to_le_bytes());
            h.update(&slot.certified_data);
            h.update(&(slot.queue.len() as u64).to_le_bytes());
            h.update(&slot.module_hash.unwrap_or_default());
            if memory && let Some(instance) = &slot.instance {
                instance.hash_committed(&mut h);
            }
        }
        let mut contexts: Vec<_> = st.contexts.iter().map(|(id, c)| (*id, c.canister, c.needs_response, c.outstanding)).collect();
        contexts.sort_unstable();
        for (id, canister, needs, outstanding) in contexts {
            h.update(&id.to_le_bytes());
            h.update(canister.as_slice());
            h.update(&[needs as u8]);
            h.update(&outstanding.to_le_bytes());
        }
        let mut callbacks: Vec<u64> = st.callbacks.keys().copied().collect();
        callbacks.sort_unstable();
        for cb in callbacks {
            h.update(&cb.to_le_bytes());
        }
        *h.finalize().as_bytes()
    }

    /// Runs what follows without a choice: the management canister's
    /// requests and responses, inducted ingress, queries, in order.
    fn sim_settle(&self) {
        loop {
            let (requests, delivered) = {
                let mut st = self.lock();
                let carry = st.sim.as_ref().is_some_and(|s| s.carry_management);
                let requests = if carry { Vec::new() } else { std::mem::take(&mut st.rounds.requests) };
                let responses = if carry { Vec::new() } else { std::mem::take(&mut st.rounds.responses) };
                let held = std::mem::take(&mut st.held);
                let delivered = !responses.is_empty() || !held.is_empty();
                for (callback, result) in responses {
                    deliver_management_response(&self.inner, &mut st, callback, result);
                }
                for deliver in held {
                    deliver(&self.inner, &mut st);
                }
                (requests, delivered)
            };
            let had_requests = !requests.is_empty();
            for task in requests {
                self.inner.push_job(Job { canister: Principal::management_canister(), instance: None, task });
            }
            // The management canister's work, then (with no executor
            // threads) queries.
            let job = self.inner.sim_jobs.lock().unwrap_or_else(|e| e.into_inner()).pop_front().or_else(|| {
                if self.inner.config.threads == 0 { self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner()).pop_front() } else { None }
            });
            match job {
                Some(job) => {
                    run_job(&self.inner, job);
                    self.inner.sim_job_finished();
                }
                None if !had_requests && !delivered => return,
                None => {}
            }
        }
    }
}

/// What a simulated replica records (see [`SimEvent`]).
#[derive(Default)]
pub(super) struct SimRecorder {
    pub(super) events: Vec<SimEvent>,
    /// An instruction limit for the next execution.
    pub(super) cut: Option<InstructionCut>,
    /// Management calls and responses wait for the next round.
    pub(super) carry_management: bool,
    /// `raw_rand` calls per canister (see [`Replica::raw_rand_for`]).
    pub(super) rand_counters: std::collections::BTreeMap<Principal, u64>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct InstructionCut {
    pub(super) instructions: u64,
    pub(super) cleanup_too: bool,
    /// Every `call_perform` fails (M4).
    pub(super) fail_calls: bool,
    /// Every `memory.grow` of the heap fails (R2).
    pub(super) fail_grow: bool,
}

fn is_expiry(result: &CallResult) -> bool {
    matches!(result, Err(r) if r.error_code == Some(ErrorCode::DeadlineExpired))
}

/// Where step `id` is queued: (canister, index in its queue).
fn find(st: &super::state::State, id: StepId) -> Option<(Principal, usize)> {
    let in_queue = |canister: &Principal, pred: &dyn Fn(&Task) -> bool| -> Option<(Principal, usize)> {
        let slot = st.canisters.get(canister)?;
        slot.queue.iter().position(pred).map(|i| (*canister, i))
    };
    match id {
        StepId::Request { context } => {
            let canister = st.contexts.get(&context)?.canister;
            in_queue(&canister, &|t| matches!(t, Task::Call { context: c, query: None, .. } if *c == context))
        }
        StepId::Response { callback, expiry } => {
            let caller = st.callbacks.get(&callback).map(|cb| cb.caller);
            let pred = |t: &Task| matches!(t, Task::Response { callback: c, result, .. } if *c == callback && is_expiry(result) == expiry);
            match caller {
                Some(caller) => in_queue(&caller, &pred),
                // The callback is gone (answered already): the leftover
                // response is still queued somewhere; find it to drop it.
                None => st.canisters.keys().find_map(|c| in_queue(c, &pred)),
            }
        }
        StepId::System { canister, task } => in_queue(&canister, &|t| {
            matches!(
                (t, task),
                (Task::System(SystemTask::Timer), SystemKind::Timer)
                    | (Task::System(SystemTask::Heartbeat), SystemKind::Heartbeat)
                    | (Task::System(SystemTask::LowMemory), SystemKind::LowMemory)
            )
        }),
        StepId::Lifecycle { canister } => {
            let slot = st.canisters.get(&canister)?;
            matches!(slot.queue.front(), Some(Task::Install(_) | Task::Uninstall { .. } | Task::Snapshot(_))).then_some((canister, 0))
        }
    }
}
