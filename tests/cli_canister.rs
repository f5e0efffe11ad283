//! The developer CLI end to end, like `dfx canister`: a node serving with
//! `ww run --serve` and no canisters, then `ww canister create|install|info|
//! logs` and `ww call` as subprocesses of the real `ww` binary, with an
//! unmodified ic-cdk canister (`cdk_counter`, an IC core module) and a
//! ww-cdk component (`counter`) going through the same commands.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

/// A node serving an empty replica (pid0 deploys nothing), stopped on drop.
struct Node {
    child: Child,
    state: tempfile::TempDir,
    _image: ImageDir,
}

impl Node {
    fn start() -> Self {
        let image = ImageDir::testkit();
        let state = tempfile::tempdir().unwrap();
        let mut child = ww()
            .args(["run", "--serve", "--state"])
            .arg(state.path())
            .arg(image.path())
            .args(["--", "deploy"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        read_until(&mut stderr, "serving until", Duration::from_secs(60));
        // Keep draining the node's log so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, state, _image: image }
    }

    /// Runs `ww <args> --state <dir>`: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_with_stdin(args, b"")
    }

    fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut child = ww()
            .args(args)
            .arg("--state")
            .arg(self.state.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Feed stdin and drain stdout and stderr while the command runs (a
        // large reply must not block on a full pipe), with a deadline.
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > HANG_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ww {} hung for {HANG_TIMEOUT:?}; stderr:\n{}", args.join(" "), stderr.join().unwrap());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        feeder.join().unwrap();
        (status.code().unwrap_or(-1), stdout.join().unwrap(), stderr.join().unwrap())
    }

    /// `ww <args>` that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "ww {}: exit {code}\nstdout: {out}\nstderr: {err}", args.join(" "));
        out.trim().to_string()
    }

    /// `ww canister create <name>`: the new canister's id.
    fn create(&self, name: &str) -> String {
        let id = self.ok(&["canister", "create", name]);
        assert!(candid::Principal::from_text(&id).is_ok() && !id.contains('\n'), "create printed {id:?}");
        id
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A built ic-cdk canister (an IC core module). Fails (never skips) when
/// missing.
fn cdk(name: &str) -> PathBuf {
    let p = repo().join("guests/target/wasm32-unknown-unknown/release").join(format!("{name}.wasm"));
    assert!(p.is_file(), "ic-cdk canister {} is missing: run `make ic-guests` (make test builds it)", p.display());
    p
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `module` with a custom section `name` of `size` bytes appended.
fn with_custom_section(module: &[u8], name: &str, size: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(size + 8 + name.len());
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    // Pseudo-random bytes (xorshift64): they do not compress away.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    payload.extend((0..size).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u8
    }));
    let mut out = module.to_vec();
    out.push(0);
    leb128(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Names are the registry's: two canisters by name, listed; a name taken
/// (or not a name at all) is a usage error and creates nothing.
#[test]
fn create_names_canisters_and_refuses_a_taken_name() {
    let node = Node::start();
    let alpha = node.create("alpha");
    let beta = node.create("beta");
    assert_ne!(alpha, beta);
    let list = node.ok(&["canister", "list"]);
    for (name, id) in [("alpha", &alpha), ("beta", &beta)] {
        assert!(
            list.lines().any(|l| l.split_whitespace().take(2).eq([name, id.as_str()])),
            "{name} {id} not listed:\n{list}"
        );
    }
    let before = list.lines().count();
    // A new canister, no module yet.
    let info = node.ok(&["canister", "info", "alpha"]);
    assert!(info.contains(&format!("canister:    {alpha}")) && info.contains("name:        alpha"), "{info}");
    assert!(info.contains("module hash: none") && info.contains("status:      running"), "{info}");
    for bad in ["alpha", "beta", "two words", "aaaaa-aa", alpha.as_str()] {
        let (code, out, err) = node.cli(&["canister", "create", bad]);
        assert_eq!(code, 2, "create {bad:?}: {out}{err}");
        assert!(out.is_empty() && err.starts_with("ww: error: ") && err.lines().count() == 1, "create {bad:?}: {err}");
    }
    let (_, _, err) = node.cli(&["canister", "create", "alpha"]);
    assert!(err.contains("taken") && err.contains(&alpha), "{err}");
    let list = node.ok(&["canister", "list"]);
    assert_eq!(list.lines().count(), before, "nothing new was created:\n{list}");
    assert!(list.contains(&format!("alpha            {alpha}")), "the name still means the same canister:\n{list}");
}

/// An ic-cdk core module through `ww canister install`: the init argument,
/// calls typed by the interface the replica read from the module, an upgrade
/// that keeps the counter, and the failures: an invalid module (a reject,
/// exit 1, the canister unharmed), a missing file, bad Candid, bad flags
/// (exit 2).
#[test]
fn install_an_ic_cdk_module_then_upgrade_it() {
    let node = Node::start();
    let id = node.create("cdk");
    let wasm = cdk("cdk_counter");
    let (code, out, err) = node.cli(&["canister", "install", "cdk", path(&wasm), "--argument", r#"(opt record { greeting = "hey" })"#]);
    assert_eq!(code, 0, "{err}");
    let hash = sha256_hex(&std::fs::read(&wasm).unwrap());
    // Installed <file> on cdk (<id>): mode install, 787.90 KiB, module hash 0x...
    let out = out.trim();
    assert!(out.starts_with(&format!("Installed {} on cdk ({id}): mode install, ", wasm.display())), "{out}");
    assert!(out.ends_with(&format!(" KiB, module hash 0x{hash}")) && out.lines().count() == 1, "{out}");
    assert!(!err.contains("uploading"), "a small module goes in one message: {err}");
    assert_eq!(node.ok(&["call", "cdk", "greeting"]), r#"("hey")"#);
    assert_eq!(node.ok(&["call", "cdk", "inc"]), "(1 : nat64)");
    assert_eq!(node.ok(&["call", &id, "inc"]), "(2 : nat64)");
    // An upgrade keeps the counter (pre_upgrade saves it) and the greeting.
    let out = node.ok(&["canister", "install", "cdk", path(&wasm), "--mode", "upgrade"]);
    assert!(out.contains("mode upgrade,"), "{out}");
    assert_eq!(node.ok(&["call", "cdk", "get"]), "(2 : nat64)");
    assert_eq!(node.ok(&["call", "cdk", "upgrades"]), "(1 : nat64)");
    assert_eq!(node.ok(&["call", "cdk", "greeting"]), r#"("hey")"#);
    // The post_upgrade argument, from standard input.
    let (code, _, err) = node.cli_with_stdin(
        &["canister", "install", "cdk", path(&wasm), "--mode", "upgrade", "--wasm-memory-persistence", "replace", "--argument-file", "-"],
        br#"(opt record { greeting = "again" })"#,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(node.ok(&["call", "cdk", "greeting"]), r#"("again")"#);
    assert_eq!(node.ok(&["call", "cdk", "get"]), "(2 : nat64)");
    // Keeping the heap is for modules with enhanced orthogonal persistence:
    // the replica's reject.
    let (code, _, err) = node.cli(&["canister", "install", "cdk", path(&wasm), "--mode", "upgrade", "--wasm-memory-persistence", "keep"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reject code") && err.contains("keep") && err.lines().count() == 1, "{err}");
    // Installing over a module: the management canister's reject.
    let (code, out, err) = node.cli(&["canister", "install", "cdk", path(&wasm)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("IC0538") && err.lines().count() == 1, "{err}");
    // Not Wasm: IC0505 on one line, exit 1, and the canister still answers.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "this is not a WebAssembly module\nat all\n").unwrap();
    let (code, out, err) = node.cli(&["canister", "install", "cdk", path(&junk), "--mode", "reinstall"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("ww: the call was rejected: reject code") && err.contains("IC0505") && err.lines().count() == 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(node.ok(&["call", "cdk", "get"]), "(2 : nat64)");
    // Usage errors: exit 2, one line, nothing installed.
    let missing = dir.path().join("missing.wasm");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["canister", "install", "cdk", path(&missing), "--mode", "reinstall"], "missing.wasm"),
        (vec!["canister", "install", "cdk", path(dir.path()), "--mode", "reinstall"], "directory"),
        (vec!["canister", "install", "cdk", path(&wasm), "--mode", "reinstall", "--argument", "(opt record {"], "bad Candid"),
        (vec!["canister", "install", "cdk", path(&wasm), "--wasm-memory-persistence", "keep"], "--mode upgrade"),
        (vec!["canister", "install", "nobody", path(&wasm)], "no canister is named"),
        (
            vec!["canister", "install", "cdk", path(&wasm), "--mode", "reinstall", "--argument-file", "/nonexistent.did"],
            "/nonexistent.did",
        ),
    ];
    for (args, expected) in cases {
        let (code, out, err) = node.cli(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(expected) && err.lines().count() == 1 && !err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(node.ok(&["call", "cdk", "get"]), "(2 : nat64)", "no usage error reinstalled anything");
    let (code, _, err) = node.cli(&["canister", "install", "cdk", path(&wasm), "--mode", "sideways"]);
    assert_eq!(code, 2, "{err}");
}

/// A module over the 2 MiB message limit goes in 1 MiB chunks: progress on
/// stderr, `install_chunked_code` with the module's SHA-256 (the hash
/// `ww canister info` then shows), and the chunk store cleared afterwards.
#[test]
fn a_module_over_2_mib_is_installed_in_chunks() {
    let node = Node::start();
    let id = node.create("big");
    let dir = tempfile::tempdir().unwrap();
    let padded = with_custom_section(&std::fs::read(cdk("cdk_counter")).unwrap(), "padding", 2560 << 10);
    assert!(padded.len() > 3 << 20 && padded.len() <= 4 << 20, "{}", padded.len());
    let file = dir.path().join("cdk_counter_padded.wasm");
    std::fs::write(&file, &padded).unwrap();
    let (code, out, err) = node.cli(&["canister", "install", "big", path(&file), "--argument", r#"(opt record { greeting = "large" })"#]);
    assert_eq!(code, 0, "{err}");
    for i in 1..=4 {
        assert!(err.contains(&format!("uploading chunk {i}/4 (")), "no progress for chunk {i}:\n{err}");
    }
    assert!(err.contains("uploading chunk 1/4 (1.0 MiB)"), "{err}");
    let hash = sha256_hex(&padded);
    assert!(out.trim().starts_with(&format!("Installed {} on big ({id}): mode install, ", file.display())), "{out}");
    assert!(out.contains(" in 4 chunks, ") && out.trim().ends_with(&format!("module hash 0x{hash}")), "{out}");
    assert_eq!(node.ok(&["call", "big", "greeting"]), r#"("large")"#);
    assert_eq!(node.ok(&["call", "big", "inc"]), "(1 : nat64)");
    let info = node.ok(&["canister", "info", "big"]);
    assert!(info.contains(&format!("module hash: 0x{hash}")), "{info}");
    let stored = node.ok(&["call", "aaaaa-aa", "stored_chunks", &format!(r#"(record {{ canister_id = principal "{id}" }})"#)]);
    assert_eq!(stored, "(vec {})", "the chunk store is cleared after the install");
    // The same module gzipped (still over the limit) upgrades the canister
    // in chunks too; the module hash is the compressed file's.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&padded).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() > 2 << 20, "the padding must not compress away: {}", gz.len());
    let file = dir.path().join("cdk_counter_padded.wasm.gz");
    std::fs::write(&file, &gz).unwrap();
    let (code, out, err) = node.cli(&["canister", "install", "big", path(&file), "--mode", "upgrade"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("uploading chunk 1/"), "{err}");
    assert!(out.contains("mode upgrade") && out.trim().ends_with(&format!("module hash 0x{}", sha256_hex(&gz))), "{out}");
    assert_eq!(node.ok(&["call", "big", "get"]), "(1 : nat64)");
    let info = node.ok(&["canister", "info", "big"]);
    assert!(info.contains(&format!("module hash: 0x{}", sha256_hex(&gz))), "{info}");
    // The code history: creation, then both deployments with their hashes.
    assert!(info.contains("history:     3 changes"), "{info}");
    let created = info.find("created by").expect(&info);
    let installed = info.find(&format!("code install 0x{hash}")).expect(&info);
    let upgraded = info.find(&format!("code upgrade 0x{}", sha256_hex(&gz))).expect(&info);
    assert!(created < installed && installed < upgraded, "oldest first: {info}");
}

/// `ww call --argument-file` carries an argument far larger than a command
/// line to an ic-cdk canister, typed by its interface.
#[test]
fn call_argument_file_carries_a_large_argument() {
    let node = Node::start();
    node.create("kv");
    node.ok(&["canister", "install", "kv", path(&cdk("cdk_counter"))]);
    let value: String = (0..200 << 10).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("put.did");
    std::fs::write(&file, format!(r#"("big", "{value}")"#)).unwrap();
    assert_eq!(node.ok(&["call", "kv", "put", "--argument-file", path(&file)]), "()");
    assert_eq!(node.ok(&["call", "kv", "len"]), "(1 : nat64)");
    let out = node.ok(&["call", "kv", "get_kv", r#"("big")"#]);
    // Candid text wraps a long value onto its own line: `(\n  opt "...",\n)`.
    let flat: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat == format!(r#"( opt "{value}", )"#), "get_kv gave {} bytes: {}...", out.len(), &out[..out.len().min(80)]);
    // From standard input as well.
    let (code, out, err) = node.cli_with_stdin(&["call", "kv", "put", "--argument-file", "-"], format!(r#"("also", "{value}")"#).as_bytes());
    assert_eq!((code, out.trim()), (0, "()"), "{err}");
    assert_eq!(node.ok(&["call", "kv", "len"]), "(2 : nat64)");
}

/// `ww canister logs`: a canister's `debug_print` lines, as dfx prints them.
#[test]
fn canister_logs_show_debug_print_lines() {
    let node = Node::start();
    node.create("logger");
    node.ok(&["canister", "install", "logger", path(&cdk("cdk_counter"))]);
    assert_eq!(node.ok(&["canister", "logs", "logger"]), "", "no log lines yet");
    assert_eq!(node.ok(&["call", "logger", "log", r#"("hello")"#]), "()");
    assert_eq!(node.ok(&["call", "logger", "log", r#"("world")"#]), "()");
    let logs = node.ok(&["canister", "logs", "logger"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 2, "{logs}");
    for (i, (line, text)) in lines.iter().zip(["hello", "world"]).enumerate() {
        // [0. 2025-01-01T00:00:00.123456789Z]: hello
        let (head, content) = line.split_once("]: ").unwrap_or_else(|| panic!("{line}"));
        assert_eq!(content, text, "{line}");
        let (idx, time) = head.strip_prefix('[').and_then(|h| h.split_once(". ")).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(idx.parse::<usize>().unwrap(), i, "{line}");
        let b = time.as_bytes();
        assert!(
            time.len() == 30 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[19] == b'.' && time.ends_with('Z'),
            "not RFC 3339 with nanoseconds: {time}"
        );
        assert!(time.as_bytes()[..4].iter().all(u8::is_ascii_digit) && time > "2020", "{time}");
    }
    // A canister without a module has no log; an unknown name is a usage error.
    node.create("quiet");
    assert_eq!(node.ok(&["canister", "logs", "quiet"]), "");
    let (code, _, err) = node.cli(&["canister", "logs", "nobody"]);
    assert_eq!(code, 2, "{err}");
}

/// A ww-cdk component goes through the same command as an IC core module;
/// its init argument is typed by the interface it carries (`(opt nat64)`).
#[test]
fn a_ww_cdk_component_installs_through_the_same_command() {
    let node = Node::start();
    let id = node.create("comp");
    let wasm = guest("counter");
    let out = node.ok(&["canister", "install", "comp", path(&wasm), "--argument", "(opt 41)"]);
    let hash = sha256_hex(&std::fs::read(&wasm).unwrap());
    assert!(out.starts_with(&format!("Installed {} on comp ({id}): mode install, ", wasm.display())), "{out}");
    assert!(out.ends_with(&format!("module hash 0x{hash}")), "{out}");
    assert_eq!(node.ok(&["call", "comp", "inc"]), "(42 : nat64)");
    // An argument that does not match the interface is a usage error.
    let (code, _, err) = node.cli(&["canister", "install", "comp", path(&wasm), "--mode", "reinstall", "--argument", r#"(opt "x")"#]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("init arguments") && err.lines().count() == 1, "{err}");
    let out = node.ok(&["canister", "install", "comp", path(&wasm), "--mode", "upgrade"]);
    assert!(out.contains("mode upgrade"), "{out}");
    assert_eq!(node.ok(&["call", "comp", "get"]), "(42 : nat64)");
    // Then an ic-cdk module replaces it: same command, other kind.
    node.ok(&["canister", "install", "comp", path(&cdk("cdk_counter")), "--mode", "reinstall"]);
    assert_eq!(node.ok(&["call", "comp", "greeting"]), r#"("hello")"#);
    assert_eq!(node.ok(&["call", "comp", "get"]), "(0 : nat64)");
}

/// A built Motoko canister (it carries its interface as the
/// `candid:service` section). Fails (never skips) when missing.
fn motoko(name: &str) -> PathBuf {
    let p = repo().join("guests/target/motoko").join(format!("{name}.wasm"));
    assert!(p.is_file(), "Motoko canister {} is missing: run `make motoko` (make test builds it)", p.display());
    p
}

/// An ic-cdk module built with plain `cargo build` carries no
/// `candid:service` section; its interface comes from `get_candid_pointer`.
/// `(opt 5)` must reach `#[init] fn init(start: Option<u64>)` as `opt nat64`
/// (untyped it is `opt int`, which Candid decodes as null).
#[test]
fn install_types_the_init_argument_of_an_ic_cdk_module_without_a_candid_section() {
    let node = Node::start();
    node.create("c");
    let wasm = cdk("cdk_caller");
    assert!(ww::replica::install::candid_section(&std::fs::read(&wasm).unwrap()).is_none(), "the module carries no section");
    let (code, _, err) = node.cli(&["canister", "install", "c", path(&wasm), "--argument", "(opt 5)"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("untyped"), "the interface was found: {err}");
    assert_eq!(node.ok(&["call", "c", "start"]), "(opt (5 : nat64))");
    // --candid types it from a file instead (the value 7 proves it was used).
    let dir = tempfile::tempdir().unwrap();
    let did = dir.path().join("caller.did");
    std::fs::write(&did, "service : (opt nat64) -> { start : () -> (opt nat64) query }").unwrap();
    node.ok(&["canister", "install", "c", path(&wasm), "--mode", "reinstall", "--candid", path(&did), "--argument", "(opt 7)"]);
    assert_eq!(node.ok(&["call", "c", "start"]), "(opt (7 : nat64))");
    // A bad value for the declared type: a usage error naming the interface.
    let (code, _, err) = node.cli(&["canister", "install", "c", path(&wasm), "--mode", "reinstall", "--argument", r#"(opt "five")"#]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("init arguments") && err.lines().count() == 1, "{err}");
    // A missing --candid file: one line naming it.
    let (code, _, err) = node.cli(&["canister", "install", "c", path(&wasm), "--candid", "/no/such.did", "--argument", "(opt 1)"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/no/such.did") && err.lines().count() == 1, "{err}");
    // A module that declares nothing: a warning, then the untyped argument.
    let bare = dir.path().join("bare.wasm");
    std::fs::write(&bare, wat_module_without_interface()).unwrap();
    node.create("bare");
    let (code, _, err) = node.cli(&["canister", "install", "bare", path(&bare), "--argument", "(opt 5)"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("declares no Candid interface") && err.contains("untyped"), "{err}");
}

/// The smallest IC module: no exports but its memory, no interface.
fn wat_module_without_interface() -> Vec<u8> {
    // (module (memory (export "memory") 1))
    vec![0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, b'm', b'e', b'm', b'o', b'r', b'y', 2, 0]
}

/// A Motoko method taking an actor reference: `ww call` encodes it with the
/// declared service type (Motoko refuses `service {}`), from `service "id"`
/// or principal text, also nested in records, vectors and options.
#[test]
fn ww_call_encodes_service_references_with_their_declared_types() {
    let node = Node::start();
    node.create("mo");
    let counter = node.create("counter");
    node.ok(&["canister", "install", "mo", path(&motoko("mo_caller"))]);
    node.ok(&["canister", "install", "counter", path(&motoko("mo_counter"))]);
    assert_eq!(node.ok(&["call", "mo", "incOther", &format!(r#"(service "{counter}")"#)]), "(1 : nat)");
    assert_eq!(node.ok(&["call", "mo", "incOther", &format!(r#"(principal "{counter}")"#)]), "(2 : nat)");
    let nested = format!(r#"(record {{ counters = vec {{ principal "{counter}"; service "{counter}" }}; extra = opt principal "{counter}" }})"#);
    // 3 + 4 + 5
    assert_eq!(node.ok(&["call", "mo", "incMany", &nested]), "(12 : nat)");
    // `moc` without `--public-metadata candid:service` keeps the interface
    // private: ww reads that one too.
    let dir = tempfile::tempdir().unwrap();
    let module = std::fs::read(motoko("mo_caller")).unwrap();
    let private = dir.path().join("private.wasm");
    std::fs::write(&private, with_candid_section_renamed(&module, Some("icp:private candid:service"))).unwrap();
    node.create("private");
    node.ok(&["canister", "install", "private", path(&private)]);
    assert_eq!(node.ok(&["call", "private", "incOther", &format!(r#"(principal "{counter}")"#)]), "(6 : nat)");
    // A module that declares no interface at all: --candid gives it; without
    // it ww says why the reference cannot be typed before sending it.
    let bare = dir.path().join("bare.wasm");
    std::fs::write(&bare, with_candid_section_renamed(&module, None)).unwrap();
    node.create("bare");
    node.ok(&["canister", "install", "bare", path(&bare)]);
    let did = repo().join("guests/target/motoko/mo_caller.did");
    let arg = format!(r#"(service "{counter}")"#);
    assert_eq!(node.ok(&["call", "bare", "incOther", &arg, "--candid", path(&did)]), "(7 : nat)");
    let (code, _, err) = node.cli(&["call", "bare", "incOther", &arg]);
    assert_eq!(code, 1, "Motoko refuses `service {{}}`: {err}");
    assert!(err.contains("no Candid interface") && err.contains("--candid"), "{err}");
}

/// `module` with its `icp:public candid:service` section renamed to
/// `to`, or dropped when `to` is `None`.
fn with_candid_section_renamed(module: &[u8], to: Option<&str>) -> Vec<u8> {
    fn read_leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = bytes[*at];
            *at += 1;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }
    let mut out = module[..8].to_vec();
    let mut at = 8;
    let mut found = false;
    while at < module.len() {
        let id = module[at];
        at += 1;
        let size = read_leb(module, &mut at);
        let body = &module[at..at + size];
        at += size;
        if id == 0 {
            let mut name_at = 0;
            let len = read_leb(body, &mut name_at);
            if &body[name_at..name_at + len] == b"icp:public candid:service" {
                found = true;
                let Some(to) = to else { continue };
                let mut payload = Vec::new();
                leb128(to.len(), &mut payload);
                payload.extend_from_slice(to.as_bytes());
                payload.extend_from_slice(&body[name_at + len..]);
                out.push(0);
                leb128(payload.len(), &mut out);
                out.extend_from_slice(&payload);
                continue;
            }
        }
        out.push(id);
        leb128(size, &mut out);
        out.extend_from_slice(body);
    }
    assert!(found, "the module had no icp:public candid:service section");
    out
}

/// `ww call` on a composite query: the interface marks it
/// `composite_query`, so it goes as a query call and its calls run.
#[test]
fn ww_call_runs_a_composite_query() {
    let node = Node::start();
    let counter = node.create("k");
    node.create("c");
    node.ok(&["canister", "install", "k", path(&cdk("cdk_counter"))]);
    node.ok(&["canister", "install", "c", path(&cdk("cdk_caller"))]);
    assert_eq!(node.ok(&["call", "k", "inc"]), "(1 : nat64)");
    let arg = format!(r#"(vec {{ principal "{counter}" }})"#);
    assert_eq!(node.ok(&["call", "c", "composite_sum", &arg]), "(1 : nat64, 1 : nat64)");
    // Asked for as an update, it is refused (IC0527), exit 1.
    let (code, _, err) = node.cli(&["call", "c", "composite_sum", &arg, "--update"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("IC0527"), "{err}");
}

/// `ww canister snapshot take|list|load|delete` on a component: a load
/// brings the counter back; bad ids and a running canister are refused.
#[test]
fn snapshots_from_the_command_line() {
    let node = Node::start();
    node.create("snap");
    node.ok(&["canister", "install", "snap", path(&guest("counter")), "--argument", "(opt 10)"]);
    node.ok(&["call", "snap", "inc"]);
    let id = node.ok(&["canister", "snapshot", "take", "snap"]);
    assert!(id.len() > 16 && id.chars().all(|c| c.is_ascii_hexdigit()), "a hex snapshot id: {id}");
    let listed = node.ok(&["canister", "snapshot", "list", "snap"]);
    assert!(listed.starts_with(&id) && listed.ends_with(" bytes") && listed.lines().count() == 1, "{listed}");
    assert_eq!(node.ok(&["call", "snap", "inc"]), "(12 : nat64)");
    // A running canister refuses the load (a reject: exit 1, one line).
    let (code, _, err) = node.cli(&["canister", "snapshot", "load", "snap", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("must be stopped") && err.lines().count() == 1, "{err}");
    node.ok(&["canister", "stop", "snap"]);
    node.ok(&["canister", "snapshot", "load", "snap", &id]);
    node.ok(&["canister", "start", "snap"]);
    assert_eq!(node.ok(&["call", "snap", "get"]), "(11 : nat64)", "back to the snapshot");
    node.ok(&["canister", "snapshot", "delete", "snap", &id]);
    assert_eq!(node.ok(&["canister", "snapshot", "list", "snap"]), "");
    // A deleted snapshot is a reject; an id that is not hex a usage error.
    let (code, _, err) = node.cli(&["canister", "snapshot", "delete", "snap", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Could not find the snapshot ID"), "{err}");
    let (code, _, err) = node.cli(&["canister", "snapshot", "load", "snap", "xyz"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not hex") && err.lines().count() == 1, "{err}");
}
