//! The one registry of stable memory ids used by root and the wasm_store.
//!
//! Every durable structure lives in its own virtual memory of one
//! `MemoryManager` per canister. Ids are assigned here and nowhere else; a
//! compile-time check rejects duplicates, so two structures can never share a
//! memory by accident.

/// A virtual stable memory.
pub type Memory = ww_cdk::memory::Memory;

/// Root: canisters it created (pid → role, parent, module hash).
pub const SUBNET_REGISTRY: u8 = 9;
/// Template manifests (release key → manifest).
pub const TEMPLATE_MANIFESTS: u8 = 10;
/// Template chunk sets (release key → chunk hashes and payload facts).
pub const TEMPLATE_CHUNK_SETS: u8 = 11;
/// Template chunks (chunk key → its slot in the chunk slabs).
pub const TEMPLATE_CHUNKS: u8 = 12;
/// Template chunk bytes: raw memory, one 1 MiB slot per chunk.
pub const TEMPLATE_CHUNK_SLABS: u8 = 15;
/// Counters of the template storage (bytes held).
pub const TEMPLATE_STATS: u8 = 14;
/// Root: configuration given at install (auto-create roles, controllers, store policy).
pub const ROOT_CONFIG: u8 = 13;
/// Root: publication slots and the store inventory.
pub const SUBNET_STATE: u8 = 60;
/// wasm_store: root's principal and the capacity policy.
pub const WASM_STORE_CONFIG: u8 = 61;
/// wasm_store: the store-local GC state.
pub const WASM_STORE_GC_STATE: u8 = 62;

/// Every id above, with its label.
pub const REGISTRY: &[(u8, &str)] = &[
    (SUBNET_REGISTRY, "subnet_registry"),
    (TEMPLATE_MANIFESTS, "template_manifests"),
    (TEMPLATE_CHUNK_SETS, "template_chunk_sets"),
    (TEMPLATE_CHUNKS, "template_chunks"),
    (TEMPLATE_CHUNK_SLABS, "template_chunk_slabs"),
    (ROOT_CONFIG, "root_config"),
    (TEMPLATE_STATS, "template_stats"),
    (SUBNET_STATE, "subnet_state"),
    (WASM_STORE_CONFIG, "wasm_store_config"),
    (WASM_STORE_GC_STATE, "wasm_store_gc_state"),
];

const fn ids_are_distinct(registry: &[(u8, &str)]) -> bool {
    let mut i = 0;
    while i < registry.len() {
        let mut j = i + 1;
        while j < registry.len() {
            if registry[i].0 == registry[j].0 {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const _: () = assert!(ids_are_distinct(REGISTRY), "duplicate stable memory id in ww_template::memory::REGISTRY");

/// The owner name these ids are claimed under in the canister's registry.
pub const OWNER: &str = "ww-template";

/// The virtual memory with `id` (one of the constants above), claimed in
/// the canister's one registry ([`ww_cdk::memory`]).
pub fn get(id: u8) -> Memory {
    let label = REGISTRY.iter().find(|(i, _)| *i == id).map_or("unregistered", |(_, l)| *l);
    ww_cdk::memory::claim(id, OWNER, label)
}
