//! Moving canister snapshots in and out: the management canister's
//! `read_canister_snapshot_metadata`, `read_canister_snapshot_data`,
//! `upload_canister_snapshot_metadata` and `upload_canister_snapshot_data`,
//! with their Candid types and the IC's rules.
//!
//! Reading works on every snapshot, for whom the canister's
//! `snapshot_visibility` lets in (controllers by default), in slices of at
//! most [`MAX_SLICE_SIZE_BYTES`] inside the sizes the metadata reports.
//! Uploading (controllers only) first creates an empty snapshot of fixed
//! sizes ([`SnapshotSource::MetadataUpload`]), counted like a taken one;
//! data then goes into it piece by piece, bounds checked. A snapshot taken
//! from a canister is immutable (IC0409). An uploaded snapshot has no
//! compiled code: loading it compiles the uploaded module ([`compile`]),
//! and a module that is not one fails the load, nothing changed.
//!
//! Everything here runs under the replica's state lock and queues nothing:
//! a load already running works on its own (shared, copied on write) view.
//! A state directory keeps uploaded snapshots as they are written: each
//! write notes the blocks it changed ([`UnsavedBlocks`]) for the next cut
//! (see `durable::uploads`).

use std::sync::Arc;

use bytes::Bytes;
use candid::{CandidType, Deserialize, Nat, Principal};
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::chunks;
use super::exec::{Code, InstanceImage};
pub use super::history::CandidSnapshotSource;
use super::management::{ChunkHashRecord, decode, encode};
use super::scheduler::Inner;
use super::snapshots::{CanisterSnapshot, MAX_SNAPSHOTS_PER_CANISTER, SnapshotSource, UnsavedBlocks, snapshot_id, snapshot_not_found};
use super::stable::{STABLE_PAGE, StableMemory};
use super::state::Slot;
use super::{CallResult, ErrorCode, Reject, Replica, not_controller, not_found};

/// The methods this module answers.
pub const METHODS: &[&str] = &[
    "read_canister_snapshot_metadata",
    "read_canister_snapshot_data",
    "upload_canister_snapshot_metadata",
    "upload_canister_snapshot_data",
];

/// The most bytes one `read_canister_snapshot_data` returns (the IC's
/// `MAX_SLICE_SIZE_BYTES`).
pub const MAX_SLICE_SIZE_BYTES: u64 = 2_000_000;

/// Wasm pages: memory sizes are whole pages of 64 KiB.
const WASM_PAGE: u64 = 64 << 10;

/// `ic0.certified_data_set` takes at most 32 bytes.
const MAX_CERTIFIED_DATA: usize = 32;

/// A Wasm global's value, as the IC describes a snapshot's globals.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum SnapshotGlobal {
    #[serde(rename = "i32")]
    I32(i32),
    #[serde(rename = "i64")]
    I64(i64),
    #[serde(rename = "f32")]
    F32(f32),
    #[serde(rename = "f64")]
    F64(f64),
    #[serde(rename = "v128")]
    V128(Nat),
}

/// The global timer a snapshot holds.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalTimer {
    #[serde(rename = "inactive")]
    Inactive,
    /// Fires at this time (Unix nanoseconds).
    #[serde(rename = "active")]
    Active(u64),
}

/// Where a snapshot's `canister_on_low_wasm_memory` hook stands.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowMemoryHookStatus {
    #[serde(rename = "condition_not_satisfied")]
    ConditionNotSatisfied,
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "executed")]
    Executed,
}

/// `read_canister_snapshot_metadata`'s argument.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ReadSnapshotMetadataArgs {
    pub canister_id: Principal,
    pub snapshot_id: ByteBuf,
}

/// `read_canister_snapshot_metadata`'s result. Encoded as the IC's
/// `ic.did` has it (`source` and the globals not `opt`), which clients
/// decoding them as `opt` (`ic-management-canister-types`) also accept.
/// Serialized (JSON) as that crate's type is, field for field.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SnapshotMetadata {
    pub source: CandidSnapshotSource,
    pub taken_at_timestamp: u64,
    pub wasm_module_size: u64,
    pub globals: Vec<SnapshotGlobal>,
    pub wasm_memory_size: u64,
    pub stable_memory_size: u64,
    pub wasm_chunk_store: Vec<ChunkHashRecord>,
    pub canister_version: u64,
    pub certified_data: ByteBuf,
    pub global_timer: Option<GlobalTimer>,
    pub on_low_wasm_memory_hook_status: Option<LowMemoryHookStatus>,
}

