//! A process guest with one scenario per test: `testkit <scenario> [args]`.
//!
//! Used as pid0, as a service and as a child by the host's integration tests
//! and benchmarks. Each scenario prints a marker line to stderr on success
//! (the node log) and fails with a non-zero exit code otherwise. Scenarios
//! that spawn children run this same component again from `/bin/main.wasm`.

use std::time::{Duration, Instant};

use ww_guest::{Membrane, Session, is_stale_epoch};

type Error = capnp::Error;

fn fail(msg: impl Into<String>) -> Error {
    capnp::Error::failed(msg.into())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        // Started without arguments (as a service is): the scenario is
        // configured in the image, at /etc/testkit.
        if let Ok(line) = std::fs::read_to_string("/etc/testkit") {
            args = line.split_whitespace().map(str::to_string).collect();
        }
    }
    let scenario = args.first().cloned().unwrap_or_default();
    let rest: Vec<String> = args.iter().skip(1).cloned().collect();
    // Scenarios that do not use a session (their stdio is plain pipes, or
    // they never talk to the host).
    match scenario.as_str() {
        "exit" => ww_guest::exit(rest.first().and_then(|c| c.parse().ok()).unwrap_or(1)),
        "upper" => return upper(),
        "spin" => spin(),
        "alloc" => return alloc(&rest),
        "read" => return read_files(&rest),
        "panic" => panic!("testkit was asked to panic"),
        _ => {}
    }
    let code = ww_guest::run(move |membrane| async move { session_scenario(&scenario, &rest, membrane).await });
    ww_guest::exit(code);
}

