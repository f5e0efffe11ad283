//! The harness of the ic-agent suite: a `ww serve --http 127.0.0.1:0` node
//! in a temporary state directory (killed when dropped), agents built the way
//! their users build them (`Agent::builder().with_url(..)`, then
//! `fetch_root_key`), and canisters created and installed through the
//! management canister over the HTTP interface.
//!
//! The ww binary is `WW_BIN`, else `<repo>/target/debug/ww`; the canisters
//! are the ones `make ic-guests` and `make motoko` build.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use ic_agent::{Agent, AgentError, Identity};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, InstallCodeArgs, ProvisionalCreateCanisterWithCyclesArgs,
};

/// The first canister id a node hands out, in its range: the effective
/// canister id of `provisional_create_canister_with_cycles`.
pub const FIRST_CANISTER: &str = "bkyz2-fmaaa-aaaaa-qaaaq-cai";

/// How long a node may take to bind its listener and write `http.url`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `WW_BIN`, else the debug build of the repo.
pub fn ww_bin() -> PathBuf {
    std::env::var_os("WW_BIN").map_or_else(|| repo().join("target/debug/ww"), PathBuf::from)
}

/// The ic-cdk 0.20 test canister (guests/ic-cdk/cdk_counter).
pub fn cdk_counter_wasm() -> Vec<u8> {
    read_module(&repo().join("guests/target/wasm32-unknown-unknown/release/cdk_counter.wasm"), "make ic-guests")
}

/// A Motoko canister from guests/motoko/src (`mo_counter`, ...), which
/// carries its interface in `icp:public candid:service`.
pub fn motoko_wasm(name: &str) -> Vec<u8> {
    read_module(&motoko_dir().join(format!("{name}.wasm")), "make motoko")
}

/// Where `make motoko` puts the Motoko modules and their `.did` files.
pub fn motoko_dir() -> PathBuf {
    repo().join("guests/target/motoko")
}

fn read_module(path: &Path, how: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{} ({e}): build it with `{how}`", path.display()))
}

