//! `ww sim`: seeded deterministic simulation with fault injection, on the
//! ic-cdk 0.20 demonstration canisters (guests/ic-cdk/sim_*), through the
//! Rust API and the `ww` binary. Each demonstration must fail on the buggy
//! canister and pass on the fixed one.

use std::path::{Path, PathBuf};
use std::process::Command;

use ww::sim::{Artifact, Profile, RunOptions, Simulation};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim").join(name)
}

fn load(name: &str) -> Simulation {
    Simulation::load(&scenario(name)).unwrap_or_else(|e| panic!("{name}: {e} (build the canisters with `make ic-guests`)"))
}

/// The first failing seed in `0..seeds`, with its outcome.
fn first_failure(sim: &Simulation, seeds: u64) -> Option<(u64, ww::sim::RunOutcome)> {
    (0..seeds).find_map(|seed| {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        o.failure.is_some().then_some((seed, o))
    })
}

fn failures(sim: &Simulation, seeds: u64) -> Vec<String> {
    (0..seeds)
        .filter_map(|seed| {
            let o = sim.run_seed(seed, RunOptions::default()).unwrap();
            o.failure.as_ref().map(|f| format!("seed {seed}: {}: {}\n{}", f.invariant, f.detail, ww::sim::report::timeline(&o)))
        })
        .collect()
}

#[test]
fn wallet_retrying_without_dedup_key_double_debits_and_shrinks() {
    let sim = load("wallet-buggy.toml");
    let (seed, outcome) = first_failure(&sim, 100).expect("the buggy wallet fails within 100 seeds");
    let failure = outcome.failure.clone().unwrap();
    assert_eq!(failure.invariant, "no pay debits more than it asked", "seed {seed}: {}", failure.detail);
    // The same decisions fail the same way.
    let again = sim.run_decisions(&outcome.decisions, RunOptions::default()).unwrap();
    assert_eq!(again.failure, outcome.failure);
    // Shrunk: a transfer executed, its reply dropped (SYS_UNKNOWN), retried.
    let shrunk = ww::sim::shrink::shrink(&sim, &outcome.decisions, &failure, 600).unwrap();
    assert_eq!(shrunk.failure.invariant, failure.invariant);
    assert!(shrunk.outcome.steps <= 8, "shrunk to {} steps:\n{}", shrunk.outcome.steps, ww::sim::report::timeline(&shrunk.outcome));
    let timeline = ww::sim::report::timeline(&shrunk.outcome);
    assert!(timeline.contains("M6"), "{timeline}");
    assert!(timeline.contains("SysUnknown"), "{timeline}");
    assert!(shrunk.outcome.history.iter().any(|h| h.contains("maybe (SYS_UNKNOWN)")), "{:?}", shrunk.outcome.history);
    // Kept as an artifact, it replays.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    Artifact::new(&sim, &shrunk.outcome, shrunk.failure.clone()).save(&path).unwrap();
    let a = Artifact::load(&path).unwrap();
    let replayed = a.simulation().unwrap().run_decisions(&a.decisions, RunOptions::default()).unwrap();
    assert_eq!(replayed.failure.map(|f| f.invariant), Some(failure.invariant));
}

#[test]
fn wallet_with_dedup_key_or_unbounded_wait_never_double_debits() {
    for name in ["wallet-dedup.toml", "wallet-unbounded.toml"] {
        let sim = load(name);
        let failed = failures(&sim, 150);
        assert!(failed.is_empty(), "{name}:\n{}", failed.join("\n"));
    }
}

#[test]
fn frozen_canisters_refuse_calls_cleanly_and_the_fixed_wallet_holds() {
    // M5: a ledger or wallet run down to its freezing threshold refuses
    // what reaches it with SYS_TRANSIENT, without running it: a clean
    // reject (I3 holds), the retrying wallet gives up, no debit is doubled.
    let mut sim = load("wallet-dedup.toml");
    sim.scenario.faults = Some(vec![ww::sim::FaultKind::Interleave, ww::sim::FaultKind::Frozen]);
    let (mut frozen, mut refused) = (0, 0);
    for seed in 0..80 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(o.failure.is_none(), "seed {seed}: {:?}\n{}", o.failure, ww::sim::report::timeline(&o));
        frozen += o.faults.get(&ww::sim::FaultKind::Frozen).copied().unwrap_or(0);
        refused += o.history.iter().filter(|h| h.ends_with("failed (SysTransient)")).count();
    }
    assert!(frozen > 5 && refused > 0, "{frozen} freezes, {refused} calls refused");
}

