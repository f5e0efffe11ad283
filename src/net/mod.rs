//! The node's network: its libp2p swarm, who it trusts, and cross-node
//! canister messages ([`xnet`]) routed by canister id ranges ([`routing`]).
//!
//! - Nothing listens unless asked (`ww run --listen <multiaddr>`); without
//!   `--listen` and without `boot/` peers no swarm runs at all.
//! - Connections are authenticated (noise, peer ids) and only trusted
//!   peers get one: the image's `boot/` peers, its `etc/peers` allow list
//!   and `--trust` peers. Anyone else is refused right after the handshake
//!   and logged, at warn once per peer (then at debug).
//! - `boot/` peers are dialed at start and again, with backoff, whenever
//!   they are not connected, so nodes may start in any order. A connection
//!   is healthy once identify answers on it (or it lasted
//!   [`REFUSAL_WINDOW`]); only then is the backoff reset. A dialed peer
//!   that closes the connection before that refuses this node (it does not
//!   trust it): logged once per peer, redialed from [`REFUSED_FIRST`] up
//!   to [`REFUSED_LAST`]. An unreachable peer is redialed from
//!   [`REDIAL_FIRST`] up to [`REDIAL_LAST`]. Every delay has ±20% jitter.
//! - Each peer's state (connected, refused, unreachable and why) goes to
//!   [`xnet`], which starts a peer's stream once it is connected and
//!   explains calls to canisters of a node it cannot reach.
//! - What identify tells about connected peers is recorded
//!   ([`NetworkSnapshot::learned`]).
//!
//! The [`NetworkView`] is the snapshot guests read through `Host`.

pub mod routing;
pub mod xnet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, allow_block_list, identify, noise, tcp, yamux};
use tokio::sync::mpsc;

use crate::image::BootPeer;
use crate::replica::Replica;
use routing::CanisterRange;
use xnet::{PeerState, Xnet};

/// Cap'n Proto sessions between nodes (`Host.dial`).
pub const PEER_SESSION_PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/ww/capnp/1");

/// How long the node waits for its listeners to come up.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Redialing an unreachable boot peer: from the first delay to the last,
/// doubling (kept short: nodes may start in any order).
pub const REDIAL_FIRST: Duration = Duration::from_millis(100);
pub const REDIAL_LAST: Duration = Duration::from_secs(2);
/// Redialing a boot peer that refused this node: from the first delay to
/// the last, doubling.
pub const REFUSED_FIRST: Duration = Duration::from_secs(1);
pub const REFUSED_LAST: Duration = Duration::from_secs(30);
/// A dialed connection the peer closes before identify answered and within
/// this long counts as a refusal.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(10);
/// Every redial delay is scaled by a factor in 1 ± this many thousandths.
const JITTER_PERMILLE: u64 = 200;
/// Refused peers remembered for logging once each (past it, at debug).
const MAX_REFUSED_LOGGED: usize = 1024;
/// How long an idle connection stays open (XNet streams keep it busy).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("--listen {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("network setup failed: {0}")]
    Setup(String),
}

/// How a node's network starts.
pub struct NetConfig {
    pub keypair: Keypair,
    pub listen: Vec<Multiaddr>,
    /// Peers dialed at start and kept connected (trusted).
    pub boot: Vec<BootPeer>,
    /// Further trusted peers (they may dial us; we do not dial them).
    pub trusted: Vec<PeerId>,
}

/// Cross-node calls for a replica: its range and subnet id.
pub struct XnetConfig {
    pub replica: Replica,
    /// The node's admin principal (forwarded messages never act as it).
    pub admin: candid::Principal,
    pub range: CanisterRange,
    pub subnet: candid::Principal,
}

/// What the node knows about its place in the network right now.
#[derive(Clone, Debug)]
pub struct NetworkSnapshot {
    pub peer_id: PeerId,
    pub listen_addrs: Vec<Multiaddr>,
    /// Connected peers with the addresses we know them by.
    pub peers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// What identify told us: each peer's listen addresses.
    pub learned: Vec<(PeerId, Vec<Multiaddr>)>,
}

