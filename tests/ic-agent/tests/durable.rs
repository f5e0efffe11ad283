//! What the HTTP interface certifies survives a SIGKILL of the node: the
//! root key (agents pinned to it keep working), a canister's certified data,
//! and the ingress history (a reply can still be read by request id).

use candid::Encode;
use ic_agent::agent::{CallResponse, RequestStatusResponse};
use ic_agent::hash_tree::LookupResult;
use ic_agent::{Agent, Certificate};
use ww_ic_agent_suite::{Node, decode, deploy_counter, ed25519};

#[tokio::test]
async fn root_key_certified_data_and_ingress_history_survive_a_sigkill() {
    let mut node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    agent
        .update(&id, "set_certified")
        .with_arg(Encode!(&b"durable".to_vec()).unwrap())
        .call_and_wait()
        .await
        .expect("set_certified");
    let signed = agent.update(&id, "inc").with_arg(Encode!().unwrap()).sign().expect("a signed update");
    let rid = signed.request_id;
    match agent.update_signed(id, signed.signed_update).await.expect("inc") {
        CallResponse::Response(reply) => assert_eq!(decode::<u64>("inc", &reply), 1),
        CallResponse::Poll(_) => panic!("inc was not answered synchronously"),
    }
    let root_key = agent.read_root_key();

    node.kill_and_restart(&[]);

    // An agent pinned to the old key (no fetch) verifies the new node's answers.
    let pinned: Agent = node.agent_unfetched(ed25519(1));
    pinned.set_root_key(root_key.clone());
    let status = pinned.status().await.expect("status after the restart");
    assert_eq!(status.root_key.as_deref(), Some(&root_key[..]), "the root key changed across the restart");

    let (status, _) = pinned.request_status_raw(&rid, id).await.expect("read_state of the old request");
    match status {
        RequestStatusResponse::Replied(reply) => assert_eq!(decode::<u64>("inc", &reply.arg), 1),
        other => panic!("the request's status after the restart: {other:?}"),
    }

    let reply = pinned.query(&id, "certified").with_arg(Encode!().unwrap()).call().await.expect("certified");
    let bytes = decode::<Option<Vec<u8>>>("certified", &reply).expect("a data certificate");
    let certificate: Certificate = serde_cbor::from_slice(&bytes).expect("a certificate");
    pinned.verify(&certificate, id).expect("the data certificate verifies against the old root key");
    let data = certificate.tree.lookup_path([b"canister".as_slice(), id.as_slice(), b"certified_data"]);
    assert!(matches!(data, LookupResult::Found(b"durable")), "certified_data after the restart: {data:?}");
}
