//! PocketIC's outcalls: a request waits until the test mocks it
//! (`update/mock_canister_http`, one response for every node or one per
//! node; `update/mock_flexible_canister_http`, one per committee node of a
//! flexible outcall, at most `total_requests`, all in one call), or times
//! out 60 s of instance time after it was made. A request is listed
//! (`read/get_canister_http`) from the round after the one that made it,
//! as PocketIC lists it, until something is mocked for it. A flexible
//! outcall whose mocked responses decide nothing waits here for its
//! timeout ([`Adapter::expired`]). Once the instance is live, pending and
//! new requests are made for real instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{Adapter, NodeResult, Replication, Reported, Request, node_reject};
use crate::replica::RejectCode;

/// The IC's consensus timeout for an outcall.
pub const TIMEOUT_NS: u64 = 60_000_000_000;

struct Pending {
    request: Request,
    listed: bool,
    answer: oneshot::Sender<Reported>,
}

/// A flexible outcall waiting for its timeout.
struct Expiring {
    created_ns: u64,
    fire: oneshot::Sender<()>,
}

#[derive(Default)]
struct Table {
    pending: BTreeMap<u64, Pending>,
    /// By request id.
    expiring: BTreeMap<u64, Expiring>,
    /// Makes requests for real once the instance is live.
    live: Option<Arc<dyn Adapter>>,
}

/// Why a mock was refused (named as PocketIC names the error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MockError {
    #[error("InvalidCanisterHttpRequestId: no canister HTTP outcall {0} is pending on subnet {1}")]
    NotPending(u64, candid::Principal),
    #[error("InvalidMockCanisterHttpResponses(({0}, {1})): {0} responses were mocked for a subnet of {1} nodes (give one, or one per node)")]
    WrongCount(usize, u32),
    #[error("TooManyMockCanisterHttpResponses(({0}, {1})): {0} responses were mocked for a flexible outcall made by {1} nodes")]
    TooManyResponses(usize, u32),
    #[error("NotAFlexibleCanisterHttpRequest: outcall {0} was made with http_request; mock it with mock_canister_http")]
    NotFlexible(u64),
    #[error("InvalidRejectCode({0}): a mocked reject code must be 1 to 6")]
    RejectCode(u64),
    #[error("CanisterHttpRejectMessageTooLong(({0}, {max})): a mocked reject message is more than the 1 KiB a node sends", max = super::MAX_REJECT_MESSAGE)]
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

    /// Requests waiting for a mock, listed or not, or (flexible) for
    /// their timeout.
    pub fn waiting(&self) -> usize {
        let table = self.table();
        table.pending.len() + table.expiring.len()
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
        let expired: Vec<u64> = table.expiring.iter().filter(|(_, e)| now_ns >= e.created_ns.saturating_add(TIMEOUT_NS)).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(e) = table.expiring.remove(&id) {
                let _ = e.fire.send(());
            }
        }
        for p in table.pending.values_mut() {
            p.listed = true;
        }
    }

    /// Answers request `id` with `responses` (one for every node, or one per
    /// node of a subnet of `nodes`). A flexible outcall takes it too: its
    /// committee reports the one response, or the first `total_requests` of
    /// the subnet's (the rest are ignored, as PocketIC ignores them).
    pub fn mock(&self, id: u64, subnet: candid::Principal, responses: Vec<Mocked>, nodes: u32) -> Result<(), MockError> {
        let mut table = self.table();
        let pending = table.pending.get(&id).filter(|p| p.request.subnet == subnet && p.listed).ok_or(MockError::NotPending(id, subnet))?;
        if responses.len() != 1 && responses.len() != nodes as usize {
            return Err(MockError::WrongCount(responses.len(), nodes));
        }
        let mut results = node_results(responses)?;
        if let Replication::Flexible { total_requests, .. } = pending.request.replication {
            let committee = total_requests as usize;
            results = if results.len() == 1 { results.iter().cycle().take(committee).cloned().collect() } else { results.into_iter().take(committee).collect() };
        }
        if let Some(p) = table.pending.remove(&id) {
            let _ = p.answer.send(Reported::Nodes { results, roundtrip_ms: 0 });
        }
        Ok(())
    }

    /// Answers flexible outcall `id` with one response per committee node
    /// that responded (at most `total_requests`; the others stay silent).
    pub fn mock_flexible(&self, id: u64, subnet: candid::Principal, responses: Vec<Mocked>) -> Result<(), MockError> {
        let mut table = self.table();
        let pending = table.pending.get(&id).filter(|p| p.request.subnet == subnet && p.listed).ok_or(MockError::NotPending(id, subnet))?;
        let Replication::Flexible { total_requests, .. } = pending.request.replication else {
            return Err(MockError::NotFlexible(id));
        };
        if responses.len() > total_requests as usize {
            return Err(MockError::TooManyResponses(responses.len(), total_requests));
        }
        let results = node_results(responses)?;
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
        let mut table = self.table();
        table.pending.clear();
        table.expiring.clear();
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

    /// Fires on the first round at or past the request's timeout (or when
    /// the instance is deleted).
    fn expired(&self, request: &Request) -> super::Expiry {
        let (tx, rx) = oneshot::channel();
        self.table().expiring.insert(request.id, Expiring { created_ns: request.created_ns, fire: tx });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// The mocked responses as the nodes report them, each checked to be one a
/// node could have reported.
fn node_results(responses: Vec<Mocked>) -> Result<Vec<NodeResult>, MockError> {
    responses
        .into_iter()
        .map(|r| match r {
            Mocked::Reply(response) => Ok(Ok(response)),
            Mocked::Reject { code, message } => {
                let code = u32::try_from(code).ok().and_then(RejectCode::from_u32).ok_or(MockError::RejectCode(code))?;
                if message.len() > super::MAX_REJECT_MESSAGE {
                    return Err(MockError::RejectTooLong(message.len()));
                }
                Ok(Err(node_reject(code, message)))
            }
        })
        .collect()
}