/// Shared, always-current network snapshot. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NetworkView(Arc<RwLock<NetworkState>>);

#[derive(Debug)]
struct NetworkState {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    peers: BTreeMap<PeerId, Vec<Multiaddr>>,
    learned: BTreeMap<PeerId, Vec<Multiaddr>>,
}

impl NetworkView {
    fn new(peer_id: PeerId) -> Self {
        Self(Arc::new(RwLock::new(NetworkState {
            peer_id,
            listen_addrs: Vec::new(),
            peers: BTreeMap::new(),
            learned: BTreeMap::new(),
        })))
    }

    pub fn snapshot(&self) -> NetworkSnapshot {
        let st = self.0.read().unwrap_or_else(|e| e.into_inner());
        NetworkSnapshot {
            peer_id: st.peer_id,
            listen_addrs: st.listen_addrs.clone(),
            peers: st.peers.iter().map(|(p, a)| (*p, a.clone())).collect(),
            learned: st.learned.iter().map(|(p, a)| (*p, a.clone())).collect(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut NetworkState)) {
        let mut st = self.0.write().unwrap_or_else(|e| e.into_inner());
        f(&mut st);
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    identify: identify::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// The running network side of a node. Dropping it stops the swarm.
pub struct Network {
    view: NetworkView,
    xnet: Option<Arc<Xnet>>,
    /// Opens and accepts raw streams (for Cap'n Proto sessions to peers).
    streams: Option<libp2p_stream::Control>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Network {
    pub fn view(&self) -> &NetworkView {
        &self.view
    }

    /// A handle for raw streams to and from peers, when the network runs.
    pub fn streams(&self) -> Option<libp2p_stream::Control> {
        self.streams.clone()
    }

    /// Cross-node calls, when the network runs.
    pub fn xnet(&self) -> Option<&Arc<Xnet>> {
        self.xnet.as_ref()
    }

    /// Starts the network. With no listen addresses and no boot peers no
    /// swarm is started: the node has an identity but no sockets.
    pub async fn start(config: NetConfig, xnet: Option<XnetConfig>) -> Result<Self, NetError> {
        let peer_id = config.keypair.public().to_peer_id();
        let view = NetworkView::new(peer_id);
        if config.listen.is_empty() && config.boot.is_empty() {
            return Ok(Self { view, xnet: None, streams: None, task: None });
        }
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(|key| Behaviour {
                allow: allow_block_list::Behaviour::default(),
                // No address cache: identify's findings are recorded, never
                // dialed (a node dials only what its image lists).
                identify: identify::Behaviour::new(identify::Config::new("/ww/0.1.0".into(), key.public()).with_cache_size(0)),
                stream: libp2p_stream::Behaviour::new(),
            })
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();
        let mut trusted: HashSet<PeerId> = config.trusted.iter().copied().collect();
        let mut boot = HashMap::new();
        for peer in &config.boot {
            trusted.insert(peer.peer_id);
            boot.insert(peer.peer_id, peer.addrs.clone());
            for addr in &peer.addrs {
                swarm.add_peer_address(peer.peer_id, addr.clone());
            }
        }
        for peer in &trusted {
            swarm.behaviour_mut().allow.allow_peer(*peer);
        }
        listen(&mut swarm, &config.listen, &view).await?;
        let xnet = xnet.map(|x| Xnet::start(x.replica, swarm.behaviour().stream.new_control(), x.range, x.subnet, x.admin));
        let streams = Some(swarm.behaviour().stream.new_control());
        let (redial_tx, redial_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            swarm,
            view: view.clone(),
            boot,
            trusted,
            xnet: xnet.clone(),
            redial_tx,
            peers: HashMap::new(),
            refused_logged: HashSet::new(),
        };
        let task = tokio::spawn(driver.run(redial_rx));
        Ok(Self { view, xnet, streams, task: Some(task) })
    }
}

/// Starts the listeners and waits until each reports an address (or
/// fails), so guests see real addresses from their first call.
async fn listen(swarm: &mut Swarm<Behaviour>, addrs: &[Multiaddr], view: &NetworkView) -> Result<(), NetError> {
    let mut pending = Vec::new();
    for addr in addrs {
        let id = swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        pending.push((id, addr.clone()));
    }
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NetError::Listen { addr: pending[0].1.clone(), reason: "timed out waiting for the listener".into() })?;
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                view.update(|s| s.listen_addrs.push(address));
                pending.retain(|(id, _)| *id != listener_id);
            }
            SwarmEvent::ListenerClosed { listener_id, reason: Err(e), .. } | SwarmEvent::ListenerError { listener_id, error: e } => {
                if let Some((_, addr)) = pending.iter().find(|(id, _)| *id == listener_id) {
                    return Err(NetError::Listen { addr: addr.clone(), reason: e.to_string() });
                }
            }
            _ => {}
        }
    }
    let snapshot = view.snapshot();
    if !addrs.is_empty() {
        let shown: Vec<String> = snapshot.listen_addrs.iter().map(|a| a.to_string()).collect();
        tracing::info!("peer id {} listening on {}", snapshot.peer_id, shown.join(" "));
    }
    Ok(())
}

