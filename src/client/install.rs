//! `ww canister install`: a module installed through the management
//! canister, as `dfx canister install` does it. The module is a ww-cdk
//! component or an IC core module, raw or gzipped; the CLI does not care
//! which (the replica tells them apart). A message that fits the ingress
//! limit goes as one `install_code`; a larger one as 1 MiB chunks
//! (`upload_chunk`), then `install_chunked_code` with the chunks' hashes
//! and the module's SHA-256, then `clear_chunk_store`.

use std::path::Path;

use candid::{Decode, Encode, Principal};
use sha2::{Digest, Sha256};
use ww::replica::management::{
    CanisterIdRecord, CanisterInstallMode, ChunkHashRecord, InstallChunkedCodeArgs, InstallCodeArgs, UpgradeFlags, WasmMemoryPersistence,
};
use ww::ww_capnp::replica;

use super::{Outcome, UsageError, argument_text, invoke, note, one_line, parse_args, report_reject, resolve, with_replica};
use ww::candid_args::typed_bytes;
use crate::{InstallArgs, InstallModeArg, PersistenceArg};

/// The IC's limit on an ingress message's payload (the replica refuses a
/// larger `install_code` argument with IC0406).
const MAX_MESSAGE: usize = 2 * 1024 * 1024;
/// Room for the rest of an `install_code` argument besides the module and
/// the init argument: the Candid header and type table, the mode, the
/// canister id, the length prefixes.
const MESSAGE_OVERHEAD: usize = 4 * 1024;
/// The chunk size (the IC's chunk store takes chunks of at most 1 MiB).
const CHUNK: usize = 1024 * 1024;
/// The largest module we read (100 MiB is the IC's limit uncompressed;
/// a file far larger is surely a mistake).
const MAX_FILE: u64 = 256 << 20;

/// `ww canister install`.
pub async fn install(args: InstallArgs, state: &Path) -> anyhow::Result<i32> {
    let module = read_module(&args.module)?;
    let text = match (&args.argument, &args.argument_file) {
        (None, None) => None,
        (inline, file) => Some(argument_text(inline.as_deref(), file.as_deref())?),
    };
    let arg = init_arg(text.as_deref(), &module, &args.module, args.candid.as_deref())?;
    let mode = install_mode(args.mode, args.wasm_memory_persistence)?;
    let hash: [u8; 32] = Sha256::digest(&module).into();
    let size = module.len();
    let chunks = if size + arg.len() > MAX_MESSAGE - MESSAGE_OVERHEAD { size.div_ceil(CHUNK) } else { 0 };
    let mode_text = describe(&mode);
    let InstallArgs { canister, module: path, .. } = args;
    with_replica(state, false, |replica| async move {
        let id = resolve(&replica, &canister).await?;
        let outcome = if chunks == 0 {
            let install = InstallCodeArgs { mode, canister_id: id, wasm_module: module, arg, sender_canister_version: None };
            invoke(&replica, Principal::management_canister(), "install_code", Encode!(&install)?, false).await?
        } else {
            install_chunked(&replica, id, &module, hash, arg, mode).await?
        };
        match outcome {
            Outcome::Reply(_) => {
                let target = if Principal::from_text(&canister).is_ok() { id.to_text() } else { format!("{canister} ({id})") };
                let how = if chunks == 0 { String::new() } else { format!(" in {chunks} chunks") };
                outln!(
                    "Installed {} on {target}: mode {mode_text}, {}{how}, module hash 0x{}",
                    path.display(),
                    human_size(size),
                    hex::encode(hash)
                );
                Ok(0)
            }
            Outcome::Reject { code, message } => Ok(report_reject(code, &message)),
        }
    })
    .await
}

