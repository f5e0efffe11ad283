//! Calls through the real pocket-ic 13 client against ww: Candid update and
//! query calls, rejects (traps, missing methods, inspect_message, the
//! canister's own `msg_reject`) with the IC's reject codes, error codes and
//! messages, submitted messages that wait for a round, and calls that
//! interleave at an await.
//!
//! Expected values are the IC's (and PocketIC's), not ww's: the messages are
//! the replica's `UserError` descriptions as agent-rs's reference tests
//! against PocketIC assert them, the codes are `ic-error-types`'.

mod common;

use candid::{Principal, decode_one, encode_args, encode_one};
use common::*;
use pocket_ic::{ErrorCode, RejectCode, RejectResponse};

#[test]
fn candid_update_and_query_calls() {
    let pic = pic();
    let id = counter(&pic);
    assert_eq!(get(&pic, id), 0);
    assert_eq!(inc(&pic, id), 1);
    assert_eq!(inc(&pic, id), 2);
    assert_eq!(get(&pic, id), 2);

    // The raw API, Candid by hand.
    let reply = pic.update_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap()).expect("inc");
    assert_eq!(decode_one::<u64>(&reply).unwrap(), 3);
    let reply = pic.query_call(id, Principal::anonymous(), "get", encode_args(()).unwrap()).expect("get");
    assert_eq!(decode_one::<u64>(&reply).unwrap(), 3);

    // Arguments of several types, an `opt` result.
    let () = update(&pic, id, "put", ("k".to_string(), "v".to_string())).expect("put");
    let (v,): (Option<String>,) = query(&pic, id, "get_kv", ("k".to_string(),)).expect("get_kv");
    assert_eq!(v.as_deref(), Some("v"));
    let (v,): (Option<String>,) = query(&pic, id, "get_kv", ("absent".to_string(),)).expect("get_kv");
    assert_eq!(v, None);
    let (n,): (u64,) = query(&pic, id, "len", ()).expect("len");
    assert_eq!(n, 1);
    let (g,): (String,) = query(&pic, id, "greeting", ()).expect("greeting");
    assert_eq!(g, "hello", "no init argument: the default greeting");
}

#[test]
fn the_init_argument_reaches_the_canister() {
    let pic = pic();
    let arg = encode_one(Some(InitArg { greeting: "bonjour".into() })).unwrap();
    let id = deploy(&pic, wasm("cdk_counter"), arg);
    let (g,): (String,) = query(&pic, id, "greeting", ()).expect("greeting");
    assert_eq!(g, "bonjour");
}

#[test]
fn the_caller_is_the_sender_and_the_canister_knows_its_id() {
    let pic = pic();
    let id = counter(&pic);
    let alice = Principal::from_slice(&[0xA1; 29]);
    let (who,): (Principal,) = pocket_ic::query_candid_as(&pic, id, alice, "whoami", ()).expect("whoami");
    assert_eq!(who, alice);
    let (who,): (Principal,) = query(&pic, id, "whoami", ()).expect("whoami");
    assert_eq!(who, Principal::anonymous());
    let (me,): (Principal,) = query(&pic, id, "self_id", ()).expect("self_id");
    assert_eq!(me, id);
    // The canister sees its controllers.
    let (yes,): (bool,) = query(&pic, id, "is_ctrl", (Principal::anonymous(),)).expect("is_ctrl");
    assert!(yes, "the anonymous principal created the canister, so it controls it");
    let (no,): (bool,) = query(&pic, id, "is_ctrl", (alice,)).expect("is_ctrl");
    assert!(!no);
}

fn expect_reject(r: Result<Vec<u8>, RejectResponse>, what: &str) -> RejectResponse {
    match r {
        Err(e) => e,
        Ok(reply) => panic!("{what}: expected a reject, got a reply {reply:?}"),
    }
}

