//! Canister snapshots through the management canister
//! (`take/load/list/delete_canister_snapshot`), as a controller sends them
//! by ingress: a load rolls heap and stable memory back, for a ww-cdk
//! component and an unmodified ic-cdk canister, and the IC's rules hold.
//! Snapshot transfer (`read_canister_snapshot_*`,
//! `upload_canister_snapshot_*`), with the Candid types
//! `ic-management-canister-types` 0.11 encodes: a snapshot read out of one
//! canister and uploaded into another loads there as the same state.

mod common;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use common::canisters::{admin, install, no_args, none_arg, query, replica, update};
use serde_bytes::ByteBuf;
use ww::replica::{InstallMode, Reject, Replica};

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
struct Snapshot {
    id: ByteBuf,
    taken_at_timestamp: u64,
    total_size: u64,
}

#[derive(CandidType)]
struct TakeArgs {
    canister_id: Principal,
    replace_snapshot: Option<ByteBuf>,
    uninstall_code: Option<bool>,
    sender_canister_version: Option<u64>,
}

#[derive(CandidType)]
struct LoadArgs {
    canister_id: Principal,
    snapshot_id: ByteBuf,
    sender_canister_version: Option<u64>,
}

#[derive(CandidType)]
struct DeleteArgs {
    canister_id: Principal,
    snapshot_id: ByteBuf,
}

#[derive(CandidType)]
struct CanisterIdRecord {
    canister_id: Principal,
}

async fn management(r: &Replica, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
    r.call(caller, Principal::management_canister(), method, arg).await
}

async fn take(r: &Replica, id: Principal, replace: Option<&Snapshot>) -> Result<Snapshot, Reject> {
    let arg = TakeArgs { canister_id: id, replace_snapshot: replace.map(|s| s.id.clone()), uninstall_code: None, sender_canister_version: None };
    let bytes = management(r, admin(), "take_canister_snapshot", Encode!(&arg).unwrap()).await?;
    Ok(Decode!(&bytes, Snapshot).unwrap())
}

async fn load(r: &Replica, id: Principal, snapshot: &ByteBuf) -> Result<(), Reject> {
    let arg = LoadArgs { canister_id: id, snapshot_id: snapshot.clone(), sender_canister_version: None };
    management(r, admin(), "load_canister_snapshot", Encode!(&arg).unwrap()).await.map(drop)
}

async fn list(r: &Replica, id: Principal) -> Vec<Snapshot> {
    let bytes = management(r, admin(), "list_canister_snapshots", Encode!(&CanisterIdRecord { canister_id: id }).unwrap()).await.expect("list");
    Decode!(&bytes, Vec<Snapshot>).unwrap()
}

async fn delete(r: &Replica, id: Principal, snapshot: &ByteBuf) -> Result<(), Reject> {
    let arg = DeleteArgs { canister_id: id, snapshot_id: snapshot.clone() };
    management(r, admin(), "delete_canister_snapshot", Encode!(&arg).unwrap()).await.map(drop)
}

fn error_code(e: &Reject) -> String {
    e.error_code.map(|c| c.to_string()).unwrap_or_default()
}

fn cdk_wasm(name: &str) -> Vec<u8> {
    let p = common::repo().join("guests/target/wasm32-unknown-unknown/release").join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("ic-cdk canister {} is missing ({e}): run `make test` (it builds them first)", p.display()))
}