/// The module file's bytes; a file that cannot be read is a usage error
/// naming it.
fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| UsageError(format!("{}: cannot read the module: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    if file.metadata().map_err(unreadable)?.is_dir() {
        return Err(UsageError(format!("{}: cannot read the module: it is a directory", path.display())).into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(UsageError(format!("{}: the module is larger than {}", path.display(), human_size(MAX_FILE as usize))).into());
    }
    Ok(bytes)
}

/// The init (or post_upgrade) argument: `()` when none is given; else the
/// Candid text encoded against the init arguments of the module's interface
/// (`--candid FILE`, else the one the module declares: see
/// [`module_interface`]), so `(opt 5)` is an `opt nat64` where init takes
/// one. With no interface known the text is encoded untyped, after a
/// warning on stderr (Candid then decodes a mismatched `opt` as null).
fn init_arg(text: Option<&str>, module: &[u8], path: &Path, candid: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let Some(text) = text else {
        return Ok(candid::encode_args(())?);
    };
    let idl = parse_args(text)?;
    let interface = match candid {
        Some(file) => Some(std::fs::read_to_string(file).map_err(|e| UsageError(format!("{}: cannot read the Candid interface: {e}", file.display())))?),
        None => module_interface(module),
    };
    let Some(did) = interface else {
        note(format_args!(
            "ww: warning: {} declares no Candid interface (no `candid:service` section, no `get_candid_pointer` export) and no --candid was given: the init argument is sent untyped",
            path.display()
        ));
        return Ok(idl
            .to_bytes()
            .map_err(|e| UsageError(format!("cannot encode the Candid argument: {}", one_line(&e.to_string()))))?);
    };
    let source = candid.map_or_else(|| format!("{}'s Candid interface", path.display()), |f| f.display().to_string());
    let (env, actor) = candid_parser::utils::CandidSource::Text(&did)
        .load()
        .map_err(|e| UsageError(format!("{source}: bad Candid interface: {}", one_line(&e.to_string()))))?;
    let types = match actor.as_ref().map(|a| a.as_ref()) {
        Some(candid::types::TypeInner::Class(args, _)) => args.clone(),
        _ => Vec::new(),
    };
    if idl.args.len() > types.len() {
        return Err(UsageError(format!("{source} takes {} init argument(s); {} given", types.len(), idl.args.len())).into());
    }
    // Trailing arguments left out are absent (an `opt` one decodes as null).
    let types = &types[..idl.args.len()];
    Ok(typed_bytes(idl, &env, types)
        .map_err(|e| UsageError(format!("the argument does not match the init arguments in {source}: {}", one_line(&e.to_string()))))?)
}

/// The interface a module declares: its section, else (an ic-cdk module)
/// its `get_candid_pointer`, compiled through the default compile cache.
fn module_interface(module: &[u8]) -> Option<String> {
    use ww::engine::{Engine, EngineConfig, EngineKind, default_cache_dir};
    let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: default_cache_dir(), ..EngineConfig::default() }).ok()?;
    let runtime = ww::replica::exec::CanisterRuntime::new(engine, ww::replica::Limits::default()).ok()?;
    ww::replica::install::module_interface(&runtime, module)
}

fn install_mode(mode: InstallModeArg, persistence: Option<PersistenceArg>) -> Result<CanisterInstallMode, UsageError> {
    Ok(match (mode, persistence) {
        (InstallModeArg::Install, None) => CanisterInstallMode::Install,
        (InstallModeArg::Reinstall, None) => CanisterInstallMode::Reinstall,
        (InstallModeArg::Upgrade, persistence) => CanisterInstallMode::Upgrade(Some(UpgradeFlags {
            skip_pre_upgrade: None,
            wasm_memory_persistence: persistence.map(|p| match p {
                PersistenceArg::Keep => WasmMemoryPersistence::Keep,
                PersistenceArg::Replace => WasmMemoryPersistence::Replace,
            }),
        })),
        (_, Some(_)) => return Err(UsageError("--wasm-memory-persistence is for --mode upgrade".into())),
    })
}

fn describe(mode: &CanisterInstallMode) -> &'static str {
    match mode {
        CanisterInstallMode::Install => "install",
        CanisterInstallMode::Reinstall => "reinstall",
        CanisterInstallMode::Upgrade(Some(UpgradeFlags { wasm_memory_persistence: Some(WasmMemoryPersistence::Keep), .. })) => {
            "upgrade (wasm memory kept)"
        }
        CanisterInstallMode::Upgrade(_) => "upgrade",
    }
}

/// Uploads `module` to the target's chunk store in 1 MiB chunks (progress
/// on stderr), installs it from there and clears the store again (also
/// when the upload or the install was rejected).
async fn install_chunked(
    replica: &replica::Client,
    id: Principal,
    module: &[u8],
    hash: [u8; 32],
    arg: Vec<u8>,
    mode: CanisterInstallMode,
) -> anyhow::Result<Outcome> {
    let mgmt = Principal::management_canister();
    let total = module.len().div_ceil(CHUNK);
    let mut hashes = Vec::with_capacity(total);
    for (i, chunk) in module.chunks(CHUNK).enumerate() {
        note(format_args!("uploading chunk {}/{total} ({:.1} MiB)", i + 1, chunk.len() as f64 / CHUNK as f64));
        let arg = ww::replica::management::encode_upload_chunk(id, chunk);
        let bytes = match invoke(replica, mgmt, "upload_chunk", arg, false).await? {
            Outcome::Reply(bytes) => bytes,
            reject => {
                clear_chunk_store(replica, id).await;
                return Ok(reject);
            }
        };
        let stored = Decode!(&bytes, ChunkHashRecord).map_err(|e| anyhow::anyhow!("the management canister's reply to upload_chunk: {e}"))?;
        let expected = Sha256::digest(chunk);
        if stored.hash != expected.as_slice() {
            clear_chunk_store(replica, id).await;
            anyhow::bail!(
                "the replica stored chunk {}/{total} under hash 0x{}, not its SHA-256 0x{}",
                i + 1,
                hex::encode(&stored.hash),
                hex::encode(expected)
            );
        }
        hashes.push(stored);
    }
    let install = InstallChunkedCodeArgs {
        mode,
        target_canister: id,
        store_canister: None,
        chunk_hashes_list: hashes,
        wasm_module_hash: hash.to_vec(),
        arg,
        sender_canister_version: None,
    };
    let outcome = invoke(replica, mgmt, "install_chunked_code", Encode!(&install)?, false).await;
    clear_chunk_store(replica, id).await;
    outcome
}

