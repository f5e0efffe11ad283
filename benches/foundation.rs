//! Foundation benchmarks (`make bench`): boot-to-exit wall time of
//! `ww run examples/images/echo` with a warm compile cache, `runBytes` spawn
//! latency, and echo round trips over a guest's stdio. Prints a Markdown
//! table for BENCHMARKS.md.
//!
//! Spawn and echo figures are measured inside the guest (testkit's
//! `bench-spawn` / `bench-echo` scenarios), so they include the whole path:
//! guest executor, capnp on both sides, the stdio pipes and the host servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ww(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ww"));
    c.env("WW_CACHE_DIR", cache).env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run ww");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ww failed:\n{stderr}");
    stderr
}

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

fn marker_line<'a>(stderr: &'a str, marker: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} line in:\n{stderr}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo test --benches` runs benches with --bench absent; only measure
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cache = tempfile::tempdir().expect("tempdir");
    let echo_image = repo().join("examples/images/echo");
    let testkit = repo().join("guests/target/wasm32-wasip2/release/testkit.wasm");
    assert!(testkit.is_file(), "{} missing: run `make bench`", testkit.display());
    let tk_image = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tk_image.path().join("bin")).unwrap();
    std::fs::copy(&testkit, tk_image.path().join("bin/main.wasm")).unwrap();
    std::fs::create_dir_all(tk_image.path().join("lib")).unwrap();
    std::fs::copy(echo_image.join("lib/child-echo.wasm"), tk_image.path().join("lib/child-echo.wasm"))
        .expect("examples/images/echo/lib/child-echo.wasm (run `make bench`)");

    // Warm boot-to-exit.
    let cold_started = Instant::now();
    run_ok(ww(cache.path()).arg("run").arg(&echo_image));
    let cold_ms = cold_started.elapsed().as_secs_f64() * 1e3;
    let mut boots = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        run_ok(ww(cache.path()).arg("run").arg(&echo_image));
        boots.push(t.elapsed().as_secs_f64() * 1e3);
    }
    boots.sort_by(f64::total_cmp);

    // Spawn latency (cached component): child-echo (the echo image's child)
    // and testkit itself, a bigger component (the cost grows with the bytes
    // shipped and hashed).
    let spawn_child = run_ok(ww(cache.path()).arg("run").arg(tk_image.path()).args(["--", "bench-spawn", "1000", "/lib/child-echo.wasm"]));
    let spawn_child = marker_line(&spawn_child, "BENCH_SPAWN");
    let spawn = run_ok(ww(cache.path()).arg("run").arg(tk_image.path()).args(["--", "bench-spawn", "1000"]));
    let spawn = marker_line(&spawn, "BENCH_SPAWN");

    // Echo round trips.
    let echo = run_ok(ww(cache.path()).arg("run").arg(tk_image.path()).args(["--", "bench-echo", "200000", "256"]));
    let echo = marker_line(&echo, "BENCH_ECHO");

    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| `ww run examples/images/echo`, cold compile cache | {cold_ms:.0} ms | - |");
    println!(
        "| `ww run examples/images/echo`, warm cache (50 runs) | median {:.1} ms, p90 {:.1} ms | < 30 ms |",
        percentile(&boots, 0.5),
        percentile(&boots, 0.9)
    );
    for (what, spawn) in [("child-echo", spawn_child), ("testkit", spawn)] {
        println!(
            "| `runBytes` spawn, cached {what} ({:.0} KiB, 1000 spawns) | median {:.0} µs, p90 {:.0} µs; spawn+wait median {:.0} µs | < 500 µs median |",
            field(spawn, "bytes") / 1024.0,
            field(spawn, "spawn_p50_us"),
            field(spawn, "spawn_p90_us"),
            field(spawn, "spawn_wait_p50_us")
        );
    }
    println!(
        "| echo over stdio, sequential | {:.0} calls/s ({:.1} µs/call) | ≥ 30,000/s |",
        field(echo, "seq_rps"),
        field(echo, "seq_us")
    );
    println!(
        "| echo over stdio, pipelined (256 in flight) | {:.0} calls/s | ≥ 100,000/s |",
        field(echo, "pipelined_rps")
    );
}
