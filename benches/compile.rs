//! Compile-time benchmarks (`cargo bench --bench compile`): cold compile
//! time (wall and CPU) of real guests per compiler setting, a cold
//! 11-canister load through the engine, `ww run` deploying 11 canisters with
//! a cold cache per `WW_COMPILER`, and the execution speed of each
//! compiler's canister code, with a check that each compiler charges
//! instructions deterministically. Prints Markdown tables.
//!
//! Arguments after `--bench`: `quick` skips the slow settings;
//! `only=compile|deploy|ww|exec` runs one section; `setting=<substring>`
//! filters the compile table; `WW_BENCH_REPS=n` sets its repetitions.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use candid::{Decode, Encode, Principal};
use ww::engine::{Codegen, Engine, EngineConfig, EngineKind, wasmtime_config};
use ww::replica::{InstallMode, Limits, Replica, ReplicaConfig};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guest_path(name: &str) -> PathBuf {
    let p = repo().join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"));
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    p
}

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(guest_path(name)).unwrap()
}

/// The same component with a custom section appended: new bytes, new hash,
/// the same code (so each copy is a cold compile).
fn variant(bytes: &[u8], i: usize) -> Vec<u8> {
    let name = b"ww-bench";
    let payload = format!("copy {i}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    assert!(section.len() < 128);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

struct Setting {
    name: &'static str,
    codegen: Codegen,
    tweak: fn(&mut wasmtime::Config),
    slow: bool,
}

fn settings() -> Vec<Setting> {
    fn none(_: &mut wasmtime::Config) {}
    fn serial(c: &mut wasmtime::Config) {
        c.parallel_compilation(false);
    }
    fn single_pass(c: &mut wasmtime::Config) {
        c.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
    }
    fn no_address_map(c: &mut wasmtime::Config) {
        c.generate_address_map(false);
    }
    fn inlining(c: &mut wasmtime::Config) {
        c.compiler_inlining(wasmtime::Inlining::Yes);
    }
    fn opt_none(c: &mut wasmtime::Config) {
        c.cranelift_opt_level(wasmtime::OptLevel::None);
    }
    fn opt_none_serial(c: &mut wasmtime::Config) {
        opt_none(c);
        serial(c);
    }
    fn opt_none_single_pass(c: &mut wasmtime::Config) {
        opt_none(c);
        single_pass(c);
    }
    use Codegen::{Cranelift, Winch};
    vec![
        Setting { name: "cranelift speed (before)", codegen: Cranelift, tweak: none, slow: false },
        Setting { name: "cranelift speed, 1 thread", codegen: Cranelift, tweak: serial, slow: true },
        Setting { name: "cranelift speed, single-pass regalloc", codegen: Cranelift, tweak: single_pass, slow: true },
        Setting { name: "cranelift speed, no address map", codegen: Cranelift, tweak: no_address_map, slow: true },
        Setting { name: "cranelift speed, inlining", codegen: Cranelift, tweak: inlining, slow: true },
        Setting { name: "cranelift opt none", codegen: Cranelift, tweak: opt_none, slow: false },
        Setting { name: "cranelift opt none, 1 thread", codegen: Cranelift, tweak: opt_none_serial, slow: true },
        Setting { name: "cranelift opt none, single-pass regalloc", codegen: Cranelift, tweak: opt_none_single_pass, slow: true },
        Setting { name: "winch", codegen: Winch, tweak: none, slow: false },
        Setting { name: "winch, 1 thread", codegen: Winch, tweak: serial, slow: true },
    ]
}

/// CPU time (user + system) of this process so far, in ms.
fn cpu_ms() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Median wall and CPU ms of `reps` cold compiles of `bytes` with this setting.
fn compile_ms(kind: EngineKind, setting: &Setting, bytes: &[u8], reps: usize) -> (f64, f64) {
    let config = EngineConfig { kind, ..EngineConfig::default() };
    let mut cfg = wasmtime_config(&config, setting.codegen, false);
    (setting.tweak)(&mut cfg);
    let engine = wasmtime::Engine::new(&cfg).unwrap();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (t, c) = (Instant::now(), cpu_ms());
        let artifact = engine.precompile_component(bytes).unwrap();
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push(cpu_ms() - c);
        std::hint::black_box(artifact);
    }
    (median(wall), median(cpu))
}

fn compile_table(quick: bool, filter: Option<&str>) {
    let guests = [
        ("counter", EngineKind::Canister),
        ("probe", EngineKind::Canister),
        ("testkit", EngineKind::Process),
        ("pid0", EngineKind::Process),
    ];
    let reps = std::env::var("WW_BENCH_REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    println!("### Cold compile of one component: wall ms / CPU ms (median of {reps}, 2 cores)\n");
    print!("| setting |");
    for (name, _) in &guests {
        print!(" {name} ({} KiB) |", guest(name).len() / 1024);
    }
    println!("\n|---|{}", "---|".repeat(guests.len()));
    for s in settings() {
        if (quick && s.slow) || filter.is_some_and(|f| !s.name.contains(f)) {
            continue;
        }
        print!("| {} |", s.name);
        for (name, kind) in &guests {
            let (wall, cpu) = compile_ms(*kind, &s, &guest(name), reps);
            print!(" {wall:.0} / {cpu:.0} |");
        }
        println!();
    }
    println!();
}

/// Loads `n` distinct canister components (probe/counter copies) through a
/// canister engine with an empty cache, `threads` at a time; returns the wall
/// time until every load returned.
fn deploy_ms(codegen: Codegen, n: usize, threads: usize) -> f64 {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(&EngineConfig {
        kind: EngineKind::Canister,
        cache_dir: Some(cache.path().to_path_buf()),
        codegen: Some(codegen),
        ..EngineConfig::default()
    })
    .unwrap();
    let (probe, counter) = (guest("probe"), guest("counter"));
    let inputs: Vec<Vec<u8>> =
        (0..n).map(|i| variant(if i % 2 == 0 { &probe } else { &counter }, i)).collect();
    let t = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(bytes) = inputs.get(i) else { return };
                    engine.load("bench", bytes).unwrap();
                }
            });
        }
    });
    t.elapsed().as_secs_f64() * 1e3
}

