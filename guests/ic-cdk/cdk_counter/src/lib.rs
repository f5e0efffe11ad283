//! `cdk_counter`: a canister written against the unmodified ic-cdk 0.20 from
//! crates.io, for ww's integration tests and benchmarks. Heap state in
//! `thread_local!`s, stable state through ic-stable-structures'
//! `MemoryManager`:
//!
//! - memory 0: `StableBTreeMap<String, String>` (`put`, `get_kv`, `len`);
//! - memory 1: `StableCell<u64>`, the heap counter saved by `pre_upgrade`;
//! - memory 2: `StableCell<u64>`, the `upgrades` counter saved by `pre_upgrade`;
//! - memory 3: `StableCell<String>`, the greeting saved by `pre_upgrade`.
//!
//! Canister signatures (`prepare_sig`, `get_sig`) come from
//! ic-canister-sig-creation, as Internet Identity's do.
//!
//! The `.did` beside this crate (`cdk_counter.did`) is what
//! `export_candid!` gives; keep the two in sync.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Deserialize, Principal};
use ic_canister_sig_creation::signature_map::{CanisterSigError, CanisterSigInputs, LABEL_SIG, SignatureMap};
use ic_cdk::call::Call;
use ic_cdk::{heartbeat, init, inspect_message, on_low_wasm_memory, post_upgrade, pre_upgrade, query, update};
use ic_certification::labeled_hash;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};

type Memory = VirtualMemory<DefaultMemoryImpl>;

const DEFAULT_GREETING: &str = "hello";

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct InitArg {
    pub greeting: String,
}

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));

    static KV: RefCell<StableBTreeMap<String, String, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    static SAVED_COUNTER: RefCell<StableCell<u64, Memory>> =
        RefCell::new(StableCell::init(memory(1), 0));
    static SAVED_UPGRADES: RefCell<StableCell<u64, Memory>> =
        RefCell::new(StableCell::init(memory(2), 0));
    static SAVED_GREETING: RefCell<StableCell<String, Memory>> =
        RefCell::new(StableCell::init(memory(3), String::new()));

    static GREETING: RefCell<String> = RefCell::new(DEFAULT_GREETING.to_string());
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static UPGRADES: Cell<u64> = const { Cell::new(0) };
    static TIMER_FIRED: Cell<u64> = const { Cell::new(0) };
    static SLOW_DONE: Cell<u64> = const { Cell::new(0) };
    static RELEASED: Cell<bool> = const { Cell::new(false) };
    static APPENDED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn memory(id: u8) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(MemoryId::new(id)))
}

fn bump(cell: &'static std::thread::LocalKey<Cell<u64>>) -> u64 {
    cell.with(|c| {
        let v = c.get() + 1;
        c.set(v);
        v
    })
}

// --- lifecycle -------------------------------------------------------------

#[init]
fn init(arg: Option<InitArg>) {
    let greeting = arg.map_or_else(|| DEFAULT_GREETING.to_string(), |a| a.greeting);
    GREETING.with(|g| *g.borrow_mut() = greeting);
}

#[query]
fn greeting() -> String {
    GREETING.with(|g| g.borrow().clone())
}

#[pre_upgrade]
fn pre_upgrade() {
    SAVED_COUNTER.with(|c| c.borrow_mut().set(COUNTER.with(Cell::get)));
    SAVED_UPGRADES.with(|c| c.borrow_mut().set(UPGRADES.with(Cell::get)));
    SAVED_GREETING.with(|c| c.borrow_mut().set(GREETING.with(|g| g.borrow().clone())));
}

/// Restores the counter, the upgrade count (then +1) and the greeting (unless
/// `arg` gives a new one) from stable memory.
#[post_upgrade]
fn post_upgrade(arg: Option<InitArg>) {
    COUNTER.with(|c| c.set(SAVED_COUNTER.with(|s| *s.borrow().get())));
    UPGRADES.with(|c| c.set(SAVED_UPGRADES.with(|s| *s.borrow().get()) + 1));
    let greeting = match arg {
        Some(a) => a.greeting,
        None => {
            let saved = SAVED_GREETING.with(|s| s.borrow().get().clone());
            if saved.is_empty() { DEFAULT_GREETING.to_string() } else { saved }
        }
    };
    GREETING.with(|g| *g.borrow_mut() = greeting);
}

#[query]
fn upgrades() -> u64 {
    UPGRADES.with(Cell::get)
}

