//! Shrinking a failing run: its decision log is edited (cut short, blocks
//! set to the simplest choice 0 — no fault, the oldest step —, blocks
//! deleted, single choices lowered) and each candidate replayed; a
//! candidate is kept when the same invariant fails and the log got simpler
//! (fewer non-zero choices, then fewer steps); non-zero choices are also
//! moved earlier, so a fault that needed a long prefix to fire fires on
//! the first message instead; workload messages are left out one at a
//! time. Hypothesis-style shrinking of a choice sequence: faults, workload
//! and reorderings go away unless the failure needs them.

use super::run::{Failure, RunOptions, RunOutcome};
use super::{SimError, Simulation};

pub struct Shrunk {
    pub outcome: RunOutcome,
    pub failure: Failure,
    /// Replays tried, and the replay that found the result.
    pub runs: u32,
    pub found_at: u32,
}

/// How simple a log is: fewer non-zero choices, then fewer steps, then
/// smaller picks (which step, which call: small numbers; a fault's
/// yes-or-no draw is large and only its being 0 or not matters).
fn size(outcome: &RunOutcome) -> (usize, usize, u64) {
    let nonzero = outcome.decisions.iter().filter(|d| **d != 0).count();
    let picks = outcome.decisions.iter().filter(|d| **d < PICK_RANGE).map(|d| u64::from(*d)).sum();
    (nonzero, outcome.steps, picks)
}

/// Draws below this are picks among alternatives.
const PICK_RANGE: u32 = 1_000;

pub fn shrink(sim: &Simulation, decisions: &[u32], failure: &Failure, budget: u32) -> Result<Shrunk, SimError> {
    shrink_from(sim, decisions, RunOptions::default(), failure, budget)
}

/// [`shrink`] from a run made with `options` (an artifact's omitted
/// messages).
pub fn shrink_from(sim: &Simulation, decisions: &[u32], options: RunOptions, failure: &Failure, budget: u32) -> Result<Shrunk, SimError> {
    let mut runs = 0u32;
    let mut best = sim.run_decisions(decisions, options.clone())?;
    runs += 1;
    let same = |o: &RunOutcome| o.failure.as_ref().is_some_and(|f| f.invariant == failure.invariant);
    if !same(&best) {
        return Err(SimError::Artifact("(decisions)".into(), format!("replaying the decisions does not reproduce {:?}", failure.invariant)));
    }
    let found_at = std::cell::Cell::new(1u32);
    let try_with = |candidate: Vec<u32>, omit: Vec<usize>, best: &mut RunOutcome, runs: &mut u32| -> Result<bool, SimError> {
        if *runs >= budget {
            return Ok(false);
        }
        *runs += 1;
        let o = sim.run_decisions(&candidate, RunOptions { omit, ..RunOptions::default() })?;
        if same(&o) && size(&o) < size(best) {
            *best = o;
            found_at.set(*runs);
            return Ok(true);
        }
        Ok(false)
    };
    let try_candidate = |candidate: Vec<u32>, best: &mut RunOutcome, runs: &mut u32| -> Result<bool, SimError> {
        let omit = best.omitted.clone();
        try_with(candidate, omit, best, runs)
    };
    let messages: usize = sim.scenario.workload.iter().map(|w| w.count as usize).sum();
    loop {
        let before = size(&best);
        // Leave workload messages out, the last first (the decisions stay:
        // what they chose among shifts, which the other passes repair).
        for m in (0..messages).rev() {
            if best.omitted.contains(&m) {
                continue;
            }
            let mut omit = best.omitted.clone();
            omit.push(m);
            omit.sort_unstable();
            let decisions = best.decisions.clone();
            try_with(decisions, omit, &mut best, &mut runs)?;
        }
        // Cut the log short (the rest is the simplest choices).
        let mut len = best.decisions.len();
        while len > 0 {
            let half = len / 2;
            if try_candidate(best.decisions[..half].to_vec(), &mut best, &mut runs)? {
                len = best.decisions.len();
            } else {
                break;
            }
        }
        // Blocks to zero, then blocks deleted, halving the block size.
        for delete in [false, true] {
            let mut chunk = (best.decisions.len() / 2).max(1);
            loop {
                let mut start = 0;
                while start < best.decisions.len() {
                    let end = (start + chunk).min(best.decisions.len());
                    let mut candidate = best.decisions.clone();
                    if delete {
                        candidate.drain(start..end);
                    } else if candidate[start..end].iter().any(|d| *d != 0) {
                        candidate[start..end].iter_mut().for_each(|d| *d = 0);
                    } else {
                        start = end;
                        continue;
                    }
                    if !try_candidate(candidate, &mut best, &mut runs)? {
                        start = end;
                    }
                }
                if chunk == 1 {
                    break;
                }
                chunk /= 2;
            }
        }
        // Move a choice earlier (a fault that fires on the third message
        // may fire on the first): each non-zero choice tried at each earlier
        // position holding 0.
        // A fault is often a few draws (whether it fires, then how): the
        // window of up to three choices from it moves as one.
        let mut j = 0;
        while j < best.decisions.len() {
            if best.decisions[j] != 0 {
                'window: for width in 1..=3 {
                    let end = (j + width).min(best.decisions.len());
                    let window = best.decisions[j..end].to_vec();
                    for i in 0..j {
                        if best.decisions[i..i + window.len()].iter().any(|d| *d != 0) {
                            continue;
                        }
                        let mut candidate = best.decisions.clone();
                        candidate[j..end].iter_mut().for_each(|d| *d = 0);
                        candidate[i..i + window.len()].copy_from_slice(&window);
                        if try_candidate(candidate, &mut best, &mut runs)? {
                            break 'window;
                        }
                    }
                }
            }
            j += 1;
        }
        // Lower single choices.
        for i in 0..best.decisions.len() {
            if i >= best.decisions.len() {
                break;
            }
            let v = best.decisions[i];
            if v == 0 || v >= PICK_RANGE {
                continue;
            }
            for lower in [0, v / 2, v - 1] {
                if lower < v {
                    let mut candidate = best.decisions.clone();
                    candidate[i] = lower;
                    if try_candidate(candidate, &mut best, &mut runs)? {
                        break;
                    }
                }
            }
        }
        if size(&best) >= before || runs >= budget {
            break;
        }
    }
    let failure = best.failure.clone().unwrap_or_else(|| failure.clone());
    Ok(Shrunk { outcome: best, failure, runs, found_at: found_at.get() })
}
