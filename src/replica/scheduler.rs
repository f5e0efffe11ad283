//! The scheduler: executor threads take one task of one idle canister at a
//! time, run it on the canister's instance outside the state lock, then
//! apply its effects under the lock (the response to the call context,
//! outgoing calls with their callbacks, the timer, starvation rejects). The
//! clock thread is in `clock`.
//!
//! Invariants kept here:
//! - a canister's instance is out of its slot while it executes (`busy`),
//!   so one execution per canister at a time; canisters run in parallel;
//! - effects of an execution are applied only if it committed;
//! - calls leave only when the execution that made them commits, and a
//!   canister's requests to one callee join its FIFO queue in send order.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::collections::VecDeque;
use std::time::Duration;

use candid::Principal;

use super::exec::{self, CanisterInstance, CanisterRuntime, EntryPoint, MessageInput, MethodKind, Outcome, OutgoingCall, Response};
use super::cycles::Payment;
use super::state::{Callback, Origin, ReplyTo, State, SystemTask, Task};
use super::{CallResult, ErrorCode, Reject, RejectCode, Replica, ReplicaConfig, Status, lifecycle, management};
pub(super) struct Job {
    pub(super) canister: Principal,
    pub(super) instance: Option<Box<CanisterInstance>>,
    pub(super) task: Task,
}


pub(super) struct Inner {
    pub(super) runtime: CanisterRuntime,
    /// Which subnet holds each threshold key.
    pub(super) key_routing: Arc<super::threshold::KeyRouting>,
    /// Candid interfaces carried by modules, by module hash.
    pub(super) interfaces: Mutex<std::collections::HashMap<[u8; 32], Arc<str>>>,
    pub(super) config: ReplicaConfig,
    pub(super) state: Mutex<State>,
    pub(super) jobs: Mutex<VecDeque<Job>>,
    /// A simulated replica's management canister work, run by the
    /// simulator in order (see `sim`).
    pub(super) sim_jobs: Mutex<VecDeque<Job>>,
    pub(super) jobs_ready: Condvar,
    /// Wakes the timer thread when time moves or a deadline appears.
    pub(super) clock_changed: Condvar,
    /// Executions running right now, and the most seen at once.
    pub(super) in_flight: std::sync::atomic::AtomicUsize,
    pub(super) max_in_flight: std::sync::atomic::AtomicUsize,
    /// Canisters executing right now (checks one-at-a-time per canister).
    pub(super) executing: Mutex<std::collections::HashSet<Principal>>,
    pub(super) overlaps: std::sync::atomic::AtomicUsize,
    /// Jobs pushed and not finished (a job's follow-up jobs are pushed
    /// before it finishes, so 0 means nothing is left to run); `idle` is
    /// notified when it drops to 0.
    pub(super) active: Mutex<usize>,
    pub(super) idle: Condvar,
    /// Jobs run so far (a round's progress).
    pub(super) jobs_run: std::sync::atomic::AtomicU64,
    /// The state directory, when the replica keeps one.
    pub(super) durability: std::sync::OnceLock<Arc<super::durable::Durability>>,
    /// Where calls to other nodes' canisters go (see [`super::remote`]).
    pub(super) remote: std::sync::OnceLock<Arc<dyn super::remote::RemoteRouter>>,
    /// Node records the state directory held at start (taken once).
    pub(super) restored_sidecar: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Who makes data certificates for non-replicated queries.
    pub(super) data_certificates: std::sync::OnceLock<std::sync::Weak<dyn super::certified_view::DataCertificates>>,
    /// Who performs HTTPS outcalls (none: they are refused).
    pub(super) outcalls: std::sync::OnceLock<super::http_outcall::Outcalls>,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the next task of `canister` if it is idle. In rounds mode
    /// outside a round (or with the round's budget spent) only a query may
    /// start: it goes ahead of queued replicated tasks, which have not
    /// executed, so it still sees the latest committed state.
    pub(super) fn schedule(&self, st: &mut State, canister: Principal) {
        if st.paused {
            return;
        }
        let replicated_ok = st.may_start_replicated();
        let rounds = st.manual_time.is_some();
        let Some(slot) = st.canisters.get_mut(&canister) else { return };
        if slot.busy || slot.queue.is_empty() {
            return;
        }
        let index = if replicated_ok {
            0
        } else {
            match slot.queue.iter().position(runs_outside_rounds) {
                Some(i) => i,
                None => return,
            }
        };
        let Some(task) = slot.queue.remove(index) else { return };
        slot.busy = true;
        let instance = slot.instance.take();
        if rounds && !runs_outside_rounds(&task) {
            st.round_budget = st.round_budget.saturating_sub(1);
        }
        self.push_job(Job { canister, instance, task });
    }

