//! The `user_hub` role: the user registry. A principal registers itself
//! with a display name and is placed on the least-loaded `user_shard`,
//! where its own data then lives.
//!
//! Stable memory: the profiles (memory 0, principal -> [`Profile`]) and the
//! user shards with their user counts (memory 1), besides the common
//! environment (memory 13).
//!
//! The Candid interface is `user_hub.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, memory};
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::StableBTreeMap;
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The longest display name, in bytes.
const MAX_NAME: usize = 64;
/// The most user shards.
const MAX_SHARDS: u64 = 256;

/// A registered user.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Profile {
    pub user: Principal,
    /// Display name.
    pub name: String,
    /// The `user_shard` that holds the user's data.
    pub shard: Principal,
    /// Replica time of the registration, nanoseconds.
    pub registered_at: u64,
}

/// A user shard and how many users it holds.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct UserShard {
    pub shard: Principal,
    pub users: u64,
}

thread_local! {
    static PROFILES: RefCell<StableBTreeMap<Principal, Candid<Profile>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    /// User shard -> users placed on it.
    static SHARDS: RefCell<StableBTreeMap<Principal, u64, Memory>> =
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

/// Adds a user shard (administrators only; adding one twice does nothing).
#[update]
fn add_user_shard(shard: Principal) -> Result<(), String> {
    role_common::require_admin()?;
    if shard == Principal::anonymous() || shard == Principal::management_canister() {
        return Err(format!("{shard} cannot be a user shard"));
    }
    SHARDS.with(|s| {
        let mut s = s.borrow_mut();
        if !s.contains_key(&shard) {
            if s.len() >= MAX_SHARDS {
                return Err(format!("there are already {MAX_SHARDS} user shards"));
            }
            s.insert(shard, 0);
        }
        Ok(())
    })
}

/// The user shards, by principal, with their user counts.
#[query]
fn user_shards() -> Vec<UserShard> {
    SHARDS.with(|s| {
        s.borrow()
            .iter()
            .map(|e| {
                let (shard, users) = e.into_pair();
                UserShard { shard, users }
            })
            .collect()
    })
}

/// The user shard with the fewest users (ties: the smaller principal).
fn least_loaded_shard() -> Option<Principal> {
    SHARDS.with(|s| {
        s.borrow()
            .iter()
            .map(|e| e.into_pair())
            .min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(shard, _)| shard)
    })
}

/// Registers the caller with display name `name` on the least-loaded user
/// shard; returns the new profile.
#[update]
fn register(name: String) -> Result<Profile, String> {
    let user = role_common::require_authenticated()?;
    role_common::check_text("the name", &name, MAX_NAME)?;
    if PROFILES.with(|p| p.borrow().contains_key(&user)) {
        return Err(format!("{user} is already registered"));
    }
    let shard = least_loaded_shard().ok_or("no user shard is registered")?;
    let profile = Profile {
        user,
        name,
        shard,
        registered_at: api::time(),
    };
    PROFILES.with(|p| p.borrow_mut().insert(user, Candid(profile.clone())));
    SHARDS.with(|s| {
        let mut s = s.borrow_mut();
        let users = s.get(&shard).unwrap_or(0).saturating_add(1);
        s.insert(shard, users);
    });
    Ok(profile)
}

/// Changes the caller's display name; returns the profile.
#[update]
fn rename(name: String) -> Result<Profile, String> {
    let user = api::msg_caller();
    role_common::check_text("the name", &name, MAX_NAME)?;
    PROFILES.with(|p| {
        let mut p = p.borrow_mut();
        let Some(Candid(mut profile)) = p.get(&user) else {
            return Err(format!("{user} is not registered"));
        };
        profile.name = name;
        p.insert(user, Candid(profile.clone()));
        Ok(profile)
    })
}

/// The profile of `user`, if registered.
#[query]
fn profile(user: Principal) -> Option<Profile> {
    PROFILES.with(|p| p.borrow().get(&user).map(|c| c.0))
}

/// How many users are registered.
#[query]
fn user_count() -> u64 {
    PROFILES.with(|p| p.borrow().len())
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
