//! The replica in deterministic rounds (`Clock::Rounds`, what the PocketIC
//! front end runs): ingress waits for a round; time moves as PocketIC moves
//! it (a round runs at the time set, or 1 ns after the last round if it was
//! not set since; queries see the time of the last round); a canister's call
//! to the management canister runs in the next round and its response in
//! the one after; timers fire in rounds, and a canister that keeps calling
//! itself cannot keep a round from ending. With unmodified ic-cdk canisters
//! (`guests/ic-cdk/cdk_counter`, `cdk_caller`).

mod common;

use std::time::Duration;

use candid::{Decode, Encode, Principal};
use common::canisters::{admin, no_args};
use ww::replica::{Clock, ClockError, InstallMode, Replica, ReplicaConfig, RoundReport};

const START: u64 = 1_620_328_630_000_000_000;

fn rounds_replica() -> Replica {
    common::canister_replica(ReplicaConfig { clock: Clock::Rounds { start_ns: START }, ..ReplicaConfig::default() })
}

async fn round(r: &Replica) -> RoundReport {
    let r = r.clone();
    tokio::task::spawn_blocking(move || r.execute_round()).await.expect("round thread").expect("rounds mode")
}

/// Installs cdk_counter; the install itself waits for a round.
async fn counter(r: &Replica) -> Principal {
    install_cdk(r, "cdk_counter", Encode!(&Option::<()>::None).unwrap()).await
}

/// Installs ic-cdk canister `name` with `arg`, running rounds until done.
async fn install_cdk(r: &Replica, name: &str, arg: Vec<u8>) -> Principal {
    let p = common::repo().join(format!("guests/target/wasm32-unknown-unknown/release/{name}.wasm"));
    let wasm = std::fs::read(&p).unwrap_or_else(|e| panic!("{} is missing ({e}): run `make test`", p.display()));
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &wasm).expect("prepare");
    let install = {
        let r = r.clone();
        tokio::spawn(async move { r.install(admin(), id, InstallMode::Install, m, arg).await })
    };
    // The spawned install queues itself when it first runs: round until done.
    while !install.is_finished() {
        round(r).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    install.await.expect("install task").expect("install");
    id
}

