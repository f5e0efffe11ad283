//! PocketIC through the real `pocket-ic` 13 client against ww
//! (POCKET_IC_BIN = target/<profile>/pocket-ic): how long `PocketIc::new()`
//! takes (version check, server spawn that defers to the running server,
//! instance creation), creating + installing a 1 MiB ic-cdk canister
//! (cdk_caller, 1.0 MiB), and sequential update calls (submit + await, one
//! round each). Prints one line per figure; BENCHMARKS.md records them.

use std::time::{Duration, Instant};

use candid::{Decode, Encode};
use pocket_ic::PocketIc;

fn wasm(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests/target/wasm32-unknown-unknown/release").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} is missing ({e}): run `make ic-guests`", path.display()))
}

fn per(d: Duration, n: u32) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0 / f64::from(n))
}

fn main() {
    assert!(std::env::var_os("POCKET_IC_BIN").is_some(), "set POCKET_IC_BIN to ww's pocket-ic symlink (`make bench` does)");
    let caller = wasm("cdk_caller");
    let counter = wasm("cdk_counter");
    let no_init = Encode!(&Option::<()>::None).unwrap();

    // Warm: the first instance starts the server and fills the compile cache.
    let warm = PocketIc::new();
    let id = warm.create_canister();
    warm.add_cycles(id, 2_000_000_000_000);
    warm.install_canister(id, caller.clone(), Encode!().unwrap(), None);
    drop(warm);

    const NEW: u32 = 20;
    let started = Instant::now();
    for _ in 0..NEW {
        drop(PocketIc::new());
    }
    println!("pocket_ic_new: {} per PocketIc::new() + drop ({NEW} runs)", per(started.elapsed(), NEW));

    let pic = PocketIc::new();
    const INSTALLS: u32 = 20;
    let started = Instant::now();
    for _ in 0..INSTALLS {
        let id = pic.create_canister();
        pic.add_cycles(id, 2_000_000_000_000);
        pic.install_canister(id, caller.clone(), Encode!().unwrap(), None);
    }
    println!(
        "create_install_1mib: {} per create + add_cycles + install of cdk_caller ({} bytes, {INSTALLS} runs)",
        per(started.elapsed(), INSTALLS),
        caller.len()
    );

    let id = pic.create_canister();
    pic.add_cycles(id, 2_000_000_000_000);
    pic.install_canister(id, counter, no_init, None);
    const CALLS: u32 = 2000;
    let started = Instant::now();
    let mut last = 0;
    for _ in 0..CALLS {
        let reply = pic.update_call(id, candid::Principal::anonymous(), "inc", Encode!().unwrap()).expect("inc");
        last = Decode!(&reply, u64).unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(last, u64::from(CALLS));
    println!(
        "update_calls_sequential: {:.0} calls/s ({} per update_call, {CALLS} calls)",
        f64::from(CALLS) / elapsed.as_secs_f64(),
        per(elapsed, CALLS)
    );
    let started = Instant::now();
    for _ in 0..CALLS {
        pic.query_call(id, candid::Principal::anonymous(), "get", Encode!().unwrap()).expect("get");
    }
    let elapsed = started.elapsed();
    println!("query_calls_sequential: {:.0} calls/s ({CALLS} calls)", f64::from(CALLS) / elapsed.as_secs_f64());
}
