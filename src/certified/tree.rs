//! The state tree's canister and subnet parts, and which paths a reader may
//! ask for. The canister part follows the replica: each certification
//! compares every canister's fingerprint with the last one and rewrites only
//! the subtrees that changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use candid::Principal;
use ic_certification::NestedTree;

use super::requests::{History, Scope};
use crate::replica::certified_view::CertifiedCanister;

pub(super) type Tree = NestedTree<Vec<u8>, Vec<u8>>;

/// What a canister's subtree was written from.
pub(super) struct CanisterEntry {
    version: u64,
    module_hash: Option<[u8; 32]>,
    controllers: Vec<Principal>,
    certified_data: Arc<Vec<u8>>,
    /// Names of its `icp:private` sections (controllers only).
    pub(super) private_metadata: BTreeSet<String>,
}

impl CanisterEntry {
    fn matches(&self, c: &CertifiedCanister) -> bool {
        self.version == c.version && self.module_hash == c.module_hash && self.controllers == c.controllers && Arc::ptr_eq(&self.certified_data, &c.certified_data)
    }
}

/// Brings the `canister` subtree in line with `canisters`; whether it changed.
pub(super) fn sync_canisters(tree: &mut Tree, entries: &mut HashMap<Principal, CanisterEntry>, canisters: &[CertifiedCanister]) -> bool {
    let mut changed = false;
    let present: BTreeSet<Principal> = canisters.iter().map(|c| c.id).collect();
    let gone: Vec<Principal> = entries.keys().filter(|id| !present.contains(id)).copied().collect();
    for id in gone {
        entries.remove(&id);
        tree.delete(&[b"canister".to_vec(), id.as_slice().to_vec()]);
        changed = true;
    }
    for c in canisters {
        if entries.get(&c.id).is_some_and(|e| e.matches(c)) {
            continue;
        }
        let base = [b"canister".to_vec(), c.id.as_slice().to_vec()];
        let metadata_changed = entries.get(&c.id).is_none_or(|e| e.module_hash != c.module_hash);
        let mut private_metadata = entries.get(&c.id).map(|e| e.private_metadata.clone()).unwrap_or_default();
        let at = |leaf: &[&[u8]]| -> Vec<Vec<u8>> { base.iter().cloned().chain(leaf.iter().map(|l| l.to_vec())).collect() };
        tree.insert(&at(&[b"certified_data"]), c.certified_data.to_vec());
        tree.insert(&at(&[b"controllers"]), controllers_cbor(&c.controllers));
        match c.module_hash {
            Some(hash) => tree.insert(&at(&[b"module_hash"]), hash.to_vec()),
            None => tree.delete(&at(&[b"module_hash"])),
        }
        if metadata_changed {
            tree.delete(&at(&[b"metadata"]));
            private_metadata.clear();
            if let Some(module) = &c.module {
                for (name, public, bytes) in crate::replica::install::metadata_sections(module) {
                    if !public {
                        private_metadata.insert(name.clone());
                    }
                    tree.insert(&at(&[b"metadata", name.as_bytes()]), bytes);
                }
            }
        }
        entries.insert(
            c.id,
            CanisterEntry {
                version: c.version,
                module_hash: c.module_hash,
                controllers: c.controllers.clone(),
                certified_data: c.certified_data.clone(),
                private_metadata,
            },
        );
        changed = true;
    }
    changed
}

/// `controllers` as the state tree holds them: a self-described CBOR array
/// of principal blobs.
fn controllers_cbor(controllers: &[Principal]) -> Vec<u8> {
    let list: Vec<ciborium::Value> = controllers.iter().map(|p| ciborium::Value::Bytes(p.as_slice().to_vec())).collect();
    self_described(ciborium::Value::Array(list))
}

/// A CBOR value with the self-describe tag (55799), encoded.
pub(super) fn self_described(value: ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(&ciborium::Value::Tag(55799, Box::new(value)), &mut out);
    out
}