// --- heap counter ----------------------------------------------------------

#[update]
fn inc() -> u64 {
    bump(&COUNTER)
}

#[query]
fn get() -> u64 {
    COUNTER.with(Cell::get)
}

/// Changes heap and stable memory, then traps: every change must roll back.
#[update]
fn inc_then_trap() {
    bump(&COUNTER);
    KV.with(|kv| kv.borrow_mut().insert("trap".to_string(), "written".to_string()));
    ic_cdk::trap("inc_then_trap: deliberate");
}

// --- stable map ------------------------------------------------------------

#[update]
fn put(k: String, v: String) {
    KV.with(|kv| kv.borrow_mut().insert(k, v));
}

#[query]
fn get_kv(k: String) -> Option<String> {
    KV.with(|kv| kv.borrow().get(&k))
}

#[query]
fn len() -> u64 {
    KV.with(|kv| kv.borrow().len())
}

// --- timers ----------------------------------------------------------------

/// A one-shot timer (ic-cdk-timers) that bumps `timer_fired` after `delay_secs`.
#[update]
fn schedule(delay_secs: u64) {
    ic_cdk_timers::set_timer(Duration::from_secs(delay_secs), async {
        bump(&TIMER_FIRED);
    });
}

#[query]
fn timer_fired() -> u64 {
    TIMER_FIRED.with(Cell::get)
}

// --- system API ------------------------------------------------------------

#[query]
fn whoami() -> Principal {
    ic_cdk::api::msg_caller()
}

/// What the system says about the caller beyond its principal
/// (`ic0.msg_caller_info_*`): the sender info's data and its signer.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallerInfo {
    pub data: Vec<u8>,
    pub signer: Option<Principal>,
}

fn caller_info_now() -> CallerInfo {
    CallerInfo { data: ic_cdk::api::msg_caller_info_data(), signer: ic_cdk::api::msg_caller_info_signer() }
}

#[query]
fn caller_info() -> CallerInfo {
    caller_info_now()
}

/// The caller info in the method, then in its reply callback after a
/// self-call (a callback runs in the original call's context).
#[update]
async fn caller_info_around_call() -> (CallerInfo, CallerInfo) {
    let before = caller_info_now();
    if let Err(e) = Call::unbounded_wait(ic_cdk::api::canister_self(), "noop").await {
        ic_cdk::trap(format!("caller_info_around_call: self-call failed: {e}"));
    }
    (before, caller_info_now())
}

#[query]
fn self_id() -> Principal {
    ic_cdk::api::canister_self()
}

#[query]
fn version() -> u64 {
    ic_cdk::api::canister_version()
}

#[query]
fn time_now() -> u64 {
    ic_cdk::api::time()
}

#[query]
fn is_ctrl(p: Principal) -> bool {
    ic_cdk::api::is_controller(&p)
}

#[update]
fn log(msg: String) {
    ic_cdk::println!("{msg}");
}

// --- certification ----------------------------------------------------------

/// Sets the canister's certified data (`ic0.certified_data_set`, at most 32
/// bytes).
#[update]
fn set_certified(data: Vec<u8>) {
    ic_cdk::api::certified_data_set(data);
}

/// The data certificate the system hands a non-replicated query
/// (`ic0.data_certificate_*`); none in an update.
#[query]
fn certified() -> Option<Vec<u8>> {
    ic_cdk::api::data_certificate()
}

/// The DER root key the system says it is certified by (`ic0.root_key_*`).
#[query]
fn root_key() -> Vec<u8> {
    ic_cdk::api::root_key()
}

// --- canister signatures ----------------------------------------------------

thread_local! {
    /// The signatures prepared so far, as Internet Identity keeps them
    /// (ic-canister-sig-creation's `SignatureMap`, the tree under `sig`;
    /// entries expire a minute after they were made). Heap only.
    static SIGNATURES: RefCell<SignatureMap> = RefCell::new(SignatureMap::default());
}

/// `message` as `SignatureMap` takes it: every IC signable is domain
/// separated (a length byte n, an n-byte domain, then the content; a
/// delegation's is `\x1Aic-request-auth-delegation` and its hash), and the
/// map certifies `SHA256(n · domain · content)`, i.e. `SHA256(message)`.
fn sig_inputs<'a>(seed: &'a [u8], message: &'a [u8]) -> CanisterSigInputs<'a> {
    let n = usize::from(*message.first().unwrap_or_else(|| ic_cdk::trap("sig: an empty message")));
    if message.len() < 1 + n {
        ic_cdk::trap("sig: the message is not domain separated (a length byte, that many bytes of domain)");
    }
    CanisterSigInputs { domain: &message[1..1 + n], seed, message: &message[1 + n..] }
}

