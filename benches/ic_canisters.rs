//! Unmodified IC canisters against ww-cdk components (`make bench`), side
//! by side in one run: inter-canister calls between two ic-cdk 0.20
//! canisters (core modules) and between two ww-cdk components, sequential
//! and 100 in flight; and `ww canister install` of a 2.5 MiB module
//! (chunked through `upload_chunk` + `install_chunked_code`), warm, from
//! the CLI process to the reply. Prints a Markdown table for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candid::{Decode, Encode, Principal};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

fn artifact(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests/target").join(rel);
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    p
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn install(r: &Replica, wasm: &Path, arg: Vec<u8>) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &std::fs::read(wasm).unwrap()).unwrap();
    r.install(admin(), id, InstallMode::Install, m, arg).await.unwrap();
    id
}

/// Calls per second of `method(callee, n[, window])` on `caller`, which
/// makes `n` calls to `callee`.
async fn rate(r: &Replica, caller: Principal, method: &str, arg: Vec<u8>, n: u32) -> f64 {
    let t = Instant::now();
    let bytes = r.call(admin(), caller, method, arg).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(Decode!(&bytes, u32).unwrap(), n, "{method}: every call succeeded");
    n as f64 / secs
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: Some(cache.path().to_path_buf()), ..EngineConfig::default() }).unwrap();
    let r = Replica::new(engine, ReplicaConfig::default()).unwrap();
    let probe = artifact("wasm32-wasip2/release/probe.wasm");
    let (pa, pb) = (install(&r, &probe, Encode!(&Option::<u64>::None).unwrap()).await, install(&r, &probe, Encode!(&Option::<u64>::None).unwrap()).await);
    let caller = install(&r, &artifact("wasm32-unknown-unknown/release/cdk_caller.wasm"), Encode!().unwrap()).await;
    let counter = install(&r, &artifact("wasm32-unknown-unknown/release/cdk_counter.wasm"), Encode!(&Option::<()>::None).unwrap()).await;

    // Alternate the two kinds, 5 rounds each, and take medians.
    const N: u32 = 20_000;
    let mut rows = Vec::new();
    for window in [1u32, 100] {
        let (mut component, mut core) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            component.push(rate(&r, pa, "ping_loop", Encode!(&pb, &N, &window).unwrap(), N).await);
            let core_rate = if window == 1 {
                rate(&r, caller, "bench_seq", Encode!(&counter, &N).unwrap(), N).await
            } else {
                rate(&r, caller, "bench_par", Encode!(&counter, &N, &window).unwrap(), N).await
            };
            core.push(core_rate);
        }
        rows.push((window, median(component), median(core)));
    }

    let install_ms = cli_chunked_install();

    println!("| measure | ww-cdk components | ic-cdk core modules | ratio (core / component) | target |");
    println!("|---|---|---|---|---|");
    for (window, component, core) in rows {
        let what = if window == 1 { "sequential".to_string() } else { format!("{window} in flight") };
        println!("| inter-canister calls, {what} | {component:.0}/s | {core:.0}/s | {:.2} | ≥ 1.0 |", core / component);
    }
    println!("| `ww canister install` 2.5 MiB module (3 chunks), warm, CLI process included | - | median {install_ms:.1} ms | - | < 100 ms |");
}

/// Median ms of `ww canister install --mode reinstall` of cdk_counter padded
/// to 2.5 MiB (so it goes in chunks), against a serving node, after a first
/// install has compiled it.
fn cli_chunked_install() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut module = std::fs::read(artifact("wasm32-unknown-unknown/release/cdk_counter.wasm")).unwrap();
    let pad = (5 << 19) - module.len();
    // A custom section `padding` of `pad` bytes (a module stays valid).
    let name = b"padding";
    let mut body = leb(name.len() as u64);
    body.extend_from_slice(name);
    body.extend((0..pad).map(|i| (i * 7 + (i >> 10)) as u8));
    module.push(0);
    module.extend(leb(body.len() as u64));
    module.extend(body);
    let wasm = dir.path().join("big.wasm");
    std::fs::write(&wasm, &module).unwrap();

    let image = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(image.path().join("bin")).unwrap();
    std::fs::copy(artifact("wasm32-wasip2/release/testkit.wasm"), image.path().join("bin/main.wasm")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ww = env!("CARGO_BIN_EXE_ww");
    let mut node = Command::new(ww)
        .env("WW_CACHE_DIR", cache.path())
        .args(["run", "--serve", "--state"])
        .arg(state.path())
        .arg(image.path())
        .args(["--", "exit", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| Command::new(ww).args(args).arg("--state").arg(state.path()).stderr(Stdio::null()).output().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cli(&["canister", "create", "big"]).status.success() {
        assert!(Instant::now() < deadline, "the node never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    let path = wasm.to_str().unwrap();
    let first = cli(&["canister", "install", "big", path]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stdout));
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let out = cli(&["canister", "install", "big", path, "--mode", "reinstall"]);
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("chunks"), "installed in chunks");
    }
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).status();
    let _ = node.wait();
    median(samples)
}

/// Unsigned LEB128 (custom section lengths).
fn leb(n: u64) -> Vec<u8> {
    ww::certified::hash::uleb128(u128::from(n))
}
