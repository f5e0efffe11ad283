//! The probe canister: what the replica's tests call to check execution
//! semantics (rollback of traps, inter-canister calls and their callbacks,
//! queue limits, instruction and memory limits, timers, upgrades).
//!
//! State: a heap counter `n`, a heap log, heap ballast, a stable map
//! `u64 -> u64` ("stable cells", memory id 0; key 0 holds `n` across
//! upgrades) and a timer-fire counter.
//!
//! ```candid
//! type CallError = record { code : nat32; message : text };
//! type CallOutcome = variant { Ok : blob; Err : CallError };
//! type InitArg = opt record { trap_in_post_upgrade : opt bool };
//! service : (InitArg) -> {
//!   set : (nat64) -> ();
//!   get : () -> (nat64) query;
//!   stable_get : (nat64) -> (opt nat64) query;
//!   stable_set : (nat64, nat64) -> ();
//!   log : () -> (vec text) query;
//!   trap_after_mutate : (nat64) -> ();
//!   panic_after_mutate : (nat64) -> ();
//!   trap_after_call : (principal) -> ();
//!   record : (text) -> ();
//!   call_then_trap_in_callback : (principal) -> ();
//!   reply_twice : () -> ();
//!   no_reply : () -> ();
//!   call_get : (principal) -> (nat64);
//!   call_method : (principal, text, blob) -> (CallOutcome);
//!   bounded_call : (principal, text, nat32) -> (CallOutcome);
//!   slow : (nat64) -> (nat64);
//!   deadline : () -> (nat64);
//!   flood : (principal, nat32) -> (record { queued : nat32; first_error : opt CallError });
//!   send_in_order : (principal, nat32) -> ();
//!   query_mutate : () -> (nat64) query;
//!   grow_heap : (nat32) -> (nat64);
//!   big_reply : (nat32) -> (blob);
//!   set_timer_in : (nat64) -> ();
//!   timer_fired : () -> (nat64) query;
//!   time_now : () -> (nat64) query;
//!   whoami : () -> (principal) query;
//!   self_id : () -> (principal) query;
//! }
//! ```

use candid::{CandidType, Deserialize, Principal};
use serde_bytes::ByteBuf;
use std::cell::{Cell, RefCell};
use ww_cdk::api;
use ww_cdk::call::{Call, CallFailed, CallFuture};
use ww_cdk::ic_stable_structures::StableBTreeMap;
use ww_cdk::ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ww_cdk::stable::DefaultMemoryImpl;
use ww_cdk::{composite_query, init, on_timer, post_upgrade, pre_upgrade, query, update};

type Memory = VirtualMemory<DefaultMemoryImpl>;

const MIB: usize = 1024 * 1024;

/// The stable cell that keeps `n` across upgrades.
const N_KEY: u64 = 0;
/// The stable cell `trap_after_mutate` writes.
const TRAP_KEY: u64 = 1;

thread_local! {
    static N: Cell<u64> = const { Cell::new(0) };
    /// `pong` calls so far.
    static PONGS: Cell<u64> = const { Cell::new(0) };
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Heap kept on purpose (`grow_heap`, `trap_after_mutate`).
    static BALLAST: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static TIMER_FIRED: Cell<u64> = const { Cell::new(0) };
    /// `#[on_timer]` traps (after counting) while set.
    static TIMER_TRAPS: Cell<bool> = const { Cell::new(false) };
    /// Set by `open_gate`; `wait_gate` returns once it is.
    static GATE_OPEN: Cell<bool> = const { Cell::new(false) };

    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
    static CELLS: RefCell<StableBTreeMap<u64, u64, Memory>> = RefCell::new(StableBTreeMap::init(
        MEMORY_MANAGER.with(|m| m.borrow().get(MemoryId::new(0))),
    ));
}

/// The install and upgrade argument.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct InitArg {
    /// Makes `post_upgrade` trap (so the upgrade fails and is rolled back).
    pub trap_in_post_upgrade: Option<bool>,
}

/// A failed call, as the caller saw it.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct CallError {
    /// The reject code (1 to 6), also for synchronous failures.
    pub code: u32,
    /// The reject message.
    pub message: String,
}

