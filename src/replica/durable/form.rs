//! What a state directory keeps of the replica's state, and both
//! directions: [`capture`] (at a quiescent point: what changed since the
//! last cut, as one [`CutWrite`]) and [`restore`] (a loaded directory into
//! a fresh replica).
//!
//! The stored forms are plain data (postcard). What cannot be stored is
//! a waiter outside the replica (an ingress caller's channel, a host API
//! future): a cut keeps that someone waits, and after a restart the
//! response goes nowhere, as for a caller that went away. Every canister
//! caller is data (a callback id), so every call still gets exactly one
//! response.

use crate::replica::remote::RemoteOrigin;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use candid::Principal;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::db::{CutWrite, Loaded, MemoryKind, MemoryWrite, StateDirError};
use crate::replica::exec::{CanisterInstance, Continuation, InstanceImage, MethodKind};
use crate::replica::history::{CanisterHistory, ChangeOrigin, InstallSource};
use crate::replica::logs::CanisterLog;
use crate::replica::memory::PERSIST_BLOCK;
use crate::replica::settings::Settings;
use crate::replica::snapshots::{CanisterSnapshot, SnapshotSource, UnsavedBlocks};
use crate::replica::stable::StableMemory;
use crate::replica::state::{CallContext, Callback, Done, InstallJob, ModuleSource, Origin, ReplyTo, Slot, State, SystemTask, Task};
use crate::replica::{CallResult, InstallMode, Reject, RejectCode, Replica, Status, chunks, management, scheduler};

#[derive(Serialize, Deserialize)]
struct StoredState {
    time_offset: u64,
    last_time: u64,
    rng_seed: u64,
    next_context: u64,
    next_callback: u64,
    /// (subnet, start, end, next free index).
    ranges: Vec<(Principal, u64, u64, u64)>,
    names: Vec<(String, Principal)>,
    deleted: Vec<Principal>,
    contexts: Vec<(u64, StoredContext)>,
    callbacks: Vec<(u64, StoredCallback)>,
    outstanding: Vec<(Principal, Principal, u32)>,
    deadlines: Vec<(u64, u64)>,
    /// The router's own state (XNet streams), when it keeps one.
    router: Option<Vec<u8>>,
    /// Answers to other nodes' calls given before a router was set.
    unsent_remote: Vec<(RemoteOrigin, StoredResult, u64)>,
}

#[derive(Serialize, Deserialize)]
enum StoredOrigin {
    /// Someone outside waits (gone after a restart).
    Outside,
    Canister { callback: u64 },
    Expired,
    System,
    /// A canister on another node waits: answered through the router
    /// after a restart too.
    Remote(RemoteOrigin),
}

