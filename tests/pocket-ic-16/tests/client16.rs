//! pocket-ic 16.x against ww (`WW_POCKET_IC_VERSION=16`,
//! `POCKET_IC_BIN` = ww's `pocket-ic` symlink): the version handshake, the
//! essential flow (instance, create, install, update, query), rejects as the
//! 16.x client names them, submit + tick + await with time, time exact to the
//! nanosecond as PocketIC 16 moves it, and sender info (16.1's
//! `*_with_sender_info`) as the callee sees it.


use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use pocket_ic::common::rest::RawSenderInfo;
use pocket_ic::{ErrorCode, PocketIc, PocketIcBuilder, RejectCode, Time};

mod common;
use common::{check_server, wasm};

fn pic() -> PocketIc {
    check_server();
    PocketIc::new()
}

fn counter(pic: &PocketIc) -> Principal {
    let id = pic.create_canister();
    pic.add_cycles(id, 2_000_000_000_000);
    pic.install_canister(id, wasm("cdk_counter"), Encode!(&Option::<()>::None).unwrap(), None);
    id
}

#[test]
fn the_16_client_creates_installs_and_calls() {
    let pic = pic();
    let id = counter(&pic);
    assert_eq!(id, Principal::from_text("lxzze-o7777-77777-aaaaa-cai").unwrap());
    // pocket-ic 14+ creates canisters with 100T cycles, then 2T were added;
    // the install paid its execution (5 M and its instructions).
    let balance = pic.cycle_balance(id);
    assert!((101_990_000_000_000..102_000_000_000_000).contains(&balance), "{balance}");
    let reply = pic.update_call(id, Principal::anonymous(), "inc", Encode!().unwrap()).expect("inc");
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);
    let reply = pic.query_call(id, Principal::anonymous(), "get", Encode!().unwrap()).expect("get");
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);
    let topology = PocketIcBuilder::new().with_application_subnet().with_system_subnet().build().topology();
    assert_eq!(topology.subnet_configs.len(), 2);
}

#[test]
fn rejects_carry_the_names_the_16_client_knows() {
    let pic = pic();
    let id = counter(&pic);
    let err = pic.update_call(id, Principal::anonymous(), "inc_then_trap", Encode!().unwrap()).expect_err("traps");
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert_eq!(err.error_code, ErrorCode::CanisterCalledTrap);
    let err = pic.update_call(id, Principal::anonymous(), "no_such_method", Encode!().unwrap()).expect_err("missing");
    assert_eq!(err.error_code, ErrorCode::CanisterMethodNotFound);
}

#[test]
fn submit_tick_and_await_with_time_under_the_test_s_control() {
    let pic = pic();
    let id = counter(&pic);
    let t0 = pic.get_time();
    let msg = pic.submit_call(id, Principal::anonymous(), "inc", Encode!().unwrap()).expect("submitted");
    let reply = pic.query_call(id, Principal::anonymous(), "get", Encode!().unwrap()).unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 0, "nothing runs before a round");
    pic.tick();
    let reply = pic.await_call(msg).expect("inc");
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);
    pic.advance_time(std::time::Duration::from_secs(60));
    assert!(pic.get_time() >= t0 + std::time::Duration::from_secs(60));
}

/// cdk_counter's `CallerInfo` (`ic0.msg_caller_info_data` and `_signer`).
#[derive(CandidType, Deserialize, Debug, PartialEq, Eq, Clone)]
struct CallerInfo {
    data: Vec<u8>,
    signer: Option<Principal>,
}

fn no_info() -> CallerInfo {
    CallerInfo { data: Vec::new(), signer: None }
}