/// What `read_canister_snapshot_data` reads.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub enum SnapshotDataKind {
    #[serde(rename = "wasm_module")]
    WasmModule { offset: u64, size: u64 },
    #[serde(rename = "wasm_memory")]
    WasmMemory { offset: u64, size: u64 },
    #[serde(rename = "stable_memory")]
    StableMemory { offset: u64, size: u64 },
    #[serde(rename = "wasm_chunk")]
    WasmChunk { hash: ByteBuf },
}

/// `read_canister_snapshot_data`'s argument.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ReadSnapshotDataArgs {
    pub canister_id: Principal,
    pub snapshot_id: ByteBuf,
    pub kind: SnapshotDataKind,
}

/// `read_canister_snapshot_data`'s result.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct SnapshotData {
    pub chunk: ByteBuf,
}

/// `upload_canister_snapshot_metadata`'s argument.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct UploadSnapshotMetadataArgs {
    pub canister_id: Principal,
    pub replace_snapshot: Option<ByteBuf>,
    pub wasm_module_size: u64,
    pub globals: Vec<SnapshotGlobal>,
    pub wasm_memory_size: u64,
    pub stable_memory_size: u64,
    pub certified_data: ByteBuf,
    /// `None`: loading leaves the canister's timer as it is.
    pub global_timer: Option<GlobalTimer>,
    /// `None`: loading leaves the hook's status as it is.
    pub on_low_wasm_memory_hook_status: Option<LowMemoryHookStatus>,
}

/// `upload_canister_snapshot_metadata`'s result.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct UploadSnapshotMetadataResult {
    pub snapshot_id: ByteBuf,
}

/// Where `upload_canister_snapshot_data` writes.
#[derive(CandidType, Deserialize, Debug, Clone, Copy)]
pub enum SnapshotDataOffset {
    #[serde(rename = "wasm_module")]
    WasmModule { offset: u64 },
    #[serde(rename = "wasm_memory")]
    WasmMemory { offset: u64 },
    #[serde(rename = "stable_memory")]
    StableMemory { offset: u64 },
    /// Adds the chunk to the snapshot's chunk store.
    #[serde(rename = "wasm_chunk")]
    WasmChunk,
}

/// `upload_canister_snapshot_data`'s argument (decoded by reference into
/// the call's argument).
#[derive(CandidType, Deserialize, Debug)]
pub struct UploadSnapshotDataArgs<'a> {
    canister_id: Principal,
    #[serde(with = "serde_bytes", borrow)]
    snapshot_id: &'a [u8],
    kind: SnapshotDataOffset,
    #[serde(with = "serde_bytes", borrow)]
    chunk: &'a [u8],
}

/// Answers one of [`METHODS`] for `caller`.
pub(super) fn handle(replica: &Replica, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
    match method {
        "read_canister_snapshot_metadata" => {
            let args: ReadSnapshotMetadataArgs = decode(method, arg)?;
            encode(&replica.read_snapshot_metadata(caller, args.canister_id, &args.snapshot_id)?)
        }
        "read_canister_snapshot_data" => {
            let args: ReadSnapshotDataArgs = decode(method, arg)?;
            let chunk = replica.read_snapshot_data(caller, args.canister_id, &args.snapshot_id, &args.kind)?;
            encode(&SnapshotData { chunk: ByteBuf::from(chunk) })
        }
        "upload_canister_snapshot_metadata" => {
            let args: UploadSnapshotMetadataArgs = decode(method, arg)?;
            let id = replica.upload_snapshot_metadata(caller, &args)?;
            encode(&UploadSnapshotMetadataResult { snapshot_id: ByteBuf::from(id) })
        }
        "upload_canister_snapshot_data" => {
            let args: UploadSnapshotDataArgs = decode(method, arg)?;
            replica.upload_snapshot_data(caller, args.canister_id, args.snapshot_id, args.kind, args.chunk)?;
            Ok(b"DIDL\x00\x00".to_vec())
        }
        other => Err(Reject::system(ErrorCode::CanisterMethodNotFound, format!("Management canister has no method '{other}'"))),
    }
}

fn invalid(message: String) -> Reject {
    Reject::system(ErrorCode::InvalidManagementPayload, message)
}

