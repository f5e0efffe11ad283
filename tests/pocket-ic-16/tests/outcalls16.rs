//! pocket-ic 16.x against ww: HTTPS outcalls the way PocketIC tests mock
//! them. An ic-cdk canister (guests/ic-cdk/cdk_platform) makes an
//! `http_request` through ic-cdk-management-canister (pricing version 2);
//! the test sees it with `get_canister_http` after a round, answers it with
//! `mock_canister_http_response` (one response for every node, or one per
//! node with `additional_responses`), and checks what the canister got:
//! the transform applied, agreement between nodes needed, rejects passed
//! through, the 60 s timeout.

mod common;

use std::time::Duration;

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use pocket_ic::common::rest::{
    CanisterHttpHeader, CanisterHttpMethod, CanisterHttpReject, CanisterHttpReply, CanisterHttpReplication, CanisterHttpRequest,
    CanisterHttpResponse, MockCanisterHttpResponse,
};
use pocket_ic::{PocketIc, RejectCode};

use common::{Failure, Header, HttpReply, check_server, install};

fn pic() -> PocketIc {
    check_server();
    PocketIc::new()
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct FetchArgs {
    url: String,
    method: String,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
    max_response_bytes: Option<u64>,
    transform: bool,
    is_replicated: Option<bool>,
}

fn get(url: &str, transform: bool) -> FetchArgs {
    FetchArgs { url: url.into(), method: "get".into(), headers: vec![], body: None, max_response_bytes: None, transform, is_replicated: None }
}

/// Starts `http_fetch(args)` and runs the round that makes the outcall and
/// the one after it (PocketIC lists a request from then on).
fn start(pic: &PocketIc, id: Principal, args: &FetchArgs) -> (pocket_ic::common::rest::RawMessageId, CanisterHttpRequest) {
    let msg = pic.submit_call(id, Principal::anonymous(), "http_fetch", Encode!(args).unwrap()).expect("submitted");
    pic.tick();
    pic.tick();
    let pending = pic.get_canister_http();
    assert_eq!(pending.len(), 1, "one pending outcall: {pending:?}");
    (msg, pending.into_iter().next().expect("one"))
}

fn outcome(pic: &PocketIc, msg: pocket_ic::common::rest::RawMessageId) -> Result<HttpReply, Failure> {
    let bytes = pic.await_call(msg).expect("http_fetch replies");
    Decode!(&bytes, Result<HttpReply, Failure>).expect("the canister's result")
}

fn reply(status: u16, body: &[u8]) -> CanisterHttpResponse {
    CanisterHttpResponse::CanisterHttpReply(CanisterHttpReply {
        status,
        headers: vec![CanisterHttpHeader { name: "x-origin".into(), value: "mock".into() }],
        body: body.to_vec(),
    })
}

#[test]
fn a_pending_outcall_is_listed_as_made_and_its_mock_reaches_the_canister() {
    let pic = pic();
    let id = install(&pic);
    let args = FetchArgs {
        url: "https://example.org/api?x=1".into(),
        method: "post".into(),
        headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
        body: Some(b"{\"q\":1}".to_vec()),
        max_response_bytes: Some(4_000),
        transform: false,
        is_replicated: None,
    };
    let (msg, request) = start(&pic, id, &args);
    assert_eq!(request.url, "https://example.org/api?x=1");
    assert_eq!(request.http_method, CanisterHttpMethod::POST);
    assert_eq!(request.body, b"{\"q\":1}");
    assert_eq!(request.max_response_bytes, Some(4_000));
    assert_eq!(request.replication, CanisterHttpReplication::FullyReplicated);
    assert!(request.headers.iter().any(|h| h.name == "content-type" && h.value == "application/json"), "{:?}", request.headers);
    pic.mock_canister_http_response(MockCanisterHttpResponse {
        subnet_id: request.subnet_id,
        request_id: request.request_id,
        response: reply(201, b"created"),
        additional_responses: vec![],
    });
    assert!(pic.get_canister_http().is_empty(), "a mocked outcall is no longer pending");
    let got = outcome(&pic, msg).expect("the mocked reply");
    assert_eq!(got.status, Nat::from(201u16));
    assert_eq!(got.body, b"created");
    assert_eq!(got.headers, vec![Header { name: "x-origin".into(), value: "mock".into() }]);
}

#[test]
fn the_transform_runs_on_the_mocked_response() {
    let pic = pic();
    let id = install(&pic);
    let (msg, request) = start(&pic, id, &get("https://example.org/", true));
    pic.mock_canister_http_response(MockCanisterHttpResponse {
        subnet_id: request.subnet_id,
        request_id: request.request_id,
        response: reply(200, b"body"),
        additional_responses: vec![],
    });
    let got = outcome(&pic, msg).expect("the transformed reply");
    assert_eq!(got.body, b"ctx:body", "strip prefixes the context");
    assert!(got.headers.is_empty(), "strip removes every header: {:?}", got.headers);
}

#[test]
fn nodes_must_agree_n_minus_f_of_them() {
    let pic = pic();
    let id = install(&pic);
    // An application subnet has 13 nodes; 9 equal responses are enough.
    let (msg, request) = start(&pic, id, &get("https://example.org/", false));
    let mut others: Vec<CanisterHttpResponse> = (0..8).map(|_| reply(200, b"a")).collect();
    others.extend((0..4).map(|_| reply(200, b"b")));
    pic.mock_canister_http_response(MockCanisterHttpResponse { subnet_id: request.subnet_id, request_id: request.request_id, response: reply(200, b"a"), additional_responses: others });
    assert_eq!(outcome(&pic, msg).expect("9 of 13 agree").body, b"a");

    // 8 against 5: no agreement.
    let (msg, request) = start(&pic, id, &get("https://example.org/", false));
    let mut others: Vec<CanisterHttpResponse> = (0..7).map(|_| reply(200, b"a")).collect();
    others.extend((0..5).map(|_| reply(200, b"b")));
    pic.mock_canister_http_response(MockCanisterHttpResponse { subnet_id: request.subnet_id, request_id: request.request_id, response: reply(200, b"a"), additional_responses: others });
    let failure = outcome(&pic, msg).expect_err("no agreement");
    assert_eq!(failure.code, RejectCode::SysTransient as u32, "{failure:?}");
    assert!(failure.message.starts_with("No consensus could be reached. Replicas had different responses."), "{failure:?}");

    // Responses the transform makes equal do agree.
    let (msg, request) = start(&pic, id, &get("https://example.org/", true));
    let others: Vec<CanisterHttpResponse> = (0..12)
        .map(|i| CanisterHttpResponse::CanisterHttpReply(CanisterHttpReply { status: 200, headers: vec![CanisterHttpHeader { name: "date".into(), value: format!("{i}") }], body: b"same".to_vec() }))
        .collect();
    pic.mock_canister_http_response(MockCanisterHttpResponse { subnet_id: request.subnet_id, request_id: request.request_id, response: reply(200, b"same"), additional_responses: others });
    assert_eq!(outcome(&pic, msg).expect("equal once transformed").body, b"ctx:same");
}

#[test]
fn a_mocked_reject_reaches_the_canister_and_an_unanswered_outcall_times_out() {
    let pic = pic();
    let id = install(&pic);
    let (msg, request) = start(&pic, id, &get("https://example.org/", false));
    pic.mock_canister_http_response(MockCanisterHttpResponse {
        subnet_id: request.subnet_id,
        request_id: request.request_id,
        response: CanisterHttpResponse::CanisterHttpReject(CanisterHttpReject { reject_code: RejectCode::SysFatal as u64, message: "Connection refused".into() }),
        additional_responses: vec![],
    });
    assert_eq!(outcome(&pic, msg).expect_err("rejected"), Failure { code: RejectCode::SysFatal as u32, message: "Connection refused".into() });

    let (msg, _) = start(&pic, id, &get("https://example.org/slow", false));
    pic.advance_time(Duration::from_secs(61));
    pic.tick();
    let failure = outcome(&pic, msg).expect_err("timed out");
    assert_eq!(failure, Failure { code: RejectCode::SysTransient as u32, message: "Canister http request timed out".into() });
    assert!(pic.get_canister_http().is_empty());
}

#[test]
fn a_response_over_the_limit_is_refused_as_the_ic_refuses_it() {
    let pic = pic();
    let id = install(&pic);
    let mut args = get("https://example.org/big", false);
    args.max_response_bytes = Some(100);
    let (msg, request) = start(&pic, id, &args);
    pic.mock_canister_http_response(MockCanisterHttpResponse { subnet_id: request.subnet_id, request_id: request.request_id, response: reply(200, &[7u8; 200]), additional_responses: vec![] });
    let failure = outcome(&pic, msg).expect_err("too big");
    assert_eq!(failure, Failure { code: RejectCode::SysFatal as u32, message: "Http body exceeds size limit of 100 bytes.".into() });
}

#[test]
fn non_replicated_outcalls_are_listed_as_such_and_allow_put() {
    let pic = pic();
    let id = install(&pic);
    let mut args = get("https://example.org/item", false);
    args.method = "put".into();
    // PUT needs a non-replicated outcall.
    let bytes = pic.update_call(id, Principal::anonymous(), "http_fetch", Encode!(&args).unwrap()).expect("replies");
    let failure = Decode!(&bytes, Result<HttpReply, Failure>).unwrap().expect_err("refused");
    assert_eq!(failure, Failure { code: RejectCode::CanisterReject as u32, message: "The requested HTTP method is only allowed for non-replicated requests.".into() });
    args.is_replicated = Some(false);
    let (msg, request) = start(&pic, id, &args);
    assert_eq!(request.http_method, CanisterHttpMethod::PUT);
    assert_eq!(request.replication, CanisterHttpReplication::NonReplicated);
    pic.mock_canister_http_response(MockCanisterHttpResponse { subnet_id: request.subnet_id, request_id: request.request_id, response: reply(204, b""), additional_responses: vec![] });
    assert_eq!(outcome(&pic, msg).expect("replied").status, Nat::from(204u16));
}

