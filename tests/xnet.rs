//! Several nodes over libp2p, end to end: real `ww run --serve` processes on
//! 127.0.0.1, each a subnet with its own canister range, connected through
//! their images' `boot/` peers, with `probe` canisters (`guests/canisters/
//! probe`) calling across nodes through `ww call`. Every process is
//! killed when its [`Peer`] drops.

mod common;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long a node may take to connect to its peers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The empty Candid argument, as a `blob` literal.
const NO_ARGS: &str = r#"blob "DIDL\00\00""#;

/// A node: its directory (identity and control socket in `.ww`), its
/// image, its port, and its `ww` process while it runs.
struct Peer {
    dir: tempfile::TempDir,
    image: ImageDir,
    peer_id: String,
    port: u16,
    child: Option<Child>,
}

/// A port free now and never handed out before in this process: ww's
/// listeners set SO_REUSEPORT, so two nodes given the same port would both
/// listen on it (and each would take the other's address for its own).
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Peer {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = ww().args(["id", "--state"]).arg(dir.path().join(".ww")).output().unwrap();
        assert!(out.status.success(), "ww id: {}", String::from_utf8_lossy(&out.stderr));
        let peer_id = String::from_utf8(out.stdout).unwrap().lines().next().unwrap().to_string();
        Self { dir, image: ImageDir::testkit(), peer_id, port: free_port(), child: None }
    }

    fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    /// Lists `peer` under `boot/` (dialed and trusted).
    fn boot(&self, peer: &Peer) -> &Self {
        self.image.write(&format!("boot/{}", peer.peer_id), format!("{}\n", peer.addr()));
        self
    }

    /// Trusts `peers` in `etc/peers` without dialing them.
    fn trust(&self, peers: &[&Peer]) -> &Self {
        let list: Vec<&str> = peers.iter().map(|p| p.peer_id.as_str()).collect();
        self.image.write("etc/peers", format!("# trusted\n{}\n", list.join("\n")));
        self
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `ww run --serve --listen` (an empty replica; pid0 exits).
    fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts with the replica kept in `.ww` (restored at the next start).
    fn start_durable(&mut self) {
        self.start_with(&["--state", ".ww"]);
    }

    fn start_with(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let child = ww()
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info,ww::net=debug")
            .args(["run", "--serve", "--listen", &self.addr()])
            .args(extra)
            .arg(self.image.path())
            .args(["--", "exit", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_log("serving until", 1);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the log holds `needle` at least `times` times.
    fn wait_log(&self, needle: &str, times: usize) {
        let started = Instant::now();
        while self.log().matches(needle).count() < times {
            assert!(started.elapsed() < CONNECT_TIMEOUT, "never saw {needle:?} x{times} in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the XNet streams to `n` peers are open (both ways).
    fn wait_streams(&self, n: usize) {
        self.wait_log("xnet: stream to the peer open", n);
    }

    /// `ww <args>` against this node: (exit code, stdout, stderr). Both
    /// pipes are drained while it runs (replies may be megabytes).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = ww();
        cmd.current_dir(self.dir.path()).args(args).stdin(Stdio::null());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cmd.output());
        });
        let out = rx.recv_timeout(HANG_TIMEOUT).unwrap_or_else(|_| panic!("ww {args:?} hung for {HANG_TIMEOUT:?}")).unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `ww call` that must succeed: its Candid output.
    fn call(&self, canister: &str, method: &str, args: &str) -> String {
        let (code, out, err) = self.cli(&["call", canister, method, args]);
        assert_eq!(code, 0, "ww call {canister} {method} {args}: {err}\nnode log:\n{}", self.log());
        out
    }

    /// `ww call canister method arg` against this node, in the background.
    fn call_in_background(&self, canister: &str, method: &str, arg: String) -> std::thread::JoinHandle<std::process::Output> {
        let (dir, canister, method) = (self.dir.path().to_path_buf(), canister.to_string(), method.to_string());
        std::thread::spawn(move || ww().current_dir(dir).args(["call", &canister, &method, &arg]).output().unwrap())
    }

    /// Waits until this node's `pb` logged that a call waits at its gate.
    fn wait_until_pb_waits(&self) {
        let started = Instant::now();
        while !self.call("pb", "log", "()").contains("waiting") {
            assert!(started.elapsed() < CONNECT_TIMEOUT, "the call never reached pb");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Creates and installs a probe canister named `name`: its id.
    fn probe(&self, name: &str) -> String {
        let (code, out, err) = self.cli(&["canister", "create", name]);
        assert_eq!(code, 0, "create: {err}");
        let id = out.trim().to_string();
        let (code, _, err) = self.cli(&["canister", "install", name, guest("probe").to_str().unwrap()]);
        assert_eq!(code, 0, "install: {err}");
        id
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two nodes that boot each other, started in order, streams open.
fn pair() -> (Peer, Peer) {
    let (mut a, mut b) = (Peer::new(), Peer::new());
    a.boot(&b);
    b.boot(&a);
    a.start();
    b.start();
    a.wait_streams(1);
    b.wait_streams(1);
    (a, b)
}

#[test]
fn a_call_crosses_nodes_and_its_reply_comes_back() {
    let (a, b) = pair();
    let pa = a.probe("pa");
    let pb = b.probe("pb");
    assert_ne!(pa, pb, "each node allocates from its own range");
    b.call("pb", "set", "(42 : nat64)");
    assert_eq!(a.call("pa", "call_get", &format!(r#"(principal "{pb}")"#)).trim(), "(42 : nat64)");
    a.call("pa", "set", "(7 : nat64)");
    assert_eq!(b.call("pb", "call_get", &format!(r#"(principal "{pa}")"#)).trim(), "(7 : nat64)");
    // The callee sees the calling canister of the other node as its caller.
    let who = a.call("pa", "call_method", &format!(r#"(principal "{pb}", "whoami", {NO_ARGS})"#));
    let pa_bytes: String = candid::Principal::from_text(&pa).unwrap().as_slice().iter().map(|b| format!("\\{b:02x}")).collect();
    assert!(who.contains("Ok = blob") && who.contains(&pa_bytes), "whoami is {pa}: {who}");
    // `ww call` on either node reaches a canister of the other (the
    // message is forwarded to the node hosting it).
    a.call(&pb, "set", "(9 : nat64)");
    assert_eq!(a.call(&pb, "get", "()").trim(), "(9 : nat64)");
    assert_eq!(b.call(&pa, "get", "()").trim(), "(7 : nat64)");
    // `ww canister list` shows which node hosts which ids.
    let (code, list, err) = a.cli(&["canister", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(list.contains("this node") && list.contains(&b.peer_id), "{list}");
    // A canister no node hosts is DESTINATION_INVALID, as on one node.
    let nowhere = a.call("pa", "call_method", &format!(r#"(principal "rrkah-fqaaa-aaaaa-aaaaq-cai", "get", {NO_ARGS})"#));
    assert!(nowhere.contains("code = 3"), "{nowhere}");
}

#[test]
fn three_nodes_call_each_other() {
    let (mut a, mut b, mut c) = (Peer::new(), Peer::new(), Peer::new());
    a.boot(&b).boot(&c);
    b.boot(&a).boot(&c);
    c.boot(&a).boot(&b);
    for p in [&mut a, &mut b, &mut c] {
        p.start();
    }
    for p in [&a, &b, &c] {
        p.wait_streams(2);
    }
    let (_pa, pb, pc) = (a.probe("pa"), b.probe("pb"), c.probe("pc"));
    b.call("pb", "set", "(2 : nat64)");
    c.call("pc", "set", "(3 : nat64)");
    assert_eq!(a.call("pa", "call_get", &format!(r#"(principal "{pb}")"#)).trim(), "(2 : nat64)");
    assert_eq!(a.call("pa", "call_get", &format!(r#"(principal "{pc}")"#)).trim(), "(3 : nat64)");
    assert_eq!(b.call("pb", "call_get", &format!(r#"(principal "{pc}")"#)).trim(), "(3 : nat64)");
}

#[test]
fn a_node_started_before_its_peer_keeps_dialing_until_it_is_up() {
    let (mut a, mut b) = (Peer::new(), Peer::new());
    // Only `a` dials; `b` merely trusts it, so only a retry connects them.
    a.boot(&b);
    b.trust(&[&a]);
    a.start();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!a.log().contains("connected to peer"), "b is not up yet");
    b.start();
    a.wait_streams(1);
    b.wait_streams(1);
    let pb = b.probe("pb");
    let _pa = a.probe("pa");
    b.call("pb", "set", "(5 : nat64)");
    assert_eq!(a.call("pa", "call_get", &format!(r#"(principal "{pb}")"#)).trim(), "(5 : nat64)");
}

#[test]
fn a_hundred_calls_arrive_in_order_across_nodes() {
    let (a, b) = pair();
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    a.call("pa", "send_in_order", &format!(r#"(principal "{pb}", 100 : nat32)"#));
    let log = b.call("pb", "log", "()");
    let expected: Vec<String> = (0..100).map(|i| format!("\"{i}\"")).collect();
    let got: Vec<String> = log.split(['{', '}', ';']).map(str::trim).filter(|s| s.starts_with('"')).map(String::from).collect();
    assert_eq!(got, expected, "{log}");
}

#[test]
fn backpressure_holds_across_nodes() {
    let (a, b) = pair();
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    // 500 calls outstanding from one caller to one callee; the 501st fails
    // at once, in the calling execution.
    let flood = a.call("pa", "flood", &format!(r#"(principal "{pb}", 600 : nat32)"#));
    assert!(flood.contains("queued = 500"), "{flood}");
    assert!(flood.contains("first_error = opt record"), "{flood}");
}

#[test]
fn a_bounded_wait_call_to_a_killed_node_gets_sys_unknown_at_its_deadline() {
    let (a, mut b) = pair();
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    let started = Instant::now();
    let pending = a.call_in_background("pa", "bounded_call", format!(r#"(principal "{pb}", "wait_gate", {NO_ARGS}, 3 : nat32)"#));
    b.wait_until_pb_waits();
    b.kill();
    let out = String::from_utf8_lossy(&pending.join().unwrap().stdout).into_owned();
    assert!(out.contains("code = 6"), "SYS_UNKNOWN: {out}\nnode log:\n{}", a.log());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(20), "answered at the deadline, after {waited:?}");
}

#[test]
fn a_guaranteed_call_to_a_node_that_restarts_without_state_gets_sys_transient() {
    let (a, mut b) = pair();
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    let pending = a.call_in_background("pa", "call_method", format!(r#"(principal "{pb}", "wait_gate", {NO_ARGS})"#));
    // The call is waiting at b (its gate is shut); b dies and comes back
    // with the same identity and an empty replica.
    b.wait_until_pb_waits();
    b.kill();
    b.start();
    let out = String::from_utf8_lossy(&pending.join().unwrap().stdout).into_owned();
    assert!(out.contains("code = 2") && out.contains("restarted without this call"), "SYS_TRANSIENT: {out}\nnode log:\n{}", a.log());
}

#[test]
fn an_untrusted_peer_is_refused_once_redialed_with_backoff_and_named_in_errors() {
    let (mut a, mut c) = (Peer::new(), Peer::new());
    // c dials a, but a trusts nobody: a refuses c after every handshake.
    c.boot(&a);
    a.start();
    c.start();
    // Over ~6 s from the first connection, c dials a only a few times
    // (backoff after a refusal; it used to redial every ~100 ms, ~50
    // times), and each side logs the refusal once, naming the reason.
    c.wait_log("connected to peer", 1);
    std::thread::sleep(Duration::from_secs(6));
    let (a_log, c_log) = (a.log(), c.log());
    let attempts = c_log.matches("connected to peer").count();
    assert!(attempts <= 6, "c redialed a {attempts} times in ~6 s:\n{c_log}");
    let refused_here = format!("peer {} closed the connection right after the handshake", a.peer_id);
    assert_eq!(c_log.matches(&refused_here).count(), 1, "c logs the refusal once:\n{c_log}");
    assert!(c_log.contains("not in its trusted peers"), "{c_log}");
    let refused_there = format!("refused {} at", c.peer_id);
    assert_eq!(a_log.matches(&refused_there).count(), 1, "a logs the refusal once:\n{a_log}");
    assert!(a_log.contains("not in this node's trusted peers"), "{a_log}");
    // A call through c to a canister in a's range names a and the reason,
    // on one line: as ingress (`ww call`) and from a canister of c.
    let pa = a.probe("pa");
    let _pc = c.probe("pc");
    let (code, out, err) = c.cli(&["call", &pa, "get", "()"]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&a.peer_id) && err.contains("refuses this node"), "{err}");
    let out = c.call("pc", "call_method", &format!(r#"(principal "{pa}", "get", {NO_ARGS})"#));
    assert!(out.contains("code = 3"), "c cannot reach a's canisters: {out}");
    assert!(out.contains(&a.peer_id) && out.contains("refuses this node"), "{out}");
}

#[test]
fn overlapping_canister_ranges_are_refused() {
    let (mut a, mut b) = (Peer::new(), Peer::new());
    a.boot(&b);
    b.boot(&a);
    a.image.write("etc/canister-range", "0x8000000000100000-0x80000000001fffff\n");
    b.image.write("etc/canister-range", "0x8000000000180000-0x80000000002fffff\n");
    a.start();
    b.start();
    a.wait_log("overlaps this node's", 1);
    b.wait_log("overlaps this node's", 1);
    assert!(!a.log().contains("xnet: stream to the peer open"), "{}", a.log());
}

/// A TCP proxy in front of a node, to break its connections at will.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    /// Swallow what the node sends back (its acknowledgements, responses).
    mute_back: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let mute_back = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, m, c) = (open.clone(), mute_back.clone(), conns.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let pump = |mut from: TcpStream, mut to: TcpStream, mute: Option<Arc<AtomicBool>>| {
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            if mute.as_ref().is_some_and(|m| m.load(Ordering::SeqCst)) {
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    })
                };
                let mut list = c.lock().unwrap();
                list.push(inbound.try_clone().unwrap());
                list.push(outbound.try_clone().unwrap());
                pump(inbound.try_clone().unwrap(), outbound.try_clone().unwrap(), None);
                pump(outbound, inbound, Some(m.clone()));
            }
        });
        Self { port, open, mute_back, conns }
    }

    /// Breaks every connection through the proxy.
    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Refuses (or takes again) new connections.
    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

/// `send_in_order(callee, n)` on `pa` of `node`, in the background.
fn send_in_order(node: &Peer, callee: &str, n: u32) -> std::thread::JoinHandle<std::process::Output> {
    node.call_in_background("pa", "send_in_order", format!(r#"(principal "{callee}", {n} : nat32)"#))
}

#[test]
fn calls_are_delivered_exactly_once_across_dropped_connections() {
    let (mut a, mut b) = (Peer::new(), Peer::new());
    let proxy = Proxy::to(b.port);
    // a reaches b only through the proxy; b does not dial a.
    a.image.write(&format!("boot/{}", b.peer_id), format!("/ip4/127.0.0.1/tcp/{}\n", proxy.port));
    b.trust(&[&a]);
    a.start();
    b.start();
    a.wait_streams(1);
    b.wait_streams(1);
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    let mut expected = Vec::new();

    // Calls made while the link is down wait in a's outbox, then arrive.
    proxy.set_open(false);
    proxy.cut();
    let round = send_in_order(&a, &pb, 50);
    std::thread::sleep(Duration::from_millis(300));
    proxy.set_open(true);
    let out = round.join().unwrap();
    let (ok, err) = (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(ok, "the calls completed after the link came back: {err}");
    expected.extend((0..50).map(|i| i.to_string()));

    // Delivered but never acknowledged: b runs the calls while a hears
    // nothing back; after the cut a sends them all again, and b must not
    // run them twice.
    proxy.mute_back.store(true, Ordering::SeqCst);
    let calls = send_in_order(&a, &pb, 100);
    let started = Instant::now();
    while b.call("pb", "log", "()").matches('"').count() < 2 * (expected.len() + 100) {
        assert!(started.elapsed() < CONNECT_TIMEOUT, "b never ran the calls");
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.cut();
    proxy.mute_back.store(false, Ordering::SeqCst);
    let out = calls.join().unwrap();
    let (ok, err) = (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(ok, "{err}");
    expected.extend((0..100).map(|i| i.to_string()));

    // Cuts while calls and responses are in flight, at varying moments.
    for (round, delay_ms) in [1u64, 3, 7, 15, 30].into_iter().enumerate() {
        let calls = send_in_order(&a, &pb, 200);
        std::thread::sleep(Duration::from_millis(delay_ms));
        proxy.cut();
        let out = calls.join().unwrap();
        let (ok, err) = (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(ok, "round {round}: {err}\nnode a:\n{}", a.log());
        expected.extend((0..200).map(|i| i.to_string()));
    }
    let log = b.call("pb", "log", "()");
    let got: Vec<String> = log.split(['{', '}', ';']).map(str::trim).filter(|s| s.starts_with('"')).map(|s| s.trim_matches('"').to_string()).collect();
    assert_eq!(got.len(), expected.len(), "every call exactly once");
    assert_eq!(got, expected, "in order");
    assert!(a.log().matches("xnet: stream to the peer open").count() > 1, "the link was really broken and resumed:\n{}", a.log());
}

#[test]
fn a_guest_dials_a_peers_replica() {
    let (a, b) = pair();
    let pb = b.probe("pb");
    let out = ww().args(["id", "--state"]).arg(a.dir.path().join(".ww")).output().unwrap();
    let a_principal = String::from_utf8(out.stdout).unwrap().lines().nth(1).unwrap().to_string();
    // pid0 of an image run on a: Host.dial(b) gives b's Replica, calling as
    // a's principal (not b's admin), which probe's whoami sees.
    let image = a.image.path().to_str().unwrap().to_string();
    let (code, out, err) = a.cli(&["deploy", &image, "--", "dial", &b.peer_id, &pb, "whoami"]);
    let both = format!("{out}{err}");
    assert_eq!(code, 0, "{both}\nnode a:\n{}\nnode b:\n{}", a.log(), b.log());
    assert!(both.contains(&format!("DIALED as={a_principal} reply_principal={a_principal}")), "{both}");
    assert!(b.log().contains("a peer opened a session to this node's Replica"), "{}", b.log());
    // Host.peers lists the connected peer with the address it announced.
    let (code, out, err) = a.cli(&["deploy", &image, "--", "host-info"]);
    let both = format!("{out}{err}");
    assert_eq!(code, 0, "{both}");
    assert!(both.contains("peers=1"), "{both}");
    // A peer that is not trusted (never started, unknown) cannot be dialed.
    let stranger = Peer::new();
    let (code, out, err) = a.cli(&["deploy", &image, "--", "dial", &stranger.peer_id, &pb, "whoami"]);
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains(&format!("dial {}", stranger.peer_id)), "{out}{err}");
}

#[test]
fn the_payload_limit_holds_across_nodes() {
    let (a, b) = pair();
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    let encoded = |n: u32| {
        let bytes = candid::encode_one(n).unwrap();
        let hex: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        format!(r#"(principal "{pb}", "big_reply", blob "{hex}")"#)
    };
    // A reply of 1.5 MiB crosses (one frame, within the 2 MiB limit).
    let out = a.call("pa", "call_method", &encoded(3 << 19));
    assert!(out.contains("Ok = blob") && out.len() > 3 << 19, "{}", &out[..out.len().min(300)]);
    // One over 2 MiB is refused where it is made, as on one node.
    let out = a.call("pa", "call_method", &encoded((2 << 20) + 1));
    assert!(out.contains("Err = record"), "{}", &out[..out.len().min(300)]);
}

/// Waits until the probe `canister`'s own log (its `log` query) on `peer`
/// shows `needle`.
fn wait_canister_log(peer: &Peer, canister: &str, needle: &str) {
    let started = Instant::now();
    loop {
        let logs = peer.call(canister, "log", "()");
        if logs.contains(needle) {
            return;
        }
        assert!(
            started.elapsed() < CONNECT_TIMEOUT,
            "{canister} never logged {needle:?}: {logs}\nnode log:\n{}",
            peer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two connected nodes (each with a state directory if asked), `pa` on
/// `a` calling `pb.wait_gate` on `b` (`record_after_gate`, a `ww call` in
/// the background), returned once `pb` waits at its shut gate.
fn waiting_at_the_gate(
    a_durable: bool,
    b_durable: bool,
) -> (Peer, Peer, std::thread::JoinHandle<std::process::Output>) {
    let (mut a, mut b) = (Peer::new(), Peer::new());
    a.boot(&b);
    b.boot(&a);
    for (peer, durable) in [(&mut a, a_durable), (&mut b, b_durable)] {
        if durable {
            peer.start_durable()
        } else {
            peer.start()
        }
    }
    a.wait_streams(1);
    b.wait_streams(1);
    let _pa = a.probe("pa");
    let pb = b.probe("pb");
    let pending = a.call_in_background("pa", "record_after_gate", format!(r#"(principal "{pb}")"#));
    b.wait_until_pb_waits();
    (a, b, pending)
}

#[test]
fn a_call_in_flight_completes_across_its_callers_restart_from_the_state_directory() {
    // The XNet streams are in a's cuts: a request leaves a only once a cut
    // holds it, so when pb runs it a's state has the call; killed and
    // restarted from its state directory, a is the same incarnation and
    // resumes the stream, and pb's answer reaches pa's callback.
    let (mut a, b, _pending) = waiting_at_the_gate(true, false);
    a.kill();
    a.start_durable();
    a.wait_log("serving until", 2);
    b.call("pb", "open_gate", "()");
    wait_canister_log(&a, "pa", "after gate");
    assert!(
        !a.log().contains("answered SYS_TRANSIENT"),
        "nothing was lost:\n{}",
        a.log()
    );
}

#[test]
fn a_call_in_flight_completes_across_its_callees_restart_from_the_state_directory() {
    // b holds pa's call (pb waits at its gate) when it is killed; restarted
    // from its state directory it is the same incarnation, so a keeps
    // waiting instead of failing the call, and pb's answer comes back.
    let (a, mut b, pending) = waiting_at_the_gate(false, true);
    // pb's context is in a synced cut once b acknowledged the request; a
    // background cut has certainly happened within a second and a half.
    std::thread::sleep(Duration::from_millis(1500));
    b.kill();
    b.start_durable();
    b.wait_log("serving until", 2);
    b.call("pb", "open_gate", "()");
    let out = pending.join().unwrap();
    assert!(
        out.status.success(),
        "{}\nnode a:\n{}\nnode b:\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log(),
        b.log()
    );
    wait_canister_log(&a, "pa", "after gate");
    assert!(
        !a.log().contains("peer restarted without our calls"),
        "a failed nothing:\n{}",
        a.log()
    );
}
