//! Canister snapshots, as the IC's management canister has them
//! (`take_canister_snapshot`, `load_canister_snapshot`,
//! `list_canister_snapshots`, `delete_canister_snapshot`).
//!
//! A snapshot is a canister's committed state at one point: its module, its
//! heap, stable memory and a core module's mutable globals
//! ([`InstanceImage`]), certified data, chunk store and global timer. It
//! lives beside the canister (at most [`MAX_SNAPSHOTS_PER_CANISTER`]), goes
//! when the canister is deleted and stays across `uninstall_code`.
//!
//! Taking and loading are tasks in the canister's queue, like installs, so
//! they never interrupt an execution and see only committed state. Rules as
//! on the IC: controllers only; a replaced or loaded snapshot must belong to
//! the canister (IC0305 otherwise); the canister must be stopped to load
//! one; loading counts as a change of the canister (version + 1, a
//! `load_snapshot` entry in its history).
//!
//! Snapshots made by upload rather than taken (see [`super::snapshot_transfer`])
//! have no compiled code until loaded, and may leave the timer and the
//! low-memory hook as they are.

use std::collections::BTreeSet;
use std::sync::Arc;

use candid::{CandidType, Principal};
use serde::Deserialize;

use super::chunks::ChunkStore;
use super::exec::{CanisterInstance, Code, InstanceImage};
use super::history::{Change, ChangeDetails, ChangeOrigin};
use super::scheduler::{Finished, Inner};
use super::snapshot_transfer::LowMemoryHookStatus;
use super::state::{Done, Task};
use super::memory::PERSIST_BLOCK;
use super::management::{Caller, CanisterIdRecord, decode, encode, reply_done, send};
use super::{ErrorCode, Reject, Replica, ReplyTo, Status, completion, lifecycle, not_controller, not_found};

/// Snapshots one canister may hold, as on the IC.
pub const MAX_SNAPSHOTS_PER_CANISTER: usize = 10;

/// A snapshot as `list_canister_snapshots` and `take_canister_snapshot`
/// describe it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    #[serde(with = "serde_bytes")]
    pub id: Vec<u8>,
    pub taken_at_timestamp: u64,
    pub total_size: u64,
}

/// `take_canister_snapshot`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct TakeCanisterSnapshotArgs {
    pub canister_id: Principal,
    pub replace_snapshot: Option<serde_bytes::ByteBuf>,
    pub uninstall_code: Option<bool>,
    pub sender_canister_version: Option<u64>,
}

/// `load_canister_snapshot`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct LoadCanisterSnapshotArgs {
    pub canister_id: Principal,
    pub snapshot_id: serde_bytes::ByteBuf,
    pub sender_canister_version: Option<u64>,
}

/// `delete_canister_snapshot`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct DeleteCanisterSnapshotArgs {
    pub canister_id: Principal,
    pub snapshot_id: serde_bytes::ByteBuf,
}

/// One stored snapshot.
#[derive(Clone)]
pub(super) struct CanisterSnapshot {
    pub(super) id: Vec<u8>,
    pub(super) taken_at: u64,
    /// The canister's version when it was taken.
    pub(super) canister_version: u64,
    pub(super) module_hash: [u8; 32],
    /// The module's bytes as installed.
    pub(super) module: Arc<[u8]>,
    /// The compiled module; `None` for an uploaded snapshot (compiled when
    /// loaded).
    pub(super) code: Option<Code>,
    pub(super) image: InstanceImage,
    pub(super) certified_data: Arc<Vec<u8>>,
    pub(super) chunk_store: ChunkStore,
    pub(super) timer: u64,
    pub(super) source: SnapshotSource,
    /// What an upload wrote that the state directory has not taken yet.
    pub(super) unsaved: UnsavedBlocks,
}

/// Blocks ([`PERSIST_BLOCK`] bytes) of an uploaded snapshot's module and
/// heap written since the state directory last took them (its stable
/// memory keeps track itself). Empty for a snapshot taken from a canister:
/// it never changes.
#[derive(Clone, Debug, Default)]
pub(super) struct UnsavedBlocks {
    pub(super) module: BTreeSet<u32>,
    pub(super) heap: BTreeSet<u32>,
}

