//! The management canister's threshold-key methods (`ecdsa_public_key`,
//! `sign_with_ecdsa`, `schnorr_public_key`, `sign_with_schnorr`,
//! `vetkd_public_key`, `vetkd_derive_key`): Candid, routing to the subnet
//! that holds the key, the IC's checks, errors and fees. The keys
//! themselves are [`crate::chain_keys`].
//!
//! As on the IC: canisters only; a key no subnet holds fails to route
//! (reject code 3, the IC's `ChainKeyError` text); a signature costs the
//! signing subnet's fee (10 B cycles scaled by its nodes / 13), taken from
//! the cycles attached, the rest refunded; public keys are free.

use std::collections::BTreeMap;

use candid::{CandidType, Deserialize, Principal};
use serde_bytes::ByteBuf;

use super::management::{decode, encode};
use super::{ErrorCode, Reject, RejectCode, Replica, SubnetRange};
use crate::chain_keys::{self, KeyId, Scheme};

/// The base fee of a signature or vetKD derivation on a 13-node subnet.
pub const SIGNATURE_FEE_13: u128 = 10_000_000_000;

/// The methods this module answers.
pub const METHODS: [&str; 6] = ["ecdsa_public_key", "sign_with_ecdsa", "schnorr_public_key", "sign_with_schnorr", "vetkd_public_key", "vetkd_derive_key"];

/// The longest derivation path the IC accepts.
const MAX_PATH: usize = 255;

/// Which subnet holds each key: the first that lists it.
#[derive(Clone, Debug, Default)]
pub struct KeyRouting {
    holders: BTreeMap<KeyId, (Principal, u32)>,
}

impl KeyRouting {
    pub fn new(subnets: &[SubnetRange]) -> Self {
        let mut holders = BTreeMap::new();
        for s in subnets {
            for key in &s.keys {
                holders.entry(key.clone()).or_insert((s.id, s.nodes));
            }
        }
        Self { holders }
    }

    /// The fee for a signature with `key`, if a subnet holds it.
    pub fn fee(&self, key: &KeyId) -> Option<u128> {
        self.holders.get(key).map(|(_, nodes)| SIGNATURE_FEE_13 * u128::from(*nodes) / 13)
    }

    /// Whether a subnet holds a key under `name` for some scheme (for the
    /// `cost_*` functions' "unknown key name").
    pub fn fee_by_name(&self, scheme: Scheme, name: &str) -> Option<u128> {
        self.fee(&KeyId::new(scheme, name))
    }

    fn listing(&self) -> String {
        let keys: Vec<String> = self.holders.keys().map(ToString::to_string).collect();
        format!("[{}]", keys.join(", "))
    }

    /// The IC's routing failure for a key no subnet holds.
    fn unroutable(&self, method: &str, key: &KeyId) -> Reject {
        let detail = if method.ends_with("_public_key") {
            format!("Requested unknown threshold key: {key}, existing keys: {}", self.listing())
        } else {
            format!("Requested unknown or disabled threshold key: {key}, existing enabled keys: {}", self.listing())
        };
        Reject {
            code: RejectCode::DestinationInvalid,
            error_code: None,
            message: format!("Unable to route management canister request {method}: ChainKeyError(\"{detail}\")"),
        }
    }
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug)]
enum EcdsaCurve {
    #[serde(rename = "secp256k1")]
    Secp256k1,
    #[serde(rename = "secp256r1")]
    Secp256r1,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct EcdsaKeyId {
    curve: EcdsaCurve,
    name: String,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug)]
enum SchnorrAlgorithm {
    #[serde(rename = "bip340secp256k1")]
    Bip340,
    #[serde(rename = "ed25519")]
    Ed25519,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct SchnorrKeyId {
    algorithm: SchnorrAlgorithm,
    name: String,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug)]
