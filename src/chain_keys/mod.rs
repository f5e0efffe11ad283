//! Threshold keys: the master keys every ww node and PocketIC instance
//! offers, and the derivations and signatures of the management canister's
//! `ecdsa_*`, `schnorr_*` and `vetkd_*` methods.
//!
//! The key names are PocketIC's (`key_1`, `test_key_1`, `dfx_test_key`), and
//! so are their master keys: PocketIC makes them from a fixed seed and the
//! key's name, so their secrets are public and a key derived here equals
//! the one PocketIC (and the ecosystem's offline derivations, e.g.
//! `PublicKey::derive_pocketic_key`) gives for the same canister and path.
//! They are test keys: nothing signed with them is secret.
//!
//! Derivation follows the IC exactly: the first path component is the
//! canister's principal, the master chain code is zero; secp256k1 and
//! P-256 use the IC's generalised BIP32, Ed25519 its HKDF scheme (both from
//! DFINITY's `ic-secp256k1`/`ic-secp256r1`/`ic-ed25519` crates, which the
//! IC uses), vetKD its BLS12-381 scheme ([`vetkd`]).
//!
//! This module knows nothing of the replica: which subnet holds a key, fees
//! and the management canister's Candid live in `replica::threshold`.

mod vetkd;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

pub use vetkd::TRANSPORT_KEY_BYTES;

/// The key names PocketIC offers (and so every ww node).
pub const KEY_NAMES: [&str; 3] = ["dfx_test_key", "key_1", "test_key_1"];

/// A signature scheme a threshold key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Scheme {
    EcdsaSecp256k1,
    EcdsaSecp256r1,
    SchnorrBip340,
    SchnorrEd25519,
    VetKdBls12381G2,
}

impl Scheme {
    pub const ALL: [Scheme; 5] = [
        Scheme::EcdsaSecp256k1,
        Scheme::EcdsaSecp256r1,
        Scheme::SchnorrBip340,
        Scheme::SchnorrEd25519,
        Scheme::VetKdBls12381G2,
    ];

    /// How the IC names the scheme in a key id (`ecdsa:Secp256k1`, ...).
    fn label(self) -> &'static str {
        match self {
            Scheme::EcdsaSecp256k1 => "ecdsa:Secp256k1",
            Scheme::EcdsaSecp256r1 => "ecdsa:Secp256r1",
            Scheme::SchnorrBip340 => "schnorr:Bip340Secp256k1",
            Scheme::SchnorrEd25519 => "schnorr:Ed25519",
            Scheme::VetKdBls12381G2 => "vetkd:Bls12_381_G2",
        }
    }
}

/// A threshold key: a scheme and a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    pub scheme: Scheme,
    pub name: String,
}

impl KeyId {
    pub fn new(scheme: Scheme, name: impl Into<String>) -> Self {
        Self { scheme, name: name.into() }
    }

    /// Every key PocketIC's keys cover: each scheme under each name.
    pub fn all_test_keys() -> Vec<KeyId> {
        Scheme::ALL.iter().flat_map(|s| KEY_NAMES.iter().map(move |n| KeyId::new(*s, *n))).collect()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme.label(), self.name)
    }
}

/// Why a key operation failed (the caller gets the message as a reject).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainKeyError {
    #[error("unknown threshold key {0}")]
    UnknownKey(KeyId),
    #[error("message_hash must be 32 bytes, got {0}")]
    HashLength(usize),
    #[error("Invalid aux field for {0}")]
    InvalidAux(&'static str),
    #[error("Schnorr algorithm ed25519 does not support aux input")]
    AuxNotSupported,
    #[error("Invalid inputs for BIP341 signature with key {0}")]
    Bip341(KeyId),
    #[error("The provided transport public key is invalid.")]
    TransportKey,
}

/// A derived public key and the chain code after the last step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedKey {
    pub public_key: Vec<u8>,
    pub chain_code: [u8; 32],
}

