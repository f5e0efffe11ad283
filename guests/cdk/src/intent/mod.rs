//! Intents: declarative capacity reservations attached to inter-canister
//! calls.
//!
//! ```ignore
//! use ww_cdk::call::Call;
//! use ww_cdk::intent::{IntentKey, IntentReservation};
//!
//! let intent = IntentReservation::new(IntentKey::try_new("capacity")?, 1)
//!     .with_ttl_secs(30)        // a backstop; without it a reservation never expires
//!     .with_max_in_flight(1)    // at most this much pending at once for the key
//!     .with_capacity(100);      // committed + pending never exceeds this
//! let response = Call::unbounded_wait(target, "perform").with_intent(intent).with_arg(()).await?;
//! ```
//!
//! A call whose reservation does not fit is never sent: it fails at once
//! with [`CallFailed::Intent`](crate::call::CallFailed::Intent). A reply
//! commits the reservation, a reject (a bounded-wait timeout too) aborts
//! it; a trap in the code after the call's `await` rolls the commit back
//! and the cleanup callback aborts it, so nothing leaks; the TTL is the
//! backstop for what nothing else settles (a continuation an upgrade
//! lost): a timer aborts expired reservations, and an expired one never
//! counts against a limit. There is no lock and no reserve/commit API.
//!
//! Layers: this module validates and defines the shape (keys, quantities,
//! limits); [`workflow`] owns the call path (allocate an id, check and
//! reserve, then commit or abort on the outcome, the sweep); `storage`
//! does single steps in stable memory (ids 18-21 of the canister's one
//! [`memory`](crate::memory) registry) and knows nothing about calls.

mod storage;
pub(crate) mod workflow;

use std::fmt;

pub use storage::SCHEMA_VERSION;

/// The longest intent key, in bytes.
pub const MAX_KEY_BYTES: usize = 64;

/// The resource an intent reserves: 1 to [`MAX_KEY_BYTES`] bytes of UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntentKey(String);

/// A key that cannot name a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntentKeyError {
    Empty,
    TooLong { bytes: usize },
}

impl fmt::Display for IntentKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("an intent key must not be empty"),
            Self::TooLong { bytes } => write!(f, "an intent key is at most {MAX_KEY_BYTES} bytes, not {bytes}"),
        }
    }
}

impl std::error::Error for IntentKeyError {}

impl IntentKey {
    pub fn try_new(key: impl Into<String>) -> Result<Self, IntentKeyError> {
        let key = key.into();
        match key.len() {
            0 => Err(IntentKeyError::Empty),
            n if n > MAX_KEY_BYTES => Err(IntentKeyError::TooLong { bytes: n }),
            _ => Ok(Self(key)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a call reserves: `quantity` units of `key`, within optional
/// limits. Single-shot: attach a new one to every call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentReservation {
    pub(crate) key: IntentKey,
    pub(crate) quantity: u64,
    pub(crate) ttl_secs: Option<u64>,
    pub(crate) max_in_flight: Option<u64>,
    pub(crate) capacity: Option<u64>,
}

impl IntentReservation {
    /// `quantity` units of `key` (at least 1: a zero quantity fails the
    /// call before anything happens).
    pub fn new(key: IntentKey, quantity: u64) -> Self {
        Self { key, quantity, ttl_secs: None, max_in_flight: None, capacity: None }
    }

    /// Expire the reservation this long after the call is made if nothing
    /// settled it (a backstop; never expires without it).
    pub fn with_ttl_secs(mut self, secs: u64) -> Self {
        self.ttl_secs = Some(secs);
        self
    }

    /// At most this much may be pending for the key at once.
    pub fn with_max_in_flight(mut self, max: u64) -> Self {
        self.max_in_flight = Some(max);
        self
    }

    /// Committed plus pending never exceeds this for the key.
    pub fn with_capacity(mut self, capacity: u64) -> Self {
        self.capacity = Some(capacity);
        self
    }

    pub fn key(&self) -> &IntentKey {
        &self.key
    }

    pub fn quantity(&self) -> u64 {
        self.quantity
    }
}

/// Why a call with an intent was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentFailed {
    pub message: String,
}

impl fmt::Display for IntentFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IntentFailed {}

/// A key's totals: units pending (reserved by calls in flight), units
/// committed, and how many reservations are pending. Expired reservations
/// are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, candid::CandidType, candid::Deserialize)]
pub struct IntentTotals {
    pub reserved: u64,
    pub committed: u64,
    pub pending_count: u64,
}

/// A reservation not settled yet.
#[derive(Clone, Debug, PartialEq, Eq, candid::CandidType, candid::Deserialize)]
pub struct PendingIntent {
    pub id: u64,
    pub key: String,
    pub quantity: u64,
    /// Replica time it was made, nanoseconds.
    pub created_at: u64,
    /// When it expires (`None`: never).
    pub expires_at: Option<u64>,
}

/// The totals of `key` now.
pub fn totals(key: &IntentKey) -> IntentTotals {
    workflow::totals(key)
}

/// The pending reservations, oldest first.
pub fn pending() -> Vec<PendingIntent> {
    workflow::pending()
}
