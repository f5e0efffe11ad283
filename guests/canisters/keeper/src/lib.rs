//! The keeper canister: written the way IC developers write canisters, to
//! hold the replica to the IC's upgrade, versioning and query semantics.
//!
//! State lives on the heap. `pre_upgrade` saves it to raw stable memory at
//! fixed offsets and `post_upgrade` restores it; nothing else writes stable
//! memory (but `bump_in_query`, whose writes must be discarded). So an upgrade
//! keeps the counter only if pre_upgrade's writes reach post_upgrade.
//!
//! Stable memory layout (little-endian u64 words):
//! - 0: the counter, as pre_upgrade saw it;
//! - 8: upgrades so far (pre_upgrade adds one);
//! - 16: the canister version pre_upgrade saw;
//! - 24: the word `bump_in_query` increments;
//! - 32: the global timer pre_upgrade found.

use candid::{CandidType, Deserialize};
use std::cell::Cell;
use ww_cdk::stable::{stable_grow, stable_read, stable_size, stable_write};
use ww_cdk::{api, post_upgrade, pre_upgrade, query, update};

const COUNTER_AT: u64 = 0;
const UPGRADES_AT: u64 = 8;
const PRE_VERSION_AT: u64 = 16;
const QUERY_WORD_AT: u64 = 24;
const TIMER_AT: u64 = 32;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static UPGRADES: Cell<u64> = const { Cell::new(0) };
    static PRE_VERSION: Cell<u64> = const { Cell::new(0) };
    static POST_VERSION: Cell<u64> = const { Cell::new(0) };
}

/// What the last upgrade's hooks saw of `ic0.canister_version`.
#[derive(CandidType, Deserialize, Clone, Copy, Debug)]
pub struct Versions {
    pub pre_upgrade: u64,
    pub post_upgrade: u64,
}

fn ensure_stable_page() {
    if stable_size() == 0 && stable_grow(1).is_err() {
        api::trap("keeper: cannot grow stable memory");
    }
}

fn read_word(at: u64) -> u64 {
    if stable_size() == 0 {
        return 0;
    }
    let mut buf = [0u8; 8];
    stable_read(at, &mut buf);
    u64::from_le_bytes(buf)
}

fn write_word(at: u64, value: u64) {
    ensure_stable_page();
    stable_write(at, &value.to_le_bytes());
}

#[pre_upgrade]
fn pre_upgrade() {
    write_word(COUNTER_AT, COUNTER.with(Cell::get));
    write_word(UPGRADES_AT, UPGRADES.with(Cell::get) + 1);
    write_word(PRE_VERSION_AT, api::canister_version());
    // Setting the timer returns the one before; the upgrade deactivates it anyway.
    write_word(TIMER_AT, api::global_timer_set(0));
}

#[post_upgrade]
fn post_upgrade() {
    COUNTER.with(|c| c.set(read_word(COUNTER_AT)));
    UPGRADES.with(|u| u.set(read_word(UPGRADES_AT)));
    PRE_VERSION.with(|v| v.set(read_word(PRE_VERSION_AT)));
    POST_VERSION.with(|v| v.set(api::canister_version()));
}

#[update]
fn inc() -> u64 {
    COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

#[query]
fn get() -> u64 {
    COUNTER.with(Cell::get)
}

#[query]
fn upgrades() -> u64 {
    UPGRADES.with(Cell::get)
}

#[query]
fn upgrade_versions() -> Versions {
    Versions {
        pre_upgrade: PRE_VERSION.with(Cell::get),
        post_upgrade: POST_VERSION.with(Cell::get),
    }
}

#[query]
fn version() -> u64 {
    api::canister_version()
}

#[update]
fn version_in_update() -> u64 {
    api::canister_version()
}

#[query]
fn bump_in_query() -> u64 {
    write_word(QUERY_WORD_AT, read_word(QUERY_WORD_AT) + 1);
    COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

#[query]
fn stable_word() -> u64 {
    read_word(QUERY_WORD_AT)
}

#[update]
fn set_timer(at: u64) {
    api::global_timer_set(at);
}

#[query]
fn timer_before_upgrade() -> u64 {
    read_word(TIMER_AT)
}

ww_cdk::export_canister!();
ww_cdk::export_candid!();
