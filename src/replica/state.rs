//! The replica's shared state, under its one lock: the canister slots
//! (controllers, status, module, input queue, instance), call contexts and
//! the callbacks of outgoing calls, the tasks a canister's queue holds, the
//! name registry and the clock.
//!
//! Invariants kept here:
//! - a call context is answered at most once ([`State::respond`]), and is
//!   removed once it needs no response and nothing is outstanding
//!   ([`State::maybe_close`]);
//! - a stopping canister becomes stopped exactly when its last open call
//!   context closes ([`State::maybe_stopped`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use candid::Principal;
use tokio::sync::oneshot;
use super::exec::{CallerInfo, CanisterInfo, CanisterInstance, Code, Continuation, MethodKind};
use super::{CallResult, ErrorCode, InstallMode, InstallSource, Reject, Status, chunks, history, wall_clock_ns};

/// Called once with the outcome of a queued lifecycle operation (install,
/// uninstall, stop).
pub(super) struct Done {
    run: Box<dyn FnOnce(Result<(), Reject>) + Send>,
    /// The canister callback the outcome answers (a canister's call to the
    /// management canister), which is all a state directory keeps of it;
    /// `None` for a waiter outside the replica.
    pub(super) answers: Option<u64>,
}

impl Done {
    /// A waiter outside the replica (gone after a restart).
    pub(super) fn new(run: Box<dyn FnOnce(Result<(), Reject>) + Send>) -> Self {
        Self { run, answers: None }
    }

    /// An outcome that answers canister callback `callback`.
    pub(super) fn answering(callback: u64, run: Box<dyn FnOnce(Result<(), Reject>) + Send>) -> Self {
        Self { run, answers: Some(callback) }
    }

    pub(super) fn call(self, result: Result<(), Reject>) {
        (self.run)(result)
    }
}

/// Where a call context's response goes.
pub(super) enum Origin {
    Ingress(oneshot::Sender<CallResult>),
    Canister { callback: u64 },
    /// A call a canister on another node made: answered through the
    /// router, with the unaccepted cycles (see [`super::remote`]).
    Remote(super::remote::RemoteOrigin),
    /// A bounded-wait call whose deadline passed: the caller got SYS_UNKNOWN.
    /// The callee still owes a response (it may reply, and its execution
    /// commits as usual); the response is dropped on its way back.
    Expired,
    /// Timers and system tasks: no response expected.
    System,
}

pub(super) struct CallContext {
    pub(super) canister: Principal,
    /// Who made the call: `msg_caller` in every execution of the context
    /// (the method and its callbacks).
    pub(super) caller: Principal,
    pub(super) origin: Origin,
    pub(super) needs_response: bool,
    /// Calls made from this context whose callbacks have not run yet.
    pub(super) outstanding: u32,
    /// The bounded-wait deadline of the call (0: unbounded, ingress, system).
    pub(super) deadline: u64,
    /// Instructions its executions have taken so far.
    pub(super) instructions: u64,
    /// Cycles attached to the call this context answers and not accepted
    /// yet: refunded to the caller with the response.
    pub(super) cycles: u64,
    /// An ingress message whose `canister_inspect_message` already accepted
    /// it at submission (rounds mode): not inspected again.
    pub(super) inspected: bool,
    /// The sender info of the ingress message that opened the context
    /// (every execution in it sees it); `None` for everything else.
    pub(super) caller_info: Option<std::sync::Arc<CallerInfo>>,
}

pub(super) struct Callback {
    pub(super) caller: Principal,
    pub(super) context: u64,
    pub(super) continuation: Continuation,
    pub(super) callee: Principal,
    /// The callee's context answering this call.
    pub(super) callee_context: Option<u64>,
    /// Cycles attached to the call (taken from the caller's balance).
    pub(super) cycles: u64,
    /// The callee keeps the attached cycles when it replies (the management
    /// canister's `deposit_cycles`); otherwise a management response
    /// refunds them all.
    pub(super) management_accepts: bool,
    /// The caller's call context was deleted (`uninstall_code`): the
    /// response runs no callback; it only refunds cycles.
    pub(super) orphaned: bool,
    /// What the caller set aside for the response (refunded in part when
    /// it arrives, the rest after its callback).
    pub(super) reservation: super::cycles::Reservation,
}