async fn install_cdk_counter(r: &Replica) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &cdk_wasm("cdk_counter")).expect("prepare");
    #[derive(CandidType)]
    struct InitArg {
        greeting: String,
    }
    r.install(admin(), id, InstallMode::Install, m, Encode!(&Option::<InitArg>::None).unwrap()).await.expect("install");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_a_snapshot_rolls_a_component_back_heap_and_stable_memory() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    update::<()>(&r, id, "set", Encode!(&7u64).unwrap()).await;
    update::<()>(&r, id, "stable_set", Encode!(&1u64, &100u64).unwrap()).await;
    let snap = take(&r, id, None).await.expect("take");
    assert!(snap.total_size > 0, "{snap:?}");
    assert_eq!(list(&r, id).await, vec![snap.clone()]);
    let status = r.status(&id).unwrap();
    assert_eq!(status.memory.snapshots, snap.total_size, "canister_status counts the snapshot");
    assert!(status.memory_size >= status.memory.heap + snap.total_size);
    assert_eq!(status.memory.module, common::canisters::wasm("probe").len() as u64, "the module as installed");
    assert!(snap.total_size > status.memory.module + status.memory.heap, "the snapshot holds module and heap");

    // Life goes on after the snapshot.
    update::<()>(&r, id, "set", Encode!(&8u64).unwrap()).await;
    update::<()>(&r, id, "stable_set", Encode!(&1u64, &200u64).unwrap()).await;
    update::<()>(&r, id, "stable_set", Encode!(&2u64, &300u64).unwrap()).await;

    // A running canister cannot load a snapshot.
    let err = load(&r, id, &snap.id).await.unwrap_err();
    assert!(err.message.contains("must be stopped"), "{err}");
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 8, "nothing changed");

    r.stop(admin(), id).await.unwrap();
    load(&r, id, &snap.id).await.expect("load");
    r.start(admin(), id).unwrap();
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 7, "the heap is the snapshot's");
    assert_eq!(query::<Option<u64>>(&r, id, "stable_get", Encode!(&1u64).unwrap()).await, Some(100), "stable memory too");
    assert_eq!(query::<Option<u64>>(&r, id, "stable_get", Encode!(&2u64).unwrap()).await, None);
    // And it runs on from there.
    update::<()>(&r, id, "set", Encode!(&9u64).unwrap()).await;
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 9);
    // The snapshot is still there and can be loaded again.
    r.stop(admin(), id).await.unwrap();
    load(&r, id, &snap.id).await.expect("load again");
    r.start(admin(), id).unwrap();
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ic_cdk_canister_loads_its_snapshot_and_history_records_it() {
    let r = replica();
    let id = install_cdk_counter(&r).await;
    update::<u64>(&r, id, "inc", no_args()).await;
    update::<u64>(&r, id, "inc", no_args()).await;
    update::<()>(&r, id, "put", Encode!(&"a", &"1").unwrap()).await;
    let version_at_take = query::<u64>(&r, id, "version", no_args()).await;
    let snap = take(&r, id, None).await.expect("take");
    update::<u64>(&r, id, "inc", no_args()).await;
    update::<()>(&r, id, "put", Encode!(&"b", &"2").unwrap()).await;
    r.stop(admin(), id).await.unwrap();
    load(&r, id, &snap.id).await.expect("load");
    r.start(admin(), id).unwrap();
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 2, "the heap counter of the snapshot");
    assert_eq!(query::<u64>(&r, id, "len", no_args()).await, 1, "the StableBTreeMap of the snapshot");
    assert_eq!(query::<Option<String>>(&r, id, "get_kv", Encode!(&"b").unwrap()).await, None);
    // Globals were restored too: the canister keeps running normally.
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 3);

    let info = r.canister_info(&id, 20).expect("canister_info");
    let last = info.recent_changes.last().expect("changes");
    let ww::replica::history::CandidChangeDetails::LoadSnapshot { snapshot_id, canister_version, taken_at_timestamp, .. } = &last.details else {
        panic!("the last change is not a snapshot load: {last:?}");
    };
    assert_eq!(snapshot_id, &snap.id);
    assert_eq!(*taken_at_timestamp, snap.taken_at_timestamp);
    let text = format!("canister_version = {canister_version}");
    assert_eq!(text, format!("canister_version = {version_at_take}"), "the snapshot's version is recorded");
    assert!(last.canister_version > version_at_take, "loading is a change of the canister");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_follow_the_ics_rules() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    let other = install(&r, "probe", none_arg()).await;

    // Controllers only.
    let stranger = Principal::self_authenticating(b"stranger");
    let arg = TakeArgs { canister_id: id, replace_snapshot: None, uninstall_code: None, sender_canister_version: None };
    let err = management(&r, stranger, "take_canister_snapshot", Encode!(&arg).unwrap()).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0512", "{err}");
    let err = management(&r, stranger, "list_canister_snapshots", Encode!(&CanisterIdRecord { canister_id: id }).unwrap()).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0512", "{err}");

    // Ten at most; replacing keeps the count.
    let mut taken = Vec::new();
    for _ in 0..10 {
        taken.push(take(&r, id, None).await.expect("take"));
    }
    let err = take(&r, id, None).await.unwrap_err();
    assert!(err.message.contains("maximum number of snapshots allowed: 10"), "{err}");
    let replaced = take(&r, id, Some(&taken[3])).await.expect("replace");
    let ids: Vec<ByteBuf> = list(&r, id).await.into_iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 10);
    assert!(!ids.contains(&taken[3].id) && ids.contains(&replaced.id));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "ids never repeat");

    // Unknown snapshots, and another canister's, are IC0305.
    r.stop(admin(), other).await.unwrap();
    let err = load(&r, other, &taken[0].id).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "{err}");
    let err = delete(&r, id, &taken[3].id).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "a replaced snapshot is gone: {err}");
    let err = take(&r, id, Some(&taken[3])).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "{err}");

    // Deleting frees a place.
    delete(&r, id, &taken[0].id).await.expect("delete");
    assert_eq!(list(&r, id).await.len(), 9);
    take(&r, id, None).await.expect("a place was freed");

    // An empty canister has nothing to snapshot.
    let empty = r.create_canister(vec![admin()]);
    assert!(take(&r, empty, None).await.is_err());
    assert!(list(&r, empty).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_outlives_uninstall_and_brings_the_module_back() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    update::<()>(&r, id, "set", Encode!(&42u64).unwrap()).await;
    // `uninstall_code = true`: the snapshot is taken, then the code goes.
    let arg = TakeArgs { canister_id: id, replace_snapshot: None, uninstall_code: Some(true), sender_canister_version: None };
    let bytes = management(&r, admin(), "take_canister_snapshot", Encode!(&arg).unwrap()).await.expect("take and uninstall");
    let snap = Decode!(&bytes, Snapshot).unwrap();
    assert!(r.call(admin(), id, "get", no_args()).await.is_err(), "the canister is empty");
    assert_eq!(list(&r, id).await.len(), 1, "the snapshot stays");
    r.stop(admin(), id).await.unwrap();
    load(&r, id, &snap.id).await.expect("load into the empty canister");
    r.start(admin(), id).unwrap();
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 42, "module and heap are back");
    // A deleted canister's snapshots go with it.
    r.stop(admin(), id).await.unwrap();
    r.delete(admin(), id).unwrap();
    let err = management(&r, admin(), "list_canister_snapshots", Encode!(&CanisterIdRecord { canister_id: id }).unwrap()).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0301", "{err}");
}

