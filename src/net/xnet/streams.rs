//! The XNet protocol's state, without I/O: for each peer, the ordered
//! stream of messages this node sends (numbered, kept until acknowledged),
//! the number of the next message expected from it, the calls it owes, and
//! the incarnation handshakes that tell a restarted peer. It implements
//! the replica's [`RemoteRouter`].
//!
//! Two transports drive it: the libp2p streams of [`super::Xnet`] and the
//! simulated network of `crate::sim` (several nodes in one process, links
//! lost, frames duplicated and delayed by the chooser). Both see the same
//! rules, so what the simulator finds is what the network layer does.
//!
//! Rules (see [`super`] for the wire protocol):
//! - a message is delivered only if its number is the next expected (so
//!   duplicates are dropped and gaps refused);
//! - a handshake with a new incarnation of a peer fails every call it owed
//!   with `SYS_TRANSIENT`, drops what was queued for it and restarts both
//!   directions from 0;
//! - a response never goes to a later incarnation than the request's;
//! - **durable nodes** (a state directory): a message leaves only once a
//!   cut holding it is synced, and a received message is acknowledged
//!   (and a reconnecting peer told to resume) only once a cut holds its
//!   effect. The streams' own state is in every cut
//!   ([`RemoteRouter::capture`]), so a node restarted from its state
//!   directory is the same incarnation and resumes its streams: calls in
//!   flight across the restart complete, on either side;
//! - lock order: the replica's state, then this one. It never calls the
//!   replica while holding its own lock; what must change with the
//!   replica's state (a message received, a peer's restart) changes in a
//!   closure the replica runs under its lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use candid::Principal;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};

use super::super::routing::{CanisterRange, RoutingTable, derived_range};
use crate::replica::remote::{
    ForwardedIngress, RemoteOrigin, RemoteRequest, RemoteResponse, RemoteRouter,
};
use crate::replica::{CallResult, ErrorCode, Reject, RejectCode, Replica};

/// A batch stops growing past this many payload bytes.
const BATCH_BYTES: usize = 1 << 20;

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

/// One message of a stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Message {
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

/// A call's result on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WireResult {
    Reply(#[serde(with = "serde_bytes")] Vec<u8>),
    Reject { code: u32, error_code: Option<ErrorCode>, message: String },
}

impl From<CallResult> for WireResult {
    fn from(r: CallResult) -> Self {
        match r {
            Ok(bytes) => WireResult::Reply(bytes),
            Err(r) => WireResult::Reject { code: r.code as u32, error_code: r.error_code, message: r.message },
        }
    }
}

impl From<WireResult> for CallResult {
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
    ingress: HashMap<u64, oneshot::Sender<CallResult>>,
    /// Outgoing messages before this number may leave (durable nodes: a
    /// synced cut holds them).
    released: u64,
    /// Incoming: the number of the next message expected.
    inbox_next: u64,
    /// What is acknowledged (durable nodes: what a synced cut holds).
    acked_inbox: u64,
    /// New messages in the outbox (or released).
    wake: Arc<Notify>,
    /// A new acknowledgement to send.
    ack_wake: Arc<Notify>,
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
            released: 0,
            inbox_next: 0,
            acked_inbox: 0,
            wake: Arc::new(Notify::new()),
            ack_wake: Arc::new(Notify::new()),
            delivering: Arc::new(tokio::sync::Mutex::new(())),
            outbound_running: false,
        }
    }

    /// Queues `message`; a durable node's leaves once a cut holds it.
    fn push(&mut self, message: Message, durable: bool) {
        self.outbox.push_back((self.next_seq, message));
        self.next_seq += 1;
        if !durable {
            self.released = self.next_seq;
            self.wake.notify_one();
        }
    }

    /// The peer restarted without its state: both directions start over.
    fn reset(&mut self, incarnation: u64) {
        self.generation += 1;
        self.outbox.clear();
        self.next_seq = 0;
        self.released = 0;
        self.inbox_next = 0;
        self.acked_inbox = 0;
        self.incarnation = Some(incarnation);
    }

    fn image(&self) -> LinkImage {
        LinkImage {
            incarnation: self.incarnation,
            next_seq: self.next_seq,
            outbox: self.outbox.iter().cloned().collect(),
            awaiting: self.awaiting.iter().copied().collect(),
            inbox_next: self.inbox_next,
        }
    }
}

