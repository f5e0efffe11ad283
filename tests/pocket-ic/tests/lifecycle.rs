//! A canister's life through the real pocket-ic 13 client: cycles, status,
//! upgrade (stable memory kept, heap not), reinstall, stop / start / delete,
//! controllers, canister logs, and stable memory read and written from
//! outside. The expected messages are the replica's, as agent-rs's reference
//! tests against PocketIC assert them.

mod common;

use candid::{Principal, encode_args, encode_one};
use common::*;
use ic_management_canister_types::CanisterStatusType;
use pocket_ic::common::rest::BlobCompression;
use pocket_ic::{ErrorCode, RejectCode, RejectResponse};

fn counter_wasm() -> Vec<u8> {
    wasm("cdk_counter")
}

/// A reject's codes and that its message contains `text`.
fn assert_reject(r: Result<impl std::fmt::Debug, RejectResponse>, code: RejectCode, error: ErrorCode, text: &str) {
    match r {
        Err(e) => {
            assert_eq!((e.reject_code, e.error_code), (code, error), "{e}");
            assert!(e.reject_message.contains(text), "expected {text:?} in: {e}");
        }
        Ok(v) => panic!("expected a reject {error:?} ({text}), got {v:?}"),
    }
}

#[test]
fn cycles_start_at_zero_and_add_cycles_returns_the_new_balance() {
    let pic = pic();
    let id = pic.create_canister();
    assert_eq!(pic.cycle_balance(id), 0, "pocket-ic 13 creates canisters with 0 cycles");
    assert_eq!(pic.add_cycles(id, INIT_CYCLES), INIT_CYCLES);
    assert_eq!(pic.cycle_balance(id), INIT_CYCLES);
    assert_eq!(pic.add_cycles(id, 1_000), INIT_CYCLES + 1_000);
    assert_eq!(pic.cycle_balance(id), INIT_CYCLES + 1_000);
    // Large amounts travel as JSON u128 (ww keeps balances in 64 bits: up
    // to 18 million T cycles, far beyond what a test hands out).
    let big = 10_000_000_000_000_000_000u128;
    assert_eq!(pic.add_cycles(id, big), INIT_CYCLES + 1_000 + big);
}

#[test]
fn canister_status_of_an_empty_and_an_installed_canister() {
    let pic = pic();
    let id = pic.create_canister();
    pic.add_cycles(id, INIT_CYCLES);
    let s = pic.canister_status(id, None).expect("canister_status");
    assert_eq!(s.status, CanisterStatusType::Running);
    assert_eq!(s.module_hash, None, "nothing installed yet");
    assert_eq!(s.settings.controllers, vec![Principal::anonymous()], "the creator (anonymous) controls it");

    let module = counter_wasm();
    pic.install_canister(id, module.clone(), no_init(), None);
    let s = pic.canister_status(id, None).expect("canister_status");
    assert_eq!(s.status, CanisterStatusType::Running);
    assert_eq!(s.module_hash, Some(sha256(&module)), "the SHA-256 of the installed module");
    assert!(s.cycles > 0u8 && s.cycles <= INIT_CYCLES, "cycles {}", s.cycles);
    assert!(s.memory_size > 0u8, "an installed canister uses memory");
    let (v,): (u64,) = query(&pic, id, "version", ()).expect("version");
    // cdk_counter has a heartbeat: the round that ran canister_status also
    // ran one heartbeat (a committed execution), before or after it.
    assert!(v == s.version || v == s.version + 1, "canister_status's version {} is the canister's own canister_version {v}, give or take the round's heartbeat", s.version);

    // Only controllers may ask.
    assert_reject(
        pic.canister_status(id, Some(stranger())),
        RejectCode::CanisterError,
        ErrorCode::CanisterInvalidController,
        &format!("Only controllers of canister {id} can call ic00 method canister_status"),
    );
}

