//! Cap'n Proto servers for the capabilities in `capnp/ww.capnp`, and the
//! epoch guards that scope them.
//!
//! One [`serve_session`] runs per guest connection, on the guest's worker
//! thread (capnp-rpc is single-threaded). Each server holds a [`Scope`]: the
//! node, the session's [`Grant`] and its [`EpochGuard`]. Every method checks
//! the guard first, so once the node advances its epoch everything issued
//! before fails with `staleEpoch:` until the guest grafts again.
//!
//! Attenuation rule: a child spawned through an `Executor` gets
//! `parent_grant.narrow(requested)` — a capability is granted only if both
//! the parent's session holds it and the request asks for it, and the memory
//! limit is the smaller of the two. So no session is ever wider than the one
//! that created it, however deep the tree.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use capnp::capability::Rc as CapRc;
use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty::VatNetwork};
use tokio::sync::watch;

use crate::node::Node;
use crate::pipe::{PipeReader, PipeWriter};
use crate::process::{ProcessHandle, SessionServer, StdioSpec};
use crate::ww_capnp::{byte_stream, executor, host, membrane, process, replica};

/// Largest read a guest can ask a ByteStream for; larger requests are clamped.
pub const MAX_STREAM_READ: u32 = 64 << 10;
/// Largest capnp message the host accepts from a guest (words of 8 bytes).
pub const MAX_MESSAGE_WORDS: usize = 16 << 20; // 128 MiB

/// Prefix of the error a capability from an older epoch fails with.
pub const STALE_EPOCH: &str = "staleEpoch";

/// What a session may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub host: bool,
    pub executor: bool,
    /// The node's replica (canisters), calling as the node's admin identity.
    pub replica: bool,
    /// The session's root directory (if it has one) for its children.
    pub filesystem: bool,
    pub memory_limit: usize,
}

impl Grant {
    /// Everything, within the given memory limit.
    pub fn full(memory_limit: usize) -> Self {
        Self {
            host: true,
            executor: true,
            replica: true,
            filesystem: true,
            memory_limit,
        }
    }

    /// The grant for a child: never wider than `self`.
    pub fn narrow(&self, requested: Grant) -> Grant {
        let memory_limit = match requested.memory_limit {
            0 => self.memory_limit,
            n => n.min(self.memory_limit),
        };
        Grant {
            host: self.host && requested.host,
            executor: self.executor && requested.executor,
            replica: self.replica && requested.replica,
            filesystem: self.filesystem && requested.filesystem,
            memory_limit,
        }
    }
}

/// Fails calls once the node's epoch has moved past the one it was issued in.
#[derive(Clone)]
pub struct EpochGuard {
    issued: u64,
    current: watch::Receiver<u64>,
}

