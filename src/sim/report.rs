//! What `ww sim` prints: a run's header (seed, plan), its timeline (one
//! line per step: canister, entry point, caller, fault, commit or trap,
//! response), the call history, the summary table of many seeds, and a
//! failure as a Rust regression test.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::faults::FaultKind;
use super::run::{Failure, RunOutcome, TimelineLine};

/// The timeline of a run, one line per step.
pub fn timeline(outcome: &RunOutcome) -> String {
    timeline_lines(&outcome.timeline)
}

/// Timeline lines (a run's, or a [`super::api::Sim`]'s so far).
pub fn timeline_lines(lines: &[TimelineLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(out, "  {:>4}  {:>9.3}s  {}", l.step, l.time_ns as f64 / 1e9, l.text);
    }
    out
}

/// A failing run, for a person.
pub fn failure(outcome: &RunOutcome, failure: &Failure) -> String {
    let mut out = String::new();
    let seed = outcome.seed.map_or("replayed decisions".into(), |s| format!("seed {s}"));
    let _ = writeln!(out, "FAILED {seed}: {} at step {}: {}", failure.invariant, failure.step, failure.detail);
    let _ = writeln!(out, "  faults on: {}", outcome.plan.describe());
    let _ = writeln!(out, "  timeline ({} steps, {} decisions):", outcome.steps, outcome.decisions.len());
    out.push_str(&timeline(outcome));
    if !outcome.history.is_empty() {
        let _ = writeln!(out, "  inter-canister calls:");
        for h in &outcome.history {
            let _ = writeln!(out, "    {h}");
        }
    }
    out
}

/// Totals over many seeds.
#[derive(Default)]
pub struct Summary {
    pub seeds: u64,
    pub failures: u64,
    pub steps: u64,
    pub faults: BTreeMap<FaultKind, u64>,
    pub expiries: BTreeMap<&'static str, u64>,
    pub simulated_ns: u128,
    pub failed_invariants: BTreeMap<String, u64>,
}

impl Summary {
    pub fn add(&mut self, o: &RunOutcome) {
        self.seeds += 1;
        self.steps += o.steps as u64;
        self.simulated_ns += u128::from(o.simulated_ns);
        for (k, n) in &o.faults {
            *self.faults.entry(*k).or_default() += u64::from(*n);
        }
        for (k, n) in &o.expiries {
            *self.expiries.entry(k).or_default() += u64::from(*n);
        }
        if let Some(f) = &o.failure {
            self.failures += 1;
            *self.failed_invariants.entry(f.invariant.clone()).or_default() += 1;
        }
    }

    pub fn table(&self, real: std::time::Duration, jobs: usize) -> String {
        let mut out = String::new();
        let secs = real.as_secs_f64().max(1e-9);
        let simulated = self.simulated_ns as f64 / 1e9;
        let _ = writeln!(out, "  seeds            {}", self.seeds);
        let _ = writeln!(out, "  failed           {}", self.failures);
        for (inv, n) in &self.failed_invariants {
            let _ = writeln!(out, "    {inv:<30} {n}");
        }
        let _ = writeln!(out, "  steps            {}", self.steps);
        let _ = writeln!(out, "  faults fired");
        for kind in FaultKind::ALL {
            let n = self.faults.get(&kind).copied().unwrap_or(0);
            let _ = writeln!(out, "    {} {:<24} {n}", kind.id(), kind.name());
            if kind == FaultKind::Expiry {
                for (pos, n) in &self.expiries {
                    let _ = writeln!(out, "       {pos:<23} {n}");
                }
            }
        }
        let _ = writeln!(out, "  simulated time   {simulated:.1} s ({:.1}x real time)", simulated / secs);
        let _ = writeln!(out, "  real time        {secs:.2} s on {jobs} job(s)");
        let _ = writeln!(out, "  seeds per second {:.1}", self.seeds as f64 / secs);
        out
    }
}

/// A failing run as a Rust test that replays its decisions and fails until
/// the bug is fixed.
pub fn regression_test(scenario: &std::path::Path, outcome: &RunOutcome, failure: &Failure) -> String {
    let name = format!("sim_{}", failure.invariant.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect::<String>());
    let decisions = outcome.decisions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let options = if outcome.omitted.is_empty() {
        "ww::sim::RunOptions::default()".to_string()
    } else {
        let omit = outcome.omitted.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        format!("ww::sim::RunOptions {{ omit: vec![{omit}], ..Default::default() }}")
    };
    format!(
        "#[test]\nfn {name}() {{\n    // {}: {}\n    let sim = ww::sim::Simulation::load(std::path::Path::new({:?})).unwrap();\n    let outcome = sim.run_decisions(&[{decisions}], {options}).unwrap();\n    assert!(outcome.failure.is_none(), \"{{}}\", ww::sim::report::timeline(&outcome));\n}}\n",
        failure.invariant,
        failure.detail.replace('\n', " "),
        scenario.display().to_string(),
    )
}
