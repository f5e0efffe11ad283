//! The intent workflow: the only place that coordinates steps. A call
//! with an intent: expire what is due, check the limits, allocate an id
//! and reserve (all in the execution that sends the call, so a trap
//! before it is sent leaves nothing); then, in the callback's execution,
//! commit on a reply or abort on a reject; abort in the cleanup callback
//! when that execution trapped; abort what expires (the sweep, on the
//! SDK's share of the global timer).

use super::storage::{self, Record, State, StepError};
use super::{IntentFailed, IntentKey, IntentReservation, IntentTotals, PendingIntent};
use crate::api;

fn failed(message: String) -> IntentFailed {
    IntentFailed { message }
}

/// Aborts every pending reservation expired at `now`; re-arms the sweep
/// for the next expiry.
pub(crate) fn sweep(now: u64) {
    for id in storage::expired(now) {
        let _ = storage::settle(id, State::Aborted);
    }
    if let Some(next) = storage::next_expiry() {
        crate::timers::want_sdk_timer(next.saturating_add(1));
    }
}

/// After an upgrade (the timer was cleared): sweep again when the next
/// pending reservation expires. Only in a canister whose stable memory
/// already holds intent storage: others may use stable memory raw, and
/// must not find a `MemoryManager` written into it.
pub(crate) fn after_upgrade() {
    if storage::exists()
        && let Some(next) = storage::next_expiry()
    {
        crate::timers::want_sdk_timer(next.saturating_add(1));
    }
}

/// Checks the limits and reserves; the id of the pending reservation.
pub(crate) fn reserve(intent: &IntentReservation) -> Result<u64, IntentFailed> {
    let key = intent.key.as_str();
    let requested = intent.quantity;
    if requested == 0 {
        return Err(failed(format!("intent quantity must be at least 1 key={key}")));
    }
    let now = api::time();
    // Expired reservations never count: abort them first (only when one
    // is due: the SDK's timer deadline is the earliest expiry).
    if crate::timers::sdk_due(now) {
        sweep(now);
    }
    let t = storage::totals(key);
    let in_flight = t.reserved;
    let after = in_flight.checked_add(requested).ok_or_else(|| failed(format!("intent reservation overflow key={key} in_flight={in_flight} requested={requested}")))?;
    if let Some(max) = intent.max_in_flight
        && after > max
    {
        return Err(failed(format!("intent capacity exceeded key={key} in_flight={in_flight} requested={requested} max_in_flight={max}")));
    }
    if let Some(capacity) = intent.capacity {
        let total = t.committed.checked_add(after).ok_or_else(|| failed(format!("intent reservation overflow key={key} committed={} requested={requested}", t.committed)))?;
        if total > capacity {
            return Err(failed(format!(
                "intent capacity exceeded key={key} in_flight={in_flight} requested={requested} committed={} capacity={capacity}",
                t.committed
            )));
        }
    }
    let record = Record { key: key.to_owned(), quantity: requested, state: State::Pending, created_at: now, ttl_secs: intent.ttl_secs };
    let expires = record.expires_at();
    let id = storage::insert_pending(record).map_err(|_| failed(format!("intent reservation overflow key={key} in_flight={in_flight} requested={requested}")))?;
    if intent.ttl_secs.is_some() {
        crate::timers::want_sdk_timer(expires.saturating_add(1));
    }
    Ok(id)
}

/// The call's outcome: commit on a reply, abort otherwise. A reservation
/// the sweep already aborted (it expired during the call) stays aborted.
pub(crate) fn settle(id: u64, replied: bool) {
    let to = if replied { State::Committed } else { State::Aborted };
    match storage::settle(id, to) {
        Ok(_) => {}
        Err(StepError::NotPending { state }) => {
            api::debug_print(format!("intent {} failed id={id}: it is {state:?}, not pending", if replied { "commit" } else { "abort" }));
        }
        Err(StepError::Overflow) => api::debug_print(format!("intent commit failed id={id}: committed total overflows")),
    }
}

pub(crate) fn totals(key: &IntentKey) -> IntentTotals {
    // Expired reservations never count (in a query the sweep's writes are
    // discarded with the rest).
    let mut t = storage::totals(key.as_str());
    for r in storage::expired(api::time()).into_iter().filter_map(storage::record).filter(|r| r.key == key.as_str()) {
        t.reserved = t.reserved.saturating_sub(r.quantity);
        t.pending_count = t.pending_count.saturating_sub(1);
    }
    IntentTotals { reserved: t.reserved, committed: t.committed, pending_count: t.pending_count }
}

pub(crate) fn pending() -> Vec<PendingIntent> {
    storage::pending()
        .into_iter()
        .map(|(id, r)| PendingIntent {
            id,
            expires_at: Some(r.expires_at()).filter(|e| *e != u64::MAX),
            key: r.key,
            quantity: r.quantity,
            created_at: r.created_at,
        })
        .collect()
}
