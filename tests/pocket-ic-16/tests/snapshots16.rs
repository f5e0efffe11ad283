//! pocket-ic 16's `canister_snapshot_download` / `canister_snapshot_upload`
//! against ww: a snapshot goes to a directory in dfx's layout (the one
//! PocketIC's server writes: `metadata.json` as `ic-management-canister-types`
//! serializes it, `wasm_module.bin`, `wasm_memory.bin`, `stable_memory.bin`,
//! `wasm_chunk_store/<hash>.bin`), comes back into another canister, loads
//! there as the same state, and downloads again as the same files; a bad
//! directory or sender is refused with an error naming the reason.

use std::collections::BTreeMap;
use std::path::Path;

use candid::{Encode, Principal, decode_one, encode_one};
use ic_management_canister_types::{ReadCanisterSnapshotMetadataResult, SnapshotSource};
use pocket_ic::PocketIc;

mod common;
use common::{check_server, wasm};

fn pic() -> PocketIc {
    check_server();
    PocketIc::new()
}

fn counter(pic: &PocketIc) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, wasm("cdk_counter"), Encode!(&Option::<()>::None).unwrap(), None);
    id
}

fn update<T: candid::CandidType + for<'de> candid::Deserialize<'de>>(pic: &PocketIc, id: Principal, method: &str, arg: Vec<u8>) -> T {
    let reply = pic.update_call(id, Principal::anonymous(), method, arg).unwrap_or_else(|e| panic!("{method}: {e:?}"));
    candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}'s reply: {e}"))
}

fn query<T: candid::CandidType + for<'de> candid::Deserialize<'de>>(pic: &PocketIc, id: Principal, method: &str, arg: Vec<u8>) -> T {
    let reply = pic.query_call(id, Principal::anonymous(), method, arg).unwrap_or_else(|e| panic!("{method}: {e:?}"));
    decode_one(&reply).unwrap_or_else(|e| panic!("{method}'s reply: {e}"))
}

/// Every file under `dir` (paths relative to it, `/`-separated) and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn visit(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                visit(&entry.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(dir, "", &mut out);
    out
}

fn metadata(files: &BTreeMap<String, Vec<u8>>) -> ReadCanisterSnapshotMetadataResult {
    serde_json::from_slice(&files["metadata.json"]).expect("metadata.json is ic-management-canister-types' ReadCanisterSnapshotMetadataResult")
}

/// The panic message of `f`, which must fail (the client panics on a
/// refused request, with the server's message).
fn refusal(f: impl FnOnce()) -> String {
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("the request must be refused");
    panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn a_downloaded_snapshot_uploads_into_another_canister_and_loads_as_the_same_state() {
    let pic = pic();
    let a = counter(&pic);
    update::<u64>(&pic, a, "inc", encode_one(()).unwrap());
    update::<u64>(&pic, a, "inc", encode_one(()).unwrap());
    update::<()>(&pic, a, "put", Encode!(&"k", &"v").unwrap());
    update::<()>(&pic, a, "set_certified", encode_one(vec![1u8, 2, 3]).unwrap());
    let chunk_hash = pic.upload_chunk(a, None, vec![7; 1000]).expect("upload_chunk");
    pic.stop_canister(a, None).unwrap();
    let taken = pic.take_canister_snapshot(a, None, None).expect("take").id;

    // Into a directory that does not exist yet.
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    pic.canister_snapshot_download(a, Principal::anonymous(), taken.clone(), first.clone());
    let downloaded = files(&first);
    let chunk_file = format!("wasm_chunk_store/{}.bin", hex::encode(&chunk_hash));
    let names: Vec<&str> = downloaded.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["metadata.json", "stable_memory.bin", chunk_file.as_str(), "wasm_memory.bin", "wasm_module.bin"]);
    assert_eq!(downloaded["wasm_module.bin"], wasm("cdk_counter"), "the module as installed");
    assert_eq!(downloaded[&chunk_file], vec![7; 1000]);
    let meta = metadata(&downloaded);
    assert_eq!(
        String::from_utf8(downloaded["metadata.json"].clone()).unwrap(),
        serde_json::to_string_pretty(&meta).unwrap(),
        "metadata.json byte for byte as dfx writes it"
    );
    assert_eq!(meta.source, Some(SnapshotSource::TakenFromCanister(candid::Reserved)));
    assert_eq!(meta.wasm_memory_size, downloaded["wasm_memory.bin"].len() as u64);
    assert_eq!(meta.stable_memory_size, downloaded["stable_memory.bin"].len() as u64);
    assert_eq!(meta.wasm_chunk_store.iter().map(|c| c.hash.clone()).collect::<Vec<_>>(), vec![chunk_hash]);
    assert_eq!(meta.certified_data, vec![1, 2, 3]);
    assert!(!meta.globals.is_empty() && meta.globals.iter().all(Option::is_some), "an ic-cdk module has globals: {:?}", meta.globals);

    // Into a new canister, which then runs as `a` did.
    let b = pic.create_canister();
    let uploaded = pic.canister_snapshot_upload(b, Principal::anonymous(), None, first.clone());
    assert_eq!(pic.list_canister_snapshots(b, None).unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>(), vec![uploaded.clone()]);
    // Downloaded again, it is the same snapshot but for where it came from.
    let second = tmp.path().join("second");
    std::fs::create_dir(&second).unwrap();
    pic.canister_snapshot_download(b, Principal::anonymous(), uploaded.clone(), second.clone());
    let again = files(&second);
    assert_eq!(again.keys().collect::<Vec<_>>(), downloaded.keys().collect::<Vec<_>>());
    assert!(again.iter().filter(|(k, _)| *k != "metadata.json").all(|(k, v)| &downloaded[k] == v), "every data file the same");
    let mut meta_again = metadata(&again);
    assert_eq!(meta_again.source, Some(SnapshotSource::MetadataUpload(candid::Reserved)));
    meta_again.source = meta.source.clone();
    meta_again.taken_at_timestamp = meta.taken_at_timestamp;
    meta_again.canister_version = meta.canister_version;
    assert_eq!(serde_json::to_string(&meta_again).unwrap(), serde_json::to_string(&meta).unwrap(), "the rest of the metadata the same");

    pic.stop_canister(b, None).unwrap();
    pic.load_canister_snapshot(b, None, uploaded.clone()).expect("load the uploaded snapshot");
    pic.start_canister(b, None).unwrap();
    assert_eq!(query::<u64>(&pic, b, "get", encode_one(()).unwrap()), 2, "a's heap counter");
    assert_eq!(query::<Option<String>>(&pic, b, "get_kv", encode_one("k").unwrap()).as_deref(), Some("v"), "a's stable memory");
    assert_eq!(pic.stored_chunks(b, None).unwrap(), vec![meta.wasm_chunk_store[0].hash.clone()], "a's chunk store");
    assert_eq!(update::<u64>(&pic, b, "inc", encode_one(()).unwrap()), 3, "and it runs on");

    // Back into `a`, replacing the snapshot it was taken as.
    let replaced = pic.canister_snapshot_upload(a, Principal::anonymous(), Some(taken), first);
    assert_eq!(pic.list_canister_snapshots(a, None).unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>(), vec![replaced]);
}

