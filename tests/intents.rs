//! ww-cdk's intents, end to end on a replica with real canisters
//! (`guests/canisters/intents`: authority, external and client in one
//! module), through their public API only: races on a key, limits under
//! 100 concurrent buyers, rejects, traps in callbacks, bounded-wait
//! timeouts, a continuation lost to an upgrade (freed by the TTL sweep),
//! invalid keys and stable memory id collisions.

mod common;

use std::time::{Duration, Instant};

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use common::canisters::*;
use ww::replica::{InstallMode, Replica};

#[derive(CandidType, Deserialize, Clone, Debug)]
struct BuyArgs {
    external: Principal,
    method: String,
    key: String,
    quantity: u64,
    ttl_secs: Option<u64>,
    max_in_flight: Option<u64>,
    capacity: Option<u64>,
    timeout_secs: Option<u32>,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IntentTotals {
    reserved: u64,
    committed: u64,
    pending_count: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct PendingIntent {
    id: u64,
    key: String,
    quantity: u64,
    created_at: u64,
    expires_at: Option<u64>,
}

fn args(external: Principal, method: &str, key: &str) -> BuyArgs {
    BuyArgs { external, method: method.into(), key: key.into(), quantity: 1, ttl_secs: None, max_in_flight: None, capacity: None, timeout_secs: None }
}

async fn intents(r: &Replica) -> Principal {
    install(r, "intents", Encode!(&Option::<()>::None).unwrap()).await
}

/// `buy` as ingress: the canister's own Ok/Err, or the reject's message.
async fn buy(r: &Replica, authority: Principal, a: &BuyArgs) -> Result<(), String> {
    match r.call(admin(), authority, "buy", Encode!(a).unwrap()).await {
        Ok(bytes) => Decode!(&bytes, Result<(), String>).unwrap(),
        Err(reject) => Err(format!("reject: {}", reject.message)),
    }
}

async fn totals(r: &Replica, authority: Principal, key: &str) -> IntentTotals {
    query::<Result<IntentTotals, String>>(r, authority, "totals", Encode!(&key).unwrap()).await.unwrap()
}

async fn pending(r: &Replica, authority: Principal) -> Vec<PendingIntent> {
    query(r, authority, "pending", no_args()).await
}

async fn stats(r: &Replica, external: Principal) -> (u64, u64, u64) {
    query(r, external, "stats", no_args()).await
}

/// Polls until `check` holds (the replica's clock thread works on its own).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_clients_race_on_a_key_with_max_in_flight_one_exactly_one_wins() {
    let r = replica();
    let (authority, external, c1, c2) = (intents(&r).await, intents(&r).await, intents(&r).await, intents(&r).await);
    // The external method holds its reply until the gate opens, so the
    // first reservation stays in flight whatever the scheduling.
    let a = BuyArgs { max_in_flight: Some(1), ..args(external, "hold", "capacity") };
    let call_buy = |client, a: BuyArgs| {
        let r = r.clone();
        tokio::spawn(async move {
            let bytes = r.call(admin(), client, "call_buy", Encode!(&authority, &a).unwrap()).await.unwrap();
            Decode!(&bytes, Result<(), String>).unwrap()
        })
    };
    let (mut one, mut two) = (call_buy(c1, a.clone()), call_buy(c2, a.clone()));
    // The loser fails fast, while the winner's call is still held.
    let (first, winner) = tokio::select! {
        r = &mut one => (r.unwrap(), two),
        r = &mut two => (r.unwrap(), one),
    };
    let refused = first.unwrap_err();
    assert!(refused.contains("intent capacity exceeded key=capacity in_flight=1 requested=1 max_in_flight=1"), "{refused}");
    assert_eq!(totals(&r, authority, "capacity").await, IntentTotals { reserved: 1, committed: 0, pending_count: 1 });
    r.call(admin(), external, "open_gate", no_args()).await.unwrap();
    assert_eq!(winner.await.unwrap(), Ok(()), "the winner's call completes once the callee replies");
    // Afterwards a retry succeeds.
    assert_eq!(call_buy(c2, BuyArgs { method: "perform".into(), ..a }).await.unwrap(), Ok(()));
    assert_eq!(totals(&r, authority, "capacity").await, IntentTotals { reserved: 0, committed: 2, pending_count: 0 });
}

#[tokio::test]
async fn a_hundred_buyers_never_exceed_max_in_flight_and_capacity_commits_exactly() {
    let r = replica();
    let (authority, external) = (intents(&r).await, intents(&r).await);
    let run = |a: BuyArgs| {
        let r = r.clone();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let (r, a) = (r.clone(), a.clone());
                set.spawn(async move { buy(&r, authority, &a).await });
            }
            set.join_all().await
        }
    };
    let outcomes = run(BuyArgs { max_in_flight: Some(10), ..args(external, "perform", "flight") }).await;
    let ok = outcomes.iter().filter(|o| o.is_ok()).count() as u64;
    for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(e.starts_with("intent capacity exceeded key=flight") && e.ends_with("max_in_flight=10"), "{e}");
    }
    let (in_flight, max_seen, performed) = stats(&r, external).await;
    assert!(max_seen <= 10, "the external canister saw {max_seen} performs in flight");
    assert!(ok < 100, "the limit was never reached: every buy succeeded");
    assert_eq!((in_flight, performed), (0, ok));
    assert_eq!(totals(&r, authority, "flight").await, IntentTotals { reserved: 0, committed: ok, pending_count: 0 });

    let outcomes = run(BuyArgs { capacity: Some(25), ..args(external, "perform", "stock") }).await;
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 25, "exactly the capacity commits");
    for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(e.contains("intent capacity exceeded key=stock") && e.ends_with("capacity=25"), "{e}");
    }
    assert_eq!(totals(&r, authority, "stock").await, IntentTotals { reserved: 0, committed: 25, pending_count: 0 });
    assert_eq!(stats(&r, external).await.2, ok + 25);
}