impl EpochGuard {
    pub fn new(current: watch::Receiver<u64>) -> Self {
        let issued = *current.borrow();
        Self { issued, current }
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    pub fn check(&self) -> Result<(), capnp::Error> {
        let now = *self.current.borrow();
        if now == self.issued {
            Ok(())
        } else {
            Err(capnp::Error::failed(format!(
                "{STALE_EPOCH}: capability issued in epoch {} but the node is in epoch {now}; graft again",
                self.issued
            )))
        }
    }
}

/// What every server of one session shares.
#[derive(Clone)]
struct Scope {
    node: Node,
    grant: Grant,
    root: Option<Arc<Path>>,
    guard: EpochGuard,
}

/// A session server for a guest: bootstraps a [`membrane`] that issues
/// sessions with `grant`; `root` is the guest's own root directory, which its
/// children may inherit. Returns the future factory a process runs on its
/// worker thread.
pub fn serve_session(node: Node, grant: Grant, root: Option<Arc<Path>>, name: String) -> SessionServer {
    Box::new(move |from_guest: PipeReader, to_guest: PipeWriter| {
        Box::pin(async move {
            let mut options = capnp::message::ReaderOptions::new();
            options.traversal_limit_in_words(Some(MAX_MESSAGE_WORDS));
            let network = VatNetwork::new(from_guest, to_guest, Side::Server, options);
            let membrane: membrane::Client = capnp_rpc::new_client(MembraneServer { node, grant, root });
            let rpc = RpcSystem::new(Box::new(network), Some(membrane.client));
            match rpc.await {
                Ok(()) => tracing::debug!(process = %name, "session closed"),
                Err(e) => tracing::debug!(process = %name, error = %e, "session ended"),
            }
        })
    })
}

struct MembraneServer {
    node: Node,
    grant: Grant,
    root: Option<Arc<Path>>,
}

impl membrane::Server for MembraneServer {
    async fn graft(
        self: CapRc<Self>,
        _: membrane::GraftParams,
        mut results: membrane::GraftResults,
    ) -> Result<(), capnp::Error> {
        let scope = Scope {
            node: self.node.clone(),
            grant: self.grant,
            root: self.root.clone(),
            guard: EpochGuard::new(self.node.subscribe_epoch()),
        };
        let mut session = results.get().init_session();
        session.set_epoch(scope.guard.issued());
        if scope.grant.host {
            session.set_host(capnp_rpc::new_client(HostServer {
                scope: scope.clone(),
            }));
        } else {
            session.set_host(host::Client {
                client: capnp_rpc::new_broken_cap(capnp::Error::failed(
                    "permission denied: this session holds no Host capability".into(),
                )),
            });
        }
        if scope.grant.replica {
            session.set_replica(capnp_rpc::new_client(ReplicaServer {
                replica: scope.node.replica().clone(),
                caller: scope.node.admin(),
                guard: Some(scope.guard.clone()),
            }));
        } else {
            session.set_replica(replica::Client {
                client: capnp_rpc::new_broken_cap(capnp::Error::failed(
                    "permission denied: this session holds no Replica capability".into(),
                )),
            });
        }
        if scope.grant.executor {
            session.set_executor(capnp_rpc::new_client(ExecutorServer { scope }));
        } else {
            session.set_executor(executor::Client {
                client: capnp_rpc::new_broken_cap(capnp::Error::failed(
                    "permission denied: this session holds no Executor capability".into(),
                )),
            });
        }
        Ok(())
    }
}

struct HostServer {
    scope: Scope,
}

fn reader_options() -> capnp::message::ReaderOptions {
    let mut options = capnp::message::ReaderOptions::new();
    options.traversal_limit_in_words(Some(MAX_MESSAGE_WORDS));
    options
}

/// Serves `Host.dial` sessions from trusted peers: each stream on
/// [`crate::net::PEER_SESSION_PROTOCOL`] bootstraps a `Replica` calling as
/// the dialing node's principal, guarded by this node's epoch. Runs on a
/// thread of its own (Cap'n Proto sessions are not `Send`).
pub fn serve_peer_sessions(node: &Node) {
    let Some(mut control) = node.network_streams() else { return };
    let mut incoming = match control.accept(crate::net::PEER_SESSION_PROTOCOL) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("cannot accept {}: {e}", crate::net::PEER_SESSION_PROTOCOL);
            return;
        }
    };
    // Not the node itself: the thread must not keep it alive.
    let (replica, epoch) = (node.replica().clone(), node.subscribe_epoch());
    let spawned = std::thread::Builder::new().name("ww-peer-sessions".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!("peer sessions: {e}"),
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            use futures::{AsyncReadExt, StreamExt};
            while let Some((peer, stream)) = incoming.next().await {
                let Some(caller) = crate::identity::principal_of_peer(&peer) else {
                    tracing::warn!(%peer, "refusing a session: the peer id carries no Ed25519 key");
                    continue;
                };
                tracing::info!(%peer, "a peer opened a session to this node's Replica");
                let (rd, wr) = stream.split();
                let network = VatNetwork::new(rd, wr, Side::Server, reader_options());
                let server: replica::Client = capnp_rpc::new_client(ReplicaServer {
                    replica: replica.clone(),
                    caller,
                    guard: Some(EpochGuard::new(epoch.clone())),
                });
                let rpc = RpcSystem::new(Box::new(network), Some(server.client));
                tokio::task::spawn_local(async move {
                    if let Err(e) = rpc.await {
                        tracing::debug!(%peer, "peer session ended: {e}");
                    }
                });
            }
        });
    });
    if let Err(e) = spawned {
        tracing::error!("peer sessions: {e}");
    }
}