    /// Runs `f` at a quiescent point: no task starts from now on, every
    /// job in flight finishes (applying its effects), then `f` runs under
    /// the state lock with every instance in its slot; afterwards the
    /// canisters with queued tasks start again.
    pub(super) fn quiesce<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.lock().paused = true;
        loop {
            self.wait_idle();
            let mut st = self.lock();
            // Jobs pushed outside the state lock (ingress to the
            // management canister) may have started meanwhile.
            if *self.active.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
                continue;
            }
            let out = f(&mut st);
            st.paused = false;
            let ready: Vec<Principal> = st.canisters.iter().filter(|(_, s)| !s.busy && !s.queue.is_empty()).map(|(id, _)| *id).collect();
            for id in ready {
                self.schedule(&mut st, id);
            }
            return out;
        }
    }

    /// Blocks until every pushed job (and all they caused) has finished.
    pub(super) fn wait_idle(&self) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        while *active > 0 {
            active = self.idle.wait(active).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A job the simulator ran on its own thread has finished.
    pub(super) fn sim_job_finished(&self) {
        self.job_finished();
    }

    fn job_finished(&self) {
        self.jobs_run.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        *active = active.saturating_sub(1);
        if *active == 0 {
            self.idle.notify_all();
        }
    }

    pub(super) fn push_job(&self, job: Job) {
        if self.config.simulated && matches!(job.task, Task::Management { .. } | Task::ManagementResponse { .. }) {
            *self.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.sim_jobs.lock().unwrap_or_else(|e| e.into_inner()).push_back(job);
            return;
        }
        self.push_job_now(job);
    }

    /// Pushes a job for the executor threads even in a simulated replica
    /// (a query to the management canister: answered at once, it changes
    /// nothing).
    pub(super) fn push_job_now(&self, job: Job) {
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.push_back(job);
        drop(jobs);
        self.jobs_ready.notify_one();
    }

    pub(super) fn enqueue(&self, st: &mut State, canister: Principal, task: Task) {
        if let Some(slot) = st.canisters.get_mut(&canister) {
            slot.queue.push_back(task);
            self.schedule(st, canister);
        }
    }
}

/// Tasks that keep no state (queries, inspections): they run between
/// rounds too, and cost a round no budget.
fn runs_outside_rounds(task: &Task) -> bool {
    matches!(task, Task::Call { query: Some(_), .. } | Task::Inspect { .. })
}

pub(super) fn executor_thread(weak: Weak<Inner>) {
    loop {
        // Hold the replica strongly only while looking for or running a job.
        let Some(inner) = weak.upgrade() else { return };
        let job = {
            let mut jobs = inner.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if jobs.is_empty() {
                jobs = inner
                    .jobs_ready
                    .wait_timeout(jobs, Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            jobs.pop_front()
        };
        if let Some(job) = job {
            run_job(&inner, job);
            inner.job_finished();
        }
    }
}

/// What an executed task hands back to the scheduler.
pub(super) struct Finished {
    pub(super) instance: Option<Box<CanisterInstance>>,
    pub(super) apply: Apply,
}

/// State changes an execution's outcome makes, applied under the lock.
pub(super) type Apply = Box<dyn FnOnce(&Arc<Inner>, &mut State) + Send>;

impl Finished {
    /// Nothing ran: the instance goes back as it was.
    pub(super) fn unchanged(instance: Option<Box<CanisterInstance>>) -> Self {
        Self { instance, apply: Box::new(|_, _| {}) }
    }
}

pub(super) fn run_job(inner: &Arc<Inner>, job: Job) {
    let Job { canister, instance, task } = job;
    if let Task::Management { caller, caller_version, method, arg, cycles, reply } = task {
        let replica = Replica { inner: inner.clone() };
        let caller = management::Caller { id: caller, version: caller_version };
        let callback = match &reply {
            ReplyTo::Callback(cb) => Some(*cb),
            ReplyTo::Ingress(_) => None,
        };
        // A bug in a management method must not leave its caller waiting:
        // the call is rejected (an ingress caller sees its reply dropped).
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| management::dispatch(&replica, caller, &method, arg, cycles, reply)));
        if let Err(panic) = ran {
            let why = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
            tracing::error!(%method, "the management canister failed: {why}");
            if let Some(cb) = callback {
                let reject = Reject::system(ErrorCode::CanisterRejectedMessage, format!("ww's management canister failed on {method}: {why}"));
                deliver_response(inner, cb, Err(reject));
            }
        }
        return;
    }
    if let Task::ManagementResponse { callback, result } = task {
        enqueue_management_response(inner, callback, result);
        return;
    }
    use std::sync::atomic::Ordering::SeqCst;
    let now = inner.in_flight.fetch_add(1, SeqCst) + 1;
    inner.max_in_flight.fetch_max(now, SeqCst);
    if !inner.executing.lock().unwrap_or_else(|e| e.into_inner()).insert(canister) {
        inner.overlaps.fetch_add(1, SeqCst);
    }
    let mut finished = match task {
        Task::Inspect { method, arg, caller, caller_info, reply } => run_inspect(inner, canister, instance, method, arg, caller, caller_info, reply),
        Task::Install(install) => lifecycle::run_install(inner, canister, instance, install),
        Task::Uninstall { origin, done } => lifecycle::run_uninstall(canister, instance, origin, done),
        Task::Snapshot(job) => super::snapshots::run(inner, canister, instance, job),
        task => run_message(inner, canister, instance, task),
    };
    let logs = finished.instance.as_mut().map(|i| i.take_logs()).unwrap_or_default();
    inner.executing.lock().unwrap_or_else(|e| e.into_inner()).remove(&canister);
    inner.in_flight.fetch_sub(1, SeqCst);
    let mut st = inner.lock();
    (finished.apply)(inner, &mut st);
    let mut low_memory = false;
    if let Some(slot) = st.canisters.get_mut(&canister) {
        if !logs.is_empty() {
            slot.log.append(logs);
        }
        if let Some(i) = finished.instance {
            slot.heap_size = i.memory_size() as u64;
            slot.stable_size = i.stable_size_bytes();
            slot.instance = Some(i);
        }
        slot.busy = false;
        // `canister_on_low_wasm_memory` runs once each time the heap comes
        // within the threshold of the limit (re-armed when it leaves).
        let (limit, threshold) = (slot.settings.wasm_memory_limit, slot.settings.wasm_memory_threshold);
        let low = threshold > 0 && limit > 0 && slot.heap_size.saturating_add(threshold) > limit;
        if !low {
            slot.low_memory_fired = false;
        } else if slot.low_memory_hook && !slot.low_memory_fired && slot.status == Status::Running {
            slot.low_memory_fired = true;
            low_memory = true;
        }
    }
    if low_memory {
        inner.enqueue(&mut st, canister, Task::System(SystemTask::LowMemory));
    }
    inner.schedule(&mut st, canister);
}

