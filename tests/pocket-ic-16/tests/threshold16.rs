//! pocket-ic 16.x against ww (`WW_POCKET_IC_VERSION=16`,
//! `POCKET_IC_BIN` = ww's `pocket-ic` symlink): the management canister's
//! threshold-key methods as an ic-cdk canister (guests/ic-cdk/cdk_platform)
//! uses them through ic-cdk-management-canister, checked with DFINITY's own
//! crates, never with ww's code:
//!
//! - public keys and chain codes equal ic-secp256k1 / ic-secp256r1 /
//!   ic-ed25519 `derive_pocketic_key` and ic-vetkeys' `for_pocketic_key`
//!   derivations, for `key_1`, `test_key_1` and `dfx_test_key`;
//! - ECDSA (secp256k1, secp256r1), BIP340, BIP341 and Ed25519 signatures
//!   verify under those keys (and not for another message);
//! - vetKD encrypted keys decrypt and verify, the same vetKey whatever the
//!   transport key;
//! - the IC's refusals (unknown keys, a 31-byte hash, an invalid transport
//!   key, ingress straight to the management canister, too few cycles), the
//!   fees (`ic0.cost_*`) and what a signature costs the canister.
//!
//! The key layout is PocketIC 16's: the II subnet (34 nodes) holds `key_1`,
//! the TestThresholdKeys subnet (13 nodes) `test_key_1` and `dfx_test_key`;
//! a signature costs 10_000_000_000 × nodes / 13 cycles.

mod common;

use candid::{CandidType, Deserialize, Encode, Nat, Principal};
use ic_management_canister_types::{EcdsaCurve, EcdsaKeyId, SignWithEcdsaArgs};
use pocket_ic::common::rest::RawEffectivePrincipal;
use pocket_ic::{ErrorCode, PocketIc, PocketIcBuilder, RejectCode};
use sha2::{Digest, Sha256};

use common::{check_server, wasm};

/// An instance with only an application subnet: no threshold keys.
fn pic() -> PocketIc {
    check_server();
    PocketIc::new()
}

/// An instance with an application subnet (where the canister runs), the
/// II subnet (`key_1`) and the TestThresholdKeys subnet (`test_key_1`,
/// `dfx_test_key`).
fn keyed_pic() -> PocketIc {
    check_server();
    PocketIcBuilder::new().with_application_subnet().with_ii_subnet().with_test_threshold_keys_subnet().build()
}

const KEY_NAMES: [&str; 3] = ["key_1", "test_key_1", "dfx_test_key"];
/// What a signature (or vetKD derivation) with `test_key_1` or
/// `dfx_test_key` costs: 13 nodes.
const TEST_KEY_FEE: u128 = 10_000_000_000;
/// ... and with `key_1`: 34 nodes, 10_000_000_000 × 34 / 13.
const KEY_1_FEE: u128 = 26_153_846_153;

/// cdk_platform's `Failure`.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: u32,
    message: String,
}

/// cdk_platform's `PublicKeyReply`.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct PublicKeyReply {
    public_key: Vec<u8>,
    chain_code: Vec<u8>,
}

/// cdk_platform installed on the application subnet, with its calls typed.
struct Platform {
    pic: PocketIc,
    id: Principal,
}

impl Platform {
    fn install(pic: PocketIc) -> Self {
        let app = *pic.topology().get_app_subnets().first().expect("an application subnet");
        let id = pic.create_canister_on_subnet(None, None, app);
        pic.add_cycles(id, 100_000_000_000_000);
        pic.install_canister(id, wasm("cdk_platform"), Encode!().unwrap(), None);
        Platform { pic, id }
    }