#[tokio::test]
async fn a_reject_a_trap_in_the_callback_and_a_timeout_free_the_capacity_at_once() {
    let r = replica();
    let (authority, external) = (intents(&r).await, intents(&r).await);
    let one = |method: &str| BuyArgs { max_in_flight: Some(1), ..args(external, method, "k") };
    // The callee rejects: aborted.
    let refused = buy(&r, authority, &one("refuse")).await.unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    assert_eq!(totals(&r, authority, "k").await, IntentTotals::default());
    // A trap after the call: the cleanup callback aborts, no TTL needed.
    let trapped = r.call(admin(), authority, "buy_then_trap", Encode!(&one("perform")).unwrap()).await.unwrap_err();
    assert!(trapped.message.contains("trapping after the call"), "{}", trapped.message);
    assert_eq!(totals(&r, authority, "k").await, IntentTotals::default());
    assert_eq!(buy(&r, authority, &one("perform")).await, Ok(()), "the capacity is free again");
    // A bounded-wait call whose deadline passes (SYS_UNKNOWN): aborted.
    let waiting = {
        let (r, a) = (r.clone(), BuyArgs { timeout_secs: Some(5), ..one("hold") });
        tokio::spawn(async move { buy(&r, authority, &a).await })
    };
    eventually("the held call is pending", || async { totals(&r, authority, "k").await.pending_count == 1 }).await;
    r.advance_time(Duration::from_secs(6));
    let timed_out = waiting.await.unwrap().unwrap_err();
    assert!(timed_out.contains("SysUnknown"), "{timed_out}");
    assert_eq!(totals(&r, authority, "k").await, IntentTotals { reserved: 0, committed: 1, pending_count: 0 });
    r.call(admin(), external, "open_gate", no_args()).await.unwrap();
}

