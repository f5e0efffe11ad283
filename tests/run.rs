//! `ww run` end to end: real images, real guests, the real stdio transport.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn echo_image_child_makes_two_concurrent_echoes() {
    let image = repo().join("examples/images/echo");
    guest("pid0");
    let (code, stderr) = run(&["run", image.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "child-echo: CHILD_OK");
    assert_contains(&stderr, "pid0: pid0: child-echo exited with 0");
}

/// `ww run ... 2>&1 | head -1`: once the reader is gone, log lines are
/// dropped; ww neither panics nor hangs, and still exits with pid0's code.
#[test]
fn a_closed_stderr_neither_panics_nor_hangs() {
    let image = repo().join("examples/images/echo");
    guest("pid0");
    let mut child = ww()
        .args(["run", image.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ww");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut first = [0u8; 1];
    stderr.read_exact(&mut first).expect("a first log byte");
    drop(stderr);
    let out = wait_output(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "status {:?}", out.status);
}

#[test]
fn echo_round_trip_and_five_concurrent() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["echo", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "ECHO_OK 1");
    let (code, stderr) = run_image(img.path(), &["echo", "5"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "ECHO_OK 5");
}

#[test]
fn nested_child_has_its_own_session() {
    // pid0 spawns itself as a child; the child's echoes travel over the
    // child's own stdio to the host.
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["spawn", "echo", "3"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "echo: ECHO_OK 3");
    assert_contains(&stderr, "CHILD_EXIT 0");
}

#[test]
fn run_bytes_with_garbage_fails_cleanly_and_node_keeps_running() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["garbage"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "not a WebAssembly file");
    assert_contains(&stderr, "GARBAGE_OK");
}

#[test]
fn guest_exit_code_becomes_ww_exit_code() {
    let img = ImageDir::testkit();
    assert_eq!(run_image(img.path(), &["exit", "7"]).0, 7);
    assert_eq!(run_image(img.path(), &["exit", "0"]).0, 0);
    // A child's exit code travels through Process.wait.
    let (code, stderr) = run_image(img.path(), &["spawn", "exit", "42"]);
    assert_eq!(code, 42, "{stderr}");
    // A trap (a Rust panic) is 101, with a one-line reason in the log.
    let (code, stderr) = run_image(img.path(), &["panic"]);
    assert_eq!(code, 101, "{stderr}");
    assert_contains(&stderr, "process trapped");
    assert!(!stderr.contains("wasm backtrace"), "{stderr}");
}

#[test]
fn layers_merge_per_file_and_later_layers_win() {
    let base = ImageDir::testkit();
    base.write("etc/a", "from base").write("etc/b", "only in base");
    let overlay = ImageDir::new();
    overlay.write("etc/a", "from overlay").write("etc/c", "only in overlay");
    let (code, stderr) = run(&[
        "run",
        base.path().to_str().unwrap(),
        overlay.path().to_str().unwrap(),
        "--",
        "read",
        "/etc/a",
        "/etc/b",
        "/etc/c",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "FILE /etc/a: from overlay");
    assert_contains(&stderr, "FILE /etc/b: only in base");
    assert_contains(&stderr, "FILE /etc/c: only in overlay");
}

#[test]
fn guest_sees_only_its_image() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["read", "/../../../../etc/passwd"]);
    assert_eq!(code, 4, "{stderr}");
    assert_contains(&stderr, "NOFILE");
    let (code, _) = run_image(img.path(), &["read", "/etc/hostname"]);
    assert_eq!(code, 4, "host files must not be visible");
}

