//! The narrow view the certified state (`crate::certified`) has of the
//! replica: what each canister contributes to the state tree, and the hook
//! through which non-replicated queries get their data certificate.

use std::sync::{Arc, Weak};

use candid::Principal;

use super::Replica;

/// What one canister contributes to the certified state tree.
#[derive(Clone, Debug)]
pub struct CertifiedCanister {
    pub id: Principal,
    /// Bumped by every change to the canister (with `certified_data` below,
    /// enough to tell whether its subtree changed).
    pub version: u64,
    pub module_hash: Option<[u8; 32]>,
    /// The module as installed (its `icp:*` sections are the metadata).
    pub module: Option<Arc<[u8]>>,
    pub controllers: Vec<Principal>,
    pub certified_data: Arc<Vec<u8>>,
}

/// Who makes data certificates for non-replicated queries.
pub trait DataCertificates: Send + Sync {
    /// A certificate of `canister`'s certified data and the time; `None`
    /// when none can be made.
    fn data_certificate(&self, canister: &Principal) -> Option<Vec<u8>>;
}

impl Replica {
    /// Every canister's part of the certified state, in id order.
    pub fn certified_canisters(&self) -> Vec<CertifiedCanister> {
        let st = self.lock();
        st.canisters
            .iter()
            .map(|(id, slot)| CertifiedCanister {
                id: *id,
                version: slot.version,
                module_hash: slot.module_hash,
                module: slot.module.clone(),
                controllers: slot.controllers.clone(),
                certified_data: slot.certified_data.clone(),
            })
            .collect()
    }

    /// Keeps a record of the node's beside the replica's state (the ingress
    /// history): written (`Some`) or deleted (`None`) by the next cut, so it
    /// is durable once [`Replica::persisted`] resolves. Without a state
    /// directory nothing is kept.
    pub fn stage_sidecar(&self, key: Vec<u8>, record: Option<Vec<u8>>) {
        if self.is_durable() {
            self.lock().sidecar.push((key, record));
        }
    }

    /// The node's records the state directory held at start (once).
    pub fn take_restored_sidecar(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        std::mem::take(&mut *self.inner.restored_sidecar.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes `source` the maker of data certificates (held weakly: the
    /// certified state holds the replica, not the other way round).
    pub fn set_data_certificates(&self, source: Weak<dyn DataCertificates>) {
        if self.inner.data_certificates.set(source).is_err() {
            tracing::warn!("the replica already has a maker of data certificates; keeping the first");
        }
    }
}

/// A data certificate made only if the query asks for it (most never do,
/// and making one may sign).
#[derive(Clone)]
pub struct LazyCertificate {
    source: Arc<dyn DataCertificates>,
    canister: Principal,
    made: Arc<std::sync::OnceLock<Option<Vec<u8>>>>,
}

impl LazyCertificate {
    /// The certificate (made on first use).
    pub fn get(&self) -> Option<&[u8]> {
        self.made.get_or_init(|| self.source.data_certificate(&self.canister)).as_deref()
    }
}

impl std::fmt::Debug for LazyCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCertificate").field("canister", &self.canister).field("made", &self.made.get().is_some()).finish()
    }
}

/// The data certificate a non-replicated query of `canister` sees.
pub(super) fn data_certificate(inner: &super::scheduler::Inner, canister: &Principal) -> Option<LazyCertificate> {
    let source = inner.data_certificates.get()?.upgrade()?;
    Some(LazyCertificate { source, canister: *canister, made: Default::default() })
}
