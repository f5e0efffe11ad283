//! The replica in a state directory (`ww serve --state`, `ww run --serve
//! --state`), end to end with real `ww` processes: what a restart keeps
//! (heap, a `StableBTreeMap`, a timer, an open inter-canister call, an IC
//! core module, time that never goes back, snapshots taken and uploaded),
//! SIGKILL at random instants during a loop of acknowledged updates, and
//! directories that are damaged, of another format or in use, refused with
//! one line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use candid::Decode;
use common::*;
use ww::replica::snapshot_transfer::SnapshotMetadata as Metadata;

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

/// A snapshot as `read_canister_snapshot_*` give it out.
#[derive(PartialEq)]
struct Transferred {
    meta: Metadata,
    module: Vec<u8>,
    heap: Vec<u8>,
    stable: Vec<u8>,
    chunks: Vec<Vec<u8>>,
}

/// Bytes a snapshot moves per call here: less than the limit, so a heap
/// takes several calls (and cuts).
const SLICE: u64 = 400_000;

/// Candid text of a blob.
fn blob(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(8 + 3 * bytes.len());
    text.push_str("blob \"");
    for b in bytes {
        text.push_str(&format!("\\{b:02x}"));
    }
    text.push('"');
    text
}

impl Served {
    /// `ww call aaaaa-aa <method>` with `arg` (Candid text, from a file):
    /// the reply's Candid bytes (through a file too: megabytes of hex
    /// would fill a pipe nobody reads until the call ends).
    fn management(&self, method: &str, arg: &str) -> Vec<u8> {
        let files = tempfile::tempdir().unwrap();
        let (arg_file, out_file) = (files.path().join("arg"), files.path().join("out"));
        std::fs::write(&arg_file, arg).unwrap();
        let child = ww()
            .args(["call", "aaaaa-aa", method, "--raw", "--argument-file"])
            .arg(&arg_file)
            .arg("--state")
            .arg(&self.state)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_file).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, HANG_TIMEOUT);
        assert!(out.status.success(), "ww call aaaaa-aa {method}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&out_file).unwrap();
        hex::decode(text.trim()).unwrap_or_else(|e| panic!("{method}: not hex ({e}): {text}"))
    }

    /// Snapshot `snapshot` of `canister`, read out whole.
    fn read_snapshot(&self, canister: &str, snapshot: &[u8]) -> Transferred {
        let head = format!("canister_id = principal \"{canister}\"; snapshot_id = {}", blob(snapshot));
        let bytes = self.management("read_canister_snapshot_metadata", &format!("(record {{ {head} }})"));
        let meta = Decode!(&bytes, Metadata).expect("metadata");
        let read = |kind: String| {
            #[derive(candid::CandidType, serde::Deserialize)]
            struct Data {
                chunk: serde_bytes::ByteBuf,
            }
            let bytes = self.management("read_canister_snapshot_data", &format!("(record {{ {head}; kind = variant {{ {kind} }} }})"));
            Decode!(&bytes, Data).expect("data").chunk.into_vec()
        };
        let region = |name: &str, size: u64| {
            let mut out = Vec::new();
            while (out.len() as u64) < size {
                let n = SLICE.min(size - out.len() as u64);
                out.extend(read(format!("{name} = record {{ offset = {}; size = {n} }}", out.len())));
            }
            out
        };
        let (module, heap, stable) =
            (region("wasm_module", meta.wasm_module_size), region("wasm_memory", meta.wasm_memory_size), region("stable_memory", meta.stable_memory_size));
        let chunks = meta.wasm_chunk_store.iter().map(|c| read(format!("wasm_chunk = record {{ hash = {} }}", blob(&c.hash)))).collect();
        Transferred { meta, module, heap, stable, chunks }
    }

    /// Uploads `t` as a new snapshot of `canister`, one call per slice;
    /// its id.
    fn upload_snapshot(&self, canister: &str, t: &Transferred) -> Vec<u8> {
        let m = &t.meta;
        assert!(m.globals.is_empty(), "a component keeps no globals");
        let timer = match m.global_timer {
            Some(ww::replica::snapshot_transfer::GlobalTimer::Active(at)) => format!("opt variant {{ active = {at} }}"),
            Some(ww::replica::snapshot_transfer::GlobalTimer::Inactive) => "opt variant { inactive }".into(),
            None => "null".into(),
        };
        let arg = format!(
            "(record {{ canister_id = principal \"{canister}\"; replace_snapshot = null; wasm_module_size = {}; globals = vec {{}}; wasm_memory_size = {}; \
             stable_memory_size = {}; certified_data = {}; global_timer = {timer}; on_low_wasm_memory_hook_status = null }})",
            m.wasm_module_size,
            m.wasm_memory_size,
            m.stable_memory_size,
            blob(&m.certified_data),
        );
        #[derive(candid::CandidType, serde::Deserialize)]
        struct Uploaded {
            snapshot_id: serde_bytes::ByteBuf,
        }
        let id = Decode!(&self.management("upload_canister_snapshot_metadata", &arg), Uploaded).expect("an id").snapshot_id.into_vec();
        let head = format!("canister_id = principal \"{canister}\"; snapshot_id = {}", blob(&id));
        let write = |kind: String, bytes: &[u8]| {
            self.management("upload_canister_snapshot_data", &format!("(record {{ {head}; kind = variant {{ {kind} }}; chunk = {} }})", blob(bytes)));
        };
        for (name, bytes) in [("wasm_module", &t.module), ("wasm_memory", &t.heap), ("stable_memory", &t.stable)] {
            for (i, piece) in bytes.chunks(SLICE as usize).enumerate() {
                write(format!("{name} = record {{ offset = {} }}", i * SLICE as usize), piece);
            }
        }
        for chunk in &t.chunks {
            write("wasm_chunk".into(), chunk);
        }
        id
    }

    /// A canister's id by its name.
    fn id_of(&self, name: &str) -> String {
        let list = self.ok(&["canister", "list"]);
        list.lines().find(|l| l.split_whitespace().next() == Some(name)).and_then(|l| l.split_whitespace().nth(1)).unwrap_or_else(|| panic!("no {name} in: {list}")).to_string()
    }
}

