//! `ww call` and `ww canister`: clients of a node's control socket.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candid::{Decode, Encode, Principal};
use ww::replica::management::{CanisterIdRecord, CanisterStatusResult, CanisterStatusType};
use ww::ww_capnp::{call_result, line_sink, replica};

use super::{CallArgs, CanisterCommand, DeployArgs};

/// A usage error (exit code 2): bad Candid, an unknown canister name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

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

async fn resolve(replica: &replica::Client, name_or_id: &str) -> anyhow::Result<Principal> {
    if let Ok(p) = Principal::from_text(name_or_id) {
        return Ok(p);
    }
    let mut req = replica.lookup_request();
    req.get().set_name(name_or_id);
    let resp = req.send().promise.await.context("looking up the canister name")?;
    let bytes = resp.get()?.get_canister()?;
    if bytes.is_empty() {
        return Err(UsageError(format!("no canister is named {name_or_id:?} on this node (and it is not a canister id)")).into());
    }
    Ok(Principal::try_from_slice(bytes)?)
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

fn report_reject(code: u32, message: &str) -> i32 {
    eprintln!("ww: the call was rejected: reject code {code} ({}): {message}", reject_name(code));
    1
}

/// `ww call`.
pub async fn call(args: CallArgs) -> anyhow::Result<i32> {
    let text = args.args.as_deref().unwrap_or("()");
    let idl = candid_parser::parse_idl_args(text).map_err(|e| UsageError(format!("bad Candid arguments {text:?}: {}", one_line(&e.to_string()))))?;
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
    let CallArgs { canister, method, query, anonymous, raw, state, .. } = args;
    let (outcome, types) = with_replica(&state, anonymous, |replica| async move {
        let id = resolve(&replica, &canister).await?;
        // A given interface must have the method; a carried one may not (the
        // call then goes untyped and the canister answers for itself).
        let types = match given {
            Some(did) => Some(method_types(&did, &method)?),
            None => match carried_interface(&replica, id).await? {
                Some(did) => method_types(&did, &method).ok(),
                None => None,
            },
        };
        let idl = match &types {
            Some((env, f)) => idl
                .annotate_types(true, env, &f.args)
                .map_err(|e| UsageError(format!("the arguments do not match {method}: {}", one_line(&e.to_string()))))?,
            None => idl,
        };
        let bytes = idl.to_bytes().map_err(|e| UsageError(format!("cannot encode the Candid arguments: {}", one_line(&e.to_string()))))?;
        Ok((invoke(&replica, id, &method, bytes, query).await?, types))
    })
    .await?;
    match outcome {
        Outcome::Reply(bytes) => {
            if raw {
                println!("{}", hex::encode(&bytes));
            } else {
                let typed = types.as_ref().and_then(|(env, f)| candid::IDLArgs::from_bytes_with_types(&bytes, env, &f.rets).ok());
                match typed.map_or_else(|| candid::IDLArgs::from_bytes(&bytes), Ok) {
                    Ok(v) => println!("{v}"),
                    Err(_) => println!("{}", hex::encode(&bytes)),
                }
            }
            Ok(0)
        }
        Outcome::Reject { code, message, .. } => Ok(report_reject(code, &message)),
    }
}

/// The Candid interface the canister's module carries, if any.
async fn carried_interface(replica: &replica::Client, id: Principal) -> anyhow::Result<Option<String>> {
    let mut req = replica.candid_request();
    req.get().set_canister(id.as_slice());
    let resp = req.send().promise.await.context("asking for the canister's Candid interface")?;
    let did = resp.get()?.get_interface()?.to_str()?;
    Ok((!did.is_empty()).then(|| did.to_string()))
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

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// `ww canister ...`.
pub async fn canister(command: CanisterCommand, state: PathBuf) -> anyhow::Result<i32> {
    with_replica(&state, false, |replica| async move {
        let mgmt = Principal::management_canister();
        match command {
            CanisterCommand::List => {
                let resp = replica.list_request().send().promise.await?;
                let list = resp.get()?.get_canisters()?;
                println!("{:<16} {:<29} {:<9} {:<18} {:>12} {:>20}", "NAME", "CANISTER ID", "STATUS", "MODULE HASH", "MEMORY", "CYCLES");
                for e in list.iter() {
                    let id = Principal::try_from_slice(e.get_id()?)?;
                    let hash = e.get_module_hash()?;
                    let hash = if hash.is_empty() { "-".to_string() } else { format!("0x{}", &hex::encode(hash)[..16]) };
                    let name = e.get_name()?.to_str()?;
                    println!(
                        "{:<16} {:<29} {:<9} {:<18} {:>12} {:>20}",
                        if name.is_empty() { "-" } else { name },
                        id.to_text(),
                        e.get_status()?.to_str()?,
                        hash,
                        e.get_memory_size(),
                        e.get_cycles()
                    );
                }
                Ok(0)
            }
            CanisterCommand::Status { canister } => {
                let id = resolve(&replica, &canister).await?;
                match invoke(&replica, mgmt, "canister_status", Encode!(&CanisterIdRecord { canister_id: id })?, false).await? {
                    Outcome::Reply(bytes) => {
                        let s = Decode!(&bytes, CanisterStatusResult)?;
                        println!("canister:    {}", id.to_text());
                        println!(
                            "status:      {}",
                            match s.status {
                                CanisterStatusType::Running => "running",
                                CanisterStatusType::Stopping => "stopping",
                                CanisterStatusType::Stopped => "stopped",
                            }
                        );
                        let controllers: Vec<String> = s.settings.controllers.iter().map(Principal::to_text).collect();
                        println!("controllers: {}", controllers.join(", "));
                        println!(
                            "module hash: {}",
                            s.module_hash.map_or("none".to_string(), |h| format!("0x{}", hex::encode(h)))
                        );
                        println!("memory:      {} bytes", s.memory_size);
                        println!("cycles:      {}", s.cycles);
                        if let Some(v) = s.version {
                            println!("version:     {v}");
                        }
                        Ok(0)
                    }
                    Outcome::Reject { code, message, .. } => Ok(report_reject(code, &message)),
                }
            }
            CanisterCommand::Start { canister } => lifecycle(&replica, "start_canister", &canister).await,
            CanisterCommand::Stop { canister } => lifecycle(&replica, "stop_canister", &canister).await,
            CanisterCommand::Delete { canister } => lifecycle(&replica, "delete_canister", &canister).await,
        }
    })
    .await
}

/// start/stop/delete through the management canister.
async fn lifecycle(replica: &replica::Client, method: &str, canister: &str) -> anyhow::Result<i32> {
    let id = resolve(replica, canister).await?;
    let arg = Encode!(&CanisterIdRecord { canister_id: id })?;
    match invoke(replica, Principal::management_canister(), method, arg, false).await? {
        Outcome::Reply(_) => {
            println!("{method}: {} done", id.to_text());
            Ok(0)
        }
        Outcome::Reject { code, message, .. } => Ok(report_reject(code, &message)),
    }
}

/// Prints the log lines a node streams back (`ww deploy`).
struct StderrLines;

impl line_sink::Server for StderrLines {
    async fn line(
        self: capnp::capability::Rc<Self>,
        params: line_sink::LineParams,
        _: line_sink::LineResults,
    ) -> Result<(), capnp::Error> {
        use std::io::Write;
        let text = params.get()?.get_text()?.to_str()?;
        // A closed stderr loses the line, never the deploy.
        let _ = writeln!(std::io::stderr().lock(), "{text}");
        Ok(())
    }
}

/// `ww deploy`: asks the node to run the image (`Admin.runImage`) and prints
/// its log lines as they come.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<i32> {
    let mut layers = Vec::with_capacity(args.images.len());
    for image in &args.images {
        let path = std::fs::canonicalize(image)
            .map_err(|e| UsageError(format!("{}: cannot open image layer: {e}", image.display())))?;
        if !path.is_dir() {
            return Err(UsageError(format!("{}: an image layer must be a directory", image.display())).into());
        }
        let text = path
            .to_str()
            .ok_or_else(|| UsageError(format!("{}: the path is not UTF-8", image.display())))?
            .to_string();
        layers.push(text);
    }
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let (admin, rpc) = ww::control::connect(&args.state).await?;
            let disconnector = rpc.get_disconnector();
            tokio::task::spawn_local(rpc);
            let mut req = admin.run_image_request();
            {
                let mut p = req.get();
                let mut list = p.reborrow().init_layers(layers.len() as u32);
                for (i, l) in layers.iter().enumerate() {
                    list.set(i as u32, l.as_str());
                }
                let mut list = p.reborrow().init_args(args.args.len() as u32);
                for (i, a) in args.args.iter().enumerate() {
                    list.set(i as u32, a.as_str());
                }
                p.set_log(capnp_rpc::new_client(StderrLines));
            }
            let resp = req.send().promise.await.context("running the image on the node")?;
            let resp = resp.get()?;
            let error = resp.get_error()?.to_str()?;
            let out = if error.is_empty() {
                Ok(resp.get_exit_code())
            } else {
                Err(UsageError(error.to_string()).into())
            };
            let _ = disconnector.await;
            out
        })
        .await
}
