//! `read_state` of a canister's certified facts (`/api/v3/canister/<id>/read_state`):
//! `module_hash`, `controllers`, `metadata/candid:service`, and who may
//! read a request's status.

use candid::Encode;
use ic_agent::AgentError;
use ic_agent::agent::RequestStatusResponse;
use ic_agent::hash_tree::{Label, LookupResult};
use sha2::{Digest, Sha256};
use ww_ic_agent_suite::{Node, cdk_counter_wasm, create_canister, deploy, deploy_counter, ed25519, motoko_dir, motoko_wasm};

#[tokio::test]
async fn module_hash_is_the_sha256_of_the_installed_module() {
    let node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    let hash = agent.read_state_canister_module_hash(id).await.expect("read_state module_hash");
    assert_eq!(hash, Sha256::digest(cdk_counter_wasm()).to_vec());
}

/// An empty canister (created, nothing installed) has no `module_hash`.
#[tokio::test]
async fn an_empty_canister_has_no_module_hash() {
    let node = Node::start();
    let agent = node.agent(ed25519(2)).await;
    let id = create_canister(&agent).await;
    match agent.read_state_canister_module_hash(id).await {
        Err(AgentError::LookupPathAbsent(_)) => {}
        other => panic!("module_hash of the empty canister {id}: {other:?}, not absent"),
    }
}

#[tokio::test]
async fn controllers_are_the_creator() {
    let node = Node::start();
    let creator = ed25519(3);
    let principal = ic_agent::Identity::sender(&creator).expect("a principal");
    let agent = node.agent(creator).await;
    let id = deploy_counter(&agent).await;
    let controllers = agent.read_state_canister_controllers(id).await.expect("read_state controllers");
    assert_eq!(controllers, vec![principal]);
}

/// `metadata/candid:service` is the module's `icp:public candid:service`
/// custom section, byte for byte (mo_counter, built by `make motoko`).
#[tokio::test]
async fn candid_service_metadata_is_the_modules_public_section() {
    let node = Node::start();
    let agent = node.agent(ed25519(4)).await;
    let wasm = motoko_wasm("mo_counter");
    let section = custom_section(&wasm, "icp:public candid:service")
        .unwrap_or_else(|| panic!("mo_counter.wasm has no icp:public candid:service section"));
    // The section is the interface `make motoko` writes beside the module.
    let did = std::fs::read(motoko_dir().join("mo_counter.did")).expect("mo_counter.did");
    assert_eq!(String::from_utf8_lossy(&section).trim(), String::from_utf8_lossy(&did).trim());

    let id = deploy(&agent, wasm).await;
    let metadata = agent.read_state_canister_metadata(id, "candid:service").await.expect("read_state metadata");
    assert_eq!(String::from_utf8_lossy(&metadata), String::from_utf8_lossy(&section));
    assert_eq!(metadata, section);
}

/// A request's status is the sender's: another sender learns nothing of it
/// (refused, or no status in the certificate), never the reply.
#[tokio::test]
async fn another_sender_cannot_read_a_request_status() {
    let node = Node::start();
    let agent = node.agent(ed25519(5)).await;
    let stranger = node.agent(ed25519(6)).await;
    let id = deploy_counter(&agent).await;
    let signed = agent.update(&id, "inc").with_arg(Encode!().unwrap()).sign().expect("a signed update");
    agent.update_signed(id, signed.signed_update).await.expect("inc");
    let (own, _) = agent.request_status_raw(&signed.request_id, id).await.expect("the sender reads its status");
    assert!(matches!(own, RequestStatusResponse::Replied(_)), "the sender's view: {own:?}");

    let paths = vec![vec![Label::from("request_status"), Label::from(signed.request_id.to_vec())]];
    match stranger.read_state_raw(paths, id).await {
        Err(AgentError::HttpError(p)) => assert!((400..500).contains(&p.status), "{p}"),
        Err(e) => panic!("another sender's read_state: {e:?}"),
        Ok(cert) => {
            let rid = signed.request_id.to_vec();
            for leaf in ["status", "reply"] {
                let found = cert.tree.lookup_path([b"request_status".as_slice(), &rid, leaf.as_bytes()]);
                assert!(
                    !matches!(found, LookupResult::Found(_)),
                    "another sender read the request's {leaf}: {found:?}"
                );
            }
        }
    }
}

/// The payload of the custom section `name` of a wasm module.
fn custom_section(wasm: &[u8], name: &str) -> Option<Vec<u8>> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CustomSection(reader) = payload.expect("a valid module")
            && reader.name() == name
        {
            return Some(reader.data().to_vec());
        }
    }
    None
}
