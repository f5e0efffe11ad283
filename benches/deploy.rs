//! The IC deploy simulation (`make bench`): wall time of the whole
//! `ww run examples/images/ic-deploy` (boot, create root, stage the 10-role
//! release set, bootstrap the store, install nine roles chunked, print the
//! overview, exit) with nothing compiled and with the compile cache warm,
//! and the staging throughput the pipeline reports (`Staged ... (N MB/s)`:
//! manifests, prepares and chunks from pid0 over its stdio session into
//! root, each chunk verified by SHA-256 on the host and committed).
//!
//! Warm runs alternate the two canister heap mechanisms
//! (`WW_HEAP_TRACKING=written`, the kernel's write tracking, and
//! `compare`, the fallback), so both are measured side by side in one run.
//!
//! Then the same warm deploy into a fresh state directory (`--state`:
//! every reply to pid0 waits for the cut that holds it), alternating with
//! the memory-only one, and the restart of the deployed node (`ww serve
//! --state`: 11 canisters restored; the replica's own restore time from
//! its log, and the process start to serving).
//!
//! Arguments: `cargo bench --bench deploy -- [cold-runs] [warm-runs]`
//! (default 3 and 20 per mechanism). Prints a Markdown table for
//! BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One `ww run` of the image with `cache` as its compile cache: (wall ms,
/// staging MB/s, the pipeline's own total ms).
fn deploy(ww: &Path, image: &Path, cache: &Path, heap: &str) -> (f64, f64, f64) {
    deploy_into(ww, image, cache, heap, None)
}

/// [`deploy`], keeping the replica in `state` if given.
fn deploy_into(ww: &Path, image: &Path, cache: &Path, heap: &str, state: Option<&Path>) -> (f64, f64, f64) {
    let started = Instant::now();
    let mut cmd = Command::new(ww);
    cmd.arg("run");
    if let Some(dir) = state {
        cmd.arg("--state").arg(dir);
    }
    let out = cmd
        .arg(image)
        .env("WW_CACHE_DIR", cache)
        .env("WW_HEAP_TRACKING", heap)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run ww");
    let wall = started.elapsed().as_secs_f64() * 1e3;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ww run failed:\n{log}");
    // "Staged 6.60 MiB in 12.3 ms (560 MB/s)"
    let mbs = log
        .lines()
        .find_map(|l| l.split(" ms (").nth(1)?.split(" MB/s)").next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no staging line in:\n{log}"));
    let total = log
        .lines()
        .find_map(|l| l.split("total_ms=").nth(1)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no DEPLOY_OK line in:\n{log}"));
    (wall, mbs, total)
}

/// `ww serve --state <dir>` until it serves, then SIGKILL: (the restore's
/// µs from its log line, ms from the process start to serving).
fn restart(ww: &Path, cache: &Path, state: &Path) -> (f64, f64) {
    use std::io::BufRead;
    let started = Instant::now();
    let mut child = Command::new(ww)
        .args(["serve", "--state"])
        .arg(state)
        .env("WW_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ww serve");
    let mut restore = None;
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let wall = loop {
        let line = lines.next().expect("ww serve ended before serving").expect("read");
        if let Some(us) = line.split("elapsed_us=").nth(1) {
            restore = us.split_whitespace().next().and_then(|n| n.parse::<f64>().ok());
        }
        if line.contains("serving until") {
            break started.elapsed().as_secs_f64() * 1e3;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    (restore.expect("no restore line"), wall)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let cold_runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let warm_runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);

    let ww = repo().join("target/release/ww");
    assert!(ww.is_file(), "{} missing: run `make bench` (it builds the release binary)", ww.display());
    let image = repo().join("examples/images/ic-deploy");
    assert!(image.join("bin/main.wasm").is_file(), "examples/images/ic-deploy is not built: run `make bench`");
    let payload: u64 = std::fs::read_dir(image.join("lib/release"))
        .expect("lib/release")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let mut cold = Vec::new();
    for _ in 0..cold_runs {
        let cache = tempfile::tempdir().expect("tempdir");
        cold.push(deploy(&ww, &image, cache.path(), "written").0);
    }
    let cache = tempfile::tempdir().expect("tempdir");
    deploy(&ww, &image, cache.path(), "written");
    const HEAPS: [&str; 2] = ["written", "compare"];
    let mut runs: [(Vec<f64>, Vec<f64>, Vec<f64>); 2] = Default::default();
    for _ in 0..warm_runs {
        for (heap, (warm, mbs, total)) in HEAPS.iter().zip(runs.iter_mut()) {
            let (w, m, t) = deploy(&ww, &image, cache.path(), heap);
            warm.push(w);
            mbs.push(m);
            total.push(t);
        }
    }
    let [(warm, mbs, total), (warm_c, mbs_c, total_c)] = runs;
    // With a state directory, alternating with memory only.
    let (mut with_state, mut memory_only) = (Vec::new(), Vec::new());
    let state = tempfile::tempdir().expect("tempdir");
    for i in 0..warm_runs {
        let dir = state.path().join(format!("run{i}"));
        with_state.push(deploy_into(&ww, &image, cache.path(), "written", Some(&dir)).0);
        memory_only.push(deploy(&ww, &image, cache.path(), "written").0);
    }
    // Restarts of the deployed node.
    let deployed = state.path().join("run0");
    let (mut restore, mut serving) = (Vec::new(), Vec::new());
    for _ in 0..warm_runs.min(10) {
        let (us, wall) = restart(&ww, cache.path(), &deployed);
        restore.push(us / 1e3);
        serving.push(wall);
    }

    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| `ww run examples/images/ic-deploy`, cold (empty compile cache, {} KiB of components), {cold_runs} runs | median {:.0} ms | < 3,000 ms |",
        payload / 1024,
        median(cold)
    );
    let ratio = |a: f64, b: f64| format!("{:.2}×", a / b);
    println!(
        "| `ww run examples/images/ic-deploy`, warm compile cache, {warm_runs} runs, heap write tracking | median {:.0} ms, p90 {:.0} ms ({} the fallback) | < 150 ms |",
        median(warm.clone()),
        percentile(warm.clone(), 0.9),
        ratio(median(warm.clone()), median(warm_c.clone()))
    );
    println!(
        "| the same, heap page compare (fallback) | median {:.0} ms, p90 {:.0} ms | - |",
        median(warm_c.clone()),
        percentile(warm_c, 0.9)
    );
    println!(
        "| the pipeline's own time (pid0 start → overview printed), warm, write tracking / compare | median {:.0} ms / {:.0} ms | - |",
        median(total),
        median(total_c)
    );
    println!(
        "| warm deploy into a fresh state directory (`--state`), {warm_runs} runs, alternating with memory only | median {:.0} ms, p90 {:.0} ms; memory only {:.0} ms ({}) | - |",
        median(with_state.clone()),
        percentile(with_state.clone(), 0.9),
        median(memory_only.clone()),
        ratio(median(with_state), median(memory_only))
    );
    println!(
        "| restart of the deployed node (11 canisters): the replica's restore / `ww serve --state` start to serving | median {:.1} ms / {:.0} ms | < 200 ms |",
        median(restore),
        median(serving)
    );
    println!(
        "| staging throughput (pid0 → root, 6.6 MiB), warm, write tracking / compare | median {:.0} MB/s / {:.0} MB/s ({}) | ≥ 1,000 MB/s |",
        median(mbs.clone()),
        median(mbs_c.clone()),
        ratio(median(mbs), median(mbs_c))
    );
}
