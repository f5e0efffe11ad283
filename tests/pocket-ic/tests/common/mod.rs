//! Shared by every test file of the suite: where the test canisters and the
//! server binary are, and the few helpers real PocketIC suites write for
//! themselves (deploy a canister, candid calls, gzip, hashes).
//!
//! Nothing here skips: a missing canister or a missing `POCKET_IC_BIN` is a
//! failure with a message that says what to do.
#![allow(dead_code)] // each tests/*.rs uses its own subset

use std::path::PathBuf;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Deserialize, Principal};
use pocket_ic::{PocketIc, RejectResponse};
use sha2::Digest;

/// PocketIC's genesis time (`ic_types::time::GENESIS`, 06 May 2021 21:17:10
/// CEST): a new instance's time unless `with_initial_time` says otherwise.
pub const GENESIS_NANOS: u64 = 1_620_328_630_000_000_000;

/// The cycles real suites give a canister before installing it (2T).
pub const INIT_CYCLES: u128 = 2_000_000_000_000;

/// The first canister id of the application subnet of a new
/// `PocketIc::new()` instance (the pocket-ic 13 HOWTO asserts it, and suites
/// hard-code it).
pub const FIRST_APP_CANISTER: &str = "lxzze-o7777-77777-aaaaa-cai";

/// `cdk_counter`'s init (and post_upgrade) argument, `opt InitArg`.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct InitArg {
    pub greeting: String,
}

/// `cdk_caller`'s `CallError` (the reject code and message of a failed call).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub code: u32,
    pub message: String,
}

/// `cdk_caller`'s `CallManyResult`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallManyResult {
    pub ok: u32,
    pub errors: Vec<CallError>,
}

/// The repository root (this crate is `tests/pocket-ic`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The raw module of ic-cdk test canister `name` (`make ic-guests` builds them).
pub fn wasm(name: &str) -> Vec<u8> {
    let path = repo().join("guests/target/wasm32-unknown-unknown/release").join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "test canister {} is missing ({e}): run `make ic-guests` in the repository root (`make test` does it first)",
            path.display()
        ),
    }
}

/// The server binary the pocket-ic client starts: `POCKET_IC_BIN`, which
/// must name an existing file (else the client would try to download the
/// real server from GitHub).
pub fn server_bin() -> PathBuf {
    let bin = std::env::var_os("POCKET_IC_BIN").unwrap_or_else(|| {
        panic!(
            "POCKET_IC_BIN is not set: point it at the ww binary's `pocket-ic` symlink, e.g. \
             POCKET_IC_BIN=$PWD/target/debug/pocket-ic (`make test` sets it)"
        )
    });
    let bin = PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "POCKET_IC_BIN={} is not an existing file: build ww (`cargo build`) so that target/debug/pocket-ic exists",
        bin.display()
    );
    bin
}

/// A new instance with one application subnet, as `PocketIc::new()` gives.
pub fn pic() -> PocketIc {
    server_bin();
    PocketIc::new()
}

/// Creates a canister (as the anonymous principal, its controller), gives it
/// `INIT_CYCLES` and installs `module` with `arg`: what every real suite does.
pub fn deploy(pic: &PocketIc, module: Vec<u8>, arg: Vec<u8>) -> Principal {
    let id = pic.create_canister();
    pic.add_cycles(id, INIT_CYCLES);
    pic.install_canister(id, module, arg, None);
    id
}

/// `cdk_counter` with no init argument (greeting "hello").
pub fn counter(pic: &PocketIc) -> Principal {
    deploy(pic, wasm("cdk_counter"), no_init())
}

/// `cdk_caller` (no init argument).
pub fn caller(pic: &PocketIc) -> Principal {
    deploy(pic, wasm("cdk_caller"), candid::encode_args(()).unwrap())
}

/// `cdk_counter`'s init argument `null`.
pub fn no_init() -> Vec<u8> {
    candid::encode_one(None::<InitArg>).unwrap()
}

/// A Candid update call as the anonymous principal.
pub fn update<I: ArgumentEncoder, O: for<'a> ArgumentDecoder<'a>>(
    pic: &PocketIc,
    id: Principal,
    method: &str,
    args: I,
) -> Result<O, RejectResponse> {
    pocket_ic::update_candid(pic, id, method, args)
}

/// A Candid query call as the anonymous principal.
pub fn query<I: ArgumentEncoder, O: for<'a> ArgumentDecoder<'a>>(
    pic: &PocketIc,
    id: Principal,
    method: &str,
    args: I,
) -> Result<O, RejectResponse> {
    pocket_ic::query_candid(pic, id, method, args)
}

/// `cdk_counter`'s `get`.
pub fn get(pic: &PocketIc, id: Principal) -> u64 {
    let (n,): (u64,) = query(pic, id, "get", ()).expect("get");
    n
}

/// `cdk_counter`'s `inc`.
pub fn inc(pic: &PocketIc, id: Principal) -> u64 {
    let (n,): (u64,) = update(pic, id, "inc", ()).expect("inc");
    n
}

/// A principal that is no controller of anything.
pub fn stranger() -> Principal {
    Principal::from_slice(&[0x57; 29])
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

/// `cdk_big`'s ballast, regenerated exactly as guests/ic-cdk/cdk_big/build.rs
/// does (the two must stay identical): 2.5 MiB of an xorshift64 stream.
pub fn ballast() -> Vec<u8> {
    const BALLAST_LEN: usize = 2_621_440;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(BALLAST_LEN);
    while bytes.len() < BALLAST_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(BALLAST_LEN);
    bytes
}

/// FNV-1a, 64 bits (what `cdk_big`'s `ballast_digest` computes).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A reject's `Display` (what suites assert on), lower-cased.
pub fn shown(e: &RejectResponse) -> String {
    e.to_string().to_lowercase()
}
