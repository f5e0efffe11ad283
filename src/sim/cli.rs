//! `ww sim run | replay | shrink`: the simulator's command line. Exit codes:
//! 0 every seed passed, 1 a seed failed (or the replayed run still fails),
//! 2 the simulation could not run (a bad scenario, module or artifact).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::artifact::Artifact;
use super::faults::Profile;
use super::report::{self, Summary};
use super::run::RunOptions;
use super::{SimError, Simulation};

#[derive(Debug, clap::Subcommand)]
pub enum SimCommand {
    /// Run a scenario over many seeds; keep each failing run as an artifact.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// How many seeds.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// The first seed (seeds are consecutive).
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Seeds run in parallel (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// The fault profile, instead of the scenario's: strict, spec or adversarial.
        #[arg(long)]
        profile: Option<Profile>,
        /// Only these fault kinds, comma-separated (M1, M3, M4, M5, M6, R1, R2, R3, O1, O2, N1, N2).
        #[arg(long, value_name = "LIST")]
        faults: Option<String>,
        /// Run every seed twice and compare the replica's state (memory
        /// included) after every step.
        #[arg(long)]
        check_determinism: bool,
        /// Where failing runs are written.
        #[arg(long, default_value = "ww-sim-artifacts", value_name = "DIR")]
        artifacts: PathBuf,
    },
    /// Replay a failing run from its artifact and print its timeline.
    Replay { artifact: PathBuf },
    /// Shrink a failing run: fewer faults, messages and reorderings while the
    /// same invariant fails; writes `<artifact>.shrunk.json`.
    Shrink {
        artifact: PathBuf,
        /// The most replays to try.
        #[arg(long, default_value_t = 1000)]
        budget: u32,
    },
}

/// Runs a `ww sim` command; the process exit code.
pub fn main(command: SimCommand) -> Result<u8, SimError> {
    match command {
        SimCommand::Run { scenario, seeds, first_seed, jobs, profile, faults, check_determinism, artifacts } => {
            let mut sim = Simulation::load(&scenario)?;
            if let Some(p) = profile {
                sim.scenario.profile = p;
            }
            if let Some(list) = faults {
                sim.scenario.faults = Some(super::rounds::parse_kinds(&list).map_err(SimError::Scenario)?);
            }
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
            run_seeds(&sim, first_seed, seeds, jobs, check_determinism, &artifacts)
        }
        SimCommand::Replay { artifact } => {
            let a = Artifact::load(&artifact)?;
            let mut sim = a.simulation()?;
            sim.scenario.profile = a.profile;
            sim.scenario.faults = a.faults.clone();
            let outcome = sim.run_decisions(&a.decisions, a.options())?;
            match &outcome.failure {
                Some(f) => {
                    print!("{}", report::failure(&outcome, f));
                    if f.invariant != a.failure.invariant {
                        println!("(recorded as {:?}; it now fails {:?})", a.failure.invariant, f.invariant);
                    }
                    Ok(1)
                }
                None => {
                    print!("{}", report::timeline(&outcome));
                    println!("PASSED: the recorded failure ({}) no longer happens", a.failure.invariant);
                    Ok(0)
                }
            }
        }
        SimCommand::Shrink { artifact, budget } => {
            let a = Artifact::load(&artifact)?;
            let mut sim = a.simulation()?;
            sim.scenario.profile = a.profile;
            sim.scenario.faults = a.faults.clone();
            let shrunk = super::shrink::shrink_from(&sim, &a.decisions, a.options(), &a.failure, budget)?;
            let out = shrunk_path(&artifact);
            let mut small = Artifact::new(&sim, &shrunk.outcome, shrunk.failure.clone());
            small.seed = a.seed;
            small.save(&out)?;
            print!("{}", report::failure(&shrunk.outcome, &shrunk.failure));
            println!(
                "shrunk in {} replays (the result found at replay {}): {} decisions ({} non-zero) -> {} ({} non-zero), {} steps",
                shrunk.runs,
                shrunk.found_at,
                a.decisions.len(),
                a.decisions.iter().filter(|d| **d != 0).count(),
                shrunk.outcome.decisions.len(),
                shrunk.outcome.decisions.iter().filter(|d| **d != 0).count(),
                shrunk.outcome.steps
            );
            println!("wrote {}; replay it with: ww sim replay {}", out.display(), out.display());
            println!("as a regression test:\n\n{}", report::regression_test(&a.scenario, &shrunk.outcome, &shrunk.failure));
            Ok(1)
        }
    }
}

