//! The node's control socket: a Unix socket in the state directory serving
//! the `Admin` capability (see `capnp/ww.capnp`) to the CLI (`ww call`,
//! `ww canister ...`), and the client side the CLI uses.
//!
//! The socket is created with mode 0600 inside the state directory: whoever
//! can open it acts for the node's operator (the admin identity).

use std::path::{Path, PathBuf};

use capnp::capability::Rc as CapRc;
use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty::VatNetwork};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::node::Node;
use crate::rpc::ReplicaServer;
use crate::ww_capnp::{admin, line_sink};

/// File name of the control socket in the state directory.
pub const SOCKET_FILE: &str = "control.sock";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{path}: cannot serve the control socket: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: another node is already serving here")]
    InUse { path: PathBuf },
    #[error("no node is serving at {path} ({reason}); start one with `ww run --serve`")]
    NoNode { path: PathBuf, reason: String },
}

/// A running control socket; dropping it stops serving and removes the socket.
pub struct ControlServer {
    path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ControlServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the control socket for `node` in `state_dir`.
pub fn serve(node: Node, state_dir: &Path) -> Result<ControlServer, ControlError> {
    let path = state_dir.join(SOCKET_FILE);
    let bind_err = |source| ControlError::Bind { path: path.clone(), source };
    std::fs::create_dir_all(state_dir).map_err(bind_err)?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(ControlError::InUse { path });
        }
        // A socket left behind by a node that is gone.
        std::fs::remove_file(&path).map_err(bind_err)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(bind_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    }
    listener.set_nonblocking(true).map_err(bind_err)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("ww-control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "control socket runtime");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = match tokio::net::UnixListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, path = %thread_path.display(), "control socket");
                        return;
                    }
                };
                tokio::select! {
                    () = accept_loop(listener, node) => {}
                    _ = stop_rx => {}
                }
            });
        })
        .map_err(bind_err)?;
    tracing::info!(socket = %path.display(), "control socket ready");
    Ok(ControlServer { path, stop: Some(stop_tx) })
}

async fn accept_loop(listener: tokio::net::UnixListener, node: Node) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept");
                continue;
            }
        };
        let (r, w) = stream.into_split();
        let network = VatNetwork::new(r.compat(), w.compat_write(), Side::Server, Default::default());
        let admin: admin::Client = capnp_rpc::new_client(AdminServer { node: node.clone() });
        let rpc = RpcSystem::new(Box::new(network), Some(admin.client));
        tokio::task::spawn_local(async move {
            if let Err(e) = rpc.await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
}

struct AdminServer {
    node: Node,
}

impl admin::Server for AdminServer {
    async fn replica(self: CapRc<Self>, params: admin::ReplicaParams, mut results: admin::ReplicaResults) -> Result<(), capnp::Error> {
        let anonymous = params.get()?.get_anonymous();
        results.get().set_replica(capnp_rpc::new_client(ReplicaServer {
            replica: self.node.replica().clone(),
            caller: if anonymous { candid::Principal::anonymous() } else { self.node.admin() },
            guard: None,
        }));
        Ok(())
    }

    async fn advance_time(self: CapRc<Self>, params: admin::AdvanceTimeParams, _: admin::AdvanceTimeResults) -> Result<(), capnp::Error> {
        let nanos = params.get()?.get_nanos();
        self.node.replica().advance_time(std::time::Duration::from_nanos(nanos));
        self.node
            .replica()
            .persisted()
            .await
            .map_err(|why| capnp::Error::failed(format!("the replica's state directory cannot be written: {why}")))
    }

    async fn run_image(self: CapRc<Self>, params: admin::RunImageParams, mut results: admin::RunImageResults) -> Result<(), capnp::Error> {
        let params = params.get()?;
        let layers = params
            .get_layers()?
            .iter()
            .map(|l| Ok(PathBuf::from(l?.to_str()?)))
            .collect::<Result<Vec<_>, capnp::Error>>()?;
        let args = params
            .get_args()?
            .iter()
            .map(|a| Ok(a?.to_string()?))
            .collect::<Result<Vec<_>, capnp::Error>>()?;
        let sink = params.get_log()?;
        let image = match crate::image::merge_layers(&layers) {
            Ok(image) => image,
            Err(e) => {
                results.get().set_error(e.to_string());
                return Ok(());
            }
        };
        tracing::info!(layers = ?layers, "running an image for the control socket");
        let (tee, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let run = self.node.run_image_teed(&image, args, std::future::pending(), Some(tee));
        tokio::pin!(run);
        // Stream the lines while the image runs, in order; every line pid0
        // wrote is in the channel by the time it has exited.
        let outcome = loop {
            tokio::select! {
                biased;
                Some(line) = lines.recv() => send_line(&sink, line).await,
                outcome = &mut run => break outcome,
            }
        };
        while let Ok(line) = lines.try_recv() {
            send_line(&sink, line).await;
        }
        match outcome {
            Ok(code) => results.get().set_exit_code(code),
            Err(e) => results.get().set_error(e.to_string().replace('\n', " ")),
        }
        Ok(())
    }
}

/// Sends one log line to a caller's sink; a caller that hung up loses it
/// (the node log has it).
async fn send_line(sink: &line_sink::Client, line: String) {
    let mut req = sink.line_request();
    req.get().set_text(&line);
    if let Err(e) = req.send().promise.await {
        tracing::debug!(error = %e, "log line not delivered");
    }
}

/// Connects to the node serving at `state_dir`. Run the returned RPC system
/// (on a `LocalSet`) while using the client.
pub async fn connect(state_dir: &Path) -> Result<(admin::Client, RpcSystem<Side>), ControlError> {
    let path = state_dir.join(SOCKET_FILE);
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| ControlError::NoNode {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let (r, w) = stream.into_split();
    let network = VatNetwork::new(r.compat(), w.compat_write(), Side::Client, Default::default());
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let admin: admin::Client = rpc.bootstrap(Side::Server);
    Ok((admin, rpc))
}
