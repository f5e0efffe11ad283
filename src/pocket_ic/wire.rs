//! The JSON bodies of the PocketIC server protocol (client 13.x), as ww's
//! own serde types.
//!
//! Every shape here mirrors the `pocket-ic` 13.0.0 client's
//! `common/rest.rs` and its `RejectResponse`, `RejectCode` and `ErrorCode`
//! (`lib.rs`): the same field names, serde's default external enum tagging
//! (`"None"`, `{"CanisterId":"<base64>"}`, `{"Ok":..}`), standard base64
//! with padding for the byte fields the client marks with its `base64`
//! module ([`b64`] here), textual principals where the client uses
//! `candid::Principal` (the [`Topology`] map keys), and u128 cycles as plain
//! JSON numbers. Fields the client always sends but ww does not act on are
//! accepted as raw JSON (`serde_json::Value`) or ignored; unknown fields are
//! ignored everywhere. Fields newer clients add are optional (`sender_info`
//! on [`RawCanisterCall`], 14+). Missing `Option` fields read as `None` and
//! missing lists as empty.
//!
//! Plain `Vec<u8>` results without the base64 marking (the `read/pub_key`
//! reply) are JSON arrays of numbers: send them as `Vec<u8>` directly.
//!
//! The conversions from ww's replica rejects ([`reject_response`],
//! [`reject_to_response`]) follow the real server: a system reject keeps its
//! error code (its `IC0nnn: ` message prefix stripped), a canister's own
//! reject becomes `{CanisterReject, <message>, CanisterRejectedMessage}`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candid::Principal;
use serde::{Deserialize, Serialize};

use crate::replica;

/// The instance id in `/instances/<id>/` (the client's `InstanceId`).
pub type InstanceId = usize;

/// A malformed value inside a well-formed body.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{field}: not a principal ({len} bytes; at most {max})", max = MAX_PRINCIPAL_BYTES)]
    Principal { field: &'static str, len: usize },
}

/// A principal has at most 29 bytes (the IC's limit).
pub const MAX_PRINCIPAL_BYTES: usize = 29;

fn principal_from_bytes(field: &'static str, bytes: &[u8]) -> Result<Principal, WireError> {
    Principal::try_from_slice(bytes).map_err(|_| WireError::Principal { field, len: bytes.len() })
}

/// Serde helpers for the byte fields the client marks with its `base64`
/// module: standard alphabet, padded on output; input is accepted with or
/// without padding.
pub mod b64 {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use serde::{Deserialize, Deserializer, Serializer};

    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_encode_padding(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    pub fn encode(bytes: &[u8]) -> String {
        ENGINE.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        ENGINE.decode(text)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Instance creation

/// `POST /instances` body. Only the subnets and the initial time are acted
/// on; the rest is kept as raw JSON so the routes can refuse what ww does not
/// support.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceConfig {
    pub subnet_config_set: ExtendedSubnetConfigSet,
    pub http_gateway_config: Option<serde_json::Value>,
    pub state_dir: Option<PathBuf>,
    pub icp_config: Option<serde_json::Value>,
    pub log_level: Option<String>,
    pub bitcoind_addr: Option<serde_json::Value>,
    pub dogecoind_addr: Option<serde_json::Value>,
    /// The client always sends this, as an object of `null`s when no ICP
    /// feature is wanted (see [`InstanceConfig::icp_features_requested`]).
    pub icp_features: Option<serde_json::Value>,
    pub incomplete_state: Option<serde_json::Value>,
    pub initial_time: Option<InitialTime>,
    pub mainnet_nns_subnet_id: Option<bool>,
}

impl InstanceConfig {
    /// The names of the ICP features the config asks for (the non-`null`
    /// fields of `icp_features`), sorted.
    pub fn icp_features_requested(&self) -> Vec<String> {
        match &self.icp_features {
            Some(serde_json::Value::Object(map)) => {
                map.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Which subnets to create: the named ones at most once, the others any
/// number of times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtendedSubnetConfigSet {
    pub nns: Option<SubnetSpec>,
    pub sns: Option<SubnetSpec>,
    pub ii: Option<SubnetSpec>,
    pub fiduciary: Option<SubnetSpec>,
    pub bitcoin: Option<SubnetSpec>,
    /// pocket-ic 16.x only (a subnet with the test threshold keys); left
    /// out of the JSON when absent, as a 13.x client never sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_threshold_keys: Option<SubnetSpec>,
    pub system: Vec<SubnetSpec>,
    pub application: Vec<SubnetSpec>,
    pub cloud_engine: Vec<SubnetSpec>,
    pub verified_application: Vec<SubnetSpec>,
}

impl ExtendedSubnetConfigSet {
    /// Every requested subnet with its kind, in the client's order: the
    /// named ones (NNS, SNS, II, fiduciary, bitcoin), then system,
    /// application, cloud engine and verified application subnets.
    pub fn subnets(&self) -> Vec<(SubnetKind, &SubnetSpec)> {
        let named = [
            (SubnetKind::NNS, &self.nns),
            (SubnetKind::SNS, &self.sns),
            (SubnetKind::II, &self.ii),
            (SubnetKind::Fiduciary, &self.fiduciary),
            (SubnetKind::Bitcoin, &self.bitcoin),
            (SubnetKind::TestThresholdKeys, &self.test_threshold_keys),
        ];
        let many = [
            (SubnetKind::System, &self.system),
            (SubnetKind::Application, &self.application),
            (SubnetKind::CloudEngine, &self.cloud_engine),
            (SubnetKind::VerifiedApplication, &self.verified_application),
        ];
        named
            .into_iter()
            .filter_map(|(kind, spec)| spec.as_ref().map(|s| (kind, s)))
            .chain(many.into_iter().flat_map(|(kind, specs)| specs.iter().map(move |s| (kind, s))))
            .collect()
    }
}

/// One subnet's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubnetSpec {
    pub state_config: SubnetStateConfig,
    pub instruction_config: SubnetInstructionConfig,
    pub subnet_admins: Option<Vec<RawPrincipalId>>,
    pub cost_schedule: CanisterCyclesCostSchedule,
}

/// Whether a subnet starts empty or from saved state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubnetStateConfig {
    #[default]
    New,
    FromPath(PathBuf),
    FromBlobStore(BlobId),
}

/// Instruction limits of a subnet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubnetInstructionConfig {
    #[default]
    Production,
    Benchmarking,
}

/// How a subnet charges cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CanisterCyclesCostSchedule {
    #[default]
    Normal,
    Free,
}

/// The time a new instance starts at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitialTime {
    Timestamp(RawTime),
    AutoProgress(AutoProgressConfig),
}

