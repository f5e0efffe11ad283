//! Canister snapshots through the management canister
//! (`take/load/list/delete_canister_snapshot`), as a controller sends them
//! by ingress: a load rolls heap and stable memory back, for a ww-cdk
//! component and an unmodified ic-cdk canister, and the IC's rules hold.

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
