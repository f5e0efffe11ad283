//! The `shard_hub` role: decides which `shard` holds which key. A key's
//! shard is chosen by rendezvous hashing over the shards registered when
//! the key is first assigned (deterministic: the same shards give the same
//! answer on every replica), then pinned, so adding shards never moves
//! existing keys.
//!
//! Stable memory: the shards (memory 0, principal -> [`ShardInfo`]) and the
//! pinned assignments (memory 1, key -> shard), besides the common
//! environment (memory 13).
//!
//! The Candid interface is `shard_hub.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, hash, memory};
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::StableBTreeMap;
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The longest key, in bytes (as `shard` accepts).
const MAX_KEY: usize = 256;
/// The most shards.
const MAX_SHARDS: u64 = 256;
/// The most pinned assignments.
const MAX_ASSIGNMENTS: u64 = 1_000_000;

/// A registered shard.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct ShardInfo {
    pub id: Principal,
    /// Replica time of the registration, nanoseconds.
    pub added_at: u64,
    /// Keys pinned to it.
    pub keys: u64,
}

thread_local! {
    static SHARDS: RefCell<StableBTreeMap<Principal, Candid<ShardInfo>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    static ASSIGNMENTS: RefCell<StableBTreeMap<String, Principal, Memory>> =
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

/// Registers a shard (administrators only); returns the number of shards.
#[update]
fn add_shard(id: Principal) -> Result<u32, String> {
    role_common::require_admin()?;
    if id == Principal::anonymous() || id == Principal::management_canister() {
        return Err(format!("{id} cannot be a shard"));
    }
    SHARDS.with(|s| {
        let mut s = s.borrow_mut();
        if !s.contains_key(&id) {
            if s.len() >= MAX_SHARDS {
                return Err(format!("there are already {MAX_SHARDS} shards"));
            }
            let info = ShardInfo {
                id,
                added_at: api::time(),
                keys: 0,
            };
            s.insert(id, Candid(info));
        }
        Ok(s.len() as u32)
    })
}

/// The shards, by principal.
#[query]
fn shards() -> Vec<ShardInfo> {
    SHARDS.with(|s| s.borrow().values().map(|c| c.0).collect())
}

/// The shard rendezvous hashing picks for `key` among the current shards
/// (ties, vanishingly rare, go to the smaller principal).
fn hashed_shard(key: &str) -> Option<Principal> {
    SHARDS.with(|s| {
        s.borrow()
            .keys()
            .map(|id| (hash::rendezvous_score(id.as_slice(), key.as_bytes()), id))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, id)| id)
    })
}

/// The shard of `key` (administrators only): its pinned shard, or the one
/// rendezvous hashing picks now, which is then pinned.
#[update]
fn assign(key: String) -> Result<Principal, String> {
    role_common::require_admin()?;
    role_common::check_text("the key", &key, MAX_KEY)?;
    if let Some(shard) = ASSIGNMENTS.with(|a| a.borrow().get(&key)) {
        return Ok(shard);
    }
    if ASSIGNMENTS.with(|a| a.borrow().len()) >= MAX_ASSIGNMENTS {
        return Err(format!("there are already {MAX_ASSIGNMENTS} assignments"));
    }
    let shard = hashed_shard(&key).ok_or("no shard is registered")?;
    ASSIGNMENTS.with(|a| a.borrow_mut().insert(key, shard));
    SHARDS.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(Candid(mut info)) = s.get(&shard) {
            info.keys = info.keys.saturating_add(1);
            s.insert(shard, Candid(info));
        }
    });
    Ok(shard)
}

/// The shard `key` is pinned to, if it was assigned.
#[query]
fn lookup(key: String) -> Option<Principal> {
    ASSIGNMENTS.with(|a| a.borrow().get(&key))
}

/// The shard `assign` would give `key` now (its pinned shard if it has one).
#[query]
fn preview(key: String) -> Option<Principal> {
    lookup(key.clone()).or_else(|| hashed_shard(&key))
}

/// How many keys are pinned.
#[query]
fn assignment_count() -> u64 {
    ASSIGNMENTS.with(|a| a.borrow().len())
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