#[test]
fn minter_recording_after_the_await_double_mints_the_guarded_one_does_not() {
    let sim = load("minter-early.toml");
    let (_, outcome) = first_failure(&sim, 100).expect("the early minter fails within 100 seeds");
    assert_eq!(outcome.failure.unwrap().invariant, "never mints more than was deposited");
    let mut sim = load("minter-guarded.toml");
    for profile in [Profile::Strict, Profile::Spec] {
        sim.scenario.profile = profile;
        let failed = failures(&sim, 150);
        assert!(failed.is_empty(), "guarded minter under {profile}:\n{}", failed.join("\n"));
    }
}

#[test]
fn upgrading_with_calls_in_flight_strands_the_vault_unless_it_is_stopped_first_or_refuses() {
    // Under `spec` the controller may upgrade the vault while a withdrawal
    // waits for the ledger: the new module runs the old callback, the code
    // after the await never runs, the user's lock stays taken.
    let sim = load("vault-unsafe-upgrade.toml");
    let (seed, outcome) = first_failure(&sim, 200).expect("the unsafely upgraded vault fails within 200 seeds");
    let failure = outcome.failure.clone().unwrap();
    assert_eq!(failure.invariant, "no withdrawal left in flight", "seed {seed}: {}", failure.detail);
    let timeline = ww::sim::report::timeline(&outcome);
    assert!(timeline.contains("in flight (unsafe)"), "{timeline}");
    let shrunk = ww::sim::shrink::shrink(&sim, &outcome.decisions, &failure, 600).unwrap();
    assert_eq!(shrunk.failure.invariant, failure.invariant);
    let short = ww::sim::report::timeline(&shrunk.outcome);
    assert!(shrunk.outcome.steps <= 10, "shrunk to {} steps:\n{short}", shrunk.outcome.steps);
    assert!(short.contains("O2") && short.contains("withdraw"), "{short}");
    // Stopped first (what `strict` does), or refusing in pre_upgrade: no
    // seed fails, and upgrades did happen.
    for name in ["vault-stop-first.toml", "vault-guarded.toml"] {
        let sim = load(name);
        let mut upgraded = 0;
        let failed: Vec<String> = (0..150)
            .filter_map(|seed| {
                let o = sim.run_seed(seed, RunOptions::default()).unwrap();
                upgraded += o.timeline.iter().filter(|l| l.text.starts_with("upgrade of vault done")).count();
                o.failure.as_ref().map(|f| format!("seed {seed}: {}: {}\n{}", f.invariant, f.detail, ww::sim::report::timeline(&o)))
            })
            .collect();
        assert!(failed.is_empty(), "{name}:\n{}", failed.join("\n"));
        assert!(upgraded > 10, "{name}: only {upgraded} upgrades in 150 seeds");
    }
}

#[test]
fn motoko_refuses_an_upgrade_with_callbacks_outstanding_so_its_vault_holds() {
    // The Motoko twin of the vault (guests/motoko/src/mo_vault.mo, enhanced
    // orthogonal persistence) under the same unsafe upgrades: Motoko's
    // runtime traps in pre_upgrade while callbacks are outstanding, the
    // upgrade fails and the old module finishes the withdrawal.
    let sim = load("mo-vault-upgrade.toml");
    let (mut refused, mut done) = (0, 0);
    for seed in 0..100 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(o.failure.is_none(), "seed {seed}: {:?}\n{}", o.failure, ww::sim::report::timeline(&o));
        refused += o.timeline.iter().filter(|l| l.text.contains("outstanding message callbacks")).count();
        done += o.timeline.iter().filter(|l| l.text.starts_with("upgrade of vault done")).count();
    }
    assert!(refused > 10, "Motoko refused only {refused} upgrades");
    assert!(done > 0, "no upgrade without calls in flight went through");
}