#[test]
fn a_trap_is_canister_called_trap_with_the_trap_text_and_rolls_back() {
    let pic = pic();
    let id = counter(&pic);
    let e = expect_reject(
        pic.update_call(id, Principal::anonymous(), "inc_then_trap", encode_args(()).unwrap()),
        "inc_then_trap",
    );
    assert_eq!(e.reject_code, RejectCode::CanisterError, "{e}");
    assert_eq!(e.error_code, ErrorCode::CanisterCalledTrap, "{e}");
    assert!(e.reject_message.contains("inc_then_trap: deliberate"), "the trap text: {e}");
    assert!(e.reject_message.contains(&id.to_text()), "the IC names the canister (\"Error from Canister <id>: ...\"): {e}");
    assert!(e.certified, "an awaited update call's reject is certified: {e:?}");
    // What suites assert on: the Display.
    let shown = e.to_string();
    assert!(shown.starts_with("PocketIC returned a rejection error: reject code CanisterError, reject message "), "{shown}");
    assert!(shown.contains("inc_then_trap: deliberate"), "{shown}");
    assert!(shown.ends_with("error code CanisterCalledTrap"), "{shown}");
    assert!(!shown.contains("Internal"), "a trap is not an internal error: {shown}");

    // Every change the trapping call made is rolled back: heap and stable memory.
    assert_eq!(get(&pic, id), 0);
    let (v,): (Option<String>,) = query(&pic, id, "get_kv", ("trap".to_string(),)).expect("get_kv");
    assert_eq!(v, None, "the stable-memory write of a trapped call must not survive");
    // And the canister goes on serving.
    assert_eq!(inc(&pic, id), 1);
}

#[test]
fn a_missing_update_method_is_canister_method_not_found() {
    let pic = pic();
    let id = counter(&pic);
    let e = expect_reject(
        pic.update_call(id, Principal::anonymous(), "no_such_method", encode_args(()).unwrap()),
        "no_such_method",
    );
    assert_eq!(e.reject_code, RejectCode::CanisterError, "{e}");
    assert_eq!(e.error_code, ErrorCode::CanisterMethodNotFound, "{e}");
    assert!(
        e.reject_message.contains(&format!("Canister {id}: Canister has no update method 'no_such_method'")),
        "the IC's text (\"Error from Canister <id>: Canister has no update method '<name>'\"): {e}"
    );
    let shown = shown(&e);
    assert!(shown.contains("not found") || shown.contains("has no update method"), "{shown}");
    assert!(shown.contains("canistermethodnotfound"), "{shown}");
    assert!(!e.to_string().contains("Internal"), "{e}");
}

#[test]
fn a_missing_query_method_and_a_query_call_to_an_update_method() {
    let pic = pic();
    let id = counter(&pic);
    let e = expect_reject(
        pic.query_call(id, Principal::anonymous(), "no_such_query", encode_args(()).unwrap()),
        "no_such_query",
    );
    assert_eq!(e.reject_code, RejectCode::CanisterError, "{e}");
    assert_eq!(e.error_code, ErrorCode::CanisterMethodNotFound, "{e}");
    assert!(e.reject_message.contains(&format!("Canister {id}: Canister has no query method 'no_such_query'")), "{e}");
    assert!(!e.certified, "a query's reject is not certified: {e:?}");

    // `inc` is an update method: a query call cannot run it.
    let e = expect_reject(pic.query_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap()), "query inc");
    assert_eq!(e.error_code, ErrorCode::CanisterMethodNotFound, "{e}");
    assert!(e.reject_message.contains("has no query method 'inc'"), "{e}");
    assert_eq!(get(&pic, id), 0, "the update method did not run");
}

#[test]
fn an_update_call_may_run_a_query_method() {
    // The IC runs a query method called as an update (replicated).
    let pic = pic();
    let id = counter(&pic);
    inc(&pic, id);
    let reply = pic.update_call(id, Principal::anonymous(), "get", encode_args(()).unwrap()).expect("get as an update");
    assert_eq!(decode_one::<u64>(&reply).unwrap(), 1);
}

