//! The intents test canister: every role of the intent tests in one
//! module, used through the public API only (it never reads intent
//! storage but through `totals` and `pending`).
//!
//! - authority: `buy` calls an external canister's method with an intent
//!   built from its arguments; `buy_then_trap` traps after the call;
//! - external: `perform` awaits a call to itself (so calls interleave) and
//!   counts how many are in flight; `refuse` rejects; `hold` waits until
//!   `open_gate`;
//! - client: `call_buy` calls an authority's `buy`;
//! - `bench_loop`: calls `pong` on a callee, with or without an intent.

use std::cell::Cell;

use candid::{CandidType, Deserialize, Principal};
use ww_cdk::call::Call;
use ww_cdk::intent::{self, IntentKey, IntentReservation, IntentTotals, PendingIntent};
use ww_cdk::{api, init, post_upgrade, query, update};

thread_local! {
    static IN_FLIGHT: Cell<u64> = const { Cell::new(0) };
    static MAX_IN_FLIGHT: Cell<u64> = const { Cell::new(0) };
    static PERFORMED: Cell<u64> = const { Cell::new(0) };
    static GATE_OPEN: Cell<bool> = const { Cell::new(false) };
}

/// The install argument: a stable memory id to claim at init, as a
/// canister's own structure would (the collision test).
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct InitArg {
    pub claim: Option<u8>,
}

#[init]
fn init(arg: Option<InitArg>) {
    if let Some(id) = arg.and_then(|a| a.claim) {
        let _ = ww_cdk::memory::claim(id, "intents-test", "own structure");
    }
}

#[post_upgrade]
fn post_upgrade(arg: Option<InitArg>) {
    init(arg);
}

/// What `buy` reserves and calls.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct BuyArgs {
    pub external: Principal,
    /// The external method: "perform", "refuse" or "hold".
    pub method: String,
    pub key: String,
    pub quantity: u64,
    pub ttl_secs: Option<u64>,
    pub max_in_flight: Option<u64>,
    pub capacity: Option<u64>,
    /// Make it a bounded-wait call with this timeout.
    pub timeout_secs: Option<u32>,
}

fn reservation(args: &BuyArgs) -> Result<IntentReservation, String> {
    let key = IntentKey::try_new(args.key.clone()).map_err(|e| e.to_string())?;
    let mut intent = IntentReservation::new(key, args.quantity);
    if let Some(t) = args.ttl_secs {
        intent = intent.with_ttl_secs(t);
    }
    if let Some(m) = args.max_in_flight {
        intent = intent.with_max_in_flight(m);
    }
    if let Some(c) = args.capacity {
        intent = intent.with_capacity(c);
    }
    Ok(intent)
}

async fn call_external(args: &BuyArgs) -> Result<(), String> {
    let intent = reservation(args)?;
    let call = match args.timeout_secs {
        Some(t) => Call::bounded_wait(args.external, &args.method).change_timeout(t),
        None => Call::unbounded_wait(args.external, &args.method),
    };
    call.with_intent(intent).with_arg(()).await.map(drop).map_err(|e| e.to_string())
}

/// Calls `args.external`'s `args.method` with an intent.
#[update]
async fn buy(args: BuyArgs) -> Result<(), String> {
    call_external(&args).await
}

/// `buy`, then a trap in the callback's execution.
#[update]
async fn buy_then_trap(args: BuyArgs) -> Result<(), String> {
    let outcome = call_external(&args).await;
    api::trap(format!("trapping after the call ({outcome:?})"));
}

/// Calls `authority.buy(args)` (the client).
#[update]
async fn call_buy(authority: Principal, args: BuyArgs) -> Result<(), String> {
    match Call::unbounded_wait(authority, "buy").with_arg(args).await {
        Ok(r) => r.candid::<Result<(), String>>().map_err(|e| e.to_string())?,
        Err(e) => Err(e.to_string()),
    }
}

/// External: awaits three calls to itself (so concurrent performs
/// interleave), counting performs in flight.
#[update]
async fn perform() {
    let now = IN_FLIGHT.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    MAX_IN_FLIGHT.with(|m| m.set(m.get().max(now)));
    for _ in 0..3 {
        if let Err(e) = Call::unbounded_wait(api::canister_self(), "pong").await {
            api::trap(format!("perform: {e}"));
        }
    }
    IN_FLIGHT.with(|n| n.set(n.get() - 1));
    PERFORMED.with(|p| p.set(p.get() + 1));
}

/// External: rejects.
#[update]
fn refuse() {
    api::trap("refused");
}

/// External: replies once `open_gate` was called (a call context kept
/// open by calling itself).
#[update]
async fn hold() {
    while !GATE_OPEN.with(Cell::get) {
        if let Err(e) = Call::unbounded_wait(api::canister_self(), "pong").await {
            api::trap(format!("hold: {e}"));
        }
    }
}

#[update]
fn open_gate() {
    GATE_OPEN.with(|g| g.set(true));
}

#[update]
fn pong() {}

/// External: (performs in flight, the most seen at once, performed).
#[query]
fn stats() -> (u64, u64, u64) {
    (IN_FLIGHT.with(Cell::get), MAX_IN_FLIGHT.with(Cell::get), PERFORMED.with(Cell::get))
}

#[query]
fn totals(key: String) -> Result<IntentTotals, String> {
    Ok(intent::totals(&IntentKey::try_new(key).map_err(|e| e.to_string())?))
}

#[query]
fn pending() -> Vec<PendingIntent> {
    intent::pending()
}

/// Whether `key` is a valid intent key (the error otherwise).
#[query]
fn try_key(key: String) -> Result<(), String> {
    IntentKey::try_new(key).map(drop).map_err(|e| e.to_string())
}

/// Claims stable memory `id` as this canister's own (traps if taken).
#[update]
fn claim(id: u8, label: String) {
    let label: &'static str = Box::leak(label.into_boxed_str());
    let _ = ww_cdk::memory::claim(id, "intents-test", label);
}

/// `n` calls to `callee.pong`, `window` at a time, each with an intent
/// on key "bench" (at most `window` in flight) or without; replies the
/// number that succeeded.
#[update]
async fn bench_loop(callee: Principal, n: u32, window: u32, with_intent: bool) -> u32 {
    let window = window.max(1);
    let key = IntentKey::try_new("bench").unwrap_or_else(|e| api::trap(e.to_string()));
    let (mut ok, mut sent) = (0u32, 0u32);
    while sent < n {
        let batch = window.min(n - sent);
        let mut futures = Vec::with_capacity(batch as usize);
        for _ in 0..batch {
            let call = Call::unbounded_wait(callee, "pong");
            let call = if with_intent {
                call.with_intent(IntentReservation::new(key.clone(), 1).with_max_in_flight(u64::from(window)))
            } else {
                call
            };
            futures.push(call.issue());
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

ww_cdk::export_canister!();
ww_cdk::export_candid!();
