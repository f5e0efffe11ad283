//! `ww canister ...`: a node's canisters managed through the management
//! canister (`aaaaa-aa`) with Candid, as the node's admin identity, the way
//! `dfx canister` does it: create (and name), list, status and info, logs,
//! start, stop, delete, uninstall. `install` is in [`super::install`].

use std::path::PathBuf;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use ww::replica::management::{
    CanisterIdRecord, CanisterStatusResult, CanisterStatusType, LogVisibility, ProvisionalCreateCanisterArgs,
};
use ww::ww_capnp::replica;

use super::{Outcome, UsageError, invoke, lookup, report_reject, resolve, with_replica};
use crate::CanisterCommand;

/// `ww canister ...`.
pub async fn canister(command: CanisterCommand, state: PathBuf) -> anyhow::Result<i32> {
    if let CanisterCommand::Install(args) = command {
        return super::install::install(args, &state).await;
    }
    with_replica(&state, false, |replica| async move {
        match command {
            CanisterCommand::Create { name } => create(&replica, &name).await,
            // Handled above (it reads its module before connecting).
            CanisterCommand::Install(_) => Err(anyhow::anyhow!("ww canister install took a wrong turn")),
            CanisterCommand::List => list(&replica).await,
            CanisterCommand::Status { canister } => status(&replica, &canister, false).await,
            CanisterCommand::Info { canister } => status(&replica, &canister, true).await,
            CanisterCommand::Logs { canister } => logs(&replica, &canister).await,
            CanisterCommand::Start { canister } => lifecycle(&replica, "start_canister", &canister).await,
            CanisterCommand::Stop { canister } => lifecycle(&replica, "stop_canister", &canister).await,
            CanisterCommand::Delete { canister } => lifecycle(&replica, "delete_canister", &canister).await,
            CanisterCommand::Uninstall { canister } => lifecycle(&replica, "uninstall_code", &canister).await,
            CanisterCommand::Snapshot(command) => super::snapshot::snapshot(&replica, command).await,
        }
    })
    .await
}

/// `ww canister create NAME`: an empty canister from
/// `provisional_create_canister_with_cycles` (the admin its controller,
/// the replica's default balance), named NAME in the node's registry.
/// A name already taken is a usage error, and nothing is created.
async fn create(replica: &replica::Client, name: &str) -> anyhow::Result<i32> {
    check_name(name)?;
    if let Some(id) = lookup(replica, name).await? {
        return Err(UsageError(format!("the name {name:?} is taken by canister {id}; nothing was created")).into());
    }
    let arg = Encode!(&ProvisionalCreateCanisterArgs::default())?;
    let bytes = match invoke(replica, Principal::management_canister(), "provisional_create_canister_with_cycles", arg, false).await? {
        Outcome::Reply(bytes) => bytes,
        Outcome::Reject { code, message } => return Ok(report_reject(code, &message)),
    };
    let id = Decode!(&bytes, CanisterIdRecord)
        .map_err(|e| anyhow::anyhow!("the management canister's reply to provisional_create_canister_with_cycles: {e}"))?
        .canister_id;
    let mut req = replica.set_name_request();
    req.get().set_name(name);
    req.get().set_canister(id.as_slice());
    req.send()
        .promise
        .await
        .map_err(|e| anyhow::anyhow!("canister {id} was created, but naming it {name:?} failed: {e}"))?;
    outln!("{id}");
    Ok(0)
}

/// A registry name: what `setName` takes (not empty, no whitespace), and
/// not a canister id (`ww call <name>` would take it for one).
fn check_name(name: &str) -> Result<(), UsageError> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.chars().any(char::is_control) {
        return Err(UsageError(format!("{name:?} is not a valid canister name (it must be non-empty, without whitespace)")));
    }
    if Principal::from_text(name).is_ok() {
        return Err(UsageError(format!("{name:?} is a principal; a canister name must not be one")));
    }
    Ok(())
}

