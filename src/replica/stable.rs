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

#[derive(Debug, Default)]
pub struct StableMemory {
    data: Vec<u8>,
    max_pages: u64,
    /// (offset, overwritten bytes), in write order.
    journal: Vec<(u64, Vec<u8>)>,
    /// Size in bytes at the last commit, if the execution grew it.
    size_before: Option<usize>,
}

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
        self.data.len() as u64 / STABLE_PAGE
    }

    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// Grows by `pages`; returns the previous size in pages, or -1.
    pub fn grow(&mut self, pages: u64) -> i64 {
        let old = self.size();
        let Some(new) = old.checked_add(pages).filter(|n| *n <= self.max_pages) else {
            return -1;
        };
        let Ok(new_len) = usize::try_from(new * STABLE_PAGE) else {
            return -1;
        };
        if self.size_before.is_none() {
            self.size_before = Some(self.data.len());
        }
        self.data.resize(new_len, 0);
        old as i64
    }

    fn check(&self, offset: u64, len: u64) -> Result<std::ops::Range<usize>, StableError> {
        let size = self.data.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(offset as usize..end as usize),
            _ => Err(StableError::OutOfBounds { offset, len, size }),
        }
    }

    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, StableError> {
        let r = self.check(offset, len)?;
        Ok(self.data[r].to_vec())
    }

    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StableError> {
        let r = self.check(offset, bytes.len() as u64)?;
        // Growth is undone by truncation, so bytes past the old size need no journal.
        let journaled_end = match self.size_before {
            Some(before) => r.end.min(before),
            None => r.end,
        };
        if r.start < journaled_end {
            self.journal.push((offset, self.data[r.start..journaled_end].to_vec()));
        }
        self.data[r].copy_from_slice(bytes);
        Ok(())
    }

    /// Keeps everything since the last commit.
    pub fn commit(&mut self) {
        self.journal.clear();
        self.size_before = None;
    }

    /// Undoes everything since the last commit.
    pub fn rollback(&mut self) {
        while let Some((offset, old)) = self.journal.pop() {
            let start = offset as usize;
            self.data[start..start + old.len()].copy_from_slice(&old);
        }
        if let Some(before) = self.size_before.take() {
            self.data.truncate(before);
            self.data.shrink_to(before.max(STABLE_PAGE as usize));
        }
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
    fn bounds_and_limits() {
        let mut m = StableMemory::new(2);
        assert!(m.read(0, 1).is_err());
        assert_eq!(m.grow(3), -1);
        assert_eq!(m.grow(2), 0);
        assert!(m.write(STABLE_PAGE * 2 - 1, b"ab").is_err());
        assert!(m.read(u64::MAX, 2).is_err());
    }
}