impl UnsavedBlocks {
    /// Notes a write of `at` (bytes) into the module or the heap.
    pub(super) fn wrote(blocks: &mut BTreeSet<u32>, at: &std::ops::Range<usize>) {
        if !at.is_empty() {
            blocks.extend((at.start / PERSIST_BLOCK) as u32..=((at.end - 1) / PERSIST_BLOCK) as u32);
        }
    }
}

/// How a snapshot came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SnapshotSource {
    /// `take_canister_snapshot`: immutable.
    TakenFromCanister,
    /// `upload_canister_snapshot_metadata`, filled by
    /// `upload_canister_snapshot_data`. Loading it leaves the timer as it
    /// is if `keep_timer`, and the low-memory hook if `hook` is `None`.
    MetadataUpload { keep_timer: bool, hook: Option<LowMemoryHookStatus> },
}

impl CanisterSnapshot {
    pub(super) fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            id: self.id.clone(),
            taken_at_timestamp: self.taken_at,
            total_size: self.size(),
        }
    }

    /// Bytes the snapshot holds (module, memories, chunk store, certified
    /// data).
    pub(super) fn size(&self) -> u64 {
        self.module.len() as u64 + self.image.size() + self.chunk_store.size() + self.certified_data.len() as u64
    }
}

/// A snapshot id, as the IC forms them: the canister-local number (8 bytes,
/// big-endian) followed by the canister id.
pub fn snapshot_id(canister: &Principal, local: u64) -> Vec<u8> {
    let mut id = local.to_be_bytes().to_vec();
    id.extend_from_slice(canister.as_slice());
    id
}

pub(super) fn snapshot_not_found(canister: &Principal, id: &[u8]) -> Reject {
    Reject::system(
        ErrorCode::CanisterSnapshotNotFound,
        format!("Could not find the snapshot ID {} for canister {canister}.", hex::encode(id)),
    )
}

/// Where `take_canister_snapshot`'s outcome goes.
pub(super) type TakeReply = Box<dyn FnOnce(Result<SnapshotInfo, Reject>) + Send>;

/// A snapshot operation queued on the canister.
pub(super) enum SnapshotJob {
    Take {
        replace: Option<Vec<u8>>,
        uninstall: bool,
        origin: ChangeOrigin,
        reply: TakeReply,
        /// The canister callback `reply` answers, if a canister asked.
        answers: Option<u64>,
    },
    Load {
        id: Vec<u8>,
        origin: ChangeOrigin,
        done: Done,
    },
}

impl SnapshotJob {
    /// The canister callback the outcome answers, if a canister asked.
    pub(super) fn answers(&self) -> Option<u64> {
        match self {
            SnapshotJob::Take { answers, .. } => *answers,
            SnapshotJob::Load { done, .. } => done.answers,
        }
    }
}

/// Runs a snapshot job on an executor thread with the canister's instance.
pub(super) fn run(inner: &Arc<Inner>, canister: Principal, instance: Option<Box<CanisterInstance>>, job: SnapshotJob) -> Finished {
    match job {
        SnapshotJob::Take { replace, uninstall, origin, reply, .. } => take(inner, canister, instance, (replace, uninstall, origin), reply),
        SnapshotJob::Load { id, origin, done } => load(inner, canister, instance, id, origin, done),
    }
}

