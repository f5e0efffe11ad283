//! HTTPS outcalls: who performs a canister's `http_request` or
//! `flexible_http_request` and what the nodes report back. The management
//! canister's side (Candid, limits, fees, the transform, agreement between
//! nodes, a flexible outcall's outcome) is `replica::http_outcall` and
//! `replica::flexible_outcall`; this module only fetches.
//!
//! Two adapters: [`live::LiveAdapter`] makes real requests (rustls, no
//! redirects followed, a timeout, only to the hosts `--allow-outcalls`
//! names), and [`mock::MockAdapter`] holds requests until a PocketIC test
//! mocks them (or, once the instance is live, makes them for real).

pub mod live;
pub mod mock;
pub mod pricing;

use candid::Principal;

use crate::replica::{Reject, RejectCode};

/// The methods an outcall may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
        }
    }
}

/// One outcall as the nodes perform it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Unique per replica (PocketIC's `request_id`).
    pub id: u64,
    /// The subnet making it (the calling canister's).
    pub subnet: Principal,
    pub url: String,
    pub method: Method,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The response limit (headers and body), default 2 MB.
    pub max_response_bytes: u64,
    /// Whether the field was given (PocketIC reports it as given).
    pub max_response_bytes_given: bool,
    /// Which nodes make it and how their responses are combined.
    pub replication: Replication,
    /// Pay-as-you-go pricing (version 2) rather than the legacy fee.
    pub pay_as_you_go: bool,
    /// When the request was made (replica time), for the 60 s timeout.
    pub created_ns: u64,
}

/// Which nodes of the subnet make an outcall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// Every node; the response `n − f` of them agree on is delivered.
    FullyReplicated,
    /// One node (`http_request` with `is_replicated = opt false`).
    NonReplicated,
    /// A committee of `total_requests` nodes (`flexible_http_request`):
    /// between `min_responses` and `max_responses` of their responses are
    /// delivered, each as that node got it.
    Flexible { total_requests: u32, min_responses: u32, max_responses: u32 },
}

impl Replication {
    /// How many nodes make the request.
    pub fn committee(self, subnet_nodes: u32) -> u32 {
        match self {
            Replication::FullyReplicated => subnet_nodes,
            Replication::NonReplicated => 1,
            Replication::Flexible { total_requests, .. } => total_requests,
        }
    }
}

/// A response as a node received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What one node reports: a response, or why it has none.
pub type NodeResult = Result<Response, Reject>;

/// What the nodes reported for a request.
#[derive(Debug)]
pub enum Reported {
    /// One result per reporting node (one entry stands for all nodes), and
    /// how long the request took.
    Nodes { results: Vec<NodeResult>, roundtrip_ms: u64 },
    /// The request failed as a whole (e.g. timed out before any report).
    Failed(Reject),
}

/// What an adapter's `perform` returns: the nodes' reports, later.
pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Reported> + Send>>;

/// Performs outcalls for a replica. `perform` takes the request at once
/// (a mock table lists it from then on) and reports through the future.
pub trait Adapter: Send + Sync {
    fn perform(&self, request: Request) -> Pending;

    /// Resolves once `request` has timed out (the IC's 60 s from its
    /// creation): a flexible outcall whose nodes' reports decide nothing
    /// waits for it. By default 60 s of wall-clock time from now.
    fn expired(&self, request: &Request) -> Expiry {
        let _ = request;
        Box::pin(tokio::time::sleep(std::time::Duration::from_nanos(mock::TIMEOUT_NS)))
    }
}

/// What [`Adapter::expired`] returns.
pub type Expiry = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The reject a node reports, as the IC's adapter words it.
pub(crate) fn node_reject(code: RejectCode, message: impl Into<String>) -> Reject {
    Reject { code, error_code: None, message: message.into() }
}

/// The IC's limit on a reject message carried back (1 KiB).
pub const MAX_REJECT_MESSAGE: usize = 1024;

/// Checks a response against the request's limit as the IC's adapter
/// does: headers first, then headers and body together.
pub fn check_size(response: &Response, limit: u64) -> Result<(), Reject> {
    let headers: u64 = response.headers.iter().map(|(n, v)| (n.len() + v.len()) as u64).sum();
    if headers > limit {
        return Err(node_reject(RejectCode::SysFatal, format!("Header size exceeds specified response size limit {limit}")));
    }
    if headers + response.body.len() as u64 > limit {
        return Err(node_reject(RejectCode::SysFatal, format!("Http body exceeds size limit of {limit} bytes.")));
    }
    Ok(())
}