/// What the driver knows of one peer's connections and dials.
#[derive(Debug, Default)]
struct PeerTrack {
    /// When the peer's first open connection was established, and whether
    /// this node dialed it.
    connected_at: Option<(Instant, bool)>,
    /// Identify answered on a current connection: the peer accepts us.
    identified: bool,
    /// Failed dials and refusals since the last healthy connection.
    failures: u32,
    refusals: u32,
    /// The last attempt was refused (the refusal backoff applies).
    refused: bool,
    /// The refusal was logged at warn (once until a healthy connection).
    refusal_logged: bool,
    /// A redial is scheduled.
    redial_pending: bool,
}

impl PeerTrack {
    /// The delay before the next dial, with jitter.
    fn next_delay(&self) -> Duration {
        let (first, last, n) = if self.refused { (REFUSED_FIRST, REFUSED_LAST, self.refusals) } else { (REDIAL_FIRST, REDIAL_LAST, self.failures) };
        jitter(first.saturating_mul(1 << n.saturating_sub(1).min(16)).min(last))
    }
}

/// `delay` scaled by a random factor in 1 ± [`JITTER_PERMILLE`]/1000.
fn jitter(delay: Duration) -> Duration {
    use std::hash::BuildHasher;
    // Each `RandomState` is keyed differently (random keys per thread,
    // counted up): a random number without a dependency.
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let permille = 1000 - JITTER_PERMILLE + random % (2 * JITTER_PERMILLE + 1);
    delay.saturating_mul(permille as u32) / 1000
}

