//! `cdk_platform`: a canister written against the unmodified ic-cdk 0.20 from
//! crates.io that uses the IC's platform services through the management
//! canister, the way an IC developer writes them with
//! ic-cdk-management-canister: threshold ECDSA (secp256k1 and secp256r1),
//! threshold Schnorr (BIP340/BIP341 and Ed25519), vetKD, the `ic0.cost_*`
//! fee system calls, HTTPS outcalls (with a `strip` transform), and what a
//! canister sees of the IC's cycles accounting: its balance and liquid
//! balance in updates and queries, `ic0.cycles_burn128`, `ic0.cost_call` and
//! `ic0.cost_create_canister`, the balance around an inter-canister call
//! (before, right after `ic0.call_perform`, in the callback; `measure_call`
//! with ic-cdk's `Call`, `perform_raw` with the raw System API), and
//! `create_canister` with exactly the cycles given.
//!
//! Failures come back as data (`Failure`: the reject code and message, or
//! code 0 and the error's text when nothing was rejected, e.g. a fee that
//! could not be computed), never as traps, so that tests can assert on them.
//!
//! The `.did` beside this crate (`cdk_platform.did`) is what `export_candid!`
//! gives; keep the two in sync.

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::api::SignCostError;
use std::future::IntoFuture;

use ic_cdk::call::{Call, CallFailed, CallRejected};
use ic_cdk::{query, update};
use ic_cdk_management_canister::{
    self as mgmt, Bip341, EcdsaCurve, EcdsaKeyId, EcdsaPublicKeyArgs, HttpHeader, HttpMethod, HttpRequest,
    HttpRequestArgs, HttpRequestResult, SchnorrAlgorithm, SchnorrAux, SchnorrKeyId, SchnorrPublicKeyArgs,
    SignCallError, SignWithEcdsaArgs, SignWithEcdsaResult, SignWithSchnorrArgs, TransformArgs, VetKDCurve,
    VetKDDeriveKeyArgs, VetKDKeyId, VetKDPublicKeyArgs,
};

/// The transform context `http_fetch` passes to `strip`.
const TRANSFORM_CONTEXT: &[u8] = b"ctx:";

/// Why a call failed.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The reject code (1..=6) when the call was rejected; 0 when it was
    /// not (the fee could not be computed, the reply did not decode, the
    /// call could not be made).
    pub code: u32,
    /// The reject message, or the error's text when code is 0.
    pub message: String,
}

impl Failure {
    fn other(e: impl std::fmt::Display) -> Self {
        Failure { code: 0, message: e.to_string() }
    }
}

impl From<&CallRejected> for Failure {
    fn from(r: &CallRejected) -> Self {
        Failure { code: r.raw_reject_code(), message: r.reject_message().to_string() }
    }
}

impl From<CallFailed> for Failure {
    fn from(e: CallFailed) -> Self {
        match &e {
            CallFailed::CallRejected(r) => r.into(),
            _ => Failure::other(e),
        }
    }
}

impl From<ic_cdk::call::Error> for Failure {
    fn from(e: ic_cdk::call::Error) -> Self {
        match &e {
            ic_cdk::call::Error::CallRejected(r) => r.into(),
            _ => Failure::other(e),
        }
    }
}

impl From<SignCallError> for Failure {
    fn from(e: SignCallError) -> Self {
        match e {
            SignCallError::CallFailed(f) => f.into(),
            other => Failure::other(other),
        }
    }
}

/// A public key and its chain code, as the management canister returns them.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyReply {
    pub public_key: Vec<u8>,
    pub chain_code: Vec<u8>,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum KeyResult {
    Ok(PublicKeyReply),
    Err(Failure),
}

impl From<Result<PublicKeyReply, Failure>> for KeyResult {
    fn from(r: Result<PublicKeyReply, Failure>) -> Self {
        r.map_or_else(KeyResult::Err, KeyResult::Ok)
    }
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum BlobResult {
    Ok(Vec<u8>),
    Err(Failure),
}

impl From<Result<Vec<u8>, Failure>> for BlobResult {
    fn from(r: Result<Vec<u8>, Failure>) -> Self {
        r.map_or_else(BlobResult::Err, BlobResult::Ok)
    }
}

/// What an `ic0.cost_*` system call reports: the fee, or its nonzero
/// return code (1: unknown curve or algorithm, 2: unknown key name).
#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum CostResult {
    Ok(u128),
    Err(u32),
}

