//! The one decision point of a simulated run. Every choice (the fault plan,
//! which step runs next, whether a fault fires and where) is a number drawn
//! here and written to the decision log; a run is its log. Replaying reads
//! the log back instead of drawing, and past its end takes the simplest
//! choice (0: the oldest eligible step, no fault), so a shortened or
//! simplified log is still a valid run: that is what shrinking edits.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub struct Chooser {
    source: Source,
    log: Vec<u32>,
}

enum Source {
    Seeded(StdRng),
    Replay { decisions: Vec<u32>, next: usize },
}

impl Chooser {
    /// Draws from a generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self { source: Source::Seeded(StdRng::seed_from_u64(seed)), log: Vec::new() }
    }

    /// Reads `decisions` back (then the simplest choices).
    pub fn replay(decisions: Vec<u32>) -> Self {
        Self { source: Source::Replay { decisions, next: 0 }, log: Vec::new() }
    }

    /// A number in `0..n` (`n` ≥ 1); 0 is always the simplest choice.
    pub fn draw(&mut self, n: u32) -> u32 {
        let n = n.max(1);
        let v = match &mut self.source {
            Source::Seeded(rng) => rng.random_range(0..n),
            Source::Replay { decisions, next } => {
                let v = decisions.get(*next).copied().unwrap_or(0);
                *next += 1;
                v % n
            }
        };
        self.log.push(v);
        v
    }

    /// True with probability `p` (0 is "no").
    pub fn chance(&mut self, p: f64) -> bool {
        const SCALE: u32 = 1_000_000;
        let threshold = SCALE - (p.clamp(0.0, 1.0) * f64::from(SCALE)) as u32;
        self.draw(SCALE) >= threshold
    }

    /// The decisions made so far.
    pub fn log(&self) -> &[u32] {
        &self.log
    }

    pub fn into_log(self) -> Vec<u32> {
        self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_replays_and_runs_out_into_the_simplest_choices() {
        let mut a = Chooser::seeded(7);
        let drawn: Vec<u32> = (0..20).map(|i| a.draw(3 + i)).collect();
        let mut b = Chooser::replay(a.log().to_vec());
        let replayed: Vec<u32> = (0..20).map(|i| b.draw(3 + i)).collect();
        assert_eq!(drawn, replayed);
        assert_eq!(b.draw(5), 0, "past the log: the simplest choice");
        assert!(!b.chance(0.9), "0 is never a fault");
        assert_eq!(b.log().len(), 22);
        let mut c = Chooser::seeded(8);
        assert_ne!(drawn, (0..20).map(|i| c.draw(3 + i)).collect::<Vec<_>>());
        // Values out of range (a hand-edited or shrunk log) wrap.
        assert_eq!(Chooser::replay(vec![7]).draw(5), 2);
    }
}
