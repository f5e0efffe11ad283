//! XNet: canister calls between nodes, over a libp2p stream protocol of
//! ww's own ([`PROTOCOL`]). It implements the replica's
//! [`RemoteRouter`]: calls to canisters in a peer's range leave through
//! the peer's link, and calls and responses from peers enter the replica.
//!
//! # The protocol
//!
//! Each node opens one stream to each trusted peer and sends its messages
//! (requests and responses) on it; the peer answers on the same stream
//! with acknowledgements. So each direction of a pair is one ordered
//! stream of messages, numbered from 0 for every incarnation (process
//! start) of the sender:
//!
//! ```text
//! opener                                   acceptor
//!   Hello { incarnation, range, subnet } ─►
//!                                       ◄─ Welcome { incarnation, range, resume_from }
//!                                          (or Refused { reason }: an overlapping range)
//!   Messages { first_seq, [msg...] }     ─►
//!                                       ◄─ Ack { next }
//! ```
//!
//! # Invariants
//!
//! - **Ordered, exactly once.** The sender keeps every message until it is
//!   acknowledged and, after a lost connection, resends from the
//!   receiver's `resume_from`; the receiver delivers a message only when
//!   its number is the next it expects, so nothing is delivered twice or
//!   out of order (per pair, so per caller-callee pair).
//! - **A peer that restarted without the calls.** A handshake showing a
//!   new incarnation of a peer fails every request sent to its earlier
//!   incarnation that has no response yet with `SYS_TRANSIENT` (naming
//!   the peer), drops what was queued for it, and starts both directions
//!   again from 0. Responses to requests of an earlier incarnation are
//!   never sent to a later one (callback numbers would be confused).
//! - **Only what a peer hosts.** A request is delivered only if its caller
//!   is in the sending peer's announced range; ranges overlapping this
//!   node's or another peer's are refused at the handshake.
//! - **Locks.** The replica calls [`RemoteRouter::send`] with its state
//!   locked, so this module never calls the replica while holding its own
//!   lock.
//!
//! # Peers
//!
//! The swarm's driver tells each trusted peer's [`PeerState`]. A peer's
//! stream is opened once it is [`PeerState::Connected`] (or it opened
//! one to us) and retried only while it stays connected: the driver alone
//! dials. A canister that no announced range holds is explained
//! ([`RemoteRouter::unreachable`]) when a peer this node cannot reach owns
//! its id's derived range ([`super::routing::derived_range`]): that peer
//! refuses this node, or is unreachable and why.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use candid::Principal;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::routing::{CanisterRange, RoutingTable, derived_range};
use crate::replica::remote::{ForwardedIngress, RemoteRequest, RemoteResponse, RemoteRouter};
use crate::replica::{ErrorCode, Reject, RejectCode, Replica};

/// The stream protocol of cross-node canister messages.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ww/xnet/1");
/// The largest frame accepted (a batch of messages, each at most the 2 MiB
/// payload limit plus its header).
pub const MAX_FRAME: usize = 8 << 20;
/// A batch stops growing past this many payload bytes.
const BATCH_BYTES: usize = 1 << 20;
/// Reconnect backoff: from the first to the last, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(2);
/// After a refusal (an overlapping range) the next try waits this long.
const BACKOFF_REFUSED: Duration = Duration::from_secs(30);

/// What the network knows of a peer, as the swarm's driver tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// A boot peer being dialed, not connected yet.
    Pending,
    /// Connected, and it accepts this node (identify answered).
    Connected,
    /// It closed our connection right after the handshake: it does not
    /// trust this node.
    Refused,
    /// Dialing it failed: why.
    Unreachable(String),
    /// Its connection ended; it is being redialed (if a boot peer).
    Disconnected,
}