#[test]
fn inspect_message_refuses_ingress_but_not_canisters() {
    let pic = pic();
    let a = counter(&pic);
    let b = caller(&pic);
    // `cdk_counter`'s canister_inspect_message accepts every update but this one.
    let e = expect_reject(
        pic.update_call(a, Principal::anonymous(), "refused_by_inspect", encode_args(()).unwrap()),
        "refused_by_inspect",
    );
    assert_eq!(e.reject_code, RejectCode::CanisterReject, "{e}");
    assert_eq!(e.error_code, ErrorCode::CanisterRejectedMessage, "{e}");
    assert!(e.reject_message.contains("rejected the message"), "the IC's \"Requested canister rejected the message\": {e}");
    // Refused at submission: there is no message to tick.
    let submitted = pic.submit_call(a, Principal::anonymous(), "refused_by_inspect", encode_args(()).unwrap());
    let e = submitted.expect_err("submit_call of a message inspect_message refuses");
    assert_eq!(e.error_code, ErrorCode::CanisterRejectedMessage, "{e}");
    assert_eq!(get(&pic, a), 0, "the refused method never ran");

    // Inter-canister calls do not go through inspect_message.
    let (r,): (Result<Vec<u8>, CallError>,) =
        update(&pic, b, "call_method", (a, "refused_by_inspect".to_string(), encode_args(()).unwrap(), None::<u32>))
            .expect("call_method");
    let bytes = r.expect("a canister may call refused_by_inspect");
    assert_eq!(decode_one::<u64>(&bytes).unwrap(), 1);
    assert_eq!(get(&pic, a), 1);
}

#[test]
fn a_canister_reject_is_canister_reject_with_its_own_message() {
    let pic = pic();
    let big = deploy(&pic, wasm("cdk_big"), encode_args(()).unwrap());
    let e = expect_reject(
        pic.update_call(big, Principal::anonymous(), "reject_with", encode_one("no thanks").unwrap()),
        "reject_with",
    );
    assert_eq!(e.reject_code, RejectCode::CanisterReject, "{e}");
    assert_eq!(e.error_code, ErrorCode::CanisterRejectedMessage, "{e}");
    assert_eq!(e.reject_message, "no thanks", "a canister's msg_reject text comes back as is");

    // Seen by a calling canister: reject code 4 and the same text.
    let b = caller(&pic);
    let (r,): (Result<Vec<u8>, CallError>,) =
        update(&pic, b, "call_method", (big, "reject_with".to_string(), encode_one("not you").unwrap(), None::<u32>))
            .expect("call_method");
    assert_eq!(r, Err(CallError { code: 4, message: "not you".into() }));
}

#[test]
fn inter_canister_calls_see_the_callee_trap_and_missing_methods() {
    let pic = pic();
    let a = counter(&pic);
    let b = caller(&pic);
    let call = |method: &str| -> Result<Vec<u8>, CallError> {
        let (r,): (Result<Vec<u8>, CallError>,) =
            update(&pic, b, "call_method", (a, method.to_string(), encode_args(()).unwrap(), None::<u32>))
                .expect("call_method");
        r
    };
    let e = call("inc_then_trap").expect_err("the callee traps");
    assert_eq!(e.code, 5, "CANISTER_ERROR: {e:?}");
    assert!(e.message.contains("inc_then_trap: deliberate"), "{e:?}");
    let e = call("no_such_method").expect_err("no such method");
    assert_eq!(e.code, 5, "CANISTER_ERROR: {e:?}");
    assert!(e.message.contains("has no update method 'no_such_method'"), "{e:?}");
    // A successful call in between, and the trapped one left nothing behind.
    let (r,): (Result<u64, String>,) = update(&pic, b, "call_inc", (a,)).expect("call_inc");
    assert_eq!(r, Ok(1));
    assert_eq!(get(&pic, a), 1);
}

#[test]
fn concurrent_inter_canister_calls() {
    let pic = pic();
    let a = counter(&pic);
    let b = caller(&pic);
    let (r,): (CallManyResult,) = update(&pic, b, "call_many", (a, "inc".to_string(), 10u32)).expect("call_many");
    assert_eq!(r, CallManyResult { ok: 10, errors: vec![] });
    assert_eq!(get(&pic, a), 10);
    // `append_many` sends append(0..n) in order; one caller's calls to one
    // callee arrive in the order they were made.
    let () = update(&pic, b, "append_many", (a, 20u64)).expect("append_many");
    let (v,): (Vec<u64>,) = query(&pic, a, "appended", ()).expect("appended");
    assert_eq!(v, (0..20).collect::<Vec<u64>>());
}