/// A link as a cut keeps it.
#[derive(Serialize, Deserialize)]
struct LinkImage {
    incarnation: Option<u64>,
    next_seq: u64,
    outbox: Vec<(u64, Message)>,
    awaiting: Vec<u64>,
    inbox_next: u64,
}

/// The streams as a cut keeps them.
#[derive(Serialize, Deserialize)]
struct StreamsImage {
    incarnation: u64,
    links: Vec<(String, LinkImage)>,
}

struct State {
    routing: RoutingTable,
    links: HashMap<PeerId, Link>,
    /// Each trusted peer's state, as the driver last told it.
    peers: HashMap<PeerId, PeerState>,
    /// The id of the next forwarded ingress message.
    next_ingress: u64,
    /// Per cut captured and not yet synced: each link's next message
    /// number and next expected number at the capture.
    captures: VecDeque<Vec<(PeerId, u64, u64, u64)>>,
}

/// What a delivered message leaves for the transport to do: a `ww call`
/// the peer forwarded, to run and answer with [`Streams::respond_ingress`].
pub struct Incoming {
    pub peer: PeerId,
    pub incarnation: Option<u64>,
    pub id: u64,
    pub ingress: ForwardedIngress,
}

/// Messages a peer sent that are the next expected, with their numbers.
pub struct Received {
    pub fresh: Vec<(u64, Message)>,
    pub incarnation: Option<u64>,
}

/// The XNet protocol state of one node (one incarnation of it).
pub struct Streams {
    replica: Replica,
    incarnation: u64,
    subnet: Principal,
    /// Messages leave, and are acknowledged, only once a synced cut holds
    /// them (the replica has a state directory).
    durable: bool,
    state: Mutex<State>,
}

impl Streams {
    /// The streams of `replica`'s node, owning `range`, as `incarnation`
    /// (a number no earlier start of the node used). The caller makes it
    /// the replica's router.
    pub fn new(
        replica: Replica,
        range: CanisterRange,
        subnet: Principal,
        incarnation: u64,
        durable: bool,
    ) -> Self {
        Self {
            replica,
            incarnation,
            subnet,
            durable,
            state: Mutex::new(State {
                routing: RoutingTable::new(range),
                links: HashMap::new(),
                peers: HashMap::new(),
                next_ingress: 0,
                captures: VecDeque::new(),
            }),
        }
    }