impl From<Result<u128, SignCostError>> for CostResult {
    fn from(r: Result<u128, SignCostError>) -> Self {
        match r {
            Ok(fee) => CostResult::Ok(fee),
            Err(SignCostError::InvalidCurveOrAlgorithm) => CostResult::Err(1),
            Err(SignCostError::InvalidKeyName) => CostResult::Err(2),
            Err(SignCostError::UnrecognizedError(code)) => CostResult::Err(code),
        }
    }
}

fn ecdsa_key(curve: &str, name: String) -> Result<EcdsaKeyId, Failure> {
    let curve = match curve {
        "secp256k1" => EcdsaCurve::Secp256k1,
        "secp256r1" => EcdsaCurve::Secp256r1,
        other => return Err(Failure::other(format!("unknown ECDSA curve {other:?}"))),
    };
    Ok(EcdsaKeyId { curve, name })
}

fn schnorr_key(algorithm: &str, name: String) -> Result<SchnorrKeyId, Failure> {
    let algorithm = match algorithm {
        "bip340secp256k1" => SchnorrAlgorithm::Bip340secp256k1,
        "ed25519" => SchnorrAlgorithm::Ed25519,
        other => return Err(Failure::other(format!("unknown Schnorr algorithm {other:?}"))),
    };
    Ok(SchnorrKeyId { algorithm, name })
}

fn vetkd_key(name: String) -> VetKDKeyId {
    VetKDKeyId { curve: VetKDCurve::Bls12_381_G2, name }
}

// --- threshold ECDSA -------------------------------------------------------

/// `ecdsa_public_key` of `canister_id` (this canister if null) for `path`;
/// `curve` is "secp256k1" or "secp256r1".
#[update]
async fn ecdsa_public_key(canister_id: Option<Principal>, path: Vec<Vec<u8>>, curve: String, key: String) -> KeyResult {
    async {
        let arg = EcdsaPublicKeyArgs { canister_id, derivation_path: path, key_id: ecdsa_key(&curve, key)? };
        let reply = mgmt::ecdsa_public_key(&arg).await?;
        Ok::<_, Failure>(PublicKeyReply { public_key: reply.public_key, chain_code: reply.chain_code })
    }
    .await
    .into()
}

/// `sign_with_ecdsa` of `message_hash` with this canister's key for `path`,
/// the fee (`ic0.cost_sign_with_ecdsa`) attached: the 64-byte signature.
#[update]
async fn sign_ecdsa(message_hash: Vec<u8>, path: Vec<Vec<u8>>, curve: String, key: String) -> BlobResult {
    async {
        let arg = SignWithEcdsaArgs { message_hash, derivation_path: path, key_id: ecdsa_key(&curve, key)? };
        Ok::<_, Failure>(mgmt::sign_with_ecdsa(&arg).await?.signature)
    }
    .await
    .into()
}

/// `sign_with_ecdsa` (secp256k1, empty path) made by hand, with exactly
/// `cycles` attached and `message_hash` of any length.
#[update]
async fn sign_ecdsa_raw(message_hash: Vec<u8>, key: String, cycles: u128) -> BlobResult {
    async {
        let arg = SignWithEcdsaArgs {
            message_hash,
            derivation_path: Vec::new(),
            key_id: EcdsaKeyId { curve: EcdsaCurve::Secp256k1, name: key },
        };
        let reply = Call::unbounded_wait(Principal::management_canister(), "sign_with_ecdsa")
            .with_arg(&arg)
            .with_cycles(cycles)
            .await?;
        Ok::<_, Failure>(reply.candid::<SignWithEcdsaResult>().map_err(Failure::other)?.signature)
    }
    .await
    .into()
}

// --- threshold Schnorr -----------------------------------------------------

/// `schnorr_public_key` of `canister_id` (this canister if null) for
/// `path`; `algorithm` is "bip340secp256k1" or "ed25519".
#[update]
async fn schnorr_public_key(canister_id: Option<Principal>, path: Vec<Vec<u8>>, algorithm: String, key: String) -> KeyResult {
    async {
        let arg = SchnorrPublicKeyArgs { canister_id, derivation_path: path, key_id: schnorr_key(&algorithm, key)? };
        let reply = mgmt::schnorr_public_key(&arg).await?;
        Ok::<_, Failure>(PublicKeyReply { public_key: reply.public_key, chain_code: reply.chain_code })
    }
    .await
    .into()
}