pub(super) fn outstanding_counter(inner: &Arc<Inner>, canister: Principal) -> exec::OutstandingCalls {
    let weak = Arc::downgrade(inner);
    Arc::new(move |callee: &Principal| {
        weak.upgrade()
            .map_or(0, |i| i.lock().outstanding.get(&(canister, *callee)).copied().unwrap_or(0))
    })
}

/// Runs a call, response or timer on the canister.
pub(super) fn run_message(inner: &Arc<Inner>, canister: Principal, instance: Option<Box<CanisterInstance>>, task: Task) -> Finished {
    let limits = &inner.config.limits;
    let wasm64 = instance.as_ref().is_some_and(|i| i.wasm64());
    // Gather what the execution needs under the lock.
    let (info, timer, time, heap_limit, memory_allocation, prep, payment, cut) = {
        let mut st = inner.lock();
        // A test's injected fault may reject a request from another
        // canister before it runs.
        if st.scripted.has_rejects()
            && let Task::Call { context, caller, method, query: None, .. } = &task
            && super::scripted::from_canister(&st, *context)
            && let Some(reject) = st.scripted.take_reject(caller, &canister, method)
        {
            let context = *context;
            return Finished {
                instance,
                apply: Box::new(move |inner, st| {
                    if let Some((to, task)) = st.respond(context, Err(reject)) {
                        inner.enqueue(st, to, task);
                    }
                    st.maybe_close(context);
                }),
            };
        }
        // The simulator, or a test's injected fault, may cut this
        // execution's instruction limit or fail its calls.
        let replicated = !matches!(task, Task::Call { query: Some(_), .. });
        let cut = match st.sim.as_mut().and_then(|s| s.cut.take()) {
            Some(cut) => Some(cut),
            None if replicated => {
                let method = match &task {
                    Task::Call { method, .. } => Some(method.as_str()),
                    _ => None,
                };
                st.scripted.take_execution(&canister, method)
            }
            None => None,
        };
        let now = st.now();
        // A query call sees the last round's time (rounds mode).
        let time = if matches!(task, Task::Call { query: Some(false), .. }) { st.query_time() } else { now };
        // What the execution pays, and whether the canister can (a
        // response first gets back what its bytes did not use).
        let payment = match st.canisters.get_mut(&canister) {
            Some(slot) => {
                slot.settle_resources(now);
                let response_refund = match &task {
                    Task::Response { callback, result, .. } => st.callbacks.get(callback).map(|cb| {
                        let bytes = match result {
                            Ok(reply) => reply.len(),
                            // The message and a byte for the code, as
                            // the IC counts a reject's size.
                            Err(reject) => reject.description().len() + 1,
                        };
                        (cb.reservation, bytes)
                    }),
                    _ => None,
                };
                st.canisters.get_mut(&canister).map(|slot| pay_for(slot, canister, &task, instance.as_deref(), wasm64, response_refund))
            }
            None => None,
        };
        // Every execution in a call context sees its ingress sender info.
        let context = match &task {
            Task::Call { context, .. } => Some(*context),
            Task::Response { callback, .. } => st.callbacks.get(callback).map(|cb| cb.context),
            _ => None,
        };
        let caller_info = context.and_then(|c| st.contexts.get(&c)).and_then(|c| c.caller_info.clone());
        let Some(slot) = st.canisters.get(&canister) else {
            return Finished::unchanged(instance);
        };
        let mut info = slot.info(canister);
        info.caller_info = caller_info;
        let timer = slot.timer;
        let heap_limit = slot.settings.heap_limit();
        let memory_allocation = slot.settings.memory_allocation;
        let prep = match &task {
            Task::Call { context, .. } => {
                let ctx = st.contexts.get(context);
                Prep::Call {
                    context: *context,
                    deadline: ctx.map_or(0, |c| c.deadline),
                    needs_response: ctx.is_some_and(|c| c.needs_response),
                    ingress: ctx.is_some_and(|c| matches!(c.origin, Origin::Ingress(_)) && !c.inspected),
                }
            }
            Task::Response { callback, .. } => match st.callbacks.get(callback) {
                // The caller's context was deleted (uninstall_code), or the
                // canister has no module to run the callback in: the
                // response is dropped (its refund was already credited).
                Some(cb) if cb.orphaned || instance.is_none() => Prep::DropResponse { callback: *callback, callee: cb.callee, context: cb.context },
                Some(cb) => {
                    // A callback runs in its call context: the original
                    // caller, the context's deadline and unaccepted cycles.
                    let ctx = st.contexts.get(&cb.context);
                    Prep::Response {
                        context: cb.context,
                        continuation: cb.continuation,
                        callee: cb.callee,
                        caller: ctx.map_or(Principal::management_canister(), |c| c.caller),
                        deadline: ctx.map_or(0, |c| c.deadline),
                        cycles_available: ctx.filter(|c| c.needs_response).map_or(0, |c| c.cycles),
                        context_instructions: ctx.map_or(0, |c| c.instructions),
                        needs_response: ctx.is_some_and(|c| c.needs_response),
                    }
                }
                None => Prep::Skip,
            },
            Task::System(_) => Prep::System,
            Task::Inspect { .. }
            | Task::Install(_)
            | Task::Uninstall { .. }
            | Task::Snapshot(_)
            | Task::Management { .. }
            | Task::ManagementResponse { .. } => Prep::Skip,
        };
        (info, timer, time, heap_limit, memory_allocation, prep, payment, cut)
    };
    let cut_limit = |limit: u64| cut.map_or(limit, |c| limit.min(c.instructions));
    let fail_calls = cut.is_some_and(|c| c.fail_calls);
    // R2 only where the IC may refuse: a canister without a memory allocation.
    let fail_grow = cut.is_some_and(|c| c.fail_grow) && memory_allocation == 0;
    let cut_cleanup = |limit: u64| cut.filter(|c| c.cleanup_too).map_or(limit, |c| limit.min(c.instructions));
    // A canister that cannot pay: its call is refused, its system task
    // skipped (a timer stays due, a heartbeat comes next round).
    let (payment, prepaid) = match payment {
        Some(Ok(p)) => p,
        Some(Err(refusal)) => {
            let system = if let Task::System(t) = &task { Some(*t) } else { None };
            return cannot_pay(instance, canister, prep, system, refusal);
        }
        None => (Payment::Nothing, 0),
    };
    let mut info = info;
    info.balance = info.balance.saturating_sub(prepaid);
    info.wasm64 = wasm64;
    if let Prep::DropResponse { callback, callee, context } = prep {
        tracing::debug!(canister = %canister, callback, "dropping a response: its call context was deleted");
        return Finished {
            instance,
            apply: Box::new(move |_, st| {
                // No callback runs: its prepayment goes back whole.
                if let Payment::Reserved { reserved, .. } = payment {
                    st.credit(&canister, reserved);
                }
                st.callback_done(callback, canister, callee, context);
                st.maybe_close(context);
            }),
        };
    }
    let Some(mut instance) = instance else {
        // No module (uninstalled since the task was queued): answer and drop.
        return Finished {
            instance: None,
            apply: Box::new(move |inner, st| {
                if let Prep::Call { context, .. } = prep {
                    let r = Reject::system(
                        ErrorCode::CanisterWasmModuleNotFound,
                        format!("Error from Canister {canister}: Attempted to execute a message, but the canister contains no Wasm module."),
                    );
                    if let Some((to, t)) = st.respond(context, Err(r)) {
                        inner.enqueue(st, to, t);
                    }
                }
            }),
        };
    };
    let outstanding = outstanding_counter(inner, canister);
    match (task, prep) {
        (Task::Call { method, arg, caller, query, cycles, .. }, Prep::Call { context, deadline, needs_response, ingress }) => {
            // A query method runs as a query however it is called (its state
            // changes are discarded); called as an update, it is replicated.
            let kind = instance.methods().get(&method).copied();
            if kind == Some(MethodKind::CompositeQuery) && query != Some(false) {
                // Composite queries run only as non-replicated queries.
                let r = Reject::system(
                    ErrorCode::CompositeQueryCalledInReplicatedMode,
                    format!("Error from Canister {canister}: Composite query cannot be called in replicated mode"),
                );
                return refused(instance, context, r);
            }
            // An ingress update call passes the canister's
            // `canister_inspect_message` first (non-replicated, nothing kept).
            if ingress && query.is_none() && instance.inspects_messages() {
                if let Err(r) = inspect(&mut instance, canister, &method, &arg, caller, time, &info, timer, &outstanding, limits.instructions_per_inspect) {
                    return refused(instance, context, r);
                }
            }
            if kind == Some(MethodKind::CompositeQuery) {
                let graph = super::composite::Graph::new(inner, time);
                let (instance, result) = graph.run(canister, instance, method, arg, caller, 1);
                return Finished {
                    instance: Some(instance),
                    apply: Box::new(move |inner, st| {
                        if let Some((to, task)) = st.respond(context, result) {
                            inner.enqueue(st, to, task);
                        }
                        st.maybe_close(context);
                    }),
                };
            }
            let entry = match (query, kind) {
                (Some(replicated), _) => EntryPoint::Query { method, replicated },
                (None, Some(MethodKind::Query)) => EntryPoint::Query { method, replicated: true },
                (None, _) => EntryPoint::Update(method),
            };
            let limit = cut_limit(if entry.is_query() { limits.instructions_per_query } else { limits.instructions_per_update });
            let bumps_version = entry.is_replicated();
            // Queries see no deadline, however they are called.
            let deadline = if entry.is_query() { 0 } else { deadline };
            let mut info = info;
            if matches!(entry, EntryPoint::Query { replicated: false, .. }) {
                info.data_certificate = super::certified_view::data_certificate(inner, &canister);
            }
            let mut input = MessageInput::new(entry, caller, time, limit);
            input.arg = arg;
            input.deadline = deadline;
            input.needs_response = needs_response;
            input.cycles_available = cycles;
            input.fail_calls = fail_calls;
            input.fail_grow = fail_grow;
            if matches!(input.entry, EntryPoint::Update(_)) {
                input.wasm_memory_limit = heap_limit;
            }
            let outcome = instance.execute(input, info, timer, outstanding);
            finish(instance, canister, context, outcome, bumps_version, payment)
        }
        (
            Task::Response { callback, result, refund },
            Prep::Response { context, continuation, callee, caller, deadline, cycles_available, context_instructions, needs_response },
        ) => {
            let (entry, arg, reject) = match result {
                Ok(bytes) => (EntryPoint::Reply(continuation), bytes, None),
                Err(r) => (EntryPoint::Reject(continuation), Vec::new(), Some((r.code, r.description().to_string()))),
            };
            let mut input = MessageInput::new(entry, caller, time, cut_limit(limits.instructions_per_update));
            input.arg = arg;
            input.reject = reject;
            input.deadline = deadline;
            input.needs_response = needs_response;
            input.cycles_available = cycles_available;
            input.context_instructions = context_instructions;
            input.cycles_refunded = refund;
            input.fail_calls = fail_calls;
            input.fail_grow = fail_grow;
            let outcome = instance.execute(input, info.clone(), timer, outstanding.clone());
            // What a committed cleanup callback left in the global timer.
            let mut cleanup_timer = None;
            // The caller's reject when the cleanup trapped too.
            let mut both_trapped = None;
            if let Outcome::Trapped { code, message, .. } = &outcome {
                // The callback trapped: its cleanup runs, as a separate
                // execution; if it traps too, the reject reports both.
                let mut cleanup = MessageInput::new(EntryPoint::Cleanup(continuation), caller, time, cut_cleanup(limits.instructions_per_update));
                cleanup.deadline = deadline;
                match instance.execute(cleanup, info, timer, outstanding) {
                    Outcome::Trapped { code: cleanup_code, message: cleanup_message, .. } => {
                        both_trapped = Some(cleanup_trap_reject(canister, (*code, message), (cleanup_code, &cleanup_message)));
                    }
                    Outcome::Committed(effects) => cleanup_timer = effects.timer,
                }
            }
            let mut finished = finish_with(instance, canister, context, outcome, true, both_trapped, payment);
            let apply = finished.apply;
            finished.apply = Box::new(move |inner, st| {
                // The call this callback belongs to is no longer outstanding.
                st.callback_done(callback, canister, callee, context);
                if let Some(t) = cleanup_timer
                    && let Some(slot) = st.canisters.get_mut(&canister)
                {
                    slot.timer = t;
                    inner.clock_changed.notify_all();
                }
                apply(inner, st);
            });
            finished
        }
        (Task::System(task), Prep::System) => {
            let entry = match task {
                SystemTask::Timer => EntryPoint::Timer,
                SystemTask::Heartbeat => EntryPoint::Heartbeat,
                SystemTask::LowMemory => EntryPoint::LowMemory,
            };
            let mut input = MessageInput::new(entry, Principal::management_canister(), time, cut_limit(limits.instructions_per_update));
            input.fail_calls = fail_calls;
            input.fail_grow = fail_grow;
            let outcome = instance.execute(input, info, timer, outstanding);
            let context = {
                let mut st = inner.lock();
                if task == SystemTask::Heartbeat
                    && let Some(slot) = st.canisters.get_mut(&canister)
                {
                    slot.heartbeat_queued = false;
                }
                st.new_context(canister, Principal::management_canister(), Origin::System, 0)
            };
            finish(instance, canister, context, outcome, true, payment)
        }
        (Task::Response { callback, .. }, _) => {
            // The callback is gone (its caller's context was deleted): drop.
            tracing::debug!(canister = %canister, callback, "dropping a response without a callback");
            Finished::unchanged(Some(instance))
        }
        _ => Finished::unchanged(Some(instance)),
    }
}