/// Nanoseconds since the Unix epoch (`read/get_time`, `update/set_time`,
/// `update/set_certified_time`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawTime {
    pub nanos_since_epoch: u64,
}

/// `POST /instances/<id>/auto_progress` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoProgressConfig {
    pub artificial_delay_ms: Option<u64>,
}

/// `POST /instances` reply (always HTTP 200; `Error` is the refusal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateInstanceResponse {
    Created {
        instance_id: InstanceId,
        topology: Topology,
        http_gateway_info: Option<HttpGatewayInfo>,
    },
    Error {
        message: String,
    },
}

/// Where an instance's HTTP gateway listens (ww starts none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGatewayInfo {
    pub instance_id: InstanceId,
    pub port: u16,
}

// ---------------------------------------------------------------------------
// Topology

/// `GET /instances/<id>/read/topology` reply: the subnets by textual id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub subnet_configs: BTreeMap<Principal, SubnetConfig>,
    pub default_effective_canister_id: RawCanisterId,
}

/// One subnet of a [`Topology`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    pub subnet_kind: SubnetKind,
    pub subnet_admins: Option<Vec<RawPrincipalId>>,
    pub cost_schedule: CanisterCyclesCostSchedule,
    /// A JSON array of 32 numbers.
    pub subnet_seed: [u8; 32],
    pub instruction_config: SubnetInstructionConfig,
    pub canister_ranges: Vec<CanisterIdRange>,
}

/// The client's subnet kinds (v13), spelled as it spells them.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubnetKind {
    Application,
    Bitcoin,
    CloudEngine,
    Fiduciary,
    II,
    NNS,
    SNS,
    System,
    /// pocket-ic 16.x only: never sent to a 13.x client (it only comes
    /// back when a 16.x client asked for such a subnet).
    TestThresholdKeys,
    VerifiedApplication,
}

/// An inclusive range of canister ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CanisterIdRange {
    pub start: RawCanisterId,
    pub end: RawCanisterId,
}

// ---------------------------------------------------------------------------
// Raw ids (base64 bytes)

/// A canister id as base64 raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawCanisterId {
    #[serde(with = "b64")]
    pub canister_id: Vec<u8>,
}

impl RawCanisterId {
    pub fn principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("canister_id", &self.canister_id)
    }
}

impl From<Principal> for RawCanisterId {
    fn from(p: Principal) -> Self {
        Self { canister_id: p.as_slice().to_vec() }
    }
}

/// A principal as base64 raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawPrincipalId {
    #[serde(with = "b64")]
    pub principal_id: Vec<u8>,
}