/// A dial error on one line, at most a few hundred characters.
fn one_line(error: &impl std::fmt::Display) -> String {
    let text: String = error.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The swarm's event loop.
struct Driver {
    swarm: Swarm<Behaviour>,
    view: NetworkView,
    boot: HashMap<PeerId, Vec<Multiaddr>>,
    trusted: HashSet<PeerId>,
    xnet: Option<Arc<Xnet>>,
    redial_tx: mpsc::UnboundedSender<PeerId>,
    peers: HashMap<PeerId, PeerTrack>,
    /// Peers this node refused, each logged at warn once.
    refused_logged: HashSet<Option<PeerId>>,
}

impl Driver {
    async fn run(mut self, mut redial: mpsc::UnboundedReceiver<PeerId>) {
        let peers: Vec<PeerId> = self.boot.keys().copied().collect();
        for peer in peers {
            self.tell_xnet(peer, PeerState::Pending);
            self.dial(peer);
        }
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                Some(peer) = redial.recv() => self.dial(peer),
            }
        }
    }

    fn tell_xnet(&self, peer: PeerId, state: PeerState) {
        if let Some(x) = &self.xnet
            && self.trusted.contains(&peer)
        {
            x.peer_state(peer, state);
        }
    }

    fn dial(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default().redial_pending = false;
        if self.swarm.is_connected(&peer) {
            return;
        }
        let addrs = self.boot.get(&peer).cloned().unwrap_or_default();
        tracing::debug!(%peer, "dialing the peer");
        let opts = DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::DisconnectedAndNotDialing).build();
        match self.swarm.dial(opts) {
            Ok(()) => {}
            // A dial in flight reports its own outcome.
            Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => self.unreachable(peer, one_line(&e)),
        }
    }

    /// Dialing `peer` failed.
    fn unreachable(&mut self, peer: PeerId, error: String) {
        tracing::debug!(%peer, "could not reach the peer: {error}");
        if !self.trusted.contains(&peer) {
            return;
        }
        let track = self.peers.entry(peer).or_default();
        track.failures = track.failures.saturating_add(1);
        track.refused = false;
        self.tell_xnet(peer, PeerState::Unreachable(error));
        self.redial_later(peer);
    }

    /// Dials a boot peer again after its backoff (once, however many
    /// events ask).
    fn redial_later(&mut self, peer: PeerId) {
        if !self.boot.contains_key(&peer) {
            return;
        }
        let track = self.peers.entry(peer).or_default();
        if track.redial_pending {
            return;
        }
        track.redial_pending = true;
        let delay = track.next_delay();
        tracing::trace!(%peer, ?delay, "redialing later");
        let tx = self.redial_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(peer);
        });
    }

    /// Identify answered on a connection to `peer`: it accepts this node.
    fn healthy(&mut self, peer: PeerId) {
        let track = self.peers.entry(peer).or_default();
        if track.identified {
            return;
        }
        if track.refusal_logged {
            tracing::info!(%peer, "the peer accepts this node now");
        }
        *track = PeerTrack { connected_at: track.connected_at, identified: true, redial_pending: track.redial_pending, ..PeerTrack::default() };
        self.tell_xnet(peer, PeerState::Connected);
    }

    /// The last connection to `peer` closed: a refusal when we dialed it
    /// and it closed before proving healthy.
    fn closed(&mut self, peer: PeerId) {
        let track = self.peers.entry(peer).or_default();
        let opened = track.connected_at.take();
        let lived_long = opened.is_some_and(|(at, _)| at.elapsed() >= REFUSAL_WINDOW);
        let we_dialed = opened.is_some_and(|(_, dialer)| dialer);
        let refused = we_dialed && !track.identified && !lived_long;
        track.identified = false;
        if refused {
            track.refused = true;
            track.refusals = track.refusals.saturating_add(1);
            if track.refusal_logged {
                tracing::debug!(%peer, "disconnected from peer: it refused this node again");
            } else {
                track.refusal_logged = true;
                tracing::warn!(
                    "peer {peer} closed the connection right after the handshake: this node is not in its trusted peers (or it refuses \
                     this node); redialing with backoff up to {}s, later refusals logged at debug",
                    REFUSED_LAST.as_secs()
                );
            }
            self.tell_xnet(peer, PeerState::Refused);
        } else {
            tracing::info!(%peer, "disconnected from peer");
            if lived_long {
                *track = PeerTrack { redial_pending: track.redial_pending, ..PeerTrack::default() };
            }
            self.tell_xnet(peer, PeerState::Disconnected);
        }
        self.redial_later(peer);
    }

    /// This node refused a connection: logged at warn once per peer.
    fn refused_incoming(&mut self, peer: Option<PeerId>, addr: &Multiaddr, cause: &libp2p::swarm::ConnectionDenied) {
        let who = peer.map_or_else(|| "an unknown peer".to_string(), |p| p.to_string());
        let reason = if cause.downcast_ref::<allow_block_list::NotAllowed>().is_some() {
            "not in this node's trusted peers (boot/, etc/peers, --trust)".to_string()
        } else {
            one_line(cause)
        };
        if self.refused_logged.len() < MAX_REFUSED_LOGGED && self.refused_logged.insert(peer) {
            tracing::warn!("refused {who} at {addr}: {reason}; later attempts logged at debug");
        } else {
            tracing::debug!("refused {who} again ({addr}): {reason}");
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.view.update(|s| s.listen_addrs.push(address)),
            SwarmEvent::ExpiredListenAddr { address, .. } => self.view.update(|s| s.listen_addrs.retain(|a| *a != address)),
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                let addr = endpoint.get_remote_address().clone();
                self.view.update(|s| {
                    let addrs = s.peers.entry(peer_id).or_default();
                    if !addrs.contains(&addr) {
                        addrs.push(addr.clone());
                    }
                });
                if num_established.get() == 1 {
                    let track = self.peers.entry(peer_id).or_default();
                    track.connected_at = Some((Instant::now(), endpoint.is_dialer()));
                    if track.refusal_logged {
                        tracing::debug!(peer = %peer_id, %addr, "connected to peer (it refused this node before)");
                    } else {
                        tracing::info!(peer = %peer_id, %addr, "connected to peer");
                    }
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.view.update(|s| {
                    s.peers.remove(&peer_id);
                });
                self.closed(peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                // A dial of ours or of the stream behaviour (it dials peers
                // it opens a stream to); either way the peer is out of reach.
                self.unreachable(peer, one_line(&error));
            }
            SwarmEvent::IncomingConnectionError { error: ListenError::Denied { cause }, peer_id, send_back_addr, .. } => {
                self.refused_incoming(peer_id, &send_back_addr, &cause);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                // Recorded, not dialed: a node dials only the addresses its
                // image lists (a peer's own claims may point elsewhere).
                self.view.update(|s| {
                    s.learned.insert(peer_id, info.listen_addrs.clone());
                });
                self.healthy(peer_id);
            }
            other => tracing::trace!(?other, "swarm event"),
        }
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

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let within = |d: Duration, base: Duration| d >= base * 4 / 5 && d <= base * 6 / 5;
        let mut t = PeerTrack::default();
        assert!(within(t.next_delay(), REDIAL_FIRST));
        t.failures = 3;
        assert!(within(t.next_delay(), REDIAL_FIRST * 4));
        t.failures = 40;
        assert!(within(t.next_delay(), REDIAL_LAST), "unreachable: the quick cap");
        t.refused = true;
        t.refusals = 1;
        assert!(within(t.next_delay(), REFUSED_FIRST));
        t.refusals = 3;
        assert!(within(t.next_delay(), REFUSED_FIRST * 4));
        t.refusals = 40;
        assert!(within(t.next_delay(), REFUSED_LAST), "refused: the long cap");
        let draws: HashSet<Duration> = (0..20).map(|_| jitter(Duration::from_secs(10))).collect();
        assert!(draws.len() > 1, "jitter varies: {draws:?}");
    }

    #[tokio::test]
    async fn no_listen_means_no_addrs() {
        let net = Network::start(NetConfig { keypair: Keypair::generate_ed25519(), listen: vec![], boot: vec![], trusted: vec![] }, None).await.unwrap();
        let s = net.view().snapshot();
        assert!(s.listen_addrs.is_empty());
        assert!(s.peers.is_empty());
    }

    #[tokio::test]
    async fn listens_on_loopback_when_asked() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let kp = Keypair::generate_ed25519();
        let id = kp.public().to_peer_id();
        let net = Network::start(NetConfig { keypair: kp, listen: vec![addr], boot: vec![], trusted: vec![] }, None).await.unwrap();
        let s = net.view().snapshot();
        assert_eq!(s.peer_id, id);
        assert_eq!(s.listen_addrs.len(), 1);
        assert!(s.listen_addrs[0].to_string().starts_with("/ip4/127.0.0.1/tcp/"));
    }
}
