//! Canister-signature senders, made the way Internet Identity makes them:
//! cdk_counter signs a delegation to a session key with
//! ic-canister-sig-creation's `SignatureMap` (`prepare_sig`, an update,
//! certifies `sig/SHA256(seed)/SHA256(message)`; `get_sig`, a query, returns
//! the data certificate and the witness), and the real ic-agent sends as the
//! canister signature key (`len(cid) · cid · seed`) through that delegation.
//! The node must verify the signature against its own root key: the sender
//! is `self_authenticating(key)`, for updates and queries. Refused (403): a
//! signature for another message or another seed, one certified by another
//! node, a tree that is not the certified one, and a certified leaf that is
//! not empty. Each refusal has its accepted counterpart beside it, and
//! ic-agent's own verifier (`DelegatedIdentity::new_with_root_key`) is asked
//! first, so that each refused signature is invalid for the reason named.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::{Encode, Principal};
use ic_agent::identity::{
    BasicIdentity, Delegation, DelegatedIdentity, DelegationError, Prime256v1Identity, SignedDelegation,
};
use ic_agent::{Agent, Identity};
use ic_certification::{HashTree, HashTreeNode, LookupResult, empty, fork, labeled, leaf, pruned};
use sha2::{Digest, Sha256};
use ww_ic_agent_suite::{Node, assert_whoami, counter, decode, deploy_counter, ed25519, http_error};

/// The self-describing CBOR tag (55799) a canister signature starts with.
const SELF_DESCRIBE: [u8; 3] = [0xd9, 0xd9, 0xf7];

/// SEQUENCE { OID 1.3.6.1.4.1.56387.1.2 }: a canister signature key's
/// algorithm identifier.
const CANISTER_SIG_ALGORITHM: [u8; 14] = [0x30, 0x0c, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb8, 0x43, 0x01, 0x02];

/// The DER SubjectPublicKeyInfo of the canister signature key of `seed` at
/// `canister`: SEQUENCE { SEQUENCE { OID 1.3.6.1.4.1.56387.1.2 }, BIT STRING
/// (no unused bits) `len(cid) · cid · seed` }.
fn canister_sig_key(canister: Principal, seed: &[u8]) -> Vec<u8> {
    let id = canister.as_slice();
    let mut bits = vec![0x00, u8::try_from(id.len()).expect("a principal is at most 29 bytes")];
    bits.extend_from_slice(id);
    bits.extend_from_slice(seed);
    let mut body = CANISTER_SIG_ALGORITHM.to_vec();
    der_item(&mut body, 0x03, &bits);
    let mut der = Vec::new();
    der_item(&mut der, 0x30, &body);
    der
}

/// Appends the DER item `tag`, definite length (short or long form), `content`.
fn der_item(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    match u8::try_from(content.len()) {
        Ok(n) if n < 0x80 => out.push(n),
        _ => {
            let len = content.len().to_be_bytes();
            let skip = len.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | u8::try_from(len.len() - skip).expect("a short length of the length"));
            out.extend_from_slice(&len[skip..]);
        }
    }
    out.extend_from_slice(content);
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A seed as Internet Identity derives one (a hash of the anchor, the
/// frontend and a salt).
fn ii_seed(what: &str) -> Vec<u8> {
    sha256(what.as_bytes()).to_vec()
}

/// A deterministic P-256 session key (what a browser holds under II).
fn p256(seed: u8) -> Prime256v1Identity {
    Prime256v1Identity::from_private_key(p256::SecretKey::from_slice(&[seed; 32]).expect("a P-256 key"))
}

fn in_ten_minutes() -> u64 {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970") + Duration::from_secs(600);
    u64::try_from(at.as_nanos()).expect("fits u64")
}

/// A delegation to `session`'s key until `expiration`, for `targets` if given.
fn delegation(session: &dyn Identity, expiration: u64, targets: Option<Vec<Principal>>) -> Delegation {
    Delegation { pubkey: session.public_key().expect("a public key"), expiration, targets, permissions: None }
}

/// What ic-agent's own verifier says of `chain` from `key` to `p256(session)`
/// under `root_key` (it verifies canister signatures as the IC specifies).
fn client_verdict(key: &[u8], session: u8, chain: Vec<SignedDelegation>, root_key: &[u8]) -> Result<(), DelegationError> {
    DelegatedIdentity::new_with_root_key(key.to_vec(), Box::new(p256(session)), chain, root_key).map(|_| ())
}

/// The CBOR (tag 55799) canister signature `{certificate, tree}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct CanisterSig {
    #[serde(with = "serde_bytes")]
    certificate: Vec<u8>,
    tree: HashTree,
}