#[test]
fn an_uploaded_snapshot_survives_a_sigkill_and_loads_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start(dir.path());
    install(&node, "p", &guest("probe"));
    node.call("p", "set", "(7 : nat64)");
    node.call("p", "stable_set", "(3 : nat64, 33 : nat64)");
    let p = node.id_of("p");
    node.management("upload_chunk", &format!("(record {{ canister_id = principal \"{p}\"; chunk = {} }})", blob(&[5; 3000])));
    let taken = hex::decode(node.ok(&["canister", "snapshot", "take", "p"])).unwrap();
    let out = node.read_snapshot(&p, &taken);
    assert!(out.heap.len() as u64 > 2 * SLICE, "the heap takes several slices: {} bytes", out.heap.len());
    assert_eq!(out.chunks, vec![vec![5; 3000]]);

    // Into another canister: the metadata and each slice are a call (and
    // a cut) of their own.
    node.ok(&["canister", "create", "q"]);
    let q = node.id_of("q");
    let uploaded = node.upload_snapshot(&q, &out);
    let before = node.read_snapshot(&q, &uploaded);
    node.kill();

    let node = Served::start(dir.path());
    let listed = node.ok(&["canister", "snapshot", "list", "q"]);
    assert!(listed.contains(&hex::encode(&uploaded)), "the uploaded snapshot is listed after the restart: {listed}");
    let after = node.read_snapshot(&q, &uploaded);
    assert!(after == before, "metadata, module, memories and chunks as uploaded");
    assert_eq!(after.meta.source, ww::replica::history::CandidSnapshotSource::MetadataUpload(candid::Reserved));
    assert!(after.module == out.module && after.heap == out.heap && after.stable == out.stable && after.chunks == out.chunks, "the bytes of p's snapshot");
    node.ok(&["canister", "stop", "q"]);
    node.ok(&["canister", "snapshot", "load", "q", &hex::encode(&uploaded)]);
    node.ok(&["canister", "start", "q"]);
    assert_eq!(nat(&node.call("q", "get", "()")), 7, "p's heap");
    assert_eq!(node.call("q", "stable_get", "(3 : nat64)"), "(opt (33 : nat64))", "p's stable memory");
    let chunks = node.management("stored_chunks", &format!("(record {{ canister_id = principal \"{q}\" }})"));
    assert_eq!(Decode!(&chunks, Vec<ww::replica::management::ChunkHashRecord>).unwrap(), out.meta.wasm_chunk_store, "p's chunk store");
}
