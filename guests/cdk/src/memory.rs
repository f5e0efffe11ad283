//! The canister's one stable memory registry: a single
//! `MemoryManager` over stable memory, whose virtual memories are claimed
//! by id, owner and label.
//!
//! ```ignore
//! use ww_cdk::memory::{self, Memory};
//! use ww_cdk::ic_stable_structures::StableBTreeMap;
//!
//! thread_local! {
//!     static USERS: std::cell::RefCell<StableBTreeMap<u64, String, Memory>> =
//!         std::cell::RefCell::new(StableBTreeMap::init(memory::claim(1, "my-canister", "users")));
//! }
//! ```
//!
//! Two claims of one id trap unless they are the same (owner, label) (a
//! structure's `thread_local!` initialiser may run again after a trap
//! rolled it back). Ranges are reserved for the SDK's own subsystems
//! ([`RESERVED`]: intents take 18-25); a claim inside one by anyone else
//! traps, naming the range's owner. Initialise structures in `#[init]` and
//! `#[post_upgrade]` (touch them there) so a collision fails the install,
//! not a later call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};

use crate::api;
use crate::stable::DefaultMemoryImpl;

/// A virtual stable memory of the canister.
pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// The owner name of the SDK's intents.
pub const INTENTS: &str = "ww-cdk intents";

/// Id ranges kept for the SDK's subsystems, with their owner.
pub const RESERVED: &[(RangeInclusive<u8>, &str)] = &[(18..=25, INTENTS)];

/// The highest id a `MemoryManager` hands out (255 marks free buckets).
pub const MAX_ID: u8 = 254;

thread_local! {
    static MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
    static CLAIMS: RefCell<BTreeMap<u8, (&'static str, &'static str)>> = const { RefCell::new(BTreeMap::new()) };
}

/// The virtual memory `id` for `owner`'s `label`. Traps if `id` is taken
/// by another claim, lies in a range reserved for another owner, or is
/// past [`MAX_ID`].
pub fn claim(id: u8, owner: &'static str, label: &'static str) -> Memory {
    if id > MAX_ID {
        api::trap(format!("stable memory id {id} ({owner} {label}) is past the highest id, {MAX_ID}"));
    }
    if let Some((range, holder)) = RESERVED.iter().find(|(r, _)| r.contains(&id))
        && *holder != owner
    {
        api::trap(format!(
            "stable memory id {id} ({owner} {label}) is reserved for {holder} ({}-{})",
            range.start(),
            range.end()
        ));
    }
    CLAIMS.with(|claims| {
        let mut claims = claims.borrow_mut();
        match claims.get(&id) {
            Some(&(o, l)) if (o, l) != (owner, label) => {
                api::trap(format!("stable memory id {id} is already taken by {o} {l}; {owner} {label} asked for it"))
            }
            Some(_) => {}
            None => {
                claims.insert(id, (owner, label));
            }
        }
    });
    MANAGER.with(|m| m.borrow().get(MemoryId::new(id)))
}

/// Every claimed id with its owner and label, in id order.
pub fn registry() -> Vec<(u8, &'static str, &'static str)> {
    CLAIMS.with(|c| c.borrow().iter().map(|(id, (o, l))| (*id, *o, *l)).collect())
}
