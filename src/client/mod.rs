//! The CLI's clients of a node's control socket: the plumbing they share
//! (the `Replica` capability as the admin, name resolution, calls and how a
//! reject is reported, Candid arguments) and `ww call`.
//!
//! - [`canister`]: `ww canister create|list|status|info|logs|start|stop|delete|uninstall`;
//! - [`install`]: `ww canister install` (inline or chunked);
//! - [`deploy`]: `ww deploy`.

use std::path::Path;

use anyhow::Context;
use candid::Principal;
use ww::ww_capnp::{call_result, replica};
use ww::candid_args::{holds_reference, one_line, typed_bytes};

use super::CallArgs;

/// A usage error (exit code 2): bad Candid, an unknown canister name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Standard output could not be written (a closed pipe, a full disk).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct OutputError(#[from] std::io::Error);

/// Writes one line to standard output; an error instead of a panic when it
/// cannot be written.
fn write_line(line: std::fmt::Arguments<'_>) -> Result<(), OutputError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// `println!` that returns an [`OutputError`] from the enclosing function.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::client::write_line(format_args!($($arg)*))?
    };
}

mod canister;
mod deploy;
mod install;
mod snapshot;

pub use canister::canister;
pub use deploy::deploy;

/// A call's outcome as the CLI reports it.
enum Outcome {
    Reply(Vec<u8>),
    Reject { code: u32, message: String },
}

fn reject_name(code: u32) -> &'static str {
    match code {
        1 => "SYS_FATAL",
        2 => "SYS_TRANSIENT",
        3 => "DESTINATION_INVALID",
        4 => "CANISTER_REJECT",
        5 => "CANISTER_ERROR",
        6 => "SYS_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Runs `f` with the node's Replica capability, on a LocalSet.
async fn with_replica<T, F, Fut>(state: &Path, anonymous: bool, f: F) -> anyhow::Result<T>
where
    F: FnOnce(replica::Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let (admin, rpc) = ww::control::connect(state).await?;
            let disconnector = rpc.get_disconnector();
            tokio::task::spawn_local(rpc);
            let mut req = admin.replica_request();
            req.get().set_anonymous(anonymous);
            let replica = req.send().pipeline.get_replica();
            let out = f(replica).await;
            let _ = disconnector.await;
            out
        })
        .await
}

/// The canister a name or a canister id stands for.
async fn resolve(replica: &replica::Client, name_or_id: &str) -> anyhow::Result<Principal> {
    if let Ok(p) = Principal::from_text(name_or_id) {
        return Ok(p);
    }
    lookup(replica, name_or_id)
        .await?
        .ok_or_else(|| UsageError(format!("no canister is named {name_or_id:?} on this node (and it is not a canister id)")).into())
}

/// The canister named `name` in the node's registry, if any.
async fn lookup(replica: &replica::Client, name: &str) -> anyhow::Result<Option<Principal>> {
    let mut req = replica.lookup_request();
    req.get().set_name(name);
    let resp = req.send().promise.await.context("looking up the canister name")?;
    let bytes = resp.get()?.get_canister()?;
    if bytes.is_empty() {
        return Ok(None);
    }
    Ok(Some(Principal::try_from_slice(bytes)?))
}

async fn invoke(replica: &replica::Client, canister: Principal, method: &str, arg: Vec<u8>, query: bool) -> anyhow::Result<Outcome> {
    let result = if query {
        let mut req = replica.query_request();
        let mut p = req.get();
        p.set_canister(canister.as_slice());
        p.set_method(method);
        p.set_arg(&arg);
        req.send().promise.await?
    } else {
        // Same shape; the capnp types differ only by name.
        let mut req = replica.call_request();
        let mut p = req.get();
        p.set_canister(canister.as_slice());
        p.set_method(method);
        p.set_arg(&arg);
        let resp = req.send().promise.await?;
        return outcome(resp.get()?.get_result()?);
    };
    outcome(result.get()?.get_result()?)
}

fn outcome(r: call_result::Reader) -> anyhow::Result<Outcome> {
    Ok(match r.which()? {
        call_result::Which::Reply(b) => Outcome::Reply(b?.to_vec()),
        call_result::Which::Reject(rj) => {
            let rj = rj?;
            Outcome::Reject {
                code: rj.get_code(),
                message: rj.get_message()?.to_str()?.to_string(),
            }
        }
    })
}