/// The subnet's part of the tree: its key, its canister ranges (flat and
/// sharded layouts), its type and its node's key.
pub(super) fn write_subnet(tree: &mut Tree, subnet: Principal, root_der: &[u8], node: Principal, node_der: &[u8], ranges: &[(Principal, Principal)]) {
    let sid = subnet.as_slice().to_vec();
    let ranges_cbor = self_described(ciborium::Value::Array(
        ranges
            .iter()
            .map(|(lo, hi)| ciborium::Value::Array(vec![ciborium::Value::Bytes(lo.as_slice().to_vec()), ciborium::Value::Bytes(hi.as_slice().to_vec())]))
            .collect(),
    ));
    tree.insert(&[b"subnet".to_vec(), sid.clone(), b"public_key".to_vec()], root_der.to_vec());
    tree.insert(&[b"subnet".to_vec(), sid.clone(), b"canister_ranges".to_vec()], ranges_cbor.clone());
    tree.insert(&[b"subnet".to_vec(), sid.clone(), b"type".to_vec()], b"application".to_vec());
    tree.insert(&[b"subnet".to_vec(), sid.clone(), b"node".to_vec(), node.as_slice().to_vec(), b"public_key".to_vec()], node_der.to_vec());
    if let Some((lo, _)) = ranges.first() {
        tree.insert(&[b"canister_ranges".to_vec(), sid, lo.as_slice().to_vec()], ranges_cbor);
    }
}

/// Why a reader may not have a path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Not the reader's to see (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// No such path in the tree's layout (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A malformed request (HTTP 400).
    #[error("{0}")]
    Malformed(String),
}

/// Checks that `reader`, coming through `scope`, may read every path.
pub(super) fn authorize(paths: &[Vec<Vec<u8>>], reader: &Principal, scope: Scope, history: &History, canisters: &HashMap<Principal, CanisterEntry>, controllers: impl Fn(&Principal) -> Vec<Principal>) -> Result<(), ReadError> {
    let mut request: Option<&[u8]> = None;
    for path in paths {
        let label = |i: usize| path.get(i).map(Vec::as_slice);
        match label(0) {
            None => return Err(ReadError::Malformed("an empty path was requested".into())),
            Some(b"time") => {}
            Some(b"api_boundary_nodes") => {}
            Some(b"subnet") => {}
            Some(b"canister_ranges") if matches!(scope, Scope::Subnet(_)) => {}
            Some(b"canister") => {
                let Scope::Canister(ecid) = scope else {
                    return Err(ReadError::NotFound("canister paths are read through the canister endpoint (/api/v3/canister/<id>/read_state)".into()));
                };
                let Some(cid) = label(1) else {
                    return Err(ReadError::NotFound("Invalid path requested: /canister needs a canister id and a field".into()));
                };
                if cid != ecid.as_slice() {
                    return Err(ReadError::Forbidden(format!(
                        "Effective principal id in URL {ecid} does not match requested canister id: {}",
                        Principal::try_from_slice(cid).map_or_else(|_| hex::encode(cid), |p| p.to_text())
                    )));
                }
                match (label(2), label(3), path.len()) {
                    (Some(b"module_hash" | b"controllers"), None, 3) => {}
                    (Some(b"metadata"), Some(name), 4) => {
                        let name = String::from_utf8_lossy(name);
                        let private = canisters.get(&ecid).is_some_and(|e| e.private_metadata.contains(name.as_ref()));
                        if private && !controllers(&ecid).contains(reader) {
                            return Err(ReadError::Forbidden(format!("Custom section {name} can only be requested by the controllers of the canister.")));
                        }
                    }
                    _ => return Err(ReadError::NotFound(format!("Invalid path requested: {}", display_path(path)))),
                }
            }
            Some(b"request_status") => {
                let Some(id) = label(1) else {
                    return Err(ReadError::NotFound("Invalid path requested: /request_status needs a request id".into()));
                };
                match request {
                    Some(first) if first != id => return Err(ReadError::Malformed("More than one non-unique request ID exists in request_status paths of read_state request.".into())),
                    _ => request = Some(id),
                }
                let Ok(id) = <[u8; 32]>::try_from(id) else {
                    return Err(ReadError::Malformed(format!("a request id is 32 bytes, not {}", id.len())));
                };
                if let Some(record) = history.get(&id) {
                    if record.sender != *reader {
                        return Err(ReadError::Forbidden("Request IDs must be for requests signed by the caller.".into()));
                    }
                    if record.scope != scope {
                        return Err(ReadError::Forbidden("Request IDs must be for requests sent to the effective canister or subnet of this read_state request.".into()));
                    }
                }
            }
            Some(_) => return Err(ReadError::NotFound(format!("Invalid path requested: {}", display_path(path)))),
        }
    }
    Ok(())
}

fn display_path(path: &[Vec<u8>]) -> String {
    path.iter()
        .map(|l| match std::str::from_utf8(l) {
            Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => s.to_string(),
            _ => hex::encode(l),
        })
        .fold(String::new(), |acc, l| acc + "/" + &l)
}
