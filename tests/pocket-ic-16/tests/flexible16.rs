//! pocket-ic 16.x against ww: flexible HTTPS outcalls the way PocketIC
//! tests mock them. An ic-cdk canister (guests/ic-cdk/cdk_platform's
//! `flexible_fetch`) calls `flexible_http_request` through
//! ic-cdk-management-canister's `FlexibleHttpRequest`; the test sees the
//! outcall with `get_canister_http` (its committee and pricing in
//! `replication` and `pricing_version`), answers it with
//! `mock_flexible_canister_http_response` (one response per committee node
//! that answers, all in one call) and checks what the canister got, as
//! PocketIC 16 documents it: between `min_responses` and `max_responses`
//! responses, smallest first; `too_many_rejects` once more nodes reject
//! than `total_requests − min_responses`; `timeout` 60 s after the call
//! when the nodes decided nothing; the IC's texts for invalid replication
//! counts, as rejects; the endpoint offered on charging subnets only with
//! beta features.

mod common;

use std::time::Duration;

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use pocket_ic::common::rest::{
    CanisterHttpHeader, CanisterHttpMethod, CanisterHttpPricingVersion, CanisterHttpReject, CanisterHttpReplication, CanisterHttpReply, CanisterHttpRequest,
    CanisterHttpResponse, IcpConfig, IcpConfigFlag, MockCanisterHttpResponse, MockFlexibleCanisterHttpResponse, RawMessageId,
};
use pocket_ic::{PocketIc, PocketIcBuilder, RejectCode};

use common::{Failure, Header, HttpReply, check_server, install};

/// An application subnet with beta features, where PocketIC 16 offers
/// flexible outcalls although the subnet charges for them.
fn pic() -> PocketIc {
    check_server();
    PocketIcBuilder::new().with_application_subnet().with_icp_config(IcpConfig { beta_features: Some(IcpConfigFlag::Enabled), ..Default::default() }).build()
}