    /// The streams a cut kept (see [`RemoteRouter::capture`]): the same
    /// incarnation, each link where the cut left it (what it holds was
    /// synced, so it may leave and be acknowledged).
    pub fn restore(
        replica: Replica,
        range: CanisterRange,
        subnet: Principal,
        image: &[u8],
    ) -> Result<Self, String> {
        let image: StreamsImage = postcard::from_bytes(image)
            .map_err(|e| format!("the XNet streams in the state directory: {e}"))?;
        let me = Self::new(replica, range, subnet, image.incarnation, true);
        {
            let mut st = me.lock();
            for (peer, l) in image.links {
                let peer: PeerId = peer.parse().map_err(|e| {
                    format!("the XNet streams in the state directory: peer {peer}: {e}")
                })?;
                let mut link = Link::new();
                link.incarnation = l.incarnation;
                link.next_seq = l.next_seq;
                link.released = l.next_seq;
                link.outbox = l.outbox.into();
                link.awaiting = l.awaiting.into_iter().collect();
                link.inbox_next = l.inbox_next;
                link.acked_inbox = l.inbox_next;
                st.links.insert(peer, link);
            }
        }
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn subnet(&self) -> Principal {
        self.subnet
    }

    /// This node's range, as the handshake announces it.
    pub fn range_pair(&self) -> (u64, u64) {
        let st = self.lock();
        (*st.routing.local().start(), *st.routing.local().end())
    }

    /// Every known range: this node's (`None`), then its peers'.
    pub fn ranges(&self) -> Vec<(Option<PeerId>, CanisterRange)> {
        self.lock().routing.ranges()
    }

    /// Records what the driver says of `peer`.
    pub fn set_peer_state(&self, peer: PeerId, state: PeerState) {
        self.lock().peers.insert(peer, state);
    }

    /// Marks `peer`'s outgoing stream as running; false if it already was.
    pub fn claim_outbound(&self, peer: PeerId) -> bool {
        let mut st = self.lock();
        let link = st.links.entry(peer).or_insert_with(Link::new);
        !std::mem::replace(&mut link.outbound_running, true)
    }

    /// Whether `peer`'s stream should be tried again (it is connected, as
    /// far as the driver said); if not, the outgoing stream is released.
    pub fn still_connected(&self, peer: PeerId) -> bool {
        let mut st = self.lock();
        if st.peers.get(&peer).is_none_or(|s| *s == PeerState::Connected) {
            return true;
        }
        if let Some(link) = st.links.get_mut(&peer) {
            link.outbound_running = false;
        }
        false
    }

    /// Checks and records what a handshake says about `peer`: its range and
    /// incarnation. A new incarnation (the peer restarted without its
    /// state) fails what its predecessor owed us. Returns the link's
    /// generation.
    pub fn handshake(
        &self,
        peer: PeerId,
        incarnation: u64,
        range: (u64, u64),
    ) -> Result<u64, String> {
        if range.0 > range.1 {
            return Err(format!("an empty canister range {:#x}-{:#x}", range.0, range.1));
        }
        {
            let mut st = self.lock();
            st.routing.admit(peer, range.0..=range.1).map_err(|e| e.to_string())?;
            let link = st.links.entry(peer).or_insert_with(Link::new);
            match link.incarnation {
                Some(seen) if seen != incarnation => {}
                Some(_) => return Ok(link.generation),
                None => {
                    link.incarnation = Some(incarnation);
                    return Ok(link.generation);
                }
            }
        }
        // The peer's new incarnation: the link starts over and the calls
        // it owed fail, together under the replica's lock (a cut holds
        // both or neither).
        let mut lost_ingress = Vec::new();
        let mut generation = 0;
        let reject = Reject {
            code: RejectCode::SysTransient,
            error_code: None,
            message: format!(
                "the node {peer} hosting the callee restarted without this call; it was lost"
            ),
        };
        self.replica.fail_remote_calls_with(
            || {
                let mut st = self.lock();
                let link = st.links.entry(peer).or_insert_with(Link::new);
                link.reset(incarnation);
                generation = link.generation;
                lost_ingress = link.ingress.drain().map(|(_, tx)| tx).collect();
                // In callback order: what happens next must not hang on a
                // hash set's order (the simulator replays it).
                let mut lost: Vec<u64> = link.awaiting.drain().collect();
                lost.sort_unstable();
                if !lost.is_empty() {
                    tracing::warn!(%peer, calls = lost.len(), "peer restarted without our calls; rejecting them");
                }
                lost
            },
            &reject,
        );
        for tx in lost_ingress {
            let _ = tx.send(Err(Reject {
                code: RejectCode::SysTransient,
                error_code: None,
                message: format!("the node {peer} hosting the canister restarted without this message; it was lost"),
            }));
        }
        Ok(generation)
    }

    /// After a handshake: the peer expects message `resume_from` next, so
    /// everything before it is acknowledged. Returns what wakes the sender.
    pub fn resume(&self, peer: PeerId, resume_from: u64) -> Arc<Notify> {
        let mut st = self.lock();
        let link = st.links.entry(peer).or_insert_with(Link::new);
        while link.outbox.front().is_some_and(|(seq, _)| *seq < resume_from) {
            link.outbox.pop_front();
        }
        link.wake.clone()
    }

    /// The next batch to send `peer` from message `next` on (`Some(None)`:
    /// nothing yet); `None` once the link's generation moved past
    /// `generation` (the stream should stop).
    pub fn batch(&self, peer: PeerId, generation: u64, next: u64) -> Option<Option<(u64, Vec<Message>)>> {
        let st = self.lock();
        let link = st.links.get(&peer)?;
        if link.generation != generation {
            return None;
        }
        let mut bytes = 0;
        let mut first = None;
        let mut messages = Vec::new();
        // The outbox holds consecutive numbers from its front.
        let skip = link.outbox.front().map_or(0, |(front, _)| next.saturating_sub(*front) as usize);
        for (seq, m) in link.outbox.range(skip.min(link.outbox.len())..) {
            if *seq >= link.released {
                break;
            }
            if bytes > 0 && bytes + m.payload_len() > BATCH_BYTES {
                break;
            }
            first.get_or_insert(*seq);
            bytes += m.payload_len();
            messages.push(m.clone());
        }
        Some(first.map(|f| (f, messages)))
    }

    /// The number of the message after the last one queued for `peer`.
    pub fn queued_until(&self, peer: PeerId) -> u64 {
        self.lock().links.get(&peer).map_or(0, |l| l.next_seq)
    }

    /// Whether a request to `peer` with callback `callback` still waits for
    /// its response.
    pub fn awaits(&self, peer: PeerId, callback: u64) -> bool {
        self.lock().links.get(&peer).is_some_and(|l| l.awaiting.contains(&callback))
    }

    /// The peer acknowledged every message before `next`.
    pub fn acknowledged(&self, peer: PeerId, next: u64) {
        let mut st = self.lock();
        if let Some(link) = st.links.get_mut(&peer) {
            while link.outbox.front().is_some_and(|(seq, _)| *seq < next) {
                link.outbox.pop_front();
            }
        }
    }

    /// What a stream from `peer` resumes from (what this node
    /// acknowledges), the lock that keeps its deliveries one stream at a
    /// time, and what wakes its acknowledgements.
    pub fn inbound(&self, peer: PeerId) -> Option<(u64, Arc<tokio::sync::Mutex<()>>, Arc<Notify>)> {
        let durable = self.durable;
        self.lock().links.get(&peer).map(|l| {
            (
                if durable { l.acked_inbox } else { l.inbox_next },
                l.delivering.clone(),
                l.ack_wake.clone(),
            )
        })
    }

    /// The number to acknowledge to `peer`: every message before it is
    /// received (durable nodes: and held by a synced cut).
    pub fn ack_position(&self, peer: PeerId) -> u64 {
        self.lock().links.get(&peer).map_or(0, |l| {
            if self.durable {
                l.acked_inbox
            } else {
                l.inbox_next
            }
        })
    }

    /// Message `seq` from `peer` is received. Runs under the replica's lock
    /// when the message changes the replica.
    fn advance(&self, peer: PeerId, seq: u64) {
        {
            let mut st = self.lock();
            let Some(link) = st.links.get_mut(&peer) else {
                return;
            };
            if link.inbox_next != seq {
                return;
            }
            link.inbox_next += 1;
            if !self.durable {
                link.acked_inbox = link.inbox_next;
                return;
            }
        }
        self.want_cut();
    }

    /// Takes a batch from `peer` (of link generation `generation`): the
    /// messages that are the next expected, to [`Streams::deliver`] in
    /// order. `Ok(None)` when the link moved to a later generation; an
    /// error for a gap.
    pub fn receive(
        &self,
        peer: PeerId,
        generation: u64,
        first_seq: u64,
        messages: Vec<Message>,
    ) -> Result<Option<Received>, String> {
        let st = self.lock();
        let link = st.links.get(&peer).ok_or_else(|| "no link".to_string())?;
        if link.generation != generation {
            return Ok(None);
        }
        let mut expected = link.inbox_next;
        let mut fresh = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
            let seq = first_seq + i as u64;
            if seq < expected {
                continue;
            }
            if seq > expected {
                return Err(format!("message {seq} came before {expected}"));
            }
            expected += 1;
            fresh.push((seq, m));
        }
        Ok(Some(Received {
            fresh,
            incarnation: link.incarnation,
        }))
    }