impl From<CallFailed> for CallError {
    fn from(e: CallFailed) -> Self {
        Self {
            code: e.code(),
            message: e.message().to_owned(),
        }
    }
}

/// What `flood` managed to queue.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct FloodResult {
    /// Calls queued.
    pub queued: u32,
    /// The synchronous failure that stopped it, if any.
    pub first_error: Option<CallError>,
}

fn set_n(value: u64) {
    N.with(|n| n.set(value));
}

fn cell_set(key: u64, value: u64) {
    CELLS.with(|cells| cells.borrow_mut().insert(key, value));
}

fn cell_get(key: u64) -> Option<u64> {
    CELLS.with(|cells| cells.borrow().get(&key))
}

/// Allocates `bytes` bytes (written, not just reserved) and keeps them;
/// returns the bytes kept in total. Traps with a message if memory runs out.
fn keep_ballast(bytes: usize) -> u64 {
    let mut block = Vec::new();
    if block.try_reserve_exact(bytes).is_err() {
        api::trap(format!("cannot allocate {bytes} more bytes"));
    }
    block.resize(bytes, 0xA5);
    BALLAST.with(|b| {
        let mut b = b.borrow_mut();
        b.push(block);
        b.iter().map(|v| v.len() as u64).sum()
    })
}

/// The mutations `trap_after_mutate` and `panic_after_mutate` make before failing.
fn mutate(n: u64) {
    set_n(n);
    keep_ballast(MIB);
    cell_set(TRAP_KEY, n);
}

// -- install and upgrade

/// Takes the same argument as `post_upgrade`; installing does nothing else.
#[init]
fn init(arg: Option<InitArg>) {
    let _ = arg;
}

/// Keeps `n` in stable cell 0.
#[pre_upgrade]
fn pre_upgrade() {
    cell_set(N_KEY, N.with(Cell::get));
}

/// Restores `n` from stable cell 0; traps if asked to.
#[post_upgrade]
fn post_upgrade(arg: Option<InitArg>) {
    set_n(cell_get(N_KEY).unwrap_or(0));
    if arg.and_then(|a| a.trap_in_post_upgrade) == Some(true) {
        api::trap("post_upgrade trapped as asked");
    }
}

// -- plain state

#[update]
fn set(n: u64) {
    set_n(n);
}

#[query]
fn get() -> u64 {
    N.with(Cell::get)
}

#[query]
fn stable_get(key: u64) -> Option<u64> {
    cell_get(key)
}

#[update]
fn stable_set(key: u64, value: u64) {
    cell_set(key, value);
}

#[query]
fn log() -> Vec<String> {
    LOG.with(|l| l.borrow().clone())
}

/// Appends `s` to the log.
#[update]
fn record(s: String) {
    LOG.with(|l| l.borrow_mut().push(s));
}

// -- rollback

/// Sets `n`, grows the heap by 1 MiB, writes stable cell 1, then traps.
#[update]
fn trap_after_mutate(n: u64) {
    mutate(n);
    api::trap("boom");
}

/// Like `trap_after_mutate`, but panics.
#[update]
fn panic_after_mutate(n: u64) {
    mutate(n);
    panic!("panicked");
}

/// Queues a call to `callee.record` and traps: the call must never be sent.
#[update]
fn trap_after_call(callee: Principal) {
    if let Err(e) = Call::unbounded_wait(callee, "record")
        .with_arg("from trap_after_call")
        .oneway()
    {
        api::trap(format!("the call was not even queued: {e}"));
    }
    api::trap("trapped after queuing a call");
}

/// Sets `n` to 100, awaits `callee.get`, sets `n` to 200 and traps in the
/// callback: `n` stays 100 and the caller gets CANISTER_ERROR.
#[update]
async fn call_then_trap_in_callback(callee: Principal) {
    set_n(100);
    let _ = Call::unbounded_wait(callee, "get").await;
    set_n(200);
    api::trap("trapped in the callback");
}

// -- responding

/// Replies twice: the second reply traps.
#[update(manual_reply = true)]
fn reply_twice() {
    api::msg_reply(api::EMPTY_CANDID_ARGS);
    api::msg_reply(api::EMPTY_CANDID_ARGS);
}

