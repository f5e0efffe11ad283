//! Chunked install through the management canister (`aaaaa-aa`):
//! `upload_chunk`, `stored_chunks`, `clear_chunk_store` and
//! `install_chunked_code`, with real canisters (`guests/canisters/*`) on the
//! replica, called by ingress and by the probe canister.

mod common;

use std::io::Write;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use ww::replica::management::{
    CanisterIdRecord, CanisterInstallMode, CanisterStatusResult, ChunkHashRecord, InstallChunkedCodeArgs, UpgradeFlags,
    UploadChunkArgs,
};
use ww::replica::{ErrorCode, InstallMode, Reject, RejectCode, Replica, ReplicaConfig};

const MIB: usize = 1 << 20;

fn admin() -> Principal {
    Principal::self_authenticating(b"ww-test-admin")
}

fn stranger() -> Principal {
    Principal::self_authenticating(b"ww-test-stranger")
}

fn mgmt() -> Principal {
    Principal::management_canister()
}

fn replica() -> Replica {
    common::canister_replica(ReplicaConfig::default())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(common::guest(name)).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn none_arg() -> Vec<u8> {
    Encode!(&Option::<u64>::None).unwrap()
}

fn no_args() -> Vec<u8> {
    Encode!().unwrap()
}

/// A canister with `name` installed the ordinary way.
async fn install(r: &Replica, name: &str) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &wasm(name)).expect("prepare");
    r.install(admin(), id, InstallMode::Install, m, none_arg()).await.expect("install");
    id
}

async fn upload(r: &Replica, caller: Principal, canister: Principal, chunk: &[u8]) -> Result<[u8; 32], Reject> {
    let args = UploadChunkArgs { canister_id: canister, chunk: chunk.to_vec() };
    let bytes = r.call(caller, mgmt(), "upload_chunk", Encode!(&args).unwrap()).await?;
    let hash = Decode!(&bytes, ChunkHashRecord).unwrap().hash;
    Ok(hash.try_into().expect("a 32-byte hash"))
}

/// Uploads `module` in `parts` chunks of (nearly) equal size; returns their hashes.
async fn upload_in_parts(r: &Replica, store: Principal, module: &[u8], parts: usize) -> Vec<[u8; 32]> {
    let mut hashes = Vec::new();
    for chunk in module.chunks(module.len().div_ceil(parts)) {
        hashes.push(upload(r, admin(), store, chunk).await.expect("upload_chunk"));
    }
    assert_eq!(hashes.len(), parts);
    hashes
}

async fn stored(r: &Replica, caller: Principal, canister: Principal) -> Result<Vec<[u8; 32]>, Reject> {
    let bytes = r.call(caller, mgmt(), "stored_chunks", Encode!(&CanisterIdRecord { canister_id: canister }).unwrap()).await?;
    Ok(Decode!(&bytes, Vec<ChunkHashRecord>)
        .unwrap()
        .into_iter()
        .map(|h| h.hash.try_into().expect("a 32-byte hash"))
        .collect())
}

async fn clear(r: &Replica, caller: Principal, canister: Principal) -> Result<(), Reject> {
    r.call(caller, mgmt(), "clear_chunk_store", Encode!(&CanisterIdRecord { canister_id: canister }).unwrap())
        .await
        .map(|_| ())
}

fn chunked_args(
    mode: CanisterInstallMode,
    target: Principal,
    store: Option<Principal>,
    hashes: &[[u8; 32]],
    module_hash: [u8; 32],
) -> InstallChunkedCodeArgs {
    InstallChunkedCodeArgs {
        mode,
        target_canister: target,
        store_canister: store,
        chunk_hashes_list: hashes.iter().map(|h| ChunkHashRecord { hash: h.to_vec() }).collect(),
        wasm_module_hash: module_hash.to_vec(),
        arg: none_arg(),
        sender_canister_version: None,
    }
}