    /// Hands message `seq` from `peer` to the replica, counting it received
    /// in the same step; a forwarded `ww call` is left to the transport.
    pub fn deliver(
        &self,
        peer: PeerId,
        incarnation: Option<u64>,
        seq: u64,
        message: Message,
    ) -> Option<Incoming> {
        let received = || self.advance(peer, seq);
        match message {
            Message::Request(request) => {
                let from = RemoteOrigin {
                    peer: peer.to_string(),
                    incarnation: incarnation.unwrap_or(0),
                    callback: request.callback,
                };
                if !self.lock().routing.hosted_by(&peer, &request.caller) {
                    tracing::warn!(%peer, caller = %request.caller, "xnet: a request from a caller the peer does not host");
                    let reject = Reject {
                        code: RejectCode::CanisterReject,
                        error_code: None,
                        message: format!("the caller {} is not hosted by {peer}, which sent the call", request.caller),
                    };
                    self.replica
                        .refuse_remote_call(from, reject, request.cycles, received);
                    return None;
                }
                self.replica.accept_remote_call(request, from, received);
                None
            }
            Message::Ingress { id, ingress } => {
                received();
                Some(Incoming {
                    peer,
                    incarnation,
                    id,
                    ingress,
                })
            }
            Message::IngressResponse { id, result } => {
                received();
                let waiter = self
                    .lock()
                    .links
                    .get_mut(&peer)
                    .and_then(|l| l.ingress.remove(&id));
                if let Some(tx) = waiter {
                    let _ = tx.send(result.into());
                }
                None
            }
            Message::Response {
                callback,
                result,
                refund,
            } => {
                let expected = || {
                    received();
                    self.lock()
                        .links
                        .get_mut(&peer)
                        .is_some_and(|l| l.awaiting.remove(&callback))
                };
                if !self.replica.deliver_remote_response(
                    callback,
                    RemoteResponse {
                        result: result.into(),
                        refund,
                    },
                    expected,
                ) {
                    tracing::debug!(%peer, callback, "xnet: dropping a response nothing waits for");
                }
                None
            }
        }
    }

