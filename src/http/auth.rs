//! Who sent a request: the sender must be anonymous (and unsigned) or the
//! self-authenticating principal of `sender_pubkey`, whose key (or the last
//! key of its delegation chain) signed the request id. Keys: Ed25519,
//! ECDSA on secp256k1 and on P-256, and canister signatures certified by
//! this replica ([`super::canister_sig`]). Delegations: each signed by the key
//! before it, unexpired, their targets covering the canister, their
//! permissions covering the request kind.

use candid::Principal;

use super::envelope::{Envelope, SignedDelegation};
use crate::certified::keys::ED25519_DER_PREFIX;

/// Domain separator of a signed request id.
const REQUEST_DOMAIN: &[u8] = b"\x0Aic-request";
/// Domain separator of a signed delegation.
const DELEGATION_DOMAIN: &[u8] = b"\x1Aic-request-auth-delegation";

/// Why a request's sender is not authenticated (HTTP 403 unless noted).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub String);

/// Verifies the envelope's sender, signature and delegations at time `now`
/// for a request to `target` (the canister, or the effective canister or
/// subnet of a management call or read_state).
/// `root` is the replica's raw BLS root key (canister signatures are
/// certified by it).
pub fn authenticate(envelope: &Envelope, now: u64, target: Option<&Principal>, root: &[u8]) -> Result<(), Unauthorized> {
    let sender = envelope.content.sender();
    if sender == Principal::anonymous() {
        if envelope.sender_pubkey.is_some() || envelope.sender_sig.is_some() || !envelope.delegations.is_empty() {
            return Err(Unauthorized("an anonymous request must not carry sender_pubkey, sender_sig or sender_delegation".into()));
        }
        return Ok(());
    }
    let (Some(pubkey), Some(sig)) = (&envelope.sender_pubkey, &envelope.sender_sig) else {
        return Err(Unauthorized(format!("the request of sender {sender} is not signed (sender_pubkey and sender_sig are required for non-anonymous senders)")));
    };
    if Principal::self_authenticating(pubkey) != sender {
        return Err(Unauthorized(format!("the sender {sender} is not the principal of sender_pubkey ({})", Principal::self_authenticating(pubkey))));
    }
    let mut signer: &[u8] = pubkey;
    let mut seen: Vec<&[u8]> = vec![pubkey];
    for (i, delegation) in envelope.delegations.iter().enumerate() {
        check_delegation(delegation, i, now, target, envelope.content.kind())?;
        let mut message = DELEGATION_DOMAIN.to_vec();
        message.extend_from_slice(&delegation.hash);
        verify(signer, &message, &delegation.signature, root).map_err(|why| Unauthorized(format!("the signature of delegation {i} is invalid: {why}")))?;
        if seen.contains(&delegation.pubkey.as_slice()) {
            return Err(Unauthorized(format!("delegation {i} delegates to a key already in the chain (cycles are not allowed)")));
        }
        seen.push(&delegation.pubkey);
        signer = &delegation.pubkey;
    }
    let mut message = REQUEST_DOMAIN.to_vec();
    message.extend_from_slice(&envelope.request_id);
    verify(signer, &message, sig, root).map_err(|why| Unauthorized(format!("Invalid signature: the sender_sig of request {} is invalid: {why}", hex::encode(envelope.request_id))))
}

fn check_delegation(d: &SignedDelegation, i: usize, now: u64, target: Option<&Principal>, kind: &str) -> Result<(), Unauthorized> {
    if d.expiration < now {
        return Err(Unauthorized(format!("Invalid delegation: delegation {i} expired at {} ns, before the current time {now} ns", d.expiration)));
    }
    if let (Some(targets), Some(target)) = (&d.targets, target)
        && !targets.contains(target)
    {
        return Err(Unauthorized(format!("Invalid delegation: the targets of delegation {i} do not include canister {target}")));
    }
    match d.permissions.as_deref() {
        None | Some("all") => Ok(()),
        Some("queries") if kind != "call" => Ok(()),
        Some("queries") => Err(Unauthorized(format!("Invalid delegation: delegation {i} permits queries only, not update calls"))),
        Some(other) => Err(Unauthorized(format!("Invalid delegation: delegation {i} has unknown permissions {other:?}"))),
    }
}

/// Verifies `sig` over `message` with the DER public key `key`.
fn verify(key: &[u8], message: &[u8], sig: &[u8], root: &[u8]) -> Result<(), String> {
    if let Some((canister, seed)) = super::canister_sig::parse_key(key) {
        return super::canister_sig::verify(&canister, &seed, message, sig, root);
    }
    if let Some(raw) = key.strip_prefix(&ED25519_DER_PREFIX[..]) {
        let raw: [u8; 32] = raw.try_into().map_err(|_| "an Ed25519 key is 32 bytes".to_string())?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| format!("not an Ed25519 key: {e}"))?;
        let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|e| format!("not an Ed25519 signature: {e}"))?;
        return key.verify_strict(message, &sig).map_err(|_| "the Ed25519 signature does not verify".to_string());
    }
    {
        use k256::pkcs8::DecodePublicKey;
        if let Ok(key) = k256::ecdsa::VerifyingKey::from_public_key_der(key) {
            use k256::ecdsa::signature::Verifier;
            let sig = k256::ecdsa::Signature::from_slice(sig).map_err(|e| format!("not an ECDSA signature (r‖s, 64 bytes): {e}"))?;
            let sig = sig.normalize_s().unwrap_or(sig);
            return key.verify(message, &sig).map_err(|_| "the ECDSA secp256k1 signature does not verify".to_string());
        }
    }
    {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(key) {
            use p256::ecdsa::signature::Verifier;
            let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|e| format!("not an ECDSA signature (r‖s, 64 bytes): {e}"))?;
            return key.verify(message, &sig).map_err(|_| "the ECDSA P-256 signature does not verify".to_string());
        }
    }
    Err("the public key is not Ed25519, ECDSA secp256k1, ECDSA P-256 or a canister signature key (DER SubjectPublicKeyInfo); WebAuthn keys are not supported yet".into())
}