fn deploy_table() {
    println!("### 11 distinct ~600 KiB canister components, cold cache, through `Engine::load` (wall ms)\n");
    println!("| compiler | 1 at a time | 2 at a time | 11 at a time |");
    println!("|---|---|---|---|");
    for codegen in [Codegen::Cranelift, Codegen::Winch] {
        let serial = deploy_ms(codegen, 11, 1);
        let two = deploy_ms(codegen, 11, 2);
        let all = deploy_ms(codegen, 11, 11);
        println!("| {} | {serial:.0} | {two:.0} | {all:.0} |", codegen.name());
    }
    println!();
}

fn replica(codegen: Codegen, limits: Limits) -> Replica {
    let engine = Engine::new(&EngineConfig {
        kind: EngineKind::Canister,
        codegen: Some(codegen),
        ..EngineConfig::default()
    })
    .unwrap();
    Replica::new(engine, ReplicaConfig { limits, ..ReplicaConfig::default() }).unwrap()
}

async fn install(r: &Replica, wasm: &[u8]) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, wasm).unwrap();
    r.install(admin(), id, InstallMode::Install, m, Encode!(&Option::<u64>::None).unwrap())
        .await
        .unwrap();
    id
}

struct Exec {
    calls_w1: f64,
    calls_w100: f64,
    update_us: f64,
    slow_ms: f64,
    checksum: u64,
}

async fn execution(codegen: Codegen) -> Exec {
    let r = replica(codegen, Limits::default());
    let wasm = guest("probe");
    let a = install(&r, &wasm).await;
    let b = install(&r, &wasm).await;
    let mut calls = Vec::new();
    for window in [1u32, 100] {
        let n = 10_000u32;
        let t = Instant::now();
        let bytes = r.call(admin(), a, "ping_loop", Encode!(&b, &n, &window).unwrap()).await.unwrap();
        assert_eq!(Decode!(&bytes, u32).unwrap(), n);
        calls.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let mut update_us = Vec::new();
    for i in 0..1000u64 {
        let t = Instant::now();
        r.call(admin(), a, "set", Encode!(&i).unwrap()).await.unwrap();
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let got = Decode!(&r.query(admin(), a, "get", Encode!().unwrap()).await.unwrap(), u64).unwrap();
    assert_eq!(got, 999);
    let mut slow_ms = Vec::new();
    let mut checksum = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let bytes = r.call(admin(), a, "slow", Encode!(&20_000_000u64).unwrap()).await.unwrap();
        slow_ms.push(t.elapsed().as_secs_f64() * 1e3);
        checksum = Decode!(&bytes, u64).unwrap();
    }
    Exec {
        calls_w1: calls[0],
        calls_w100: calls[1],
        update_us: median(update_us),
        slow_ms: median(slow_ms),
        checksum,
    }
}

/// The smallest per-update instruction limit under which `slow(iterations)`
/// completes: the instructions it is charged, to the unit.
async fn instructions_of_slow(codegen: Codegen, iterations: u64) -> u64 {
    let wasm = guest("probe");
    let (mut lo, mut hi) = (1u64, 1u64 << 32); // lo fails, hi succeeds
    let engine_holder = replica(codegen, Limits::default());
    let engine = engine_holder.runtime().engine().clone();
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let r = Replica::new(
            engine.clone(),
            ReplicaConfig {
                limits: Limits { instructions_per_update: mid, ..Limits::default() },
                ..ReplicaConfig::default()
            },
        )
        .unwrap();
        let id = install(&r, &wasm).await;
        match r.call(admin(), id, "slow", Encode!(&iterations).unwrap()).await {
            Ok(_) => hi = mid,
            Err(_) => lo = mid,
        }
    }
    hi
}

