//! The cost of cycles accounting (`make bench`): inter-canister calls per
//! second and the ingress update round trip with charging on (the IC's fee
//! schedule) and off (`--cycles free`), side by side in one run, as a
//! ratio. Runs alternate between the two replicas so that machine noise
//! falls on both. Prints a Markdown table for BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use candid::{Decode, Encode, Principal};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::cycles::CostSchedule;
use ww::replica::{InstallMode, Replica, ReplicaConfig, SubnetRange};

fn guest(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"));
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    p
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

fn replica(cache: &std::path::Path, schedule: CostSchedule) -> Replica {
    let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: Some(cache.to_path_buf()), ..EngineConfig::default() }).unwrap();
    let mut config = ReplicaConfig::default();
    for subnet in &mut config.subnets {
        *subnet = SubnetRange { cost_schedule: schedule, ..subnet.clone() };
    }
    Replica::new(engine, config).unwrap()
}

async fn install(r: &Replica, name: &str) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let wasm = std::fs::read(guest(name)).unwrap();
    let m = ww::replica::install::prepare_module(r, &id, &wasm).unwrap();
    r.install(admin(), id, InstallMode::Install, m, Encode!(&Option::<u64>::None).unwrap()).await.unwrap();
    id
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Side {
    replica: Replica,
    a: Principal,
    b: Principal,
}

impl Side {
    async fn new(cache: &std::path::Path, schedule: CostSchedule) -> Self {
        let replica = replica(cache, schedule);
        let a = install(&replica, "probe").await;
        let b = install(&replica, "probe").await;
        Self { replica, a, b }
    }

    /// Calls per second, A calling B.pong `n` times with `window` in flight.
    async fn calls(&self, n: u32, window: u32) -> f64 {
        let t = Instant::now();
        let bytes = self.replica.call(admin(), self.a, "ping_loop", Encode!(&self.b, &n, &window).unwrap()).await.unwrap();
        assert_eq!(Decode!(&bytes, u32).unwrap(), n);
        f64::from(n) / t.elapsed().as_secs_f64()
    }

    /// Median ingress update round trip, µs.
    async fn updates(&self, n: u64) -> f64 {
        let mut us = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            self.replica.call(admin(), self.a, "set", Encode!(&i).unwrap()).await.unwrap();
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        median(us)
    }

    fn balance(&self) -> u128 {
        self.replica.status(&self.a).unwrap().cycles
    }
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let on = Side::new(cache.path(), CostSchedule::Normal).await;
    let off = Side::new(cache.path(), CostSchedule::Free).await;
    // Warm both.
    on.calls(2_000, 1).await;
    off.calls(2_000, 1).await;
    let before = on.balance();
    let off_before = off.balance();

    let reps = 5;
    let mut rows = Vec::new();
    for window in [1u32, 100] {
        let (mut on_rates, mut off_rates) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            on_rates.push(on.calls(10_000, window).await);
            off_rates.push(off.calls(10_000, window).await);
        }
        rows.push((format!("inter-canister calls, A calls B.pong, {}", if window == 1 { "sequential".to_string() } else { format!("{window} in flight") }), median(on_rates), median(off_rates), "calls/s"));
    }
    let (mut on_us, mut off_us) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        on_us.push(on.updates(400).await);
        off_us.push(off.updates(400).await);
    }
    let charged = before - on.balance();
    assert_eq!(off.balance(), off_before, "charging off: nothing is charged");
    assert!(charged > 0, "charging on: the calls were paid for");

    println!("| measure | charging on | charging off | on / off | target |");
    println!("|---|---|---|---|---|");
    for (what, on_rate, off_rate, unit) in rows {
        println!("| {what} | {on_rate:.0} {unit} | {off_rate:.0} {unit} | {:.2}× | ≥ 0.9× |", on_rate / off_rate);
    }
    let (on_u, off_u) = (median(on_us), median(off_us));
    // Latency: the ratio is of rates (off latency / on latency), so ≥ 0.9 is good.
    println!("| ingress update round trip (median) | {on_u:.0} µs | {off_u:.0} µs | {:.2}× | ≥ 0.9× |", off_u / on_u);
    println!();
    println!("(A paid {charged} cycles for the measured calls with charging on.)");
}
