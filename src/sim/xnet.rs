//! N2: the simulated network between the nodes of a run. Each node's
//! replica routes calls to other nodes through the real XNet protocol
//! state ([`Streams`], what `ww run --listen` uses over libp2p); this
//! module is its transport, with every move a decision of the chooser:
//! connecting a pair (both handshakes), delivering the next frame of a
//! stream, delivering an acknowledgement. A frame waits in flight until
//! the chooser delivers it (delay); N2 loses a connection with what is in
//! flight on it, or delivers a frame twice; N1 on one node restarts it as
//! from its state directory: a durable node's streams are in its cuts, so
//! it comes back as the same incarnation and resumes them (messages leave
//! a durable node, and are acknowledged by one, only once a cut holds
//! them: cuts are decisions here too).
//!
//! The cross-node checks join the two ends of each call
//! ([`super::check::Cross`]):
//! - I3: a call answered with a clean reject (`SYS_TRANSIENT`...) was not
//!   run by its callee, in whatever order the two are seen;
//! - I5: an answer a caller's node took is still in the callee's state
//!   after the callee restarts, and a callee never runs a call its
//!   caller's restarted state never made.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use libp2p::PeerId;

use super::chooser::Chooser;
use super::check::{CallOutcome, Cross, RemoteIn};
use super::faults::{FaultKind, FaultPlan};
use super::inject::Fired;
use super::run::Failure;
use super::runner::Run;
use crate::net::routing::{CanisterRange, derived_range, subnet_of};
use crate::net::xnet::streams::{Message, Streams};
use crate::replica::sim::SimEvent;
use crate::replica::{Replica, SubnetRange};

/// A node's identity in a simulation: its peer id, canister range, subnet.
#[derive(Clone)]
pub(super) struct NodeLayout {
    pub peer: PeerId,
    pub range: CanisterRange,
}

impl NodeLayout {
    /// Node `i`'s identity (fixed: the same for every seed).
    pub fn new(i: usize) -> Self {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let peer = libp2p::identity::Keypair::ed25519_from_bytes(secret).map_or_else(|_| PeerId::random(), |k| k.public().to_peer_id());
        Self { peer, range: derived_range(&peer) }
    }

    /// The replica's subnet: this node's range.
    pub fn subnets(&self) -> Vec<SubnetRange> {
        vec![SubnetRange::new(subnet_of(&self.peer), self.range.clone())]
    }
}

/// One direction of a connection: `from`'s stream to `to`.
#[derive(Default)]
struct Pipe {
    /// The link generations the handshake gave the sender and receiver.
    send_generation: u64,
    recv_generation: u64,
    /// The number of the next message the sender transmits.
    next: u64,
    /// Message batches in flight (first number, messages).
    frames: VecDeque<(u64, Vec<Message>)>,
    /// Acknowledgements in flight back to the sender, and the last one
    /// the receiver sent.
    acks: VecDeque<u64>,
    acked: u64,
}

/// A response a caller's node took.
#[derive(Clone, Copy)]
struct Taken {
    callee_node: usize,
    context: u64,
    caller_node: usize,
    callback: u64,
}

/// A move of the network.
#[derive(Clone, Copy, Debug)]
pub(super) enum NetMove {
    Connect(usize, usize),
    Deliver(usize, usize),
    Ack(usize, usize),
}

/// The network of a run.
pub(super) struct SimNet {
    layout: Vec<NodeLayout>,
    streams: Vec<Arc<Streams>>,
    restarts: Vec<u64>,
    /// Connected pairs (a < b).
    up: BTreeMap<(usize, usize), bool>,
    pipes: BTreeMap<(usize, usize), Pipe>,
    taken: Vec<Taken>,
    /// The nodes keep state directories.
    durable: bool,
}