async fn get(r: &Replica, id: Principal, method: &str) -> u64 {
    let bytes = r.query(admin(), id, method, no_args()).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    Decode!(&bytes, u64).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_waits_for_the_next_round_and_queries_do_not() {
    let r = rounds_replica();
    let id = counter(&r).await;
    let mut first = r.submit_ingress(admin(), id, "inc", no_args()).await.expect("admitted");
    let second = r.submit_ingress(admin(), id, "inc", no_args()).await.expect("admitted");
    assert_eq!(r.held_ingress(), 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(first.try_recv().is_err(), "an update ran before any round");
    assert_eq!(get(&r, id, "get").await, 0, "a query runs at once, on the committed state");
    let report = round(&r).await;
    assert_eq!(r.held_ingress(), 0);
    assert!(report.jobs >= 2, "the round ran both messages: {report:?}");
    assert_eq!(Decode!(&first.await.unwrap().unwrap(), u64).unwrap(), 1);
    assert_eq!(Decode!(&second.await.unwrap().unwrap(), u64).unwrap(), 2, "in submission order");
    // Refused at submission by the canister's inspect_message (nothing held).
    let refused = r.submit_ingress(admin(), id, "refused_by_inspect", no_args()).await.expect_err("inspect refuses it");
    assert_eq!(refused.error_code, Some(ww::replica::ErrorCode::CanisterRejectedMessage));
    assert_eq!(r.held_ingress(), 0);
    // Refused at submission: no module method of that name.
    let refused = r.submit_ingress(admin(), id, "no_such_method", no_args()).await.expect_err("refused");
    assert_eq!(refused.error_code, Some(ww::replica::ErrorCode::CanisterMethodNotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_moves_only_when_set_and_one_nanosecond_per_round() {
    let r = rounds_replica();
    assert_eq!(r.time(), START);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(r.time(), START, "the wall clock does not move a rounds replica");
    round(&r).await;
    assert_eq!(r.time(), START + 1, "time had not moved since the last round (the start): 1 ns later");
    assert_eq!(r.set_time(START), Err(ClockError::TimeIntoPast { current: START + 1, requested: START }));
    r.set_time(START + 5_000).unwrap();
    r.advance_time(Duration::from_nanos(10));
    assert_eq!(r.time(), START + 5_010);
    round(&r).await;
    assert_eq!(r.time(), START + 5_010, "a round after set_time runs at exactly that time");
    round(&r).await;
    assert_eq!(r.time(), START + 5_011);
    r.set_time(START + 5_011).expect("setting the current time is no change");
    round(&r).await;
    assert_eq!(r.time(), START + 5_012, "setting the current time did not move it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_the_time_of_the_last_round() {
    let r = rounds_replica();
    let id = counter(&r).await;
    let last = r.time();
    assert_eq!(get(&r, id, "time_now").await, last);
    r.set_time(last + 1_000_000).unwrap();
    assert_eq!(r.time(), last + 1_000_000, "the replica's time shows set_time at once");
    assert_eq!(get(&r, id, "time_now").await, last, "a query still sees the last round");
    round(&r).await;
    assert_eq!(get(&r, id, "time_now").await, last + 1_000_000, "the round ran at exactly the time set");
    r.set_certified_time(last + 2_000_000).unwrap();
    assert_eq!(get(&r, id, "time_now").await, last + 2_000_000, "a certified time is seen without a round");
    round(&r).await;
    assert_eq!(get(&r, id, "time_now").await, last + 2_000_001);
    assert_eq!(
        r.set_certified_time(last),
        Err(ClockError::TimeIntoPast { current: last + 2_000_001, requested: last })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canister_s_management_call_runs_in_the_next_round_and_its_response_in_the_one_after() {
    let r = rounds_replica();
    let caller = install_cdk(&r, "cdk_caller", Encode!().unwrap()).await;
    let mut rand = r.submit_ingress(admin(), caller, "rand", no_args()).await.expect("admitted");
    let first = round(&r).await;
    assert!(rand.try_recv().is_err(), "round 1 ran the method; raw_rand waits for round 2");
    assert_eq!(first.carried, 1, "the request is carried to the next round: {first:?}");
    let second = round(&r).await;
    assert!(rand.try_recv().is_err(), "round 2 ran raw_rand; its response waits for round 3");
    assert_eq!(second.carried, 1, "the response is carried to the next round: {second:?}");
    let third = round(&r).await;
    assert_eq!(third.carried, 0, "{third:?}");
    let bytes = rand.await.expect("answered").expect("rand");
    assert_eq!(Decode!(&bytes, Vec<u8>).unwrap().len(), 32, "round 3 ran the callback, which replied");
    // Calls between canisters need no round boundary: they run within one.
    let counter = counter(&r).await;
    let call = r.submit_ingress(admin(), caller, "call_inc", Encode!(&counter).unwrap()).await.expect("admitted");
    round(&r).await;
    let reply = call.await.expect("answered in one round").expect("call_inc");
    assert_eq!(Decode!(&reply, Result<u64, String>).unwrap(), Ok(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_in_the_first_round_after_they_are_due() {
    let r = rounds_replica();
    let id = counter(&r).await;
    let schedule = r.submit_ingress(admin(), id, "schedule", Encode!(&5u64).unwrap()).await.unwrap();
    round(&r).await;
    schedule.await.unwrap().expect("schedule");
    r.advance_time(Duration::from_secs(4));
    round(&r).await;
    assert_eq!(get(&r, id, "timer_fired").await, 0, "not due yet");
    r.advance_time(Duration::from_secs(2));
    assert_eq!(get(&r, id, "timer_fired").await, 0, "due, but no round has run");
    round(&r).await;
    assert_eq!(get(&r, id, "timer_fired").await, 1, "ic-cdk-timers' global timer and its self-call ran in one round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canister_calling_itself_forever_does_not_stall_rounds() {
    let r = rounds_replica();
    let id = counter(&r).await;
    let mut slow = r.submit_ingress(admin(), id, "slow", no_args()).await.unwrap();
    let report = round(&r).await;
    assert!(report.deferred > 0, "the self-call loop outlived the round's budget: {report:?}");
    assert!(slow.try_recv().is_err(), "slow returns only after release");
    let release = r.submit_ingress(admin(), id, "release", no_args()).await.unwrap();
    let mut rounds = 0;
    loop {
        round(&r).await;
        rounds += 1;
        if let Ok(result) = slow.try_recv() {
            assert_eq!(Decode!(&result.unwrap(), u64).unwrap(), 1);
            break;
        }
        assert!(rounds < 5, "slow did not finish within 5 rounds of release");
    }
    release.await.unwrap().expect("release");
    assert_eq!(r.open_calls(), (0, 0), "nothing leaks");
}
