//! The management canister's `http_request`: Candid, the IC's limits and
//! errors, the fee (legacy or pay-as-you-go), then the outcall through the
//! replica's [`crate::outcalls::Adapter`], the canister's transform run
//! on every node's response (a query, caller `aaaaa-aa`), the size checks,
//! and agreement between nodes (`n − f` equal responses) before the reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use candid::{CandidType, Deserialize, Nat, Principal};
use serde_bytes::ByteBuf;

use super::management::{decode, encode};
use super::{CallResult, ErrorCode, Reject, RejectCode, Replica, ReplyTo};
use crate::outcalls::{self, Adapter, Method, NodeResult, Replication, Reported, pricing};

/// The largest request and response (`max_response_bytes` cap and default).
pub const MAX_BYTES: u64 = 2_000_000;
const MAX_URL: usize = 8_192;
const MAX_HEADERS: usize = 64;
const MAX_HEADER_FIELD: usize = 8_192;
const MAX_HEADERS_TOTAL: usize = 49_152;

/// Where a replica's outcalls go.
pub struct Outcalls {
    pub(super) adapter: Arc<dyn Adapter>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) next_id: AtomicU64,
    /// Outcalls started and not yet answered to their canister.
    pub(super) outstanding: Arc<AtomicUsize>,
}

impl Outcalls {
    pub fn new(adapter: Arc<dyn Adapter>, runtime: tokio::runtime::Handle) -> Self {
        Self { adapter, runtime, next_id: AtomicU64::new(0), outstanding: Arc::default() }
    }

    /// Outcalls started and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }
}

impl Replica {
    /// Outcalls (`http_request`) go through `adapter`, finished on
    /// `runtime`; without this they are refused. Set once.
    pub fn set_outcalls(&self, adapter: Arc<dyn Adapter>, runtime: tokio::runtime::Handle) {
        let _ = self.inner.outcalls.set(Outcalls::new(adapter, runtime));
    }

    /// Outcalls started and not yet answered to their canister.
    pub fn outcalls_outstanding(&self) -> usize {
        self.inner.outcalls.get().map_or(0, Outcalls::outstanding)
    }
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HttpMethod {
    #[serde(rename = "get")]
    Get,
    #[serde(rename = "head")]
    Head,
    #[serde(rename = "post")]
    Post,
    #[serde(rename = "put")]
    Put,
    #[serde(rename = "delete")]
    Delete,
    #[serde(rename = "patch")]
    Patch,
}

candid::define_function!(pub(super) TransformFunc : (TransformArgs) -> (HttpRequestResult) query);

#[derive(CandidType, Deserialize, Clone, Debug)]
pub(super) struct TransformContext {
    pub(super) function: TransformFunc,
    pub(super) context: ByteBuf,
}

impl HttpMethod {
    /// The method as the adapter makes it.
    pub(super) fn method(self) -> Method {
        match self {
            HttpMethod::Get => Method::Get,
            HttpMethod::Head => Method::Head,
            HttpMethod::Post => Method::Post,
            HttpMethod::Put => Method::Put,
            HttpMethod::Delete => Method::Delete,
            HttpMethod::Patch => Method::Patch,
        }
    }

    /// PUT, DELETE and PATCH: allowed only where nodes do not repeat them.
    pub(super) fn is_unsafe(self) -> bool {
        matches!(self, HttpMethod::Put | HttpMethod::Delete | HttpMethod::Patch)
    }
}

#[derive(CandidType, Deserialize, Debug)]
struct HttpRequestArgs {
    url: String,
    max_response_bytes: Option<u64>,
    method: HttpMethod,
    headers: Vec<HttpHeader>,
    body: Option<ByteBuf>,
    transform: Option<TransformContext>,
    is_replicated: Option<bool>,
    pricing_version: Option<u32>,
}

/// `http_request_result`, what the canister gets (and the transform takes).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpRequestResult {
    pub status: Nat,
    pub headers: Vec<HttpHeader>,
    pub body: ByteBuf,
}

#[derive(CandidType, Deserialize)]
pub(super) struct TransformArgs {
    response: HttpRequestResult,
    context: ByteBuf,
}

pub(super) fn rejected(message: impl Into<String>) -> Reject {
    Reject::system(ErrorCode::CanisterRejectedMessage, message)
}

