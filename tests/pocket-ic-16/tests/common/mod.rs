//! What the suites share: the ic-cdk canisters' wasm, the check that the
//! server is ww's as a 16.x server, and the Candid records cdk_platform's
//! outcall methods return.
#![allow(dead_code)]

use std::path::PathBuf;

use candid::{CandidType, Deserialize, Encode, Nat, Principal};
use pocket_ic::PocketIc;

/// An ic-cdk canister's wasm: from `WW_IC_CDK_WASM_DIR` if set, else from
/// guests/target (where `make ic-guests` puts it).
pub fn wasm(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("WW_IC_CDK_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guests/target/wasm32-unknown-unknown/release"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} is missing ({e}): run `make ic-guests` (make test does)", path.display()))
}

/// A canister with 100 T cycles running cdk_platform.
pub fn install(pic: &PocketIc) -> Principal {
    let id = pic.create_canister();
    pic.add_cycles(id, 100_000_000_000_000);
    pic.install_canister(id, wasm("cdk_platform"), Encode!().unwrap(), None);
    id
}

/// The client starts ww (POCKET_IC_BIN) speaking the 16.x protocol.
pub fn check_server() {
    let bin = std::env::var_os("POCKET_IC_BIN").expect("POCKET_IC_BIN must name ww's pocket-ic symlink (make test sets it)");
    assert!(PathBuf::from(&bin).is_file(), "POCKET_IC_BIN {bin:?} is not a file");
    assert_eq!(std::env::var("WW_POCKET_IC_VERSION").as_deref(), Ok("16"), "run with WW_POCKET_IC_VERSION=16 (make test does)");
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: Nat,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u32,
    pub message: String,
}
