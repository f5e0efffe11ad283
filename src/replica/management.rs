//! The management canister (`aaaaa-aa`): canister lifecycle with Candid
//! arguments and results as on the IC.
//!
//! Calls reach it from outside (ingress) and from canisters. It runs on an
//! executor thread, never under the replica's state lock; operations that
//! must wait for the target canister (install, stop) complete through a
//! callback.
//!
//! Chunked install (`upload_chunk`, `stored_chunks`, `clear_chunk_store`,
//! `install_chunked_code`) keeps chunks in the target's store (see
//! [`super::chunks`]); `install_chunked_code` assembles and verifies the
//! module, then takes the same path as `install_code` ([`install_module`]).
//! Large blobs (modules, chunks) are decoded by reference into the call's
//! argument, so a chunk is stored without being copied.

use bytes::Bytes;
use candid::{CandidType, Deserialize, Principal};

use super::chunks::{self, ChunkHash};
pub use super::history::{CandidChange, CandidChangeDetails, CandidChangeOrigin, CandidInstallMode, CanisterInfoArgs, CanisterInfoResult};
use super::{CallResult, ChangeOrigin, ErrorCode, InstallMode, InstallRequest, InstallSource, Reject, Replica, ReplyTo, Status};

pub use super::settings::{CanisterSettings, DefiniteCanisterSettings, EnvironmentVariable, LogVisibility};
pub use super::snapshots::{DeleteCanisterSnapshotArgs, LoadCanisterSnapshotArgs, TakeCanisterSnapshotArgs};

#[derive(CandidType, Deserialize, Default, Debug)]
pub struct CreateCanisterArgs {
    pub settings: Option<CanisterSettings>,
    pub sender_canister_version: Option<u64>,
}

/// `provisional_create_canister_with_cycles`'s argument.
#[derive(CandidType, Deserialize, Default, Debug)]
pub struct ProvisionalCreateCanisterArgs {
    /// The new canister's balance (default: the replica's initial cycles).
    pub amount: Option<candid::Nat>,
    pub settings: Option<CanisterSettings>,
    /// A canister id to create (must be free).
    pub specified_id: Option<Principal>,
    pub sender_canister_version: Option<u64>,
}

/// `provisional_top_up_canister`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct ProvisionalTopUpArgs {
    pub canister_id: Principal,
    pub amount: candid::Nat,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct CanisterIdRecord {
    pub canister_id: Principal,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct UpgradeFlags {
    pub skip_pre_upgrade: Option<bool>,
    pub wasm_memory_persistence: Option<WasmMemoryPersistence>,
}

/// Whether an upgrade keeps the Wasm heap (`keep`, for Motoko's enhanced
/// orthogonal persistence) or replaces it (the default).
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmMemoryPersistence {
    #[serde(rename = "keep")]
    Keep,
    #[serde(rename = "replace")]
    Replace,
}

#[derive(CandidType, Deserialize, Debug)]
pub enum CanisterInstallMode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade(Option<UpgradeFlags>),
}

#[derive(CandidType, Deserialize, Debug)]
pub struct InstallCodeArgs {
    pub mode: CanisterInstallMode,
    pub canister_id: Principal,
    #[serde(with = "serde_bytes")]
    pub wasm_module: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub arg: Vec<u8>,
    pub sender_canister_version: Option<u64>,
}

/// `install_code`'s argument, decoded by reference into the call's argument.
#[derive(CandidType, Deserialize)]
struct InstallCodeArgsRef<'a> {
    mode: CanisterInstallMode,
    canister_id: Principal,
    #[serde(with = "serde_bytes", borrow)]
    wasm_module: &'a [u8],
    #[serde(with = "serde_bytes", borrow)]
    arg: &'a [u8],
    sender_canister_version: Option<u64>,
}

/// A chunk's hash (`chunk_hash` in the IC's `ic.did`).
#[derive(CandidType, serde::Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChunkHashRecord {
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
}

