//! The global timer, shared between the canister's own timer
//! ([`crate::api::set_global_timer`], `#[on_timer]`) and the SDK's (the
//! intents' TTL sweep). The host has one timer; this keeps both deadlines
//! (in linear memory, so they roll back with a trap) and arms the host's
//! timer with the earlier one.
//!
//! The host's timer fires once and is then deactivated, even when the
//! timer entry point traps and both deadlines here roll back: the next
//! time either is set, the host's previous value (0) shows that the
//! deadline it was armed with is spent.
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

/// Arms the host's timer with the earlier deadline; returns the host's
/// previous value.
fn arm() -> u64 {
    ic0::global_timer_set(earliest(CANISTER.with(Cell::get), SDK.with(Cell::get)))
}

/// Whether the host's timer fired without this bookkeeping seeing it: the
/// host deactivates its timer when it fires, before the timer entry point
/// runs, and a trap in that entry point leaves it deactivated while both
/// deadlines here (linear memory) roll back. `armed` is what the host was
/// last armed with, `host_previous` what it held just now.
fn fired_unseen(armed: u64, host_previous: u64) -> bool {
    armed != 0 && host_previous == 0
}

/// The canister sets its timer (0 clears it); returns its previous value
/// (0 once it fired, as on the IC, even if the timer entry point trapped).
pub(crate) fn set_canister_timer(timestamp: u64) -> u64 {
    let armed = earliest(CANISTER.with(Cell::get), SDK.with(Cell::get));
    let previous = CANISTER.with(|c| c.replace(timestamp));
    let host_previous = arm();
    if fired_unseen(armed, host_previous) && previous == armed {
        // It fired (the SDK's deadline, if it was the same, is still armed:
        // its work did not happen).
        return 0;
    }
    previous
}

/// The SDK needs the timer at `timestamp` (or earlier, if already asked).
pub(crate) fn want_sdk_timer(timestamp: u64) {
    let armed = earliest(CANISTER.with(Cell::get), SDK.with(Cell::get));
    SDK.with(|s| s.set(earliest(s.get(), timestamp)));
    let host_previous = arm();
    if fired_unseen(armed, host_previous) && CANISTER.with(Cell::get) == armed {
        // The canister's timer fired (and its entry point trapped): it is
        // spent, as the IC leaves it; arm the SDK's alone.
        CANISTER.with(|c| c.set(0));
        arm();
    }
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
    // The host deactivated its timer when it fired; re-arm it with what is
    // left.
    arm();
    due
}