/// The snapshot's metadata, as `read_canister_snapshot_metadata` reports it.
fn metadata(s: &CanisterSnapshot) -> SnapshotMetadata {
    let (source, global_timer, hook) = match s.source {
        SnapshotSource::TakenFromCanister => (CandidSnapshotSource::TakenFromCanister(candid::Reserved), Some(timer_of(s.timer)), None),
        SnapshotSource::MetadataUpload { keep_timer, hook } => {
            (CandidSnapshotSource::MetadataUpload(candid::Reserved), (!keep_timer).then(|| timer_of(s.timer)), hook)
        }
    };
    SnapshotMetadata {
        source,
        taken_at_timestamp: s.taken_at,
        wasm_module_size: s.module.len() as u64,
        globals: s.image.globals.iter().filter_map(global_of).collect(),
        wasm_memory_size: s.image.heap.len() as u64,
        stable_memory_size: s.image.stable.size_bytes(),
        wasm_chunk_store: s.chunk_store.hashes().into_iter().map(|h| ChunkHashRecord { hash: h.to_vec() }).collect(),
        canister_version: s.canister_version,
        certified_data: ByteBuf::from(s.certified_data.to_vec()),
        global_timer,
        on_low_wasm_memory_hook_status: hook,
    }
}

fn timer_of(timer: u64) -> GlobalTimer {
    if timer == 0 { GlobalTimer::Inactive } else { GlobalTimer::Active(timer) }
}

/// A numeric global's value (reference globals are never kept state).
fn global_of(v: &wasmtime::Val) -> Option<SnapshotGlobal> {
    Some(match v {
        wasmtime::Val::I32(x) => SnapshotGlobal::I32(*x),
        wasmtime::Val::I64(x) => SnapshotGlobal::I64(*x),
        wasmtime::Val::F32(bits) => SnapshotGlobal::F32(f32::from_bits(*bits)),
        wasmtime::Val::F64(bits) => SnapshotGlobal::F64(f64::from_bits(*bits)),
        wasmtime::Val::V128(x) => SnapshotGlobal::V128(Nat::from(x.as_u128())),
        _ => return None,
    })
}

fn val_of(g: &SnapshotGlobal) -> Result<wasmtime::Val, Reject> {
    Ok(match g {
        SnapshotGlobal::I32(x) => wasmtime::Val::I32(*x),
        SnapshotGlobal::I64(x) => wasmtime::Val::I64(*x),
        SnapshotGlobal::F32(x) => wasmtime::Val::F32(x.to_bits()),
        SnapshotGlobal::F64(x) => wasmtime::Val::F64(x.to_bits()),
        SnapshotGlobal::V128(n) => {
            let x = u128::try_from(&n.0).map_err(|_| invalid(format!("a v128 global of {n} does not fit in 128 bits")))?;
            wasmtime::Val::V128(x.into())
        }
    })
}

/// `offset .. offset + size` of a region of `len` bytes, if inside it.
fn slice(what: &str, offset: u64, size: u64, len: u64) -> Result<std::ops::Range<usize>, Reject> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(offset as usize..end as usize),
        _ => Err(invalid(format!(
            "Invalid subslice into the snapshot's {what}: offset {offset} and size {size} exceed its {len} bytes"
        ))),
    }
}

/// `read_canister_snapshot_data`: a slice of the module or a memory, or a
/// stored chunk.
fn read(s: &CanisterSnapshot, kind: &SnapshotDataKind) -> Result<Vec<u8>, Reject> {
    let (offset, size) = match kind {
        SnapshotDataKind::WasmChunk { hash } => {
            let found = s.chunk_store.entries().find(|(h, _)| h[..] == hash[..]).map(|(_, chunk)| chunk.to_vec());
            return found.ok_or_else(|| invalid(format!("The snapshot's Wasm chunk store holds no chunk with hash {}", hex::encode(hash))));
        }
        SnapshotDataKind::WasmModule { offset, size } | SnapshotDataKind::WasmMemory { offset, size } | SnapshotDataKind::StableMemory { offset, size } => {
            (*offset, *size)
        }
    };
    if size > MAX_SLICE_SIZE_BYTES {
        return Err(invalid(format!(
            "Invalid snapshot slice: size {size} exceeds the maximum of {MAX_SLICE_SIZE_BYTES} bytes one read_canister_snapshot_data returns"
        )));
    }
    Ok(match kind {
        SnapshotDataKind::WasmModule { .. } => s.module[slice("Wasm module", offset, size, s.module.len() as u64)?].to_vec(),
        SnapshotDataKind::WasmMemory { .. } => s.image.heap[slice("Wasm memory", offset, size, s.image.heap.len() as u64)?].to_vec(),
        _ => {
            slice("stable memory", offset, size, s.image.stable.size_bytes())?;
            s.image.stable.read(offset, size).map_err(|e| invalid(e.to_string()))?
        }
    })
}

