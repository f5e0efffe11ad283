//! Each canister's change history, as the IC keeps it for `canister_info`:
//! creation, code deployments (install, reinstall, upgrade), code
//! uninstalls and controller changes, each with the replica time, the
//! canister version after it and who made it (a user, or a canister at a
//! given version).
//!
//! Code deployments also record how the module arrived ([`InstallSource`]:
//! `install_code`, `install_chunked_code` with the store canister the chunks
//! came from, or the host's own [`super::Replica::install`]), which the IC
//! does not report but lets a test check how code really got installed
//! without trusting the canisters' own reports ([`CodeDeployment`],
//! [`super::Replica::install_history`]). A failed change records nothing.
//! As on the IC only the most recent [`MAX_ENTRIES`] are kept; the total
//! count is kept too. Deleting the canister drops its history.

use std::collections::VecDeque;

use candid::{CandidType, Deserialize, Principal};

use super::InstallMode;

/// Most entries kept per canister (the IC keeps at least 20 recent changes).
pub const MAX_ENTRIES: usize = 20;

/// How a module reached the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InstallSource {
    /// The management canister's `install_code` (the module inline in the call).
    InstallCode,
    /// The management canister's `install_chunked_code`, assembled from the
    /// chunk store of `store` (the target itself when no store was named).
    InstallChunkedCode { store: Principal },
    /// The host API [`super::Replica::install`] (tests, tooling), no call.
    Host,
}

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeOrigin {
    /// An ingress sender (or the host).
    User(Principal),
    /// A canister, at the version it gave as `sender_canister_version`.
    Canister { id: Principal, version: Option<u64> },
}

impl ChangeOrigin {
    pub fn principal(&self) -> Principal {
        match self {
            ChangeOrigin::User(p) => *p,
            ChangeOrigin::Canister { id, .. } => *id,
        }
    }
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeDetails {
    Creation { controllers: Vec<Principal> },
    CodeUninstall,
    CodeDeployment { mode: InstallMode, module_hash: [u8; 32], source: InstallSource },
    ControllersChange { controllers: Vec<Principal> },
    /// A snapshot was loaded: its id, and the canister's version and the
    /// time when it was taken.
    LoadSnapshot { snapshot_id: Vec<u8>, canister_version: u64, taken_at: u64 },
    /// As `LoadSnapshot`, of a snapshot made by upload (`source =
    /// metadata_upload`). Last, so histories stored before it still read.
    LoadUploadedSnapshot { snapshot_id: Vec<u8>, canister_version: u64, taken_at: u64 },
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Replica time of the change, nanoseconds.
    pub time: u64,
    /// The canister's version after the change.
    pub canister_version: u64,
    pub origin: ChangeOrigin,
    pub details: ChangeDetails,
}

/// One successful code deployment (a view of a [`Change`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeDeployment {
    pub mode: InstallMode,
    pub source: InstallSource,
    /// Who installed: the ingress sender or the calling canister.
    pub caller: Principal,
    /// SHA-256 of the module as given (gzip-compressed if it was sent so).
    pub module_hash: [u8; 32],
    /// The canister's version after the deployment.
    pub canister_version: u64,
    /// Replica time of the deployment, nanoseconds.
    pub time: u64,
}

/// A bounded, oldest-first log of changes.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CanisterHistory {
    entries: VecDeque<Change>,
    total: u64,
}

impl CanisterHistory {
    /// Appends `change`, dropping the oldest beyond [`MAX_ENTRIES`].
    pub fn record(&mut self, change: Change) {
        if self.entries.len() == MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(change);
        self.total += 1;
    }

    /// The kept changes, oldest first.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.entries.iter()
    }

    /// The kept code deployments, oldest first.
    pub fn deployments(&self) -> Vec<CodeDeployment> {
        self.entries
            .iter()
            .filter_map(|c| match &c.details {
                ChangeDetails::CodeDeployment { mode, module_hash, source } => Some(CodeDeployment {
                    mode: *mode,
                    source: *source,
                    caller: c.origin.principal(),
                    module_hash: *module_hash,
                    canister_version: c.canister_version,
                    time: c.time,
                }),
                _ => None,
            })
            .collect()
    }

    /// Changes ever recorded, including those no longer kept.
    pub fn total(&self) -> u64 {
        self.total
    }
}

// ---- `canister_info`, in the IC's Candid ----------------------------------

/// `canister_info`'s argument.
#[derive(CandidType, Deserialize, Debug)]
pub struct CanisterInfoArgs {
    pub canister_id: Principal,
    pub num_requested_changes: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CandidChangeOrigin {
    #[serde(rename = "from_user")]
    FromUser { user_id: Principal },
    #[serde(rename = "from_canister")]
    FromCanister { canister_id: Principal, canister_version: Option<u64> },
}

#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidInstallMode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CandidChangeDetails {
    #[serde(rename = "creation")]
    Creation { controllers: Vec<Principal> },
    #[serde(rename = "code_uninstall")]
    CodeUninstall,
    #[serde(rename = "code_deployment")]
    CodeDeployment { mode: CandidInstallMode, module_hash: serde_bytes::ByteBuf },
    #[serde(rename = "controllers_change")]
    ControllersChange { controllers: Vec<Principal> },
    #[serde(rename = "load_snapshot")]
    LoadSnapshot {
        canister_version: u64,
        snapshot_id: serde_bytes::ByteBuf,
        taken_at_timestamp: u64,
        from_canister_id: Option<Principal>,
        source: CandidSnapshotSource,
    },
}

