//! Unmodified IC canisters: core modules built with ic-cdk 0.20 from
//! crates.io (`guests/ic-cdk`, for `wasm32-unknown-unknown`) on a replica,
//! beside ww-cdk component canisters, under the same IC semantics.

mod common;

use std::time::{Duration, Instant};

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use common::canisters::{CallOutcome, admin, install, no_args, query, replica, update};
use serde_bytes::ByteBuf;
use ww::replica::{InstallMode, Replica, RejectCode};

/// A built ic-cdk canister's bytes. Fails (never skips) when missing.
fn cdk_wasm(name: &str) -> Vec<u8> {
    let p = common::repo().join("guests/target/wasm32-unknown-unknown/release").join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("ic-cdk canister {} is missing ({e}): run `make test` (it builds them first)", p.display()))
}

/// Creates a canister and installs ic-cdk canister `name` on it.
async fn install_cdk(r: &Replica, name: &str, arg: Vec<u8>) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &cdk_wasm(name)).unwrap_or_else(|e| panic!("preparing {name}: {e}"));
    r.install(admin(), id, InstallMode::Install, m, arg).await.unwrap_or_else(|e| panic!("installing {name}: {e}"));
    id
}

async fn upgrade_cdk(r: &Replica, id: Principal, name: &str, arg: Vec<u8>) {
    let m = ww::replica::install::prepare_module(r, &id, &cdk_wasm(name)).expect("prepare");
    r.install(admin(), id, InstallMode::Upgrade, m, arg).await.expect("upgrade");
}

#[derive(CandidType, Deserialize)]
struct InitArg {
    greeting: String,
}

fn no_init() -> Vec<u8> {
    Encode!(&Option::<InitArg>::None).unwrap()
}

