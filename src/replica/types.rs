//! Reject codes, error codes and limits: the IC's vocabulary; subnets as
//! canister id ranges and the ids within them.

use std::fmt;

use candid::Principal;

/// The IC's reject codes (what a caller sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u32)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
    SysUnknown = 6,
}

impl RejectCode {
    pub fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => return None,
        })
    }
    pub fn name(&self) -> &'static str {
        match self {
            Self::SysFatal => "SYS_FATAL",
            Self::SysTransient => "SYS_TRANSIENT",
            Self::DestinationInvalid => "DESTINATION_INVALID",
            Self::CanisterReject => "CANISTER_REJECT",
            Self::CanisterError => "CANISTER_ERROR",
            Self::SysUnknown => "SYS_UNKNOWN",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", *self as u32, self.name())
    }
}

/// `IC0xxx` error codes, numbered as the IC numbers them (its
/// `error_types` crate); the first digit is the reject code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ErrorCode {
    SubnetOversubscribed = 101,
    MaxNumberOfCanistersReached = 102,
    CanisterQueueFull = 201,
    CanisterIdAlreadyExists = 205,
    StopCanisterRequestTimeout = 206,
    CanisterOutOfCycles = 207,
    CanisterNotFound = 301,
    CanisterSnapshotNotFound = 305,
    CanisterTrapped = 502,
    CanisterInvalidWasm = 505,
    CanisterCalledTrap = 503,
    CanisterContractViolation = 504,
    CanisterDidNotReply = 506,
    CanisterOutOfMemory = 507,
    CanisterStopped = 508,
    CanisterStopping = 509,
    CanisterNotStopped = 510,
    CanisterStoppingCancelled = 511,
    CanisterInvalidController = 512,
    /// `create_canister` was sent fewer cycles than its fee.
    InsufficientCyclesForCreateCanister = 403,
    CanisterNotHostedBySubnet = 405,
    /// The IC refuses the message before any execution (e.g. an ingress
    /// message to a management method only canisters may call).
    CanisterRejectedMessage = 406,
    InvalidManagementPayload = 408,
    /// A snapshot taken from a canister cannot be written to (only uploaded
    /// ones can).
    CanisterSnapshotImmutable = 409,
    InsufficientCyclesInCall = 520,
    CanisterInstructionLimitExceeded = 522,
    CanisterMethodNotFound = 536,
    CanisterWasmModuleNotFound = 537,
    CanisterAlreadyInstalled = 538,
    QueryCallGraphTooDeep = 525,
    QueryCallGraphTotalInstructionLimitExceeded = 526,
    CompositeQueryCalledInReplicatedMode = 527,
    CanisterWasmMemoryLimitExceeded = 539,
    DeadlineExpired = 601,
}

impl ErrorCode {
    pub fn reject_code(&self) -> RejectCode {
        RejectCode::from_u32(*self as u32 / 100).unwrap_or(RejectCode::CanisterError)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IC{:04}", *self as u32)
    }
}

/// Per-node limits, IC defaults unless configured (tests use small ones).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Ingress and inter-canister payloads (requests and replicated replies).
    pub max_inter_canister_payload: usize,
    /// Replies to non-replicated queries.
    pub max_query_reply: usize,
    pub instructions_per_update: u64,
    pub instructions_per_query: u64,
    /// `canister_inspect_message` (the IC's 200 million).
    pub instructions_per_inspect: u64,
    pub instructions_per_install: u64,
    /// Heap (Wasm linear memory) limit per canister, bytes.
    pub wasm_memory_limit: usize,
    /// Guard region after the heap reservation (bounds checks are elided).
    pub memory_guard: usize,
    /// Stable memory limit per canister, in 64 KiB pages.
    pub stable_memory_pages: u64,
    /// Outstanding requests from one canister to another.
    pub max_outstanding_calls: u32,
    pub max_call_timeout_seconds: u32,
    /// How long `stop_canister` waits for open call contexts before it
    /// fails with IC0206 (the canister stays stopping).
    pub stop_canister_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inter_canister_payload: 2 << 20,
            max_query_reply: 3 << 20,
            instructions_per_update: 40_000_000_000,
            instructions_per_inspect: 200_000_000,
            instructions_per_query: 5_000_000_000,
            instructions_per_install: 300_000_000_000,
            wasm_memory_limit: 4 << 30,
            memory_guard: 32 << 20,
            stable_memory_pages: (500u64 << 30) / (64 << 10),
            max_outstanding_calls: 500,
            max_call_timeout_seconds: 300,
            stop_canister_timeout_seconds: 300,
        }
    }
}

/// A subnet of the replica: its id and its canister id range (by index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetRange {
    pub id: Principal,
    pub canisters: std::ops::RangeInclusive<u64>,
    /// The subnet's size: fees scale with it as on the IC.
    pub nodes: u32,
    /// The threshold keys it holds (and signs with).
    pub keys: Vec<crate::chain_keys::KeyId>,
    /// Whether it charges cycles (see [`super::cycles`]).
    pub cost_schedule: super::cycles::CostSchedule,
}

impl SubnetRange {
    /// A 13-node application subnet holding every test key (what a ww node
    /// is).
    pub fn new(id: Principal, canisters: std::ops::RangeInclusive<u64>) -> Self {
        Self { id, canisters, nodes: 13, keys: crate::chain_keys::KeyId::all_test_keys(), cost_schedule: super::cycles::CostSchedule::Normal }
    }

    /// What a canister on this subnet is charged.
    pub fn fees(&self) -> super::cycles::Fees {
        super::cycles::Fees::new(self.nodes, self.cost_schedule)
    }
}

/// The index of a canister id (the inverse of [`canister_id`]); `None` for
/// a principal that is not a canister id.
pub fn canister_index(id: &Principal) -> Option<u64> {
    let bytes = id.as_slice();
    if bytes.len() != 10 || bytes[8] != 1 || bytes[9] != 1 {
        return None;
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&bytes[..8]);
    Some(u64::from_be_bytes(index))
}

/// The canister id with the given index (8 bytes big-endian, then 0x01 0x01).
pub fn canister_id(index: u64) -> Principal {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[8] = 1;
    bytes[9] = 1;
    Principal::from_slice(&bytes)
}
