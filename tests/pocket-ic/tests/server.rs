//! The server process itself, started the way the pocket-ic client starts
//! it (`POCKET_IC_BIN --version`, then `POCKET_IC_BIN [--ttl N] [--hard-ttl N]
//! --port-file <path>`): the version line the client checks, one server per
//! port file (a second spawn defers to the first and exits), and the TTL
//! (the server exits after it, idle, and removes its port file), and what it
//! prints of canisters (each `debug_print` once, as PocketIC does).
//!
//! Every process a test starts is killed by its guard if the test fails.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::server_bin;

/// Kills (by its own `Child`) a server this test started, unless it has exited.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], port_file: &Path) -> Server {
    let child = Command::new(server_bin())
        .args(args)
        .arg("--port-file")
        .arg(port_file)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn POCKET_IC_BIN");
    Server(child)
}

/// The port the server wrote (`"<port>\n"`), once it has; bounded wait.
fn wait_for_port(port_file: &Path, server: &mut Server) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::fs::read_to_string(port_file)
            && s.contains('\n')
        {
            assert!(s.ends_with('\n') && s.matches('\n').count() == 1, "the port file is \"<port>\\n\": {s:?}");
            return s.trim_end().parse().unwrap_or_else(|e| panic!("port file {s:?}: {e}"));
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("the server exited ({status}) before writing its port file");
        }
        assert!(Instant::now() < deadline, "no port in {} after 30 s", port_file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a process to exit.
fn wait_exit(server: &mut Server, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A plain HTTP/1.1 GET: the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn version_is_what_the_client_accepts() {
    let out = Command::new(server_bin()).arg("--version").output().expect("run --version");
    assert!(out.status.success(), "--version must exit with success: {:?}", out.status);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
    // The client strips trailing '\n' only, then wants "pocket-ic-server <semver>".
    let line = stdout.trim_end_matches('\n');
    let (name, version) = line.split_once(' ').unwrap_or_else(|| panic!("{stdout:?}"));
    assert_eq!(name, "pocket-ic-server", "{stdout:?}");
    let core = version.split('+').next().unwrap();
    assert!(!core.contains('-'), "a pre-release fails the client's >=13.0.0, <14 check: {stdout:?}");
    let parts: Vec<u64> = core.split('.').map(|p| p.parse().unwrap_or_else(|_| panic!("{stdout:?}"))).collect();
    assert_eq!(parts.len(), 3, "{stdout:?}");
    assert_eq!(parts[0], 13, "pocket-ic 13 wants a 13.x.y server: {stdout:?}");
}

#[test]
fn a_second_server_on_the_same_port_file_defers_to_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("x.port");
    // As the client starts it (the builder adds --hard-ttl 600).
    let mut first = spawn(&["--ttl", "60", "--hard-ttl", "600"], &port_file);
    let port = wait_for_port(&port_file, &mut first);
    let (status, body) = http_get(port, "/instances");
    assert_eq!(status, 200, "{body}");

    let started = Instant::now();
    let mut second = spawn(&["--ttl", "60", "--hard-ttl", "600"], &port_file);
    let exit = wait_exit(&mut second, Duration::from_secs(10))
        .expect("a second server on an existing port file must exit promptly (within 10 s)");
    assert!(exit.success(), "and with success: {exit}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The first keeps serving, under the same port file.
    assert_eq!(std::fs::read_to_string(&port_file).unwrap(), format!("{port}\n"), "the port file is the first server's");
    assert!(matches!(first.0.try_wait(), Ok(None)), "the first server still runs");
    let (status, body) = http_get(port, "/instances");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains('['), "GET /instances is a JSON array of instance states: {body:?}");
}

#[test]
fn the_server_exits_after_its_ttl_and_removes_its_port_file() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("ttl.port");
    let mut server = spawn(&["--ttl", "2"], &port_file);
    let port = wait_for_port(&port_file, &mut server);
    // It serves (any HTTP answer will do here) before its TTL runs out.
    http_get(port, "/instances");
    let last_request = Instant::now();
    let exit = wait_exit(&mut server, Duration::from_secs(30)).expect("an idle server with --ttl 2 must exit (waited 30 s)");
    assert!(
        last_request.elapsed() >= Duration::from_secs(1),
        "it exited {:?} after the last request, before its 2 s TTL ({exit})",
        last_request.elapsed()
    );
    assert!(!port_file.exists(), "the server removes its port file when it exits");
}

#[test]
fn a_busy_server_outlives_its_ttl() {
    // The TTL counts from the last request: a server that keeps getting
    // requests keeps running.
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("busy.port");
    let mut server = spawn(&["--ttl", "2"], &port_file);
    let port = wait_for_port(&port_file, &mut server);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        // Any HTTP answer: a request is activity.
        http_get(port, "/instances");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(matches!(server.0.try_wait(), Ok(None)), "requests every 0.5 s keep a --ttl 2 server alive");
    wait_exit(&mut server, Duration::from_secs(30)).expect("and once idle it exits");
    assert!(!port_file.exists());
}

/// A plain HTTP/1.1 POST of a JSON body: the status code and the body.
fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn bad_requests_get_a_clear_error_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("bad.port");
    let mut server = spawn(&["--ttl", "60"], &port_file);
    let port = wait_for_port(&port_file, &mut server);

    let (status, body) = http_post(port, "/instances", "this is not JSON");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"message\"") && body.contains("POST /instances"), "names the route: {body}");

    let (status, body) = http_get(port, "/no/such/route");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no such route"), "{body}");

    let (status, body) = http_get(port, "/instances/7/read/get_time");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("instance 7 does not exist"), "{body}");

    // What ww cannot do is refused by name, not faked.
    let config = r#"{"subnet_config_set":{"application":[{"state_config":"New","instruction_config":"Production","subnet_admins":null,"cost_schedule":"Normal"}]},"icp_features":{"registry":"DefaultConfig"}}"#;
    let (status, body) = http_post(port, "/instances", config);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"Error\"") && body.contains("ICP features (registry)"), "{body}");
    let (status, body) = http_post(port, "/instances", r#"{"subnet_config_set":{}}"#);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"Error\"") && body.contains("no subnet"), "{body}");

    // Still serving.
    let (status, body) = http_get(port, "/instances");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_unusable_port_file_is_a_one_line_usage_error() {
    let out = Command::new(server_bin()).args(["--port-file", "/nonexistent-dir/x.port"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "bad input exits 2: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("/nonexistent-dir/x.port") && stderr.contains("port file"), "{stderr}");
}

/// A canister's `debug_print` is one line on the server's stderr,
/// `[Canister <id>] <message>`, as PocketIC prints it (PicJS shows the
/// server's stderr as the canister logs).
#[test]
fn a_debug_print_is_one_line_on_the_server_s_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("print.port");
    let stderr_path = dir.path().join("stderr");
    let child = Command::new(server_bin())
        .args(["--ttl", "60", "--port-file"])
        .arg(&port_file)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("spawn POCKET_IC_BIN");
    let mut server = Server(child);
    let port = wait_for_port(&port_file, &mut server);
    let pic = pocket_ic::PocketIcBuilder::new()
        .with_server_url(format!("http://127.0.0.1:{port}/").parse().unwrap())
        .with_application_subnet()
        .build();
    let id = common::counter(&pic);
    let marker = "printed once by cdk_counter's log";
    let () = common::update(&pic, id, "log", (marker,)).expect("log");
    drop(pic);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(marker)).collect();
    assert_eq!(lines, vec![format!("[Canister {id}] {marker}")], "the server's stderr:\n{stderr}");
}