impl host::Server for HostServer {
    async fn id(self: CapRc<Self>, _: host::IdParams, mut results: host::IdResults) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let id = self.scope.node.network().snapshot().peer_id.to_string();
        results.get().set_peer_id(&id);
        Ok(())
    }

    async fn addrs(
        self: CapRc<Self>,
        _: host::AddrsParams,
        mut results: host::AddrsResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let snap = self.scope.node.network().snapshot();
        let mut list = results.get().init_addrs(len_u32(snap.listen_addrs.len())?);
        for (i, a) in snap.listen_addrs.iter().enumerate() {
            list.set(i as u32, a.to_string());
        }
        Ok(())
    }

    async fn dial(self: CapRc<Self>, params: host::DialParams, mut results: host::DialResults) -> Result<(), capnp::Error> {
        use futures::AsyncReadExt;
        self.scope.guard.check()?;
        let text = params.get()?.get_peer()?.to_str()?.to_string();
        let peer: libp2p::PeerId = text.parse().map_err(|e| capnp::Error::failed(format!("dial {text}: not a peer id: {e}")))?;
        let mut control = self.scope.node.network_streams().ok_or_else(|| capnp::Error::failed(format!("dial {peer}: this node is not networked (no --listen, no boot/ peers)")))?;
        let stream = control
            .open_stream(peer, crate::net::PEER_SESSION_PROTOCOL)
            .await
            .map_err(|e| capnp::Error::failed(format!("dial {peer}: {e} (is it a trusted, reachable peer?)")))?;
        let (rd, wr) = stream.split();
        let network = VatNetwork::new(rd, wr, Side::Client, reader_options());
        let mut rpc = RpcSystem::new(Box::new(network), None);
        let replica: replica::Client = rpc.bootstrap(Side::Server);
        tokio::task::spawn_local(async move {
            if let Err(e) = rpc.await {
                tracing::debug!(%peer, "session to the peer ended: {e}");
            }
        });
        results.get().set_replica(replica);
        Ok(())
    }

    async fn peers(
        self: CapRc<Self>,
        _: host::PeersParams,
        mut results: host::PeersResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let snap = self.scope.node.network().snapshot();
        let mut list = results.get().init_peers(len_u32(snap.peers.len())?);
        // The addresses a connection came from, then those the peer told
        // (identify).
        let learned: std::collections::HashMap<_, _> = snap.learned.iter().cloned().collect();
        for (i, (peer, seen)) in snap.peers.iter().enumerate() {
            let mut addrs = seen.clone();
            addrs.extend(learned.get(peer).into_iter().flatten().filter(|a| !seen.contains(a)).cloned());
            let mut p = list.reborrow().get(i as u32);
            p.set_peer_id(peer.to_string());
            let mut al = p.init_addrs(len_u32(addrs.len())?);
            for (j, a) in addrs.iter().enumerate() {
                al.set(j as u32, a.to_string());
            }
        }
        Ok(())
    }
}

struct ExecutorServer {
    scope: Scope,
}

impl executor::Server for ExecutorServer {
    async fn echo(
        self: CapRc<Self>,
        params: executor::EchoParams,
        mut results: executor::EchoResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let message = params.get()?.get_message()?;
        results.get().set_response(message);
        Ok(())
    }

