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
//! The protocol's state (streams, incarnations, what peers owe) is
//! [`streams`], without I/O; this module runs it over libp2p.
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

use std::io;
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

use super::routing::CanisterRange;
use crate::replica::{Reject, RejectCode, Replica};

pub mod streams;

pub use streams::PeerState;
use streams::{Incoming, Message, Streams};

/// The stream protocol of cross-node canister messages.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ww/xnet/1");
/// The largest frame accepted (a batch of messages, each at most the 2 MiB
/// payload limit plus its header).
pub const MAX_FRAME: usize = 8 << 20;
/// Reconnect backoff: from the first to the last, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(2);
/// After a refusal (an overlapping range) the next try waits this long.
const BACKOFF_REFUSED: Duration = Duration::from_secs(30);

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

/// The XNet side of a node: [`Streams`] over libp2p.
pub struct Xnet {
    streams: Arc<Streams>,
    /// This node's admin principal: forwarded ingress never acts as it.
    admin: Principal,
    control: libp2p_stream::Control,
}

impl Xnet {
    /// XNet for `replica`, owning `range`, on the swarm behind `control`.
    /// Sets its streams as the replica's remote router and starts accepting
    /// streams.
    pub fn start(replica: Replica, mut control: libp2p_stream::Control, range: CanisterRange, subnet: Principal, admin: Principal) -> Arc<Self> {
        let incoming = control.accept(PROTOCOL);
        // A node restarted from its state directory resumes its streams as
        // the same incarnation; otherwise it is a new one.
        let durable = replica.is_durable();
        let restored = replica.take_router_image().and_then(|image| {
            match Streams::restore(replica.clone(), range.clone(), subnet, &image) {
                Ok(streams) => Some(streams),
                Err(e) => {
                    tracing::error!("xnet: {e}; starting as a new incarnation");
                    None
                }
            }
        });
        let streams = Arc::new(restored.unwrap_or_else(|| {
            Streams::new(replica.clone(), range, subnet, fresh_incarnation(), durable)
        }));
        replica.set_remote_router(streams.clone());
        let me = Arc::new(Self { streams, control, admin });
        match incoming {
            Ok(incoming) => {
                let accept = me.clone();
                tokio::spawn(async move { accept.accept_loop(incoming).await });
            }
            Err(e) => tracing::error!("xnet: cannot accept {PROTOCOL}: {e}"),
        }
        me
    }

    /// Every known range: this node's (`None`), then its peers'.
    pub fn ranges(&self) -> Vec<(Option<PeerId>, CanisterRange)> {
        self.streams.ranges()
    }

    /// What the driver learned of a trusted peer. A connected peer gets a
    /// stream.
    pub fn peer_state(self: &Arc<Self>, peer: PeerId, state: PeerState) {
        let connected = state == PeerState::Connected;
        self.streams.set_peer_state(peer, state);
        if connected {
            self.open_stream(peer);
        }
    }

