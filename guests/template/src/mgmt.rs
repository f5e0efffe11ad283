//! Calls to the management canister (`aaaaa-aa`) that root and the
//! wasm_store make, with the IC's Candid argument shapes.

use crate::types::{Error, ErrorCode};
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use ww_cdk::call::Call;

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default)]
struct CanisterSettings {
    controllers: Option<Vec<Principal>>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
struct CreateCanisterArgs {
    settings: Option<CanisterSettings>,
    sender_canister_version: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
struct CanisterIdRecord {
    canister_id: Principal,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
struct UploadChunkArgs<'a> {
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    chunk: &'a [u8],
}

/// A chunk's SHA-256, as the chunk store reports it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChunkHash {
    pub hash: ByteBuf,
}

/// An install mode.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade(Option<UpgradeFlags>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpgradeFlags {
    skip_pre_upgrade: Option<bool>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
struct InstallChunkedCodeArgs {
    mode: InstallMode,
    target_canister: Principal,
    store_canister: Option<Principal>,
    chunk_hashes_list: Vec<ChunkHash>,
    #[serde(with = "serde_bytes")]
    wasm_module_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    arg: Vec<u8>,
    sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug)]
struct CanisterStatusResult {
    module_hash: Option<ByteBuf>,
}

fn failed(what: String) -> impl FnOnce(ww_cdk::call::Error) -> Error {
    move |e| Error::new(ErrorCode::CallFailed, format!("{what}: {e}"))
}

/// Cycles a new canister is created with (taken from the creator's balance,
/// as on the IC, where they become the new canister's balance).
pub const NEW_CANISTER_CYCLES: u128 = 2_000_000_000_000;

/// Creates a canister controlled by `controllers`, with
/// [`NEW_CANISTER_CYCLES`].
pub async fn create_canister(controllers: Vec<Principal>) -> Result<Principal, Error> {
    let args = CreateCanisterArgs { settings: Some(CanisterSettings { controllers: Some(controllers) }), sender_canister_version: None };
    let reply = Call::unbounded_wait(Principal::management_canister(), "create_canister")
        .with_arg(args)
        .with_cycles(NEW_CANISTER_CYCLES)
        .await
        .map_err(|e| failed("create_canister".into())(e.into()))?;
    let record: CanisterIdRecord = reply.candid().map_err(|e| failed("create_canister".into())(e.into()))?;
    Ok(record.canister_id)
}

/// Uploads a chunk into `canister`'s chunk store; returns its SHA-256,
/// computed by the host.
pub async fn upload_chunk(canister: Principal, chunk: &[u8]) -> Result<Vec<u8>, Error> {
    let what = || format!("upload_chunk into {canister}");
    let reply = Call::unbounded_wait(Principal::management_canister(), "upload_chunk")
        .with_arg(UploadChunkArgs { canister_id: canister, chunk })
        .await
        .map_err(|e| failed(what())(e.into()))?;
    let hash: ChunkHash = reply.candid().map_err(|e| failed(what())(e.into()))?;
    Ok(hash.hash.into_vec())
}

/// The hashes in `canister`'s chunk store.
pub async fn stored_chunks(canister: Principal) -> Result<Vec<Vec<u8>>, Error> {
    let what = || format!("stored_chunks of {canister}");
    let reply = Call::unbounded_wait(Principal::management_canister(), "stored_chunks")
        .with_arg(CanisterIdRecord { canister_id: canister })
        .await
        .map_err(|e| failed(what())(e.into()))?;
    let hashes: Vec<ChunkHash> = reply.candid().map_err(|e| failed(what())(e.into()))?;
    Ok(hashes.into_iter().map(|h| h.hash.into_vec()).collect())
}

/// Empties `canister`'s chunk store.
pub async fn clear_chunk_store(canister: Principal) -> Result<(), Error> {
    simple("clear_chunk_store", canister).await
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
struct InstallCodeArgs<'a> {
    mode: InstallMode,
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    wasm_module: &'a [u8],
    #[serde(with = "serde_bytes")]
    arg: Vec<u8>,
    sender_canister_version: Option<u64>,
}

/// Installs (or upgrades) `target` with `module` inline in the call (the
/// host hashes it). The whole call must fit one inter-canister message
/// (2 MiB); larger modules need [`install_chunked_code`].
pub async fn install_code(mode: InstallMode, target: Principal, module: &[u8], arg: Vec<u8>) -> Result<(), Error> {
    let args = InstallCodeArgs { mode, canister_id: target, wasm_module: module, arg, sender_canister_version: None };
    Call::unbounded_wait(Principal::management_canister(), "install_code")
        .with_arg(args)
        .await
        .map_err(|e| failed(format!("install_code of {target}"))(e.into()))?;
    Ok(())
}

/// Installs (or upgrades) `target` from chunks in `store`'s chunk store; the
/// host checks that their concatenation hashes to `module_hash`.
pub async fn install_chunked_code(
    mode: InstallMode,
    target: Principal,
    store: Principal,
    chunk_hashes: &[ByteBuf],
    module_hash: &[u8],
    arg: Vec<u8>,
) -> Result<(), Error> {
    let args = InstallChunkedCodeArgs {
        mode,
        target_canister: target,
        store_canister: Some(store),
        chunk_hashes_list: chunk_hashes.iter().map(|h| ChunkHash { hash: h.clone() }).collect(),
        wasm_module_hash: module_hash.to_vec(),
        arg,
        sender_canister_version: None,
    };
    Call::unbounded_wait(Principal::management_canister(), "install_chunked_code")
        .with_arg(args)
        .await
        .map_err(|e| failed(format!("install_chunked_code of {target} from {store}"))(e.into()))?;
    Ok(())
}

/// The module hash `canister` runs (None when empty).
pub async fn module_hash(canister: Principal) -> Result<Option<Vec<u8>>, Error> {
    let what = || format!("canister_status of {canister}");
    let reply = Call::unbounded_wait(Principal::management_canister(), "canister_status")
        .with_arg(CanisterIdRecord { canister_id: canister })
        .await
        .map_err(|e| failed(what())(e.into()))?;
    let status: CanisterStatusResult = reply.candid().map_err(|e| failed(what())(e.into()))?;
    Ok(status.module_hash.map(ByteBuf::into_vec))
}

pub async fn stop_canister(canister: Principal) -> Result<(), Error> {
    simple("stop_canister", canister).await
}

pub async fn delete_canister(canister: Principal) -> Result<(), Error> {
    simple("delete_canister", canister).await
}

async fn simple(method: &str, canister: Principal) -> Result<(), Error> {
    Call::unbounded_wait(Principal::management_canister(), method)
        .with_arg(CanisterIdRecord { canister_id: canister })
        .await
        .map_err(|e| failed(format!("{method} of {canister}"))(e.into()))?;
    Ok(())
}