/// `upload_chunk`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct UploadChunkArgs {
    pub canister_id: Principal,
    #[serde(with = "serde_bytes")]
    pub chunk: Vec<u8>,
}

/// [`UploadChunkArgs`] by reference: decoded into the call's argument, and
/// encoded from a borrowed chunk.
#[derive(CandidType, Deserialize, serde::Serialize)]
struct UploadChunkArgsRef<'a> {
    canister_id: Principal,
    #[serde(with = "serde_bytes", borrow)]
    chunk: &'a [u8],
}

/// Candid for `upload_chunk`'s argument, the same bytes `Encode!` gives for
/// [`UploadChunkArgs`], built in one allocation of the exact size with one
/// copy of `chunk` (Candid's encoder copies it twice into growing buffers,
/// which costs about as much as hashing the chunk). For clients staging
/// modules.
pub fn encode_upload_chunk(canister_id: Principal, chunk: &[u8]) -> Vec<u8> {
    let encode = |chunk: &[u8]| candid::encode_one(UploadChunkArgsRef { canister_id, chunk }).unwrap_or_default();
    // The encoding of an empty chunk has the chunk's length, 0, either last
    // or just before the principal (record fields go in the order of their
    // name hashes); the chunk goes in its place.
    let empty = encode(&[]);
    let principal_value = 2 + canister_id.as_slice().len();
    let at = if candid::idl_hash("chunk") > candid::idl_hash("canister_id") {
        empty.len().checked_sub(1)
    } else {
        empty.len().checked_sub(1 + principal_value)
    };
    let Some(at) = at.filter(|&i| empty.get(i) == Some(&0) && canister_id.as_slice().len() < 128) else {
        return encode(chunk);
    };
    let mut out = Vec::with_capacity(empty.len() + 9 + chunk.len());
    out.extend_from_slice(&empty[..at]);
    let mut n = chunk.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(chunk);
    out.extend_from_slice(&empty[at + 1..]);
    out
}

/// `install_chunked_code`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct InstallChunkedCodeArgs {
    pub mode: CanisterInstallMode,
    pub target_canister: Principal,
    /// Where the chunks are; the target when absent.
    pub store_canister: Option<Principal>,
    pub chunk_hashes_list: Vec<ChunkHashRecord>,
    #[serde(with = "serde_bytes")]
    pub wasm_module_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub arg: Vec<u8>,
    pub sender_canister_version: Option<u64>,
}

/// `uninstall_code`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct UninstallCodeArgs {
    pub canister_id: Principal,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct UpdateSettingsArgs {
    pub canister_id: Principal,
    pub settings: CanisterSettings,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanisterStatusType {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "stopping")]
    Stopping,
    #[serde(rename = "stopped")]
    Stopped,
}

/// `canister_status`'s memory breakdown.
#[derive(CandidType, Deserialize, Debug, Default)]
pub struct MemoryMetrics {
    pub wasm_memory_size: candid::Nat,
    pub stable_memory_size: candid::Nat,
    pub global_memory_size: candid::Nat,
    pub wasm_binary_size: candid::Nat,
    pub custom_sections_size: candid::Nat,
    pub canister_history_size: candid::Nat,
    pub wasm_chunk_store_size: candid::Nat,
    pub snapshots_size: candid::Nat,
    pub log_memory_store_size: candid::Nat,
}

/// `canister_status`'s query statistics (ww does not count them: zeros).
#[derive(CandidType, Deserialize, Debug, Default)]
pub struct QueryStats {
    pub num_calls_total: candid::Nat,
    pub num_instructions_total: candid::Nat,
    pub request_payload_bytes_total: candid::Nat,
    pub response_payload_bytes_total: candid::Nat,
}