#[test]
fn a_bad_directory_or_sender_is_refused_by_name_and_changes_nothing() {
    let pic = pic();
    let a = counter(&pic);
    pic.stop_canister(a, None).unwrap();
    let taken = pic.take_canister_snapshot(a, None, None).expect("take").id;
    let tmp = tempfile::tempdir().unwrap();

    // A download needs an empty (or new) directory.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), b"mine").unwrap();
    let err = refusal(|| pic.canister_snapshot_download(a, Principal::anonymous(), taken.clone(), full.clone()));
    assert!(err.contains("is not empty") && err.contains(full.to_str().unwrap()), "{err}");
    assert_eq!(files(&full).into_keys().collect::<Vec<_>>(), vec!["keep.txt"], "nothing written into it");

    // Only who may read the snapshot downloads it; only controllers upload.
    let stranger = Principal::self_authenticating(b"stranger");
    let out = tmp.path().join("out");
    let err = refusal(|| pic.canister_snapshot_download(a, stranger, taken.clone(), out.clone()));
    assert!(err.contains("IC0512: Only the controllers") && err.contains(&stranger.to_text()), "{err}");
    assert!(err.contains(&format!("downloading snapshot {}", hex::encode(&taken))), "{err}");
    assert!(!out.exists(), "no directory made for a refused download");
    pic.canister_snapshot_download(a, Principal::anonymous(), taken.clone(), out.clone());
    let err = refusal(|| drop(pic.canister_snapshot_upload(a, stranger, None, out.clone())));
    assert!(err.contains("IC0512"), "{err}");

    // An upload from a directory that is not a snapshot's, or a damaged one.
    let err = refusal(|| drop(pic.canister_snapshot_upload(a, Principal::anonymous(), None, full.clone())));
    assert!(err.contains(&full.join("metadata.json").display().to_string()), "{err}");
    let heap = out.join("wasm_memory.bin");
    let bytes = std::fs::read(&heap).unwrap();
    std::fs::write(&heap, &bytes[..bytes.len() - 1]).unwrap();
    let err = refusal(|| drop(pic.canister_snapshot_upload(a, Principal::anonymous(), None, out.clone())));
    assert!(err.contains(&heap.display().to_string()) && err.contains(&format!("{} bytes, but metadata.json says {}", bytes.len() - 1, bytes.len())), "{err}");
    let err = refusal(|| drop(pic.canister_snapshot_upload(a, Principal::anonymous(), None, tmp.path().join("nowhere"))));
    assert!(err.contains(&format!("snapshot directory {}", tmp.path().join("nowhere").display())), "{err}");
    assert_eq!(pic.list_canister_snapshots(a, None).unwrap().len(), 1, "no snapshot made by a refused upload");
}
