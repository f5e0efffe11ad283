//! The store-local GC state machine.
//!
//! `Normal → Prepared → InProgress → Complete`, strictly forward: asking for
//! the current mode again is an idempotent no-op (timestamps unchanged); any
//! other transition is a [`ErrorCode::Conflict`]. Nothing returns to Normal:
//! a store whose GC completed is finished and can only be deleted.

use crate::types::{Error, ErrorCode, GcMode, WasmStoreGcStatusResponse};

/// The GC state of a store.
pub type GcState = WasmStoreGcStatusResponse;

/// A fresh store's GC state.
pub fn initial(now: u64) -> GcState {
    GcState { mode: GcMode::Normal, changed_at: now, prepared_at: None, started_at: None, completed_at: None, runs_completed: 0 }
}

/// Whether the transition changed anything (false: same-mode no-op).
pub fn transition(state: &mut GcState, to: GcMode, now: u64) -> Result<bool, Error> {
    let from = state.mode;
    if from == to {
        return Ok(false);
    }
    let allowed = matches!(
        (from, to),
        (GcMode::Normal, GcMode::Prepared) | (GcMode::Prepared, GcMode::InProgress) | (GcMode::InProgress, GcMode::Complete)
    );
    if !allowed {
        return Err(Error::new(ErrorCode::Conflict, format!("wasm store gc transition {from:?} -> {to:?} is not allowed")));
    }
    state.mode = to;
    state.changed_at = now;
    match to {
        GcMode::Prepared => {
            state.prepared_at = Some(now);
            state.started_at = None;
            state.completed_at = None;
        }
        GcMode::InProgress => state.started_at = Some(now),
        GcMode::Complete => {
            state.completed_at = Some(now);
            state.runs_completed += 1;
        }
        GcMode::Normal => {}
    }
    Ok(true)
}