pub(super) enum Task {
    Call {
        context: u64,
        method: String,
        arg: Vec<u8>,
        caller: Principal,
        query: Option<bool>,
        cycles: u64,
    },
    Response {
        callback: u64,
        result: CallResult,
        /// Cycles returned to the caller with this response (already
        /// credited to its balance; the callback reads them through
        /// `msg_cycles_refunded`).
        refund: u64,
    },
    /// A system task: the global timer or the heartbeat.
    System(SystemTask),
    /// `canister_inspect_message` for an ingress update at submission
    /// (rounds mode); scheduled like a query, nothing kept.
    Inspect {
        method: String,
        arg: Vec<u8>,
        caller: Principal,
        caller_info: Option<std::sync::Arc<CallerInfo>>,
        reply: oneshot::Sender<Result<(), Reject>>,
    },
    Install(InstallJob),
    /// Taking or loading a snapshot (queued like an install).
    Snapshot(super::snapshots::SnapshotJob),
    /// `uninstall_code` (queued like an install, so it never interrupts an
    /// execution).
    Uninstall {
        origin: history::ChangeOrigin,
        done: Done,
    },
    /// A call to the management canister (runs on an executor thread,
    /// outside the state lock).
    Management {
        caller: Principal,
        /// The calling canister's version when it made the call (checked
        /// against `sender_canister_version`); `None` for ingress.
        caller_version: Option<u64>,
        method: String,
        arg: Vec<u8>,
        cycles: u64,
        reply: ReplyTo,
    },
    /// A management canister response on its way to a canister's callback
    /// (a job of its own: the response may be produced under the state lock).
    ManagementResponse {
        callback: u64,
        result: CallResult,
    },
}