/// The calling canister's subnet: its id and size.
pub(super) fn subnet_of(replica: &Replica, caller: &Principal) -> (Principal, u32) {
    let index = super::canister_index(caller);
    let subnets = &replica.inner.config.subnets;
    subnets
        .iter()
        .find(|s| index.is_some_and(|i| s.canisters.contains(&i)))
        .or(subnets.first())
        .map_or((super::exec::subnet_id(), 13), |s| (s.id, s.nodes))
}

/// The size the IC prices a request by: the URL, the headers, the body
/// and the transform's method name and context.
pub(super) fn request_bytes(url: &str, headers: &[HttpHeader], body: Option<&ByteBuf>, transform: Option<&TransformContext>) -> u64 {
    let headers: usize = headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    let transform = transform.map_or(0, |t| t.function.0.method.len() + t.context.len());
    (url.len() + headers + body.map_or(0, |b| b.len()) + transform) as u64
}

/// `max_response_bytes` at most 2 MB.
pub(super) fn check_max_response_bytes(max_response_bytes: Option<u64>) -> Result<(), Reject> {
    match max_response_bytes {
        Some(max) if max > MAX_BYTES => Err(rejected(format!("max_response_bytes expected to be in the range [0..{MAX_BYTES}], got {max}"))),
        _ => Ok(()),
    }
}

pub(super) fn check_url(url: &str) -> Result<(), Reject> {
    if url.len() > MAX_URL {
        return Err(rejected(format!("url size {} exceeds {MAX_URL}", url.len())));
    }
    Ok(())
}

/// The IC's limits on the request's headers and body, in its order.
pub(super) fn check_headers_and_body(headers: &[HttpHeader], body: Option<&ByteBuf>) -> Result<(), Reject> {
    if headers.len() > MAX_HEADERS {
        return Err(rejected(format!("number of all http headers {} exceeds {MAX_HEADERS}", headers.len())));
    }
    let mut total = 0;
    for h in headers {
        if h.name.len() > MAX_HEADER_FIELD {
            return Err(rejected(format!("number of bytes to represent some http header name {} exceeds {MAX_HEADER_FIELD}", h.name.len())));
        }
        if h.value.len() > MAX_HEADER_FIELD {
            return Err(rejected(format!("number of bytes to represent some http header value {} exceeds {MAX_HEADER_FIELD}", h.value.len())));
        }
        total += h.name.len() + h.value.len();
    }
    if total > MAX_HEADERS_TOTAL {
        return Err(rejected(format!("total number of bytes to represent all http header names and values {total} exceeds {MAX_HEADERS_TOTAL}")));
    }
    let with_body = total + body.map_or(0, |b| b.len());
    if with_body as u64 > MAX_BYTES {
        return Err(rejected(format!(
            "total number of bytes to represent all http header names and values and http body {with_body} exceeds {MAX_BYTES}"
        )));
    }
    Ok(())
}

/// The transform must be a query of the calling canister.
pub(super) fn check_transform(transform: Option<&TransformContext>, caller: &Principal) -> Result<(), Reject> {
    match transform {
        Some(t) if t.function.0.principal != *caller => {
            Err(rejected(format!("transform principal id expected to be {caller}, got {}", t.function.0.principal)))
        }
        _ => Ok(()),
    }
}

/// The IC's checks of an outcall's argument, in its order.
fn validate(args: &HttpRequestArgs, caller: &Principal) -> Result<(), Reject> {
    check_max_response_bytes(args.max_response_bytes)?;
    check_url(&args.url)?;
    check_headers_and_body(&args.headers, args.body.as_ref())?;
    check_transform(args.transform.as_ref(), caller)?;
    if args.method.is_unsafe() && args.is_replicated != Some(false) {
        return Err(rejected("The requested HTTP method is only allowed for non-replicated requests."));
    }
    Ok(())
}