/// What an execution of `task` on `slot` pays, and what it prepays (taken
/// from the balance it sees); the reject when the canister cannot pay. A
/// response gets back the part of its reservation its bytes did not use
/// here, before its callback runs.
fn pay_for(
    slot: &mut super::state::Slot,
    canister: Principal,
    task: &Task,
    instance: Option<&CanisterInstance>,
    wasm64: bool,
    response: Option<(super::cycles::Reservation, usize)>,
) -> Result<(Payment, u128), Reject> {
    let fees = slot.fees;
    let prepaid = |slot: &super::state::Slot, payer: &Principal| {
        let prepay = fees.execution_prepay(wasm64);
        if slot.can_pay(prepay) { Ok((Payment::Prepaid { fees, wasm64 }, prepay)) } else { Err(slot.out_of_cycles(&canister, payer, prepay)) }
    };
    match task {
        Task::Call { method, query, caller, .. } => {
            let kind = instance.and_then(|i| i.methods().get(method).copied());
            let replicated = match query {
                Some(replicated) => *replicated,
                None => kind != Some(MethodKind::CompositeQuery),
            };
            if replicated {
                prepaid(slot, caller)
            } else if slot.balance < slot.freezing_limit() {
                Err(Reject::system(
                    ErrorCode::CanisterOutOfCycles,
                    format!("Canister {canister} is unable to process query calls because it's frozen. Please top up the canister with cycles and try again."),
                ))
            } else {
                Ok((Payment::Nothing, 0))
            }
        }
        Task::Response { .. } => {
            let Some((reservation, bytes)) = response else { return Ok((Payment::Nothing, 0)) };
            slot.balance = slot.balance.saturating_add(reservation.transmission.min(fees.response_refund(bytes)));
            Ok((Payment::Reserved { fees, wasm64, reserved: reservation.execution }, 0))
        }
        Task::System(_) => prepaid(slot, &canister),
        _ => Ok((Payment::Nothing, 0)),
    }
}

