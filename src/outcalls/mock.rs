//! PocketIC's outcalls: a request waits until the test mocks it
//! (`update/mock_canister_http`, one response for every node or one per
//! node), or times out 60 s of instance time after it was made. A request
//! is listed (`read/get_canister_http`) from the round after the one that
//! made it, as PocketIC lists it. Once the instance is live, pending and
//! new requests are made for real instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{Adapter, NodeResult, Reported, Request, node_reject};
use crate::replica::RejectCode;

/// The IC's consensus timeout for an outcall.
pub const TIMEOUT_NS: u64 = 60_000_000_000;

struct Pending {
    request: Request,
    listed: bool,
    answer: oneshot::Sender<Reported>,
}

#[derive(Default)]
struct Table {
    pending: BTreeMap<u64, Pending>,
    /// Makes requests for real once the instance is live.
    live: Option<Arc<dyn Adapter>>,
}

/// Why a mock was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MockError {
    #[error("no canister HTTP outcall {0} is pending on subnet {1}")]
    NotPending(u64, candid::Principal),
    #[error("InvalidMockCanisterHttpResponses({0}, {1}): {0} responses were mocked for a subnet of {1} nodes (give one, or one per node)")]
    WrongCount(usize, u32),
    #[error("a mocked reject code must be 1 to 6, got {0}")]
    RejectCode(u64),
    #[error("a mocked reject message is {0} bytes, more than the 1 KiB a node sends")]
    RejectTooLong(usize),
}

/// The outcalls of one PocketIC instance.
#[derive(Default)]
pub struct MockAdapter {
    table: Mutex<Table>,
}

/// A mocked response, as the wire gives it.
pub enum Mocked {
    Reply(super::Response),
    Reject { code: u64, message: String },
}

impl MockAdapter {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests waiting for a mock, listed or not.
    pub fn waiting(&self) -> usize {
        self.table().pending.len()
    }

    /// The requests a test can mock now.
    pub fn listed(&self) -> Vec<Request> {
        self.table().pending.values().filter(|p| p.listed).map(|p| p.request.clone()).collect()
    }

    /// A round ran at `now_ns`: requests made before it are listed, and
    /// those older than the timeout fail.
    pub fn tick(&self, now_ns: u64) {
        let mut table = self.table();
        let expired: Vec<u64> = table.pending.values().filter(|p| now_ns >= p.request.created_ns.saturating_add(TIMEOUT_NS)).map(|p| p.request.id).collect();
        for id in expired {
            if let Some(p) = table.pending.remove(&id) {
                let _ = p.answer.send(Reported::Failed(node_reject(RejectCode::SysTransient, "Canister http request timed out")));
            }
        }
        for p in table.pending.values_mut() {
            p.listed = true;
        }
    }

    /// Answers request `id` with `responses` (one for every node, or one per
    /// node of a subnet of `nodes`).
    pub fn mock(&self, id: u64, subnet: candid::Principal, responses: Vec<Mocked>, nodes: u32) -> Result<(), MockError> {
        let mut table = self.table();
        let pending = table.pending.get(&id).filter(|p| p.request.subnet == subnet && p.listed).ok_or(MockError::NotPending(id, subnet))?;
        if responses.len() != 1 && responses.len() != nodes as usize {
            return Err(MockError::WrongCount(responses.len(), nodes));
        }
        let _ = pending;
        let mut results: Vec<NodeResult> = Vec::with_capacity(responses.len());
        for r in responses {
            results.push(match r {
                Mocked::Reply(response) => Ok(response),
                Mocked::Reject { code, message } => {
                    let code = u32::try_from(code).ok().and_then(RejectCode::from_u32).ok_or(MockError::RejectCode(code))?;
                    if message.len() > super::MAX_REJECT_MESSAGE {
                        return Err(MockError::RejectTooLong(message.len()));
                    }
                    Err(node_reject(code, message))
                }
            });
        }
        if let Some(p) = table.pending.remove(&id) {
            let _ = p.answer.send(Reported::Nodes { results, roundtrip_ms: 0 });
        }
        Ok(())
    }

    /// From now on requests are made for real by `adapter` (the instance
    /// went live); pending ones too.
    pub fn go_live(&self, adapter: Arc<dyn Adapter>) {
        let pending: Vec<Pending> = {
            let mut table = self.table();
            table.live = Some(adapter.clone());
            std::mem::take(&mut table.pending).into_values().collect()
        };
        for p in pending {
            let adapter = adapter.clone();
            let report = adapter.perform(p.request);
            tokio::spawn(async move {
                let _ = p.answer.send(report.await);
            });
        }
    }

    /// Drops every pending request (the instance is deleted): each fails.
    pub fn clear(&self) {
        self.table().pending.clear();
    }

    /// Back to mocking (auto progress stopped).
    pub fn stop_live(&self) {
        self.table().live = None;
    }
}

impl Adapter for MockAdapter {
    fn perform(&self, request: Request) -> super::Pending {
        let mut table = self.table();
        if let Some(live) = table.live.clone() {
            drop(table);
            return live.perform(request);
        }
        let (tx, rx) = oneshot::channel();
        table.pending.insert(request.id, Pending { request, listed: false, answer: tx });
        Box::pin(async move { rx.await.unwrap_or_else(|_| Reported::Failed(node_reject(RejectCode::SysTransient, "the PocketIC instance was deleted"))) })
    }
}
