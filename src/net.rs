//! The node's libp2p identity and network view.
//!
//! Every node has an Ed25519 identity (its peer id). It listens only on the
//! addresses it is asked to (`ww run --listen <multiaddr>`), never on all
//! interfaces by default; without `--listen` no swarm runs at all. The
//! [`NetworkView`] is the snapshot guests read through `Host`: peer id,
//! listen addresses, connected peers. Dialing the image's `boot/` peers and
//! carrying sessions between nodes come with the networking work.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, identify, noise, tcp, yamux};

/// How long the node waits for its listeners to come up.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("--listen {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("network setup failed: {0}")]
    Setup(String),
}

/// What the node knows about its place in the network right now.
#[derive(Clone, Debug)]
pub struct NetworkSnapshot {
    pub peer_id: PeerId,
    pub listen_addrs: Vec<Multiaddr>,
    /// Connected peers with the addresses we know them by.
    pub peers: Vec<(PeerId, Vec<Multiaddr>)>,
}

/// Shared, always-current network snapshot. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NetworkView(Arc<RwLock<NetworkState>>);

#[derive(Debug)]
struct NetworkState {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    peers: BTreeMap<PeerId, Vec<Multiaddr>>,
}

impl NetworkView {
    fn new(peer_id: PeerId) -> Self {
        Self(Arc::new(RwLock::new(NetworkState {
            peer_id,
            listen_addrs: Vec::new(),
            peers: BTreeMap::new(),
        })))
    }

    pub fn snapshot(&self) -> NetworkSnapshot {
        let st = self.0.read().unwrap_or_else(|e| e.into_inner());
        NetworkSnapshot {
            peer_id: st.peer_id,
            listen_addrs: st.listen_addrs.clone(),
            peers: st.peers.iter().map(|(p, a)| (*p, a.clone())).collect(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut NetworkState)) {
        let mut st = self.0.write().unwrap_or_else(|e| e.into_inner());
        f(&mut st);
    }
}

/// The running network side of a node. Dropping it stops the swarm.
pub struct Network {
    view: NetworkView,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Network {
    pub fn view(&self) -> &NetworkView {
        &self.view
    }

    /// Starts the network with `keypair`. With no listen addresses no swarm
    /// is started: the node has an identity but no sockets.
    pub async fn start(keypair: Keypair, listen: &[Multiaddr]) -> Result<Self, NetError> {
        let view = NetworkView::new(keypair.public().to_peer_id());
        if listen.is_empty() {
            return Ok(Self { view, task: None });
        }
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(|key| identify::Behaviour::new(identify::Config::new("/ww/0.1.0".into(), key.public())))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .build();
        let mut pending = Vec::new();
        for addr in listen {
            let id = swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
            pending.push((id, addr.clone()));
        }
        // Wait until every listener reports an address (or fails), so guests
        // see real addresses from their first call.
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        while !pending.is_empty() {
            let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .map_err(|_| NetError::Listen {
                    addr: pending[0].1.clone(),
                    reason: "timed out waiting for the listener".into(),
                })?;
            match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    view.update(|s| s.listen_addrs.push(address));
                    pending.retain(|(id, _)| *id != listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason: Err(e),
                    ..
                }
                | SwarmEvent::ListenerError { listener_id, error: e } => {
                    if let Some((_, addr)) = pending.iter().find(|(id, _)| *id == listener_id) {
                        return Err(NetError::Listen {
                            addr: addr.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
        let loop_view = view.clone();
        let task = tokio::spawn(async move {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => loop_view.update(|s| s.listen_addrs.push(address)),
                    SwarmEvent::ExpiredListenAddr { address, .. } => {
                        loop_view.update(|s| s.listen_addrs.retain(|a| *a != address))
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                        let addr = endpoint.get_remote_address().clone();
                        loop_view.update(|s| {
                            let addrs = s.peers.entry(peer_id).or_default();
                            if !addrs.contains(&addr) {
                                addrs.push(addr);
                            }
                        });
                    }
                    SwarmEvent::ConnectionClosed {
                        peer_id,
                        num_established: 0,
                        ..
                    } => loop_view.update(|s| {
                        s.peers.remove(&peer_id);
                    }),
                    other => tracing::trace!(?other, "swarm event"),
                }
            }
        });
        tracing::info!(addrs = ?view.snapshot().listen_addrs, "listening");
        Ok(Self { view, task: Some(task) })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_listen_means_no_addrs() {
        let net = Network::start(Keypair::generate_ed25519(), &[]).await.unwrap();
        let s = net.view().snapshot();
        assert!(s.listen_addrs.is_empty());
        assert!(s.peers.is_empty());
    }

    #[tokio::test]
    async fn listens_on_loopback_when_asked() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let kp = Keypair::generate_ed25519();
        let id = kp.public().to_peer_id();
        let net = Network::start(kp, &[addr]).await.unwrap();
        let s = net.view().snapshot();
        assert_eq!(s.peer_id, id);
        assert_eq!(s.listen_addrs.len(), 1);
        assert!(s.listen_addrs[0].to_string().starts_with("/ip4/127.0.0.1/tcp/"));
    }
}
