//! The replica: canisters with IC message semantics, and the management
//! canister.
//!
//! Layout:
//! - [`exec`]: one canister instance and one atomic message execution;
//! - [`memory`] / [`stable`]: heap and stable memory with commit/rollback;
//! - [`management`]: the management canister (`aaaaa-aa`);
//! - [`install`]: module bytes to an installable component;
//! - [`chunks`]: each canister's Wasm chunk store (chunked install);
//! - [`history`]: each canister's code-deployment history (`canister_info`);
//! - this module: the [`Replica`] — canister table, call contexts,
//!   callbacks, per-canister input queues, the executor threads, time,
//!   timers and bounded-wait expiry.
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

pub mod chunks;
pub mod exec;
pub mod history;
pub mod install;
pub mod management;
pub mod memory;
pub mod stable;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use candid::Principal;
use tokio::sync::oneshot;
use wasmtime::component::Component;

use exec::{
    CanisterInfo, CanisterInstance, CanisterRuntime, EntryPoint, MessageInput, MethodKind, Outcome, OutgoingCall,
    Response,
};
use stable::StableMemory;
pub use history::{CodeDeployment, InstallSource};
pub use types::{ErrorCode, Limits, RejectCode};

/// A reject as a caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Executor threads (default: one per core).
    pub threads: usize,
    /// Cycles a new canister starts with.
    pub initial_cycles: u64,
    /// Seed for `raw_rand` and canister randomness.
    pub seed: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            initial_cycles: 100_000_000_000_000,
            seed: 0,
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
    pub cycles: u64,
    pub version: u64,
}

/// How `install_code` installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    Install,
    Reinstall,
    Upgrade,
}

// ---- internal state ---------------------------------------------------------------

/// Where a call context's response goes.
enum Origin {
    Ingress(oneshot::Sender<CallResult>),
    Canister { callback: u64 },
    /// Timers and system tasks: no response expected.
    System,
}

struct CallContext {
    canister: Principal,
    origin: Origin,
    needs_response: bool,
    /// Calls made from this context whose callbacks have not run yet.
    outstanding: u32,
    deadline: u64,
    /// Cycles attached to the call this context answers and not accepted
    /// yet: refunded to the caller with the response.
    cycles: u64,
}

struct Callback {
    caller: Principal,
    context: u64,
    env: u64,
    callee: Principal,
    deadline: Option<u64>,
    /// The callee's context answering this call.
    callee_context: Option<u64>,
    /// Cycles attached to the call (taken from the caller's balance).
    cycles: u64,
    /// The callee keeps the attached cycles when it replies (the management
    /// canister's `deposit_cycles`); otherwise a management response
    /// refunds them all.
    management_accepts: bool,
}

