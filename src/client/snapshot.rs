//! `ww canister snapshot take|load|list|delete`: canister snapshots through
//! the management canister, as the node's admin identity (like `dfx
//! canister snapshot`). Snapshot ids are shown and given in hex.

use candid::{Decode, Encode, Principal};
use ww::replica::management::{CanisterIdRecord, DeleteCanisterSnapshotArgs, LoadCanisterSnapshotArgs, TakeCanisterSnapshotArgs};
use ww::replica::snapshots::SnapshotInfo;
use ww::ww_capnp::replica;

use super::{Outcome, UsageError, invoke, report_reject, resolve};
use crate::SnapshotCommand;

/// `ww canister snapshot ...`.
pub async fn snapshot(replica: &replica::Client, command: SnapshotCommand) -> anyhow::Result<i32> {
    let mgmt = Principal::management_canister();
    match command {
        SnapshotCommand::Take { canister, replace } => {
            let canister_id = resolve(replica, &canister).await?;
            let replace_snapshot = replace.as_deref().map(snapshot_id).transpose()?.map(serde_bytes::ByteBuf::from);
            let arg = Encode!(&TakeCanisterSnapshotArgs { canister_id, replace_snapshot, uninstall_code: None, sender_canister_version: None })?;
            match invoke(replica, mgmt, "take_canister_snapshot", arg, false).await? {
                Outcome::Reply(bytes) => {
                    let info = Decode!(&bytes, SnapshotInfo)?;
                    outln!("{}", hex::encode(&info.id));
                    Ok(0)
                }
                Outcome::Reject { code, message } => Ok(report_reject(code, &message)),
            }
        }
        SnapshotCommand::Load { canister, snapshot } => {
            let canister_id = resolve(replica, &canister).await?;
            let snapshot_id = serde_bytes::ByteBuf::from(snapshot_id(&snapshot)?);
            let arg = Encode!(&LoadCanisterSnapshotArgs { canister_id, snapshot_id, sender_canister_version: None })?;
            done(invoke(replica, mgmt, "load_canister_snapshot", arg, false).await?, || format!("snapshot {snapshot} loaded into {}", canister_id.to_text()))
        }
        SnapshotCommand::Delete { canister, snapshot } => {
            let canister_id = resolve(replica, &canister).await?;
            let snapshot_id = serde_bytes::ByteBuf::from(snapshot_id(&snapshot)?);
            let arg = Encode!(&DeleteCanisterSnapshotArgs { canister_id, snapshot_id })?;
            done(invoke(replica, mgmt, "delete_canister_snapshot", arg, false).await?, || format!("snapshot {snapshot} deleted"))
        }
        SnapshotCommand::List { canister } => {
            let canister_id = resolve(replica, &canister).await?;
            let arg = Encode!(&CanisterIdRecord { canister_id })?;
            match invoke(replica, mgmt, "list_canister_snapshots", arg, false).await? {
                Outcome::Reply(bytes) => {
                    for s in Decode!(&bytes, Vec<SnapshotInfo>)? {
                        outln!("{}  {}  {} bytes", hex::encode(&s.id), super::canister::rfc3339(s.taken_at_timestamp), s.total_size);
                    }
                    Ok(0)
                }
                Outcome::Reject { code, message } => Ok(report_reject(code, &message)),
            }
        }
    }
}

fn done(outcome: Outcome, what: impl FnOnce() -> String) -> anyhow::Result<i32> {
    match outcome {
        Outcome::Reply(_) => {
            outln!("{}", what());
            Ok(0)
        }
        Outcome::Reject { code, message } => Ok(report_reject(code, &message)),
    }
}

/// A snapshot id given in hex.
fn snapshot_id(hex_id: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(hex_id.trim_start_matches("0x"))
        .map_err(|e| UsageError(format!("snapshot id `{hex_id}` is not hex: {e}")).into())
}
