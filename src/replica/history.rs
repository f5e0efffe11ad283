//! Each canister's code-deployment history, modelled on the IC's
//! `canister_info` change log (`recent_changes`, `code_deployment` entries).
//!
//! Every successful install, reinstall or upgrade appends one
//! [`CodeDeployment`]: the mode, how the module arrived ([`InstallSource`]:
//! `install_code`, `install_chunked_code` with the store canister the chunks
//! came from, or the host's own [`super::Replica::install`]), who installed
//! it, the module's SHA-256, and the canister version and time after it. A
//! failed install records nothing (it changed nothing). As on the IC only the
//! most recent [`MAX_ENTRIES`] are kept; the total count is kept too.
//!
//! The history is host-side state: a canister cannot write it, so a test can
//! check how code really got installed without trusting the canisters' own
//! reports. [`super::Replica::install_history`] reads it; deleting the
//! canister drops it.

use std::collections::VecDeque;

use candid::Principal;

use super::InstallMode;

/// Most entries kept per canister (the IC keeps 20 recent changes).
pub const MAX_ENTRIES: usize = 20;

/// How a module reached the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallSource {
    /// The management canister's `install_code` (the module inline in the call).
    InstallCode,
    /// The management canister's `install_chunked_code`, assembled from the
    /// chunk store of `store` (the target itself when no store was named).
    InstallChunkedCode { store: Principal },
    /// The host API [`super::Replica::install`] (tests, tooling), no call.
    Host,
}

/// One successful code deployment.
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

/// A bounded, oldest-first log of deployments.
#[derive(Clone, Debug, Default)]
pub struct InstallHistory {
    entries: VecDeque<CodeDeployment>,
    total: u64,
}

impl InstallHistory {
    /// Appends `deployment`, dropping the oldest beyond [`MAX_ENTRIES`].
    pub fn record(&mut self, deployment: CodeDeployment) {
        if self.entries.len() == MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(deployment);
        self.total += 1;
    }

    /// The kept entries, oldest first.
    pub fn entries(&self) -> Vec<CodeDeployment> {
        self.entries.iter().cloned().collect()
    }

    /// The most recent deployment.
    pub fn last(&self) -> Option<&CodeDeployment> {
        self.entries.back()
    }

    /// Deployments ever recorded, including those no longer kept.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(version: u64, source: InstallSource) -> CodeDeployment {
        CodeDeployment {
            mode: if version == 1 { InstallMode::Install } else { InstallMode::Upgrade },
            source,
            caller: Principal::anonymous(),
            module_hash: [version as u8; 32],
            canister_version: version,
            time: version * 10,
        }
    }

    #[test]
    fn records_in_order_with_source() {
        let store = Principal::from_slice(&[1, 2, 3]);
        let mut h = InstallHistory::default();
        assert!(h.last().is_none());
        h.record(deployment(1, InstallSource::InstallCode));
        h.record(deployment(2, InstallSource::InstallChunkedCode { store }));
        let e = h.entries();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].mode, e[0].source), (InstallMode::Install, InstallSource::InstallCode));
        assert_eq!((e[1].mode, e[1].source), (InstallMode::Upgrade, InstallSource::InstallChunkedCode { store }));
        assert_eq!(h.last(), Some(&e[1]));
        assert_eq!(h.total(), 2);
    }

    #[test]
    fn keeps_only_the_most_recent() {
        let mut h = InstallHistory::default();
        for v in 1..=(MAX_ENTRIES as u64 + 5) {
            h.record(deployment(v, InstallSource::Host));
        }
        let e = h.entries();
        assert_eq!(e.len(), MAX_ENTRIES);
        assert_eq!(e[0].canister_version, 6, "the oldest five were dropped");
        assert_eq!(h.last().map(|d| d.canister_version), Some(MAX_ENTRIES as u64 + 5));
        assert_eq!(h.total(), MAX_ENTRIES as u64 + 5);
    }
}