/// Starts `http_request` from canister `caller` with `cycles` attached;
/// the answer goes to `reply` when the nodes have reported.
pub(super) fn start(replica: &Replica, caller: Principal, arg: &[u8], cycles: u64, reply: ReplyTo) -> Result<(), (Reject, ReplyTo)> {
    let args: HttpRequestArgs = match decode("http_request", arg) {
        Ok(a) => a,
        Err(e) => return Err((e, reply)),
    };
    if let Err(e) = validate(&args, &caller) {
        return Err((e, reply));
    }
    let (subnet, nodes) = subnet_of(replica, &caller);
    let replicated = args.is_replicated != Some(false);
    // Any pricing version but 2 is the legacy one, as on the IC.
    let pay_as_you_go = args.pricing_version == Some(2);
    let max_response_bytes = args.max_response_bytes.unwrap_or(MAX_BYTES);
    let req_bytes = request_bytes(&args.url, &args.headers, args.body.as_ref(), args.transform.as_ref());
    // A subnet that charges nothing for messages (Free, or a system
    // subnet) charges nothing for outcalls either.
    let charged = replica.fees_of(&caller).charges();
    let up_front = match (charged, pay_as_you_go) {
        (false, _) => 0,
        (true, true) => pricing::base_fee(nodes, req_bytes, replicated),
        (true, false) => pricing::legacy_fee(nodes, req_bytes, max_response_bytes),
    };
    if u128::from(cycles) < up_front {
        return Err((rejected(format!("http_request request sent with {cycles} cycles, but {up_front} cycles are required.")), reply));
    }
    let Some(service) = replica.inner.outcalls.get() else {
        return Err((no_outcalls(&args.url), reply));
    };
    let request = outcalls::Request {
        id: service.next_id.fetch_add(1, Ordering::Relaxed),
        subnet,
        url: args.url.clone(),
        method: args.method.method(),
        headers: args.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect(),
        body: args.body.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
        max_response_bytes,
        max_response_bytes_given: args.max_response_bytes.is_some(),
        replication: if replicated { Replication::FullyReplicated } else { Replication::NonReplicated },
        pay_as_you_go,
        created_ns: replica.time(),
    };
    let replica = replica.clone();
    let transform = args.transform.map(|t| (t.function.0.method, t.context.into_vec()));
    let id = request.id;
    // Taken at once: a PocketIC test lists it from the next round.
    let report = service.adapter.perform(request);
    let outstanding = service.outstanding.clone();
    outstanding.fetch_add(1, Ordering::SeqCst);
    service.runtime.spawn(async move {
        let _done = Decrement(outstanding);
        let reported = report.await;
        let outcome = settle(&replica, caller, id, max_response_bytes, transform, reported).await;
        let fee = match &outcome {
            Ok((_, usage)) if pay_as_you_go && charged => {
                let used = up_front + pricing::usage_fee(nodes, replicated, *usage);
                if used > u128::from(cycles) {
                    let result = Err(rejected("Insufficient cycles"));
                    return finish(&replica, reply, u64::try_from(up_front).unwrap_or(u64::MAX), result);
                }
                used
            }
            _ => up_front,
        };
        finish(&replica, reply, u64::try_from(fee).unwrap_or(u64::MAX), outcome.map(|(bytes, _)| bytes));
    });
    Ok(())
}

/// What a node reports when the replica makes no outcalls: the IC's
/// error for a host it cannot reach, naming what would allow it.
pub(super) fn no_outcalls(url: &str) -> Reject {
    let host = url.split("://").nth(1).and_then(|r| r.split(['/', '?', '#']).next()).unwrap_or(url);
    outcalls::node_reject(
        RejectCode::SysTransient,
        format!("Connecting to {host} failed: ww makes outcalls only from `ww serve` / `ww run --serve` with --allow-outcalls"),
    )
}

