//! ww's scripted faults through its client crate (`clients/ww-pocket-ic`)
//! beside the real pocket-ic 13 client: an ic-cdk 0.20 caller
//! (`cdk_caller.call_method`) calling an ic-cdk counter sees exactly the
//! failure the IC interface specification allows for each injected fault,
//! and the callee's state says whether it ran.

mod common;

use candid::{CandidType, Deserialize, Principal, encode_args};
use common::*;
use ww_pocket_ic::{FaultError, Faults, Reject};

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
struct CallError {
    code: u32,
    message: String,
}

/// `call_method(target, method, ())` on the caller, with a bounded wait of
/// `timeout` seconds if given.
fn call(pic: &pocket_ic::PocketIc, caller: Principal, target: Principal, method: &str, timeout: Option<u32>) -> Result<Vec<u8>, CallError> {
    let (r,): (Result<Vec<u8>, CallError>,) =
        update(pic, caller, "call_method", (target, method.to_string(), encode_args(()).unwrap(), timeout)).expect("call_method");
    r
}

fn faults(pic: &pocket_ic::PocketIc) -> Faults {
    Faults::new(pic.get_server_url().as_str(), pic.instance_id())
}

#[test]
fn an_injected_reject_stops_the_request_before_the_callee_runs() {
    let pic = pic();
    let (a, counter) = (caller(&pic), counter(&pic));
    let f = faults(&pic);
    f.reject_calls(a, counter, Some("inc"), Reject::SysTransient, 1).unwrap();
    let e = call(&pic, a, counter, "inc", None).expect_err("the injected reject");
    assert_eq!(e.code, 2, "SYS_TRANSIENT: {e:?}");
    assert_eq!(get(&pic, counter), 0, "the counter never ran");
    // Used up: the next call goes through. Another method is not matched.
    assert!(call(&pic, a, counter, "inc", None).is_ok());
    f.reject_calls(a, counter, Some("get"), Reject::SysFatal, 2).unwrap();
    assert!(call(&pic, a, counter, "inc", None).is_ok());
    assert_eq!(get(&pic, counter), 2);
    assert_eq!(call(&pic, a, counter, "get", None).expect_err("rejected").code, 1, "SYS_FATAL");
}

#[test]
fn a_failing_call_perform_and_an_instruction_limit_trap_hit_the_next_executions() {
    let pic = pic();
    let (a, counter) = (caller(&pic), counter(&pic));
    let f = faults(&pic);
    f.fail_call_perform(a, Some("call_method"), 1).unwrap();
    let e = call(&pic, a, counter, "inc", None).expect_err("call_perform fails");
    assert_eq!(e.code, 2, "ic-cdk's CallPerformFailed: {e:?}");
    assert_eq!(get(&pic, counter), 0, "nothing was sent");
    assert!(call(&pic, a, counter, "inc", None).is_ok(), "only the next execution");
    // The counter has a heartbeat: the fault names the method it is for.
    f.instruction_limit(counter, Some("inc"), 1).unwrap();
    let e = call(&pic, a, counter, "inc", None).expect_err("the counter traps");
    assert_eq!(e.code, 5, "CANISTER_ERROR from the trapped callee: {e:?}");
    assert!(e.message.contains("instruction"), "{e:?}");
    assert_eq!(get(&pic, counter), 1, "the trapped execution changed nothing");
}

#[test]
fn expiring_a_bounded_wait_call_answers_sys_unknown_while_the_callee_goes_on() {
    let pic = pic();
    let (a, counter) = (caller(&pic), counter(&pic));
    let f = faults(&pic);
    // A bounded-wait call to `slow`, which stays open until `release`.
    let msg = pic
        .submit_call(a, Principal::anonymous(), "call_method", encode_args((counter, "slow".to_string(), encode_args(()).unwrap(), Some(300u32))).unwrap())
        .expect("submit");
    for _ in 0..3 {
        pic.tick();
    }
    assert_eq!(f.expire_calls(a, counter).unwrap(), 1, "one bounded-wait call was waiting");
    let reply = pic.await_call(msg).expect("call_method answers");
    let (r,): (Result<Vec<u8>, CallError>,) = candid::decode_args(&reply).unwrap();
    assert_eq!(r.expect_err("expired").code, 6, "SYS_UNKNOWN");
    // The callee did not stop: released, it finishes its work.
    let () = update(&pic, counter, "release", ()).expect("release");
    for _ in 0..5 {
        pic.tick();
    }
    let (done,): (u64,) = query(&pic, counter, "slow_done", ()).expect("slow_done");
    assert_eq!(done, 1, "the callee kept running after the caller's expiry");
    assert_eq!(f.expire_calls(a, counter).unwrap(), 0, "nothing left to expire");
}

#[test]
fn bad_faults_are_refused_with_a_reason() {
    let pic = pic();
    let a = caller(&pic);
    let f = faults(&pic);
    let nobody = Principal::from_slice(&[9; 10]);
    match f.fail_call_perform(nobody, None, 1) {
        Err(FaultError::Refused { status: 400, message }) => assert!(message.contains("not found"), "{message}"),
        other => panic!("{other:?}"),
    }
    match f.instruction_limit(a, None, 0) {
        Err(FaultError::Refused { message, .. }) => assert!(message.contains("count"), "{message}"),
        other => panic!("{other:?}"),
    }
    let gone = Faults::new(pic.get_server_url().as_str(), 999_999);
    assert!(matches!(gone.expire_calls(a, a), Err(FaultError::Refused { .. })));
}
