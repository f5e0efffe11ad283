//! Canister semantics, each by a real test canister (`guests/canisters/*`)
//! on the replica, without booting a node.

mod common;

use std::time::Duration;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use ww::replica::{ErrorCode, InstallMode, Limits, RejectCode, Replica, ReplicaConfig, Status};

use common::canisters::*;

fn replica_with(limits: Limits) -> Replica {
    common::canister_replica(ReplicaConfig { limits, ..ReplicaConfig::default() })
}

#[tokio::test]
async fn counter_updates_and_queries() {
    let r = replica();
    let id = install(&r, "counter", none_arg()).await;
    for expected in 1..=3u64 {
        assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, expected);
    }
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 3);
    assert_eq!(query::<u64>(&r, id, "get_stable", no_args()).await, 3);
}

#[tokio::test]
async fn trap_rolls_back_heap_and_stable_memory() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    update::<()>(&r, id, "set", Encode!(&7u64).unwrap()).await;
    update::<()>(&r, id, "stable_set", Encode!(&1u64, &11u64).unwrap()).await;
    for method in ["trap_after_mutate", "panic_after_mutate"] {
        let err = r.call(admin(), id, method, Encode!(&42u64).unwrap()).await.unwrap_err();
        assert_eq!(err.code, RejectCode::CanisterError, "{err}");
        assert!(err.message.contains("IC05"), "{err}");
        assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 7, "heap after {method}");
        assert_eq!(query::<Option<u64>>(&r, id, "stable_get", Encode!(&1u64).unwrap()).await, Some(11));
    }
    // It keeps serving, and further state changes stick.
    update::<()>(&r, id, "set", Encode!(&8u64).unwrap()).await;
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 8);
}

#[tokio::test]
async fn trap_discards_queued_calls() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    let err = r.call(admin(), a, "trap_after_call", Encode!(&b).unwrap()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(query::<Vec<String>>(&r, b, "log", no_args()).await.is_empty(), "the call was delivered");
}

#[tokio::test]
async fn trap_in_callback_keeps_state_before_the_await() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    let err = r.call(admin(), a, "call_then_trap_in_callback", Encode!(&b).unwrap()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError, "{err}");
    assert_eq!(query::<u64>(&r, a, "get", no_args()).await, 100);
}

#[tokio::test]
async fn exactly_one_response() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    let err = r.call(admin(), id, "reply_twice", no_args()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("already answered"), "{err}");
    let err = r.call(admin(), id, "no_reply", no_args()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert_eq!(err.error_code, Some(ErrorCode::CanisterDidNotReply), "{err}");
    assert!(err.message.contains("IC0506"));
}

