//! vetKD on BLS12-381 (the server's side, which no published crate
//! provides): master keys, the IC's canister and context derivation, and
//! keys encrypted to a transport key.
//!
//! With `H_s(dst, a, b)` = RFC 9380 hash-to-field (XMD/SHA-256) of
//! `be64(|a|) ‖ a ‖ be64(|b|) ‖ b`: a canister's key is
//! `mpk + H_s("ic-vetkd-bls12-381-g2-canister-id", mpk, canister)·g2`, a
//! context's `cpk + H_s("ic-vetkd-bls12-381-g2-context", cpk, context)·g2`
//! (none for an empty context), and the vetKey of `input` is the augmented
//! BLS signature `dsk·H_aug(dpk ‖ input)`, sent as `r·g1 ‖ r·g2 ‖ r·tpk + k`.

use ic_bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve, HashToField};
use ic_bls12_381::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar};

use super::ChainKeyError;

/// A transport public key: a compressed G1 point.
pub const TRANSPORT_KEY_BYTES: usize = 48;

fn hash_to_scalar(message: &[u8], dst: &[u8]) -> Scalar {
    let mut out = [Scalar::zero()];
    <Scalar as HashToField>::hash_to_field::<ExpandMsgXmd<sha2::Sha256>>(message, dst, &mut out);
    out[0]
}

fn hash_to_scalar_two(a: &[u8], b: &[u8], dst: &[u8]) -> Scalar {
    let mut message = Vec::with_capacity(16 + a.len() + b.len());
    for part in [a, b] {
        message.extend_from_slice(&(part.len() as u64).to_be_bytes());
        message.extend_from_slice(part);
    }
    hash_to_scalar(&message, dst)
}

/// A master key: its secret and public halves.
pub(super) struct MasterKey {
    secret: Scalar,
    public: G2Affine,
}

impl MasterKey {
    /// PocketIC's test key for `name` (the IC's vetKD test utilities hash
    /// the name to the secret).
    pub(super) fn pocketic(name: &str) -> Self {
        let secret = hash_to_scalar(name.as_bytes(), b"ic-crypto-vetkd-test-utils-generate-test-key");
        Self { secret, public: G2Affine::from(G2Affine::generator() * secret) }
    }

    /// The key of `canister` in `context`.
    pub(super) fn derive(&self, canister: &[u8], context: &[u8]) -> DerivedKey {
        let g2 = G2Affine::generator();
        let canister_offset = hash_to_scalar_two(&self.public.to_compressed(), canister, b"ic-vetkd-bls12-381-g2-canister-id");
        let canister_key = G2Affine::from(G2Projective::from(self.public) + g2 * canister_offset);
        if context.is_empty() {
            return DerivedKey { secret: self.secret + canister_offset, public: canister_key };
        }
        let context_offset = hash_to_scalar_two(&canister_key.to_compressed(), context, b"ic-vetkd-bls12-381-g2-context");
        DerivedKey {
            secret: self.secret + canister_offset + context_offset,
            public: G2Affine::from(G2Projective::from(canister_key) + g2 * context_offset),
        }
    }
}

/// A canister's key in one context.
pub(super) struct DerivedKey {
    secret: Scalar,
    public: G2Affine,
}

impl DerivedKey {
    pub(super) fn public_key(&self) -> [u8; 96] {
        self.public.to_compressed()
    }

    /// The vetKey of `input`, encrypted to `transport_public_key` with the
    /// blinding scalar made from `randomness`.
    pub(super) fn encrypted_key(&self, input: &[u8], transport_public_key: &[u8], randomness: &[u8; 64]) -> Result<[u8; 192], ChainKeyError> {
        let tpk: [u8; 48] = transport_public_key.try_into().map_err(|_| ChainKeyError::TransportKey)?;
        let tpk = Option::<G1Affine>::from(G1Affine::from_compressed(&tpk)).ok_or(ChainKeyError::TransportKey)?;
        let mut message = Vec::with_capacity(96 + input.len());
        message.extend_from_slice(&self.public.to_compressed());
        message.extend_from_slice(input);
        let hashed = <G1Projective as HashToCurve<ExpandMsgXmd<sha2::Sha256>>>::hash_to_curve(message, b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_AUG_");
        let vetkey = hashed * self.secret;
        let r = Scalar::from_bytes_wide(randomness);
        let e1 = G1Affine::from(G1Affine::generator() * r);
        let e2 = G2Affine::from(G2Affine::generator() * r);
        let e3 = G1Affine::from(tpk * r + vetkey);
        let mut out = [0u8; 192];
        out[..48].copy_from_slice(&e1.to_compressed());
        out[48..144].copy_from_slice(&e2.to_compressed());
        out[144..].copy_from_slice(&e3.to_compressed());
        Ok(out)
    }
}