/// Prints a reject on one line of stderr; the exit code for it (1).
fn report_reject(code: u32, message: &str) -> i32 {
    use std::io::Write;
    // A closed stderr loses the message, not the exit code.
    let _ = writeln!(
        std::io::stderr().lock(),
        "ww: the call was rejected: reject code {code} ({}): {}",
        reject_name(code),
        one_line(message)
    );
    1
}

/// A line on stderr (progress, warnings); a closed stderr loses it.
fn note(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}

/// `ww call`.
pub async fn call(args: CallArgs) -> anyhow::Result<i32> {
    let text = argument_text(args.args.as_deref(), args.argument_file.as_deref())?;
    let idl = parse_args(&text)?;
    // With an interface, arguments take the method's types (so `(5)` is a
    // nat64 where the method wants one) and replies show field names: the
    // one given, else the one the canister's module carries.
    let given = match &args.candid {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?,
        ),
        None if args.canister == "aaaaa-aa" => Some(ww::replica::management::CANDID.to_string()),
        None => None,
    };
    let CallArgs { canister, method, query, update, anonymous, raw, state, .. } = args;
    let (outcome, types) = with_replica(&state, anonymous, |replica| async move {
        let id = resolve(&replica, &canister).await?;
        // A given interface must have the method; a carried one may not (the
        // call then goes untyped and the canister answers for itself).
        let types = match given {
            Some(did) => Some(method_types(&did, &method)?),
            None => match carried_interface(&replica, id).await? {
                Some(did) => method_types(&did, &method).ok(),
                None => match served_interface(&replica, id).await {
                    Some(did) => method_types(&did, &method).ok(),
                    None => None,
                },
            },
        };
        if types.is_none() && idl.args.iter().any(holds_reference) {
            note(format_args!(
                "ww: warning: no Candid interface known for {canister} (its module declares none; give --candid FILE): service and func references go untyped, as `service {{}}` / `func () -> ()`"
            ));
        }
        let bytes = encode_args(idl, types.as_ref(), &method)?;
        // As `dfx canister call`: a method the interface marks as a query
        // is called as one unless --update says otherwise.
        let declared_query = types.as_ref().map(|(_, f)| f.is_query());
        if query && declared_query == Some(false) {
            return Err(UsageError(format!("{method} is an update method (its interface says so); it cannot be called with --query")).into());
        }
        let query = query || (!update && declared_query == Some(true));
        Ok((invoke(&replica, id, &method, bytes, query).await?, types))
    })
    .await?;
    match outcome {
        Outcome::Reply(bytes) => {
            if raw {
                outln!("{}", hex::encode(&bytes));
            } else {
                let typed = types.as_ref().and_then(|(env, f)| candid::IDLArgs::from_bytes_with_types(&bytes, env, &f.rets).ok());
                match typed.map_or_else(|| candid::IDLArgs::from_bytes(&bytes), Ok) {
                    Ok(v) => outln!("{v}"),
                    Err(_) => outln!("{}", hex::encode(&bytes)),
                }
            }
            Ok(0)
        }
        Outcome::Reject { code, message, .. } => Ok(report_reject(code, &message)),
    }
}

/// Encodes Candid arguments. Typed, they are encoded against the method's
/// full argument types (as `dfx canister call` does): a variant's case
/// index and the type table come from the declared type, not from the one
/// value given, and `5` is whatever number type the method wants.
fn encode_args(idl: candid::IDLArgs, types: Option<&(candid::types::TypeEnv, candid::types::Function)>, method: &str) -> Result<Vec<u8>, UsageError> {
    match types {
        Some((env, f)) => typed_bytes(idl, env, &f.args)
            .map_err(|e| UsageError(format!("the arguments do not match {method}: {}", one_line(&e.to_string())))),
        None => idl
            .to_bytes()
            .map_err(|e| UsageError(format!("cannot encode the Candid arguments: {}", one_line(&e.to_string())))),
    }
}

/// The Candid text of a call's or an install's arguments: given inline, or
/// read from a file (`-`: standard input); `()` when neither.
fn argument_text(inline: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(UsageError("give the arguments either inline or with --argument-file, not both".into()).into()),
        (None, Some(path)) => read_argument_file(path),
        (Some(text), None) => Ok(text.to_string()),
        (None, None) => Ok("()".to_string()),
    }
}

