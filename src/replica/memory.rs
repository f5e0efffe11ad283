//! Canister linear memory with per-execution commit and rollback.
//!
//! The committed state of a canister's heap lives in a memfd. The live
//! memory Wasm runs on is a `MAP_PRIVATE` mapping of that memfd, so a write
//! during an execution copies the page into private anonymous memory and the
//! memfd keeps the committed bytes. How a commit finds what the execution
//! wrote is the [`HeapTracking`], chosen once per process:
//!
//! - [`HeapTracking::Written`] (Linux 6.7+, see `write_tracking`): the
//!   kernel reports the pages written since they were write-protected.
//!   A page written in one execution is copied and protected again; a page
//!   written in two becomes *hot*: left unprotected (no fault per
//!   execution), compared at each commit, protected again after two
//!   commits without a change. **commit** copies what was written or
//!   changed; **rollback** drops the private copies that differ from the
//!   commit (`MADV_DONTNEED`: the next access reads the memfd again). Both
//!   cost O(pages written + hot pages) plus the kernel's walk over the
//!   mapped page tables; pages written long ago cost nothing.
//! - [`HeapTracking::Compare`] (the fallback): **commit** reads
//!   `/proc/self/pagemap` for the live range; every present page that is
//!   not file-backed was written at some point, and is compared with the
//!   committed bytes (a second, `MAP_SHARED` view of the memfd) and copied
//!   over if it differs. Pages unchanged for [`COLD_AFTER_COMMITS`] commits
//!   go back to the memfd, so the private set stays the hot working set.
//!   **rollback** maps the memfd over the live range again (`MAP_FIXED`).
//!   A commit costs a compare per hot page.
//!
//! In both, growth during the execution is undone at rollback (the grown
//! range goes back to the inaccessible reservation, the memfd shrinks so
//! regrowth reads zeros).
//!
//! Wasmtime creates memories through the engine-wide [`CanisterMemoryCreator`],
//! which is not told which instance a memory is for. Canisters are
//! instantiated synchronously on the executing thread, so the replica puts the
//! canister's [`CanisterMemory`] in a thread-local slot ([`with_memory_slot`])
//! for the duration of the instantiation. A component that asks for a second
//! memory gets an error: IC canisters have at most one memory.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

use super::write_tracking::{self, WriteTracker};

/// Page granularity of the dirty tracking (the OS page).
pub const PAGE: usize = 4096;
/// A private page unchanged for this many commits goes back to the memfd
/// (comparing) or under write protection (write tracking).
pub const COLD_AFTER_COMMITS: u8 = 8;
/// What a state directory stores of a heap as one record: the page a
/// commit copies (64 KiB blocks cost 8-16× the bytes per small update;
/// measured in `benches/durable.rs`).
pub const PERSIST_BLOCK: usize = PAGE;

/// Write tracking, per page: protected (a write is reported once)...
const PROTECTED: u8 = 0;
/// ...protected, and written in an earlier execution...
const WRITTEN_ONCE: u8 = 1;
/// ...or hot: left unprotected, compared at every commit; `HOT + n` after
/// `n` commits without a change.
const HOT: u8 = 2;
/// A hot page unchanged for this many commits is protected again.
const HOT_COLD_AFTER_COMMITS: u8 = 2;

const PM_PRESENT: u64 = 1 << 63;
const PM_FILE_OR_SHARED: u64 = 1 << 61;

/// Errors of the memory machinery (the host's fault, not the canister's).
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("canister memory: {op}: {source}")]
    Os {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("canister memory: {0}")]
    Limit(String),
    #[error("canister memory: write tracking is unavailable: {0}")]
    TrackingUnavailable(&'static str),
}

/// How a commit finds the pages an execution wrote (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapTracking {
    /// The kernel reports written pages: O(pages written).
    Written,
    /// Compare every private page with its committed copy: O(hot pages).
    Compare,
}

impl HeapTracking {
    /// The environment variable that forces a mechanism (`written` or
    /// `compare`), for side-by-side measurements.
    pub const ENV: &'static str = "WW_HEAP_TRACKING";