    async fn run_bytes(
        self: CapRc<Self>,
        params: executor::RunBytesParams,
        mut results: executor::RunBytesResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let p = params.get()?;
        let wasm = p.get_wasm()?.to_vec();
        let args = text_list(p.get_args()?)?;
        let mut env = Vec::new();
        for entry in text_list(p.get_env()?)? {
            let Some((k, v)) = entry.split_once('=') else {
                return Err(capnp::Error::failed(format!(
                    "runBytes: env entry {entry:?} is not KEY=VALUE"
                )));
            };
            env.push((k.to_string(), v.to_string()));
        }
        let (name, stdio_mode, requested) = if p.has_options() {
            let o = p.get_options()?;
            let name = if o.has_name() {
                o.get_name()?.to_str()?.to_string()
            } else {
                String::new()
            };
            let mode = o.get_stdio().map_err(|e| capnp::Error::failed(format!("runBytes: {e}")))?;
            let requested = if o.has_grant() {
                let g = o.get_grant()?;
                Grant {
                    host: g.get_host(),
                    executor: g.get_executor(),
                    replica: g.get_replica(),
                    filesystem: g.get_filesystem(),
                    memory_limit: usize::try_from(g.get_memory_limit()).unwrap_or(usize::MAX),
                }
            } else {
                self.scope.grant
            };
            (name, mode, requested)
        } else {
            (String::new(), crate::ww_capnp::StdioMode::Session, self.scope.grant)
        };
        let name = if name.is_empty() { "child".to_string() } else { name };
        let grant = self.scope.grant.narrow(requested);
        let node = self.scope.node.clone();
        let root = if grant.filesystem { self.scope.root.clone() } else { None };
        let stdio = match stdio_mode {
            crate::ww_capnp::StdioMode::Session => {
                StdioSpec::Session(serve_session(node.clone(), grant, root.clone(), name.clone()))
            }
            crate::ww_capnp::StdioMode::Pipes => StdioSpec::Pipes,
        };
        let handle = node
            .spawn_bytes(&name, wasm, args, env, root, grant.memory_limit, stdio)
            .await
            .map_err(|e| capnp::Error::failed(format!("runBytes: {e}")))?;
        results.get().set_process(capnp_rpc::new_client(ProcessServer {
            scope: self.scope.clone(),
            handle: Rc::new(handle),
        }));
        Ok(())
    }
}

/// A child process as a capability. The child lives as long as this server:
/// when the last reference is released, the child is killed.
struct ProcessServer {
    scope: Scope,
    handle: Rc<ProcessHandle>,
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        if self.handle.try_exit_code().is_none() {
            tracing::debug!(process = self.handle.name(), "process capability released; killing");
        }
        self.handle.kill();
    }
}

impl process::Server for ProcessServer {
    async fn wait(
        self: CapRc<Self>,
        _: process::WaitParams,
        mut results: process::WaitResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let code = self.handle.wait().await;
        results.get().set_exit_code(code);
        Ok(())
    }

    async fn kill(self: CapRc<Self>, _: process::KillParams, _: process::KillResults) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        self.handle.kill();
        Ok(())
    }

    async fn stdin(
        self: CapRc<Self>,
        _: process::StdinParams,
        mut results: process::StdinResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let w = self.handle.take_stdin().ok_or_else(|| {
            capnp::Error::failed(
                "stdin: not available (the child's stdin carries its session, or it was already taken)".into(),
            )
        })?;
        results.get().set_stream(capnp_rpc::new_client(ByteStreamServer {
            guard: self.scope.guard.clone(),
            reader: None,
            writer: Some(w),
        }));
        Ok(())
    }

    async fn stdout(
        self: CapRc<Self>,
        _: process::StdoutParams,
        mut results: process::StdoutResults,
    ) -> Result<(), capnp::Error> {
        self.scope.guard.check()?;
        let r = self.handle.take_stdout().ok_or_else(|| {
            capnp::Error::failed(
                "stdout: not available (the child's stdout carries its session, or it was already taken)".into(),
            )
        })?;
        results.get().set_stream(capnp_rpc::new_client(ByteStreamServer {
            guard: self.scope.guard.clone(),
            reader: Some(r),
            writer: None,
        }));
        Ok(())
    }
}

struct ByteStreamServer {
    guard: EpochGuard,
    reader: Option<PipeReader>,
    writer: Option<PipeWriter>,
}

impl byte_stream::Server for ByteStreamServer {
    async fn read(
        self: CapRc<Self>,
        params: byte_stream::ReadParams,
        mut results: byte_stream::ReadResults,
    ) -> Result<(), capnp::Error> {
        self.guard.check()?;
        let max = params.get()?.get_max_bytes().min(MAX_STREAM_READ) as usize;
        let reader = self
            .reader
            .as_ref()
            .ok_or_else(|| capnp::Error::failed("read: this stream is write-only".into()))?;
        let data = reader.read(max).await;
        results.get().set_data(&data);
        Ok(())
    }

    async fn write(
        self: CapRc<Self>,
        params: byte_stream::WriteParams,
        _: byte_stream::WriteResults,
    ) -> Result<(), capnp::Error> {
        self.guard.check()?;
        let data = params.get()?.get_data()?;
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| capnp::Error::failed("write: this stream is read-only".into()))?;
        writer
            .write_all(data)
            .await
            .map_err(|e| capnp::Error::failed(format!("write: {e}")))
    }

    async fn close(
        self: CapRc<Self>,
        _: byte_stream::CloseParams,
        _: byte_stream::CloseResults,
    ) -> Result<(), capnp::Error> {
        self.guard.check()?;
        if let Some(w) = &self.writer {
            w.close();
        }
        Ok(())
    }
}