fn take(
    inner: &Arc<Inner>,
    canister: Principal,
    instance: Option<Box<CanisterInstance>>,
    (replace, uninstall, origin): (Option<Vec<u8>>, bool, ChangeOrigin),
    reply: TakeReply,
) -> Finished {
    let Some(live) = instance.as_deref() else {
        reply(Err(Reject::system(
            ErrorCode::CanisterWasmModuleNotFound,
            format!("Canister {canister} has no Wasm module installed: there is nothing to take a snapshot of."),
        )));
        return Finished::unchanged(instance);
    };
    // The copy is made before the state lock is taken (it may be large).
    let (code, image) = (live.code(), live.image());
    // Takes of one canister are serialized in its queue, so what is checked
    // here still holds when the snapshot is stored.
    let snapshot = {
        let mut st = inner.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            reply(Err(not_found(&canister)));
            return Finished::unchanged(instance);
        };
        match &replace {
            Some(r) if !slot.snapshots.iter().any(|s| &s.id == r) => {
                reply(Err(snapshot_not_found(&canister, r)));
                return Finished::unchanged(instance);
            }
            None if slot.snapshots.len() >= MAX_SNAPSHOTS_PER_CANISTER => {
                reply(Err(Reject::system(
                    ErrorCode::CanisterRejectedMessage,
                    format!("Canister {canister} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS_PER_CANISTER}."),
                )));
                return Finished::unchanged(instance);
            }
            _ => {}
        }
        let id = snapshot_id(&canister, slot.next_snapshot);
        slot.next_snapshot += 1;
        let (version, module_hash, certified_data, chunk_store, timer) =
            (slot.version, slot.module_hash.unwrap_or_default(), slot.certified_data.clone(), slot.chunk_store.clone(), slot.timer);
        let module = slot.module.clone().unwrap_or_else(|| Arc::from(&[][..]));
        let taken_at = st.now();
        CanisterSnapshot {
            id,
            taken_at,
            canister_version: version,
            module_hash,
            module,
            code: Some(code),
            image,
            certified_data,
            chunk_store,
            timer,
            source: SnapshotSource::TakenFromCanister,
            unsaved: UnsavedBlocks::default(),
        }
    };
    let store = move |st: &mut super::state::State| -> SnapshotInfo {
        let info = snapshot.info();
        if let Some(slot) = st.canisters.get_mut(&canister) {
            if let Some(r) = &replace {
                slot.snapshots.retain(|s| &s.id != r);
            }
            slot.snapshots.push(snapshot);
        }
        info
    };
    if !uninstall {
        return Finished {
            instance,
            apply: Box::new(move |_, st| reply(Ok(store(st)))),
        };
    }
    // `uninstall_code = true`: the snapshot first, then the uninstall.
    let (tx, outcome) = std::sync::mpsc::channel();
    let emptied = lifecycle::run_uninstall(canister, instance, origin, super::state::Done::new(Box::new(move |r| drop(tx.send(r)))));
    Finished {
        instance: emptied.instance,
        apply: Box::new(move |inner, st| {
            let info = store(st);
            (emptied.apply)(inner, st);
            reply(outcome.try_recv().unwrap_or(Ok(())).map(|()| info));
        }),
    }
}

fn load(inner: &Arc<Inner>, canister: Principal, instance: Option<Box<CanisterInstance>>, id: Vec<u8>, origin: ChangeOrigin, done: Done) -> Finished {
    let snapshot = {
        let st = inner.lock();
        let Some(slot) = st.canisters.get(&canister) else {
            done.call(Err(not_found(&canister)));
            return Finished::unchanged(instance);
        };
        if slot.status != Status::Stopped {
            done.call(Err(must_be_stopped(&canister)));
            return Finished::unchanged(instance);
        }
        match slot.snapshots.iter().find(|s| s.id == id) {
            // Cheap: the memories are shared.
            Some(s) => s.clone(),
            None => {
                done.call(Err(snapshot_not_found(&canister, &id)));
                return Finished::unchanged(instance);
            }
        }
    };
    let (code, module_hash) = match &snapshot.code {
        Some(code) => (code.clone(), snapshot.module_hash),
        None => match super::snapshot_transfer::compile(inner, &canister, &snapshot) {
            Ok(compiled) => compiled,
            Err(reject) => {
                done.call(Err(reject));
                return Finished::unchanged(instance);
            }
        },
    };
    let loaded = match CanisterInstance::from_image(&inner.runtime, &code, &snapshot.image, &canister.to_text()) {
        Ok(i) => Box::new(i),
        Err(e) => {
            done.call(Err(Reject::system(ErrorCode::CanisterInvalidWasm, format!("Canister {canister}: loading snapshot {}: {e}", hex::encode(&id)))));
            return Finished::unchanged(instance);
        }
    };
    // The old instance (heap, stable memory) is freed here, off the lock.
    drop(instance);
    let methods = loaded.methods().clone();
    let heartbeat = loaded.has_system_export("canister_heartbeat");
    let low_memory_hook = loaded.has_system_export("canister_on_low_wasm_memory");
    let (heap_size, stable_size) = (loaded.memory_size() as u64, loaded.stable_size_bytes());
    Finished {
        instance: Some(loaded),
        apply: Box::new(move |_, st| {
            let time = st.now();
            let Some(slot) = st.canisters.get_mut(&canister) else {
                return done.call(Err(not_found(&canister)));
            };
            slot.module_hash = Some(module_hash);
            slot.module = Some(snapshot.module.clone());
            slot.methods = methods;
            slot.heartbeat = heartbeat;
            slot.heartbeat_queued = false;
            slot.low_memory_hook = low_memory_hook;
            super::snapshot_transfer::restore_timer_and_hook(&snapshot, slot);
            slot.certified_data = snapshot.certified_data.clone();
            slot.chunk_store = snapshot.chunk_store.clone();
            slot.heap_size = heap_size;
            slot.stable_size = stable_size;
            slot.version += 1;
            slot.history.record(Change {
                time,
                canister_version: slot.version,
                origin,
                details: {
                    let (snapshot_id, canister_version, taken_at) = (snapshot.id.clone(), snapshot.canister_version, snapshot.taken_at);
                    match snapshot.source {
                        SnapshotSource::TakenFromCanister => ChangeDetails::LoadSnapshot { snapshot_id, canister_version, taken_at },
                        SnapshotSource::MetadataUpload { .. } => ChangeDetails::LoadUploadedSnapshot { snapshot_id, canister_version, taken_at },
                    }
                },
            });
            done.call(Ok(()));
        }),
    }
}

