//! The `app` role: the application's settings, a key/value store that
//! administrators (controllers, the root, the parent) write and anyone reads.
//!
//! Stable memory: the settings (memory 0, key -> [`Setting`]) and a
//! revision number bumped by every change (memory 1), besides the common
//! environment (memory 13).
//!
//! The Candid interface is `app.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, memory};
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::{StableBTreeMap, StableCell};
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The longest key, in bytes.
const MAX_KEY: usize = 64;
/// The longest value, in bytes.
const MAX_VALUE: usize = 4096;
/// The most settings kept.
const MAX_SETTINGS: u64 = 1000;

/// One setting, as stored and returned.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// Replica time of the last change, in nanoseconds.
    pub updated_at: u64,
    /// Who made the last change.
    pub updated_by: Principal,
}

thread_local! {
    static SETTINGS: RefCell<StableBTreeMap<String, Candid<Setting>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    static REVISION: RefCell<StableCell<u64, Memory>> =
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

/// Keys are 1 to 64 bytes of `[a-z0-9_.-]`.
fn check_key(key: &str) -> Result<(), String> {
    role_common::check_text("the key", key, MAX_KEY)?;
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(*c)))
    {
        return Err(format!(
            "the key {key:?} contains {c:?}; keys use a-z, 0-9, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// Bumps and returns the revision.
fn bump_revision() -> u64 {
    REVISION.with(|r| {
        let mut r = r.borrow_mut();
        let next = r.get().saturating_add(1);
        r.set(next);
        next
    })
}

/// Sets `key` to `value` (administrators only); returns the new revision.
#[update]
fn set_setting(key: String, value: String) -> Result<u64, String> {
    role_common::require_admin()?;
    check_key(&key)?;
    if value.len() > MAX_VALUE {
        return Err(format!(
            "the value is {} bytes long; the limit is {MAX_VALUE}",
            value.len()
        ));
    }
    SETTINGS.with(|s| {
        let mut s = s.borrow_mut();
        if !s.contains_key(&key) && s.len() >= MAX_SETTINGS {
            return Err(format!("there are already {MAX_SETTINGS} settings"));
        }
        let setting = Setting {
            key: key.clone(),
            value,
            updated_at: api::time(),
            updated_by: api::msg_caller(),
        };
        s.insert(key, Candid(setting));
        Ok(())
    })?;
    Ok(bump_revision())
}

/// Deletes `key` (administrators only); true if it existed.
#[update]
fn delete_setting(key: String) -> Result<bool, String> {
    role_common::require_admin()?;
    let existed = SETTINGS.with(|s| s.borrow_mut().remove(&key).is_some());
    if existed {
        bump_revision();
    }
    Ok(existed)
}

/// The setting `key`, if set.
#[query]
fn get_setting(key: String) -> Option<Setting> {
    SETTINGS.with(|s| s.borrow().get(&key).map(|c| c.0))
}

/// Every setting, by key.
#[query]
fn list_settings() -> Vec<Setting> {
    SETTINGS.with(|s| s.borrow().values().map(|c| c.0).collect())
}

/// The revision: how many changes the settings have seen.
#[query]
fn revision() -> u64 {
    REVISION.with(|r| *r.borrow().get())
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