impl CanisterSig {
    fn decode(cbor: &[u8]) -> CanisterSig {
        assert!(cbor.starts_with(&SELF_DESCRIBE), "a canister signature starts with tag 55799: {cbor:02x?}");
        serde_cbor::from_slice(cbor).unwrap_or_else(|e| panic!("not a canister signature ({e}): {cbor:02x?}"))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = serde_cbor::ser::Serializer::new(Vec::new());
        out.self_describe().expect("the tag");
        serde::Serialize::serialize(self, &mut out).expect("CBOR");
        out.into_inner()
    }
}

/// `tree` with every label `from` renamed `to`.
fn relabel(tree: &HashTreeNode, from: &[u8], to: &[u8]) -> HashTree {
    match tree {
        HashTreeNode::Empty() => empty(),
        HashTreeNode::Fork(pair) => fork(relabel(&pair.0, from, to), relabel(&pair.1, from, to)),
        HashTreeNode::Labeled(label, sub) => {
            let label = if label.as_bytes() == from { to } else { label.as_bytes() };
            labeled(label, relabel(sub, from, to))
        }
        HashTreeNode::Leaf(value) => leaf(value.clone()),
        HashTreeNode::Pruned(hash) => pruned(*hash),
    }
}

/// The tree of one signature, `sig/SHA256(seed)/SHA256(message)` = `value`.
fn one_signature(seed: &[u8], message: &[u8], value: &[u8]) -> HashTree {
    labeled(b"sig", labeled(sha256(seed), labeled(sha256(message), leaf(value))))
}

/// A node of its own, a cdk_counter on it that signs, an agent (any sender)
/// to ask it, and the node's root key.
struct Signer {
    node: Node,
    agent: Agent,
    canister: Principal,
    root_key: Vec<u8>,
}

impl Signer {
    async fn start() -> Signer {
        let node = Node::start();
        let agent = node.agent(ed25519(99)).await;
        let canister = deploy_counter(&agent).await;
        let root_key = agent.read_root_key();
        Signer { node, agent, canister, root_key }
    }

    /// The canister signature key of `seed`.
    fn key(&self, seed: &[u8]) -> Vec<u8> {
        canister_sig_key(self.canister, seed)
    }

    /// `prepare_sig` (an update), then `get_sig` (a query): the canister's
    /// signature of `message` by the key of `seed`.
    async fn sign(&self, seed: &[u8], message: &[u8]) -> Vec<u8> {
        let arg = Encode!(&seed.to_vec(), &message.to_vec()).expect("candid");
        let prepared = self.agent.update(&self.canister, "prepare_sig").with_arg(arg.clone()).call_and_wait().await;
        prepared.unwrap_or_else(|e| panic!("prepare_sig: {e}"));
        let reply = self.agent.query(&self.canister, "get_sig").with_arg(arg).call().await;
        let reply = reply.unwrap_or_else(|e| panic!("get_sig: {e}"));
        decode::<Option<Vec<u8>>>("get_sig", &reply).expect("a query sees a data certificate, so get_sig signs")
    }

    /// A signature of `tree` (which is to be the whole signature tree): its
    /// root hash becomes the certified data (`set_certified`), and the data
    /// certificate that a query then sees is the certificate.
    async fn certify(&self, tree: HashTree) -> Vec<u8> {
        let data = tree.digest().to_vec();
        let set = self.agent.update(&self.canister, "set_certified").with_arg(Encode!(&data).expect("candid"));
        set.call_and_wait().await.unwrap_or_else(|e| panic!("set_certified: {e}"));
        let reply = self.agent.query(&self.canister, "certified").with_arg(Encode!().expect("candid")).call().await;
        let reply = reply.unwrap_or_else(|e| panic!("certified: {e}"));
        let certificate = decode::<Option<Vec<u8>>>("certified", &reply).expect("a query sees a data certificate");
        CanisterSig { certificate, tree }.encode()
    }