#[derive(CandidType, Deserialize, Debug, Clone, Copy)]
struct FlexibleCounts {
    min_responses: u32,
    max_responses: u32,
    total_requests: u32,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct FlexibleArgs {
    url: String,
    method: String,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
    max_response_bytes: Option<u64>,
    transform: bool,
    replication: Option<FlexibleCounts>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct FlexibleNode {
    node_id: Principal,
    code: Option<String>,
    message: Option<String>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct FlexibleError {
    global_error: Option<String>,
    node_details: Vec<FlexibleNode>,
    message: String,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
enum FlexibleResult {
    Ok(Vec<HttpReply>),
    Err(FlexibleError),
    Rejected(Failure),
}

impl FlexibleResult {
    fn ok(self) -> Vec<HttpReply> {
        match self {
            FlexibleResult::Ok(r) => r,
            other => panic!("expected responses, got {other:?}"),
        }
    }
    fn err(self) -> FlexibleError {
        match self {
            FlexibleResult::Err(e) => e,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }
    fn rejected(self) -> Failure {
        match self {
            FlexibleResult::Rejected(f) => f,
            other => panic!("expected the call to be rejected, got {other:?}"),
        }
    }
}

fn counts(total: u32, min: u32, max: u32) -> Option<FlexibleCounts> {
    Some(FlexibleCounts { min_responses: min, max_responses: max, total_requests: total })
}

fn get(url: &str, replication: Option<FlexibleCounts>) -> FlexibleArgs {
    FlexibleArgs { url: url.into(), method: "get".into(), headers: vec![], body: None, max_response_bytes: None, transform: false, replication }
}

/// Starts `flexible_fetch(args)` and runs the round that makes the outcall
/// and the one after it (PocketIC lists a request from then on).
fn start(pic: &PocketIc, id: Principal, args: &FlexibleArgs) -> (RawMessageId, CanisterHttpRequest) {
    let msg = pic.submit_call(id, Principal::anonymous(), "flexible_fetch", Encode!(args).unwrap()).expect("submitted");
    pic.tick();
    pic.tick();
    let pending = pic.get_canister_http();
    assert_eq!(pending.len(), 1, "one pending outcall: {pending:?}");
    (msg, pending.into_iter().next().expect("one"))
}

fn outcome(pic: &PocketIc, msg: RawMessageId) -> FlexibleResult {
    let bytes = pic.await_call(msg).expect("flexible_fetch replies");
    Decode!(&bytes, FlexibleResult).expect("the canister's result")
}

/// `flexible_fetch(args)` when it is refused before any request is made.
fn refused(pic: &PocketIc, id: Principal, args: &FlexibleArgs) -> Failure {
    let bytes = pic.update_call(id, Principal::anonymous(), "flexible_fetch", Encode!(args).unwrap()).expect("replies");
    let failure = Decode!(&bytes, FlexibleResult).expect("the canister's result").rejected();
    pic.tick();
    assert!(pic.get_canister_http().is_empty(), "no outcall was made");
    failure
}

fn reply(body: &[u8]) -> CanisterHttpResponse {
    CanisterHttpResponse::CanisterHttpReply(CanisterHttpReply {
        status: 200,
        headers: vec![CanisterHttpHeader { name: "x-origin".into(), value: "mock".into() }],
        body: body.to_vec(),
    })
}

fn reject(message: &str) -> CanisterHttpResponse {
    CanisterHttpResponse::CanisterHttpReject(CanisterHttpReject { reject_code: RejectCode::SysTransient as u64, message: message.into() })
}

fn mock(pic: &PocketIc, request: &CanisterHttpRequest, responses: Vec<CanisterHttpResponse>) {
    pic.mock_flexible_canister_http_response(MockFlexibleCanisterHttpResponse { subnet_id: request.subnet_id, request_id: request.request_id, responses });
}

fn bodies(replies: &[HttpReply]) -> Vec<Vec<u8>> {
    replies.iter().map(|r| r.body.clone()).collect()
}

#[test]
fn a_flexible_outcall_is_listed_with_its_committee_and_delivers_min_to_max_responses_smallest_first() {
    let pic = pic();
    let id = install(&pic);
    let mut args = get("https://example.org/price?x=1", counts(4, 2, 3));
    args.headers = vec![Header { name: "accept".into(), value: "application/json".into() }];
    let (msg, request) = start(&pic, id, &args);
    assert_eq!(request.url, "https://example.org/price?x=1");
    assert_eq!(request.http_method, CanisterHttpMethod::GET);
    assert_eq!(request.replication, CanisterHttpReplication::Flexible { total_requests: 4, min_responses: 2, max_responses: 3 });
    assert_eq!(request.pricing_version, CanisterHttpPricingVersion::PayAsYouGo, "flexible outcalls are always pay-as-you-go");
    assert!(request.headers.iter().any(|h| h.name == "accept" && h.value == "application/json"), "{:?}", request.headers);

    mock(&pic, &request, vec![reply(b"dddd"), reply(b"a"), reply(b"ccc"), reply(b"bb")]);
    assert!(pic.get_canister_http().is_empty(), "a mocked outcall is no longer pending");
    let got = outcome(&pic, msg).ok();
    // `max_responses` of them, the smallest first, each as its node got it.
    assert_eq!(bodies(&got), [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
    for r in &got {
        assert_eq!(r.status, Nat::from(200u16));
        assert_eq!(r.headers, vec![Header { name: "x-origin".into(), value: "mock".into() }]);
    }

    // Silent nodes do not matter once `min_responses` replies are in.
    let (msg, request) = start(&pic, id, &args);
    mock(&pic, &request, vec![reply(b"one"), reject("Connection refused"), reply(b"two")]);
    assert_eq!(bodies(&outcome(&pic, msg).ok()), [b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn without_counts_every_node_asks_and_each_response_is_transformed() {
    let pic = pic();
    let id = install(&pic);
    let mut args = get("https://example.org/", None);
    args.transform = true;
    let (msg, request) = start(&pic, id, &args);
    // An application subnet has 13 nodes: floor(2 · 13 / 3) + 1 = 9.
    assert_eq!(request.replication, CanisterHttpReplication::Flexible { total_requests: 13, min_responses: 9, max_responses: 13 });
    let responses = (0..9).map(|i| reply(format!("r{i}").as_bytes())).collect();
    mock(&pic, &request, responses);
    let got = outcome(&pic, msg).ok();
    assert!(got.iter().all(|r| r.headers.is_empty()), "strip removes every header: {got:?}");
    // Equal sizes: in no particular order.
    let mut got = bodies(&got);
    got.sort();
    let expected: Vec<Vec<u8>> = (0..9).map(|i| format!("ctx:r{i}").into_bytes()).collect();
    assert_eq!(got, expected, "strip prefixes the context of each");
}

#[test]
fn too_many_rejects_is_a_reply_naming_the_rejecting_nodes() {
    let pic = pic();
    let id = install(&pic);
    // The slack is 4 − 3 = 1, so two rejects are one too many.
    let (msg, request) = start(&pic, id, &get("https://example.org/", counts(4, 3, 4)));
    mock(&pic, &request, vec![reject("Connection refused"), reject("Connection refused"), reply(b"hello"), reply(b"hello")]);
    let e = outcome(&pic, msg).err();
    assert_eq!(e.global_error.as_deref(), Some("too_many_rejects"));
    assert_eq!(e.message, "Too many rejects: 2 responses are rejects");
    assert_eq!(e.node_details.len(), 2);
    for d in &e.node_details {
        assert_eq!(d.code.as_deref(), Some("SysTransient"));
        assert_eq!(d.message.as_deref(), Some("Connection refused"));
    }
    assert_ne!(e.node_details[0].node_id, e.node_details[1].node_id, "each detail is another node");
}

#[test]
fn an_undecided_outcall_times_out_60_seconds_after_it_was_made() {
    let pic = pic();
    let id = install(&pic);
    // One reply of the three needed, and nothing more.
    let (msg, request) = start(&pic, id, &get("https://example.org/", counts(4, 3, 4)));
    mock(&pic, &request, vec![reply(b"hello")]);
    pic.tick();
    assert!(pic.get_canister_http().is_empty(), "a mocked outcall is no longer pending");
    pic.advance_time(Duration::from_secs(61));
    pic.tick();
    let e = outcome(&pic, msg).err();
    assert_eq!(e.global_error.as_deref(), Some("timeout"));
    assert_eq!(e.message, "Flexible HTTP request timed out");
    assert!(e.node_details.is_empty(), "{:?}", e.node_details);

    // Never answered at all: the same.
    let (msg, _) = start(&pic, id, &get("https://example.org/", counts(2, 1, 2)));
    pic.advance_time(Duration::from_secs(61));
    pic.tick();
    assert_eq!(outcome(&pic, msg).err().global_error.as_deref(), Some("timeout"));
    assert!(pic.get_canister_http().is_empty());
}

#[test]
fn invalid_counts_and_arguments_are_rejected_with_the_ic_texts() {
    let pic = pic();
    let id = install(&pic);
    let cases = [
        (counts(0, 0, 0), "total_requests (0) must be at least 1"),
        (counts(14, 1, 1), "total_requests (14) must not exceed the number of available nodes (13)"),
        (counts(4, 3, 2), "min_responses (3) must not exceed max_responses (2)"),
        (counts(2, 1, 3), "max_responses (3) must not exceed total_requests (2)"),
    ];
    for (replication, text) in cases {
        let failure = refused(&pic, id, &get("https://example.org/", replication));
        assert_eq!(failure.code, RejectCode::CanisterReject as u32, "{failure:?}");
        assert!(failure.message.contains(text), "{failure:?} should say {text:?}");
    }
    let mut args = get("https://example.org/", None);
    args.max_response_bytes = Some(2_000_001);
    assert!(refused(&pic, id, &args).message.contains("max_response_bytes expected to be in the range [0..2000000], got 2000001"));

    // PUT only where every node's response is delivered.
    let mut put = get("https://example.org/item", counts(3, 2, 3));
    put.method = "put".into();
    assert_eq!(refused(&pic, id, &put).code, RejectCode::CanisterReject as u32);
    put.replication = counts(3, 3, 3);
    let (msg, request) = start(&pic, id, &put);
    assert_eq!(request.http_method, CanisterHttpMethod::PUT);
    mock(&pic, &request, vec![reply(b""), reply(b""), reply(b"")]);
    assert_eq!(outcome(&pic, msg).ok().len(), 3);
}

#[test]
fn mocks_no_committee_could_send_are_refused() {
    let pic = pic();
    let id = install(&pic);
    let (msg, request) = start(&pic, id, &get("https://example.org/", counts(2, 1, 2)));
    let too_many = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mock(&pic, &request, vec![reply(b"a"), reply(b"b"), reply(b"c")])));
    let message = too_many.expect_err("three responses for a committee of two").downcast::<String>().map(|s| *s).unwrap_or_default();
    assert!(message.contains("TooManyMockCanisterHttpResponses"), "{message}");
    // Still pending: a uniform mock answers every committee node.
    assert_eq!(pic.get_canister_http().len(), 1);
    pic.mock_canister_http_response(MockCanisterHttpResponse {
        subnet_id: request.subnet_id,
        request_id: request.request_id,
        response: reply(b"same"),
        additional_responses: vec![],
    });
    assert_eq!(bodies(&outcome(&pic, msg).ok()), [b"same".to_vec(), b"same".to_vec()]);
}

#[test]
fn the_base_fee_and_what_was_used_are_kept_and_the_rest_refunded() {
    let pic = pic();
    let id = install(&pic);
    let mut args = get("https://example.org/", counts(4, 4, 4));
    args.max_response_bytes = Some(10_000);
    let before = pic.cycle_balance(id);
    let (msg, request) = start(&pic, id, &args);
    mock(&pic, &request, vec![reply(&[b'x'; 1_000]); 4]);
    assert_eq!(outcome(&pic, msg).ok().len(), 4);
    let charged = before - pic.cycle_balance(id);
    // The base fee on 13 nodes for min 4, the request being its URL:
    // (1_000_000 + 50 · 20 + 90_000 · 13 + 2_000 · 13 · 4 + 100_000 · 4) · 13.
    let base: u128 = (1_000_000 + 50 * 20 + 90_000 * 13 + 2_000 * 13 * 4 + 100_000 * 4) * 13;
    // Each node downloaded and gossiped about 1 KB, and delivering the 4
    // responses costs 9_490 cycles per byte.
    assert!(charged >= base + 4 * 50 * 1_000 + 9_490 * 4 * 1_000, "charged {charged}");
    // ic-cdk-management-canister attached what 10 KB responses taking 60 s
    // would cost, about 563 M: what the nodes did not use came back.
    assert!(charged < 200_000_000, "the unused allowance is refunded; charged {charged}");
}

#[test]
fn charging_subnets_offer_it_only_with_beta_features() {
    check_server();
    let plain = PocketIc::new();
    let id = install(&plain);
    let failure = refused(&plain, id, &get("https://example.org/", counts(1, 1, 1)));
    assert_eq!(failure.code, RejectCode::CanisterError as u32, "{failure:?}");
    assert!(failure.message.contains("This API is not enabled on this subnet"), "{failure:?}");

    // A system subnet does not charge for outcalls: offered there.
    let system = PocketIcBuilder::new().with_system_subnet().build();
    let id = install(&system);
    let (msg, request) = start(&system, id, &get("https://example.org/", counts(1, 1, 1)));
    mock(&system, &request, vec![reply(b"ok")]);
    assert_eq!(bodies(&outcome(&system, msg).ok()), [b"ok".to_vec()]);
}