/// Counts an outcall answered when dropped (after its reply is sent).
pub(super) struct Decrement(pub(super) Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Replies, keeping `fee` of the attached cycles.
pub(super) fn finish(replica: &Replica, reply: ReplyTo, fee: u64, result: CallResult) {
    if let ReplyTo::Callback(cb) = &reply {
        super::scheduler::keep_attached_cycles(&replica.inner, *cb, fee);
    }
    super::management::send(reply, replica, result);
}

/// From the nodes' reports to the canister's answer: each response
/// transformed and size-checked, then the one `n − f` nodes agree on.
async fn settle(
    replica: &Replica,
    caller: Principal,
    id: u64,
    limit: u64,
    transform: Option<(String, Vec<u8>)>,
    reported: Reported,
) -> Result<(Vec<u8>, pricing::Usage), Reject> {
    let (results, roundtrip_ms) = match reported {
        Reported::Failed(reject) => return Err(reject),
        Reported::Nodes { results, roundtrip_ms } => (results, roundtrip_ms),
    };
    let mut usage = pricing::Usage { roundtrip_ms, ..Default::default() };
    let mut answers: Vec<CallResult> = Vec::with_capacity(results.len());
    for node in results {
        let answer = match node {
            Err(reject) => Err(reject),
            Ok(response) => {
                usage.raw_response_bytes = usage.raw_response_bytes.max((response.body.len() + header_bytes(&response)) as u64);
                transformed(replica, caller, limit, transform.as_ref(), response).await
            }
        };
        if let Ok(bytes) = &answer {
            usage.transformed_response_bytes = usage.transformed_response_bytes.max(bytes.len() as u64);
        }
        answers.push(answer);
    }
    agreed(id, answers).map(|bytes| (bytes, usage))
}

fn header_bytes(r: &outcalls::Response) -> usize {
    r.headers.iter().map(|(n, v)| n.len() + v.len()).sum()
}

/// One node's response as the canister will see it.
pub(super) async fn transformed(replica: &Replica, caller: Principal, limit: u64, transform: Option<&(String, Vec<u8>)>, response: outcalls::Response) -> CallResult {
    outcalls::check_size(&response, limit)?;
    let result = HttpRequestResult {
        status: Nat::from(response.status),
        headers: response.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
        body: ByteBuf::from(response.body),
    };
    let Some((method, context)) = transform else {
        return encode(&result);
    };
    let arg = candid::encode_one(TransformArgs { response: result, context: ByteBuf::from(context.clone()) })
        .map_err(|e| outcalls::node_reject(RejectCode::SysFatal, format!("Calling transform function '{method}' failed: {e}")))?;
    let out = replica.query(Principal::management_canister(), caller, method, arg).await?;
    if out.len() as u64 > limit {
        return Err(outcalls::node_reject(RejectCode::SysFatal, format!("Transformed http response exceeds limit: {limit}")));
    }
    Ok(out)
}

/// The answer `n − f` of `n` nodes agree on (one answer stands for all).
fn agreed(id: u64, answers: Vec<CallResult>) -> CallResult {
    let n = answers.len();
    if n <= 1 {
        return answers.into_iter().next().unwrap_or_else(|| Err(outcalls::node_reject(RejectCode::SysTransient, "no node answered")));
    }
    let needed = n - (n - 1) / 3;
    let key = |a: &CallResult| -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        match a {
            Ok(bytes) => {
                h.update([0]);
                h.update(bytes);
            }
            Err(r) => {
                h.update([1, r.code as u8]);
                h.update(r.message.as_bytes());
            }
        }
        h.finalize().into()
    };
    let mut counts: Vec<([u8; 32], usize, usize)> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let k = key(a);
        match counts.iter_mut().find(|(c, _, _)| *c == k) {
            Some(entry) => entry.1 += 1,
            None => counts.push((k, 1, i)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1));
    if let Some((_, count, first)) = counts.first()
        && *count >= needed
    {
        return answers.into_iter().nth(*first).unwrap_or_else(|| Err(outcalls::node_reject(RejectCode::SysTransient, "no node answered")));
    }
    let hashes: Vec<String> = counts.iter().map(|(k, c, _)| format!("{}: {c}", hex::encode(k))).collect();
    Err(outcalls::node_reject(
        RejectCode::SysTransient,
        format!(
            "No consensus could be reached. Replicas had different responses. Details: request_id: {id}, timeout: {}, hashes: [{}]",
            outcalls::mock::TIMEOUT_NS,
            hashes.join(", ")
        ),
    ))
}

/// Kept for the unit tests and PocketIC: a node's result as an answer.
pub fn node_answer(result: NodeResult) -> CallResult {
    result.and_then(|r| {
        encode(&HttpRequestResult {
            status: Nat::from(r.status),
            headers: r.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
            body: ByteBuf::from(r.body),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &[u8]) -> CallResult {
        Ok(body.to_vec())
    }

    #[test]
    fn agreement_needs_n_minus_f() {
        // 13 nodes: f = 4, so 9 equal answers are needed.
        let mut answers: Vec<CallResult> = (0..9).map(|_| ok(b"a")).collect();
        answers.extend((0..4).map(|_| ok(b"b")));
        assert_eq!(agreed(1, answers), ok(b"a"));
        let mut answers: Vec<CallResult> = (0..8).map(|_| ok(b"a")).collect();
        answers.extend((0..5).map(|_| ok(b"b")));
        let err = agreed(1, answers).expect_err("no agreement");
        assert_eq!(err.code, RejectCode::SysTransient);
        assert!(err.message.starts_with("No consensus could be reached. Replicas had different responses. Details: request_id: 1"), "{}", err.message);
    }
}