    /// `chain` from `key` to `p256(session)` is valid: ic-agent's verifier
    /// accepts it under the node's root key, and the node names the sender
    /// `self_authenticating(key)` to `whoami` as an update and as a query.
    async fn assert_accepted(&self, key: &[u8], session: u8, chain: Vec<SignedDelegation>, who: &str) {
        let verdict = client_verdict(key, session, chain.clone(), &self.root_key);
        verdict.unwrap_or_else(|e| panic!("{who}: ic-agent's verifier refuses it: {e:?}"));
        let expected = Principal::self_authenticating(key);
        let identity = DelegatedIdentity::new_unchecked(key.to_vec(), Box::new(p256(session)), chain);
        assert_eq!(identity.sender().expect("a principal"), expected, "{who}: the sender ic-agent names");
        assert_whoami(&self.node.agent(identity).await, self.canister, expected, who).await;
    }

    /// `chain` from `key` to `p256(session)` is not valid: ic-agent's
    /// verifier refuses it for `reason`, and the node answers 403 to an
    /// update (`inc`, which does not run) and to a query (`whoami`). The
    /// identity is built without ic-agent's checks: the node is to judge it.
    async fn assert_refused(&self, key: &[u8], session: u8, chain: Vec<SignedDelegation>, reason: &str, who: &str) {
        match client_verdict(key, session, chain.clone(), &self.root_key) {
            Err(DelegationError::InvalidCanisterSignature(why)) if why.contains(reason) => {}
            other => panic!("{who}: ic-agent's verifier should refuse it ({reason}), but says {other:?}"),
        }
        let identity = DelegatedIdentity::new_unchecked(key.to_vec(), Box::new(p256(session)), chain);
        let (canister, before) = (self.canister, counter(&self.agent, self.canister).await);
        let agent = self.node.agent(identity).await;
        let update = agent.update(&canister, "inc").with_arg(Encode!().unwrap()).call_and_wait().await;
        let (status, body) = http_error(&format!("{who}: an update"), update);
        assert_eq!(status, 403, "{who}: an update: {body}");
        let query = agent.query(&canister, "whoami").with_arg(Encode!().unwrap()).call().await;
        let (status, body) = http_error(&format!("{who}: a query"), query);
        assert_eq!(status, 403, "{who}: a query: {body}");
        assert_eq!(counter(&self.agent, canister).await, before, "{who}: the refused update ran");
    }
}

/// The key's DER is the one ic-canister-sig-creation writes (its test
/// vector: canister `rwlgt-iiaaa-aaaaa-aaaaa-cai`, seed `2a 48 2c`).
#[test]
fn the_key_is_the_der_ic_canister_sig_creation_writes() {
    let canister = Principal::from_text("rwlgt-iiaaa-aaaaa-aaaaa-cai").expect("a principal");
    let expected = b"\x30\x1f\x30\x0c\x06\x0a\x2b\x06\x01\x04\x01\x83\xb8\x43\x01\x02\x03\x0f\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\x2a\x48\x2c";
    assert_eq!(canister_sig_key(canister, &[0x2a, 0x48, 0x2c]), expected);
    // A seed that needs DER's long form of length.
    let long = canister_sig_key(canister, &[7; 200]);
    assert_eq!(long[..3], [0x30, 0x81, 0xe5], "SEQUENCE of 229 bytes");
    assert_eq!(long[3..17], CANISTER_SIG_ALGORITHM);
    assert_eq!(long[17..21], [0x03, 0x81, 0xd4, 0x00], "BIT STRING of 212 bytes, no unused bits");
    assert_eq!(long.len(), 232);
}

