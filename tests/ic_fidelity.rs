//! The replica held to the IC interface specification where a canister
//! developer first noticed it differed (issue 8): upgrades that save state in
//! pre_upgrade, query methods called as updates, replies after a bounded-wait
//! deadline, the canister version, `uninstall_code`, and the system API and
//! management canister details of the sweep that followed. Each test uses
//! real canisters (`guests/canisters/keeper`, written the way IC canisters
//! usually are, and `probe`) on a replica without a node.

mod common;

use std::time::{Duration, Instant};

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use serde_bytes::ByteBuf;
use ww::replica::management::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusResult, InstallCodeArgs,
    ProvisionalCreateCanisterArgs, UninstallCodeArgs, UpdateSettingsArgs, UpgradeFlags, WasmMemoryPersistence,
};
use ww::replica::{ErrorCode, InstallMode, RejectCode, Replica};

use common::canisters::*;

async fn upgrade(r: &Replica, id: Principal, name: &str, arg: Vec<u8>) {
    let m = ww::replica::install::prepare_module(r, &id, &wasm(name)).expect("prepare");
    r.install(admin(), id, InstallMode::Upgrade, m, arg).await.expect("upgrade");
}

fn probe_init() -> Vec<u8> {
    none_arg()
}

async fn mgmt(r: &Replica, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, ww::replica::Reject> {
    r.call(admin(), Principal::management_canister(), method, arg).await
}

async fn status(r: &Replica, id: Principal) -> CanisterStatusResult {
    let bytes = mgmt(r, "canister_status", Encode!(&CanisterIdRecord { canister_id: id }).unwrap()).await.expect("canister_status");
    Decode!(&bytes, CanisterStatusResult).unwrap()
}

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
struct Versions {
    pre_upgrade: u64,
    post_upgrade: u64,
}

/// Polls `probe`'s log until it holds `entry` (a replica executes on its
/// own threads; this waits for an effect, it measures nothing).
async fn wait_for_log(r: &Replica, probe: Principal, entry: &str) {
    let started = Instant::now();
    loop {
        let log: Vec<String> = query(r, probe, "log", no_args()).await;
        if log.iter().any(|l| l == entry) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{probe} never logged {entry:?}; log: {log:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- 1. pre_upgrade's stable memory writes are part of the upgrade ---------

#[tokio::test]
async fn state_saved_in_pre_upgrade_is_restored_in_post_upgrade() {
    let r = replica();
    let id = install(&r, "keeper", no_args()).await;
    for _ in 0..3 {
        update::<u64>(&r, id, "inc", no_args()).await;
    }
    upgrade(&r, id, "keeper", no_args()).await;
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 3, "the counter pre_upgrade saved");
    assert_eq!(query::<u64>(&r, id, "upgrades", no_args()).await, 1);
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 4);
    upgrade(&r, id, "keeper", no_args()).await;
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 4);
    assert_eq!(query::<u64>(&r, id, "upgrades", no_args()).await, 2);
}

#[tokio::test]
async fn skip_pre_upgrade_restores_what_the_last_pre_upgrade_saved() {
    let r = replica();
    let id = install(&r, "keeper", no_args()).await;
    update::<u64>(&r, id, "inc", no_args()).await;
    upgrade(&r, id, "keeper", no_args()).await; // saves 1
    update::<u64>(&r, id, "inc", no_args()).await; // 2, on the heap only
    let args = InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(Some(UpgradeFlags { skip_pre_upgrade: Some(true), wasm_memory_persistence: None })),
        canister_id: id,
        wasm_module: wasm("keeper"),
        arg: no_args(),
        sender_canister_version: None,
    };
    mgmt(&r, "install_code", Encode!(&args).unwrap()).await.expect("upgrade skipping pre_upgrade");
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 1, "pre_upgrade did not run");
    assert_eq!(query::<u64>(&r, id, "upgrades", no_args()).await, 1);
    // Keeping the heap is for modules built for it (Motoko's enhanced
    // orthogonal persistence): refused, and nothing changes.
    let args = InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(Some(UpgradeFlags {
            skip_pre_upgrade: None,
            wasm_memory_persistence: Some(WasmMemoryPersistence::Keep),
        })),
        ..args
    };
    let err = mgmt(&r, "install_code", Encode!(&args).unwrap()).await.unwrap_err();
    assert!(err.message.contains("wasm_memory_persistence"), "{err}");
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 1);
}