#[test]
fn node_crashes_restore_the_last_cut_exactly_and_the_fixed_wallet_holds() {
    // N1 with a state directory: each restart is checked against the cut
    // it restores (I5: the same digest, every memory included).
    let sim = load("wallet-crash.toml");
    let mut crashes = 0;
    for seed in 0..40 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(o.failure.is_none(), "seed {seed}: {:?}\n{}", o.failure, ww::sim::report::timeline(&o));
        crashes += o.faults.get(&ww::sim::FaultKind::Crash).copied().unwrap_or(0);
    }
    assert!(crashes >= 10, "only {crashes} crashes in 40 seeds");
    for seed in 0..3 {
        sim.check_determinism(seed).unwrap().unwrap();
    }
}

#[test]
fn an_answer_survives_a_crash_once_a_cut_holds_it_and_not_before() {
    // The Rust API with scripted crashes: acknowledged means durable.
    use candid::{Decode, Encode, Principal};
    use ww::sim::api::{Fault, IngressOutcome, SimBuilder, Stepped};
    let ledger = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-unknown-unknown/release/sim_ledger.wasm")).unwrap();
    #[derive(candid::CandidType)]
    struct LedgerInit {
        initial_balances: Vec<(Principal, u64)>,
    }
    let init = Encode!(&LedgerInit { initial_balances: vec![] }).unwrap();
    let user = ww::sim::run::default_user();
    let alice = Principal::self_authenticating(b"alice");
    let balance = |sim: &ww::sim::api::Sim| {
        let reply = sim.query(user, "ledger", "balance_of", Encode!(&alice).unwrap()).unwrap().unwrap();
        Decode!(&reply, u64).unwrap()
    };
    // No faults and the simplest decisions: a cut only when an answer waits
    // and nothing else runs.
    let mut sim = SimBuilder::new().faults(&[]).durable(true).canister("ledger", ledger.clone(), init.clone()).replay(vec![]).unwrap();
    let first = sim.submit(user, "ledger", "mint", Encode!(&alice, &5u64).unwrap()).unwrap();
    assert!(matches!(sim.step().unwrap(), Stepped::Ran));
    assert_eq!(balance(&sim), 5, "the mint executed");
    assert!(sim.outcome(first).is_none(), "answered, but no cut holds it yet");
    assert!(sim.inject(Fault::Crash).unwrap().is_none(), "the restart restores the cut exactly");
    assert!(matches!(sim.outcome(first), Some(IngressOutcome::Lost)));
    assert_eq!(balance(&sim), 0, "the unacknowledged mint is gone with the node");
    let second = sim.submit(user, "ledger", "mint", Encode!(&alice, &7u64).unwrap()).unwrap();
    while sim.outcome(second).is_none() {
        assert!(matches!(sim.step().unwrap(), Stepped::Ran | Stepped::Waited));
    }
    assert!(matches!(sim.outcome(second), Some(IngressOutcome::Replied(_))));
    assert!(sim.inject(Fault::Crash).unwrap().is_none());
    assert_eq!(balance(&sim), 7, "an acknowledged mint survives the crash");
    assert!(matches!(sim.outcome(second), Some(IngressOutcome::Replied(_))));
    sim.run_until_quiescent().unwrap();
    // A crash needs a state directory; a stop needs a canister.
    let mut plain = SimBuilder::new().faults(&[]).canister("ledger", ledger, init).replay(vec![]).unwrap();
    assert!(plain.inject(Fault::Crash).is_err());
    assert!(plain.inject(Fault::Stop("nope".into())).is_err());
}

#[test]
fn a_seed_replays_bit_for_bit() {
    for name in ["wallet-buggy.toml", "minter-early.toml"] {
        let sim = load(name);
        for seed in 0..8 {
            sim.check_determinism(seed).unwrap().unwrap_or_else(|why| panic!("{name}: {why}"));
        }
        // Different seeds explore different runs.
        let a = sim.run_seed(1, RunOptions::default()).unwrap();
        let b = sim.run_seed(2, RunOptions::default()).unwrap();
        assert_ne!(a.decisions, b.decisions);
    }
}

