//! Canister stable memory with an undo journal.
//!
//! Stable memory is host memory (64 KiB pages) that survives upgrades. Every
//! write during an execution first saves the bytes it overwrites, so a trap
//! (or a query) undoes the execution's writes and growth in reverse order,
//! costing only what the execution touched.

/// Bytes per stable page.
pub const STABLE_PAGE: u64 = 64 << 10;

/// Why a stable memory access traps.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StableError {
    #[error("stable memory access out of bounds: offset {offset}, length {len}, size {size} bytes")]
    OutOfBounds { offset: u64, len: u64, size: u64 },
}

/// Stable memory, page by page: a page is allocated on its first write, so
/// growing costs nothing until the pages are used (an
/// `ic_stable_structures::MemoryManager` grows in 8 MiB buckets), and growth
/// never copies what is already there.
#[derive(Clone, Debug, Default)]
pub struct StableMemory {
    /// One entry per page; `None` is a page of zeros never written.
    pages: Vec<Option<Box<[u8]>>>,
    max_pages: u64,
    /// (offset, overwritten bytes), in write order.
    journal: Vec<(u64, Vec<u8>)>,
    /// Size in pages at the last commit, if the execution grew it.
    size_before: Option<usize>,
    /// Units ([`STORE_UNIT`]) the current execution wrote.
    touched: std::collections::BTreeSet<u32>,
    /// Units committed since the state directory last took them (`None`:
    /// all of them, a memory not stored yet).
    since_cut: Option<std::collections::BTreeSet<u32>>,
}

/// Unit `u` of `pages`, if its page was ever written.
fn unit(pages: &[Option<Box<[u8]>>], u: u32) -> Option<&[u8]> {
    let (page, within) = (u as usize / UNITS_PER_PAGE, u as usize % UNITS_PER_PAGE);
    pages.get(page)?.as_ref().map(|bytes| &bytes[within * STORE_UNIT..(within + 1) * STORE_UNIT])
}

/// Stable memory changed since the state directory last took it, in
/// [`STORE_UNIT`]s.
#[derive(Debug, Default)]
pub struct ChangedPages {
    /// The memory was never taken: `pages` is all of it (units of zeros
    /// left out), and whatever was stored before is stale.
    pub all: bool,
    /// Size in (64 KiB) pages.
    pub size: u64,
    /// (unit index, its 4 KiB).
    pub pages: Vec<(u32, Vec<u8>)>,
}

const PAGE: usize = STABLE_PAGE as usize;
/// What a state directory stores of stable memory as one record: 4 KiB
/// of a page (an update writing a few bytes writes 4 KiB, not 64).
pub const STORE_UNIT: usize = 4096;
const UNITS_PER_PAGE: usize = PAGE / STORE_UNIT;

impl StableMemory {
    pub fn new(max_pages: u64) -> Self {
        Self {
            max_pages,
            ..Self::default()
        }
    }

    pub fn set_max_pages(&mut self, max_pages: u64) {
        self.max_pages = max_pages;
    }

    /// Size in pages.
    pub fn size(&self) -> u64 {
        self.pages.len() as u64
    }

    pub fn size_bytes(&self) -> u64 {
        self.size() * STABLE_PAGE
    }

    /// Grows by `pages`; returns the previous size in pages, or -1.
    pub fn grow(&mut self, pages: u64) -> i64 {
        let old = self.size();
        let Some(new) = old.checked_add(pages).filter(|n| *n <= self.max_pages) else {
            return -1;
        };
        let Ok(new_len) = usize::try_from(new) else {
            return -1;
        };
        if self.size_before.is_none() {
            self.size_before = Some(self.pages.len());
        }
        self.pages.resize_with(new_len, || None);
        old as i64
    }