impl RawPrincipalId {
    pub fn principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("principal_id", &self.principal_id)
    }
}

impl From<Principal> for RawPrincipalId {
    fn from(p: Principal) -> Self {
        Self { principal_id: p.as_slice().to_vec() }
    }
}

/// A subnet id as base64 raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawSubnetId {
    #[serde(with = "b64")]
    pub subnet_id: Vec<u8>,
}

impl RawSubnetId {
    pub fn principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("subnet_id", &self.subnet_id)
    }
}

impl From<Principal> for RawSubnetId {
    fn from(p: Principal) -> Self {
        Self { subnet_id: p.as_slice().to_vec() }
    }
}

/// A node id as base64 raw bytes (tick blockmakers).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawNodeId {
    #[serde(with = "b64")]
    pub node_id: Vec<u8>,
}

/// A blob store id (base64 of the blob's hash); the blob store's own
/// `POST /blobstore/` reply is the hex text of the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobId(#[serde(with = "b64")] pub Vec<u8>);

// ---------------------------------------------------------------------------
// Calls

/// Where a call is routed: management calls name the canister or subnet
/// they act on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RawEffectivePrincipal {
    None,
    SubnetId(#[serde(with = "b64")] Vec<u8>),
    CanisterId(#[serde(with = "b64")] Vec<u8>),
}

impl RawEffectivePrincipal {
    /// The canister or subnet principal, `None` for `None`.
    pub fn principal(&self) -> Result<Option<Principal>, WireError> {
        match self {
            Self::None => Ok(None),
            Self::SubnetId(bytes) => principal_from_bytes("effective_principal.SubnetId", bytes).map(Some),
            Self::CanisterId(bytes) => principal_from_bytes("effective_principal.CanisterId", bytes).map(Some),
        }
    }
}

/// `read/query`, `update/execute_ingress_message` and
/// `update/submit_ingress_message` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCanisterCall {
    #[serde(with = "b64")]
    pub sender: Vec<u8>,
    #[serde(with = "b64")]
    pub canister_id: Vec<u8>,
    pub effective_principal: RawEffectivePrincipal,
    pub method: String,
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// The sender's info (clients 14+, `*_with_sender_info`): what the
    /// callee's `ic0.msg_caller_info_*` give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_info: Option<RawSenderInfo>,
}

/// `RawCanisterCall::sender_info`: data about the sender and the principal
/// (bytes) of the canister that signed it; PocketIC checks neither.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSenderInfo {
    #[serde(with = "b64")]
    pub info: Vec<u8>,
    #[serde(with = "b64")]
    pub signer: Vec<u8>,
}

impl RawCanisterCall {
    pub fn sender_principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("sender", &self.sender)
    }
    pub fn canister_principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("canister_id", &self.canister_id)
    }

    /// The sender info as the replica hands it to the callee.
    pub fn caller_info(&self) -> Option<replica::exec::CallerInfo> {
        self.sender_info.as_ref().map(|i| replica::exec::CallerInfo { data: i.info.clone(), signer: i.signer.clone() })
    }
}

/// A submitted ingress message: `update/submit_ingress_message` replies
/// `Result<RawMessageId, RejectResponse>`; `update/await_ingress_message`
/// takes it as its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMessageId {
    pub effective_principal: RawEffectivePrincipal,
    #[serde(with = "b64")]
    pub message_id: Vec<u8>,
}

/// `read/ingress_status` body; the reply is `Option<RawCanisterResult>`
/// (`null` while unknown), or HTTP 403 when `raw_caller` is not the sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawIngressStatusArgs {
    pub raw_message_id: RawMessageId,
    pub raw_caller: Option<RawPrincipalId>,
}

/// The outcome of a call: the reply bytes or the reject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawCanisterResult {
    Ok(#[serde(with = "b64")] Vec<u8>),
    Err(RejectResponse),
}

impl RawCanisterResult {
    /// A replica call outcome; `certified` as [`reject_to_response`].
    pub fn from_replica(result: Result<Vec<u8>, replica::Reject>, certified: bool) -> Self {
        match result {
            Ok(reply) => Self::Ok(reply),
            Err(reject) => Self::Err(reject_to_response(&reject, certified)),
        }
    }
}

// ---------------------------------------------------------------------------
// Rejects

/// A rejected call as the client reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectResponse {
    pub reject_code: RejectCode,
    pub reject_message: String,
    pub error_code: ErrorCode,
    pub certified: bool,
}

/// The IC's reject codes, serialized as their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
    SysUnknown = 6,
}