async fn session_scenario(scenario: &str, rest: &[String], membrane: Membrane) -> Result<(), Error> {
    let session = membrane.graft().await?;
    match scenario {
        "echo" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(1);
            let calls = (0..n).map(|i| {
                let s = session.clone();
                async move { (i, s.echo(&format!("echo #{i}")).await) }
            });
            for (i, r) in futures::future::join_all(calls).await {
                let got = r?;
                if got != format!("echo #{i}") {
                    return Err(fail(format!("echo #{i} answered {got:?}")));
                }
            }
            eprintln!("ECHO_OK {n}");
        }
        "garbage" => {
            match session.spawn(b"definitely not wasm").name("garbage").start().await {
                Ok(p) => {
                    let code = p.wait().await;
                    return Err(fail(format!("runBytes accepted garbage (wait: {code:?})")));
                }
                Err(e) => eprintln!("runBytes rejected garbage: {e}"),
            }
            let corrupt = b"\0asm\x0d\0\x01\0\x07\xff\xff";
            if session.spawn(corrupt).start().await.is_ok() {
                return Err(fail("runBytes accepted a corrupt component"));
            }
            // The node still answers.
            if session.echo("still here").await? != "still here" {
                return Err(fail("echo after garbage went wrong"));
            }
            eprintln!("GARBAGE_OK");
        }
        "spawn" => {
            // spawn <scenario> [args...]: run this component as a child and
            // exit with the child's exit code.
            let wasm = self_wasm()?;
            let mut spawn = session.spawn(&wasm).name(rest.first().map_or("child", |s| s.as_str()));
            for a in rest {
                spawn = spawn.arg(a);
            }
            let code = spawn.start().await?.wait().await?;
            eprintln!("CHILD_EXIT {code}");
            ww_guest::exit(code);
        }
        "spin-kill" => {
            let wasm = self_wasm()?;
            let spinner = session.spawn(&wasm).name("spinner").arg("spin").start().await?;
            // While it spins, another child does real RPC work.
            let worker = session.spawn(&wasm).name("worker").arg("echo").arg("5").start().await?;
            let code = worker.wait().await?;
            if code != 0 {
                return Err(fail(format!("worker failed with {code} while a guest was spinning")));
            }
            for _ in 0..20 {
                if session.echo("tick").await? != "tick" {
                    return Err(fail("echo went wrong"));
                }
            }
            spinner.kill().await?;
            let code = spinner.wait().await?;
            if code != 137 {
                return Err(fail(format!("killed spinner exited with {code}, expected 137")));
            }
            eprintln!("SPIN_KILL_OK");
        }
        "stale-epoch" => {
            if session.echo("before").await? != "before" {
                return Err(fail("echo went wrong"));
            }
            eprintln!("EPOCH_READY {}", session.epoch);
            let started = Instant::now();
            let stale = loop {
                match session.echo("still valid?").await {
                    Ok(_) => {}
                    Err(e) if is_stale_epoch(&e) => break e,
                    Err(e) => return Err(e),
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(fail("the epoch never advanced"));
                }
                ww_guest::sleep(Duration::from_millis(5)).await;
            };
            eprintln!("got: {stale}");
            let fresh = membrane.graft().await?;
            if fresh.epoch <= session.epoch {
                return Err(fail(format!("re-graft stayed in epoch {}", fresh.epoch)));
            }
            if fresh.echo("after").await? != "after" {
                return Err(fail("echo after re-graft went wrong"));
            }
            eprintln!("REGRAFT_OK epoch={}", fresh.epoch);
        }
        "sleep" => {
            let ms: u64 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(100);
            ww_guest::sleep(Duration::from_millis(ms)).await;
            if session.echo("awake").await? != "awake" {
                return Err(fail("echo after sleep went wrong"));
            }
            eprintln!("SLEPT {ms}");
        }
        "echo-pipelined" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
            let window: usize = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
            let started = Instant::now();
            pipelined(&session, n, window).await?;
            eprintln!("PIPELINED_OK n={n} secs={:.2}", started.elapsed().as_secs_f64());
        }
        "deploy" => {
            // deploy <name> <wasm path> [<name> <wasm path>...]: create and
            // install canisters through the management canister, then name them.
            for pair in rest.chunks(2) {
                let [name, path] = pair else {
                    return Err(fail("deploy takes <name> <wasm path> pairs"));
                };
                let id = deploy(&session, name, path).await?;
                eprintln!("DEPLOYED {name} {id}");
            }
        }
        "serve" => {
            // A service: announce, then wait until the host hangs up.
            let name = rest.first().map_or("svc", |s| s.as_str());
            eprintln!("SVC_UP {name}");
            std::future::pending::<()>().await;
        }
        "host-info" => {
            let id = session.host.id_request().send().promise.await?;
            let id = id.get()?.get_peer_id()?.to_str()?.to_string();
            let addrs = session.host.addrs_request().send().promise.await?;
            let addrs: Vec<String> = addrs
                .get()?
                .get_addrs()?
                .iter()
                .map(|a| a.and_then(|t| Ok(t.to_string()?)).unwrap_or_default())
                .collect();
            let peers = session.host.peers_request().send().promise.await?;
            let peers = peers.get()?.get_peers()?.len();
            eprintln!("HOST id={id} addrs={} peers={peers}", addrs.join(","));
        }
        "dial" => {
            // dial <peer-id> <canister> <method>: the peer's Replica, then
            // one update call on it with no arguments.
            let [peer, canister, method] = [0, 1, 2].map(|i| rest.get(i).cloned().unwrap_or_default());
            let mut req = session.host.dial_request();
            req.get().set_peer(peer.as_str());
            let remote = ww_guest::Replica { client: req.send().pipeline.get_replica() };
            let me = candid::Principal::from_slice(&remote.principal().await?);
            let id = candid::Principal::from_text(&canister).map_err(|e| fail(format!("{canister}: {e}")))?;
            let reply = remote
                .call(id.as_slice(), &method, &candid::encode_args(()).unwrap_or_default())
                .await?
                .map_err(|r| fail(format!("{method} on {canister} at {peer}: {r}")))?;
            let who = candid::decode_one::<candid::Principal>(&reply).map(|p| p.to_text()).unwrap_or_default();
            eprintln!("DIALED as={me} reply_principal={who}");
        }
        "attenuate" => {
            // The child asks for nothing but an executor; it must not get a host.
            let wasm = self_wasm()?;
            let child = session
                .spawn(&wasm)
                .name("narrow")
                .arg("probe-caps")
                .arg("deep")
                .grant(false, true, true, 0)
                .start()
                .await?;
            let code = child.wait().await?;
            if code != 0 {
                return Err(fail(format!("narrow child failed with {code}")));
            }
            eprintln!("ATTENUATE_OK");
        }
        "probe-caps" => {
            match session.host.id_request().send().promise.await {
                Ok(_) => return Err(fail("a session without Host answered Host.id")),
                Err(e) => eprintln!("host denied: {e}"),
            }
            if session.echo("exec").await? != "exec" {
                return Err(fail("executor did not work"));
            }
            if rest.first().map(String::as_str) == Some("deep") {
                // Ask for everything for a grandchild: it must still get no host.
                let wasm = self_wasm()?;
                let grandchild = session
                    .spawn(&wasm)
                    .name("grandchild")
                    .arg("probe-caps")
                    .grant(true, true, true, 0)
                    .start()
                    .await?;
                let code = grandchild.wait().await?;
                if code != 0 {
                    return Err(fail(format!("grandchild widened its grant (exit {code})")));
                }
                eprintln!("GRANDCHILD_NARROW_OK");
            }
            eprintln!("NO_HOST_OK");
        }
        "pipes" => {
            let wasm = self_wasm()?;
            let child = session.spawn(&wasm).name("upper").arg("upper").pipes().start().await?;
            let stdin = child.stdin().await?;
            let stdout = child.stdout().await?;
            stdin.write(b"hello, ").await?;
            stdin.write(b"pipes").await?;
            stdin.close().await?;
            let mut got = Vec::new();
            loop {
                // Ask for far more than the host allows: it clamps the read.
                let chunk = stdout.read(u32::MAX).await?;
                if chunk.is_empty() {
                    break;
                }
                got.extend(chunk);
            }
            let code = child.wait().await?;
            if got != b"HELLO, PIPES" || code != 0 {
                return Err(fail(format!("pipes child said {:?} and exited {code}", String::from_utf8_lossy(&got))));
            }
            eprintln!("PIPES_OK");
        }
        "bench-echo" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
            let window: usize = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
            bench_echo(&session, n, window).await?;
        }
        "bench-spawn" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(200);
            // The component to spawn: a path in the image, else testkit itself.
            let wasm = match rest.get(1) {
                Some(path) => std::fs::read(path).map_err(|e| fail(format!("reading {path}: {e}")))?,
                None => self_wasm()?,
            };
            bench_spawn(&session, n, &wasm).await?;
        }
        other => return Err(fail(format!("unknown scenario {other:?}"))),
    }
    Ok(())
}