enum VetKdCurve {
    #[serde(rename = "bls12_381_g2")]
    Bls12381G2,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct VetKdKeyId {
    curve: VetKdCurve,
    name: String,
}

impl From<&EcdsaKeyId> for KeyId {
    fn from(k: &EcdsaKeyId) -> Self {
        let scheme = match k.curve {
            EcdsaCurve::Secp256k1 => Scheme::EcdsaSecp256k1,
            EcdsaCurve::Secp256r1 => Scheme::EcdsaSecp256r1,
        };
        KeyId::new(scheme, k.name.clone())
    }
}

impl From<&SchnorrKeyId> for KeyId {
    fn from(k: &SchnorrKeyId) -> Self {
        let scheme = match k.algorithm {
            SchnorrAlgorithm::Bip340 => Scheme::SchnorrBip340,
            SchnorrAlgorithm::Ed25519 => Scheme::SchnorrEd25519,
        };
        KeyId::new(scheme, k.name.clone())
    }
}

impl From<&VetKdKeyId> for KeyId {
    fn from(k: &VetKdKeyId) -> Self {
        KeyId::new(Scheme::VetKdBls12381G2, k.name.clone())
    }
}

#[derive(CandidType, Deserialize)]
struct EcdsaPublicKeyArgs {
    canister_id: Option<Principal>,
    derivation_path: Vec<ByteBuf>,
    key_id: EcdsaKeyId,
}

#[derive(CandidType, Deserialize)]
struct SchnorrPublicKeyArgs {
    canister_id: Option<Principal>,
    derivation_path: Vec<ByteBuf>,
    key_id: SchnorrKeyId,
}

#[derive(CandidType, Deserialize)]
struct PublicKeyResult {
    public_key: ByteBuf,
    chain_code: ByteBuf,
}

#[derive(CandidType, Deserialize)]
struct SignWithEcdsaArgs {
    message_hash: ByteBuf,
    derivation_path: Vec<ByteBuf>,
    key_id: EcdsaKeyId,
}

#[derive(CandidType, Deserialize)]
struct Bip341 {
    merkle_root_hash: ByteBuf,
}

#[derive(CandidType, Deserialize)]
enum SchnorrAux {
    #[serde(rename = "bip341")]
    Bip341(Bip341),
}

#[derive(CandidType, Deserialize)]
struct SignWithSchnorrArgs {
    message: ByteBuf,
    derivation_path: Vec<ByteBuf>,
    key_id: SchnorrKeyId,
    aux: Option<SchnorrAux>,
}

#[derive(CandidType, Deserialize)]
struct SignatureResult {
    signature: ByteBuf,
}

#[derive(CandidType, Deserialize)]
struct VetKdPublicKeyArgs {
    canister_id: Option<Principal>,
    context: ByteBuf,
    key_id: VetKdKeyId,
}

#[derive(CandidType, Deserialize)]
struct VetKdPublicKeyResult {
    public_key: ByteBuf,
}

#[derive(CandidType, Deserialize)]
struct VetKdDeriveKeyArgs {
    input: ByteBuf,
    context: ByteBuf,
    transport_public_key: ByteBuf,
    key_id: VetKdKeyId,
}

#[derive(CandidType, Deserialize)]
struct VetKdDeriveKeyResult {
    encrypted_key: ByteBuf,
}

fn path_of(method: &str, path: Vec<ByteBuf>) -> Result<Vec<Vec<u8>>, Reject> {
    if path.len() > MAX_PATH {
        return Err(Reject::system(
            ErrorCode::InvalidManagementPayload,
            format!("Error decoding candid for the management canister's {method}: The number of elements exceeds maximum allowed {MAX_PATH}"),
        ));
    }
    Ok(path.into_iter().map(ByteBuf::into_vec).collect())
}

fn rejected(message: impl Into<String>) -> Reject {
    Reject::system(ErrorCode::CanisterRejectedMessage, message)
}

/// A successful threshold call: the reply and the fee kept from the
/// attached cycles.
pub(super) struct Answer {
    pub reply: Vec<u8>,
    pub fee: u64,
}

/// Answers one threshold method called by canister `caller` with `cycles`
/// attached.
pub(super) fn handle(replica: &Replica, caller: Principal, method: &str, arg: &[u8], cycles: u64) -> Result<Answer, Reject> {
    if arg.is_empty() {
        let text = if method == "vetkd_derive_key" { "Message payload empty" } else { "An empty message cannot be signed" };
        return Err(rejected(text));
    }
    let routing = &replica.inner.key_routing;
    // Signatures are free only where nothing is charged (PocketIC's Free
    // schedule); system subnets pay for them too.
    let free_schedule = replica.fees_of(&caller).schedule() == super::cycles::CostSchedule::Free;
    // A signature's fee: too few cycles attached is refused (all refunded).
    let charge = |key: &KeyId| -> Result<u64, Reject> {
        let fee = routing.fee(key).ok_or_else(|| routing.unroutable(method, key))?;
        let fee = if free_schedule { 0 } else { fee };
        if u128::from(cycles) < fee {
            return Err(rejected(format!("{method} request sent with {cycles} cycles, but {fee} cycles are required.")));
        }
        Ok(u64::try_from(fee).unwrap_or(u64::MAX))
    };
    let free = |key: &KeyId| -> Result<(), Reject> { routing.fee(key).map(|_| ()).ok_or_else(|| routing.unroutable(method, key)) };
    let failed = |e: chain_keys::ChainKeyError| rejected(e.to_string());
    match method {
        "ecdsa_public_key" => {
            let args: EcdsaPublicKeyArgs = decode(method, arg)?;
            let key = KeyId::from(&args.key_id);
            free(&key)?;
            let canister = args.canister_id.unwrap_or(caller);
            let derived = chain_keys::public_key(&key, canister.as_slice(), &path_of(method, args.derivation_path)?).map_err(failed)?;
            let reply = encode(&PublicKeyResult { public_key: ByteBuf::from(derived.public_key), chain_code: ByteBuf::from(derived.chain_code.to_vec()) })?;
            Ok(Answer { reply, fee: 0 })
        }
        "schnorr_public_key" => {
            let args: SchnorrPublicKeyArgs = decode(method, arg)?;
            let key = KeyId::from(&args.key_id);
            free(&key)?;
            let canister = args.canister_id.unwrap_or(caller);
            let derived = chain_keys::public_key(&key, canister.as_slice(), &path_of(method, args.derivation_path)?).map_err(failed)?;
            let reply = encode(&PublicKeyResult { public_key: ByteBuf::from(derived.public_key), chain_code: ByteBuf::from(derived.chain_code.to_vec()) })?;
            Ok(Answer { reply, fee: 0 })
        }
        "sign_with_ecdsa" => {
            let args: SignWithEcdsaArgs = decode(method, arg)?;
            if args.message_hash.len() != 32 {
                // The IC's argument type holds exactly 32 bytes.
                return Err(Reject::system(
                    ErrorCode::InvalidManagementPayload,
                    format!("Error decoding candid for the management canister's {method}: message_hash must be 32 bytes, got {}", args.message_hash.len()),
                ));
            }
            let key = KeyId::from(&args.key_id);
            let fee = charge(&key)?;
            let path = path_of(method, args.derivation_path)?;
            let signature = chain_keys::sign_with_ecdsa(&key, caller.as_slice(), &path, &args.message_hash).map_err(failed)?;
            Ok(Answer { reply: encode(&SignatureResult { signature: ByteBuf::from(signature.to_vec()) })?, fee })
        }
        "sign_with_schnorr" => {
            let args: SignWithSchnorrArgs = decode(method, arg)?;
            let key = KeyId::from(&args.key_id);
            let aux = args.aux.as_ref().map(|SchnorrAux::Bip341(b)| chain_keys::SchnorrAux::Bip341 { merkle_root_hash: &b.merkle_root_hash });
            // The aux check comes before the fee, as on the IC.
            match (key.scheme, &aux) {
                (Scheme::SchnorrBip340, Some(chain_keys::SchnorrAux::Bip341 { merkle_root_hash })) if !matches!(merkle_root_hash.len(), 0 | 32) => {
                    return Err(rejected("Invalid aux field for bip340secp256k1"));
                }
                (Scheme::SchnorrEd25519, Some(_)) => return Err(rejected("Schnorr algorithm ed25519 does not support aux input")),
                _ => {}
            }
            let fee = charge(&key)?;
            let path = path_of(method, args.derivation_path)?;
            let signature = chain_keys::sign_with_schnorr(&key, caller.as_slice(), &path, &args.message, aux).map_err(failed)?;
            Ok(Answer { reply: encode(&SignatureResult { signature: ByteBuf::from(signature.to_vec()) })?, fee })
        }
        "vetkd_public_key" => {
            let args: VetKdPublicKeyArgs = decode(method, arg)?;
            let key = KeyId::from(&args.key_id);
            free(&key)?;
            let canister = args.canister_id.unwrap_or(caller);
            let public_key = chain_keys::vetkd_public_key(&key, canister.as_slice(), &args.context).map_err(failed)?;
            Ok(Answer { reply: encode(&VetKdPublicKeyResult { public_key: ByteBuf::from(public_key.to_vec()) })?, fee: 0 })
        }
        "vetkd_derive_key" => {
            let args: VetKdDeriveKeyArgs = decode(method, arg)?;
            let key = KeyId::from(&args.key_id);
            let fee = charge(&key)?;
            let mut randomness = [0u8; 64];
            randomness[..32].copy_from_slice(&replica.raw_rand());
            randomness[32..].copy_from_slice(&replica.raw_rand());
            let encrypted =
                chain_keys::vetkd_derive_key(&key, caller.as_slice(), &args.context, &args.input, &args.transport_public_key, &randomness).map_err(failed)?;
            Ok(Answer { reply: encode(&VetKdDeriveKeyResult { encrypted_key: ByteBuf::from(encrypted.to_vec()) })?, fee })
        }
        other => Err(Reject::system(ErrorCode::CanisterMethodNotFound, format!("Management canister has no method '{other}'"))),
    }
}

/// What `ic0.cost_sign_with_ecdsa` and friends report: 0 with the fee, 1
/// for an unknown curve or algorithm, 2 for an unknown key name.
pub fn cost(routing: &KeyRouting, function: &str, name: &str, curve: u32) -> Result<u128, u32> {
    let scheme = match (function, curve) {
        ("cost_sign_with_ecdsa", 0) => Scheme::EcdsaSecp256k1,
        ("cost_sign_with_ecdsa", 1) => Scheme::EcdsaSecp256r1,
        ("cost_sign_with_schnorr", 0) => Scheme::SchnorrBip340,
        ("cost_sign_with_schnorr", 1) => Scheme::SchnorrEd25519,
        ("cost_vetkd_derive_key", 0) => Scheme::VetKdBls12381G2,
        _ => return Err(1),
    };
    routing.fee_by_name(scheme, name).ok_or(2)
}
