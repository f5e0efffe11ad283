//! Installing modules through the real pocket-ic 13 client: a plain module,
//! a gzip-compressed one, and one over the client's 2 MB threshold, which the
//! client installs through the chunk store (clear_chunk_store, upload_chunk
//! per MiB, install_chunked_code with the module's SHA-256), plain and
//! gzip-compressed.

mod common;

use std::collections::BTreeSet;

use candid::encode_args;
use common::*;

/// pocket-ic 13 installs modules of this many bytes or more in chunks
/// (`INSTALL_CHUNKED_CODE_THRESHOLD`)...
const CHUNKED_THRESHOLD: usize = 2_000_000;
/// ... of this size (`INSTALL_CODE_CHUNK_SIZE`).
const CHUNK_SIZE: usize = 1 << 20;

fn module_hash(pic: &pocket_ic::PocketIc, id: candid::Principal) -> Option<Vec<u8>> {
    pic.canister_status(id, None).expect("canister_status").module_hash
}

fn ballast_digest(pic: &pocket_ic::PocketIc, id: candid::Principal) -> (u64, u64) {
    query(pic, id, "ballast_digest", ()).expect("ballast_digest")
}

#[test]
fn a_plain_module_installs() {
    let pic = pic();
    let module = wasm("cdk_counter");
    assert!(module.len() < CHUNKED_THRESHOLD, "cdk_counter must take the one-call path");
    let id = deploy(&pic, module.clone(), no_init());
    assert_eq!(inc(&pic, id), 1);
    assert_eq!(module_hash(&pic, id), Some(sha256(&module)));
}

#[test]
fn a_gzip_compressed_module_installs() {
    let pic = pic();
    let module = wasm("cdk_counter");
    let gz = gzip(&module);
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08], "a gzip member");
    let id = deploy(&pic, gz.clone(), no_init());
    assert_eq!(inc(&pic, id), 1);
    assert_eq!(get(&pic, id), 1);
    // The IC hashes the module as it was given (dfx compares it with the .wasm.gz).
    assert_eq!(module_hash(&pic, id), Some(sha256(&gz)));
    // And upgrades from a gzip module too, keeping stable memory.
    let () = update(&pic, id, "put", ("k".to_string(), "v".to_string())).unwrap();
    pic.upgrade_canister(id, gz, no_init(), None).expect("upgrade with a gzip module");
    let (kv,): (Option<String>,) = query(&pic, id, "get_kv", ("k".to_string(),)).unwrap();
    assert_eq!(kv.as_deref(), Some("v"));
}

#[test]
fn a_module_over_2mb_installs_through_the_chunk_store() {
    let pic = pic();
    let module = wasm("cdk_big");
    assert!(
        module.len() > CHUNKED_THRESHOLD,
        "cdk_big must be over the client's 2 MB threshold (it is {} bytes): rebuild it with `make ic-guests`",
        module.len()
    );
    let id = deploy(&pic, module.clone(), encode_args(()).unwrap());

    let ballast = ballast();
    assert_eq!(
        ballast_digest(&pic, id),
        (ballast.len() as u64, fnv1a64(&ballast)),
        "the installed module is cdk_big, ballast intact"
    );
    assert_eq!(inc(&pic, id), 1);
    assert_eq!(get(&pic, id), 1);
    assert_eq!(module_hash(&pic, id), Some(sha256(&module)), "the hash of the whole module, not of a chunk");

    // The chunks stay in the canister's chunk store, each under its SHA-256.
    let stored: BTreeSet<Vec<u8>> = pic.stored_chunks(id, None).expect("stored_chunks").into_iter().collect();
    let expected: BTreeSet<Vec<u8>> = module.chunks(CHUNK_SIZE).map(sha256).collect();
    assert_eq!(stored, expected, "{} chunks of 1 MiB", module.len().div_ceil(CHUNK_SIZE));

    // Upgrading takes the chunked path again (the client clears the store first).
    pic.upgrade_canister(id, module.clone(), encode_args(()).unwrap(), None).expect("chunked upgrade");
    assert_eq!(get(&pic, id), 0, "a new heap after the upgrade (cdk_big keeps nothing)");
    assert_eq!(ballast_digest(&pic, id), (ballast.len() as u64, fnv1a64(&ballast)));
}

#[test]
fn a_gzip_compressed_module_over_2mb_installs_through_the_chunk_store() {
    let pic = pic();
    let gz = gzip(&wasm("cdk_big"));
    assert!(gz.len() > CHUNKED_THRESHOLD, "the ballast is incompressible: {} bytes gzipped", gz.len());
    let id = deploy(&pic, gz.clone(), encode_args(()).unwrap());
    let ballast = ballast();
    assert_eq!(ballast_digest(&pic, id), (ballast.len() as u64, fnv1a64(&ballast)));
    assert_eq!(inc(&pic, id), 1);
    assert_eq!(module_hash(&pic, id), Some(sha256(&gz)), "the hash of the compressed module as given");
}

#[test]
fn the_chunk_store_by_hand() {
    // What the client's install does, step by step through its public API.
    let pic = pic();
    let module = wasm("cdk_counter");
    let id = pic.create_canister();
    pic.add_cycles(id, INIT_CYCLES);
    let mut hashes = Vec::new();
    for chunk in module.chunks(300_000) {
        let h = pic.upload_chunk(id, None, chunk.to_vec()).expect("upload_chunk");
        assert_eq!(h, sha256(chunk), "upload_chunk answers the chunk's SHA-256");
        hashes.push(h);
    }
    let stored: BTreeSet<Vec<u8>> = pic.stored_chunks(id, None).unwrap().into_iter().collect();
    assert_eq!(stored, hashes.iter().cloned().collect());
    pic.install_chunked_canister(
        id,
        None,
        pocket_ic::CanisterInstallMode::Install,
        id,
        hashes,
        sha256(&module),
        no_init(),
    )
    .expect("install_chunked_code");
    assert_eq!(inc(&pic, id), 1);
    pic.clear_chunk_store(id, None).expect("clear_chunk_store");
    assert!(pic.stored_chunks(id, None).unwrap().is_empty());
    // A wrong module hash is refused.
    let h = pic.upload_chunk(id, None, module.clone()[..100_000].to_vec()).unwrap();
    let r = pic.install_chunked_canister(
        id,
        None,
        pocket_ic::CanisterInstallMode::Reinstall,
        id,
        vec![h],
        vec![0; 32],
        no_init(),
    );
    assert!(r.is_err(), "install_chunked_code with a hash that is not the module's");
    assert_eq!(get(&pic, id), 1, "the installed module is untouched");
}
