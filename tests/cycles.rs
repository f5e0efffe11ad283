//! Cycles accounting on a plain ww replica (what `ww serve` runs: a 13-node
//! application subnet charging the IC's fees), seen by a ww-cdk component
//! (the probe canister): the freezing threshold refuses ingress, queries
//! and calls with the IC's errors until the canister is topped up or its
//! threshold lowered; executions and calls are charged as the fee schedule
//! says; a free replica (`--cycles free`) charges nothing.
//! The exact arithmetic for ic-cdk canisters, against the real `pocket-ic`
//! client, is in tests/pocket-ic-16/tests/cycles16.rs.

mod common;

use candid::{CandidType, Encode, Nat, Principal};
use serde_bytes::ByteBuf;
use ww::replica::cycles::CostSchedule;
use ww::replica::{ErrorCode, RejectCode, Replica, ReplicaConfig, SubnetRange};

use common::canisters::*;

#[derive(CandidType)]
struct Settings {
    freezing_threshold: Option<Nat>,
}

#[derive(CandidType)]
struct UpdateSettings {
    canister_id: Principal,
    settings: Settings,
}

async fn set_freezing_threshold(r: &Replica, canister: Principal, secs: u64) {
    let arg = Encode!(&UpdateSettings { canister_id: canister, settings: Settings { freezing_threshold: Some(Nat::from(secs)) } }).unwrap();
    r.call(admin(), Principal::management_canister(), "update_settings", arg).await.expect("update_settings");
}

