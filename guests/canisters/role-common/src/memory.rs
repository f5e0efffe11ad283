//! The canister's one `MemoryManager` and its memory ids.

use std::cell::RefCell;
use ww_cdk::ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ww_cdk::stable::DefaultMemoryImpl;

/// A virtual stable memory of this canister.
pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// The memory that holds the environment ("env"), shared by every role.
pub const ENV_MEMORY_ID: u8 = 13;

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

/// The role's virtual memory `id` (0 to 12; 13 is the environment's, and
/// asking for it is a bug in the role, which traps).
pub fn memory(id: u8) -> Memory {
    assert!(
        id != ENV_MEMORY_ID,
        "memory id {ENV_MEMORY_ID} is the environment's; roles use 0 to 12"
    );
    raw_memory(id)
}

pub(crate) fn raw_memory(id: u8) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(MemoryId::new(id)))
}