/// A node's incarnation after `restarts` restarts (fixed per seed).
fn incarnation(node: usize, restarts: u64) -> u64 {
    let hash = blake3::hash(format!("ww-sim node {node} restart {restarts}").as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(head)
}

impl SimNet {
    /// Joins the nodes' replicas: each gets its streams as its router. The
    /// pairs start disconnected (connecting is a move).
    pub fn join(layout: Vec<NodeLayout>, runs: &mut [Run], durable: bool) -> Self {
        let mut net = Self {
            streams: Vec::new(),
            restarts: vec![0; layout.len()],
            up: BTreeMap::new(),
            pipes: BTreeMap::new(),
            taken: Vec::new(),
            durable,
            layout,
        };
        for (n, run) in runs.iter_mut().enumerate() {
            let l = &net.layout[n];
            let streams = Arc::new(Streams::new(
                run.replica.clone(),
                l.range.clone(),
                subnet_of(&l.peer),
                incarnation(n, 0),
                durable,
            ));
            net.restarts[n] = 1;
            run.replica.set_remote_router(streams.clone());
            run.check.incarnation = streams.incarnation();
            net.streams.push(streams);
        }
        for a in 0..net.layout.len() {
            for b in a + 1..net.layout.len() {
                net.up.insert((a, b), false);
            }
        }
        net
    }

    /// Node `node`'s streams: those its state directory kept (the same
    /// incarnation), else a new incarnation's.
    fn streams_for(&mut self, node: usize, replica: &Replica) -> Result<Arc<Streams>, Failure> {
        let l = &self.layout[node];
        let streams = match replica.take_router_image() {
            Some(image) => {
                Streams::restore(replica.clone(), l.range.clone(), subnet_of(&l.peer), &image)
                    .map_err(|why| Failure {
                        invariant: "N2 XNet".into(),
                        detail: format!("n{node}: {why}"),
                        step: 0,
                    })?
            }
            None => {
                let fresh = incarnation(node, self.restarts[node]);
                self.restarts[node] += 1;
                Streams::new(
                    replica.clone(),
                    l.range.clone(),
                    subnet_of(&l.peer),
                    fresh,
                    self.durable,
                )
            }
        };
        let streams = Arc::new(streams);
        replica.set_remote_router(streams.clone());
        Ok(streams)
    }

    /// Whether node `node`'s streams wait for a cut (to send or to
    /// acknowledge).
    pub fn awaits_cut(&self, node: usize) -> bool {
        self.streams[node].awaits_cut()
    }

    /// Connects every pair (the handshakes of a run's start).
    pub fn connect_all(&mut self) -> Result<(), Failure> {
        let pairs: Vec<(usize, usize)> = self.up.keys().copied().collect();
        for (a, b) in pairs {
            self.handshake(a, b)?;
            self.handshake(b, a)?;
            self.up.insert((a, b), true);
        }
        Ok(())
    }

    /// Sends what the streams hold, and the acknowledgements due, on every
    /// connected pipe (frames then wait in flight for the chooser).
    pub fn transmit(&mut self) {
        for ((from, to), pipe) in &mut self.pipes {
            let pair = ((*from).min(*to), (*from).max(*to));
            if !self.up.get(&pair).copied().unwrap_or(false) {
                continue;
            }
            while let Some(Some((first, messages))) = self.streams[*from].batch(self.layout[*to].peer, pipe.send_generation, pipe.next) {
                pipe.next = first + messages.len() as u64;
                pipe.frames.push_back((first, messages));
            }
            let ack = self.streams[*to].ack_position(self.layout[*from].peer);
            if ack != pipe.acked {
                pipe.acked = ack;
                pipe.acks.push_back(ack);
            }
        }
    }

    /// The moves the network can make now.
    pub fn moves(&self) -> Vec<NetMove> {
        let mut moves = Vec::new();
        for (&(a, b), &up) in &self.up {
            if !up {
                moves.push(NetMove::Connect(a, b));
                continue;
            }
            for (from, to) in [(a, b), (b, a)] {
                let Some(pipe) = self.pipes.get(&(from, to)) else { continue };
                if !pipe.frames.is_empty() {
                    moves.push(NetMove::Deliver(from, to));
                }
                if !pipe.acks.is_empty() {
                    moves.push(NetMove::Ack(from, to));
                }
            }
        }
        moves
    }


    /// Makes `mv`; the timeline line, or a failure.
    pub fn apply(&mut self, mv: NetMove, runs: &mut [Run]) -> Result<String, Failure> {
        match mv {
            NetMove::Connect(a, b) => {
                for (from, to) in [(a, b), (b, a)] {
                    self.handshake(from, to)?;
                }
                self.up.insert((a, b), true);
                Ok(format!("net  n{a} and n{b} connect (handshakes)"))
            }
            NetMove::Deliver(from, to) => self.deliver(from, to, runs),
            NetMove::Ack(from, to) => {
                let Some(next) = self.pipes.get_mut(&(from, to)).and_then(|p| p.acks.pop_front()) else {
                    return Ok(String::new());
                };
                self.streams[from].acknowledged(self.layout[to].peer, next);
                Ok(format!("net  n{to} acknowledges to n{from} every message before #{next}"))
            }
        }
    }

    /// The handshake of `from`'s stream to `to`: `to` learns `from`'s
    /// incarnation, `from` learns `to`'s and where to resume.
    fn handshake(&mut self, from: usize, to: usize) -> Result<(), Failure> {
        let (pf, pt) = (self.layout[from].peer, self.layout[to].peer);
        let fail = |why: String| Failure { invariant: "N2 XNet".into(), detail: format!("n{from} -> n{to} handshake: {why}"), step: 0 };
        let range = |n: usize| (*self.layout[n].range.start(), *self.layout[n].range.end());
        let recv_generation = self.streams[to]
            .handshake(pf, self.streams[from].incarnation(), range(from))
            .map_err(fail)?;
        let resume = self.streams[to].inbound(pf).map_or(0, |(next, _, _)| next);
        let send_generation = self.streams[from]
            .handshake(pt, self.streams[to].incarnation(), range(to))
            .map_err(fail)?;
        self.streams[from].resume(pt, resume);
        self.pipes.insert(
            (from, to),
            Pipe {
                send_generation,
                recv_generation,
                next: resume,
                acked: resume,
                ..Pipe::default()
            },
        );
        Ok(())
    }

    fn deliver(&mut self, from: usize, to: usize, runs: &mut [Run]) -> Result<String, Failure> {
        let pf = self.layout[from].peer;
        let Some(pipe) = self.pipes.get_mut(&(from, to)) else { return Ok(String::new()) };
        let Some((first, messages)) = pipe.frames.pop_front() else { return Ok(String::new()) };
        let count = messages.len() as u64;
        let received = match self.streams[to].receive(pf, pipe.recv_generation, first, messages) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(format!("net  n{from} -> n{to}: a frame of an earlier generation is dropped")),
            Err(why) => {
                return Err(Failure { invariant: "N2 XNet".into(), detail: format!("n{from} -> n{to}: the stream broke: {why}"), step: 0 });
            }
        };
        let fresh = received.fresh.len() as u64;
        let mut what = Vec::new();
        for (seq, m) in received.fresh {
            if let Message::Response { callback, .. } = &m {
                let callback = *callback;
                let me = self.streams[to].incarnation();
                let context = runs[from]
                    .check
                    .remote_in
                    .iter()
                    .find(|(_, r)| {
                        r.caller_node == to && r.callback == callback && r.caller_incarnation == me
                    })
                    .map(|(c, _)| *c);
                if self.streams[to].awaits(pf, callback)
                    && let Some(context) = context
                {
                    self.taken.push(Taken { callee_node: from, context, caller_node: to, callback });
                }
                what.push(format!("response #{callback}"));
            }
            if let Message::Request(r) = &m {
                what.push(format!("request #{} {}", r.callback, r.method));
            }
            // A forwarded `ww call` (never made in a simulation) is dropped.
            let _ = self.streams[to].deliver(pf, received.incarnation, seq, m);
            let events = runs[to].replica.sim_take_events();
            for e in &events {
                if let SimEvent::RemoteAccepted {
                    context, callback, ..
                } = e
                {
                    let remote = RemoteIn {
                        caller_node: from,
                        caller_incarnation: received.incarnation.unwrap_or(0),
                        callback: *callback,
                        executed: false,
                        answered: false,
                    };
                    runs[to].check.remote_in.insert(*context, remote);
                }
            }
            if let Some((inv, detail)) = runs[to].check.observe(&events) {
                return Err(Failure { invariant: inv.into(), detail, step: 0 });
            }
        }
        let dup = if fresh < count { format!(" ({} already delivered, dropped)", count - fresh) } else { String::new() };
        Ok(format!("net  n{from} -> n{to}: messages #{first}..#{} delivered{dup}: {}", first + count - 1, what.join(", ")))
    }

    /// N2: a connection may be lost with what is in flight, or a frame be
    /// delivered twice. The timeline line.
    pub fn fault(&mut self, plan: &FaultPlan, chooser: &mut Chooser, fired: &mut Fired) -> Option<String> {
        let rate = plan.rate(FaultKind::Link)?;
        if !chooser.chance(rate) {
            return None;
        }
        let connected: Vec<(usize, usize)> = self.up.iter().filter(|(_, up)| **up).map(|(p, _)| *p).collect();
        if connected.is_empty() {
            return None;
        }
        let (a, b) = connected[chooser.draw(connected.len() as u32) as usize];
        fired.add(FaultKind::Link);
        let in_flight: Vec<(usize, usize)> = [(a, b), (b, a)].into_iter().filter(|d| self.pipes.get(d).is_some_and(|p| !p.frames.is_empty())).collect();
        if !in_flight.is_empty() && chooser.draw(2) == 1 {
            let (from, to) = in_flight[chooser.draw(in_flight.len() as u32) as usize];
            let pipe = self.pipes.get_mut(&(from, to))?;
            let i = chooser.draw(pipe.frames.len() as u32) as usize;
            let copy = pipe.frames[i].clone();
            let first = copy.0;
            pipe.frames.push_back(copy);
            return Some(format!("fault: N2 the transport will deliver n{from} -> n{to} messages from #{first} twice"));
        }
        self.disconnect(a, b);
        Some(format!("fault: N2 the connection between n{a} and n{b} is lost with what was in flight"))
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        self.up.insert((a.min(b), a.max(b)), false);
        self.pipes.remove(&(a, b));
        self.pipes.remove(&(b, a));
    }

    /// After node `node` restarted (N1): its new replica gets the streams
    /// its cut kept, its connections are gone, and every answer a peer took
    /// from it must still be in its restored state (I5).
    pub fn restarted(&mut self, node: usize, runs: &mut [Run]) -> Option<Failure> {
        let streams = match self.streams_for(node, &runs[node].replica) {
            Ok(s) => s,
            Err(f) => return Some(f),
        };
        if streams.incarnation() != self.streams[node].incarnation() {
            runs[node].line(format!(
                "n{node} comes back as a new incarnation (its state directory kept no streams)"
            ));
        }
        runs[node].check.incarnation = streams.incarnation();
        self.streams[node] = streams;
        for other in 0..self.layout.len() {
            if other != node {
                self.disconnect(node, other);
            }
        }
        let taken: Vec<Taken> = self
            .taken
            .iter()
            .filter(|t| t.callee_node == node)
            .copied()
            .collect();
        self.taken.retain(|t| t.callee_node != node);
        for t in taken {
            let kept = runs[node].check.remote_in.get(&t.context).is_some_and(|r| r.answered);
            if !kept {
                let who = runs[t.caller_node].check.calls.get(&t.callback).map_or_else(String::new, |c| format!(" ({})", c.method));
                return Some(Failure {
                    invariant: "I5 durability across nodes".into(),
                    detail: format!(
                        "n{} took n{node}'s response to call #{}{who}, but n{node} restarted without having answered it (its context {} is not answered in the restored state)",
                        t.caller_node, t.callback, t.context
                    ),
                    step: 0,
                });
            }
        }
        None
    }

    /// Joins what each end of the cross-node calls saw since the last look.
    pub fn cross_check(&self, runs: &mut [Run]) -> Option<Failure> {
        let news: Vec<(usize, Cross)> = runs.iter_mut().enumerate().flat_map(|(n, r)| std::mem::take(&mut r.check.news).into_iter().map(move |c| (n, c))).collect();
        for (node, news) in news {
            match news {
                Cross::Executed(context) => {
                    let Some(remote) = runs[node].check.remote_in.get(&context).cloned() else { continue };
                    let caller = &runs[remote.caller_node].check;
                    match caller.calls.get(&remote.callback) {
                        Some(call) if call.incarnation == remote.caller_incarnation => {
                            if let Some(CallOutcome::Failed(code)) = call.outcome
                                && is_clean(code)
                            {
                                return Some(clean_after_run(remote.caller_node, remote.callback, &call.method, code, node));
                            }
                        }
                        _ => {
                            return Some(Failure {
                                invariant: "I5 durability across nodes".into(),
                                detail: format!(
                                    "n{node} ran call #{} from n{}, whose restored state never made that call (it left before a cut held it)",
                                    remote.callback, remote.caller_node
                                ),
                                step: 0,
                            });
                        }
                    }
                }
                Cross::CleanReject(callback) => {
                    let Some(call) = runs[node].check.calls.get(&callback) else { continue };
                    let Some(CallOutcome::Failed(code)) = call.outcome else { continue };
                    let ran = runs.iter().enumerate().find(|(callee, r)| {
                        *callee != node
                            && r.check
                                .remote_in
                                .values()
                                .any(|ri| ri.caller_node == node && ri.callback == callback && ri.caller_incarnation == call.incarnation && ri.executed)
                    });
                    if let Some((callee, _)) = ran {
                        return Some(clean_after_run(node, callback, &call.method, code, callee));
                    }
                }
            }
        }
        None
    }
}

fn is_clean(code: crate::replica::RejectCode) -> bool {
    use crate::replica::RejectCode as R;
    matches!(code, R::SysFatal | R::SysTransient | R::DestinationInvalid)
}

fn clean_after_run(caller_node: usize, callback: u64, method: &str, code: crate::replica::RejectCode, callee_node: usize) -> Failure {
    Failure {
        invariant: "I3 reject rules".into(),
        detail: format!("call #{callback} ({method}) from n{caller_node} got the clean reject {code:?}, but n{callee_node} ran it"),
        step: 0,
    }
}