async fn install_chunked(r: &Replica, caller: Principal, args: &InstallChunkedCodeArgs) -> Result<(), Reject> {
    r.call(caller, mgmt(), "install_chunked_code", Encode!(args).unwrap()).await.map(|_| ())
}

async fn status(r: &Replica, id: Principal) -> CanisterStatusResult {
    let bytes = r.call(admin(), mgmt(), "canister_status", Encode!(&CanisterIdRecord { canister_id: id }).unwrap()).await.unwrap();
    Decode!(&bytes, CanisterStatusResult).unwrap()
}

/// `canister_status`'s `memory_size`.
async fn memory_size(r: &Replica, id: Principal) -> u64 {
    u64::try_from(status(r, id).await.memory_size.0).expect("memory_size fits u64")
}

async fn counter_value(r: &Replica, id: Principal, method: &str) -> u64 {
    let bytes = r.query(admin(), id, method, no_args()).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    Decode!(&bytes, u64).unwrap()
}

async fn inc(r: &Replica, id: Principal) -> u64 {
    let bytes = r.call(admin(), id, "inc", no_args()).await.unwrap_or_else(|e| panic!("inc: {e}"));
    Decode!(&bytes, u64).unwrap()
}

fn assert_reject(err: &Reject, code: ErrorCode, needles: &[&str]) {
    assert_eq!(err.error_code, Some(code), "{err}");
    assert_eq!(err.code, code.reject_code(), "{err}");
    assert!(!err.message.contains('\n'), "a multi-line message: {err}");
    for n in needles {
        assert!(err.message.contains(n), "expected {n:?} in: {err}");
    }
}

#[derive(CandidType, Deserialize, Debug)]
struct CallError {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize, Debug)]
enum CallOutcome {
    Ok(ByteBuf),
    Err(CallError),
}

/// Has the probe canister `probe` call `aaaaa-aa.method(arg)`.
async fn probe_calls_mgmt(r: &Replica, probe: Principal, method: &str, arg: Vec<u8>) -> CallOutcome {
    let call = Encode!(&mgmt(), &method, &ByteBuf::from(arg), &60u32).unwrap();
    let run = r.call(admin(), probe, "bounded_call", call);
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .unwrap_or_else(|_| panic!("the probe's call to {method} was never answered"))
        .unwrap_or_else(|e| panic!("bounded_call: {e}"));
    Decode!(&bytes, CallOutcome).unwrap()
}

#[tokio::test]
async fn upload_returns_the_sha256_and_stored_chunks_lists_it() {
    let r = replica();
    let id = r.create_canister(vec![admin()]);
    let before = memory_size(&r, id).await;
    let a = b"the first chunk".to_vec();
    let b = vec![0xAB; 300_000];
    let ha = upload(&r, admin(), id, &a).await.unwrap();
    assert_eq!(ha, sha256(&a));
    let hb = upload(&r, admin(), id, &b).await.unwrap();
    assert_eq!(hb, sha256(&b));
    let mut expected = vec![ha, hb];
    expected.sort();
    assert_eq!(stored(&r, admin(), id).await.unwrap(), expected);
    // The store counts towards the canister's memory.
    assert_eq!(memory_size(&r, id).await, before + (a.len() + b.len()) as u64);
    // An empty chunk is a chunk too.
    assert_eq!(upload(&r, admin(), id, &[]).await.unwrap(), sha256(&[]));
    assert_eq!(stored(&r, admin(), id).await.unwrap().len(), 3);
    // Bad Candid is a clean reject.
    let err = r.call(admin(), mgmt(), "upload_chunk", b"garbage".to_vec()).await.unwrap_err();
    assert_reject(&err, ErrorCode::InvalidManagementPayload, &["upload_chunk"]);
    // An unknown canister is one.
    let nobody = ww::replica::canister_id(42);
    let err = upload(&r, admin(), nobody, b"x").await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterNotFound, &[&nobody.to_text()]);
}