/// Where a management canister response goes.
pub(crate) enum ReplyTo {
    Ingress(oneshot::Sender<CallResult>),
    Callback(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum SystemTask {
    /// `canister_global_timer`: the timer came due.
    Timer,
    /// `canister_heartbeat`: once per round while the canister runs.
    Heartbeat,
    /// `canister_on_low_wasm_memory`: once each time the heap comes within
    /// `wasm_memory_threshold` of `wasm_memory_limit`.
    LowMemory,
}

/// A module as given to install it: its SHA-256 (the IC's `module_hash`)
/// and its bytes (kept for snapshots and the state directory).
#[derive(Clone)]
pub(crate) struct ModuleSource {
    pub(crate) hash: [u8; 32],
    pub(crate) bytes: std::sync::Arc<[u8]>,
}

pub(super) struct InstallJob {
    pub(super) mode: InstallMode,
    pub(super) code: Code,
    pub(super) module: ModuleSource,
    pub(super) arg: Vec<u8>,
    pub(super) caller: Principal,
    pub(super) source: InstallSource,
    /// An upgrade without running the old module's pre_upgrade.
    pub(super) skip_pre_upgrade: bool,
    /// An upgrade that keeps the heap (`wasm_memory_persistence = keep`).
    pub(super) keep_main_memory: Option<bool>,
    /// Who asked, for the canister's history.
    pub(super) origin: history::ChangeOrigin,
    pub(super) done: Done,
}

pub(super) struct Slot {
    pub(super) controllers: Vec<Principal>,
    pub(super) status: Status,
    /// Pending `stop_canister` calls: (replica time they time out, reply).
    pub(super) stop_waiters: Vec<(u64, Done)>,
    pub(super) version: u64,
    pub(super) balance: u128,
    /// Replica time up to which memory and compute have been charged.
    pub(super) charged_until: u64,
    /// What its subnet charges (set at creation from the subnet's range).
    pub(super) fees: super::cycles::Fees,
    pub(super) module_hash: Option<[u8; 32]>,
    /// The installed module's bytes, as given (`None` when empty).
    pub(super) module: Option<std::sync::Arc<[u8]>>,
    pub(super) methods: HashMap<String, MethodKind>,
    /// `None` while executing, or when empty (no module).
    pub(super) instance: Option<Box<CanisterInstance>>,
    pub(super) busy: bool,
    pub(super) queue: VecDeque<Task>,
    pub(super) timer: u64,
    /// The module exports `canister_heartbeat`; one is queued now.
    pub(super) heartbeat: bool,
    pub(super) heartbeat_queued: bool,
    /// The module exports `canister_on_low_wasm_memory`; it has run for the
    /// current low-memory episode.
    pub(super) low_memory_hook: bool,
    pub(super) low_memory_fired: bool,
    /// Open call contexts of this canister (for stopping).
    pub(super) open_contexts: u32,
    /// Heap and stable memory after the last execution, bytes.
    pub(super) heap_size: u64,
    pub(super) stable_size: u64,
    /// The Wasm chunk store (`upload_chunk`, `install_chunked_code`).
    pub(super) chunk_store: chunks::ChunkStore,
    /// Successful code deployments (see [`history`]).
    pub(super) history: history::CanisterHistory,
    /// Settings besides the controllers.
    pub(super) settings: super::settings::Settings,
    /// What `ic0.certified_data_set` last committed.
    pub(super) certified_data: std::sync::Arc<Vec<u8>>,
    /// `debug_print` and trap lines (`fetch_canister_logs`).
    pub(super) log: super::logs::CanisterLog,
    /// The subnet whose id range holds the canister (`ic0.subnet_self`).
    pub(super) subnet: Principal,
    /// Its snapshots, oldest first, and the number the next one gets.
    pub(super) snapshots: Vec<super::snapshots::CanisterSnapshot>,
    pub(super) next_snapshot: u64,
}

impl Slot {
    /// Everything the canister's memory counts for storage (heap, stable
    /// memory, chunk store, snapshots, the module).
    pub(super) fn memory_bytes(&self) -> u64 {
        self.heap_size
            + self.stable_size
            + self.chunk_store.size()
            + self.snapshots.iter().map(super::snapshots::CanisterSnapshot::size).sum::<u64>()
            + self.module.as_ref().map_or(0, |m| m.len() as u64)
    }

    /// The memory it pays for: its usage or its allocation, the larger.
    fn charged_memory(&self) -> u64 {
        self.memory_bytes().max(self.settings.memory_allocation)
    }

    /// `idle_cycles_burned_per_day`.
    pub(super) fn idle_burn_per_day(&self) -> u128 {
        self.fees.idle_burn_per_day(self.charged_memory(), self.settings.compute_allocation)
    }

    /// The balance it may not spend below.
    pub(super) fn freezing_limit(&self) -> u128 {
        self.fees.freezing_limit(self.charged_memory(), self.settings.compute_allocation, self.settings.freezing_threshold)
    }

    /// What it may spend.
    pub(super) fn liquid_balance(&self) -> u128 {
        self.balance.saturating_sub(self.freezing_limit())
    }

    /// Whether `cost` fits above the freezing limit.
    pub(super) fn can_pay(&self, cost: u128) -> bool {
        self.liquid_balance() >= cost && self.balance >= cost
    }

    /// Takes `amount` (down to 0 at most).
    pub(super) fn charge(&mut self, amount: u128) {
        self.balance = self.balance.saturating_sub(amount);
    }

    /// Charges memory and compute up to `now`, once at least
    /// [`super::cycles::RESOURCE_CHARGE_PERIOD_NS`] have passed since the
    /// last charge.
    pub(super) fn settle_resources(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.charged_until);
        if elapsed < super::cycles::RESOURCE_CHARGE_PERIOD_NS {
            return;
        }
        let cost = self.fees.resource_charge(self.charged_memory(), self.settings.compute_allocation, elapsed);
        self.charge(cost);
        self.charged_until = now;
    }

    /// The out-of-cycles reject for a message needing `cost`, as the IC
    /// words it (the top-up figure only for a controller `sender`).
    pub(super) fn out_of_cycles(&self, id: &Principal, sender: &Principal, cost: u128) -> super::Reject {
        let message = if self.controllers.contains(sender) {
            let needed = super::cycles::top_up_needed(self.balance, self.freezing_limit(), cost);
            format!("Canister {id} is out of cycles: please top up the canister with at least {needed} additional cycles")
        } else {
            format!("Canister {id} is out of cycles")
        };
        super::Reject::system(super::ErrorCode::CanisterOutOfCycles, message)
    }

    pub(super) fn info(&self, id: Principal) -> CanisterInfo {
        CanisterInfo {
            id,
            controllers: self.controllers.clone(),
            status: self.status.code(),
            version: self.version,
            balance: self.balance,
            freezing_limit: self.freezing_limit(),
            fees: self.fees,
            wasm64: false,
            env_vars: self.settings.env_vars(),
            certified_data: self.certified_data.clone(),
            subnet: self.subnet,
            caller_info: None,
            data_certificate: None,
        }
    }
}

pub(super) struct State {
    pub(super) canisters: BTreeMap<Principal, Slot>,
    /// The canister id ranges (one per subnet), with their next free index.
    pub(super) ranges: Vec<IdRange>,
    pub(super) contexts: HashMap<u64, CallContext>,
    pub(super) next_context: u64,
    pub(super) callbacks: HashMap<u64, Callback>,
    pub(super) next_callback: u64,
    /// Outstanding requests per (caller, callee).
    pub(super) outstanding: HashMap<(Principal, Principal), u32>,
    /// Bounded-wait deadlines: (deadline, callback).
    pub(super) deadlines: BTreeSet<(u64, u64)>,
    pub(super) names: BTreeMap<String, Principal>,
    /// Ids of deleted canisters (never reused).
    pub(super) deleted: BTreeSet<Principal>,
    /// Time offset added to the wall clock (tests advance it).
    pub(super) time_offset: u64,
    pub(super) last_time: u64,
    pub(super) rng: rand::rngs::StdRng,
    /// Rounds mode only (see [`super::Clock::Rounds`]): the replica time
    /// (PocketIC's `get_time`), which moves only with `set_time` /
    /// `advance_time` and when a round runs (see [`Rounds`]).
    pub(super) manual_time: Option<u64>,
    /// Rounds mode: the last round's time, and what waits for the next round.
    pub(super) rounds: Rounds,
    /// Rounds mode: a round is executing; `round_budget` canister tasks may
    /// still start in it.
    pub(super) round_open: bool,
    pub(super) round_budget: usize,
    /// Rounds mode: ingress messages accepted since the last round, in
    /// arrival order; the next round delivers them.
    pub(super) held: Vec<Held>,
    /// A state directory cut is being taken: no task starts.
    pub(super) paused: bool,
    /// Callbacks of calls to other nodes whose deadline answered them: a
    /// response that still comes is dropped.
    pub(super) remote_expired: std::collections::HashSet<u64>,
    /// Where answers to other nodes' calls go (the replica's router, once
    /// set), and those given before it was.
    pub(super) router: Option<std::sync::Arc<dyn super::remote::RemoteRouter>>,
    pub(super) unsent_remote: Vec<(super::remote::RemoteOrigin, super::remote::RemoteResponse)>,
    /// The router's own state as the state directory kept it, until the
    /// router takes it.
    pub(super) router_image: Option<Vec<u8>>,
    /// Node records for the next cut (see [`super::Replica::stage_sidecar`]).
    pub(super) sidecar: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// A simulated replica's record of what happened (see [`super::sim`]).
    pub(super) sim: Option<super::sim::SimRecorder>,
    /// Faults a test injected (see [`super::scripted`]).
    pub(super) scripted: super::scripted::Scripted,
}

/// A range of canister ids (by index, see [`super::canister_id`]) and the
/// next index to hand out.
pub(super) struct IdRange {
    pub(super) subnet: Principal,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) next: u64,
}