fn shrunk_path(artifact: &Path) -> PathBuf {
    let stem = artifact.file_stem().map_or("artifact".into(), |s| s.to_string_lossy().into_owned());
    artifact.with_file_name(format!("{stem}.shrunk.json"))
}

fn run_seeds(sim: &Simulation, first: u64, seeds: u64, jobs: usize, determinism: bool, artifacts: &Path) -> Result<u8, SimError> {
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    let failures: Mutex<Vec<(u64, String, PathBuf)>> = Mutex::new(Vec::new());
    let nondeterministic: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let error: Mutex<Option<SimError>> = Mutex::new(None);
    // When the first failure was found (seed, wall time since the start).
    let first_failure: Mutex<Option<(u64, std::time::Duration)>> = Mutex::new(None);
    let tty = std::io::stderr().is_terminal();
    eprintln!("ww sim: {} ({}), seeds {first}..{}, {jobs} job(s)", sim.scenario.name, sim.scenario.profile, first + seeds);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(seeds.max(1) as usize) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= seeds || error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    let seed = first + i;
                    // With the check, the first of its two runs is the seed's run.
                    let run = if determinism {
                        sim.run_seed_checked(seed).map(|(outcome, verdict)| {
                            if let Err(why) = verdict {
                                nondeterministic.lock().unwrap_or_else(|e| e.into_inner()).push(why);
                            }
                            outcome
                        })
                    } else {
                        sim.run_seed(seed, RunOptions::default())
                    };
                    let outcome = match run {
                        Ok(o) => o,
                        Err(e) => {
                            *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            return;
                        }
                    };
                    if let Some(f) = &outcome.failure {
                        first_failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert((seed, started.elapsed()));
                        let path = artifacts.join(format!("{}-seed-{seed}.json", sim.scenario.name));
                        let text = report::failure(&outcome, f);
                        match Artifact::new(sim, &outcome, f.clone()).save(&path) {
                            Ok(()) => failures.lock().unwrap_or_else(|e| e.into_inner()).push((seed, text, path)),
                            Err(e) => {
                                *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                                return;
                            }
                        }
                    }
                    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                    s.add(&outcome);
                    if tty {
                        let done = s.seeds;
                        let width = 30;
                        let filled = (done * width / seeds.max(1)) as usize;
                        eprint!(
                            "\r  [{}{}] {done}/{seeds} seeds, {} failed ",
                            "=".repeat(filled),
                            " ".repeat(width as usize - filled),
                            s.failures
                        );
                        let _ = std::io::stderr().flush();
                    }
                }
            });
        }
    });
    if tty {
        eprintln!();
    }
    if let Some(e) = error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(seed, _, _)| *seed);
    if let Some((_, text, _)) = failures.first() {
        print!("{text}");
    }
    for (seed, _, path) in &failures {
        println!("seed {seed} failed: replay with `ww sim replay {}`, shrink with `ww sim shrink {}`", path.display(), path.display());
    }
    let nondeterministic = nondeterministic.into_inner().unwrap_or_else(|e| e.into_inner());
    for why in &nondeterministic {
        println!("NOT DETERMINISTIC: {why}");
    }
    print!("{}", summary.table(started.elapsed(), jobs));
    if let Some((seed, after)) = first_failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        println!("  first failure    seed {seed}, after {:.3} s", after.as_secs_f64());
    }
    Ok(if failures.is_empty() && nondeterministic.is_empty() { 0 } else { 1 })
}