#[tokio::test]
async fn inter_canister_call_and_reply() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    update::<()>(&r, b, "set", Encode!(&99u64).unwrap()).await;
    assert_eq!(update::<u64>(&r, a, "call_get", Encode!(&b).unwrap()).await, 99);
    // A missing method on the callee is a CANISTER_ERROR reject for the caller.
    let out: CallOutcome = update(&r, a, "call_method", Encode!(&b, &"nope", &serde_bytes::ByteBuf::new()).unwrap()).await;
    match out {
        CallOutcome::Err(e) => {
            assert_eq!(e.code, 5, "{e:?}");
            // The IC gives canisters the description, not the IC0536 code.
            assert!(e.message.contains("nope") && !e.message.starts_with("IC0"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bounded_wait_times_out_and_late_reply_is_dropped() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    let arg = Encode!(&2_000_000_000u64).unwrap();
    let pending = r.submit_call(
        admin(),
        a,
        "bounded_call",
        Encode!(&b, &"slow", &serde_bytes::ByteBuf::from(arg), &1u32).unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    r.advance_time(Duration::from_secs(5));
    let bytes = pending.await.unwrap().unwrap();
    match Decode!(&bytes, CallOutcome).unwrap() {
        CallOutcome::Err(e) => assert_eq!(e.code, 6, "{e:?}"),
        other => panic!("expected SYS_UNKNOWN, got {other:?}"),
    }
    // The callee sees the deadline of a bounded-wait call, and 0 otherwise.
    assert_eq!(update::<u64>(&r, b, "deadline", no_args()).await, 0);
    let out: CallOutcome = update(&r, a, "bounded_call", Encode!(&b, &"deadline", &serde_bytes::ByteBuf::from(no_args()), &60u32).unwrap()).await;
    let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
    let deadline = Decode!(&bytes, u64).unwrap();
    let now = query::<u64>(&r, a, "time_now", no_args()).await;
    assert!(deadline > now && deadline <= now + 61_000_000_000, "deadline {deadline}, now {now}");
}

#[tokio::test]
async fn the_501st_outstanding_call_fails_synchronously() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    #[derive(CandidType, Deserialize, Debug)]
    struct Flood {
        queued: u32,
        first_error: Option<CallError>,
    }
    let f: Flood = update(&r, a, "flood", Encode!(&b, &501u32).unwrap()).await;
    assert_eq!(f.queued, 500, "{f:?}");
    let e = f.first_error.expect("a synchronous error");
    assert_eq!(e.code, 2, "{e:?}");
}

#[tokio::test]
async fn requests_between_a_pair_execute_in_send_order() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    update::<()>(&r, a, "send_in_order", Encode!(&b, &50u32).unwrap()).await;
    let log: Vec<String> = query(&r, b, "log", no_args()).await;
    let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(log, expected);
}

#[tokio::test]
async fn query_state_changes_are_discarded() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    update::<()>(&r, id, "set", Encode!(&5u64).unwrap()).await;
    assert_eq!(query::<u64>(&r, id, "query_mutate", no_args()).await, 6);
    assert_eq!(query::<u64>(&r, id, "query_mutate", no_args()).await, 6);
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 5);
}

#[tokio::test]
async fn missing_method_and_wrong_kind() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    let err = r.call(admin(), id, "does_not_exist", no_args()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert_eq!(err.error_code, Some(ErrorCode::CanisterMethodNotFound));
    let err = r.query(admin(), id, "set", Encode!(&1u64).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterMethodNotFound), "{err}");
    // Bad Candid is a clean reject, and the canister keeps serving.
    let err = r.call(admin(), id, "set", b"not candid".to_vec()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("decode"), "{err}");
    update::<()>(&r, id, "set", Encode!(&1u64).unwrap()).await;
}

#[tokio::test]
async fn only_controllers_install() {
    let r = replica();
    let id = r.create_canister(vec![admin()]);
    let wasm = std::fs::read(common::guest("counter")).unwrap();
    let m = ww::replica::install::prepare_module(&r, &id, &wasm).unwrap();
    let stranger = Principal::anonymous();
    let err = r.install(stranger, id, InstallMode::Install, m, none_arg()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController), "{err}");
    assert!(r.status(&id).unwrap().module_hash.is_none());
}

#[tokio::test]
async fn upgrade_keeps_stable_memory_and_a_failed_upgrade_keeps_the_old_version() {
    let r = replica();
    let id = install(&r, "counter", none_arg()).await;
    for _ in 0..5 {
        update::<u64>(&r, id, "inc", no_args()).await;
    }
    let wasm = std::fs::read(common::guest("counter")).unwrap();
    let m = ww::replica::install::prepare_module(&r, &id, &wasm).unwrap();
    r.install(admin(), id, InstallMode::Upgrade, m, none_arg()).await.unwrap();
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 5);
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 6);

    #[derive(CandidType, Deserialize)]
    struct ProbeInit {
        trap_in_post_upgrade: Option<bool>,
    }
    let p = install(&r, "probe", none_arg()).await;
    update::<()>(&r, p, "set", Encode!(&31u64).unwrap()).await;
    update::<()>(&r, p, "stable_set", Encode!(&9u64, &90u64).unwrap()).await;
    let wasm = std::fs::read(common::guest("probe")).unwrap();
    let m = ww::replica::install::prepare_module(&r, &p, &wasm).unwrap();
    let arg = Encode!(&Some(ProbeInit { trap_in_post_upgrade: Some(true) })).unwrap();
    let err = r.install(admin(), p, InstallMode::Upgrade, m, arg).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError, "{err}");
    assert!(err.message.contains("post_upgrade"), "{err}");
    // The old version runs on, heap and stable memory as they were.
    assert_eq!(query::<u64>(&r, p, "get", no_args()).await, 31);
    assert_eq!(query::<Option<u64>>(&r, p, "stable_get", Encode!(&9u64).unwrap()).await, Some(90));
    assert_eq!(query::<Option<u64>>(&r, p, "stable_get", Encode!(&0u64).unwrap()).await, None, "pre_upgrade's write was undone");
}

