//! The global timer, shared between the canister's own timer
//! ([`crate::api::set_global_timer`], `#[on_timer]`) and the SDK's (the
//! intents' TTL sweep). The host has one timer; this keeps both deadlines
//! (in linear memory, so they roll back with a trap) and arms the host's
//! timer with the earlier one.
//!
//! An upgrade starts with both cleared, as the IC clears the timer: the
//! canister sets its own again in `#[post_upgrade]`, the SDK re-arms its
//! sweep before that hook runs.

use std::cell::Cell;

use crate::bindings::ww::canister::ic0;

thread_local! {
    static CANISTER: Cell<u64> = const { Cell::new(0) };
    static SDK: Cell<u64> = const { Cell::new(0) };
}

fn earliest(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn arm() {
    ic0::global_timer_set(earliest(CANISTER.with(Cell::get), SDK.with(Cell::get)));
}

/// The canister sets its timer (0 clears it); returns its previous value.
pub(crate) fn set_canister_timer(timestamp: u64) -> u64 {
    let previous = CANISTER.with(|c| c.replace(timestamp));
    arm();
    previous
}

/// The SDK needs the timer at `timestamp` (or earlier, if already asked).
pub(crate) fn want_sdk_timer(timestamp: u64) {
    SDK.with(|s| s.set(earliest(s.get(), timestamp)));
    arm();
}

/// Whether the SDK's own deadline has passed (its work is due).
pub(crate) fn sdk_due(now: u64) -> bool {
    let sdk = SDK.with(Cell::get);
    sdk != 0 && sdk <= now
}

/// The host's timer fired: runs the SDK's due work and tells whether the
/// canister's own timer is due (its `#[on_timer]` then runs).
pub(crate) fn fired() -> bool {
    let now = ic0::time();
    let sdk = SDK.with(Cell::get);
    if sdk != 0 && sdk <= now {
        SDK.with(|s| s.set(0));
        crate::intent::workflow::sweep(now);
    }
    let canister = CANISTER.with(Cell::get);
    let due = canister != 0 && canister <= now;
    if due {
        CANISTER.with(|c| c.set(0));
    }
    arm();
    due
}