/// Signs `message` (domain separated) for the canister signature key of
/// `seed` the way Internet Identity prepares a delegation: records
/// `sig/SHA256(seed)/SHA256(message)` = "" and certifies the `sig` tree.
#[update]
fn prepare_sig(seed: Vec<u8>, message: Vec<u8>) {
    SIGNATURES.with(|sigs| {
        let mut sigs = sigs.borrow_mut();
        sigs.add_signature(&sig_inputs(&seed, &message));
        ic_cdk::api::certified_data_set(labeled_hash(LABEL_SIG, &sigs.root_hash()));
    });
}

/// The canister signature `prepare_sig` made: the CBOR (tag 55799) map of
/// the data certificate and the witness of `sig/SHA256(seed)/SHA256(message)`;
/// none without a data certificate (in an update). Traps if none was made.
#[query]
fn get_sig(seed: Vec<u8>, message: Vec<u8>) -> Option<Vec<u8>> {
    SIGNATURES.with(|sigs| match sigs.borrow().get_signature_as_cbor(&sig_inputs(&seed, &message), None) {
        Ok(cbor) => Some(cbor),
        Err(CanisterSigError::NoCertificate) => None,
        Err(e) => ic_cdk::trap(format!("get_sig: {e}")),
    })
}

// --- benchmarks and ordering -----------------------------------------------

#[update]
fn noop() {}

#[query]
fn noop_query() {}

#[update]
fn append(i: u64) {
    APPENDED.with(|a| a.borrow_mut().push(i));
}

#[query]
fn appended() -> Vec<u64> {
    APPENDED.with(|a| a.borrow().clone())
}

// --- held calls ------------------------------------------------------------

/// Stays open (self-calling `noop` in a loop) until `release` is called, then
/// bumps `slow_done` and returns it.
#[update]
async fn slow() -> u64 {
    while !RELEASED.with(Cell::get) {
        // A failed self-call (e.g. the queue is full) would spin without
        // ever yielding: give up instead.
        if let Err(e) = Call::unbounded_wait(ic_cdk::api::canister_self(), "noop").await {
            ic_cdk::trap(format!("slow: self-call failed: {e}"));
        }
    }
    bump(&SLOW_DONE)
}

#[update]
fn release() {
    RELEASED.with(|r| r.set(true));
}

#[update]
fn hold() {
    RELEASED.with(|r| r.set(false));
}

#[query]
fn slow_done() -> u64 {
    SLOW_DONE.with(Cell::get)
}

/// Ingress filter: every update is accepted except `refused_by_inspect`,
/// which ingress never reaches (canisters may still call it).
#[inspect_message]
fn inspect() {
    if ic_cdk::api::msg_method_name() != "refused_by_inspect" {
        ic_cdk::api::accept_message();
    }
}

/// Counts the calls that got through (only canisters can: see `inspect`).
#[update]
fn refused_by_inspect() -> u64 {
    bump(&COUNTER)
}

thread_local! {
    static BEATING: Cell<bool> = const { Cell::new(false) };
    static BEATS: Cell<u64> = const { Cell::new(0) };
}

/// Counts heartbeats once `start_beating` was called.
#[heartbeat]
fn beat() {
    if BEATING.with(Cell::get) {
        bump(&BEATS);
    }
}

/// From now on every heartbeat bumps `beats`.
#[update]
fn start_beating() {
    BEATING.with(|b| b.set(true));
}

#[query]
fn beats() -> u64 {
    BEATS.with(Cell::get)
}

thread_local! {
    static BALLAST: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static LOW_MEMORY: Cell<u64> = const { Cell::new(0) };
}

/// Grows the heap by about `mib` MiB (kept until the canister is reinstalled).
#[update]
fn grow_heap(mib: u32) {
    BALLAST.with(|b| b.borrow_mut().push(vec![1u8; (mib as usize) << 20]));
}

#[on_low_wasm_memory]
fn low_memory() {
    bump(&LOW_MEMORY);
}

/// How often `canister_on_low_wasm_memory` ran.
#[query]
fn low_memory_runs() -> u64 {
    LOW_MEMORY.with(Cell::get)
}

ic_cdk::export_candid!();
