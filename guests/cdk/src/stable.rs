//! Stable memory: the canister's second memory, kept across upgrades, in
//! 64 KiB pages.
//!
//! [`StableMemory`] implements [`ic_stable_structures::Memory`], so the
//! structures of `ic-stable-structures` work unchanged:
//!
//! ```ignore
//! use ww_cdk::ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
//! use ww_cdk::ic_stable_structures::StableBTreeMap;
//! use ww_cdk::stable::DefaultMemoryImpl;
//! use std::cell::RefCell;
//!
//! thread_local! {
//!     static MM: RefCell<MemoryManager<DefaultMemoryImpl>> =
//!         RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
//!     static MAP: RefCell<StableBTreeMap<u64, u64, VirtualMemory<DefaultMemoryImpl>>> =
//!         RefCell::new(StableBTreeMap::init(MM.with(|m| m.borrow().get(MemoryId::new(0)))));
//! }
//! ```

use crate::api;
use crate::bindings::ww::canister::ic0;

/// The size of a stable-memory page, in bytes.
pub const WASM_PAGE_SIZE_IN_BYTES: u64 = 64 * 1024;

/// The size of stable memory, in pages.
pub fn stable_size() -> u64 {
    ic0::stable_size()
}

/// Stable memory could not grow (the host's limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StableMemoryError;

impl std::fmt::Display for StableMemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stable memory cannot grow that much")
    }
}

impl std::error::Error for StableMemoryError {}

/// Grows stable memory by `new_pages` pages (zeroed); returns the previous
/// size in pages.
pub fn stable_grow(new_pages: u64) -> Result<u64, StableMemoryError> {
    u64::try_from(ic0::stable_grow(new_pages)).map_err(|_| StableMemoryError)
}

/// Reads `buf.len()` bytes at `offset`. Out of bounds traps.
pub fn stable_read(offset: u64, buf: &mut [u8]) {
    if buf.is_empty() {
        return;
    }
    let data = ic0::stable_read(offset, buf.len() as u64);
    if data.len() != buf.len() {
        api::trap(format!(
            "stable-read returned {} bytes instead of {}",
            data.len(),
            buf.len()
        ));
    }
    buf.copy_from_slice(&data);
}

/// Writes `data` at `offset`. Out of bounds traps.
pub fn stable_write(offset: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    ic0::stable_write(offset, data);
}

/// The canister's stable memory, as an [`ic_stable_structures::Memory`].
/// It is a handle: every copy is the same memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StableMemory;

/// What `ic_stable_structures::DefaultMemoryImpl` is on the IC: use this one.
pub type DefaultMemoryImpl = StableMemory;

impl ic_stable_structures::Memory for StableMemory {
    fn size(&self) -> u64 {
        stable_size()
    }

    fn grow(&self, pages: u64) -> i64 {
        ic0::stable_grow(pages)
    }

    fn read(&self, offset: u64, dst: &mut [u8]) {
        stable_read(offset, dst);
    }

    unsafe fn read_unsafe(&self, offset: u64, dst: *mut u8, count: usize) {
        if count == 0 {
            return;
        }
        let data = ic0::stable_read(offset, count as u64);
        if data.len() != count {
            api::trap(format!(
                "stable-read returned {} bytes instead of {count}",
                data.len()
            ));
        }
        // SAFETY: the caller guarantees `dst` is valid for `count` bytes and
        // does not overlap `data`, a fresh allocation of `count` bytes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, count) };
    }

    fn write(&self, offset: u64, src: &[u8]) {
        stable_write(offset, src);
    }
}
