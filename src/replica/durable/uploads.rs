//! Uploaded snapshots in a state directory, both directions: [`capture`]
//! (what uploads wrote since the last cut) and [`restore`].
//!
//! An uploaded snapshot (`upload_canister_snapshot_metadata`) changes with
//! every `upload_canister_snapshot_data` until it is deleted, and its
//! module may be no module at all until it is loaded: it is kept as its
//! raw bytes, piece by piece, so that a cut writes only what the uploads
//! since the last one changed (a 100 MiB heap uploaded in 2 MB slices
//! costs each cut one slice, not the heap). Its records in the `uploads`
//! table, each keyed by the canister and then
//! `[id length] ++ snapshot id ++ part`:
//! - part empty: the head ([`StoredUpload`]: sizes, globals, certified
//!   data, timer and hook, written once when the snapshot appears);
//! - `m`/`h` ++ block (u32 BE): [`PERSIST_BLOCK`] bytes of the module or
//!   the heap (the module's last block may be shorter);
//! - `s` ++ unit (u32 BE): a stable memory unit ([`STORE_UNIT`] bytes);
//! - `c` ++ SHA-256: a chunk of the snapshot's chunk store.
//!
//! Blocks never written are zeros and have no record. Restored, the
//! snapshot has no compiled code, as after an upload: loading it compiles
//! the module then.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use candid::Principal;
use serde::{Deserialize, Serialize};

use super::db::{CutWrite, StateDirError};
use super::form::{StoredVal, encode, load_val, store_val};
use crate::replica::chunks::ChunkStore;
use crate::replica::exec::InstanceImage;
use crate::replica::memory::PERSIST_BLOCK;
use crate::replica::snapshot_transfer::{LowMemoryHookStatus, zeros};
use crate::replica::snapshots::{CanisterSnapshot, SnapshotSource, UnsavedBlocks};
use crate::replica::stable::{STORE_UNIT, StableMemory};

const MODULE: u8 = b'm';
const HEAP: u8 = b'h';
const STABLE: u8 = b's';
const CHUNK: u8 = b'c';

/// What an uploaded snapshot holds besides its bytes (written once).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct StoredUpload {
    taken_at: u64,
    canister_version: u64,
    module_bytes: u64,
    heap_bytes: u64,
    stable_pages: u64,
    globals: Vec<StoredVal>,
    #[serde(with = "serde_bytes")]
    certified_data: Vec<u8>,
    timer: u64,
    /// Loading leaves the canister's timer as it is.
    keep_timer: bool,
    hook: Option<StoredHook>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
enum StoredHook {
    ConditionNotSatisfied,
    Ready,
    Executed,
}

impl From<LowMemoryHookStatus> for StoredHook {
    fn from(h: LowMemoryHookStatus) -> Self {
        match h {
            LowMemoryHookStatus::ConditionNotSatisfied => Self::ConditionNotSatisfied,
            LowMemoryHookStatus::Ready => Self::Ready,
            LowMemoryHookStatus::Executed => Self::Executed,
        }
    }
}

impl From<StoredHook> for LowMemoryHookStatus {
    fn from(h: StoredHook) -> Self {
        match h {
            StoredHook::ConditionNotSatisfied => Self::ConditionNotSatisfied,
            StoredHook::Ready => Self::Ready,
            StoredHook::Executed => Self::Executed,
        }
    }
}

/// What the directory holds of one canister's uploaded snapshots: the
/// chunk hashes stored, by snapshot id.
pub(super) type StoredUploads = BTreeMap<Vec<u8>, BTreeSet<[u8; 32]>>;

/// The key rest of snapshot `id`'s records: `[length] ++ id`.
fn prefix(id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len() + 33);
    key.push(id.len() as u8);
    key.extend_from_slice(id);
    key
}

fn part(id: &[u8], kind: u8, index: &[u8]) -> Vec<u8> {
    let mut key = prefix(id);
    key.push(kind);
    key.extend_from_slice(index);
    key
}

/// Splits a key rest into the snapshot id and the part.
fn split(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = *rest.first()? as usize;
    let id = rest.get(1..1 + len)?;
    Some((id, &rest[1 + len..]))
}

fn head(s: &CanisterSnapshot, keep_timer: bool, hook: Option<LowMemoryHookStatus>) -> StoredUpload {
    StoredUpload {
        taken_at: s.taken_at,
        canister_version: s.canister_version,
        module_bytes: s.module.len() as u64,
        heap_bytes: s.image.heap.len() as u64,
        stable_pages: s.image.stable.size(),
        globals: s.image.globals.iter().map(store_val).collect(),
        certified_data: s.certified_data.to_vec(),
        timer: s.timer,
        keep_timer,
        hook: hook.map(StoredHook::from),
    }
}

