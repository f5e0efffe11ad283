//! Time, rounds and timers through the real pocket-ic 13 client: an instance
//! starts at PocketIC's genesis and its time moves only when the test moves
//! it (set_time / advance_time) or by the nanoseconds each round adds; timers
//! (ic-cdk-timers) and heartbeats run in rounds (`tick`).
//!
//! PocketIC's rule, exact to the nanosecond: a round runs at the time set
//! if it moved since the last round, else 1 ns after the last round; a
//! query sees the time of the last round (set_time shows in `get_time` at
//! once, in canisters only from the next round); every client operation
//! that awaits an update runs rounds until it completes, one each for
//! ingress to the management canister, two for each management call a
//! canister makes (the request in one round, the response in the next).

mod common;

use std::time::Duration;

use candid::{CandidType, Deserialize, Principal};
use common::*;
use pocket_ic::{PocketIc, PocketIcBuilder, Time};

/// Within a millisecond: PocketIC adds a nanosecond per round (and one when
/// it creates an instance), never wall-clock time.
const ROUND_SLACK_NANOS: u64 = 1_000_000;

fn nanos(t: Time) -> u64 {
    t.as_nanos_since_unix_epoch()
}

#[test]
fn a_new_instance_starts_at_genesis() {
    let pic = pic();
    let t = nanos(pic.get_time());
    assert!(
        (GENESIS_NANOS..GENESIS_NANOS + ROUND_SLACK_NANOS).contains(&t),
        "a new instance's time is PocketIC's genesis {GENESIS_NANOS} (plus a few ns), got {t}"
    );
    // A canister sees it too (after a round certifies it).
    let id = counter(&pic);
    pic.tick();
    let (ct,): (u64,) = query(&pic, id, "time_now", ()).expect("time_now");
    assert_eq!(ct, nanos(pic.get_time()), "a query sees the instance's time");
    assert!(ct < GENESIS_NANOS + ROUND_SLACK_NANOS, "{ct}");
}

#[test]
fn with_initial_time_sets_the_start() {
    common::server_bin();
    let start = GENESIS_NANOS + 10 * 86_400 * 1_000_000_000;
    let pic = PocketIcBuilder::new()
        .with_application_subnet()
        .with_initial_time(Time::from_nanos_since_unix_epoch(start))
        .build();
    let t = nanos(pic.get_time());
    assert!((start..start + ROUND_SLACK_NANOS).contains(&t), "initial time {start}, got {t}");
}

#[test]
fn set_time_then_get_time_and_the_canister_sees_it() {
    let pic = pic();
    let id = counter(&pic);
    let t = 1_650_000_000_000_000_000; // 15 Apr 2022
    pic.set_time(Time::from_nanos_since_unix_epoch(t));
    assert_eq!(nanos(pic.get_time()), t, "get_time right after set_time");
    for _ in 0..2 {
        pic.tick();
        let now = nanos(pic.get_time());
        assert!((t..t + ROUND_SLACK_NANOS).contains(&now), "set to {t}, now {now}");
        let (ct,): (u64,) = query(&pic, id, "time_now", ()).expect("time_now");
        assert_eq!(ct, now, "after a round a query sees exactly the instance's time");
    }
}

#[test]
fn time_does_not_move_by_itself() {
    let pic = pic();
    let t1 = nanos(pic.get_time());
    std::thread::sleep(Duration::from_millis(1500));
    let t2 = nanos(pic.get_time());
    assert_eq!(t1, t2, "1.5 s of wall-clock time passed; the instance's time must not move without a round");
    for _ in 0..5 {
        pic.tick();
    }
    let t3 = nanos(pic.get_time());
    assert!(t3 >= t2, "time never goes back: {t2} then {t3}");
    assert!(t3 - t2 < ROUND_SLACK_NANOS, "5 rounds add nanoseconds, not wall-clock time: {t2} then {t3}");
}

#[test]
fn advance_time_moves_time_by_exactly_that() {
    let pic = pic();
    let t = nanos(pic.get_time());
    pic.advance_time(Duration::from_secs(420));
    assert_eq!(nanos(pic.get_time()), t + 420_000_000_000);
    pic.advance_time(Duration::from_nanos(7));
    assert_eq!(nanos(pic.get_time()), t + 420_000_000_007);
}