/// Returns without replying (no call outstanding): the host rejects.
#[update(manual_reply = true)]
fn no_reply() {}

/// The deadline of this call (0 unless it is a bounded-wait call).
#[update]
fn deadline() -> u64 {
    api::msg_deadline()
}

/// Replies with `bytes` bytes.
#[update]
fn big_reply(bytes: u32) -> ByteBuf {
    ByteBuf::from(vec![0x5A; bytes as usize])
}

// -- calls

/// A composite query: awaits `callee.get` (a query) and returns it plus
/// what this canister's `get` says; traps if the call fails.
#[composite_query]
async fn composite_get(callee: Principal) -> u64 {
    let mine = N.with(Cell::get);
    call_get(callee).await + mine
}

/// Awaits `callee.get` and returns it; traps if the call fails.
#[update]
async fn call_get(callee: Principal) -> u64 {
    let response = match Call::unbounded_wait(callee, "get").await {
        Ok(response) => response,
        Err(e) => api::trap(format!("call_get: {e}")),
    };
    match response.candid::<u64>() {
        Ok(n) => n,
        Err(e) => api::trap(format!("call_get: {e}")),
    }
}

async fn raw_call(call: Call<'_>) -> Result<ByteBuf, CallError> {
    match call.await {
        Ok(response) => Ok(ByteBuf::from(response.into_bytes())),
        Err(e) => Err(e.into()),
    }
}

/// An unbounded-wait call with raw argument bytes: the reply bytes, or the
/// reject (synchronous failures too).
#[update]
async fn call_method(
    callee: Principal,
    method: String,
    arg: ByteBuf,
) -> Result<ByteBuf, CallError> {
    raw_call(Call::unbounded_wait(callee, &method).with_raw_args(&arg)).await
}

/// An unbounded-wait call with raw argument bytes and `cycles` attached.
#[update]
async fn call_with_cycles(
    callee: Principal,
    method: String,
    arg: ByteBuf,
    cycles: u64,
) -> Result<ByteBuf, CallError> {
    raw_call(Call::unbounded_wait(callee, &method).with_raw_args(&arg).with_cycles(u128::from(cycles))).await
}

/// The canister's cycle balance.
#[query]
fn balance() -> u64 {
    u64::try_from(api::canister_cycle_balance()).unwrap_or(u64::MAX)
}

/// What things cost here and what the canister has, as the host reports
/// them in an update (after its prepayment).
#[derive(CandidType, Deserialize, Clone, Debug)]
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

#[update]
fn costs(method_name_size: u64, payload_size: u64, key_name: String) -> Costs {
    let n = |c: u128| u64::try_from(c).unwrap_or(u64::MAX);
    Costs {
        call: n(api::cost_call(method_name_size, payload_size)),
        create_canister: n(api::cost_create_canister()),
        http_request: n(api::cost_http_request(100, 2_000_000)),
        ecdsa: api::cost_sign_with_ecdsa(&key_name, 0).ok().map(n),
        schnorr: api::cost_sign_with_schnorr(&key_name, 1).ok().map(n),
        vetkd: api::cost_vetkd_derive_key(&key_name, 0).ok().map(n),
        balance: n(api::canister_cycle_balance()),
        liquid: n(api::canister_liquid_cycle_balance()),
    }
}

/// Burns up to `amount` of the liquid balance: (burned, balance after).
#[update]
fn burn(amount: u64) -> (u64, u64) {
    let burned = api::cycles_burn(u128::from(amount));
    (u64::try_from(burned).unwrap_or(u64::MAX), u64::try_from(api::canister_cycle_balance()).unwrap_or(u64::MAX))
}

/// A bounded-wait call with argument `()`.
#[update]
async fn bounded_call(
    callee: Principal,
    method: String,
    arg: ByteBuf,
    timeout_secs: u32,
) -> Result<ByteBuf, CallError> {
    raw_call(
        Call::bounded_wait(callee, &method)
            .with_raw_args(&arg)
            .change_timeout(timeout_secs),
    )
    .await
}