/// The canister cannot pay for the execution: a call is answered with
/// `refusal`; a timer stays due, a heartbeat waits for the next round.
fn cannot_pay(instance: Option<Box<CanisterInstance>>, canister: Principal, prep: Prep, system: Option<SystemTask>, refusal: Reject) -> Finished {
    tracing::debug!(canister = %canister, "cannot pay for an execution: {}", refusal.message);
    Finished {
        instance,
        apply: Box::new(move |inner, st| match prep {
            Prep::Call { context, .. } => {
                if let Some((to, task)) = st.respond(context, Err(refusal)) {
                    inner.enqueue(st, to, task);
                }
                st.maybe_close(context);
            }
            _ => {
                let now = st.now();
                if let Some(slot) = st.canisters.get_mut(&canister) {
                    match system {
                        Some(SystemTask::Heartbeat) => slot.heartbeat_queued = false,
                        Some(SystemTask::Timer) if slot.timer == 0 => slot.timer = now,
                        _ => {}
                    }
                }
            }
        }),
    }
}

/// The call is answered with `r` without running (nothing changes).
fn refused(instance: Box<CanisterInstance>, context: u64, r: Reject) -> Finished {
    Finished {
        instance: Some(instance),
        apply: Box::new(move |inner, st| {
            if let Some((to, task)) = st.respond(context, Err(r)) {
                inner.enqueue(st, to, task);
            }
            st.maybe_close(context);
        }),
    }
}

