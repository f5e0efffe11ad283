//! Threshold keys on a plain ww replica (what `ww serve` runs: one 13-node
//! subnet holding every PocketIC test key), called by a ww-cdk component
//! (the probe canister's `call_with_cycles`, raw Candid to `aaaaa-aa`), and
//! checked with DFINITY's crates (`ic-secp256k1`, `ic-ed25519`
//! `derive_pocketic_key`, signature verification), never with ww's own.

mod common;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use serde_bytes::ByteBuf;

use common::canisters::*;

#[derive(CandidType, Deserialize)]
enum EcdsaCurve {
    #[serde(rename = "secp256k1")]
    Secp256k1,
}

#[derive(CandidType, Deserialize)]
struct EcdsaKeyId {
    curve: EcdsaCurve,
    name: String,
}

#[derive(CandidType, Deserialize)]
enum SchnorrAlgorithm {
    #[serde(rename = "ed25519")]
    Ed25519,
}

#[derive(CandidType, Deserialize)]
struct SchnorrKeyId {
    algorithm: SchnorrAlgorithm,
    name: String,
}

#[derive(CandidType, Deserialize)]
struct PublicKeyResult {
    public_key: ByteBuf,
    chain_code: ByteBuf,
}

#[derive(CandidType, Deserialize)]
struct SignatureResult {
    signature: ByteBuf,
}

/// The probe calls the management canister with `cycles` attached.
async fn mgmt(r: &ww::replica::Replica, probe: Principal, method: &str, arg: Vec<u8>, cycles: u64) -> CallOutcome {
    update(r, probe, "call_with_cycles", Encode!(&Principal::management_canister(), &method, &ByteBuf::from(arg), &cycles).unwrap()).await
}

fn path() -> Vec<ByteBuf> {
    vec![ByteBuf::from(b"wallet".to_vec()), ByteBuf::from(7u32.to_be_bytes().to_vec())]
}

