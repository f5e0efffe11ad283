//! A failing run kept as a file: the scenario (path and digest), the module
//! hashes, the seed and profile, the failure, and the decision log, which
//! replays the run exactly (`ww sim replay`) even where a seed would expand
//! differently in another ww version. JSON, so it can be read and diffed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run::{Failure, RunOutcome};
use super::{SimError, Simulation};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Artifact {
    pub ww_version: String,
    pub scenario: PathBuf,
    pub scenario_digest: String,
    pub modules: BTreeMap<String, String>,
    pub seed: Option<u64>,
    pub profile: super::Profile,
    /// The fault kinds the run was limited to, if any.
    #[serde(default)]
    pub faults: Option<Vec<super::FaultKind>>,
    pub plan: String,
    pub failure: Failure,
    pub decisions: Vec<u32>,
    /// Workload messages the run left out (a shrunk run's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<usize>,
}

impl Artifact {
    pub fn new(sim: &Simulation, outcome: &RunOutcome, failure: Failure) -> Self {
        let scenario = std::fs::canonicalize(&sim.scenario.path).unwrap_or_else(|_| sim.scenario.path.clone());
        Self {
            ww_version: env!("CARGO_PKG_VERSION").into(),
            scenario,
            scenario_digest: sim.scenario.digest.clone(),
            modules: sim.scenario.module_hashes(),
            seed: outcome.seed,
            profile: sim.scenario.profile,
            faults: sim.scenario.faults.clone(),
            plan: outcome.plan.describe(),
            failure,
            decisions: outcome.decisions.clone(),
            omitted: outcome.omitted.clone(),
        }
    }

    /// The options that replay it.
    pub fn options(&self) -> super::RunOptions {
        super::RunOptions { omit: self.omitted.clone(), ..super::RunOptions::default() }
    }

    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| SimError::Artifact(path.display().to_string(), e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SimError::Artifact(dir.display().to_string(), e.to_string()))?;
        }
        std::fs::write(path, json).map_err(|e| SimError::Artifact(path.display().to_string(), e.to_string()))
    }

    pub fn load(path: &Path) -> Result<Self, SimError> {
        let bytes = std::fs::read(path).map_err(|e| SimError::Artifact(path.display().to_string(), e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| SimError::Artifact(path.display().to_string(), format!("not a ww sim artifact: {e}")))
    }

    /// The scenario it was made with, checked: the same modules (a rebuilt
    /// canister would not replay the same run).
    pub fn simulation(&self) -> Result<Simulation, SimError> {
        let sim = Simulation::load(&self.scenario)?;
        for (name, hash) in &self.modules {
            match sim.scenario.module_hashes().get(name) {
                Some(now) if now == hash => {}
                Some(now) => {
                    return Err(SimError::Artifact(
                        self.scenario.display().to_string(),
                        format!("canister {name:?}'s module changed since the failure was recorded (sha256 {hash}, now {now})"),
                    ));
                }
                None => return Err(SimError::Artifact(self.scenario.display().to_string(), format!("the scenario no longer has canister {name:?}"))),
            }
        }
        Ok(sim)
    }
}
