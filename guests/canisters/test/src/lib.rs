//! The `test` role: endpoints a deployment's tests call to see that a role
//! canister runs, replies, traps and keeps state as expected.
//!
//! Stable memory: a counter (memory 0) and a bounded note log (memory 1),
//! besides the common environment (memory 13).
//!
//! The Candid interface is `test.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{InitArgs, Memory, memory};
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::{StableBTreeMap, StableCell};
use ww_cdk::{Principal, api, init, post_upgrade, query, update};

/// The most notes kept; older ones are dropped first.
const MAX_NOTES: u64 = 100;
/// The longest note, in bytes.
const MAX_NOTE: usize = 1024;

thread_local! {
    static COUNTER: RefCell<StableCell<u64, Memory>> =
        RefCell::new(StableCell::init(memory(0), 0));
    /// Sequence number -> note.
    static NOTES: RefCell<StableBTreeMap<u64, String, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(1)));
}

#[init]
fn init(args: InitArgs) {
    role_common::init(args);
}

#[post_upgrade]
fn post_upgrade(args: InitArgs) {
    role_common::post_upgrade(args);
}

/// Returns its argument.
#[query]
fn echo(text: String) -> String {
    text
}

/// Returns its argument.
#[query]
fn echo_blob(bytes: ByteBuf) -> ByteBuf {
    bytes
}

/// Traps with `message`: the caller gets a CANISTER_ERROR reject carrying it.
#[update]
fn trap(message: String) {
    api::trap(message);
}

/// Adds `by` to the stable counter (saturating) and returns the new value.
#[update]
fn increment(by: u64) -> u64 {
    COUNTER.with(|c| {
        let mut c = c.borrow_mut();
        let value = c.get().saturating_add(by);
        c.set(value);
        value
    })
}

/// Adds `by` to the counter, then traps: the increment is rolled back.
#[update]
fn increment_then_trap(by: u64) {
    let value = increment(by);
    api::trap(format!("trapped after incrementing the counter to {value}"));
}

/// The stable counter.
#[query]
fn counter() -> u64 {
    COUNTER.with(|c| *c.borrow().get())
}

/// Appends a note (at most 1 KiB; the log keeps the latest 100) and returns
/// its sequence number.
#[update]
fn note(text: String) -> Result<u64, String> {
    role_common::check_text("the note", &text, MAX_NOTE)?;
    Ok(NOTES.with(|notes| {
        let mut notes = notes.borrow_mut();
        let seq = notes.last_key_value().map_or(0, |(k, _)| k + 1);
        notes.insert(seq, text);
        while notes.len() > MAX_NOTES {
            notes.pop_first();
        }
        seq
    }))
}

/// The notes kept, oldest first.
#[query]
fn notes() -> Vec<String> {
    NOTES.with(|notes| notes.borrow().values().collect())
}

/// The caller.
#[query]
fn whoami() -> Principal {
    api::msg_caller()
}

/// Replica time, in nanoseconds since the epoch.
#[query]
fn now() -> u64 {
    api::time()
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