/// `sign_with_schnorr` of `message` with this canister's key for `path`,
/// the fee attached; a `merkle_root` asks for a BIP341 signature
/// (`aux = opt variant { bip341 = record { merkle_root_hash } }`).
#[update]
async fn sign_schnorr(message: Vec<u8>, path: Vec<Vec<u8>>, algorithm: String, key: String, merkle_root: Option<Vec<u8>>) -> BlobResult {
    async {
        let arg = SignWithSchnorrArgs {
            message,
            derivation_path: path,
            key_id: schnorr_key(&algorithm, key)?,
            aux: merkle_root.map(|merkle_root_hash| SchnorrAux::Bip341(Bip341 { merkle_root_hash })),
        };
        Ok::<_, Failure>(mgmt::sign_with_schnorr(&arg).await?.signature)
    }
    .await
    .into()
}

// --- vetKD -----------------------------------------------------------------

/// `vetkd_public_key` (bls12_381_g2) of `canister_id` (this canister if
/// null) for `context`.
#[update]
async fn vetkd_public_key(canister_id: Option<Principal>, context: Vec<u8>, key: String) -> BlobResult {
    async {
        let arg = VetKDPublicKeyArgs { canister_id, context, key_id: vetkd_key(key) };
        Ok::<_, Failure>(mgmt::vetkd_public_key(&arg).await?.public_key)
    }
    .await
    .into()
}

/// `vetkd_derive_key` (bls12_381_g2) of `input` in `context`, encrypted for
/// `transport_public_key`, the fee attached: the encrypted key.
#[update]
async fn vetkd_derive_key(input: Vec<u8>, context: Vec<u8>, transport_public_key: Vec<u8>, key: String) -> BlobResult {
    async {
        let arg = VetKDDeriveKeyArgs { input, context, transport_public_key, key_id: vetkd_key(key) };
        Ok::<_, Failure>(mgmt::vetkd_derive_key(&arg).await?.encrypted_key)
    }
    .await
    .into()
}

// --- cycles and fees -------------------------------------------------------

/// This canister's cycle balance.
#[query]
fn balance() -> u128 {
    ic_cdk::api::canister_cycle_balance()
}

/// `ic0.cost_sign_with_ecdsa(key, curve)`: 0 is secp256k1, 1 secp256r1.
#[query]
fn cost_sign_with_ecdsa(key: String, curve: u32) -> CostResult {
    ic_cdk::api::cost_sign_with_ecdsa(key, curve).into()
}

/// `ic0.cost_sign_with_schnorr(key, algorithm)`: 0 is bip340secp256k1, 1
/// ed25519.
#[query]
fn cost_sign_with_schnorr(key: String, algorithm: u32) -> CostResult {
    ic_cdk::api::cost_sign_with_schnorr(key, algorithm).into()
}

/// `ic0.cost_vetkd_derive_key(key, curve)`: 0 is bls12_381_g2.
#[query]
fn cost_vetkd_derive_key(key: String, curve: u32) -> CostResult {
    ic_cdk::api::cost_vetkd_derive_key(key, curve).into()
}

// --- cycles accounting -----------------------------------------------------
//
// What the canister sees of the IC's cycles accounting: its balance and
// liquid balance inside a message (an update sees the execution prepayment
// already withdrawn, a query does not), `ic0.cycles_burn128`, the
// `ic0.cost_*` fees, what an inter-canister call withdraws and refunds, and
// `create_canister` with the creation fee.

/// The balance and the liquid balance (`ic0.canister_liquid_cycle_balance128`:
/// the balance less the freezing limit), read together.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Balances {
    pub balance: u128,
    pub liquid: u128,
}

fn balances() -> Balances {
    Balances { balance: ic_cdk::api::canister_cycle_balance(), liquid: ic_cdk::api::canister_liquid_cycle_balance() }
}

/// This canister's cycle balance inside an update, with the execution
/// prepayment of this message already withdrawn.
#[update]
fn balance_update() -> u128 {
    ic_cdk::api::canister_cycle_balance()
}

/// The balance and the liquid balance inside an update.
#[update]
fn liquid() -> Balances {
    balances()
}

/// The balance and the liquid balance inside a query.
#[query]
fn liquid_query() -> Balances {
    balances()
}

/// The balance inside an update whose argument is `padding` (to measure the
/// ingress fee per byte).
#[update]
fn padded(padding: Vec<u8>) -> u128 {
    let _ = padding;
    ic_cdk::api::canister_cycle_balance()
}

/// What `ic0.cycles_burn128` did: the balance before, the amount burned and
/// the balance after, in one update.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Burned {
    pub before: u128,
    pub liquid_before: u128,
    pub burned: u128,
    pub after: u128,
    pub liquid_after: u128,
}

