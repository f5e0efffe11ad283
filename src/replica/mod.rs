//! The replica: canisters with IC message semantics, and the management
//! canister.
//!
//! Layout:
//! - [`exec`]: one canister instance and one atomic message execution, for
//!   both kinds of canister (components and IC core modules);
//! - [`memory`] / [`stable`]: heap and stable memory with commit/rollback;
//! - [`management`]: the management canister (`aaaaa-aa`);
//! - [`install`]: module bytes to installable code of either kind;
//! - [`chunks`]: each canister's Wasm chunk store and its API (chunked install);
//! - [`logs`]: each canister's log (`fetch_canister_logs`);
//! - [`history`]: each canister's code-deployment history (`canister_info`);
//! - `state`: canister slots, call contexts, callbacks, queued tasks;
//! - `scheduler`: executor threads, applying effects, the clock (timers,
//!   heartbeats, bounded-wait expiry);
//! - `composite`: a composite query's call graph;
//! - `ingress`: messages from outside (admission, delivery now or at the
//!   next round), time, and deterministic rounds ([`Clock::Rounds`]);
//! - `lifecycle`: install, reinstall, upgrade and uninstall;
//! - this module: the [`Replica`]'s public API.
//!
//! Invariants (see ARCHITECTURE.md):
//! - At most one execution per canister at a time: a canister's instance is
//!   taken out of its slot while it executes, and its queue waits.
//! - Different canisters execute in parallel on [`Replica`]'s threads.
//! - Every call context gets exactly one response: a reply or reject from an
//!   execution, else a synthesized `CANISTER_ERROR` once nothing can answer
//!   anymore (no outstanding calls), or `SYS_UNKNOWN` when a bounded-wait
//!   deadline passes (a late response is then dropped).
//! - Requests from one canister to another start executing in send order
//!   (one FIFO input queue per canister).
//! - Effects of an execution are applied only if it committed.

pub mod certified_view;
pub mod chunks;
pub mod cycles;
mod clock;
mod composite;
pub mod durable;
pub mod exec;
pub mod flexible_outcall;
pub mod history;
pub mod http_outcall;
mod ingress;
pub mod install;
mod lifecycle;
pub mod logs;
pub mod management;
pub mod memory;
pub mod remote;
mod scheduler;
pub mod scripted;
pub mod sim;
pub mod settings;
pub mod snapshot_transfer;
pub mod snapshots;
pub mod stable;
mod state;
mod subnet_methods;
pub mod threshold;
pub mod types;
mod write_tracking;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use candid::Principal;
use tokio::sync::oneshot;

use exec::CanisterRuntime;
use clock::clock_thread;
use scheduler::{Inner, executor_thread};
pub(crate) use state::ReplyTo;
use state::{Done, InstallJob, Slot, State, Task};
pub use history::{ChangeOrigin, CodeDeployment, InstallSource};
pub use ingress::{ClockError, ROUND_EXECUTION_BUDGET, RoundReport};
pub use types::{ErrorCode, Limits, RejectCode, SubnetRange, canister_id, canister_index};

/// A reject as a caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    pub code: RejectCode,
    /// The `IC0xxx` code, when the system produced the reject.
    pub error_code: Option<ErrorCode>,
    pub message: String,
}

impl Reject {
    pub fn system(error_code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: error_code.reject_code(),
            error_code: Some(error_code),
            message: format!("{error_code}: {}", message.into()),
        }
    }
    /// The message without the `IC0xxx: ` prefix: what a calling canister
    /// sees (the IC gives canisters the description, users the code too).
    pub fn description(&self) -> &str {
        match self.error_code {
            Some(code) => self.message.strip_prefix(&format!("{code}: ")).unwrap_or(&self.message),
            None => &self.message,
        }
    }

    fn canister(message: String) -> Self {
        Self {
            code: RejectCode::CanisterReject,
            error_code: None,
            message,
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reject code {}: {}", self.code, self.message)
    }
}