impl From<replica::RejectCode> for RejectCode {
    fn from(code: replica::RejectCode) -> Self {
        match code {
            replica::RejectCode::SysFatal => Self::SysFatal,
            replica::RejectCode::SysTransient => Self::SysTransient,
            replica::RejectCode::DestinationInvalid => Self::DestinationInvalid,
            replica::RejectCode::CanisterReject => Self::CanisterReject,
            replica::RejectCode::CanisterError => Self::CanisterError,
            replica::RejectCode::SysUnknown => Self::SysUnknown,
        }
    }
}

/// Defines [`ErrorCode`] from the client's list: the variant names are the
/// JSON spelling, the discriminants the IC's numbers.
macro_rules! error_codes {
    ($($name:ident = $code:literal,)*) => {
        /// The error codes the v13 client knows (its `ErrorCode`, all 60):
        /// a name outside this list makes the client's parse fail.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($name = $code,)*
        }

        impl ErrorCode {
            /// Every variant, in the client's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The variant's name (its JSON spelling).
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)*
                }
            }

            /// The variant with this name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($name) => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    SubnetOversubscribed = 101,
    MaxNumberOfCanistersReached = 102,
    CanisterQueueFull = 201,
    IngressMessageTimeout = 202,
    CanisterQueueNotEmpty = 203,
    IngressHistoryFull = 204,
    CanisterIdAlreadyExists = 205,
    StopCanisterRequestTimeout = 206,
    CanisterOutOfCycles = 207,
    CertifiedStateUnavailable = 208,
    CanisterInstallCodeRateLimited = 209,
    CanisterHeapDeltaRateLimited = 210,
    CanisterNotFound = 301,
    CanisterSnapshotNotFound = 305,
    InsufficientMemoryAllocation = 402,
    InsufficientCyclesForCreateCanister = 403,
    SubnetNotFound = 404,
    CanisterNotHostedBySubnet = 405,
    CanisterRejectedMessage = 406,
    UnknownManagementMessage = 407,
    InvalidManagementPayload = 408,
    CanisterSnapshotImmutable = 409,
    InvalidSubnetAdmin = 410,
    CanisterTrapped = 502,
    CanisterCalledTrap = 503,
    CanisterContractViolation = 504,
    CanisterInvalidWasm = 505,
    CanisterDidNotReply = 506,
    CanisterOutOfMemory = 507,
    CanisterStopped = 508,
    CanisterStopping = 509,
    CanisterNotStopped = 510,
    CanisterStoppingCancelled = 511,
    CanisterInvalidController = 512,
    CanisterFunctionNotFound = 513,
    CanisterNonEmpty = 514,
    QueryCallGraphLoopDetected = 517,
    InsufficientCyclesInCall = 520,
    CanisterWasmEngineError = 521,
    CanisterInstructionLimitExceeded = 522,
    CanisterMemoryAccessLimitExceeded = 524,
    QueryCallGraphTooDeep = 525,
    QueryCallGraphTotalInstructionLimitExceeded = 526,
    CompositeQueryCalledInReplicatedMode = 527,
    QueryTimeLimitExceeded = 528,
    QueryCallGraphInternal = 529,
    InsufficientCyclesInComputeAllocation = 530,
    InsufficientCyclesInMemoryAllocation = 531,
    InsufficientCyclesInMemoryGrow = 532,
    ReservedCyclesLimitExceededInMemoryAllocation = 533,
    ReservedCyclesLimitExceededInMemoryGrow = 534,
    InsufficientCyclesInMessageMemoryGrow = 535,
    CanisterMethodNotFound = 536,
    CanisterWasmModuleNotFound = 537,
    CanisterAlreadyInstalled = 538,
    CanisterWasmMemoryLimitExceeded = 539,
    ReservedCyclesLimitIsTooLow = 540,
    CanisterInvalidControllerOrSubnetAdmin = 541,
    DeadlineExpired = 601,
    ResponseDropped = 602,
}

impl ErrorCode {
    /// The IC's number (e.g. 503 for `IC0503`).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The code the client gets for a reject of this class whose own code
    /// it would not know (never expected: see the tests).
    fn fallback(code: RejectCode) -> Self {
        match code {
            RejectCode::SysFatal => Self::SubnetOversubscribed,
            RejectCode::SysTransient => Self::CanisterQueueFull,
            RejectCode::DestinationInvalid => Self::CanisterNotFound,
            RejectCode::CanisterReject => Self::CanisterRejectedMessage,
            RejectCode::CanisterError => Self::CanisterTrapped,
            RejectCode::SysUnknown => Self::DeadlineExpired,
        }
    }
}

