//! The replica in a state directory: durable, crash-safe cuts of its
//! whole state, and "acknowledged means durable".
//!
//! A **cut** is taken at a quiescent point: the scheduler stops starting
//! jobs ([`Inner::quiesce`]), the running ones finish and apply their
//! effects, and `form::capture` takes everything changed since the last
//! cut (canister records whose bytes changed, heap blocks and stable pages
//! committed since, new modules, chunks and snapshots, and what uploads
//! wrote into uploaded snapshots, `uploads`) while execution waits; then
//! execution resumes and the persister thread writes the cut in one LMDB
//! transaction (`db`) and syncs it. A crash leaves the directory at the
//! last synced cut: a prefix of the committed executions with their
//! queues and call contexts, never torn.
//!
//! **Acknowledged means durable**: whoever answers a caller outside the
//! replica (the control socket, pid0's session) first awaits
//! [`Replica::persisted`], which resolves once a cut *started after the
//! call* is synced. Waiters arriving while a cut is written share the next
//! one (group commit): one sync serves every reply of a short round.
//! Without a state directory `persisted` resolves at once.
//!
//! Invariants: the persister is the only writer; cuts are numbered and
//! synced in order; after a failed write nothing is acknowledged again
//! (the in-memory change sets were consumed), every later `persisted`
//! fails with the first error.

mod db;
mod form;
mod uploads;

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use db::{FORMAT, StateDirError, encode_record};

use super::Replica;
use super::scheduler::Inner;

/// A cut a waiter asked for waits at most this long for as many waiters
/// as the recent cuts served (group commit: under concurrent load the
/// next callers' replies are moments away; a lone caller never waits).
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_micros(500);
/// How many recent cuts the expected group size remembers.
const GROUP_MEMORY: usize = 8;

/// A cut is taken at least this often while canisters run (timers,
/// heartbeats and inter-canister traffic persist without a caller asking).
pub const BACKGROUND_CUT_INTERVAL: Duration = Duration::from_secs(1);

/// The persister's progress, shared with the waiters.
#[derive(Default)]
struct Progress {
    /// Cuts begun, captured (set under the state lock, at the capture)
    /// and synced.
    started: u64,
    captured: u64,
    synced: u64,
    /// The highest cut a waiter needs.
    wanted: u64,
    waiters: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
    failed: Option<String>,
}

/// The shared half of the state directory: what [`Replica::persisted`]
/// talks to.
pub(super) struct Durability {
    progress: Mutex<Progress>,
    wake: Condvar,
    /// Cuts written and their time, for `ww` statistics.
    stats: Mutex<CutStats>,
}

/// What the persister has done.
#[derive(Clone, Copy, Debug, Default)]
pub struct CutStats {
    pub cuts: u64,
    pub bulk_bytes: u64,
    /// Time execution was paused for captures, and spent writing.
    pub paused: Duration,
    pub writing: Duration,
}

impl Durability {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver resolved once a cut begun after now is synced.
    fn wait_for_next_cut(&self) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        let mut p = self.lock();
        if let Some(why) = &p.failed {
            let _ = tx.send(Err(why.clone()));
            return rx;
        }
        // A reply produced before this call is in every cut captured
        // from now on.
        let target = p.captured + 1;
        p.wanted = p.wanted.max(target);
        p.waiters.push((target, tx));
        drop(p);
        self.wake.notify_all();
        rx
    }
}

impl Replica {
    /// A replica kept in `dir` (created if new): restores what the
    /// directory holds, then writes a cut whenever [`Replica::persisted`]
    /// asks and in the background. Refuses a directory of another format,
    /// a damaged one (naming the file) or one another process uses.
    pub fn open_durable(engine: crate::engine::Engine, config: super::ReplicaConfig, dir: &Path) -> Result<Self, StateDirError> {
        if config.clock != super::Clock::Wall {
            return Err(StateDirError::Restore { path: dir.to_path_buf(), what: "a state directory needs the wall clock (not rounds mode)".into() });
        }
        let began = Instant::now();
        let replica_dir = dir.join("replica");
        let db = db::StateDb::open(&replica_dir)?;
        let replica = Replica::new(engine, config).map_err(|e| StateDirError::Restore { path: replica_dir.clone(), what: e.to_string() })?;
        let loaded = db.load()?;
        let (canisters, stored) = form::restore(&replica, loaded, db.file())?;
        tracing::info!(dir = %dir.display(), canisters, elapsed_us = began.elapsed().as_micros() as u64, "replica state restored");
        let durability = Arc::new(Durability { progress: Mutex::new(Progress::default()), wake: Condvar::new(), stats: Mutex::new(CutStats::default()) });
        let _ = replica.inner.durability.set(durability.clone());
        let weak = Arc::downgrade(&replica.inner);
        std::thread::Builder::new()
            .name("ww-persister".into())
            .spawn(move || persister(weak, durability, db, stored))
            .map_err(|source| StateDirError::Io { path: replica_dir, source })?;
        Ok(replica)
    }

    /// Resolves once everything this replica did before the call is in the
    /// state directory (at once without one). Await it before
    /// acknowledging anything to a caller outside the replica.
    pub async fn persisted(&self) -> Result<(), String> {
        let Some(d) = self.inner.durability.get() else { return Ok(()) };
        let rx = d.wait_for_next_cut();
        rx.await.unwrap_or_else(|_| Err("the replica stopped before its state was written".into()))
    }

    /// Asks for a cut soon without waiting for it (the network's messages
    /// leave once one holds them). Nothing without a state directory.
    pub fn request_cut(&self) {
        let Some(d) = self.inner.durability.get() else {
            return;
        };
        let mut p = d.lock();
        p.wanted = p.wanted.max(p.captured + 1);
        drop(p);
        d.wake.notify_all();
    }