/// Zeros in a shared buffer, from zeroed memory: pages never written cost
/// nothing (a 4 GiB heap declared by metadata is not 4 GiB resident).
pub(super) fn zeros(len: u64) -> Arc<[u8]> {
    let buffer = Arc::<[u8]>::new_zeroed_slice(len as usize);
    // SAFETY: every byte is zero, a valid `u8`.
    unsafe { buffer.assume_init() }
}

/// Writes `bytes` at `offset` of `buf` (in bounds): in place when the buffer
/// is not shared, else into a copy.
fn write_into(buf: &mut Arc<[u8]>, at: std::ops::Range<usize>, bytes: &[u8]) {
    if Arc::get_mut(buf).is_none() {
        *buf = Arc::from(&buf[..]);
    }
    if let Some(b) = Arc::get_mut(buf) {
        b[at].copy_from_slice(bytes);
    }
}

/// Checks a memory size of the uploaded metadata: whole Wasm pages, at most
/// `limit` bytes.
fn check_memory_size(what: &str, size: u64, limit: u64) -> Result<(), Reject> {
    if !size.is_multiple_of(WASM_PAGE) {
        return Err(invalid(format!("{what} {size} is not a multiple of the Wasm page size ({WASM_PAGE} bytes)")));
    }
    if size > limit {
        return Err(invalid(format!("{what} {size} exceeds the limit of {limit} bytes")));
    }
    Ok(())
}

/// The snapshot `upload_canister_snapshot_metadata` describes, empty (all
/// zeros), or why it cannot be made.
fn empty_snapshot(replica: &Replica, args: &UploadSnapshotMetadataArgs) -> Result<CanisterSnapshot, Reject> {
    let limits = replica.runtime().limits();
    if args.wasm_module_size > super::install::MAX_WASM_MODULE as u64 {
        return Err(invalid(format!(
            "wasm_module_size {} exceeds the limit of {} bytes",
            args.wasm_module_size,
            super::install::MAX_WASM_MODULE
        )));
    }
    check_memory_size("wasm_memory_size", args.wasm_memory_size, limits.wasm_memory_limit as u64)?;
    check_memory_size("stable_memory_size", args.stable_memory_size, limits.stable_memory_pages.saturating_mul(STABLE_PAGE))?;
    if args.certified_data.len() > MAX_CERTIFIED_DATA {
        return Err(invalid(format!("certified_data has {} bytes; at most {MAX_CERTIFIED_DATA} are allowed", args.certified_data.len())));
    }
    if args.globals.len() > super::exec::module_check::MAX_GLOBALS {
        return Err(invalid(format!("{} globals; at most {} are allowed", args.globals.len(), super::exec::module_check::MAX_GLOBALS)));
    }
    let globals = args.globals.iter().map(val_of).collect::<Result<Vec<_>, _>>()?;
    let mut stable = StableMemory::new(limits.stable_memory_pages);
    if stable.grow(args.stable_memory_size / STABLE_PAGE) < 0 {
        return Err(invalid(format!("stable_memory_size {} cannot be allocated", args.stable_memory_size)));
    }
    stable.commit();
    let timer = match args.global_timer {
        Some(GlobalTimer::Active(t)) => t,
        Some(GlobalTimer::Inactive) | None => 0,
    };
    Ok(CanisterSnapshot {
        id: Vec::new(),
        taken_at: 0,
        canister_version: 0,
        module_hash: [0; 32],
        module: zeros(args.wasm_module_size),
        code: None,
        image: InstanceImage { heap: zeros(args.wasm_memory_size), stable: Arc::new(stable), globals },
        certified_data: Arc::new(args.certified_data.to_vec()),
        chunk_store: chunks::ChunkStore::default(),
        timer,
        source: SnapshotSource::MetadataUpload { keep_timer: args.global_timer.is_none(), hook: args.on_low_wasm_memory_hook_status },
        unsaved: UnsavedBlocks::default(),
    })
}

