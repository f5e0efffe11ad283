//! `ww run --serve`, `ww call` and `ww canister` end to end: pid0 deploys a
//! canister through the management canister, then the CLI talks to the node
//! over its control socket.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

struct ServingNode {
    child: Child,
    state: tempfile::TempDir,
    _image: ImageDir,
    id: String,
}

impl ServingNode {
    fn start() -> Self {
        let image = ImageDir::testkit();
        image.copy("lib/counter.wasm", &guest("counter"));
        let state = tempfile::tempdir().unwrap();
        let mut child = ww()
            .args(["run", "--serve", "--state"])
            .arg(state.path())
            .arg(image.path())
            .args(["--", "deploy", "counter", "/lib/counter.wasm"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let seen = read_until(&mut stderr, "serving until", Duration::from_secs(60));
        // Keep draining the node's log so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let id = seen
            .lines()
            .find_map(|l| l.split("DEPLOYED counter ").nth(1))
            .unwrap_or_else(|| panic!("no DEPLOYED line:\n{seen}"))
            .trim()
            .to_string();
        Self { child, state, _image: image, id }
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = ww()
            .args(args)
            .arg("--state")
            .arg(self.state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for ServingNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn candid_round_trip_through_ww_call() {
    let node = ServingNode::start();
    assert_eq!(node.id, "bkyz2-fmaaa-aaaaa-qaaaq-cai");
    let (code, out, err) = node.cli(&["call", "counter", "inc"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "(1 : nat64)");
    let (code, out, _) = node.cli(&["call", &node.id, "inc", "()"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "(2 : nat64)");
    let (code, out, _) = node.cli(&["call", "counter", "get", "--query"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "(2 : nat64)");
    // The management canister, with Candid arguments.
    // Methods only canisters may call are refused, as on the IC.
    let (code, _, err) = node.cli(&["call", "aaaaa-aa", "raw_rand"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("IC0406") && err.contains("Only canisters"), "{err}");
    let status_arg = format!("(record {{ canister_id = principal \"{}\" }})", node.id);
    let (code, out, err) = node.cli(&["call", "aaaaa-aa", "canister_status", &status_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("running"), "{out}");
}

#[test]
fn rejects_and_bad_input() {
    let node = ServingNode::start();
    // A missing method is a reject: code and message, exit 1.
    let (code, _, err) = node.cli(&["call", "counter", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("reject code 5") && err.contains("IC0536"), "{err}");
    // The anonymous principal is not a controller.
    let stop = format!("(record {{ canister_id = principal \"{}\" }})", node.id);
    let (code, _, err) = node.cli(&["call", "--anonymous", "aaaaa-aa", "stop_canister", &stop]);
    assert_eq!(code, 1);
    assert!(err.contains("IC0512"), "{err}");
    // Bad Candid and an unknown name are usage errors (exit 2), one line each.
    let (code, _, err) = node.cli(&["call", "counter", "inc", "(bad"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("ww: error: bad Candid arguments") && err.lines().count() == 1, "{err}");
    let (code, _, err) = node.cli(&["call", "nobody", "inc"]);
    assert_eq!(code, 2);
    assert!(err.contains("no canister is named"), "{err}");
}

#[test]
fn canister_lifecycle_commands() {
    let node = ServingNode::start();
    let (code, out, err) = node.cli(&["canister", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("counter") && out.contains(&node.id) && out.contains("running"), "{out}");
    let (code, out, _) = node.cli(&["canister", "status", "counter"]);
    assert_eq!(code, 0);
    assert!(out.contains("module hash: 0x"), "{out}");
    let (code, _, err) = node.cli(&["canister", "delete", "counter"]);
    assert_eq!(code, 1, "deleting a running canister must fail");
    assert!(err.contains("stopped"), "{err}");
    assert_eq!(node.cli(&["canister", "stop", "counter"]).0, 0);
    let (code, _, err) = node.cli(&["call", "counter", "inc"]);
    assert_eq!(code, 1);
    assert!(err.contains("IC0508"), "{err}");
    assert_eq!(node.cli(&["canister", "start", "counter"]).0, 0);
    assert_eq!(node.cli(&["call", "counter", "inc"]).0, 0);
    // Uninstalled, the canister is empty: calls get IC0537, status shows no module.
    let (code, _, err) = node.cli(&["canister", "uninstall", "counter"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = node.cli(&["call", "counter", "inc"]);
    assert_eq!(code, 1);
    assert!(err.contains("IC0537"), "{err}");
    let (_, out, _) = node.cli(&["canister", "status", "counter"]);
    assert!(out.contains("module hash: none"), "{out}");
    assert_eq!(node.cli(&["canister", "stop", "counter"]).0, 0);
    assert_eq!(node.cli(&["canister", "delete", "counter"]).0, 0);
    let (_, out, _) = node.cli(&["canister", "list"]);
    assert!(!out.contains(&node.id), "{out}");
}

#[test]
fn no_node_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = ww()
        .args(["call", "counter", "inc", "--state"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node is serving") && err.lines().count() == 1, "{err}");
}

/// `ww call` with a variant argument that is not its type's first case
/// (`install_code` with `variant { upgrade }`): typed against the method's
/// full type, it decodes at the management canister. The module goes in an
/// `--argument-file` (too large for a command line).
#[test]
fn variant_arguments_and_argument_files() {
    let node = ServingNode::start();
    assert_eq!(node.cli(&["call", "counter", "inc"]).0, 0);
    let wasm = std::fs::read(guest("counter")).unwrap();
    let blob: String = wasm.iter().map(|b| format!("\\{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let install = |mode: &str| {
        let path = dir.path().join("args.did");
        let text = format!(
            "(record {{ mode = {mode}; canister_id = principal \"{}\"; wasm_module = blob \"{blob}\"; arg = blob \"\"; sender_canister_version = null }})",
            node.id
        );
        std::fs::write(&path, text).unwrap();
        node.cli(&["call", "aaaaa-aa", "install_code", "--argument-file", path.to_str().unwrap()])
    };
    // An upgrade keeps the counter (the counter saves it in pre_upgrade).
    let (code, _, err) = install("variant { upgrade }");
    assert_eq!(code, 0, "{err}");
    assert_eq!(node.cli(&["call", "counter", "get"]).1.trim(), "(1 : nat64)");
    let (code, _, err) = install("variant { upgrade = opt record { skip_pre_upgrade = opt false } }");
    assert_eq!(code, 0, "{err}");
    assert_eq!(node.cli(&["call", "counter", "get"]).1.trim(), "(1 : nat64)");
    // A reinstall starts over.
    let (code, _, err) = install("variant { reinstall }");
    assert_eq!(code, 0, "{err}");
    assert_eq!(node.cli(&["call", "counter", "get"]).1.trim(), "(0 : nat64)");
    // Install on a canister that has a module: the management canister's
    // own reject, not a decoding error.
    let (code, _, err) = install("variant { install }");
    assert_eq!(code, 1);
    assert!(err.contains("IC0538"), "{err}");
    // An argument over the 2 MiB message limit reaches the replica (no shell
    // limit in the way) and gets its size reject.
    let path = dir.path().join("big.did");
    let big: String = std::iter::repeat_n("\\00", 2 << 20).collect();
    std::fs::write(&path, format!("(record {{ canister_id = principal \"{}\"; chunk = blob \"{big}\" }})", node.id)).unwrap();
    let (code, _, err) = node.cli(&["call", "aaaaa-aa", "upload_chunk", "--argument-file", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("IC0406") && err.contains("2097152"), "{err}");
    // Arguments inline and from a file at once, or a missing file: usage errors.
    let (code, _, err) = node.cli(&["call", "counter", "inc", "()", "--argument-file", "/nonexistent.did"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = node.cli(&["call", "counter", "inc", "--argument-file", "/nonexistent.did"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.did") && err.lines().count() == 1, "{err}");
}

/// Query or update from the interface, as `dfx canister call` decides.
#[test]
fn query_methods_are_called_as_queries_unless_told() {
    let node = ServingNode::start();
    let (code, out, err) = node.cli(&["call", "counter", "get"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "(0 : nat64)");
    let (code, out, err) = node.cli(&["call", "counter", "get", "--update"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "(0 : nat64)");
    let (code, _, err) = node.cli(&["call", "counter", "inc", "--query"]);
    assert_eq!(code, 2);
    assert!(err.contains("update method") && err.lines().count() == 1, "{err}");
}

/// Output that cannot be written is a one-line error and a non-zero exit,
/// never a panic: a full disk (/dev/full) and a closed pipe.
#[test]
fn unwritable_stdout_is_a_clean_error() {
    let node = ServingNode::start();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    for (what, stdout) in [("/dev/full", Stdio::from(full)), ("a closed pipe", Stdio::from(writer))] {
        let out = ww()
            .args(["call", "counter", "get", "--state"])
            .arg(node.state.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("cannot write to standard output") && err.lines().count() == 1, "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}