#[test]
fn services_start_before_pid0_and_stop_after() {
    let img = ImageDir::testkit();
    img.copy("svc/alpha/bin/main.wasm", &guest("testkit"))
        .write("svc/alpha/etc/testkit", "serve alpha");
    img.copy("svc/beta/bin/main.wasm", &guest("testkit"))
        .write("svc/beta/etc/testkit", "serve beta");
    let (code, stderr) = run_image(img.path(), &["sleep", "300"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "alpha: SVC_UP alpha");
    assert_contains(&stderr, "beta: SVC_UP beta");
    assert_contains(&stderr, "SLEPT 300");
    // Stopped by hanging up their sessions: they exit 0 on their own.
    assert_contains(&stderr, "service stopped service=alpha code=0");
    assert_contains(&stderr, "service stopped service=beta code=0");
    let slept = stderr.find("SLEPT").unwrap();
    let stopped = stderr.find("service stopped").unwrap();
    assert!(slept < stopped, "services stop after pid0:\n{stderr}");
}

#[test]
fn stale_epoch_then_regraft() {
    let img = ImageDir::testkit();
    let mut child = ww()
        .args(["run", img.path().to_str().unwrap(), "--", "stale-epoch"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let seen = read_until(&mut stderr, "EPOCH_READY", Duration::from_secs(30));
    assert_contains(&seen, "EPOCH_READY 0");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = wait_output(child, HANG_TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{seen}{rest}");
    assert_contains(&rest, "staleEpoch");
    assert_contains(&rest, "REGRAFT_OK epoch=1");
}

#[test]
fn child_session_is_never_wider_than_its_parent() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["attenuate"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "permission denied: this session holds no Host capability");
    assert_contains(&stderr, "grandchild: NO_HOST_OK");
    assert_contains(&stderr, "GRANDCHILD_NARROW_OK");
    assert_contains(&stderr, "ATTENUATE_OK");
}

#[test]
fn spinning_guest_is_killed_while_another_keeps_answering() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["spin-kill"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "worker: ECHO_OK 5");
    assert_contains(&stderr, "SPIN_KILL_OK");
}

#[test]
fn pipes_mode_child_with_bounded_reads() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["pipes"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "PIPES_OK");
}

#[test]
fn memory_limit_is_enforced_by_the_host() {
    let img = ImageDir::testkit();
    let path = img.path().to_str().unwrap();
    let (code, stderr) = run(&["run", "--memory-limit", "32", path, "--", "alloc", "8"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "ALLOC_OK 8");
    let (code, stderr) = run(&["run", "--memory-limit", "32", path, "--", "alloc", "64"]);
    assert_eq!(code, 3, "{stderr}");
    assert_contains(&stderr, "ALLOC_DENIED 64");
}

#[test]
fn host_reports_identity_and_listens_only_when_asked() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["host-info"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "HOST id=12D3KooW");
    assert_contains(&stderr, "addrs= peers=0");
    let (code, stderr) = run(&[
        "run",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        img.path().to_str().unwrap(),
        "--",
        "host-info",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "addrs=/ip4/127.0.0.1/tcp/");
}

/// `ww <args>` whose pid0 spins (the testkit's `spin`), once it spins.
fn spinning(args: &[&str]) -> std::process::Child {
    let mut child = ww().args(args).args(["--", "spin"]).stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    read_until(&mut stderr, "spinning", Duration::from_secs(30));
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

fn sigterm(child: &std::process::Child) {
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
}

#[test]
fn sigterm_stops_a_spinning_pid0() {
    let img = ImageDir::testkit();
    let child = spinning(&["run", img.path().to_str().unwrap()]);
    sigterm(&child);
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130));
}

/// Supervisors send one SIGTERM, then SIGKILL: one signal must stop a
/// serving node whose pid0 still runs, not just pid0.
#[test]
fn one_sigterm_stops_a_serving_node_while_pid0_runs() {
    let img = ImageDir::testkit();
    let state = tempfile::tempdir().unwrap();
    let child = spinning(&["run", "--serve", "--state", state.path().to_str().unwrap(), img.path().to_str().unwrap()]);
    let socket = state.path().join("control.sock");
    assert!(socket.exists(), "the node serves its control socket");
    sigterm(&child);
    // wait_output fails the test if one signal does not stop the node.
    let status = wait_output(child, Duration::from_secs(15)).status;
    assert_eq!(status.code(), Some(130));
    assert!(!socket.exists(), "the control socket is removed");
    // The state directory was closed cleanly: a node resumes from it.
    let (code, out) = run(&["run", "--state", state.path().to_str().unwrap(), img.path().to_str().unwrap(), "--", "exit", "0"]);
    assert_eq!(code, 0, "{out}");
}

/// `GET path` on `addr` over plain HTTP/1.1: (status line, body bytes).
fn http_get(addr: &str, path: &str) -> (String, Vec<u8>) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    (head.lines().next().unwrap_or_default().to_string(), response[split + 4..].to_vec())
}

