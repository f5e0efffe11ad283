//! Turning module bytes into installable code: gzip, size limits, the
//! module hash (SHA-256, as `canister_status` reports it), which kind of
//! canister it is (a `ww-cdk` component or an IC core module importing
//! `ic0`), the checks for that kind, and compilation through the canister
//! engine's cache.
//!
//! A module's Candid interface (its `icp:public candid:service` section) is
//! remembered by module hash, for `ww call`.
//!
//! Both `install_code` and `install_chunked_code` come through here; the
//! latter passes the hash it already verified ([`prepare_module_hashed`]).

use std::borrow::Cow;
use std::io::Read;

use candid::Principal;
use sha2::{Digest, Sha256};

use super::exec::module_check::{check_component_globals, check_core_module};
use super::exec::{Code, CoreModule, extract_candid};
use super::{ErrorCode, Reject, Replica};

/// The largest module (uncompressed) a canister may have, as on the IC.
pub const MAX_WASM_MODULE: usize = 100 << 20;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// The public custom section holding a module's Candid interface (the name
/// dfx uses on the IC).
pub const CANDID_SECTION: &str = "icp:public candid:service";

/// The same interface kept private: `moc` without
/// `--public-metadata candid:service` emits this one. ww reads it for its
/// admin's tools (`ww call`, `ww canister install`), never shows it to
/// other callers.
pub const PRIVATE_CANDID_SECTION: &str = "icp:private candid:service";

/// The Candid interface a module carries, if any: the first
/// [`CANDID_SECTION`] in the component or its core modules, else the first
/// [`PRIVATE_CANDID_SECTION`] (if UTF-8).
pub fn candid_section(module: &[u8]) -> Option<String> {
    let mut private = None;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload {
            Ok(wasmparser::Payload::CustomSection(c)) if c.name() == CANDID_SECTION => {
                return std::str::from_utf8(c.data()).ok().map(str::to_string);
            }
            Ok(wasmparser::Payload::CustomSection(c)) if c.name() == PRIVATE_CANDID_SECTION && private.is_none() => {
                private = std::str::from_utf8(c.data()).ok().map(str::to_string);
            }
            Ok(_) => {}
            Err(_) => return private,
        }
    }
    private
}

/// A module's `icp:public <name>` and `icp:private <name>` custom sections
/// (the canister metadata of the state tree): `(name, public, bytes)` in
/// module order, the module decompressed first if gzipped. The first section
/// of a name wins.
pub fn metadata_sections(module: &[u8]) -> Vec<(String, bool, Vec<u8>)> {
    let raw: Cow<'_, [u8]> = if module.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        let decoded = flate2::read::GzDecoder::new(module).take(MAX_WASM_MODULE as u64 + 1).read_to_end(&mut out);
        if decoded.is_err() {
            return Vec::new();
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(module)
    };
    let mut sections: Vec<(String, bool, Vec<u8>)> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&raw) {
        let Ok(wasmparser::Payload::CustomSection(c)) = payload else {
            if payload.is_err() {
                break;
            }
            continue;
        };
        let (name, public) = match (c.name().strip_prefix("icp:public "), c.name().strip_prefix("icp:private ")) {
            (Some(name), _) => (name, true),
            (_, Some(name)) => (name, false),
            _ => continue,
        };
        if !sections.iter().any(|(n, _, _)| n == name) {
            sections.push((name.to_string(), public, c.data().to_vec()));
        }
    }
    sections
}

