//! The IC's platform services through ww's management canister (`make
//! bench`): `sign_with_ecdsa`, `sign_with_schnorr` (BIP340 and Ed25519) and
//! `vetkd_derive_key` per second, each called by an unmodified ic-cdk 0.20
//! canister (`cdk_platform`, through ic-cdk-management-canister) from
//! ingress, one at a time and 16 in flight; beside them, the bare
//! cryptography (`ww::chain_keys`) on one core, so the ratio shows what the
//! call path adds. Prints a Markdown table for BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use serde_bytes::ByteBuf;
use ww::chain_keys::{self, KeyId, Scheme};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

#[derive(CandidType, Deserialize, Debug)]
struct Failure {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize, Debug)]
enum BlobResult {
    Ok(ByteBuf),
    Err(Failure),
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

/// A transport key (a G1 point) for vetKD: the generator times 7.
fn transport_key() -> Vec<u8> {
    (ic_bls12_381::G1Affine::from(ic_bls12_381::G1Affine::generator() * ic_bls12_381::Scalar::from(7u64))).to_compressed().to_vec()
}

/// The call of each kind: method and Candid argument.
fn calls() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let path: Vec<ByteBuf> = vec![ByteBuf::from(b"bench".to_vec())];
    vec![
        ("sign_with_ecdsa (secp256k1)", "sign_ecdsa", Encode!(&ByteBuf::from(vec![7u8; 32]), &path, &"secp256k1", &"test_key_1").unwrap()),
        ("sign_with_schnorr (bip340)", "sign_schnorr", Encode!(&ByteBuf::from(vec![7u8; 32]), &path, &"bip340secp256k1", &"test_key_1", &Option::<ByteBuf>::None).unwrap()),
        ("sign_with_schnorr (ed25519)", "sign_schnorr", Encode!(&ByteBuf::from(vec![7u8; 32]), &path, &"ed25519", &"test_key_1", &Option::<ByteBuf>::None).unwrap()),
        ("vetkd_derive_key", "vetkd_derive_key", Encode!(&ByteBuf::from(b"input".to_vec()), &ByteBuf::from(b"ctx".to_vec()), &ByteBuf::from(transport_key()), &"test_key_1").unwrap()),
    ]
}

/// The bare operation behind each kind, on this thread.
fn bare(kind: usize) {
    let canister = [1u8; 10];
    let path = vec![b"bench".to_vec()];
    match kind {
        0 => drop(chain_keys::sign_with_ecdsa(&KeyId::new(Scheme::EcdsaSecp256k1, "test_key_1"), &canister, &path, &[7; 32]).unwrap()),
        1 => drop(chain_keys::sign_with_schnorr(&KeyId::new(Scheme::SchnorrBip340, "test_key_1"), &canister, &path, &[7; 32], None).unwrap()),
        2 => drop(chain_keys::sign_with_schnorr(&KeyId::new(Scheme::SchnorrEd25519, "test_key_1"), &canister, &path, &[7; 32], None).unwrap()),
        _ => drop(chain_keys::vetkd_derive_key(&KeyId::new(Scheme::VetKdBls12381G2, "test_key_1"), &canister, b"ctx", b"input", &transport_key(), &[9; 64]).unwrap()),
    }
}

async fn one(r: &Replica, id: Principal, method: &str, arg: &[u8]) {
    let bytes = r.call(admin(), id, method, arg.to_vec()).await.unwrap();
    match Decode!(&bytes, BlobResult).unwrap() {
        BlobResult::Ok(_) => {}
        BlobResult::Err(f) => panic!("{method}: {f:?}"),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-unknown-unknown/release/cdk_platform.wasm");
    let module = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{} missing ({e}): run `make bench`", wasm.display()));
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: Some(cache.path().to_path_buf()), ..EngineConfig::default() }).unwrap();
    let r = Replica::new(engine, ReplicaConfig { initial_cycles: 1 << 62, ..ReplicaConfig::default() }).unwrap();
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(&r, &id, &module).unwrap();
    r.install(admin(), id, InstallMode::Install, m, Encode!().unwrap()).await.unwrap();

    println!("| operation | ic-cdk canister, 1 at a time | 16 in flight | bare crypto, 1 core | call path / bare (1 at a time) |");
    println!("|---|---|---|---|---|");
    for (kind, (label, method, arg)) in calls().into_iter().enumerate() {
        one(&r, id, method, &arg).await; // warm
        let n = 200;
        let t = Instant::now();
        for _ in 0..n {
            one(&r, id, method, &arg).await;
        }
        let seq = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (r, arg) = (r.clone(), arg.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..(n / 16 + 1) {
                    one(&r, id, method, &arg).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let par = (16 * (n / 16 + 1)) as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..n {
            bare(kind);
        }
        let raw = n as f64 / t.elapsed().as_secs_f64();
        println!("| `{label}` | {seq:.0}/s | {par:.0}/s | {raw:.0}/s | {:.2}× the time |", raw / seq);
    }
}