/// Parses Candid text arguments; a usage error quotes (the start of) them.
fn parse_args(text: &str) -> Result<candid::IDLArgs, UsageError> {
    candid_parser::parse_idl_args(text).map_err(|e| {
        let quoted = if text.len() <= 100 {
            format!("{text:?}")
        } else {
            let start: String = text.chars().take(60).collect();
            format!("{start:?}... ({} bytes)", text.len())
        };
        UsageError(format!("bad Candid arguments {quoted}: {}", one_line(&e.to_string())))
    })
}

/// Candid text from `--argument-file` (`-` is standard input).
fn read_argument_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)).map(|_| ())
    };
    read.map_err(|e| UsageError(format!("{}: cannot read the argument file: {e}", path.display())))?;
    Ok(text)
}

/// The Candid interface the canister's module carries, if any.
async fn carried_interface(replica: &replica::Client, id: Principal) -> anyhow::Result<Option<String>> {
    let mut req = replica.candid_request();
    req.get().set_canister(id.as_slice());
    let resp = req.send().promise.await.context("asking for the canister's Candid interface")?;
    let did = resp.get()?.get_interface()?.to_str()?;
    Ok((!did.is_empty()).then(|| did.to_string()))
}

/// The interface a canister serves itself, when its module carries none:
/// the `__get_candid_interface_tmp_hack` query that older Motoko canisters
/// and ww-cdk's `did` builds answer (dfx falls back to it too).
async fn served_interface(replica: &replica::Client, id: Principal) -> Option<String> {
    let arg = candid::encode_args(()).ok()?;
    match invoke(replica, id, "__get_candid_interface_tmp_hack", arg, true).await.ok()? {
        Outcome::Reply(bytes) => candid::decode_one::<String>(&bytes).ok().filter(|did| !did.is_empty()),
        Outcome::Reject { .. } => None,
    }
}