/// How a loaded snapshot was made.
#[derive(CandidType, serde::Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CandidSnapshotSource {
    #[serde(rename = "taken_from_canister")]
    TakenFromCanister(candid::Reserved),
    #[serde(rename = "metadata_upload")]
    MetadataUpload(candid::Reserved),
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CandidChange {
    pub timestamp_nanos: u64,
    pub canister_version: u64,
    pub origin: CandidChangeOrigin,
    pub details: CandidChangeDetails,
}

/// `canister_info`'s result.
#[derive(CandidType, Deserialize, Debug)]
pub struct CanisterInfoResult {
    pub total_num_changes: u64,
    pub recent_changes: Vec<CandidChange>,
    pub module_hash: Option<serde_bytes::ByteBuf>,
    pub controllers: Vec<Principal>,
}

impl From<&Change> for CandidChange {
    fn from(c: &Change) -> Self {
        Self {
            timestamp_nanos: c.time,
            canister_version: c.canister_version,
            origin: match c.origin {
                ChangeOrigin::User(user_id) => CandidChangeOrigin::FromUser { user_id },
                ChangeOrigin::Canister { id, version } => CandidChangeOrigin::FromCanister { canister_id: id, canister_version: version },
            },
            details: match &c.details {
                ChangeDetails::Creation { controllers } => CandidChangeDetails::Creation { controllers: controllers.clone() },
                ChangeDetails::CodeUninstall => CandidChangeDetails::CodeUninstall,
                ChangeDetails::CodeDeployment { mode, module_hash, .. } => CandidChangeDetails::CodeDeployment {
                    mode: match mode {
                        InstallMode::Install => CandidInstallMode::Install,
                        InstallMode::Reinstall => CandidInstallMode::Reinstall,
                        InstallMode::Upgrade => CandidInstallMode::Upgrade,
                    },
                    module_hash: serde_bytes::ByteBuf::from(module_hash.to_vec()),
                },
                ChangeDetails::ControllersChange { controllers } => CandidChangeDetails::ControllersChange { controllers: controllers.clone() },
                ChangeDetails::LoadSnapshot { snapshot_id, canister_version, taken_at }
                | ChangeDetails::LoadUploadedSnapshot { snapshot_id, canister_version, taken_at } => CandidChangeDetails::LoadSnapshot {
                    canister_version: *canister_version,
                    snapshot_id: serde_bytes::ByteBuf::from(snapshot_id.clone()),
                    taken_at_timestamp: *taken_at,
                    from_canister_id: None,
                    source: match c.details {
                        ChangeDetails::LoadUploadedSnapshot { .. } => CandidSnapshotSource::MetadataUpload(candid::Reserved),
                        _ => CandidSnapshotSource::TakenFromCanister(candid::Reserved),
                    },
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(version: u64, source: InstallSource) -> Change {
        Change {
            time: version * 10,
            canister_version: version,
            origin: ChangeOrigin::User(Principal::anonymous()),
            details: ChangeDetails::CodeDeployment {
                mode: if version == 1 { InstallMode::Install } else { InstallMode::Upgrade },
                module_hash: [version as u8; 32],
                source,
            },
        }
    }

    #[test]
    fn records_in_order_with_source() {
        let store = Principal::from_slice(&[1, 2, 3]);
        let mut h = CanisterHistory::default();
        h.record(Change {
            time: 0,
            canister_version: 0,
            origin: ChangeOrigin::User(Principal::anonymous()),
            details: ChangeDetails::Creation { controllers: vec![] },
        });
        h.record(deployment(1, InstallSource::InstallCode));
        h.record(deployment(2, InstallSource::InstallChunkedCode { store }));
        let e = h.deployments();
        assert_eq!(e.len(), 2, "only code deployments");
        assert_eq!((e[0].mode, e[0].source), (InstallMode::Install, InstallSource::InstallCode));
        assert_eq!((e[1].mode, e[1].source), (InstallMode::Upgrade, InstallSource::InstallChunkedCode { store }));
        assert_eq!(h.total(), 3);
    }

    #[test]
    fn keeps_only_the_most_recent() {
        let mut h = CanisterHistory::default();
        for v in 1..=(MAX_ENTRIES as u64 + 5) {
            h.record(deployment(v, InstallSource::Host));
        }
        let e = h.deployments();
        assert_eq!(e.len(), MAX_ENTRIES);
        assert_eq!(e[0].canister_version, 6, "the oldest five were dropped");
        assert_eq!(h.total(), MAX_ENTRIES as u64 + 5);
    }
}
