//! Root's publication state: which store takes new publications (active),
//! which one did before and is still valid (detached), and which one is
//! waiting for cleanup (retired).
//!
//! `Active → Detached → Retired → (deleted, outside this state)`.
//!
//! Invariants, checked after every transition (a violation is a bug and
//! traps the execution, so the state is never stored broken):
//! - the bindings present are pairwise distinct;
//! - `retired_at != 0` exactly when a retired binding exists;
//! - every real change increments `generation` by exactly one and sets
//!   `changed_at`; a no-op leaves the state identical.
//!
//! Workflow rules (errors, not traps):
//! - a rollover (any activation) is blocked while the detached and retired
//!   slots are both occupied, because the old detached store would have to
//!   move into an occupied retired slot;
//! - retiring the detached binding is blocked while the retired slot is
//!   occupied (cleanup of the previous retired store must finish first);
//! - detached and retired bindings are never selected for publication.

use crate::types::{Error, ErrorCode, WasmStorePublicationStateResponse};

/// The publication state (same shape as its Candid response).
pub type PublicationState = WasmStorePublicationStateResponse;

/// A lifecycle transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Make `binding` the active store: the old detached store (if any) is
    /// retired, the old active becomes detached.
    Activate(String),
    /// The active store becomes detached (the old detached is retired).
    ClearActive,
    /// The detached store becomes retired.
    RetireDetached,
    /// The retired slot is cleared (its store's cleanup completed).
    FinalizeRetired,
}

impl Transition {
    /// The log name of the transition.
    pub fn kind(&self) -> &'static str {
        match self {
            Transition::Activate(_) => "activate",
            Transition::ClearActive => "clear_active",
            Transition::RetireDetached => "retire_detached",
            Transition::FinalizeRetired => "finalize_retired",
        }
    }
}

/// Whether `binding` may take publications (it is not detached or retired).
pub fn is_selectable(state: &PublicationState, binding: &str) -> bool {
    state.detached_binding.as_deref() != Some(binding) && state.retired_binding.as_deref() != Some(binding)
}

/// Whether `binding` occupies any slot.
pub fn is_referenced(state: &PublicationState, binding: &str) -> bool {
    [&state.active_binding, &state.detached_binding, &state.retired_binding]
        .iter()
        .any(|b| b.as_deref() == Some(binding))
}

/// Applies `transition` at time `now`. Returns whether anything changed.
///
/// Panics (traps the canister execution, which rolls it back) if the result
/// would break an invariant; that is a bug in the caller, never user input,
/// because every user-reachable precondition is checked first and returned as
/// an [`Error`].
pub fn apply(state: &mut PublicationState, transition: &Transition, now: u64) -> Result<bool, Error> {
    let before = state.clone();
    let occupied_for_rollover = state.detached_binding.is_some() && state.retired_binding.is_some();
    match transition {
        Transition::Activate(binding) => {
            if state.active_binding.as_deref() == Some(binding.as_str()) {
                return Ok(false);
            }
            if !is_selectable(state, binding) {
                return Err(Error::new(ErrorCode::Conflict, format!("ws binding '{binding}' is detached/retired")));
            }
            if state.active_binding.is_some() && occupied_for_rollover {
                return Err(Error::new(ErrorCode::Conflict, "ws rollover blocked: retired slot occupied"));
            }
            if let Some(old_active) = state.active_binding.take() {
                if let Some(old_detached) = state.detached_binding.take() {
                    state.retired_binding = Some(old_detached);
                    state.retired_at = now;
                }
                state.detached_binding = Some(old_active);
            }
            state.active_binding = Some(binding.clone());
        }
        Transition::ClearActive => {
            let Some(old_active) = state.active_binding.take() else {
                return Ok(false);
            };
            if occupied_for_rollover {
                state.active_binding = Some(old_active);
                return Err(Error::new(ErrorCode::Conflict, "ws rollover blocked: retired slot occupied"));
            }
            if let Some(old_detached) = state.detached_binding.take() {
                state.retired_binding = Some(old_detached);
                state.retired_at = now;
            }
            state.detached_binding = Some(old_active);
        }
        Transition::RetireDetached => {
            let Some(detached) = state.detached_binding.clone() else {
                return Ok(false);
            };
            if state.retired_binding.is_some() {
                return Err(Error::new(ErrorCode::Conflict, "ws retirement blocked: retired slot occupied"));
            }
            state.detached_binding = None;
            state.retired_binding = Some(detached);
            state.retired_at = now;
        }
        Transition::FinalizeRetired => {
            if state.retired_binding.is_none() {
                return Ok(false);
            }
            state.retired_binding = None;
            state.retired_at = 0;
        }
    }
    state.generation = before.generation + 1;
    state.changed_at = now;
    assert_invariants(state);
    Ok(true)
}

/// Checks the state invariants; panics on a violation.
pub fn assert_invariants(state: &PublicationState) {
    let slots = [&state.active_binding, &state.detached_binding, &state.retired_binding];
    for (i, a) in slots.iter().enumerate() {
        for b in &slots[i + 1..] {
            if let (Some(a), Some(b)) = (a, b) {
                assert_ne!(a, b, "publication bindings must be pairwise distinct");
            }
        }
    }
    assert_eq!(state.retired_at != 0, state.retired_binding.is_some(), "retired_at exists iff a retired binding exists");
}

/// The one-line log of a transition, `ws.transition kind=.. gen=.. ...`.
pub fn describe(kind: &str, before: &PublicationState, after: &PublicationState) -> String {
    let s = |b: &Option<String>| b.clone().unwrap_or_else(|| "-".into());
    format!(
        "ws.transition kind={kind} gen={} at={} old_a={} old_d={} old_r={} new_a={} new_d={} new_r={}",
        after.generation,
        after.changed_at,
        s(&before.active_binding),
        s(&before.detached_binding),
        s(&before.retired_binding),
        s(&after.active_binding),
        s(&after.detached_binding),
        s(&after.retired_binding),
    )
}