impl IdRange {
    pub(super) fn contains(&self, id: &Principal) -> bool {
        super::canister_index(id).is_some_and(|i| (self.start..=self.end).contains(&i))
    }
}

/// An accepted ingress message waiting for the next round: delivers itself.
pub(super) type Held = Box<dyn FnOnce(&super::scheduler::Inner, &mut State) + Send>;

/// Rounds mode: when the last round ran, and the messages that cross a
/// round boundary as they do between a subnet's canisters and its
/// management canister (the IC executes subnet messages at the start of a
/// round, and their responses reach canisters in the next).
pub(super) struct Rounds {
    /// The time of the last round (or of `set_certified_time`), the batch
    /// time of the certified state: what queries see. A round runs at the
    /// replica time if it moved since, else 1 ns after this.
    pub(super) last_time: u64,
    /// Canisters' calls to the management canister made in this round: they
    /// run at the start of the next.
    pub(super) requests: Vec<Task>,
    /// The management canister's responses to canisters produced in this
    /// round (callback, result): delivered at the start of the next.
    pub(super) responses: Vec<(u64, CallResult)>,
}

impl Rounds {
    pub(super) fn new(clock: super::Clock) -> Self {
        let last_time = match clock {
            super::Clock::Wall => 0,
            super::Clock::Rounds { start_ns } => start_ns,
        };
        Self { last_time, requests: Vec::new(), responses: Vec::new() }
    }

