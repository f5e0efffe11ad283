//! The `user_shard` role: per-user data. Each caller has its own small
//! key/value space (at most 100 entries and 1 MiB), which only it reads
//! and writes; `user_hub` tells users which shard holds theirs.
//!
//! Stable memory: the entries (memory 0, [`EntryKey`] (user, key) -> bytes)
//! and each user's usage (memory 1), besides the common environment
//! (memory 13).
//!
//! The Candid interface is `user_shard.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, memory};
use serde_bytes::ByteBuf;
use std::borrow::Cow;
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::storable::Bound;
use ww_cdk::ic_stable_structures::{StableBTreeMap, Storable};
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The longest key, in bytes.
const MAX_KEY: usize = 128;
/// The most entries per user.
const MAX_ENTRIES: u64 = 100;
/// The most value bytes per user.
const MAX_BYTES: u64 = 1024 * 1024;

/// A user's usage of this shard.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub entries: u64,
    /// Value bytes.
    pub bytes: u64,
}

/// The whole shard's usage.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct ShardTotals {
    /// Users with at least one entry.
    pub users: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The key of one entry: its owner, then the owner's key, so one user's
/// entries are adjacent and in key order. Stored as the principal's length
/// (one byte), the principal, then the key's UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EntryKey {
    user: Principal,
    key: String,
}

impl Storable for EntryKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let user = self.user.as_slice();
        let mut bytes = Vec::with_capacity(1 + user.len() + self.key.len());
        bytes.push(user.len() as u8);
        bytes.extend_from_slice(user);
        bytes.extend_from_slice(self.key.as_bytes());
        bytes
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let decoded = bytes.split_first().and_then(|(&len, rest)| {
            let (user, key) = rest.split_at_checked(usize::from(len))?;
            let user = Principal::try_from_slice(user).ok()?;
            let key = String::from_utf8(key.to_vec()).ok()?;
            Some(Self { user, key })
        });
        match decoded {
            Some(key) => key,
            // Only this canister writes these keys: a failure is a bug.
            None => api::trap("stable memory holds a malformed entry key"),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: (1 + Principal::MAX_LENGTH_IN_BYTES + MAX_KEY) as u32,
        is_fixed_size: false,
    };
}

thread_local! {
    static DATA: RefCell<StableBTreeMap<EntryKey, Vec<u8>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    static USAGE: RefCell<StableBTreeMap<Principal, Candid<Usage>, Memory>> =
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

fn usage_of(user: &Principal) -> Usage {
    USAGE.with(|u| u.borrow().get(user).map(|c| c.0).unwrap_or_default())
}

fn set_usage(user: Principal, usage: &Usage) {
    USAGE.with(|u| {
        let mut u = u.borrow_mut();
        if usage.entries == 0 {
            u.remove(&user);
        } else {
            u.insert(user, Candid(usage.clone()));
        }
    });
}

/// Stores `value` under the caller's `key`; returns the caller's usage.
#[update]
fn put(key: String, value: ByteBuf) -> Result<Usage, String> {
    let user = role_common::require_authenticated()?;
    role_common::check_text("the key", &key, MAX_KEY)?;
    let entry = EntryKey { user, key };
    let old = DATA.with(|d| d.borrow().get(&entry));
    let mut usage = usage_of(&user);
    if old.is_none() {
        if usage.entries >= MAX_ENTRIES {
            return Err(format!("{user} already has {MAX_ENTRIES} entries"));
        }
        usage.entries += 1;
    }
    let old_len = old.map_or(0, |v| v.len() as u64);
    usage.bytes = usage
        .bytes
        .saturating_sub(old_len)
        .saturating_add(value.len() as u64);
    if usage.bytes > MAX_BYTES {
        return Err(format!(
            "{user} would hold {} bytes; the limit is {MAX_BYTES}",
            usage.bytes
        ));
    }
    DATA.with(|d| d.borrow_mut().insert(entry, value.into_vec()));
    set_usage(user, &usage);
    Ok(usage)
}

/// The caller's value under `key`, if any.
#[query]
fn get(key: String) -> Option<ByteBuf> {
    let entry = EntryKey {
        user: api::msg_caller(),
        key,
    };
    DATA.with(|d| d.borrow().get(&entry)).map(ByteBuf::from)
}

/// Deletes the caller's `key` (if present); returns the caller's usage.
#[update]
fn delete(key: String) -> Result<Usage, String> {
    let user = role_common::require_authenticated()?;
    let mut usage = usage_of(&user);
    if let Some(old) = DATA.with(|d| d.borrow_mut().remove(&EntryKey { user, key })) {
        usage.entries = usage.entries.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(old.len() as u64);
        set_usage(user, &usage);
    }
    Ok(usage)
}

/// The caller's keys, in order.
#[query]
fn keys() -> Vec<String> {
    let user = api::msg_caller();
    DATA.with(|d| {
        d.borrow()
            .keys_range(
                EntryKey {
                    user,
                    key: String::new(),
                }..,
            )
            .take_while(|entry| entry.user == user)
            .map(|entry| entry.key)
            .collect()
    })
}

/// The caller's usage.
#[query]
fn usage() -> Usage {
    usage_of(&api::msg_caller())
}

/// Users, entries and bytes on this shard.
#[query]
fn totals() -> ShardTotals {
    USAGE.with(|u| {
        u.borrow()
            .values()
            .fold(ShardTotals::default(), |mut t, Candid(usage)| {
                t.users += 1;
                t.entries += usage.entries;
                t.bytes += usage.bytes;
                t
            })
    })
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