#[test]
fn upgrade_keeps_stable_memory_and_runs_the_hooks() {
    let pic = pic();
    let module = counter_wasm();
    let id = deploy(&pic, module.clone(), encode_one(Some(InitArg { greeting: "bonjour".into() })).unwrap());
    let () = update(&pic, id, "put", ("k".to_string(), "v".to_string())).unwrap();
    inc(&pic, id);
    inc(&pic, id);
    let () = update(&pic, id, "append", (7u64,)).unwrap();
    let (v0,): (u64,) = query(&pic, id, "version", ()).unwrap();
    let (u,): (u64,) = query(&pic, id, "upgrades", ()).unwrap();
    assert_eq!(u, 0);

    pic.upgrade_canister(id, module.clone(), no_init(), None).expect("upgrade");

    let (kv,): (Option<String>,) = query(&pic, id, "get_kv", ("k".to_string(),)).unwrap();
    assert_eq!(kv.as_deref(), Some("v"), "the stable map survives the upgrade");
    assert_eq!(get(&pic, id), 2, "pre_upgrade saved the counter to stable memory, post_upgrade restored it");
    let (u,): (u64,) = query(&pic, id, "upgrades", ()).unwrap();
    assert_eq!(u, 1, "post_upgrade ran once");
    let (g,): (String,) = query(&pic, id, "greeting", ()).unwrap();
    assert_eq!(g, "bonjour", "kept through stable memory (post_upgrade got null)");
    let (a,): (Vec<u64>,) = query(&pic, id, "appended", ()).unwrap();
    assert!(a.is_empty(), "the heap is new after an upgrade (nothing saved it): {a:?}");
    let (v1,): (u64,) = query(&pic, id, "version", ()).unwrap();
    assert!(v1 > v0, "an upgrade bumps canister_version: {v0} then {v1}");

    // The post_upgrade argument arrives.
    pic.upgrade_canister(id, module, encode_one(Some(InitArg { greeting: "salut".into() })).unwrap(), None)
        .expect("second upgrade");
    let (g,): (String,) = query(&pic, id, "greeting", ()).unwrap();
    assert_eq!(g, "salut");
    let (u,): (u64,) = query(&pic, id, "upgrades", ()).unwrap();
    assert_eq!(u, 2);
    assert_eq!(get(&pic, id), 2);
}

#[test]
fn reinstall_wipes_heap_and_stable_memory() {
    let pic = pic();
    let module = counter_wasm();
    let id = deploy(&pic, module.clone(), no_init());
    let () = update(&pic, id, "put", ("k".to_string(), "v".to_string())).unwrap();
    inc(&pic, id);
    pic.reinstall_canister(id, module, no_init(), None).expect("reinstall");
    assert_eq!(get(&pic, id), 0);
    let (kv,): (Option<String>,) = query(&pic, id, "get_kv", ("k".to_string(),)).unwrap();
    assert_eq!(kv, None, "reinstall clears stable memory");
}

#[test]
fn a_bad_module_is_refused_and_the_old_one_keeps_serving() {
    let pic = pic();
    let id = counter(&pic);
    inc(&pic, id);
    let r = pic.upgrade_canister(id, b"definitely not wasm".to_vec(), vec![], None);
    match r {
        Err(e) => {
            assert_eq!(e.error_code, ErrorCode::CanisterInvalidWasm, "{e}");
            assert_eq!(e.reject_code, RejectCode::CanisterError, "{e}");
        }
        Ok(()) => panic!("a module that is not wasm was installed"),
    }
    assert_eq!(get(&pic, id), 1, "the old module and its state are untouched");
}

#[test]
fn stop_start_and_delete() {
    let pic = pic();
    let a = counter(&pic);
    let b = caller(&pic);
    inc(&pic, a);

    // A running canister cannot be deleted.
    assert_reject(
        pic.delete_canister(a, None),
        RejectCode::CanisterError,
        ErrorCode::CanisterNotStopped,
        "must be stopped",
    );

    pic.stop_canister(a, None).expect("stop");
    assert_eq!(pic.canister_status(a, None).unwrap().status, CanisterStatusType::Stopped);
    pic.stop_canister(a, None).expect("stopping a stopped canister is a no-op");
    let stopped_update = pic.update_call(a, Principal::anonymous(), "inc", encode_args(()).unwrap());
    assert_reject(stopped_update, RejectCode::CanisterError, ErrorCode::CanisterStopped, &format!("Canister {a} is stopped"));
    let stopped_query = pic.query_call(a, Principal::anonymous(), "get", encode_args(()).unwrap());
    assert_reject(stopped_query, RejectCode::CanisterError, ErrorCode::CanisterStopped, &format!("Canister {a} is stopped"));
    // A stopped canister can be upgraded.
    pic.upgrade_canister(a, counter_wasm(), no_init(), None).expect("upgrade a stopped canister");

    pic.start_canister(a, None).expect("start");
    assert_eq!(pic.canister_status(a, None).unwrap().status, CanisterStatusType::Running);
    pic.start_canister(a, None).expect("starting a running canister is a no-op");
    assert_eq!(get(&pic, a), 1, "state kept through stop, upgrade and start");
    assert_eq!(inc(&pic, a), 2);

    pic.stop_canister(a, None).expect("stop");
    pic.delete_canister(a, None).expect("delete a stopped canister");
    assert!(!pic.canister_exists(a));
    assert_eq!(pic.get_subnet(a), None);
    let not_found = format!("Canister {a} not found");
    assert_reject(
        pic.update_call(a, Principal::anonymous(), "inc", encode_args(()).unwrap()),
        RejectCode::DestinationInvalid,
        ErrorCode::CanisterNotFound,
        &not_found,
    );
    assert_reject(
        pic.query_call(a, Principal::anonymous(), "get", encode_args(()).unwrap()),
        RejectCode::DestinationInvalid,
        ErrorCode::CanisterNotFound,
        &not_found,
    );
    assert_reject(pic.canister_status(a, None), RejectCode::DestinationInvalid, ErrorCode::CanisterNotFound, &not_found);
    assert_reject(pic.delete_canister(a, None), RejectCode::DestinationInvalid, ErrorCode::CanisterNotFound, &not_found);
    // A canister calling it: DESTINATION_INVALID (3).
    let (r,): (Result<Vec<u8>, CallError>,) =
        update(&pic, b, "call_method", (a, "inc".to_string(), encode_args(()).unwrap(), None::<u32>)).unwrap();
    let e = r.expect_err("a call to a deleted canister");
    assert_eq!(e.code, 3, "{e:?}");
}

