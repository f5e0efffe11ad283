//! A node: the engine, the process spawner, the session epoch and the network,
//! and booting an image on them.
//!
//! [`Node`] is the handle every part of the host shares (cheap to clone,
//! `Send`). [`Node::run_image`] is what `ww run` does: start every service
//! under `svc/`, start `bin/main.wasm` as pid0 with a full session, wait for
//! pid0, then stop the services (hang up their sessions, give them
//! [`SERVICE_STOP_GRACE`] to exit, then kill them).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;
use wasmtime::component::Component;

use crate::engine::{Engine, EngineConfig, LoadError, WasmHash};
use crate::image::{BootPeer, ImageError, MergedImage};
use crate::net::routing::{self, CanisterRange};
use crate::net::{NetConfig, NetError, Network, NetworkView, XnetConfig};
use crate::process::{self, LogTee, ProcessHandle, ProcessSpec, SpawnError, Spawner, StdioSpec};
use crate::rpc::{Grant, serve_session};

/// How long a service may take to exit after its session is hung up.
pub const SERVICE_STOP_GRACE: Duration = Duration::from_secs(2);

/// Exit code `ww run` returns when pid0 was stopped by a signal.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Settings a node starts with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub engine: EngineConfig,
    /// Worker threads for guests (default: one per core).
    pub workers: usize,
    /// Memory limit of pid0 and services; children get at most their parent's.
    pub memory_limit: usize,
    /// Addresses to listen on; empty means no sockets at all.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and keep connected (the image's `boot/`).
    pub boot: Vec<BootPeer>,
    /// Further peers trusted to connect (the image's `etc/peers`, `--trust`).
    pub trusted: Vec<PeerId>,
    /// The canister ids this node hosts when it is networked (the image's
    /// `etc/canister-range`); derived from the peer id when `None`.
    pub canister_range: Option<CanisterRange>,
    /// Where the admin identity and the control socket live; `None`
    /// means an ephemeral identity.
    pub state_dir: Option<std::path::PathBuf>,
    /// Keep the replica in `state_dir` (durable, restored at start).
    pub durable: bool,
    pub replica: crate::replica::ReplicaConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_limit: process::DEFAULT_MEMORY_LIMIT,
            listen: Vec::new(),
            boot: Vec::new(),
            trusted: Vec::new(),
            canister_range: None,
            state_dir: None,
            durable: false,
            replica: crate::replica::ReplicaConfig::default(),
        }
    }
}

