//! Deterministic simulation with fault injection (`ww sim`): unmodified
//! canisters run on a replica whose every decision (which step runs next,
//! which fault fires) comes from one seeded chooser, with simulated time, so
//! a seed (or the decision log it expands to) reproduces a run bit for bit.
//! Faults are only those the IC interface specification allows
//! ([`faults`]); system invariants ([`check`]) and the scenario's own
//! ([`predicate`]) are checked after every step; a failing run is kept as an
//! [`artifact::Artifact`] that replays it and can be shrunk ([`shrink`]).
//!
//! Scenario files drive it through [`run`]; Rust code through [`api`]
//! (builder, `step`, `inject`, `run_until_quiescent`, history).
//!
//! The replica side is `crate::replica::sim`: a narrow view listing the
//! eligible steps and running the one chosen.

pub mod api;
pub mod artifact;
pub mod check;
pub mod chooser;
pub mod cli;
mod cluster;
pub mod crash;
pub mod faults;
pub mod inject;
pub mod predicate;
pub mod report;
pub mod rounds;
pub mod run;
mod runner;
pub mod scenario;
pub mod shrink;
pub mod upgrade;
mod xnet;

pub use artifact::Artifact;
pub use chooser::Chooser;
pub use faults::{FaultKind, FaultPlan, Profile};
pub use run::{Prepared, RunOptions, RunOutcome};
pub use scenario::Scenario;

/// What stops a simulation from running at all (a failing run is not an
/// error: it is the outcome).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario: {0}")]
    Scenario(String),
    #[error("canister {0:?}: {1}")]
    Canister(String, String),
    #[error("the simulated replica: {0}")]
    Replica(String),
    #[error("artifact {0}: {1}")]
    Artifact(String, String),
}

/// A canister engine with the on-disk compile cache.
pub fn canister_engine() -> Result<crate::engine::Engine, SimError> {
    use crate::engine::{Engine, EngineConfig, EngineKind, default_cache_dir};
    let config = EngineConfig { kind: EngineKind::Canister, cache_dir: default_cache_dir(), ..EngineConfig::default() };
    Engine::new(&config).map_err(|e| SimError::Replica(e.to_string()))
}

/// A scenario ready to run many times: its modules compiled once.
pub struct Simulation {
    pub scenario: Scenario,
    engine: crate::engine::Engine,
    prepared: Prepared,
}

impl Simulation {
    /// Loads and compiles a scenario on a fresh canister engine.
    pub fn load(path: &std::path::Path) -> Result<Self, SimError> {
        let scenario = Scenario::load(path)?;
        Self::new(scenario)
    }

    pub fn new(scenario: Scenario) -> Result<Self, SimError> {
        let engine = canister_engine()?;
        let prepared = Prepared::new(&engine, &scenario)?;
        Ok(Self { scenario, engine, prepared })
    }

    /// Runs seed `seed`.
    pub fn run_seed(&self, seed: u64, options: RunOptions) -> Result<RunOutcome, SimError> {
        run::run(&self.engine, &self.scenario, &self.prepared, Chooser::seeded(seed), Some(seed), options)
    }

    /// Runs a decision log (an artifact's, or a shrinking candidate).
    pub fn run_decisions(&self, decisions: &[u32], options: RunOptions) -> Result<RunOutcome, SimError> {
        run::run(&self.engine, &self.scenario, &self.prepared, Chooser::replay(decisions.to_vec()), None, options)
    }

    /// Runs `seed` twice and compares the state digest after every step;
    /// `Err` names the first step at which the runs differ.
    pub fn check_determinism(&self, seed: u64) -> Result<Result<(), String>, SimError> {
        Ok(self.run_seed_checked(seed)?.1)
    }

    /// [`Simulation::check_determinism`] that also hands back the first
    /// run's outcome (so the seed need not run a third time).
    pub fn run_seed_checked(&self, seed: u64) -> Result<(RunOutcome, Result<(), String>), SimError> {
        let options = RunOptions { deep_digests: true, ..RunOptions::default() };
        let a = self.run_seed(seed, options.clone())?;
        let b = self.run_seed(seed, options)?;
        let verdict = if a.decisions != b.decisions {
            let at = a.decisions.iter().zip(&b.decisions).position(|(x, y)| x != y).unwrap_or(a.decisions.len().min(b.decisions.len()));
            Err(format!("seed {seed}: the decision logs differ at decision {at}"))
        } else if let Some(step) = a.digests.iter().zip(&b.digests).position(|(x, y)| x != y) {
            Err(format!("seed {seed}: the replica states differ after step {}", step + 1))
        } else if a.digests.len() != b.digests.len() || a.final_digest != b.final_digest || a.failure != b.failure {
            Err(format!("seed {seed}: the runs end differently"))
        } else {
            Ok(())
        };
        Ok((a, verdict))
    }
}