/// The type environment and signature of `method` in a `.did` interface.
fn method_types(did: &str, method: &str) -> anyhow::Result<(candid::types::TypeEnv, candid::types::Function)> {
    let (env, actor) = candid_parser::utils::CandidSource::Text(did)
        .load()
        .map_err(|e| UsageError(format!("bad Candid interface: {}", one_line(&e.to_string()))))?;
    let actor = actor.ok_or_else(|| UsageError("the Candid interface has no service".into()))?;
    let f = env
        .get_method(&actor, method)
        .map_err(|_| UsageError(format!("the Candid interface has no method {method:?}")))?
        .clone();
    Ok((env, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Decode;
    use ww::replica::management::{
        CanisterInstallMode, InstallChunkedCodeArgs, InstallCodeArgs, ProvisionalCreateCanisterArgs, UpdateSettingsArgs, WasmMemoryPersistence,
    };

    fn encode(did: &str, method: &str, text: &str) -> Vec<u8> {
        let types = method_types(did, method).unwrap();
        let idl = candid_parser::parse_idl_args(text).unwrap();
        encode_args(idl, Some(&types), method).unwrap_or_else(|e| panic!("{method} {text}: {e}"))
    }

    fn mgmt(method: &str, text: &str) -> Vec<u8> {
        encode(ww::replica::management::CANDID, method, text)
    }

    const ID: &str = "bkyz2-fmaaa-aaaaa-qaaaq-cai";

    /// Every case of `canister_install_mode`, for both install methods,
    /// decodes as the management canister's own types.
    #[test]
    fn every_install_mode_case_decodes() {
        let cases = [
            ("variant { install }", "install"),
            ("variant { reinstall }", "reinstall"),
            ("variant { upgrade }", "upgrade null"),
            ("variant { upgrade = null }", "upgrade null"),
            ("variant { upgrade = opt record { skip_pre_upgrade = opt true } }", "upgrade skip"),
            (
                "variant { upgrade = opt record { wasm_memory_persistence = opt variant { replace } } }",
                "upgrade replace",
            ),
            ("variant { upgrade = opt record { wasm_memory_persistence = opt variant { keep } } }", "upgrade keep"),
        ];
        for (mode, expected) in cases {
            let text = format!(
                r#"(record {{ mode = {mode}; canister_id = principal "{ID}"; wasm_module = blob "\00asm"; arg = blob ""; sender_canister_version = opt 3 }})"#
            );
            let args = Decode!(&mgmt("install_code", &text), InstallCodeArgs).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(describe(&args.mode), expected, "{mode}");
            assert_eq!(args.sender_canister_version, Some(3));
            let text = format!(
                r#"(record {{ mode = {mode}; target_canister = principal "{ID}"; store_canister = null; chunk_hashes_list = vec {{ record {{ hash = blob "\01\02" }} }}; wasm_module_hash = blob "\03"; arg = blob ""; sender_canister_version = null }})"#
            );
            let args = Decode!(&mgmt("install_chunked_code", &text), InstallChunkedCodeArgs).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(describe(&args.mode), expected, "{mode}");
        }
    }

    fn describe(mode: &CanisterInstallMode) -> &'static str {
        match mode {
            CanisterInstallMode::Install => "install",
            CanisterInstallMode::Reinstall => "reinstall",
            CanisterInstallMode::Upgrade(None) => "upgrade null",
            CanisterInstallMode::Upgrade(Some(f)) => match (f.skip_pre_upgrade, f.wasm_memory_persistence) {
                (Some(true), _) => "upgrade skip",
                (_, Some(WasmMemoryPersistence::Replace)) => "upgrade replace",
                (_, Some(WasmMemoryPersistence::Keep)) => "upgrade keep",
                _ => "upgrade flags",
            },
        }
    }

    /// Every case of `log_visibility`, nested in an option inside a record,
    /// with settings given partly (the rest of the record's opt fields absent).
    #[test]
    fn variants_nested_in_options_and_records_decode() {
        use ww::replica::management::LogVisibility;
        for (text, expected) in [
            ("variant { controllers }", LogVisibility::Controllers),
            ("variant { public }", LogVisibility::Public),
            (
                r#"variant { allowed_viewers = vec { principal "aaaaa-aa" } }"#,
                LogVisibility::AllowedViewers(vec![Principal::management_canister()]),
            ),
        ] {
            let arg = format!(
                r#"(record {{ canister_id = principal "{ID}"; settings = record {{ log_visibility = opt {text}; freezing_threshold = opt 5 }}; sender_canister_version = null }})"#
            );
            let args = Decode!(&mgmt("update_settings", &arg), UpdateSettingsArgs).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(args.settings.log_visibility, Some(expected));
            assert_eq!(args.settings.freezing_threshold, Some(candid::Nat::from(5u64)));
            let arg = format!(r#"(record {{ settings = opt record {{ log_visibility = opt {text} }}; amount = opt 7 }})"#);
            let args = Decode!(&mgmt("provisional_create_canister_with_cycles", &arg), ProvisionalCreateCanisterArgs).unwrap();
            assert_eq!(args.amount, Some(candid::Nat::from(7u64)));
        }
    }

    /// A canister's own interface: variants in vectors and options, each case.
    #[test]
    fn variants_in_vectors_and_options_use_the_declared_type() {
        #[derive(candid::CandidType, candid::Deserialize, Debug, PartialEq)]
        enum Op {
            Add(u64),
            Clear,
            Rename(String),
        }
        #[derive(candid::CandidType, candid::Deserialize, Debug, PartialEq)]
        struct Batch {
            ops: Vec<Op>,
            last: Option<Op>,
        }
        let did = "type Op = variant { Add : nat64; Clear; Rename : text };\n\
                   service : { apply : (record { ops : vec Op; last : opt Op }) -> () }";
        let bytes = encode(did, "apply", r#"(record { ops = vec { variant { Rename = "x" }; variant { Clear }; variant { Add = 5 } }; last = opt variant { Clear } })"#);
        let batch = Decode!(&bytes, Batch).unwrap();
        assert_eq!(batch, Batch { ops: vec![Op::Rename("x".into()), Op::Clear, Op::Add(5)], last: Some(Op::Clear) });
        // A value that is not a case of the type is the user's error.
        let types = method_types(did, "apply").unwrap();
        let idl = candid_parser::parse_idl_args(r#"(record { ops = vec { variant { Nope } }; last = null })"#).unwrap();
        assert!(encode_args(idl, Some(&types), "apply").is_err());
    }
}