    /// Messages carried to the next round.
    pub(super) fn carried(&self) -> usize {
        self.requests.len() + self.responses.len()
    }
}


impl State {
    /// The next free canister id in the id range of `near` (a canister
    /// creating another: the new one lives on its subnet), else in the
    /// first range; ids taken by `specified_id` and deleted canisters' ids
    /// are skipped. `None` when the range is full.
    pub(super) fn allocate_id(&mut self, near: Option<&Principal>) -> Option<Principal> {
        let index = near.and_then(|p| self.ranges.iter().position(|r| r.contains(p))).unwrap_or(0);
        let range = self.ranges.get_mut(index)?;
        while range.next <= range.end {
            let id = super::canister_id(range.next);
            range.next += 1;
            if !self.canisters.contains_key(&id) && !self.deleted.contains(&id) {
                return Some(id);
            }
        }
        None
    }

    pub(super) fn now(&mut self) -> u64 {
        if let Some(t) = self.manual_time {
            return t;
        }
        let t = wall_clock_ns().saturating_add(self.time_offset).max(self.last_time + 1);
        self.last_time = t;
        t
    }

    /// The time a non-replicated execution (a query call, an inspection)
    /// sees: in rounds mode the last round's (the certified state's batch
    /// time, whatever the time was set to since), else [`State::now`].
    pub(super) fn query_time(&mut self) -> u64 {
        if self.manual_time.is_some() {
            return self.rounds.last_time;
        }
        self.now()
    }

    /// Opens a call context on `canister` for a call from `caller` (the
    /// management canister for system tasks).
    pub(super) fn new_context(&mut self, canister: Principal, caller: Principal, origin: Origin, deadline: u64) -> u64 {
        let id = self.next_context;
        self.next_context += 1;
        self.contexts.insert(
            id,
            CallContext {
                canister,
                caller,
                needs_response: !matches!(origin, Origin::System),
                origin,
                outstanding: 0,
                deadline,
                instructions: 0,
                cycles: 0,
                inspected: false,
                caller_info: None,
            },
        );
        if let Some(s) = self.canisters.get_mut(&canister) {
            s.open_contexts += 1;
        }
        id
    }

    /// Adds cycles to a canister's balance (a refund; gone canisters lose it).
    pub(super) fn credit(&mut self, canister: &Principal, cycles: u128) {
        if let Some(slot) = self.canisters.get_mut(canister) {
            slot.balance = slot.balance.saturating_add(cycles);
        }
    }

    /// Whether a canister task may start now. In rounds mode replicated
    /// tasks start only inside a round with budget left; queries always.
    pub(super) fn may_start_replicated(&self) -> bool {
        self.manual_time.is_none() || (self.round_open && self.round_budget > 0)
    }