/// The replica as a capability, calling as `caller`.
pub struct ReplicaServer {
    pub replica: crate::replica::Replica,
    pub caller: candid::Principal,
    /// Epoch scope, for capabilities handed out in sessions.
    pub guard: Option<EpochGuard>,
}

impl ReplicaServer {
    fn check(&self) -> Result<(), capnp::Error> {
        match &self.guard {
            Some(g) => g.check(),
            None => Ok(()),
        }
    }
}

fn principal_arg(bytes: &[u8]) -> Result<candid::Principal, capnp::Error> {
    candid::Principal::try_from_slice(bytes).map_err(|e| capnp::Error::failed(format!("not a principal: {e}")))
}

fn fill_result(mut out: crate::ww_capnp::call_result::Builder, result: crate::replica::CallResult) {
    match result {
        Ok(bytes) => out.set_reply(&bytes),
        Err(r) => {
            let mut rj = out.init_reject();
            rj.set_code(r.code as u32);
            rj.set_error_code(r.error_code.map(|c| c.to_string()).unwrap_or_default());
            rj.set_message(&r.message);
        }
    }
}

impl ReplicaServer {
    /// Waits until what the replica did so far is durable (a replica with
    /// a state directory): nothing is acknowledged before it is on disk.
    async fn acknowledge(&self) -> Result<(), capnp::Error> {
        self.replica
            .persisted()
            .await
            .map_err(|why| capnp::Error::failed(format!("the replica's state directory cannot be written: {why}")))
    }
}

impl replica::Server for ReplicaServer {
    async fn call(self: CapRc<Self>, params: replica::CallParams, mut results: replica::CallResults) -> Result<(), capnp::Error> {
        self.check()?;
        let p = params.get()?;
        let canister = principal_arg(p.get_canister()?)?;
        let method = p.get_method()?.to_str()?.to_string();
        let arg = p.get_arg()?.to_vec();
        let r = self.replica.call(self.caller, canister, &method, arg).await;
        self.acknowledge().await?;
        fill_result(results.get().init_result(), r);
        Ok(())
    }

    async fn query(self: CapRc<Self>, params: replica::QueryParams, mut results: replica::QueryResults) -> Result<(), capnp::Error> {
        self.check()?;
        let p = params.get()?;
        let canister = principal_arg(p.get_canister()?)?;
        let method = p.get_method()?.to_str()?.to_string();
        let arg = p.get_arg()?.to_vec();
        let r = self.replica.query(self.caller, canister, &method, arg).await;
        fill_result(results.get().init_result(), r);
        Ok(())
    }

