//! N1: the node crashes and restarts from its state directory. A scenario
//! with `durable = true` runs its replica in a temporary state directory;
//! a cut (what the persister writes in a real node) is a decision of the
//! chooser between two steps, and an ingress answer counts as acknowledged
//! only once a cut after it is written (a node answers outside callers only
//! after `Replica::persisted`). A crash drops the replica without a last
//! cut; the restart restores the directory in a fresh replica.
//!
//! Invariant I5 (ww's durability promise): the restored replica is exactly
//! the last cut — the same state digest, every heap and stable memory
//! included — so every acknowledged answer is reflected in it; the system
//! checker rolls back to what it had seen at that cut, and every call the
//! cut holds must still get exactly one response (I1, I7).

use super::SimError;
use super::check::SystemCheck;
use crate::replica::durable::SimStateDir;
use crate::replica::{Replica, ReplicaConfig};

/// What the simulator knew when the last cut was written.
#[derive(Clone)]
pub struct AtCut {
    pub digest: [u8; 32],
    pub time_ns: u64,
    pub check: SystemCheck,
    /// The step the cut followed.
    pub step: usize,
}

/// The replica's state directory and its last cut.
pub struct Durable {
    dir: tempfile::TempDir,
    handle: Option<SimStateDir>,
    pub cuts: u64,
    pub last: Option<AtCut>,
}

impl Durable {
    /// A new replica in a new temporary state directory.
    pub fn open(engine: &crate::engine::Engine, config: ReplicaConfig) -> Result<(Replica, Self), SimError> {
        let dir = tempfile::Builder::new().prefix("ww-sim-state-").tempdir().map_err(|e| SimError::Replica(format!("a state directory: {e}")))?;
        let (replica, handle) = Replica::sim_open_durable(engine.clone(), config, dir.path()).map_err(|e| SimError::Replica(e.to_string()))?;
        replica.sim_record();
        Ok((replica, Self { dir, handle: Some(handle), cuts: 0, last: None }))
    }

    /// Writes a cut of `replica` now.
    pub fn cut(&mut self, replica: &Replica, check: &SystemCheck, step: usize) -> Result<(), SimError> {
        let handle = self.handle.as_mut().ok_or_else(|| SimError::Replica("the state directory is closed".into()))?;
        replica.sim_cut(handle).map_err(|e| SimError::Replica(format!("writing a cut: {e}")))?;
        self.cuts += 1;
        self.last = Some(AtCut { digest: replica.sim_digest(true), time_ns: replica.time(), check: check.clone(), step });
        Ok(())
    }

    /// Crashes `replica` (dropped without a last cut) and restores the
    /// directory in a new one whose clock starts at the last cut's time.
    /// Returns it with the digest it restored to (compare it with the last
    /// cut's before anything runs).
    pub fn restart(&mut self, engine: &crate::engine::Engine, replica: Replica, config: ReplicaConfig) -> Result<(Replica, [u8; 32]), SimError> {
        drop(replica);
        // The directory's lock and environment go with the handle.
        drop(self.handle.take());
        let (restored, handle) =
            Replica::sim_open_durable(engine.clone(), config, self.dir.path()).map_err(|e| SimError::Replica(format!("restoring the state directory: {e}")))?;
        self.handle = Some(handle);
        restored.sim_record();
        let digest = restored.sim_digest(true);
        Ok((restored, digest))
    }
}