    /// What this process uses: [`HeapTracking::Written`] where the kernel
    /// supports it, unless [`HeapTracking::ENV`] says `compare`. Decided
    /// (and logged) once.
    pub fn host_default() -> HeapTracking {
        static CHOSEN: OnceLock<HeapTracking> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let forced = std::env::var(Self::ENV).ok();
            if forced.as_deref() == Some("compare") {
                tracing::debug!("canister heaps: comparing hot pages at commit ({}=compare)", Self::ENV);
                return HeapTracking::Compare;
            }
            match write_tracking::tracker() {
                Ok(_) => {
                    tracing::debug!("canister heaps: kernel write tracking (userfaultfd async write-protect, PAGEMAP_SCAN)");
                    HeapTracking::Written
                }
                Err(why) => {
                    tracing::debug!("canister heaps: comparing hot pages at commit (no write tracking: {why})");
                    HeapTracking::Compare
                }
            }
        })
    }
}

fn os(op: &'static str) -> MemoryError {
    MemoryError::Os {
        op,
        source: io::Error::last_os_error(),
    }
}

/// A canister's heap: shared by the replica (commit/rollback) and the
/// wasmtime instance currently running on it.
#[derive(Clone)]
pub struct CanisterMemory {
    inner: Arc<Mutex<State>>,
}

struct State {
    /// Start of the reservation: `capacity + guard` bytes of address space.
    base: *mut u8,
    reserved: usize,
    capacity: usize,
    /// Live size in bytes (what Wasm sees).
    size: usize,
    committed_size: usize,
    memfd: File,
    file_size: usize,
    /// MAP_SHARED view of the memfd: the committed bytes.
    committed: *mut u8,
    /// The kernel's write tracking, or `None` to compare pages.
    tracker: Option<&'static WriteTracker>,
    /// Per page: how many commits in a row a private page stayed unchanged
    /// (comparing only).
    streak: Vec<u8>,
    /// Whether an instance currently has this memory attached.
    attached: bool,
    /// Blocks ([`PERSIST_BLOCK`]) committed since the state directory last
    /// took them (`None`: all of them, a memory not stored yet).
    since_cut: Option<std::collections::BTreeSet<u32>>,
    /// Growth is refused (`memory.grow` returns -1): the simulator's R2.
    refuse_growth: bool,
}

// SAFETY: the raw pointers are to mappings owned by this State; every access
// goes through the mutex or through wasmtime, which accesses the live range
// only while it runs the canister's single execution.
unsafe impl Send for State {}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: unmapping the two reservations this State created.
        unsafe {
            libc::munmap(self.base.cast(), self.reserved);
            libc::munmap(self.committed.cast(), self.capacity);
        }
    }
}

impl CanisterMemory {
    /// A new, empty memory that may grow to `capacity` bytes (rounded up to
    /// pages), tracked as [`HeapTracking::host_default`] says.
    pub fn new(capacity: usize, guard: usize) -> Result<Self, MemoryError> {
        Self::with_tracking(capacity, guard, HeapTracking::host_default())
    }