/// `clear_chunk_store`; a failure is a warning (the install's outcome is
/// what counts).
async fn clear_chunk_store(replica: &replica::Client, id: Principal) {
    let arg = match Encode!(&CanisterIdRecord { canister_id: id }) {
        Ok(arg) => arg,
        Err(e) => return note(format_args!("ww: warning: clear_chunk_store: {e}")),
    };
    match invoke(replica, Principal::management_canister(), "clear_chunk_store", arg, false).await {
        Ok(Outcome::Reply(_)) => {}
        Ok(Outcome::Reject { message, .. }) => note(format_args!("ww: warning: clear_chunk_store was rejected: {}", one_line(&message))),
        Err(e) => note(format_args!("ww: warning: clear_chunk_store failed: {}", one_line(&format!("{e:#}")))),
    }
}

/// `2.51 MiB`, `787.90 KiB`, `12 bytes`.
fn human_size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.2} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.2} KiB", b / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dfx() {
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(806_813), "787.90 KiB");
        assert_eq!(human_size(2_631_925), "2.51 MiB");
    }

    #[test]
    fn memory_persistence_is_for_upgrades_only() {
        assert!(matches!(
            install_mode(InstallModeArg::Upgrade, None),
            Ok(CanisterInstallMode::Upgrade(Some(UpgradeFlags { skip_pre_upgrade: None, wasm_memory_persistence: None })))
        ));
        assert!(matches!(
            install_mode(InstallModeArg::Upgrade, Some(PersistenceArg::Keep)),
            Ok(CanisterInstallMode::Upgrade(Some(UpgradeFlags { wasm_memory_persistence: Some(WasmMemoryPersistence::Keep), .. })))
        ));
        assert!(install_mode(InstallModeArg::Install, Some(PersistenceArg::Replace)).is_err());
        assert!(install_mode(InstallModeArg::Reinstall, Some(PersistenceArg::Keep)).is_err());
    }

    /// A Wasm module whose only section is a custom one.
    fn module_with_candid(did: &str) -> Vec<u8> {
        let name = ww::replica::install::CANDID_SECTION.as_bytes();
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(did.as_bytes());
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.push(0);
        let mut n = body.len();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                m.push(byte);
                break;
            }
            m.push(byte | 0x80);
        }
        m.extend_from_slice(&body);
        m
    }

    /// Init arguments are typed by the interface the module carries:
    /// a number literal becomes the declared `nat64`, a trailing `opt`
    /// left out is absent; without an interface, plain Candid.
    #[test]
    fn init_arguments_take_the_carried_interface_types() {
        let module = module_with_candid("service : (opt nat64, opt text) -> { get : () -> (nat64) query }");
        let p = Path::new("m.wasm");
        let bytes = init_arg(Some("(opt 5)"), &module, p, None).unwrap();
        let (n,) = candid::decode_args::<(Option<u64>,)>(&bytes).unwrap();
        assert_eq!(n, Some(5));
        let (n, t) = candid::decode_args::<(Option<u64>, Option<String>)>(&bytes).unwrap();
        assert_eq!((n, t), (Some(5), None));
        assert!(init_arg(Some(r#"(opt "five")"#), &module, p, None).is_err(), "a text is not a nat64");
        assert!(init_arg(Some("(opt 1, opt \"a\", 3)"), &module, p, None).is_err(), "too many arguments");
        assert_eq!(init_arg(None, &module, p, None).unwrap(), b"DIDL\0\0");
        // No interface: untyped, a number literal is an int.
        let bytes = init_arg(Some("(opt record { greeting = \"hey\" })"), b"\0asm\x01\0\0\0", p, None).unwrap();
        #[derive(candid::CandidType, candid::Deserialize)]
        struct Init {
            greeting: String,
        }
        let (init,) = candid::decode_args::<(Option<Init>,)>(&bytes).unwrap();
        assert_eq!(init.unwrap().greeting, "hey");
        assert!(init_arg(Some("(oops"), b"", p, None).is_err());
    }
}