/// Writes `blocks` of `bytes` as `kind` parts of snapshot `id`.
fn blocks(cut: &mut CutWrite, canister: Principal, id: &[u8], kind: u8, bytes: &[u8], blocks: BTreeSet<u32>) {
    for b in blocks {
        let start = b as usize * PERSIST_BLOCK;
        if let Some(block) = bytes.get(start..(start + PERSIST_BLOCK).min(bytes.len())) {
            cut.uploads.push((canister, part(id, kind, &b.to_be_bytes()), block.to_vec()));
        }
    }
}

/// Adds to `cut` what uploads changed in `canister`'s uploaded snapshots
/// since the last cut, and drops those gone. Runs at a quiescent point:
/// it takes each snapshot's record of unsaved writes.
pub(super) fn capture(canister: Principal, snapshots: &mut [CanisterSnapshot], stored: &mut StoredUploads, cut: &mut CutWrite) {
    let mut present = BTreeSet::new();
    for s in snapshots.iter_mut() {
        let SnapshotSource::MetadataUpload { keep_timer, hook } = s.source else { continue };
        present.insert(s.id.clone());
        if !stored.contains_key(&s.id) {
            cut.uploads.push((canister, prefix(&s.id), encode(&head(s, keep_timer, hook))));
        }
        let chunks_stored = stored.entry(s.id.clone()).or_default();
        let UnsavedBlocks { module, heap } = std::mem::take(&mut s.unsaved);
        blocks(cut, canister, &s.id, MODULE, &s.module, module);
        blocks(cut, canister, &s.id, HEAP, &s.image.heap, heap);
        // A snapshot never stored yet gives every unit holding data.
        for (unit, bytes) in Arc::make_mut(&mut s.image.stable).take_changed_pages().pages {
            cut.uploads.push((canister, part(&s.id, STABLE, &unit.to_be_bytes()), bytes));
        }
        // Chunks are only ever added to an uploaded snapshot.
        for (hash, bytes) in s.chunk_store.entries() {
            if chunks_stored.insert(*hash) {
                cut.uploads.push((canister, part(&s.id, CHUNK, hash), bytes.to_vec()));
            }
        }
    }
    stored.retain(|id, _| {
        let keep = present.contains(id);
        if !keep {
            cut.drop_uploads.push((canister, prefix(id)));
        }
        keep
    });
}

/// One snapshot's records as loaded, sorted into its parts.
#[derive(Default)]
struct Pieces {
    head: Option<Vec<u8>>,
    module: Vec<(u32, Vec<u8>)>,
    heap: Vec<(u32, Vec<u8>)>,
    stable: Vec<(u32, Vec<u8>)>,
    chunks: Vec<([u8; 32], Vec<u8>)>,
}

/// Copies `blocks` into a zeroed buffer of `len` bytes.
fn assemble(len: u64, blocks: Vec<(u32, Vec<u8>)>, what: &dyn Fn(String) -> StateDirError) -> Result<Arc<[u8]>, StateDirError> {
    let mut buf = zeros(len);
    let Some(bytes) = Arc::get_mut(&mut buf) else {
        return Err(what("a fresh buffer is shared".into()));
    };
    for (b, block) in blocks {
        let start = b as usize * PERSIST_BLOCK;
        let end = start.checked_add(block.len()).filter(|end| *end <= bytes.len() && block.len() <= PERSIST_BLOCK);
        let Some(end) = end else {
            return Err(what(format!("block {b} of {} bytes lies outside its {len} bytes", block.len())));
        };
        bytes[start..end].copy_from_slice(&block);
    }
    Ok(buf)
}

