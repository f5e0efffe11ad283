//! The management canister (`aaaaa-aa`): canister lifecycle with Candid
//! arguments and results as on the IC.
//!
//! Calls reach it from outside (ingress) and from canisters. It runs on an
//! executor thread, never under the replica's state lock; operations that
//! must wait for the target canister (install, stop) complete through a
//! callback.

use candid::{CandidType, Deserialize, Principal};

use super::{CallResult, ErrorCode, InstallMode, Reject, Replica, ReplyTo, Status};

#[derive(CandidType, Deserialize, Default, Clone, Debug)]
pub struct CanisterSettings {
    pub controllers: Option<Vec<Principal>>,
    pub compute_allocation: Option<candid::Nat>,
    pub memory_allocation: Option<candid::Nat>,
    pub freezing_threshold: Option<candid::Nat>,
    pub reserved_cycles_limit: Option<candid::Nat>,
    pub wasm_memory_limit: Option<candid::Nat>,
}

#[derive(CandidType, Deserialize, Default, Debug)]
pub struct CreateCanisterArgs {
    pub settings: Option<CanisterSettings>,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct CanisterIdRecord {
    pub canister_id: Principal,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct UpgradeFlags {
    pub skip_pre_upgrade: Option<bool>,
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

#[derive(CandidType, Deserialize, Debug)]
pub struct DefiniteCanisterSettings {
    pub controllers: Vec<Principal>,
    pub compute_allocation: candid::Nat,
    pub memory_allocation: candid::Nat,
    pub freezing_threshold: candid::Nat,
    pub reserved_cycles_limit: candid::Nat,
    pub wasm_memory_limit: candid::Nat,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct CanisterStatusResult {
    pub status: CanisterStatusType,
    pub settings: DefiniteCanisterSettings,
    pub module_hash: Option<serde_bytes::ByteBuf>,
    pub memory_size: candid::Nat,
    pub cycles: candid::Nat,
    pub reserved_cycles: candid::Nat,
    pub idle_cycles_burned_per_day: candid::Nat,
    pub version: Option<u64>,
}

/// The management canister's Candid interface (the subset served here).
pub const CANDID: &str = include_str!("ic.did");

/// Candid for `()`.
const EMPTY_ARGS: &[u8] = b"DIDL\x00\x00";

fn decode<T: for<'de> Deserialize<'de> + CandidType>(method: &str, arg: &[u8]) -> Result<T, Reject> {
    candid::decode_one(arg).map_err(|e| {
        Reject::system(
            ErrorCode::InvalidManagementPayload,
            format!("Error decoding candid for the management canister's {method}: {}", one_line(&e.to_string())),
        )
    })
}

fn encode<T: CandidType>(v: &T) -> CallResult {
    candid::encode_one(v).map_err(|e| Reject::system(ErrorCode::InvalidManagementPayload, format!("encoding the reply: {e}")))
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

fn send(reply: ReplyTo, replica: &Replica, result: CallResult) {
    match reply {
        ReplyTo::Ingress(tx) => {
            let _ = tx.send(result);
        }
        ReplyTo::Callback(cb) => super::deliver_response(&replica.inner, cb, result),
    }
}

/// Handles one management canister call; the response goes to `reply`.
pub(crate) fn dispatch(replica: &Replica, caller: Principal, method: &str, arg: &[u8], cycles: u64, reply: ReplyTo) {
    let mut reply_slot = Some(reply);
    let mut take_reply = || reply_slot.take();
    let result: Result<Option<CallResult>, Reject> = (|| {
        Ok(Some(match method {
            "create_canister" | "provisional_create_canister_with_cycles" => {
                // `()` (or nothing) means default settings, as dfx sends it.
                let args: CreateCanisterArgs = if arg.is_empty() || arg == EMPTY_ARGS {
                    CreateCanisterArgs::default()
                } else {
                    decode(method, arg)?
                };
                let controllers = args
                    .settings
                    .as_ref()
                    .and_then(|s| s.controllers.clone())
                    .unwrap_or_else(|| vec![caller]);
                if controllers.len() > 10 {
                    return Err(Reject::system(ErrorCode::InvalidManagementPayload, "a canister can have at most 10 controllers"));
                }
                let id = replica.create_canister(controllers);
                if cycles > 0 {
                    replica.deposit_cycles(id, cycles)?;
                }
                encode(&CanisterIdRecord { canister_id: id })
            }
            "install_code" => {
                let args: InstallCodeArgs = decode(method, arg)?;
                let mode = match args.mode {
                    CanisterInstallMode::Install => InstallMode::Install,
                    CanisterInstallMode::Reinstall => InstallMode::Reinstall,
                    CanisterInstallMode::Upgrade(_) => InstallMode::Upgrade,
                };
                let module = super::install::prepare_module(replica, &args.canister_id, &args.wasm_module)?;
                let replica2 = replica.clone();
                let Some(reply) = take_reply() else { return Ok(None) };
                replica.install_with(
                    caller,
                    args.canister_id,
                    mode,
                    module.component,
                    module.hash,
                    args.arg,
                    Box::new(move |r| send(reply, &replica2, r.map(|()| candid::encode_args(()).unwrap_or_default()))),
                )?;
                return Ok(None);
            }
            "update_settings" => {
                let args: UpdateSettingsArgs = decode(method, arg)?;
                if let Some(c) = args.settings.controllers {
                    if c.len() > 10 {
                        return Err(Reject::system(ErrorCode::InvalidManagementPayload, "a canister can have at most 10 controllers"));
                    }
                    replica.update_controllers(caller, args.canister_id, c)?;
                } else if !replica.is_controller(&args.canister_id, &caller) {
                    return Err(controller_check(replica, &args.canister_id, &caller));
                }
                Ok(candid::encode_args(()).unwrap_or_default())
            }
            "canister_status" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let id = args.canister_id;
                let Some(s) = replica.status(&id) else {
                    return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {id} not found")));
                };
                if !s.controllers.contains(&caller) && caller != id {
                    return Err(controller_check(replica, &id, &caller));
                }
                encode(&CanisterStatusResult {
                    status: match s.status {
                        Status::Running => CanisterStatusType::Running,
                        Status::Stopping => CanisterStatusType::Stopping,
                        Status::Stopped => CanisterStatusType::Stopped,
                    },
                    settings: DefiniteCanisterSettings {
                        controllers: s.controllers,
                        compute_allocation: 0u64.into(),
                        memory_allocation: 0u64.into(),
                        freezing_threshold: 2_592_000u64.into(),
                        reserved_cycles_limit: 5_000_000_000_000u64.into(),
                        wasm_memory_limit: (replica.limits().wasm_memory_limit as u64).into(),
                    },
                    module_hash: s.module_hash.map(|h| serde_bytes::ByteBuf::from(h.to_vec())),
                    memory_size: s.memory_size.into(),
                    cycles: s.cycles.into(),
                    reserved_cycles: 0u64.into(),
                    idle_cycles_burned_per_day: 0u64.into(),
                    version: Some(s.version),
                })
            }
            "start_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.start(caller, args.canister_id)?;
                Ok(candid::encode_args(()).unwrap_or_default())
            }
            "stop_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                let replica2 = replica.clone();
                let Some(reply) = take_reply() else { return Ok(None) };
                replica.stop_with(
                    caller,
                    args.canister_id,
                    Box::new(move |r| send(reply, &replica2, r.map(|()| candid::encode_args(()).unwrap_or_default()))),
                );
                return Ok(None);
            }
            "delete_canister" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.delete(caller, args.canister_id)?;
                Ok(candid::encode_args(()).unwrap_or_default())
            }
            "deposit_cycles" => {
                let args: CanisterIdRecord = decode(method, arg)?;
                replica.deposit_cycles(args.canister_id, cycles)?;
                Ok(candid::encode_args(()).unwrap_or_default())
            }
            "raw_rand" => {
                let bytes = replica.raw_rand();
                encode(&serde_bytes::ByteBuf::from(bytes.to_vec()))
            }
            other => Err(Reject::system(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no method '{other}'"),
            )),
        }))
    })();
    let Some(reply) = take_reply() else { return };
    match result {
        Ok(Some(r)) => send(reply, replica, r),
        Ok(None) => {}
        Err(reject) => send(reply, replica, Err(reject)),
    }
}

fn controller_check(_replica: &Replica, canister: &Principal, caller: &Principal) -> Reject {
    super::not_controller(canister, caller)
}
