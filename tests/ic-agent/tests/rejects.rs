//! Canister rejects come back as the agent's reject errors with the IC's
//! reject codes: a trap is certified (code 5), an unknown canister and a
//! message refused by `canister_inspect_message` are not.

use std::time::Duration;

use candid::Encode;
use ic_agent::agent::RejectCode;
use ww_ic_agent_suite::{Node, canister_after, counter, deploy_counter, ed25519, reject};

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_trap_is_a_certified_canister_error() {
    let node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    let result = agent.update(&id, "inc_then_trap").with_arg(Encode!().unwrap()).call_and_wait().await;
    let reject = reject("a trapping update", result, true);
    assert_eq!(reject.reject_code, RejectCode::CanisterError, "{reject:?}");
    assert!(reject.reject_message.contains("inc_then_trap: deliberate"), "{reject:?}");
    assert_eq!(counter(&agent, id).await, 0, "the trap rolled back the increment");
}

#[tokio::test]
async fn an_update_to_an_unknown_canister_is_rejected_at_once() {
    let node = Node::start();
    let agent = node.agent(ed25519(2)).await;
    let known = deploy_counter(&agent).await;
    let unknown = canister_after(known, 1000);
    let result = tokio::time::timeout(
        PATIENCE,
        agent.update(&unknown, "inc").with_arg(Encode!().unwrap()).call_and_wait(),
    )
    .await
    .expect("the update is answered");
    let reject = reject(&format!("an update to the unknown canister {unknown}"), result, false);
    assert_eq!(reject.reject_code, RejectCode::DestinationInvalid, "{reject:?}");
}

/// cdk_counter's `canister_inspect_message` refuses `refused_by_inspect`
/// from ingress: a non-replicated rejection, and the method never runs.
#[tokio::test]
async fn a_message_inspect_refuses_is_an_uncertified_reject() {
    let node = Node::start();
    let agent = node.agent(ed25519(3)).await;
    let id = deploy_counter(&agent).await;
    let result = agent.update(&id, "refused_by_inspect").with_arg(Encode!().unwrap()).call_and_wait().await;
    let reject = reject("a message inspect refuses", result, false);
    assert_eq!(reject.reject_code, RejectCode::CanisterReject, "{reject:?}");
    assert_eq!(counter(&agent, id).await, 0, "refused_by_inspect ran");
}
