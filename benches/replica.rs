//! Canister runtime benchmarks (`make bench`): inter-canister calls per
//! second, the per-execution heap commit, trap rollback by heap size, install
//! cold and warm, chunked install (`upload_chunk` throughput,
//! `install_chunked_code` warm), and one-shot `ww call` latency including the
//! CLI process. Prints a Markdown table for BENCHMARKS.md.
//!
//! The heap commit and the call rates are measured with both heap
//! mechanisms in one run (`HeapTracking::Written`, the kernel's write
//! tracking, and `Compare`, the fallback), side by side with their ratio.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candid::{Decode, Encode, Principal};
use ww::engine::{Engine, EngineConfig, EngineKind};
use ww::replica::chunks::{MAX_CHUNKS, MAX_CHUNK_SIZE};
use ww::replica::management::{
    CanisterIdRecord, CanisterInstallMode, ChunkHashRecord, InstallChunkedCodeArgs, encode_upload_chunk,
};
use ww::replica::memory::{CanisterMemory, HeapTracking, PAGE};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

fn guest(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"));
    assert!(p.is_file(), "{} missing: run `make bench`", p.display());
    p
}

fn admin() -> Principal {
    Principal::self_authenticating(b"bench")
}

fn replica(cache: &std::path::Path) -> Replica {
    replica_with(cache, HeapTracking::host_default())
}

fn replica_with(cache: &std::path::Path, heap_tracking: HeapTracking) -> Replica {
    let engine = Engine::new(&EngineConfig {
        kind: EngineKind::Canister,
        cache_dir: Some(cache.to_path_buf()),
        ..EngineConfig::default()
    })
    .unwrap();
    Replica::new(engine, ReplicaConfig { heap_tracking, ..ReplicaConfig::default() }).unwrap()
}

/// The mechanisms this host has, the kernel's first.
fn mechanisms() -> Vec<HeapTracking> {
    if HeapTracking::host_default() == HeapTracking::Written {
        vec![HeapTracking::Written, HeapTracking::Compare]
    } else {
        eprintln!("kernel write tracking unavailable here: measuring the fallback only");
        vec![HeapTracking::Compare]
    }
}

async fn install(r: &Replica, name: &str) -> (Principal, Duration) {
    install_with(r, name, Encode!(&Option::<u64>::None).unwrap()).await
}

async fn install_with(r: &Replica, name: &str, arg: Vec<u8>) -> (Principal, Duration) {
    let id = r.create_canister(vec![admin()]);
    let wasm = std::fs::read(guest(name)).unwrap();
    let t = Instant::now();
    let m = ww::replica::install::prepare_module(r, &id, &wasm).unwrap();
    r.install(admin(), id, InstallMode::Install, m, arg)
        .await
        .unwrap();
    (id, t.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median µs of a commit that finds `dirty` written pages on a heap of
/// `mib` MiB, every page of it hot (resident and written once).
fn commit_cost(mib: usize, dirty: usize, tracking: HeapTracking) -> f64 {
    let m = CanisterMemory::with_tracking(mib << 20, 1 << 20, tracking).unwrap();
    m.grow_for_bench(mib << 20).unwrap();
    // Touch everything once so the heap is resident, then commit.
    for page in 0..(mib << 20) / PAGE {
        m.write_for_bench(page * PAGE, &[1]);
    }
    m.commit().unwrap();
    let mut samples = Vec::new();
    for round in 0..2000u32 {
        for i in 0..dirty {
            m.write_for_bench(i * 7 * PAGE, &round.to_le_bytes());
        }
        let t = Instant::now();
        let stats = m.commit().unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(stats.dirty_pages >= dirty.min(1));
    }
    median(samples)
}

/// `upload_chunk`'s argument with a borrowed chunk, for Candid's `Encode!`.
#[derive(candid::CandidType, serde::Serialize)]
struct UploadChunkRef<'a> {
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    chunk: &'a [u8],
}

/// How the `upload_chunk` benchmark encodes its arguments.
#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    /// Before the clock starts: the replica's side alone.
    Ahead,
    /// With `management::encode_upload_chunk` (one exact buffer, one copy).
    Direct,
    /// With Candid's `Encode!` (the chunk copied twice into growing buffers).
    Candid,
}