/// Queues up to `n` calls to `callee.record` in this execution, stopping at
/// the first synchronous failure. Each response is awaited by a task of its own.
#[update]
fn flood(callee: Principal, n: u32) -> FloodResult {
    let mut queued = 0;
    let mut first_error = None;
    for i in 0..n {
        match Call::unbounded_wait(callee, "record")
            .with_arg(format!("flood {i}"))
            .issue()
        {
            Ok(pending) => {
                queued += 1;
                ww_cdk::spawn(async move {
                    let _ = pending.await;
                });
            }
            Err(e) => {
                first_error = Some(CallError::from(CallFailed::from(e)));
                break;
            }
        }
    }
    FloodResult {
        queued,
        first_error,
    }
}

/// Queues `record("0")` .. `record("n-1")` to `callee` in one execution,
/// then awaits them all.
#[update]
async fn send_in_order(callee: Principal, n: u32) {
    let mut pending: Vec<CallFuture<'static>> = Vec::new();
    for i in 0..n {
        match Call::unbounded_wait(callee, "record")
            .with_arg(i.to_string())
            .issue()
        {
            Ok(call) => pending.push(call),
            Err(e) => api::trap(format!("send_in_order: call {i} was not queued: {e}")),
        }
    }
    for (i, call) in pending.into_iter().enumerate() {
        if let Err(e) = call.await {
            api::debug_print(format!("send_in_order: call {i} failed: {e}"));
        }
    }
}

/// Logs "waiting", then returns once `open_gate` has been called: until
/// then it keeps a call context open by calling its own `pong`, one call
/// after the other (each response is a new execution that checks the gate).
#[update]
async fn wait_gate() {
    LOG.with(|l| l.borrow_mut().push("waiting".to_owned()));
    while !GATE_OPEN.with(Cell::get) {
        if let Err(e) = Call::unbounded_wait(api::canister_self(), "pong").await {
            api::trap(format!("wait_gate: {e}"));
        }
    }
}

/// Lets every `wait_gate` return.
#[update]
fn open_gate() {
    GATE_OPEN.with(|g| g.set(true));
}

/// Awaits `gate.wait_gate`, then logs "after gate" and replies: the reply
/// comes as late as the test opens the gate.
#[update]
async fn record_after_gate(gate: Principal) {
    if let Err(e) = Call::unbounded_wait(gate, "wait_gate").await {
        api::trap(format!("record_after_gate: {e}"));
    }
    LOG.with(|l| l.borrow_mut().push("after gate".to_owned()));
}

/// `msg_caller` before and after awaiting `callee.pong`: the same caller
/// (the call context's), as on the IC.
#[update]
async fn caller_after_await(callee: Principal) -> (Principal, Principal) {
    let before = api::msg_caller();
    if let Err(e) = Call::unbounded_wait(callee, "pong").await {
        api::trap(format!("caller_after_await: {e}"));
    }
    (before, api::msg_caller())
}

/// `ic0.canister_version`.
#[query]
fn version() -> u64 {
    api::canister_version()
}

/// `performance_counter(1)` (the call context's instructions) before an
/// await of `callee.pong`, then `performance_counter(0)` (this execution's)
/// and `performance_counter(1)` after it.
#[update]
async fn instructions_around_await(callee: Principal) -> (u64, u64, u64) {
    // Some work before the await, so the first execution counts.
    let _ = slow(10_000);
    let before = api::performance_counter(1);
    if let Err(e) = Call::unbounded_wait(callee, "pong").await {
        api::trap(format!("instructions_around_await: {e}"));
    }
    (before, api::performance_counter(0), api::performance_counter(1))
}

/// Awaits `callee.pong`, then accepts every cycle still attached to this
/// call (a callback runs in the call's context) and returns how many.
#[update]
async fn accept_after_await(callee: Principal) -> u64 {
    if let Err(e) = Call::unbounded_wait(callee, "pong").await {
        api::trap(format!("accept_after_await: {e}"));
    }
    u64::try_from(api::msg_cycles_accept(api::msg_cycles_available())).unwrap_or(u64::MAX)
}

/// Calls `ic0.msg_method_name`, which the IC allows only in
/// `canister_inspect_message`: this traps.
#[update]
fn method_name() -> String {
    api::msg_method_name()
}

// -- limits