fn cycles(r: &Replica, canister: &Principal) -> u128 {
    r.status(canister).expect("status").cycles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_canister_refuses_ingress_queries_and_calls_until_it_can_pay() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    let _: () = update(&r, b, "set", Encode!(&1u64).unwrap()).await;

    // A threshold whose idle burn is more than b holds: b is frozen.
    set_freezing_threshold(&r, b, 1 << 60).await;
    let status = r.status(&b).unwrap();
    assert!(status.idle_cycles_burned_per_day > 0, "memory costs cycles");

    // Ingress from a controller: IC0207 with the top-up figure.
    let reject = r.call(admin(), b, "set", Encode!(&2u64).unwrap()).await.expect_err("frozen");
    assert_eq!(reject.error_code, Some(ErrorCode::CanisterOutOfCycles));
    assert_eq!(reject.code, RejectCode::SysTransient);
    let prefix = format!("Canister {b} is out of cycles: please top up the canister with at least ");
    assert!(reject.message.contains(&prefix), "{}", reject.message);
    // From anyone else: no figure.
    let stranger = Principal::self_authenticating(b"stranger");
    let reject = r.call(stranger, b, "set", Encode!(&2u64).unwrap()).await.expect_err("frozen");
    assert!(reject.message.ends_with(&format!("Canister {b} is out of cycles")), "{}", reject.message);

    // Queries: IC0207, frozen.
    let reject = r.query(admin(), b, "get", no_args()).await.expect_err("frozen");
    assert_eq!(reject.error_code, Some(ErrorCode::CanisterOutOfCycles));
    assert!(reject.message.contains("is unable to process query calls because it's frozen"), "{}", reject.message);

    // A call from another canister: SYS_TRANSIENT; b's state is unchanged.
    let outcome: CallOutcome = update(&r, a, "call_method", Encode!(&b, &"set", &ByteBuf::from(Encode!(&3u64).unwrap())).unwrap()).await;
    match outcome {
        CallOutcome::Err(e) => assert_eq!(e.code, RejectCode::SysTransient as u32, "{}", e.message),
        CallOutcome::Ok(_) => panic!("a frozen canister ran a call"),
    }

    // Lowering the threshold unfreezes it (update_settings is not charged).
    set_freezing_threshold(&r, b, 0).await;
    let _: () = update(&r, b, "set", Encode!(&4u64).unwrap()).await;
    let n: u64 = query(&r, b, "get", no_args()).await;
    assert_eq!(n, 4);

    // Frozen again. The ingress filter asks for what the message's
    // induction needs; once that is there, the execution asks for its
    // prepayment (the instruction limit's cost); then it runs.
    set_freezing_threshold(&r, b, 1 << 50).await;
    let figure = |message: &str| -> u128 {
        message.rsplit("at least ").next().and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no figure in {message}"))
    };
    let reject = r.call(admin(), b, "set", Encode!(&5u64).unwrap()).await.expect_err("frozen");
    r.deposit_cycles(b, figure(&reject.message)).unwrap();
    let reject = r.call(admin(), b, "set", Encode!(&5u64).unwrap()).await.expect_err("the execution's prepayment is missing");
    assert_eq!(reject.error_code, Some(ErrorCode::CanisterOutOfCycles));
    assert_eq!(figure(&reject.message), 40_005_000_000, "{}", reject.message);
    // That message's induction was paid; the next one pays its own.
    r.deposit_cycles(b, 40_005_000_000 + r.fees_of(&b).ingress_cost(200)).unwrap();
    let _: () = update(&r, b, "set", Encode!(&5u64).unwrap()).await;
    let n: u64 = query(&r, b, "get", no_args()).await;
    assert_eq!(n, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_and_calls_are_charged_by_the_fee_schedule() {
    let r = replica();
    let fees = r.fees_of(&Principal::management_canister());
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;

    // The canister sees its balance in a query as canister_status reports it.
    let seen: u64 = query(&r, b, "balance", no_args()).await;
    assert_eq!(u128::from(seen), cycles(&r, &b));

    // b executing an update called by a: the base fee plus its instructions
    // (a small update: under 10 M instructions).
    let (a0, b0) = (cycles(&r, &a), cycles(&r, &b));
    let arg = Encode!(&7u64).unwrap();
    let outcome: CallOutcome = update(&r, a, "call_method", Encode!(&b, &"set", &ByteBuf::from(arg.clone())).unwrap()).await;
    let CallOutcome::Ok(reply) = outcome else { panic!("call failed") };
    let b_paid = b0 - cycles(&r, &b);
    assert!(b_paid >= 5_000_000 && b_paid < 15_000_000, "b paid {b_paid}");
    // a paid: the ingress message, its two executions, the call and its
    // request and response bytes; the rest of the reservation came back.
    let a_paid = a0 - cycles(&r, &a);
    let fixed = fees.ingress_cost(0) + 2 * 5_000_000 + fees.call_cost("set".len(), arg.len()) + 1_000 * reply.len() as u128;
    assert!(a_paid > fixed && a_paid < fixed + 200_000_000, "a paid {a_paid}, fixed part {fixed}");
    assert_eq!(fees.cost_call(3, arg.len(), false), 42_102_412_000 + 1_000 * (3 + arg.len() as u128));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_replica_charges_nothing() {
    let mut config = ReplicaConfig::default();
    config.subnets = config.subnets.into_iter().map(|s| SubnetRange { cost_schedule: CostSchedule::Free, ..s }).collect();
    let r = common::canister_replica(config);
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    let (a0, b0) = (cycles(&r, &a), cycles(&r, &b));
    for i in 0..3u64 {
        let outcome: CallOutcome = update(&r, a, "call_method", Encode!(&b, &"set", &ByteBuf::from(Encode!(&i).unwrap())).unwrap()).await;
        assert!(matches!(outcome, CallOutcome::Ok(_)));
    }
    assert_eq!((cycles(&r, &a), cycles(&r, &b)), (a0, b0));
    assert_eq!(r.status(&a).unwrap().idle_cycles_burned_per_day, 0);
    // Attached cycles still move.
    let outcome: CallOutcome =
        update(&r, a, "call_with_cycles", Encode!(&Principal::management_canister(), &"deposit_cycles", &ByteBuf::from(Encode!(&ww::replica::management::CanisterIdRecord { canister_id: b }).unwrap()), &1_000u64).unwrap()).await;
    assert!(matches!(outcome, CallOutcome::Ok(_)), "{outcome:?}");
    assert_eq!((cycles(&r, &a), cycles(&r, &b)), (a0 - 1_000, b0 + 1_000));
}