    fn update<T: CandidType + for<'de> Deserialize<'de>>(&self, method: &str, arg: Vec<u8>) -> T {
        let reply = self.pic.update_call(self.id, Principal::anonymous(), method, arg).unwrap_or_else(|e| panic!("{method}: {e}"));
        candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn query<T: CandidType + for<'de> Deserialize<'de>>(&self, method: &str, arg: Vec<u8>) -> T {
        let reply = self.pic.query_call(self.id, Principal::anonymous(), method, arg).unwrap_or_else(|e| panic!("{method}: {e}"));
        candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn ecdsa_public_key(&self, canister: Option<Principal>, path: &[Vec<u8>], curve: &str, key: &str) -> Result<PublicKeyReply, Failure> {
        self.update("ecdsa_public_key", Encode!(&canister, &path, &curve, &key).unwrap())
    }

    fn sign_ecdsa(&self, hash: &[u8], path: &[Vec<u8>], curve: &str, key: &str) -> Result<Vec<u8>, Failure> {
        self.update("sign_ecdsa", Encode!(&hash, &path, &curve, &key).unwrap())
    }

    fn sign_ecdsa_raw(&self, hash: &[u8], key: &str, cycles: u128) -> Result<Vec<u8>, Failure> {
        self.update("sign_ecdsa_raw", Encode!(&hash, &key, &Nat::from(cycles)).unwrap())
    }

    fn schnorr_public_key(&self, canister: Option<Principal>, path: &[Vec<u8>], algorithm: &str, key: &str) -> Result<PublicKeyReply, Failure> {
        self.update("schnorr_public_key", Encode!(&canister, &path, &algorithm, &key).unwrap())
    }

    fn sign_schnorr(&self, message: &[u8], path: &[Vec<u8>], algorithm: &str, key: &str, merkle_root: Option<&[u8]>) -> Result<Vec<u8>, Failure> {
        self.update("sign_schnorr", Encode!(&message, &path, &algorithm, &key, &merkle_root).unwrap())
    }

    fn vetkd_public_key(&self, canister: Option<Principal>, context: &[u8], key: &str) -> Result<Vec<u8>, Failure> {
        self.update("vetkd_public_key", Encode!(&canister, &context, &key).unwrap())
    }

    fn vetkd_derive_key(&self, input: &[u8], context: &[u8], transport_public_key: &[u8], key: &str) -> Result<Vec<u8>, Failure> {
        self.update("vetkd_derive_key", Encode!(&input, &context, &transport_public_key, &key).unwrap())
    }

    /// The canister's balance, as it sees it and as the client does.
    fn balance(&self) -> u128 {
        let own: Nat = self.query("balance", Encode!().unwrap());
        let own = u128::try_from(own.0).expect("a u128 balance");
        assert_eq!(own, self.pic.cycle_balance(self.id), "ic0.canister_cycle_balance128 and the client's cycle_balance differ");
        own
    }

    fn cost(&self, method: &str, key: &str, scheme: u32) -> Result<u128, u32> {
        let r: Result<Nat, u32> = self.query(method, Encode!(&key, &scheme).unwrap());
        r.map(|n| u128::try_from(n.0).expect("a u128 fee"))
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn path() -> Vec<Vec<u8>> {
    vec![b"threshold16".to_vec(), vec![0, 1, 2, 3], Vec::new()]
}

// --- ECDSA secp256k1 -------------------------------------------------------

fn secp256k1_ecdsa_id(name: &str) -> ic_secp256k1::PocketIcMasterPublicKeyId {
    use ic_secp256k1::PocketIcMasterPublicKeyId as K;
    match name {
        "key_1" => K::EcdsaKey1,
        "test_key_1" => K::EcdsaTestKey1,
        "dfx_test_key" => K::EcdsaDfxTestKey,
        _ => unreachable!(),
    }
}

#[test]
fn ecdsa_secp256k1_keys_derive_as_pocketic_s_and_signatures_verify() {
    let p = Platform::install(keyed_pic());
    let path = path();
    for name in KEY_NAMES {
        let reply = p.ecdsa_public_key(None, &path, "secp256k1", name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        let (expected, chain_code) = ic_secp256k1::PublicKey::derive_pocketic_key(secp256k1_ecdsa_id(name), &p.id, &path);
        assert_eq!(hex::encode(&reply.public_key), hex::encode(expected.serialize_sec1(true)), "{name}: public key");
        assert_eq!(reply.chain_code, chain_code.to_vec(), "{name}: chain code");

        // Another path, another key.
        let other = p.ecdsa_public_key(None, &[b"other".to_vec()], "secp256k1", name).unwrap();
        assert_ne!(other.public_key, reply.public_key, "{name}: the path must matter");

        let hash = sha256(format!("threshold16 secp256k1 {name}").as_bytes());
        let signature = p.sign_ecdsa(&hash, &path, "secp256k1", name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(signature.len(), 64, "{name}: r ‖ s");
        assert!(expected.verify_ecdsa_signature_prehashed(&hash, &signature), "{name}: the signature does not verify");
        assert!(!expected.verify_ecdsa_signature_prehashed(&sha256(b"another message"), &signature), "{name}: verifies for another hash");
        let other_key = ic_secp256k1::PublicKey::deserialize_sec1(&other.public_key).unwrap();
        assert!(!other_key.verify_ecdsa_signature_prehashed(&hash, &signature), "{name}: verifies under another path's key");
    }
}

/// PocketIC's published derivation vector: `key_1`, an explicit canister id.
#[test]
fn ecdsa_public_key_of_another_canister_matches_pocketic_s_vector() {
    let p = Platform::install(keyed_pic());
    let canister = Principal::from_text("uzt4z-lp777-77774-qaabq-cai").unwrap();
    let path: Vec<Vec<u8>> = "Test Derivation For PocketIC ECDSA secp256k1 key_1".split(' ').map(|s| s.as_bytes().to_vec()).collect();
    let reply = p.ecdsa_public_key(Some(canister), &path, "secp256k1", "key_1").expect("ecdsa_public_key");
    assert_eq!(hex::encode(&reply.public_key), "03bca84b5629dc70a37cadb5b3cda0bfc35abc5658f1d9bf8335b10199785a3836");
    let (expected, chain_code) = ic_secp256k1::PublicKey::derive_pocketic_key(secp256k1_ecdsa_id("key_1"), &canister, &path);
    assert_eq!(reply.public_key, expected.serialize_sec1(true));
    assert_eq!(reply.chain_code, chain_code.to_vec());
}

// --- ECDSA secp256r1 -------------------------------------------------------

#[test]
fn ecdsa_secp256r1_keys_derive_as_pocketic_s_and_signatures_verify() {
    use ic_secp256r1::PocketIcMasterPublicKeyId as K;
    let p = Platform::install(keyed_pic());
    let path = path();
    for (name, id) in [("key_1", K::EcdsaKey1), ("test_key_1", K::EcdsaTestKey1), ("dfx_test_key", K::EcdsaDfxTestKey)] {
        let reply = p.ecdsa_public_key(None, &path, "secp256r1", name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        let (expected, chain_code) = ic_secp256r1::PublicKey::derive_pocketic_key(id, &p.id, &path);
        assert_eq!(hex::encode(&reply.public_key), hex::encode(expected.serialize_sec1(true)), "{name}: public key");
        assert_eq!(reply.chain_code, chain_code.to_vec(), "{name}: chain code");

        let hash = sha256(format!("threshold16 secp256r1 {name}").as_bytes());
        let signature = p.sign_ecdsa(&hash, &path, "secp256r1", name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(signature.len(), 64, "{name}: r ‖ s");
        assert!(expected.verify_signature_prehashed(&hash, &signature), "{name}: the signature does not verify");
        assert!(!expected.verify_signature_prehashed(&sha256(b"another message"), &signature), "{name}: verifies for another hash");
    }
}

// --- Schnorr BIP340 / BIP341 -----------------------------------------------

#[test]
fn bip340_keys_derive_as_pocketic_s_and_bip340_and_bip341_signatures_verify() {
    use ic_secp256k1::PocketIcMasterPublicKeyId as K;
    let p = Platform::install(keyed_pic());
    let path = path();
    for (name, id) in [("key_1", K::SchnorrKey1), ("test_key_1", K::SchnorrTestKey1), ("dfx_test_key", K::SchnorrDfxTestKey)] {
        let reply = p.schnorr_public_key(None, &path, "bip340secp256k1", name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        let (expected, chain_code) = ic_secp256k1::PublicKey::derive_pocketic_key(id, &p.id, &path);
        assert_eq!(hex::encode(&reply.public_key), hex::encode(expected.serialize_sec1(true)), "{name}: public key");
        assert_eq!(reply.chain_code, chain_code.to_vec(), "{name}: chain code");

        // BIP340 signs the message itself, of any length.
        let message: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(7) ^ name.len() as u8).collect();
        let signature = p.sign_schnorr(&message, &path, "bip340secp256k1", name, None).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(signature.len(), 64, "{name}: BIP340 signature length");
        assert!(expected.verify_bip340_signature(&message, &signature), "{name}: BIP340 signature does not verify");
        assert!(!expected.verify_bip340_signature(&message[1..], &signature), "{name}: verifies for another message");

        // BIP341: the key tweaked with the taproot merkle root (32 bytes, or
        // empty for a key-path-only output).
        for root in [vec![0x5a; 32], Vec::new()] {
            let signature = p
                .sign_schnorr(&message, &path, "bip340secp256k1", name, Some(&root))
                .unwrap_or_else(|f| panic!("{name}, root of {} bytes: {f:?}", root.len()));
            assert!(
                expected.verify_bip341_signature(&message, &signature, &root),
                "{name}: BIP341 signature (root of {} bytes) does not verify",
                root.len()
            );
            assert!(!expected.verify_bip340_signature(&message, &signature), "{name}: a BIP341 signature verifies untweaked");
        }
    }
}

// --- Schnorr Ed25519 -------------------------------------------------------

#[test]
fn ed25519_keys_derive_as_pocketic_s_and_signatures_verify() {
    use ic_ed25519::PocketIcMasterPublicKeyId as K;
    let p = Platform::install(keyed_pic());
    let path = path();
    for (name, id) in [("key_1", K::Key1), ("test_key_1", K::TestKey1), ("dfx_test_key", K::DfxTestKey)] {
        let reply = p.schnorr_public_key(None, &path, "ed25519", name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        let (expected, chain_code) = ic_ed25519::PublicKey::derive_pocketic_key(id, &p.id, &path);
        assert_eq!(hex::encode(&reply.public_key), hex::encode(expected.serialize_raw()), "{name}: public key");
        assert_eq!(reply.chain_code, chain_code.to_vec(), "{name}: chain code");

        let message = format!("threshold16 ed25519 {name}: any length, not a hash").into_bytes();
        let signature = p.sign_schnorr(&message, &path, "ed25519", name, None).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(signature.len(), 64, "{name}: Ed25519 signature length");
        assert_eq!(expected.verify_signature(&message, &signature), Ok(()), "{name}: the signature does not verify");
        assert!(expected.verify_signature(b"another message", &signature).is_err(), "{name}: verifies for another message");
    }
}

// --- vetKD -----------------------------------------------------------------

/// ic-vetkeys' PocketIC master key for `name`. Its `VetKDKeyId` is the one
/// of the ic-management-canister-types it is built on (0.7); the 0.8 one
/// the suite has is carried over through Candid.
fn vetkd_master_key(name: &str) -> ic_vetkeys::MasterPublicKey {
    let key_id = ic_management_canister_types::VetKDKeyId {
        curve: ic_management_canister_types::VetKDCurve::Bls12_381_G2,
        name: name.to_string(),
    };
    let key_id = candid::decode_one(&candid::encode_one(key_id).unwrap()).unwrap();
    ic_vetkeys::MasterPublicKey::for_pocketic_key(&key_id).unwrap_or_else(|| panic!("ic-vetkeys knows no PocketIC key {name}"))
}

#[test]
fn vetkd_keys_derive_as_pocketic_s_and_derived_keys_decrypt_and_verify() {
    use ic_vetkeys::{DerivedPublicKey, EncryptedVetKey, TransportSecretKey};
    let p = Platform::install(keyed_pic());
    let context = b"threshold16 context".to_vec();
    let input = b"threshold16 input".to_vec();
    let tsk_a = TransportSecretKey::from_seed(vec![0xa1; 32]).unwrap();
    let tsk_b = TransportSecretKey::from_seed(vec![0xb2; 32]).unwrap();
    for name in KEY_NAMES {
        let canister_key = vetkd_master_key(name).derive_canister_key(p.id.as_slice());
        let expected = canister_key.derive_sub_key(&context);
        let public_key = p.vetkd_public_key(None, &context, name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(hex::encode(&public_key), hex::encode(expected.serialize()), "{name}: vetkd_public_key");
        let empty = p.vetkd_public_key(None, &[], name).unwrap();
        assert_eq!(empty, canister_key.serialize(), "{name}: vetkd_public_key with an empty context is the canister key");
        let dpk = DerivedPublicKey::deserialize(&public_key).unwrap();

        let decrypt = |tsk: &TransportSecretKey| {
            let encrypted = p.vetkd_derive_key(&input, &context, &tsk.public_key(), name).unwrap_or_else(|f| panic!("{name}: {f:?}"));
            let encrypted = EncryptedVetKey::deserialize(&encrypted).unwrap_or_else(|e| panic!("{name}: {e}"));
            let key = encrypted.decrypt_and_verify(tsk, &dpk, &input).unwrap_or_else(|e| panic!("{name}: {e}"));
            (encrypted, key)
        };
        let (encrypted_a, key_a) = decrypt(&tsk_a);
        let (_, key_a_again) = decrypt(&tsk_a);
        let (_, key_b) = decrypt(&tsk_b);
        assert_eq!(key_a.signature_bytes(), key_a_again.signature_bytes(), "{name}: the vetKey differs between calls");
        assert_eq!(key_a.signature_bytes(), key_b.signature_bytes(), "{name}: the vetKey differs between transport keys");
        assert!(encrypted_a.decrypt_and_verify(&tsk_b, &dpk, &input).is_err(), "{name}: decrypts with another transport key");
        assert!(encrypted_a.decrypt_and_verify(&tsk_a, &dpk, b"another input").is_err(), "{name}: verifies for another input");
    }

    // An invalid transport public key: not a G1 point, or not 48 bytes.
    for transport_key in [vec![0u8; 48], tsk_a.public_key()[..47].to_vec()] {
        let failure = p.vetkd_derive_key(&input, &context, &transport_key, "test_key_1").expect_err("an invalid transport key");
        assert_eq!(
            failure,
            Failure { code: 4, message: "The provided transport public key is invalid.".to_string() },
            "transport key of {} bytes",
            transport_key.len()
        );
    }
}

// --- refusals --------------------------------------------------------------

#[test]
fn unknown_keys_are_refused_as_the_ic_refuses_them() {
    let p = Platform::install(keyed_pic());
    let hash = sha256(b"threshold16 unknown key");
    let before = p.balance();

    // Made by hand with the cycles attached: the IC's routing refuses it,
    // and the cycles come back.
    let failure = p.sign_ecdsa_raw(&hash, "foo", TEST_KEY_FEE).expect_err("an unknown key");
    assert_eq!(failure.code, 3, "DESTINATION_INVALID: {failure:?}");
    assert!(
        failure.message.contains("Requested unknown or disabled threshold key: ecdsa:Secp256k1:foo"),
        "{failure:?}"
    );
    assert_paid(before, p.balance(), 0, "the refused call's cycles are refunded");

    let failure = p.ecdsa_public_key(None, &[], "secp256k1", "foo").expect_err("an unknown key");
    assert_eq!(failure.code, 3, "DESTINATION_INVALID: {failure:?}");
    assert!(failure.message.contains("Requested unknown threshold key: ecdsa:Secp256k1:foo"), "{failure:?}");

    // Through ic-cdk-management-canister the call is never made:
    // ic0.cost_sign_with_ecdsa reports the key name invalid (2).
    let failure = p.sign_ecdsa(&hash, &[], "secp256k1", "foo").expect_err("an unknown key");
    assert_eq!(failure, Failure { code: 0, message: "invalid key name".to_string() });
    assert_paid(before, p.balance(), 0, "nothing but the messages");
}

#[test]
fn an_instance_without_key_subnets_has_no_keys() {
    let p = Platform::install(pic());
    let failure = p.ecdsa_public_key(None, &[], "secp256k1", "test_key_1").expect_err("no keys at all");
    assert_eq!(failure.code, 3, "DESTINATION_INVALID: {failure:?}");
    assert!(failure.message.contains("Requested unknown threshold key: ecdsa:Secp256k1:test_key_1"), "{failure:?}");
    assert!(failure.message.contains("existing keys: []"), "{failure:?}");
}

#[test]
fn a_message_hash_that_is_not_32_bytes_is_refused() {
    let p = Platform::install(keyed_pic());
    let before = p.balance();
    let failure = p.sign_ecdsa_raw(&[7u8; 31], "test_key_1", TEST_KEY_FEE).expect_err("a 31-byte hash");
    assert_eq!(failure.code, 4, "CANISTER_REJECT: {failure:?}");
    let message = failure.message.to_lowercase();
    assert!(message.contains("decod") || message.contains("32"), "the message should say why: {failure:?}");
    assert_paid(before, p.balance(), 0, "the refused call's cycles are refunded");
}

#[test]
fn users_cannot_call_threshold_methods_by_ingress() {
    let p = Platform::install(keyed_pic());
    let user = Principal::self_authenticating([9u8; 32]);
    let sign_args = SignWithEcdsaArgs {
        message_hash: sha256(b"ingress"),
        derivation_path: Vec::new(),
        key_id: EcdsaKeyId { curve: EcdsaCurve::Secp256k1, name: "test_key_1".to_string() },
    };
    let public_key_args = ic_management_canister_types::EcdsaPublicKeyArgs {
        canister_id: Some(p.id),
        derivation_path: Vec::new(),
        key_id: EcdsaKeyId { curve: EcdsaCurve::Secp256k1, name: "test_key_1".to_string() },
    };
    let calls = [
        ("sign_with_ecdsa", Encode!(&sign_args).unwrap()),
        ("ecdsa_public_key", Encode!(&public_key_args).unwrap()),
    ];
    for sender in [Principal::anonymous(), user] {
        for (method, arg) in &calls {
            // Ingress to aaaaa-aa names the canister it concerns as its
            // effective canister id.
            let err = p
                .pic
                .update_call_with_effective_principal(
                    Principal::management_canister(),
                    RawEffectivePrincipal::CanisterId(p.id.as_slice().to_vec()),
                    sender,
                    method,
                    arg.clone(),
                )
                .expect_err("only canisters may call it");
            assert_eq!(err.reject_code, RejectCode::CanisterReject, "{method} from {sender}: {err}");
            assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage, "{method} from {sender}: {err}");
            assert!(err.reject_message.contains(&format!("Only canisters can call ic00 method {method}")), "{method} from {sender}: {err}");
        }
    }
}

// --- fees ------------------------------------------------------------------

#[test]
fn signing_costs_the_fee_and_too_few_cycles_are_refused_and_refunded() {
    let p = Platform::install(keyed_pic());
    let hash = sha256(b"threshold16 fees");
    let (key, _) = ic_secp256k1::PublicKey::derive_pocketic_key(secp256k1_ecdsa_id("test_key_1"), &p.id, &[]);

    let before = p.balance();
    let failure = p.sign_ecdsa_raw(&hash, "test_key_1", TEST_KEY_FEE - 1).expect_err("one cycle short");
    assert_eq!(
        failure,
        Failure { code: 4, message: "sign_with_ecdsa request sent with 9999999999 cycles, but 10000000000 cycles are required.".to_string() }
    );
    assert_paid(before, p.balance(), 0, "a refused call keeps no fee");

    let signature = p.sign_ecdsa_raw(&hash, "test_key_1", TEST_KEY_FEE + 5_000).expect("fee + 5000 cycles");
    assert!(key.verify_ecdsa_signature_prehashed(&hash, &signature));
    assert_paid(before, p.balance(), TEST_KEY_FEE, "the fee is kept, the 5000 cycles over it refunded");

    // key_1, on the 34-node II subnet.
    let before = p.balance();
    let failure = p.sign_ecdsa_raw(&hash, "key_1", KEY_1_FEE - 1).expect_err("one cycle short");
    assert_eq!(
        failure,
        Failure { code: 4, message: "sign_with_ecdsa request sent with 26153846152 cycles, but 26153846153 cycles are required.".to_string() }
    );
    assert_paid(before, p.balance(), 0, "a refused call keeps no fee");
    let (key_1, _) = ic_secp256k1::PublicKey::derive_pocketic_key(secp256k1_ecdsa_id("key_1"), &p.id, &[]);
    let signature = p.sign_ecdsa_raw(&hash, "key_1", KEY_1_FEE).expect("exactly the fee");
    assert!(key_1.verify_ecdsa_signature_prehashed(&hash, &signature));
    assert_paid(before, p.balance(), KEY_1_FEE, "the fee is kept");

    // ic-cdk-management-canister attaches what ic0.cost_sign_with_* says.
    let before = p.balance();
    p.sign_schnorr(b"fee", &[], "ed25519", "dfx_test_key", None).expect("sign_with_schnorr");
    assert_paid(before, p.balance(), TEST_KEY_FEE, "the fee is kept");
    let before = p.balance();
    let tsk = ic_vetkeys::TransportSecretKey::from_seed(vec![3; 32]).unwrap();
    p.vetkd_derive_key(b"fee", b"", &tsk.public_key(), "key_1").expect("vetkd_derive_key");
    assert_paid(before, p.balance(), KEY_1_FEE, "the fee is kept");

    // Public keys are free.
    let before = p.balance();
    p.ecdsa_public_key(None, &[], "secp256k1", "key_1").expect("ecdsa_public_key");
    p.schnorr_public_key(None, &[], "bip340secp256k1", "test_key_1").expect("schnorr_public_key");
    p.vetkd_public_key(None, b"", "dfx_test_key").expect("vetkd_public_key");
    assert_paid(before, p.balance(), 0, "nothing but the messages");
}

#[test]
fn cost_system_calls_report_the_fees_and_unknown_keys_and_curves() {
    let p = Platform::install(keyed_pic());
    // ic0.cost_sign_with_ecdsa: curve 0 secp256k1, 1 secp256r1.
    for curve in [0, 1] {
        assert_eq!(p.cost("cost_sign_with_ecdsa", "test_key_1", curve), Ok(TEST_KEY_FEE), "curve {curve}");
        assert_eq!(p.cost("cost_sign_with_ecdsa", "dfx_test_key", curve), Ok(TEST_KEY_FEE), "curve {curve}");
        assert_eq!(p.cost("cost_sign_with_ecdsa", "key_1", curve), Ok(KEY_1_FEE), "curve {curve}");
        assert_eq!(p.cost("cost_sign_with_ecdsa", "foo", curve), Err(2), "curve {curve}");
    }
    assert_eq!(p.cost("cost_sign_with_ecdsa", "key_1", 7), Err(1));
    assert_eq!(p.cost("cost_sign_with_ecdsa", "key_1", 2), Err(1));

    // ic0.cost_sign_with_schnorr: 0 bip340secp256k1, 1 ed25519.
    for algorithm in [0, 1] {
        assert_eq!(p.cost("cost_sign_with_schnorr", "test_key_1", algorithm), Ok(TEST_KEY_FEE), "algorithm {algorithm}");
        assert_eq!(p.cost("cost_sign_with_schnorr", "dfx_test_key", algorithm), Ok(TEST_KEY_FEE), "algorithm {algorithm}");
        assert_eq!(p.cost("cost_sign_with_schnorr", "key_1", algorithm), Ok(KEY_1_FEE), "algorithm {algorithm}");
        assert_eq!(p.cost("cost_sign_with_schnorr", "foo", algorithm), Err(2), "algorithm {algorithm}");
    }
    assert_eq!(p.cost("cost_sign_with_schnorr", "key_1", 7), Err(1));

    // ic0.cost_vetkd_derive_key: 0 bls12_381_g2.
    assert_eq!(p.cost("cost_vetkd_derive_key", "test_key_1", 0), Ok(TEST_KEY_FEE));
    assert_eq!(p.cost("cost_vetkd_derive_key", "dfx_test_key", 0), Ok(TEST_KEY_FEE));
    assert_eq!(p.cost("cost_vetkd_derive_key", "key_1", 0), Ok(KEY_1_FEE));
    assert_eq!(p.cost("cost_vetkd_derive_key", "foo", 0), Err(2));
    assert_eq!(p.cost("cost_vetkd_derive_key", "key_1", 1), Err(1));
}

/// Every message costs cycles too (ingress, executions, the call and its
/// bytes), well under 1 B here: the balance fell by `fee` and that.
fn assert_paid(before: u128, after: u128, fee: u128, what: &str) {
    let paid = before - after;
    assert!((fee..fee + 1_000_000_000).contains(&paid), "{what}: paid {paid}, the fee is {fee}");
}