#[test]
fn only_controllers_manage_a_canister() {
    let pic = pic();
    let id = counter(&pic);
    let s = stranger();
    for (what, r) in [
        ("stop_canister", pic.stop_canister(id, Some(s))),
        ("start_canister", pic.start_canister(id, Some(s))),
        ("delete_canister", pic.delete_canister(id, Some(s))),
    ] {
        assert_reject(
            r,
            RejectCode::CanisterError,
            ErrorCode::CanisterInvalidController,
            &format!("Only controllers of canister {id} can call ic00 method {what}"),
        );
    }
    assert_reject(
        pic.set_controllers(id, Some(s), vec![s]),
        RejectCode::CanisterError,
        ErrorCode::CanisterInvalidController,
        &format!("Only controllers of canister {id} can call ic00 method update_settings"),
    );
    assert_eq!(pic.canister_status(id, None).unwrap().status, CanisterStatusType::Running);
}

#[test]
fn get_and_set_controllers() {
    let pic = pic();
    let id = counter(&pic);
    assert_eq!(pic.get_controllers(id), vec![Principal::anonymous()]);
    let alice = Principal::from_slice(&[0xA1; 29]);
    pic.set_controllers(id, None, vec![Principal::anonymous(), alice]).expect("set_controllers");
    let mut got = pic.get_controllers(id);
    got.sort();
    let mut want = vec![Principal::anonymous(), alice];
    want.sort();
    assert_eq!(got, want);
    let (yes,): (bool,) = query(&pic, id, "is_ctrl", (alice,)).unwrap();
    assert!(yes, "the canister sees its new controller");
    // Alice now manages it; once she is the only controller, anonymous no longer can.
    pic.set_controllers(id, Some(alice), vec![alice]).expect("alice sets herself");
    assert_eq!(pic.get_controllers(id), vec![alice]);
    assert_reject(
        pic.canister_status(id, None),
        RejectCode::CanisterError,
        ErrorCode::CanisterInvalidController,
        "Only controllers",
    );
    assert_eq!(pic.canister_status(id, Some(alice)).unwrap().settings.controllers, vec![alice]);
}

#[test]
fn fetch_canister_logs_has_prints_and_traps() {
    let pic = pic();
    let id = counter(&pic);
    let () = update(&pic, id, "log", ("hello from pocket-ic".to_string(),)).unwrap();
    assert!(pic.update_call(id, Principal::anonymous(), "inc_then_trap", encode_args(()).unwrap()).is_err());
    let () = update(&pic, id, "log", ("second line".to_string(),)).unwrap();

    let logs = pic.fetch_canister_logs(id, Principal::anonymous()).expect("a controller reads the logs");
    let lines: Vec<String> = logs.iter().map(|r| String::from_utf8_lossy(&r.content).into_owned()).collect();
    let hello = lines.iter().position(|l| l == "hello from pocket-ic").unwrap_or_else(|| panic!("{lines:?}"));
    let trap = lines
        .iter()
        .position(|l| l.contains("[TRAP]") && l.contains("inc_then_trap: deliberate"))
        .unwrap_or_else(|| panic!("the trap is logged: {lines:?}"));
    let second = lines.iter().position(|l| l == "second line").unwrap_or_else(|| panic!("{lines:?}"));
    assert!(hello < trap && trap < second, "in order: {lines:?}");
    for w in logs.windows(2) {
        assert!(w[0].idx < w[1].idx, "indices increase: {:?}", logs);
        assert!(w[0].timestamp_nanos <= w[1].timestamp_nanos, "timestamps do not go back: {:?}", logs);
    }
    let now = pic.get_time().as_nanos_since_unix_epoch();
    assert!(logs.iter().all(|r| r.timestamp_nanos >= GENESIS_NANOS && r.timestamp_nanos <= now), "{logs:?}");

    // Logs are for controllers by default.
    assert!(pic.fetch_canister_logs(id, stranger()).is_err(), "a non-controller must not read the logs");
}

