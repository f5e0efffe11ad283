//! The PocketIC wire's canister HTTP outcall bodies: a pending outcall
//! (`read/get_canister_http`) and its mocks (`update/mock_canister_http`,
//! `update/mock_flexible_canister_http`), with their conversions to and
//! from `crate::outcalls`.

use serde::{Deserialize, Serialize};

use super::{RawSubnetId, b64};

#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CanisterHttpMethod {
    GET,
    POST,
    HEAD,
    PUT,
    DELETE,
    PATCH,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CanisterHttpHeader {
    pub name: String,
    pub value: String,
}

/// One pending outcall (`read/get_canister_http` replies a list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCanisterHttpRequest {
    pub subnet_id: RawSubnetId,
    pub request_id: u64,
    pub http_method: CanisterHttpMethod,
    pub url: String,
    pub headers: Vec<CanisterHttpHeader>,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    pub max_response_bytes: Option<u64>,
    /// 16.x: how the outcall is replicated (13.x clients ignore it).
    pub replication: CanisterHttpReplication,
    /// 16.x: `Legacy` or `PayAsYouGo` (13.x clients ignore it).
    pub pricing_version: CanisterHttpPricingVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanisterHttpReplication {
    FullyReplicated,
    NonReplicated,
    /// `{"Flexible": {...}}`: mocked with `mock_flexible_canister_http`.
    Flexible { total_requests: u32, min_responses: u32, max_responses: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanisterHttpPricingVersion {
    Legacy,
    PayAsYouGo,
}

impl From<crate::outcalls::Request> for RawCanisterHttpRequest {
    fn from(r: crate::outcalls::Request) -> Self {
        use crate::outcalls::{Method, Replication};
        Self {
            subnet_id: RawSubnetId { subnet_id: r.subnet.as_slice().to_vec() },
            request_id: r.id,
            http_method: match r.method {
                Method::Get => CanisterHttpMethod::GET,
                Method::Head => CanisterHttpMethod::HEAD,
                Method::Post => CanisterHttpMethod::POST,
                Method::Put => CanisterHttpMethod::PUT,
                Method::Delete => CanisterHttpMethod::DELETE,
                _ => CanisterHttpMethod::PATCH,
            },
            url: r.url,
            headers: r.headers.into_iter().map(|(name, value)| CanisterHttpHeader { name, value }).collect(),
            body: r.body,
            max_response_bytes: r.max_response_bytes_given.then_some(r.max_response_bytes),
            replication: match r.replication {
                Replication::FullyReplicated => CanisterHttpReplication::FullyReplicated,
                Replication::NonReplicated => CanisterHttpReplication::NonReplicated,
                Replication::Flexible { total_requests, min_responses, max_responses } => {
                    CanisterHttpReplication::Flexible { total_requests, min_responses, max_responses }
                }
            },
            pricing_version: if r.pay_as_you_go { CanisterHttpPricingVersion::PayAsYouGo } else { CanisterHttpPricingVersion::Legacy },
        }
    }
}

impl CanisterHttpResponse {
    /// The response as the outcalls' mock table takes it.
    pub fn into_mocked(self) -> crate::outcalls::mock::Mocked {
        use crate::outcalls::mock::Mocked;
        match self {
            CanisterHttpResponse::CanisterHttpReply(r) => Mocked::Reply(crate::outcalls::Response {
                status: r.status,
                headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body: r.body,
            }),
            CanisterHttpResponse::CanisterHttpReject(r) => Mocked::Reject { code: r.reject_code, message: r.message },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterHttpReply {
    pub status: u16,
    pub headers: Vec<CanisterHttpHeader>,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterHttpReject {
    pub reject_code: u64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanisterHttpResponse {
    CanisterHttpReply(CanisterHttpReply),
    CanisterHttpReject(CanisterHttpReject),
}

/// `update/mock_canister_http` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMockCanisterHttpResponse {
    pub subnet_id: RawSubnetId,
    pub request_id: u64,
    pub response: CanisterHttpResponse,
    #[serde(default)]
    pub additional_responses: Vec<CanisterHttpResponse>,
}

/// `update/mock_flexible_canister_http` body: one response per committee
/// node that answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMockFlexibleCanisterHttpResponse {
    pub subnet_id: RawSubnetId,
    pub request_id: u64,
    pub responses: Vec<CanisterHttpResponse>,
}