/// `upload_chunk` throughput in MB/s: 1 MiB chunks by ingress through the
/// host API, `in_flight` calls at once; the median of `rounds` rounds of a
/// full store (100 distinct chunks), cleared after each (not timed).
async fn upload_throughput(r: &Replica, chunks: &[Vec<u8>], encoding: Encoding, in_flight: usize, rounds: usize) -> f64 {
    let mgmt = Principal::management_canister();
    let id = r.create_canister(vec![admin()]);
    let encode = |c: &[u8]| match encoding {
        Encoding::Ahead | Encoding::Direct => encode_upload_chunk(id, c),
        Encoding::Candid => Encode!(&UploadChunkRef { canister_id: id, chunk: c }).unwrap(),
    };
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let mut ahead: Vec<Vec<u8>> = if encoding == Encoding::Ahead { chunks.iter().map(|c| encode(c)).collect() } else { Vec::new() };
        ahead.reverse();
        let t = Instant::now();
        for batch in chunks.chunks(in_flight) {
            let pending: Vec<_> = batch
                .iter()
                .map(|c| {
                    let arg = ahead.pop().unwrap_or_else(|| encode(c));
                    r.submit_call(admin(), mgmt, "upload_chunk", arg)
                })
                .collect();
            for p in pending {
                let bytes = p.await.unwrap().unwrap();
                assert_eq!(Decode!(&bytes, ChunkHashRecord).unwrap().hash.len(), 32);
            }
        }
        rates.push((chunks.len() * MAX_CHUNK_SIZE) as f64 / t.elapsed().as_secs_f64() / 1e6);
        r.call(admin(), mgmt, "clear_chunk_store", Encode!(&CanisterIdRecord { canister_id: id }).unwrap()).await.unwrap();
    }
    median(rates)
}