/// Burns CPU for `iterations` rounds; returns a checksum.
#[update]
fn slow(iterations: u64) -> u64 {
    let mut acc: u64 = 0;
    for i in 0..iterations {
        acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

/// Increments `n` in a query (the host discards it) and returns it.
#[query]
fn query_mutate() -> u64 {
    N.with(|n| {
        n.set(n.get() + 1);
        n.get()
    })
}

/// Allocates `mib` MiB more and keeps it; returns the bytes kept in total.
#[update]
fn grow_heap(mib: u32) -> u64 {
    match (mib as usize).checked_mul(MIB) {
        Some(bytes) => keep_ballast(bytes),
        None => api::trap(format!(
            "cannot allocate {mib} MiB in a 32-bit address space"
        )),
    }
}

// -- time and timers

/// Sets the global timer to `nanos` from now.
#[update]
fn set_timer_in(nanos: u64) {
    api::set_global_timer(api::time().saturating_add(nanos));
}

#[on_timer]
fn on_timer() {
    TIMER_FIRED.with(|t| t.set(t.get() + 1));
    LOG.with(|l| l.borrow_mut().push("timer".to_owned()));
    if TIMER_TRAPS.with(Cell::get) {
        api::trap("the timer traps as asked");
    }
}

/// Arms the timer `nanos` from now with an `#[on_timer]` that traps.
#[update]
fn arm_trapping_timer(nanos: u64) {
    TIMER_TRAPS.with(|t| t.set(true));
    set_timer_in(nanos);
}

/// `set_global_timer` as the canister sees it: the previous deadline.
#[update]
fn set_global_timer(timestamp: u64) -> u64 {
    api::set_global_timer(timestamp)
}

#[query]
fn timer_fired() -> u64 {
    TIMER_FIRED.with(Cell::get)
}

#[query]
fn time_now() -> u64 {
    api::time()
}

// -- identity

#[query]
fn whoami() -> Principal {
    api::msg_caller()
}

#[query]
fn self_id() -> Principal {
    api::canister_self()
}

ww_cdk::export_canister!();
ww_cdk::export_candid!();

/// Counts itself; the callee of the call benchmarks.
#[update]
fn pong() {
    PONGS.with(|p| p.set(p.get() + 1));
}

/// How many `pong` calls ran.
#[query]
fn pongs() -> u64 {
    PONGS.with(Cell::get)
}

/// Sends up to `n` one-way calls to `callee.pong` in this execution (their
/// responses are ignored) and returns how many were queued: it stops at
/// the first that fails at once (the 500 outstanding calls per callee).
#[update]
fn oneway_burst(callee: Principal, n: u32) -> u32 {
    let mut queued = 0;
    for _ in 0..n {
        if Call::unbounded_wait(callee, "pong").oneway().is_err() {
            break;
        }
        queued += 1;
    }
    queued
}

/// Makes `n` calls to `pong`, spread round robin over `callees`, with up
/// to `window` in flight; returns how many succeeded. For benchmarks.
#[update]
async fn ping_spread(callees: Vec<Principal>, n: u32, window: u32) -> u32 {
    if callees.is_empty() {
        return 0;
    }
    let window = window.max(1);
    let (mut ok, mut sent) = (0u32, 0u32);
    while sent < n {
        let batch = window.min(n - sent);
        let futures: Vec<_> = (sent..sent + batch)
            .map(|i| Call::unbounded_wait(callees[i as usize % callees.len()], "pong").issue())
            .collect();
        sent += batch;
        for f in futures {
            if let Ok(f) = f
                && f.await.is_ok()
            {
                ok += 1;
            }
        }
    }
    ok
}

/// Makes `n` calls to `callee.pong` with up to `window` in flight (window 1:
/// one after the other) and returns how many succeeded. For benchmarks.
#[update]
async fn ping_loop(callee: Principal, n: u32, window: u32) -> u32 {
    let window = window.max(1);
    let mut ok = 0u32;
    let mut sent = 0u32;
    while sent < n {
        let batch = window.min(n - sent);
        let mut futures = Vec::with_capacity(batch as usize);
        for _ in 0..batch {
            futures.push(Call::unbounded_wait(callee, "pong").issue());
        }
        sent += batch;
        for f in futures {
            if let Ok(f) = f
                && f.await.is_ok()
            {
                ok += 1;
            }
        }
    }
    ok
}