/// The outcome of a call: reply bytes or a reject.
pub type CallResult = Result<Vec<u8>, Reject>;

/// A canister's run status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    Running,
    Stopping,
    Stopped,
}

impl Status {
    fn code(&self) -> u32 {
        match self {
            Status::Running => 1,
            Status::Stopping => 2,
            Status::Stopped => 3,
        }
    }
}

/// Replica settings.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub limits: Limits,
    /// Executor threads (default: one per core; 0: none, the caller drives
    /// every execution, as the simulator does, see [`sim`]).
    pub threads: usize,
    /// Cycles a new canister starts with.
    pub initial_cycles: u64,
    /// Seed for `raw_rand` and canister randomness.
    pub seed: u64,
    /// How time moves and when messages execute.
    pub clock: Clock,
    /// The subnets: each a canister id range, by index (see
    /// [`canister_id`]). New canisters get the first free id of their
    /// creator's range, or of the first range (ingress). Default: one
    /// subnet, [`exec::subnet_id`] with [`DEFAULT_CANISTER_RANGE`].
    pub subnets: Vec<SubnetRange>,
    /// Print canisters' `debug_print` lines as PocketIC does,
    /// `[Canister <id>] <line>` on stderr, instead of into ww's log
    /// ([`exec::PrintStyle`]); each line once, from every execution.
    pub echo_logs: bool,
    /// How canister heaps find written pages at commit (default: the best
    /// the kernel offers, see [`memory::HeapTracking::host_default`]).
    pub heap_tracking: memory::HeapTracking,
    /// The root key canisters see (`ic0.root_key_copy`), DER; empty when
    /// the replica's state is not certified.
    pub root_key: Arc<[u8]>,
    /// Subnets whose management canister refuses `flexible_http_request`
    /// (PocketIC's charging subnets without beta features); default none:
    /// a ww node offers it.
    pub flexible_outcalls_disabled: Vec<Principal>,
    /// Driven by the simulator ([`sim`]): replicated tasks start only when
    /// it runs them, and the management canister's work waits for it too;
    /// executor threads (if any) run queries and inspections only.
    pub simulated: bool,
}

/// How the replica's time moves and when messages execute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock (plus any `advance_time`); messages execute as they
    /// arrive; timers, heartbeats and deadlines fire on their own.
    #[default]
    Wall,
    /// Deterministic rounds, as PocketIC runs a subnet: time starts at
    /// `start_ns` and moves only with `set_time`/`advance_time` and when a
    /// round runs (at the time set, or 1 ns after the last round when it was
    /// not set since); accepted ingress messages wait for the next
    /// [`Replica::execute_round`], which also fires due timers, heartbeats
    /// and deadlines; a canister's management call runs in the round after
    /// the one that made it, its response in the round after that. Queries
    /// run at once, at the last round's time (see the `ingress` module).
    Rounds { start_ns: u64 },
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            initial_cycles: 100_000_000_000_000,
            seed: 0,
            clock: Clock::Wall,
            subnets: vec![SubnetRange::new(exec::subnet_id(), DEFAULT_CANISTER_RANGE)],
            echo_logs: false,
            heap_tracking: memory::HeapTracking::host_default(),
            root_key: Arc::from(Vec::new()),
            flexible_outcalls_disabled: Vec::new(),
            simulated: false,
        }
    }
}

/// Status of one canister, as `canister_status` reports it.
#[derive(Clone, Debug)]
pub struct CanisterStatus {
    pub id: Principal,
    pub status: Status,
    pub controllers: Vec<Principal>,
    pub module_hash: Option<[u8; 32]>,
    /// Heap, stable memory and the Wasm chunk store, in bytes.
    pub memory_size: u64,
    /// The parts of `memory_size`.
    pub memory: MemoryUsage,
    pub cycles: u128,
    pub idle_cycles_burned_per_day: u128,
    pub version: u64,
    pub settings: settings::Settings,
}