async fn list(replica: &replica::Client) -> anyhow::Result<i32> {
    let resp = replica.list_request().send().promise.await?;
    let list = resp.get()?.get_canisters()?;
    outln!("{:<16} {:<29} {:<9} {:<18} {:>12} {:>20}", "NAME", "CANISTER ID", "STATUS", "MODULE HASH", "MEMORY", "CYCLES");
    for e in list.iter() {
        let id = Principal::try_from_slice(e.get_id()?)?;
        let hash = e.get_module_hash()?;
        let hash = if hash.is_empty() { "-".to_string() } else { format!("0x{}", &hex::encode(hash)[..16]) };
        let name = e.get_name()?.to_str()?;
        outln!(
            "{:<16} {:<29} {:<9} {:<18} {:>12} {:>20}",
            if name.is_empty() { "-" } else { name },
            id.to_text(),
            e.get_status()?.to_str()?,
            hash,
            e.get_memory_size(),
            e.get_cycles()
        );
    }
    // Which node hosts which ids, when the node has peers.
    let resp = replica.hosts_request().send().promise.await?;
    let ranges = resp.get()?.get_ranges()?;
    if ranges.iter().any(|r| r.get_node().is_ok_and(|n| !n.is_empty())) {
        outln!("");
        outln!("{:<54} {:<29}   {:<29}", "NODE", "FIRST CANISTER ID", "LAST CANISTER ID");
        for r in ranges.iter() {
            let node = r.get_node()?.to_str()?;
            let node = if node.is_empty() { "this node" } else { node };
            let (first, last) = (Principal::try_from_slice(r.get_first()?)?, Principal::try_from_slice(r.get_last()?)?);
            outln!("{:<54} {:<29} - {:<29}", node, first.to_text(), last.to_text());
        }
    }
    Ok(0)
}

/// The canister's name in the registry, if it has one.
async fn name_of(replica: &replica::Client, id: Principal) -> anyhow::Result<Option<String>> {
    let resp = replica.list_request().send().promise.await?;
    for e in resp.get()?.get_canisters()?.iter() {
        if e.get_id()? == id.as_slice() {
            let name = e.get_name()?.to_str()?;
            return Ok((!name.is_empty()).then(|| name.to_string()));
        }
    }
    Ok(None)
}

/// `ww canister status` and, with `detailed`, `ww canister info`: what
/// `canister_status` tells the admin (a controller).
///
/// `info` adds the change history (creation, code deployments, uninstalls,
/// controller changes), which the management canister's `canister_info`
/// gives only canisters; the CLI gets it through `Replica.canisterInfo`.
async fn status(replica: &replica::Client, canister: &str, detailed: bool) -> anyhow::Result<i32> {
    let id = resolve(replica, canister).await?;
    let bytes = match invoke(replica, Principal::management_canister(), "canister_status", Encode!(&CanisterIdRecord { canister_id: id })?, false).await? {
        Outcome::Reply(bytes) => bytes,
        Outcome::Reject { code, message } => return Ok(report_reject(code, &message)),
    };
    let s = Decode!(&bytes, CanisterStatusResult).map_err(|e| anyhow::anyhow!("the management canister's reply to canister_status: {e}"))?;
    outln!("canister:    {}", id.to_text());
    if detailed && let Some(name) = name_of(replica, id).await? {
        outln!("name:        {name}");
    }
    outln!(
        "status:      {}",
        match s.status {
            CanisterStatusType::Running => "running",
            CanisterStatusType::Stopping => "stopping",
            CanisterStatusType::Stopped => "stopped",
        }
    );
    let controllers: Vec<String> = s.settings.controllers.iter().map(Principal::to_text).collect();
    outln!("controllers: {}", controllers.join(", "));
    outln!("module hash: {}", s.module_hash.as_ref().map_or("none".to_string(), |h| format!("0x{}", hex::encode(h))));
    if detailed {
        let m = &s.memory_metrics;
        outln!(
            "memory:      {} bytes (heap {}, stable {}, chunk store {})",
            s.memory_size,
            m.wasm_memory_size,
            m.stable_memory_size,
            m.wasm_chunk_store_size
        );
    } else {
        outln!("memory:      {} bytes", s.memory_size);
    }
    outln!("cycles:      {}", s.cycles);
    outln!("version:     {}", s.version);
    if detailed {
        let st = &s.settings;
        outln!("settings:");
        outln!("  compute allocation:    {}", st.compute_allocation);
        outln!("  memory allocation:     {}", st.memory_allocation);
        outln!("  freezing threshold:    {} s", st.freezing_threshold);
        outln!("  reserved cycles limit: {}", st.reserved_cycles_limit);
        outln!("  wasm memory limit:     {}", st.wasm_memory_limit);
        outln!("  wasm memory threshold: {}", st.wasm_memory_threshold);
        let visibility = match &st.log_visibility {
            LogVisibility::Controllers => "controllers".to_string(),
            LogVisibility::Public => "public".to_string(),
            LogVisibility::AllowedViewers(v) => {
                format!("allowed viewers: {}", v.iter().map(Principal::to_text).collect::<Vec<_>>().join(", "))
            }
        };
        outln!("  log visibility:        {visibility}");
        let vars: Vec<String> = st.environment_variables.iter().map(|v| format!("{}={}", v.name, v.value)).collect();
        outln!("  environment variables: {}", if vars.is_empty() { "none".to_string() } else { vars.join(", ") });
        print_history(replica, id).await?;
    }
    Ok(0)
}

/// The most changes `ww canister info` shows (the IC keeps 20).
const HISTORY_CHANGES: u64 = 20;