/// `canister_status_result`, every field the IC's current `ic.did` has (a
/// client decoding with the IC's types finds all it requires).
#[derive(CandidType, Deserialize, Debug)]
pub struct CanisterStatusResult {
    pub status: CanisterStatusType,
    pub ready_for_migration: bool,
    pub version: u64,
    pub settings: DefiniteCanisterSettings,
    pub module_hash: Option<serde_bytes::ByteBuf>,
    pub memory_size: candid::Nat,
    pub memory_metrics: MemoryMetrics,
    pub cycles: candid::Nat,
    pub reserved_cycles: candid::Nat,
    pub idle_cycles_burned_per_day: candid::Nat,
    pub query_stats: QueryStats,
}

/// The management canister's Candid interface (the subset served here).
pub const CANDID: &str = include_str!("ic.did");

/// Candid for `()`.
const EMPTY_ARGS: &[u8] = b"DIDL\x00\x00";

pub(super) fn decode<'a, T: Deserialize<'a> + CandidType>(method: &str, arg: &'a [u8]) -> Result<T, Reject> {
    candid::decode_one(arg).map_err(|e| {
        Reject::system(
            ErrorCode::InvalidManagementPayload,
            format!("Error decoding candid for the management canister's {method}: {}", one_line(&e.to_string())),
        )
    })
}

/// Like [`decode`], but `()` (or no bytes at all) is the default value, as
/// dfx sends the create methods' argument when no settings are given.
fn decode_or_default<'a, T: Deserialize<'a> + CandidType + Default>(method: &str, arg: &'a [u8]) -> Result<T, Reject> {
    if arg.is_empty() || arg == EMPTY_ARGS {
        return Ok(T::default());
    }
    decode(method, arg)
}

pub(super) fn encode<T: CandidType>(v: &T) -> CallResult {
    candid::encode_one(v).map_err(|e| Reject::system(ErrorCode::InvalidManagementPayload, format!("encoding the reply: {e}")))
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// Candid for an empty reply, `()`.
fn empty_reply() -> Vec<u8> {
    EMPTY_ARGS.to_vec()
}

pub(super) fn send(reply: ReplyTo, replica: &Replica, result: CallResult) {
    match reply {
        ReplyTo::Ingress(tx) => {
            let _ = tx.send(result);
        }
        ReplyTo::Callback(cb) => super::scheduler::deliver_response(&replica.inner, cb, result),
    }
}

/// The outcome of a queued operation as the management canister's empty
/// reply (or the reject) to `reply`.
pub(super) fn reply_done(reply: ReplyTo, replica: &Replica) -> super::state::Done {
    let replica = replica.clone();
    match reply {
        ReplyTo::Callback(callback) => super::state::Done::answering(
            callback,
            Box::new(move |r| send(ReplyTo::Callback(callback), &replica, r.map(|()| empty_reply()))),
        ),
        reply => super::state::Done::new(Box::new(move |r| send(reply, &replica, r.map(|()| empty_reply())))),
    }
}

/// Who calls the management canister.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller {
    pub id: Principal,
    /// A calling canister's version in the execution that made the call;
    /// `None` for ingress.
    pub version: Option<u64>,
}

impl Caller {
    /// The origin a change made by this call is recorded with (a canister
    /// at the version it claimed).
    pub(super) fn origin(&self, sender_canister_version: Option<u64>) -> ChangeOrigin {
        match self.version {
            Some(_) => ChangeOrigin::Canister { id: self.id, version: sender_canister_version },
            None => ChangeOrigin::User(self.id),
        }
    }