/// SHA-256 of 1 MiB buffers on one thread, MB/s (the floor under `upload_chunk`).
fn sha256_throughput(chunks: &[Vec<u8>]) -> f64 {
    let t = Instant::now();
    for c in chunks {
        std::hint::black_box(ww::replica::chunks::sha256(c));
    }
    (chunks.len() * MAX_CHUNK_SIZE) as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// Median ms of `install_chunked_code` of `module` in `parts` chunks (from
/// one store canister) into a fresh canister each time, warm compile cache.
async fn install_chunked_warm(r: &Replica, module: &[u8], parts: usize) -> f64 {
    let mgmt = Principal::management_canister();
    let store = r.create_canister(vec![admin()]);
    let mut hashes = Vec::new();
    for c in module.chunks(module.len().div_ceil(parts)) {
        let bytes = r.call(admin(), mgmt, "upload_chunk", encode_upload_chunk(store, c)).await.unwrap();
        hashes.push(Decode!(&bytes, ChunkHashRecord).unwrap());
    }
    assert_eq!(hashes.len(), parts);
    let wasm_module_hash = ww::replica::chunks::sha256(module).to_vec();
    let mut samples = Vec::new();
    // The first install compiles (and fills the cache); it is not counted.
    for i in 0..41 {
        let target = r.create_canister(vec![admin()]);
        let args = InstallChunkedCodeArgs {
            mode: CanisterInstallMode::Install,
            target_canister: target,
            store_canister: Some(store),
            chunk_hashes_list: hashes.clone(),
            wasm_module_hash: wasm_module_hash.clone(),
            arg: Encode!(&Option::<u64>::None).unwrap(),
            sender_canister_version: None,
        };
        let t = Instant::now();
        r.call(admin(), mgmt, "install_chunked_code", Encode!(&args).unwrap()).await.unwrap();
        if i > 0 {
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(samples)
}

/// Median ms of `install_code` of `module` through the management canister, warm.
async fn install_code_warm(r: &Replica, module: &[u8]) -> f64 {
    let mgmt = Principal::management_canister();
    let mut samples = Vec::new();
    for i in 0..41 {
        let target = r.create_canister(vec![admin()]);
        let args = ww::replica::management::InstallCodeArgs {
            mode: CanisterInstallMode::Install,
            canister_id: target,
            wasm_module: module.to_vec(),
            arg: Encode!(&Option::<u64>::None).unwrap(),
            sender_canister_version: None,
        };
        let t = Instant::now();
        r.call(admin(), mgmt, "install_code", Encode!(&args).unwrap()).await.unwrap();
        if i > 0 {
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(samples)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let r = replica(cache.path());
    let (_, cold) = install(&r, "probe").await;
    let (a, warm) = install(&r, "probe").await;
    let probe_kib = std::fs::metadata(guest("probe")).unwrap().len() / 1024;
    // A bigger canister: root of the deploy simulation (over 1 MiB), with its
    // init record (no auto-created roles, no extra controllers, no policy).
    let (_, root_cold) = install_with(&r, "root", candid_root_init()).await;
    let (_, root_warm) = install_with(&r, "root", candid_root_init()).await;
    let root_kib = std::fs::metadata(guest("root")).unwrap().len() / 1024;

    // Inter-canister calls: A calls B.pong n times, on a replica per heap
    // mechanism (the default one's canisters are a and b).
    let mut rows = Vec::new();
    for tracking in mechanisms() {
        let r2 = replica_with(cache.path(), tracking);
        let (a2, _) = install(&r2, "probe").await;
        let (b2, _) = install(&r2, "probe").await;
        for window in [1u32, 100] {
            let n = 20_000u32;
            let t = Instant::now();
            let bytes = r2.call(admin(), a2, "ping_loop", Encode!(&b2, &n, &window).unwrap()).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let ok = Decode!(&bytes, u32).unwrap();
            assert_eq!(ok, n);
            rows.push((tracking, window, n as f64 / secs));
        }
    }

    // Commit cost with 3 dirty pages, 1,024+ hot pages (direct, no Wasm).
    let commits: Vec<(HeapTracking, usize, f64)> = mechanisms()
        .into_iter()
        .flat_map(|t| [4usize, 16, 64].map(|mib| (t, mib, commit_cost(mib, 3, t))))
        .collect();

    // A full update execution round trip (ingress, execute, commit, reply).
    let mut update_us = Vec::new();
    for i in 0..2000u64 {
        let t = Instant::now();
        r.call(admin(), a, "set", Encode!(&i).unwrap()).await.unwrap();
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
    }

    // Trap rollback by heap size: trapping call latency minus a normal call's.
    let mut rollback = Vec::new();
    for mib in [1u32, 16, 64] {
        let (c, _) = install(&r, "probe").await;
        if mib > 1 {
            r.call(admin(), c, "grow_heap", Encode!(&mib).unwrap()).await.unwrap();
        }
        let mut ok_us = Vec::new();
        let mut trap_us = Vec::new();
        for i in 0..300u64 {
            let t = Instant::now();
            r.call(admin(), c, "set", Encode!(&i).unwrap()).await.unwrap();
            ok_us.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            r.call(admin(), c, "reply_twice", Encode!().unwrap()).await.unwrap_err();
            trap_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        rollback.push((mib, median(trap_us) - median(ok_us)));
    }

    // Chunked install: upload throughput and install from chunks.
    let chunks: Vec<Vec<u8>> = (0..MAX_CHUNKS)
        .map(|i| (0..MAX_CHUNK_SIZE).map(|j| (i * 31 + j * 7 + (j >> 12)) as u8).collect())
        .collect();
    let sha_mbs = sha256_throughput(&chunks);
    let upload_ahead = upload_throughput(&r, &chunks, Encoding::Ahead, 1, 10).await;
    let upload_direct = upload_throughput(&r, &chunks, Encoding::Direct, 1, 10).await;
    let upload_candid = upload_throughput(&r, &chunks, Encoding::Candid, 1, 10).await;
    let upload_par = upload_throughput(&r, &chunks, Encoding::Direct, 8, 10).await;
    drop(chunks);
    let counter = std::fs::read(guest("counter")).unwrap();
    let counter_kib = counter.len() / 1024;
    let chunked_1 = install_chunked_warm(&r, &counter, 1).await;
    let chunked_3 = install_chunked_warm(&r, &counter, 3).await;
    let plain = install_code_warm(&r, &counter).await;

    // One-shot `ww call` including the CLI process, against a serving node.
    let ww_call = ww_call_latency();

    println!("| measure | result | target |");
    println!("|---|---|---|");
    let ratio = |x: f64, base: Option<f64>| base.map_or(String::new(), |b| format!(" ({:.2}× the fallback)", x / b));
    for (tracking, window, rate) in &rows {
        let what = if *window == 1 { "sequential".to_string() } else { format!("{window} in flight") };
        let base = rows.iter().find(|(t, w, _)| *t == HeapTracking::Compare && w == window && tracking != t).map(|r| r.2);
        println!(
            "| inter-canister calls, A calls B (small payload), {what}, heap {tracking:?} | {rate:.0} calls/s{} | ≥ 50,000/s |",
            ratio(*rate, base)
        );
    }
    for (tracking, mib, us) in &commits {
        let pages = mib * 256;
        let base = commits.iter().find(|(t, m, _)| *t == HeapTracking::Compare && m == mib && tracking != t).map(|r| r.2);
        let target = if *mib == 4 { "< 10 µs" } else { "-" };
        println!("| heap commit, 3 dirty pages of {pages} hot ({mib} MiB heap), {tracking:?} | {us:.1} µs{} | {target} |", ratio(*us, base));
    }
    println!("| update call round trip (ingress → execute → commit → reply) | median {:.0} µs | - |", median(update_us));
    for (mib, us) in rollback {
        let target = if mib == 16 { "< 1 ms" } else { "-" };
        println!("| trap rollback, heap {mib} MiB (trapping call minus normal call) | {us:.0} µs | {target} |");
    }
    println!("| install {probe_kib} KiB canister, cold (compile) | {:.0} ms | - |", cold.as_secs_f64() * 1e3);
    println!("| install {probe_kib} KiB canister, warm compile cache | {:.1} ms | - |", warm.as_secs_f64() * 1e3);
    println!("| install {root_kib} KiB canister (root), cold (compile) | {:.0} ms | - |", root_cold.as_secs_f64() * 1e3);
    println!("| install {root_kib} KiB canister (root), warm compile cache | {:.1} ms | - |", root_warm.as_secs_f64() * 1e3);
    let sha_ni = if ww::replica::chunks::sha_extensions() { "SHA-NI" } else { "no SHA extensions" };
    println!("| SHA-256, one thread, 1 MiB buffers ({sha_ni}) | {sha_mbs:.0} MB/s | - |");
    println!("| `upload_chunk` 1 MiB chunks, host API ingress, one at a time, argument encoded beforehand | {upload_ahead:.0} MB/s | ≥ 1,000 MB/s |");
    println!("| `upload_chunk` 1 MiB chunks, host API ingress, one at a time, `encode_upload_chunk` each | {upload_direct:.0} MB/s | ≥ 1,000 MB/s |");
    println!("| `upload_chunk` 1 MiB chunks, host API ingress, one at a time, Candid `Encode!` each | {upload_candid:.0} MB/s | - |");
    println!("| `upload_chunk` 1 MiB chunks, host API ingress, 8 in flight, `encode_upload_chunk` each | {upload_par:.0} MB/s | ≥ 1,000 MB/s |");
    println!("| `install_chunked_code` {counter_kib} KiB counter, 1 chunk, warm compile cache | median {chunked_1:.2} ms | - |");
    println!("| `install_chunked_code` {counter_kib} KiB counter, 3 chunks, warm compile cache | median {chunked_3:.2} ms | - |");
    println!("| `install_code` {counter_kib} KiB counter via aaaaa-aa, warm compile cache (for comparison) | median {plain:.2} ms | - |");
    println!("| `ww call counter inc` one-shot, including the CLI process | median {ww_call:.1} ms | < 20 ms |");
}

fn ww_call_latency() -> f64 {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let image = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(image.path().join("bin")).unwrap();
    std::fs::create_dir_all(image.path().join("lib")).unwrap();
    std::fs::copy(guest("testkit"), image.path().join("bin/main.wasm")).unwrap();
    std::fs::copy(guest("counter"), image.path().join("lib/counter.wasm")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ww = env!("CARGO_BIN_EXE_ww");
    let mut node = Command::new(ww)
        .env("WW_CACHE_DIR", cache.path())
        .current_dir(&root)
        .args(["run", "--serve", "--state"])
        .arg(state.path())
        .arg(image.path())
        .args(["--", "deploy", "counter", "/lib/counter.wasm"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the counter answers.
    let call = || {
        Command::new(ww)
            .args(["call", "counter", "inc", "--state"])
            .arg(state.path())
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !call().status.success() {
        assert!(Instant::now() < deadline, "the node never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert!(call().status.success());
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).status();
    let _ = node.wait();
    median(samples)
}

/// root's init argument: `record { auto_create = vec {}; controllers = vec {}; store_policy = null }`.
fn candid_root_init() -> Vec<u8> {
    #[derive(candid::CandidType)]
    struct RootInitArgs {
        auto_create: Vec<String>,
        controllers: Vec<Principal>,
        store_policy: Option<()>,
    }
    Encode!(&RootInitArgs { auto_create: vec![], controllers: vec![], store_policy: None }).unwrap()
}
