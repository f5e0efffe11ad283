//! The replica in a state directory (`ww serve --state`, `ww run --serve
//! --state`), end to end with real `ww` processes: what a restart keeps
//! (heap, a `StableBTreeMap`, a timer, an open inter-canister call, an IC
//! core module, time that never goes back), SIGKILL at random instants
//! during a loop of acknowledged updates, and directories that are
//! damaged, of another format or in use, refused with one line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `ww serve --state <dir>`, killed on drop.
struct Served {
    child: Child,
    state: PathBuf,
}

impl Served {
    fn start(state: &Path) -> Self {
        let mut child = ww()
            .args(["serve", "--state"])
            .arg(state)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        read_until(&mut stderr, "serving until", Duration::from_secs(60));
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, state: state.to_path_buf() }
    }

    /// SIGKILL: no final cut, no cleanup.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `ww <args> --state <dir>`: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let child = ww()
            .args(args)
            .arg("--state")
            .arg(&self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, HANG_TIMEOUT);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "ww {}: exit {code}\nstdout: {out}\nstderr: {err}", args.join(" "));
        out
    }

    fn call(&self, canister: &str, method: &str, arg: &str) -> String {
        self.ok(&["call", canister, method, arg])
    }

    /// Polls `canister.method` until its output satisfies `done`.
    fn until(&self, canister: &str, method: &str, arg: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let out = self.call(canister, method, arg);
            if done(&out) {
                return out;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{what}: {canister}.{method} still says {out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cdk_counter() -> PathBuf {
    let p = repo().join("guests/target/wasm32-unknown-unknown/release/cdk_counter.wasm");
    assert!(p.is_file(), "ic-cdk canister {} is missing: run `make ic-guests` (make test builds it)", p.display());
    p
}

fn install(node: &Served, name: &str, wasm: &Path) {
    node.ok(&["canister", "create", name]);
    node.ok(&["canister", "install", name, wasm.to_str().unwrap()]);
}

fn nat(out: &str) -> u64 {
    out.trim_start_matches('(').split([' ', ':', ')']).next().and_then(|n| n.replace('_', "").parse().ok()).unwrap_or_else(|| panic!("not a number: {out}"))
}

#[test]
fn a_restart_after_sigkill_keeps_state_timers_open_calls_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start(dir.path());
    install(&node, "a", &guest("probe"));
    install(&node, "gate", &guest("probe"));
    install(&node, "cdk", &cdk_counter());
    node.call("a", "set", "(42 : nat64)");
    node.call("a", "stable_set", "(7 : nat64, 99 : nat64)");
    for _ in 0..3 {
        node.call("cdk", "inc", "()");
    }
    // A timer due after the restart, and a call context kept open until
    // the gate opens (a calls gate.wait_gate, which keeps calling itself).
    node.call("a", "set_timer_in", "(3_000_000_000 : nat64)");
    let gate = node.ok(&["canister", "list"]).lines().find(|l| l.starts_with("gate")).and_then(|l| l.split_whitespace().nth(1)).unwrap().to_string();
    let waiting = ww()
        .args(["call", "a", "record_after_gate", &format!("(principal \"{gate}\")"), "--state"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    node.until("gate", "log", "()", "the gate never started waiting", |l| l.contains("waiting"));
    let before = nat(&node.call("a", "time_now", "()"));
    // Let the open call reach a cut of its own.
    std::thread::sleep(Duration::from_millis(1500));
    node.kill();
    drop(waiting);

    let node = Served::start(dir.path());
    assert_eq!(nat(&node.call("a", "get", "()")), 42, "the heap");
    assert_eq!(node.call("a", "stable_get", "(7 : nat64)"), "(opt (99 : nat64))", "the StableBTreeMap");
    assert_eq!(nat(&node.call("cdk", "get", "()")), 3, "the ic-cdk canister's counter");
    assert!(nat(&node.call("a", "time_now", "()")) > before, "time went backwards across the restart");
    assert!(!node.call("a", "log", "()").contains("after gate"), "the call completed before the gate opened");
    node.call("gate", "open_gate", "()");
    node.until("a", "log", "()", "the open call never completed after the restart", |l| l.contains("after gate"));
    node.until("a", "timer_fired", "()", "the timer never fired after the restart", |n| nat(n) > 0);
    // Once everything is answered, nothing stays open: a third start sees
    // the same state, and updates go on from it.
    drop(node);
    let node = Served::start(dir.path());
    assert_eq!(nat(&node.call("cdk", "inc", "()")), 4);
    assert!(node.call("a", "log", "()").contains("after gate"));
}

#[test]
fn no_acknowledged_update_is_lost_across_30_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start(dir.path());
    install(&node, "p", &guest("probe"));
    drop(node);
    let mut acked = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for kill in 0..30 {
        let node = Served::start(dir.path());
        let stored = nat(&node.call("p", "get", "()"));
        // The last acknowledged value is there; at most the one in flight
        // at the kill went further.
        assert!(stored == acked || stored == acked + 1, "kill {kill}: acknowledged {acked}, restored {stored}");
        acked = stored;
        // Updates from a client loop, acknowledged one by one, until a
        // random instant.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_at = Instant::now() + Duration::from_millis(20 + seed % 250);
        let state = dir.path().to_path_buf();
        let client = std::thread::spawn(move || {
            let mut last = acked;
            while Instant::now() < kill_at + Duration::from_millis(200) {
                let out = ww()
                    .args(["call", "p", "set", &format!("({} : nat64)", last + 1), "--state"])
                    .arg(&state)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                if !out.success() {
                    break;
                }
                last += 1;
            }
            last
        });
        std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
        node.kill();
        acked = client.join().unwrap();
    }
    let node = Served::start(dir.path());
    let stored = nat(&node.call("p", "get", "()"));
    assert!(stored == acked || stored == acked + 1, "acknowledged {acked}, restored {stored}");
    assert!(acked > 30, "the loop acknowledged only {acked} updates");
}

/// `ww serve` on `dir` must fail with exit 2 and one line containing `what`.
fn refused(dir: &Path, what: &str) {
    let (code, err) = run(&["serve", "--state", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "ww serve on a bad directory: exit {code}, stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].contains(what), "expected {what:?} in: {err}");
    assert!(lines[0].contains(dir.to_str().unwrap()), "the error does not name the directory's file: {err}");
}

/// A state directory with a probe installed and a value set, stopped.
fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start(dir.path());
    install(&node, "p", &guest("probe"));
    node.call("p", "set", "(5 : nat64)");
    drop(node);
    dir
}

#[test]
fn damaged_incompatible_and_busy_state_directories_are_refused() {
    let data = |d: &tempfile::TempDir| d.path().join("replica/data.mdb");

    // A flipped bit inside the stored module.
    let dir = populated();
    let mut bytes = std::fs::read(data(&dir)).unwrap();
    let module = std::fs::read(guest("probe")).unwrap();
    let needle = &module[module.len() / 2..module.len() / 2 + 64];
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the module is in the data file");
    bytes[at + 10] ^= 0x08;
    std::fs::write(data(&dir), &bytes).unwrap();
    refused(dir.path(), "fails its checksum");

    // A truncated file.
    let dir = populated();
    let len = std::fs::metadata(data(&dir)).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(data(&dir)).unwrap().set_len(len / 2).unwrap();
    refused(dir.path(), "truncated");

    // Another format (a valid record saying so).
    let dir = populated();
    {
        let env = unsafe { heed::EnvOpenOptions::new().max_dbs(8).open(dir.path().join("replica")) }.unwrap();
        let mut w = env.write_txn().unwrap();
        let meta: heed::Database<heed::types::Bytes, heed::types::Bytes> = env.open_database(&w, Some("meta")).unwrap().unwrap();
        let mut payload = b"ww-state-dir".to_vec();
        payload.extend_from_slice(&999u32.to_le_bytes());
        meta.put(&mut w, b"format", &ww::replica::durable::encode_record("meta", b"format", &payload)).unwrap();
        w.commit().unwrap();
    }
    refused(dir.path(), "written in format 999");

    // In use by a serving node.
    let dir = populated();
    let node = Served::start(dir.path());
    refused(dir.path(), "in use by another ww process");
    // ...which still serves, unharmed.
    assert_eq!(nat(&node.call("p", "get", "()")), 5);
}

/// `ww run [--serve] --state <dir> <ic-deploy>`, its stderr collected.
fn deploy(dir: &Path, serve: bool) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = ww();
    cmd.arg("run");
    if serve {
        cmd.arg("--serve");
    }
    let mut child = cmd.arg("--state").arg(dir).arg(deploy_image()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// A deploy run to its end: its log, which must say DEPLOY_OK.
fn deploy_to_end(dir: &Path) -> String {
    let (child, lines) = deploy(dir, false);
    let status = wait_output(child, HANG_TIMEOUT).status;
    let log: String = lines.iter().map(|l| l + "\n").collect();
    assert!(status.success() && log.contains("DEPLOY_OK"), "the deploy failed ({status}):\n{log}");
    log
}

#[test]
fn the_deploy_resumes_after_sigkills_and_a_redeploy_after_a_restart_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Kill the deploying node at random instants, then let it finish.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (mut child, _log) = deploy(dir.path(), true);
        std::thread::sleep(Duration::from_millis(100 + seed % 1400));
        let _ = child.kill();
        let _ = child.wait();
    }
    let first = deploy_to_end(dir.path());
    let overview = normalize(&pipeline_overview(&first));
    // A node serving the deployment is killed; the restarted one holds the
    // same deployment, and the pipeline finds nothing to do.
    let (child, lines) = deploy(dir.path(), true);
    let node = Served { child, state: dir.path().to_path_buf() };
    let serving = lines.iter().find(|l| l.contains("serving until") || l.contains("DEPLOY_FAILED"));
    assert!(serving.as_ref().is_some_and(|l| l.contains("serving until")), "the redeploy did not end serving: {serving:?}");
    node.kill();
    let again = deploy_to_end(dir.path());
    assert_contains(&again, "created=0 upgraded=0 skipped=0 published=0");
    assert_eq!(normalize(&pipeline_overview(&again)), overview, "the overview changed across the restart");
}

#[test]
fn snapshots_survive_a_sigkill_and_load_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start(dir.path());
    install(&node, "p", &guest("probe"));
    node.call("p", "set", "(1 : nat64)");
    node.call("p", "stable_set", "(3 : nat64, 30 : nat64)");
    let id = node.ok(&["canister", "snapshot", "take", "p"]);
    let second = node.ok(&["canister", "snapshot", "take", "p"]);
    node.ok(&["canister", "snapshot", "delete", "p", &second]);
    node.call("p", "set", "(2 : nat64)");
    node.call("p", "stable_set", "(3 : nat64, 31 : nat64)");
    let listed = node.ok(&["canister", "snapshot", "list", "p"]);
    // An uploaded snapshot (through `ww call aaaaa-aa`, with ic.did's
    // types) is not kept across a restart, and does not hurt it.
    let p = candid::Principal::from_slice(&hex::decode(&id).unwrap()[8..]);
    let upload = format!(
        "(record {{ canister_id = principal \"{p}\"; replace_snapshot = null; wasm_module_size = 8 : nat64; globals = vec {{ variant {{ i32 = 1 : int32 }} }}; \
         wasm_memory_size = 0 : nat64; stable_memory_size = 0 : nat64; certified_data = blob \"\"; global_timer = null; on_low_wasm_memory_hook_status = null }})"
    );
    let uploaded = node.call("aaaaa-aa", "upload_canister_snapshot_metadata", &upload);
    assert!(uploaded.contains("snapshot_id"), "{uploaded}");
    let local = uploaded.split('"').nth(1).expect("a blob id").to_string();
    let meta = node.call("aaaaa-aa", "read_canister_snapshot_metadata", &format!("(record {{ canister_id = principal \"{p}\"; snapshot_id = blob \"{local}\" }})"));
    assert!(meta.contains("metadata_upload") && meta.contains("wasm_module_size = 8"), "{meta}");
    assert_ne!(node.ok(&["canister", "snapshot", "list", "p"]), listed);
    node.kill();

    let node = Served::start(dir.path());
    assert_eq!(node.ok(&["canister", "snapshot", "list", "p"]), listed, "the snapshots taken, after the restart");
    assert_eq!(nat(&node.call("p", "get", "()")), 2);
    node.ok(&["canister", "stop", "p"]);
    node.ok(&["canister", "snapshot", "load", "p", &id]);
    node.ok(&["canister", "start", "p"]);
    assert_eq!(nat(&node.call("p", "get", "()")), 1, "the heap back to the snapshot");
    assert_eq!(node.call("p", "stable_get", "(3 : nat64)"), "(opt (30 : nat64))", "stable memory back to the snapshot");
    // A later snapshot gets a new id, never one used before the restart.
    let third = node.ok(&["canister", "snapshot", "take", "p"]);
    assert!(third != id && third != second, "snapshot ids repeat: {third}");
    // What the load put in place is what the next restart finds (not the
    // memories stored before the load).
    node.kill();
    let node = Served::start(dir.path());
    assert_eq!(nat(&node.call("p", "get", "()")), 1, "the loaded heap, after a restart");
    assert_eq!(node.call("p", "stable_get", "(3 : nat64)"), "(opt (30 : nat64))", "the loaded stable memory, after a restart");
}