#[derive(Serialize, Deserialize)]
struct StoredContext {
    canister: Principal,
    caller: Principal,
    origin: StoredOrigin,
    needs_response: bool,
    outstanding: u32,
    deadline: u64,
    instructions: u64,
    cycles: u64,
    inspected: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredCallback {
    caller: Principal,
    context: u64,
    continuation: Continuation,
    callee: Principal,
    callee_context: Option<u64>,
    cycles: u64,
    management_accepts: bool,
    orphaned: bool,
    reservation: crate::replica::cycles::Reservation,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(super) enum StoredVal {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
}

#[derive(Serialize, Deserialize)]
enum StoredTask {
    Call {
        context: u64,
        method: String,
        #[serde(with = "serde_bytes")]
        arg: Vec<u8>,
        caller: Principal,
        query: Option<bool>,
        cycles: u64,
    },
    Response {
        callback: u64,
        result: StoredResult,
        refund: u64,
    },
    System(SystemTask),
    Install {
        mode: InstallMode,
        module_hash: [u8; 32],
        #[serde(with = "serde_bytes")]
        arg: Vec<u8>,
        caller: Principal,
        source: InstallSource,
        skip_pre_upgrade: bool,
        keep_main_memory: Option<bool>,
        origin: ChangeOrigin,
        answers: Option<u64>,
    },
    Uninstall {
        origin: ChangeOrigin,
        answers: Option<u64>,
    },
    /// A snapshot operation is not kept: a canister that asked for it gets
    /// a transient reject after the restart.
    Snapshot {
        answers: Option<u64>,
    },
    Management {
        caller: Principal,
        caller_version: Option<u64>,
        method: String,
        #[serde(with = "serde_bytes")]
        arg: Vec<u8>,
        cycles: u64,
        answers: Option<u64>,
    },
    ManagementResponse {
        callback: u64,
        result: StoredResult,
    },
}

#[derive(Serialize, Deserialize)]
enum StoredResult {
    Reply(#[serde(with = "serde_bytes")] Vec<u8>),
    Reject(Reject),
}

impl From<&CallResult> for StoredResult {
    fn from(r: &CallResult) -> Self {
        match r {
            Ok(bytes) => StoredResult::Reply(bytes.clone()),
            Err(reject) => StoredResult::Reject(reject.clone()),
        }
    }
}

impl From<StoredResult> for CallResult {
    fn from(r: StoredResult) -> Self {
        match r {
            StoredResult::Reply(bytes) => Ok(bytes),
            StoredResult::Reject(reject) => Err(reject),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredCanister {
    controllers: Vec<Principal>,
    status: Status,
    version: u64,
    balance: u128,
    /// Replica time memory and compute are charged up to.
    charged_until: u64,
    module_hash: Option<[u8; 32]>,
    methods: Vec<(String, MethodKind)>,
    /// The slot has an instance (a module installed and running).
    has_instance: bool,
    timer: u64,
    heartbeat: bool,
    low_memory_hook: bool,
    low_memory_fired: bool,
    open_contexts: u32,
    heap_size: u64,
    stable_size: u64,
    /// The instance's committed heap (bytes) and stable memory (pages).
    heap_bytes: u64,
    stable_pages: u64,
    globals: Vec<StoredVal>,
    chunks: Vec<[u8; 32]>,
    history: CanisterHistory,
    settings: Settings,
    #[serde(with = "serde_bytes")]
    certified_data: Vec<u8>,
    log: CanisterLog,
    subnet: Principal,
    next_snapshot: u64,
    queue: Vec<StoredTask>,
    /// (times out at, the callback a canister's stop call answers).
    stop_waiters: Vec<(u64, Option<u64>)>,
}

/// A canister snapshot (written once; snapshots never change).
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    taken_at: u64,
    canister_version: u64,
    module_hash: [u8; 32],
    #[serde(with = "serde_bytes")]
    heap: Vec<u8>,
    stable_pages: u64,
    stable_units: Vec<(u32, serde_bytes::ByteBuf)>,
    globals: Vec<StoredVal>,
    #[serde(with = "serde_bytes")]
    certified_data: Vec<u8>,
    chunks: Vec<([u8; 32], serde_bytes::ByteBuf)>,
    timer: u64,
}

fn store_snapshot(s: &CanisterSnapshot) -> Vec<u8> {
    encode(&StoredSnapshot {
        taken_at: s.taken_at,
        canister_version: s.canister_version,
        module_hash: s.module_hash,
        heap: s.image.heap.to_vec(),
        stable_pages: s.image.stable.size(),
        stable_units: s.image.stable.stored_units().into_iter().map(|(u, b)| (u, serde_bytes::ByteBuf::from(b))).collect(),
        globals: s.image.globals.iter().map(store_val).collect(),
        certified_data: s.certified_data.to_vec(),
        chunks: s.chunk_store.entries().map(|(h, b)| (*h, serde_bytes::ByteBuf::from(b.to_vec()))).collect(),
        timer: s.timer,
    })
}

/// What the directory holds now (so a cut writes only the difference).
#[derive(Default)]
pub(super) struct Stored {
    /// BLAKE3 of each canister's record.
    records: HashMap<Principal, [u8; 32]>,
    modules: HashSet<[u8; 32]>,
    chunks: HashMap<Principal, BTreeSet<[u8; 32]>>,
    /// Canisters with memory pages stored.
    memories: HashSet<Principal>,
    /// (heap bytes, stable pages) last stored per canister.
    sizes: HashMap<Principal, (u64, u64)>,
    /// Ids of the snapshots taken from a canister stored, per canister.
    snapshots: HashMap<Principal, BTreeSet<Vec<u8>>>,
    /// Uploaded snapshots stored, per canister.
    uploads: HashMap<Principal, super::uploads::StoredUploads>,
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data of ours: postcard cannot fail on it but for running out
    // of memory, which aborts anyway.
    postcard::to_stdvec(value).unwrap_or_default()
}

pub(super) fn store_val(v: &wasmtime::Val) -> StoredVal {
    match v {
        wasmtime::Val::I32(x) => StoredVal::I32(*x),
        wasmtime::Val::I64(x) => StoredVal::I64(*x),
        wasmtime::Val::F32(x) => StoredVal::F32(*x),
        wasmtime::Val::F64(x) => StoredVal::F64(*x),
        wasmtime::Val::V128(x) => StoredVal::V128(x.as_u128()),
        // Reference globals are not mutable state a module check admits.
        _ => StoredVal::I32(0),
    }
}

pub(super) fn load_val(v: &StoredVal) -> wasmtime::Val {
    match v {
        StoredVal::I32(x) => wasmtime::Val::I32(*x),
        StoredVal::I64(x) => wasmtime::Val::I64(*x),
        StoredVal::F32(x) => wasmtime::Val::F32(*x),
        StoredVal::F64(x) => wasmtime::Val::F64(*x),
        StoredVal::V128(x) => wasmtime::Val::V128((*x).into()),
    }
}

fn store_task(task: &Task, modules: &mut Vec<([u8; 32], Arc<[u8]>)>) -> Option<StoredTask> {
    Some(match task {
        Task::Call { context, method, arg, caller, query, cycles } => StoredTask::Call {
            context: *context,
            method: method.clone(),
            arg: arg.clone(),
            caller: *caller,
            query: *query,
            cycles: *cycles,
        },
        Task::Response { callback, result, refund } => StoredTask::Response { callback: *callback, result: result.into(), refund: *refund },
        Task::System(s) => StoredTask::System(*s),
        // Inspections run only in rounds mode, which keeps no state directory.
        Task::Inspect { .. } => return None,
        Task::Install(job) => {
            modules.push((job.module.hash, job.module.bytes.clone()));
            StoredTask::Install {
                mode: job.mode,
                module_hash: job.module.hash,
                arg: job.arg.clone(),
                caller: job.caller,
                source: job.source,
                skip_pre_upgrade: job.skip_pre_upgrade,
                keep_main_memory: job.keep_main_memory,
                origin: job.origin,
                answers: job.done.answers,
            }
        }
        Task::Uninstall { origin, done } => StoredTask::Uninstall { origin: *origin, answers: done.answers },
        Task::Snapshot(job) => StoredTask::Snapshot { answers: job.answers() },
        Task::Management { caller, caller_version, method, arg, cycles, reply } => StoredTask::Management {
            caller: *caller,
            caller_version: *caller_version,
            method: method.clone(),
            arg: arg.clone(),
            cycles: *cycles,
            answers: match reply {
                ReplyTo::Callback(cb) => Some(*cb),
                ReplyTo::Ingress(_) => None,
            },
        },
        Task::ManagementResponse { callback, result } => StoredTask::ManagementResponse { callback: *callback, result: result.into() },
    })
}

/// Everything changed since the last cut. Runs under the state lock with
/// no job in flight, so every instance is in its slot and committed.
pub(super) fn capture(st: &mut State, stored: &mut Stored) -> CutWrite {
    use rand::{Rng, SeedableRng};
    let mut cut = CutWrite { sidecar: std::mem::take(&mut st.sidecar), ..CutWrite::default() };
    // The generator continues from a seed the cut keeps, so a restored
    // replica draws what this one would have.
    let rng_seed = st.rng.next_u64();
    st.rng = rand::rngs::StdRng::seed_from_u64(rng_seed);
    let state = StoredState {
        time_offset: st.time_offset,
        last_time: st.last_time,
        rng_seed,
        next_context: st.next_context,
        next_callback: st.next_callback,
        ranges: st.ranges.iter().map(|r| (r.subnet, r.start, r.end, r.next)).collect(),
        names: st.names.iter().map(|(n, p)| (n.clone(), *p)).collect(),
        deleted: st.deleted.iter().copied().collect(),
        contexts: st.contexts.iter().map(|(id, c)| (*id, store_context(c))).collect(),
        callbacks: st
            .callbacks
            .iter()
            .map(|(id, cb)| {
                let Callback { caller, context, continuation, callee, callee_context, cycles, management_accepts, orphaned, reservation } = cb;
                let stored = StoredCallback {
                    caller: *caller,
                    context: *context,
                    continuation: *continuation,
                    callee: *callee,
                    callee_context: *callee_context,
                    cycles: *cycles,
                    management_accepts: *management_accepts,
                    orphaned: *orphaned,
                    reservation: *reservation,
                };
                (*id, stored)
            })
            .collect(),
        outstanding: st.outstanding.iter().map(|((a, b), n)| (*a, *b, *n)).collect(),
        deadlines: st.deadlines.iter().copied().collect(),
        router: st.router.as_ref().and_then(|r| r.capture()),
        unsent_remote: st.unsent_remote.iter().map(|(to, r)| (to.clone(), (&r.result).into(), r.refund)).collect(),
    };
    cut.state = encode(&state);
    let mut referenced_modules = HashSet::new();
    let mut module_bytes: Vec<([u8; 32], Arc<[u8]>)> = Vec::new();
    for (id, slot) in st.canisters.iter_mut() {
        let (heap_bytes, stable_pages, globals) = match slot.instance.as_mut() {
            Some(instance) => {
                let (heap, stable, globals) = instance.take_changes();
                let sizes = (heap.size, stable.size);
                for (kind, all, blocks) in [(MemoryKind::Heap, heap.all, heap.blocks), (MemoryKind::Stable, stable.all, stable.pages)] {
                    if all || !blocks.is_empty() {
                        cut.memories.push((*id, kind, MemoryWrite { clear: all, truncate_from: None, blocks }));
                    }
                }
                let before = stored.sizes.insert(*id, sizes);
                // Fewer stable pages than last stored (never without a
                // replacement, which clears): drop those past the end.
                if let Some((heap_before, stable_before)) = before {
                    if heap.size < heap_before {
                        cut.memories.push((*id, MemoryKind::Heap, MemoryWrite { truncate_from: Some(heap.size.div_ceil(PERSIST_BLOCK as u64) as u32), ..Default::default() }));
                    }
                    if stable.size < stable_before {
                        cut.memories.push((*id, MemoryKind::Stable, MemoryWrite { truncate_from: Some((stable.size as usize * crate::replica::stable::STABLE_PAGE as usize / crate::replica::stable::STORE_UNIT) as u32), ..Default::default() }));
                    }
                }
                stored.memories.insert(*id);
                (heap.size, stable.size, globals.iter().map(store_val).collect())
            }
            None => {
                if stored.memories.remove(id) {
                    for kind in [MemoryKind::Heap, MemoryKind::Stable] {
                        cut.memories.push((*id, kind, MemoryWrite { clear: true, ..Default::default() }));
                    }
                }
                stored.sizes.remove(id);
                (0, 0, Vec::new())
            }
        };
        if let (Some(hash), Some(bytes)) = (slot.module_hash, &slot.module) {
            module_bytes.push((hash, bytes.clone()));
        }
        let queue = slot.queue.iter().filter_map(|t| store_task(t, &mut module_bytes)).collect();
        let record = StoredCanister {
            controllers: slot.controllers.clone(),
            status: slot.status,
            version: slot.version,
            balance: slot.balance,
            charged_until: slot.charged_until,
            module_hash: slot.module_hash,
            methods: slot.methods.iter().map(|(m, k)| (m.clone(), *k)).collect(),
            has_instance: slot.instance.is_some(),
            timer: slot.timer,
            heartbeat: slot.heartbeat,
            low_memory_hook: slot.low_memory_hook,
            low_memory_fired: slot.low_memory_fired,
            open_contexts: slot.open_contexts,
            heap_size: slot.heap_size,
            stable_size: slot.stable_size,
            heap_bytes,
            stable_pages,
            globals,
            chunks: slot.chunk_store.hashes(),
            history: slot.history.clone(),
            settings: slot.settings.clone(),
            certified_data: slot.certified_data.to_vec(),
            log: slot.log.clone(),
            subnet: slot.subnet,
            next_snapshot: slot.next_snapshot,
            queue,
            stop_waiters: slot.stop_waiters.iter().map(|(until, done)| (*until, done.answers)).collect(),
        };
        let payload = encode(&record);
        let hash = *blake3::hash(&payload).as_bytes();
        if stored.records.insert(*id, hash) != Some(hash) {
            cut.canisters.push((*id, Some(payload)));
        }
        // Chunks: write the new, drop the gone.
        let now: BTreeSet<[u8; 32]> = record.chunks.iter().copied().collect();
        let before = stored.chunks.entry(*id).or_default();
        for (hash, bytes) in slot.chunk_store.entries() {
            if !before.contains(hash) {
                cut.chunks.push((*id, *hash, bytes.clone()));
            }
        }
        for hash in before.difference(&now) {
            cut.drop_chunks.push((*id, *hash));
        }
        *before = now;
        // Snapshots: write the new, drop the gone (module kept alive).
        let before = stored.snapshots.entry(*id).or_default();
        // Snapshots taken from the canister never change: each is written
        // once, here. Uploaded ones change with every upload and are
        // written piece by piece (`uploads`).
        let taken = || slot.snapshots.iter().filter(|s| s.source == SnapshotSource::TakenFromCanister);
        for snapshot in taken() {
            module_bytes.push((snapshot.module_hash, snapshot.module.clone()));
            if !before.contains(&snapshot.id) {
                cut.snapshots.push((*id, snapshot.id.clone(), store_snapshot(snapshot)));
            }
        }
        let now: BTreeSet<Vec<u8>> = taken().map(|s| s.id.clone()).collect();
        for gone in before.difference(&now) {
            cut.drop_snapshots.push((*id, gone.clone()));
        }
        *before = now;
        super::uploads::capture(*id, &mut slot.snapshots, stored.uploads.entry(*id).or_default(), &mut cut);
    }
    for (hash, bytes) in module_bytes {
        referenced_modules.insert(hash);
        if stored.modules.insert(hash) {
            cut.modules.push((hash, bytes));
        }
    }
    stored.modules.retain(|hash| {
        let keep = referenced_modules.contains(hash);
        if !keep {
            cut.drop_modules.push(*hash);
        }
        keep
    });
    let gone: Vec<Principal> = stored.records.keys().filter(|id| !st.canisters.contains_key(id)).copied().collect();
    for id in gone {
        stored.records.remove(&id);
        stored.chunks.remove(&id);
        stored.memories.remove(&id);
        stored.sizes.remove(&id);
        stored.snapshots.remove(&id);
        stored.uploads.remove(&id);
        cut.canisters.push((id, None));
    }
    cut
}

fn store_context(c: &CallContext) -> StoredContext {
    StoredContext {
        canister: c.canister,
        caller: c.caller,
        origin: match &c.origin {
            Origin::Ingress(_) => StoredOrigin::Outside,
            Origin::Remote(to) => StoredOrigin::Remote(to.clone()),
            Origin::Canister { callback } => StoredOrigin::Canister { callback: *callback },
            Origin::Expired => StoredOrigin::Expired,
            Origin::System => StoredOrigin::System,
        },
        needs_response: c.needs_response,
        outstanding: c.outstanding,
        deadline: c.deadline,
        instructions: c.instructions,
        cycles: c.cycles,
        inspected: c.inspected,
    }
}

/// A sender whose receiver is gone: the outside waiter of a restored call.
fn nobody<T>() -> oneshot::Sender<T> {
    oneshot::channel().0
}

/// The outcome of a restored queued operation: to the canister callback
/// it answers, else nowhere.
fn restored_done(answers: Option<u64>, replica: &Replica) -> Done {
    match answers {
        Some(callback) => management::reply_done(ReplyTo::Callback(callback), replica),
        None => Done::new(Box::new(|_| {})),
    }
}

/// Fills the (fresh, empty) state of `replica` from `loaded`. Returns the
/// number of canisters and what the directory holds.
pub(super) fn restore(replica: &Replica, loaded: Loaded, file: &std::path::Path) -> Result<(usize, Stored), StateDirError> {
    let damaged = |what: String| StateDirError::Damaged { path: file.to_path_buf(), what };
    let mut stored = Stored::default();
    *replica.inner.restored_sidecar.lock().unwrap_or_else(|e| e.into_inner()) = loaded.sidecar;
    let Some(state_bytes) = loaded.state else {
        return Ok((0, stored));
    };
    let state: StoredState = postcard::from_bytes(&state_bytes).map_err(|e| damaged(format!("record meta/state cannot be decoded: {e}")))?;
    let inner = &replica.inner;
    let mut prepared: HashMap<[u8; 32], crate::replica::exec::Code> = HashMap::new();
    let mut code_for = |id: &Principal, hash: [u8; 32]| -> Result<(crate::replica::exec::Code, Arc<[u8]>), StateDirError> {
        let bytes = loaded.modules.get(&hash).ok_or_else(|| damaged(format!("module {} of canister {id} is missing", hex::encode(hash))))?;
        let bytes: Arc<[u8]> = Arc::from(bytes.as_slice());
        if let Some(code) = prepared.get(&hash) {
            return Ok((code.clone(), bytes));
        }
        let module = crate::replica::install::prepare_module_hashed(replica, id, &bytes, hash)
            .map_err(|r| StateDirError::Restore { path: file.to_path_buf(), what: format!("canister {id}: its module does not load: {}", r.message) })?;
        prepared.insert(hash, module.code.clone());
        Ok((module.code, bytes))
    };
    let mut slots = Vec::new();
    let mut late_rejects = Vec::new();
    let (mut heap_pages, mut stable_pages, mut chunk_bytes, mut snapshot_records) = (loaded.heap, loaded.stable, loaded.chunks, loaded.snapshots);
    let mut upload_records = loaded.uploads;
    for (id, payload) in &loaded.canisters {
        let c: StoredCanister = postcard::from_bytes(payload).map_err(|e| damaged(format!("record canisters/{id} cannot be decoded: {e}")))?;
        stored.records.insert(*id, *blake3::hash(payload).as_bytes());
        let mut module = None;
        let mut instance = None;
        if let Some(hash) = c.module_hash {
            let (code, bytes) = code_for(id, hash)?;
            module = Some(bytes);
            if c.has_instance {
                let mut heap = vec![0u8; c.heap_bytes as usize];
                for (block, bytes) in heap_pages.remove(id).unwrap_or_default() {
                    let at = block as usize * PERSIST_BLOCK;
                    let end = (at + bytes.len()).min(heap.len());
                    if at < end {
                        heap[at..end].copy_from_slice(&bytes[..end - at]);
                    }
                }
                let stable = StableMemory::from_stored(inner.config.limits.stable_memory_pages, c.stable_pages, stable_pages.remove(id).unwrap_or_default());
                let image = InstanceImage { heap: heap.into(), stable: Arc::new(stable), globals: c.globals.iter().map(load_val).collect() };
                let mut restored = CanisterInstance::from_image(&inner.runtime, &code, &image, &id.to_text())
                    .map_err(|e| StateDirError::Restore { path: file.to_path_buf(), what: format!("canister {id}: {e}") })?;
                restored.mark_stored();
                instance = Some(Box::new(restored));
                stored.memories.insert(*id);
                stored.sizes.insert(*id, (c.heap_bytes, c.stable_pages));
            }
        }
        let chunks: Vec<([u8; 32], Vec<u8>)> = chunk_bytes.remove(id).unwrap_or_default();
        stored.chunks.insert(*id, chunks.iter().map(|(h, _)| *h).collect());
        let chunk_store = chunks::ChunkStore::restored(chunks.into_iter().map(|(h, b)| (h, bytes::Bytes::from(b))));
        let mut queue = VecDeque::new();
        for task in c.queue {
            let task = match task {
                StoredTask::Call { context, method, arg, caller, query, cycles } => Task::Call { context, method, arg, caller, query, cycles },
                StoredTask::Response { callback, result, refund } => Task::Response { callback, result: result.into(), refund },
                StoredTask::System(s) => Task::System(s),
                StoredTask::Install { mode, module_hash, arg, caller, source, skip_pre_upgrade, keep_main_memory, origin, answers } => {
                    let (code, bytes) = code_for(id, module_hash)?;
                    Task::Install(InstallJob {
                        mode,
                        code,
                        module: ModuleSource { hash: module_hash, bytes },
                        arg,
                        caller,
                        source,
                        skip_pre_upgrade,
                        keep_main_memory,
                        origin,
                        done: restored_done(answers, replica),
                    })
                }
                StoredTask::Uninstall { origin, answers } => Task::Uninstall { origin, done: restored_done(answers, replica) },
                StoredTask::Snapshot { answers } => {
                    late_rejects.extend(answers);
                    continue;
                }
                StoredTask::Management { caller, caller_version, method, arg, cycles, answers } => Task::Management {
                    caller,
                    caller_version,
                    method,
                    arg,
                    cycles,
                    reply: answers.map_or_else(|| ReplyTo::Ingress(nobody()), ReplyTo::Callback),
                },
                StoredTask::ManagementResponse { callback, result } => Task::ManagementResponse { callback, result: result.into() },
            };
            queue.push_back(task);
        }
        let mut snapshots = Vec::new();
        for (snapshot_id, payload) in snapshot_records.remove(id).unwrap_or_default() {
            let what = || format!("record snapshots/{id}/{}", hex::encode(&snapshot_id));
            let s: StoredSnapshot = postcard::from_bytes(&payload).map_err(|e| damaged(format!("{} cannot be decoded: {e}", what())))?;
            let (code, module) = code_for(id, s.module_hash)?;
            let stable_units = s.stable_units.into_iter().map(|(u, b)| (u, b.into_vec())).collect();
            let image = InstanceImage {
                heap: s.heap.into(),
                stable: Arc::new(StableMemory::from_stored(inner.config.limits.stable_memory_pages, s.stable_pages, stable_units)),
                globals: s.globals.iter().map(load_val).collect(),
            };
            snapshots.push(CanisterSnapshot {
                id: snapshot_id.clone(),
                taken_at: s.taken_at,
                canister_version: s.canister_version,
                module_hash: s.module_hash,
                module,
                code: Some(code),
                image,
                certified_data: Arc::new(s.certified_data),
                chunk_store: chunks::ChunkStore::restored(s.chunks.into_iter().map(|(h, b)| (h, bytes::Bytes::from(b.into_vec())))),
                timer: s.timer,
                source: SnapshotSource::TakenFromCanister,
                unsaved: UnsavedBlocks::default(),
            });
        }
        stored.snapshots.insert(*id, snapshots.iter().map(|s| s.id.clone()).collect());
        let stable_limit = inner.config.limits.stable_memory_pages;
        let (uploaded, stored_uploads) = super::uploads::restore(id, upload_records.remove(id).unwrap_or_default(), stable_limit, &damaged)?;
        stored.uploads.insert(*id, stored_uploads);
        snapshots.extend(uploaded);
        // Oldest first, as they were made: an id begins with the canister's
        // snapshot number (big-endian).
        snapshots.sort_by(|a, b| a.id.cmp(&b.id));
        let slot = Slot {
            controllers: c.controllers,
            status: c.status,
            stop_waiters: c.stop_waiters.into_iter().map(|(until, answers)| (until, restored_done(answers, replica))).collect(),
            version: c.version,
            balance: c.balance,
            charged_until: c.charged_until,
            fees: replica.fees_of_subnet(&c.subnet),
            module_hash: c.module_hash,
            module,
            methods: c.methods.into_iter().collect(),
            instance,
            busy: false,
            queue,
            timer: c.timer,
            heartbeat: c.heartbeat,
            heartbeat_queued: false,
            low_memory_hook: c.low_memory_hook,
            low_memory_fired: c.low_memory_fired,
            open_contexts: c.open_contexts,
            heap_size: c.heap_size,
            stable_size: c.stable_size,
            chunk_store,
            history: c.history,
            settings: c.settings.restored(),
            certified_data: Arc::new(c.certified_data),
            log: c.log,
            subnet: c.subnet,
            snapshots,
            next_snapshot: c.next_snapshot,
        };
        slots.push((*id, slot));
    }
    stored.modules = loaded.modules.keys().copied().collect();
    let count = slots.len();
    let mut st = inner.lock();
    use rand::SeedableRng;
    st.rng = rand::rngs::StdRng::seed_from_u64(state.rng_seed);
    st.time_offset = state.time_offset;
    st.last_time = state.last_time;
    st.next_context = state.next_context;
    st.next_callback = state.next_callback;
    for (subnet, start, end, next) in state.ranges {
        if let Some(r) = st.ranges.iter_mut().find(|r| r.subnet == subnet && r.start == start && r.end == end) {
            r.next = r.next.max(next);
        }
    }
    st.names = state.names.into_iter().collect();
    st.deleted = state.deleted.into_iter().collect();
    st.contexts = state
        .contexts
        .into_iter()
        .map(|(id, c)| {
            let origin = match c.origin {
                StoredOrigin::Outside => Origin::Ingress(nobody()),
                StoredOrigin::Canister { callback } => Origin::Canister { callback },
                StoredOrigin::Expired => Origin::Expired,
                StoredOrigin::System => Origin::System,
                StoredOrigin::Remote(to) => Origin::Remote(to),
            };
            let context = CallContext {
                canister: c.canister,
                caller: c.caller,
                origin,
                needs_response: c.needs_response,
                outstanding: c.outstanding,
                deadline: c.deadline,
                instructions: c.instructions,
                cycles: c.cycles,
                inspected: c.inspected,
                // Sender info comes only with PocketIC's ingress, which no
                // state directory holds.
                caller_info: None,
            };
            (id, context)
        })
        .collect();
    st.callbacks = state
        .callbacks
        .into_iter()
        .map(|(id, c)| {
            let cb = Callback {
                caller: c.caller,
                context: c.context,
                continuation: c.continuation,
                callee: c.callee,
                callee_context: c.callee_context,
                cycles: c.cycles,
                management_accepts: c.management_accepts,
                orphaned: c.orphaned,
                reservation: c.reservation,
            };
            (id, cb)
        })
        .collect();
    st.outstanding = state.outstanding.into_iter().map(|(a, b, n)| ((a, b), n)).collect();
    st.deadlines = state.deadlines.into_iter().collect();
    st.router_image = state.router;
    st.unsent_remote = state
        .unsent_remote
        .into_iter()
        .map(|(to, result, refund)| (to, crate::replica::remote::RemoteResponse { result: result.into(), refund }))
        .collect();
    st.canisters = slots.into_iter().collect();
    let ids: Vec<Principal> = st.canisters.keys().copied().collect();
    for id in ids {
        inner.schedule(&mut st, id);
    }
    drop(st);
    for callback in late_rejects {
        let reject = Reject {
            code: RejectCode::SysTransient,
            error_code: None,
            message: "the node restarted before the snapshot operation ran; try again".into(),
        };
        scheduler::deliver_response(inner, callback, Err(reject));
    }
    inner.clock_changed.notify_all();
    Ok((count, stored))
}