fn must_be_stopped(canister: &Principal) -> Reject {
    Reject::system(
        ErrorCode::CanisterNotStopped,
        format!("Canister {canister} must be stopped before a snapshot is loaded into it."),
    )
}

/// Whether `method` is one of the management canister's snapshot methods
/// (answered by [`dispatch`]).
pub(super) fn is_method(method: &str) -> bool {
    matches!(method, "take_canister_snapshot" | "load_canister_snapshot" | "list_canister_snapshots" | "delete_canister_snapshot")
        || super::snapshot_transfer::METHODS.contains(&method)
}

/// Answers a management canister call of a snapshot method (see
/// [`is_method`]); the response goes to `reply`.
pub(super) fn dispatch(replica: &Replica, from: Caller, method: &str, arg: &[u8], reply: ReplyTo) {
    match method {
        "take_canister_snapshot" => {
            let args = decode::<TakeCanisterSnapshotArgs>(method, arg).and_then(|a| from.check_sender_version(method, a.sender_canister_version).map(|()| a));
            let args = match args {
                Ok(args) => args,
                Err(reject) => return send(reply, replica, Err(reject)),
            };
            let answers = match &reply {
                ReplyTo::Callback(cb) => Some(*cb),
                ReplyTo::Ingress(_) => None,
            };
            let (origin, replica2) = (from.origin(args.sender_canister_version), replica.clone());
            replica.take_snapshot_with(
                origin,
                args.canister_id,
                (args.replace_snapshot.map(|b| b.into_vec()), args.uninstall_code.unwrap_or(false)),
                Box::new(move |r| send(reply, &replica2, r.and_then(|info| encode(&info)))),
                answers,
            );
        }
        "load_canister_snapshot" => {
            let args = decode::<LoadCanisterSnapshotArgs>(method, arg).and_then(|a| from.check_sender_version(method, a.sender_canister_version).map(|()| a));
            match args {
                Ok(args) => {
                    let origin = from.origin(args.sender_canister_version);
                    replica.load_snapshot_with(origin, args.canister_id, args.snapshot_id.into_vec(), reply_done(reply, replica));
                }
                Err(reject) => send(reply, replica, Err(reject)),
            }
        }
        "list_canister_snapshots" => {
            let result = decode::<CanisterIdRecord>(method, arg).and_then(|a| encode(&replica.list_snapshots(from.id, a.canister_id)?));
            send(reply, replica, result);
        }
        "delete_canister_snapshot" => {
            let result = decode::<DeleteCanisterSnapshotArgs>(method, arg)
                .and_then(|a| replica.delete_snapshot(from.id, a.canister_id, &a.snapshot_id))
                .map(|()| b"DIDL\x00\x00".to_vec());
            send(reply, replica, result);
        }
        _ => send(reply, replica, super::snapshot_transfer::handle(replica, from.id, method, arg)),
    }
}

