//! `cdk_caller`: a canister written against the unmodified ic-cdk 0.20 from
//! crates.io that makes inter-canister calls (bounded and unbounded wait,
//! sequential and concurrent) and calls the management canister through
//! ic-cdk-management-canister, for ww's integration tests and benchmarks.
//!
//! The `.did` beside this crate (`cdk_caller.did`) is what `export_candid!`
//! gives; keep the two in sync.

use candid::{CandidType, Deserialize, Principal};
use futures::future::join_all;
use ic_cdk::call::{Call, CallFailed, Response};
use ic_cdk::{init, query, update};
use ic_cdk_management_canister as mgmt;

/// `SYS_TRANSIENT`: what the IC reports when `ic0.call_perform` fails (the
/// call was never enqueued, e.g. too many outstanding calls).
const SYS_TRANSIENT: u32 = 2;

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// The reject code (1..=6); `SYS_TRANSIENT` (2) when `call_perform`
    /// failed; 0 when the caller could not afford the call.
    pub code: u32,
    pub message: String,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallManyResult {
    pub ok: u32,
    pub errors: Vec<CallError>,
}

impl From<CallFailed> for CallError {
    fn from(e: CallFailed) -> Self {
        let code = match &e {
            CallFailed::CallRejected(r) => r.raw_reject_code(),
            CallFailed::CallPerformFailed(_) => SYS_TRANSIENT,
            CallFailed::InsufficientLiquidCycleBalance(_) => 0,
        };
        let message = match &e {
            CallFailed::CallRejected(r) => r.reject_message().to_string(),
            other => other.to_string(),
        };
        CallError { code, message }
    }
}

fn tally(results: Vec<Result<Response, CallFailed>>, out: &mut CallManyResult) {
    for r in results {
        match r {
            Ok(_) => out.ok += 1,
            Err(e) => out.errors.push(e.into()),
        }
    }
}

// --- calls between canisters -----------------------------------------------

/// Unbounded-wait call to `inc` on `target`.
#[update]
async fn call_inc(target: Principal) -> Result<u64, String> {
    let response = Call::unbounded_wait(target, "inc")
        .await
        .map_err(|e| e.to_string())?;
    response.candid::<u64>().map_err(|e| e.to_string())
}

/// An optional `nat64` init argument (`ww canister install --argument
/// '(opt 5)'` must type it from this module's interface).
#[init]
fn init(start: Option<u64>) {
    START.with(|s| s.set(start));
}

/// The init argument as this canister decoded it.
#[query]
fn start() -> Option<u64> {
    START.with(|s| s.get())
}

/// Spawns a task when dropped. Dropped while ic-cdk recovers from a trap
/// (in the cleanup callback, which drops the trapped method's future), the
/// spawn panics with "tasks cannot be spawned while recovering from a trap".
struct SpawnsOnDrop;

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        ic_cdk::futures::spawn(async {});
    }
}

/// Calls `inc` on `target`, then panics in the reply callback while a
/// [`SpawnsOnDrop`] is alive: the callback traps, then the cleanup callback
/// traps too. The caller's reject carries both.
#[update]
async fn trap_in_callback_and_cleanup(target: Principal) {
    let _guard = SpawnsOnDrop;
    let _ = Call::unbounded_wait(target, "inc").await;
    panic!("the callback panics as asked");
}

/// Raw bytes in, raw bytes out. Bounded wait with `bounded_timeout_secs` if
/// given (a timeout comes back as `SYS_UNKNOWN`, 6), unbounded otherwise.
#[update]
async fn call_method(
    target: Principal,
    method: String,
    arg: Vec<u8>,
    bounded_timeout_secs: Option<u32>,
) -> Result<Vec<u8>, CallError> {
    let call = match bounded_timeout_secs {
        Some(secs) => Call::bounded_wait(target, &method).change_timeout(secs),
        None => Call::unbounded_wait(target, &method),
    };
    let response = call.with_raw_args(&arg).await?;
    Ok(response.into_bytes())
}

/// `n` concurrent unbounded-wait calls to `method` (argument `()`): all the
/// futures are made first, then joined.
#[update]
async fn call_many(target: Principal, method: String, n: u32) -> CallManyResult {
    let futures: Vec<_> = (0..n)
        .map(|_| Call::unbounded_wait(target, &method).into_future())
        .collect();
    let mut out = CallManyResult { ok: 0, errors: Vec::new() };
    tally(join_all(futures).await, &mut out);
    out
}

/// `n` concurrent calls `append(i)`, i in 0..n, sent in that order.
#[update]
async fn append_many(target: Principal, n: u64) {
    let futures: Vec<_> = (0..n)
        .map(|i| Call::unbounded_wait(target, "append").with_arg(i).into_future())
        .collect();
    for r in join_all(futures).await {
        if let Err(e) = r {
            ic_cdk::trap(format!("append_many: {e}"));
        }
    }
}

// --- benchmarks ------------------------------------------------------------

/// `n` sequential `noop` calls; the number that succeeded.
#[update]
async fn bench_seq(target: Principal, n: u32) -> u32 {
    let mut ok = 0;
    for _ in 0..n {
        if Call::unbounded_wait(target, "noop").await.is_ok() {
            ok += 1;
        }
    }
    ok
}

/// `n` `noop` calls, at most `in_flight` outstanding (joined in batches);
/// the number that succeeded.
#[update]
async fn bench_par(target: Principal, n: u32, in_flight: u32) -> u32 {
    let in_flight = in_flight.max(1);
    let mut ok = 0;
    let mut sent = 0;
    while sent < n {
        let batch = in_flight.min(n - sent);
        let futures: Vec<_> = (0..batch)
            .map(|_| Call::unbounded_wait(target, "noop").into_future())
            .collect();
        ok += join_all(futures).await.iter().filter(|r| r.is_ok()).count() as u32;
        sent += batch;
    }
    ok
}