#[tokio::test]
async fn a_canister_signature_sender_is_the_principal_of_its_key() {
    let signer = Signer::start().await;
    let seed = ii_seed("anchor 10000 at https://app.example");
    let key = signer.key(&seed);

    // One link: the canister signs the delegation to a P-256 session key.
    let to_session = delegation(&p256(1), in_ten_minutes(), None);
    let signature = signer.sign(&seed, &to_session.signable()).await;
    let parsed = CanisterSig::decode(&signature);
    let path = [b"sig".as_slice(), &sha256(&seed), &sha256(&to_session.signable())];
    assert_eq!(parsed.tree.lookup_path(path), LookupResult::Found(b""), "the canister's tree has the signature");
    let link = SignedDelegation { delegation: to_session, signature };
    signer.assert_accepted(&key, 1, vec![link], "canister signature -> P-256").await;

    // A delegation whose targets name the canister.
    let targeted = delegation(&p256(2), in_ten_minutes(), Some(vec![signer.canister]));
    let signature = signer.sign(&seed, &targeted.signable()).await;
    let link = SignedDelegation { delegation: targeted, signature };
    signer.assert_accepted(&key, 2, vec![link], "canister signature -> P-256, targets [canister]").await;

    // Two links: canister signature -> Ed25519 -> P-256.
    let middle = BasicIdentity::from_raw_key(&[3; 32]);
    let first = delegation(&middle, in_ten_minutes(), None);
    let signature = signer.sign(&seed, &first.signable()).await;
    let second = delegation(&p256(4), in_ten_minutes(), None);
    let second_sig = middle.sign_delegation(&second).expect("sign_delegation").signature.expect("a signature");
    let chain = vec![
        SignedDelegation { delegation: first, signature },
        SignedDelegation { delegation: second, signature: second_sig },
    ];
    signer.assert_accepted(&key, 4, chain, "canister signature -> Ed25519 -> P-256").await;

    // Another seed is another principal.
    let other_seed = ii_seed("anchor 10001 at https://app.example");
    let other_key = signer.key(&other_seed);
    assert_ne!(Principal::self_authenticating(&other_key), Principal::self_authenticating(&key));
    let to_session = delegation(&p256(5), in_ten_minutes(), None);
    let signature = signer.sign(&other_seed, &to_session.signable()).await;
    let link = SignedDelegation { delegation: to_session, signature };
    signer.assert_accepted(&other_key, 5, vec![link], "another seed").await;

    // A seed of 200 bytes: the key's DER lengths take the long form.
    let long_seed = [0x5e; 200];
    let long_key = signer.key(&long_seed);
    assert_eq!(long_key[1], 0x81, "a long-form length");
    let to_session = delegation(&p256(12), in_ten_minutes(), None);
    let signature = signer.sign(&long_seed, &to_session.signable()).await;
    let link = SignedDelegation { delegation: to_session, signature };
    signer.assert_accepted(&long_key, 12, vec![link], "a 200-byte seed").await;

    // In an update there is no data certificate, so nothing to sign with.
    let arg = Encode!(&seed, &b"\x03abcmessage".to_vec()).expect("candid");
    let reply = signer.agent.update(&signer.canister, "get_sig").with_arg(arg).call_and_wait().await;
    let reply = reply.expect("get_sig as an update");
    assert_eq!(decode::<Option<Vec<u8>>>("get_sig", &reply), None, "get_sig as an update");
}

/// The canister's genuine signature of one delegation, sent with another
/// delegation (the tree lacks its message), or under the key of another
/// seed (the tree lacks that seed): 403.
#[tokio::test]
async fn a_signature_of_another_message_or_seed_is_forbidden() {
    let signer = Signer::start().await;
    let (seed_a, seed_b) = (ii_seed("anchor 20000"), ii_seed("anchor 20001"));
    let (key_a, key_b) = (signer.key(&seed_a), signer.key(&seed_b));
    let expiration = in_ten_minutes();
    let signed = delegation(&p256(6), expiration, None);
    let sent = delegation(&p256(6), expiration + 1, None);

    let signature = signer.sign(&seed_a, &signed.signable()).await;
    let genuine = SignedDelegation { delegation: signed, signature: signature.clone() };
    signer.assert_accepted(&key_a, 6, vec![genuine], "the signed delegation").await;
    let swapped = SignedDelegation { delegation: sent.clone(), signature };
    signer.assert_refused(&key_a, 6, vec![swapped], "sig not found", "a signature of another delegation").await;

    // The message signed for seed B, sent under the key of seed A.
    let signature = signer.sign(&seed_b, &sent.signable()).await;
    let for_b = SignedDelegation { delegation: sent, signature };
    signer.assert_accepted(&key_b, 6, vec![for_b.clone()], "seed B's own key").await;
    signer.assert_refused(&key_a, 6, vec![for_b], "sig not found", "seed B's signature under seed A's key").await;
}