#[tokio::test]
async fn a_chunk_over_1_mib_is_rejected() {
    let r = replica();
    let id = r.create_canister(vec![admin()]);
    let full = vec![7u8; MIB];
    assert_eq!(upload(&r, admin(), id, &full).await.unwrap(), sha256(&full));
    let err = upload(&r, admin(), id, &vec![7u8; MIB + 1]).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["1048577", "1048576"]);
    assert_eq!(stored(&r, admin(), id).await.unwrap(), vec![sha256(&full)]);
}

#[tokio::test]
async fn the_store_holds_100_chunks_and_a_stored_chunk_dedups_when_full() {
    let r = replica();
    let id = r.create_canister(vec![admin()]);
    for i in 0..100u32 {
        upload(&r, admin(), id, &i.to_le_bytes()).await.unwrap();
    }
    // Uploading a stored chunk again is fine, also when full.
    let again = upload(&r, admin(), id, &7u32.to_le_bytes()).await.unwrap();
    assert_eq!(again, sha256(&7u32.to_le_bytes()));
    let err = upload(&r, admin(), id, b"one too many").await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["100 chunks", &id.to_text()]);
    let hashes = stored(&r, admin(), id).await.unwrap();
    assert_eq!(hashes.len(), 100);
    assert!(!hashes.contains(&sha256(b"one too many")));
    // Clearing makes room again.
    clear(&r, admin(), id).await.unwrap();
    upload(&r, admin(), id, b"one too many").await.unwrap();
}

#[tokio::test]
async fn only_controllers_and_the_canister_itself_use_its_chunk_store() {
    let r = replica();
    let probe = install(&r, "probe").await;
    let other = r.create_canister(vec![admin()]);
    // A stranger (ingress) may not upload, list or clear: the ingress
    // filter refuses it in the IC's words.
    let err = upload(&r, stranger(), probe, b"chunk").await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterInvalidController, &[&format!("Only controllers of canister {probe} can call ic00 method upload_chunk")]);
    let err = stored(&r, stranger(), probe).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterInvalidController, &[]);
    let err = clear(&r, stranger(), probe).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterInvalidController, &[]);
    assert!(stored(&r, admin(), probe).await.unwrap().is_empty());

    // The probe is not its own controller, but may use its own store.
    assert!(!r.is_controller(&probe, &probe));
    let args = UploadChunkArgs { canister_id: probe, chunk: b"from the canister itself".to_vec() };
    let CallOutcome::Ok(bytes) = probe_calls_mgmt(&r, probe, "upload_chunk", Encode!(&args).unwrap()).await else {
        panic!("the canister could not upload to its own store")
    };
    let hash = Decode!(&bytes, ChunkHashRecord).unwrap().hash;
    assert_eq!(hash, sha256(b"from the canister itself").to_vec());
    assert_eq!(stored(&r, admin(), probe).await.unwrap(), vec![sha256(b"from the canister itself")]);
    let CallOutcome::Ok(bytes) = probe_calls_mgmt(&r, probe, "stored_chunks", Encode!(&CanisterIdRecord { canister_id: probe }).unwrap()).await
    else {
        panic!("the canister could not list its own store")
    };
    assert_eq!(Decode!(&bytes, Vec<ChunkHashRecord>).unwrap().len(), 1);

    // ... but not another canister's.
    let args = UploadChunkArgs { canister_id: other, chunk: b"not mine".to_vec() };
    match probe_calls_mgmt(&r, probe, "upload_chunk", Encode!(&args).unwrap()).await {
        CallOutcome::Err(e) => {
            assert_eq!(e.code, RejectCode::CanisterError as u32, "{e:?}");
            // The IC gives canisters the description (IC0512's), not the code.
            assert!(e.message.starts_with("Only the controllers of the canister"), "{e:?}");
        }
        other => panic!("a canister uploaded to another's store: {other:?}"),
    }
    assert!(stored(&r, admin(), other).await.unwrap().is_empty());

    // It may clear its own store.
    let CallOutcome::Ok(_) = probe_calls_mgmt(&r, probe, "clear_chunk_store", Encode!(&CanisterIdRecord { canister_id: probe }).unwrap()).await
    else {
        panic!("the canister could not clear its own store")
    };
    assert!(stored(&r, admin(), probe).await.unwrap().is_empty());
}