/// Compiles an uploaded snapshot's module for loading it into `canister`:
/// the code and the module's hash.
pub(super) fn compile(inner: &Arc<Inner>, canister: &Principal, snapshot: &CanisterSnapshot) -> Result<(Code, [u8; 32]), Reject> {
    let replica = Replica { inner: inner.clone() };
    let prepared = super::install::prepare_module(&replica, canister, &snapshot.module).map_err(|r| {
        Reject::system(
            ErrorCode::CanisterInvalidWasm,
            format!("Loading the uploaded snapshot {}: {}", hex::encode(&snapshot.id), r.message),
        )
    })?;
    Ok((prepared.code, prepared.hash))
}

/// What loading `snapshot` does to the canister's timer and low-memory hook
/// (a taken snapshot restores its timer; an uploaded one may leave both).
pub(super) fn restore_timer_and_hook(snapshot: &CanisterSnapshot, slot: &mut Slot) {
    match snapshot.source {
        SnapshotSource::TakenFromCanister => {
            slot.timer = snapshot.timer;
            slot.low_memory_fired = false;
        }
        SnapshotSource::MetadataUpload { keep_timer, hook } => {
            if !keep_timer {
                slot.timer = snapshot.timer;
            }
            if let Some(hook) = hook {
                slot.low_memory_fired = hook == LowMemoryHookStatus::Executed;
            }
        }
    }
}

/// Snapshot transfer through the host API (the management canister comes
/// through here).
impl Replica {
    /// `f` of snapshot `id` of `canister`, if `caller` may read it (by the
    /// canister's `snapshot_visibility`).
    pub(super) fn with_snapshot<T>(&self, caller: Principal, canister: Principal, id: &[u8], f: impl FnOnce(&CanisterSnapshot) -> T) -> Result<T, Reject> {
        let st = self.inner.lock();
        let slot = st.canisters.get(&canister).ok_or_else(|| not_found(&canister))?;
        if !slot.settings.snapshot_visibility.allows(&caller, &slot.controllers) {
            return Err(not_controller(&canister, &caller));
        }
        let snapshot = slot.snapshots.iter().find(|s| s.id == id).ok_or_else(|| snapshot_not_found(&canister, id))?;
        Ok(f(snapshot))
    }

    /// `read_canister_snapshot_metadata`: snapshot `id` of `canister`
    /// described, if `caller` may read it.
    pub fn read_snapshot_metadata(&self, caller: Principal, canister: Principal, id: &[u8]) -> Result<SnapshotMetadata, Reject> {
        self.with_snapshot(caller, canister, id, metadata)
    }

    /// `read_canister_snapshot_data`: a slice of snapshot `id` of
    /// `canister` (at most [`MAX_SLICE_SIZE_BYTES`]), or one of its chunks,
    /// if `caller` may read it.
    pub fn read_snapshot_data(&self, caller: Principal, canister: Principal, id: &[u8], kind: &SnapshotDataKind) -> Result<Vec<u8>, Reject> {
        self.with_snapshot(caller, canister, id, |s| read(s, kind))?
    }

    /// `upload_canister_snapshot_metadata`: a new, empty snapshot of the
    /// given sizes; its id.
    pub fn upload_snapshot_metadata(&self, caller: Principal, args: &UploadSnapshotMetadataArgs) -> Result<Vec<u8>, Reject> {
        let canister = args.canister_id;
        self.check_controller(&canister, &caller)?;
        // Made (and zeroed) before the lock is taken.
        let mut snapshot = empty_snapshot(self, args)?;
        let mut st = self.inner.lock();
        let taken_at = st.now();
        let slot = st.canisters.get_mut(&canister).ok_or_else(|| not_found(&canister))?;
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        let replace = args.replace_snapshot.as_ref().map(|r| r.as_slice());
        match replace {
            Some(r) if !slot.snapshots.iter().any(|s| s.id == r) => return Err(snapshot_not_found(&canister, r)),
            None if slot.snapshots.len() >= MAX_SNAPSHOTS_PER_CANISTER => {
                return Err(Reject::system(
                    ErrorCode::CanisterRejectedMessage,
                    format!("Canister {canister} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS_PER_CANISTER}."),
                ));
            }
            _ => {}
        }
        let replaced = replace.and_then(|r| slot.snapshots.iter().position(|s| s.id == r)).map(|at| slot.snapshots.remove(at));
        snapshot.id = snapshot_id(&canister, slot.next_snapshot);
        slot.next_snapshot += 1;
        snapshot.taken_at = taken_at;
        snapshot.canister_version = slot.version;
        let id = snapshot.id.clone();
        slot.snapshots.push(snapshot);
        drop(st);
        drop(replaced);
        Ok(id)
    }

