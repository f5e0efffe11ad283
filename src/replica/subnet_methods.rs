//! The management canister's informational methods: `subnet_info`,
//! `node_metrics_history` (ww keeps no block-making metrics, so the history
//! is empty, as the IC's is for a subnet without changes) and
//! `canister_metadata` (a module's `icp:public` / `icp:private` custom
//! sections). All are for canisters only, as on the IC.

use candid::{CandidType, Deserialize, Principal};
use serde_bytes::ByteBuf;

use super::management::{decode, encode};
use super::{CallResult, ErrorCode, Reject, RejectCode, Replica};

/// The methods this module answers.
pub const METHODS: [&str; 3] = ["subnet_info", "node_metrics_history", "canister_metadata"];

/// The registry version ww reports (its subnets never change).
const REGISTRY_VERSION: u64 = 1;

#[derive(CandidType, Deserialize)]
struct SubnetInfoArgs {
    subnet_id: Principal,
}

#[derive(CandidType, Deserialize)]
struct SubnetInfoResult {
    replica_version: String,
    registry_version: u64,
}

#[derive(CandidType, Deserialize)]
struct NodeMetricsHistoryArgs {
    subnet_id: Principal,
    start_at_timestamp_nanos: u64,
}

#[derive(CandidType, Deserialize)]
struct NodeMetrics {
    node_id: Principal,
    num_blocks_proposed_total: u64,
    num_block_failures_total: u64,
}

#[derive(CandidType, Deserialize)]
struct NodeMetricsRecord {
    timestamp_nanos: u64,
    node_metrics: Vec<NodeMetrics>,
}

#[derive(CandidType, Deserialize)]
struct CanisterMetadataArgs {
    canister_id: Principal,
    name: String,
}

#[derive(CandidType, Deserialize)]
struct CanisterMetadataResult {
    value: ByteBuf,
}

/// A subnet of this replica, else the IC's routing failure.
fn known_subnet(replica: &Replica, method: &str, subnet: Principal) -> Result<(), Reject> {
    if replica.inner.config.subnets.iter().any(|s| s.id == subnet) {
        return Ok(());
    }
    Err(Reject {
        code: RejectCode::DestinationInvalid,
        error_code: None,
        message: format!("Unable to route management canister request {method}: SubnetNotFound(\"{subnet}\")"),
    })
}

/// Answers one of [`METHODS`] for `caller`.
pub(super) fn handle(replica: &Replica, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
    match method {
        "subnet_info" => {
            let args: SubnetInfoArgs = decode(method, arg)?;
            known_subnet(replica, method, args.subnet_id)?;
            encode(&SubnetInfoResult { replica_version: format!("ww-{}", env!("CARGO_PKG_VERSION")), registry_version: REGISTRY_VERSION })
        }
        "node_metrics_history" => {
            let args: NodeMetricsHistoryArgs = decode(method, arg)?;
            known_subnet(replica, method, args.subnet_id)?;
            let _ = args.start_at_timestamp_nanos;
            encode(&Vec::<NodeMetricsRecord>::new())
        }
        "canister_metadata" => {
            let args: CanisterMetadataArgs = decode(method, arg)?;
            let canisters = replica.certified_canisters();
            let Some(canister) = canisters.iter().find(|c| c.id == args.canister_id) else {
                return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {} not found.", args.canister_id)));
            };
            let module = canister.module.as_deref().ok_or_else(|| {
                Reject::system(ErrorCode::CanisterWasmModuleNotFound, format!("Canister {} has no module.", args.canister_id))
            })?;
            let section = super::install::metadata_sections(module).into_iter().find(|(name, _, _)| *name == args.name);
            match section {
                Some((_, public, bytes)) if public || canister.controllers.contains(&caller) => encode(&CanisterMetadataResult { value: ByteBuf::from(bytes) }),
                Some(_) => Err(Reject::system(
                    ErrorCode::CanisterRejectedMessage,
                    format!("Custom section {} can only be read by the controllers of canister {}.", args.name, args.canister_id),
                )),
                None => Err(Reject::system(
                    ErrorCode::CanisterRejectedMessage,
                    format!("Custom section {} not found.", args.name),
                )),
            }
        }
        other => Err(Reject::system(ErrorCode::CanisterMethodNotFound, format!("Management canister has no method '{other}'"))),
    }
}
