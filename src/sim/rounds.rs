//! PocketIC instances under seeded faults (`ww test --seeds N`): when the
//! server starts with `WW_SIM_SEED` in its environment, each instance's
//! replica is simulated and a round (`tick`, and every round `await_call`
//! runs) is a simulated round: the held ingress and what is due are
//! queued, then the chooser runs every eligible step in an order and with
//! the faults it draws, until nothing is left or the round's budget is
//! spent. Nothing is delayed past the round, so tests that tick a fixed
//! number of times or await a call still finish. Every instance draws from
//! the same seed, so a run does not depend on which test created its
//! instance first. The system invariants (I1-I3) are checked as in `ww
//! sim`; a violation is a ww bug and is printed on stderr.

use super::check::SystemCheck;
use super::chooser::Chooser;
use super::faults::{FaultKind, FaultPlan, Profile};
use super::inject::{self, Applied, Fired};
use crate::replica::{ROUND_EXECUTION_BUDGET, Replica, RoundReport};

/// The environment `ww test` sets for the PocketIC server it starts.
pub const SEED_VAR: &str = "WW_SIM_SEED";
pub const PROFILE_VAR: &str = "WW_SIM_PROFILE";
pub const FAULTS_VAR: &str = "WW_SIM_FAULTS";

pub struct SimRounds {
    chooser: Chooser,
    plan: FaultPlan,
    fired: Fired,
    check: SystemCheck,
}

impl SimRounds {
    /// From the environment, when `WW_SIM_SEED` is set; `Err` for a bad value.
    pub fn from_env() -> Result<Option<Self>, String> {
        let Ok(seed) = std::env::var(SEED_VAR) else { return Ok(None) };
        let seed: u64 = seed.trim().parse().map_err(|_| format!("{SEED_VAR}={seed:?} is not a number"))?;
        let profile: Profile = std::env::var(PROFILE_VAR).map_or(Ok(Profile::Strict), |p| p.parse())?;
        let only = match std::env::var(FAULTS_VAR) {
            Ok(list) => Some(parse_kinds(&list)?),
            Err(_) => None,
        };
        Ok(Some(Self::new(seed, profile, only.as_deref())))
    }

    pub fn new(seed: u64, profile: Profile, only: Option<&[FaultKind]>) -> Self {
        let mut chooser = Chooser::seeded(seed);
        // Never O1, O2, N1 or M5 here: stopping, upgrading or freezing a test's
        // canisters under it says nothing (and a test names no module to
        // upgrade to); a PocketIC instance has no state directory.
        let kinds: Vec<FaultKind> = only
            .unwrap_or(&FaultKind::ALL)
            .iter()
            .copied()
            .filter(|k| !matches!(k, FaultKind::StopStart | FaultKind::Upgrade | FaultKind::Crash | FaultKind::Frozen | FaultKind::Link))
            .collect();
        let plan = FaultPlan::draw_among(profile, Some(&kinds), &mut chooser);
        tracing::info!(seed, "simulated PocketIC instance, faults {}", plan.describe());
        Self { chooser, plan, fired: Fired::default(), check: SystemCheck::default() }
    }

    /// One simulated round.
    pub fn round(&mut self, replica: &Replica) -> RoundReport {
        replica.sim_begin_round();
        let mut jobs = 0u64;
        while jobs < ROUND_EXECUTION_BUDGET as u64 {
            let steps = replica.sim_steps();
            if steps.is_empty() {
                break;
            }
            let pick = inject::pick(&self.plan, &mut self.chooser, &mut self.fired, steps.len());
            match inject::step(replica, &steps[pick], &self.plan, &mut self.chooser, &mut self.fired) {
                Applied::Ran { .. } | Applied::Rejected(_) => jobs += 1,
                // Its canister answers a query right now: the round goes on
                // with the others, or ends.
                Applied::Skipped if steps.len() == 1 => break,
                Applied::Skipped => {}
            }
            inject::expire(replica, &self.plan, &mut self.chooser, &mut self.fired);
            let events = replica.sim_take_events();
            if let Some((invariant, detail)) = self.check.observe(&events) {
                tracing::error!("ww sim: {invariant} violated (a ww bug): {detail}");
                eprintln!("ww sim: {invariant} violated (a ww bug): {detail}");
            }
        }
        let deferred = replica.sim_queued();
        if jobs == 0 && deferred > 0 {
            tracing::warn!("simulated round ran nothing; queued: {}", replica.sim_queues());
        }
        RoundReport { jobs, deferred, carried: replica.sim_carried() }
    }
}

/// Fault kinds by id (`M1,M6`) or name (`interleave`), comma-separated.
pub fn parse_kinds(list: &str) -> Result<Vec<FaultKind>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            FaultKind::ALL
                .into_iter()
                .find(|k| k.id().eq_ignore_ascii_case(s) || k.name().eq_ignore_ascii_case(s))
                .ok_or_else(|| format!("unknown fault kind {s:?} (M1, M3, M4, M5, M6, R1, R2, R3, O1, O2, N1, N2)"))
        })
        .collect()
}
