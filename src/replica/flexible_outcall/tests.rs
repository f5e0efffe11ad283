//! `flexible_http_request` from its specification: the replication counts'
//! defaults and the IC's error texts, and how a committee's reports decide
//! the outcome, in the order PocketIC 16 documents
//! (`MockFlexibleCanisterHttpResponse::responses`) and the IC's payload
//! builder applies.

use super::*;
use candid::Nat;

fn counts(total: u32, min: u32, max: u32) -> ReplicationCounts {
    ReplicationCounts { total_requests: total, min_responses: min, max_responses: max }
}

fn node(i: u8) -> Principal {
    Principal::from_slice(&[i, 0xaa])
}

fn ok(i: u8, body: &[u8]) -> NodeReport {
    let response = HttpRequestResult { status: Nat::from(200u16), headers: Vec::new(), body: ByteBuf::from(body.to_vec()) };
    let size = candid::encode_one(&response).unwrap().len() as u64;
    NodeReport { node: node(i), outcome: Ok((response, size)), spent: 0 }
}

fn reject(i: u8, message: &str) -> NodeReport {
    NodeReport { node: node(i), outcome: Err(outcalls::node_reject(RejectCode::SysTransient, message)), spent: 0 }
}

fn bodies(result: &FlexibleHttpRequestResult) -> Vec<Vec<u8>> {
    match result {
        FlexibleHttpRequestResult::Ok(responses) => responses.iter().map(|r| r.body.to_vec()).collect(),
        FlexibleHttpRequestResult::Err(e) => panic!("expected responses, got {e:?}"),
    }
}

fn err(result: &FlexibleHttpRequestResult) -> &FlexibleHttpRequestErr {
    match result {
        FlexibleHttpRequestResult::Err(e) => e,
        FlexibleHttpRequestResult::Ok(r) => panic!("expected an error, got {} responses", r.len()),
    }
}

/// Decides without allowances (a subnet that charges nothing), 13 nodes.
fn free(c: ReplicationCounts, reports: &[NodeReport]) -> Option<FlexibleHttpRequestResult> {
    decide(c, reports, None, 13).map(|d| d.result)
}

#[test]
fn default_counts_are_every_node_and_a_two_thirds_majority() {
    assert_eq!(replication_counts(None, 13).unwrap(), counts(13, 9, 13));
    assert_eq!(replication_counts(None, 34).unwrap(), counts(34, 23, 34));
    assert_eq!(replication_counts(None, 1).unwrap(), counts(1, 1, 1));
    // 0 <= min <= max <= total <= n are all accepted, fire-and-forget too.
    assert_eq!(replication_counts(Some(counts(4, 0, 0)), 13).unwrap(), counts(4, 0, 0));
    assert_eq!(replication_counts(Some(counts(13, 13, 13)), 13).unwrap(), counts(13, 13, 13));
}

#[test]
fn invalid_counts_are_refused_with_the_ic_texts_in_its_order() {
    let refused = |c, n| replication_counts(Some(c), n).expect_err("refused");
    let e = refused(counts(0, 0, 0), 13);
    assert_eq!(e.code, RejectCode::CanisterReject);
    assert!(e.message.ends_with("total_requests (0) must be at least 1"), "{}", e.message);
    assert!(refused(counts(5, 1, 1), 4).message.ends_with("total_requests (5) must not exceed the number of available nodes (4)"));
    assert!(refused(counts(4, 3, 2), 13).message.ends_with("min_responses (3) must not exceed max_responses (2)"));
    assert!(refused(counts(2, 1, 3), 13).message.ends_with("max_responses (3) must not exceed total_requests (2)"));
    // The node count is checked before the other counts.
    assert!(refused(counts(20, 3, 2), 13).message.ends_with("total_requests (20) must not exceed the number of available nodes (13)"));
}

fn args(method: HttpMethod, replication: Option<ReplicationCounts>) -> FlexibleHttpRequestArgs {
    FlexibleHttpRequestArgs {
        url: "https://example.org/".into(),
        max_response_bytes: None,
        method,
        headers: Vec::new(),
        body: None,
        transform: None,
        replication,
    }
}

#[test]
fn unsafe_methods_need_every_response() {
    let caller = node(1);
    for method in [HttpMethod::Put, HttpMethod::Delete, HttpMethod::Patch] {
        assert!(validate(&args(method, Some(counts(3, 3, 3))), &caller, 13).is_ok());
        assert!(validate(&args(method, Some(counts(3, 2, 3))), &caller, 13).is_err());
        assert!(validate(&args(method, None), &caller, 13).is_err(), "the defaults (9 of 13) are not deterministic");
    }
    assert_eq!(validate(&args(HttpMethod::Post, None), &caller, 13).unwrap(), counts(13, 9, 13));
}