/// Why a node could not start or run an image. Every variant but `Engine`
/// is the input's fault.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("replica: {0}")]
    Replica(#[from] crate::replica::exec::InstallError),
    #[error(transparent)]
    StateDir(#[from] crate::replica::durable::StateDirError),
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    spawner: Spawner,
    replica: crate::replica::Replica,
    /// The replica's certified state (the HTTP interface answers from it).
    certified: Arc<crate::certified::CertifiedState>,
    admin: candid::Principal,
    epoch: watch::Sender<u64>,
    network: Network,
    /// The boot peers the node started with.
    boot: Vec<PeerId>,
    memory_limit: usize,
}

impl Node {
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let mut engine_config = config.engine.clone();
        engine_config.max_memory = config.memory_limit;
        let engine = Engine::new(&engine_config)?;
        let spawner = Spawner::new(engine, config.workers)?;
        let canister_engine = Engine::new(&EngineConfig {
            kind: crate::engine::EngineKind::Canister,
            ..config.engine.clone()
        })?;
        let identity = match &config.state_dir {
            Some(dir) => crate::identity::load_or_create(dir)?,
            None => crate::identity::ephemeral(),
        };
        let networked = !config.listen.is_empty() || !config.boot.is_empty();
        let mut replica_config = config.replica.clone();
        let peer_id = identity.peer_id();
        let range = config.canister_range.clone().unwrap_or_else(|| routing::derived_range(&peer_id));
        // The certified state's keys follow from the node's identity; alone,
        // the node is the subnet its root key names (as agents derive it).
        let keys = crate::certified::keys::SubnetKeys::from_seed(&identity.derived_seed(b"ww certified state"));
        replica_config.root_key = std::sync::Arc::from(keys.root.der().to_vec());
        if networked {
            // Each node is a subnet: its own canister id range.
            let schedule = replica_config.subnets.first().map(|s| s.cost_schedule).unwrap_or_default();
            replica_config.subnets = vec![crate::replica::SubnetRange { cost_schedule: schedule, ..crate::replica::SubnetRange::new(routing::subnet_of(&peer_id), range.clone()) }];
        } else if let [only] = replica_config.subnets.as_mut_slice() {
            only.id = keys.root.subnet_id();
        }
        let ranges: Vec<(candid::Principal, candid::Principal)> = replica_config
            .subnets
            .iter()
            .map(|s| (crate::replica::canister_id(*s.canisters.start()), crate::replica::canister_id(*s.canisters.end())))
            .collect();
        let replica = match (&config.state_dir, config.durable) {
            (Some(dir), true) => {
                let replica = crate::replica::Replica::open_durable(canister_engine, replica_config, dir)?;
                // A networked node resumes the XNet streams its state
                // directory kept; without them (or without the network) the
                // calls to other nodes in flight at the last stop are lost.
                if !(networked && replica.has_router_image()) {
                    let lost = replica.fail_lost_remote_calls();
                    if lost > 0 {
                        tracing::warn!(calls = lost, "calls to other nodes were in flight at the last stop; answered SYS_TRANSIENT");
                    }
                }
                replica
            }
            _ => crate::replica::Replica::new(canister_engine, replica_config)?,
        };
        let certified = crate::certified::CertifiedState::new(replica.clone(), keys, &ranges);
        let admin = identity.admin;
        let net = NetConfig { keypair: identity.libp2p_keypair(), listen: config.listen.clone(), boot: config.boot.clone(), trusted: config.trusted.clone() };
        let xnet = networked.then(|| XnetConfig { replica: replica.clone(), admin, range, subnet: routing::subnet_of(&peer_id) });
        let network = Network::start(net, xnet).await?;
        let (epoch, _) = watch::channel(0);
        let node = Self {
            inner: Arc::new(NodeInner {
                spawner,
                replica,
                certified,
                admin,
                epoch,
                network,
                boot: config.boot.iter().map(|p| p.peer_id).collect(),
                memory_limit: config.memory_limit,
            }),
        };
        crate::rpc::serve_peer_sessions(&node);
        Ok(node)
    }

    pub fn engine(&self) -> &Engine {
        self.inner.spawner.engine()
    }

    /// The node's replica (its canisters).
    pub fn replica(&self) -> &crate::replica::Replica {
        &self.inner.replica
    }

    /// The replica's certified state: its keys, state tree and ingress history.
    pub fn certified(&self) -> &Arc<crate::certified::CertifiedState> {
        &self.inner.certified
    }

    /// The node's admin principal: the caller for pid0 and the CLI.
    pub fn admin(&self) -> candid::Principal {
        self.inner.admin
    }

    pub fn network(&self) -> &NetworkView {
        self.inner.network.view()
    }

    /// Raw streams to and from peers, when the node is networked.
    pub fn network_streams(&self) -> Option<libp2p_stream::Control> {
        self.inner.network.streams()
    }

    /// Cross-node calls, when the node is networked.
    pub fn xnet(&self) -> Option<&Arc<crate::net::xnet::Xnet>> {
        self.inner.network.xnet()
    }

    pub fn memory_limit(&self) -> usize {
        self.inner.memory_limit
    }

    /// The current session epoch.
    pub fn epoch(&self) -> u64 {
        *self.inner.epoch.borrow()
    }

    pub fn subscribe_epoch(&self) -> watch::Receiver<u64> {
        self.inner.epoch.subscribe()
    }

    /// Moves to a new epoch: every capability issued before fails with
    /// `staleEpoch` until its holder grafts again. Returns the new epoch.
    pub fn advance_epoch(&self) -> u64 {
        let mut new = 0;
        self.inner.epoch.send_modify(|e| {
            *e += 1;
            new = *e;
        });
        tracing::info!(epoch = new, "epoch advanced");
        new
    }

    /// Loads a component, compiling on a blocking thread when it is not cached.
    pub async fn load(&self, what: String, bytes: Vec<u8>) -> Result<(WasmHash, Component), LoadError> {
        let engine = self.engine().clone();
        let hash = WasmHash::of(&bytes);
        if engine.is_cached(&hash) {
            return engine.load_hashed(&what, &bytes, hash);
        }
        tokio::task::spawn_blocking(move || engine.load_hashed(&what, &bytes, hash))
            .await
            .map_err(|e| LoadError::Engine(format!("compile task failed: {e}")))?
    }

    /// Loads a component file (see [`Node::load`]).
    pub async fn load_file(&self, path: &Path) -> Result<(WasmHash, Component), LoadError> {
        let what = path.display().to_string();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read { what: what.clone(), source })?;
        self.load(what, bytes).await
    }

    /// Starts a child from component bytes (what `Executor.runBytes` does).
    pub async fn spawn_bytes(
        &self,
        name: &str,
        wasm: Vec<u8>,
        args: Vec<String>,
        env: Vec<(String, String)>,
        root: Option<Arc<Path>>,
        memory_limit: usize,
        stdio: StdioSpec,
    ) -> Result<ProcessHandle, NodeError> {
        let component = self.load(name.to_string(), wasm).await?;
        let spec = ProcessSpec {
            name: name.to_string(),
            component,
            args,
            env,
            root: root.map(|r| r.to_path_buf()),
            memory_limit,
            stdio,
            log_tee: None,
        };
        Ok(self.inner.spawner.spawn(spec).await?)
    }

    /// Starts a process from an image root with a full session; its stderr
    /// lines also go to `log_tee`.
    pub async fn spawn_session(
        &self,
        name: &str,
        component: (WasmHash, Component),
        root: &Path,
        args: Vec<String>,
        log_tee: Option<LogTee>,
    ) -> Result<ProcessHandle, NodeError> {
        let grant = Grant::full(self.inner.memory_limit);
        let spec = ProcessSpec {
            name: name.to_string(),
            component,
            args,
            env: Vec::new(),
            root: Some(root.to_path_buf()),
            memory_limit: grant.memory_limit,
            stdio: StdioSpec::Session(serve_session(
                self.clone(),
                grant,
                Some(Arc::from(root)),
                name.to_string(),
            )),
            log_tee,
        };
        Ok(self.inner.spawner.spawn(spec).await?)
    }

    /// Boots `image`: services first, then pid0. Returns pid0's exit code, or
    /// [`EXIT_INTERRUPTED`] if `interrupt` resolves first (pid0 is then killed).
    pub async fn run_image(
        &self,
        image: &MergedImage,
        args: Vec<String>,
        interrupt: impl Future<Output = ()>,
    ) -> Result<i32, NodeError> {
        self.run_image_teed(image, args, interrupt, None).await
    }

    /// [`Node::run_image`], with every stderr line of the image's processes
    /// also sent to `log_tee` (what `Admin.runImage` streams to its caller).
    pub async fn run_image_teed(
        &self,
        image: &MergedImage,
        args: Vec<String>,
        interrupt: impl Future<Output = ()>,
        log_tee: Option<LogTee>,
    ) -> Result<i32, NodeError> {
        let services = image.services()?;
        let peers = image.boot_peers()?;
        if peers.iter().any(|p| !self.inner.boot.contains(&p.peer_id)) {
            tracing::info!("the image's boot/ peers are dialed when a node starts with it (`ww run`); this node started without them");
        }
        // Load (compile if needed) every component concurrently.
        let main_path = image.main_wasm();
        let main = self.load_file(&main_path);
        let svc_loads = futures::future::try_join_all(services.iter().map(|s| self.load_file_owned(s.main_wasm())));
        let (main, svc_components) = futures::future::try_join(main, svc_loads).await?;

        let mut running = Vec::new();
        for (svc, component) in services.iter().zip(svc_components) {
            let handle = self.spawn_session(&svc.name, component, &svc.root, Vec::new(), log_tee.clone()).await?;
            tracing::info!(service = %svc.name, "service started");
            running.push(handle);
        }
        let pid0 = match self.spawn_session("pid0", main, image.root(), args, log_tee).await {
            Ok(p) => p,
            Err(e) => {
                stop_services(running).await;
                return Err(e);
            }
        };
        let code = tokio::select! {
            code = pid0.wait() => code,
            () = interrupt => {
                tracing::info!("interrupted; stopping pid0");
                pid0.kill();
                pid0.wait().await;
                EXIT_INTERRUPTED
            }
        };
        tracing::debug!(code, "pid0 exited");
        stop_services(running).await;
        Ok(code)
    }

    async fn load_file_owned(&self, path: std::path::PathBuf) -> Result<(WasmHash, Component), LoadError> {
        self.load_file(&path).await
    }
}

/// Hangs up every service's session, waits up to [`SERVICE_STOP_GRACE`] for
/// it to exit, then kills what is left.
async fn stop_services(services: Vec<ProcessHandle>) {
    for s in &services {
        s.hang_up();
    }
    let waits = services.iter().map(|s| async move {
        if tokio::time::timeout(SERVICE_STOP_GRACE, s.wait()).await.is_err() {
            tracing::warn!(service = %s.name(), "did not exit after hang-up; killing");
            s.kill();
        }
        let code = s.wait().await;
        tracing::info!(service = %s.name(), code, "service stopped");
    });
    futures::future::join_all(waits).await;
}
