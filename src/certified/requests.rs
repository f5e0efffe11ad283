//! The ingress history: each update call's status by request id, as the
//! state tree's `request_status/<id>` subtree shows it (received, then
//! replied or rejected, then done once its expiry has passed), and who may
//! read it. A record is kept for [`RETAIN_AFTER_EXPIRY`] past the call's
//! expiry, then forgotten.

use std::collections::{BTreeSet, HashMap};

use candid::Principal;
use ic_certification::NestedTree;

use super::hash::uleb128;
use crate::replica::{CallResult, Reject};

/// How long a finished request's status stays after its expiry.
pub const RETAIN_AFTER_EXPIRY: u64 = 5 * 60 * 1_000_000_000;

/// Where a request was sent: the effective canister or subnet of its
/// endpoint (read_state of its status must come through the same scope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    Canister(Principal),
    Subnet(Principal),
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequestStatus {
    Received,
    Replied(Vec<u8>),
    Rejected(Reject),
    /// Finished and expired: the answer is gone.
    Done,
}

impl RequestStatus {
    pub fn is_finished(&self) -> bool {
        !matches!(self, RequestStatus::Received)
    }
}

/// One request of the history.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub sender: Principal,
    pub scope: Scope,
    pub expiry: u64,
    pub status: RequestStatus,
}

#[derive(Default)]
pub(super) struct History {
    records: HashMap<[u8; 32], Record>,
    /// (expiry, id) of requests not yet done.
    expiring: BTreeSet<(u64, [u8; 32])>,
    /// (forget at, id) of requests done.
    forgetting: BTreeSet<(u64, [u8; 32])>,
}

const REQUEST_STATUS: &[u8] = b"request_status";

impl History {
    pub(super) fn get(&self, id: &[u8; 32]) -> Option<&Record> {
        self.records.get(id)
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Adds a record (a new request, or one restored from disk).
    pub(super) fn insert(&mut self, tree: &mut NestedTree<Vec<u8>, Vec<u8>>, id: [u8; 32], record: Record) {
        if record.status == RequestStatus::Done {
            self.forgetting.insert((record.expiry.saturating_add(RETAIN_AFTER_EXPIRY), id));
        } else {
            self.expiring.insert((record.expiry, id));
        }
        write_status(tree, &id, &record.status);
        self.records.insert(id, record);
    }

    /// Forgets a request at once.
    pub(super) fn remove(&mut self, tree: &mut NestedTree<Vec<u8>, Vec<u8>>, id: &[u8; 32]) {
        if let Some(record) = self.records.remove(id) {
            self.expiring.remove(&(record.expiry, *id));
            tree.delete(&[REQUEST_STATUS.to_vec(), id.to_vec()]);
        }
    }

    /// Records the answer of a request.
    pub(super) fn finish(&mut self, tree: &mut NestedTree<Vec<u8>, Vec<u8>>, id: &[u8; 32], result: &CallResult) -> Option<&Record> {
        let record = self.records.get_mut(id)?;
        if record.status.is_finished() {
            return Some(record);
        }
        record.status = match result {
            Ok(reply) => RequestStatus::Replied(reply.clone()),
            Err(reject) => RequestStatus::Rejected(reject.clone()),
        };
        write_status(tree, id, &record.status);
        Some(record)
    }

    /// Moves expired finished requests to done and forgets old ones: the
    /// ids made done, and those forgotten.
    pub(super) fn expire(&mut self, tree: &mut NestedTree<Vec<u8>, Vec<u8>>, now: u64) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
        let (mut done, mut forgotten) = (Vec::new(), Vec::new());
        while let Some(&(expiry, id)) = self.expiring.first() {
            if expiry >= now {
                break;
            }
            let finished = self.records.get(&id).is_some_and(|r| r.status.is_finished());
            if !finished {
                // Still running: it becomes done once answered after expiry.
                break;
            }
            self.expiring.pop_first();
            if let Some(record) = self.records.get_mut(&id) {
                record.status = RequestStatus::Done;
                write_status(tree, &id, &RequestStatus::Done);
                done.push(id);
            }
            self.forgetting.insert((expiry.saturating_add(RETAIN_AFTER_EXPIRY), id));
        }
        while let Some(&(at, id)) = self.forgetting.first() {
            if at >= now {
                break;
            }
            self.forgetting.pop_first();
            self.records.remove(&id);
            tree.delete(&[REQUEST_STATUS.to_vec(), id.to_vec()]);
            forgotten.push(id);
        }
        (done, forgotten)
    }

    /// Every record, for the state directory.
    pub(super) fn records(&self) -> impl Iterator<Item = (&[u8; 32], &Record)> {
        self.records.iter()
    }
}

/// Writes `request_status/<id>` as the spec lays it out.
fn write_status(tree: &mut NestedTree<Vec<u8>, Vec<u8>>, id: &[u8; 32], status: &RequestStatus) {
    let base = [REQUEST_STATUS.to_vec(), id.to_vec()];
    tree.delete(&base);
    let path = |leaf: &str| [base[0].clone(), base[1].clone(), leaf.as_bytes().to_vec()];
    match status {
        RequestStatus::Received => tree.insert(&path("status"), b"received".to_vec()),
        RequestStatus::Replied(reply) => {
            tree.insert(&path("status"), b"replied".to_vec());
            tree.insert(&path("reply"), reply.clone());
        }
        RequestStatus::Rejected(reject) => {
            tree.insert(&path("status"), b"rejected".to_vec());
            tree.insert(&path("reject_code"), uleb128(reject.code as u128));
            tree.insert(&path("reject_message"), reject.message.clone().into_bytes());
            tree.insert(&path("error_code"), error_code(reject).into_bytes());
        }
        RequestStatus::Done => tree.insert(&path("status"), b"done".to_vec()),
    }
}

/// The `IC0xxx` code of a reject (a canister's own reject is IC0406, as on
/// the IC).
pub fn error_code(reject: &Reject) -> String {
    match reject.error_code {
        Some(code) => code.to_string(),
        None => "IC0406".to_string(),
    }
}