/// The change history, oldest first.
async fn print_history(replica: &replica::Client, id: Principal) -> anyhow::Result<()> {
    use ww::replica::history::{CandidChangeDetails, CandidChangeOrigin, CanisterInfoResult};
    let mut req = replica.canister_info_request();
    req.get().set_canister(id.as_slice());
    req.get().set_changes(HISTORY_CHANGES);
    let resp = req.send().promise.await?;
    let bytes = resp.get()?.get_info()?;
    if bytes.is_empty() {
        return Ok(());
    }
    let info = Decode!(bytes, CanisterInfoResult).map_err(|e| anyhow::anyhow!("the replica's canister_info: {e}"))?;
    outln!("history:     {} changes{}", info.total_num_changes, if info.total_num_changes > HISTORY_CHANGES { " (the most recent shown)" } else { "" });
    for c in &info.recent_changes {
        let by = match &c.origin {
            CandidChangeOrigin::FromUser { user_id } => user_id.to_text(),
            CandidChangeOrigin::FromCanister { canister_id, .. } => format!("canister {}", canister_id.to_text()),
        };
        let what = match &c.details {
            CandidChangeDetails::Creation { .. } => "created".to_string(),
            CandidChangeDetails::CodeUninstall => "code uninstalled".to_string(),
            CandidChangeDetails::CodeDeployment { mode, module_hash } => {
                format!("code {} 0x{}", format!("{mode:?}").to_lowercase(), hex::encode(module_hash))
            }
            CandidChangeDetails::ControllersChange { controllers } => {
                format!("controllers set to {}", controllers.iter().map(Principal::to_text).collect::<Vec<_>>().join(", "))
            }
            CandidChangeDetails::LoadSnapshot { snapshot_id, canister_version, .. } => {
                format!("snapshot {} loaded (taken at version {canister_version})", hex::encode(snapshot_id))
            }
        };
        outln!("  [{}] version {}: {what} by {by}", rfc3339(c.timestamp_nanos), c.canister_version);
    }
    Ok(())
}

/// start/stop/delete/uninstall through the management canister.
async fn lifecycle(replica: &replica::Client, method: &str, canister: &str) -> anyhow::Result<i32> {
    let id = resolve(replica, canister).await?;
    let arg = Encode!(&CanisterIdRecord { canister_id: id })?;
    match invoke(replica, Principal::management_canister(), method, arg, false).await? {
        Outcome::Reply(_) => {
            outln!("{method}: {} done", id.to_text());
            Ok(0)
        }
        Outcome::Reject { code, message, .. } => Ok(report_reject(code, &message)),
    }
}

/// One record of `fetch_canister_logs`'s reply (the IC's
/// `canister_log_record`).
#[derive(CandidType, Deserialize)]
struct CanisterLogRecord {
    idx: u64,
    timestamp_nanos: u64,
    #[serde(with = "serde_bytes")]
    content: Vec<u8>,
}

#[derive(CandidType, Deserialize)]
struct FetchCanisterLogsResult {
    canister_log_records: Vec<CanisterLogRecord>,
}

/// `ww canister logs`: `fetch_canister_logs` as a query, one line per
/// record as dfx prints them: `[<idx>. <RFC 3339 time>]: <content>`.
async fn logs(replica: &replica::Client, canister: &str) -> anyhow::Result<i32> {
    let id = resolve(replica, canister).await?;
    let arg = Encode!(&CanisterIdRecord { canister_id: id })?;
    let bytes = match invoke(replica, Principal::management_canister(), "fetch_canister_logs", arg, true).await? {
        Outcome::Reply(bytes) => bytes,
        Outcome::Reject { code, message } => return Ok(report_reject(code, &message)),
    };
    let logs = Decode!(&bytes, FetchCanisterLogsResult)
        .map_err(|e| anyhow::anyhow!("the management canister's reply to fetch_canister_logs: {e}"))?;
    for r in logs.canister_log_records {
        outln!("[{}. {}]: {}", r.idx, rfc3339(r.timestamp_nanos), String::from_utf8_lossy(&r.content));
    }
    Ok(0)
}

/// Nanoseconds since the Unix epoch as RFC 3339 in UTC, with nanoseconds:
/// `2024-05-23T08:32:26.203980235Z`.
pub(super) fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{sub:09}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanos() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456789Z");
        // A leap day, the day after, and the end of a year.
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(951_868_800_000_000_000), "2000-03-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_735_689_599_999_999_999), "2024-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn names_are_checked_before_anything_is_created() {
        assert!(check_name("counter").is_ok());
        assert!(check_name("my-canister_2").is_ok());
        for bad in ["", "a b", "tab\there", "aaaaa-aa", "bkyz2-fmaaa-aaaaa-qaaaq-cai"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