/// A second node runs the same canister (same id) and signs the same
/// delegation: the tree is the same, only the certificate is the other
/// node's (its root key). Accepted there, 403 here.
#[tokio::test]
async fn a_signature_certified_by_another_node_is_forbidden() {
    let (here, there) = (Signer::start().await, Signer::start().await);
    assert_eq!(here.canister, there.canister, "both nodes hand out the same first canister id");
    assert_ne!(here.root_key, there.root_key, "two nodes have two root keys");
    let seed = ii_seed("anchor 30000");
    let key = here.key(&seed);
    let to_session = delegation(&p256(7), in_ten_minutes(), None);

    let theirs = there.sign(&seed, &to_session.signable()).await;
    let link = SignedDelegation { delegation: to_session.clone(), signature: theirs.clone() };
    there.assert_accepted(&key, 7, vec![link.clone()], "on the node that certified it").await;

    let ours = here.sign(&seed, &to_session.signable()).await;
    assert_eq!(CanisterSig::decode(&ours).tree, CanisterSig::decode(&theirs).tree, "the same tree on both nodes");
    let own_link = SignedDelegation { delegation: to_session, signature: ours };
    here.assert_accepted(&key, 7, vec![own_link], "this node's own signature").await;
    here.assert_refused(&key, 7, vec![link], "BLS", "another node's certificate").await;
}

/// A genuine certificate with a tree that is not the certified one: the
/// label of the signed message renamed to another message's hash, so that
/// the tree has `sig/SHA256(seed)/SHA256(other)` = "" but its root hash is
/// no longer the canister's certified data: 403.
#[tokio::test]
async fn a_tree_that_is_not_the_certified_one_is_forbidden() {
    let signer = Signer::start().await;
    let seed = ii_seed("anchor 40000");
    let key = signer.key(&seed);
    let signed = delegation(&p256(8), in_ten_minutes(), None);
    let forged = delegation(&p256(9), in_ten_minutes(), None);

    // Two signatures in the map, so the witness has a fork and a pruned branch.
    let _ = signer.sign(&seed, &delegation(&p256(10), in_ten_minutes(), None).signable()).await;
    let signature = signer.sign(&seed, &signed.signable()).await;
    let genuine = SignedDelegation { delegation: signed.clone(), signature: signature.clone() };
    signer.assert_accepted(&key, 8, vec![genuine], "the genuine signature").await;

    let mut tampered = CanisterSig::decode(&signature);
    let (from, to) = (sha256(&signed.signable()), sha256(&forged.signable()));
    let tree = relabel(tampered.tree.as_ref(), &from, &to);
    assert_eq!(tree.lookup_path([b"sig".as_slice(), &sha256(&seed), &to]), LookupResult::Found(b""));
    assert_ne!(tree.digest(), tampered.tree.digest(), "the tampered tree hashes differently");
    tampered.tree = tree;
    let link = SignedDelegation { delegation: forged, signature: tampered.encode() };
    signer.assert_refused(&key, 9, vec![link], "certified_data does not match", "a tampered tree").await;
}

/// A signature tree built by hand and certified through `set_certified`:
/// with the leaf "" it is a valid signature; with a leaf that is not empty
/// (and certified all the same) it is not: 403.
#[tokio::test]
async fn a_certified_leaf_that_is_not_empty_is_forbidden() {
    let signer = Signer::start().await;
    let seed = ii_seed("anchor 50000");
    let key = signer.key(&seed);
    let to_session = delegation(&p256(11), in_ten_minutes(), None);
    let message = to_session.signable();

    let signature = signer.certify(one_signature(&seed, &message, b"")).await;
    let link = SignedDelegation { delegation: to_session.clone(), signature };
    signer.assert_accepted(&key, 11, vec![link], "a hand-built tree, leaf \"\"").await;

    let signature = signer.certify(one_signature(&seed, &message, b"signed")).await;
    let link = SignedDelegation { delegation: to_session, signature };
    signer.assert_refused(&key, 11, vec![link], "not empty", "a certified leaf \"signed\"").await;
}