#[tokio::test]
async fn clear_chunk_store_empties_it_and_delete_drops_it() {
    let r = replica();
    let id = r.create_canister(vec![admin()]);
    let before = memory_size(&r, id).await;
    for i in 0..5u8 {
        upload(&r, admin(), id, &vec![i; 1000]).await.unwrap();
    }
    assert_eq!(stored(&r, admin(), id).await.unwrap().len(), 5);
    assert_eq!(memory_size(&r, id).await, before + 5000);
    // Others may not clear it.
    let err = clear(&r, stranger(), id).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterInvalidController, &[&format!("Only controllers of canister {id} can call ic00 method clear_chunk_store")]);
    assert_eq!(stored(&r, admin(), id).await.unwrap().len(), 5);
    clear(&r, admin(), id).await.unwrap();
    assert!(stored(&r, admin(), id).await.unwrap().is_empty());
    assert_eq!(memory_size(&r, id).await, before);
    // Deleting the canister deletes its store with it.
    upload(&r, admin(), id, b"gone with the canister").await.unwrap();
    r.stop(admin(), id).await.unwrap();
    r.delete(admin(), id).unwrap();
    let err = stored(&r, admin(), id).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterNotFound, &[&id.to_text()]);
}

#[tokio::test]
async fn install_chunked_code_installs_the_counter_from_chunks() {
    let r = replica();
    let module = wasm("counter");
    let id = r.create_canister(vec![admin()]);
    let hashes = upload_in_parts(&r, id, &module, 4).await;
    let args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, sha256(&module));
    install_chunked(&r, admin(), &args).await.unwrap();
    assert_eq!(inc(&r, id).await, 1);
    assert_eq!(inc(&r, id).await, 2);
    let s = status(&r, id).await;
    assert_eq!(s.module_hash.map(|h| h.into_vec()), Some(sha256(&module).to_vec()));
    // The chunks stay in the store.
    assert_eq!(stored(&r, admin(), id).await.unwrap().len(), 4);

    // Gzip-compressed, in three chunks: the module hash is the compressed one's.
    let gz = gzip(&module);
    assert!(gz.len() < module.len());
    let id = r.create_canister(vec![admin()]);
    let hashes = upload_in_parts(&r, id, &gz, 3).await;
    let args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, sha256(&gz));
    install_chunked(&r, admin(), &args).await.unwrap();
    assert_eq!(inc(&r, id).await, 1);
    assert_eq!(status(&r, id).await.module_hash.map(|h| h.into_vec()), Some(sha256(&gz).to_vec()));

    // One chunk is a module too; mode install on a full canister is refused.
    assert!(gz.len() <= MIB);
    let h = upload(&r, admin(), id, &gz).await.unwrap();
    let args = chunked_args(CanisterInstallMode::Install, id, None, &[h], sha256(&gz));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterAlreadyInstalled, &[&id.to_text()]);
    let args = chunked_args(CanisterInstallMode::Reinstall, id, None, &[h], sha256(&gz));
    install_chunked(&r, admin(), &args).await.unwrap();
    assert_eq!(inc(&r, id).await, 1, "reinstall starts afresh");
}