#[test]
fn the_callee_sees_the_sender_info_of_the_call() {
    let pic = pic();
    let id = counter(&pic);
    let signer = Principal::from_text("rdmx6-jaaaa-aaaaa-aaadq-cai").unwrap();
    let info = b"attributes the signer vouches for".to_vec();
    let sender_info = || RawSenderInfo { info: info.clone(), signer: signer.as_slice().to_vec() };
    let expected = CallerInfo { data: info.clone(), signer: Some(signer) };
    let user = Principal::self_authenticating([7u8; 32]);

    // An update: the method and its callback (after a self-call) see it.
    let reply = pic
        .update_call_with_sender_info(id, user, "caller_info_around_call", Encode!().unwrap(), sender_info())
        .expect("caller_info_around_call");
    let (in_method, in_callback) = Decode!(&reply, CallerInfo, CallerInfo).unwrap();
    assert_eq!(in_method, expected);
    assert_eq!(in_callback, expected, "a callback runs in the original call's context");

    // A query.
    let reply = pic.query_call_with_sender_info(id, user, "caller_info", Encode!().unwrap(), sender_info()).expect("caller_info");
    assert_eq!(Decode!(&reply, CallerInfo).unwrap(), expected);

    // Without sender info: empty.
    let reply = pic.update_call(id, user, "caller_info_around_call", Encode!().unwrap()).expect("no info");
    assert_eq!(Decode!(&reply, CallerInfo, CallerInfo).unwrap(), (no_info(), no_info()));
    let reply = pic.query_call(id, user, "caller_info", Encode!().unwrap()).expect("no info");
    assert_eq!(Decode!(&reply, CallerInfo).unwrap(), no_info());

    // A canister caller carries none, whatever its own caller's was.
    let caller = pic.create_canister();
    pic.install_canister(caller, wasm("cdk_caller"), Encode!().unwrap(), None);
    let arg = Encode!(&id, &"caller_info", &Encode!().unwrap(), &None::<u32>).unwrap();
    let reply = pic.update_call_with_sender_info(caller, user, "call_method", arg, sender_info()).expect("call_method");
    let bytes = Decode!(&reply, Result<Vec<u8>, CallError>).unwrap().expect("the call went through");
    assert_eq!(Decode!(&bytes, CallerInfo).unwrap(), no_info());
}

/// cdk_caller's `CallError`.
#[derive(CandidType, Deserialize, Debug)]
#[allow(dead_code)]
struct CallError {
    code: u32,
    message: String,
}

fn nanos(pic: &PocketIc) -> u64 {
    pic.get_time().as_nanos_since_unix_epoch()
}

fn canister_time(pic: &PocketIc, id: Principal) -> u64 {
    let reply = pic.query_call(id, Principal::anonymous(), "time_now", Encode!().unwrap()).expect("time_now");
    Decode!(&reply, u64).unwrap()
}

#[test]
fn queries_see_the_last_round_and_set_time_takes_effect_in_the_next() {
    let pic = pic();
    let id = counter(&pic);
    let last_round = nanos(&pic);
    assert_eq!(canister_time(&pic, id), last_round);
    let t = last_round + 60_000_000_000;
    pic.set_time(Time::from_nanos_since_unix_epoch(t));
    assert_eq!(nanos(&pic), t);
    assert_eq!(canister_time(&pic, id), last_round, "no round has run at the new time");
    pic.tick();
    assert_eq!(canister_time(&pic, id), t);
    pic.tick();
    assert_eq!(canister_time(&pic, id), t + 1);
    pic.set_certified_time(Time::from_nanos_since_unix_epoch(t + 1_000));
    assert_eq!(canister_time(&pic, id), t + 1_000, "a certified time is seen at once");
    pic.tick();
    assert_eq!(canister_time(&pic, id), t + 1_001);
}

/// `canister_info`'s reply, as far as this test reads it.
#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
struct CanisterInfo {
    total_num_changes: u64,
    recent_changes: Vec<Change>,
    module_hash: Option<Vec<u8>>,
    controllers: Vec<Principal>,
}

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
struct Change {
    timestamp_nanos: u64,
    canister_version: u64,
}

/// With the 16 client too, each operation moves time by the rounds it runs
/// (DFINITY's cdk-rs `canister_info` test): creation at t0 + 4, then a
/// change every 2 ns while a canister makes management calls, then 1 ns
/// per ingress management call.
#[test]
fn each_operation_moves_time_by_the_rounds_it_runs() {
    let pic = pic();
    let t0 = nanos(&pic);
    let caller = pic.create_canister();
    pic.install_canister(caller, wasm("cdk_caller"), Encode!().unwrap(), None);
    let empty = b"\0asm\x01\0\0\0".to_vec();
    let reply = pic.update_call(caller, Principal::anonymous(), "lifecycle", Encode!(&empty).unwrap()).expect("lifecycle");
    let child = Decode!(&reply, Principal).unwrap();
    pic.uninstall_canister(child, Some(Principal::anonymous())).expect("uninstall");
    pic.install_canister(child, empty, vec![], Some(Principal::anonymous()));
    let reply = pic.update_call(caller, Principal::anonymous(), "info", Encode!(&child).unwrap()).expect("info");
    let info = Decode!(&reply, CanisterInfo).unwrap();
    let seen: Vec<(u64, u64)> = info.recent_changes.iter().map(|c| (c.timestamp_nanos - t0, c.canister_version)).collect();
    assert_eq!(seen, vec![(4, 0), (6, 1), (8, 2), (10, 3), (12, 4), (14, 5), (16, 6), (18, 7), (19, 8)], "t0 = {t0}");
    assert_eq!(info.total_num_changes, 9);
    let mut controllers = info.controllers;
    controllers.sort(); // the IC's order; ww keeps the order given
    assert_eq!(controllers, vec![Principal::anonymous(), caller, child]);
}