#[test]
fn run_serve_http_serves_the_ic_interface_only_when_asked() {
    let img = ImageDir::testkit();
    // Without --http nothing listens for HTTP and no URL is written.
    let quiet = tempfile::tempdir().unwrap();
    let child = spinning(&["run", "--serve", "--state", quiet.path().to_str().unwrap(), img.path().to_str().unwrap()]);
    assert!(!quiet.path().join("http.url").exists(), "no --http, no HTTP interface");
    sigterm(&child);
    wait_output(child, Duration::from_secs(15));

    let state = tempfile::tempdir().unwrap();
    let child = spinning(&["run", "--serve", "--state", state.path().to_str().unwrap(), "--http", "127.0.0.1:0", img.path().to_str().unwrap()]);
    let url = std::fs::read_to_string(state.path().join("http.url")).expect("http.url is written before pid0 runs");
    let addr = url.trim().trim_start_matches("http://").trim_end_matches('/').to_string();
    assert!(addr.starts_with("127.0.0.1:"), "loopback: {url}");
    let (status, body) = http_get(&addr, "/api/v2/status");
    assert!(status.contains(" 200 "), "{status}");
    // A self-described CBOR map naming the root key and the health.
    assert_eq!(&body[..3], &[0xd9, 0xd9, 0xf7], "self-describe tag");
    assert!(body.windows(8).any(|w| w == b"root_key"), "status has a root_key");
    assert!(body.windows(7).any(|w| w == b"healthy"), "status says healthy");
    let (status, _) = http_get(&addr, "/api/v9/nothing");
    assert!(status.contains(" 404 "), "{status}");
    sigterm(&child);
    assert_eq!(wait_output(child, Duration::from_secs(15)).status.code(), Some(130));
}

#[test]
fn second_run_uses_the_compile_cache() {
    let cache = tempfile::tempdir().unwrap();
    let img = ImageDir::testkit();
    let run_verbose = || {
        let child = ww()
            .env("WW_CACHE_DIR", cache.path())
            .args(["run", "-v", img.path().to_str().unwrap(), "--", "exit", "0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, HANG_TIMEOUT);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run_verbose();
    assert_contains(&first, "compiled");
    let second = run_verbose();
    assert!(!second.contains("compiled"), "second run compiled again:\n{second}");
}

// ---- bad input: one line naming the path and the reason, exit 2 -----------------

fn assert_bad_input(args: &[&str], expect: &[&str]) {
    let (code, stderr) = run(args);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "exactly one line:\n{stderr}");
    assert!(stderr.starts_with("ww: error: "), "{stderr}");
    for e in expect {
        assert_contains(&stderr, e);
    }
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn bad_input_missing_layer() {
    assert_bad_input(&["run", "/no/such/layer"], &["/no/such/layer", "no such directory"]);
}

#[test]
fn bad_input_image_without_main() {
    let img = ImageDir::new();
    img.write("etc/x", "y");
    assert_bad_input(&["run", img.path().to_str().unwrap()], &["bin/main.wasm is missing"]);
}

#[test]
fn bad_input_not_a_component() {
    let img = ImageDir::new();
    img.write("bin/main.wasm", "#!/bin/sh\necho hi\n");
    assert_bad_input(&["run", img.path().to_str().unwrap()], &["bin/main.wasm", "not a WebAssembly file"]);
    let core = ImageDir::new();
    core.write("bin/main.wasm", b"\0asm\x01\0\0\0");
    assert_bad_input(&["run", core.path().to_str().unwrap()], &["bin/main.wasm", "core WebAssembly module"]);
}

#[test]
fn bad_input_corrupt_component() {
    let mut bytes = std::fs::read(guest("testkit")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let img = ImageDir::new();
    img.write("bin/main.wasm", &bytes);
    assert_bad_input(&["run", img.path().to_str().unwrap()], &["bin/main.wasm", "invalid component"]);
}

#[test]
fn bad_input_service_without_main() {
    let img = ImageDir::testkit();
    img.write("svc/broken/etc/x", "y");
    assert_bad_input(&["run", img.path().to_str().unwrap()], &["svc/broken", "bin/main.wasm is missing"]);
}

#[test]
fn bad_input_bad_listen_address() {
    let img = ImageDir::testkit();
    let (code, stderr) = run(&["run", "--listen", "not-a-multiaddr", img.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"));
}
