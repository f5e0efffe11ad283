//! Time, rounds and timers through the real pocket-ic 13 client: an instance
//! starts at PocketIC's genesis and its time moves only when the test moves
//! it (set_time / advance_time) or by the nanoseconds each round adds; timers
//! (ic-cdk-timers) and heartbeats run in rounds (`tick`).

mod common;

use std::time::Duration;

use common::*;
use pocket_ic::{PocketIcBuilder, Time};

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