// ---- Snapshot transfer, with the shapes of `ic-management-canister-types`
// 0.11 (ids and certified data as `vec nat8`, `source` and globals `opt`).

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
enum Global {
    #[serde(rename = "i32")]
    I32(i32),
    #[serde(rename = "i64")]
    I64(i64),
    #[serde(rename = "f32")]
    F32(f32),
    #[serde(rename = "f64")]
    F64(f64),
    #[serde(rename = "v128")]
    V128(candid::Nat),
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
enum Timer {
    #[serde(rename = "inactive")]
    Inactive,
    #[serde(rename = "active")]
    Active(u64),
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
enum HookStatus {
    #[serde(rename = "condition_not_satisfied")]
    ConditionNotSatisfied,
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "executed")]
    Executed,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
enum Source {
    #[serde(rename = "taken_from_canister")]
    TakenFromCanister(candid::Reserved),
    #[serde(rename = "metadata_upload")]
    MetadataUpload(candid::Reserved),
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
struct ChunkHash {
    #[serde(with = "serde_bytes")]
    hash: Vec<u8>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct Metadata {
    source: Option<Source>,
    taken_at_timestamp: u64,
    wasm_module_size: u64,
    globals: Vec<Option<Global>>,
    wasm_memory_size: u64,
    stable_memory_size: u64,
    wasm_chunk_store: Vec<ChunkHash>,
    canister_version: u64,
    certified_data: Vec<u8>,
    global_timer: Option<Timer>,
    on_low_wasm_memory_hook_status: Option<HookStatus>,
}

#[derive(CandidType)]
struct ReadMetadataArgs {
    canister_id: Principal,
    snapshot_id: Vec<u8>,
}

#[derive(CandidType, Deserialize, Clone)]
enum DataKind {
    #[serde(rename = "wasm_module")]
    WasmModule { offset: u64, size: u64 },
    #[serde(rename = "wasm_memory")]
    WasmMemory { offset: u64, size: u64 },
    #[serde(rename = "stable_memory")]
    StableMemory { offset: u64, size: u64 },
    #[serde(rename = "wasm_chunk")]
    WasmChunk {
        #[serde(with = "serde_bytes")]
        hash: Vec<u8>,
    },
}

#[derive(CandidType)]
struct ReadDataArgs {
    canister_id: Principal,
    snapshot_id: Vec<u8>,
    kind: DataKind,
}

#[derive(CandidType, Deserialize)]
struct ReadDataResult {
    #[serde(with = "serde_bytes")]
    chunk: Vec<u8>,
}

#[derive(CandidType, Clone)]
struct UploadMetadataArgs {
    canister_id: Principal,
    replace_snapshot: Option<Vec<u8>>,
    wasm_module_size: u64,
    globals: Vec<Global>,
    wasm_memory_size: u64,
    stable_memory_size: u64,
    certified_data: Vec<u8>,
    global_timer: Option<Timer>,
    on_low_wasm_memory_hook_status: Option<HookStatus>,
}

#[derive(CandidType, Deserialize)]
struct UploadMetadataResult {
    snapshot_id: Vec<u8>,
}

#[derive(CandidType, Deserialize, Clone, Copy)]
enum DataOffset {
    #[serde(rename = "wasm_module")]
    WasmModule { offset: u64 },
    #[serde(rename = "wasm_memory")]
    WasmMemory { offset: u64 },
    #[serde(rename = "stable_memory")]
    StableMemory { offset: u64 },
    #[serde(rename = "wasm_chunk")]
    WasmChunk,
}

#[derive(CandidType, Deserialize)]
struct UploadDataArgs {
    canister_id: Principal,
    snapshot_id: Vec<u8>,
    kind: DataOffset,
    #[serde(with = "serde_bytes")]
    chunk: Vec<u8>,
}

/// What a client reads per call: less than the limit, so memories take
/// several slices.
const SLICE: u64 = 1_000_000;

async fn read_metadata(r: &Replica, caller: Principal, id: Principal, snapshot: &[u8]) -> Result<Metadata, Reject> {
    let arg = ReadMetadataArgs { canister_id: id, snapshot_id: snapshot.to_vec() };
    let bytes = management(r, caller, "read_canister_snapshot_metadata", Encode!(&arg).unwrap()).await?;
    Ok(Decode!(&bytes, Metadata).unwrap())
}

async fn read_data(r: &Replica, caller: Principal, id: Principal, snapshot: &[u8], kind: DataKind) -> Result<Vec<u8>, Reject> {
    let arg = ReadDataArgs { canister_id: id, snapshot_id: snapshot.to_vec(), kind };
    let bytes = management(r, caller, "read_canister_snapshot_data", Encode!(&arg).unwrap()).await?;
    Ok(Decode!(&bytes, ReadDataResult).unwrap().chunk)
}

async fn upload_metadata(r: &Replica, caller: Principal, args: &UploadMetadataArgs) -> Result<Vec<u8>, Reject> {
    let bytes = management(r, caller, "upload_canister_snapshot_metadata", Encode!(args).unwrap()).await?;
    Ok(Decode!(&bytes, UploadMetadataResult).unwrap().snapshot_id)
}

async fn upload_data(r: &Replica, caller: Principal, id: Principal, snapshot: &[u8], kind: DataOffset, chunk: &[u8]) -> Result<(), Reject> {
    let arg = UploadDataArgs { canister_id: id, snapshot_id: snapshot.to_vec(), kind, chunk: chunk.to_vec() };
    let bytes = management(r, caller, "upload_canister_snapshot_data", Encode!(&arg).unwrap()).await?;
    Decode!(&bytes).unwrap();
    Ok(())
}

/// A snapshot as a client downloads it.
struct Downloaded {
    meta: Metadata,
    module: Vec<u8>,
    heap: Vec<u8>,
    stable: Vec<u8>,
    chunks: Vec<Vec<u8>>,
}

/// One region, slice by slice.
async fn read_region(r: &Replica, id: Principal, snapshot: &[u8], size: u64, kind: fn(u64, u64) -> DataKind) -> Vec<u8> {
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let offset = out.len() as u64;
        let n = SLICE.min(size - offset);
        out.extend(read_data(r, admin(), id, snapshot, kind(offset, n)).await.expect("read a slice"));
    }
    out
}

async fn download(r: &Replica, id: Principal, snapshot: &[u8]) -> Downloaded {
    let meta = read_metadata(r, admin(), id, snapshot).await.expect("read metadata");
    let module = read_region(r, id, snapshot, meta.wasm_module_size, |offset, size| DataKind::WasmModule { offset, size }).await;
    let heap = read_region(r, id, snapshot, meta.wasm_memory_size, |offset, size| DataKind::WasmMemory { offset, size }).await;
    let stable = read_region(r, id, snapshot, meta.stable_memory_size, |offset, size| DataKind::StableMemory { offset, size }).await;
    let mut chunks = Vec::new();
    for h in &meta.wasm_chunk_store {
        chunks.push(read_data(r, admin(), id, snapshot, DataKind::WasmChunk { hash: h.hash.clone() }).await.expect("read a chunk"));
    }
    Downloaded { meta, module, heap, stable, chunks }
}

/// `upload_canister_snapshot_metadata` for what was downloaded.
fn metadata_args(id: Principal, d: &Downloaded) -> UploadMetadataArgs {
    UploadMetadataArgs {
        canister_id: id,
        replace_snapshot: None,
        wasm_module_size: d.module.len() as u64,
        globals: d.meta.globals.iter().map(|g| g.clone().expect("a known global")).collect(),
        wasm_memory_size: d.heap.len() as u64,
        stable_memory_size: d.stable.len() as u64,
        certified_data: d.meta.certified_data.clone(),
        global_timer: d.meta.global_timer.clone(),
        on_low_wasm_memory_hook_status: d.meta.on_low_wasm_memory_hook_status.clone(),
    }
}

async fn upload_region(r: &Replica, id: Principal, snapshot: &[u8], bytes: &[u8], kind: fn(u64) -> DataOffset) {
    for (i, piece) in bytes.chunks(SLICE as usize).enumerate() {
        let offset = i as u64 * SLICE;
        upload_data(r, admin(), id, snapshot, kind(offset), piece).await.expect("upload a slice");
    }
}

/// Uploads `d` as a new snapshot of `id`; its id.
async fn upload(r: &Replica, id: Principal, d: &Downloaded) -> Vec<u8> {
    let snapshot = upload_metadata(r, admin(), &metadata_args(id, d)).await.expect("upload metadata");
    upload_region(r, id, &snapshot, &d.module, |offset| DataOffset::WasmModule { offset }).await;
    upload_region(r, id, &snapshot, &d.heap, |offset| DataOffset::WasmMemory { offset }).await;
    upload_region(r, id, &snapshot, &d.stable, |offset| DataOffset::StableMemory { offset }).await;
    for chunk in &d.chunks {
        upload_data(r, admin(), id, &snapshot, DataOffset::WasmChunk, chunk).await.expect("upload a chunk");
    }
    snapshot
}

fn upload_chunk_arg(id: Principal, chunk: Vec<u8>) -> Vec<u8> {
    Encode!(&ww::replica::management::UploadChunkArgs { canister_id: id, chunk }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_read_out_of_one_canister_loads_into_another_as_the_same_state() {
    let r = replica();
    let a = install_cdk_counter(&r).await;
    update::<u64>(&r, a, "inc", no_args()).await;
    update::<u64>(&r, a, "inc", no_args()).await;
    update::<()>(&r, a, "put", Encode!(&"a", &"1").unwrap()).await;
    update::<()>(&r, a, "set_certified", Encode!(&vec![1u8, 2, 3]).unwrap()).await;
    management(&r, admin(), "upload_chunk", upload_chunk_arg(a, vec![7; 1000])).await.expect("upload_chunk");
    let taken = take(&r, a, None).await.expect("take");

    let d = download(&r, a, &taken.id).await;
    assert_eq!(d.meta.source, Some(Source::TakenFromCanister(candid::Reserved)));
    assert_eq!(d.meta.taken_at_timestamp, taken.taken_at_timestamp);
    assert_eq!(d.module, cdk_wasm("cdk_counter"), "the module as installed");
    assert!(d.heap.len() as u64 > SLICE && d.stable.len() as u64 > SLICE, "several slices each: {} / {}", d.heap.len(), d.stable.len());
    assert_eq!(d.heap.len() % 65536, 0);
    assert!(!d.meta.globals.is_empty(), "an ic-cdk module has mutable globals");
    assert_eq!(d.meta.certified_data, vec![1, 2, 3]);
    assert_eq!(d.chunks, vec![vec![7; 1000]]);
    assert_eq!(d.meta.global_timer, Some(Timer::Inactive));

    // Into an empty canister, which then runs as `a` did.
    let b = r.create_canister(vec![admin()]);
    let uploaded = upload(&r, b, &d).await;
    let listed = list(&r, b).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.as_ref(), &uploaded[..]);
    let meta = read_metadata(&r, admin(), b, &uploaded).await.unwrap();
    assert_eq!(meta.source, Some(Source::MetadataUpload(candid::Reserved)));
    assert_eq!((meta.wasm_module_size, meta.wasm_memory_size, meta.stable_memory_size), (d.meta.wasm_module_size, d.meta.wasm_memory_size, d.meta.stable_memory_size));
    assert_eq!(meta.globals, d.meta.globals);
    assert_eq!(meta.wasm_chunk_store, d.meta.wasm_chunk_store);

    r.stop(admin(), b).await.unwrap();
    load(&r, b, &ByteBuf::from(uploaded.clone())).await.expect("load the uploaded snapshot");
    // Taken right after the load, it is what was uploaded, byte for byte.
    let again = take(&r, b, None).await.expect("take");
    let back = download(&r, b, &again.id).await;
    assert!(back.module == d.module && back.heap == d.heap && back.stable == d.stable, "module, heap and stable memory restored exactly");
    assert_eq!(back.meta.globals, d.meta.globals);
    assert_eq!(back.meta.certified_data, vec![1, 2, 3]);
    assert_eq!(back.chunks, d.chunks, "the chunk store too");
    assert_eq!(r.status(&b).unwrap().module_hash, r.status(&a).unwrap().module_hash);

    r.start(admin(), b).unwrap();
    assert_eq!(query::<u64>(&r, b, "get", no_args()).await, 2, "the heap counter");
    assert_eq!(query::<u64>(&r, b, "len", no_args()).await, 1, "the StableBTreeMap");
    assert_eq!(query::<Option<String>>(&r, b, "get_kv", Encode!(&"a").unwrap()).await.as_deref(), Some("1"));
    assert_eq!(update::<u64>(&r, b, "inc", no_args()).await, 3, "and it runs on");

    let info = r.canister_info(&b, 20).expect("canister_info");
    let last = info.recent_changes.last().expect("changes");
    let ww::replica::history::CandidChangeDetails::LoadSnapshot { snapshot_id, source, .. } = &last.details else {
        panic!("the last change is not a snapshot load: {last:?}");
    };
    assert_eq!(snapshot_id.as_ref(), &uploaded[..]);
    assert_eq!(source, &ww::replica::history::CandidSnapshotSource::MetadataUpload(candid::Reserved), "history says it was uploaded");
    // Back into the same canister too, replacing the snapshot it came from.
    let mut args = metadata_args(a, &d);
    args.replace_snapshot = Some(taken.id.to_vec());
    let same = upload_metadata(&r, admin(), &args).await.expect("upload metadata, replacing");
    let ids: Vec<ByteBuf> = list(&r, a).await.into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![ByteBuf::from(same)], "the replaced snapshot is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_stay_within_the_snapshot_and_the_slice_limit() {
    let r = replica();
    let id = install_cdk_counter(&r).await;
    update::<()>(&r, id, "put", Encode!(&"a", &"1").unwrap()).await;
    let snap = take(&r, id, None).await.expect("take");
    let meta = read_metadata(&r, admin(), id, &snap.id).await.unwrap();
    let read = |kind: DataKind| read_data(&r, admin(), id, &snap.id, kind);

    let module = meta.wasm_module_size;
    assert_eq!(read(DataKind::WasmModule { offset: module - 10, size: 10 }).await.unwrap().len(), 10, "up to the end");
    for kind in [
        DataKind::WasmModule { offset: module - 10, size: 11 },
        DataKind::WasmMemory { offset: meta.wasm_memory_size, size: 1 },
        DataKind::StableMemory { offset: meta.stable_memory_size - 1, size: 2 },
        DataKind::StableMemory { offset: u64::MAX, size: 2 },
    ] {
        let err = read(kind).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0408", "{err}");
        assert!(err.message.contains("exceed"), "{err}");
    }
    assert!(meta.stable_memory_size > 2_000_001);
    assert_eq!(read(DataKind::StableMemory { offset: 0, size: 2_000_000 }).await.unwrap().len(), 2_000_000, "the limit itself");
    let err = read(DataKind::StableMemory { offset: 0, size: 2_000_001 }).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0408", "{err}");
    assert!(err.message.contains("2000000"), "the limit is named: {err}");
    let err = read(DataKind::WasmChunk { hash: vec![0; 32] }).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0408", "{err}");
    let err = read_data(&r, admin(), id, &[0; 18], DataKind::WasmModule { offset: 0, size: 1 }).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_uploads_follow_the_ics_rules() {
    let r = replica();
    let id = install_cdk_counter(&r).await;
    let taken = take(&r, id, None).await.expect("take");

    // A taken snapshot is immutable.
    for kind in [DataOffset::WasmModule { offset: 0 }, DataOffset::WasmMemory { offset: 0 }, DataOffset::StableMemory { offset: 0 }, DataOffset::WasmChunk] {
        let err = upload_data(&r, admin(), id, &taken.id, kind, &[1]).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0409", "{err}");
    }

    let args = UploadMetadataArgs {
        canister_id: id,
        replace_snapshot: None,
        wasm_module_size: 10,
        globals: vec![Global::I32(1)],
        wasm_memory_size: 65536,
        stable_memory_size: 2 * 65536,
        certified_data: vec![9],
        global_timer: None,
        on_low_wasm_memory_hook_status: Some(HookStatus::Ready),
    };
    let snap = upload_metadata(&r, admin(), &args).await.expect("upload metadata");
    let meta = read_metadata(&r, admin(), id, &snap).await.unwrap();
    assert_eq!((meta.global_timer, meta.on_low_wasm_memory_hook_status), (None, Some(HookStatus::Ready)));
    assert_eq!(read_data(&r, admin(), id, &snap, DataKind::WasmMemory { offset: 0, size: 4 }).await.unwrap(), vec![0; 4], "zeros until written");

    // Bounds.
    upload_data(&r, admin(), id, &snap, DataOffset::StableMemory { offset: 2 * 65536 - 3 }, &[1, 2, 3]).await.expect("up to the end");
    let tail = read_data(&r, admin(), id, &snap, DataKind::StableMemory { offset: 2 * 65536 - 3, size: 3 }).await.unwrap();
    assert_eq!(tail, vec![1, 2, 3]);
    for (kind, len) in [(DataOffset::WasmModule { offset: 5 }, 6), (DataOffset::WasmMemory { offset: 65536 }, 1), (DataOffset::StableMemory { offset: u64::MAX }, 2)] {
        let err = upload_data(&r, admin(), id, &snap, kind, &vec![1; len]).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0408", "{err}");
    }
    let err = upload_data(&r, admin(), id, &snap, DataOffset::WasmChunk, &vec![1; (1 << 20) + 1]).await.unwrap_err();
    assert!(err.message.contains("maximum chunk size"), "{err}");

    // Malformed metadata.
    for bad in [
        UploadMetadataArgs { wasm_memory_size: 1000, ..args.clone() },
        UploadMetadataArgs { stable_memory_size: 65537, ..args.clone() },
        UploadMetadataArgs { certified_data: vec![0; 33], ..args.clone() },
        UploadMetadataArgs { wasm_module_size: 200 << 20, ..args.clone() },
    ] {
        let err = upload_metadata(&r, admin(), &bad).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0408", "{err}");
    }
    // Ten snapshots at most, uploaded or taken; replacing one is allowed.
    for _ in 0..8 {
        upload_metadata(&r, admin(), &args).await.expect("upload metadata");
    }
    let err = upload_metadata(&r, admin(), &args).await.unwrap_err();
    assert!(err.message.contains("maximum number of snapshots allowed: 10"), "{err}");
    let err = take(&r, id, None).await.unwrap_err();
    assert!(err.message.contains("maximum number of snapshots allowed: 10"), "{err}");
    upload_metadata(&r, admin(), &UploadMetadataArgs { replace_snapshot: Some(snap.clone()), ..args.clone() }).await.expect("replace");
    let err = upload_metadata(&r, admin(), &UploadMetadataArgs { replace_snapshot: Some(snap.clone()), ..args.clone() }).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "the replaced one is gone: {err}");
    // Another canister's snapshot cannot be replaced or written.
    let other = r.create_canister(vec![admin()]);
    let err = upload_metadata(&r, admin(), &UploadMetadataArgs { canister_id: other, replace_snapshot: Some(taken.id.to_vec()), ..args.clone() }).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "{err}");
    let err = upload_data(&r, admin(), other, &taken.id, DataOffset::WasmChunk, &[1]).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0305", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_controllers_and_viewers_transfer_snapshots() {
    let r = replica();
    let id = install_cdk_counter(&r).await;
    let taken = take(&r, id, None).await.expect("take");
    let stranger = Principal::self_authenticating(b"stranger");
    let viewer = Principal::self_authenticating(b"viewer");
    let args = UploadMetadataArgs {
        canister_id: id,
        replace_snapshot: None,
        wasm_module_size: 1,
        globals: vec![],
        wasm_memory_size: 0,
        stable_memory_size: 0,
        certified_data: vec![],
        global_timer: None,
        on_low_wasm_memory_hook_status: None,
    };
    let uploaded = upload_metadata(&r, admin(), &args).await.unwrap();

    for who in [stranger, viewer] {
        let err = read_metadata(&r, who, id, &taken.id).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0512", "{err}");
        let err = read_data(&r, who, id, &taken.id, DataKind::WasmModule { offset: 0, size: 1 }).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0512", "{err}");
    }
    // `snapshot_visibility` lets a viewer read, never write.
    let settings = ww::replica::management::CanisterSettings {
        snapshot_visibility: Some(ww::replica::settings::Visibility::AllowedViewers(vec![viewer])),
        ..Default::default()
    };
    let arg = ww::replica::management::UpdateSettingsArgs { canister_id: id, settings, sender_canister_version: None };
    management(&r, admin(), "update_settings", Encode!(&arg).unwrap()).await.expect("update_settings");
    assert_eq!(read_metadata(&r, viewer, id, &taken.id).await.expect("a viewer reads").wasm_module_size, cdk_wasm("cdk_counter").len() as u64);
    assert_eq!(read_data(&r, viewer, id, &taken.id, DataKind::WasmModule { offset: 0, size: 4 }).await.unwrap(), b"\0asm");
    assert_eq!(error_code(&read_metadata(&r, stranger, id, &taken.id).await.unwrap_err()), "IC0512");
    for who in [stranger, viewer] {
        let err = upload_metadata(&r, who, &args).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0512", "{err}");
        let err = upload_data(&r, who, id, &uploaded, DataOffset::WasmModule { offset: 0 }, &[1]).await.unwrap_err();
        assert_eq!(error_code(&err), "IC0512", "{err}");
    }
    assert_eq!(list(&r, id).await.len(), 2, "nothing was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canister_transfers_snapshots_of_the_canisters_it_controls() {
    let r = replica();
    let caller = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(&r, &caller, &cdk_wasm("cdk_caller")).expect("prepare");
    r.install(admin(), caller, InstallMode::Install, m, no_args()).await.expect("install");
    let target = r.create_canister(vec![admin(), caller]);
    #[derive(CandidType, Deserialize, Debug)]
    struct CallError {
        code: u32,
        message: String,
    }
    let via_caller = |method: &'static str, arg: Vec<u8>| {
        let r = r.clone();
        async move {
            let arg = Encode!(&Principal::management_canister(), &method, &ByteBuf::from(arg), &Option::<u32>::None).unwrap();
            update::<Result<ByteBuf, CallError>>(&r, caller, "call_method", arg).await
        }
    };
    let args = UploadMetadataArgs {
        canister_id: target,
        replace_snapshot: None,
        wasm_module_size: 4,
        globals: vec![Global::I64(-3)],
        wasm_memory_size: 65536,
        stable_memory_size: 0,
        certified_data: vec![1],
        global_timer: Some(Timer::Active(5)),
        on_low_wasm_memory_hook_status: None,
    };
    let reply = via_caller("upload_canister_snapshot_metadata", Encode!(&args).unwrap()).await.expect("a controller canister uploads");
    let snapshot = Decode!(&reply, UploadMetadataResult).unwrap().snapshot_id;
    let arg = UploadDataArgs { canister_id: target, snapshot_id: snapshot.clone(), kind: DataOffset::WasmModule { offset: 0 }, chunk: b"\0asm".to_vec() };
    via_caller("upload_canister_snapshot_data", Encode!(&arg).unwrap()).await.expect("and writes");
    let arg = ReadMetadataArgs { canister_id: target, snapshot_id: snapshot.clone() };
    let reply = via_caller("read_canister_snapshot_metadata", Encode!(&arg).unwrap()).await.expect("and reads");
    let meta = Decode!(&reply, Metadata).unwrap();
    assert_eq!((meta.globals, meta.global_timer, meta.certified_data), (vec![Some(Global::I64(-3))], Some(Timer::Active(5)), vec![1]));
    let arg = ReadDataArgs { canister_id: target, snapshot_id: snapshot.clone(), kind: DataKind::WasmModule { offset: 0, size: 4 } };
    let reply = via_caller("read_canister_snapshot_data", Encode!(&arg).unwrap()).await.expect("and reads data");
    assert_eq!(Decode!(&reply, ReadDataResult).unwrap().chunk, b"\0asm");
    // Not a canister it does not control.
    let foreign = r.create_canister(vec![admin()]);
    let err = via_caller("upload_canister_snapshot_metadata", Encode!(&UploadMetadataArgs { canister_id: foreign, ..args }).unwrap()).await.unwrap_err();
    assert!(err.message.contains("controllers"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_snapshot_that_is_no_canister_fails_to_load_and_changes_nothing() {
    let r = replica();
    let a = install_cdk_counter(&r).await;
    update::<u64>(&r, a, "inc", no_args()).await;
    let taken = take(&r, a, None).await.expect("take");
    let good = download(&r, a, &taken.id).await;
    r.stop(admin(), a).await.unwrap();

    // Not a Wasm module.
    let mut bad = metadata_args(a, &good);
    bad.wasm_module_size = 16;
    let snap = upload_metadata(&r, admin(), &bad).await.unwrap();
    upload_data(&r, admin(), a, &snap, DataOffset::WasmModule { offset: 0 }, b"not wasm at all!").await.unwrap();
    let err = load(&r, a, &ByteBuf::from(snap)).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0505", "{err}");
    assert!(err.message.contains("not a WebAssembly module"), "{err}");
    // A module never uploaded (zeros).
    let snap = upload_metadata(&r, admin(), &metadata_args(a, &good)).await.unwrap();
    let err = load(&r, a, &ByteBuf::from(snap)).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0505", "{err}");
    // A valid module whose globals do not fit it.
    let mut wrong_globals = metadata_args(a, &good);
    wrong_globals.globals.push(Global::I32(0));
    let snap = upload_metadata(&r, admin(), &wrong_globals).await.unwrap();
    upload_region(&r, a, &snap, &good.module, |offset| DataOffset::WasmModule { offset }).await;
    let err = load(&r, a, &ByteBuf::from(snap)).await.unwrap_err();
    assert_eq!(error_code(&err), "IC0505", "{err}");
    assert!(err.message.contains("globals"), "{err}");

    // The canister is as it was.
    r.start(admin(), a).unwrap();
    assert_eq!(query::<u64>(&r, a, "get", no_args()).await, 1);
    assert_eq!(update::<u64>(&r, a, "inc", no_args()).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ww_cdk_component_moves_between_canisters_too() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    update::<()>(&r, a, "set", Encode!(&7u64).unwrap()).await;
    update::<()>(&r, a, "stable_set", Encode!(&1u64, &100u64).unwrap()).await;
    let taken = take(&r, a, None).await.expect("take");
    let d = download(&r, a, &taken.id).await;
    assert!(d.meta.globals.is_empty(), "a component keeps no globals");

    let b = r.create_canister(vec![admin()]);
    let uploaded = upload(&r, b, &d).await;
    r.stop(admin(), b).await.unwrap();
    load(&r, b, &ByteBuf::from(uploaded)).await.expect("load");
    r.start(admin(), b).unwrap();
    assert_eq!(query::<u64>(&r, b, "get", no_args()).await, 7);
    assert_eq!(query::<Option<u64>>(&r, b, "stable_get", Encode!(&1u64).unwrap()).await, Some(100));
    update::<()>(&r, b, "set", Encode!(&8u64).unwrap()).await;
    assert_eq!(query::<u64>(&r, b, "get", no_args()).await, 8);
    assert_eq!(query::<u64>(&r, a, "get", no_args()).await, 7, "the source is untouched");
}
