//! HTTPS outcalls end to end, as a canister developer meets them: a node of
//! the real `ww` binary (`ww serve --state DIR --allow-outcalls ...`), an
//! unmodified ic-cdk canister (`cdk_platform`, using
//! ic-cdk-management-canister's `HttpRequest` with pricing version 2) whose
//! `http_fetch` makes the management canister's `http_request`, and a small
//! HTTP/1.1 server inside the test that records what reached it.
//!
//! What is checked is the IC's behaviour: the response as the remote sent
//! it (status, headers, body), the transform (`strip`), `user-agent:
//! ic/1.0` added only when the canister sends none, redirects returned and
//! not followed, `max_response_bytes` limits (headers, body, transformed
//! response), the timeout, the argument checks (reject code 4), fees
//! charged with the rest refunded, and ww's own rule: only hosts named with
//! `--allow-outcalls` are reached, a list the state directory keeps. Also
//! `flexible_http_request` (`flexible_fetch`): one request per committee
//! node, their responses delivered.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candid::{CandidType, Deserialize, Nat};
use common::*;
use serde_bytes::ByteBuf;

// --- the remote server -------------------------------------------------------

/// One request as the test server received it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    /// The values of header `name` (any case).
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// A loopback HTTP/1.1 server, a thread per connection, `Connection: close`:
///
/// - `/hello`: 200, header `x-test: 1`, body `hello`
/// - `/echo`: 200, body `<METHOD> <user-agent> <body>`
/// - `/big`: 200, a 10 000-byte body
/// - `/redirect`: 302 to `/hello`
/// - `/slow`: 200 after 5 s
struct Remote {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const BIG: usize = 10_000;
const SLOW: Duration = Duration::from_secs(5);

impl Remote {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &log);
                });
            }
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests that reached `path` so far.
    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path == path).cloned().collect()
    }

    fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request from `stream`, records it and answers it.