#[test]
fn advance_time_and_tick_fire_a_timer() {
    let pic = pic();
    let id = counter(&pic);
    let fired = |pic: &pocket_ic::PocketIc| -> u64 {
        let (n,): (u64,) = query(pic, id, "timer_fired", ()).expect("timer_fired");
        n
    };
    let () = update(&pic, id, "schedule", (10u64,)).expect("schedule a 10 s timer");
    pic.tick();
    assert_eq!(fired(&pic), 0, "not due yet");
    pic.advance_time(Duration::from_secs(9));
    pic.tick();
    assert_eq!(fired(&pic), 0, "9 s later: still not due");
    pic.advance_time(Duration::from_secs(2));
    // As ic-cdk's own timer tests do: advance the time, one round.
    pic.tick();
    assert_eq!(fired(&pic), 1, "11 s later, one round: the timer ran");
    pic.advance_time(Duration::from_secs(60));
    pic.tick();
    pic.tick();
    assert_eq!(fired(&pic), 1, "a one-shot timer runs once");
}

#[test]
fn every_round_runs_the_heartbeat() {
    let pic = pic();
    let id = counter(&pic);
    let beats = |pic: &pocket_ic::PocketIc| -> u64 {
        let (n,): (u64,) = query(pic, id, "beats", ()).expect("beats");
        n
    };
    let () = update(&pic, id, "start_beating", ()).expect("start_beating");
    let before = beats(&pic);
    for _ in 0..5 {
        pic.tick();
    }
    assert_eq!(beats(&pic) - before, 5, "canister_heartbeat runs once per round");
}

/// A query's view of the time (`ic0.time` in cdk_counter's `time_now`).
fn canister_time(pic: &PocketIc, id: Principal) -> u64 {
    let (t,): (u64,) = query(pic, id, "time_now", ()).expect("time_now");
    t
}

#[test]
fn a_query_sees_set_time_only_from_the_next_round() {
    let pic = pic();
    let id = counter(&pic);
    let last_round = nanos(pic.get_time());
    assert_eq!(canister_time(&pic, id), last_round, "a query sees the time of the last round");
    let t = last_round + 3_600_000_000_000;
    pic.set_time(Time::from_nanos_since_unix_epoch(t));
    assert_eq!(nanos(pic.get_time()), t, "get_time shows set_time at once");
    assert_eq!(canister_time(&pic, id), last_round, "a query still sees the last round's time (PicJS: < the time set)");
    pic.tick();
    assert_eq!(canister_time(&pic, id), t, "the next round runs at exactly the time set");
    assert_eq!(nanos(pic.get_time()), t);
    pic.tick();
    assert_eq!(canister_time(&pic, id), t + 1, "a round after a round is 1 ns later");
    assert_eq!(nanos(pic.get_time()), t + 1);
}

#[test]
fn advance_time_and_tick_give_exactly_that_time() {
    let pic = pic();
    let id = counter(&pic);
    let t0 = nanos(pic.get_time());
    pic.advance_time(Duration::from_secs(1));
    assert_eq!(canister_time(&pic, id), t0, "no round yet");
    pic.tick();
    assert_eq!(canister_time(&pic, id), t0 + 1_000_000_000, "as PicJS's advanceTime + tick");
    pic.advance_time(Duration::ZERO);
    assert_eq!(nanos(pic.get_time()), t0 + 1_000_000_000, "advancing by 0 changes nothing");
    pic.tick();
    assert_eq!(canister_time(&pic, id), t0 + 1_000_000_001);
}

#[test]
fn set_certified_time_is_seen_at_once_and_the_next_round_is_1_ns_later() {
    let pic = pic();
    let id = counter(&pic);
    let t = nanos(pic.get_time()) + 86_400_000_000_000;
    pic.set_certified_time(Time::from_nanos_since_unix_epoch(t));
    assert_eq!(nanos(pic.get_time()), t);
    assert_eq!(canister_time(&pic, id), t, "a certified time is what queries see, without a round");
    pic.tick();
    assert_eq!(canister_time(&pic, id), t + 1);
}

