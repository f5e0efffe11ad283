//! The release-template model of a Canic-style IC deployment, shared by the
//! root canister (control plane), the wasm_store canister (data plane) and the
//! deployment pipeline.
//!
//! - [`types`]: the Candid records and variants of root's and the store's
//!   interfaces (`root.did`, `wasm_store.did` are the canonical sources).
//! - [`lifecycle`]: root's publication state (active, detached and retired
//!   bindings) and its transitions, with the invariants checked on every one.
//! - [`gc`]: the store-local GC state machine (Normal → Prepared →
//!   InProgress → Complete).
//! - [`storage`] (feature `canister`): the three stable maps every template
//!   holder keeps (manifests, chunk sets, chunks) and their validation rules.
//! - [`memory`] (feature `canister`): the one registry of stable memory ids.

pub mod gc;
pub mod lifecycle;
pub mod types;

#[cfg(feature = "canister")]
pub mod memory;
#[cfg(feature = "canister")]
pub mod storage;
#[cfg(feature = "canister")]
pub mod mgmt;

/// The largest chunk the management canister accepts, and the size the
/// pipeline splits payloads into.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// The template id of a role in the release set: `embedded:<role>`.
pub fn template_id_for_role(role: &str) -> String {
    format!("embedded:{role}")
}

/// The role of the store canister; the only role root installs inline from its
/// own staging buffer.
pub const WASM_STORE_ROLE: &str = "wasm_store";

/// The binding that names root's own staging buffer.
pub const BOOTSTRAP_BINDING: &str = "bootstrap";

/// Human-readable size, IEC units with two decimals (`5.83 MiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// Lower-case hex of a hash, for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short hex prefix of a hash, for log lines.
pub fn short_hex(bytes: &[u8]) -> String {
    hex(&bytes[..bytes.len().min(6)])
}