#[tokio::test]
async fn a_wrong_module_hash_installs_nothing() {
    let r = replica();
    let module = wasm("counter");
    let id = r.create_canister(vec![admin()]);
    let hashes = upload_in_parts(&r, id, &module, 2).await;
    let wrong = sha256(b"not the module");
    let args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, wrong);
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &[&hex::encode(sha256(&module)), &hex::encode(wrong)]);
    assert!(status(&r, id).await.module_hash.is_none(), "something was installed");
    let err = r.call(admin(), id, "inc", no_args()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterWasmModuleNotFound), "{err}");
    // Chunks in the wrong order are a different module.
    let swapped = [hashes[1], hashes[0]];
    let args = chunked_args(CanisterInstallMode::Install, id, None, &swapped, sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["does not match"]);
    assert!(status(&r, id).await.module_hash.is_none());

    // An upgrade with a wrong hash keeps the old version running.
    let counter = install(&r, "counter").await;
    for _ in 0..3 {
        inc(&r, counter).await;
    }
    let old_hash = status(&r, counter).await.module_hash;
    let probe = wasm("probe");
    let hashes = upload_in_parts(&r, counter, &probe, 2).await;
    let args = chunked_args(CanisterInstallMode::Upgrade(None), counter, None, &hashes, wrong);
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &[&hex::encode(sha256(&probe)), &hex::encode(wrong)]);
    assert_eq!(status(&r, counter).await.module_hash, old_hash);
    assert_eq!(counter_value(&r, counter, "get").await, 3);
    assert_eq!(inc(&r, counter).await, 4);
}

#[tokio::test]
async fn a_missing_chunk_is_rejected_by_its_hash() {
    let r = replica();
    let module = wasm("counter");
    let id = r.create_canister(vec![admin()]);
    let mut hashes = upload_in_parts(&r, id, &module, 3).await;
    let missing = sha256(b"never uploaded");
    hashes[1] = missing;
    let args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &[&hex::encode(missing), &id.to_text()]);
    assert!(status(&r, id).await.module_hash.is_none());
    // After clearing, every chunk is missing.
    clear(&r, admin(), id).await.unwrap();
    let hashes = [sha256(&module[..10])];
    let args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &[&hex::encode(hashes[0])]);
}

#[tokio::test]
async fn malformed_install_chunked_code_arguments_are_rejected() {
    let r = replica();
    let module = wasm("counter");
    let id = r.create_canister(vec![admin()]);
    let hashes = upload_in_parts(&r, id, &module, 2).await;
    // No chunks.
    let args = chunked_args(CanisterInstallMode::Install, id, None, &[], sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["chunk_hashes_list is empty"]);
    // A hash that is not 32 bytes.
    let mut args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, sha256(&module));
    args.chunk_hashes_list[0].hash.truncate(31);
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["31 bytes"]);
    let mut args = chunked_args(CanisterInstallMode::Install, id, None, &hashes, sha256(&module));
    args.wasm_module_hash = vec![1; 33];
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["wasm_module_hash", "33 bytes"]);
    // A chunk listed more often than a module may be long.
    let big = vec![1u8; MIB];
    let h = upload(&r, admin(), id, &big).await.unwrap();
    let args = chunked_args(CanisterInstallMode::Install, id, None, &vec![h; 101], sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterContractViolation, &["105906176", "104857600"]);
    // Not Candid.
    let err = r.call(admin(), mgmt(), "install_chunked_code", b"garbage".to_vec()).await.unwrap_err();
    assert_reject(&err, ErrorCode::InvalidManagementPayload, &["install_chunked_code"]);
    assert!(status(&r, id).await.module_hash.is_none());
}