    /// Checks that `method` can be called on `canister` now.
    pub(super) fn check_callable(&self, canister: &Principal, method: &str, query: bool) -> Result<(), Reject> {
        let Some(slot) = self.canisters.get(canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        match slot.status {
            Status::Running => {}
            Status::Stopping => {
                return Err(Reject::system(ErrorCode::CanisterStopping, format!("Canister {canister} is stopping")));
            }
            Status::Stopped => {
                return Err(Reject::system(ErrorCode::CanisterStopped, format!("Canister {canister} is stopped")));
            }
        }
        if slot.module_hash.is_none() {
            return Err(Reject::system(
                ErrorCode::CanisterWasmModuleNotFound,
                format!("Error from Canister {canister}: Attempted to execute a message, but the canister contains no Wasm module."),
            ));
        }
        match slot.methods.get(method) {
            None => Err(Reject::system(
                ErrorCode::CanisterMethodNotFound,
                format!("Error from Canister {canister}: Canister has no {} method '{method}'.", if query { "query" } else { "update" }),
            )),
            Some(MethodKind::Update) if query => Err(Reject::system(
                ErrorCode::CanisterMethodNotFound,
                format!("Error from Canister {canister}: Canister has no query method '{method}'."),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Hands the answer to a call another node made to the router (under
    /// this lock, so a cut holds both or neither), or keeps it until one is
    /// set.
    pub(super) fn respond_remote(&mut self, to: super::remote::RemoteOrigin, response: super::remote::RemoteResponse) {
        match &self.router {
            Some(router) => router.respond(to, response),
            None => self.unsent_remote.push((to, response)),
        }
    }

    /// Sends `result` to whoever waits on context `id`, if it still needs one.
    /// Returns the (caller canister, response task) to enqueue, if any.
    pub(super) fn respond(&mut self, id: u64, result: CallResult) -> Option<(Principal, Task)> {
        let ctx = self.contexts.get_mut(&id)?;
        if !ctx.needs_response {
            return None;
        }
        ctx.needs_response = false;
        let origin = std::mem::replace(&mut ctx.origin, Origin::System);
        if let Some(sim) = self.sim.as_mut() {
            let callback = match origin {
                Origin::Canister { callback } => Some(callback),
                _ => None,
            };
            sim.events.push(super::sim::SimEvent::Answered {
                context: id,
                callback,
                reject: result.as_ref().err().map(|r| r.code),
                dropped: matches!(origin, Origin::Expired),
            });
        }
        let out = match origin {
            Origin::Ingress(tx) => {
                let _ = tx.send(result);
                None
            }
            Origin::Canister { callback } => {
                // Unaccepted cycles go back to the caller with the response.
                let refund = std::mem::take(&mut ctx.cycles);
                let caller = self.callbacks.get(&callback).map(|cb| cb.caller);
                if let Some(caller) = caller {
                    self.credit(&caller, u128::from(refund));
                }
                caller.map(|caller| (caller, Task::Response { callback, result, refund }))
            }
            Origin::Remote(to) => {
                let refund = std::mem::take(&mut ctx.cycles);
                self.respond_remote(to, super::remote::RemoteResponse { result, refund });
                None
            }
            Origin::Expired => {
                // The caller was answered with SYS_UNKNOWN; the response and
                // the cycles it would refund are dropped (as on the IC).
                ctx.cycles = 0;
                None
            }
            Origin::System => None,
        };
        self.maybe_close(id);
        out
    }

    /// The response to `callback` (a call `canister` made from `context` to
    /// `callee`) has been handled: the call is no longer outstanding.
    pub(super) fn callback_done(&mut self, callback: u64, canister: Principal, callee: Principal, context: u64) {
        if self.callbacks.remove(&callback).is_none() {
            return;
        }
        self.remote_expired.remove(&callback);
        if let Some(n) = self.outstanding.get_mut(&(canister, callee)) {
            *n = n.saturating_sub(1);
        }
        if let Some(c) = self.contexts.get_mut(&context) {
            c.outstanding = c.outstanding.saturating_sub(1);
        }
    }

    /// Deletes context `id` whatever it still waits for (`uninstall_code`).
    pub(super) fn delete_context(&mut self, id: u64) {
        let Some(ctx) = self.contexts.remove(&id) else { return };
        if let Some(s) = self.canisters.get_mut(&ctx.canister) {
            s.open_contexts = s.open_contexts.saturating_sub(1);
        }
    }

    /// Deletes a context that needs no response and has nothing outstanding.
    pub(super) fn maybe_close(&mut self, id: u64) {
        let Some(ctx) = self.contexts.get(&id) else { return };
        if ctx.needs_response || ctx.outstanding > 0 {
            return;
        }
        let canister = ctx.canister;
        self.contexts.remove(&id);
        if let Some(s) = self.canisters.get_mut(&canister) {
            s.open_contexts = s.open_contexts.saturating_sub(1);
        }
        self.maybe_stopped(canister);
    }

    pub(super) fn maybe_stopped(&mut self, canister: Principal) {
        let Some(slot) = self.canisters.get_mut(&canister) else { return };
        if slot.status == Status::Stopping && slot.open_contexts == 0 {
            slot.status = Status::Stopped;
            slot.version += 1;
            for (_, w) in std::mem::take(&mut slot.stop_waiters) {
                w.call(Ok(()));
            }
        }
    }
}