enum Task {
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
    Timer,
    Install(InstallJob),
    /// A call to the management canister (runs on an executor thread,
    /// outside the state lock).
    Management {
        caller: Principal,
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

struct InstallJob {
    mode: InstallMode,
    component: Component,
    module_hash: [u8; 32],
    arg: Vec<u8>,
    caller: Principal,
    source: InstallSource,
    done: Box<dyn FnOnce(Result<(), Reject>) + Send>,
}

struct Slot {
    controllers: Vec<Principal>,
    status: Status,
    stop_waiters: Vec<Box<dyn FnOnce(Result<(), Reject>) + Send>>,
    version: u64,
    balance: u64,
    module_hash: Option<[u8; 32]>,
    methods: HashMap<String, MethodKind>,
    /// `None` while executing, or when empty (no module).
    instance: Option<Box<CanisterInstance>>,
    busy: bool,
    queue: VecDeque<Task>,
    timer: u64,
    /// Open call contexts of this canister (for stopping).
    open_contexts: u32,
    /// Heap and stable memory after the last execution, bytes.
    memory_size: u64,
    /// The Wasm chunk store (`upload_chunk`, `install_chunked_code`).
    chunk_store: chunks::ChunkStore,
    /// Successful code deployments (see [`history`]).
    history: history::InstallHistory,
}

impl Slot {
    fn info(&self, id: Principal) -> CanisterInfo {
        CanisterInfo {
            id,
            controllers: self.controllers.clone(),
            status: self.status.code(),
            version: self.version,
            balance: self.balance,
        }
    }
}

struct State {
    canisters: BTreeMap<Principal, Slot>,
    next_canister: u64,
    contexts: HashMap<u64, CallContext>,
    next_context: u64,
    callbacks: HashMap<u64, Callback>,
    next_callback: u64,
    /// Outstanding requests per (caller, callee).
    outstanding: HashMap<(Principal, Principal), u32>,
    /// Bounded-wait deadlines: (deadline, callback).
    deadlines: BTreeSet<(u64, u64)>,
    names: BTreeMap<String, Principal>,
    /// Time offset added to the wall clock (tests advance it).
    time_offset: u64,
    last_time: u64,
    rng: rand::rngs::StdRng,
}

struct Job {
    canister: Principal,
    instance: Option<Box<CanisterInstance>>,
    task: Task,
}

struct Inner {
    runtime: CanisterRuntime,
    /// Candid interfaces carried by modules, by module hash.
    interfaces: Mutex<std::collections::HashMap<[u8; 32], Arc<str>>>,
    config: ReplicaConfig,
    state: Mutex<State>,
    jobs: Mutex<VecDeque<Job>>,
    jobs_ready: Condvar,
    /// Wakes the timer thread when time moves or a deadline appears.
    clock_changed: Condvar,
    /// Executions running right now, and the most seen at once.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
    /// Canisters executing right now (checks one-at-a-time per canister).
    executing: Mutex<std::collections::HashSet<Principal>>,
    overlaps: std::sync::atomic::AtomicUsize,
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

/// The canister id with the given index (8 bytes big-endian, then 0x01 0x01).
pub fn canister_id(index: u64) -> Principal {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[8] = 1;
    bytes[9] = 1;
    Principal::from_slice(&bytes)
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

impl Replica {
    /// A replica running canisters on `engine` (an engine of kind
    /// [`crate::engine::EngineKind::Canister`]).
    pub fn new(engine: crate::engine::Engine, config: ReplicaConfig) -> Result<Self, exec::InstallError> {
        use rand::SeedableRng;
        let runtime = CanisterRuntime::new(engine, config.limits.clone())
            .map_err(|e| exec::InstallError::Invalid(format!("setting up the canister linker: {}", crate::engine::one_line(&e))))?;
        let inner = Arc::new(Inner {
            runtime,
            interfaces: Mutex::new(std::collections::HashMap::new()),
            state: Mutex::new(State {
                canisters: BTreeMap::new(),
                next_canister: FIRST_CANISTER_INDEX,
                contexts: HashMap::new(),
                next_context: 1,
                callbacks: HashMap::new(),
                next_callback: 1,
                outstanding: HashMap::new(),
                deadlines: BTreeSet::new(),
                names: BTreeMap::new(),
                time_offset: 0,
                last_time: 0,
                rng: rand::rngs::StdRng::seed_from_u64(config.seed),
            }),
            config,
            jobs: Mutex::new(VecDeque::new()),
            jobs_ready: Condvar::new(),
            clock_changed: Condvar::new(),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_in_flight: std::sync::atomic::AtomicUsize::new(0),
            executing: Mutex::new(std::collections::HashSet::new()),
            overlaps: std::sync::atomic::AtomicUsize::new(0),
        });
        tracing::debug!(sha_extensions = chunks::sha_extensions(), "SHA-256 for module and chunk hashes");
        for i in 0..inner.config.threads.max(1) {
            let weak = Arc::downgrade(&inner);
            let spawned = std::thread::Builder::new()
                .name(format!("ww-exec-{i}"))
                .spawn(move || executor_thread(weak));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an executor thread");
            }
        }
        let weak = Arc::downgrade(&inner);
        if let Err(e) = std::thread::Builder::new()
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

    pub fn runtime(&self) -> &CanisterRuntime {
        &self.inner.runtime
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Current replica time (ns): the wall clock plus any advance, monotonic.
    pub fn time(&self) -> u64 {
        self.lock().now()
    }

    /// Moves replica time forward by `d` (timers and deadlines due by then fire).
    pub fn advance_time(&self, d: Duration) {
        {
            let mut st = self.lock();
            st.time_offset = st.time_offset.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
        }
        self.inner.tick();
        self.inner.clock_changed.notify_all();
    }

    /// Creates an empty canister controlled by `controllers`.
    pub fn create_canister(&self, controllers: Vec<Principal>) -> Principal {
        let mut st = self.lock();
        let id = canister_id(st.next_canister);
        st.next_canister += 1;
        st.canisters.insert(
            id,
            Slot {
                controllers,
                status: Status::Running,
                stop_waiters: Vec::new(),
                version: 0,
                balance: self.inner.config.initial_cycles,
                module_hash: None,
                methods: HashMap::new(),
                instance: None,
                busy: false,
                queue: VecDeque::new(),
                timer: 0,
                open_contexts: 0,
                memory_size: 0,
                chunk_store: chunks::ChunkStore::default(),
                history: history::InstallHistory::default(),
            },
        );
        tracing::debug!(canister = %id, "created");
        id
    }

    pub fn exists(&self, id: &Principal) -> bool {
        self.lock().canisters.contains_key(id)
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
        let st = self.lock();
        st.canisters.get(id).map(|s| CanisterStatus {
            id: *id,
            status: s.status,
            controllers: s.controllers.clone(),
            module_hash: s.module_hash,
            memory_size: s.memory_size + s.chunk_store.size(),
            cycles: s.balance,
            version: s.version,
        })
    }

    /// The code deployments of canister `id`, oldest first (at most
    /// [`history::MAX_ENTRIES`]); `None` if the canister does not exist.
    /// Host-side state, like the IC's `canister_info` change log.
    pub fn install_history(&self, id: &Principal) -> Option<Vec<CodeDeployment>> {
        self.lock().canisters.get(id).map(|s| s.history.entries())
    }

    pub fn is_controller(&self, id: &Principal, who: &Principal) -> bool {
        self.lock().canisters.get(id).is_some_and(|s| s.controllers.contains(who))
    }

    /// Installs a module (already compiled) on a canister, running init or the
    /// upgrade hooks. Serialized with the canister's executions.
    pub async fn install(
        &self,
        caller: Principal,
        canister: Principal,
        mode: InstallMode,
        component: Component,
        module_hash: [u8; 32],
        arg: Vec<u8>,
    ) -> Result<(), Reject> {
        let (tx, rx) = oneshot::channel();
        self.install_with(caller, canister, mode, InstallSource::Host, component, module_hash, arg, Box::new(move |r| {
            let _ = tx.send(r);
        }));
        rx.await
            .unwrap_or_else(|_| Err(Reject::system(ErrorCode::SubnetOversubscribed, "the replica is shutting down")))
    }

    /// Queues an install; `done` gets the outcome, also when the install
    /// cannot even be queued (so a canister caller always gets a response).
    #[allow(clippy::too_many_arguments)]
    fn install_with(
        &self,
        caller: Principal,
        canister: Principal,
        mode: InstallMode,
        source: InstallSource,
        component: Component,
        module_hash: [u8; 32],
        arg: Vec<u8>,
        done: Box<dyn FnOnce(Result<(), Reject>) + Send>,
    ) {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            drop(st);
            return done(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
        };
        if !slot.controllers.contains(&caller) {
            drop(st);
            return done(Err(not_controller(&canister, &caller)));
        }
        slot.queue.push_back(Task::Install(InstallJob {
            mode,
            component,
            module_hash,
            arg,
            caller,
            source,
            done,
        }));
        self.inner.schedule(&mut st, canister);
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

    // ---- the Wasm chunk store (see `chunks`) ----

    /// Adds `chunk` to the chunk store of `canister` and returns its SHA-256.
    /// The caller must be a controller of the canister or the canister
    /// itself. The hash is computed outside the replica's lock.
    pub fn upload_chunk(&self, caller: Principal, canister: Principal, chunk: Bytes) -> Result<chunks::ChunkHash, Reject> {
        chunks::check_chunk_size(chunk.len())?;
        self.with_chunk_store(caller, canister, |_| Ok(()))?;
        let hash = chunks::sha256(&chunk);
        let len = chunk.len();
        self.with_chunk_store(caller, canister, |store| store.insert(canister, hash, chunk))?;
        tracing::debug!(canister = %canister, bytes = len, hash = %hex::encode(hash), "chunk stored");
        Ok(hash)
    }

    /// The hashes in the chunk store of `canister`, ascending (controllers
    /// and the canister itself).
    pub fn stored_chunks(&self, caller: Principal, canister: Principal) -> Result<Vec<chunks::ChunkHash>, Reject> {
        self.with_chunk_store(caller, canister, |store| Ok(store.hashes()))
    }

    /// Empties the chunk store of `canister` (controllers and the canister
    /// itself). The chunks (up to 100 MiB) are freed outside the lock.
    pub fn clear_chunk_store(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let old = self.with_chunk_store(caller, canister, |store| Ok(std::mem::take(store)))?;
        drop(old);
        Ok(())
    }

    /// The chunks `hashes` (in order) from the store of canister `store`,
    /// which `caller` controls or is (for `install_chunked_code`).
    pub fn chunks_for_install(&self, caller: Principal, store: Principal, hashes: &[chunks::ChunkHash]) -> Result<Vec<Bytes>, Reject> {
        self.with_chunk_store(caller, store, |s| s.select(store, hashes))
    }

    /// Runs `f` on the chunk store of `canister` under the lock, if
    /// `caller` is a controller of the canister or the canister itself.
    fn with_chunk_store<T>(
        &self,
        caller: Principal,
        canister: Principal,
        f: impl FnOnce(&mut chunks::ChunkStore) -> Result<T, chunks::ChunkStoreError>,
    ) -> Result<T, Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if caller != canister && !slot.controllers.contains(&caller) {
            return Err(Reject::system(
                ErrorCode::CanisterInvalidController,
                format!("Only the controllers of the canister {canister} and the canister itself can use its chunk store. {caller} is neither."),
            ));
        }
        Ok(f(&mut slot.chunk_store)?)
    }

    /// An update call from outside (ingress), answered asynchronously.
    pub fn submit_call(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> oneshot::Receiver<CallResult> {
        self.submit(caller, canister, method, arg, false)
    }

    /// A query call from outside (non-replicated; state changes discarded).
    pub fn submit_query(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> oneshot::Receiver<CallResult> {
        self.submit(caller, canister, method, arg, true)
    }

    /// An update call; waits for the response.
    pub async fn call(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> CallResult {
        self.submit_call(caller, canister, method, arg)
            .await
            .unwrap_or_else(|_| Err(Reject::system(ErrorCode::SubnetOversubscribed, "the replica is shutting down")))
    }

    /// A query call; waits for the response.
    pub async fn query(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> CallResult {
        self.submit_query(caller, canister, method, arg)
            .await
            .unwrap_or_else(|_| Err(Reject::system(ErrorCode::SubnetOversubscribed, "the replica is shutting down")))
    }

    fn submit(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>, query: bool) -> oneshot::Receiver<CallResult> {
        let (tx, rx) = oneshot::channel();
        if canister == Principal::management_canister() {
            self.inner.push_job(Job {
                canister,
                instance: None,
                task: Task::Management {
                    caller,
                    method: method.to_string(),
                    arg,
                    cycles: 0,
                    reply: ReplyTo::Ingress(tx),
                },
            });
            return rx;
        }
        if arg.len() > self.inner.config.limits.max_inter_canister_payload {
            let _ = tx.send(Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "the ingress payload ({} bytes) is larger than {} bytes",
                    arg.len(),
                    self.inner.config.limits.max_inter_canister_payload
                ),
            )));
            return rx;
        }
        let mut st = self.lock();
        if let Err(r) = st.check_callable(&canister, method, query) {
            let _ = tx.send(Err(r));
            return rx;
        }
        let context = st.new_context(canister, Origin::Ingress(tx), 0);
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return rx;
        };
        slot.queue.push_back(Task::Call {
            context,
            method: method.to_string(),
            arg,
            caller,
            query: query.then_some(false),
            cycles: 0,
        });
        self.inner.schedule(&mut st, canister);
        rx
    }

    /// Stops a canister: new calls are rejected, responses still processed;
    /// resolves once no call context is open.
    pub async fn stop(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let (tx, rx) = oneshot::channel();
        self.stop_with(caller, canister, Box::new(move |r| {
            let _ = tx.send(r);
        }));
        rx.await
            .unwrap_or_else(|_| Err(Reject::system(ErrorCode::SubnetOversubscribed, "the replica is shutting down")))
    }

    fn stop_with(&self, caller: Principal, canister: Principal, done: Box<dyn FnOnce(Result<(), Reject>) + Send>) {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return done(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
        };
        if !slot.controllers.contains(&caller) {
            return done(Err(not_controller(&canister, &caller)));
        }
        match slot.status {
            Status::Stopped => done(Ok(())),
            _ => {
                if slot.status == Status::Running {
                    slot.version += 1;
                }
                slot.status = Status::Stopping;
                slot.stop_waiters.push(done);
                st.maybe_stopped(canister);
            }
        }
    }

    pub fn start(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        let waiters = std::mem::take(&mut slot.stop_waiters);
        slot.status = Status::Running;
        slot.version += 1;
        drop(st);
        for w in waiters {
            w(Err(Reject::system(ErrorCode::CanisterStoppingCancelled, format!("Canister {canister}'s stop request was cancelled by start_canister"))));
        }
        Ok(())
    }

    pub fn delete(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        if slot.status != Status::Stopped || slot.busy {
            return Err(Reject::system(
                ErrorCode::CanisterNotStopped,
                format!("Canister {canister} must be stopped before it is deleted."),
            ));
        }
        let slot = st.canisters.remove(&canister);
        st.names.retain(|_, p| *p != canister);
        // Its memory (heap, stable memory, chunk store) is freed outside the lock.
        drop(st);
        drop(slot);
        Ok(())
    }

    pub fn update_controllers(&self, caller: Principal, canister: Principal, controllers: Vec<Principal>) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        slot.controllers = controllers;
        slot.version += 1;
        Ok(())
    }

    /// Remembers the Candid interface a module carries (see
    /// [`install::candid_section`]).
    pub(crate) fn remember_interface(&self, module_hash: [u8; 32], did: String) {
        self.inner.interfaces.lock().unwrap_or_else(|e| e.into_inner()).insert(module_hash, did.into());
    }

    /// The Candid interface of the module `canister` runs, if it carries one.
    pub fn candid_interface(&self, canister: &Principal) -> Option<Arc<str>> {
        let hash = self.status(canister)?.module_hash?;
        self.inner.interfaces.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).cloned()
    }

    pub fn deposit_cycles(&self, canister: Principal, amount: u64) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        slot.balance = slot.balance.saturating_add(amount);
        Ok(())
    }

    pub fn raw_rand(&self) -> [u8; 32] {
        use rand::Rng;
        let mut out = [0u8; 32];
        self.lock().rng.fill_bytes(&mut out);
        out
    }
}

fn not_controller(canister: &Principal, caller: &Principal) -> Reject {
    Reject::system(
        ErrorCode::CanisterInvalidController,
        format!("Only the controllers of the canister {canister} can control it. {caller} is not one of them."),
    )
}

impl State {
    fn now(&mut self) -> u64 {
        let t = wall_clock_ns().saturating_add(self.time_offset).max(self.last_time + 1);
        self.last_time = t;
        t
    }

    fn new_context(&mut self, canister: Principal, origin: Origin, deadline: u64) -> u64 {
        let id = self.next_context;
        self.next_context += 1;
        self.contexts.insert(
            id,
            CallContext {
                canister,
                needs_response: !matches!(origin, Origin::System),
                origin,
                outstanding: 0,
                deadline,
                cycles: 0,
            },
        );
        if let Some(s) = self.canisters.get_mut(&canister) {
            s.open_contexts += 1;
        }
        id
    }

    /// Adds cycles to a canister's balance (a refund; gone canisters lose it).
    fn credit(&mut self, canister: &Principal, cycles: u64) {
        if let Some(slot) = self.canisters.get_mut(canister) {
            slot.balance = slot.balance.saturating_add(cycles);
        }
    }

    /// Checks that `method` can be called on `canister` now.
    fn check_callable(&self, canister: &Principal, method: &str, query: bool) -> Result<(), Reject> {
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

    /// Sends `result` to whoever waits on context `id`, if it still needs one.
    /// Returns the (caller canister, response task) to enqueue, if any.
    fn respond(&mut self, id: u64, result: CallResult) -> Option<(Principal, Task)> {
        let ctx = self.contexts.get_mut(&id)?;
        if !ctx.needs_response {
            return None;
        }
        ctx.needs_response = false;
        let origin = std::mem::replace(&mut ctx.origin, Origin::System);
        let out = match origin {
            Origin::Ingress(tx) => {
                let _ = tx.send(result);
                None
            }
            Origin::Canister { callback } => {
                // A bounded-wait callback that already expired has been
                // answered with SYS_UNKNOWN: the late response is dropped.
                // Unaccepted cycles go back to the caller with the response.
                let refund = std::mem::take(&mut ctx.cycles);
                let caller = self.callbacks.get(&callback).map(|cb| cb.caller);
                if let Some(caller) = caller {
                    self.credit(&caller, refund);
                }
                caller.map(|caller| (caller, Task::Response { callback, result, refund }))
            }
            Origin::System => None,
        };
        self.maybe_close(id);
        out
    }

    /// Deletes a context that needs no response and has nothing outstanding.
    fn maybe_close(&mut self, id: u64) {
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

    fn maybe_stopped(&mut self, canister: Principal) {
        let Some(slot) = self.canisters.get_mut(&canister) else { return };
        if slot.status == Status::Stopping && slot.open_contexts == 0 {
            slot.status = Status::Stopped;
            slot.version += 1;
            for w in std::mem::take(&mut slot.stop_waiters) {
                w(Ok(()));
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the next task of `canister` if it is idle.
    fn schedule(&self, st: &mut State, canister: Principal) {
        let Some(slot) = st.canisters.get_mut(&canister) else { return };
        if slot.busy || slot.queue.is_empty() {
            return;
        }
        let Some(task) = slot.queue.pop_front() else { return };
        slot.busy = true;
        let instance = slot.instance.take();
        self.push_job(Job { canister, instance, task });
    }

    fn push_job(&self, job: Job) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.push_back(job);
        drop(jobs);
        self.jobs_ready.notify_one();
    }

    fn enqueue(&self, st: &mut State, canister: Principal, task: Task) {
        if let Some(slot) = st.canisters.get_mut(&canister) {
            slot.queue.push_back(task);
            self.schedule(st, canister);
        }
    }

    /// Fires due timers and expires bounded-wait calls.
    fn tick(&self) {
        let mut st = self.lock();
        let now = st.now();
        let due: Vec<Principal> = st
            .canisters
            .iter()
            .filter(|(_, s)| s.timer != 0 && s.timer <= now && s.status == Status::Running && s.module_hash.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(s) = st.canisters.get_mut(&id) {
                s.timer = 0;
            }
            self.enqueue(&mut st, id, Task::Timer);
        }
        let expired: Vec<(u64, u64)> = st.deadlines.range(..=(now, u64::MAX)).copied().collect();
        for key in expired {
            st.deadlines.remove(&key);
            let cb_id = key.1;
            let Some(cb) = st.callbacks.get(&cb_id) else { continue };
            let caller = cb.caller;
            // The callee's context no longer answers this callback.
            if let Some(cctx) = cb.callee_context
                && let Some(c) = st.contexts.get_mut(&cctx)
            {
                c.origin = Origin::System;
                c.needs_response = false;
                st.maybe_close(cctx);
            }
            let reject = Reject {
                code: RejectCode::SysUnknown,
                error_code: Some(ErrorCode::DeadlineExpired),
                message: "IC0601: the call's deadline expired before a response arrived; the call may or may not have been executed".into(),
            };
            // The response (and any refund in it) is dropped when it comes.
            self.enqueue(&mut st, caller, Task::Response { callback: cb_id, result: Err(reject), refund: 0 });
        }
    }

    fn next_wakeup(&self) -> Option<u64> {
        let st = self.lock();
        let timers = st.canisters.values().filter(|s| s.timer != 0).map(|s| s.timer).min();
        let deadline = st.deadlines.iter().next().map(|(d, _)| *d);
        match (timers, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.saturating_sub(st.time_offset))
    }
}

fn clock_thread(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        inner.tick();
        let wait = match inner.next_wakeup() {
            Some(at) => Duration::from_nanos(at.saturating_sub(wall_clock_ns())).min(Duration::from_millis(100)),
            None => Duration::from_millis(100),
        };
        let guard = inner.lock();
        let _ = inner.clock_changed.wait_timeout(guard, wait.max(Duration::from_micros(200)));
    }
}

fn executor_thread(weak: Weak<Inner>) {
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
        }
    }
}

/// What an executed task hands back to the scheduler.
struct Finished {
    instance: Option<Box<CanisterInstance>>,
    apply: Box<dyn FnOnce(&Arc<Inner>, &mut State) + Send>,
}

fn run_job(inner: &Arc<Inner>, job: Job) {
    let Job { canister, instance, task } = job;
    if let Task::Management { caller, method, arg, cycles, reply } = task {
        let replica = Replica { inner: inner.clone() };
        management::dispatch(&replica, caller, &method, arg, cycles, reply);
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
    let finished = match task {
        Task::Install(install) => run_install(inner, canister, instance, install),
        task => run_message(inner, canister, instance, task),
    };
    inner.executing.lock().unwrap_or_else(|e| e.into_inner()).remove(&canister);
    inner.in_flight.fetch_sub(1, SeqCst);
    let mut st = inner.lock();
    (finished.apply)(inner, &mut st);
    if let Some(slot) = st.canisters.get_mut(&canister) {
        if let Some(i) = finished.instance {
            slot.memory_size = i.memory_size() as u64 + i.stable_size_bytes();
            slot.instance = Some(i);
        }
        slot.busy = false;
    }
    inner.schedule(&mut st, canister);
}

fn outstanding_counter(inner: &Arc<Inner>, canister: Principal) -> exec::OutstandingCalls {
    let weak = Arc::downgrade(inner);
    Arc::new(move |callee: &Principal| {
        weak.upgrade()
            .map_or(0, |i| i.lock().outstanding.get(&(canister, *callee)).copied().unwrap_or(0))
    })
}

/// Runs a call, response or timer on the canister.
fn run_message(inner: &Arc<Inner>, canister: Principal, instance: Option<Box<CanisterInstance>>, task: Task) -> Finished {
    let limits = &inner.config.limits;
    // Gather what the execution needs under the lock.
    let (info, timer, time, prep) = {
        let mut st = inner.lock();
        let time = st.now();
        let Some(slot) = st.canisters.get(&canister) else {
            return Finished {
                instance,
                apply: Box::new(|_, _| {}),
            };
        };
        let info = slot.info(canister);
        let timer = slot.timer;
        let prep = match &task {
            Task::Call { context, .. } => {
                let ctx = st.contexts.get(context);
                Prep::Call {
                    context: *context,
                    deadline: ctx.map_or(0, |c| c.deadline),
                    needs_response: ctx.is_some_and(|c| c.needs_response),
                }
            }
            Task::Response { callback, .. } => match st.callbacks.get(callback) {
                Some(cb) => Prep::Response {
                    context: cb.context,
                    env: cb.env,
                    callee: cb.callee,
                    deadline: cb.deadline.unwrap_or(0),
                    needs_response: st.contexts.get(&cb.context).is_some_and(|c| c.needs_response),
                },
                None => Prep::Skip,
            },
            Task::Timer => Prep::Timer,
            Task::Install(_) | Task::Management { .. } | Task::ManagementResponse { .. } => Prep::Skip,
        };
        (info, timer, time, prep)
    };
    let Some(mut instance) = instance else {
        // No module (uninstalled since the task was queued): answer and drop.
        return Finished {
            instance: None,
            apply: Box::new(move |inner, st| {
                if let Prep::Call { context, .. } = prep {
                    let r = Reject::system(ErrorCode::CanisterWasmModuleNotFound, format!("Canister {canister} contains no Wasm module"));
                    if let Some((to, t)) = st.respond(context, Err(r)) {
                        inner.enqueue(st, to, t);
                    }
                }
            }),
        };
    };
    let outstanding = outstanding_counter(inner, canister);
    match (task, prep) {
        (Task::Call { method, arg, caller, query, cycles, .. }, Prep::Call { context, deadline, needs_response }) => {
            let entry = match query {
                Some(replicated) => EntryPoint::Query { method, replicated },
                None => EntryPoint::Update(method),
            };
            let limit = if query.is_some() { limits.instructions_per_query } else { limits.instructions_per_update };
            let mut input = MessageInput::new(entry, caller, time, limit);
            input.arg = arg;
            input.deadline = deadline;
            input.needs_response = needs_response;
            input.cycles_available = cycles;
            let outcome = instance.execute(input, info, timer, outstanding);
            finish(instance, canister, context, outcome)
        }
        (Task::Response { callback, result, refund }, Prep::Response { context, env, callee, deadline, needs_response }) => {
            let (entry, arg, reject) = match result {
                Ok(bytes) => (EntryPoint::Reply(env), bytes, None),
                Err(r) => (EntryPoint::Reject(env), Vec::new(), Some((r.code, r.message))),
            };
            let mut input = MessageInput::new(entry, callee, time, limits.instructions_per_update);
            input.arg = arg;
            input.reject = reject;
            input.deadline = deadline;
            input.needs_response = needs_response;
            input.cycles_refunded = refund;
            let outcome = instance.execute(input, info.clone(), timer, outstanding.clone());
            let outcome = match outcome {
                Outcome::Trapped { code, message, instructions } => {
                    // The callback trapped: its cleanup runs, as a separate
                    // execution whose own trap is ignored.
                    let mut cleanup = MessageInput::new(EntryPoint::Cleanup(env), callee, time, limits.instructions_per_update);
                    cleanup.deadline = deadline;
                    if let Outcome::Trapped { message: m, .. } = instance.execute(cleanup, info, timer, outstanding) {
                        tracing::debug!(canister = %canister, "cleanup callback trapped: {m}");
                    }
                    Outcome::Trapped { code, message, instructions }
                }
                other => other,
            };
            let mut finished = finish(instance, canister, context, outcome);
            let apply = finished.apply;
            finished.apply = Box::new(move |inner, st| {
                // The call this callback belongs to is no longer outstanding.
                if st.callbacks.remove(&callback).is_some() {
                    if let Some(n) = st.outstanding.get_mut(&(canister, callee)) {
                        *n = n.saturating_sub(1);
                    }
                    if let Some(c) = st.contexts.get_mut(&context) {
                        c.outstanding = c.outstanding.saturating_sub(1);
                    }
                }
                apply(inner, st);
            });
            finished
        }
        (Task::Timer, Prep::Timer) => {
            let input = MessageInput::new(EntryPoint::Timer, Principal::management_canister(), time, limits.instructions_per_update);
            let outcome = instance.execute(input, info, timer, outstanding);
            let context = {
                let mut st = inner.lock();
                st.new_context(canister, Origin::System, 0)
            };
            finish(instance, canister, context, outcome)
        }
        (Task::Response { callback, .. }, _) => {
            // The callback is gone (its caller's context was deleted): drop.
            tracing::debug!(canister = %canister, callback, "dropping a response without a callback");
            Finished {
                instance: Some(instance),
                apply: Box::new(|_, _| {}),
            }
        }
        _ => Finished {
            instance: Some(instance),
            apply: Box::new(|_, _| {}),
        },
    }
}

enum Prep {
    Call { context: u64, deadline: u64, needs_response: bool },
    Response { context: u64, env: u64, callee: Principal, deadline: u64, needs_response: bool },
    Timer,
    Skip,
}

/// Turns an execution outcome into state changes: the response, the
/// outgoing calls, the timer, and starvation of the context.
fn finish(instance: Box<CanisterInstance>, canister: Principal, context: u64, outcome: Outcome) -> Finished {
    Finished {
        instance: Some(instance),
        apply: Box::new(move |inner, st| match outcome {
            Outcome::Committed(effects) => {
                if let Some(slot) = st.canisters.get_mut(&canister) {
                    if let Some(t) = effects.timer {
                        slot.timer = t;
                        inner.clock_changed.notify_all();
                    }
                    slot.balance = slot.balance.saturating_add(effects.cycles_accepted);
                    let attached: u64 = effects.calls.iter().map(|c| c.cycles).sum();
                    slot.balance = slot.balance.saturating_sub(attached);
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
                let delivery = starve(st, context, || {
                    let what = match code {
                        ErrorCode::CanisterCalledTrap => format!("Canister called `ic0.trap` with message: '{message}'"),
                        ErrorCode::CanisterInstructionLimitExceeded | ErrorCode::CanisterContractViolation => message.clone(),
                        _ => format!("Canister trapped: {message}"),
                    };
                    Reject::system(code, format!("Error from Canister {canister}: {what}"))
                });
                if let Some((to, task)) = delivery {
                    inner.enqueue(st, to, task);
                }
            }
        }),
    }
}

/// If nothing can answer context `id` anymore, answers it with `reject()`.
fn starve(st: &mut State, id: u64, reject: impl FnOnce() -> Reject) -> Option<(Principal, Task)> {
    let ctx = st.contexts.get(&id)?;
    if ctx.needs_response && ctx.outstanding == 0 {
        return st.respond(id, Err(reject()));
    }
    st.maybe_close(id);
    None
}

/// Delivers a committed outgoing call.
fn send_call(inner: &Arc<Inner>, st: &mut State, caller: Principal, context: u64, call: OutgoingCall) {
    let now = st.now();
    let deadline = call.timeout_seconds.map(|t| now.saturating_add(u64::from(t) * 1_000_000_000));
    let callback = st.next_callback;
    st.next_callback += 1;
    st.callbacks.insert(
        callback,
        Callback {
            caller,
            context,
            env: call.env,
            callee: call.callee,
            deadline,
            callee_context: None,
            cycles: call.cycles,
            management_accepts: call.callee == Principal::management_canister() && call.method == "deposit_cycles",
        },
    );
    *st.outstanding.entry((caller, call.callee)).or_default() += 1;
    if let Some(c) = st.contexts.get_mut(&context) {
        c.outstanding += 1;
    }
    if let Some(d) = deadline {
        st.deadlines.insert((d, callback));
        inner.clock_changed.notify_all();
    }
    if call.callee == Principal::management_canister() {
        inner.push_job(Job {
            canister: call.callee,
            instance: None,
            task: Task::Management {
                caller,
                method: call.method,
                arg: call.arg,
                cycles: call.cycles,
                reply: ReplyTo::Callback(callback),
            },
        });
        return;
    }
    if let Err(reject) = st.check_callable(&call.callee, &call.method, false) {
        let reject = if reject.error_code == Some(ErrorCode::CanisterNotFound) {
            Reject { code: RejectCode::DestinationInvalid, ..reject }
        } else {
            reject
        };
        st.credit(&caller, call.cycles);
        inner.enqueue(st, caller, Task::Response { callback, result: Err(reject), refund: call.cycles });
        return;
    }
    let callee_context = st.new_context(call.callee, Origin::Canister { callback }, deadline.unwrap_or(0));
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
fn deliver_response(inner: &Arc<Inner>, callback: u64, result: CallResult) {
    inner.push_job(Job {
        canister: Principal::management_canister(),
        instance: None,
        task: Task::ManagementResponse { callback, result },
    });
}

/// Enqueues a management canister response for the calling canister.
fn enqueue_management_response(inner: &Arc<Inner>, callback: u64, result: CallResult) {
    let mut st = inner.lock();
    let Some(cb) = st.callbacks.get(&callback) else { return };
    let caller = cb.caller;
    let refund = if result.is_ok() && cb.management_accepts { 0 } else { cb.cycles };
    st.credit(&caller, refund);
    inner.enqueue(&mut st, caller, Task::Response { callback, result, refund });
}

/// What the history records of an install besides the module hash.
#[derive(Clone, Copy)]
struct Deployment {
    mode: InstallMode,
    source: InstallSource,
    caller: Principal,
}

/// The state changes of a successful install; the caller learns of it only
/// once they are applied (so its next call finds the new module).
fn installed(
    instance: Box<CanisterInstance>,
    canister: Principal,
    module_hash: [u8; 32],
    deployment: Deployment,
    effects: exec::Effects,
    done: Box<dyn FnOnce(Result<(), Reject>) + Send>,
) -> Finished {
    let methods = instance.methods().clone();
    Finished {
        instance: Some(instance),
        apply: Box::new(move |inner, st| {
            let time = st.now();
            if let Some(slot) = st.canisters.get_mut(&canister) {
                slot.module_hash = Some(module_hash);
                slot.methods = methods;
                slot.version += 1;
                slot.timer = effects.timer.unwrap_or(0);
                slot.history.record(CodeDeployment {
                    mode: deployment.mode,
                    source: deployment.source,
                    caller: deployment.caller,
                    module_hash,
                    canister_version: slot.version,
                    time,
                });
            }
            let context = st.new_context(canister, Origin::System, 0);
            for call in effects.calls {
                send_call(inner, st, canister, context, call);
            }
            st.maybe_close(context);
            done(Ok(()));
        }),
    }
}

/// Installs a module: install, reinstall or upgrade (atomic).
fn run_install(inner: &Arc<Inner>, canister: Principal, old: Option<Box<CanisterInstance>>, job: InstallJob) -> Finished {
    let InstallJob { mode, component, module_hash, arg, caller, source, done } = job;
    let deployment = Deployment { mode, source, caller };
    let limits = inner.config.limits.clone();
    let (info, time, had_module) = {
        let mut st = inner.lock();
        let time = st.now();
        match st.canisters.get(&canister) {
            Some(slot) => (slot.info(canister), time, slot.module_hash.is_some()),
            None => {
                done(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
                return Finished { instance: old, apply: Box::new(|_, _| {}) };
            }
        }
    };
    let fail = |old: Option<Box<CanisterInstance>>, reject: Reject, done: Box<dyn FnOnce(Result<(), Reject>) + Send>| {
        done(Err(reject));
        Finished { instance: old, apply: Box::new(|_, _| {}) }
    };
    let outstanding = outstanding_counter(inner, canister);
    let name = canister.to_text();
    let stable_pages = limits.stable_memory_pages;
    match mode {
        InstallMode::Install | InstallMode::Reinstall => {
            if mode == InstallMode::Install && had_module {
                let r = Reject::system(
                    ErrorCode::CanisterAlreadyInstalled,
                    format!("Canister {canister} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."),
                );
                return fail(old, r, done);
            }
            let mut instance = match CanisterInstance::new(&inner.runtime, &component, StableMemory::new(stable_pages), &name) {
                Ok(i) => Box::new(i),
                Err(e) => return fail(old, Reject::system(ErrorCode::CanisterInvalidWasm, format!("Canister {canister}: {e}")), done),
            };
            let mut input = MessageInput::new(EntryPoint::Init, caller, time, limits.instructions_per_install);
            input.arg = arg;
            match instance.execute(input, info, 0, outstanding) {
                Outcome::Trapped { code, message, .. } => {
                    fail(old, Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during init: {message}")), done)
                }
                Outcome::Committed(effects) => installed(instance, canister, module_hash, deployment, effects, done),
            }
        }
        InstallMode::Upgrade => {
            let Some(mut old_instance) = old else {
                return fail(
                    None,
                    Reject::system(ErrorCode::CanisterWasmModuleNotFound, format!("Canister {canister} has no module to upgrade")),
                    done,
                );
            };
            let mut pre = MessageInput::new(EntryPoint::PreUpgrade, caller, time, limits.instructions_per_install);
            pre.stage_only = true;
            if let Outcome::Trapped { code, message, .. } = old_instance.execute(pre, info.clone(), 0, outstanding.clone()) {
                return fail(
                    Some(old_instance),
                    Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during pre_upgrade: {message}")),
                    done,
                );
            }
            let stable = old_instance.take_stable();
            let mut new_instance = match CanisterInstance::new(&inner.runtime, &component, stable, &name) {
                Ok(i) => Box::new(i),
                Err(e) => {
                    // The stable memory was moved into the failed attempt;
                    // nothing ran, so re-create it from the old instance is
                    // not possible: InstallError happens before any move.
                    old_instance.discard_staged();
                    return fail(
                        Some(old_instance),
                        Reject::system(ErrorCode::CanisterInvalidWasm, format!("Canister {canister}: {e}")),
                        done,
                    );
                }
            };
            let mut post = MessageInput::new(EntryPoint::PostUpgrade, caller, time, limits.instructions_per_install);
            post.arg = arg;
            match new_instance.execute(post, info, 0, outstanding) {
                Outcome::Trapped { code, message, .. } => {
                    // Back to the old version: stable memory (with pre_upgrade's
                    // writes undone) and the old heap.
                    let mut stable = new_instance.take_stable();
                    stable.rollback();
                    old_instance.put_stable(stable);
                    old_instance.discard_staged();
                    fail(
                        Some(old_instance),
                        Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during post_upgrade: {message}")),
                        done,
                    )
                }
                Outcome::Committed(effects) => installed(new_instance, canister, module_hash, deployment, effects, done),
            }
        }
    }
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