#[test]
fn stable_memory_read_and_written_from_outside() {
    let pic = pic();
    let a = counter(&pic);
    let () = update(&pic, a, "put", ("k".to_string(), "v".to_string())).unwrap();
    let mem = pic.get_stable_memory(a);
    assert!(!mem.is_empty() && mem.len().is_multiple_of(65_536), "whole 64 KiB pages: {}", mem.len());
    assert_eq!(&mem[..3], b"MGR", "ic-stable-structures' MemoryManager header");

    // Another counter given that stable memory reads the same map.
    let b = counter(&pic);
    pic.set_stable_memory(b, mem.clone(), BlobCompression::NoCompression);
    assert_eq!(pic.get_stable_memory(b)[..mem.len()], mem[..]);
    let (kv,): (Option<String>,) = query(&pic, b, "get_kv", ("k".to_string(),)).unwrap();
    assert_eq!(kv.as_deref(), Some("v"));

    // Gzip-compressed upload.
    let c = counter(&pic);
    pic.set_stable_memory(c, gzip(&mem), BlobCompression::Gzip);
    assert_eq!(pic.get_stable_memory(c)[..mem.len()], mem[..]);
    let (kv,): (Option<String>,) = query(&pic, c, "get_kv", ("k".to_string(),)).unwrap();
    assert_eq!(kv.as_deref(), Some("v"));

    // Arbitrary bytes, as PocketIC's own test writes them.
    let d = counter(&pic);
    pic.set_stable_memory(d, b"deadbeef".to_vec(), BlobCompression::NoCompression);
    assert_eq!(&pic.get_stable_memory(d)[..8], b"deadbeef");
}

#[test]
fn snapshots_take_load_list_and_delete() {
    let pic = pic();
    let id = deploy(&pic, counter_wasm(), no_init());
    let () = update(&pic, id, "put", ("k".to_string(), "v".to_string())).unwrap();
    inc(&pic, id);
    let snap = pic.take_canister_snapshot(id, None, None).expect("take");
    assert!(snap.total_size > 0);
    assert_eq!(pic.list_canister_snapshots(id, None).expect("list"), vec![snap.clone()]);
    inc(&pic, id);
    let () = update(&pic, id, "put", ("k2".to_string(), "v2".to_string())).unwrap();
    // Loading needs a stopped canister.
    assert_reject(pic.load_canister_snapshot(id, None, snap.id.clone()), RejectCode::CanisterError, ErrorCode::CanisterNotStopped, "must be stopped");
    pic.stop_canister(id, None).expect("stop");
    pic.load_canister_snapshot(id, None, snap.id.clone()).expect("load");
    pic.start_canister(id, None).expect("start");
    assert_eq!(get(&pic, id), 1, "the heap of the snapshot");
    let (kv,): (Option<String>,) = query(&pic, id, "get_kv", ("k2".to_string(),)).unwrap();
    assert_eq!(kv, None, "stable memory of the snapshot");
    // Controllers only; a deleted snapshot is gone.
    let stranger = Principal::self_authenticating(b"stranger");
    assert_reject(pic.list_canister_snapshots(id, Some(stranger)), RejectCode::CanisterError, ErrorCode::CanisterInvalidController, "Only controllers");
    pic.delete_canister_snapshot(id, None, snap.id.clone()).expect("delete");
    assert!(pic.list_canister_snapshots(id, None).expect("list").is_empty());
    assert_reject(pic.delete_canister_snapshot(id, None, snap.id), RejectCode::DestinationInvalid, ErrorCode::CanisterSnapshotNotFound, "Could not find the snapshot ID");
}