/// The Candid interface a module declares, read without installing it (what
/// `ww canister install` types an init argument with): its
/// `icp:public candid:service` section, else, for an IC core module that
/// exports `get_candid_pointer` (ic-cdk's `export_candid!`, present in every
/// ic-cdk canister built the usual way), that function's answer, run in a
/// sandbox as candid-extractor runs it. Compiling goes through `runtime`'s
/// engine and its on-disk cache, so a node sharing the cache directory does
/// not compile the module again at install. `None` when the module declares
/// no interface (or is not a module at all: the install reports that).
pub fn module_interface(runtime: &super::exec::CanisterRuntime, module: &[u8]) -> Option<String> {
    let raw: Cow<'_, [u8]> = if module.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(module).take(MAX_WASM_MODULE as u64 + 1).read_to_end(&mut out).ok()?;
        Cow::Owned(out)
    } else {
        Cow::Borrowed(module)
    };
    if let Some(did) = candid_section(&raw) {
        return Some(did);
    }
    if !raw.starts_with(&[0, b'a', b's', b'm', 1, 0, 0, 0]) || !exports_candid_pointer(&raw) {
        return None;
    }
    let checked = check_core_module(&raw).ok()?;
    let compiled = CoreModule::compile(runtime, "module (for its Candid interface)", checked).ok()?;
    extract_candid(runtime, &compiled)
}

/// Whether a core module exports `get_candid_pointer` (a cheap look at its
/// export section, before anything is compiled).
fn exports_candid_pointer(module: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload {
            Ok(wasmparser::Payload::ExportSection(exports)) => {
                return exports.into_iter().any(|e| e.is_ok_and(|e| e.name == "get_candid_pointer"));
            }
            Ok(wasmparser::Payload::CodeSectionStart { .. }) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    false
}

/// A module ready to install.
pub struct PreparedModule {
    pub code: Code,
    /// SHA-256 of the module as given (compressed or not), like the IC's `module_hash`.
    pub hash: [u8; 32],
    /// The module as given (kept by the canister for snapshots and the
    /// state directory).
    pub bytes: std::sync::Arc<[u8]>,
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
    let what = format!("module for canister {canister}");
    let code = match raw.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            let checked = check_core_module(&raw).map_err(|e| invalid(canister, e))?;
            let module = CoreModule::compile(replica.runtime(), &what, checked).map_err(|e| invalid(canister, e))?;
            // An ic-cdk module without the section: its interface from
            // `get_candid_pointer`, as candid-extractor reads it.
            if candid_section(&raw).is_none()
                && !replica.knows_interface(&hash)
                && let Some(did) = extract_candid(replica.runtime(), &module)
            {
                replica.remember_interface(hash, did);
            }
            Code::Core(std::sync::Arc::new(module))
        }
        Some([0, b'a', b's', b'm', ..]) => {
            check_component_globals(&raw).map_err(|e| invalid(canister, e.to_string()))?;
            let (_, component) = replica.runtime().engine().load(&what, &raw).map_err(|e| invalid(canister, e.to_string()))?;
            Code::Component(component)
        }
        _ => {
            let reason = if module.starts_with(&GZIP_MAGIC[..2]) {
                "not a WebAssembly module (gzip data that is not a complete gzip stream?)"
            } else {
                "not a WebAssembly module (bad magic number)"
            };
            return Err(invalid(canister, reason.into()));
        }
    };
    if let Some(did) = candid_section(&raw) {
        replica.remember_interface(hash, did);
    }
    Ok(PreparedModule { code, hash, bytes: module.into() })
}

fn invalid(canister: &Principal, reason: String) -> Reject {
    Reject::system(ErrorCode::CanisterInvalidWasm, format!("Error from Canister {canister}: invalid module: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one custom section.
    fn module_with_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(data);
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.push(0);
        m.push(body.len() as u8);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn finds_the_candid_section() {
        let did = b"service : { get : () -> (nat64) query }";
        assert_eq!(candid_section(&module_with_section(CANDID_SECTION, did)).as_deref(), Some(std::str::from_utf8(did).unwrap()));
    }

    #[test]
    fn other_sections_and_garbage_carry_no_interface() {
        assert_eq!(candid_section(&module_with_section("name", b"x")), None);
        assert_eq!(candid_section(b"not wasm"), None);
        assert_eq!(candid_section(&module_with_section(CANDID_SECTION, &[0xff, 0xfe])), None, "not UTF-8");
    }
}