/// The master secrets of one key name, one per scheme.
struct Masters {
    secp256k1: ic_secp256k1::PrivateKey,
    secp256r1: ic_secp256r1::PrivateKey,
    ed25519: ic_ed25519::DerivedPrivateKey,
    vetkd: vetkd::MasterKey,
}

impl Masters {
    /// PocketIC's keys for `name`: secp256k1 and Ed25519 from the seed
    /// `[42; 32]`, P-256 from the test generator seeded with 42, each then
    /// derived by the key's name; vetKD's secret hashed from the name.
    fn pocketic(name: &str) -> Self {
        let by_name_k1 = ic_secp256k1::DerivationPath::new(vec![ic_secp256k1::DerivationIndex(name.as_bytes().to_vec())]);
        let by_name_r1 = ic_secp256r1::DerivationPath::new(vec![ic_secp256r1::DerivationIndex(name.as_bytes().to_vec())]);
        let by_name_ed = ic_ed25519::DerivationPath::new(vec![ic_ed25519::DerivationIndex(name.as_bytes().to_vec())]);
        Self {
            secp256k1: ic_secp256k1::PrivateKey::generate_from_seed(&[42; 32]).derive_subkey(&by_name_k1).0,
            secp256r1: ic_secp256r1::PrivateKey::generate_insecure_key_for_testing(42).derive_subkey(&by_name_r1).0,
            ed25519: ic_ed25519::PrivateKey::generate_from_seed(&[42; 32]).derive_subkey(&by_name_ed).0,
            vetkd: vetkd::MasterKey::pocketic(name),
        }
    }
}

/// The master keys, made once per process.
static MASTERS: LazyLock<BTreeMap<&'static str, Masters>> = LazyLock::new(|| KEY_NAMES.iter().map(|n| (*n, Masters::pocketic(n))).collect());

fn masters(key: &KeyId) -> Result<&'static Masters, ChainKeyError> {
    MASTERS.get(key.name.as_str()).ok_or_else(|| ChainKeyError::UnknownKey(key.clone()))
}

/// `ecdsa_public_key` / `schnorr_public_key`: the key of `canister` at
/// `path`, and its chain code.
pub fn public_key(key: &KeyId, canister: &[u8], path: &[Vec<u8>]) -> Result<DerivedKey, ChainKeyError> {
    let m = masters(key)?;
    Ok(match key.scheme {
        Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => {
            let (pk, chain_code) = m.secp256k1.public_key().derive_subkey(&ic_secp256k1::DerivationPath::from_canister_id_and_path(canister, path));
            DerivedKey { public_key: pk.serialize_sec1(true), chain_code }
        }
        Scheme::EcdsaSecp256r1 => {
            let (pk, chain_code) = m.secp256r1.public_key().derive_subkey(&ic_secp256r1::DerivationPath::from_canister_id_and_path(canister, path));
            DerivedKey { public_key: pk.serialize_sec1(true), chain_code }
        }
        Scheme::SchnorrEd25519 => {
            let (pk, chain_code) = m.ed25519.public_key().derive_subkey(&ic_ed25519::DerivationPath::from_canister_id_and_path(canister, path));
            DerivedKey { public_key: pk.serialize_raw().to_vec(), chain_code }
        }
        Scheme::VetKdBls12381G2 => return Err(ChainKeyError::UnknownKey(key.clone())),
    })
}