/// `canister`'s uploaded snapshots from its `records` (key rest, payload,
/// in key order), and what the directory holds of them.
pub(super) fn restore(
    canister: &Principal,
    records: Vec<(Vec<u8>, Vec<u8>)>,
    stable_limit: u64,
    damaged: &dyn Fn(String) -> StateDirError,
) -> Result<(Vec<CanisterSnapshot>, StoredUploads), StateDirError> {
    let mut by_id: BTreeMap<Vec<u8>, Pieces> = BTreeMap::new();
    for (rest, payload) in records {
        let bad = || damaged(format!("record uploads/{canister}/{} has a malformed key", hex::encode(&rest)));
        let (id, part) = split(&rest).ok_or_else(bad)?;
        let pieces = by_id.entry(id.to_vec()).or_default();
        let index = || part.get(1..).and_then(|i| <[u8; 4]>::try_from(i).ok()).map(u32::from_be_bytes).ok_or_else(bad);
        match part.first() {
            None => pieces.head = Some(payload),
            Some(&MODULE) => pieces.module.push((index()?, payload)),
            Some(&HEAP) => pieces.heap.push((index()?, payload)),
            Some(&STABLE) => pieces.stable.push((index()?, payload)),
            Some(&CHUNK) => pieces.chunks.push((<[u8; 32]>::try_from(&part[1..]).map_err(|_| bad())?, payload)),
            Some(_) => return Err(bad()),
        }
    }
    let mut snapshots = Vec::new();
    let mut stored = StoredUploads::new();
    for (id, pieces) in by_id {
        let what = |why: String| damaged(format!("uploaded snapshot {} of canister {canister}: {why}", hex::encode(&id)));
        let head = pieces.head.ok_or_else(|| what("its head record is missing".into()))?;
        let h: StoredUpload = postcard::from_bytes(&head).map_err(|e| what(format!("its head record cannot be decoded: {e}")))?;
        if pieces.stable.iter().any(|(_, unit)| unit.len() != STORE_UNIT) {
            return Err(what(format!("a stable memory unit is not {STORE_UNIT} bytes")));
        }
        let module = assemble(h.module_bytes, pieces.module, &|why| what(format!("module: {why}")))?;
        let heap = assemble(h.heap_bytes, pieces.heap, &|why| what(format!("heap: {why}")))?;
        stored.insert(id.clone(), pieces.chunks.iter().map(|(hash, _)| *hash).collect());
        snapshots.push(CanisterSnapshot {
            id,
            taken_at: h.taken_at,
            canister_version: h.canister_version,
            module_hash: [0; 32],
            module,
            code: None,
            image: InstanceImage {
                heap,
                stable: Arc::new(StableMemory::from_stored(stable_limit, h.stable_pages, pieces.stable)),
                globals: h.globals.iter().map(load_val).collect(),
            },
            certified_data: Arc::new(h.certified_data),
            chunk_store: ChunkStore::restored(pieces.chunks.into_iter().map(|(hash, bytes)| (hash, bytes::Bytes::from(bytes)))),
            timer: h.timer,
            source: SnapshotSource::MetadataUpload { keep_timer: h.keep_timer, hook: h.hook.map(LowMemoryHookStatus::from) },
            unsaved: UnsavedBlocks::default(),
        });
    }
    Ok((snapshots, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canister() -> Principal {
        crate::replica::canister_id(7)
    }

    /// An uploaded snapshot of `module` bytes, a heap of two blocks and one
    /// stable page, all zeros.
    fn uploaded(id: u8, module: usize) -> CanisterSnapshot {
        let mut stable = StableMemory::new(16);
        stable.grow(1);
        stable.commit();
        CanisterSnapshot {
            id: vec![0, 0, 0, 0, 0, 0, 0, id],
            taken_at: 5,
            canister_version: 6,
            module_hash: [0; 32],
            module: zeros(module as u64),
            code: None,
            image: InstanceImage { heap: zeros(2 * PERSIST_BLOCK as u64), stable: Arc::new(stable), globals: vec![wasmtime::Val::I64(-3)] },
            certified_data: Arc::new(vec![9, 9]),
            chunk_store: ChunkStore::default(),
            timer: 11,
            source: SnapshotSource::MetadataUpload { keep_timer: false, hook: Some(LowMemoryHookStatus::Ready) },
            unsaved: UnsavedBlocks::default(),
        }
    }

    fn write(buf: &mut Arc<[u8]>, unsaved: &mut BTreeSet<u32>, at: usize, bytes: &[u8]) {
        let range = at..at + bytes.len();
        UnsavedBlocks::wrote(unsaved, &range);
        Arc::get_mut(buf).expect("not shared")[range].copy_from_slice(bytes);
    }

    /// Every record a sequence of cuts leaves, as the table would hold them.
    fn apply(table: &mut BTreeMap<Vec<u8>, Vec<u8>>, cut: CutWrite) {
        for (_, gone) in cut.drop_uploads {
            table.retain(|k, _| !k.starts_with(&gone));
        }
        for (_, key, payload) in cut.uploads {
            table.insert(key, payload);
        }
    }

    fn restored(table: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<CanisterSnapshot> {
        let records = table.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        restore(&canister(), records, 16, &|why| StateDirError::Damaged { path: "test".into(), what: why }).expect("restores").0
    }

    #[test]
    fn writes_after_the_first_cut_are_taken_by_the_next_and_only_they() {
        let (mut table, mut stored) = (BTreeMap::new(), StoredUploads::new());
        let mut snapshots = vec![uploaded(1, PERSIST_BLOCK + 10)];
        let mut cut = CutWrite::default();
        capture(canister(), &mut snapshots, &mut stored, &mut cut);
        assert_eq!(cut.uploads.len(), 1, "a new snapshot's head, nothing zero");
        apply(&mut table, cut);

        let s = &mut snapshots[0];
        write(&mut s.module, &mut s.unsaved.module, PERSIST_BLOCK + 8, b"ab");
        write(&mut s.image.heap, &mut s.unsaved.heap, PERSIST_BLOCK - 1, b"xy");
        let stable = Arc::make_mut(&mut s.image.stable);
        stable.write(4096 * 3 + 1, b"st").unwrap();
        stable.commit();
        s.chunk_store.insert(canister(), [4; 32], bytes::Bytes::from_static(b"chunk")).unwrap();
        let mut cut = CutWrite::default();
        capture(canister(), &mut snapshots, &mut stored, &mut cut);
        // One module block, two heap blocks, one stable unit, one chunk.
        assert_eq!(cut.uploads.len(), 5, "only what was written");
        assert!(cut.uploads.iter().all(|(_, key, _)| key.len() > 9), "no second head");
        apply(&mut table, cut);
        let mut cut = CutWrite::default();
        capture(canister(), &mut snapshots, &mut stored, &mut cut);
        assert!(cut.uploads.is_empty() && cut.drop_uploads.is_empty(), "nothing changed since");

        let back = restored(&table);
        assert_eq!(back.len(), 1);
        let (b, s) = (&back[0], &snapshots[0]);
        assert_eq!((&b.id, b.taken_at, b.canister_version, b.timer), (&s.id, 5, 6, 11));
        assert_eq!(&b.module[..], &s.module[..], "module bytes as uploaded");
        assert_eq!(&b.image.heap[..], &s.image.heap[..]);
        assert_eq!(b.image.stable.read(0, 65536).unwrap(), s.image.stable.read(0, 65536).unwrap());
        assert_eq!(format!("{:?}", b.image.globals), format!("{:?}", s.image.globals));
        assert_eq!(b.certified_data.as_slice(), [9, 9]);
        assert_eq!(b.chunk_store.hashes(), vec![[4; 32]]);
        assert!(b.code.is_none(), "compiled only when loaded");
        assert_eq!(b.source, s.source);
    }

    #[test]
    fn a_deleted_upload_leaves_no_record_and_others_stay() {
        let (mut table, mut stored) = (BTreeMap::new(), StoredUploads::new());
        let mut snapshots = vec![uploaded(1, 3), uploaded(2, 3)];
        let s = &mut snapshots[0];
        write(&mut s.module, &mut s.unsaved.module, 0, b"abc");
        let mut cut = CutWrite::default();
        capture(canister(), &mut snapshots, &mut stored, &mut cut);
        apply(&mut table, cut);
        snapshots.remove(0);
        let mut cut = CutWrite::default();
        capture(canister(), &mut snapshots, &mut stored, &mut cut);
        apply(&mut table, cut);
        let back = restored(&table);
        assert_eq!(back.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![vec![0, 0, 0, 0, 0, 0, 0, 2]]);
    }

    #[test]
    fn a_record_outside_its_snapshot_is_refused_by_name() {
        let mut table = BTreeMap::new();
        let mut stored = StoredUploads::new();
        let mut cut = CutWrite::default();
        capture(canister(), &mut [uploaded(1, 3)], &mut stored, &mut cut);
        apply(&mut table, cut);
        table.insert(part(&[0, 0, 0, 0, 0, 0, 0, 1], MODULE, &1u32.to_be_bytes()), vec![1]);
        let records = table.into_iter().collect();
        let err = restore(&canister(), records, 16, &|why| StateDirError::Damaged { path: "f".into(), what: why }).err().expect("refused");
        assert!(err.to_string().contains("uploaded snapshot 0000000000000001") && err.to_string().contains("outside"), "{err}");
    }
}