impl PeerState {
    /// What the node hosting a range is, said of this peer.
    fn describe(&self) -> String {
        match self {
            PeerState::Pending => "is not connected yet".into(),
            PeerState::Connected => "is connected but has not announced its canister range to this node".into(),
            PeerState::Refused => "refuses this node (this node is not in its trusted peers)".into(),
            PeerState::Unreachable(why) => format!("is unreachable ({why})"),
            PeerState::Disconnected => "is disconnected (being redialed)".into(),
        }
    }
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum XnetError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("could not open a stream: {0}")]
    Open(String),
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    FrameTooLarge(usize),
    #[error("a malformed frame: {0}")]
    Malformed(String),
    #[error("the peer broke the protocol: {0}")]
    Protocol(String),
    #[error("the peer refused us: {0}")]
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    Hello { incarnation: u64, range: (u64, u64), subnet: Principal },
    Welcome { incarnation: u64, range: (u64, u64), resume_from: u64 },
    Refused { reason: String },
    Messages { first_seq: u64, messages: Vec<Message> },
    Ack { next: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Message {
    Request(RemoteRequest),
    Response { callback: u64, result: WireResult, refund: u64 },
    /// A `ww call` made on the sending node for a canister this one hosts.
    Ingress { id: u64, ingress: ForwardedIngress },
    IngressResponse { id: u64, result: WireResult },
}

impl Message {
    fn payload_len(&self) -> usize {
        match self {
            Message::Request(r) => r.arg.len() + r.method.len(),
            Message::Response { result: WireResult::Reply(b), .. } => b.len(),
            Message::Response { result: WireResult::Reject { message, .. }, .. } => message.len(),
            Message::Ingress { ingress, .. } => ingress.arg.len() + ingress.method.len(),
            Message::IngressResponse { result: WireResult::Reply(b), .. } => b.len(),
            Message::IngressResponse { result: WireResult::Reject { message, .. }, .. } => message.len(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum WireResult {
    Reply(#[serde(with = "serde_bytes")] Vec<u8>),
    Reject { code: u32, error_code: Option<ErrorCode>, message: String },
}

impl From<crate::replica::CallResult> for WireResult {
    fn from(r: crate::replica::CallResult) -> Self {
        match r {
            Ok(bytes) => WireResult::Reply(bytes),
            Err(r) => WireResult::Reject { code: r.code as u32, error_code: r.error_code, message: r.message },
        }
    }
}

impl From<WireResult> for crate::replica::CallResult {
    fn from(r: WireResult) -> Self {
        match r {
            WireResult::Reply(bytes) => Ok(bytes),
            WireResult::Reject { code, error_code, message } => Err(Reject {
                code: RejectCode::from_u32(code).unwrap_or(RejectCode::CanisterError),
                error_code,
                message,
            }),
        }
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> Result<(), XnetError> {
    let bytes = postcard::to_allocvec(frame).map_err(|e| XnetError::Malformed(e.to_string()))?;
    w.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, XnetError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(XnetError::FrameTooLarge(len));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes).await?;
    postcard::from_bytes(&bytes).map_err(|e| XnetError::Malformed(e.to_string()))
}

/// One peer: both directions of the pair.
struct Link {
    /// The peer's incarnation as last seen in a handshake.
    incarnation: Option<u64>,
    /// Bumped when the peer restarts: streams of an older generation stop.
    generation: u64,
    /// Outgoing: the number of the next message, and those not acknowledged.
    next_seq: u64,
    outbox: VecDeque<(u64, Message)>,
    /// Callbacks of requests sent to the peer without a response yet.
    awaiting: HashSet<u64>,
    /// Ingress forwarded to the peer, by id, waiting for the result.
    ingress: HashMap<u64, tokio::sync::oneshot::Sender<crate::replica::CallResult>>,
    /// Incoming: the number of the next message expected.
    inbox_next: u64,
    /// New messages in the outbox.
    wake: Arc<Notify>,
    /// Serializes deliveries from the peer (one stream at a time).
    delivering: Arc<tokio::sync::Mutex<()>>,
    outbound_running: bool,
}

impl Link {
    fn new() -> Self {
        Self {
            incarnation: None,
            generation: 0,
            next_seq: 0,
            outbox: VecDeque::new(),
            awaiting: HashSet::new(),
            ingress: HashMap::new(),
            inbox_next: 0,
            wake: Arc::new(Notify::new()),
            delivering: Arc::new(tokio::sync::Mutex::new(())),
            outbound_running: false,
        }
    }

    fn push(&mut self, message: Message) {
        self.outbox.push_back((self.next_seq, message));
        self.next_seq += 1;
        self.wake.notify_one();
    }
}

struct State {
    routing: RoutingTable,
    links: HashMap<PeerId, Link>,
    /// Each trusted peer's state, as the driver last told it.
    peers: HashMap<PeerId, PeerState>,
    /// The id of the next forwarded ingress message.
    next_ingress: u64,
}

/// The XNet side of a node.
pub struct Xnet {
    replica: Replica,
    /// This node's admin principal: forwarded ingress never acts as it.
    admin: Principal,
    control: libp2p_stream::Control,
    incarnation: u64,
    subnet: Principal,
    state: Mutex<State>,
}

impl Xnet {
    /// XNet for `replica`, owning `range`, on the swarm behind `control`.
    /// Sets itself as the replica's remote router and starts accepting
    /// streams.
    pub fn start(replica: Replica, mut control: libp2p_stream::Control, range: CanisterRange, subnet: Principal, admin: Principal) -> Arc<Self> {
        let incoming = control.accept(PROTOCOL);
        let me = Arc::new(Self {
            replica: replica.clone(),
            control,
            incarnation: fresh_incarnation(),
            subnet,
            state: Mutex::new(State { routing: RoutingTable::new(range), links: HashMap::new(), peers: HashMap::new(), next_ingress: 0 }),
            admin,
        });
        replica.set_remote_router(me.clone());
        match incoming {
            Ok(incoming) => {
                let accept = me.clone();
                tokio::spawn(async move { accept.accept_loop(incoming).await });
            }
            Err(e) => tracing::error!("xnet: cannot accept {PROTOCOL}: {e}"),
        }
        me
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every known range: this node's (`None`), then its peers'.
    pub fn ranges(&self) -> Vec<(Option<PeerId>, CanisterRange)> {
        self.lock().routing.ranges()
    }

    /// What the driver learned of a trusted peer. A connected peer gets a
    /// stream.
    pub fn peer_state(self: &Arc<Self>, peer: PeerId, state: PeerState) {
        let connected = state == PeerState::Connected;
        self.lock().peers.insert(peer, state);
        if connected {
            self.open_stream(peer);
        }
    }

    /// Keeps a stream open to `peer` while it is connected.
    fn open_stream(self: &Arc<Self>, peer: PeerId) {
        {
            let mut st = self.lock();
            let link = st.links.entry(peer).or_insert_with(Link::new);
            if link.outbound_running {
                return;
            }
            link.outbound_running = true;
        }
        let me = self.clone();
        tokio::spawn(async move { me.outbound(peer).await });
    }

    fn range_pair(&self) -> (u64, u64) {
        let st = self.lock();
        (*st.routing.local().start(), *st.routing.local().end())
    }

    /// Checks and records what a handshake says about `peer`: its range and
    /// incarnation. A new incarnation fails what its predecessor owed us.
    fn handshake(&self, peer: PeerId, incarnation: u64, range: (u64, u64)) -> Result<u64, String> {
        if range.0 > range.1 {
            return Err(format!("an empty canister range {:#x}-{:#x}", range.0, range.1));
        }
        let (lost, lost_ingress, generation) = {
            let mut st = self.lock();
            st.routing.admit(peer, range.0..=range.1).map_err(|e| e.to_string())?;
            let link = st.links.entry(peer).or_insert_with(Link::new);
            let lost = match link.incarnation {
                Some(seen) if seen != incarnation => {
                    link.generation += 1;
                    link.outbox.clear();
                    link.next_seq = 0;
                    link.inbox_next = 0;
                    link.incarnation = Some(incarnation);
                    (link.awaiting.drain().collect(), link.ingress.drain().map(|(_, tx)| tx).collect())
                }
                Some(_) => (Vec::new(), Vec::new()),
                None => {
                    link.incarnation = Some(incarnation);
                    (Vec::new(), Vec::new())
                }
            };
            (lost.0, lost.1, link.generation)
        };
        for tx in lost_ingress {
            let _ = tx.send(Err(Reject {
                code: RejectCode::SysTransient,
                error_code: None,
                message: format!("the node {peer} hosting the canister restarted without this message; it was lost"),
            }));
        }
        if !lost.is_empty() {
            tracing::warn!(%peer, calls = lost.len(), "peer restarted without our calls; rejecting them");
            let reject = Reject {
                code: RejectCode::SysTransient,
                error_code: None,
                message: format!("the node {peer} hosting the callee restarted without this call; it was lost"),
            };
            self.replica.fail_remote_calls(&lost, &reject);
        }
        Ok(generation)
    }

    // -- outgoing ------------------------------------------------------

    async fn outbound(self: Arc<Self>, peer: PeerId) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            match self.run_outbound(peer, &mut backoff).await {
                Err(XnetError::Refused(reason)) => {
                    tracing::warn!(%peer, "xnet: the peer refused us: {reason}");
                    backoff = BACKOFF_REFUSED;
                }
                Err(XnetError::Protocol(reason)) => {
                    tracing::warn!(%peer, "xnet: stream to the peer closed: {reason}");
                    backoff = BACKOFF_REFUSED;
                }
                Err(e) => tracing::debug!(%peer, "xnet: stream to the peer ended: {e}"),
                Ok(()) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_LAST);
            if !self.still_connected(peer) {
                return;
            }
        }
    }

    /// Whether `peer`'s stream should be tried again (it is connected, as
    /// far as the driver said); if not, the stream loop ends and the next
    /// [`PeerState::Connected`] starts another.
    fn still_connected(&self, peer: PeerId) -> bool {
        let mut st = self.lock();
        if st.peers.get(&peer).is_none_or(|s| *s == PeerState::Connected) {
            return true;
        }
        if let Some(link) = st.links.get_mut(&peer) {
            link.outbound_running = false;
        }
        false
    }

    async fn run_outbound(&self, peer: PeerId, backoff: &mut Duration) -> Result<(), XnetError> {
        let mut control = self.control.clone();
        let stream = control.open_stream(peer, PROTOCOL).await.map_err(|e| XnetError::Open(e.to_string()))?;
        let (mut rd, mut wr) = stream.split();
        write_frame(&mut wr, &Frame::Hello { incarnation: self.incarnation, range: self.range_pair(), subnet: self.subnet }).await?;
        let (generation, resume) = match read_frame(&mut rd).await? {
            Frame::Welcome { incarnation, range, resume_from } => {
                let generation = self.handshake(peer, incarnation, range).map_err(|reason| {
                    tracing::warn!(%peer, "xnet: refusing the peer: {reason}");
                    XnetError::Protocol(reason)
                })?;
                (generation, resume_from)
            }
            Frame::Refused { reason } => return Err(XnetError::Refused(reason)),
            other => return Err(XnetError::Protocol(format!("expected Welcome, got {other:?}"))),
        };
        *backoff = BACKOFF_FIRST;
        let wake = {
            let mut st = self.lock();
            let link = st.links.entry(peer).or_insert_with(Link::new);
            while link.outbox.front().is_some_and(|(seq, _)| *seq < resume) {
                link.outbox.pop_front();
            }
            link.wake.clone()
        };
        tracing::info!(%peer, resume, "xnet: stream to the peer open");
        let acks = async {
            loop {
                match read_frame(&mut rd).await? {
                    Frame::Ack { next } => self.acknowledged(peer, next),
                    other => return Err(XnetError::Protocol(format!("expected Ack, got {other:?}"))),
                }
            }
        };
        let mut next = resume;
        let sends = async {
            loop {
                let batch = {
                    let st = self.lock();
                    let Some(link) = st.links.get(&peer) else { return Ok(()) };
                    if link.generation != generation {
                        return Ok(());
                    }
                    let mut bytes = 0;
                    let mut first = None;
                    let mut messages = Vec::new();
                    // The outbox holds consecutive numbers from its front.
                    let skip = link.outbox.front().map_or(0, |(front, _)| next.saturating_sub(*front) as usize);
                    for (seq, m) in link.outbox.range(skip.min(link.outbox.len())..) {
                        if bytes > 0 && bytes + m.payload_len() > BATCH_BYTES {
                            break;
                        }
                        first.get_or_insert(*seq);
                        bytes += m.payload_len();
                        messages.push(m.clone());
                    }
                    first.map(|f| (f, messages))
                };
                match batch {
                    Some((first_seq, messages)) => {
                        next = first_seq + messages.len() as u64;
                        write_frame(&mut wr, &Frame::Messages { first_seq, messages }).await?;
                    }
                    None => wake.notified().await,
                }
            }
        };
        tokio::select! {
            r = acks => r,
            r = sends => r,
        }
    }

    fn acknowledged(&self, peer: PeerId, next: u64) {
        let mut st = self.lock();
        if let Some(link) = st.links.get_mut(&peer) {
            while link.outbox.front().is_some_and(|(seq, _)| *seq < next) {
                link.outbox.pop_front();
            }
        }
    }

    /// Queues a response to `peer`, unless the peer restarted since the
    /// request came (`incarnation`).
    fn respond(&self, peer: PeerId, incarnation: Option<u64>, callback: u64, response: RemoteResponse) {
        let mut st = self.lock();
        let Some(link) = st.links.get_mut(&peer) else { return };
        if link.incarnation != incarnation {
            tracing::debug!(%peer, callback, "dropping a response to an earlier incarnation of the peer");
            return;
        }
        link.push(Message::Response { callback, result: response.result.into(), refund: response.refund });
    }

    // -- incoming ------------------------------------------------------

    async fn accept_loop(self: Arc<Self>, mut incoming: libp2p_stream::IncomingStreams) {
        while let Some((peer, stream)) = incoming.next().await {
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.run_inbound(peer, stream).await {
                    tracing::debug!(%peer, "xnet: stream from the peer ended: {e}");
                }
            });
        }
    }

    async fn run_inbound(self: Arc<Self>, peer: PeerId, stream: libp2p::Stream) -> Result<(), XnetError> {
        let (mut rd, mut wr) = stream.split();
        let Frame::Hello { incarnation, range, .. } = read_frame(&mut rd).await? else {
            return Err(XnetError::Protocol("expected Hello".into()));
        };
        let generation = match self.handshake(peer, incarnation, range) {
            Ok(g) => g,
            Err(reason) => {
                tracing::warn!(%peer, "xnet: refusing the peer: {reason}");
                write_frame(&mut wr, &Frame::Refused { reason }).await?;
                return Ok(());
            }
        };
        let (resume, delivering) = {
            let st = self.lock();
            let link = st.links.get(&peer).ok_or_else(|| XnetError::Protocol("no link".into()))?;
            (link.inbox_next, link.delivering.clone())
        };
        write_frame(&mut wr, &Frame::Welcome { incarnation: self.incarnation, range: self.range_pair(), resume_from: resume }).await?;
        // Before this stream reads: the opener may already have connected
        // (we were dialed), so make sure ours runs too.
        self.open_stream(peer);
        loop {
            let Frame::Messages { first_seq, messages } = read_frame(&mut rd).await? else {
                return Err(XnetError::Protocol("expected Messages".into()));
            };
            let _one_at_a_time = delivering.lock().await;
            let (fresh, next, incarnation) = {
                let mut st = self.lock();
                let link = st.links.get_mut(&peer).ok_or_else(|| XnetError::Protocol("no link".into()))?;
                if link.generation != generation {
                    return Ok(());
                }
                let mut fresh = Vec::new();
                for (i, m) in messages.into_iter().enumerate() {
                    let seq = first_seq + i as u64;
                    if seq < link.inbox_next {
                        continue;
                    }
                    if seq > link.inbox_next {
                        return Err(XnetError::Protocol(format!("message {seq} came before {}", link.inbox_next)));
                    }
                    link.inbox_next += 1;
                    fresh.push(m);
                }
                (fresh, link.inbox_next, link.incarnation)
            };
            for m in fresh {
                self.deliver(peer, incarnation, m);
            }
            write_frame(&mut wr, &Frame::Ack { next }).await?;
        }
    }

    fn deliver(self: &Arc<Self>, peer: PeerId, incarnation: Option<u64>, message: Message) {
        match message {
            Message::Request(request) => {
                let callback = request.callback;
                if !self.lock().routing.hosted_by(&peer, &request.caller) {
                    tracing::warn!(%peer, caller = %request.caller, "xnet: a request from a caller the peer does not host");
                    let reject = Reject {
                        code: RejectCode::CanisterReject,
                        error_code: None,
                        message: format!("the caller {} is not hosted by {peer}, which sent the call", request.caller),
                    };
                    self.respond(peer, incarnation, callback, RemoteResponse { result: Err(reject), refund: request.cycles });
                    return;
                }
                let answer = self.replica.accept_remote_call(request);
                let me = self.clone();
                tokio::spawn(async move {
                    if let Ok(response) = answer.await {
                        me.respond(peer, incarnation, callback, response);
                    }
                });
            }
            Message::Ingress { id, ingress } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let result = if ingress.caller == me.admin {
                        Err(Reject {
                            code: RejectCode::CanisterReject,
                            error_code: None,
                            message: format!("{peer} forwarded a message as this node's admin; refused"),
                        })
                    } else if ingress.query {
                        me.replica.query(ingress.caller, ingress.callee, &ingress.method, ingress.arg).await
                    } else {
                        me.replica.call(ingress.caller, ingress.callee, &ingress.method, ingress.arg).await
                    };
                    let mut st = me.lock();
                    if let Some(link) = st.links.get_mut(&peer)
                        && link.incarnation == incarnation
                    {
                        link.push(Message::IngressResponse { id, result: result.into() });
                    }
                });
            }
            Message::IngressResponse { id, result } => {
                let waiter = self.lock().links.get_mut(&peer).and_then(|l| l.ingress.remove(&id));
                if let Some(tx) = waiter {
                    let _ = tx.send(result.into());
                }
            }
            Message::Response { callback, result, refund } => {
                let expected = self.lock().links.get_mut(&peer).is_some_and(|l| l.awaiting.remove(&callback));
                if !expected {
                    tracing::debug!(%peer, callback, "xnet: dropping a response nothing waits for");
                    return;
                }
                self.replica.deliver_remote_response(callback, RemoteResponse { result: result.into(), refund });
            }
        }
    }
}

/// A number no earlier start of this node used: the clock and the process.
fn fresh_incarnation() -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(crate::replica::wall_clock_ns().to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(head)
}

impl RemoteRouter for Xnet {
    fn routes(&self, canister: &Principal) -> bool {
        self.lock().routing.route(canister).is_some()
    }

    fn unreachable(&self, canister: &Principal) -> Option<String> {
        let st = self.lock();
        explain_unreachable(&st.routing, &st.peers, canister)
    }

    fn send(&self, request: RemoteRequest) {
        let mut st = self.lock();
        let Some(peer) = st.routing.route(&request.callee) else {
            // `routes` said yes and ranges are never withdrawn.
            tracing::error!(callee = %request.callee, "xnet: no route for a routed call");
            return;
        };
        let link = st.links.entry(peer).or_insert_with(Link::new);
        link.awaiting.insert(request.callback);
        link.push(Message::Request(request));
    }

    fn peer_ranges(&self) -> Vec<(String, std::ops::RangeInclusive<u64>)> {
        self.lock().routing.ranges().into_iter().filter_map(|(p, r)| p.map(|p| (p.to_string(), r))).collect()
    }

    fn forward_ingress(&self, ingress: ForwardedIngress) -> tokio::sync::oneshot::Receiver<crate::replica::CallResult> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut st = self.lock();
        let Some(peer) = st.routing.route(&ingress.callee) else {
            let _ = tx.send(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {} not found on any node", ingress.callee))));
            return rx;
        };
        let id = st.next_ingress;
        st.next_ingress += 1;
        let link = st.links.entry(peer).or_insert_with(Link::new);
        link.ingress.insert(id, tx);
        link.push(Message::Ingress { id, ingress });
        rx
    }
}

/// Why `canister`, in no known range, may be out of reach: the peer whose
/// derived range holds it and that never announced a range (it refuses
/// this node, is unreachable, ...), else the peers whose range is unknown.
fn explain_unreachable(routing: &RoutingTable, peers: &HashMap<PeerId, PeerState>, canister: &Principal) -> Option<String> {
    let index = crate::replica::canister_index(canister)?;
    if routing.local().contains(&index) || routing.route(canister).is_some() {
        return None;
    }
    let mut silent: Vec<(&PeerId, &PeerState)> = peers.iter().filter(|(p, _)| !routing.announced(p)).collect();
    silent.sort_by_key(|(p, _)| **p);
    if let Some((peer, state)) = silent.iter().find(|(p, _)| derived_range(p).contains(&index)) {
        return Some(format!("Canister {canister} cannot be reached: the node hosting its range ({peer}) {}", state.describe()));
    }
    if silent.is_empty() {
        return None;
    }
    let shown: Vec<String> = silent.iter().take(3).map(|(p, s)| format!("{p}, which {}", s.describe())).collect();
    let more = if silent.len() > 3 { format!(" and {} more", silent.len() - 3) } else { String::new() };
    Some(format!("Canister {canister} not found on any node this node reaches; it may be on a peer whose range is unknown: {}{more}", shown.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::canister_id;

    #[test]
    fn an_unroutable_canister_names_the_peer_that_owns_its_range() {
        let (refusing, lost, streaming) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut routing = RoutingTable::new(100..=199);
        routing.admit(streaming, 200..=299).unwrap();
        let mut peers = HashMap::from([(refusing, PeerState::Refused), (streaming, PeerState::Connected)]);
        let in_range = canister_id(*derived_range(&refusing).start() + 5);
        let why = explain_unreachable(&routing, &peers, &in_range).unwrap();
        assert!(why.contains(&refusing.to_string()) && why.contains("refuses this node"), "{why}");
        assert_eq!(explain_unreachable(&routing, &peers, &canister_id(150)), None, "this node's own");
        assert_eq!(explain_unreachable(&routing, &peers, &canister_id(250)), None, "routed");
        assert_eq!(explain_unreachable(&routing, &peers, &Principal::anonymous()), None, "not a canister id");
        // An id in no derived range: the peers whose range is unknown.
        peers.insert(lost, PeerState::Unreachable("connection refused".into()));
        let why = explain_unreachable(&routing, &peers, &canister_id(5)).unwrap();
        assert!(why.contains(&lost.to_string()) && why.contains("is unreachable (connection refused)"), "{why}");
        assert!(why.contains(&refusing.to_string()) && !why.contains(&streaming.to_string()), "{why}");
        assert_eq!(explain_unreachable(&RoutingTable::new(100..=199), &HashMap::new(), &canister_id(5)), None);
    }
}