#[tokio::test]
async fn instruction_payload_and_heap_limits() {
    let limits = Limits {
        instructions_per_update: 50_000_000,
        wasm_memory_limit: 64 << 20,
        ..Limits::default()
    };
    let r = replica_with(limits);
    let id = install(&r, "probe", none_arg()).await;
    let err = r.call(admin(), id, "slow", Encode!(&1_000_000_000u64).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInstructionLimitExceeded), "{err}");
    let err = r.call(admin(), id, "big_reply", Encode!(&(3u32 << 20)).unwrap()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("payload"), "{err}");
    let err = r.call(admin(), id, "grow_heap", Encode!(&100u32).unwrap()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError, "{err}");
    let too_big = vec![0u8; (2 << 20) + 1];
    let err = r.call(admin(), id, "set", too_big).await.unwrap_err();
    // Refused before any execution (IC0406, CANISTER_REJECT).
    assert_eq!(err.error_code, Some(ErrorCode::CanisterRejectedMessage), "{err}");
    assert_eq!(err.code, RejectCode::CanisterReject, "{err}");
    // The node is unharmed.
    update::<()>(&r, id, "set", Encode!(&3u64).unwrap()).await;
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 3);
}

#[tokio::test]
async fn stop_start_delete() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    let err = r.delete(admin(), id).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNotStopped));
    r.stop(admin(), id).await.unwrap();
    assert_eq!(r.status(&id).unwrap().status, Status::Stopped);
    let err = r.call(admin(), id, "set", Encode!(&1u64).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterStopped), "{err}");
    r.start(admin(), id).unwrap();
    update::<()>(&r, id, "set", Encode!(&1u64).unwrap()).await;
    assert!(r.stop(Principal::anonymous(), id).await.is_err(), "only controllers stop");
    r.stop(admin(), id).await.unwrap();
    r.delete(admin(), id).unwrap();
    let err = r.call(admin(), id, "get", no_args()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::DestinationInvalid);
}

#[tokio::test]
async fn timers_fire_when_time_is_advanced() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    update::<()>(&r, id, "set_timer_in", Encode!(&60_000_000_000u64).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(query::<u64>(&r, id, "timer_fired", no_args()).await, 0);
    let before = query::<u64>(&r, id, "time_now", no_args()).await;
    r.advance_time(Duration::from_secs(61));
    let mut fired = 0;
    for _ in 0..100 {
        fired = query::<u64>(&r, id, "timer_fired", no_args()).await;
        if fired > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fired, 1);
    let after = query::<u64>(&r, id, "time_now", no_args()).await;
    assert!(after >= before + 60_000_000_000, "time is monotonic and advanced");
}