/// `ww serve --state <dir>/node --http 127.0.0.1:0 <extra>`, its output
/// appended to `<dir>/ww.log`.
fn spawn(dir: &Path, extra: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ww.log"))
        .expect("the node's log file");
    let bin = ww_bin();
    Command::new(&bin)
        .arg("serve")
        .arg("--state")
        .arg(dir.join("node"))
        .args(["--http", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the node's log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} ({e}); set WW_BIN or build ww", bin.display()))
}

/// A `ww serve --http 127.0.0.1:0` node in a state directory of its own.
pub struct Node {
    child: Child,
    state: tempfile::TempDir,
    url: String,
}

impl Node {
    pub fn start() -> Node {
        Node::start_with(&[])
    }

    /// Starts a node with `extra` arguments after `--http 127.0.0.1:0`, then
    /// waits (bounded) for the URL it writes to `<state>/http.url`.
    pub fn start_with(extra: &[&str]) -> Node {
        let state = tempfile::Builder::new().prefix("ww-ic-agent-").tempdir().expect("a temporary state directory");
        let mut node = Node { child: spawn(state.path(), extra), state, url: String::new() };
        node.url = node.wait_for_url();
        node
    }

    fn spawn(&self, extra: &[&str]) -> Child {
        spawn(self.state.path(), extra)
    }

    fn url_file(&self) -> PathBuf {
        self.state.path().join("node/http.url")
    }

    fn wait_for_url(&mut self) -> String {
        let file = self.url_file();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Written atomically (tmp file + rename): once it exists it is whole.
            if let Ok(text) = std::fs::read_to_string(&file) {
                let url = text.trim_end_matches('\n');
                assert!(
                    url.starts_with("http://127.0.0.1:") && url.ends_with('/') && !url.contains('\n'),
                    "{} holds {text:?}, not `http://127.0.0.1:PORT/` and a newline",
                    file.display()
                );
                return url.to_string();
            }
            if let Some(status) = self.child.try_wait().expect("the node's status") {
                panic!("ww serve exited ({status}) before writing {}; its log:\n{}", file.display(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ww serve wrote no {} within {START_TIMEOUT:?}; its log:\n{}",
                file.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT/`.
    /// The node's state directory (for `ww call --state`).
    pub fn state_dir(&self) -> PathBuf {
        self.state.path().join("node")
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the node printed so far (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.state.path().join("ww.log")) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// An agent for `identity` with its checks on, the root key fetched.
    pub async fn agent(&self, identity: impl Identity + 'static) -> Agent {
        let agent = self.agent_unfetched(identity);
        agent.fetch_root_key().await.unwrap_or_else(|e| panic!("fetch_root_key from {}: {e}", self.url));
        agent
    }

    /// An agent for `identity` that still holds the mainnet root key.
    pub fn agent_unfetched(&self, identity: impl Identity + 'static) -> Agent {
        Agent::builder()
            .with_url(self.url.clone())
            .with_identity(identity)
            .build()
            .unwrap_or_else(|e| panic!("an agent for {}: {e}", self.url))
    }

    /// SIGKILL, then a new `ww serve` (the same arguments) on the same state
    /// directory; the URL is the one it writes anew.
    pub fn kill_and_restart(&mut self, extra: &[&str]) {
        self.child.kill().expect("kill -KILL the node");
        self.child.wait().expect("the killed node's status");
        // The dead node's URL file must not pass for the new node's.
        std::fs::remove_file(self.url_file()).expect("remove the old http.url");
        self.child = self.spawn(extra);
        self.url = self.wait_for_url();
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: signals our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("the node's status") {
                return status;
            }
            assert!(Instant::now() < deadline, "ww serve still runs 30 s after SIGTERM; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failing test shows what the node said.
        if std::thread::panicking() {
            eprintln!("--- the log of ww serve ({}):\n{}\n---", self.url, self.log());
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `provisional_create_canister_with_cycles` through the canister endpoint
/// (effective canister id [`FIRST_CANISTER`]); the sender is the controller.
pub async fn create_canister(agent: &Agent) -> Principal {
    create_canister_at(agent, Principal::from_text(FIRST_CANISTER).expect("a canister id")).await
}

/// [`create_canister`] through the canister endpoint of `ecid` (an id in
/// the range of the subnet it should land on).
pub async fn create_canister_at(agent: &Agent, ecid: Principal) -> Principal {
    let arg = ProvisionalCreateCanisterWithCyclesArgs {
        amount: None,
        settings: None,
        specified_id: None,
        sender_canister_version: None,
    };
    let reply = agent
        .update(&Principal::management_canister(), "provisional_create_canister_with_cycles")
        .with_effective_canister_id(ecid)
        .with_arg(Encode!(&arg).expect("candid"))
        .call_and_wait()
        .await
        .unwrap_or_else(|e| panic!("provisional_create_canister_with_cycles at {ecid}: {e}"));
    candid::decode_one::<CanisterIdRecord>(&reply)
        .unwrap_or_else(|e| panic!("provisional_create_canister_with_cycles replied {reply:02x?}: {e}"))
        .canister_id
}

/// `install_code` (mode install) of `wasm` with the Candid argument `arg`.
pub async fn install(agent: &Agent, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>) -> Result<(), AgentError> {
    let args = InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: canister,
        wasm_module: wasm,
        arg,
        sender_canister_version: None,
    };
    agent
        .update(&Principal::management_canister(), "install_code")
        .with_effective_canister_id(canister)
        .with_arg(Encode!(&args).expect("candid"))
        .call_and_wait()
        .await
        .map(|_| ())
}

/// A new canister running `wasm`, installed with no argument (`DIDL\0\0`).
pub async fn deploy(agent: &Agent, wasm: Vec<u8>) -> Principal {
    let id = create_canister(agent).await;
    install(agent, id, wasm, Encode!().expect("candid")).await.unwrap_or_else(|e| panic!("install_code {id}: {e}"));
    id
}

/// A new `cdk_counter` canister.
pub async fn deploy_counter(agent: &Agent) -> Principal {
    deploy(agent, cdk_counter_wasm()).await
}

/// cdk_counter's heap counter (the `get` query).
pub async fn counter(agent: &Agent, id: Principal) -> u64 {
    let reply = agent.query(&id, "get").with_arg(Encode!().expect("candid")).call().await;
    decode("get", &reply.unwrap_or_else(|e| panic!("get on {id}: {e}")))
}

/// A deterministic Ed25519 identity (`seed` fills the secret key).
pub fn ed25519(seed: u8) -> ic_agent::identity::BasicIdentity {
    ic_agent::identity::BasicIdentity::from_raw_key(&[seed; 32])
}

/// cdk_counter's `whoami` as an update call and as a query: both must name
/// `expected`.
pub async fn assert_whoami(agent: &Agent, canister: Principal, expected: Principal, who: &str) {
    let reply = agent.update(&canister, "whoami").with_arg(Encode!().expect("candid")).call_and_wait().await;
    let reply = reply.unwrap_or_else(|e| panic!("{who}: whoami as an update: {e}"));
    assert_eq!(decode::<Principal>("whoami", &reply), expected, "{who}: whoami as an update");
    let reply = agent.query(&canister, "whoami").with_arg(Encode!().expect("candid")).call().await;
    let reply = reply.unwrap_or_else(|e| panic!("{who}: whoami as a query: {e}"));
    assert_eq!(decode::<Principal>("whoami", &reply), expected, "{who}: whoami as a query");
}

/// Candid-decodes a reply of one value, naming the method on failure.
pub fn decode<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(method: &str, reply: &[u8]) -> T {
    candid::decode_one(reply).unwrap_or_else(|e| panic!("{method} replied {reply:02x?}: {e}"))
}

/// The HTTP status and body of an `AgentError::HttpError`, or a panic
/// naming what came instead.
pub fn http_error(what: &str, result: Result<Vec<u8>, AgentError>) -> (u16, String) {
    match result {
        Err(AgentError::HttpError(p)) => (p.status, String::from_utf8_lossy(&p.content).into_owned()),
        Err(e) => panic!("{what}: expected an HTTP error status, got the agent error {e:?}"),
        Ok(reply) => panic!("{what}: expected an HTTP error status, got a reply {reply:02x?}"),
    }
}

/// One request an agent sent through a [`Recorder`], with the answer's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub method: String,
    /// The URL path, e.g. `/api/v4/canister/<id>/call`.
    pub path: String,
    pub status: u16,
}

/// ic-agent's HTTP middleware hook: sends each request with reqwest once
/// (no retries) and records it, so a test sees which endpoints the agent
/// used and what they answered.
#[derive(Debug, Default)]
pub struct Recorder {
    client: ic_agent::export::reqwest::Client,
    log: std::sync::Mutex<Vec<Exchange>>,
}

impl Recorder {
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("the recorder's log").clone()
    }
}

#[async_trait::async_trait]
impl ic_agent::agent::HttpService for Recorder {
    async fn call<'a>(
        &'a self,
        req: &'a (dyn Fn() -> Result<http::Request<bytes::Bytes>, AgentError> + Send + Sync),
        _max_retries: usize,
        _size_limit: Option<usize>,
    ) -> Result<http::Response<bytes::Bytes>, AgentError> {
        use ic_agent::agent_error::TransportError;
        let request = req()?;
        let (method, path) = (request.method().to_string(), request.uri().path().to_string());
        let request: ic_agent::export::reqwest::Request =
            request.try_into().map_err(|e| AgentError::TransportError(TransportError::Reqwest(e)))?;
        let response = self.client.execute(request).await.map_err(|e| AgentError::TransportError(TransportError::Reqwest(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| AgentError::TransportError(TransportError::Reqwest(e)))?;
        self.log.lock().expect("the recorder's log").push(Exchange { method, path, status: status.as_u16() });
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

impl Node {
    /// An agent like [`Node::agent`] whose requests go through a [`Recorder`].
    pub async fn recorded_agent(&self, identity: impl Identity + 'static) -> (Agent, std::sync::Arc<Recorder>) {
        let recorder = std::sync::Arc::new(Recorder::default());
        let agent = Agent::builder()
            .with_url(self.url.clone())
            .with_identity(identity)
            .with_arc_http_middleware(recorder.clone())
            .build()
            .unwrap_or_else(|e| panic!("an agent for {}: {e}", self.url));
        agent.fetch_root_key().await.unwrap_or_else(|e| panic!("fetch_root_key from {}: {e}", self.url));
        (agent, recorder)
    }
}

/// The canister id `n` places after `id` in the node's range (the index in
/// its first 8 bytes, big-endian, then `0x01 0x01`).
pub fn canister_after(id: Principal, n: u64) -> Principal {
    let bytes = id.as_slice();
    assert!(bytes.len() == 10 && bytes[8..] == [1, 1], "{id} is not a canister id");
    let index = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) + n;
    let mut out = index.to_be_bytes().to_vec();
    out.extend_from_slice(&[1, 1]);
    Principal::from_slice(&out)
}

/// The reject in `result`, which must be `CertifiedReject` when `certified`
/// (a reject certified in the state tree), else `UncertifiedReject` (a
/// query's or a non-replicated rejection); a panic naming what came instead.
pub fn reject<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, AgentError>,
    certified: bool,
) -> ic_agent::agent::RejectResponse {
    match (result, certified) {
        (Err(AgentError::CertifiedReject { reject, .. }), true) => reject,
        (Err(AgentError::UncertifiedReject { reject, .. }), false) => reject,
        (other, _) => {
            let kind = if certified { "a certified" } else { "an uncertified" };
            panic!("{what}: expected {kind} reject, got {other:?}")
        }
    }
}

/// A new `cdk_counter` canister created through the canister endpoint of
/// `ecid`.
pub async fn deploy_counter_at(agent: &Agent, ecid: Principal) -> Principal {
    let id = create_canister_at(agent, ecid).await;
    install(agent, id, cdk_counter_wasm(), Encode!().expect("candid")).await.unwrap_or_else(|e| panic!("install_code {id}: {e}"));
    id
}