    async fn set_name(self: CapRc<Self>, params: replica::SetNameParams, _: replica::SetNameResults) -> Result<(), capnp::Error> {
        self.check()?;
        let p = params.get()?;
        let name = p.get_name()?.to_str()?.to_string();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(capnp::Error::failed(format!("setName: {name:?} is not a valid name")));
        }
        let canister = principal_arg(p.get_canister()?)?;
        if !self.replica.exists(&canister) {
            return Err(capnp::Error::failed(format!("setName: canister {canister} does not exist")));
        }
        self.replica.set_name(&name, canister);
        self.acknowledge().await
    }

    async fn lookup(self: CapRc<Self>, params: replica::LookupParams, mut results: replica::LookupResults) -> Result<(), capnp::Error> {
        self.check()?;
        let name = params.get()?.get_name()?.to_str()?.to_string();
        if let Some(p) = self.replica.lookup_name(&name) {
            results.get().set_canister(p.as_slice());
        }
        Ok(())
    }

    async fn list(self: CapRc<Self>, _: replica::ListParams, mut results: replica::ListResults) -> Result<(), capnp::Error> {
        self.check()?;
        let names: std::collections::HashMap<candid::Principal, String> =
            self.replica.names().into_iter().map(|(n, p)| (p, n)).collect();
        let ids = self.replica.canister_ids();
        let mut list = results.get().init_canisters(len_u32(ids.len())?);
        for (i, id) in ids.iter().enumerate() {
            let Some(st) = self.replica.status(id) else { continue };
            let mut e = list.reborrow().get(i as u32);
            e.set_id(id.as_slice());
            e.set_name(names.get(id).map_or("", String::as_str));
            e.set_status(match st.status {
                crate::replica::Status::Running => "running",
                crate::replica::Status::Stopping => "stopping",
                crate::replica::Status::Stopped => "stopped",
            });
            if let Some(h) = st.module_hash {
                e.set_module_hash(&h);
            }
            e.set_memory_size(st.memory_size);
            e.set_cycles(u64::try_from(st.cycles).unwrap_or(u64::MAX));
        }
        Ok(())
    }

    async fn hosts(self: CapRc<Self>, _: replica::HostsParams, mut results: replica::HostsResults) -> Result<(), capnp::Error> {
        self.check()?;
        let ranges = self.replica.hosted_ranges();
        let mut list = results.get().init_ranges(len_u32(ranges.len())?);
        for (i, (node, range)) in ranges.iter().enumerate() {
            let mut e = list.reborrow().get(i as u32);
            e.set_node(node.as_deref().unwrap_or(""));
            e.set_first(crate::replica::canister_id(*range.start()).as_slice());
            e.set_last(crate::replica::canister_id(*range.end()).as_slice());
        }
        Ok(())
    }

    async fn principal(self: CapRc<Self>, _: replica::PrincipalParams, mut results: replica::PrincipalResults) -> Result<(), capnp::Error> {
        self.check()?;
        results.get().set_principal(self.caller.as_slice());
        Ok(())
    }

    async fn candid(self: CapRc<Self>, params: replica::CandidParams, mut results: replica::CandidResults) -> Result<(), capnp::Error> {
        self.check()?;
        let id = candid::Principal::try_from_slice(params.get()?.get_canister()?)
            .map_err(|e| capnp::Error::failed(format!("not a principal: {e}")))?;
        if let Some(did) = self.replica.candid_interface(&id) {
            results.get().set_interface(&*did);
        }
        Ok(())
    }

    async fn canister_info(self: CapRc<Self>, params: replica::CanisterInfoParams, mut results: replica::CanisterInfoResults) -> Result<(), capnp::Error> {
        self.check()?;
        let params = params.get()?;
        let id = candid::Principal::try_from_slice(params.get_canister()?)
            .map_err(|e| capnp::Error::failed(format!("not a principal: {e}")))?;
        if let Some(info) = self.replica.canister_info(&id, params.get_changes()) {
            let bytes = candid::encode_one(&info).map_err(|e| capnp::Error::failed(format!("encoding canister_info: {e}")))?;
            results.get().set_info(&bytes);
        }
        Ok(())
    }
}

fn text_list(list: capnp::text_list::Reader) -> Result<Vec<String>, capnp::Error> {
    let mut out = Vec::with_capacity(list.len() as usize);
    for t in list.iter() {
        out.push(t?.to_str()?.to_string());
    }
    Ok(out)
}

fn len_u32(n: usize) -> Result<u32, capnp::Error> {
    u32::try_from(n).map_err(|_| capnp::Error::failed("list too long".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_never_widens() {
        let parent = Grant {
            host: false,
            executor: true,
            replica: true,
            filesystem: true,
            memory_limit: 64 << 20,
        };
        let asked = Grant::full(1 << 30);
        assert_eq!(
            parent.narrow(asked),
            Grant {
                host: false,
                executor: true,
                replica: true,
                filesystem: true,
                memory_limit: 64 << 20
            }
        );
        let asked_small = Grant {
            host: true,
            executor: false,
            replica: false,
            filesystem: false,
            memory_limit: 0,
        };
        assert_eq!(
            parent.narrow(asked_small),
            Grant {
                host: false,
                executor: false,
                replica: false,
                filesystem: false,
                memory_limit: 64 << 20
            }
        );
    }

    #[test]
    fn guard_goes_stale_when_epoch_advances() {
        let (tx, rx) = watch::channel(7u64);
        let g = EpochGuard::new(rx);
        assert!(g.check().is_ok());
        tx.send(8).unwrap();
        let err = g.check().unwrap_err();
        assert!(err.to_string().contains("staleEpoch"), "{err}");
    }
}