// ---- 2. a query method keeps nothing, however it is called ----------------

#[tokio::test]
async fn a_query_method_called_as_an_update_keeps_no_state() {
    let r = replica();
    let keeper = install(&r, "keeper", no_args()).await;
    let probe = install(&r, "probe", probe_init()).await;
    update::<u64>(&r, keeper, "inc", no_args()).await;
    // As an ingress update call: the reply is kept, the state is not.
    assert_eq!(update::<u64>(&r, keeper, "bump_in_query", no_args()).await, 2);
    assert_eq!(update::<u64>(&r, keeper, "bump_in_query", no_args()).await, 2);
    // From another canister (always an update call).
    let out: CallOutcome = update(&r, probe, "call_method", Encode!(&keeper, &"bump_in_query", &ByteBuf::from(no_args())).unwrap()).await;
    let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
    assert_eq!(Decode!(&bytes, u64).unwrap(), 2);
    assert_eq!(query::<u64>(&r, keeper, "get", no_args()).await, 1, "heap unchanged");
    assert_eq!(query::<u64>(&r, keeper, "stable_word", no_args()).await, 0, "stable memory unchanged");
}

// ---- 3. a reply after the caller's deadline commits, and is dropped --------

#[tokio::test]
async fn the_callee_replies_after_the_deadline_and_its_execution_commits() {
    let r = replica();
    let a = install(&r, "probe", probe_init()).await;
    let b = install(&r, "probe", probe_init()).await;
    let gate = install(&r, "probe", probe_init()).await;
    // a --bounded(1 s)--> b.record_after_gate --> gate.wait_gate (held).
    let arg = Encode!(&gate).unwrap();
    let pending = r.submit_call(admin(), a, "bounded_call", Encode!(&b, &"record_after_gate", &ByteBuf::from(arg), &1u32).unwrap());
    wait_for_log(&r, gate, "waiting").await;
    r.advance_time(Duration::from_secs(5));
    let outcome = Decode!(&pending.await.unwrap().unwrap(), CallOutcome).unwrap();
    match outcome {
        CallOutcome::Err(e) => assert_eq!(e.code, RejectCode::SysUnknown as u32, "{e:?}"),
        other => panic!("expected SYS_UNKNOWN, got {other:?}"),
    }
    // Now b's callback runs: it logs and replies; the reply succeeds (no
    // trap, so the log entry stays) and is dropped on its way to a.
    update::<()>(&r, gate, "open_gate", no_args()).await;
    wait_for_log(&r, b, "after gate").await;
    // a got exactly one response and keeps working.
    assert_eq!(update::<u64>(&r, a, "deadline", no_args()).await, 0);
}

// ---- 4. the canister version ------------------------------------------------