async fn execution_table() {
    println!("### Execution speed of each compiler's code (probe canister)\n");
    println!(
        "| code | inter-canister calls/s (window 1) | calls/s (window 100) | update round trip (median) | `slow(2e7)` CPU loop | instructions charged for `slow(1000)` |"
    );
    println!("|---|---|---|---|---|---|");
    let mut checksums = Vec::new();
    for codegen in [Codegen::Cranelift, Codegen::Winch] {
        let e = execution(codegen).await;
        let instr = instructions_of_slow(codegen, 1000).await;
        // Deterministic: the same count again, from a fresh engine.
        assert_eq!(instr, instructions_of_slow(codegen, 1000).await);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} µs | {:.0} ms | {instr} |",
            codegen.name(),
            e.calls_w1,
            e.calls_w100,
            e.update_us,
            e.slow_ms
        );
        checksums.push(e.checksum);
    }
    assert!(checksums.windows(2).all(|w| w[0] == w[1]), "results differ between compilers: {checksums:?}");
    println!(
        "\nResults are identical; each compiler charges the same instructions every time, but Cranelift \
         and Winch charge differently, so one canister engine must never mix them.\n"
    );
}

/// The headline job end to end: `ww run` of a testkit image whose pid0
/// deploys 11 distinct canisters, with a cold compile cache, per compiler.
fn ww_deploy_table() {
    let image = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(image.path().join("bin")).unwrap();
    std::fs::create_dir_all(image.path().join("lib")).unwrap();
    std::fs::copy(guest_path("testkit"), image.path().join("bin/main.wasm")).unwrap();
    let (probe, counter) = (guest("probe"), guest("counter"));
    let mut args = vec!["deploy".to_string()];
    for i in 0..11 {
        let bytes = variant(if i % 2 == 0 { &probe } else { &counter }, i);
        std::fs::write(image.path().join(format!("lib/c{i}.wasm")), bytes).unwrap();
        args.push(format!("c{i}"));
        args.push(format!("/lib/c{i}.wasm"));
    }
    println!("### `ww run` deploying 11 canisters (testkit pid0, 1 MiB, compiles too)\n");
    println!("| compiler (`WW_COMPILER`) | cold cache | warm cache (2nd run) |");
    println!("|---|---|---|");
    for compiler in ["", "cranelift", "winch"] {
        let cache = tempfile::tempdir().unwrap();
        let run = || {
            let t = Instant::now();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ww"));
            if compiler.is_empty() {
                cmd.env_remove("WW_COMPILER");
            } else {
                cmd.env("WW_COMPILER", compiler);
            }
            let out = cmd
                .env("WW_CACHE_DIR", cache.path())
                .env("NO_COLOR", "1")
                .env_remove("RUST_LOG")
                .arg("run")
                .arg(image.path())
                .arg("--")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "ww run failed ({compiler}):\n{stderr}");
            assert_eq!(stderr.matches("DEPLOYED").count(), 11, "{stderr}");
            ms
        };
        let cold = run();
        let warm = run();
        let name = if compiler.is_empty() { "default: winch canisters, cranelift processes" } else { compiler };
        println!("| {name} | {cold:.0} ms | {warm:.0} ms |");
    }
    println!();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let quick = std::env::args().any(|a| a == "quick");
    let only = std::env::args().find_map(|a| a.strip_prefix("only=").map(str::to_string));
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if run("compile") {
        let filter = std::env::args().find_map(|a| a.strip_prefix("setting=").map(str::to_string));
        compile_table(quick, filter.as_deref());
    }
    if run("deploy") {
        deploy_table();
    }
    if run("ww") {
        ww_deploy_table();
    }
    if run("exec") {
        execution_table().await;
    }
}