/// Snapshots through the host API (the management canister and the CLI
/// come through here).
impl Replica {
    /// `take_canister_snapshot`: queued behind what the canister is doing.
    pub async fn take_snapshot(&self, caller: Principal, canister: Principal, replace: Option<Vec<u8>>, uninstall: bool) -> Result<SnapshotInfo, Reject> {
        completion(|reply| self.take_snapshot_with(ChangeOrigin::User(caller), canister, (replace, uninstall), reply, None)).await
    }

    pub(super) fn take_snapshot_with(&self, origin: ChangeOrigin, canister: Principal, (replace, uninstall): (Option<Vec<u8>>, bool), reply: TakeReply, answers: Option<u64>) {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            drop(st);
            return reply(Err(not_found(&canister)));
        };
        if !slot.controllers.contains(&origin.principal()) {
            drop(st);
            return reply(Err(not_controller(&canister, &origin.principal())));
        }
        slot.queue.push_back(Task::Snapshot(SnapshotJob::Take { replace, uninstall, origin, reply, answers }));
        self.inner.schedule(&mut st, canister);
    }

    /// `load_canister_snapshot`: the canister must be stopped.
    pub async fn load_snapshot(&self, caller: Principal, canister: Principal, id: Vec<u8>) -> Result<(), Reject> {
        completion(|f| self.load_snapshot_with(ChangeOrigin::User(caller), canister, id, Done::new(f))).await
    }

    pub(super) fn load_snapshot_with(&self, origin: ChangeOrigin, canister: Principal, id: Vec<u8>, done: Done) {
        let mut st = self.lock();
        let checked = (|| {
            let slot = st.canisters.get(&canister).ok_or_else(|| not_found(&canister))?;
            if !slot.controllers.contains(&origin.principal()) {
                return Err(not_controller(&canister, &origin.principal()));
            }
            if !slot.snapshots.iter().any(|s| s.id == id) {
                return Err(snapshot_not_found(&canister, &id));
            }
            if slot.status != Status::Stopped {
                return Err(must_be_stopped(&canister));
            }
            Ok(())
        })();
        if let Err(reject) = checked {
            drop(st);
            return done.call(Err(reject));
        }
        if let Some(slot) = st.canisters.get_mut(&canister) {
            slot.queue.push_back(Task::Snapshot(SnapshotJob::Load { id, origin, done }));
        }
        self.inner.schedule(&mut st, canister);
    }

    /// `list_canister_snapshots`, oldest first.
    pub fn list_snapshots(&self, caller: Principal, canister: Principal) -> Result<Vec<SnapshotInfo>, Reject> {
        let st = self.lock();
        let slot = st.canisters.get(&canister).ok_or_else(|| not_found(&canister))?;
        if !slot.settings.snapshot_visibility.allows(&caller, &slot.controllers) {
            return Err(not_controller(&canister, &caller));
        }
        Ok(slot.snapshots.iter().map(CanisterSnapshot::info).collect())
    }

    /// `delete_canister_snapshot`.
    pub fn delete_snapshot(&self, caller: Principal, canister: Principal, id: &[u8]) -> Result<(), Reject> {
        let mut st = self.lock();
        let slot = st.canisters.get_mut(&canister).ok_or_else(|| not_found(&canister))?;
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        let Some(at) = slot.snapshots.iter().position(|s| s.id == id) else {
            return Err(snapshot_not_found(&canister, id));
        };
        let gone = slot.snapshots.remove(at);
        drop(st);
        drop(gone);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_local_number_then_the_canister() {
        let canister = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
        let id = snapshot_id(&canister, 3);
        assert_eq!(&id[..8], &3u64.to_be_bytes());
        assert_eq!(&id[8..], canister.as_slice());
    }
}