#[tokio::test]
async fn canister_version_counts_executions_and_changes() {
    let r = replica();
    let id = install(&r, "keeper", no_args()).await;
    let v0 = query::<u64>(&r, id, "version", no_args()).await;
    assert_eq!(v0, 1, "created at 0, installed once");
    // Each update sees the version before it, and increments it.
    assert_eq!(update::<u64>(&r, id, "version_in_update", no_args()).await, v0);
    assert_eq!(update::<u64>(&r, id, "version_in_update", no_args()).await, v0 + 1);
    // A query call does not; a query method called as an update does.
    assert_eq!(query::<u64>(&r, id, "version", no_args()).await, v0 + 2);
    assert_eq!(query::<u64>(&r, id, "version", no_args()).await, v0 + 2);
    assert_eq!(update::<u64>(&r, id, "version", no_args()).await, v0 + 2);
    assert_eq!(query::<u64>(&r, id, "version", no_args()).await, v0 + 3);
    // pre_upgrade sees the old version, post_upgrade the new one.
    upgrade(&r, id, "keeper", no_args()).await;
    let seen: Versions = query(&r, id, "upgrade_versions", no_args()).await;
    assert_eq!(seen, Versions { pre_upgrade: v0 + 3, post_upgrade: v0 + 4 });
    // Settings changes, stop (running -> stopping, stopping -> stopped) and
    // start count too; canister_status reports the same number.
    let settings = UpdateSettingsArgs { canister_id: id, settings: CanisterSettings::default(), sender_canister_version: None };
    mgmt(&r, "update_settings", Encode!(&settings).unwrap()).await.unwrap();
    assert_eq!(status(&r, id).await.version, v0 + 5);
    r.stop(admin(), id).await.unwrap();
    assert_eq!(status(&r, id).await.version, v0 + 7);
    r.start(admin(), id).unwrap();
    assert_eq!(status(&r, id).await.version, v0 + 8);
    assert_eq!(query::<u64>(&r, id, "version", no_args()).await, v0 + 8);
    // A trapped execution does not count.
    let probe = install(&r, "probe", probe_init()).await;
    let before = query::<u64>(&r, probe, "version", no_args()).await;
    assert!(r.call(admin(), probe, "trap_after_mutate", Encode!(&1u64).unwrap()).await.is_err());
    assert_eq!(query::<u64>(&r, probe, "version", no_args()).await, before);
}

#[tokio::test]
async fn sender_canister_version_must_be_the_callers_version() {
    let r = replica();
    let probe = install(&r, "probe", probe_init()).await;
    let target = r.create_canister(vec![probe]);
    let settings = |version| {
        let args = UpdateSettingsArgs { canister_id: target, settings: CanisterSettings::default(), sender_canister_version: Some(version) };
        Encode!(&Principal::management_canister(), &"update_settings", &ByteBuf::from(Encode!(&args).unwrap())).unwrap()
    };
    // The probe's version in the execution that calls is the one a query
    // sees just before (queries do not change it).
    let v = query::<u64>(&r, probe, "version", no_args()).await;
    let out: CallOutcome = update(&r, probe, "call_method", settings(v + 5)).await;
    let CallOutcome::Err(e) = out else { panic!("a wrong sender_canister_version was accepted: {out:?}") };
    // The canister gets IC0504's description (the code is for users).
    assert!(!e.message.starts_with("IC0") && e.message.contains("sender_canister_version"), "{e:?}");
    let v = query::<u64>(&r, probe, "version", no_args()).await;
    let out: CallOutcome = update(&r, probe, "call_method", settings(v)).await;
    assert!(matches!(out, CallOutcome::Ok(_)), "{out:?}");
}

// ---- 5. uninstall_code ------------------------------------------------------

