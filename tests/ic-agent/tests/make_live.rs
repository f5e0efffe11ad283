//! `PocketIc::make_live` (the pocket-ic 16.1 client) against ww's PocketIC
//! server, then the real ic-agent through the URL it returns: the gateway
//! serves the IC HTTP interface of the instance, certified by the
//! instance's own root key (`PocketIc::root_key` with an NNS subnet, the
//! status endpoint without one), with its checks on.

use candid::{Encode, Principal};
use ic_agent::Agent;
use pocket_ic::PocketIcBuilder;
use ww_ic_agent_suite::{cdk_counter_wasm, decode, ed25519};

/// An agent at `url` that fetched the root key from the instance.
async fn agent_at(url: &str, identity: impl ic_agent::Identity + 'static) -> Agent {
    let agent = Agent::builder().with_url(url).with_identity(identity).build().unwrap_or_else(|e| panic!("an agent for {url}: {e}"));
    agent.fetch_root_key().await.unwrap_or_else(|e| panic!("fetch_root_key from {url}: {e}"));
    agent
}

#[tokio::test]
async fn make_live_serves_a_url_ic_agent_calls_through() {
    let mut pic = PocketIcBuilder::new().with_application_subnet().build_async().await;
    // A canister made the PocketIC way, called the agent way.
    let canister = pic.create_canister().await;
    pic.add_cycles(canister, 10_000_000_000_000).await;
    pic.install_canister(canister, cdk_counter_wasm(), Encode!().unwrap(), None).await;
    let url = pic.make_live(None).await;
    let agent = agent_at(url.as_str(), ed25519(9)).await;
    let root_key = agent.read_root_key();
    assert_eq!(root_key.len(), 133, "a DER BLS12-381 root key");

    // The gateway and the instance route serve the same topology.
    let via_gateway = pocket_ic::nonblocking::get_default_effective_canister_id(url.to_string()).await.expect("/_/topology on the gateway");
    assert_eq!(via_gateway, pic.topology().await.default_effective_canister_id.into());

    // An update through the synchronous v4 path, then a signed query.
    let before: u64 = decode("get", &agent.query(&canister, "get").with_arg(Encode!().unwrap()).call().await.expect("get"));
    let reply = agent.update(&canister, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc through the gateway");
    assert_eq!(decode::<u64>("inc", &reply), before + 1);
    let after: u64 = decode("get", &agent.query(&canister, "get").with_arg(Encode!().unwrap()).call().await.expect("get"));
    assert_eq!(after, before + 1);

    // The canister sees the root key the agent verifies with.
    let seen: Vec<u8> = decode("root_key", &agent.query(&canister, "root_key").with_arg(Encode!().unwrap()).call().await.expect("root_key"));
    assert_eq!(seen, root_key);

    // read_state through the gateway: the module hash is the one PocketIC reports.
    let hash = agent.read_state_canister_module_hash(canister).await.expect("module_hash");
    use sha2::Digest;
    assert_eq!(hash, sha2::Sha256::digest(cdk_counter_wasm()).to_vec());

    // The PocketIC client still drives the instance while it is live.
    let whoami: Principal = decode("whoami", &agent.query(&canister, "whoami").with_arg(Encode!().unwrap()).call().await.expect("whoami"));
    assert_eq!(whoami, ic_agent::Identity::sender(&ed25519(9)).unwrap());
    pic.stop_live().await;
}

#[tokio::test]
async fn with_an_nns_subnet_the_root_key_is_the_nns_key_agents_verify_with() {
    let mut pic = PocketIcBuilder::new().with_nns_subnet().with_application_subnet().build_async().await;
    let root_key = pic.root_key().await.expect("an instance with an NNS subnet has a root key");
    let url = pic.make_live(None).await;
    // Pinned rather than fetched: what a test that trusts PocketIC's key does.
    let agent = Agent::builder().with_url(url.as_str()).with_identity(ed25519(3)).build().expect("agent");
    agent.set_root_key(root_key.clone());
    let canister = ww_ic_agent_suite::deploy_counter_at(&agent, pic.topology().await.default_effective_canister_id.into()).await;
    let reply = agent.update(&canister, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
    assert_eq!(decode::<u64>("inc", &reply), 1);
    let fetched = agent_at(url.as_str(), ed25519(4)).await.read_root_key();
    assert_eq!(fetched, root_key, "/api/v2/status gives the key PocketIc::root_key gives");
    pic.stop_live().await;
}