#[test]
fn submitted_calls_wait_for_a_round() {
    let pic = pic();
    let id = counter(&pic);
    let msg = pic.submit_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap()).expect("submit inc");
    // Submitted, not executed: no round has run.
    assert_eq!(get(&pic, id), 0, "a submitted call must not run before a round");
    assert_eq!(pic.ingress_status(msg.clone()), None, "no status before a round");
    pic.tick();
    assert_eq!(get(&pic, id), 1, "one round runs the submitted call");
    match pic.ingress_status(msg.clone()) {
        Some(Ok(reply)) => assert_eq!(decode_one::<u64>(&reply).unwrap(), 1),
        other => panic!("after a round: {other:?}"),
    }
    // A completed call can still be awaited: same reply, nothing runs again.
    let reply = pic.await_call(msg).expect("await inc");
    assert_eq!(decode_one::<u64>(&reply).unwrap(), 1);
    assert_eq!(get(&pic, id), 1);

    // Two submitted calls, one round: both run, each once.
    let m1 = pic.submit_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap()).expect("submit");
    let m2 = pic.submit_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap()).expect("submit");
    assert_eq!(get(&pic, id), 1);
    let r1 = decode_one::<u64>(&pic.await_call(m1).expect("await")).unwrap();
    let r2 = decode_one::<u64>(&pic.await_call(m2).expect("await")).unwrap();
    let mut rs = [r1, r2];
    rs.sort();
    assert_eq!(rs, [2, 3]);
    assert_eq!(get(&pic, id), 3);
}

#[test]
fn a_held_call_interleaves_with_a_later_call() {
    // `slow` self-calls `noop` until `release` runs, then returns 1. If calls
    // did not interleave at an await (the held `slow` running to completion
    // before anything else), `release` could never run and `slow` would
    // never finish.
    let pic = pic();
    let id = counter(&pic);
    let slow = pic.submit_call(id, Principal::anonymous(), "slow", encode_args(()).unwrap()).expect("submit slow");
    pic.tick();
    pic.tick();
    assert_eq!(pic.ingress_status(slow.clone()), None, "slow stays open across rounds until released");
    let (done,): (u64,) = query(&pic, id, "slow_done", ()).unwrap();
    assert_eq!(done, 0);
    let release = pic.submit_call(id, Principal::anonymous(), "release", encode_args(()).unwrap()).expect("submit release");
    pic.await_call(release).expect("release");
    let reply = pic.await_call(slow).expect("slow completes once released");
    assert_eq!(decode_one::<u64>(&reply).unwrap(), 1);
    let (done,): (u64,) = query(&pic, id, "slow_done", ()).unwrap();
    assert_eq!(done, 1);
}

#[test]
fn two_calls_interleave_at_an_inter_canister_await() {
    // The caller B has one call open, awaiting the counter's `slow`, while a
    // second call to B goes through to the counter's `release`; only then
    // can the first complete.
    let pic = pic();
    let a = counter(&pic);
    let b = caller(&pic);
    let args = |method: &str| encode_args((a, method.to_string(), encode_args(()).unwrap(), None::<u32>)).unwrap();
    let first = pic.submit_call(b, Principal::anonymous(), "call_method", args("slow")).expect("submit");
    pic.tick();
    pic.tick();
    assert_eq!(pic.ingress_status(first.clone()), None, "the first call is held at its await");
    let second = pic.submit_call(b, Principal::anonymous(), "call_method", args("release")).expect("submit");
    let reply = pic.await_call(second).expect("second call");
    let r: Result<Vec<u8>, CallError> = decode_one(&reply).unwrap();
    assert!(r.is_ok(), "release through B: {r:?}");
    let reply = pic.await_call(first).expect("first call");
    let r: Result<Vec<u8>, CallError> = decode_one(&reply).unwrap();
    let bytes = r.expect("slow through B");
    assert_eq!(decode_one::<u64>(&bytes).unwrap(), 1, "slow's reply, relayed by B");
}

#[test]
fn a_canister_creates_and_inspects_a_canister() {
    // The management canister, called by a canister (with cycles attached).
    let pic = pic();
    let b = caller(&pic);
    let (child,): (Principal,) = update(&pic, b, "create_with_cycles", (100_000_000_000u128,)).expect("create");
    assert!(pic.canister_exists(child));
    assert_eq!(pic.get_controllers(child), vec![b], "the creating canister is the only controller");
    let (status,): (String,) = update(&pic, b, "status", (child,)).expect("status");
    assert_eq!(status, "Running");
    let (bytes,): (Vec<u8>,) = update(&pic, b, "rand", ()).expect("raw_rand");
    assert_eq!(bytes.len(), 32);
}