#[tokio::test]
async fn uninstall_code_rejects_open_calls_and_empties_the_canister() {
    // Free: canister_status ingress costs the canister nothing here, so
    // balances move only as the test moves them.
    let r = free_replica();
    let a = install(&r, "probe", probe_init()).await;
    let b = install(&r, "probe", probe_init()).await;
    let gate = install(&r, "probe", probe_init()).await;
    update::<()>(&r, b, "set", Encode!(&7u64).unwrap()).await;
    update::<()>(&r, b, "stable_set", Encode!(&3u64, &30u64).unwrap()).await;
    // a --> b.record_after_gate --> gate.wait_gate (held): b has an open
    // call context from a, and an outstanding call of its own.
    let pending = r.submit_call(
        admin(),
        a,
        "call_method",
        Encode!(&b, &"record_after_gate", &ByteBuf::from(Encode!(&gate).unwrap())).unwrap(),
    );
    wait_for_log(&r, gate, "waiting").await;
    let before = status(&r, b).await;

    // Only controllers may uninstall.
    let arg = Encode!(&UninstallCodeArgs { canister_id: b, sender_canister_version: None }).unwrap();
    let err = r.call(Principal::anonymous(), Principal::management_canister(), "uninstall_code", arg.clone()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController), "{err}");
    mgmt(&r, "uninstall_code", arg).await.expect("uninstall_code");

    // a's call was rejected (CANISTER_REJECT), not left hanging.
    match Decode!(&pending.await.unwrap().unwrap(), CallOutcome).unwrap() {
        CallOutcome::Err(e) => {
            assert_eq!(e.code, RejectCode::CanisterReject as u32, "{e:?}");
            assert!(e.message.contains("uninstalled"), "{e:?}");
        }
        other => panic!("expected a reject, got {other:?}"),
    }
    // b is empty: no module, calls get IC0537; cycles, controllers stay;
    // the version counts the uninstall.
    let after = status(&r, b).await;
    assert!(after.module_hash.is_none());
    assert_eq!(after.cycles, before.cycles);
    assert_eq!(after.settings.controllers, before.settings.controllers);
    assert_eq!(after.version, before.version + 1);
    let err = r.call(admin(), b, "get", no_args()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterWasmModuleNotFound), "{err}");
    // The response to b's outstanding call arrives later: no callback runs
    // (nothing traps, nothing is logged), and b can be stopped at once.
    update::<()>(&r, gate, "open_gate", no_args()).await;
    r.stop(admin(), b).await.expect("an uninstalled canister has no open call contexts");
    r.start(admin(), b).unwrap();
    // Installed again: fresh heap and stable memory.
    let m = ww::replica::install::prepare_module(&r, &b, &wasm("probe")).unwrap();
    r.install(admin(), b, InstallMode::Install, m, probe_init()).await.expect("reinstall after uninstall");
    assert_eq!(query::<u64>(&r, b, "get", no_args()).await, 0);
    assert_eq!(query::<Option<u64>>(&r, b, "stable_get", Encode!(&3u64).unwrap()).await, None);
    assert!(query::<Vec<String>>(&r, b, "log", no_args()).await.is_empty(), "the old callback never ran");
}

// ---- the sweep: system API ----------------------------------------------------

#[tokio::test]
async fn callbacks_see_the_original_caller() {
    let r = replica();
    let a = install(&r, "probe", probe_init()).await;
    let b = install(&r, "probe", probe_init()).await;
    let (before, after): (Principal, Principal) = update(&r, a, "caller_after_await", Encode!(&b).unwrap()).await;
    assert_eq!(before, admin());
    assert_eq!(after, admin(), "msg_caller after an await is the call context's caller, not the callee");
}

// ---- the sweep: management canister ------------------------------------------

#[tokio::test]
async fn canister_only_methods_refuse_ingress() {
    let r = replica();
    for method in ["create_canister", "raw_rand", "deposit_cycles"] {
        let arg = if method == "deposit_cycles" { Encode!(&CanisterIdRecord { canister_id: admin() }).unwrap() } else { no_args() };
        let err = mgmt(&r, method, arg).await.unwrap_err();
        assert_eq!(err.code, RejectCode::CanisterReject, "{method}: {err}");
        assert_eq!(err.error_code, Some(ErrorCode::CanisterRejectedMessage), "{method}: {err}");
        assert!(err.message.contains(method), "{err}");
    }
    // From a canister they work: raw_rand gives 32 fresh bytes each time.
    let probe = install(&r, "probe", probe_init()).await;
    let call = Encode!(&Principal::management_canister(), &"raw_rand", &ByteBuf::from(no_args())).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out: CallOutcome = update(&r, probe, "call_method", call.clone()).await;
        let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
        let rand = Decode!(&bytes, ByteBuf).unwrap();
        assert_eq!(rand.len(), 32);
        seen.push(rand);
    }
    assert_ne!(seen[0], seen[1]);
}