#[test]
fn the_request_is_checked_as_http_request_is_and_before_the_counts() {
    let caller = node(1);
    // The IC checks the transform, the URL, the headers and body, then the counts.
    let mut a = args(HttpMethod::Get, Some(counts(0, 0, 0)));
    a.url = "x".repeat(8_193);
    assert!(validate(&a, &caller, 13).unwrap_err().message.ends_with("url size 8193 exceeds 8192"));
    let mut a = args(HttpMethod::Get, Some(counts(0, 0, 0)));
    a.body = Some(ByteBuf::from(vec![0; 2_000_001]));
    assert!(validate(&a, &caller, 13).unwrap_err().message.ends_with("exceeds 2000000"));
    let mut a = args(HttpMethod::Get, None);
    a.max_response_bytes = Some(2_000_001);
    assert!(validate(&a, &caller, 13).unwrap_err().message.ends_with("max_response_bytes expected to be in the range [0..2000000], got 2000001"));
}

#[test]
fn enough_replies_are_delivered_smallest_first_up_to_max() {
    let reports = [ok(0, b"dddd"), ok(1, b"a"), ok(2, b"ccc"), ok(3, b"bb")];
    assert_eq!(bodies(&free(counts(4, 4, 4), &reports).unwrap()), [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec(), b"dddd".to_vec()]);
    // `max_responses` caps the delivery; the smallest are kept.
    assert_eq!(bodies(&free(counts(4, 1, 2), &reports).unwrap()), [b"a".to_vec(), b"bb".to_vec()]);
    // Silent nodes do not matter once `min_responses` replies are in.
    assert_eq!(bodies(&free(counts(4, 2, 4), &reports[..2]).unwrap()).len(), 2);
    // Rejects do not either.
    let mixed = [reject(0, "Connection refused"), ok(1, b"x"), reject(2, "Connection refused"), reject(3, "Connection refused")];
    assert_eq!(bodies(&free(counts(4, 1, 4), &mixed).unwrap()), [b"x".to_vec()]);
}

#[test]
fn fire_and_forget_is_answered_by_any_report() {
    assert!(bodies(&free(counts(4, 0, 0), &[ok(0, b"hello")]).unwrap()).is_empty());
    assert!(bodies(&free(counts(4, 0, 0), &[reject(0, "Connection refused")]).unwrap()).is_empty());
    // No report at all decides nothing: the outcall waits for its timeout.
    assert!(free(counts(4, 0, 0), &[]).is_none());
}

#[test]
fn more_rejects_than_the_slack_are_too_many() {
    // Slack 4 - 3 = 1: two rejects are one too many.
    let reports = [reject(0, "Connection refused"), reject(1, "Connection refused"), ok(2, b"hello"), ok(3, b"hello")];
    let result = free(counts(4, 3, 4), &reports).unwrap();
    let e = err(&result);
    assert_eq!(e.global_error, Some(GlobalError::TooManyRejects(Reserved)));
    assert_eq!(e.message, "Too many rejects: 2 responses are rejects");
    assert_eq!(e.node_details.len(), 2);
    for d in &e.node_details {
        assert_eq!(d.error, Some(NodeError { code: "SysTransient".into(), message: "Connection refused".into() }));
        assert_eq!(d.report, ResourceReport::default());
    }
    let ids: std::collections::BTreeSet<_> = e.node_details.iter().map(|d| d.node_id).collect();
    assert_eq!(ids, [node(0), node(1)].into_iter().collect(), "each detail names a rejecting node");
}

#[test]
fn too_few_replies_and_few_rejects_decide_nothing_yet() {
    // 1 of the 3 replies needed, 1 reject of the slack of 1: the silent
    // nodes could still make it either way.
    assert!(free(counts(4, 3, 4), &[ok(0, b"hello")]).is_none());
    assert!(free(counts(4, 3, 4), &[ok(0, b"hello"), reject(1, "x")]).is_none());
}

#[test]
fn replies_that_cannot_share_a_block_are_too_large() {
    let big = vec![b'x'; 1_100_000];
    let result = free(counts(2, 2, 2), &[ok(0, &big), ok(1, &big)]).unwrap();
    let e = err(&result);
    assert_eq!(e.global_error, Some(GlobalError::ResponsesTooLarge(Reserved)));
    assert!(e.message.starts_with("Responses too large: need at least 2 OK responses to fit within 2097152 bytes"), "{}", e.message);
    assert_eq!(e.node_details.len(), 2);
    for d in &e.node_details {
        let error = d.error.as_ref().unwrap();
        assert_eq!(error.code, "ok");
        assert!(error.message.ends_with(" bytes"), "{}", error.message);
    }
    // With fewer required, as many as fit are delivered.
    assert_eq!(bodies(&free(counts(3, 1, 3), &[ok(0, &big), ok(1, &big), ok(2, &big)]).unwrap()).len(), 1);
}

