//! The certified state of one replica: the state tree agents read
//! (`time`, `request_status`, `canister`, `subnet`, `canister_ranges`), the
//! keys that sign it, and the ingress history. Every front end that
//! answers with certificates (the IC HTTP interface, PocketIC's gateway)
//! and the replica's data certificates go through one [`CertifiedState`].
//!
//! Certification: the tree is kept up to date incrementally (an
//! `ic_certification::NestedTree`: request statuses as they change, each
//! canister's subtree when its fingerprint changes). A certificate is a
//! witness of the asked paths plus `/time`, signed over the *full* tree's
//! root hash; a signature is made once per certified state and reused until
//! the tree changes or its time is [`RECERTIFY_AFTER`] old.

pub mod hash;
pub mod keys;
pub mod requests;
mod tree;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use candid::Principal;
use ic_certification::{Certificate, HashTree, NestedTree};

pub use requests::{Record, RequestStatus, Scope};
pub use tree::ReadError;

use crate::replica::{CallResult, Replica};
use keys::SubnetKeys;

/// A certified state older than this gets a new time (and signature) when
/// next read, so certificates stay fresh (agents refuse stale ones).
pub const RECERTIFY_AFTER: u64 = 1_000_000_000;

/// The state directory key prefix of ingress history records.
const INGRESS_KEY: &[u8] = b"ingress/";

/// One replica's certified state.
pub struct CertifiedState {
    keys: SubnetKeys,
    subnet: Principal,
    /// The canister ids the subnet holds, by index.
    ranges: Vec<std::ops::RangeInclusive<u64>>,
    replica: Replica,
    inner: Mutex<Inner>,
    /// Wakes those waiting for a request to finish.
    finished: tokio::sync::Notify,
}

struct Inner {
    tree: tree::Tree,
    canisters: HashMap<Principal, tree::CanisterEntry>,
    history: requests::History,
    /// The certified time (ns), and whether the tree changed since.
    time: u64,
    dirty: bool,
    /// The last signature: (root hash, signature).
    signed: Option<([u8; 32], Vec<u8>)>,
}

impl CertifiedState {
    /// The certified state of `replica`, a subnet whose keys follow from
    /// `seed` and whose canister ids are `ranges`. The replica's
    /// non-replicated queries get data certificates from it.
    pub fn new(replica: Replica, keys: SubnetKeys, ranges: &[(Principal, Principal)]) -> Arc<Self> {
        let subnet = keys.root.subnet_id();
        let mut tree = NestedTree::default();
        tree::write_subnet(&mut tree, subnet, keys.root.der(), keys.node.node_id(), keys.node.der(), ranges);
        let indexes = ranges
            .iter()
            .filter_map(|(lo, hi)| Some(crate::replica::canister_index(lo)?..=crate::replica::canister_index(hi)?))
            .collect();
        let state = Arc::new(Self {
            keys,
            subnet,
            ranges: indexes,
            replica,
            inner: Mutex::new(Inner { tree, canisters: HashMap::new(), history: Default::default(), time: 0, dirty: true, signed: None }),
            finished: tokio::sync::Notify::new(),
        });
        let weak: std::sync::Weak<dyn crate::replica::certified_view::DataCertificates> = Arc::downgrade(&state) as _;
        state.replica.set_data_certificates(weak);
        let restored: Vec<([u8; 32], Record)> = state
            .replica
            .take_restored_sidecar()
            .into_iter()
            .filter_map(|(key, payload)| {
                let id = <[u8; 32]>::try_from(key.strip_prefix(INGRESS_KEY)?).ok()?;
                match postcard::from_bytes::<Record>(&payload) {
                    Ok(record) => Some((id, record)),
                    Err(e) => {
                        tracing::warn!(request = %hex::encode(id), error = %e, "an ingress history record in the state directory cannot be decoded; it is dropped");
                        None
                    }
                }
            })
            .collect();
        if !restored.is_empty() {
            tracing::info!(requests = restored.len(), "ingress history restored");
            state.restore_history(restored);
        }
        state
    }

    /// Keeps `record` (or its removal) in the state directory with the
    /// replica's next cut.
    fn keep(&self, id: &[u8; 32], record: Option<&Record>) {
        let mut key = INGRESS_KEY.to_vec();
        key.extend_from_slice(id);
        let payload = record.and_then(|r| postcard::to_allocvec(r).ok());
        self.replica.stage_sidecar(key, payload);
    }

    /// The subnet id agents derive from the root key (no delegation).
    pub fn subnet_id(&self) -> Principal {
        self.subnet
    }

    /// Whether `id` is a canister id of this subnet's ranges.
    pub fn holds(&self, id: &Principal) -> bool {
        crate::replica::canister_index(id).is_some_and(|i| self.ranges.iter().any(|r| r.contains(&i)))
    }

    /// The root key, DER (what `/api/v2/status` gives agents).
    pub fn root_key(&self) -> &[u8] {
        self.keys.root.der()
    }

    /// The node that signs query responses.
    pub fn node_id(&self) -> Principal {
        self.keys.node.node_id()
    }

