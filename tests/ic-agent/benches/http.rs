//! The IC HTTP interface's speed through the real ic-agent on loopback,
//! side by side with ww's other front ends in one run, on the same
//! canister code (cdk_counter: `inc` update, `get` query):
//!
//! - ic-agent → `ww serve --http` (a node with a state directory: each
//!   synchronous update is answered once durable): v4 synchronous updates
//!   (latency percentiles, 1 client; throughput, 16 clients on 16
//!   canisters) and queries with their node signature verified;
//! - `ww call` (the CLI: one process per call) against the same node;
//! - the PocketIC front end: the pocket-ic 16 client's `update_call` /
//!   `query_call`, and ic-agent through `make_live`'s gateway.
//!
//! `WW_BIN` (default target/debug/ww; `make bench` uses the release build)
//! and `POCKET_IC_BIN` name the binaries. Prints a Markdown table with the
//! CPU; BENCHMARKS.md records it.

use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use ic_agent::Agent;
use ww_ic_agent_suite::{Node, decode, deploy_counter, ed25519};

fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find_map(|l| l.strip_prefix("model name")).and_then(|l| l.split(':').nth(1)).map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} vCPU {model}")
}

struct Row {
    what: String,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Row {
    fn new(what: impl Into<String>, elapsed: Duration, mut latencies: Vec<Duration>, ops: usize) -> Self {
        latencies.sort();
        Self { what: what.into(), ops, elapsed, latencies }
    }

    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> String {
        if self.latencies.is_empty() {
            return "–".into();
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        format!("{:.2} ms", self.latencies[i].as_secs_f64() * 1000.0)
    }
}

async fn timed<F, Fut>(n: usize, mut f: F) -> (Duration, Vec<Duration>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        latencies.push(t.elapsed());
    }
    (started.elapsed(), latencies)
}

async fn inc(agent: &Agent, id: Principal) {
    agent.update(&id, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.expect("inc");
}

async fn get(agent: &Agent, id: Principal) {
    agent.query(&id, "get").with_arg(Encode!().unwrap()).call().await.expect("get");
}

/// `clients` agents, each on its own canister, `per_client` calls each.
async fn parallel(agents: &[(Agent, Principal)], per_client: usize, update: bool) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = agents
        .iter()
        .cloned()
        .map(|(agent, id)| {
            tokio::spawn(async move {
                for _ in 0..per_client {
                    if update {
                        inc(&agent, id).await;
                    } else {
                        get(&agent, id).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a client");
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = |n: usize| if quick { n / 10 } else { n };
    let mut rows = Vec::new();

    // ww serve --http
    let node = Node::start();
    let agent = node.agent(ed25519(1)).await;
    let id = deploy_counter(&agent).await;
    for _ in 0..50 {
        inc(&agent, id).await;
    }
    let n = scale(2000);
    let (elapsed, lat) = timed(n, || inc(&agent, id)).await;
    rows.push(Row::new("ic-agent → ww serve --http: update (v4 sync), 1 client", elapsed, lat, n));
    let n = scale(5000);
    let (elapsed, lat) = timed(n, || get(&agent, id)).await;
    rows.push(Row::new("ic-agent → ww serve --http: query (signature verified), 1 client", elapsed, lat, n));
    let mut agents = Vec::new();
    for i in 0..16u8 {
        let a = node.agent(ed25519(10 + i)).await;
        let c = deploy_counter(&a).await;
        agents.push((a, c));
    }
    let per = scale(250);
    let elapsed = parallel(&agents, per, true).await;
    rows.push(Row::new("ic-agent → ww serve --http: update (v4 sync), 16 clients", elapsed, Vec::new(), per * 16));
    let per = scale(1000);
    let elapsed = parallel(&agents, per, false).await;
    rows.push(Row::new("ic-agent → ww serve --http: query, 16 clients", elapsed, Vec::new(), per * 16));

    // ww call (one CLI process per call) against the same node.
    let ww = ww_ic_agent_suite::ww_bin();
    let n = scale(100).max(10);
    let (elapsed, lat) = timed(n, || {
        let ww = ww.clone();
        let state = node.state_dir();
        async move {
            let out = tokio::process::Command::new(&ww).args(["call", "--state"]).arg(&state).args([&id.to_text(), "inc"]).output().await.expect("ww call");
            assert!(out.status.success(), "ww call: {}", String::from_utf8_lossy(&out.stderr));
        }
    })
    .await;
    rows.push(Row::new("ww call (CLI process per call): update, 1 client", elapsed, lat, n));
    drop(agents);
    drop(node);

    // The PocketIC front end, same canister code.
    let mut pic = pocket_ic::PocketIcBuilder::new().with_application_subnet().build_async().await;
    let canister = pic.create_canister().await;
    pic.add_cycles(canister, 10_000_000_000_000).await;
    pic.install_canister(canister, ww_ic_agent_suite::cdk_counter_wasm(), Encode!().unwrap(), None).await;
    let n = scale(2000);
    let (elapsed, lat) = timed(n, || async {
        pic.update_call(canister, Principal::anonymous(), "inc", Encode!().unwrap()).await.expect("inc");
    })
    .await;
    rows.push(Row::new("pocket-ic 16 client → ww pocket-ic: update_call, 1 client", elapsed, lat, n));
    let n = scale(5000);
    let (elapsed, lat) = timed(n, || async {
        pic.query_call(canister, Principal::anonymous(), "get", Encode!().unwrap()).await.expect("get");
    })
    .await;
    rows.push(Row::new("pocket-ic 16 client → ww pocket-ic: query_call, 1 client", elapsed, lat, n));
    let url = pic.make_live(None).await;
    let live = Agent::builder().with_url(url.as_str()).with_identity(ed25519(2)).build().expect("agent");
    live.fetch_root_key().await.expect("root key");
    let n = scale(100).max(10);
    let (elapsed, lat) = timed(n, || inc(&live, canister)).await;
    rows.push(Row::new("ic-agent → make_live gateway: update (v4 sync, rounds every 100 ms), 1 client", elapsed, lat, n));
    let n = scale(5000);
    let (elapsed, lat) = timed(n, || get(&live, canister)).await;
    rows.push(Row::new("ic-agent → make_live gateway: query, 1 client", elapsed, lat, n));
    pic.stop_live().await;
    let reply = live.query(&canister, "get").with_arg(Encode!().unwrap()).call().await;
    let _ = reply.map(|r| decode::<u64>("get", &r));

    println!("IC HTTP interface, {} (loopback; `make bench`):\n", cpu());
    println!("| front end, call | calls | calls/s | median | p90 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {:.0} | {} | {} | {} |", r.what, r.ops, r.per_second(), r.percentile(0.5), r.percentile(0.9), r.percentile(0.99));
    }
}