    fn check(&self, offset: u64, len: u64) -> Result<std::ops::Range<usize>, StableError> {
        let size = self.size_bytes();
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(offset as usize..end as usize),
            _ => Err(StableError::OutOfBounds { offset, len, size }),
        }
    }

    /// Copies `range` (in bounds) into `out`.
    fn copy_out(&self, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
        let mut at = range.start;
        while at < range.end {
            let (page, within) = (at / PAGE, at % PAGE);
            let n = (PAGE - within).min(range.end - at);
            match &self.pages[page] {
                Some(bytes) => out.extend_from_slice(&bytes[within..within + n]),
                None => out.resize(out.len() + n, 0),
            }
            at += n;
        }
    }

    /// Copies `bytes` into the memory at `start` (in bounds).
    fn copy_in(&mut self, start: usize, bytes: &[u8]) {
        let mut done = 0;
        while done < bytes.len() {
            let at = start + done;
            let (page, within) = (at / PAGE, at % PAGE);
            let n = (PAGE - within).min(bytes.len() - done);
            let page = self.pages[page].get_or_insert_with(|| vec![0u8; PAGE].into_boxed_slice());
            page[within..within + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    }

    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, StableError> {
        let r = self.check(offset, len)?;
        let mut out = Vec::with_capacity(r.len());
        self.copy_out(r, &mut out);
        Ok(out)
    }

    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StableError> {
        let r = self.check(offset, bytes.len() as u64)?;
        // Growth is undone by truncation, so bytes past the old size need no journal.
        let journaled_end = match self.size_before {
            Some(before) => r.end.min(before * PAGE),
            None => r.end,
        };
        if r.start < journaled_end {
            let mut old = Vec::with_capacity(journaled_end - r.start);
            self.copy_out(r.start..journaled_end, &mut old);
            self.journal.push((offset, old));
        }
        self.copy_in(r.start, bytes);
        if !r.is_empty() && self.since_cut.is_some() {
            self.touched.extend((r.start / STORE_UNIT) as u32..=((r.end - 1) / STORE_UNIT) as u32);
        }
        Ok(())
    }

    /// Keeps everything since the last commit.
    pub fn commit(&mut self) {
        self.journal.clear();
        self.size_before = None;
        if let Some(set) = &mut self.since_cut {
            set.append(&mut self.touched);
        }
    }

    /// The committed units changed since the last call (every non-zero
    /// unit of a memory never taken before), for the state directory.
    /// Call between executions.
    pub fn take_changed_pages(&mut self) -> ChangedPages {
        let size = self.pages.len();
        let (all, wanted): (bool, Vec<u32>) = match self.since_cut.replace(Default::default()) {
            None => (true, (0..(size * UNITS_PER_PAGE) as u32).collect()),
            Some(set) => (false, set.into_iter().filter(|u| (*u as usize) < size * UNITS_PER_PAGE).collect()),
        };
        let pages = wanted
            .into_iter()
            .filter_map(|u| unit(&self.pages, u).filter(|b| !all || b.iter().any(|x| *x != 0)).map(|b| (u, b.to_vec())))
            .collect();
        ChangedPages { all, size: size as u64, pages }
    }

    /// Every unit holding a non-zero byte (a snapshot's stable memory, as
    /// a state directory stores it); changes nothing.
    pub fn stored_units(&self) -> Vec<(u32, Vec<u8>)> {
        (0..(self.pages.len() * UNITS_PER_PAGE) as u32)
            .filter_map(|u| unit(&self.pages, u).filter(|b| b.iter().any(|x| *x != 0)).map(|b| (u, b.to_vec())))
            .collect()
    }

    /// Forgets the changes committed so far (the state directory holds
    /// them).
    pub fn mark_stored(&mut self) {
        self.since_cut = Some(Default::default());
    }

    /// Forgets what the state directory holds of this memory: the next cut
    /// takes all of it, replacing what was stored (a memory put in place of
    /// another, e.g. by loading a snapshot).
    pub fn mark_unstored(&mut self) {
        self.since_cut = None;
        self.touched.clear();
    }

    /// Stable memory of `size` pages holding `units` (the rest zeros), as
    /// the state directory stored it: nothing is changed since.
    pub fn from_stored(max_pages: u64, size: u64, units: Vec<(u32, Vec<u8>)>) -> Self {
        let mut memory = Self::new(max_pages);
        memory.pages.resize_with(size as usize, || None);
        for (index, bytes) in units {
            let (page, within) = (index as usize / UNITS_PER_PAGE, index as usize % UNITS_PER_PAGE);
            if let Some(slot) = memory.pages.get_mut(page)
                && bytes.len() == STORE_UNIT
            {
                let page = slot.get_or_insert_with(|| vec![0u8; PAGE].into_boxed_slice());
                page[within * STORE_UNIT..(within + 1) * STORE_UNIT].copy_from_slice(&bytes);
            }
        }
        memory.since_cut = Some(Default::default());
        memory
    }

    /// Undoes everything since the last commit.
    pub fn rollback(&mut self) {
        self.touched.clear();
        while let Some((offset, old)) = self.journal.pop() {
            self.copy_in(offset as usize, &old);
        }
        if let Some(before) = self.size_before.take() {
            self.pages.truncate(before);
        }
    }

    /// A copy of the committed state (staged changes undone in the copy).
    /// Feeds the committed content to `hash`, page by page in place (a
    /// page never written counts as its zeros: the same content hashes
    /// the same however it is stored).
    pub fn hash_committed(&self, hash: &mut blake3::Hasher) {
        if self.is_dirty() {
            return self.committed_copy().hash_committed(hash);
        }
        static ZEROS: [u8; PAGE] = [0; PAGE];
        hash.update(&(self.pages.len() as u64).to_le_bytes());
        for page in &self.pages {
            hash.update(page.as_deref().unwrap_or(&ZEROS));
        }
    }

    pub fn committed_copy(&self) -> StableMemory {
        let mut copy = self.clone();
        copy.rollback();
        copy
    }

    /// Whether anything changed since the last commit.
    pub fn is_dirty(&self) -> bool {
        !self.journal.is_empty() || self.size_before.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_undoes_writes_and_growth() {
        let mut m = StableMemory::new(100);
        assert_eq!(m.grow(1), 0);
        m.write(10, b"kept").unwrap();
        m.commit();
        m.write(10, b"gone").unwrap();
        m.write(12, b"XY").unwrap();
        assert_eq!(m.grow(2), 1);
        m.write(STABLE_PAGE * 2, b"new page").unwrap();
        m.rollback();
        assert_eq!(m.size(), 1);
        assert_eq!(m.read(10, 4).unwrap(), b"kept");
        assert_eq!(m.grow(1), 1);
        assert_eq!(m.read(STABLE_PAGE, 4).unwrap(), vec![0; 4], "regrown pages are zero");
    }

    #[test]
    fn writes_and_reads_across_pages_and_unwritten_pages_read_zero() {
        let mut m = StableMemory::new(10);
        assert_eq!(m.grow(4), 0);
        let data: Vec<u8> = (0..(STABLE_PAGE as usize + 100)).map(|i| (i % 251) as u8).collect();
        let at = STABLE_PAGE - 50;
        m.write(at, &data).unwrap();
        assert_eq!(m.read(at, data.len() as u64).unwrap(), data);
        assert_eq!(m.read(STABLE_PAGE * 3, 16).unwrap(), vec![0; 16], "a page never written");
        assert_eq!(m.read(at - 10, 10).unwrap(), vec![0; 10]);
        m.commit();
        // A rolled-back overwrite across the page boundary restores every byte.
        m.write(at + 10, &vec![0xAA; STABLE_PAGE as usize]).unwrap();
        m.rollback();
        assert_eq!(m.read(at, data.len() as u64).unwrap(), data);
        assert_eq!(m.size_bytes(), 4 * STABLE_PAGE);
    }

    #[test]
    fn bounds_and_limits() {
        let mut m = StableMemory::new(2);
        assert!(m.read(0, 1).is_err());
        assert_eq!(m.grow(3), -1);
        assert_eq!(m.grow(2), 0);
        assert!(m.write(STABLE_PAGE * 2 - 1, b"ab").is_err());
        assert!(m.read(u64::MAX, 2).is_err());
    }

    #[test]
    fn a_memory_put_in_place_of_a_stored_one_is_taken_whole() {
        let mut m = StableMemory::from_stored(4, 2, vec![(17, vec![5; STORE_UNIT])]);
        assert!(m.take_changed_pages().pages.is_empty(), "restored: stored as it is");
        m.mark_unstored();
        let changed = m.take_changed_pages();
        assert!(changed.all, "what was stored before is stale");
        assert_eq!(changed.pages.iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![17], "every unit holding data");
    }

    #[test]
    fn the_state_directory_takes_committed_units_and_restores_them() {
        let mut m = StableMemory::new(100);
        m.grow(2);
        m.write(70_000, b"hello").unwrap();
        m.commit();
        let all = m.take_changed_pages();
        assert!(all.all);
        assert_eq!(all.pages.iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![17]);
        m.write(5, b"gone").unwrap();
        m.rollback();
        m.write(4095, b"ab").unwrap();
        m.commit();
        let changed = m.take_changed_pages();
        assert!(!changed.all);
        assert_eq!(changed.pages.iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![0, 1]);
        assert!(m.take_changed_pages().pages.is_empty());
        let mut units = all.pages;
        units.extend(changed.pages);
        let restored = StableMemory::from_stored(100, 2, units);
        assert_eq!(restored.size(), 2);
        assert_eq!(restored.read(0, 2 * STABLE_PAGE).unwrap(), m.read(0, 2 * STABLE_PAGE).unwrap());
    }
}