/// On the IC the global timer is deactivated when it fires, before the
/// timer entry point runs, so a trap there leaves it deactivated: the next
/// `set_global_timer` returns 0, not the old deadline (ww-cdk keeps its
/// deadlines in linear memory, which the trap rolls back).
#[tokio::test]
async fn a_timer_that_traps_is_spent_as_on_the_ic() {
    let r = replica();
    let id = install(&r, "probe", none_arg()).await;
    update::<()>(&r, id, "arm_trapping_timer", Encode!(&60_000_000_000u64).unwrap()).await;
    r.advance_time(Duration::from_secs(61));
    let trapped = |r: &Replica| {
        r.fetch_logs(&id, &admin())
            .unwrap()
            .canister_log_records
            .iter()
            .any(|l| String::from_utf8_lossy(&l.content).contains("the timer traps as asked"))
    };
    for _ in 0..200 {
        if trapped(&r) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(trapped(&r), "the timer ran and trapped");
    assert_eq!(query::<u64>(&r, id, "timer_fired", no_args()).await, 0, "the trap rolled its count back");
    assert_eq!(update::<u64>(&r, id, "set_global_timer", Encode!(&0u64).unwrap()).await, 0, "the timer is spent");
    // A timer set again fires again (and its previous value is reported).
    let at = r.time() + 3_600_000_000_000;
    assert_eq!(update::<u64>(&r, id, "set_global_timer", Encode!(&at).unwrap()).await, 0);
    assert_eq!(update::<u64>(&r, id, "set_global_timer", Encode!(&at).unwrap()).await, at);
}

#[tokio::test]
async fn management_canister_with_candid() {
    use ww::replica::management::{CanisterIdRecord, CanisterInstallMode, InstallCodeArgs, ProvisionalCreateCanisterArgs};
    let r = replica();
    let mgmt = Principal::management_canister();
    let create = Encode!(&ProvisionalCreateCanisterArgs::default()).unwrap();
    let bytes = r.call(admin(), mgmt, "provisional_create_canister_with_cycles", create).await.unwrap();
    let id = Decode!(&bytes, CanisterIdRecord).unwrap().canister_id;
    assert_eq!(id.to_text(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
    let wasm = std::fs::read(common::guest("counter")).unwrap();
    let args = InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: id,
        wasm_module: wasm,
        arg: none_arg(),
        sender_canister_version: None,
    };
    r.call(admin(), mgmt, "install_code", Encode!(&args).unwrap()).await.unwrap();
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 1);
    let err = r.call(admin(), mgmt, "install_code", b"garbage".to_vec()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::InvalidManagementPayload), "{err}");
}

#[tokio::test]
async fn one_execution_per_canister_and_canisters_in_parallel() {
    let r = replica();
    let a = install(&r, "probe", none_arg()).await;
    let b = install(&r, "probe", none_arg()).await;
    // Several slow calls to each canister at once.
    let arg = Encode!(&200_000_000u64).unwrap();
    let pending: Vec<_> = (0..4)
        .flat_map(|_| [r.submit_call(admin(), a, "slow", arg.clone()), r.submit_call(admin(), b, "slow", arg.clone())])
        .collect();
    for p in pending {
        p.await.unwrap().unwrap();
    }
    assert_eq!(r.overlapping_executions(), 0, "two executions overlapped on one canister");
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        assert!(r.max_parallel_executions() >= 2, "canisters never ran in parallel");
    }
}

fn stranger() -> Principal {
    Principal::self_authenticating(b"ww-test-stranger")
}

async fn mgmt_status(r: &Replica, caller: Principal, id: Principal) -> Result<ww::replica::management::CanisterStatusResult, ww::replica::Reject> {
    use ww::replica::management::{CanisterIdRecord, CanisterStatusResult};
    let bytes = r
        .call(caller, Principal::management_canister(), "canister_status", Encode!(&CanisterIdRecord { canister_id: id }).unwrap())
        .await?;
    Ok(Decode!(&bytes, CanisterStatusResult).unwrap())
}

fn settings_args(id: Principal, controllers: Option<Vec<Principal>>) -> Vec<u8> {
    use ww::replica::management::{CanisterSettings, UpdateSettingsArgs};
    Encode!(&UpdateSettingsArgs {
        canister_id: id,
        settings: CanisterSettings { controllers, ..CanisterSettings::default() },
        sender_canister_version: None,
    })
    .unwrap()
}

