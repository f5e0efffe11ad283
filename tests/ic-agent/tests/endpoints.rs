//! The endpoint versions other clients use (@dfinity/agent 3.x: v3 call,
//! v2 query and read_state; the async v2 call), fed requests that ic-agent
//! signs, and the subnet-scoped v4 call that creates canisters.

use std::collections::BTreeMap;

use candid::{Encode, Principal};
use ic_agent::agent::{CallResponse, EffectiveId};
use ic_agent::hash_tree::LookupResult;
use ic_agent::{Agent, Certificate, TransportCallResponse};
use ic_management_canister_types::{CanisterIdRecord, ProvisionalCreateCanisterWithCyclesArgs};
use serde_cbor::Value;
use ww_ic_agent_suite::{Node, decode, deploy_counter, ed25519};

/// POSTs a CBOR body to `<node>/<path>`: the status and the body.
async fn post(node: &Node, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let url = format!("{}{path}", node.url());
    let response = ic_agent::export::reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/cbor")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_else(|e| panic!("the body of POST {url}: {e}"));
    (status, body.to_vec())
}

fn cbor<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> T {
    serde_cbor::from_slice(bytes).unwrap_or_else(|e| panic!("{what} is not the expected CBOR ({e}): {bytes:02x?}"))
}

fn reply_in(agent: &Agent, certificate: &Certificate, id: Principal, rid: &[u8]) -> Vec<u8> {
    agent.verify(certificate, id).expect("the certificate verifies against the root key");
    let status = certificate.tree.lookup_path([b"request_status".as_slice(), rid, b"status"]);
    assert!(matches!(status, LookupResult::Found(b"replied")), "request_status/<rid>/status: {status:?}");
    match certificate.tree.lookup_path([b"request_status".as_slice(), rid, b"reply"]) {
        LookupResult::Found(reply) => reply.to_vec(),
        other => panic!("request_status/<rid>/reply: {other:?}"),
    }
}

#[tokio::test]
async fn v2_call_is_accepted_202_and_its_status_read_on_v2_read_state() {
    let node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    let signed = agent.update(&id, "inc").with_arg(Encode!().unwrap()).sign().expect("a signed update");
    let (status, body) = post(&node, &format!("api/v2/canister/{id}/call"), signed.signed_update).await;
    assert_eq!(status, 202, "v2 call: {}", String::from_utf8_lossy(&body));
    assert!(body.is_empty(), "a v2 call's 202 has no body: {body:02x?}");

    // The v2 read_state answers once the call is done (bounded by wait()).
    let (reply, _) = agent.wait(&signed.request_id, id).await.expect("the v2 call's reply");
    assert_eq!(decode::<u64>("inc", &reply), 1);
    let read = agent.sign_request_status(id, signed.request_id).expect("a signed read_state");
    let (status, body) = post(&node, &format!("api/v2/canister/{id}/read_state"), read.signed_request_status).await;
    assert_eq!(status, 200, "v2 read_state: {}", String::from_utf8_lossy(&body));
    let answer: BTreeMap<String, Value> = cbor("the v2 read_state answer", &body);
    let Some(Value::Bytes(certificate)) = answer.get("certificate") else {
        panic!("the v2 read_state answer has no certificate: {answer:?}")
    };
    let certificate: Certificate = cbor("the certificate", certificate);
    let reply = reply_in(&agent, &certificate, id, &signed.request_id.to_vec());
    assert_eq!(decode::<u64>("inc", &reply), 1);
}

#[tokio::test]
async fn v3_call_answers_with_the_certified_reply() {
    let node = Node::start();
    let agent = node.agent(ed25519(2)).await;
    let id = deploy_counter(&agent).await;
    let signed = agent.update(&id, "inc").with_arg(Encode!().unwrap()).sign().expect("a signed update");
    let (status, body) = post(&node, &format!("api/v3/canister/{id}/call"), signed.signed_update).await;
    assert_eq!(status, 200, "v3 call: {}", String::from_utf8_lossy(&body));
    let certificate = match cbor::<TransportCallResponse>("the v3 call answer", &body) {
        TransportCallResponse::Replied { certificate } => certificate,
        other => panic!("the v3 call answered {other:?}"),
    };
    let certificate: Certificate = cbor("the certificate", &certificate);
    let reply = reply_in(&agent, &certificate, id, &signed.request_id.to_vec());
    assert_eq!(decode::<u64>("inc", &reply), 1);
}

#[tokio::test]
async fn v2_query_answers_a_signed_reply() {
    let node = Node::start();
    let agent = node.agent(ed25519(3)).await;
    let id = deploy_counter(&agent).await;
    agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
    let signed = agent.query(&id, "get").with_arg(Encode!().unwrap()).sign().expect("a signed query");
    let (status, body) = post(&node, &format!("api/v2/canister/{id}/query"), signed.signed_query.clone()).await;
    assert_eq!(status, 200, "v2 query: {}", String::from_utf8_lossy(&body));
    let answer: BTreeMap<String, Value> = cbor("the v2 query answer", &body);
    assert_eq!(answer.get("status"), Some(&Value::Text("replied".into())), "{answer:?}");
    let Some(Value::Map(reply)) = answer.get("reply") else { panic!("no reply: {answer:?}") };
    let Some(Value::Bytes(arg)) = reply.get(&Value::Text("arg".into())) else { panic!("no reply.arg: {answer:?}") };
    assert_eq!(decode::<u64>("get", arg), 1);
    let Some(Value::Array(signatures)) = answer.get("signatures") else { panic!("no signatures: {answer:?}") };
    assert!(!signatures.is_empty(), "the v2 query reply is unsigned");

    // The same signed query through the agent's own path (v3, signature checked).
    let reply = agent.query_signed(id, signed.signed_query).await.expect("the signed query on v3");
    assert_eq!(decode::<u64>("get", &reply), 1);
}

/// `provisional_create_canister_with_cycles` on `/api/v4/subnet/<sid>/call`,
/// the subnet being the root key's principal: the sender controls the new
/// canister.
#[tokio::test]
async fn a_canister_is_created_through_the_subnet_call_endpoint() {
    let node = Node::start();
    let creator = ed25519(4);
    let principal = ic_agent::Identity::sender(&creator).expect("a principal");
    let agent = node.agent(creator).await;
    let subnet = EffectiveId::Subnet(Principal::self_authenticating(agent.read_root_key()));
    let arg = ProvisionalCreateCanisterWithCyclesArgs {
        amount: None,
        settings: None,
        specified_id: None,
        sender_canister_version: None,
    };
    let signed = agent
        .update(&Principal::management_canister(), "provisional_create_canister_with_cycles")
        .with_arg(Encode!(&arg).unwrap())
        .sign()
        .expect("a signed update");
    let reply = match agent.update_signed(subnet, signed.signed_update).await.expect("the subnet call") {
        CallResponse::Response(reply) => reply,
        CallResponse::Poll(rid) => agent.wait(&rid, subnet).await.expect("the polled reply").0,
    };
    let id = decode::<CanisterIdRecord>("provisional_create_canister_with_cycles", &reply).canister_id;
    let controllers = agent.read_state_canister_controllers(id).await.expect("read_state controllers");
    assert_eq!(controllers, vec![principal]);
}
