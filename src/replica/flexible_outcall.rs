//! The management canister's `flexible_http_request`: a committee of
//! `total_requests` nodes makes the request and the canister gets between
//! `min_responses` and `max_responses` of their responses, each as its node
//! got it (transformed), rather than one response the subnet agreed on.
//!
//! As the IC (ic-management-canister-types 0.11; IC `canister_http.rs`, the
//! canister-HTTP payload builder): the argument checks and the replication
//! counts' defaults (`N`, `floor(2N/3) + 1`, `N` on a subnet of `N` nodes)
//! reject the call; so does a payment below the pay-as-you-go base fee
//! (flexible outcalls are always priced with version 2). Once the requests
//! went out, every outcome is a reply: `ok` with the responses, smallest
//! first, or `err` with `timeout` (60 s), `too_many_rejects`,
//! `responses_too_large` (2 MiB of block space) or `out_of_cycles`, decided
//! in that order ([`decide`]). What the rest of the payment allows each
//! node (`(payment − base fee) / total_requests`) bounds what it may spend,
//! and what the committee leaves must pay for delivering the result.
//!
//! The transform, the size checks and the adapter are `http_outcall`'s; a
//! subnet listed in `ReplicaConfig::flexible_outcalls_disabled` refuses the
//! method (PocketIC without beta features on a charging subnet).

use candid::{CandidType, Deserialize, Principal, Reserved};
use serde_bytes::ByteBuf;
use std::sync::atomic::Ordering;

use super::http_outcall::{
    Decrement, HttpHeader, HttpMethod, HttpRequestResult, MAX_BYTES, TransformContext, check_headers_and_body, check_max_response_bytes, check_transform,
    check_url, finish, no_outcalls, rejected, request_bytes, subnet_of, transformed,
};
use super::management::{decode, encode};
use super::{ErrorCode, Reject, RejectCode, Replica, ReplyTo};
use crate::outcalls::pricing::{self, ReplicationCounts, Usage};
use crate::outcalls::{self, Reported};

/// The block space the IC has for one flexible outcall's responses.
pub const MAX_RESULT_BYTES: u64 = 2 * 1024 * 1024;

#[derive(CandidType, Deserialize, Debug)]
struct FlexibleHttpRequestArgs {
    url: String,
    max_response_bytes: Option<u64>,
    method: HttpMethod,
    headers: Vec<HttpHeader>,
    body: Option<ByteBuf>,
    transform: Option<TransformContext>,
    replication: Option<ReplicationCounts>,
}