#[tokio::test]
async fn a_store_canister_the_caller_controls_works_and_others_do_not() {
    let r = replica();
    let module = wasm("counter");
    let store = r.create_canister(vec![admin()]);
    let target = r.create_canister(vec![admin()]);
    let hashes = upload_in_parts(&r, store, &module, 3).await;
    let args = chunked_args(CanisterInstallMode::Install, target, Some(store), &hashes, sha256(&module));
    install_chunked(&r, admin(), &args).await.unwrap();
    assert_eq!(inc(&r, target).await, 1);
    assert!(stored(&r, admin(), target).await.unwrap().is_empty(), "the target's own store is untouched");

    // A store the caller does not control.
    let foreign = r.create_canister(vec![stranger()]);
    let hashes = upload_in_parts_as(&r, stranger(), foreign, &module, 2).await;
    let fresh = r.create_canister(vec![admin()]);
    let args = chunked_args(CanisterInstallMode::Install, fresh, Some(foreign), &hashes, sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterInvalidController, &[&foreign.to_text(), &admin().to_text()]);
    assert!(status(&r, fresh).await.module_hash.is_none());

    // Controlling the store but not the target is not enough either.
    let args = chunked_args(CanisterInstallMode::Install, fresh, Some(foreign), &hashes, sha256(&module));
    let err = install_chunked(&r, stranger(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterInvalidController, &[&fresh.to_text(), &stranger().to_text()]);
    assert!(status(&r, fresh).await.module_hash.is_none());

    // A store that does not exist.
    let nowhere = ww::replica::canister_id(7);
    let args = chunked_args(CanisterInstallMode::Install, fresh, Some(nowhere), &hashes, sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterNotFound, &[&nowhere.to_text()]);
}

async fn upload_in_parts_as(r: &Replica, caller: Principal, store: Principal, module: &[u8], parts: usize) -> Vec<[u8; 32]> {
    let mut hashes = Vec::new();
    for chunk in module.chunks(module.len().div_ceil(parts)) {
        hashes.push(upload(r, caller, store, chunk).await.expect("upload_chunk"));
    }
    hashes
}

#[tokio::test]
async fn a_canister_installs_from_its_own_store_into_a_canister_it_controls() {
    let r = replica();
    let module = gzip(&wasm("counter"));
    let probe = install(&r, "probe").await;
    // The probe controls the target; the chunks are in the probe's own store.
    let target = r.create_canister(vec![probe]);
    let hashes = upload_in_parts(&r, probe, &module, 2).await;
    let args = chunked_args(CanisterInstallMode::Install, target, Some(probe), &hashes, sha256(&module));
    match probe_calls_mgmt(&r, probe, "install_chunked_code", Encode!(&args).unwrap()).await {
        CallOutcome::Ok(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(inc(&r, target).await, 1);
    // A target it does not control: a reject, not silence (also via install_code).
    let foreign = r.create_canister(vec![admin()]);
    let args = chunked_args(CanisterInstallMode::Install, foreign, Some(probe), &hashes, sha256(&module));
    let CallOutcome::Err(e) = probe_calls_mgmt(&r, probe, "install_chunked_code", Encode!(&args).unwrap()).await else {
        panic!("installed into a canister it does not control")
    };
    assert!(e.message.starts_with("Only the controllers of the canister"), "{e:?}");
    let args = ww::replica::management::InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: foreign,
        wasm_module: module.clone(),
        arg: none_arg(),
        sender_canister_version: None,
    };
    let CallOutcome::Err(e) = probe_calls_mgmt(&r, probe, "install_code", Encode!(&args).unwrap()).await else {
        panic!("installed into a canister it does not control")
    };
    assert!(e.message.starts_with("Only the controllers of the canister"), "{e:?}");
    assert!(status(&r, foreign).await.module_hash.is_none());
}

#[tokio::test]
async fn an_upgrade_from_chunks_keeps_stable_memory() {
    let r = replica();
    let module = wasm("counter");
    let id = install(&r, "counter").await;
    for _ in 0..5 {
        inc(&r, id).await;
    }
    let hashes = upload_in_parts(&r, id, &module, 3).await;
    let mode = CanisterInstallMode::Upgrade(Some(UpgradeFlags { skip_pre_upgrade: None, wasm_memory_persistence: None }));
    let args = chunked_args(mode, id, None, &hashes, sha256(&module));
    install_chunked(&r, admin(), &args).await.unwrap();
    assert_eq!(counter_value(&r, id, "get_stable").await, 5);
    assert_eq!(counter_value(&r, id, "get").await, 5, "post_upgrade reloads the counter");
    assert_eq!(inc(&r, id).await, 6);
    // Upgrading an empty canister is refused.
    let empty = r.create_canister(vec![admin()]);
    let args = chunked_args(CanisterInstallMode::Upgrade(None), empty, Some(id), &hashes, sha256(&module));
    let err = install_chunked(&r, admin(), &args).await.unwrap_err();
    assert_reject(&err, ErrorCode::CanisterWasmModuleNotFound, &[&empty.to_text()]);
}