    /// The node's signature of a query response (its `hash_of_map`).
    pub fn sign_response(&self, response_hash: &[u8; 32]) -> Vec<u8> {
        self.keys.node.sign_response(response_hash)
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request's record, if it is in the history.
    pub fn request(&self, id: &[u8; 32]) -> Option<Record> {
        self.lock().history.get(id).cloned()
    }

    /// Adds a new request (status `received`); `false` if the id is known
    /// already (a duplicate, which must not run again).
    pub fn begin_request(&self, id: [u8; 32], sender: Principal, scope: Scope, expiry: u64) -> bool {
        let mut inner = self.lock();
        if inner.history.get(&id).is_some() {
            return false;
        }
        let Inner { tree, history, .. } = &mut *inner;
        history.insert(tree, id, Record { sender, scope, expiry, status: RequestStatus::Received });
        inner.dirty = true;
        true
    }

    /// Drops a request that was not admitted after all.
    pub fn forget_request(&self, id: &[u8; 32]) {
        let mut inner = self.lock();
        let Inner { tree, history, .. } = &mut *inner;
        history.remove(tree, id);
        inner.dirty = true;
    }

    /// Records a request's answer and wakes those waiting for it.
    pub fn finish_request(&self, id: &[u8; 32], result: &CallResult) {
        {
            let mut inner = self.lock();
            let Inner { tree, history, .. } = &mut *inner;
            if let Some(record) = history.finish(tree, id, result) {
                self.keep(id, Some(record));
            }
            inner.dirty = true;
        }
        self.finished.notify_waiters();
    }

    /// Waits until request `id` is finished (or unknown); `false` on timeout.
    pub async fn wait_finished(&self, id: &[u8; 32], timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().history.get(id).is_none_or(|r| r.status.is_finished()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Checks that `reader`, coming through `scope`, may read `paths`.
    pub fn authorize(&self, paths: &[Vec<Vec<u8>>], reader: &Principal, scope: Scope) -> Result<(), ReadError> {
        let canisters = self.replica.certified_canisters();
        let mut inner = self.lock();
        let Inner { tree, canisters: entries, .. } = &mut *inner;
        if tree::sync_canisters(tree, entries, &canisters) {
            inner.dirty = true;
        }
        let controllers = |id: &Principal| canisters.iter().find(|c| c.id == *id).map(|c| c.controllers.clone()).unwrap_or_default();
        tree::authorize(paths, reader, scope, &inner.history, &inner.canisters, controllers)
    }

    /// A certificate (CBOR, self-described) of `paths` and `/time` in the
    /// current state.
    pub fn certificate(&self, paths: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let canisters = self.replica.certified_canisters();
        let now = self.replica.time();
        let mut inner = self.lock();
        let Inner { tree, canisters: entries, history, .. } = &mut *inner;
        let mut changed = tree::sync_canisters(tree, entries, &canisters);
        let (expired, forgotten) = history.expire(tree, now);
        changed |= !expired.is_empty() || !forgotten.is_empty();
        for id in &expired {
            self.keep(id, history.get(id));
        }
        for id in &forgotten {
            self.keep(id, None);
        }
        if changed {
            inner.dirty = true;
        }
        if inner.dirty || now.saturating_sub(inner.time) >= RECERTIFY_AFTER || inner.signed.is_none() {
            // The certified time never goes back.
            inner.time = inner.time.max(now);
            let time = hash::uleb128(inner.time as u128);
            inner.tree.insert(&[b"time".to_vec()], time);
            inner.dirty = false;
        }
        let root = ic_certification::AsHashTree::root_hash(&inner.tree);
        let mut witness: HashTree = inner.tree.witness(&[b"time".to_vec()]);
        for path in paths {
            witness = ic_certification::merge_hash_trees(witness, inner.tree.witness(path));
        }
        let signature = match &inner.signed {
            Some((signed_root, signature)) if *signed_root == root => signature.clone(),
            _ => {
                let signature = self.keys.root.sign_root(&root);
                inner.signed = Some((root, signature.clone()));
                signature
            }
        };
        drop(inner);
        encode_certificate(Certificate { tree: witness, signature, delegation: None })
    }

    /// How many requests the history holds.
    pub fn history_len(&self) -> usize {
        self.lock().history.len()
    }

    /// Every request of the history (for the state directory).
    pub fn history(&self) -> Vec<([u8; 32], Record)> {
        self.lock().history.records().map(|(id, r)| (*id, r.clone())).collect()
    }

    /// Restores requests kept in the state directory.
    pub fn restore_history(&self, records: impl IntoIterator<Item = ([u8; 32], Record)>) {
        let mut inner = self.lock();
        let Inner { tree, history, .. } = &mut *inner;
        for (id, record) in records {
            history.insert(tree, id, record);
        }
        inner.dirty = true;
    }
}

impl crate::replica::certified_view::DataCertificates for CertifiedState {
    fn data_certificate(&self, canister: &Principal) -> Option<Vec<u8>> {
        Some(self.certificate(&[vec![b"canister".to_vec(), canister.as_slice().to_vec(), b"certified_data".to_vec()]]))
    }
}

/// A certificate as agents decode it: a self-described CBOR map.
fn encode_certificate(certificate: Certificate) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing into a Vec cannot fail.
    let _ = ciborium::into_writer(&ciborium::tag::Required::<_, 55799>(certificate), &mut out);
    out
}