#[tokio::test]
async fn create_canister_turns_the_attached_cycles_into_the_balance() {
    let r = replica();
    let probe = install(&r, "probe", probe_init()).await;
    // Fewer cycles than the creation fee: the IC's refusal, all refunded.
    let start = query::<u64>(&r, probe, "balance", no_args()).await;
    let call = Encode!(&Principal::management_canister(), &"create_canister", &ByteBuf::from(no_args()), &3_000_000u64).unwrap();
    let out: CallOutcome = update(&r, probe, "call_with_cycles", call).await;
    let CallOutcome::Err(e) = out else { panic!("created below the fee: {out:?}") };
    assert_eq!(e.code, 4, "{e:?}");
    assert_eq!(
        e.message,
        "Creating a canister requires a fee of 500000000000 that is deducted from the canister's initial balance but only 3000000 cycles were received with the create_canister request."
    );
    let after_refusal = query::<u64>(&r, probe, "balance", no_args()).await;
    assert!(start - after_refusal < 1_000_000_000, "the attached cycles came back: paid {}", start - after_refusal);
    // 2 T attached: the new canister starts with them less the 500 B fee;
    // the creator paid what it attached (and its messages).
    let call = Encode!(&Principal::management_canister(), &"create_canister", &ByteBuf::from(no_args()), &2_000_000_000_000u64).unwrap();
    let out: CallOutcome = update(&r, probe, "call_with_cycles", call).await;
    let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
    let created = Decode!(&bytes, CanisterIdRecord).unwrap().canister_id;
    let paid = after_refusal - query::<u64>(&r, probe, "balance", no_args()).await;
    assert!((2_000_000_000_000..2_001_000_000_000).contains(&paid), "paid {paid}");
    // Read on the host: a canister_status message would be paid by it.
    assert_eq!(r.status(&created).unwrap().cycles, 1_500_000_000_000);
}

#[tokio::test]
async fn provisional_create_with_amount_and_specified_id_and_top_up() {
    // Free: canister_status ingress costs the canister nothing here, so
    // balances move only as the test moves them.
    let r = free_replica();
    let wanted = ww::replica::canister_id(0x42);
    let args = ProvisionalCreateCanisterArgs {
        amount: Some(candid::Nat::from(5_000u64)),
        settings: Some(CanisterSettings { freezing_threshold: Some(candid::Nat::from(60u64)), ..CanisterSettings::default() }),
        specified_id: Some(wanted),
        sender_canister_version: None,
    };
    let bytes = mgmt(&r, "provisional_create_canister_with_cycles", Encode!(&args).unwrap()).await.unwrap();
    assert_eq!(Decode!(&bytes, CanisterIdRecord).unwrap().canister_id, wanted);
    let s = status(&r, wanted).await;
    assert_eq!(s.cycles, candid::Nat::from(5_000u64));
    assert_eq!(s.settings.freezing_threshold, candid::Nat::from(60u64));
    assert_eq!(s.settings.controllers, vec![admin()]);
    // The id is taken now.
    let err = mgmt(&r, "provisional_create_canister_with_cycles", Encode!(&args).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterIdAlreadyExists), "{err}");
    #[derive(CandidType)]
    struct TopUp {
        canister_id: Principal,
        amount: candid::Nat,
    }
    mgmt(&r, "provisional_top_up_canister", Encode!(&TopUp { canister_id: wanted, amount: 1_000u64.into() }).unwrap()).await.unwrap();
    assert_eq!(status(&r, wanted).await.cycles, candid::Nat::from(6_000u64));
}