    /// A `sender_canister_version`, when given by a canister, must be the
    /// version that canister had when it made the call.
    pub(super) fn check_sender_version(&self, method: &str, claimed: Option<u64>) -> Result<(), Reject> {
        match (claimed, self.version) {
            (Some(claimed), Some(actual)) if claimed != actual => Err(Reject::system(
                ErrorCode::CanisterContractViolation,
                format!(
                    "{method}: sender_canister_version {claimed} is not the canister version of the caller {} ({actual})",
                    self.id
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Management methods only canisters may call (ingress is refused).
pub const CANISTER_ONLY: &[&str] = &[
    "create_canister",
    "raw_rand",
    "deposit_cycles",
    "canister_info",
    "ecdsa_public_key",
    "sign_with_ecdsa",
    "schnorr_public_key",
    "sign_with_schnorr",
    "vetkd_public_key",
    "vetkd_derive_key",
    "http_request",
    "flexible_http_request",
    "subnet_info",
    "node_metrics_history",
    "canister_metadata",
];

/// Whether a call of `method` with the attached cycles keeps them when it
/// succeeds (the rest refund everything attached).
pub(crate) fn accepts_cycles(method: &str) -> bool {
    matches!(method, "deposit_cycles" | "create_canister")
}

/// The controllers a new canister gets: the settings' list, else the caller.
fn controllers_or(caller: Principal, settings: Option<&CanisterSettings>) -> Result<Vec<Principal>, Reject> {
    let controllers = settings.and_then(|s| s.controllers.clone()).unwrap_or_else(|| vec![caller]);
    super::settings::check_controllers(&controllers)?;
    Ok(super::settings::controller_set(controllers))
}

/// A cycles amount; ww keeps balances in 64 bits.
fn nat_to_u128(method: &str, field: &str, n: &candid::Nat) -> Result<u128, Reject> {
    u128::try_from(&n.0).map_err(|_| {
        Reject::system(ErrorCode::InvalidManagementPayload, format!("{method}: {field} {n} does not fit in 128 bits (the IC's cycle balances)"))
    })
}

/// Management methods whose argument names a `canister_id` that only its
/// controllers may act on (checked for ingress before execution).
/// `canister_status`, `list_canister_snapshots` and `read_canister_snapshot_*` also let in whom the
/// canister's `status_visibility` / `snapshot_visibility` allows.
const CONTROLLERS_ONLY: &[&str] = &[
    "take_canister_snapshot",
    "load_canister_snapshot",
    "list_canister_snapshots",
    "delete_canister_snapshot",
    "read_canister_snapshot_metadata",
    "read_canister_snapshot_data",
    "upload_canister_snapshot_metadata",
    "upload_canister_snapshot_data",
    "canister_status",
    "start_canister",
    "stop_canister",
    "delete_canister",
    "update_settings",
    "install_code",
    "install_chunked_code",
    "uninstall_code",
    "upload_chunk",
    "stored_chunks",
    "clear_chunk_store",
];

/// Handles one management canister call; the response goes to `reply`.
/// Takes the argument by value: `upload_chunk` keeps its buffer.
pub(crate) fn dispatch(replica: &Replica, from: Caller, method: &str, arg: Vec<u8>, cycles: u64, reply: ReplyTo) {
    let caller = from.id;
    if from.version.is_none() && CANISTER_ONLY.contains(&method) {
        let reject = Reject::system(ErrorCode::CanisterRejectedMessage, format!("Only canisters can call ic00 method {method}"));
        return send(reply, replica, Err(reject));
    }
    // The ingress filter: only a canister's controllers may send these to
    // the management canister (refused before anything executes).
    if from.version.is_none()
        && CONTROLLERS_ONLY.contains(&method)
        && let Ok(CanisterIdRecord { canister_id }) = candid::decode_one::<CanisterIdRecord>(&arg)
        && replica.exists(&canister_id)
        && !replica.is_controller(&canister_id, &caller)
        && !replica.visible_to(method, &canister_id, &caller)
    {
        let reject = Reject::system(ErrorCode::CanisterInvalidController, format!("Only controllers of canister {canister_id} can call ic00 method {method}"));
        return send(reply, replica, Err(reject));
    }
    if method == "upload_chunk" {
        let result = upload_chunk(replica, caller, arg);
        return send(reply, replica, result);
    }
    if method == "http_request" {
        if let Err((reject, reply)) = super::http_outcall::start(replica, caller, &arg, cycles, reply) {
            send(reply, replica, Err(reject));
        }
        return;
    }
    if method == "flexible_http_request" {
        if let Err((reject, reply)) = super::flexible_outcall::start(replica, caller, &arg, cycles, reply) {
            send(reply, replica, Err(reject));
        }
        return;
    }
    if super::subnet_methods::METHODS.contains(&method) {
        let result = super::subnet_methods::handle(replica, caller, method, &arg);
        return send(reply, replica, result);
    }
    if super::threshold::METHODS.contains(&method) {
        let result = super::threshold::handle(replica, caller, method, &arg, cycles).map(|answer| {
            // The signature's fee is kept; the rest of what was attached
            // goes back with the reply.
            if let ReplyTo::Callback(cb) = &reply {
                super::scheduler::keep_attached_cycles(&replica.inner, *cb, answer.fee);
            }
            answer.reply
        });
        return send(reply, replica, result);
    }
    if super::snapshots::is_method(method) {
        return super::snapshots::dispatch(replica, from, method, &arg, reply);
    }
    let arg = &arg[..];
    let mut reply_slot = Some(reply);
    let mut take_reply = || reply_slot.take();
    let result: Result<Option<CallResult>, Reject> = (|| {
        Ok(Some(match method {
            "create_canister" => {
                let args: CreateCanisterArgs = decode_or_default(method, arg)?;
                from.check_sender_version(method, args.sender_canister_version)?;
                let controllers = controllers_or(caller, args.settings.as_ref())?;
                // The cycles attached to the call, less the creation fee,
                // are the new balance.
                let balance = replica.creation_balance(&caller, u128::from(cycles))?;
                let id = replica.create_canister_with(from.origin(args.sender_canister_version), controllers, balance, None, args.settings.as_ref())?;
                encode(&CanisterIdRecord { canister_id: id })
            }
            "provisional_create_canister_with_cycles" => {
                let args: ProvisionalCreateCanisterArgs = decode_or_default(method, arg)?;
                from.check_sender_version(method, args.sender_canister_version)?;
                let controllers = controllers_or(caller, args.settings.as_ref())?;
                let balance = match &args.amount {
                    Some(n) => nat_to_u128(method, "amount", n)?,
                    None => u128::from(replica.initial_cycles()),
                };
                let origin = from.origin(args.sender_canister_version);
                let id = replica.create_canister_with(origin, controllers, balance, args.specified_id, args.settings.as_ref())?;
                encode(&CanisterIdRecord { canister_id: id })
            }
            "provisional_top_up_canister" => {
                let args: ProvisionalTopUpArgs = decode(method, arg)?;
                let amount = nat_to_u128(method, "amount", &args.amount)?;
                replica.deposit_cycles(args.canister_id, amount)?;
                Ok(empty_reply())
            }
            "install_code" => {
                let args: InstallCodeArgsRef = decode(method, arg)?;
                from.check_sender_version(method, args.sender_canister_version)?;
                let install = install_request(from.origin(args.sender_canister_version), args.canister_id, &args.mode, InstallSource::InstallCode)?;
                // Every check that can fail with `?` comes before this.
                let Some(reply) = take_reply() else { return Ok(None) };
                let hash = chunks::sha256(args.wasm_module);
                install_module(replica, install, args.arg.to_vec(), args.wasm_module, hash, reply);
                return Ok(None);
            }
            "install_chunked_code" => {
                let args: InstallChunkedCodeArgs = decode(method, arg)?;
                from.check_sender_version(method, args.sender_canister_version)?;
                let store = args.store_canister.unwrap_or(args.target_canister);
                let origin = from.origin(args.sender_canister_version);
                let install = install_request(origin, args.target_canister, &args.mode, InstallSource::InstallChunkedCode { store })?;
                let module = chunked_module(replica, caller, &args)?;
                let Some(reply) = take_reply() else { return Ok(None) };
                install_module(replica, install, args.arg, &module.bytes, module.hash, reply);
                return Ok(None);
            }
            "stored_chunks" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let hashes = replica.stored_chunks(caller, args.canister_id)?;
                encode(&hashes.into_iter().map(|h| ChunkHashRecord { hash: h.to_vec() }).collect::<Vec<_>>())
            }
            "clear_chunk_store" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.clear_chunk_store(caller, args.canister_id)?;
                Ok(empty_reply())
            }
            "update_settings" => {
                let args: UpdateSettingsArgs = decode(method, arg)?;
                from.check_sender_version(method, args.sender_canister_version)?;
                replica.update_settings(from.origin(args.sender_canister_version), args.canister_id, &args.settings)?;
                Ok(empty_reply())
            }
            "uninstall_code" => {
                let args: UninstallCodeArgs = decode(method, arg)?;
                from.check_sender_version(method, args.sender_canister_version)?;
                let Some(reply) = take_reply() else { return Ok(None) };
                let origin = from.origin(args.sender_canister_version);
                replica.uninstall_with(origin, args.canister_id, reply_done(reply, replica));
                return Ok(None);
            }
            "canister_info" => {
                let args: CanisterInfoArgs = decode(method, arg)?;
                let Some(info) = replica.canister_info(&args.canister_id, args.num_requested_changes.unwrap_or(0)) else {
                    return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {} not found", args.canister_id)));
                };
                encode(&info)
            }
            "fetch_canister_logs" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                encode(&replica.fetch_logs(&args.canister_id, &caller)?)
            }
            "canister_status" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let id = args.canister_id;
                let Some(s) = replica.status(&id) else {
                    return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {id} not found")));
                };
                if caller != id && !s.settings.status_visibility.allows(&caller, &s.controllers) {
                    return Err(controller_check(replica, &id, &caller));
                }
                encode(&CanisterStatusResult {
                    status: match s.status {
                        Status::Running => CanisterStatusType::Running,
                        Status::Stopping => CanisterStatusType::Stopping,
                        Status::Stopped => CanisterStatusType::Stopped,
                    },
                    ready_for_migration: false,
                    version: s.version,
                    settings: s.settings.definite(s.controllers),
                    module_hash: s.module_hash.map(|h| serde_bytes::ByteBuf::from(h.to_vec())),
                    memory_size: s.memory_size.into(),
                    memory_metrics: MemoryMetrics {
                        wasm_memory_size: s.memory.heap.into(),
                        stable_memory_size: s.memory.stable.into(),
                        wasm_chunk_store_size: s.memory.chunk_store.into(),
                        snapshots_size: s.memory.snapshots.into(),
                        wasm_binary_size: s.memory.module.into(),
                        ..MemoryMetrics::default()
                    },
                    cycles: s.cycles.into(),
                    reserved_cycles: 0u64.into(),
                    idle_cycles_burned_per_day: s.idle_cycles_burned_per_day.into(),
                    query_stats: QueryStats::default(),
                })
            }
            "start_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.start(caller, args.canister_id)?;
                Ok(empty_reply())
            }
            "stop_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let Some(reply) = take_reply() else { return Ok(None) };
                replica.stop_with(caller, args.canister_id, reply_done(reply, replica));
                return Ok(None);
            }
            "delete_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.delete(caller, args.canister_id)?;
                Ok(empty_reply())
            }
            "deposit_cycles" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.deposit_cycles(args.canister_id, u128::from(cycles))?;
                Ok(empty_reply())
            }
            "raw_rand" => {
                let bytes = replica.raw_rand_for(&caller);
                encode(&serde_bytes::ByteBuf::from(bytes.to_vec()))
            }
            other => Err(Reject::system(ErrorCode::CanisterMethodNotFound, match unsupported(other) {
                Some(why) => format!("ww's management canister does not offer {other}: {why}"),
                None => format!("Management canister has no method '{other}'"),
            })),
        }))
    })();
    let Some(reply) = take_reply() else { return };
    match result {
        Ok(Some(r)) => send(reply, replica, r),
        Ok(None) => {}
        Err(reject) => send(reply, replica, Err(reject)),
    }
}

