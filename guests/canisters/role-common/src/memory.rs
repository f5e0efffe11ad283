//! The role's memory ids, claimed in the canister's one registry
//! ([`ww_cdk::memory`]): 0 to 12 for the role, 13 for the environment.

/// A virtual stable memory of this canister.
pub type Memory = ww_cdk::memory::Memory;

/// The memory that holds the environment ("env"), shared by every role.
pub const ENV_MEMORY_ID: u8 = 13;

/// The owner name role memories are claimed under.
pub const OWNER: &str = "role-common";

const LABELS: [&str; 14] = [
    "role 0", "role 1", "role 2", "role 3", "role 4", "role 5", "role 6", "role 7", "role 8", "role 9", "role 10", "role 11", "role 12", "env",
];

/// The role's virtual memory `id` (0 to 12; 13 is the environment's, and
/// asking for it is a bug in the role, which traps).
pub fn memory(id: u8) -> Memory {
    assert!(
        id != ENV_MEMORY_ID && (id as usize) < LABELS.len(),
        "memory id {id}: roles use 0 to 12 ({ENV_MEMORY_ID} is the environment's)"
    );
    raw_memory(id)
}

pub(crate) fn raw_memory(id: u8) -> Memory {
    ww_cdk::memory::claim(id, OWNER, LABELS[id as usize])
}