enum Prep {
    Call { context: u64, deadline: u64, needs_response: bool, ingress: bool },
    Response {
        context: u64,
        continuation: exec::Continuation,
        callee: Principal,
        caller: Principal,
        deadline: u64,
        cycles_available: u64,
        context_instructions: u64,
        needs_response: bool,
    },
    DropResponse { callback: u64, callee: Principal, context: u64 },
    System,
    Skip,
}

/// `bumps_version`: a committed execution of this kind increments the
/// canister version (updates, replicated queries, callbacks, timers).
pub(super) fn finish(instance: Box<CanisterInstance>, canister: Principal, context: u64, outcome: Outcome, bumps_version: bool, payment: Payment) -> Finished {
    finish_with(instance, canister, context, outcome, bumps_version, None, payment)
}

/// [`finish`], with the reject a trap answers the call with given
/// (`trap_reject`'s when `None`).
fn finish_with(
    instance: Box<CanisterInstance>,
    canister: Principal,
    context: u64,
    outcome: Outcome,
    bumps_version: bool,
    trap: Option<Reject>,
    payment: Payment,
) -> Finished {
    Finished {
        instance: Some(instance),
        apply: Box::new(move |inner, st| {
            let instructions = match &outcome {
                Outcome::Committed(effects) => effects.instructions,
                Outcome::Trapped { instructions, .. } => *instructions,
            };
            if let Some(ctx) = st.contexts.get_mut(&context) {
                ctx.instructions = ctx.instructions.saturating_add(instructions);
            }
            if let Some(slot) = st.canisters.get_mut(&canister) {
                payment.settle(slot, instructions);
            }
            apply_outcome(inner, st, canister, context, outcome, bumps_version, trap)
        }),
    }
}

/// Runs `canister_inspect_message` for an ingress update (non-replicated,
/// nothing kept); the reject when the canister does not accept it.
#[allow(clippy::too_many_arguments)]
fn inspect(
    instance: &mut CanisterInstance,
    canister: Principal,
    method: &str,
    arg: &[u8],
    caller: Principal,
    time: u64,
    info: &exec::CanisterInfo,
    timer: u64,
    outstanding: &exec::OutstandingCalls,
    limit: u64,
) -> Result<(), Reject> {
    let mut input = MessageInput::new(EntryPoint::Inspect { method: method.to_string() }, caller, time, limit);
    input.arg = arg.to_vec();
    let why = match instance.execute(input, info.clone(), timer, outstanding.clone()) {
        Outcome::Committed(effects) if effects.accepted => return Ok(()),
        Outcome::Committed(_) => "Canister rejected the message".to_string(),
        Outcome::Trapped { message, .. } => format!("Canister rejected the message: canister_inspect_message trapped: {message}"),
    };
    Err(Reject::system(ErrorCode::CanisterRejectedMessage, format!("Error from Canister {canister}: {why}")))
}