    /// [`CanisterMemory::new`] with a given mechanism; `Written` fails where
    /// the kernel lacks it.
    pub fn with_tracking(capacity: usize, guard: usize, tracking: HeapTracking) -> Result<Self, MemoryError> {
        let tracker = match tracking {
            HeapTracking::Written => Some(write_tracking::tracker().map_err(MemoryError::TrackingUnavailable)?),
            HeapTracking::Compare => None,
        };
        let capacity = capacity.next_multiple_of(PAGE);
        let reserved = capacity + guard.next_multiple_of(PAGE);
        // SAFETY: plain anonymous reservations; the results are checked.
        let (base, committed, fd) = unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(os("reserve"));
            }
            let fd = libc::memfd_create(c"ww-canister-heap".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                libc::munmap(base, reserved);
                return Err(os("memfd_create"));
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let committed = libc::mmap(
                std::ptr::null_mut(),
                capacity,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            );
            if committed == libc::MAP_FAILED {
                libc::munmap(base, reserved);
                return Err(os("map committed view"));
            }
            (base.cast::<u8>(), committed.cast::<u8>(), fd)
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(State {
                base,
                reserved,
                capacity,
                size: 0,
                committed_size: 0,
                memfd: File::from(fd),
                file_size: 0,
                committed,
                tracker,
                streak: Vec::new(),
                attached: false,
                since_cut: None,
                refuse_growth: false,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// While set, growing fails (`memory.grow` returns -1), as the IC may
    /// refuse to grow a canister without a memory allocation.
    pub fn refuse_growth(&self, refuse: bool) {
        self.lock().refuse_growth = refuse;
    }

    /// Live size in bytes.
    pub fn size(&self) -> usize {
        self.lock().size
    }

    /// Committed size in bytes.
    pub fn committed_size(&self) -> usize {
        self.lock().committed_size
    }

    /// Makes the live state the committed state.
    pub fn commit(&self) -> Result<CommitStats, MemoryError> {
        self.lock().commit()
    }

    /// Throws away everything since the last commit.
    pub fn rollback(&self) -> Result<(), MemoryError> {
        self.lock().rollback()
    }

    /// Feeds the committed heap to `hash` in place (no copy).
    pub fn hash_committed(&self, hash: &mut blake3::Hasher) {
        let st = self.lock();
        // SAFETY: as in `committed_bytes`; the lock keeps the view mapped.
        let bytes = unsafe { std::slice::from_raw_parts(st.committed, st.committed_size.min(st.file_size)) };
        hash.update(&(bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }

    /// A copy of the committed heap (a canister snapshot's memory).
    pub fn committed_bytes(&self) -> Vec<u8> {
        let st = self.lock();
        // SAFETY: the committed view covers the memfd, which is at least
        // `committed_size` bytes long (commit extends it).
        unsafe { std::slice::from_raw_parts(st.committed, st.committed_size.min(st.file_size)).to_vec() }
    }

    /// Makes `bytes` the committed heap and the live one (loading a canister
    /// snapshot into a fresh memory, before an instance attaches).
    pub fn load_committed(&self, bytes: &[u8]) -> Result<(), MemoryError> {
        let mut st = self.lock();
        if bytes.len() > st.capacity {
            return Err(MemoryError::Limit(format!("a heap of {} bytes exceeds the limit of {} bytes", bytes.len(), st.capacity)));
        }
        if st.attached || st.size != 0 {
            return Err(MemoryError::Limit("only a fresh, detached heap can be loaded".into()));
        }
        let end = bytes.len().next_multiple_of(PAGE);
        st.ensure_file_size(end)?;
        st.memfd
            .write_all_at(bytes, 0)
            .map_err(|source| MemoryError::Os { op: "write memfd", source })?;
        st.grow_to(bytes.len())?;
        st.committed_size = bytes.len();
        Ok(())
    }

    /// The committed blocks changed since the last call (every non-zero
    /// block of a memory never taken before), for the state directory.
    /// Call between executions.
    pub fn take_changed_blocks(&self) -> ChangedBlocks {
        let mut st = self.lock();
        let size = st.committed_size.min(st.file_size);
        let blocks_total = size.div_ceil(PERSIST_BLOCK) as u32;
        let (all, wanted): (bool, Vec<u32>) = match st.since_cut.replace(Default::default()) {
            None => (true, (0..blocks_total).collect()),
            Some(set) => (false, set.into_iter().filter(|b| *b < blocks_total).collect()),
        };
        let mut blocks = Vec::with_capacity(wanted.len());
        for b in wanted {
            let start = b as usize * PERSIST_BLOCK;
            let end = (start + PERSIST_BLOCK).min(size);
            // SAFETY: `[start, end)` is inside the committed view and the
            // memfd (`size` is at most the file size).
            let bytes = unsafe { std::slice::from_raw_parts(st.committed.add(start), end - start) };
            if all && bytes.iter().all(|b| *b == 0) {
                continue;
            }
            blocks.push((b, bytes.to_vec()));
        }
        ChangedBlocks { all, size: size as u64, blocks }
    }

    /// Forgets the changes so far: the state directory holds this memory
    /// as it is (after loading it from there).
    pub fn mark_stored(&self) {
        self.lock().since_cut = Some(Default::default());
    }

    /// Grows the live memory outside of Wasm (benchmarks and tests).
    #[doc(hidden)]
    pub fn grow_for_bench(&self, bytes: usize) -> Result<(), MemoryError> {
        self.lock().grow_to(bytes)
    }

    /// Writes into the live memory outside of Wasm (benchmarks and tests).
    #[doc(hidden)]
    pub fn write_for_bench(&self, at: usize, bytes: &[u8]) {
        let st = self.lock();
        if at + bytes.len() <= st.size {
            // SAFETY: inside the live range, checked above.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), st.base.add(at), bytes.len()) };
        }
    }

    /// Marks the memory as not used by any instance (its instance is gone).
    pub fn detach(&self) {
        self.lock().attached = false;
    }
}

/// A heap's committed blocks changed since the state directory last took
/// them.
#[derive(Debug, Default)]
pub struct ChangedBlocks {
    /// The memory was never taken: `blocks` is all of it (all-zero blocks
    /// left out), and whatever was stored before is stale.
    pub all: bool,
    /// Committed size in bytes.
    pub size: u64,
    /// (block index, its bytes; the last block may be short).
    pub blocks: Vec<(u32, Vec<u8>)>,
}

fn mark_block(since_cut: &mut Option<std::collections::BTreeSet<u32>>, page: usize) {
    if let Some(set) = since_cut {
        set.insert((page * PAGE / PERSIST_BLOCK) as u32);
    }
}

/// What a commit did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommitStats {
    /// Private pages examined (comparing), or reported written.
    pub private_pages: usize,
    /// Pages whose bytes changed and were written to the committed state.
    pub dirty_pages: usize,
}

impl State {
    fn ensure_file_size(&mut self, bytes: usize) -> Result<(), MemoryError> {
        if bytes > self.file_size {
            self.memfd
                .set_len(bytes as u64)
                .map_err(|source| MemoryError::Os { op: "grow memfd", source })?;
            self.file_size = bytes;
        }
        Ok(())
    }

    /// Maps the memfd privately over `[from, to)` of the live range.
    fn map_private(&mut self, from: usize, to: usize) -> Result<(), MemoryError> {
        if to <= from {
            return Ok(());
        }
        // SAFETY: the range is inside our reservation; MAP_FIXED replaces
        // whatever was mapped there, which only we manage.
        let p = unsafe {
            libc::mmap(
                self.base.add(from).cast(),
                to - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                self.memfd.as_raw_fd(),
                from as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os("map live range"));
        }
        if let Some(tracker) = self.tracker {
            // A new mapping starts untracked: register it.
            tracker
                .register(self.base as usize + from, to - from)
                .map_err(|source| MemoryError::Os { op: "register for write tracking", source })?;
        }
        Ok(())
    }

    fn unmap_to_reserved(&mut self, from: usize, to: usize) -> Result<(), MemoryError> {
        if to <= from {
            return Ok(());
        }
        // SAFETY: as in map_private; back to an inaccessible reservation.
        let p = unsafe {
            libc::mmap(
                self.base.add(from).cast(),
                to - from,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os("release live range"));
        }
        Ok(())
    }

    fn grow_to(&mut self, new_size: usize) -> Result<(), MemoryError> {
        if new_size > self.capacity {
            return Err(MemoryError::Limit(format!(
                "cannot grow to {new_size} bytes (limit {})",
                self.capacity
            )));
        }
        if new_size <= self.size {
            return Ok(());
        }
        if self.refuse_growth {
            return Err(MemoryError::Limit("the subnet refused to grow the heap (a simulated memory shortage)".into()));
        }
        let new_pages_end = new_size.next_multiple_of(PAGE);
        self.ensure_file_size(new_pages_end)?;
        self.map_private(self.size, new_pages_end)?;
        self.size = new_size;
        Ok(())
    }

    fn commit(&mut self) -> Result<CommitStats, MemoryError> {
        let pages = self.size.div_ceil(PAGE);
        self.ensure_file_size(pages * PAGE)?;
        if self.streak.len() < pages {
            self.streak.resize(pages, 0);
        }
        if let Some(tracker) = self.tracker {
            return self.commit_written(tracker, pages);
        }
        let mut stats = CommitStats::default();
        let entries = read_pagemap(self.base as usize, pages)?;
        let mut cold: Vec<usize> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e & PM_PRESENT == 0 || e & PM_FILE_OR_SHARED != 0 {
                continue;
            }
            stats.private_pages += 1;
            // SAFETY: page i is inside both the live range and the committed
            // view (the memfd is at least `pages` pages long).
            let (live, committed) = unsafe {
                (
                    std::slice::from_raw_parts(self.base.add(i * PAGE), PAGE),
                    std::slice::from_raw_parts_mut(self.committed.add(i * PAGE), PAGE),
                )
            };
            if live != committed {
                committed.copy_from_slice(live);
                stats.dirty_pages += 1;
                self.streak[i] = 0;
                mark_block(&mut self.since_cut, i);
            } else {
                self.streak[i] = self.streak[i].saturating_add(1);
                if self.streak[i] >= COLD_AFTER_COMMITS {
                    cold.push(i);
                    self.streak[i] = 0;
                }
            }
        }
        for i in cold {
            // SAFETY: dropping a private copy that equals the committed page;
            // the next access reads the memfd page again.
            unsafe {
                libc::madvise(self.base.add(i * PAGE).cast(), PAGE, libc::MADV_DONTNEED);
            }
        }
        self.committed_size = self.size;
        Ok(stats)
    }

    /// Commit with the kernel's write tracking. The scan reports the pages
    /// written since they were last protected, and the hot pages: pages
    /// written in two executions are left unprotected (so that a page
    /// written in most executions, the stack or the allocator's, does not
    /// fault every time). A page the kernel saw written is copied, and
    /// protected again the first time; a hot page is compared and copied
    /// if it changed, and is protected again after [`COLD_AFTER_COMMITS`]
    /// commits without a change. Pages written once (an argument buffer)
    /// cost nothing at later commits.
    fn commit_written(&mut self, tracker: &WriteTracker, pages: usize) -> Result<CommitStats, MemoryError> {
        let mut stats = CommitStats::default();
        let (base, committed) = (self.base as usize, self.committed);
        let streak = &mut self.streak;
        let since_cut = &mut self.since_cut;
        let mut protect_again = PageRuns::default();
        tracker
            .written(base, pages * PAGE, |run| {
                for at in run.step_by(PAGE) {
                    let i = (at - base) / PAGE;
                    stats.private_pages += 1;
                    // SAFETY: page i is inside the live range (what was
                    // scanned) and the committed view (the memfd is at least
                    // `pages` pages long).
                    let (live, stored) = unsafe {
                        (
                            std::slice::from_raw_parts(at as *const u8, PAGE),
                            std::slice::from_raw_parts_mut(committed.add(i * PAGE), PAGE),
                        )
                    };
                    match streak[i] {
                        // Written while protected, for the first time:
                        // copy and protect again.
                        PROTECTED => {
                            stored.copy_from_slice(live);
                            stats.dirty_pages += 1;
                            mark_block(since_cut, i);
                            streak[i] = WRITTEN_ONCE;
                            protect_again.push(i);
                        }
                        // Written while protected, a second time: copy; it
                        // stays unprotected from now on.
                        WRITTEN_ONCE => {
                            stored.copy_from_slice(live);
                            stats.dirty_pages += 1;
                            mark_block(since_cut, i);
                            streak[i] = HOT;
                        }
                        _ if live != stored => {
                            stored.copy_from_slice(live);
                            stats.dirty_pages += 1;
                            mark_block(since_cut, i);
                            streak[i] = HOT;
                        }
                        s if s - HOT >= HOT_COLD_AFTER_COMMITS => {
                            streak[i] = PROTECTED;
                            protect_again.push(i);
                        }
                        s => streak[i] = s + 1,
                    }
                }
            })
            .map_err(|source| MemoryError::Os { op: "scan written pages", source })?;
        for run in protect_again.runs() {
            tracker
                .protect(base + run.start * PAGE, run.len() * PAGE)
                .map_err(|source| MemoryError::Os { op: "protect pages again", source })?;
        }
        self.committed_size = self.size;
        Ok(stats)
    }

    fn rollback(&mut self) -> Result<(), MemoryError> {
        let committed_end = self.committed_size.next_multiple_of(PAGE);
        let live_end = self.size.next_multiple_of(PAGE);
        if live_end > committed_end {
            self.unmap_to_reserved(committed_end, live_end)?;
            // Bytes past the committed size must read as zero on regrowth.
            self.memfd
                .set_len(committed_end as u64)
                .map_err(|source| MemoryError::Os { op: "shrink memfd", source })?;
            self.file_size = committed_end;
        }
        if let Some(tracker) = self.tracker {
            // Drop the private copies that differ from the commit (a hot page
            // the execution did not change stays, and stays hot).
            let (base, committed) = (self.base as usize, self.committed);
            let committed_pages = committed_end / PAGE;
            if self.streak.len() < committed_pages {
                self.streak.resize(committed_pages, 0);
            }
            let streak = &mut self.streak;
            if streak.len() > committed_pages {
                streak[committed_pages..].iter_mut().for_each(|s| *s = 0);
            }
            let mut changed = PageRuns::default();
            tracker
                .written(base, committed_end, |run| {
                    for at in run.step_by(PAGE) {
                        let i = (at - base) / PAGE;
                        // SAFETY: as in commit_written.
                        // Only a hot page can be reported unchanged.
                        let hot = streak[i] >= HOT;
                        if hot && unsafe { std::slice::from_raw_parts(at as *const u8, PAGE) == std::slice::from_raw_parts(committed.add(i * PAGE), PAGE) } {
                            continue;
                        }
                        if hot {
                            streak[i] = PROTECTED;
                        }
                        changed.push(i);
                    }
                })
                .map_err(|source| MemoryError::Os { op: "scan written pages", source })?;
            for run in changed.runs() {
                // SAFETY: a run of our live range; dropping private copies
                // makes the next access read the memfd.
                if unsafe { libc::madvise(self.base.add(run.start * PAGE).cast(), run.len() * PAGE, libc::MADV_DONTNEED) } != 0 {
                    return Err(os("drop written pages"));
                }
            }
            self.size = self.committed_size;
            return Ok(());
        }
        self.map_private(0, committed_end)?;
        self.size = self.committed_size;
        self.streak.iter_mut().for_each(|s| *s = 0);
        Ok(())
    }
}

/// Page indices gathered in ascending order, as contiguous runs.
#[derive(Default)]
struct PageRuns(Vec<std::ops::Range<usize>>);

impl PageRuns {
    fn push(&mut self, page: usize) {
        match self.0.last_mut() {
            Some(run) if run.end == page => run.end += 1,
            _ => self.0.push(page..page + 1),
        }
    }

    fn runs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.0.iter().cloned()
    }
}

fn pagemap() -> Result<&'static File, MemoryError> {
    static PAGEMAP: OnceLock<Result<File, String>> = OnceLock::new();
    PAGEMAP
        .get_or_init(|| File::open("/proc/self/pagemap").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| MemoryError::Os {
            op: "open /proc/self/pagemap",
            source: io::Error::other(e.clone()),
        })
}

fn read_pagemap(addr: usize, pages: usize) -> Result<Vec<u64>, MemoryError> {
    let mut buf = vec![0u8; pages * 8];
    let offset = (addr / PAGE * 8) as u64;
    pagemap()?
        .read_exact_at(&mut buf, offset)
        .map_err(|source| MemoryError::Os { op: "read pagemap", source })?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

// ---- wasmtime integration -------------------------------------------------------

thread_local! {
    static SLOT: RefCell<Option<CanisterMemory>> = const { RefCell::new(None) };
}

/// Runs `f` (an instantiation) with `memory` as the memory the next
/// `new_memory` on this thread hands out.
pub fn with_memory_slot<R>(memory: &CanisterMemory, f: impl FnOnce() -> R) -> R {
    SLOT.with(|s| *s.borrow_mut() = Some(memory.clone()));
    let r = f();
    SLOT.with(|s| *s.borrow_mut() = None);
    r
}

/// The engine-wide memory creator for canister instances.
pub struct CanisterMemoryCreator;

// SAFETY: the memories returned never move (fixed reservation), report their
// size and capacity truthfully, and keep `capacity + guard` reserved.
unsafe impl MemoryCreator for CanisterMemoryCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        _reserved_size_in_bytes: Option<usize>,
        _guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let memory = SLOT
            .with(|s| s.borrow_mut().take())
            .ok_or("a canister may declare at most one memory")?;
        {
            let mut st = memory.lock();
            if st.attached {
                return Err("canister memory is already attached to an instance".into());
            }
            // A fresh instance sees exactly the committed state.
            st.rollback().map_err(|e| e.to_string())?;
            if st.size < minimum {
                st.grow_to(minimum).map_err(|e| e.to_string())?;
            }
            st.attached = true;
        }
        Ok(Box::new(LiveMemory(memory)))
    }
}

struct LiveMemory(CanisterMemory);

// SAFETY: see CanisterMemoryCreator.
unsafe impl LinearMemory for LiveMemory {
    fn byte_size(&self) -> usize {
        self.0.lock().size
    }
    fn byte_capacity(&self) -> usize {
        self.0.lock().capacity
    }
    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.0
            .lock()
            .grow_to(new_size)
            .map_err(|e| wasmtime::format_err!("{e}"))
    }
    fn as_ptr(&self) -> *mut u8 {
        self.0.lock().base
    }
}

impl Drop for LiveMemory {
    fn drop(&mut self) {
        self.0.detach();
    }
}

#[cfg(test)]
mod tests;