/// `canister_info`'s reply, as far as these tests read it.
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
    origin: Origin,
    details: Option<Details>,
}

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
enum Origin {
    #[serde(rename = "from_user")]
    User { user_id: Principal },
    #[serde(rename = "from_canister")]
    Canister { canister_id: Principal, canister_version: Option<u64> },
}

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
enum Details {
    #[serde(rename = "creation")]
    Creation { controllers: Vec<Principal> },
    #[serde(rename = "code_uninstall")]
    Uninstall,
    #[serde(rename = "code_deployment")]
    Deployment { mode: Mode, module_hash: Vec<u8> },
    #[serde(rename = "controllers_change")]
    Controllers { controllers: Vec<Principal> },
    // Not made here; listed so that the canister's type is a subtype of this
    // one (else Candid decodes every `opt` detail as null).
    #[serde(rename = "load_snapshot")]
    LoadSnapshot(candid::Reserved),
    #[serde(rename = "rename_canister")]
    Rename(candid::Reserved),
}

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq, Clone, Copy)]
enum Mode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade,
}

/// DFINITY's own `canister_info` test (cdk-rs e2e) on ww: with no
/// set_time, each operation moves PocketIC's time by the rounds it runs, and
/// the history's timestamps say exactly when each change happened.
#[test]
fn each_operation_moves_time_by_the_rounds_it_runs() {
    let pic = pic();
    let t0 = nanos(pic.get_time());
    let caller = pic.create_canister(); // round 1
    pic.add_cycles(caller, INIT_CYCLES); // no round
    pic.install_canister(caller, wasm("cdk_caller"), candid::encode_args(()).unwrap(), None); // round 2
    let empty = b"\0asm\x01\0\0\0".to_vec();
    // Round 3 runs the method, which asks for a creation; round 4 creates,
    // round 5 runs the callback, which asks for an install; and so on.
    let (child,): (Principal,) = update(&pic, caller, "lifecycle", (empty.clone(),)).expect("lifecycle");
    assert_eq!(nanos(pic.get_time()), t0 + 17, "17 rounds so far");
    pic.uninstall_canister(child, Some(Principal::anonymous())).expect("uninstall"); // round 18
    pic.install_canister(child, empty.clone(), vec![], Some(Principal::anonymous())); // round 19
    let (mut info,): (CanisterInfo,) = update(&pic, caller, "info", (child,)).expect("info");
    // The IC keeps controllers as a sorted set; ww keeps them in the order
    // they were given (not what this test is about): compare them as sets.
    info.controllers.sort();
    for change in &mut info.recent_changes {
        if let Some(Details::Controllers { controllers }) = &mut change.details {
            controllers.sort();
        }
    }

    let hash = sha256(&empty);
    let by_caller = |version: u64| Origin::Canister { canister_id: caller, canister_version: Some(version) };
    let deployed = |mode| Some(Details::Deployment { mode, module_hash: hash.clone() });
    let controllers = vec![Principal::anonymous(), caller, child];
    let user = Origin::User { user_id: Principal::anonymous() };
    let expected = vec![
        (4, 0, by_caller(1), Some(Details::Creation { controllers: vec![caller] })),
        (6, 1, by_caller(2), deployed(Mode::Install)),
        (8, 2, by_caller(3), Some(Details::Uninstall)),
        (10, 3, by_caller(4), deployed(Mode::Install)),
        (12, 4, by_caller(5), deployed(Mode::Reinstall)),
        (14, 5, by_caller(6), deployed(Mode::Upgrade)),
        (16, 6, by_caller(7), Some(Details::Controllers { controllers: controllers.clone() })),
        (18, 7, Origin::User { user_id: Principal::anonymous() }, Some(Details::Uninstall)),
        (19, 8, user, deployed(Mode::Install)),
    ];
    let expected: Vec<Change> = expected
        .into_iter()
        .map(|(dt, canister_version, origin, details)| Change { timestamp_nanos: t0 + dt, canister_version, origin, details })
        .collect();
    assert_eq!(
        info,
        CanisterInfo { total_num_changes: 9, recent_changes: expected, module_hash: Some(hash.clone()), controllers },
        "t0 = {t0}"
    );
}