/// Why ww refuses a method the IC's interface lists.
fn unsupported(method: &str) -> Option<&'static str> {
    Some(match method {
        "canister_metrics" | "subnet_metrics" => "ww does not keep per-canister or per-subnet consumption metrics yet",
        "list_canisters" => "only a subnet's admins may call it, and ww's subnets have none",
        "rename_canister" => "it is the NNS migration canister's, and ww has no NNS",
        _ => return None,
    })
}

fn controller_check(_replica: &Replica, canister: &Principal, caller: &Principal) -> Reject {
    super::not_controller(canister, caller)
}

/// The install request for `mode` (and its upgrade flags).
fn install_request(origin: ChangeOrigin, canister: Principal, mode: &CanisterInstallMode, source: InstallSource) -> Result<InstallRequest, Reject> {
    let (mode, skip_pre_upgrade, keep_main_memory) = match mode {
        CanisterInstallMode::Install => (InstallMode::Install, false, None),
        CanisterInstallMode::Reinstall => (InstallMode::Reinstall, false, None),
        CanisterInstallMode::Upgrade(flags) => {
            // Whether the heap may be kept is checked against the modules
            // when the upgrade runs (lifecycle).
            let keep = flags.as_ref().and_then(|f| f.wasm_memory_persistence).map(|p| p == WasmMemoryPersistence::Keep);
            (InstallMode::Upgrade, flags.as_ref().and_then(|f| f.skip_pre_upgrade).unwrap_or(false), keep)
        }
    };
    Ok(InstallRequest { origin, canister, mode, source, skip_pre_upgrade, keep_main_memory })
}

