//! The `shard` role: one partition of a keyed record store. Administrators
//! (controllers, the root, its parent `shard_hub`) write records; anyone
//! reads them. `shard_hub` decides which shard holds which key.
//!
//! Stable memory: the records (memory 0, key -> bytes) and the byte total
//! (memory 1), besides the common environment (memory 13).
//!
//! The Candid interface is `shard.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{InitArgs, Memory, memory};
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use std::ops::Bound;
use ww_cdk::ic_stable_structures::{StableBTreeMap, StableCell};
use ww_cdk::{CandidType, Deserialize, init, post_upgrade, query, update};

/// The longest key, in bytes.
const MAX_KEY: usize = 256;
/// The largest record, in bytes.
const MAX_RECORD: usize = 1024 * 1024;
/// The most record bytes one shard holds.
const CAPACITY: u64 = 256 * 1024 * 1024;
/// The most keys one `list` returns.
const MAX_LIST: u32 = 1000;

/// What `shard_stats` returns.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct ShardStats {
    /// Records held.
    pub records: u64,
    /// Record bytes held (values only).
    pub bytes: u64,
    /// The most record bytes this shard accepts.
    pub capacity: u64,
}

thread_local! {
    static RECORDS: RefCell<StableBTreeMap<String, Vec<u8>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    static BYTES: RefCell<StableCell<u64, Memory>> =
        RefCell::new(StableCell::init(memory(1), 0));
}

#[init]
fn init(args: InitArgs) {
    role_common::init(args);
}

#[post_upgrade]
fn post_upgrade(args: InitArgs) {
    role_common::post_upgrade(args);
}

fn bytes_held() -> u64 {
    BYTES.with(|b| *b.borrow().get())
}

fn set_bytes_held(value: u64) {
    BYTES.with(|b| b.borrow_mut().set(value));
}

/// Stores `value` under `key` (administrators only); true if the key is new.
#[update]
fn put(key: String, value: ByteBuf) -> Result<bool, String> {
    role_common::require_admin()?;
    role_common::check_text("the key", &key, MAX_KEY)?;
    if value.len() > MAX_RECORD {
        return Err(format!(
            "the record is {} bytes; the limit is {MAX_RECORD}",
            value.len()
        ));
    }
    let old = RECORDS
        .with(|r| r.borrow().get(&key))
        .map_or(0, |v| v.len() as u64);
    let held = bytes_held()
        .saturating_sub(old)
        .saturating_add(value.len() as u64);
    if held > CAPACITY {
        return Err(format!(
            "the shard is full: {held} bytes would exceed its capacity of {CAPACITY}"
        ));
    }
    let created = RECORDS.with(|r| r.borrow_mut().insert(key, value.into_vec()).is_none());
    set_bytes_held(held);
    Ok(created)
}

/// The record under `key`, if any.
#[query]
fn get(key: String) -> Option<ByteBuf> {
    RECORDS.with(|r| r.borrow().get(&key)).map(ByteBuf::from)
}

/// Removes the record under `key` (administrators only); true if it existed.
#[update]
fn remove(key: String) -> Result<bool, String> {
    role_common::require_admin()?;
    match RECORDS.with(|r| r.borrow_mut().remove(&key)) {
        Some(old) => {
            set_bytes_held(bytes_held().saturating_sub(old.len() as u64));
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Up to `limit` keys (at most 1000) in order, after `start_after` if given.
#[query]
fn list(start_after: Option<String>, limit: u32) -> Vec<String> {
    let limit = limit.min(MAX_LIST) as usize;
    let from = match start_after {
        Some(key) => Bound::Excluded(key),
        None => Bound::Unbounded,
    };
    RECORDS.with(|r| {
        r.borrow()
            .keys_range((from, Bound::Unbounded))
            .take(limit)
            .collect()
    })
}

/// Records, bytes and capacity.
#[query]
fn shard_stats() -> ShardStats {
    ShardStats {
        records: RECORDS.with(|r| r.borrow().len()),
        bytes: bytes_held(),
        capacity: CAPACITY,
    }
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
