//! Envelope checks: `ingress_expiry` outside [now, now + 5 min (+ drift)]
//! is answered 400 `Invalid request expiry: ...` (the text agents look for
//! to resync their clock); a signature that does not verify is answered 403.
//! Neither request runs.

use std::time::{Duration, SystemTime};

use candid::{Encode, Principal};
use ic_agent::agent::EnvelopeContent;
use ic_agent::identity::{BasicIdentity, Delegation};
use ic_agent::{Identity, Signature};
use ww_ic_agent_suite::{Node, counter, decode, deploy_counter, ed25519, http_error};

const EXPIRY_PREFIX: &str = "Invalid request expiry: ";

/// An `inc` expiring at `when` is refused 400 with the IC's wording and
/// does not run.
async fn assert_refused_update_expiring(when: SystemTime, what: &str, seed: u8) {
    let node = Node::start();
    let agent = node.agent(ed25519(seed)).await;
    let id = deploy_counter(&agent).await;
    let result = agent.update(&id, "inc").with_arg(Encode!().unwrap()).expire_at(when).call_and_wait().await;
    let (status, body) = http_error(what, result);
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with(EXPIRY_PREFIX), "the body: {body:?}");
    assert_eq!(counter(&agent, id).await, 0, "{what} ran");
}

#[tokio::test]
async fn an_update_that_expired_is_refused_with_the_ic_wording() {
    let past = SystemTime::now() - Duration::from_secs(120);
    assert_refused_update_expiring(past, "an update that expired 2 minutes ago", 1).await;
}

#[tokio::test]
async fn an_update_expiring_too_far_ahead_is_refused_with_the_ic_wording() {
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_refused_update_expiring(later, "an update expiring in an hour", 2).await;
}

/// The spec lets only anonymous queries skip the check: a signed one is held
/// to it.
#[tokio::test]
async fn a_signed_query_that_expired_is_refused_with_the_ic_wording() {
    let node = Node::start();
    let agent = node.agent(ed25519(3)).await;
    let id = deploy_counter(&agent).await;
    let past = SystemTime::now() - Duration::from_secs(120);
    let result = agent.query(&id, "get").with_arg(Encode!().unwrap()).expire_at(past).call().await;
    let (status, body) = http_error("a query that expired 2 minutes ago", result);
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with(EXPIRY_PREFIX), "the body: {body:?}");
}

/// An Ed25519 identity whose request signatures have one bit flipped: the
/// sender, public key and envelope are right, the signature is not.
struct Forger(BasicIdentity);

impl Identity for Forger {
    fn sender(&self) -> Result<Principal, String> {
        self.0.sender()
    }
    fn public_key(&self) -> Option<Vec<u8>> {
        self.0.public_key()
    }
    fn sign(&self, content: &EnvelopeContent) -> Result<Signature, String> {
        let mut signature = self.0.sign(content)?;
        let bytes = signature.signature.as_mut().ok_or("no signature to forge")?;
        bytes[0] ^= 1;
        Ok(signature)
    }
    fn sign_delegation(&self, content: &Delegation) -> Result<Signature, String> {
        self.0.sign_delegation(content)
    }
    fn sign_arbitrary(&self, content: &[u8]) -> Result<Signature, String> {
        self.0.sign_arbitrary(content)
    }
}

#[tokio::test]
async fn a_forged_signature_is_forbidden() {
    let node = Node::start();
    let honest = node.agent(ed25519(4)).await;
    let id = deploy_counter(&honest).await;
    let forger = node.agent(Forger(BasicIdentity::from_raw_key(&[5; 32]))).await;

    let update = forger.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await;
    let (status, body) = http_error("an update with a forged signature", update);
    assert_eq!(status, 403, "{body}");
    let query = forger.query(&id, "get").with_arg(Encode!().unwrap()).call_without_verification().await;
    let (status, body) = http_error("a query with a forged signature", query);
    assert_eq!(status, 403, "{body}");
    let read_state = forger.read_state_canister_module_hash(id).await;
    let (status, body) = http_error("a read_state with a forged signature", read_state);
    assert_eq!(status, 403, "{body}");
    assert_eq!(counter(&honest, id).await, 0, "the forged update ran");

    // The same key, signing honestly, is served: the refusal was the signature.
    let honest_twin = node.agent(BasicIdentity::from_raw_key(&[5; 32])).await;
    let reply = honest_twin.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
    assert_eq!(decode::<u64>("inc", &reply), 1);
}

/// A call to one canister addressed to another's URL (a wrong effective
/// canister id) is refused 400 and does not run.
#[tokio::test]
async fn a_call_with_another_canisters_effective_id_is_refused() {
    let node = Node::start();
    let agent = node.agent(ed25519(6)).await;
    let id = deploy_counter(&agent).await;
    let other = deploy_counter(&agent).await;
    let result =
        agent.update(&id, "inc").with_effective_canister_id(other).with_arg(Encode!().unwrap()).call_and_wait().await;
    let (status, body) = http_error("an update to one canister at another's URL", result);
    assert_eq!(status, 400, "{body}");
    assert_eq!(counter(&agent, id).await, 0, "the misaddressed update ran");
    assert_eq!(counter(&agent, other).await, 0, "the misaddressed update ran on the other canister");
}

/// An ingress message over the IC's size limit (a 4 MiB argument, twice
/// the 2 MiB an application subnet takes) is refused 413.
#[tokio::test]
async fn an_oversized_call_is_refused_413() {
    let node = Node::start();
    let agent = node.agent(ed25519(7)).await;
    let id = deploy_counter(&agent).await;
    let big = vec![7u8; 4 << 20];
    let result = agent.update(&id, "set_certified").with_arg(Encode!(&big).unwrap()).call_and_wait().await;
    let (status, body) = http_error("a 4 MiB update", result);
    assert_eq!(status, 413, "{body}");
    // The node still serves.
    assert_eq!(counter(&agent, id).await, 0);
}