#[derive(CandidType, Deserialize, Debug)]
struct CallError {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize, Debug)]
struct CallManyResult {
    ok: u32,
    errors: Vec<CallError>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ic_cdk_canister_answers_updates_and_queries() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", Encode!(&Some(InitArg { greeting: "hi".into() })).unwrap()).await;
    assert_eq!(query::<String>(&r, id, "greeting", no_args()).await, "hi", "init saw its argument");
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 1);
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 2);
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 2);
    assert_eq!(query::<Principal>(&r, id, "whoami", no_args()).await, admin());
    assert_eq!(query::<Principal>(&r, id, "self_id", no_args()).await, id);
    assert!(query::<bool>(&r, id, "is_ctrl", Encode!(&admin()).unwrap()).await);
    assert!(!query::<bool>(&r, id, "is_ctrl", Encode!(&Principal::anonymous()).unwrap()).await);
    // A query's changes are discarded; a method that does not exist is IC0536.
    let err = r.call(admin(), id, "no_such_method", no_args()).await.unwrap_err();
    assert_eq!(err.error_code.map(|c| c.to_string()).as_deref(), Some("IC0536"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_rolls_back_heap_and_stable_memory() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<()>(&r, id, "put", Encode!(&"a", &"1").unwrap()).await;
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 1);
    for _ in 0..3 {
        let err = r.call(admin(), id, "inc_then_trap", no_args()).await.unwrap_err();
        assert_eq!(err.code, RejectCode::CanisterError);
        assert!(err.message.contains("inc_then_trap: deliberate"), "{err}");
    }
    assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 1, "the heap was rolled back");
    assert_eq!(query::<u64>(&r, id, "len", no_args()).await, 1, "stable memory was rolled back");
    assert_eq!(query::<Option<String>>(&r, id, "get_kv", Encode!(&"trap").unwrap()).await, None);
    // And the canister keeps working (its globals and executor state are intact).
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_a_stable_btreemap_and_what_pre_upgrade_saved() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    for (k, v) in [("x", "1"), ("y", "2")] {
        update::<()>(&r, id, "put", Encode!(&k, &v).unwrap()).await;
    }
    update::<u64>(&r, id, "inc", no_args()).await;
    update::<u64>(&r, id, "inc", no_args()).await;
    for round in 1..=2u64 {
        upgrade_cdk(&r, id, "cdk_counter", no_init()).await;
        assert_eq!(query::<u64>(&r, id, "upgrades", no_args()).await, round);
        assert_eq!(query::<u64>(&r, id, "get", no_args()).await, 2, "the heap counter went through stable memory");
        assert_eq!(query::<u64>(&r, id, "len", no_args()).await, 2);
        assert_eq!(query::<Option<String>>(&r, id, "get_kv", Encode!(&"y").unwrap()).await.as_deref(), Some("2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ic_cdk_calls_ic_cdk_and_ww_cdk_canisters() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    assert_eq!(update::<Result<u64, String>>(&r, caller, "call_inc", Encode!(&counter).unwrap()).await, Ok(1));
    assert_eq!(update::<Result<u64, String>>(&r, caller, "call_inc", Encode!(&counter).unwrap()).await, Ok(2));
    // A ww-cdk component canister: the probe's `set`/`get`.
    let probe = install(&r, "probe", Encode!(&Option::<u64>::None).unwrap()).await;
    let out: Result<ByteBuf, CallError> =
        update(&r, caller, "call_method", Encode!(&probe, &"set", &ByteBuf::from(Encode!(&7u64).unwrap()), &Option::<u32>::None).unwrap()).await;
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(query::<u64>(&r, probe, "get", no_args()).await, 7);
    // And the component calls the core module.
    let out: CallOutcome = update(&r, probe, "call_method", Encode!(&counter, &"inc", &ByteBuf::from(no_args())).unwrap()).await;
    match out {
        CallOutcome::Ok(bytes) => assert_eq!(Decode!(&bytes, u64).unwrap(), 3),
        CallOutcome::Err(e) => panic!("{e:?}"),
    }
    // A reject comes back with its code: a method that does not exist.
    let out: Result<ByteBuf, CallError> =
        update(&r, caller, "call_method", Encode!(&counter, &"nope", &ByteBuf::from(no_args()), &Option::<u32>::None).unwrap()).await;
    assert_eq!(out.unwrap_err().code, RejectCode::CanisterError as u32);
}

/// ic-cdk's cleanup drops the trapped method's future; a destructor that
/// spawns a task then panics ("tasks cannot be spawned while recovering
/// from a trap"). The IC reports both traps to the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_the_cleanup_callback_is_reported_with_the_callbacks() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    let err = r.call(admin(), caller, "trap_in_callback_and_cleanup", Encode!(&counter).unwrap()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError, "{err}");
    assert_eq!(err.error_code, Some(ww::replica::ErrorCode::CanisterCalledTrap), "{err}");
    let (callback, cleanup) = err
        .message
        .split_once("\n\ncall_on_cleanup also failed:\n\n")
        .unwrap_or_else(|| panic!("the reject does not report the cleanup's trap: {:?}", err.message));
    assert!(callback.starts_with(&format!("IC0503: Error from Canister {caller}: Canister called `ic0.trap` with message: ")), "{callback}");
    assert!(callback.contains("the callback panics as asked"), "{callback}");
    assert!(cleanup.starts_with("Canister called `ic0.trap` with message: "), "{cleanup}");
    assert!(cleanup.contains("tasks cannot be spawned while recovering from a trap"), "{cleanup}");
    // The callee's call went through; the caller keeps serving.
    assert_eq!(update::<Result<u64, String>>(&r, caller, "call_inc", Encode!(&counter).unwrap()).await, Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_one_callee_arrive_in_order() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<()>(&r, caller, "append_many", Encode!(&counter, &50u64).unwrap()).await;
    assert_eq!(query::<Vec<u64>>(&r, counter, "appended", no_args()).await, (0..50).collect::<Vec<u64>>());
}

/// Polls until `f` holds (the replica runs calls in the background).
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_wait_call_times_out_and_the_late_reply_still_commits() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<()>(&r, counter, "hold", no_args()).await;
    let pending = r.submit_call(admin(), caller, "call_method", Encode!(&counter, &"slow", &ByteBuf::from(no_args()), &Some(5u32)).unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.advance_time(Duration::from_secs(6));
    let out = Decode!(&pending.await.unwrap().expect("call_method replies"), Result<ByteBuf, CallError>).unwrap();
    assert_eq!(out.unwrap_err().code, RejectCode::SysUnknown as u32, "the deadline passed");
    update::<()>(&r, counter, "release", no_args()).await;
    eventually("the held call finishes", async || query::<u64>(&r, counter, "slow_done", no_args()).await == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_501st_outstanding_call_fails_at_once() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    // All 501 are made in one execution: the 501st finds the queue to the
    // callee full (500 outstanding) and fails at once, the others go through.
    let out: CallManyResult = update(&r, caller, "call_many", Encode!(&counter, &"noop", &501u32).unwrap()).await;
    assert_eq!(out.ok, 500, "{:?}", out.errors);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].code, RejectCode::SysTransient as u32, "{:?}", out.errors[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ic_cdk_timers_fire_after_time_advances() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<()>(&r, id, "schedule", Encode!(&60u64).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(query::<u64>(&r, id, "timer_fired", no_args()).await, 0, "not before its time");
    r.advance_time(Duration::from_secs(61));
    eventually("the timer fires", async || query::<u64>(&r, id, "timer_fired", no_args()).await == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ic_cdk_canister_uses_the_management_canister() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let balance_before = query::<u128>(&r, caller, "balance", no_args()).await;
    let child = update::<Principal>(&r, caller, "create_with_cycles", Encode!(&1_000_000_000_000u128).unwrap()).await;
    assert!(r.exists(&child));
    assert!(r.is_controller(&child, &caller), "the creating canister controls its child");
    assert!(query::<u128>(&r, caller, "balance", no_args()).await < balance_before, "the cycles left the caller");
    update::<()>(&r, caller, "install", Encode!(&child, &ByteBuf::from(cdk_wasm("cdk_counter")), &ByteBuf::from(no_init())).unwrap()).await;
    assert_eq!(update::<u64>(&r, child, "inc", no_args()).await, 1, "the child runs the module its parent installed");
    assert_eq!(update::<String>(&r, caller, "status", Encode!(&child).unwrap()).await, "Running");
    let a = update::<ByteBuf>(&r, caller, "rand", no_args()).await;
    let b = update::<ByteBuf>(&r, caller, "rand", no_args()).await;
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_print_and_traps_reach_the_canister_log() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<()>(&r, id, "log", Encode!(&"hello log").unwrap()).await;
    let _ = r.call(admin(), id, "inc_then_trap", no_args()).await;
    let logs = r.fetch_logs(&id, &admin()).expect("a controller may read the log");
    let lines: Vec<String> = logs.canister_log_records.iter().map(|l| String::from_utf8_lossy(&l.content).into_owned()).collect();
    assert!(lines.iter().any(|l| l == "hello log"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("[TRAP]") && l.contains("inc_then_trap: deliberate")), "{lines:?}");
    assert!(r.fetch_logs(&id, &Principal::anonymous()).is_err(), "logs are for controllers by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interface_of_a_module_without_a_candid_section_is_extracted() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    let did = r.candid_interface(&id).expect("get_candid_pointer gave the interface");
    assert!(did.contains("inc : () -> (nat64)"), "{did}");
    // The checked-in .did is what the module says of itself.
    let file = std::fs::read_to_string(common::repo().join("guests/ic-cdk/cdk_counter/cdk_counter.did")).unwrap();
    assert_eq!(did.trim(), file.trim(), "guests/ic-cdk/cdk_counter/cdk_counter.did is out of date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_modules_are_refused_and_the_old_module_keeps_serving() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<u64>(&r, id, "inc", no_args()).await;
    let good = cdk_wasm("cdk_counter");
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(&good).unwrap();
        e.finish().unwrap();
    }
    let truncated_gz = gz[..gz.len() / 2].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not wasm", b"definitely not wasm".to_vec(), "not a WebAssembly module"),
        ("truncated gzip", truncated_gz, "cannot be decompressed"),
        ("truncated wasm", good[..good.len() / 2].to_vec(), "not a valid WebAssembly module"),
    ];
    for (what, bytes, reason) in cases {
        let err = match ww::replica::install::prepare_module(&r, &id, &bytes) {
            Err(e) => e,
            Ok(_) => panic!("{what} was accepted"),
        };
        assert_eq!(err.error_code.map(|c| c.to_string()).as_deref(), Some("IC0505"), "{what}: {err}");
        assert!(err.message.contains(reason), "{what}: {err}");
        assert!(!err.message.contains('\n'), "{what}: one line: {err}");
    }
    // The gzip-compressed module itself installs.
    let m = ww::replica::install::prepare_module(&r, &id, &gz).expect("a gzip module");
    r.install(admin(), id, InstallMode::Upgrade, m, no_init()).await.expect("upgrade from gzip");
    assert_eq!(update::<u64>(&r, id, "inc", no_args()).await, 2, "still serving, state kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_message_filters_ingress_but_not_canister_calls() {
    let r = replica();
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    let err = r.call(admin(), counter, "refused_by_inspect", no_args()).await.unwrap_err();
    assert_eq!(err.error_code.map(|c| c.to_string()).as_deref(), Some("IC0406"), "{err}");
    assert_eq!(err.code, RejectCode::CanisterReject);
    assert_eq!(update::<u64>(&r, counter, "inc", no_args()).await, 1, "the refused call changed nothing; others pass");
    // A query call does not go through inspect_message; a canister's call neither.
    assert_eq!(query::<u64>(&r, counter, "get", no_args()).await, 1);
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let out: Result<ByteBuf, CallError> =
        update(&r, caller, "call_method", Encode!(&counter, &"refused_by_inspect", &ByteBuf::from(no_args()), &Option::<u32>::None).unwrap()).await;
    assert_eq!(Decode!(&out.expect("canisters are not inspected"), u64).unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_run_every_round() {
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    update::<()>(&r, id, "start_beating", no_args()).await;
    eventually("three heartbeats", async || query::<u64>(&r, id, "beats", no_args()).await >= 3).await;
    // Stopped and started again, it beats again.
    r.stop(admin(), id).await.expect("stop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.start(admin(), id).expect("start");
    let seen = query::<u64>(&r, id, "beats", no_args()).await;
    eventually("heartbeats resume", async || query::<u64>(&r, id, "beats", no_args()).await > seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ic_cdk_0_17_canister_runs_beside_0_20() {
    let r = replica();
    let old = install_cdk(&r, "cdk17", no_args()).await;
    let counter = install_cdk(&r, "cdk_counter", no_init()).await;
    assert_eq!(update::<u64>(&r, old, "inc", no_args()).await, 1);
    update::<()>(&r, old, "stable_write", Encode!(&7u64).unwrap()).await;
    let err = r.call(admin(), old, "inc_then_trap", Encode!(&9u64).unwrap()).await.unwrap_err();
    assert!(err.message.contains("inc_then_trap: deliberate"), "{err}");
    assert_eq!(query::<u64>(&r, old, "get", no_args()).await, 1, "the heap was rolled back");
    assert_eq!(query::<u64>(&r, old, "stable_read", no_args()).await, 7, "stable memory was rolled back");
    // 0.17 calls 0.20, and 0.20 calls 0.17.
    assert_eq!(update::<u64>(&r, old, "call_inc", Encode!(&counter).unwrap()).await, 1);
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    assert_eq!(update::<Result<u64, String>>(&r, caller, "call_inc", Encode!(&old).unwrap()).await, Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_queries_call_queries_and_keep_nothing() {
    let r = replica();
    let caller = install_cdk(&r, "cdk_caller", no_args()).await;
    let (a, b) = (install_cdk(&r, "cdk_counter", no_init()).await, install_cdk(&r, "cdk_counter", no_init()).await);
    update::<u64>(&r, a, "inc", no_args()).await;
    for _ in 0..2 {
        update::<u64>(&r, b, "inc", no_args()).await;
    }
    for _ in 0..2 {
        // Its own change survives its awaits, and is gone the next time.
        let bytes = r.query(admin(), caller, "composite_sum", Encode!(&vec![a, b]).unwrap()).await.expect("composite_sum");
        assert_eq!(Decode!(&bytes, u64, u64).unwrap(), (3, 1));
    }
    // An update method cannot be called from a composite query; a query's
    // reject comes back with its code.
    let out: Result<ByteBuf, CallError> = query(&r, caller, "composite_call", Encode!(&a, &"inc", &ByteBuf::from(no_args())).unwrap()).await;
    let e = out.unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError as u32, "{e:?}");
    assert!(e.message.contains("IC0536") || e.message.contains("query method"), "{e:?}");
    assert_eq!(query::<u64>(&r, a, "get", no_args()).await, 1, "the update did not run");
    // A composite query cannot be called in replicated mode (IC0527).
    let err = r.call(admin(), caller, "composite_sum", Encode!(&vec![a]).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code.map(|c| c.to_string()).as_deref(), Some("IC0527"), "{err}");
    // The callees keep nothing either and still serve updates afterwards.
    assert_eq!(update::<u64>(&r, a, "inc", no_args()).await, 2);
    // A ww-cdk component's `#[composite_query]` calls the ic-cdk query.
    let probe = install(&r, "probe", Encode!(&Option::<u64>::None).unwrap()).await;
    update::<()>(&r, probe, "set", Encode!(&40u64).unwrap()).await;
    assert_eq!(query::<u64>(&r, probe, "composite_get", Encode!(&a).unwrap()).await, 42);
    let err = r.call(admin(), probe, "composite_get", Encode!(&a).unwrap()).await.unwrap_err();
    assert_eq!(err.error_code.map(|c| c.to_string()).as_deref(), Some("IC0527"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_low_wasm_memory_runs_once_when_the_heap_nears_its_limit() {
    use ww::replica::settings::CanisterSettings;
    let r = replica();
    let id = install_cdk(&r, "cdk_counter", no_init()).await;
    let heap = r.status(&id).unwrap().memory.heap;
    let settings = CanisterSettings {
        wasm_memory_limit: Some(candid::Nat::from(heap + (16 << 20))),
        wasm_memory_threshold: Some(candid::Nat::from(12u64 << 20)),
        ..Default::default()
    };
    r.update_settings(ww::replica::ChangeOrigin::User(admin()), id, &settings).expect("settings");
    update::<()>(&r, id, "grow_heap", Encode!(&1u32).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(query::<u64>(&r, id, "low_memory_runs", no_args()).await, 0, "still far from the limit");
    update::<()>(&r, id, "grow_heap", Encode!(&6u32).unwrap()).await;
    eventually("the hook runs", async || query::<u64>(&r, id, "low_memory_runs", no_args()).await == 1).await;
    update::<()>(&r, id, "grow_heap", Encode!(&1u32).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(query::<u64>(&r, id, "low_memory_runs", no_args()).await, 1, "once per episode");
}
