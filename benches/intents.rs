//! Inter-canister calls with an intent against the same calls without
//! (`make bench`), side by side in one run: a caller makes `n` calls to a
//! callee's `pong`, one at a time and 100 in flight, each with an intent
//! (key "bench", quantity 1, `max_in_flight` = the window: reserve in the
//! execution that sends, commit in the callback) or none. Both canisters
//! are `guests/canisters/intents`. Prints a Markdown table for
//! BENCHMARKS.md; the target is at least half the plain rate.

use std::path::PathBuf;
use std::time::Instant;

use candid::{Decode, Encode, Principal};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

async fn install(r: &Replica) -> Principal {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-wasip2/release/intents.wasm");
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &std::fs::read(p).unwrap()).unwrap();
    r.install(admin(), id, InstallMode::Install, m, Encode!(&Option::<()>::None).unwrap()).await.unwrap();
    id
}

fn main() {
    let n: u32 = std::env::args().skip(1).find(|a| !a.starts_with("--")).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cache = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: Some(cache.path().to_path_buf()), ..EngineConfig::default() }).unwrap();
        let r = Replica::new(engine, ReplicaConfig::default()).unwrap();
        let (caller, callee) = (install(&r).await, install(&r).await);
        let rate = |window: u32, with_intent: bool| {
            let r = r.clone();
            async move {
                let t = Instant::now();
                let bytes = r.call(admin(), caller, "bench_loop", Encode!(&callee, &n, &window, &with_intent).unwrap()).await.unwrap();
                assert_eq!(Decode!(&bytes, u32).unwrap(), n, "every call succeeds");
                n as f64 / t.elapsed().as_secs_f64()
            }
        };
        // Warm up, then alternate the two kinds three times each.
        rate(100, true).await;
        rate(100, false).await;
        println!("| calls to `pong` | with an intent | plain | ratio | target |");
        println!("|---|---|---|---|---|");
        for window in [1u32, 100] {
            let (mut with, mut plain) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                with.push(rate(window, true).await);
                plain.push(rate(window, false).await);
            }
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (w, p) = (median(with), median(plain));
            let label = if window == 1 { "sequential".to_string() } else { format!("{window} in flight") };
            println!("| {label}, {n} calls | {w:.0}/s | {p:.0}/s | {:.2}× | ≥ 0.5× |", w / p);
        }
    });
}
