//! The keys of a certified state: the BLS12-381 root key that signs
//! certificates (the subnet's key; with one subnet and no delegation it is
//! the root of trust agents fetch from `/api/v2/status`), and the Ed25519
//! node key that signs query responses. Both are derived from a 32-byte
//! seed, so a node keeps them as long as it keeps its identity (its state
//! directory) and a PocketIC instance's keys follow from its subnet seeds.

use candid::Principal;
use sha2::{Digest, Sha256};

/// DER prefix of a BLS12-381 G2 public key (OIDs 1.3.6.1.4.1.44668.5.3.1.2.1
/// and 1.3.6.1.4.1.44668.5.3.2.1), as agents expect it.
const BLS_DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x01, 0x02, 0x01, 0x06, 0x0c,
    0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x02, 0x01, 0x03, 0x61, 0x00,
];

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
pub const ED25519_DER_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Domain separator of a certificate's signed message.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";
/// Domain separator of a signed query response.
const RESPONSE_DOMAIN: &[u8] = b"\x0Bic-response";

/// The BLS12-381 key that signs certificates.
pub struct RootKey {
    secret: ic_verify_bls_signature::PrivateKey,
    der: Vec<u8>,
}

impl RootKey {
    /// The key of `seed` (the secret scalar is SHA-256 of the seed with its
    /// top two bits cleared, so it is below the group order).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let mut scalar: [u8; 32] = Sha256::new().chain_update(b"ww bls root key").chain_update(seed).finalize().into();
        scalar[0] &= 0x3f;
        if scalar == [0; 32] {
            scalar[31] = 1;
        }
        // Below the order and nonzero: deserialize cannot fail.
        let secret = match ic_verify_bls_signature::PrivateKey::deserialize(&scalar) {
            Ok(secret) => secret,
            Err(_) => unreachable!("a 254-bit nonzero scalar is a valid BLS12-381 secret key"),
        };
        let mut der = BLS_DER_PREFIX.to_vec();
        der.extend_from_slice(&secret.public_key().serialize());
        Self { secret, der }
    }

    /// The public key, DER-encoded (133 bytes), as `/api/v2/status`,
    /// `/subnet/<id>/public_key` and `ic0.root_key_copy` give it.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The raw 96-byte G2 public key.
    pub fn raw(&self) -> &[u8] {
        &self.der[BLS_DER_PREFIX.len()..]
    }

    /// The subnet the key certifies for: its self-authenticating principal,
    /// which is what agents derive when a certificate has no delegation.
    pub fn subnet_id(&self) -> Principal {
        Principal::self_authenticating(&self.der)
    }

    /// The 48-byte signature of a state tree with root hash `root`.
    pub fn sign_root(&self, root: &[u8; 32]) -> Vec<u8> {
        let mut message = STATE_ROOT_DOMAIN.to_vec();
        message.extend_from_slice(root);
        self.secret.sign(&message).serialize().to_vec()
    }
}

/// The Ed25519 key of the (one) node, which signs query responses.
pub struct NodeKey {
    secret: ed25519_dalek::SigningKey,
    der: Vec<u8>,
}

impl NodeKey {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let secret: [u8; 32] = Sha256::new().chain_update(b"ww node signing key").chain_update(seed).finalize().into();
        let secret = ed25519_dalek::SigningKey::from_bytes(&secret);
        let mut der = ED25519_DER_PREFIX.to_vec();
        der.extend_from_slice(secret.verifying_key().as_bytes());
        Self { secret, der }
    }

    /// The public key, DER (44 bytes), at `/subnet/<sid>/node/<nid>/public_key`.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The node id: the key's self-authenticating principal.
    pub fn node_id(&self) -> Principal {
        Principal::self_authenticating(&self.der)
    }

    /// Signs a query response whose `hash_of_map` is `response_hash`.
    pub fn sign_response(&self, response_hash: &[u8; 32]) -> Vec<u8> {
        use ed25519_dalek::Signer;
        let mut message = RESPONSE_DOMAIN.to_vec();
        message.extend_from_slice(response_hash);
        self.secret.sign(&message).to_bytes().to_vec()
    }
}

/// The keys of one subnet with one node.
pub struct SubnetKeys {
    pub root: RootKey,
    pub node: NodeKey,
}

impl SubnetKeys {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { root: RootKey::from_seed(seed), node: NodeKey::from_seed(seed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_key_signs_what_the_bls_verifier_accepts() {
        let key = RootKey::from_seed(&[7; 32]);
        assert_eq!(key.der().len(), 133);
        let root = [0xab; 32];
        let sig = key.sign_root(&root);
        assert_eq!(sig.len(), 48);
        let mut msg = b"\x0Dic-state-root".to_vec();
        msg.extend_from_slice(&root);
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, &msg, key.raw()).is_ok());
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, b"other", key.raw()).is_err());
    }

    #[test]
    fn keys_follow_from_the_seed() {
        assert_eq!(RootKey::from_seed(&[1; 32]).der(), RootKey::from_seed(&[1; 32]).der());
        assert_ne!(RootKey::from_seed(&[1; 32]).der(), RootKey::from_seed(&[2; 32]).der());
        assert_eq!(NodeKey::from_seed(&[1; 32]).der().len(), 44);
    }
}
