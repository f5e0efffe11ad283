//! Canister runtime benchmarks (`make bench`): inter-canister calls per
//! second, the per-execution heap commit, trap rollback by heap size, install
//! cold and warm, and one-shot `ww call` latency including the CLI process.
//! Prints a Markdown table for BENCHMARKS.md.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candid::{Decode, Encode, Principal};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::memory::{CanisterMemory, PAGE};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

fn guest(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"));
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    p
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

fn replica(cache: &std::path::Path) -> Replica {
    let engine = Engine::new(&EngineConfig {
        kind: EngineKind::Canister,
        cache_dir: Some(cache.to_path_buf()),
        ..EngineConfig::default()
    })
    .unwrap();
    Replica::new(engine, ReplicaConfig::default()).unwrap()
}

async fn install(r: &Replica, name: &str) -> (Principal, Duration) {
    let id = r.create_canister(vec![admin()]);
    let wasm = std::fs::read(guest(name)).unwrap();
    let t = Instant::now();
    let m = ww::replica::install::prepare_module(r, &id, &wasm).unwrap();
    r.install(admin(), id, InstallMode::Install, m.component, m.hash, Encode!(&Option::<u64>::None).unwrap())
        .await
        .unwrap();
    (id, t.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median µs of a commit that finds `dirty` written pages on a heap of `mib` MiB.
fn commit_cost(mib: usize, dirty: usize) -> f64 {
    let m = CanisterMemory::new(mib << 20, 1 << 20).unwrap();
    m.grow_for_bench(mib << 20).unwrap();
    // Touch everything once so the heap is resident, then commit.
    for page in 0..(mib << 20) / PAGE {
        m.write_for_bench(page * PAGE, &[1]);
    }
    m.commit().unwrap();
    let mut samples = Vec::new();
    for round in 0..2000u32 {
        for i in 0..dirty {
            m.write_for_bench(i * 7 * PAGE, &round.to_le_bytes());
        }
        let t = Instant::now();
        let stats = m.commit().unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(stats.dirty_pages >= dirty.min(1));
    }
    median(samples)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let r = replica(cache.path());
    let (_, cold) = install(&r, "probe").await;
    let (a, warm) = install(&r, "probe").await;
    let (b, _) = install(&r, "probe").await;
    let probe_kib = std::fs::metadata(guest("probe")).unwrap().len() / 1024;

    // Inter-canister calls: A calls B.pong n times.
    let mut rows = Vec::new();
    for window in [1u32, 100] {
        let n = 20_000u32;
        let t = Instant::now();
        let bytes = r.call(admin(), a, "ping_loop", Encode!(&b, &n, &window).unwrap()).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let ok = Decode!(&bytes, u32).unwrap();
        assert_eq!(ok, n);
        rows.push((window, n as f64 / secs));
    }

    // Commit cost on 16 MiB with a few dirty pages (direct, no Wasm).
    let commit_16 = commit_cost(16, 3);
    let commit_64 = commit_cost(64, 3);

    // A full update execution round trip (ingress, execute, commit, reply).
    let mut update_us = Vec::new();
    for i in 0..2000u64 {
        let t = Instant::now();
        r.call(admin(), a, "set", Encode!(&i).unwrap()).await.unwrap();
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
    }

    // Trap rollback by heap size: trapping call latency minus a normal call's.
    let mut rollback = Vec::new();
    for mib in [1u32, 16, 64] {
        let (c, _) = install(&r, "probe").await;
        if mib > 1 {
            r.call(admin(), c, "grow_heap", Encode!(&mib).unwrap()).await.unwrap();
        }
        let mut ok_us = Vec::new();
        let mut trap_us = Vec::new();
        for i in 0..300u64 {
            let t = Instant::now();
            r.call(admin(), c, "set", Encode!(&i).unwrap()).await.unwrap();
            ok_us.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            r.call(admin(), c, "reply_twice", Encode!().unwrap()).await.unwrap_err();
            trap_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        rollback.push((mib, median(trap_us) - median(ok_us)));
    }

    // One-shot `ww call` including the CLI process, against a serving node.
    let ww_call = ww_call_latency();

    println!("| measure | result | target |");
    println!("|---|---|---|");
    for (window, rate) in &rows {
        let what = if *window == 1 { "sequential".to_string() } else { format!("{window} in flight") };
        println!("| inter-canister calls, A calls B (small payload), {what} | {rate:.0} calls/s | ≥ 50,000/s |");
    }
    println!("| heap commit, 3 dirty pages, 16 MiB heap | {commit_16:.1} µs | < 20 µs |");
    println!("| heap commit, 3 dirty pages, 64 MiB heap | {commit_64:.1} µs | - |");
    println!("| update call round trip (ingress → execute → commit → reply) | median {:.0} µs | - |", median(update_us));
    for (mib, us) in rollback {
        let target = if mib == 16 { "< 1 ms" } else { "-" };
        println!("| trap rollback, heap {mib} MiB (trapping call minus normal call) | {us:.0} µs | {target} |");
    }
    println!("| install {probe_kib} KiB canister, cold (compile) | {:.0} ms | - |", cold.as_secs_f64() * 1e3);
    println!("| install {probe_kib} KiB canister, warm compile cache | {:.1} ms | - |", warm.as_secs_f64() * 1e3);
    println!("| `ww call counter inc` one-shot, including the CLI process | median {ww_call:.1} ms | < 20 ms |");
}

fn ww_call_latency() -> f64 {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let image = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(image.path().join("bin")).unwrap();
    std::fs::create_dir_all(image.path().join("lib")).unwrap();
    std::fs::copy(guest("testkit"), image.path().join("bin/main.wasm")).unwrap();
    std::fs::copy(guest("counter"), image.path().join("lib/counter.wasm")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ww = env!("CARGO_BIN_EXE_ww");
    let mut node = Command::new(ww)
        .env("WW_CACHE_DIR", cache.path())
        .current_dir(&root)
        .args(["run", "--serve", "--state"])
        .arg(state.path())
        .arg(image.path())
        .args(["--", "deploy", "counter", "/lib/counter.wasm"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the counter answers.
    let call = || {
        Command::new(ww)
            .args(["call", "counter", "inc", "--state"])
            .arg(state.path())
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !call().status.success() {
        assert!(Instant::now() < deadline, "the node never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert!(call().status.success());
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).status();
    let _ = node.wait();
    median(samples)
}