#[derive(candid::CandidType, serde::Deserialize)]
struct CanisterIdRecord {
    canister_id: candid::Principal,
}

#[derive(candid::CandidType, serde::Deserialize)]
enum InstallMode {
    #[serde(rename = "install")]
    Install,
}

#[derive(candid::CandidType, serde::Deserialize)]
struct InstallCodeArgs {
    mode: InstallMode,
    canister_id: candid::Principal,
    #[serde(with = "serde_bytes")]
    wasm_module: Vec<u8>,
    #[serde(with = "serde_bytes")]
    arg: Vec<u8>,
}

/// Creates a canister, installs `path` on it and names it `name`.
async fn deploy(session: &Session, name: &str, path: &str) -> Result<candid::Principal, Error> {
    let mgmt = candid::Principal::management_canister();
    let wasm = std::fs::read(path).map_err(|e| fail(format!("{path}: {e}")))?;
    let created = session
        .replica
        .call(mgmt.as_slice(), "provisional_create_canister_with_cycles", &candid::encode_args(()).unwrap_or_default())
        .await?
        .map_err(|r| fail(format!("create_canister: {r}")))?;
    let id = candid::decode_one::<CanisterIdRecord>(&created)
        .map_err(|e| fail(format!("create_canister reply: {e}")))?
        .canister_id;
    let args = InstallCodeArgs {
        mode: InstallMode::Install,
        canister_id: id,
        wasm_module: wasm,
        arg: candid::encode_one(Option::<u64>::None).map_err(|e| fail(e.to_string()))?,
    };
    let arg = candid::encode_one(&args).map_err(|e| fail(e.to_string()))?;
    session
        .replica
        .call(mgmt.as_slice(), "install_code", &arg)
        .await?
        .map_err(|r| fail(format!("install_code: {r}")))?;
    session.replica.set_name(name, id.as_slice()).await?;
    Ok(id)
}

