//! `ww bench messaging`: the messaging throughput table the IC forum
//! thread asks for (`../shared/seeds/001`), measured on this machine: a
//! `probe` canister A calling a method of B that replies at once, on one
//! node and across two nodes connected over loopback TCP (two replicas and
//! two libp2p swarms in this process, talking XNet as separate `ww`
//! processes would).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use libp2p::Multiaddr;
use libp2p::identity::Keypair;

use crate::engine::{Engine, EngineConfig, EngineKind};
use crate::image::BootPeer;
use crate::net::routing;
use crate::net::{NetConfig, Network, XnetConfig};
use crate::replica::{InstallMode, Replica, ReplicaConfig, SubnetRange};

/// Callees of the A → any rows.
const FAN_OUT: usize = 10;
/// Calls in flight in the request-and-reply rows (below the 500 limit).
const WINDOW: u32 = 100;
/// One-way calls queued per execution (below the 500 limit).
const ONEWAY_BURST: u32 = 250;
/// How long the two nodes may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("setting up: {0}")]
    Setup(String),
    #[error("{what}: {why}")]
    Call { what: String, why: String },
    #[error("the two nodes did not connect within {CONNECT_TIMEOUT:?}")]
    NotConnected,
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

#[derive(CandidType, Deserialize)]
struct CallError {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize)]
struct FloodResult {
    queued: u32,
    first_error: Option<CallError>,
}

/// One row of the table: messages per second on one node and across two.
pub struct Row {
    pub what: &'static str,
    pub same_node: Option<f64>,
    pub across_nodes: Option<f64>,
    pub ic: &'static str,
}

/// The measured table.
pub struct MessagingReport {
    pub calls: u32,
    pub rows: Vec<Row>,
    /// What a caller sees past 500 outstanding calls (same node, across).
    pub limit_same: String,
    pub limit_across: String,
}

struct Side {
    replica: Replica,
    network: Network,
    admin: Principal,
}

/// A node: a replica and its network (`net` without its keypair).
async fn side(engine: &Engine, keypair: Keypair, net: (Vec<Multiaddr>, Vec<BootPeer>, Vec<libp2p::PeerId>)) -> Result<Side, BenchError> {
    let peer = keypair.public().to_peer_id();
    let range = routing::derived_range(&peer);
    let (listen, boot, trusted) = net;
    let config = ReplicaConfig { subnets: vec![SubnetRange::new(routing::subnet_of(&peer), range.clone())], ..ReplicaConfig::default() };
    let replica = Replica::new(engine.clone(), config).map_err(setup)?;
    let admin = Principal::self_authenticating(peer.to_bytes());
    let xnet = XnetConfig { replica: replica.clone(), admin, range, subnet: routing::subnet_of(&peer) };
    let network = Network::start(NetConfig { keypair, listen, boot, trusted }, Some(xnet)).await.map_err(setup)?;
    Ok(Side { replica, network, admin: Principal::self_authenticating(b"ww bench messaging") })
}

impl Side {
    async fn probe(&self, wasm: &[u8]) -> Result<Principal, BenchError> {
        let id = self.replica.create_canister(vec![self.admin]);
        let module = crate::replica::install::prepare_module(&self.replica, &id, wasm).map_err(|e| setup(e.message))?;
        let arg = Encode!(&Option::<()>::None).map_err(setup)?;
        self.replica.install(self.admin, id, InstallMode::Install, module, arg).await.map_err(|e| setup(e.message))?;
        Ok(id)
    }