/// The one install path of `install_code` and `install_chunked_code`:
/// checks the caller controls the target (before any compiling), prepares
/// `module` (whose SHA-256 is `hash`) and queues the install; the response
/// goes to `reply` in every case.
fn install_module(replica: &Replica, install: InstallRequest, arg: Vec<u8>, module: &[u8], hash: [u8; 32], reply: ReplyTo) {
    let (caller, canister) = (install.origin.principal(), install.canister);
    let prepared = replica
        .check_controller(&canister, &caller)
        .and_then(|()| super::install::prepare_module_hashed(replica, &canister, module, hash));
    match prepared {
        Err(reject) => send(reply, replica, Err(reject)),
        Ok(m) => replica.install_with(install, m, arg, reply_done(reply, replica)),
    }
}

/// A module assembled from a chunk store, its hash verified.
struct ChunkedModule {
    bytes: Bytes,
    hash: ChunkHash,
}

/// `install_chunked_code` up to the module: the hashes are well formed and
/// listed, the caller controls the target and controls (or is) the store
/// canister, every chunk is stored, and the concatenation hashes to
/// `wasm_module_hash`.
fn chunked_module(replica: &Replica, caller: Principal, args: &InstallChunkedCodeArgs) -> Result<ChunkedModule, Reject> {
    let expected = chunks::module_hash(&args.wasm_module_hash)?;
    if args.chunk_hashes_list.is_empty() {
        return Err(chunks::ChunkStoreError::EmptyHashList.into());
    }
    let hashes = args
        .chunk_hashes_list
        .iter()
        .map(|h| chunks::chunk_hash(&h.hash))
        .collect::<Result<Vec<_>, _>>()?;
    replica.check_controller(&args.target_canister, &caller)?;
    let store = args.store_canister.unwrap_or(args.target_canister);
    let parts = replica.chunks_for_install(caller, store, &hashes)?;
    let bytes = chunks::assemble(&hashes, &parts, &expected)?;
    tracing::debug!(
        target_canister = %args.target_canister,
        store_canister = %store,
        chunks = hashes.len(),
        bytes = bytes.len(),
        "installing a module from chunks"
    );
    Ok(ChunkedModule { bytes, hash: expected })
}

