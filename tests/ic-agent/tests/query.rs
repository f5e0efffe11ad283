//! Query calls (`/api/v3/canister/<id>/query`) with the agent's node
//! signature check on (its default), replies and rejects alike.

use candid::Encode;
use ic_agent::agent::RejectCode;
use ww_ic_agent_suite::{Node, decode, deploy_counter, ed25519, reject};

#[tokio::test]
async fn a_query_reply_carries_a_node_signature_the_agent_verifies() {
    let node = Node::start();
    let (agent, recorder) = node.recorded_agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
    let before = recorder.exchanges().len();

    let verified = agent.query(&id, "get").with_arg(Encode!().unwrap()).call_with_verification().await;
    let verified = verified.unwrap_or_else(|e| panic!("get, signature checked: {e:?}"));
    assert_eq!(decode::<u64>("get", &verified), 1);
    let seen = recorder.exchanges()[before..].to_vec();
    assert!(
        seen.iter().any(|x| x.path == format!("/api/v3/canister/{id}/query") && x.status == 200),
        "no v3 query answered 200: {seen:?}"
    );
    // The default is the same check; and without it, the same reply.
    let default = agent.query(&id, "get").with_arg(Encode!().unwrap()).call().await.expect("get");
    let unverified = agent.query(&id, "get").with_arg(Encode!().unwrap()).call_without_verification().await.expect("get");
    assert_eq!(default, verified);
    assert_eq!(unverified, verified);
}

#[tokio::test]
async fn a_query_of_an_unknown_method_is_a_signed_reject() {
    let node = Node::start();
    let agent = node.agent(ed25519(2)).await;
    let id = deploy_counter(&agent).await;
    let result = agent.query(&id, "no_such_method").with_arg(Encode!().unwrap()).call().await;
    let reject = reject("a query of an unknown method", result, false);
    assert_eq!(reject.reject_code, RejectCode::CanisterError, "{reject:?}");
    assert!(reject.reject_message.contains("no_such_method"), "{reject:?}");
    if let Some(code) = &reject.error_code {
        assert!(code.starts_with("IC"), "error_code {code:?}");
    }
}

/// A query to a canister id in the node's range that was never created: a
/// reject (destination invalid), not a hang.
#[tokio::test]
async fn a_query_of_an_unknown_canister_is_rejected() {
    let node = Node::start();
    let agent = node.agent(ed25519(3)).await;
    let known = deploy_counter(&agent).await;
    let unknown = ww_ic_agent_suite::canister_after(known, 1000);
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        agent.query(&unknown, "get").with_arg(Encode!().unwrap()).call(),
    )
    .await
    .expect("the query is answered");
    let reject = reject(&format!("a query of the unknown canister {unknown}"), result, false);
    assert_eq!(reject.reject_code, RejectCode::DestinationInvalid, "{reject:?}");
}
