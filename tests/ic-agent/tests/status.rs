//! `GET /api/v2/status`, the agent's `fetch_root_key`, the subnet the root
//! key names, and the node's lifecycle (`http.url`, SIGTERM).

use candid::Principal;
use ic_agent::identity::AnonymousIdentity;
use ww_ic_agent_suite::{FIRST_CANISTER, Node, ed25519};

/// The fixed DER prefix of a BLS12-381 public key on the IC (96-byte G2
/// key after it, 133 bytes in all): the only form ic-agent accepts.
const BLS_DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x01, 0x02,
    0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x02, 0x01, 0x03, 0x61, 0x00,
];

#[tokio::test]
async fn status_reports_a_der_bls_root_key_and_health() {
    let node = Node::start();
    let agent = node.agent_unfetched(AnonymousIdentity);
    let mainnet_key = agent.read_root_key();
    let status = agent.status().await.expect("GET /api/v2/status");
    let key = status.root_key.clone().unwrap_or_else(|| panic!("status has no root_key: {status}"));
    assert_eq!(key.len(), 133, "root key length: {key:02x?}");
    assert_eq!(key[..37], BLS_DER_PREFIX, "root key DER prefix");
    assert_ne!(key, mainnet_key, "a local node must not claim the mainnet root key");
    assert_eq!(status.replica_health_status.as_deref(), Some("healthy"), "{status}");

    agent.fetch_root_key().await.expect("fetch_root_key");
    assert_eq!(agent.read_root_key(), key, "fetch_root_key took the key status reports");
}

/// With no delegation, agents take the subnet to be the self-authenticating
/// principal of the DER root key; its certified node keys are what query
/// signatures are checked against, and its ranges hold the node's canisters.
#[tokio::test]
async fn the_root_key_names_the_subnet_with_its_node_keys_and_ranges() {
    let node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let subnet_id = Principal::self_authenticating(agent.read_root_key());
    let subnet = agent.fetch_subnet_by_id(&subnet_id).await.expect("read_state of /subnet on the subnet endpoint");
    assert_eq!(subnet.id(), subnet_id);
    let keys: Vec<_> = subnet.iter_node_keys().collect();
    assert!(!keys.is_empty(), "the subnet certifies no node key");
    for (node_id, key) in keys {
        assert_eq!(key.len(), 44, "node {node_id}: an Ed25519 DER key is 44 bytes: {key:02x?}");
        assert_eq!(node_id, Principal::self_authenticating(key), "a node id is its key's principal");
    }
    let first = Principal::from_text(FIRST_CANISTER).expect("a canister id");
    let ranges = agent.read_state_subnet_canister_ranges(subnet_id).await.expect("read_state of canister_ranges");
    assert!(
        ranges.iter().any(|(lo, hi)| *lo <= first && first <= *hi),
        "{FIRST_CANISTER} in none of the ranges {ranges:?}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_node_with_exit_code_0() {
    let mut node = Node::start();
    let agent = node.agent_unfetched(AnonymousIdentity);
    agent.status().await.expect("the node answers before it is stopped");
    let status = node.terminate();
    assert!(status.success(), "ww serve exited with {status} after SIGTERM; its log:\n{}", node.log());
    assert!(agent.status().await.is_err(), "the node still answers after it exited");
}
