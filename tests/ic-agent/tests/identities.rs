//! Senders: anonymous, Ed25519, ECDSA secp256k1 and P-256 keys, and
//! delegation chains from an Ed25519 root to ECDSA session keys. Each calls
//! `whoami` as an update and as a query and must be told its own principal;
//! a delegation whose targets miss the canister, or that expired, is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::{Encode, Principal};
use ic_agent::identity::{
    AnonymousIdentity, BasicIdentity, Delegation, DelegatedIdentity, Prime256v1Identity, Secp256k1Identity,
    SignedDelegation,
};
use ic_agent::Identity;
use ww_ic_agent_suite::{Node, assert_whoami, counter, deploy_counter, ed25519, http_error};

/// Key files as `openssl genpkey -algorithm ed25519` and `openssl ecparam
/// -name secp256k1 -genkey -noout` write them (dfx and icp-cli identities).
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHNNe1I8mcHmJ+2PcaSigE4HWEXGL3Ptk/9Lx5W/Iv0k
-----END PRIVATE KEY-----
";
const SECP256K1_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIOBWnq08KdlHVeFMF49BYpfxLj16S0WQXOEm4c3do2Z4oAcGBSuBBAAK
oUQDQgAE1HMQ8G5SlOQtaIb92ut4vWbLdW04cF6VQnYMWIbzDRKSPYItEsbTUwHA
ZdmuXIRrmKBm4aQPNTV3h4d5+1f3MQ==
-----END EC PRIVATE KEY-----
";

fn secp256k1(seed: u8) -> Secp256k1Identity {
    Secp256k1Identity::from_private_key(k256::SecretKey::from_slice(&[seed; 32]).expect("a secp256k1 key"))
}

fn p256(seed: u8) -> Prime256v1Identity {
    Prime256v1Identity::from_private_key(p256::SecretKey::from_slice(&[seed; 32]).expect("a P-256 key"))
}

fn nanos_from_now(offset: Duration, past: bool) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    let at = if past { now - offset } else { now + offset };
    u64::try_from(at.as_nanos()).expect("fits u64")
}

/// `from` delegating to `to` until `expiration` (ns), for `targets` if given.
fn delegate(from: &dyn Identity, to: &dyn Identity, expiration: u64, targets: Option<Vec<Principal>>) -> SignedDelegation {
    let delegation =
        Delegation { pubkey: to.public_key().expect("a public key"), expiration, targets, permissions: None };
    let signature = from.sign_delegation(&delegation).expect("sign_delegation").signature.expect("a signature");
    SignedDelegation { delegation, signature }
}

/// An Ed25519 root delegating for 5 minutes to `session`.
fn delegated(root: &BasicIdentity, session: impl Identity + 'static, targets: Option<Vec<Principal>>) -> DelegatedIdentity {
    let link = delegate(root, &session, nanos_from_now(Duration::from_secs(300), false), targets);
    DelegatedIdentity::new(root.public_key().expect("a public key"), Box::new(session), vec![link])
        .expect("a valid delegation chain")
}

/// Deploys cdk_counter (as an Ed25519 sender) and returns its id.
async fn new_counter(node: &Node) -> Principal {
    deploy_counter(&node.agent(ed25519(99)).await).await
}

async fn check(node: &Node, canister: Principal, identity: impl Identity + 'static, who: &str) {
    let expected = identity.sender().expect("a principal");
    let agent = node.agent(identity).await;
    assert_whoami(&agent, canister, expected, who).await;
}

#[tokio::test]
async fn anonymous_is_the_anonymous_principal() {
    let node = Node::start();
    let id = new_counter(&node).await;
    let agent = node.agent(AnonymousIdentity).await;
    assert_whoami(&agent, id, Principal::anonymous(), "anonymous").await;
}