/// `upload_chunk`. The chunk keeps the argument's buffer when it is most
/// of it (a 1 MiB chunk is not copied); otherwise it is copied out, so a
/// small chunk never pins a large argument.
fn upload_chunk(replica: &Replica, caller: Principal, mut arg: Vec<u8>) -> CallResult {
    /// Argument bytes besides the chunk that may stay allocated with it.
    const SLACK: usize = 4096;
    if arg.capacity() - arg.len() > SLACK {
        arg.shrink_to_fit();
    }
    let arg = Bytes::from(arg);
    let args: UploadChunkArgsRef = decode("upload_chunk", &arg)?;
    chunks::check_chunk_size(args.chunk.len())?;
    let chunk = if arg.len() - args.chunk.len() <= SLACK {
        arg.slice_ref(args.chunk)
    } else {
        Bytes::copy_from_slice(args.chunk)
    };
    let hash = replica.upload_chunk(caller, args.canister_id, chunk)?;
    encode(&ChunkHashRecord { hash: hash.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The method's argument and result types in `ic.did`.
    fn signature(method: &str) -> (candid::types::TypeEnv, candid::types::Function) {
        let (env, actor) = candid_parser::utils::CandidSource::Text(CANDID).load().expect("ic.did parses");
        let actor = actor.expect("ic.did has a service");
        let f = env.get_method(&actor, method).unwrap_or_else(|_| panic!("ic.did has no {method}")).clone();
        (env, f)
    }

    /// `bytes` decodes as the types `ic.did` gives.
    fn conforms(bytes: &[u8], env: &candid::types::TypeEnv, types: &[candid::types::Type]) {
        candid::IDLArgs::from_bytes_with_types(bytes, env, types).unwrap_or_else(|e| panic!("does not match ic.did: {e}"));
    }

    #[test]
    fn chunk_methods_match_ic_did() {
        let id = Principal::management_canister();
        let hash = ChunkHashRecord { hash: vec![1; 32] };

        let (env, f) = signature("upload_chunk");
        conforms(&candid::encode_one(UploadChunkArgs { canister_id: id, chunk: vec![1, 2] }).unwrap(), &env, &f.args);
        conforms(&candid::encode_one(&hash).unwrap(), &env, &f.rets);

        let (env, f) = signature("stored_chunks");
        conforms(&candid::encode_one(CanisterIdRecord { canister_id: id }).unwrap(), &env, &f.args);
        conforms(&candid::encode_one(vec![hash.clone()]).unwrap(), &env, &f.rets);

        let (env, f) = signature("clear_chunk_store");
        conforms(&candid::encode_one(CanisterIdRecord { canister_id: id }).unwrap(), &env, &f.args);
        conforms(&empty_reply(), &env, &f.rets);

        let (env, f) = signature("install_chunked_code");
        let args = InstallChunkedCodeArgs {
            mode: CanisterInstallMode::Upgrade(Some(UpgradeFlags { skip_pre_upgrade: Some(true), wasm_memory_persistence: None })),
            target_canister: id,
            store_canister: Some(id),
            chunk_hashes_list: vec![hash],
            wasm_module_hash: vec![2; 32],
            arg: vec![],
            sender_canister_version: Some(1),
        };
        conforms(&candid::encode_one(&args).unwrap(), &env, &f.args);
        conforms(&empty_reply(), &env, &f.rets);
    }

    #[test]
    fn encode_upload_chunk_is_candid() {
        for len in [0usize, 1, 127, 128, 300, 16_384, 1 << 20] {
            let chunk: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let id = super::super::canister_id(super::super::FIRST_CANISTER_INDEX);
            let fast = encode_upload_chunk(id, &chunk);
            assert_eq!(fast, candid::encode_one(UploadChunkArgs { canister_id: id, chunk: chunk.clone() }).unwrap(), "{len} bytes");
            assert!(fast.capacity() < fast.len() + 10, "one allocation of the exact size");
        }
    }

    #[test]
    fn borrowed_decoding_points_into_the_argument() {
        let arg = candid::encode_one(UploadChunkArgs { canister_id: Principal::anonymous(), chunk: vec![9; 1000] }).unwrap();
        let decoded: UploadChunkArgsRef = decode("upload_chunk", &arg).unwrap();
        let range = arg.as_ptr_range();
        assert!(range.contains(&decoded.chunk.as_ptr()), "the chunk was copied");
        assert_eq!(decoded.chunk, &[9; 1000][..]);
    }
}