#[tokio::test]
async fn an_upgrade_mid_flight_keeps_the_records_and_the_ttl_sweep_frees_a_lost_continuation() {
    let r = replica();
    let (authority, external) = (intents(&r).await, intents(&r).await);
    let held = BuyArgs { ttl_secs: Some(30), max_in_flight: Some(1), ..args(external, "hold", "lost") };
    let first = {
        let (r, a) = (r.clone(), held.clone());
        tokio::spawn(async move { buy(&r, authority, &a).await })
    };
    eventually("the reservation is pending", || async { pending(&r, authority).await.len() == 1 }).await;
    let before = pending(&r, authority).await;
    // Upgrade the authority while its call waits: the continuation is lost.
    let m = ww::replica::install::prepare_module(&r, &authority, &wasm("intents")).unwrap();
    r.install(admin(), authority, InstallMode::Upgrade, m, Encode!(&Option::<()>::None).unwrap()).await.unwrap();
    let after = pending(&r, authority).await;
    assert_eq!(after.len(), 1, "the upgrade kept the pending record");
    assert_eq!((after[0].id, after[0].created_at, &after[0].key), (before[0].id, before[0].created_at, &before[0].key));
    assert_eq!(totals(&r, authority, "lost").await, IntentTotals { reserved: 1, committed: 0, pending_count: 1 });
    // It still counts against the limit until it expires.
    let refused = buy(&r, authority, &held).await.unwrap_err();
    assert!(refused.contains("in_flight=1 requested=1 max_in_flight=1"), "{refused}");
    // The callee answers: the lost continuation settles nothing.
    r.call(admin(), external, "open_gate", no_args()).await.unwrap();
    assert!(first.await.unwrap().is_err(), "the lost continuation's caller gets a reject");
    assert_eq!(totals(&r, authority, "lost").await.pending_count, 1);
    // Past its TTL the sweep (re-armed by the upgrade itself: no intent
    // was made since) aborts it, and the capacity is free again.
    r.advance_time(Duration::from_secs(31));
    eventually("the TTL sweep aborted the lost reservation", || async { pending(&r, authority).await.is_empty() }).await;
    assert_eq!(totals(&r, authority, "lost").await, IntentTotals::default());
    // The id counter continued across the upgrade (a call held by a second
    // external canister shows the next id).
    let external2 = intents(&r).await;
    let next = {
        let (r, a) = (r.clone(), BuyArgs { external: external2, ..held.clone() });
        tokio::spawn(async move { buy(&r, authority, &a).await })
    };
    eventually("a new reservation is pending", || async { pending(&r, authority).await.len() == 1 }).await;
    let id = pending(&r, authority).await[0].id;
    assert!(id > before[0].id, "intent ids repeat across the upgrade: {id} after {}", before[0].id);
    r.call(admin(), external2, "open_gate", no_args()).await.unwrap();
    assert_eq!(next.await.unwrap(), Ok(()), "the new call completes once its gate opens");
    assert_eq!(totals(&r, authority, "lost").await, IntentTotals { reserved: 0, committed: 1, pending_count: 0 });
}

#[tokio::test]
async fn invalid_keys_and_memory_id_collisions_fail_clearly() {
    let r = replica();
    let (authority, external) = (intents(&r).await, intents(&r).await);
    let key = |k: String| {
        let r = r.clone();
        async move { query::<Result<(), String>>(&r, authority, "try_key", Encode!(&k).unwrap()).await }
    };
    assert_eq!(key(String::new()).await, Err("an intent key must not be empty".into()));
    assert_eq!(key("x".repeat(65)).await, Err("an intent key is at most 64 bytes, not 65".into()));
    assert_eq!(key("x".repeat(64)).await, Ok(()));
    let zero = BuyArgs { quantity: 0, ..args(external, "perform", "z") };
    assert!(buy(&r, authority, &zero).await.unwrap_err().contains("intent quantity must be at least 1"));
    assert_eq!(stats(&r, external).await.2, 0, "an invalid intent sends nothing");

    // Two claims of one id.
    r.call(admin(), authority, "claim", Encode!(&5u8, &"a").unwrap()).await.unwrap();
    let taken = r.call(admin(), authority, "claim", Encode!(&5u8, &"b").unwrap()).await.unwrap_err();
    assert!(taken.message.contains("stable memory id 5 is already taken by intents-test a"), "{}", taken.message);
    // A canister claiming an intents id at init fails its install.
    #[derive(CandidType)]
    struct InitArg {
        claim: Option<u8>,
    }
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(&r, &id, &wasm("intents")).unwrap();
    let err = r.install(admin(), id, InstallMode::Install, m, Encode!(&Some(InitArg { claim: Some(18) })).unwrap()).await.unwrap_err();
    assert!(err.message.contains("stable memory id 18 (intents-test own structure) is reserved for ww-cdk intents (18-25)"), "{}", err.message);
}