/// `flexible_http_request`'s result.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum FlexibleHttpRequestResult {
    #[serde(rename = "ok")]
    Ok(Vec<HttpRequestResult>),
    #[serde(rename = "err")]
    Err(FlexibleHttpRequestErr),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FlexibleHttpRequestErr {
    pub global_error: Option<GlobalError>,
    pub node_details: Vec<NodeDetail>,
    pub message: String,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum GlobalError {
    #[serde(rename = "timeout")]
    Timeout(Reserved),
    #[serde(rename = "out_of_cycles")]
    OutOfCycles(Reserved),
    #[serde(rename = "responses_too_large")]
    ResponsesTooLarge(Reserved),
    #[serde(rename = "too_many_rejects")]
    TooManyRejects(Reserved),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeDetail {
    pub node_id: Principal,
    pub report: ResourceReport,
    pub error: Option<NodeError>,
}

/// What a node used; the IC leaves it empty for now, and so does ww.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceReport {
    pub raw_response_bytes: Option<ResourceUsage<u64>>,
    pub http_roundtrip_time_ms: Option<ResourceUsage<u64>>,
    pub transform_instructions: Option<ResourceUsage<u64>>,
    pub transformed_response_bytes: Option<ResourceUsage<u64>>,
    pub cycles: Option<ResourceUsage<candid::Nat>>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ResourceUsage<T> {
    #[serde(rename = "used")]
    Used(T),
    #[serde(rename = "exceeded")]
    Exceeded(Reserved),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeError {
    pub code: String,
    pub message: String,
}

/// The counts a flexible outcall on a subnet of `nodes` uses: the caller's,
/// checked as the IC checks them, or the defaults.
pub fn replication_counts(given: Option<ReplicationCounts>, nodes: u32) -> Result<ReplicationCounts, Reject> {
    let Some(c) = given else { return Ok(ReplicationCounts::defaults(nodes)) };
    let (total, min, max) = (c.total_requests, c.min_responses, c.max_responses);
    if total < 1 {
        return Err(rejected(format!("total_requests ({total}) must be at least 1")));
    }
    if total > nodes {
        return Err(rejected(format!("total_requests ({total}) must not exceed the number of available nodes ({nodes})")));
    }
    if min > max {
        return Err(rejected(format!("min_responses ({min}) must not exceed max_responses ({max})")));
    }
    if max > total {
        return Err(rejected(format!("max_responses ({max}) must not exceed total_requests ({total})")));
    }
    Ok(c)
}

/// The checks of the argument, in the IC's order; the counts to use.
fn validate(args: &FlexibleHttpRequestArgs, caller: &Principal, nodes: u32) -> Result<ReplicationCounts, Reject> {
    check_transform(args.transform.as_ref(), caller)?;
    check_url(&args.url)?;
    check_headers_and_body(&args.headers, args.body.as_ref())?;
    let counts = replication_counts(args.replication, nodes)?;
    check_max_response_bytes(args.max_response_bytes)?;
    // PUT, DELETE and PATCH must not be repeated by nodes whose answers may
    // be left out (ww's wording: the IC's text for this is not published).
    let deterministic = counts.min_responses == counts.max_responses && counts.max_responses == counts.total_requests;
    if args.method.is_unsafe() && !deterministic {
        return Err(rejected(
            "The requested HTTP method is only allowed for flexible requests whose min_responses, max_responses and total_requests are equal.",
        ));
    }
    Ok(counts)
}

/// What the payment allows each committee node once the base fee is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Funding {
    pub per_node: u128,
}

/// The fee kept up front, and the nodes' allowances (`None` where the
/// caller's subnet charges nothing: Free, or a system subnet). The one
/// place a flexible outcall's price is asked for.
fn pricing(replica: &Replica, caller: &Principal, nodes: u32, request_bytes: u64, counts: ReplicationCounts, attached: u128) -> (u128, Option<Funding>) {
    if !replica.fees_of(caller).charges() {
        return (0, None);
    }
    let base = pricing::base_fee_of(nodes, request_bytes, counts.replication());
    let per_node = attached.saturating_sub(base) / u128::from(counts.total_requests.max(1));
    (base, Some(Funding { per_node }))
}

/// A committee node as the canister sees it in `node_details`: a stable,
/// made-up self-authenticating id per subnet and position.
fn node_id(subnet: &Principal, index: usize) -> Principal {
    use sha2::Digest;
    let key = sha2::Sha256::new().chain_update(b"ww node").chain_update(subnet.as_slice()).chain_update(index.to_be_bytes()).finalize();
    Principal::self_authenticating(key)
}

/// One committee node's report, transformed and priced.
#[derive(Clone, Debug)]
pub struct NodeReport {
    pub node: Principal,
    /// The response as the canister gets it and its size in a block (its
    /// Candid encoding), or the node's reject.
    pub outcome: Result<(HttpRequestResult, u64), Reject>,
    /// What the node spent of its allowance.
    pub spent: u128,
}

impl NodeReport {
    /// What the response or reject takes in a block (a reject: its code and
    /// its message).
    fn size(&self) -> u64 {
        match &self.outcome {
            Ok((_, size)) => *size,
            Err(r) => 1 + r.message.len() as u64,
        }
    }
}

/// What the committee's reports decide: the result and the consensus fee
/// of what it delivers; `None` while more reports could change it.
pub struct Decision {
    pub result: FlexibleHttpRequestResult,
    pub delivery_fee: u128,
}

fn error(global: GlobalError, node_details: Vec<NodeDetail>, message: String) -> FlexibleHttpRequestResult {
    FlexibleHttpRequestResult::Err(FlexibleHttpRequestErr { global_error: Some(global), node_details, message })
}

fn detail(node: Principal, code: impl Into<String>, message: impl Into<String>) -> NodeDetail {
    NodeDetail { node_id: node, report: ResourceReport::default(), error: Some(NodeError { code: code.into(), message: message.into() }) }
}

/// The outcome of an outcall that timed out (60 s without a decision).
pub fn timed_out() -> FlexibleHttpRequestResult {
    error(GlobalError::Timeout(Reserved), Vec::new(), "Flexible HTTP request timed out".into())
}

/// How many of `candidates` (smallest first) to deliver, from `least` to
/// `most`: the most that the committee's allowances pay for (nodes not
/// delivering lend theirs, least spent first) and that fit the block; with
/// the consensus fee of delivering them. `None` if not even `least` do.
fn select(candidates: &[&NodeReport], all: &[&NodeReport], least: usize, most: usize, min: u32, funding: Option<Funding>, nodes: u32) -> Option<(usize, u128)> {
    for k in (least..=most.min(candidates.len())).rev() {
        let chosen = &candidates[..k];
        let sizes: Vec<u64> = chosen.iter().map(|r| r.size()).collect();
        if sizes.iter().sum::<u64>() >= MAX_RESULT_BYTES {
            continue;
        }
        let delivery = pricing::flexible_delivery_fee(nodes, &sizes, min);
        let Some(funding) = funding else { return Some((k, delivery)) };
        let mut spend = chosen.iter().map(|r| r.spent).sum::<u128>() + delivery;
        let mut payers = k as u128;
        let mut lenders = all.iter().filter(|r| !chosen.iter().any(|c| c.node == r.node));
        loop {
            if spend <= funding.per_node * payers {
                return Some((k, delivery));
            }
            let Some(lender) = lenders.next() else { break };
            spend += lender.spent;
            payers += 1;
        }
    }
    None
}

/// The least it can still cost to deliver a result, given the reports so
/// far: unseen nodes may yet answer with empty bodies.
fn least_delivery_cost(reports: &[NodeReport], total: u32, min: u32, nodes: u32) -> Option<u128> {
    let mut ok: Vec<u64> = reports.iter().filter(|r| r.outcome.is_ok()).map(NodeReport::size).collect();
    let mut rejects: Vec<u64> = reports.iter().filter(|r| r.outcome.is_err()).map(NodeReport::size).collect();
    ok.sort_unstable();
    rejects.sort_unstable();
    let unseen = (total as usize).saturating_sub(reports.len());
    let cost = |seen: &[u64], required: usize| -> u128 {
        let from_seen = required.saturating_sub(unseen).min(seen.len());
        let mut sizes: Vec<u64> = seen[..from_seen].to_vec();
        sizes.resize(required, 0);
        pricing::flexible_delivery_fee(nodes, &sizes, min)
    };
    let min_ok = min as usize;
    let min_rejects = (total as usize).saturating_sub(min_ok) + 1;
    let ok_cost = (ok.len() + unseen >= min_ok).then(|| cost(&ok, min_ok));
    let reject_cost = (rejects.len() + unseen >= min_rejects).then(|| cost(&rejects, min_rejects));
    ok_cost.into_iter().chain(reject_cost).min()
}

/// What the committee's reports decide, in the IC's order: enough replies
/// deliver `ok`; more rejects than `total − min` deliver
/// `too_many_rejects`; replies that cannot fit the block,
/// `responses_too_large`; allowances that can no longer pay for any
/// delivery, `out_of_cycles`; otherwise nothing yet (`None`).
pub fn decide(counts: ReplicationCounts, reports: &[NodeReport], funding: Option<Funding>, nodes: u32) -> Option<Decision> {
    if reports.is_empty() {
        return None;
    }
    let by_size = |r: &&NodeReport| (r.size(), r.spent, r.node);
    let mut ok: Vec<&NodeReport> = reports.iter().filter(|r| r.outcome.is_ok()).collect();
    let mut rejects: Vec<&NodeReport> = reports.iter().filter(|r| r.outcome.is_err()).collect();
    ok.sort_unstable_by_key(by_size);
    rejects.sort_unstable_by_key(by_size);
    let mut lenders: Vec<&NodeReport> = reports.iter().collect();
    lenders.sort_unstable_by_key(|r| (r.spent, r.node));
    let (total, min) = (counts.total_requests as usize, counts.min_responses as usize);

    if ok.len() >= min {
        if let Some((k, delivery_fee)) = select(&ok, &lenders, min, counts.max_responses as usize, counts.min_responses, funding, nodes) {
            let responses = ok[..k].iter().filter_map(|r| r.outcome.as_ref().ok().map(|(response, _)| response.clone())).collect();
            return Some(Decision { result: FlexibleHttpRequestResult::Ok(responses), delivery_fee });
        }
    } else if rejects.len() > total.saturating_sub(min) {
        let least = total.saturating_sub(min) + 1;
        if let Some((k, delivery_fee)) = select(&rejects, &lenders, least, rejects.len(), counts.min_responses, funding, nodes) {
            let details =
                rejects[..k].iter().filter_map(|r| r.outcome.as_ref().err().map(|e| detail(r.node, format!("{:?}", e.code), e.message.clone()))).collect();
            let message = format!("Too many rejects: {k} responses are rejects");
            return Some(Decision { result: error(GlobalError::TooManyRejects(Reserved), details, message), delivery_fee });
        }
    }

    let unseen = total.saturating_sub(reports.len());
    let needed = min.saturating_sub(unseen);
    if ok.len() >= needed && ok[..needed].iter().map(|r| r.size()).sum::<u64>() > MAX_RESULT_BYTES {
        let sizes: Vec<String> = ok[..needed].iter().map(|r| r.size().to_string()).collect();
        let (num_ok, num_reject) = (ok.len(), rejects.len());
        let details =
            ok.iter().chain(rejects.iter()).map(|r| detail(r.node, if r.outcome.is_ok() { "ok" } else { "reject" }, format!("{} bytes", r.size()))).collect();
        let message = format!(
            "Responses too large: need at least {min} OK responses to fit within {MAX_RESULT_BYTES} bytes, but even the smallest {needed} \
             (= {min} min_responses - {unseen} unseen) of {num_ok} OK responses have sizes [{}] bytes \
             ({num_ok} ok + {num_reject} reject + {unseen} unseen = {total} total_requests)",
            sizes.join(", ")
        );
        return Some(Decision { result: error(GlobalError::ResponsesTooLarge(Reserved), details, message), delivery_fee: 0 });
    }

    if let Some(funding) = funding {
        let spent: u128 = reports.iter().map(|r| r.spent).sum();
        let unspent = (funding.per_node * total as u128).saturating_sub(spent);
        if let Some(least) = least_delivery_cost(reports, counts.total_requests, counts.min_responses, nodes)
            && unspent < least
        {
            let details =
                lenders.iter().map(|r| detail(r.node, if r.outcome.is_ok() { "ok" } else { "reject" }, format!("{} cycles spent", r.spent))).collect();
            let message = format!(
                "Out of cycles: {} of the assigned replicas reported a collective spend of {spent} cycles, leaving {unspent} cycles of the \
                 attached payment (after base fee deduction). Delivering a response would cost at least {least} cycles.",
                reports.len()
            );
            return Some(Decision { result: error(GlobalError::OutOfCycles(Reserved), details, message), delivery_fee: 0 });
        }
    }
    None
}

/// Starts `flexible_http_request` from canister `caller` with `cycles`
/// attached; the result goes to `reply` once the committee has decided it
/// (or it timed out). Only argument and funding errors are rejects.
pub(super) fn start(replica: &Replica, caller: Principal, arg: &[u8], cycles: u64, reply: ReplyTo) -> Result<(), (Reject, ReplyTo)> {
    let args: FlexibleHttpRequestArgs = match decode("flexible_http_request", arg) {
        Ok(a) => a,
        Err(e) => return Err((e, reply)),
    };
    let (subnet, nodes) = subnet_of(replica, &caller);
    if replica.inner.config.flexible_outcalls_disabled.contains(&subnet) {
        return Err((Reject::system(ErrorCode::CanisterContractViolation, "This API is not enabled on this subnet"), reply));
    }
    let counts = match validate(&args, &caller, nodes) {
        Ok(c) => c,
        Err(e) => return Err((e, reply)),
    };
    let req_bytes = request_bytes(&args.url, &args.headers, args.body.as_ref(), args.transform.as_ref());
    let (base_fee, funding) = pricing(replica, &caller, nodes, req_bytes, counts, u128::from(cycles));
    if u128::from(cycles) < base_fee {
        let message = format!("flexible_http_request request sent with {cycles} cycles, but {base_fee} cycles are required.");
        return Err((rejected(message), reply));
    }
    let settle = Settle {
        replica: replica.clone(),
        caller,
        subnet,
        nodes,
        counts,
        funding,
        base_fee,
        cycles,
        limit: args.max_response_bytes.unwrap_or(MAX_BYTES),
        transform: args.transform.as_ref().map(|t| (t.function.0.method.clone(), t.context.to_vec())),
    };
    let Some(service) = replica.inner.outcalls.get() else {
        // Every committee node fails to reach the host.
        // (Nothing to transform or wait for: this completes at once.)
        let results = (0..counts.total_requests).map(|_| Err(no_outcalls(&args.url))).collect();
        futures::executor::block_on(settle.finish(Reported::Nodes { results, roundtrip_ms: 0 }, None, reply));
        return Ok(());
    };
    let request = outcalls::Request {
        id: service.next_id.fetch_add(1, Ordering::Relaxed),
        subnet,
        url: args.url.clone(),
        method: args.method.method(),
        headers: args.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect(),
        body: args.body.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
        max_response_bytes: settle.limit,
        max_response_bytes_given: args.max_response_bytes.is_some(),
        replication: counts.replication(),
        pay_as_you_go: true,
        created_ns: replica.time(),
    };
    // Taken at once: a PocketIC test lists it from the next round.
    let report = service.adapter.perform(request.clone());
    let adapter = service.adapter.clone();
    let outstanding = service.outstanding.clone();
    outstanding.fetch_add(1, Ordering::SeqCst);
    service.runtime.spawn(async move {
        let _done = Decrement(outstanding);
        let reported = report.await;
        settle.finish(reported, Some((adapter, request)), reply).await;
    });
    Ok(())
}

/// What turns the committee's reports into the canister's result.
struct Settle {
    replica: Replica,
    caller: Principal,
    subnet: Principal,
    nodes: u32,
    counts: ReplicationCounts,
    funding: Option<Funding>,
    base_fee: u128,
    cycles: u64,
    limit: u64,
    transform: Option<(String, Vec<u8>)>,
}

impl Settle {
    /// Transforms and prices each node's report, decides (waiting for the
    /// timeout if the reports decide nothing), replies and keeps the fee.
    async fn finish(self, reported: Reported, expiry: Option<(std::sync::Arc<dyn outcalls::Adapter>, outcalls::Request)>, reply: ReplyTo) {
        let mut reports = Vec::new();
        // A request that failed as a whole has timed out.
        let mut undecided_until_timeout = None;
        if let Reported::Nodes { results, roundtrip_ms } = reported {
            for (i, result) in results.into_iter().enumerate() {
                reports.push(self.node_report(node_id(&self.subnet, i), result, roundtrip_ms).await);
            }
            undecided_until_timeout = expiry;
        }
        let decision = match decide(self.counts, &reports, self.funding, self.nodes) {
            Some(d) => d,
            None => {
                if let Some((adapter, request)) = undecided_until_timeout {
                    adapter.expired(&request).await;
                }
                Decision { result: timed_out(), delivery_fee: 0 }
            }
        };
        // The base fee, what every reporting node spent, and delivering the
        // result; never more than was attached.
        let fee = match self.funding {
            None => 0,
            Some(_) => self.base_fee + reports.iter().map(|r| r.spent).sum::<u128>() + decision.delivery_fee,
        };
        let fee = u64::try_from(fee).unwrap_or(u64::MAX).min(self.cycles);
        finish(&self.replica, reply, fee, encode(&decision.result));
    }

    /// One node's report as the canister would get it, and what the node
    /// spent: downloading, and sending its transformed response to every
    /// node. A node whose allowance does not cover that rejects.
    async fn node_report(&self, node: Principal, result: outcalls::NodeResult, roundtrip_ms: u64) -> NodeReport {
        let raw = result.as_ref().map_or(0, |r| (r.body.len() + r.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()) as u64);
        let outcome = match result {
            Err(reject) => Err(reject),
            Ok(response) => match transformed(&self.replica, self.caller, self.limit, self.transform.as_ref(), response).await {
                Err(reject) => Err(reject),
                Ok(bytes) => candid::decode_one::<HttpRequestResult>(&bytes)
                    .map(|r| (r, bytes.len() as u64))
                    .map_err(|e| outcalls::node_reject(RejectCode::SysFatal, format!("the transformed response is not an http_request_result: {e}"))),
            },
        };
        let mut report = NodeReport { node, outcome, spent: 0 };
        let usage = Usage { roundtrip_ms, raw_response_bytes: raw, transformed_response_bytes: report.size(), transform_instructions: 0 };
        report.spent = pricing::node_spend(self.nodes, self.counts.replication(), usage);
        if let Some(funding) = self.funding
            && report.spent > funding.per_node
        {
            report = NodeReport { node, outcome: Err(outcalls::node_reject(RejectCode::CanisterReject, "Insufficient cycles")), spent: funding.per_node };
        }
        report
    }
}

#[cfg(test)]
mod tests;