fn self_wasm() -> Result<Vec<u8>, Error> {
    std::fs::read("/bin/main.wasm")
        .or_else(|_| std::fs::read("/lib/testkit.wasm"))
        .map_err(|e| fail(format!("reading my own component: {e}")))
}

async fn bench_echo(session: &Session, n: usize, window: usize) -> Result<(), Error> {
    // Warm up.
    for _ in 0..100 {
        session.echo("w").await?;
    }
    let started = Instant::now();
    for _ in 0..n {
        session.echo("ping").await?;
    }
    let seq = started.elapsed();
    let started = Instant::now();
    pipelined(session, n, window).await?;
    let piped = started.elapsed();
    eprintln!(
        "BENCH_ECHO n={n} seq_us={:.2} seq_rps={:.0} pipelined_window={window} pipelined_rps={:.0}",
        seq.as_secs_f64() * 1e6 / n as f64,
        n as f64 / seq.as_secs_f64(),
        n as f64 / piped.as_secs_f64()
    );
    Ok(())
}

/// `n` echo calls with up to `window` in flight; checks every answer.
async fn pipelined(session: &Session, n: usize, window: usize) -> Result<(), Error> {
    use futures::StreamExt;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut sent = 0;
    let mut done = 0;
    while done < n {
        while sent < n && in_flight.len() < window {
            let s = session.clone();
            let i = sent;
            in_flight.push(async move { (i, s.echo(&i.to_string()).await) });
            sent += 1;
        }
        if let Some((i, r)) = in_flight.next().await {
            if r? != i.to_string() {
                return Err(fail(format!("echo #{i} got a wrong answer")));
            }
            done += 1;
            if done % 100_000 == 0 && n >= 200_000 {
                eprintln!("PROGRESS {done}");
            }
        }
    }
    Ok(())
}

async fn bench_spawn(session: &Session, n: usize, wasm: &[u8]) -> Result<(), Error> {
    // First spawn compiles (or loads from the disk cache); not measured.
    session.spawn(wasm).arg("exit").arg("0").start().await?.wait().await?;
    let mut spawn_us = Vec::with_capacity(n);
    let mut total_us = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let p = session.spawn(wasm).name("bench").arg("exit").arg("0").start().await?;
        spawn_us.push(t.elapsed().as_secs_f64() * 1e6);
        let code = p.wait().await?;
        total_us.push(t.elapsed().as_secs_f64() * 1e6);
        if code != 0 {
            return Err(fail(format!("bench child exited {code}")));
        }
    }
    spawn_us.sort_by(f64::total_cmp);
    total_us.sort_by(f64::total_cmp);
    eprintln!(
        "BENCH_SPAWN n={n} bytes={} spawn_p50_us={:.0} spawn_p90_us={:.0} spawn_wait_p50_us={:.0}",
        wasm.len(),
        spawn_us[n / 2],
        spawn_us[n * 9 / 10],
        total_us[n / 2]
    );
    Ok(())
}

/// Plain-pipes child: upper-cases stdin to stdout.
fn upper() {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("upper: {e}");
        std::process::exit(1);
    }
    let out = input.to_ascii_uppercase();
    if let Err(e) = std::io::stdout().write_all(&out).and_then(|()| std::io::stdout().flush()) {
        eprintln!("upper: {e}");
        std::process::exit(1);
    }
}

fn spin() -> ! {
    eprintln!("spinning");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// alloc <MiB>: allocates and touches that much memory.
fn alloc(rest: &[String]) {
    let mib: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(mib << 20).is_err() {
        eprintln!("ALLOC_DENIED {mib}");
        ww_guest::exit(3);
    }
    v.resize(mib << 20, 1);
    eprintln!("ALLOC_OK {mib} sum={}", v.iter().map(|&b| b as usize).sum::<usize>());
}

/// read <path>...: prints each file's content.
fn read_files(paths: &[String]) {
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(s) => eprintln!("FILE {p}: {}", s.trim_end()),
            Err(e) => {
                eprintln!("NOFILE {p}: {e}");
                ww_guest::exit(4);
            }
        }
    }
}