/// `sign_with_ecdsa`: a 64-byte `r‖s` (low s, RFC 6979 nonces, as PocketIC
/// signs) over a 32-byte hash.
pub fn sign_with_ecdsa(key: &KeyId, canister: &[u8], path: &[Vec<u8>], message_hash: &[u8]) -> Result<[u8; 64], ChainKeyError> {
    let m = masters(key)?;
    if message_hash.len() != 32 {
        return Err(ChainKeyError::HashLength(message_hash.len()));
    }
    match key.scheme {
        Scheme::EcdsaSecp256k1 => {
            let sk = m.secp256k1.derive_subkey(&ic_secp256k1::DerivationPath::from_canister_id_and_path(canister, path)).0;
            Ok(sk.sign_digest_with_ecdsa(message_hash))
        }
        Scheme::EcdsaSecp256r1 => {
            let sk = m.secp256r1.derive_subkey(&ic_secp256r1::DerivationPath::from_canister_id_and_path(canister, path)).0;
            sk.sign_digest(message_hash).ok_or(ChainKeyError::HashLength(message_hash.len()))
        }
        _ => Err(ChainKeyError::UnknownKey(key.clone())),
    }
}

/// The BIP341 taproot tweak of a BIP340 signature (`aux = bip341`).
pub enum SchnorrAux<'a> {
    Bip341 { merkle_root_hash: &'a [u8] },
}

/// `sign_with_schnorr`: a BIP340 signature (aux randomness fixed, as
/// PocketIC signs; with `aux`, under the taproot-tweaked key), or an RFC
/// 8032 Ed25519 signature. Messages of any length.
pub fn sign_with_schnorr(key: &KeyId, canister: &[u8], path: &[Vec<u8>], message: &[u8], aux: Option<SchnorrAux<'_>>) -> Result<[u8; 64], ChainKeyError> {
    let m = masters(key)?;
    match (key.scheme, aux) {
        (Scheme::SchnorrBip340, aux) => {
            if let Some(SchnorrAux::Bip341 { merkle_root_hash }) = &aux
                && !matches!(merkle_root_hash.len(), 0 | 32)
            {
                return Err(ChainKeyError::InvalidAux("bip340secp256k1"));
            }
            let sk = m.secp256k1.derive_subkey(&ic_secp256k1::DerivationPath::from_canister_id_and_path(canister, path)).0;
            match aux {
                None => Ok(sk.sign_message_with_bip340_no_rng(message)),
                Some(SchnorrAux::Bip341 { merkle_root_hash }) => {
                    sk.sign_message_with_bip341_no_rng(message, merkle_root_hash).map_err(|_| ChainKeyError::Bip341(key.clone()))
                }
            }
        }
        (Scheme::SchnorrEd25519, Some(_)) => Err(ChainKeyError::AuxNotSupported),
        (Scheme::SchnorrEd25519, None) => {
            let sk = m.ed25519.derive_subkey(&ic_ed25519::DerivationPath::from_canister_id_and_path(canister, path)).0;
            Ok(sk.sign_message(message))
        }
        _ => Err(ChainKeyError::UnknownKey(key.clone())),
    }
}

/// `vetkd_public_key`: the 96-byte G2 key of `canister` in `context`.
pub fn vetkd_public_key(key: &KeyId, canister: &[u8], context: &[u8]) -> Result<[u8; 96], ChainKeyError> {
    if key.scheme != Scheme::VetKdBls12381G2 {
        return Err(ChainKeyError::UnknownKey(key.clone()));
    }
    Ok(masters(key)?.vetkd.derive(canister, context).public_key())
}

/// `vetkd_derive_key`: the vetKey of `input` for `canister` in `context`,
/// encrypted to `transport_public_key` (192 bytes: E1 ‖ E2 ‖ E3).
/// `randomness` (64 bytes) blinds the encryption.
pub fn vetkd_derive_key(
    key: &KeyId,
    canister: &[u8],
    context: &[u8],
    input: &[u8],
    transport_public_key: &[u8],
    randomness: &[u8; 64],
) -> Result<[u8; 192], ChainKeyError> {
    if key.scheme != Scheme::VetKdBls12381G2 {
        return Err(ChainKeyError::UnknownKey(key.clone()));
    }
    let derived = masters(key)?.vetkd.derive(canister, context);
    derived.encrypted_key(input, transport_public_key, randomness)
}

#[cfg(test)]
mod tests;