fn burn_cycles(amount: impl FnOnce(u128) -> u128) -> Burned {
    let Balances { balance: before, liquid: liquid_before } = balances();
    let burned = ic_cdk::api::cycles_burn(amount(liquid_before));
    let Balances { balance: after, liquid: liquid_after } = balances();
    Burned { before, liquid_before, burned, after, liquid_after }
}

/// `ic0.cycles_burn128(amount)`.
#[update]
fn burn(amount: u128) -> Burned {
    burn_cycles(|_| amount)
}

/// Burns all but `keep` of the liquid balance.
#[update]
fn burn_to(keep: u128) -> Burned {
    burn_cycles(|liquid| liquid.saturating_sub(keep))
}

/// `ic0.cost_call(method_name_size, payload_size)`.
#[query]
fn cost_call(method_name_size: u64, payload_size: u64) -> u128 {
    ic_cdk::api::cost_call(method_name_size, payload_size)
}

/// `ic0.cost_create_canister()`.
#[query]
fn cost_create_canister() -> u128 {
    ic_cdk::api::cost_create_canister()
}

/// A reply of `size` bytes of blob (the reply's raw length is `size` plus
/// its Candid header).
#[update]
fn reply_bytes(size: u64) -> Vec<u8> {
    vec![0x5a; size as usize]
}

/// A reject (`ic0.msg_reject`) whose message is `size` bytes long.
#[update(manual_reply = true)]
fn reject_text(size: u64) {
    ic_cdk::api::msg_reject("r".repeat(size as usize));
}

/// One inter-canister call, measured: the balance before it, right after
/// `ic0.call_perform` in the same execution, and first thing in the
/// callback.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    pub before: u128,
    pub after_perform: u128,
    pub in_callback: u128,
    /// `ic0.performance_counter(0)` (the instructions this execution has
    /// used) right after `ic0.call_perform`.
    pub instructions_at_perform: u64,
    /// `ic0.cost_call(|method|, |arg|)`.
    pub cost_call: u128,
    /// `ic0.msg_cycles_refunded128` in the callback.
    pub refunded: u128,
    /// The reply's length, or the reject message's.
    pub response_bytes: u64,
    pub reply: Option<Vec<u8>>,
    pub reject: Option<Failure>,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum MeasuredResult {
    Ok(Measured),
    Err(Failure),
}

/// Calls `method` of `callee` with the raw argument `arg` and `cycles`
/// attached (unbounded wait) and measures the balance around it. The call
/// future is polled first, then a future that reads the balance: the first
/// poll performs the call (`ic0.call_perform`), so the second reading is
/// taken right after it in the same execution. `Err` when the call could
/// not be made at all (ic-cdk's liquid-balance check, or `call_perform`
/// failing).
#[update]
async fn measure_call(callee: Principal, method: String, arg: Vec<u8>, cycles: u128) -> MeasuredResult {
    let cost_call = ic_cdk::api::cost_call(method.len() as u64, arg.len() as u64);
    let before = ic_cdk::api::canister_cycle_balance();
    let call = Call::unbounded_wait(callee, &method).with_raw_args(&arg).with_cycles(cycles);
    let (result, (after_perform, instructions_at_perform)) = futures::future::join(call.into_future(), async {
        (ic_cdk::api::canister_cycle_balance(), ic_cdk::api::instruction_counter())
    })
    .await;
    let in_callback = ic_cdk::api::canister_cycle_balance();
    // Only a callback may read the refund: after a synchronous failure
    // this is still the update (where the IC traps on it).
    let refunded = match &result {
        Ok(_) | Err(CallFailed::CallRejected(_)) => ic_cdk::api::msg_cycles_refunded(),
        Err(_) => 0,
    };
    let (response_bytes, reply, reject) = match result {
        Ok(response) => {
            let bytes = response.into_bytes();
            (bytes.len() as u64, Some(bytes), None)
        }
        Err(CallFailed::CallRejected(r)) => (r.reject_message().len() as u64, None, Some(Failure::from(&r))),
        Err(e) => return MeasuredResult::Err(Failure::other(e)),
    };
    MeasuredResult::Ok(Measured {
        before,
        after_perform,
        in_callback,
        instructions_at_perform,
        cost_call,
        refunded,
        response_bytes,
        reply,
        reject,
    })
}