    /// Keeps a stream open to `peer` while it is connected.
    fn open_stream(self: &Arc<Self>, peer: PeerId) {
        if !self.streams.claim_outbound(peer) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.outbound(peer).await });
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
            if !self.streams.still_connected(peer) {
                return;
            }
        }
    }

    async fn run_outbound(&self, peer: PeerId, backoff: &mut Duration) -> Result<(), XnetError> {
        let streams = &self.streams;
        let mut control = self.control.clone();
        let stream = control.open_stream(peer, PROTOCOL).await.map_err(|e| XnetError::Open(e.to_string()))?;
        let (mut rd, mut wr) = stream.split();
        write_frame(&mut wr, &Frame::Hello { incarnation: streams.incarnation(), range: streams.range_pair(), subnet: streams.subnet() }).await?;
        let (generation, resume) = match read_frame(&mut rd).await? {
            Frame::Welcome { incarnation, range, resume_from } => {
                let generation = streams.handshake(peer, incarnation, range).map_err(|reason| {
                    tracing::warn!(%peer, "xnet: refusing the peer: {reason}");
                    XnetError::Protocol(reason)
                })?;
                (generation, resume_from)
            }
            Frame::Refused { reason } => return Err(XnetError::Refused(reason)),
            other => return Err(XnetError::Protocol(format!("expected Welcome, got {other:?}"))),
        };
        *backoff = BACKOFF_FIRST;
        let wake = streams.resume(peer, resume);
        tracing::info!(%peer, resume, "xnet: stream to the peer open");
        let acks = async {
            loop {
                match read_frame(&mut rd).await? {
                    Frame::Ack { next } => streams.acknowledged(peer, next),
                    other => return Err(XnetError::Protocol(format!("expected Ack, got {other:?}"))),
                }
            }
        };
        let mut next = resume;
        let sends = async {
            loop {
                match streams.batch(peer, generation, next) {
                    None => return Ok(()),
                    Some(Some((first_seq, messages))) => {
                        next = first_seq + messages.len() as u64;
                        write_frame(&mut wr, &Frame::Messages { first_seq, messages }).await?;
                    }
                    Some(None) => wake.notified().await,
                }
            }
        };
        tokio::select! {
            r = acks => r,
            r = sends => r,
        }
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
        let streams = self.streams.clone();
        let (mut rd, mut wr) = stream.split();
        let Frame::Hello { incarnation, range, .. } = read_frame(&mut rd).await? else {
            return Err(XnetError::Protocol("expected Hello".into()));
        };
        let generation = match streams.handshake(peer, incarnation, range) {
            Ok(g) => g,
            Err(reason) => {
                tracing::warn!(%peer, "xnet: refusing the peer: {reason}");
                write_frame(&mut wr, &Frame::Refused { reason }).await?;
                return Ok(());
            }
        };
        let (resume, delivering, ack_wake) = streams
            .inbound(peer)
            .ok_or_else(|| XnetError::Protocol("no link".into()))?;
        write_frame(
            &mut wr,
            &Frame::Welcome {
                incarnation: streams.incarnation(),
                range: streams.range_pair(),
                resume_from: resume,
            },
        )
        .await?;
        // Before this stream reads: the opener may already have connected
        // (we were dialed), so make sure ours runs too.
        self.open_stream(peer);
        // Acknowledgements go out when what they cover is received (on a
        // durable node: once a synced cut holds it), from their own loop.
        let acks = async {
            let mut sent = resume;
            loop {
                let next = streams.ack_position(peer);
                if next != sent {
                    write_frame(&mut wr, &Frame::Ack { next }).await?;
                    sent = next;
                }
                ack_wake.notified().await;
            }
        };
        let reads = async {
            loop {
                let Frame::Messages {
                    first_seq,
                    messages,
                } = read_frame(&mut rd).await?
                else {
                    return Err(XnetError::Protocol("expected Messages".into()));
                };
                let _one_at_a_time = delivering.lock().await;
                let Some(received) = streams
                    .receive(peer, generation, first_seq, messages)
                    .map_err(XnetError::Protocol)?
                else {
                    return Ok(());
                };
                for (seq, m) in received.fresh {
                    if let Some(incoming) = streams.deliver(peer, received.incarnation, seq, m) {
                        self.answer_ingress(incoming);
                    }
                }
                ack_wake.notify_one();
            }
        };
        tokio::select! {
            r = acks => r,
            r = reads => r,
        }
    }

    /// Runs a `ww call` a peer forwarded, in a task of its own, and queues
    /// its result.
    fn answer_ingress(self: &Arc<Self>, incoming: Incoming) {
        let me = self.clone();
        let Incoming {
            peer,
            incarnation,
            id,
            ingress,
        } = incoming;
        tokio::spawn(async move {
            let replica = me.streams.replica();
            let result = if ingress.caller == me.admin {
                Err(Reject {
                    code: RejectCode::CanisterReject,
                    error_code: None,
                    message: format!("{peer} forwarded a message as this node's admin; refused"),
                })
            } else if ingress.query {
                replica
                    .query(ingress.caller, ingress.callee, &ingress.method, ingress.arg)
                    .await
            } else {
                replica
                    .call(ingress.caller, ingress.callee, &ingress.method, ingress.arg)
                    .await
            };
            me.streams.respond_ingress(peer, incarnation, id, result);
        });
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
