//! Motoko canisters (compiled by the `motoko` npm package, `guests/motoko`):
//! 64-bit memory and table (enhanced orthogonal persistence), the `ic0` API
//! with `i64` pointers, upgrades that keep main memory.

mod common;

use candid::{Decode, Encode, Nat, Principal};
use common::canisters::{admin, install, no_args, query, replica, update};
use ww::replica::install::prepare_module;
use ww::replica::management::{CanisterInstallMode, UpgradeFlags, WasmMemoryPersistence};
use ww::replica::{InstallMode, Replica};

fn mo_wasm(name: &str) -> Vec<u8> {
    let p = common::repo().join("guests/target/motoko").join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("Motoko canister {} is missing ({e}): run `make test` (it builds them first)", p.display()))
}

async fn install_mo(r: &Replica, name: &str) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = prepare_module(r, &id, &mo_wasm(name)).unwrap_or_else(|e| panic!("preparing {name}: {e}"));
    r.install(admin(), id, InstallMode::Install, m, no_args()).await.unwrap_or_else(|e| panic!("installing {name}: {e}"));
    id
}

/// Upgrades through the management canister with `wasm_memory_persistence`.
async fn upgrade_mo(r: &Replica, id: Principal, name: &str, persistence: Option<WasmMemoryPersistence>) -> Result<(), String> {
    #[derive(candid::CandidType)]
    struct InstallCodeArgs {
        mode: CanisterInstallMode,
        canister_id: Principal,
        wasm_module: serde_bytes::ByteBuf,
        arg: serde_bytes::ByteBuf,
        sender_canister_version: Option<u64>,
    }
    let args = InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(Some(UpgradeFlags { skip_pre_upgrade: None, wasm_memory_persistence: persistence })),
        canister_id: id,
        wasm_module: serde_bytes::ByteBuf::from(mo_wasm(name)),
        arg: serde_bytes::ByteBuf::from(no_args()),
        sender_canister_version: None,
    };
    r.call(admin(), Principal::management_canister(), "install_code", Encode!(&args).unwrap()).await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_motoko_canister_answers_and_rolls_back_a_trap() {
    let r = replica();
    let id = install_mo(&r, "mo_counter").await;
    assert_eq!(update::<Nat>(&r, id, "inc", no_args()).await, Nat::from(1u32));
    assert_eq!(update::<Nat>(&r, id, "inc", no_args()).await, Nat::from(2u32));
    for _ in 0..2 {
        let err = r.call(admin(), id, "inc_then_trap", no_args()).await.unwrap_err();
        // `assert false` calls ic0.trap.
        assert_eq!(err.error_code.map(|c| c.to_string()).as_deref(), Some("IC0503"), "{err}");
    }
    assert_eq!(query::<Nat>(&r, id, "get", no_args()).await, Nat::from(2u32), "the trap was rolled back");
    assert_eq!(update::<Nat>(&r, id, "inc", no_args()).await, Nat::from(3u32));
    update::<()>(&r, id, "log", Encode!(&"from motoko").unwrap()).await;
    let logs = r.fetch_logs(&id, &admin()).unwrap();
    assert!(logs.canister_log_records.iter().any(|l| l.content == b"from motoko"), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_the_persistent_actor_state() {
    let r = replica();
    let id = install_mo(&r, "mo_counter").await;
    for _ in 0..3 {
        update::<Nat>(&r, id, "inc", no_args()).await;
    }
    assert_eq!(query::<String>(&r, id, "version_tag", no_args()).await, "v1");
    // Motoko's runtime demands the heap be kept: without the option the
    // upgrade is refused and v1 keeps serving.
    let err = upgrade_mo(&r, id, "mo_counter_v2", None).await.unwrap_err();
    assert!(err.contains("wasm_memory_persistence"), "{err}");
    assert_eq!(query::<String>(&r, id, "version_tag", no_args()).await, "v1");
    upgrade_mo(&r, id, "mo_counter_v2", Some(WasmMemoryPersistence::Keep)).await.expect("upgrade keeping main memory");
    assert_eq!(query::<String>(&r, id, "version_tag", no_args()).await, "v2");
    assert_eq!(query::<Nat>(&r, id, "get", no_args()).await, Nat::from(3u32), "the actor's state survived");
    assert_eq!(query::<Nat>(&r, id, "upgrade_count", no_args()).await, Nat::from(1u32));
    assert_eq!(update::<Nat>(&r, id, "inc", no_args()).await, Nat::from(4u32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motoko_calls_motoko_and_ww_cdk_and_back() {
    let r = replica();
    let caller = install_mo(&r, "mo_caller").await;
    let counter = install_mo(&r, "mo_counter").await;
    assert_eq!(update::<Nat>(&r, caller, "call_inc", Encode!(&counter).unwrap()).await, Nat::from(1u32));
    assert_eq!(update::<Nat>(&r, caller, "call_inc", Encode!(&counter).unwrap()).await, Nat::from(2u32));
    let component = install(&r, "counter", Encode!(&Option::<u64>::None).unwrap()).await;
    let n = update::<u64>(&r, caller, "call_inc_counter", Encode!(&component).unwrap()).await;
    assert_eq!(query::<u64>(&r, component, "get", no_args()).await, n, "the ww-cdk counter was incremented by Motoko");
    // And a ww-cdk component calls Motoko.
    let probe = install(&r, "probe", Encode!(&Option::<u64>::None).unwrap()).await;
    let out: common::canisters::CallOutcome =
        update(&r, probe, "call_method", Encode!(&counter, &"inc", &serde_bytes::ByteBuf::from(no_args())).unwrap()).await;
    match out {
        common::canisters::CallOutcome::Ok(bytes) => assert_eq!(Decode!(&bytes, Nat).unwrap(), Nat::from(3u32)),
        common::canisters::CallOutcome::Err(e) => panic!("{e:?}"),
    }
}