#[tokio::test]
async fn ed25519_senders_are_their_self_authenticating_principals() {
    let node = Node::start();
    let id = new_counter(&node).await;
    check(&node, id, BasicIdentity::from_raw_key(&[11; 32]), "Ed25519 (from_raw_key)").await;
    let pem = BasicIdentity::from_pem(ED25519_PEM).expect("an Ed25519 PKCS#8 PEM");
    check(&node, id, pem, "Ed25519 (from_pem)").await;
}

#[tokio::test]
async fn secp256k1_senders_are_their_principals() {
    let node = Node::start();
    let id = new_counter(&node).await;
    check(&node, id, secp256k1(13), "secp256k1").await;
    let pem = Secp256k1Identity::from_pem(SECP256K1_PEM).expect("a secp256k1 SEC1 PEM");
    check(&node, id, pem, "secp256k1 (from_pem)").await;
}

#[tokio::test]
async fn p256_sender_is_its_principal() {
    let node = Node::start();
    let id = new_counter(&node).await;
    check(&node, id, p256(14), "P-256").await;
}

#[tokio::test]
async fn delegated_senders_are_the_root_principal() {
    let node = Node::start();
    let id = new_counter(&node).await;
    let root = BasicIdentity::from_raw_key(&[15; 32]);
    let root_principal = root.sender().expect("a principal");

    let to_k1 = delegated(&root, secp256k1(16), None);
    assert_eq!(to_k1.sender().expect("a principal"), root_principal);
    check(&node, id, to_k1, "Ed25519 -> secp256k1").await;
    check(&node, id, delegated(&root, p256(17), Some(vec![id])), "Ed25519 -> P-256, targets [canister]").await;

    // Two links: Ed25519 -> P-256 -> secp256k1.
    let middle = p256(18);
    let expiry = nanos_from_now(Duration::from_secs(300), false);
    let session = secp256k1(19);
    let chain = vec![delegate(&root, &middle, expiry, None), delegate(&middle, &session, expiry, None)];
    let two = DelegatedIdentity::new(root.public_key().expect("a public key"), Box::new(session), chain)
        .expect("a valid delegation chain");
    check(&node, id, two, "Ed25519 -> P-256 -> secp256k1").await;
}

/// A delegation whose targets do not include the canister: 403, for an
/// update and for a query.
#[tokio::test]
async fn a_delegation_not_covering_the_canister_is_forbidden() {
    let node = Node::start();
    let id = new_counter(&node).await;
    let elsewhere = ww_ic_agent_suite::canister_after(id, 7);
    let root = BasicIdentity::from_raw_key(&[20; 32]);
    let agent = node.agent(delegated(&root, p256(21), Some(vec![elsewhere]))).await;

    let update = agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await;
    let (status, body) = http_error("an update outside the delegation's targets", update);
    assert_eq!(status, 403, "{body}");
    let query = agent.query(&id, "whoami").with_arg(Encode!().unwrap()).call().await;
    let (status, body) = http_error("a query outside the delegation's targets", query);
    assert_eq!(status, 403, "{body}");

    assert_eq!(counter(&node.agent(ed25519(22)).await, id).await, 0, "the refused update ran");
}

/// A delegation that expired a minute ago: the request is refused (4xx).
#[tokio::test]
async fn an_expired_delegation_is_refused() {
    let node = Node::start();
    let id = new_counter(&node).await;
    let root = BasicIdentity::from_raw_key(&[23; 32]);
    let session = secp256k1(24);
    let link = delegate(&root, &session, nanos_from_now(Duration::from_secs(60), true), None);
    let identity = DelegatedIdentity::new(root.public_key().expect("a public key"), Box::new(session), vec![link])
        .expect("the chain's signatures are valid");
    let agent = node.agent(identity).await;

    let update = agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await;
    let (status, body) = http_error("an update under an expired delegation", update);
    assert!(status == 400 || status == 403, "status {status}: {body}");
    let query = agent.query(&id, "whoami").with_arg(Encode!().unwrap()).call().await;
    let (status, body) = http_error("a query under an expired delegation", query);
    assert!(status == 400 || status == 403, "status {status}: {body}");
}
