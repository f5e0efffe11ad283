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
//! ignored everywhere (newer clients add some, e.g. `sender_info` on
//! [`RawCanisterCall`]). Missing `Option` fields read as `None` and missing
//! lists as empty.
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
}

impl RawCanisterCall {
    pub fn sender_principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("sender", &self.sender)
    }
    pub fn canister_principal(&self) -> Result<Principal, WireError> {
        principal_from_bytes("canister_id", &self.canister_id)
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
// Canister HTTP outcalls

#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CanisterHttpMethod {
    GET,
    POST,
    HEAD,
    PUT,
    DELETE,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CanisterHttpHeader {
    pub name: String,
    pub value: String,
}

/// One pending outcall (`read/get_canister_http` replies a list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCanisterHttpRequest {
    pub subnet_id: RawSubnetId,
    pub request_id: u64,
    pub http_method: CanisterHttpMethod,
    pub url: String,
    pub headers: Vec<CanisterHttpHeader>,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    pub max_response_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterHttpReply {
    pub status: u16,
    pub headers: Vec<CanisterHttpHeader>,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterHttpReject {
    pub reject_code: u64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanisterHttpResponse {
    CanisterHttpReply(CanisterHttpReply),
    CanisterHttpReject(CanisterHttpReject),
}

/// `update/mock_canister_http` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMockCanisterHttpResponse {
    pub subnet_id: RawSubnetId,
    pub request_id: u64,
    pub response: CanisterHttpResponse,
    #[serde(default)]
    pub additional_responses: Vec<CanisterHttpResponse>,
}

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
mod tests {
    //! The JSON strings below are written from the client's types
    //! (`pocket-ic` 13.0.0 `common/rest.rs`, `lib.rs`), not from these
    //! serializers.

    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    /// `rwlgt-iiaaa-aaaaa-aaaaa-cai`: bytes 0,0,0,0,0,0,0,0,1,1.
    const CANISTER_B64: &str = "AAAAAAAAAAABAQ==";
    const CANISTER_TEXT: &str = "rwlgt-iiaaa-aaaaa-aaaaa-cai";
    /// A 29-byte subnet id (every byte 42).
    const SUBNET_TEXT: &str = "3dx3t-srkfi-vcukr-kfivc-ukrkf-ivcuk-rkfiv-cukrk-fivcu-krkfi-vcu";
    const SUBNET_B64: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKio=";

    /// Parses `json` as `T`, serializes it again and compares as JSON
    /// values (key order and whitespace aside).
    fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
        let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("parse {json}: {e}"));
        let back = serde_json::to_value(&value).expect("serialize");
        let want: Value = serde_json::from_str(json).expect("test JSON");
        assert_eq!(back, want, "round trip of {json}");
        value
    }

    #[test]
    fn submit_reply_round_trips() {
        let json = format!(r#"{{"Ok":{{"effective_principal":{{"CanisterId":"{CANISTER_B64}"}},"message_id":"AQID"}}}}"#);
        let r: Result<RawMessageId, RejectResponse> = round_trip(&json);
        let id = r.expect("Ok");
        assert_eq!(id.message_id, vec![1, 2, 3]);
        assert_eq!(id.effective_principal.principal().unwrap().unwrap().to_text(), CANISTER_TEXT);
        round_trip::<RawEffectivePrincipal>(r#""None""#);
        round_trip::<RawEffectivePrincipal>(&format!(r#"{{"SubnetId":"{SUBNET_B64}"}}"#));
    }

    #[test]
    fn canister_call_ignores_newer_fields() {
        let json = format!(
            r#"{{"sender":"BA==","canister_id":"{CANISTER_B64}","effective_principal":{{"CanisterId":"{CANISTER_B64}"}},"method":"greet","payload":"RElETAAA"}}"#
        );
        let call: RawCanisterCall = round_trip(&json);
        assert_eq!(call.sender_principal().unwrap(), Principal::anonymous());
        assert_eq!(call.canister_principal().unwrap().to_text(), CANISTER_TEXT);
        assert_eq!(call.payload, b"DIDL\0\0");
        let newer = format!(
            r#"{{"sender":"BA==","canister_id":"{CANISTER_B64}","effective_principal":"None","method":"m","payload":"","sender_info":{{"x":[1]}}}}"#
        );
        let call: RawCanisterCall = serde_json::from_str(&newer).expect("sender_info ignored");
        assert_eq!(call.effective_principal, RawEffectivePrincipal::None);
        assert!(call.payload.is_empty());
    }

    #[test]
    fn bad_base64_and_oversized_principals_are_errors() {
        assert!(serde_json::from_str::<RawCanisterId>(r#"{"canister_id":"not base64!"}"#).is_err());
        let long = b64::encode(&[1u8; MAX_PRINCIPAL_BYTES + 1]);
        let id: RawCanisterId = serde_json::from_str(&format!(r#"{{"canister_id":"{long}"}}"#)).unwrap();
        assert!(id.principal().is_err());
        // Unpadded input is accepted; output is padded.
        let id: RawCanisterId = serde_json::from_str(r#"{"canister_id":"AAAAAAAAAAABAQ"}"#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!(r#"{{"canister_id":"{CANISTER_B64}"}}"#));
    }

    #[test]
    fn canister_results_round_trip() {
        let ok: RawCanisterResult = round_trip(r#"{"Ok":"RElETAAA"}"#);
        assert_eq!(ok, RawCanisterResult::Ok(b"DIDL\0\0".to_vec()));
        let err: RawCanisterResult = round_trip(
            r#"{"Err":{"reject_code":"CanisterError","reject_message":"Error from Canister rwlgt-iiaaa-aaaaa-aaaaa-cai: Canister called `ic0.trap` with message: 'boom'","error_code":"CanisterCalledTrap","certified":true}}"#,
        );
        let RawCanisterResult::Err(r) = err else { panic!("Err") };
        assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap);
        assert_eq!(r.error_code.code(), 503);
        // ingress_status: null while unknown.
        assert_eq!(round_trip::<Option<RawCanisterResult>>("null"), None);
        round_trip::<Option<RawCanisterResult>>(r#"{"Ok":""}"#);
    }

    #[test]
    fn topology_round_trips() {
        let seed: Vec<String> = (0..32).map(|i| i.to_string()).collect();
        let json = format!(
            r#"{{"subnet_configs":{{"{SUBNET_TEXT}":{{"subnet_kind":"Application","subnet_admins":null,"cost_schedule":"Normal","subnet_seed":[{}],"instruction_config":"Production","canister_ranges":[{{"start":{{"canister_id":"//////+QAAABAQ=="}},"end":{{"canister_id":"//////+f//8BAQ=="}}}}]}}}},"default_effective_canister_id":{{"canister_id":"//////+QAAABAQ=="}}}}"#,
            seed.join(",")
        );
        let topo: Topology = round_trip(&json);
        let subnet = Principal::from_text(SUBNET_TEXT).unwrap();
        let config = &topo.subnet_configs[&subnet];
        assert_eq!(config.subnet_kind, SubnetKind::Application);
        assert_eq!(config.subnet_seed[31], 31);
        assert_eq!(config.canister_ranges[0].start.principal().unwrap().to_text(), "uqqxf-5h777-77774-qaaaa-cai");
        assert_eq!(config.canister_ranges[0].end.principal().unwrap().to_text(), "i3wno-op777-77774-7777q-cai");
    }

    #[test]
    fn create_instance_response_round_trips() {
        let seed = ["0"; 32].join(",");
        let json = format!(
            r#"{{"Created":{{"instance_id":0,"topology":{{"subnet_configs":{{"{SUBNET_TEXT}":{{"subnet_kind":"NNS","subnet_admins":[{{"principal_id":"BA=="}}],"cost_schedule":"Free","subnet_seed":[{seed}],"instruction_config":"Benchmarking","canister_ranges":[]}}}},"default_effective_canister_id":{{"canister_id":"{CANISTER_B64}"}}}},"http_gateway_info":null}}}}"#
        );
        let CreateInstanceResponse::Created { instance_id, topology, http_gateway_info } = round_trip(&json) else {
            panic!("Created")
        };
        assert_eq!(instance_id, 0);
        assert!(http_gateway_info.is_none());
        assert_eq!(topology.subnet_configs.len(), 1);
        round_trip::<CreateInstanceResponse>(r#"{"Error":{"message":"no"}}"#);
    }

    #[test]
    fn instance_config_as_the_client_sends_it() {
        // `PocketIc::new()`: one application subnet, the ICP features object
        // with every feature null, and null for every other option.
        let json = r#"{"subnet_config_set":{"nns":null,"sns":null,"ii":null,"fiduciary":null,"bitcoin":null,"system":[],"application":[{"state_config":"New","instruction_config":"Production","subnet_admins":null,"cost_schedule":"Normal"}],"cloud_engine":[],"verified_application":[]},"http_gateway_config":null,"state_dir":null,"icp_config":{"beta_features":null,"function_name_length_limits":null,"canister_execution_rate_limiting":null},"log_level":null,"bitcoind_addr":null,"dogecoind_addr":null,"icp_features":{"registry":null,"cycles_minting":null,"icp_token":null,"cycles_token":null,"nns_governance":null,"sns":null,"ii":null,"nns_ui":null,"bitcoin":null,"dogecoin":null,"canister_migration":null},"incomplete_state":null,"initial_time":{"Timestamp":{"nanos_since_epoch":1620328630000000000}},"mainnet_nns_subnet_id":null}"#;
        let config: InstanceConfig = round_trip(json);
        let subnets = config.subnet_config_set.subnets();
        assert_eq!(subnets.len(), 1);
        assert_eq!(subnets[0].0, SubnetKind::Application);
        assert_eq!(subnets[0].1, &SubnetSpec::default());
        assert!(config.icp_features_requested().is_empty());
        assert_eq!(config.initial_time, Some(InitialTime::Timestamp(RawTime { nanos_since_epoch: 1620328630000000000 })));

        // Older and newer shapes: fields missing, unknown fields present.
        let sparse = r#"{"subnet_config_set":{"nns":{"state_config":{"FromPath":"/tmp/s"},"instruction_config":"Benchmarking","subnet_admins":null},"application":[{"state_config":"New","instruction_config":"Production","subnet_admins":null}]},"icp_features":{"ii":"DefaultConfig"},"initial_time":{"AutoProgress":{"artificial_delay_ms":null}},"future_field":1}"#;
        let config: InstanceConfig = serde_json::from_str(sparse).expect("sparse config");
        let subnets = config.subnet_config_set.subnets();
        assert_eq!(subnets.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [SubnetKind::NNS, SubnetKind::Application]);
        assert_eq!(subnets[0].1.state_config, SubnetStateConfig::FromPath("/tmp/s".into()));
        assert_eq!(subnets[0].1.cost_schedule, CanisterCyclesCostSchedule::Normal);
        assert_eq!(config.icp_features_requested(), ["ii"]);
        assert_eq!(config.initial_time, Some(InitialTime::AutoProgress(AutoProgressConfig::default())));
    }

    /// Exact text round trip, for bodies whose numbers exceed what
    /// `serde_json::Value` holds exactly (u128 above 2^64 becomes a float
    /// there: serialize such bodies straight to text, never via `Value`).
    fn round_trip_text<T: Serialize + DeserializeOwned>(json: &str) -> T {
        let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("parse {json}: {e}"));
        assert_eq!(serde_json::to_string(&value).expect("serialize"), json);
        value
    }

    #[test]
    fn cycles_are_u128_numbers() {
        let big = u128::MAX;
        let add: RawAddCycles = round_trip_text(&format!(r#"{{"canister_id":"{CANISTER_B64}","amount":{big}}}"#));
        assert_eq!(add.amount, big);
        let cycles: RawCycles = round_trip_text(r#"{"cycles":340282366920938463463374607431768211455}"#);
        assert_eq!(cycles.cycles, big);
        let small: RawCycles = round_trip_text(r#"{"cycles":100000000000000}"#);
        assert_eq!(small.cycles, 100_000_000_000_000);
    }

    #[test]
    fn small_bodies_round_trip() {
        round_trip::<RawTime>(r#"{"nanos_since_epoch":1620328630000000000}"#);
        round_trip::<AutoProgressConfig>(r#"{"artificial_delay_ms":10}"#);
        round_trip::<RawTickConfigs>(r#"{"blockmakers":null}"#);
        round_trip::<RawTickConfigs>(&format!(
            r#"{{"blockmakers":[{{"subnet":{{"subnet_id":"{SUBNET_B64}"}},"blockmaker":{{"node_id":"AQ=="}},"failed_blockmakers":[{{"node_id":"Ag=="}}]}}]}}"#
        ));
        round_trip::<RawPrincipalId>(r#"{"principal_id":"BA=="}"#);
        round_trip::<Vec<RawPrincipalId>>(r#"[{"principal_id":"BA=="},{"principal_id":"AAAAAAAAAAABAQ=="}]"#);
        round_trip::<RawSubnetId>(&format!(r#"{{"subnet_id":"{SUBNET_B64}"}}"#));
        round_trip::<RawSetStableMemory>(&format!(r#"{{"canister_id":"{CANISTER_B64}","blob_id":"q80="}}"#));
        round_trip::<RawStableMemory>(r#"{"blob":"AAAA"}"#);
        round_trip::<BlobId>(r#""q80=""#);
        round_trip::<RawIngressStatusArgs>(
            r#"{"raw_message_id":{"effective_principal":"None","message_id":"AQID"},"raw_caller":{"principal_id":"BA=="}}"#,
        );
        round_trip::<RawVerifyCanisterSigArg>(r#"{"msg":"AQ==","sig":"Ag==","pubkey":"Aw==","root_pubkey":"BA=="}"#);
        round_trip::<ApiError>(r#"{"message":"Instance not found"}"#);
        round_trip::<StartedOrBusyResponse>(r#"{"state_label":"a","op_id":"b"}"#);
        // `read/pub_key` replies a plain byte array, not base64.
        assert_eq!(serde_json::to_string(&vec![1u8, 2]).unwrap(), "[1,2]");
    }

    #[test]
    fn http_outcall_bodies_round_trip() {
        round_trip::<Vec<RawCanisterHttpRequest>>(&format!(
            r#"[{{"subnet_id":{{"subnet_id":"{SUBNET_B64}"}},"request_id":0,"http_method":"GET","url":"https://example.com/","headers":[{{"name":"Accept","value":"*/*"}}],"body":"","max_response_bytes":null}}]"#
        ));
        round_trip::<RawMockCanisterHttpResponse>(&format!(
            r#"{{"subnet_id":{{"subnet_id":"{SUBNET_B64}"}},"request_id":0,"response":{{"CanisterHttpReply":{{"status":200,"headers":[],"body":"aGk="}}}},"additional_responses":[{{"CanisterHttpReject":{{"reject_code":2,"message":"down"}}}}]}}"#
        ));
    }

    #[test]
    fn snapshot_bodies_round_trip() {
        round_trip::<RawCanisterSnapshotDownload>(&format!(
            r#"{{"sender":{{"principal_id":"BA=="}},"canister_id":{{"canister_id":"{CANISTER_B64}"}},"snapshot_id":"AQ==","snapshot_dir":"/tmp/snap"}}"#
        ));
        round_trip::<RawCanisterSnapshotUpload>(&format!(
            r#"{{"sender":{{"principal_id":"BA=="}},"canister_id":{{"canister_id":"{CANISTER_B64}"}},"replace_snapshot":{{"snapshot_id":"AQ=="}},"snapshot_dir":"/tmp/snap"}}"#
        ));
    }

    /// The v13 client's `ErrorCode` variant names, copied by hand from
    /// `pocket-ic` 13.0.0 `lib.rs` (independent of the enum above).
    const V13_ERROR_CODE_NAMES: [&str; 60] = [
        "SubnetOversubscribed",
        "MaxNumberOfCanistersReached",
        "CanisterQueueFull",
        "IngressMessageTimeout",
        "CanisterQueueNotEmpty",
        "IngressHistoryFull",
        "CanisterIdAlreadyExists",
        "StopCanisterRequestTimeout",
        "CanisterOutOfCycles",
        "CertifiedStateUnavailable",
        "CanisterInstallCodeRateLimited",
        "CanisterHeapDeltaRateLimited",
        "CanisterNotFound",
        "CanisterSnapshotNotFound",
        "InsufficientMemoryAllocation",
        "InsufficientCyclesForCreateCanister",
        "SubnetNotFound",
        "CanisterNotHostedBySubnet",
        "CanisterRejectedMessage",
        "UnknownManagementMessage",
        "InvalidManagementPayload",
        "CanisterSnapshotImmutable",
        "InvalidSubnetAdmin",
        "CanisterTrapped",
        "CanisterCalledTrap",
        "CanisterContractViolation",
        "CanisterInvalidWasm",
        "CanisterDidNotReply",
        "CanisterOutOfMemory",
        "CanisterStopped",
        "CanisterStopping",
        "CanisterNotStopped",
        "CanisterStoppingCancelled",
        "CanisterInvalidController",
        "CanisterFunctionNotFound",
        "CanisterNonEmpty",
        "QueryCallGraphLoopDetected",
        "InsufficientCyclesInCall",
        "CanisterWasmEngineError",
        "CanisterInstructionLimitExceeded",
        "CanisterMemoryAccessLimitExceeded",
        "QueryCallGraphTooDeep",
        "QueryCallGraphTotalInstructionLimitExceeded",
        "CompositeQueryCalledInReplicatedMode",
        "QueryTimeLimitExceeded",
        "QueryCallGraphInternal",
        "InsufficientCyclesInComputeAllocation",
        "InsufficientCyclesInMemoryAllocation",
        "InsufficientCyclesInMemoryGrow",
        "ReservedCyclesLimitExceededInMemoryAllocation",
        "ReservedCyclesLimitExceededInMemoryGrow",
        "InsufficientCyclesInMessageMemoryGrow",
        "CanisterMethodNotFound",
        "CanisterWasmModuleNotFound",
        "CanisterAlreadyInstalled",
        "CanisterWasmMemoryLimitExceeded",
        "ReservedCyclesLimitIsTooLow",
        "CanisterInvalidControllerOrSubnetAdmin",
        "DeadlineExpired",
        "ResponseDropped",
    ];

    /// Lists every variant of ww's `replica::ErrorCode` once; the `match`
    /// stops compiling when a variant is added, so it cannot be missed here.
    macro_rules! ours {
        ($($v:ident),* $(,)?) => {
            const OURS: &[replica::ErrorCode] = &[$(replica::ErrorCode::$v),*];
            #[allow(dead_code)]
            fn listed(code: replica::ErrorCode) {
                match code {
                    $(replica::ErrorCode::$v)|* => {}
                }
            }
        };
    }

    ours![
        SubnetOversubscribed,
        MaxNumberOfCanistersReached,
        CanisterQueueFull,
        CanisterIdAlreadyExists,
        StopCanisterRequestTimeout,
        CanisterOutOfCycles,
        CanisterNotFound,
        CanisterTrapped,
        CanisterInvalidWasm,
        CanisterCalledTrap,
        CanisterContractViolation,
        CanisterDidNotReply,
        CanisterOutOfMemory,
        CanisterStopped,
        CanisterStopping,
        CanisterNotStopped,
        CanisterStoppingCancelled,
        CanisterInvalidController,
        CanisterNotHostedBySubnet,
        CanisterRejectedMessage,
        InvalidManagementPayload,
        InsufficientCyclesInCall,
        CanisterInstructionLimitExceeded,
        CanisterMethodNotFound,
        CanisterWasmModuleNotFound,
        CanisterAlreadyInstalled,
        QueryCallGraphTooDeep,
        QueryCallGraphTotalInstructionLimitExceeded,
        CompositeQueryCalledInReplicatedMode,
        CanisterWasmMemoryLimitExceeded,
        DeadlineExpired,
    ];

    #[test]
    fn every_ww_error_code_is_a_v13_name() {
        for &ours in OURS {
            let name = format!("{ours:?}");
            assert!(V13_ERROR_CODE_NAMES.contains(&name.as_str()), "{name} is not in the v13 client's ErrorCode");
            let wire = ErrorCode::from(ours);
            assert_eq!(wire.name(), name);
            assert_eq!(wire.code(), ours as u32, "{name}: the IC number differs");
            assert_eq!(serde_json::to_string(&wire).unwrap(), format!("\"{name}\""));
        }
    }

    #[test]
    fn wire_error_codes_are_the_v13_list() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, V13_ERROR_CODE_NAMES);
        for &code in ErrorCode::ALL {
            let json = format!("\"{}\"", code.name());
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
        }
        for (name, n) in [("SysFatal", 1), ("SysTransient", 2), ("DestinationInvalid", 3), ("CanisterReject", 4), ("CanisterError", 5), ("SysUnknown", 6)] {
            let code: RejectCode = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(code as u32, n);
            let ours = replica::RejectCode::from_u32(n).unwrap();
            assert_eq!(RejectCode::from(ours), code);
        }
    }

    #[test]
    fn system_rejects_keep_codes_and_lose_the_prefix() {
        let reject = replica::Reject::system(replica::ErrorCode::CanisterMethodNotFound, "Canister has no update method 'nope'");
        assert!(reject.message.starts_with("IC0536: "));
        let r = reject_to_response(&reject, true);
        let json = serde_json::to_value(&r).unwrap();
        let want: Value = serde_json::from_str(
            r#"{"reject_code":"CanisterError","reject_message":"Canister has no update method 'nope'","error_code":"CanisterMethodNotFound","certified":true}"#,
        )
        .unwrap();
        assert_eq!(json, want);
        let r = reject_response(replica::RejectCode::DestinationInvalid, Some(replica::ErrorCode::CanisterNotFound), "no prefix here", false);
        assert_eq!(r.reject_message, "no prefix here");
        assert_eq!(r.reject_code, RejectCode::DestinationInvalid);
        assert!(!r.certified);
        assert_eq!(strip_error_code_prefix("IC05: x"), "IC05: x");
        assert_eq!(strip_error_code_prefix("IC0503:x"), "IC0503:x");
        assert_eq!(strip_error_code_prefix("IC0503: "), "");
    }

    #[test]
    fn canister_rejects_are_canister_rejected_message() {
        let r = reject_response(replica::RejectCode::CanisterReject, None, "IC0503: my own words", true);
        let json = serde_json::to_value(&r).unwrap();
        let want: Value = serde_json::from_str(
            r#"{"reject_code":"CanisterReject","reject_message":"IC0503: my own words","error_code":"CanisterRejectedMessage","certified":true}"#,
        )
        .unwrap();
        assert_eq!(json, want);
        let result = RawCanisterResult::from_replica(Err(r_to_reject("nope")), false);
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"Err":{"reject_code":"CanisterReject","reject_message":"nope","error_code":"CanisterRejectedMessage","certified":false}}"#
        );
    }

    fn r_to_reject(message: &str) -> replica::Reject {
        replica::Reject { code: replica::RejectCode::CanisterReject, error_code: None, message: message.to_owned() }
    }
}
