//! Shared helpers for the integration tests: real `ww` processes booting real
//! images built from the guests in `guests/` (`make test` builds them first).

#![allow(dead_code)]

pub mod canisters;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any single `ww run` in a test may take before it counts as a hang.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A built guest component. Fails (never skips) when it is missing.
pub fn guest(name: &str) -> PathBuf {
    let p = repo().join("guests/target/wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "guest component {} is missing: run `make test` (it builds the guests first)",
        p.display()
    );
    p
}

/// The compile cache shared by all tests (so each guest compiles once).
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ww-test-cache")
}

pub fn ww() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ww"));
    c.env("WW_CACHE_DIR", cache_dir()).env_remove("RUST_LOG").env("NO_COLOR", "1");
    c
}

/// An image directory under construction.
pub struct ImageDir {
    pub dir: tempfile::TempDir,
}

impl ImageDir {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir") }
    }
    /// An image whose pid0 is the testkit guest.
    pub fn testkit() -> Self {
        let img = Self::new();
        img.copy("bin/main.wasm", &guest("testkit"));
        img
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }
    pub fn copy(&self, rel: &str, from: &Path) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(from, p).unwrap();
        self
    }
}

/// Waits for a child with a deadline; a hang fails the test.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let started = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if started.elapsed() > timeout => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "ww hung for {timeout:?}; stderr so far:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Runs `ww` with `args` and returns (exit code, stderr).
pub fn run(args: &[&str]) -> (i32, String) {
    let child = ww()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ww");
    let out = wait_output(child, HANG_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// Runs the image at `path` with pid0 arguments.
pub fn run_image(path: &Path, pid0_args: &[&str]) -> (i32, String) {
    let mut args = vec!["run", path.to_str().unwrap()];
    if !pid0_args.is_empty() {
        args.push("--");
        args.extend(pid0_args);
    }
    run(&args)
}

/// Reads a child's stderr until a line contains `marker` (or the deadline).
pub fn read_until(stderr: &mut impl Read, marker: &str, timeout: Duration) -> String {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < timeout {
        let n = stderr.read(&mut buf).expect("read stderr");
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).contains(marker) {
            return String::from_utf8_lossy(&seen).into_owned();
        }
    }
    panic!("never saw {marker:?}; stderr:\n{}", String::from_utf8_lossy(&seen));
}

/// The IC deploy simulation's image (`make test` assembles it first).
pub fn deploy_image() -> PathBuf {
    let dir = repo().join("examples/images/ic-deploy");
    for needed in ["bin/main.wasm", "lib/release/root.wasm"] {
        assert!(dir.join(needed).is_file(), "{} is missing: run `make test` (it assembles the example images first)", dir.join(needed).display());
    }
    dir
}

/// The overview the pipeline printed: the lines after its heading up to the
/// summary, without the log prefix.
pub fn pipeline_overview(log: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in log.lines() {
        let Some((_, text)) = line.split_once("pid0: ") else { continue };
        if text.starts_with("canic_wasm_store_overview:") {
            inside = true;
        } else if text.starts_with("Release summary") {
            break;
        } else if inside {
            out.push_str(text);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no overview in:\n{log}");
    out
}

pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
}

/// A replica on its own canister engine (sharing the tests' compile cache),
/// with `config`: canister semantics without booting a node.
pub fn canister_replica(config: ww::replica::ReplicaConfig) -> ww::replica::Replica {
    let engine = ww::engine::Engine::new(&ww::engine::EngineConfig {
        kind: ww::engine::EngineKind::Canister,
        cache_dir: Some(cache_dir()),
        ..ww::engine::EngineConfig::default()
    })
    .expect("canister engine");
    ww::replica::Replica::new(engine, config).expect("replica")
}