/// A canister's memory by kind, bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryUsage {
    pub heap: u64,
    pub stable: u64,
    pub chunk_store: u64,
    /// The canister's snapshots.
    pub snapshots: u64,
    /// The installed module, as given.
    pub module: u64,
}

/// Who installs what how (everything of an install but the module).
pub(crate) struct InstallRequest {
    /// Who installs (the caller), for the history.
    pub origin: ChangeOrigin,
    pub canister: Principal,
    pub mode: InstallMode,
    pub source: InstallSource,
    /// An upgrade that does not run the old module's pre_upgrade.
    pub skip_pre_upgrade: bool,
    /// `wasm_memory_persistence` of an upgrade: `Some(true)` keep,
    /// `Some(false)` replace, `None` not given.
    pub keep_main_memory: Option<bool>,
}

impl InstallRequest {
    /// An install `caller` asks of the host (not through the management
    /// canister): no `pre_upgrade` skipped.
    pub(crate) fn by_host(caller: Principal, canister: Principal, mode: InstallMode, keep_main_memory: Option<bool>) -> Self {
        Self { origin: ChangeOrigin::User(caller), canister, mode, source: InstallSource::Host, skip_pre_upgrade: false, keep_main_memory }
    }
}

/// How `install_code` installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InstallMode {
    Install,
    Reinstall,
    Upgrade,
}

/// The replica. Cheap to clone; its threads stop soon after the last clone
/// is dropped (they hold it only weakly between jobs).
#[derive(Clone)]
pub struct Replica {
    inner: Arc<Inner>,
}

/// The first canister id this replica hands out, `bkyz2-fmaaa-aaaaa-qaaaq-cai`:
/// the first id a local dfx/PocketIC application subnet allocates, so ids
/// look familiar.
pub const FIRST_CANISTER_INDEX: u64 = 0x8000_0000_0010_0001;

/// The ids of the replica's one subnet by default: 2^20 ids from
/// `0x8000_0000_0010_0000`, handed out from [`FIRST_CANISTER_INDEX`].
pub const DEFAULT_CANISTER_RANGE: std::ops::RangeInclusive<u64> = 0x8000_0000_0010_0000..=0x8000_0000_001F_FFFF;

/// Nanoseconds since the Unix epoch on the host's clock.
pub(crate) fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