#[tokio::test]
async fn update_settings_stores_validates_and_reports_every_setting() {
    // Free: canister_status ingress costs the canister nothing here, so
    // balances move only as the test moves them.
    let r = free_replica();
    let id = r.create_canister(vec![admin()]);
    let defaults = status(&r, id).await.settings;
    assert_eq!(defaults.freezing_threshold, candid::Nat::from(2_592_000u64));
    let update = CanisterSettings {
        compute_allocation: Some(10u64.into()),
        wasm_memory_limit: Some(candid::Nat::from(1u64 << 30)),
        log_visibility: Some(ww::replica::management::LogVisibility::Public),
        ..CanisterSettings::default()
    };
    let args = UpdateSettingsArgs { canister_id: id, settings: update, sender_canister_version: None };
    mgmt(&r, "update_settings", Encode!(&args).unwrap()).await.unwrap();
    let s = status(&r, id).await.settings;
    assert_eq!(s.compute_allocation, candid::Nat::from(10u64));
    assert_eq!(s.wasm_memory_limit, candid::Nat::from(1u64 << 30));
    assert_eq!(s.log_visibility, ww::replica::management::LogVisibility::Public);
    assert_eq!(s.freezing_threshold, defaults.freezing_threshold, "fields left out stay");
    // Out of range: a clear reject, and nothing changes.
    let bad = CanisterSettings { compute_allocation: Some(500u64.into()), freezing_threshold: Some(1u64.into()), ..CanisterSettings::default() };
    let err = mgmt(&r, "update_settings", Encode!(&UpdateSettingsArgs { canister_id: id, settings: bad, sender_canister_version: None }).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::InvalidManagementPayload), "{err}");
    assert_eq!(err.code, RejectCode::CanisterReject, "{err}");
    assert_eq!(status(&r, id).await.settings.freezing_threshold, defaults.freezing_threshold);
}

#[tokio::test]
async fn pre_upgrade_sees_the_timer_as_it_was() {
    let r = replica();
    let id = install(&r, "keeper", no_args()).await;
    let at = r.time() + 3_600_000_000_000;
    update::<()>(&r, id, "set_timer", Encode!(&at).unwrap()).await;
    upgrade(&r, id, "keeper", no_args()).await;
    assert_eq!(query::<u64>(&r, id, "timer_before_upgrade", no_args()).await, at);
}

#[tokio::test]
async fn performance_counter_1_counts_the_whole_call_context() {
    let r = replica();
    let a = install(&r, "probe", probe_init()).await;
    let b = install(&r, "probe", probe_init()).await;
    let (before, this_execution, context): (u64, u64, u64) = update(&r, a, "instructions_around_await", Encode!(&b).unwrap()).await;
    assert!(before > 0 && this_execution > 0, "{before} {this_execution}");
    assert!(context >= before + this_execution, "the context's count ({context}) includes the execution before the await ({before})");
}

#[tokio::test]
async fn a_callback_can_accept_the_calls_cycles() {
    // Free: the balances move by the accepted cycles alone.
    let r = free_replica();
    let payer = install(&r, "probe", probe_init()).await;
    let payee = install(&r, "probe", probe_init()).await;
    let other = install(&r, "probe", probe_init()).await;
    let start = query::<u64>(&r, payee, "balance", no_args()).await;
    let call = Encode!(&payee, &"accept_after_await", &ByteBuf::from(Encode!(&other).unwrap()), &7_000u64).unwrap();
    let out: CallOutcome = update(&r, payer, "call_with_cycles", call).await;
    let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
    assert_eq!(Decode!(&bytes, u64).unwrap(), 7_000, "the callback saw and accepted the call's cycles");
    assert_eq!(query::<u64>(&r, payee, "balance", no_args()).await, start + 7_000);
}

#[tokio::test]
async fn msg_method_name_traps_outside_inspect_message() {
    let r = replica();
    let id = install(&r, "probe", probe_init()).await;
    let err = r.call(admin(), id, "method_name", no_args()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterContractViolation), "{err}");
    assert!(err.message.contains("msg_method_name"), "{err}");
}