    async fn update<T: CandidType + for<'de> Deserialize<'de>>(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<T, BenchError> {
        let failed = |why: String| BenchError::Call { what: method.to_string(), why };
        let bytes = self.replica.call(self.admin, canister, method, arg).await.map_err(|r| failed(r.message))?;
        Decode!(&bytes, T).map_err(|e| failed(e.to_string()))
    }

    async fn query<T: CandidType + for<'de> Deserialize<'de>>(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<T, BenchError> {
        let failed = |why: String| BenchError::Call { what: method.to_string(), why };
        let bytes = self.replica.query(self.admin, canister, method, arg).await.map_err(|r| failed(r.message))?;
        Decode!(&bytes, T).map_err(|e| failed(e.to_string()))
    }
}

fn encode(arg: impl CandidType) -> Vec<u8> {
    Encode!(&arg).unwrap_or_default()
}

/// Requests with replies: `ping_loop` or `ping_spread` from `a`'s caller.
async fn request_reply(a: &Side, caller: Principal, callees: &[Principal], n: u32, window: u32) -> Result<f64, BenchError> {
    let started = Instant::now();
    let ok: u32 = match callees {
        [one] => a.update(caller, "ping_loop", Encode!(one, &n, &window).map_err(setup)?).await?,
        many => a.update(caller, "ping_spread", Encode!(&many.to_vec(), &n, &window).map_err(setup)?).await?,
    };
    if ok != n {
        return Err(BenchError::Call { what: "ping".into(), why: format!("{ok} of {n} calls succeeded") });
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

/// One-way calls: bursts from `caller` until `n` are queued, timed until
/// the callee ran them all.
async fn one_way(a: &Side, caller: Principal, b: &Side, callee: Principal, n: u32) -> Result<f64, BenchError> {
    let before: u64 = b.query(callee, "pongs", encode(())).await?;
    let started = Instant::now();
    let mut queued = 0u32;
    while queued < n {
        let burst = ONEWAY_BURST.min(n - queued);
        let q: u32 = a.update(caller, "oneway_burst", Encode!(&callee, &burst).map_err(setup)?).await?;
        queued += q;
        if q < burst {
            // At the 500 limit: let responses drain.
            tokio::task::yield_now().await;
        }
    }
    loop {
        let done: u64 = b.query(callee, "pongs", encode(())).await?;
        if done >= before + u64::from(n) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(BenchError::Call { what: "one-way".into(), why: format!("only {} of {n} arrived", done - before) });
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

/// Composite queries: `caller.composite_get(callee)`, `WINDOW` at a time.
async fn composite(a: &Side, caller: Principal, callee: Principal, n: u32) -> Result<f64, BenchError> {
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let batch = WINDOW.min(n - done);
        let calls = (0..batch).map(|_| a.query::<u64>(caller, "composite_get", encode(callee)));
        for r in futures::future::join_all(calls).await {
            r?;
        }
        done += batch;
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

/// What the 501st outstanding call from one caller to one callee gets.
async fn past_the_limit(a: &Side, caller: Principal, callee: Principal) -> Result<String, BenchError> {
    let r: FloodResult = a.update(caller, "flood", Encode!(&callee, &600u32).map_err(setup)?).await?;
    Ok(match r.first_error {
        Some(e) => format!("{} queued, then fails at once: code {} \"{}\"", r.queued, e.code, e.message),
        None => format!("{} queued, none refused", r.queued),
    })
}

/// Measures the table with `n` messages per row (a tenth for composite
/// queries), with `probe` as both canisters.
pub async fn messaging(probe: &[u8], n: u32, cache_dir: Option<std::path::PathBuf>) -> Result<MessagingReport, BenchError> {
    let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir, ..EngineConfig::default() }).map_err(setup)?;
    let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (pa, pb) = (ka.public().to_peer_id(), kb.public().to_peer_id());
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().map_err(setup)?;
    let b = side(&engine, kb, (vec![loopback], vec![], vec![pa])).await?;
    let b_addrs = b.network.view().snapshot().listen_addrs;
    let a = side(&engine, ka, (vec![], vec![BootPeer { peer_id: pb, addrs: b_addrs }], vec![])).await?;
    let started = Instant::now();
    while [&a, &b].iter().any(|s| s.network.xnet().is_none_or(|x| x.ranges().len() < 2)) {
        if started.elapsed() > CONNECT_TIMEOUT {
            return Err(BenchError::NotConnected);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let caller = a.probe(probe).await?;
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for _ in 0..FAN_OUT {
        local.push(a.probe(probe).await?);
        remote.push(b.probe(probe).await?);
    }
    // Warm up both paths.
    request_reply(&a, caller, &local[..1], 1_000, WINDOW).await?;
    request_reply(&a, caller, &remote[..1], 1_000, WINDOW).await?;

    let rows = vec![
        Row {
            what: "one-way A → B",
            same_node: Some(one_way(&a, caller, &a, local[0], n).await?),
            across_nodes: Some(one_way(&a, caller, &b, remote[0], n).await?),
            ic: "27 /s across subnets (forum test; \"one way call limit reached\" past 500 in flight)",
        },
        Row {
            what: "A → B, request and reply, 100 in flight",
            same_node: Some(request_reply(&a, caller, &local[..1], n, WINDOW).await?),
            across_nodes: Some(request_reply(&a, caller, &remote[..1], n, WINDOW).await?),
            ic: "not published",
        },
        Row {
            what: "A → B, request and reply, one at a time",
            same_node: Some(request_reply(&a, caller, &local[..1], n / 4, 1).await?),
            across_nodes: Some(request_reply(&a, caller, &remote[..1], n / 4, 1).await?),
            ic: "not published",
        },
        Row {
            what: "A → B, composite query",
            same_node: Some(composite(&a, caller, local[0], n / 10).await?),
            across_nodes: None,
            ic: "same subnet only",
        },
        Row {
            what: "A → any (10 callees), request and reply, 100 in flight",
            same_node: Some(request_reply(&a, caller, &local, n, WINDOW).await?),
            across_nodes: Some(request_reply(&a, caller, &remote, n, WINDOW).await?),
            ic: "not published",
        },
    ];
    let limit_same = past_the_limit(&a, caller, local[1]).await?;
    let limit_across = past_the_limit(&a, caller, remote[1]).await?;
    Ok(MessagingReport { calls: n, rows, limit_same, limit_across })
}

impl MessagingReport {
    /// The table as Markdown, with `cpu` named.
    pub fn markdown(&self, cpu: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Messages per second, {} calls per row, {cpu}; B's method replies at once.\n", self.calls);
        let _ = writeln!(out, "| messages | ww, one node | ww, two nodes over loopback TCP | IC (published or quoted) |");
        let _ = writeln!(out, "|---|---|---|---|");
        let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |r| format!("{:.0}", r));
        for r in &self.rows {
            let _ = writeln!(out, "| {} | {} | {} | {} |", r.what, show(r.same_node), show(r.across_nodes), r.ic);
        }
        let _ = writeln!(out, "| past 500 outstanding calls per pair | {} | {} | the same limit |", self.limit_same, self.limit_across);
        out
    }
}