impl Replica {
    /// A replica running canisters on `engine` (an engine of kind
    /// [`crate::engine::EngineKind::Canister`]).
    pub fn new(engine: crate::engine::Engine, config: ReplicaConfig) -> Result<Self, exec::InstallError> {
        use rand::SeedableRng;
        let mut runtime = CanisterRuntime::new(engine, config.limits.clone())
            .map_err(|e| exec::InstallError::Invalid(format!("setting up the canister linker: {}", crate::engine::one_line(&e))))?;
        runtime.set_heap_tracking(config.heap_tracking);
        runtime.set_root_key(config.root_key.clone());
        let key_routing = Arc::new(threshold::KeyRouting::new(&config.subnets));
        runtime.set_key_routing(key_routing.clone());
        if config.echo_logs {
            runtime.set_print_style(exec::PrintStyle::PocketIc);
        }
        let inner = Arc::new(Inner {
            runtime,
            key_routing,
            interfaces: Mutex::new(std::collections::HashMap::new()),
            state: Mutex::new(State {
                canisters: BTreeMap::new(),
                ranges: config
                    .subnets
                    .iter()
                    .map(|s| (s.id, &s.canisters))
                    .map(|(subnet, r)| state::IdRange {
                        subnet,
                        start: *r.start(),
                        end: *r.end(),
                        next: if r.contains(&FIRST_CANISTER_INDEX) { FIRST_CANISTER_INDEX } else { *r.start() },
                    })
                    .collect(),
                contexts: HashMap::new(),
                next_context: 1,
                callbacks: HashMap::new(),
                next_callback: 1,
                outstanding: HashMap::new(),
                deadlines: BTreeSet::new(),
                names: BTreeMap::new(),
                deleted: BTreeSet::new(),
                time_offset: 0,
                last_time: 0,
                rng: rand::rngs::StdRng::seed_from_u64(config.seed),
                manual_time: match config.clock {
                    Clock::Wall => None,
                    Clock::Rounds { start_ns } => Some(start_ns),
                },
                rounds: state::Rounds::new(config.clock),
                round_open: false,
                round_budget: 0,
                held: Vec::new(),
                paused: false,
                remote_expired: std::collections::HashSet::new(),
                router: None,
                unsent_remote: Vec::new(),
                router_image: None,
                sidecar: Vec::new(),
                sim: None,
                scripted: Default::default(),
            }),
            config,
            jobs: Mutex::new(VecDeque::new()),
            sim_jobs: Mutex::new(VecDeque::new()),
            jobs_ready: Condvar::new(),
            clock_changed: Condvar::new(),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_in_flight: std::sync::atomic::AtomicUsize::new(0),
            executing: Mutex::new(std::collections::HashSet::new()),
            overlaps: std::sync::atomic::AtomicUsize::new(0),
            active: Mutex::new(0),
            idle: Condvar::new(),
            jobs_run: std::sync::atomic::AtomicU64::new(0),
            durability: std::sync::OnceLock::new(),
            remote: std::sync::OnceLock::new(),
            data_certificates: std::sync::OnceLock::new(),
            outcalls: std::sync::OnceLock::new(),
            restored_sidecar: Mutex::new(Vec::new()),
        });
        tracing::debug!(sha_extensions = chunks::sha_extensions(), "SHA-256 for module and chunk hashes");
        // No executor threads: the caller drives (the simulator, see `sim`).
        for i in 0..inner.config.threads {
            let weak = Arc::downgrade(&inner);
            let spawned = std::thread::Builder::new()
                .name(format!("ww-exec-{i}"))
                .spawn(move || executor_thread(weak));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an executor thread");
            }
        }
        let weak = Arc::downgrade(&inner);
        if inner.config.clock == Clock::Wall
            && let Err(e) = std::thread::Builder::new()
            .name("ww-replica-clock".into())
            .spawn(move || clock_thread(weak))
        {
            tracing::error!(error = %e, "cannot start the replica clock; timers will not fire");
        }
        Ok(Self { inner })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// The most executions (across canisters) that ran at the same time.
    pub fn max_parallel_executions(&self) -> usize {
        self.inner.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How often an execution started on a canister that was already
    /// executing (always 0: one execution at a time per canister).
    pub fn overlapping_executions(&self) -> usize {
        self.inner.overlaps.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Call contexts and callbacks the replica holds right now (both 0 once
    /// every call has been answered: nothing leaks).
    pub fn open_calls(&self) -> (usize, usize) {
        let st = self.lock();
        (st.contexts.len(), st.callbacks.len())
    }

    pub fn runtime(&self) -> &CanisterRuntime {
        &self.inner.runtime
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Creates an empty canister controlled by `controllers`.
    /// (The host creates it: its history names the first controller.)
    pub fn create_canister(&self, controllers: Vec<Principal>) -> Principal {
        let origin = ChangeOrigin::User(controllers.first().copied().unwrap_or(Principal::anonymous()));
        let mut st = self.lock();
        // Past a full range (2^20 ids), host-made canisters take the free
        // ids after it: still unique, only outside every subnet's range.
        let id = st.allocate_id(None).unwrap_or_else(|| {
            let mut index = st.ranges.first().map_or(FIRST_CANISTER_INDEX, |r| r.end.saturating_add(1));
            while st.canisters.contains_key(&canister_id(index)) || st.deleted.contains(&canister_id(index)) {
                index = index.wrapping_add(1);
            }
            canister_id(index)
        });
        self.insert_canister(&mut st, id, controllers, u128::from(self.inner.config.initial_cycles), origin);
        id
    }

    /// Creates an empty canister with `balance` cycles, at `specified_id`
    /// if given (which must be free).
    pub fn create_canister_with(
        &self,
        origin: ChangeOrigin,
        controllers: Vec<Principal>,
        balance: u128,
        specified_id: Option<Principal>,
        settings: Option<&settings::CanisterSettings>,
    ) -> Result<Principal, Reject> {
        let mut initial = settings::Settings::default();
        if let Some(s) = settings {
            initial.apply(s)?;
        }
        let mut st = self.lock();
        let id = match specified_id {
            Some(id) if id == Principal::management_canister() || st.canisters.contains_key(&id) || st.deleted.contains(&id) => {
                return Err(Reject::system(ErrorCode::CanisterIdAlreadyExists, format!("Canister {id} is already installed.")));
            }
            Some(id) => id,
            None => st.allocate_id(Some(&origin.principal())).ok_or_else(|| {
                Reject::system(ErrorCode::MaxNumberOfCanistersReached, "Canister id range of this subnet is exhausted; no canister can be created.")
            })?,
        };
        self.insert_canister(&mut st, id, controllers, balance, origin);
        if let Some(slot) = st.canisters.get_mut(&id) {
            slot.settings = initial;
        }
        Ok(id)
    }

    /// Cycles a canister created without an amount starts with.
    pub fn initial_cycles(&self) -> u64 {
        self.inner.config.initial_cycles
    }

    fn insert_canister(&self, st: &mut State, id: Principal, controllers: Vec<Principal>, balance: u128, origin: ChangeOrigin) {
        let subnet = st.ranges.iter().find(|r| r.contains(&id)).or(st.ranges.first()).map_or_else(exec::subnet_id, |r| r.subnet);
        let fees = self.fees_of_subnet(&subnet);
        let now = st.now();
        let mut history = history::CanisterHistory::default();
        history.record(history::Change {
            time: st.now(),
            canister_version: 0,
            origin,
            details: history::ChangeDetails::Creation { controllers: controllers.clone() },
        });
        st.canisters.insert(
            id,
            Slot {
                controllers,
                status: Status::Running,
                stop_waiters: Vec::new(),
                version: 0,
                balance,
                charged_until: now,
                fees,
                module_hash: None,
                module: None,
                methods: HashMap::new(),
                instance: None,
                busy: false,
                queue: VecDeque::new(),
                timer: 0,
                heartbeat: false,
                heartbeat_queued: false,
                low_memory_hook: false,
                low_memory_fired: false,
                open_contexts: 0,
                heap_size: 0,
                stable_size: 0,
                chunk_store: chunks::ChunkStore::default(),
                history,
                settings: settings::Settings::default(),
                certified_data: Default::default(),
                log: Default::default(),
                subnet,
                snapshots: Vec::new(),
                next_snapshot: 0,
            },
        );
        tracing::debug!(canister = %id, "created");
    }

    pub fn exists(&self, id: &Principal) -> bool {
        self.lock().canisters.contains_key(id)
    }

    /// Whether `id` belonged to a canister that was deleted (never reused).
    pub fn was_deleted(&self, id: &Principal) -> bool {
        self.lock().deleted.contains(id)
    }

    pub fn canister_ids(&self) -> Vec<Principal> {
        self.lock().canisters.keys().copied().collect()
    }

    /// Names a canister (for `ww call <name>`); later names win.
    pub fn set_name(&self, name: &str, id: Principal) {
        self.lock().names.insert(name.to_string(), id);
    }

    pub fn lookup_name(&self, name: &str) -> Option<Principal> {
        self.lock().names.get(name).copied()
    }

    pub fn names(&self) -> Vec<(String, Principal)> {
        self.lock().names.iter().map(|(n, p)| (n.clone(), *p)).collect()
    }

    pub fn status(&self, id: &Principal) -> Option<CanisterStatus> {
        let mut st = self.lock();
        let now = st.now();
        if let Some(slot) = st.canisters.get_mut(id) {
            slot.settle_resources(now);
        }
        st.canisters.get(id).map(|s| {
            let memory = MemoryUsage {
                heap: s.heap_size,
                stable: s.stable_size,
                chunk_store: s.chunk_store.size(),
                snapshots: s.snapshots.iter().map(snapshots::CanisterSnapshot::size).sum(),
                module: s.module.as_ref().map_or(0, |m| m.len() as u64),
            };
            CanisterStatus {
                id: *id,
                status: s.status,
                controllers: s.controllers.clone(),
                module_hash: s.module_hash,
                memory_size: memory.heap + memory.stable + memory.chunk_store + memory.snapshots + memory.module,
                memory,
                cycles: s.balance,
                idle_cycles_burned_per_day: s.idle_burn_per_day(),
                version: s.version,
                settings: s.settings.clone(),
            }
        })
    }

    /// The code deployments of canister `id`, oldest first (at most
    /// [`history::MAX_ENTRIES`]); `None` if the canister does not exist.
    /// Host-side state, like the IC's `canister_info` change log.
    pub fn install_history(&self, id: &Principal) -> Option<Vec<CodeDeployment>> {
        self.lock().canisters.get(id).map(|s| s.history.deployments())
    }

    /// `canister_info`: the last `changes` changes (at most
    /// [`history::MAX_ENTRIES`]), the module hash and the controllers.
    /// `fetch_canister_logs`: the canister's log, if `caller` may see it
    /// (its `log_visibility`: controllers, public, or allowed viewers).
    pub fn fetch_logs(&self, id: &Principal, caller: &Principal) -> Result<logs::FetchCanisterLogsResult, Reject> {
        let st = self.lock();
        let Some(slot) = st.canisters.get(id) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {id} not found")));
        };
        if !slot.settings.log_visibility.allows(caller, &slot.controllers) {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("Caller {caller} is not allowed to query ic00 method fetch_canister_logs"),
            ));
        }
        Ok(logs::FetchCanisterLogsResult { canister_log_records: slot.log.records() })
    }

    pub fn canister_info(&self, id: &Principal, changes: u64) -> Option<history::CanisterInfoResult> {
        let st = self.lock();
        let slot = st.canisters.get(id)?;
        let kept: Vec<&history::Change> = slot.history.changes().collect();
        let n = usize::try_from(changes).unwrap_or(usize::MAX).min(kept.len());
        Some(history::CanisterInfoResult {
            total_num_changes: slot.history.total(),
            recent_changes: kept[kept.len() - n..].iter().map(|c| history::CandidChange::from(*c)).collect(),
            module_hash: slot.module_hash.map(|h| serde_bytes::ByteBuf::from(h.to_vec())),
            controllers: slot.controllers.clone(),
        })
    }

    pub fn is_controller(&self, id: &Principal, who: &Principal) -> bool {
        self.lock().canisters.get(id).is_some_and(|s| s.controllers.contains(who))
    }

    /// Installs a module (prepared: checked and compiled, see
    /// [`install::prepare_module`]) on a canister, running init or the
    /// upgrade hooks. Serialized with the canister's executions.
    pub async fn install(
        &self,
        caller: Principal,
        canister: Principal,
        mode: InstallMode,
        module: install::PreparedModule,
        arg: Vec<u8>,
    ) -> Result<(), Reject> {
        let request = InstallRequest::by_host(caller, canister, mode, None);
        completion(|f| self.install_with(request, module, arg, Done::new(f))).await
    }

    /// Queues an install; `done` gets the outcome, also when the install
    /// cannot even be queued (so a canister caller always gets a response).
    fn install_with(&self, request: InstallRequest, prepared: install::PreparedModule, arg: Vec<u8>, done: Done) {
        let InstallRequest { origin, canister, mode, source, skip_pre_upgrade, keep_main_memory } = request;
        let caller = origin.principal();
        let install::PreparedModule { code, hash, bytes } = prepared;
        let module = state::ModuleSource { hash, bytes };
        self.queue_for_controller(caller, canister, done, |done| {
            Task::Install(InstallJob { mode, code, module, arg, caller, source, skip_pre_upgrade, keep_main_memory, origin, done })
        });
    }

    /// Queues the task `make(done)` on `canister` if `caller` controls it;
    /// otherwise `done` gets the reject at once.
    fn queue_for_controller(&self, caller: Principal, canister: Principal, done: Done, make: impl FnOnce(Done) -> Task) {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            drop(st);
            return done.call(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
        };
        if !slot.controllers.contains(&caller) {
            drop(st);
            return done.call(Err(not_controller(&canister, &caller)));
        }
        slot.queue.push_back(make(done));
        self.inner.schedule(&mut st, canister);
    }

    /// `uninstall_code`: empties the canister (see [`lifecycle`]); queued
    /// behind what the canister is executing. Controllers only.
    pub async fn uninstall(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        completion(|f| self.uninstall_with(ChangeOrigin::User(caller), canister, Done::new(f))).await
    }

    fn uninstall_with(&self, origin: ChangeOrigin, canister: Principal, done: Done) {
        self.queue_for_controller(origin.principal(), canister, done, |done| Task::Uninstall { origin, done });
    }

    /// Checks that `canister` exists and `caller` controls it.
    pub fn check_controller(&self, canister: &Principal, caller: &Principal) -> Result<(), Reject> {
        let st = self.lock();
        let Some(slot) = st.canisters.get(canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(caller) {
            return Err(not_controller(canister, caller));
        }
        Ok(())
    }

    /// `update_settings`: replaces the controllers if given; every
    /// successful call increments the canister version. Controllers only.
    pub fn update_settings(&self, origin: ChangeOrigin, canister: Principal, update: &settings::CanisterSettings) -> Result<(), Reject> {
        let caller = origin.principal();
        let time = self.time();
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        slot.settings.apply(update)?;
        slot.version += 1;
        if let Some(controllers) = &update.controllers {
            let controllers = settings::controller_set(controllers.clone());
            slot.controllers = controllers.clone();
            slot.history.record(history::Change {
                time,
                canister_version: slot.version,
                origin,
                details: history::ChangeDetails::ControllersChange { controllers },
            });
        }
        Ok(())
    }

    /// Remembers the Candid interface a module carries (see
    /// [`install::candid_section`]).
    pub(crate) fn remember_interface(&self, module_hash: [u8; 32], did: String) {
        self.inner.interfaces.lock().unwrap_or_else(|e| e.into_inner()).insert(module_hash, did.into());
    }

    /// Whether an interface is known for this module hash.
    pub(crate) fn knows_interface(&self, module_hash: &[u8; 32]) -> bool {
        self.inner.interfaces.lock().unwrap_or_else(|e| e.into_inner()).contains_key(module_hash)
    }

    /// The Candid interface of the module `canister` runs, if it carries one.
    pub fn candid_interface(&self, canister: &Principal) -> Option<Arc<str>> {
        let hash = self.status(canister)?.module_hash?;
        self.inner.interfaces.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).cloned()
    }

    /// Whether `caller` may read what `method` shows of `canister` by its
    /// visibility settings (`canister_status`: `status_visibility`;
    /// `list_canister_snapshots`: `snapshot_visibility`).
    pub fn visible_to(&self, method: &str, canister: &Principal, caller: &Principal) -> bool {
        let st = self.lock();
        let Some(slot) = st.canisters.get(canister) else { return false };
        let visibility = match method {
            "canister_status" => &slot.settings.status_visibility,
            "list_canister_snapshots" | "read_canister_snapshot_metadata" | "read_canister_snapshot_data" => &slot.settings.snapshot_visibility,
            _ => return false,
        };
        visibility.allows(caller, &slot.controllers)
    }

    /// A copy of a canister's whole stable memory (empty without a module).
    /// The canister must not be executing.
    pub fn stable_memory(&self, canister: &Principal) -> Result<Vec<u8>, Reject> {
        let st = self.lock();
        let slot = idle_slot(&st, canister)?;
        let Some(instance) = slot.instance.as_ref() else { return Ok(Vec::new()) };
        instance
            .stable()
            .read(0, instance.stable_size_bytes())
            .map_err(|e| Reject::system(ErrorCode::CanisterContractViolation, format!("reading the stable memory of {canister}: {e}")))
    }

    /// Replaces a canister's stable memory with `bytes` (its size becomes
    /// `bytes` rounded up to whole 64 KiB pages). The canister must have a
    /// module and must not be executing.
    pub fn set_stable_memory(&self, canister: &Principal, bytes: &[u8]) -> Result<(), Reject> {
        let max_pages = self.inner.config.limits.stable_memory_pages;
        let mut st = self.lock();
        idle_slot(&st, canister)?;
        let Some(slot) = st.canisters.get_mut(canister) else { return Err(not_found(canister)) };
        let Some(instance) = slot.instance.as_mut() else {
            return Err(Reject::system(
                ErrorCode::CanisterWasmModuleNotFound,
                format!("Canister {canister} has no Wasm module: it has no stable memory to set."),
            ));
        };
        let mut stable = stable::StableMemory::new(max_pages);
        let pages = (bytes.len() as u64).div_ceil(stable::STABLE_PAGE);
        let written = if stable.grow(pages) < 0 { Err(format!("{pages} pages exceed the limit of {max_pages}")) } else { stable.write(0, bytes).map_err(|e| e.to_string()) };
        written.map_err(|why| Reject::system(ErrorCode::CanisterOutOfMemory, format!("setting the stable memory of {canister}: {why}")))?;
        stable.commit();
        instance.put_stable(stable);
        slot.stable_size = pages * stable::STABLE_PAGE;
        Ok(())
    }

    pub fn raw_rand(&self) -> [u8; 32] {
        use rand::Rng;
        let mut out = [0u8; 32];
        self.lock().rng.fill_bytes(&mut out);
        out
    }
}

/// Starts an operation that reports through a [`Done`] and waits for it.
pub(super) async fn completion<T: Send + 'static>(start: impl FnOnce(Box<dyn FnOnce(Result<T, Reject>) + Send>)) -> Result<T, Reject> {
    let (tx, rx) = oneshot::channel();
    start(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.await
        .unwrap_or_else(|_| Err(Reject::system(ErrorCode::SubnetOversubscribed, "the replica is shutting down")))
}

fn not_found(canister: &Principal) -> Reject {
    Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))
}

/// The slot of a canister that exists and is not executing.
fn idle_slot<'a>(st: &'a State, canister: &Principal) -> Result<&'a Slot, Reject> {
    let slot = st.canisters.get(canister).ok_or_else(|| not_found(canister))?;
    if slot.busy {
        return Err(Reject::system(ErrorCode::CanisterQueueFull, format!("Canister {canister} is executing a message; try again once it is idle.")));
    }
    Ok(slot)
}

pub(super) fn not_controller(canister: &Principal, caller: &Principal) -> Reject {
    Reject::system(
        ErrorCode::CanisterInvalidController,
        format!("Only the controllers of the canister {canister} can control it. {caller} is not one of them."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canister_ids_are_ic_principals() {
        assert_eq!(canister_id(FIRST_CANISTER_INDEX).to_text(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
        assert_eq!(canister_id(FIRST_CANISTER_INDEX + 1).as_slice().len(), 10);
    }
}