fn answer(mut stream: TcpStream, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut rest = buf[head_end + 4..].to_vec();
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Chunked: until the last (empty) chunk.
        let mut body = Vec::new();
        loop {
            let Some(eol) = find(&rest, b"\r\n") else {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&chunk[..n]);
                continue;
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).split(';').next().unwrap().trim(), 16)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            while rest.len() < eol + 2 + size + 2 {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                rest.extend_from_slice(&chunk[..n]);
            }
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest.drain(..eol + 2 + size + 2);
        }
        body
    } else {
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while rest.len() < len {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    };
    let seen = Seen { method: method.clone(), path: path.clone(), headers, body };
    log.lock().unwrap().push(seen.clone());

    let (status, extra, body): (&str, Vec<(&str, String)>, Vec<u8>) = match path.as_str() {
        "/hello" => ("200 OK", vec![("x-test", "1".into())], b"hello".to_vec()),
        "/echo" => {
            let ua = seen.header("user-agent").join(",");
            let mut body = format!("{method} {ua} ").into_bytes();
            body.extend_from_slice(&seen.body);
            ("200 OK", vec![], body)
        }
        "/big" => ("200 OK", vec![], (0..BIG).map(|i| b'a' + (i % 26) as u8).collect()),
        "/redirect" => ("302 Found", vec![("location", "/hello".into())], Vec::new()),
        "/slow" => {
            std::thread::sleep(SLOW);
            ("200 OK", vec![], b"slow".to_vec())
        }
        _ => ("404 Not Found", vec![], b"not found".to_vec()),
    };
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// --- the node ------------------------------------------------------------------

/// `ww serve --state DIR <flags>`, stopped with SIGTERM on drop (so the state
/// directory can be served again).
struct Node {
    child: Child,
    state: PathBuf,
}

impl Node {
    fn start(state: &Path, flags: &[String]) -> Self {
        let mut child = ww()
            .args(["serve", "--state"])
            .arg(state)
            .args(flags)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        read_until(&mut stderr, "serving until", Duration::from_secs(60));
        // Keep draining the node's log so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, state: state.to_path_buf() }
    }

    /// `ww run --serve --state DIR <flags> <testkit image> -- deploy` (pid0
    /// deploys nothing): the same node, started with an image.
    fn start_image(state: &Path, flags: &[String]) -> (Self, ImageDir) {
        let image = ImageDir::testkit();
        let mut child = ww()
            .args(["run", "--serve", "--state"])
            .arg(state)
            .args(flags)
            .arg(image.path())
            .args(["--", "deploy"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        read_until(&mut stderr, "serving until", Duration::from_secs(60));
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        (Self { child, state: state.to_path_buf() }, image)
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
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `ww <args>` that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "ww {}: exit {code}\nstdout: {out}\nstderr: {err}", args.join(" "));
        out
    }

    /// Creates canister `name` and installs `cdk_platform` on it.
    fn install_platform(&self, name: &str) {
        self.ok(&["canister", "create", name]);
        self.ok(&["canister", "install", name, platform().to_str().unwrap()]);
    }

    /// `name.http_fetch(fetch)`, the reply decoded.
    fn fetch(&self, name: &str, fetch: &Fetch) -> HttpResult {
        let out = self.ok(&["call", name, "http_fetch", &fetch.candid(), "--raw"]);
        let bytes = hex::decode(&out).unwrap_or_else(|e| panic!("--raw printed {out:?}: {e}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("http_fetch replied {out}: {e}"))
    }

    /// `name.balance()`.
    fn balance(&self, name: &str) -> u128 {
        let out = self.ok(&["call", name, "balance", "--raw"]);
        let nat: Nat = candid::decode_one(&hex::decode(&out).unwrap()).unwrap();
        u128::try_from(nat.0).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        // A node that does not stop must not hang the tests (nor pass).
        let started = Instant::now();
        while started.elapsed() < HANG_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            panic!("ww serve --state {} did not stop within {HANG_TIMEOUT:?} of SIGTERM", self.state.display());
        }
    }
}

/// The built `cdk_platform` canister (an ic-cdk core module). Fails (never
/// skips) when missing.
fn platform() -> PathBuf {
    let p = repo().join("guests/target/wasm32-unknown-unknown/release/cdk_platform.wasm");
    assert!(p.is_file(), "ic-cdk canister {} is missing: run `make ic-guests` (make test builds it)", p.display());
    p
}

// --- cdk_platform's interface ----------------------------------------------------

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Header {
    name: String,
    value: String,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct HttpReply {
    status: Nat,
    headers: Vec<Header>,
    body: ByteBuf,
}

impl HttpReply {
    fn status(&self) -> u64 {
        u64::try_from(self.status.0.clone()).unwrap()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }
    /// The bytes `max_response_bytes` counts for the headers.
    fn header_bytes(&self) -> u64 {
        self.headers.iter().map(|h| (h.name.len() + h.value.len()) as u64).sum()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct Failure {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
enum HttpResult {
    Ok(HttpReply),
    Err(Failure),
}

impl HttpResult {
    #[track_caller]
    fn ok(self) -> HttpReply {
        match self {
            HttpResult::Ok(r) => r,
            HttpResult::Err(f) => panic!("the outcall failed: reject code {}: {}", f.code, f.message),
        }
    }
    #[track_caller]
    fn err(self) -> Failure {
        match self {
            HttpResult::Err(f) => f,
            HttpResult::Ok(r) => panic!("the outcall succeeded: status {}, body {:?}", r.status, r.text()),
        }
    }
}

/// `http_fetch`'s argument.
#[derive(Clone)]
struct Fetch {
    url: String,
    method: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<Vec<u8>>,
    max_response_bytes: Option<u64>,
    transform: bool,
    is_replicated: Option<bool>,
}

impl Fetch {
    fn get(url: String) -> Self {
        Self { url, method: "get", headers: Vec::new(), body: None, max_response_bytes: None, transform: false, is_replicated: None }
    }
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    fn body(mut self, body: &[u8]) -> Self {
        self.body = Some(body.to_vec());
        self
    }
    fn max(mut self, bytes: u64) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }
    fn transform(mut self) -> Self {
        self.transform = true;
        self
    }
    fn replicated(mut self, replicated: bool) -> Self {
        self.is_replicated = Some(replicated);
        self
    }

    /// Candid text, as a developer types it for `ww call`.
    fn candid(&self) -> String {
        let text = |s: &str| format!("{s:?}");
        let headers: Vec<String> =
            self.headers.iter().map(|(n, v)| format!("record {{ name = {}; value = {} }}", text(n), text(v))).collect();
        let body = match &self.body {
            Some(b) => format!("opt blob \"{}\"", b.iter().map(|c| format!("\\{c:02x}")).collect::<String>()),
            None => "null".into(),
        };
        let opt = |v: Option<String>| v.map_or("null".to_string(), |v| format!("opt {v}"));
        format!(
            "(record {{ url = {}; method = {}; headers = vec {{ {} }}; body = {body}; max_response_bytes = {}; transform = {}; is_replicated = {} }})",
            text(&self.url),
            text(self.method),
            headers.join("; "),
            opt(self.max_response_bytes.map(|m| m.to_string())),
            self.transform,
            opt(self.is_replicated.map(|r| r.to_string())),
        )
    }
}

#[track_caller]
fn assert_refused(failure: &Failure, host: &str) {
    assert_eq!(failure.code, 2, "SYS_TRANSIENT, as an unreachable host: {failure:?}");
    assert_eq!(
        failure.message,
        format!("Connecting to {host} failed: ww makes outcalls only to hosts named with --allow-outcalls (this node does not allow {host})")
    );
}

// --- the tests -------------------------------------------------------------------

/// One node allowed to reach the test server (`127.0.0.1:<port>`, and a
/// closed port), with a 2 s timeout: responses, transform, user agent,
/// limits, redirects, the timeout, the argument checks, the refusals and
/// the fees. Then the same state directory served again without the flag
/// (the saved list still allows the server), and with `--no-outcalls`.
#[test]
fn outcalls_reach_allowed_hosts_as_the_ic_makes_them() {
    let remote = Remote::start();
    let other = Remote::start();
    let closed = closed_port();
    let state = tempfile::tempdir().unwrap();
    let flags: Vec<String> = [
        "--allow-outcalls".to_string(),
        format!("127.0.0.1:{}", remote.port),
        "--allow-outcalls".to_string(),
        format!("127.0.0.1:{closed}"),
        "--outcall-timeout-secs".to_string(),
        "2".to_string(),
    ]
    .into();
    let node = Node::start(state.path(), &flags);
    node.install_platform("p");

    // 1. GET /hello: the remote's status, headers and body; transformed,
    //    no headers and the context before the body.
    let before = node.balance("p");
    let reply = node.fetch("p", &Fetch::get(remote.url("/hello"))).ok();
    let after = node.balance("p");
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert_eq!(reply.text(), "hello");
    assert_eq!(reply.header("x-test"), Some("1"), "the remote's header reaches the canister: {reply:?}");
    assert_eq!(remote.seen("/hello").len(), 1, "one request reached the server");
    let got = remote.seen("/hello").remove(0);
    assert_eq!(got.method, "GET");
    assert!(got.body.is_empty(), "a GET without a body: {got:?}");

    // 8. The fee: pricing version 2 attaches what the largest response
    //    (2 MB, 30 s) would cost, tens of billions of cycles for 13 nodes;
    //    the base fee plus what was used is kept, the rest refunded.
    let spent = before.checked_sub(after).unwrap_or_else(|| panic!("the balance grew: {before} -> {after}"));
    assert!(spent > 1_000_000, "an outcall's base fee is more than 1M cycles per node; spent {spent}");
    assert!(spent < 1_000_000_000, "the unused cycles are refunded (ic-cdk attaches ~37B for this call); spent {spent}");

    let reply = node.fetch("p", &Fetch::get(remote.url("/hello")).transform()).ok();
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert!(reply.headers.is_empty(), "strip drops every header: {reply:?}");
    assert_eq!(reply.text(), "ctx:hello");

    // HEAD: the status and headers, no body.
    let reply = node.fetch("p", &Fetch::get(remote.url("/hello")).method("head")).ok();
    assert_eq!((reply.status(), reply.header("x-test")), (200, Some("1")), "{reply:?}");
    assert!(reply.body.is_empty(), "{reply:?}");
    assert_eq!(remote.seen("/hello").pop().unwrap().method, "HEAD");

    // A non-replicated outcall (one node) costs less than a replicated one.
    let before = node.balance("p");
    let reply = node.fetch("p", &Fetch::get(remote.url("/hello")).replicated(false)).ok();
    let spent_alone = before - node.balance("p");
    assert_eq!(reply.text(), "hello");
    assert!(spent_alone > 0 && spent_alone < spent, "non-replicated {spent_alone} vs replicated {spent}");

    // 2. POST /echo: the server sees the method, the body and the IC's user
    //    agent; a canister's own user agent replaces it.
    let reply = node.fetch("p", &Fetch::get(remote.url("/echo")).method("post").body(b"some data")).ok();
    assert_eq!(reply.text(), "POST ic/1.0 some data");
    let got = remote.seen("/echo").pop().unwrap();
    assert_eq!((got.method.as_str(), got.header("user-agent"), got.body.as_slice()), ("POST", vec!["ic/1.0"], &b"some data"[..]));
    let reply = node
        .fetch(
            "p",
            &Fetch::get(remote.url("/echo")).method("post").header("user-agent", "mine").header("x-mine", "yes").body(b"x"),
        )
        .ok();
    assert_eq!(reply.text(), "POST mine x", "only the canister's user agent");
    let got = remote.seen("/echo").pop().unwrap();
    assert_eq!(got.header("user-agent"), vec!["mine"]);
    assert_eq!(got.header("x-mine"), vec!["yes"], "the canister's headers are sent");

    // 3. max_response_bytes: headers and body count; over it, reject code 1.
    let failure = node.fetch("p", &Fetch::get(remote.url("/big")).max(1000)).err();
    assert_eq!((failure.code, failure.message.as_str()), (1, "Http body exceeds size limit of 1000 bytes."));
    let reply = node.fetch("p", &Fetch::get(remote.url("/big")).max(20_000)).ok();
    assert_eq!(reply.body.len(), BIG);
    assert_eq!(reply.body[..3], *b"abc");
    let headers = reply.header_bytes();
    assert!(headers > 0 && headers < 200, "{reply:?}");
    // Exactly enough for the response: it arrives.
    let exact = headers + BIG as u64;
    let reply = node.fetch("p", &Fetch::get(remote.url("/big")).max(exact)).ok();
    assert_eq!(reply.body.len(), BIG, "a response of exactly max_response_bytes ({exact}) is delivered");
    // One byte less: refused.
    let failure = node.fetch("p", &Fetch::get(remote.url("/big")).max(exact - 1)).err();
    assert_eq!((failure.code, failure.message), (1, format!("Http body exceeds size limit of {} bytes.", exact - 1)));
    // The headers alone over the limit.
    let failure = node.fetch("p", &Fetch::get(remote.url("/hello")).max(10)).err();
    assert_eq!((failure.code, failure.message.as_str()), (1, "Header size exceeds specified response size limit 10"));
    // The raw response fits, but the transform's Candid-encoded output
    // (the body plus "ctx:" and the encoding) does not.
    let failure = node.fetch("p", &Fetch::get(remote.url("/big")).max(exact).transform()).err();
    assert_eq!((failure.code, failure.message), (1, format!("Transformed http response exceeds limit: {exact}")));
    // With room for it, the transformed response arrives.
    let reply = node.fetch("p", &Fetch::get(remote.url("/big")).max(exact + 200).transform()).ok();
    assert_eq!(reply.body.len(), BIG + 4);
    assert!(reply.body.starts_with(b"ctx:abc"), "{:?}", &reply.body[..10]);

    // 4. A redirect is the response: not followed.
    let hellos = remote.seen("/hello").len();
    let reply = node.fetch("p", &Fetch::get(remote.url("/redirect"))).ok();
    assert_eq!(reply.status(), 302, "{reply:?}");
    assert_eq!(reply.header("location"), Some("/hello"), "{reply:?}");
    assert!(reply.body.is_empty());
    assert_eq!(remote.seen("/hello").len(), hellos, "the redirect was not followed");

    // 5. A remote slower than --outcall-timeout-secs: reject code 1.
    let started = Instant::now();
    let failure = node.fetch("p", &Fetch::get(remote.url("/slow"))).err();
    let took = started.elapsed();
    assert_eq!((failure.code, failure.message.as_str()), (1, "Timeout expired"));
    assert!(took >= Duration::from_secs(2), "the timeout is 2 s; the call took {took:?}");
    assert!(took < SLOW + Duration::from_secs(2), "the node gave up at its timeout, not after the server answered: {took:?}");
    assert_eq!(remote.seen("/slow").len(), 1, "the request did reach the server");

    // 6. Hosts not allowed are refused (code 2, naming the flag) without a
    //    request: another port of the same address, a name for the same
    //    address. An allowed port nothing listens on: connection refused.
    let failure = node.fetch("p", &Fetch::get(other.url("/hello"))).err();
    assert_refused(&failure, "127.0.0.1");
    let failure = node.fetch("p", &Fetch::get(format!("http://localhost:{}/hello", remote.port))).err();
    assert_refused(&failure, "localhost");
    assert_eq!(other.total(), 0, "nothing reached a host not allowed");
    let failure = node.fetch("p", &Fetch::get(format!("http://127.0.0.1:{closed}/hello"))).err();
    assert_eq!(failure.code, 2, "{failure:?}");
    assert!(failure.message.starts_with("Connecting to 127.0.0.1 failed: "), "{failure:?}");
    assert!(!failure.message.contains("--allow-outcalls"), "the port is allowed; the connection was refused: {failure:?}");

    // 7. The argument checks: reject code 4 with the IC's messages, before
    //    any request is made.
    let requests = remote.total();
    for method in ["put", "delete", "patch"] {
        let failure = node.fetch("p", &Fetch::get(remote.url("/echo")).method(method).body(b"b")).err();
        assert_eq!((failure.code, failure.message.as_str()), (4, "The requested HTTP method is only allowed for non-replicated requests."), "{method}");
        let failure = node.fetch("p", &Fetch::get(remote.url("/echo")).method(method).body(b"b").replicated(true)).err();
        assert_eq!((failure.code, failure.message.as_str()), (4, "The requested HTTP method is only allowed for non-replicated requests."), "{method}");
    }
    let failure = node.fetch("p", &Fetch::get(remote.url("/hello")).max(3_000_000)).err();
    assert_eq!((failure.code, failure.message.as_str()), (4, "max_response_bytes expected to be in the range [0..2000000], got 3000000"));
    assert_eq!(remote.total(), requests, "no request was made for a rejected argument");
    // Non-replicated, PUT is allowed.
    let reply = node.fetch("p", &Fetch::get(remote.url("/echo")).method("put").body(b"stored").replicated(false)).ok();
    assert_eq!(reply.text(), "PUT ic/1.0 stored");
    assert_eq!(remote.seen("/echo").pop().unwrap().method, "PUT");
    // The largest limit is allowed.
    let reply = node.fetch("p", &Fetch::get(remote.url("/hello")).max(2_000_000)).ok();
    assert_eq!(reply.text(), "hello");

    // Only canisters make outcalls: ingress to the management canister is
    // rejected.
    let ingress = format!(
        r#"(record {{ url = "{}"; max_response_bytes = null; method = variant {{ get }}; headers = vec {{}}; body = null; transform = null; is_replicated = null }})"#,
        remote.url("/hello")
    );
    let dir = tempfile::tempdir().unwrap();
    let did = dir.path().join("ic.did");
    std::fs::write(
        &did,
        "type http_header = record { name : text; value : text };\n\
         type http_request_result = record { status : nat; headers : vec http_header; body : blob };\n\
         service : {\n  http_request : (record {\n    url : text;\n    max_response_bytes : opt nat64;\n    \
         method : variant { get; head; post; put; delete; patch };\n    headers : vec http_header;\n    body : opt blob;\n    \
         transform : opt record { function : func (record { response : http_request_result; context : blob }) -> (http_request_result) query; context : blob };\n    \
         is_replicated : opt bool;\n  }) -> (http_request_result);\n}\n",
    )
    .unwrap();
    let hellos = remote.seen("/hello").len();
    let (code, out, err) = node.cli(&["call", "aaaaa-aa", "http_request", &ingress, "--candid", did.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("reject code 4") && err.contains("Only canisters can call ic00 method http_request"), "{err}");
    // The same without --candid: ww's built-in interface of aaaaa-aa.
    let (code, out, err) = node.cli(&["call", "aaaaa-aa", "http_request", &ingress]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("reject code 4") && err.contains("Only canisters can call ic00 method http_request"), "{err}");
    assert_eq!(remote.seen("/hello").len(), hellos, "no request for an ingress message");

    // The allow list is kept in the state directory.
    let saved = std::fs::read_to_string(state.path().join("outcalls.allow")).expect("outcalls.allow is written");
    assert!(saved.contains(&format!("127.0.0.1:{}", remote.port)), "{saved}");
    drop(node);

    // The same state directory without the flag: the saved list still
    // allows the server (and still refuses the other port).
    let node = Node::start(state.path(), &[]);
    let reply = node.fetch("p", &Fetch::get(remote.url("/hello"))).ok();
    assert_eq!((reply.status(), reply.text()), (200, "hello".to_string()));
    let failure = node.fetch("p", &Fetch::get(other.url("/hello"))).err();
    assert_refused(&failure, "127.0.0.1");
    // The timeout is not kept: 30 s again, so /slow now answers.
    let reply = node.fetch("p", &Fetch::get(remote.url("/slow"))).ok();
    assert_eq!(reply.text(), "slow");
    drop(node);

    // --no-outcalls forgets the list: refused, and stays so.
    let node = Node::start(state.path(), &["--no-outcalls".to_string()]);
    let failure = node.fetch("p", &Fetch::get(remote.url("/hello"))).err();
    assert_refused(&failure, "127.0.0.1");
    assert!(!state.path().join("outcalls.allow").exists(), "--no-outcalls removes the saved list");
    drop(node);
    assert_eq!(other.total(), 0, "nothing ever reached a host not allowed");
}

/// A node started without `--allow-outcalls` reaches no host, not even the
/// loopback address; `*` allows any.
#[test]
fn a_node_without_allow_outcalls_refuses_every_host() {
    let remote = Remote::start();
    let state = tempfile::tempdir().unwrap();
    let node = Node::start(state.path(), &[]);
    node.install_platform("p");
    let failure = node.fetch("p", &Fetch::get(remote.url("/hello"))).err();
    assert_refused(&failure, "127.0.0.1");
    let failure = node.fetch("p", &Fetch::get("https://example.org/".to_string())).err();
    assert_refused(&failure, "example.org");
    assert_eq!(remote.total(), 0, "nothing reached the server");
    assert!(!state.path().join("outcalls.allow").exists());
    drop(node);

    // `*`, given to `ww run --serve` with an image: any host.
    let (node, _image) = Node::start_image(state.path(), &["--allow-outcalls".to_string(), "*".to_string()]);
    let reply = node.fetch("p", &Fetch::get(remote.url("/hello"))).ok();
    assert_eq!((reply.status(), reply.text()), (200, "hello".to_string()));
    // A host that does not resolve: allowed, but the connection fails.
    let failure = node.fetch("p", &Fetch::get("https://ww-outcalls-test.invalid/".to_string())).err();
    assert_eq!(failure.code, 2, "{failure:?}");
    assert!(failure.message.starts_with("Connecting to ww-outcalls-test.invalid failed: "), "{failure:?}");
}

/// `flexible_fetch`'s result: the responses, the outcall's `err`, or the
/// call's reject.
#[derive(CandidType, Deserialize, Debug, Clone)]
enum FlexibleResult {
    Ok(Vec<HttpReply>),
    Err(FlexibleError),
    Rejected(Failure),
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct FlexibleError {
    global_error: Option<String>,
    node_details: Vec<FlexibleNode>,
    message: String,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct FlexibleNode {
    node_id: candid::Principal,
    code: Option<String>,
    message: Option<String>,
}

impl Node {
    /// `name.flexible_fetch` of a GET of `url` by `total` nodes, `min` to
    /// `max` responses.
    fn flexible_get(&self, name: &str, url: &str, (total, min, max): (u32, u32, u32)) -> FlexibleResult {
        let arg = format!(
            "(record {{ url = {url:?}; method = \"get\"; headers = vec {{}}; body = null; max_response_bytes = null; transform = false; \
             replication = opt record {{ total_requests = {total}; min_responses = {min}; max_responses = {max} }} }})"
        );
        let out = self.ok(&["call", name, "flexible_fetch", &arg, "--raw"]);
        candid::decode_one(&hex::decode(&out).unwrap()).unwrap_or_else(|e| panic!("flexible_fetch replied {out}: {e}"))
    }
}

/// A node offers `flexible_http_request`: each committee node makes the
/// request itself, and the canister gets their responses; nodes that cannot
/// reach the host reject, which past `total − min` is `too_many_rejects`.
#[test]
fn flexible_outcalls_are_made_by_every_committee_node() {
    let remote = Remote::start();
    let state = tempfile::tempdir().unwrap();
    let node = Node::start(state.path(), &["--allow-outcalls".to_string(), format!("127.0.0.1:{}", remote.port)]);
    node.install_platform("p");

    let FlexibleResult::Ok(replies) = node.flexible_get("p", &remote.url("/hello"), (3, 2, 3)) else { panic!("expected responses") };
    assert_eq!(remote.seen("/hello").len(), 3, "each of the 3 committee nodes made the request");
    assert!((2..=3).contains(&replies.len()), "{replies:?}");
    assert!(replies.iter().all(|r| r.status() == 200 && r.text() == "hello" && r.header("x-test") == Some("1")), "{replies:?}");

    let FlexibleResult::Err(e) = node.flexible_get("p", "https://example.org/", (3, 2, 3)) else { panic!("expected an err reply") };
    assert_eq!(e.global_error.as_deref(), Some("too_many_rejects"), "{e:?}");
    assert!(e.message.starts_with("Too many rejects: "), "{e:?}");
    assert!(e.node_details.len() >= 2, "{e:?}");
    for d in &e.node_details {
        assert_eq!(d.code.as_deref(), Some("SysTransient"), "{d:?}");
        assert!(d.message.as_deref().is_some_and(|m| m.starts_with("Connecting to example.org failed: ")), "{d:?}");
    }
    assert_eq!(remote.seen("/hello").len(), 3, "nothing more reached the server");
}
