//! The counter canister: ww-cdk's README example and a test canister.
//!
//! A heap counter, mirrored into a `StableBTreeMap<u8, u64>` (memory id 0,
//! key 0) on every increment and before upgrades, and reloaded from it after
//! upgrades, so upgrades keep the value.
//!
//! ```candid
//! service : (opt nat64) -> {
//!   inc : () -> (nat64);
//!   get : () -> (nat64) query;
//!   get_stable : () -> (nat64) query;
//!   inc_other : (principal) -> (variant { Ok : nat64; Err : text });
//! }
//! ```

use std::cell::{Cell, RefCell};
use ww_cdk::call::Call;
use ww_cdk::ic_stable_structures::StableBTreeMap;
use ww_cdk::ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ww_cdk::stable::DefaultMemoryImpl;
use ww_cdk::{Principal, init, post_upgrade, pre_upgrade, query, update};

type Memory = VirtualMemory<DefaultMemoryImpl>;

/// The key of the counter in the stable map.
const COUNTER_KEY: u8 = 0;

thread_local! {
    /// The counter, on the heap: lost on upgrade unless saved.
    static COUNTER: Cell<u64> = const { Cell::new(0) };

    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));

    /// The counter's copy in stable memory.
    static STABLE: RefCell<StableBTreeMap<u8, u64, Memory>> = RefCell::new(StableBTreeMap::init(
        MEMORY_MANAGER.with(|m| m.borrow().get(MemoryId::new(0))),
    ));
}

fn save(value: u64) {
    STABLE.with(|map| map.borrow_mut().insert(COUNTER_KEY, value));
}

fn saved() -> Option<u64> {
    STABLE.with(|map| map.borrow().get(&COUNTER_KEY))
}

/// Starts the counter at `start` (default 0).
#[init]
fn init(start: Option<u64>) {
    let value = start.unwrap_or(0);
    COUNTER.with(|c| c.set(value));
    save(value);
}

/// Increments the counter and returns the new value.
#[update]
fn inc() -> u64 {
    let value = COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    save(value);
    ww_cdk::println!("counter: {value}");
    value
}

/// The counter, from the heap.
#[query]
fn get() -> u64 {
    COUNTER.with(Cell::get)
}

/// The counter, from stable memory.
#[query]
fn get_stable() -> u64 {
    saved().unwrap_or(0)
}

/// Increments the counter of another counter canister and returns its new value.
#[update]
async fn inc_other(canister: Principal) -> Result<u64, String> {
    let response = Call::unbounded_wait(canister, "inc")
        .await
        .map_err(|e| e.to_string())?;
    response.candid::<u64>().map_err(|e| e.to_string())
}

/// Saves the heap counter to stable memory (the heap does not survive).
#[pre_upgrade]
fn pre_upgrade() {
    save(COUNTER.with(Cell::get));
}

/// Reloads the counter from stable memory; `start` is used only if stable
/// memory holds no counter.
#[post_upgrade]
fn post_upgrade(start: Option<u64>) {
    let value = saved().or(start).unwrap_or(0);
    COUNTER.with(|c| c.set(value));
    save(value);
}

ww_cdk::export_canister!();
ww_cdk::export_candid!();