    /// `upload_canister_snapshot_data`: writes `chunk` into an uploaded
    /// snapshot at `kind`.
    pub fn upload_snapshot_data(&self, caller: Principal, canister: Principal, id: &[u8], kind: SnapshotDataOffset, chunk: &[u8]) -> Result<(), Reject> {
        if let SnapshotDataOffset::WasmChunk = kind {
            chunks::check_chunk_size(chunk.len())?;
        }
        let mut st = self.inner.lock();
        let slot = st.canisters.get_mut(&canister).ok_or_else(|| not_found(&canister))?;
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        let s = slot.snapshots.iter_mut().find(|s| s.id == id).ok_or_else(|| snapshot_not_found(&canister, id))?;
        if s.source == SnapshotSource::TakenFromCanister {
            return Err(Reject::system(
                ErrorCode::CanisterSnapshotImmutable,
                format!(
                    "Snapshot {} of canister {canister} was taken from the canister and cannot be changed; only snapshots created by upload_canister_snapshot_metadata can.",
                    hex::encode(id)
                ),
            ));
        }
        let len = chunk.len() as u64;
        match kind {
            SnapshotDataOffset::WasmModule { offset } => {
                let at = slice("Wasm module", offset, len, s.module.len() as u64)?;
                UnsavedBlocks::wrote(&mut s.unsaved.module, &at);
                write_into(&mut s.module, at, chunk);
            }
            SnapshotDataOffset::WasmMemory { offset } => {
                let at = slice("Wasm memory", offset, len, s.image.heap.len() as u64)?;
                UnsavedBlocks::wrote(&mut s.unsaved.heap, &at);
                write_into(&mut s.image.heap, at, chunk);
            }
            SnapshotDataOffset::StableMemory { offset } => {
                slice("stable memory", offset, len, s.image.stable.size_bytes())?;
                let stable = Arc::make_mut(&mut s.image.stable);
                stable.write(offset, chunk).map_err(|e| invalid(e.to_string()))?;
                stable.commit();
            }
            SnapshotDataOffset::WasmChunk => {
                s.chunk_store.insert(canister, chunks::sha256(chunk), Bytes::copy_from_slice(chunk))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `method`'s argument and result types in ww's `ic.did`.
    fn signature(method: &str) -> (candid::types::TypeEnv, candid::types::Function) {
        let (env, actor) = candid_parser::utils::CandidSource::Text(super::super::management::CANDID).load().expect("ic.did parses");
        let actor = actor.expect("ic.did has a service");
        let f = env.get_method(&actor, method).unwrap_or_else(|_| panic!("ic.did has no {method}")).clone();
        (env, f)
    }

    fn conforms(bytes: &[u8], env: &candid::types::TypeEnv, types: &[candid::types::Type]) {
        candid::IDLArgs::from_bytes_with_types(bytes, env, types).unwrap_or_else(|e| panic!("does not match ic.did: {e}"));
    }

    fn sample_metadata() -> SnapshotMetadata {
        SnapshotMetadata {
            source: CandidSnapshotSource::MetadataUpload(candid::Reserved),
            taken_at_timestamp: 1,
            wasm_module_size: 2,
            globals: vec![SnapshotGlobal::I32(-1), SnapshotGlobal::F64(0.5), SnapshotGlobal::V128(Nat::from(u128::MAX))],
            wasm_memory_size: 65536,
            stable_memory_size: 0,
            wasm_chunk_store: vec![ChunkHashRecord { hash: vec![3; 32] }],
            canister_version: 4,
            certified_data: ByteBuf::from(vec![5]),
            global_timer: Some(GlobalTimer::Active(6)),
            on_low_wasm_memory_hook_status: Some(LowMemoryHookStatus::Ready),
        }
    }

    #[test]
    fn methods_match_ic_did() {
        let (id, snapshot_id) = (Principal::management_canister(), ByteBuf::from(vec![0; 18]));
        let (env, f) = signature("read_canister_snapshot_metadata");
        conforms(&candid::encode_one(ReadSnapshotMetadataArgs { canister_id: id, snapshot_id: snapshot_id.clone() }).unwrap(), &env, &f.args);
        conforms(&candid::encode_one(sample_metadata()).unwrap(), &env, &f.rets);

        let (env, f) = signature("read_canister_snapshot_data");
        for kind in [
            SnapshotDataKind::WasmModule { offset: 1, size: 2 },
            SnapshotDataKind::StableMemory { offset: 1, size: 2 },
            SnapshotDataKind::WasmChunk { hash: ByteBuf::from(vec![1; 32]) },
        ] {
            conforms(&candid::encode_one(ReadSnapshotDataArgs { canister_id: id, snapshot_id: snapshot_id.clone(), kind }).unwrap(), &env, &f.args);
        }
        conforms(&candid::encode_one(SnapshotData { chunk: ByteBuf::from(vec![1]) }).unwrap(), &env, &f.rets);

        let (env, f) = signature("upload_canister_snapshot_metadata");
        let args = UploadSnapshotMetadataArgs {
            canister_id: id,
            replace_snapshot: Some(snapshot_id.clone()),
            wasm_module_size: 1,
            globals: vec![SnapshotGlobal::I64(7), SnapshotGlobal::F32(1.5)],
            wasm_memory_size: 0,
            stable_memory_size: 0,
            certified_data: ByteBuf::new(),
            global_timer: Some(GlobalTimer::Inactive),
            on_low_wasm_memory_hook_status: None,
        };
        conforms(&candid::encode_one(&args).unwrap(), &env, &f.args);
        conforms(&candid::encode_one(UploadSnapshotMetadataResult { snapshot_id: snapshot_id.clone() }).unwrap(), &env, &f.rets);

        let (env, f) = signature("upload_canister_snapshot_data");
        for kind in [SnapshotDataOffset::WasmMemory { offset: 3 }, SnapshotDataOffset::WasmChunk] {
            let args = UploadSnapshotDataArgs { canister_id: id, snapshot_id: &snapshot_id[..], kind, chunk: &[1] };
            conforms(&candid::encode_one(&args).unwrap(), &env, &f.args);
        }
        conforms(b"DIDL\x00\x00", &env, &f.rets);
    }

    /// `ic-management-canister-types` (0.11) decodes `source` and the
    /// globals as `opt`: the reply (as the IC encodes it) decodes so too.
    #[test]
    fn metadata_decodes_as_the_cdk_types() {
        #[derive(CandidType, Deserialize, Debug)]
        struct CdkMetadata {
            source: Option<CandidSnapshotSource>,
            globals: Vec<Option<SnapshotGlobal>>,
            certified_data: Vec<u8>,
            global_timer: Option<GlobalTimer>,
        }
        let cdk: CdkMetadata = candid::decode_one(&candid::encode_one(sample_metadata()).unwrap()).unwrap();
        assert_eq!(cdk.source, Some(CandidSnapshotSource::MetadataUpload(candid::Reserved)));
        assert_eq!(cdk.globals.len(), 3);
        assert_eq!(cdk.globals[0], Some(SnapshotGlobal::I32(-1)));
        assert_eq!(cdk.certified_data, vec![5]);
        assert_eq!(cdk.global_timer, Some(GlobalTimer::Active(6)));
    }

    #[test]
    fn globals_round_trip_bit_for_bit() {
        let nan = f32::from_bits(0x7fc0_0001);
        for v in [wasmtime::Val::I32(-5), wasmtime::Val::I64(i64::MIN), wasmtime::Val::F32(nan.to_bits()), wasmtime::Val::F64(2.5f64.to_bits())] {
            let g = global_of(&v).unwrap();
            let back = val_of(&g).unwrap();
            assert_eq!(format!("{back:?}"), format!("{v:?}"));
        }
        assert!(val_of(&SnapshotGlobal::V128(Nat::from(u128::MAX) + Nat::from(1u8))).is_err());
    }

    #[test]
    fn slices_stay_inside() {
        assert_eq!(slice("x", 2, 3, 5).unwrap(), 2..5);
        assert!(slice("x", 2, 4, 5).is_err());
        assert!(slice("x", u64::MAX, 2, 5).is_err(), "no overflow");
    }
}