#[tokio::test]
async fn stop_canister_times_out_and_the_canister_stays_stopping() {
    let r = replica();
    let a = install(&r, "probe", probe_init()).await;
    let b = install(&r, "probe", probe_init()).await;
    let gate = install(&r, "probe", probe_init()).await;
    let _pending = r.submit_call(admin(), a, "call_method", Encode!(&b, &"record_after_gate", &ByteBuf::from(Encode!(&gate).unwrap())).unwrap());
    wait_for_log(&r, gate, "waiting").await;
    let stop = {
        let r = r.clone();
        tokio::spawn(async move { r.stop(admin(), b).await })
    };
    // b has an open call context: the stop waits, then times out.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!stop.is_finished());
    r.advance_time(Duration::from_secs(301));
    let err = stop.await.unwrap().unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::StopCanisterRequestTimeout), "{err}");
    assert_eq!(err.code, RejectCode::SysTransient);
    assert_eq!(r.status(&b).unwrap().status, ww::replica::Status::Stopping);
    // Once the context closes, b is stopped.
    update::<()>(&r, gate, "open_gate", no_args()).await;
    let started = Instant::now();
    while r.status(&b).unwrap().status != ww::replica::Status::Stopped {
        assert!(started.elapsed() < Duration::from_secs(30), "b never stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn growing_the_heap_past_wasm_memory_limit_traps() {
    let r = replica();
    let id = install(&r, "probe", probe_init()).await;
    let heap = status(&r, id).await.memory_metrics.wasm_memory_size;
    let limit = candid::Nat::from(u64::try_from(&heap.0).unwrap() + (1 << 20));
    let settings = CanisterSettings { wasm_memory_limit: Some(limit), ..CanisterSettings::default() };
    mgmt(&r, "update_settings", Encode!(&UpdateSettingsArgs { canister_id: id, settings, sender_canister_version: None }).unwrap()).await.unwrap();
    let err = r.call(admin(), id, "grow_heap", Encode!(&8u32).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterWasmMemoryLimitExceeded), "{err}");
    // Rolled back: nothing was kept; within the limit it works.
    assert_eq!(update::<u64>(&r, id, "grow_heap", Encode!(&0u32).unwrap()).await, 0);
    let settings = CanisterSettings { wasm_memory_limit: Some(candid::Nat::from(0u64)), ..CanisterSettings::default() };
    mgmt(&r, "update_settings", Encode!(&UpdateSettingsArgs { canister_id: id, settings, sender_canister_version: None }).unwrap()).await.unwrap();
    assert_eq!(update::<u64>(&r, id, "grow_heap", Encode!(&8u32).unwrap()).await, 8 << 20);
}