    /// Queues the result of an ingress message `peer` forwarded, unless the
    /// peer restarted since.
    pub fn respond_ingress(&self, peer: PeerId, incarnation: Option<u64>, id: u64, result: CallResult) {
        let mut st = self.lock();
        if let Some(link) = st.links.get_mut(&peer)
            && link.incarnation == incarnation
        {
            link.push(
                Message::IngressResponse {
                    id,
                    result: result.into(),
                },
                self.durable,
            );
        }
        drop(st);
        self.want_cut();
    }

    /// A durable node's messages leave, and what it received is
    /// acknowledged, with the next cut: ask for one.
    fn want_cut(&self) {
        if self.durable {
            self.replica.request_cut();
        }
    }

    /// Whether messages wait for a cut to leave, or received ones to be
    /// acknowledged.
    pub fn awaits_cut(&self) -> bool {
        self.lock()
            .links
            .values()
            .any(|l| l.released < l.next_seq || l.acked_inbox < l.inbox_next)
    }
}

impl RemoteRouter for Streams {
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
        link.push(Message::Request(request), self.durable);
        drop(st);
        self.want_cut();
    }

    fn respond(&self, to: RemoteOrigin, response: RemoteResponse) {
        let Ok(peer) = to.peer.parse::<PeerId>() else {
            tracing::error!(peer = %to.peer, "xnet: an answer for a node whose id does not parse");
            return;
        };
        let mut st = self.lock();
        let Some(link) = st.links.get_mut(&peer) else {
            return;
        };
        if link.incarnation != Some(to.incarnation) {
            tracing::debug!(%peer, callback = to.callback, "dropping a response to an earlier incarnation of the peer");
            return;
        }
        link.push(
            Message::Response {
                callback: to.callback,
                result: response.result.into(),
                refund: response.refund,
            },
            self.durable,
        );
        drop(st);
        self.want_cut();
    }

    fn capture(&self) -> Option<Vec<u8>> {
        let mut st = self.lock();
        let point: Vec<(PeerId, u64, u64, u64)> = st
            .links
            .iter()
            .map(|(p, l)| (*p, l.generation, l.next_seq, l.inbox_next))
            .collect();
        st.captures.push_back(point);
        let image = StreamsImage {
            incarnation: self.incarnation,
            links: st
                .links
                .iter()
                .map(|(p, l)| (p.to_string(), l.image()))
                .collect(),
        };
        match postcard::to_allocvec(&image) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::error!("xnet: cannot encode the streams for a cut: {e}");
                None
            }
        }
    }

    fn synced(&self) {
        let mut st = self.lock();
        let Some(point) = st.captures.pop_front() else {
            return;
        };
        for (peer, generation, next_seq, inbox_next) in point {
            let Some(link) = st.links.get_mut(&peer) else {
                continue;
            };
            // A peer that restarted since starts from 0 again: the numbers
            // of before do not apply.
            if link.generation != generation {
                continue;
            }
            if next_seq > link.released {
                link.released = next_seq;
                link.wake.notify_one();
            }
            if inbox_next > link.acked_inbox {
                link.acked_inbox = inbox_next;
                link.ack_wake.notify_one();
            }
        }
    }

    fn peer_ranges(&self) -> Vec<(String, std::ops::RangeInclusive<u64>)> {
        self.lock().routing.ranges().into_iter().filter_map(|(p, r)| p.map(|p| (p.to_string(), r))).collect()
    }

    fn forward_ingress(&self, ingress: ForwardedIngress) -> oneshot::Receiver<CallResult> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        let Some(peer) = st.routing.route(&ingress.callee) else {
            let _ = tx.send(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {} not found on any node", ingress.callee))));
            return rx;
        };
        let id = st.next_ingress;
        st.next_ingress += 1;
        let link = st.links.entry(peer).or_insert_with(Link::new);
        link.ingress.insert(id, tx);
        link.push(Message::Ingress { id, ingress }, self.durable);
        drop(st);
        self.want_cut();
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