impl From<replica::ErrorCode> for ErrorCode {
    /// By name: ww's variants are named as the client's.
    fn from(code: replica::ErrorCode) -> Self {
        let name = format!("{code:?}");
        Self::from_name(&name).unwrap_or_else(|| {
            tracing::warn!("error code {name} ({code}) is unknown to the PocketIC client; sending its class's code");
            Self::fallback(code.reject_code().into())
        })
    }
}

/// Strips a leading `IC0nnn: ` (ww's system reject messages carry it; the
/// PocketIC server's do not).
fn strip_error_code_prefix(message: &str) -> &str {
    let b = message.as_bytes();
    let prefixed = b.len() >= 8 && b.starts_with(b"IC") && b[2..6].iter().all(u8::is_ascii_digit) && &b[6..8] == b": ";
    if prefixed { &message[8..] } else { message }
}

/// The client's reject for one of ww's. With `error_code` (a system
/// reject) the codes carry over and an `IC0nnn: ` message prefix is
/// stripped; without one (the canister rejected the call itself) it is
/// `{CanisterReject, message, CanisterRejectedMessage}` as PocketIC reports
/// `msg_reject`. `certified`: true for awaited updates, false for queries
/// and submit-time refusals.
pub fn reject_response(
    code: replica::RejectCode,
    error_code: Option<replica::ErrorCode>,
    message: &str,
    certified: bool,
) -> RejectResponse {
    match error_code {
        Some(error_code) => RejectResponse {
            reject_code: code.into(),
            reject_message: strip_error_code_prefix(message).to_owned(),
            error_code: error_code.into(),
            certified,
        },
        None => RejectResponse {
            reject_code: RejectCode::CanisterReject,
            reject_message: message.to_owned(),
            error_code: ErrorCode::CanisterRejectedMessage,
            certified,
        },
    }
}

/// [`reject_response`] for a replica [`Reject`](replica::Reject).
pub fn reject_to_response(reject: &replica::Reject, certified: bool) -> RejectResponse {
    reject_response(reject.code, reject.error_code, &reject.message, certified)
}

// ---------------------------------------------------------------------------
// Cycles, stable memory, ticks, signatures

/// `update/add_cycles` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAddCycles {
    #[serde(with = "b64")]
    pub canister_id: Vec<u8>,
    pub amount: u128,
}

/// `read/get_cycles` and `update/add_cycles` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCycles {
    pub cycles: u128,
}

/// `update/set_stable_memory` body (the data went to the blob store first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSetStableMemory {
    #[serde(with = "b64")]
    pub canister_id: Vec<u8>,
    pub blob_id: BlobId,
}

/// `read/get_stable_memory` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawStableMemory {
    #[serde(with = "b64")]
    pub blob: Vec<u8>,
}

/// `update/tick` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RawTickConfigs {
    pub blockmakers: Option<Vec<RawSubnetBlockmakers>>,
}

/// The block makers of one subnet for a tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSubnetBlockmakers {
    pub subnet: RawSubnetId,
    pub blockmaker: RawNodeId,
    #[serde(default)]
    pub failed_blockmakers: Vec<RawNodeId>,
}

/// `POST /verify_signature` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawVerifyCanisterSigArg {
    #[serde(with = "b64")]
    pub msg: Vec<u8>,
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
    #[serde(with = "b64")]
    pub pubkey: Vec<u8>,
    #[serde(with = "b64")]
    pub root_pubkey: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Canister HTTP outcalls: `wire/outcalls.rs`

mod outcalls;
pub use outcalls::*;

// ---------------------------------------------------------------------------
// Snapshots to and from a directory

/// `update/canister_snapshot_download` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCanisterSnapshotDownload {
    pub sender: RawPrincipalId,
    pub canister_id: RawCanisterId,
    #[serde(with = "b64")]
    pub snapshot_id: Vec<u8>,
    pub snapshot_dir: PathBuf,
}

/// `update/canister_snapshot_upload` body; replies [`RawCanisterSnapshotId`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCanisterSnapshotUpload {
    pub sender: RawPrincipalId,
    pub canister_id: RawCanisterId,
    pub replace_snapshot: Option<RawCanisterSnapshotId>,
    pub snapshot_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCanisterSnapshotId {
    #[serde(with = "b64")]
    pub snapshot_id: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Errors and asynchronous operations

/// The body of every non-2xx reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub message: String,
}

impl ApiError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

/// The HTTP 202/409 body of an operation still running (ww answers
/// synchronously and never sends it; kept for completeness).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedOrBusyResponse {
    pub state_label: String,
    pub op_id: String,
}

#[cfg(test)]
mod tests;
