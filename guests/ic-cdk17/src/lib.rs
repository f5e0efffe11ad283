//! A canister written against ic-cdk 0.17 (the pre-1.0 `ic0` surface: no
//! bounded-wait calls, no liquid balance, the 32-bit-era stable API
//! wrappers): a heap counter, raw stable memory and an inter-canister call.

use std::cell::Cell;

use candid::Principal;
use ic_cdk::{query, update};

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
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

/// Changes the heap and stable memory, then traps: both must roll back.
#[update]
fn inc_then_trap(v: u64) {
    inc();
    stable_write(v);
    ic_cdk::trap("inc_then_trap: deliberate");
}

/// Writes `v` at offset 0 of stable memory (growing it to one page first).
#[update]
fn stable_write(v: u64) {
    use ic_cdk::api::stable;
    if stable::stable_size() == 0 {
        stable::stable_grow(1).expect("stable_grow");
    }
    stable::stable_write(0, &v.to_le_bytes());
}

#[query]
fn stable_read() -> u64 {
    use ic_cdk::api::stable;
    if stable::stable_size() == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    stable::stable_read(0, &mut b);
    u64::from_le_bytes(b)
}

/// Calls `inc` on `target` (ic-cdk 0.17's `ic_cdk::call`).
#[update]
async fn call_inc(target: Principal) -> u64 {
    let (n,): (u64,) = ic_cdk::call(target, "inc", ()).await.expect("call inc");
    n
}

ic_cdk::export_candid!();
