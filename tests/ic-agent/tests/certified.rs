//! Certified data: a canister sets it in an update; a query gets a data
//! certificate for it that verifies against the node's root key; the root
//! key a canister sees is the one the agent fetched.

use candid::{Encode, Principal};
use ic_agent::hash_tree::LookupResult;
use ic_agent::{Agent, Certificate};
use ic_management_canister_types::{CanisterInstallMode, InstallCodeArgs};
use ww_ic_agent_suite::{Node, cdk_counter_wasm, decode, deploy_counter, ed25519};

async fn data_certificate(agent: &Agent, id: Principal) -> Certificate {
    let reply = agent.query(&id, "certified").with_arg(Encode!().unwrap()).call().await.expect("certified");
    let bytes = decode::<Option<Vec<u8>>>("certified", &reply).expect("a query sees a data certificate");
    serde_cbor::from_slice(&bytes).unwrap_or_else(|e| panic!("the data certificate is no Certificate ({e}): {bytes:02x?}"))
}

/// The certified data in `certificate`, after the agent verified it
/// (BLS signature against the root key, freshness) for `id`.
fn certified_data(agent: &Agent, certificate: &Certificate, id: Principal) -> Vec<u8> {
    agent.verify(certificate, id).expect("the data certificate verifies against the root key");
    match certificate.tree.lookup_path([b"canister".as_slice(), id.as_slice(), b"certified_data"]) {
        LookupResult::Found(data) => data.to_vec(),
        other => panic!("canister/{id}/certified_data in the data certificate: {other:?}"),
    }
}

async fn set_certified(agent: &Agent, id: Principal, data: &[u8]) {
    agent
        .update(&id, "set_certified")
        .with_arg(Encode!(&data.to_vec()).unwrap())
        .call_and_wait()
        .await
        .expect("set_certified");
}

#[tokio::test]
async fn a_query_gets_a_data_certificate_for_the_certified_data() {
    let node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    set_certified(&agent, id, b"hello").await;
    let certificate = data_certificate(&agent, id).await;
    assert_eq!(certified_data(&agent, &certificate, id), b"hello");

    // A new value is certified anew.
    set_certified(&agent, id, b"world").await;
    let certificate = data_certificate(&agent, id).await;
    assert_eq!(certified_data(&agent, &certificate, id), b"world");
}

/// Only a non-replicated query sees a certificate: the same method run as
/// an update call sees none.
#[tokio::test]
async fn an_update_sees_no_data_certificate() {
    let node = Node::start();
    let agent = node.agent(ed25519(2)).await;
    let id = deploy_counter(&agent).await;
    let reply = agent.update(&id, "certified").with_arg(Encode!().unwrap()).call_and_wait().await.expect("certified");
    assert_eq!(decode::<Option<Vec<u8>>>("certified", &reply), None);
}

#[tokio::test]
async fn certified_data_is_kept_across_an_upgrade() {
    let node = Node::start();
    let agent = node.agent(ed25519(3)).await;
    let id = deploy_counter(&agent).await;
    set_certified(&agent, id, b"kept").await;
    let args = InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(None),
        canister_id: id,
        wasm_module: cdk_counter_wasm(),
        arg: Encode!().unwrap(),
        sender_canister_version: None,
    };
    agent
        .update(&Principal::management_canister(), "install_code")
        .with_effective_canister_id(id)
        .with_arg(Encode!(&args).unwrap())
        .call_and_wait()
        .await
        .expect("install_code (upgrade)");
    let upgrades = agent.query(&id, "upgrades").with_arg(Encode!().unwrap()).call().await.expect("upgrades");
    assert_eq!(decode::<u64>("upgrades", &upgrades), 1, "the upgrade ran");
    let certificate = data_certificate(&agent, id).await;
    assert_eq!(certified_data(&agent, &certificate, id), b"kept");
}

#[tokio::test]
async fn a_canister_sees_the_root_key_the_agent_fetched() {
    let node = Node::start();
    let agent = node.agent(ed25519(4)).await;
    let id = deploy_counter(&agent).await;
    let reply = agent.query(&id, "root_key").with_arg(Encode!().unwrap()).call().await.expect("root_key");
    assert_eq!(decode::<Vec<u8>>("root_key", &reply), agent.read_root_key());
}