/// An inspection at submission ([`Task::Inspect`]): answers `reply`.
#[allow(clippy::too_many_arguments)]
fn run_inspect(
    inner: &Arc<Inner>,
    canister: Principal,
    instance: Option<Box<CanisterInstance>>,
    method: String,
    arg: Vec<u8>,
    caller: Principal,
    caller_info: Option<Arc<exec::CallerInfo>>,
    reply: tokio::sync::oneshot::Sender<Result<(), Reject>>,
) -> Finished {
    let Some(mut instance) = instance else {
        let _ = reply.send(Ok(()));
        return Finished::unchanged(None);
    };
    if !instance.inspects_messages() {
        let _ = reply.send(Ok(()));
        return Finished::unchanged(Some(instance));
    }
    let (info, timer, time) = {
        let mut st = inner.lock();
        // Non-replicated: the last round's time (rounds mode).
        let time = st.query_time();
        match st.canisters.get(&canister) {
            Some(slot) => (exec::CanisterInfo { caller_info, ..slot.info(canister) }, slot.timer, time),
            None => {
                let _ = reply.send(Ok(()));
                return Finished::unchanged(Some(instance));
            }
        }
    };
    let outstanding = outstanding_counter(inner, canister);
    let verdict = inspect(&mut instance, canister, &method, &arg, caller, time, &info, timer, &outstanding, inner.config.limits.instructions_per_inspect);
    let _ = reply.send(verdict);
    Finished::unchanged(Some(instance))
}

/// Applies a finished execution's outcome under the state lock.
fn apply_outcome(inner: &Arc<Inner>, st: &mut State, canister: Principal, context: u64, outcome: Outcome, bumps_version: bool, trap: Option<Reject>) {
    if let Some(sim) = st.sim.as_mut() {
        let (committed, trap, accepted) = match &outcome {
            Outcome::Committed(effects) => (true, None, u128::from(effects.cycles_accepted)),
            Outcome::Trapped { code, message, .. } => (false, Some(format!("{code}: {message}")), 0),
        };
        sim.events.push(super::sim::SimEvent::Executed { canister, context, committed, trap, accepted });
    }
    match outcome {
            Outcome::Committed(effects) => {
                if let Some(slot) = st.canisters.get_mut(&canister) {
                    if bumps_version {
                        slot.version += 1;
                    }
                    if let Some(t) = effects.timer {
                        slot.timer = t;
                        inner.clock_changed.notify_all();
                    }
                    slot.balance = slot.balance.saturating_add(u128::from(effects.cycles_accepted));
                    let attached: u128 = effects.calls.iter().map(|c| u128::from(c.cycles)).sum();
                    slot.balance = slot.balance.saturating_sub(attached).saturating_sub(effects.cycles_burned);
                    if let Some(data) = effects.certified_data {
                        slot.certified_data = Arc::new(data);
                    }
                }
                // What the execution accepted is no longer refundable.
                if let Some(ctx) = st.contexts.get_mut(&context) {
                    ctx.cycles = ctx.cycles.saturating_sub(effects.cycles_accepted);
                }
                for call in effects.calls {
                    send_call(inner, st, canister, context, call);
                }
                let mut deliveries = Vec::new();
                if let Some(response) = effects.response {
                    let result = match response {
                        Response::Reply(bytes) => Ok(bytes),
                        Response::Reject(message) => Err(Reject::canister(message)),
                    };
                    deliveries.extend(st.respond(context, result));
                }
                deliveries.extend(starve(st, context, || {
                    Reject::system(
                        ErrorCode::CanisterDidNotReply,
                        format!("Error from Canister {canister}: Canister did not reply to the call"),
                    )
                }));
                for (to, task) in deliveries {
                    inner.enqueue(st, to, task);
                }
            }
            Outcome::Trapped { code, message, .. } => {
                tracing::debug!(canister = %canister, "execution trapped: {code}: {message}");
                let delivery = starve(st, context, || trap.unwrap_or_else(|| trap_reject(canister, code, &message)));
                if let Some((to, task)) = delivery {
                    inner.enqueue(st, to, task);
                }
            }
    }
}

/// The reject a caller sees when `canister`'s execution trapped.
pub(super) fn trap_reject(canister: Principal, code: ErrorCode, message: &str) -> Reject {
    Reject::system(code, format!("Error from Canister {canister}: {}", trap_description(code, message)))
}

/// The reject a caller sees when a callback of `canister` trapped and then
/// its cleanup callback trapped too: both, as the IC words it, with the
/// callback's error code.
pub(super) fn cleanup_trap_reject(canister: Principal, callback: (ErrorCode, &str), cleanup: (ErrorCode, &str)) -> Reject {
    Reject::system(
        callback.0,
        format!(
            "Error from Canister {canister}: {}\n\ncall_on_cleanup also failed:\n\n{}",
            trap_description(callback.0, callback.1),
            trap_description(cleanup.0, cleanup.1)
        ),
    )
}

/// What a trap was, as the IC describes it after "Error from Canister <id>: ".
fn trap_description(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::CanisterCalledTrap => format!("Canister called `ic0.trap` with message: '{message}'"),
        ErrorCode::CanisterInstructionLimitExceeded | ErrorCode::CanisterContractViolation => message.to_string(),
        _ => format!("Canister trapped: {message}"),
    }
}

/// If nothing can answer context `id` anymore, answers it with `reject()`.
pub(super) fn starve(st: &mut State, id: u64, reject: impl FnOnce() -> Reject) -> Option<(Principal, Task)> {
    let ctx = st.contexts.get(&id)?;
    if ctx.needs_response && ctx.outstanding == 0 {
        return st.respond(id, Err(reject()));
    }
    st.maybe_close(id);
    None
}