#[tokio::test]
async fn update_settings_replaces_controllers_and_only_controllers_may() {
    let r = replica();
    let mgmt = Principal::management_canister();
    let id = install(&r, "counter", none_arg()).await;

    // A non-controller can neither change the settings nor read the status.
    let err = r.call(stranger(), mgmt, "update_settings", settings_args(id, Some(vec![stranger()]))).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController), "{err}");
    let err = mgmt_status(&r, stranger(), id).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController), "{err}");

    // More than 10 controllers is refused; nothing changes.
    let many: Vec<Principal> = (0..11u8).map(|i| Principal::self_authenticating([i])).collect();
    let err = r.call(admin(), mgmt, "update_settings", settings_args(id, Some(many))).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::InvalidManagementPayload), "{err}");
    assert_eq!(mgmt_status(&r, admin(), id).await.unwrap().settings.controllers, vec![admin()]);

    // Settings without controllers change nothing (and need a controller).
    r.call(admin(), mgmt, "update_settings", settings_args(id, None)).await.unwrap();
    assert_eq!(mgmt_status(&r, admin(), id).await.unwrap().settings.controllers, vec![admin()]);

    // Handing the canister over: the new controller may stop it, the old one no longer.
    r.call(admin(), mgmt, "update_settings", settings_args(id, Some(vec![stranger()]))).await.unwrap();
    assert_eq!(mgmt_status(&r, stranger(), id).await.unwrap().settings.controllers, vec![stranger()]);
    assert!(mgmt_status(&r, admin(), id).await.is_err(), "the old controller lost access");
    assert!(r.stop(admin(), id).await.is_err());
    r.stop(stranger(), id).await.expect("the new controller stops it");
}

#[tokio::test]
async fn deposit_cycles_moves_the_attached_cycles() {
    use ww::replica::management::CanisterIdRecord;
    // Free: the balances move by the attached cycles alone.
    let r = free_replica();
    let mgmt = Principal::management_canister();
    let payer = install(&r, "probe", none_arg()).await;
    let payee = install(&r, "counter", none_arg()).await;
    let start_payer = query::<u64>(&r, payer, "balance", no_args()).await;
    let start_payee = mgmt_status(&r, admin(), payee).await.unwrap().cycles;

    // The host can top a canister up (what a faucet would do).
    r.deposit_cycles(payer, 1_000_000).unwrap();
    assert_eq!(query::<u64>(&r, payer, "balance", no_args()).await, start_payer + 1_000_000);

    // The payer attaches 400k cycles to deposit_cycles(payee): they move.
    let arg = Encode!(&CanisterIdRecord { canister_id: payee }).unwrap();
    let call = Encode!(&mgmt, &"deposit_cycles", &serde_bytes::ByteBuf::from(arg), &400_000u64).unwrap();
    let outcome: CallOutcome = update(&r, payer, "call_with_cycles", call).await;
    assert!(matches!(outcome, CallOutcome::Ok(_)), "{outcome:?}");
    assert_eq!(query::<u64>(&r, payer, "balance", no_args()).await, start_payer + 600_000);
    assert_eq!(mgmt_status(&r, admin(), payee).await.unwrap().cycles, start_payee + candid::Nat::from(400_000u64));

    // To a canister that does not exist: rejected, and the cycles come back.
    let missing = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0x77, 0x77, 1, 1]);
    let arg = Encode!(&CanisterIdRecord { canister_id: missing }).unwrap();
    let call = Encode!(&mgmt, &"deposit_cycles", &serde_bytes::ByteBuf::from(arg), &100_000u64).unwrap();
    let outcome: CallOutcome = update(&r, payer, "call_with_cycles", call).await;
    let CallOutcome::Err(e) = outcome else { panic!("deposit to a missing canister succeeded") };
    assert!(e.message.contains("not found"), "{e:?}");
    assert_eq!(query::<u64>(&r, payer, "balance", no_args()).await, start_payer + 600_000, "refunded");

    // A canister that does not accept them: all come back with the reply.
    let other = install(&r, "probe", none_arg()).await;
    let start_other = query::<u64>(&r, other, "balance", no_args()).await;
    let call = Encode!(&other, &"pong", &serde_bytes::ByteBuf::from(no_args()), &250_000u64).unwrap();
    let outcome: CallOutcome = update(&r, payer, "call_with_cycles", call).await;
    assert!(matches!(outcome, CallOutcome::Ok(_)), "{outcome:?}");
    assert_eq!(query::<u64>(&r, payer, "balance", no_args()).await, start_payer + 600_000, "unaccepted cycles are refunded");
    assert_eq!(query::<u64>(&r, other, "balance", no_args()).await, start_other);
}