#[tokio::test]
async fn canister_info_reports_the_change_history() {
    use ww::replica::management::{CandidChangeDetails as D, CandidChangeOrigin as O, CandidInstallMode, CanisterInfoArgs, CanisterInfoResult};
    let r = replica();
    let probe = install(&r, "probe", probe_init()).await;
    let args = ProvisionalCreateCanisterArgs::default();
    let target = Decode!(&mgmt(&r, "provisional_create_canister_with_cycles", Encode!(&args).unwrap()).await.unwrap(), CanisterIdRecord)
        .unwrap()
        .canister_id;
    let install = InstallCodeArgs { mode: CanisterInstallMode::Install, canister_id: target, wasm_module: wasm("keeper"), arg: no_args(), sender_canister_version: None };
    mgmt(&r, "install_code", Encode!(&install).unwrap()).await.unwrap();
    let both = CanisterSettings { controllers: Some(vec![admin(), probe]), ..CanisterSettings::default() };
    mgmt(&r, "update_settings", Encode!(&UpdateSettingsArgs { canister_id: target, settings: both, sender_canister_version: None }).unwrap()).await.unwrap();
    // A change a canister makes names it, at the version it gave.
    let v = query::<u64>(&r, probe, "version", no_args()).await;
    let only_probe = UpdateSettingsArgs { canister_id: target, settings: CanisterSettings { controllers: Some(vec![probe, admin()]), ..CanisterSettings::default() }, sender_canister_version: Some(v) };
    let out: CallOutcome = update(&r, probe, "call_method", Encode!(&Principal::management_canister(), &"update_settings", &ByteBuf::from(Encode!(&only_probe).unwrap())).unwrap()).await;
    assert!(matches!(out, CallOutcome::Ok(_)), "{out:?}");
    mgmt(&r, "uninstall_code", Encode!(&UninstallCodeArgs { canister_id: target, sender_canister_version: None }).unwrap()).await.unwrap();

    let info = |n: u64| {
        let arg = Encode!(&CanisterInfoArgs { canister_id: target, num_requested_changes: Some(n) }).unwrap();
        Encode!(&Principal::management_canister(), &"canister_info", &ByteBuf::from(arg)).unwrap()
    };
    let out: CallOutcome = update(&r, probe, "call_method", info(20)).await;
    let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
    let info_all = Decode!(&bytes, CanisterInfoResult).unwrap();
    assert_eq!(info_all.total_num_changes, 5);
    assert!(info_all.module_hash.is_none(), "uninstalled");
    assert_eq!(info_all.controllers, vec![probe, admin()]);
    let details: Vec<&D> = info_all.recent_changes.iter().map(|c| &c.details).collect();
    assert_eq!(details[0], &D::Creation { controllers: vec![admin()] });
    assert!(matches!(details[1], D::CodeDeployment { mode: CandidInstallMode::Install, module_hash } if module_hash.len() == 32));
    // Controllers are a set in principal order (a canister id is shorter
    // than a self-authenticating principal), however they were given.
    assert_eq!(details[2], &D::ControllersChange { controllers: vec![probe, admin()] });
    assert_eq!(details[3], &D::ControllersChange { controllers: vec![probe, admin()] });
    assert_eq!(details[4], &D::CodeUninstall);
    assert_eq!(info_all.recent_changes[1].origin, O::FromUser { user_id: admin() });
    assert_eq!(info_all.recent_changes[3].origin, O::FromCanister { canister_id: probe, canister_version: Some(v) });
    let versions: Vec<u64> = info_all.recent_changes.iter().map(|c| c.canister_version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions increase: {versions:?}");
    // Only the most recent, as many as asked for.
    let out: CallOutcome = update(&r, probe, "call_method", info(2)).await;
    let CallOutcome::Ok(bytes) = out else { panic!("{out:?}") };
    let recent = Decode!(&bytes, CanisterInfoResult).unwrap().recent_changes;
    assert_eq!(recent, info_all.recent_changes[3..].to_vec());
    // Not for ingress.
    let arg = Encode!(&CanisterInfoArgs { canister_id: target, num_requested_changes: None }).unwrap();
    assert_eq!(mgmt(&r, "canister_info", arg).await.unwrap_err().error_code, Some(ErrorCode::CanisterRejectedMessage));
}

#[tokio::test]
async fn attaching_more_cycles_than_the_balance_traps() {
    // Free: the trapped execution's messages cost nothing either.
    let r = free_replica();
    let probe = install(&r, "probe", probe_init()).await;
    let other = install(&r, "probe", probe_init()).await;
    let balance = query::<u64>(&r, probe, "balance", no_args()).await;
    let call = Encode!(&other, &"pong", &ByteBuf::from(no_args()), &(balance + 1)).unwrap();
    let err = r.call(admin(), probe, "call_with_cycles", call).await.unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterOutOfCycles), "{err}");
    assert_eq!(query::<u64>(&r, probe, "balance", no_args()).await, balance, "nothing was taken");
}

#[tokio::test]
async fn answered_calls_leave_no_call_context_or_callback_behind() {
    let r = replica();
    let a = install(&r, "probe", probe_init()).await;
    let b = install(&r, "probe", probe_init()).await;
    for window in [1u32, 10] {
        assert_eq!(update::<u32>(&r, a, "ping_loop", Encode!(&b, &200u32, &window).unwrap()).await, 200);
    }
    update::<()>(&r, a, "set", Encode!(&1u64).unwrap()).await;
    let _ = r.call(admin(), a, "trap_after_mutate", Encode!(&2u64).unwrap()).await;
    let _: CallOutcome = update(&r, a, "bounded_call", Encode!(&b, &"pong", &ByteBuf::from(no_args()), &5u32).unwrap()).await;
    assert_eq!(r.open_calls(), (0, 0));
}