    /// Whether the replica keeps a state directory.
    pub fn is_durable(&self) -> bool {
        self.inner.durability.get().is_some()
    }

    /// What the persister has done so far.
    pub fn cut_stats(&self) -> CutStats {
        self.inner.durability.get().map(|d| *d.stats.lock().unwrap_or_else(|e| e.into_inner())).unwrap_or_default()
    }
}

/// The persister thread: takes and writes cuts until the replica is gone.
fn persister(weak: Weak<Inner>, durability: Arc<Durability>, db: db::StateDb, mut stored: form::Stored) {
    let mut last_jobs = u64::MAX;
    // Waiters the recent cuts served (the expected group).
    let mut groups: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    loop {
        // Wait until a waiter needs a cut, or the background interval.
        let background_due = {
            let mut p = durability.lock();
            let deadline = Instant::now() + BACKGROUND_CUT_INTERVAL;
            while p.wanted <= p.synced && p.failed.is_none() {
                let now = Instant::now();
                if now >= deadline || weak.strong_count() == 0 {
                    break;
                }
                p = durability.wake.wait_timeout(p, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
            }
            // Group commit: gather as many waiters as recent cuts served,
            // for at most the window.
            let expected = groups.iter().copied().max().unwrap_or(1);
            let gather_until = Instant::now() + GROUP_COMMIT_WINDOW;
            while p.wanted > p.synced && p.waiters.len() < expected && p.failed.is_none() {
                let now = Instant::now();
                if now >= gather_until {
                    break;
                }
                p = durability.wake.wait_timeout(p, gather_until - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
            }
            p.wanted <= p.synced
        };
        let Some(inner) = weak.upgrade() else { return };
        if durability.lock().failed.is_some() {
            drop(inner);
            std::thread::sleep(BACKGROUND_CUT_INTERVAL);
            continue;
        }
        let jobs = inner.jobs_run.load(std::sync::atomic::Ordering::SeqCst);
        if background_due && jobs == last_jobs {
            continue;
        }
        last_jobs = jobs;
        let seq = {
            let mut p = durability.lock();
            p.started += 1;
            p.started
        };
        let began = Instant::now();
        let cut = inner.quiesce(|st| {
            let cut = form::capture(st, &mut stored);
            durability.lock().captured = seq;
            cut
        });
        drop(inner);
        let paused = began.elapsed();
        let wrote = Instant::now();
        let result = db.write(&cut).map_err(|e| e.to_string());
        {
            let mut s = durability.stats.lock().unwrap_or_else(|e| e.into_inner());
            s.cuts += 1;
            s.bulk_bytes += cut.bulk_bytes() as u64;
            s.paused += paused;
            s.writing += wrote.elapsed();
        }
        if result.is_ok()
            && let Some(inner) = weak.upgrade()
            && let Some(router) = inner.remote.get()
        {
            // What the cut holds may leave the node now.
            router.synced();
        }
        let mut p = durability.lock();
        p.synced = seq;
        if let Err(why) = &result {
            tracing::error!(error = %why, "writing the state directory failed; nothing more is acknowledged");
            p.failed = Some(why.clone());
        }
        let failed = p.failed.is_some();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut p.waiters).into_iter().partition(|(target, _)| *target <= seq || failed);
        p.waiters = waiting;
        let p_waiting = p.waiters.len();
        drop(p);
        if !done.is_empty() {
            if groups.len() == GROUP_MEMORY {
                groups.pop_front();
            }
            // The group: who this cut served and who already waits for
            // the next (they made calls while it was written).
            groups.push_back(done.len() + p_waiting);
        }
        for (_, tx) in done {
            let _ = tx.send(result.clone());
        }
    }
}

/// A simulated replica's state directory (`ww sim`, fault N1): no
/// persister thread; a cut is a decision of the simulator, captured and
/// written (and synced) at once, between two steps, which are quiescent
/// points by construction. A crash is dropping the replica and this
/// handle; the restart is [`Replica::sim_open_durable`] on the same
/// directory.
pub struct SimStateDir {
    db: db::StateDb,
    stored: form::Stored,
}

impl Replica {
    /// A simulated replica kept in `dir`: restores what the directory
    /// holds (nothing when new). `config` must be simulated; its rounds
    /// clock starts where the simulator says (the stored time is a floor
    /// only for the wall clock).
    pub fn sim_open_durable(engine: crate::engine::Engine, config: super::ReplicaConfig, dir: &Path) -> Result<(Self, SimStateDir), StateDirError> {
        let replica_dir = dir.join("replica");
        if !config.simulated {
            return Err(StateDirError::Restore { path: replica_dir, what: "only a simulated replica takes its cuts when told".into() });
        }
        let db = db::StateDb::open(&replica_dir)?;
        let replica = Replica::new(engine, config).map_err(|e| StateDirError::Restore { path: replica_dir.clone(), what: e.to_string() })?;
        let loaded = db.load()?;
        let (_, stored) = form::restore(&replica, loaded, db.file())?;
        Ok((replica, SimStateDir { db, stored }))
    }

    /// Takes a cut of everything committed so far and writes it to `dir`.
    pub fn sim_cut(&self, dir: &mut SimStateDir) -> Result<(), StateDirError> {
        let cut = form::capture(&mut self.lock(), &mut dir.stored);
        dir.db.write(&cut)?;
        if let Some(router) = self.inner.remote.get() {
            router.synced();
        }
        Ok(())
    }
}