/// What `perform_raw` saw: `ic0.call_perform`'s return code, the balance
/// right before and right after it, and `ic0.cost_call`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Performed {
    pub code: u32,
    pub before: u128,
    pub after: u128,
    pub cost_call: u128,
}

unsafe extern "C" fn ignore_response(_env: usize) {}

/// Calls `method` of `callee` with the raw System API (`ic0.call_new`,
/// `call_data_append`, `call_cycles_add128`, `call_perform`), without
/// ic-cdk's liquid-balance check. The response goes to a callback that does
/// nothing.
#[update]
fn perform_raw(callee: Principal, method: String, arg: Vec<u8>, cycles: u128) -> Performed {
    let cost_call = ic0::cost_call(method.len() as u64, arg.len() as u64);
    let before = ic0::canister_cycle_balance128();
    // SAFETY: `ignore_response` is a valid entry point for any env and owns
    // nothing.
    unsafe { ic0::call_new(callee.as_slice(), &method, ignore_response, 0, ignore_response, 0) };
    ic0::call_data_append(&arg);
    if cycles > 0 {
        ic0::call_cycles_add128(cycles);
    }
    let code = ic0::call_perform();
    let after = ic0::canister_cycle_balance128();
    Performed { code, before, after, cost_call }
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum PrincipalResult {
    Ok(Principal),
    Err(Failure),
}

impl From<Result<Principal, Failure>> for PrincipalResult {
    fn from(r: Result<Principal, Failure>) -> Self {
        r.map_or_else(PrincipalResult::Err, PrincipalResult::Ok)
    }
}

/// `create_canister` (no settings) with exactly `cycles` attached.
#[update]
async fn create_with(cycles: u128) -> PrincipalResult {
    async {
        let reply = Call::unbounded_wait(Principal::management_canister(), "create_canister")
            .with_arg(&mgmt::CreateCanisterArgs::default())
            .with_cycles(cycles)
            .await?;
        Ok::<_, Failure>(reply.candid::<mgmt::CreateCanisterResult>().map_err(Failure::other)?.canister_id)
    }
    .await
    .into()
}

/// ic-cdk-management-canister's `create_canister_with_extra_cycles`: the
/// creation fee (`ic0.cost_create_canister`) plus `extra` attached.
#[update]
async fn create_extra(extra: u128) -> PrincipalResult {
    async {
        let reply = mgmt::create_canister_with_extra_cycles(&mgmt::CreateCanisterArgs::default(), extra).await?;
        Ok::<_, Failure>(reply.canister_id)
    }
    .await
    .into()
}

// --- HTTPS outcalls --------------------------------------------------------

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct FetchArgs {
    pub url: String,
    /// "get", "post", "head", "put", "delete" or "patch".
    pub method: String,
    pub headers: Vec<Header>,
    pub body: Option<Vec<u8>>,
    pub max_response_bytes: Option<u64>,
    /// Whether the response goes through `strip` (context "ctx:").
    pub transform: bool,
    pub is_replicated: Option<bool>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: candid::Nat,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl From<HttpRequestResult> for HttpReply {
    fn from(r: HttpRequestResult) -> Self {
        HttpReply { status: r.status, headers: r.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(), body: r.body }
    }
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum HttpResult {
    Ok(HttpReply),
    Err(Failure),
}

/// An `http_request` outcall (pricing version 2, the cycles
/// `ic0.cost_http_request_v2` asks for attached by ic-cdk-management-canister).
#[update]
async fn http_fetch(req: FetchArgs) -> HttpResult {
    let result = async {
        let method = http_method(&req.method)?;
        let args = HttpRequestArgs {
            url: req.url,
            max_response_bytes: req.max_response_bytes,
            method,
            headers: req.headers.into_iter().map(|h| HttpHeader { name: h.name, value: h.value }).collect(),
            body: req.body,
            transform: req
                .transform
                .then(|| mgmt::transform_context_from_query("strip".to_string(), TRANSFORM_CONTEXT.to_vec())),
            is_replicated: req.is_replicated,
            ..Default::default()
        };
        Ok::<_, Failure>(HttpRequest::from_args(args).send().await?.into())
    }
    .await;
    match result {
        Ok(reply) => HttpResult::Ok(reply),
        Err(f) => HttpResult::Err(f),
    }
}

/// The transform `http_fetch` names when asked to: the status kept, every
/// header removed, the body prefixed with the transform context.
#[query]
fn strip(args: TransformArgs) -> HttpRequestResult {
    let mut body = args.context;
    body.extend_from_slice(&args.response.body);
    HttpRequestResult { status: args.response.status, headers: Vec::new(), body }
}

// --- flexible HTTPS outcalls ----------------------------------------------
//
// `flexible_http_request` the way ic-cdk-management-canister 0.3 offers it:
// `FlexibleHttpRequest`, which always prices with version 2 and attaches
// what `ic0.cost_http_request_v2` asks for.

/// How many nodes make a flexible outcall, and how many of their responses
/// to accept.
#[derive(CandidType, Deserialize, Clone, Copy, Debug)]
pub struct FlexibleCounts {
    pub min_responses: u32,
    pub max_responses: u32,
    pub total_requests: u32,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct FlexibleArgs {
    pub url: String,
    /// "get", "post", "head", "put", "delete" or "patch".
    pub method: String,
    pub headers: Vec<Header>,
    pub body: Option<Vec<u8>>,
    pub max_response_bytes: Option<u64>,
    /// Whether each node's response goes through `strip` (context "ctx:").
    pub transform: bool,
    /// The counts; null for the system's defaults.
    pub replication: Option<FlexibleCounts>,
}

/// What one node did, as `node_details` reports it.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct FlexibleNode {
    pub node_id: Principal,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// The `err` arm of the result: `global_error` is "timeout",
/// "out_of_cycles", "responses_too_large" or "too_many_rejects".
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct FlexibleError {
    pub global_error: Option<String>,
    pub node_details: Vec<FlexibleNode>,
    pub message: String,
}

/// A flexible outcall's result (`Ok`, `Err`: both replies), or the reject
/// of the call (`Rejected`: the arguments or the payment were refused).
#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum FlexibleResult {
    Ok(Vec<HttpReply>),
    Err(FlexibleError),
    Rejected(Failure),
}

fn http_method(method: &str) -> Result<HttpMethod, Failure> {
    Ok(match method {
        "get" => HttpMethod::GET,
        "post" => HttpMethod::POST,
        "head" => HttpMethod::HEAD,
        "put" => HttpMethod::PUT,
        "delete" => HttpMethod::DELETE,
        "patch" => HttpMethod::PATCH,
        other => return Err(Failure::other(format!("unknown HTTP method {other:?}"))),
    })
}

/// A `flexible_http_request` outcall through `FlexibleHttpRequest`.
#[update]
async fn flexible_fetch(req: FlexibleArgs) -> FlexibleResult {
    let result = async {
        let mut outcall = mgmt::FlexibleHttpRequest::new(req.url)
            .with_method(http_method(&req.method)?)
            .with_headers(req.headers.into_iter().map(|h| HttpHeader { name: h.name, value: h.value }).collect());
        if let Some(body) = req.body {
            outcall = outcall.with_body(body);
        }
        if let Some(max) = req.max_response_bytes {
            outcall = outcall.with_max_response_bytes(max);
        }
        if req.transform {
            outcall = outcall.with_transform(mgmt::transform_context_from_query("strip".to_string(), TRANSFORM_CONTEXT.to_vec()));
        }
        if let Some(c) = req.replication {
            outcall = outcall.with_replication(mgmt::ReplicationCounts {
                min_responses: c.min_responses,
                max_responses: c.max_responses,
                total_requests: c.total_requests,
            });
        }
        Ok::<_, Failure>(outcall.send().await?)
    }
    .await;
    match result {
        Err(f) => FlexibleResult::Rejected(f),
        Ok(mgmt::FlexibleHttpRequestResult::Ok(responses)) => FlexibleResult::Ok(responses.into_iter().map(HttpReply::from).collect()),
        Ok(mgmt::FlexibleHttpRequestResult::Err(e)) => FlexibleResult::Err(FlexibleError {
            global_error: e.global_error.map(|g| {
                match g {
                    mgmt::FlexibleHttpGlobalError::Timeout(_) => "timeout",
                    mgmt::FlexibleHttpGlobalError::OutOfCycles(_) => "out_of_cycles",
                    mgmt::FlexibleHttpGlobalError::ResponsesTooLarge(_) => "responses_too_large",
                    mgmt::FlexibleHttpGlobalError::TooManyRejects(_) => "too_many_rejects",
                }
                .to_string()
            }),
            node_details: e
                .node_details
                .into_iter()
                .map(|d| FlexibleNode {
                    node_id: d.node_id,
                    code: d.error.as_ref().map(|x| x.code.clone()),
                    message: d.error.map(|x| x.message),
                })
                .collect(),
            message: e.message,
        }),
    }
}

ic_cdk::export_candid!();
