//! Routes the node does not serve are 404s, as the IC answers them: a
//! canister id outside the node's canister ranges (it lives on another
//! subnet, if anywhere), a subnet that is not the node's.

use candid::{Encode, Principal};
use ww_ic_agent_suite::{Node, ed25519, http_error};

/// The NNS registry's id: never in a ww node's range.
const ELSEWHERE: &str = "rwlgt-iiaaa-aaaaa-aaaaa-cai";

#[tokio::test]
async fn a_canister_outside_the_nodes_ranges_is_a_404() {
    let node = Node::start();
    let agent = node.agent(ed25519(21)).await;
    let elsewhere = Principal::from_text(ELSEWHERE).unwrap();
    // Unverified: a verifying agent also reads the subnet's ranges through
    // the same id and may refuse the canister itself first
    // (CertificateNotAuthorized); this asks what the node answers.
    let (status, body) = http_error("query", agent.query(&elsewhere, "get").with_arg(Encode!().unwrap()).call_without_verification().await);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(ELSEWHERE), "the 404 names the canister: {body}");
    let (status, body) = http_error("update", agent.update(&elsewhere, "inc").with_arg(Encode!().unwrap()).call_and_wait().await);
    assert_eq!(status, 404, "{body}");
    let read = agent.read_state_canister_module_hash(elsewhere).await;
    match read {
        Err(ic_agent::AgentError::HttpError(p)) => assert_eq!(p.status, 404, "{}", String::from_utf8_lossy(&p.content)),
        other => panic!("read_state of a canister outside the ranges: expected a 404, got {other:?}"),
    }
    // The time alone may be read through any canister id: agents fix their
    // clock through the ICP ledger's.
    let cert = agent.read_state_raw(vec![vec!["time".into()]], elsewhere).await.expect("/time through an id outside the ranges");
    agent.verify(&cert, elsewhere).expect("a certificate the agent verifies");
}

#[tokio::test]
async fn a_subnet_that_is_not_the_nodes_is_a_404() {
    let node = Node::start();
    let agent = node.agent(ed25519(22)).await;
    let other = Principal::self_authenticating(b"another subnet's key");
    match agent.read_state_subnet_canister_ranges(other).await {
        Err(ic_agent::AgentError::HttpError(p)) => assert_eq!(p.status, 404, "{}", String::from_utf8_lossy(&p.content)),
        other => panic!("read_state of another subnet: expected a 404, got {other:?}"),
    }
    // The node's own subnet answers.
    let own = Principal::self_authenticating(agent.read_root_key());
    let ranges = agent.read_state_subnet_canister_ranges(own).await.expect("the node's subnet ranges");
    assert!(!ranges.is_empty());
}
