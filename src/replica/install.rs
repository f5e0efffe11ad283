//! Turning module bytes into an installable component: gzip, size limits,
//! the module hash (SHA-256, as `canister_status` reports it), structural
//! checks, and compilation through the canister engine's cache.
//!
//! Both `install_code` and `install_chunked_code` come through here; the
//! latter passes the hash it already verified ([`prepare_module_hashed`]).

use std::borrow::Cow;
use std::io::Read;

use candid::Principal;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::exec::check_component_globals;
use super::{ErrorCode, Reject, Replica};

/// The largest module (uncompressed) a canister may have, as on the IC.
pub const MAX_WASM_MODULE: usize = 100 << 20;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// A module ready to install.
pub struct PreparedModule {
    pub component: Component,
    /// SHA-256 of the module as given (compressed or not), like the IC's `module_hash`.
    pub hash: [u8; 32],
}

/// Decompresses (if gzipped), checks and compiles `module` for `canister`.
pub fn prepare_module(replica: &Replica, canister: &Principal, module: &[u8]) -> Result<PreparedModule, Reject> {
    prepare_module_hashed(replica, canister, module, Sha256::digest(module).into())
}

/// [`prepare_module`] for a module whose SHA-256 the caller already knows
/// (`install_chunked_code` verified it while assembling the chunks).
pub fn prepare_module_hashed(replica: &Replica, canister: &Principal, module: &[u8], hash: [u8; 32]) -> Result<PreparedModule, Reject> {
    let raw: Cow<'_, [u8]> = if module.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(module)
            .take(MAX_WASM_MODULE as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| invalid(canister, format!("the gzip-compressed module cannot be decompressed: {e}")))?;
        Cow::Owned(out)
    } else {
        Cow::Borrowed(module)
    };
    if raw.len() > MAX_WASM_MODULE {
        return Err(invalid(canister, format!("the module is larger than {MAX_WASM_MODULE} bytes")));
    }
    check_component_globals(&raw).map_err(|e| invalid(canister, e.to_string()))?;
    let (_, component) = replica
        .runtime()
        .engine()
        .load(&format!("module for canister {canister}"), &raw)
        .map_err(|e| invalid(canister, e.to_string()))?;
    Ok(PreparedModule { component, hash })
}

fn invalid(canister: &Principal, reason: String) -> Reject {
    Reject::system(ErrorCode::CanisterInvalidWasm, format!("Error from Canister {canister}: invalid module: {reason}"))
}