#[test]
fn allowances_that_cannot_pay_for_a_delivery_are_out_of_cycles() {
    let body = vec![b'x'; 100_000];
    let mut reports = [ok(0, &body), ok(1, &body), ok(2, &body), ok(3, &body)];
    // Each node spent what it paid to download and gossip the response,
    // and may spend twice that: far short of the 9_490 cycles per byte
    // that putting a response into a block costs on 13 nodes.
    let spent = pricing::node_spend(
        13,
        counts(4, 4, 4).replication(),
        Usage { raw_response_bytes: 100_000, transformed_response_bytes: 100_000, ..Default::default() },
    );
    for r in &mut reports {
        r.spent = spent;
    }
    let funding = Funding { per_node: 2 * spent };
    let result = decide(counts(4, 4, 4), &reports, Some(funding), 13).unwrap().result;
    let e = err(&result);
    assert_eq!(e.global_error, Some(GlobalError::OutOfCycles(Reserved)));
    assert!(e.message.starts_with("Out of cycles: 4 of the assigned replicas reported a collective spend of "), "{}", e.message);
    assert_eq!(e.node_details.len(), 4);
    assert!(e.node_details.iter().all(|d| d.error.as_ref().is_some_and(|x| x.code == "ok" && x.message.ends_with(" cycles spent"))));
    // Ample allowances deliver, and the consensus fee is what delivering costs.
    let funding = Funding { per_node: 10_000_000_000 };
    let decision = decide(counts(4, 4, 4), &reports, Some(funding), 13).unwrap();
    assert_eq!(bodies(&decision.result).len(), 4);
    let size = reports[0].outcome.as_ref().unwrap().1;
    assert_eq!(decision.delivery_fee, 9_490 * 4 * (181 + u128::from(size)));
}

#[test]
fn running_out_of_cycles_preempts_too_many_rejects() {
    // Two 1000-byte rejects cost about 22 M cycles to deliver; the committee
    // has 4 × 3 M left.
    let message = "x".repeat(1_000);
    let reports = [reject(0, &message), reject(1, &message), ok(2, b"hello"), ok(3, b"hello")];
    let funding = Funding { per_node: 3_000_000 };
    let result = decide(counts(4, 3, 4), &reports, Some(funding), 13).unwrap().result;
    let e = err(&result);
    assert_eq!(e.global_error, Some(GlobalError::OutOfCycles(Reserved)));
    let mut codes: Vec<_> = e.node_details.iter().map(|d| d.error.as_ref().unwrap().code.clone()).collect();
    codes.sort();
    assert_eq!(codes, ["ok", "ok", "reject", "reject"]);
}

#[test]
fn a_timeout_names_no_node() {
    let e = timed_out();
    let e = err(&e);
    assert_eq!(e.global_error, Some(GlobalError::Timeout(Reserved)));
    assert_eq!(e.message, "Flexible HTTP request timed out");
    assert!(e.node_details.is_empty());
}

#[test]
fn node_ids_are_distinct_self_authenticating_principals() {
    let subnet = crate::replica::exec::subnet_id();
    let ids: std::collections::BTreeSet<_> = (0..34).map(|i| node_id(&subnet, i)).collect();
    assert_eq!(ids.len(), 34);
    assert!(ids.iter().all(|p| p.as_slice().len() == 29 && p.as_slice()[28] == 0x02));
}

#[test]
fn the_method_matches_ic_did() {
    let (env, actor) = candid_parser::utils::CandidSource::Text(super::super::management::CANDID).load().expect("ic.did parses");
    let f = env.get_method(&actor.expect("a service"), "flexible_http_request").expect("ic.did has flexible_http_request").clone();
    let conforms = |bytes: Vec<u8>, types: &[candid::types::Type]| {
        candid::IDLArgs::from_bytes_with_types(&bytes, &env, types).unwrap_or_else(|e| panic!("does not match ic.did: {e}"));
    };
    let mut a = args(HttpMethod::Post, Some(counts(3, 2, 3)));
    a.body = Some(ByteBuf::from(b"{}".to_vec()));
    conforms(candid::encode_one(&a).unwrap(), &f.args);
    conforms(candid::encode_one(free(counts(2, 1, 2), &[ok(0, b"a"), ok(1, b"b")]).unwrap()).unwrap(), &f.rets);
    let rejects = [reject(0, "r"), reject(1, "r")];
    conforms(candid::encode_one(free(counts(2, 1, 2), &rejects).unwrap()).unwrap(), &f.rets);
    conforms(candid::encode_one(timed_out()).unwrap(), &f.rets);
}