/// Delivers a committed outgoing call.
pub(super) fn send_call(inner: &Arc<Inner>, st: &mut State, caller: Principal, context: u64, call: OutgoingCall) {
    let now = st.now();
    let deadline = call.timeout_seconds.map(|t| now.saturating_add(u64::from(t) * 1_000_000_000));
    let callback = st.next_callback;
    st.next_callback += 1;
    st.callbacks.insert(
        callback,
        Callback {
            caller,
            context,
            continuation: call.continuation,
            callee: call.callee,
            callee_context: None,
            cycles: call.cycles,
            management_accepts: call.callee == Principal::management_canister() && management::accepts_cycles(&call.method),
            orphaned: false,
            reservation: call.reservation,
        },
    );
    // The call's fee and the response's reservation (`call_perform`
    // checked they fit above the freezing limit).
    if let Some(slot) = st.canisters.get_mut(&caller) {
        slot.charge(call.fee + call.reservation.total());
    }
    if let Some(sim) = st.sim.as_mut() {
        sim.events.push(super::sim::SimEvent::CallSent {
            callback,
            caller,
            callee: call.callee,
            method: call.method.clone(),
            bounded: deadline.is_some(),
            cycles: u128::from(call.cycles),
        });
    }
    *st.outstanding.entry((caller, call.callee)).or_default() += 1;
    if let Some(c) = st.contexts.get_mut(&context) {
        c.outstanding += 1;
    }
    if let Some(d) = deadline {
        st.deadlines.insert((d, callback));
        inner.clock_changed.notify_all();
    }
    if call.callee == Principal::management_canister() {
        let task = Task::Management {
            caller,
            caller_version: Some(call.caller_version),
            method: call.method,
            arg: call.arg,
            cycles: call.cycles,
            reply: ReplyTo::Callback(callback),
        };
        // Rounds mode: the management canister takes it in the next round.
        if st.manual_time.is_some() {
            st.rounds.requests.push(task);
        } else {
            inner.push_job(Job { canister: call.callee, instance: None, task });
        }
        return;
    }
    if !st.canisters.contains_key(&call.callee)
        && let Some(router) = inner.remote.get()
        && router.routes(&call.callee)
    {
        router.send(super::remote::RemoteRequest {
            callback,
            caller,
            callee: call.callee,
            method: call.method,
            arg: call.arg,
            cycles: call.cycles,
            deadline: deadline.unwrap_or(0),
        });
        return;
    }
    if let Err(reject) = st.check_callable(&call.callee, &call.method, false) {
        let reject = if reject.error_code == Some(ErrorCode::CanisterNotFound) {
            // Saying why when a node out of reach owns the id.
            Reject { code: RejectCode::DestinationInvalid, ..super::remote::explain_not_found(inner.remote.get(), &call.callee, reject) }
        } else {
            reject
        };
        st.credit(&caller, u128::from(call.cycles));
        inner.enqueue(st, caller, Task::Response { callback, result: Err(reject), refund: call.cycles });
        return;
    }
    let callee_context = st.new_context(call.callee, caller, Origin::Canister { callback }, deadline.unwrap_or(0));
    if let Some(c) = st.contexts.get_mut(&callee_context) {
        c.cycles = call.cycles;
    }
    if let Some(cb) = st.callbacks.get_mut(&callback) {
        cb.callee_context = Some(callee_context);
    }
    inner.enqueue(
        st,
        call.callee,
        Task::Call {
            context: callee_context,
            method: call.method,
            arg: call.arg,
            caller,
            query: None,
            cycles: call.cycles,
        },
    );
}

/// Sends a management canister response to a canister's callback. Safe to
/// call with the state lock held (install and stop complete under it): the
/// delivery runs as a job of its own.
pub(super) fn deliver_response(inner: &Arc<Inner>, callback: u64, result: CallResult) {
    inner.push_job(Job {
        canister: Principal::management_canister(),
        instance: None,
        task: Task::ManagementResponse { callback, result },
    });
}

/// Enqueues a management canister response for the calling canister (in
/// rounds mode, at the start of the next round).
pub(super) fn enqueue_management_response(inner: &Arc<Inner>, callback: u64, result: CallResult) {
    let mut st = inner.lock();
    if st.manual_time.is_some() {
        st.rounds.responses.push((callback, result));
        return;
    }
    deliver_management_response(inner, &mut st, callback, result);
}

/// The management canister keeps `amount` of the cycles a call attached
/// (a fee): they are not refunded with its response.
pub(super) fn keep_attached_cycles(inner: &Inner, callback: u64, amount: u64) {
    if let Some(cb) = inner.lock().callbacks.get_mut(&callback) {
        cb.cycles = cb.cycles.saturating_sub(amount);
    }
}

/// Hands a management canister response to the calling canister's queue.
pub(super) fn deliver_management_response(inner: &Inner, st: &mut State, callback: u64, result: CallResult) {
    let Some(cb) = st.callbacks.get(&callback) else { return };
    let caller = cb.caller;
    let refund = if result.is_ok() && cb.management_accepts { 0 } else { cb.cycles };
    st.credit(&caller, u128::from(refund));
    inner.enqueue(st, caller, Task::Response { callback, result, refund });
}