fn raw_path() -> Vec<Vec<u8>> {
    path().into_iter().map(ByteBuf::into_vec).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ww_cdk_canister_signs_with_ecdsa_and_ed25519_verifiable_by_standard_crates() {
    let r = replica();
    let probe = install(&r, "probe", none_arg()).await;

    // ECDSA secp256k1 with test_key_1: the key PocketIC would give.
    let key_id = || EcdsaKeyId { curve: EcdsaCurve::Secp256k1, name: "test_key_1".into() };
    #[derive(CandidType)]
    struct EcdsaPublicKeyArgs {
        canister_id: Option<Principal>,
        derivation_path: Vec<ByteBuf>,
        key_id: EcdsaKeyId,
    }
    let CallOutcome::Ok(bytes) = mgmt(&r, probe, "ecdsa_public_key", Encode!(&EcdsaPublicKeyArgs { canister_id: None, derivation_path: path(), key_id: key_id() }).unwrap(), 0).await else {
        panic!("ecdsa_public_key refused")
    };
    let got = Decode!(&bytes, PublicKeyResult).unwrap();
    let (expected, chain_code) =
        ic_secp256k1::PublicKey::derive_pocketic_key(ic_secp256k1::PocketIcMasterPublicKeyId::EcdsaTestKey1, &probe, &raw_path());
    assert_eq!(got.public_key.as_slice(), expected.serialize_sec1(true).as_slice());
    assert_eq!(got.chain_code.as_slice(), chain_code.as_slice());

    #[derive(CandidType)]
    struct SignWithEcdsaArgs {
        message_hash: ByteBuf,
        derivation_path: Vec<ByteBuf>,
        key_id: EcdsaKeyId,
    }
    let hash = [0x5au8; 32];
    let sign = |cycles| mgmt(&r, probe, "sign_with_ecdsa", Encode!(&SignWithEcdsaArgs { message_hash: ByteBuf::from(hash.to_vec()), derivation_path: path(), key_id: key_id() }).unwrap(), cycles);
    // What the canister is told a signature costs is what it is charged.
    #[derive(CandidType, Deserialize, Debug)]
    struct Costs {
        call: u64,
        create_canister: u64,
        http_request: u64,
        ecdsa: Option<u64>,
        schnorr: Option<u64>,
        vetkd: Option<u64>,
        balance: u64,
        liquid: u64,
    }
    let costs: Costs = update(&r, probe, "costs", Encode!(&0u64, &0u64, &"test_key_1").unwrap()).await;
    assert_eq!((costs.ecdsa, costs.schnorr, costs.vetkd), (Some(10_000_000_000), Some(10_000_000_000), Some(10_000_000_000)));
    let unknown: Costs = update(&r, probe, "costs", Encode!(&0u64, &0u64, &"no_such_key").unwrap()).await;
    assert_eq!((unknown.ecdsa, unknown.schnorr, unknown.vetkd), (None, None, None));
    // Messages cost cycles too (ingress, executions, the call): a refused
    // signature costs only those, well under 1 B; a signature 10 B more.
    let before: u64 = query(&r, probe, "balance", no_args()).await;
    let CallOutcome::Err(e) = sign(9_999_999_999).await else { panic!("signed without the fee") };
    assert_eq!(e.code, 4, "{e:?}");
    assert_eq!(e.message, "sign_with_ecdsa request sent with 9999999999 cycles, but 10000000000 cycles are required.");
    let after_refusal: u64 = query(&r, probe, "balance", no_args()).await;
    assert!(before - after_refusal < 1_000_000_000, "a refused signature keeps no fee: paid {}", before - after_refusal);
    let CallOutcome::Ok(bytes) = sign(12_000_000_000).await else { panic!("sign_with_ecdsa refused") };
    let signature = Decode!(&bytes, SignatureResult).unwrap().signature;
    assert!(expected.verify_ecdsa_signature_prehashed(&hash, &signature), "the signature verifies under the derived key");
    assert!(!expected.verify_ecdsa_signature_prehashed(&[0x5b; 32], &signature));
    let paid = after_refusal - query::<u64>(&r, probe, "balance", no_args()).await;
    assert!((10_000_000_000..11_000_000_000).contains(&paid), "the fee is kept, the rest refunded: paid {paid}");

    // Ed25519 with key_1 (13 nodes on a ww node: the same 10 B fee).
    #[derive(CandidType)]
    struct SchnorrPublicKeyArgs {
        canister_id: Option<Principal>,
        derivation_path: Vec<ByteBuf>,
        key_id: SchnorrKeyId,
    }
    #[derive(CandidType)]
    struct SignWithSchnorrArgs {
        message: ByteBuf,
        derivation_path: Vec<ByteBuf>,
        key_id: SchnorrKeyId,
        aux: Option<()>,
    }
    let ed = || SchnorrKeyId { algorithm: SchnorrAlgorithm::Ed25519, name: "key_1".into() };
    let CallOutcome::Ok(bytes) = mgmt(&r, probe, "schnorr_public_key", Encode!(&SchnorrPublicKeyArgs { canister_id: None, derivation_path: path(), key_id: ed() }).unwrap(), 0).await else {
        panic!("schnorr_public_key refused")
    };
    let got = Decode!(&bytes, PublicKeyResult).unwrap();
    let (expected, _) = ic_ed25519::PublicKey::derive_pocketic_key(ic_ed25519::PocketIcMasterPublicKeyId::Key1, &probe, &raw_path());
    assert_eq!(got.public_key.as_slice(), expected.serialize_raw().as_slice());
    let message = b"a message of any length, signed by a ww-cdk canister".to_vec();
    let arg = Encode!(&SignWithSchnorrArgs { message: ByteBuf::from(message.clone()), derivation_path: path(), key_id: ed(), aux: None }).unwrap();
    let CallOutcome::Ok(bytes) = mgmt(&r, probe, "sign_with_schnorr", arg, 10_000_000_000).await else { panic!("sign_with_schnorr refused") };
    let signature = Decode!(&bytes, SignatureResult).unwrap().signature;
    assert!(expected.verify_signature(&message, &signature).is_ok());

    // An unknown key: the IC's routing refusal.
    let arg = Encode!(&SignWithEcdsaArgs { message_hash: ByteBuf::from(hash.to_vec()), derivation_path: path(), key_id: EcdsaKeyId { curve: EcdsaCurve::Secp256k1, name: "foo".into() } }).unwrap();
    let CallOutcome::Err(e) = mgmt(&r, probe, "sign_with_ecdsa", arg, 10_000_000_000).await else { panic!("an unknown key signed") };
    assert_eq!(e.code, 3, "{e:?}");
    assert!(e.message.contains("Requested unknown or disabled threshold key: ecdsa:Secp256k1:foo, existing enabled keys: ["), "{e:?}");
}