/// `ww test --seeds N -- <test command>`: an unchanged `pocket-ic` test
/// command run once per seed against ww's PocketIC server with seeded
/// faults (see [`super::rounds`]).
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// How many seeds (runs of the command).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// The first seed (seeds are consecutive).
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// The fault profile: strict, spec or adversarial.
    #[arg(long, default_value = "strict")]
    pub profile: Profile,
    /// Only these fault kinds, comma-separated (M1, M3, M4, M6, R1, R3; a test's canisters are never stopped or upgraded under it).
    #[arg(long, value_name = "LIST")]
    pub faults: Option<String>,
    /// The test command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs `ww test`; the exit code (1 when any seed failed).
pub fn test(args: TestArgs) -> Result<u8, SimError> {
    use super::rounds::{FAULTS_VAR, PROFILE_VAR, SEED_VAR, parse_kinds};
    if let Some(list) = &args.faults {
        parse_kinds(list).map_err(SimError::Scenario)?;
    }
    let exe = std::env::current_exe().map_err(|e| SimError::Replica(format!("cannot find the ww executable: {e}")))?;
    // The client starts whatever POCKET_IC_BIN names; ww serves PocketIC
    // when its file name starts with `pocket-ic`.
    let dir = tempfile::tempdir().map_err(|e| SimError::Replica(format!("cannot make a temporary directory: {e}")))?;
    let server = dir.path().join("pocket-ic");
    std::os::unix::fs::symlink(&exe, &server).map_err(|e| SimError::Replica(format!("cannot link {}: {e}", server.display())))?;
    let (program, rest) = args.command.split_first().ok_or_else(|| SimError::Scenario("no test command after --".into()))?;
    let started = std::time::Instant::now();
    let mut failed: Vec<(u64, std::process::Output)> = Vec::new();
    eprintln!("ww test: {} seed(s) from {}, profile {}{}", args.seeds, args.first_seed, args.profile, args.faults.as_deref().map(|f| format!(", faults {f}")).unwrap_or_default());
    for seed in args.first_seed..args.first_seed + args.seeds {
        let t = std::time::Instant::now();
        let mut cmd = std::process::Command::new(program);
        cmd.args(rest).env("POCKET_IC_BIN", &server).env(SEED_VAR, seed.to_string()).env(PROFILE_VAR, args.profile.to_string());
        match &args.faults {
            Some(list) => cmd.env(FAULTS_VAR, list),
            None => cmd.env_remove(FAULTS_VAR),
        };
        // Into files, not pipes: the PocketIC server the test starts
        // inherits them and outlives the test (until its idle TTL).
        let output = run_to_files(&mut cmd, dir.path()).map_err(|e| SimError::Scenario(format!("cannot run {program:?}: {e}")))?;
        let verdict = if output.status.success() { "ok".to_string() } else { format!("FAILED ({})", output.status) };
        eprintln!("  seed {seed}: {verdict} in {:.1} s", t.elapsed().as_secs_f64());
        if !output.status.success() {
            failed.push((seed, output));
        }
    }
    for (seed, output) in &failed {
        println!("---- seed {seed}: the test's output ----");
        print!("{}", String::from_utf8_lossy(&output.stdout));
        print!("{}", String::from_utf8_lossy(&output.stderr));
        let faults = args.faults.as_deref().map(|f| format!(" --faults {f}")).unwrap_or_default();
        let command: Vec<String> = args.command.iter().map(|a| shell_quote(a)).collect();
        println!("---- replay seed {seed} with: ww test --seeds 1 --first-seed {seed} --profile {}{faults} -- {}", args.profile, command.join(" "));
    }
    println!(
        "ww test: {} of {} seed(s) failed in {:.1} s",
        failed.len(),
        args.seeds,
        started.elapsed().as_secs_f64()
    );
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn run_to_files(cmd: &mut std::process::Command, dir: &Path) -> std::io::Result<std::process::Output> {
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let status = cmd.stdin(std::process::Stdio::null()).stdout(std::fs::File::create(&out_path)?).stderr(std::fs::File::create(&err_path)?).status()?;
    Ok(std::process::Output { status, stdout: std::fs::read(&out_path)?, stderr: std::fs::read(&err_path)? })
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
