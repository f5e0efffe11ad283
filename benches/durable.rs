//! The replica in a state directory (`make bench`): acknowledged updates
//! per second from one client and from 16 concurrent clients, with the
//! state directory (every reply waits for the cut that holds it to be
//! synced: group commit) and without it (memory only), side by side in
//! one run; what a cut costs (execution paused while it is captured, the
//! write and sync); the disk's bare `fdatasync` for reference.
//!
//! An acknowledged update is what the control socket and pid0's session
//! do: `Replica::call`, then `Replica::persisted` before the reply goes
//! out. Arguments: `cargo bench --bench durable -- [seconds per measure]`
//! (default 3). Prints a Markdown table for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

fn guest(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"));
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    p
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

fn engine(cache: &Path) -> Engine {
    Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: Some(cache.to_path_buf()), ..EngineConfig::default() }).unwrap()
}

/// A replica (kept in `state` if given) with `clients` probe canisters.
async fn setup(cache: &Path, state: Option<&Path>, canisters: usize) -> (Replica, Vec<Principal>) {
    let r = match state {
        Some(dir) => Replica::open_durable(engine(cache), ReplicaConfig::default(), dir).unwrap(),
        None => Replica::new(engine(cache), ReplicaConfig::default()).unwrap(),
    };
    let wasm = std::fs::read(guest("probe")).unwrap();
    let mut ids = Vec::new();
    for _ in 0..canisters {
        let id = r.create_canister(vec![admin()]);
        let m = ww::replica::install::prepare_module(&r, &id, &wasm).unwrap();
        r.install(admin(), id, InstallMode::Install, m, Encode!(&Option::<u64>::None).unwrap()).await.unwrap();
        ids.push(id);
    }
    r.persisted().await.unwrap();
    (r, ids)
}

/// Acknowledged updates per second: `clients` loops, each `set` on its
/// own canister then `persisted`, for `secs`.
async fn acked_rate(r: &Replica, ids: &[Principal], clients: usize, secs: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (r, id) = (r.clone(), ids[c % ids.len()]);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                r.call(admin(), id, "set", Encode!(&n).unwrap()).await.unwrap();
                r.persisted().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Median µs of writing 4 KiB and `fdatasync` in `dir`.
fn bare_fdatasync(dir: &Path) -> f64 {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("fsync.probe")).unwrap();
    let mut v = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&[7u8; 4096]).unwrap();
        f.sync_data().unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let secs: f64 = std::env::args().skip(1).find(|a| !a.starts_with("--")).and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let (durable, ids) = setup(cache.path(), Some(state.path()), 16).await;
        let (memory, mem_ids) = setup(cache.path(), None, 16).await;
        // Warm both, then measure them alternately.
        acked_rate(&durable, &ids, 1, 0.3).await;
        acked_rate(&memory, &mem_ids, 1, 0.3).await;
        let before = durable.cut_stats();
        let d1 = acked_rate(&durable, &ids, 1, secs).await;
        let m1 = acked_rate(&memory, &mem_ids, 1, secs).await;
        let d16 = acked_rate(&durable, &ids, 16, secs).await;
        let m16 = acked_rate(&memory, &mem_ids, 16, secs).await;
        let after = durable.cut_stats();
        let cuts = (after.cuts - before.cuts).max(1) as f64;
        let fsync = bare_fdatasync(state.path());
        println!("| measure | with `--state` | memory only | target |");
        println!("|---|---|---|---|");
        println!("| acknowledged updates/s, 1 client (`set` + `persisted`) | {d1:.0} | {m1:.0} | - |");
        println!(
            "| acknowledged updates/s, 16 concurrent clients | {d16:.0} ({:.1}× one client) | {m16:.0} | ≥ 5× one client |",
            d16 / d1
        );
        println!(
            "| per cut (both loads): execution paused / write + sync | {:.0} µs / {:.0} µs | - | - |",
            (after.paused - before.paused).as_secs_f64() * 1e6 / cuts,
            (after.writing - before.writing).as_secs_f64() * 1e6 / cuts
        );
        println!(
            "| per cut: updates acknowledged / page, module and chunk bytes written | {:.1} / {:.0} KiB | - | - |",
            (d1 + d16) * secs / cuts,
            (after.bulk_bytes - before.bulk_bytes) as f64 / cuts / 1024.0
        );
        println!("| the disk: write 4 KiB + `fdatasync` | {fsync:.0} µs | - | - |");
    });
}