// --- the management canister -----------------------------------------------

/// `create_canister` with `cycles` on top of the creation fee; default
/// settings (the caller canister is the only controller).
#[update]
async fn create_with_cycles(cycles: u128) -> Principal {
    let arg = mgmt::CreateCanisterArgs { settings: None };
    match mgmt::create_canister_with_extra_cycles(&arg, cycles).await {
        Ok(r) => r.canister_id,
        Err(e) => ic_cdk::trap(format!("create_canister: {e}")),
    }
}

#[update]
async fn install(target: Principal, wasm: Vec<u8>, arg: Vec<u8>) {
    let args = mgmt::InstallCodeArgs {
        mode: mgmt::CanisterInstallMode::Install,
        canister_id: target,
        wasm_module: wasm,
        arg,
    };
    if let Err(e) = mgmt::install_code(&args).await {
        ic_cdk::trap(format!("install_code: {e}"));
    }
}

/// `raw_rand`: 32 bytes.
#[update]
async fn rand() -> Vec<u8> {
    match mgmt::raw_rand().await {
        Ok(bytes) => bytes,
        Err(e) => ic_cdk::trap(format!("raw_rand: {e}")),
    }
}

/// `canister_status`: the `{:?}` of its `status` field (`Running`, ...).
#[update]
async fn status(target: Principal) -> String {
    let arg = mgmt::CanisterStatusArgs { canister_id: target };
    match mgmt::canister_status(&arg).await {
        Ok(s) => format!("{:?}", s.status),
        Err(e) => ic_cdk::trap(format!("canister_status: {e}")),
    }
}

/// A new canister taken through its whole life by this one, one management
/// call at a time: created (1T cycles on top of the fee), `module`
/// installed, uninstalled, installed again, reinstalled, upgraded, then its
/// controllers set to this canister, itself and the anonymous principal.
/// Traps on the first failure; returns the new canister's id.
#[update]
async fn lifecycle(module: Vec<u8>) -> Principal {
    fn check<T>(step: &str, r: Result<T, impl std::fmt::Display>) -> T {
        r.unwrap_or_else(|e| ic_cdk::trap(format!("lifecycle: {step}: {e}")))
    }
    let created = mgmt::create_canister_with_extra_cycles(&mgmt::CreateCanisterArgs { settings: None }, 1_000_000_000_000).await;
    let id = check("create_canister", created).canister_id;
    let code = |mode| mgmt::InstallCodeArgs { mode, canister_id: id, wasm_module: module.clone(), arg: Vec::new() };
    check("install", mgmt::install_code(&code(mgmt::CanisterInstallMode::Install)).await);
    check("uninstall_code", mgmt::uninstall_code(&mgmt::UninstallCodeArgs { canister_id: id }).await);
    check("install again", mgmt::install_code(&code(mgmt::CanisterInstallMode::Install)).await);
    check("reinstall", mgmt::install_code(&code(mgmt::CanisterInstallMode::Reinstall)).await);
    check("upgrade", mgmt::install_code(&code(mgmt::CanisterInstallMode::Upgrade(None))).await);
    let settings = mgmt::CanisterSettings {
        controllers: Some(vec![ic_cdk::api::canister_self(), id, Principal::anonymous()]),
        ..Default::default()
    };
    let update = mgmt::UpdateSettingsArgs { canister_id: id, settings };
    check("update_settings", mgmt::update_settings(&update).await);
    id
}

/// `canister_info` of `target` with its 20 most recent changes.
#[update]
async fn info(target: Principal) -> mgmt::CanisterInfoResult {
    let arg = mgmt::CanisterInfoArgs { canister_id: target, num_requested_changes: Some(20) };
    match mgmt::canister_info(&arg).await {
        Ok(info) => info,
        Err(e) => ic_cdk::trap(format!("canister_info: {e}")),
    }
}

// --- cycles ----------------------------------------------------------------

/// The subnet this canister runs on (`ic0.subnet_self`).
#[query]
fn subnet() -> Principal {
    ic_cdk::api::subnet_self()
}

#[query]
fn balance() -> u128 {
    ic_cdk::api::canister_cycle_balance()
}

/// Accepts every cycle sent with the call; the amount accepted.
#[update]
fn accept_cycles() -> u64 {
    let available = ic_cdk::api::msg_cycles_available();
    ic_cdk::api::msg_cycles_accept(available) as u64
}

// --- composite queries ------------------------------------------------------

thread_local! {
    /// The init argument, as decoded.
    static START: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    static COMPOSITE_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Sums `get` of every target (queries), returning the sum and how many
/// times this method has run as far as it can tell: its own increment
/// survives its awaits, but nothing survives the composite query.
#[query(composite = true)]
async fn composite_sum(targets: Vec<Principal>) -> (u64, u64) {
    COMPOSITE_RUNS.with(|r| r.set(r.get() + 1));
    let mut sum = 0;
    for t in targets {
        let n: u64 = Call::unbounded_wait(t, "get").await.expect("get").candid().expect("nat64");
        sum += n;
    }
    (sum, COMPOSITE_RUNS.with(std::cell::Cell::get))
}

/// A raw call from a composite query; the reject code and message if it fails.
#[query(composite = true)]
async fn composite_call(target: Principal, method: String, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
    Call::unbounded_wait(target, &method).with_raw_args(&arg).await.map(|r| r.into_bytes()).map_err(CallError::from)
}

ic_cdk::export_candid!();
