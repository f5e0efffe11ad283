//! The `minimal` role: the common role surface and nothing more than a
//! liveness counter, the smallest canister root can install.
//!
//! Stable memory: the ping count and the last pinger (memory 0), besides the
//! common environment (memory 13).
//!
//! The Candid interface is `minimal.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, memory};
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::StableCell;
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// What `ping` records.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct Pings {
    /// Pings since install.
    pub count: u64,
    /// Who pinged last.
    pub last_caller: Option<Principal>,
    /// When (replica time, nanoseconds; 0 if never).
    pub last_at: u64,
}

thread_local! {
    static PINGS: RefCell<StableCell<Candid<Pings>, Memory>> =
        RefCell::new(StableCell::init(memory(0), Candid::default()));
}

#[init]
fn init(args: InitArgs) {
    role_common::init(args);
}

#[post_upgrade]
fn post_upgrade(args: InitArgs) {
    role_common::post_upgrade(args);
}

/// Records a ping; returns the count.
#[update]
fn ping() -> u64 {
    PINGS.with(|p| {
        let mut p = p.borrow_mut();
        let pings = Pings {
            count: p.get().0.count.saturating_add(1),
            last_caller: Some(api::msg_caller()),
            last_at: api::time(),
        };
        let count = pings.count;
        p.set(Candid(pings));
        count
    })
}

/// The pings so far.
#[query]
fn pings() -> Pings {
    PINGS.with(|p| p.borrow().get().0.clone())
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