fn ww(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ww")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn cli_runs_replays_and_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let buggy = scenario("wallet-buggy.toml");
    let (code, out, err) = ww(&["sim", "run", buggy.to_str().unwrap(), "--seeds", "40", "--jobs", "2", "--artifacts", artifacts.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED seed"), "{out}");
    assert!(out.contains("seeds per second"), "{out}");
    let line = out.lines().find(|l| l.contains("replay with `ww sim replay ")).expect("a replay command");
    let path = line.split("ww sim replay ").nth(1).and_then(|s| s.split('`').next()).unwrap().to_string();
    let (code, out, _) = ww(&["sim", "replay", &path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no pay debits more than it asked"), "{out}");
    let (code, out, err) = ww(&["sim", "shrink", &path, "--budget", "300"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("#[test]"), "{out}");
    let shrunk = path.replace(".json", ".shrunk.json");
    let (code, out, _) = ww(&["sim", "replay", &shrunk]);
    assert_eq!(code, 1, "{out}");
    // A fixed canister passes.
    let (code, out, err) = ww(&["sim", "run", scenario("wallet-unbounded.toml").to_str().unwrap(), "--seeds", "20", "--check-determinism"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("NOT DETERMINISTIC"), "{out}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = ww(&["sim", "run", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[canister]]\nname = \"a\"\nwasm = \"nope.wasm\"\n").unwrap();
    let (code, _, err) = ww(&["sim", "run", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("canister \"a\"") && err.contains("nope.wasm"), "{err}");
    std::fs::write(&bad, "[[canister]]\nname = \"a\"\nwasm = \"x.wasm\"\n[[invariant]]\nname = \"i\"\ncheck = \"a.b( >= 1\"\n").unwrap();
    std::fs::write(dir.path().join("x.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let (code, _, err) = ww(&["sim", "run", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("invariant \"i\""), "{err}");
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, b"{not json").unwrap();
    let (code, _, err) = ww(&["sim", "replay", corrupt.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a ww sim artifact"), "{err}");
}

#[test]
fn components_and_motoko_canisters_run_under_faults() {
    let sim = load("mixed.toml");
    let failed = failures(&sim, 60);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // The workload really ran: with no faults at all every increment lands.
    let clean = sim.run_decisions(&[], RunOptions::default()).unwrap();
    assert!(clean.failure.is_none());
    assert_eq!(clean.history.iter().filter(|h| h.ends_with(": ok")).count(), 6, "{:?}", clean.history);
    for seed in 0..4 {
        sim.check_determinism(seed).unwrap().unwrap();
    }
}

#[test]
fn ww_test_runs_the_command_once_per_seed_and_names_the_failing_ones() {
    // A stand-in test command: it sees the seed, profile and server ww
    // gives it, and fails on seed 2 only.
    let script = r#"test -x "$POCKET_IC_BIN" && test "$WW_SIM_PROFILE" = spec && test "$WW_SIM_FAULTS" = M1,M6 || exit 3; echo "running seed $WW_SIM_SEED"; test "$WW_SIM_SEED" != 2"#;
    let (code, out, err) = ww(&["test", "--seeds", "4", "--first-seed", "1", "--profile", "spec", "--faults", "M1,M6", "--", "sh", "-c", script]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("seed 1: ok") && err.contains("seed 3: ok") && err.contains("seed 4: ok"), "{err}");
    assert!(err.contains("seed 2: FAILED"), "{err}");
    assert!(out.contains("running seed 2"), "the failing seed's own output: {out}");
    assert!(!out.contains("running seed 3"), "only failing seeds' output: {out}");
    assert!(out.contains("ww test --seeds 1 --first-seed 2 --profile spec --faults M1,M6 -- sh -c '"), "{out}");
    assert!(out.contains("1 of 4 seed(s) failed"), "{out}");
    let (code, _, err) = ww(&["test", "--seeds", "2", "--faults", "M9", "--", "true"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown fault kind \"M9\""), "{err}");
    let (code, _, err) = ww(&["test", "--seeds", "1", "--", "/nonexistent/test-binary"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/test-binary"), "{err}");
}

#[test]
fn raw_rand_depends_on_the_canister_not_on_the_order_canisters_ran() {
    // Two canisters ask for randomness; seeds run them in different orders.
    let dir = tempfile::tempdir().unwrap();
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-unknown-unknown/release/cdk_caller.wasm");
    let text = format!(
        "faults = [\"M1\"]\nsteps = 40\n[[canister]]\nname = \"a\"\nwasm = {wasm:?}\n[[canister]]\nname = \"b\"\nwasm = {wasm:?}\n\
         [[workload]]\ncanister = \"a\"\nmethod = \"rand\"\n[[workload]]\ncanister = \"b\"\nmethod = \"rand\"\n"
    );
    let path = dir.path().join("rand.toml");
    std::fs::write(&path, text).unwrap();
    let sim = Simulation::load(&path).unwrap();
    let answer = |o: &ww::sim::RunOutcome, who: &str| -> String {
        o.timeline.iter().find(|l| l.text.contains(&format!("{who}.rand")) && l.text.contains("answered")).map(|l| l.text.split("answered: ").nth(1).unwrap_or("").to_string()).unwrap_or_default()
    };
    let mut orders = std::collections::BTreeSet::new();
    let mut a_bytes = std::collections::BTreeSet::new();
    for seed in 0..300 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(o.failure.is_none(), "{:?}", o.failure);
        let (a, b) = (answer(&o, "a"), answer(&o, "b"));
        assert!(!a.is_empty() && !b.is_empty() && a != b, "seed {seed}: {a} / {b}");
        let first = o.history.first().cloned().unwrap_or_default();
        orders.insert(first.contains(" a -> "));
        a_bytes.insert(a);
    }
    assert_eq!(orders.len(), 2, "both orders were explored");
    assert_eq!(a_bytes.len(), 1, "a's randomness is the same whatever ran first: {a_bytes:?}");
}

#[test]
fn a_controller_stopping_and_starting_canisters_breaks_no_invariant_of_the_fixed_wallet() {
    let sim = load("wallet-unbounded.toml");
    let mut stopped_seeds = 0;
    for seed in 0..120 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(o.failure.is_none(), "seed {seed}: {:?}\n{}", o.failure, ww::sim::report::timeline(&o));
        if o.faults.get(&ww::sim::FaultKind::StopStart).copied().unwrap_or(0) > 0 {
            let t = ww::sim::report::timeline(&o);
            assert!(t.contains("O1 the controller calls stop_canister") || t.contains("O1 the controller calls start_canister"), "{t}");
            stopped_seeds += 1;
        }
    }
    assert!(stopped_seeds > 10, "O1 fired in only {stopped_seeds} seeds");
}

#[test]
fn a_failing_call_perform_sends_nothing_and_runs_no_callback() {
    let mut sim = load("wallet-unbounded.toml");
    sim.scenario.faults = Some(vec![ww::sim::FaultKind::CallPerformFails]);
    let mut seen = 0;
    for seed in 0..100 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(o.failure.is_none(), "seed {seed}: {:?}", o.failure);
        for line in o.timeline.iter().filter(|l| l.text.contains("M4 call_perform fails") && l.text.starts_with("wallet.pay")) {
            // The execution commits and answers; its call never leaves.
            assert!(!line.text.contains("calls ledger"), "{}", line.text);
            assert!(line.text.contains("replies to ingress"), "{}", line.text);
            seen += 1;
        }
        // Every call that was sent got its one response (no callback for
        // a call that never left).
        assert!(o.history.iter().all(|h| !h.ends_with("unanswered")), "{:?}", o.history);
    }
    assert!(seen > 5, "M4 hit wallet.pay in only {seen} runs");
}

// Demonstration 4: the deploy simulation under the strict messaging mix
// and node crashes (tests/deploy/pipeline.rs drives it).

#[path = "deploy/pipeline.rs"]
mod pipeline;

#[test]
fn the_deploy_completes_under_messaging_faults_and_node_crashes() {
    use candid::{Decode, Encode};
    use ww::sim::FaultKind;
    let engine = ww::sim::canister_engine().unwrap();
    let mut crashes = 0;
    for seed in 0..4 {
        let (sim, result) = pipeline::deploy_seed(&engine, seed, &pipeline::FAULTS);
        let report = result.unwrap_or_else(|e| panic!("seed {seed} ({}): {e}\n{}", sim.plan().describe(), ww::sim::report::timeline_lines(sim.timeline())));
        crashes += sim.faults_fired().get(&FaultKind::Crash).copied().unwrap_or(0);
        // Root is ready and every role runs its release build.
        let user = pipeline::deployer();
        let ready = sim.query(user, "root", "canic_ready", Encode!().unwrap()).unwrap().expect("canic_ready");
        assert!(Decode!(&ready, bool).unwrap(), "seed {seed}: root is not ready");
        let mut roles: Vec<&str> = report.roles.iter().map(|r| r.role.as_str()).collect();
        roles.sort_unstable();
        let mut expected: Vec<&str> = std::iter::once(ww_template::WASM_STORE_ROLE).chain(pipeline::ROLES).collect();
        expected.sort_unstable();
        assert_eq!(roles, expected, "seed {seed}");
        let registry = sim.query(user, "root", "canic_subnet_registry", Encode!().unwrap()).unwrap().expect("registry");
        let registry = Decode!(&registry, Vec<ww_template::types::CanisterRecordResponse>).unwrap();
        for role in pipeline::ROLES {
            let pid = registry.iter().find(|r| r.role == role).unwrap_or_else(|| panic!("seed {seed}: no {role} in {registry:?}")).pid;
            let installed = sim.replica().install_history(&pid).unwrap_or_default();
            let hash = installed.last().map(|d| d.module_hash.to_vec());
            assert_eq!(hash, Some(pipeline::sha256(pipeline::payload(role))), "seed {seed}: {role}'s module");
        }
    }
    assert!(crashes > 0, "no seed crashed the node");
}

#[test]
fn several_nodes_keep_exactly_once_across_lost_connections_and_duplicated_frames() {
    // N2: the wallet on node 0, the ledger on node 1, joined by the real
    // XNet stream state over the simulated transport. Connections are lost
    // with frames in flight (both ends resume from the acknowledgements),
    // frames are delivered twice (the receiver drops the copy): every call
    // is still answered exactly once and no debit is doubled.
    let sim = load("wallet-nodes.toml");
    assert_eq!(sim.scenario.nodes, 2);
    let (mut lost, mut duplicated, mut dropped, mut ok_calls) = (0, 0, 0, 0);
    for seed in 0..60 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        let timeline = ww::sim::report::timeline(&o);
        assert!(o.failure.is_none(), "seed {seed}: {:?}\n{timeline}", o.failure);
        lost += timeline.matches("is lost with what was in flight").count();
        duplicated += timeline.matches("twice").count();
        dropped += timeline.matches("already delivered, dropped").count();
        ok_calls += o.history.iter().filter(|h| h.contains("wallet -> ledger.transfer") && h.ends_with(": ok")).count();
    }
    assert!(lost >= 5 && duplicated >= 5, "N2 fired: {lost} connections lost, {duplicated} frames duplicated");
    assert!(dropped >= 1, "a duplicated frame reached its receiver and was dropped");
    assert!(ok_calls >= 100, "cross-node transfers completed: {ok_calls}");
    for seed in 0..3 {
        sim.check_determinism(seed).unwrap().unwrap();
    }
}

#[test]
fn cross_node_calls_survive_either_node_crashing_because_the_streams_are_in_its_cuts() {
    // N1 and N2 together, the wallet and the ledger on two durable nodes.
    // Before the XNet streams were kept in the state directory, this found
    // a clean SYS_TRANSIENT for a transfer the ledger had run (the caller
    // restarted without its stream, the callee with a context whose answer
    // went nowhere): 24 of 200 seeds failed I3. Now a message leaves a node,
    // and is acknowledged, only once a cut holds it, and a restarted node
    // resumes its streams as the same incarnation.
    let mut sim = load("wallet-nodes-crash.toml");
    use ww::sim::FaultKind as K;
    sim.scenario.faults = Some(vec![
        K::Interleave,
        K::SpontaneousReject,
        K::CallPerformFails,
        K::StopStart,
        K::Crash,
        K::Link,
    ]);
    let (mut crashes, mut completed) = (0, 0);
    for seed in 0..80 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        assert!(
            o.failure.is_none(),
            "seed {seed}: {:?}\n{}",
            o.failure,
            ww::sim::report::timeline(&o)
        );
        let n1 = o.faults.get(&K::Crash).copied().unwrap_or(0);
        crashes += n1;
        if n1 > 0 {
            completed += o
                .history
                .iter()
                .filter(|h| h.contains("wallet -> ledger.transfer") && h.ends_with(": ok"))
                .count();
        }
    }
    assert!(crashes >= 40, "{crashes} crashes in 80 seeds");
    assert!(
        completed >= 25,
        "transfers completed in runs with crashes: {completed}"
    );
    for seed in 0..3 {
        sim.check_determinism(seed).unwrap().unwrap();
    }
}

#[test]
fn a_refused_memory_grow_traps_the_allocation_and_leaves_no_trace() {
    // R2 through the Rust API: the next execution's memory.grow fails, so
    // the ic-cdk canister's allocator traps and the execution rolls back;
    // the same message then commits. A canister with a memory allocation
    // is never refused.
    use candid::Encode;
    use ww::sim::api::{Fault, IngressOutcome, SimBuilder, Stepped};
    let counter = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-unknown-unknown/release/cdk_counter.wasm")).unwrap();
    let user = ww::sim::run::default_user();
    let mut sim = SimBuilder::new().faults(&[]).canister("counter", counter, Encode!(&None::<()>).unwrap()).replay(vec![]).unwrap();
    let heap = |sim: &ww::sim::api::Sim| sim.replica().status(&sim.id("counter").unwrap()).unwrap().memory_size;
    let mut grow = |sim: &mut ww::sim::api::Sim, fault: bool| {
        if fault {
            sim.inject(Fault::GrowFails).unwrap();
        }
        let id = sim.submit(user, "counter", "grow_heap", Encode!(&4u32).unwrap()).unwrap();
        while sim.outcome(id).is_none() {
            assert!(matches!(sim.step().unwrap(), Stepped::Ran | Stepped::Waited));
        }
        sim.outcome(id).cloned().unwrap()
    };
    let before = heap(&sim);
    match grow(&mut sim, true) {
        IngressOutcome::Rejected(r) => assert!(r.message.contains("trapped") || r.message.contains("unreachable"), "{r}"),
        other => panic!("a refused grow must trap the allocation: {other:?}"),
    }
    assert_eq!(heap(&sim), before, "the trapped execution left the heap as it was");
    assert!(matches!(grow(&mut sim, false), IngressOutcome::Replied(_)));
    let grown = heap(&sim);
    assert!(grown >= before + (4 << 20), "{before} -> {grown}");
    // With a memory allocation the subnet guarantees the growth.
    let id = sim.id("counter").unwrap();
    let settings = ww::replica::settings::CanisterSettings { memory_allocation: Some(candid::Nat::from(1u64 << 30)), ..Default::default() };
    sim.replica().update_settings(ww::replica::ChangeOrigin::User(user), id, &settings).unwrap();
    assert!(matches!(grow(&mut sim, true), IngressOutcome::Replied(_)));
    assert_eq!(sim.faults_fired().get(&ww::sim::FaultKind::GrowFails).copied(), Some(2));
}

#[test]
fn attached_cycles_are_accepted_or_refunded_under_every_fault() {
    // I6: the wallet tips the ledger (which keeps half) with bounded and
    // unbounded waits, under every fault kind of `spec`. Each call's
    // attached cycles must be what the callee accepted plus the refund; an
    // expired call refunds nothing and its unaccepted cycles are lost.
    let sim = load("tips.toml");
    let (mut expired, mut lost_seeds, mut refunds) = (0, 0, 0);
    for seed in 0..150 {
        let o = sim.run_seed(seed, RunOptions::default()).unwrap();
        let timeline = ww::sim::report::timeline(&o);
        assert!(o.failure.is_none(), "seed {seed}: {:?}\n{timeline}", o.failure);
        expired += o.faults.get(&ww::sim::FaultKind::Expiry).copied().unwrap_or(0);
        lost_seeds += usize::from(timeline.contains("cycles attached to expired calls were lost"));
        refunds += timeline.matches("answered: (1_000_000 : nat64)").count() + timeline.matches("answered: (500_000 : nat64)").count();
    }
    assert!(expired >= 10, "M6 fired {expired} times");
    assert!(lost_seeds >= 3, "seeds that lost cycles to an expiry: {lost_seeds}");
    assert!(refunds >= 100, "tips answered with their refund: {refunds}");
}
