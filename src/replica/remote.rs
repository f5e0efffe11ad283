//! Calls between this replica's canisters and canisters other nodes host:
//! the replica's half of cross-node messaging (the network half, streams
//! and routing, is `crate::net`). The promises are the ones calls on one
//! replica keep:
//!
//! - **Outgoing.** A committed call to a canister this replica does not
//!   host, whose id the [`RemoteRouter`] routes, leaves as a
//!   [`RemoteRequest`] naming its callback. The callback stays registered
//!   here: it counts against the caller's outstanding calls to that callee
//!   (backpressure), and a bounded-wait deadline answers `SYS_UNKNOWN` on
//!   this replica's clock whatever the network does.
//! - **Exactly one response.** [`Replica::deliver_remote_response`] runs
//!   the callback at most once: a response for a callback that is gone, or
//!   whose deadline already answered it, is dropped.
//!   [`Replica::fail_remote_calls`] answers calls the network lost (the
//!   peer came back without them) with a reject instead.
//! - **Incoming.** [`Replica::accept_remote_call`] opens a call context for
//!   a call a canister on another node made, checked as ingress is
//!   (payload limit, callable method), answered through a channel with the
//!   unaccepted cycles.
//! - **Unroutable.** A call to a canister neither this replica nor a routed
//!   node hosts fails as on one node (`CanisterNotFound`,
//!   `DESTINATION_INVALID` between canisters), with the router's
//!   explanation as its message when it has one
//!   ([`RemoteRouter::unreachable`]: the node owning that range refuses
//!   this node or cannot be reached).

use candid::Principal;
use tokio::sync::oneshot;

use super::state::{Origin, Task};
use super::{CallResult, ErrorCode, Reject, RejectCode, Replica};

/// Where calls to canisters of other nodes go (the network layer).
pub trait RemoteRouter: Send + Sync {
    /// Whether a connected or known node hosts `canister`.
    fn routes(&self, canister: &Principal) -> bool;
    /// Why `canister`, which [`RemoteRouter::routes`] does not route, may
    /// be out of reach (a node this one cannot reach owns its range), on
    /// one line; `None` when nothing is known.
    fn unreachable(&self, _canister: &Principal) -> Option<String> {
        None
    }
    /// Takes a request to send. Called with the replica's state locked:
    /// queue it, never block or call back into the replica.
    fn send(&self, request: RemoteRequest);
    /// Forwards an ingress message for a canister another node hosts (a
    /// `ww call` made on this node); the receiver gets its result. Called
    /// without the replica's state locked.
    fn forward_ingress(&self, ingress: ForwardedIngress) -> oneshot::Receiver<CallResult>;
    /// The canister index ranges of the peers, by peer id.
    fn peer_ranges(&self) -> Vec<(String, std::ops::RangeInclusive<u64>)>;
}

/// An ingress message (update or query) for a canister another node hosts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardedIngress {
    /// The user who sent it, as this node knows them.
    pub caller: Principal,
    pub callee: Principal,
    pub method: String,
    #[serde(with = "serde_bytes")]
    pub arg: Vec<u8>,
    pub query: bool,
}

/// A call from a canister of this replica to one another node hosts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteRequest {
    /// The caller's callback here: the response names it.
    pub callback: u64,
    pub caller: Principal,
    pub callee: Principal,
    pub method: String,
    #[serde(with = "serde_bytes")]
    pub arg: Vec<u8>,
    pub cycles: u64,
    /// The bounded-wait deadline on the caller's clock (0: unbounded).
    pub deadline: u64,
}

/// The answer to a [`RemoteRequest`]: the result and the cycles the callee
/// did not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteResponse {
    pub result: CallResult,
    pub refund: u64,
}

/// `reject` (a canister not found) with the router's explanation as its
/// message when it has one ([`RemoteRouter::unreachable`]).
pub(super) fn explain_not_found(remote: Option<&std::sync::Arc<dyn RemoteRouter>>, canister: &Principal, reject: Reject) -> Reject {
    match remote.and_then(|r| r.unreachable(canister)) {
        Some(why) => Reject { message: Reject::system(ErrorCode::CanisterNotFound, why).message, ..reject },
        None => reject,
    }
}

impl Replica {
    /// Routes calls to canisters this replica does not host through
    /// `router`. Set once (later calls are ignored).
    pub fn set_remote_router(&self, router: std::sync::Arc<dyn RemoteRouter>) {
        if self.inner.remote.set(router).is_err() {
            tracing::warn!("a remote router is already set; keeping the first");
        }
    }

    /// Sends an ingress message for a canister this replica does not host
    /// to the node that does, if a router knows one; a canister the router
    /// cannot route but can explain (its node is out of reach) is refused
    /// with the reason.
    pub(super) fn forward(&self, caller: Principal, canister: Principal, method: &str, arg: &[u8], query: bool) -> Option<oneshot::Receiver<CallResult>> {
        let router = self.inner.remote.get()?;
        if canister == Principal::management_canister() || self.hosts(&canister) {
            return None;
        }
        let answer = |reject: Reject| {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(reject));
            Some(rx)
        };
        if !router.routes(&canister) {
            return answer(Reject::system(ErrorCode::CanisterNotFound, router.unreachable(&canister)?));
        }
        let limit = self.inner.config.limits.max_inter_canister_payload;
        if arg.len() > limit {
            return answer(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("the ingress payload ({} bytes) is larger than {limit} bytes", arg.len()),
            ));
        }
        Some(router.forward_ingress(ForwardedIngress { caller, callee: canister, method: method.to_string(), arg: arg.to_vec(), query }))
    }

    /// Which node hosts which canister indexes: this replica's ranges
    /// (`None`), then the peers' the router knows (by peer id).
    pub fn hosted_ranges(&self) -> Vec<(Option<String>, std::ops::RangeInclusive<u64>)> {
        let mut out: Vec<_> = self.lock().ranges.iter().map(|r| (None, r.start..=r.end)).collect();
        if let Some(router) = self.inner.remote.get() {
            out.extend(router.peer_ranges().into_iter().map(|(p, r)| (Some(p), r)));
        }
        out
    }

    /// Whether this replica hosts `canister` (it exists here now).
    pub fn hosts(&self, canister: &Principal) -> bool {
        self.lock().canisters.contains_key(canister)
    }

    /// A call `caller` (a canister on another node) makes to `callee` here.
    /// The receiver gets exactly one response (a reject when the call
    /// cannot run); it is dropped if the replica restarts first.
    pub fn accept_remote_call(&self, request: RemoteRequest) -> oneshot::Receiver<RemoteResponse> {
        let (tx, rx) = oneshot::channel();
        let refuse = |tx: oneshot::Sender<RemoteResponse>, cycles: u64, reject: Reject| {
            let _ = tx.send(RemoteResponse { result: Err(reject), refund: cycles });
        };
        let limit = self.inner.config.limits.max_inter_canister_payload;
        let RemoteRequest { caller, callee, method, arg, cycles, deadline, callback } = request;
        if arg.len() > limit {
            let reject = Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("the request from {caller} to {callee} ({} bytes) is larger than {limit} bytes", arg.len()),
            );
            refuse(tx, cycles, reject);
            return rx;
        }
        if callee == Principal::management_canister() {
            let reject = Reject {
                code: RejectCode::DestinationInvalid,
                error_code: None,
                message: "the management canister only takes calls from its own node's canisters".into(),
            };
            refuse(tx, cycles, reject);
            return rx;
        }
        let mut st = self.lock();
        if let Err(reject) = st.check_callable(&callee, &method, false) {
            let reject = if reject.error_code == Some(ErrorCode::CanisterNotFound) {
                Reject { code: RejectCode::DestinationInvalid, ..reject }
            } else {
                reject
            };
            drop(st);
            refuse(tx, cycles, reject);
            return rx;
        }
        let context = st.new_context(callee, caller, Origin::Remote(tx), deadline);
        if let Some(c) = st.contexts.get_mut(&context) {
            c.cycles = cycles;
        }
        if let Some(sim) = st.sim.as_mut() {
            sim.events.push(super::sim::SimEvent::RemoteAccepted { context, caller, callee, callback });
        }
        self.inner.enqueue(&mut st, callee, Task::Call { context, method, arg, caller, query: None, cycles });
        rx
    }

    /// The response to the remote call of `callback`. Runs the callback,
    /// unless it is gone or its deadline already answered it (then the
    /// response is dropped, as a late response on one node is).
    pub fn deliver_remote_response(&self, callback: u64, response: RemoteResponse) {
        let mut st = self.lock();
        if st.remote_expired.remove(&callback) {
            tracing::debug!(callback, "dropping a remote response that came after its deadline");
            return;
        }
        let Some(cb) = st.callbacks.get(&callback) else {
            tracing::debug!(callback, "dropping a remote response without a callback");
            return;
        };
        let caller = cb.caller;
        st.credit(&caller, u128::from(response.refund));
        self.inner.enqueue(&mut st, caller, Task::Response { callback, result: response.result, refund: response.refund });
    }

    /// After a restart from a state directory: every call to another node's
    /// canister still waiting is answered SYS_TRANSIENT (the streams that
    /// carried it are not in the state directory). Returns how many.
    pub fn fail_lost_remote_calls(&self) -> usize {
        let lost: Vec<u64> = {
            let st = self.lock();
            st.callbacks
                .iter()
                .filter(|(_, cb)| cb.callee_context.is_none() && cb.callee != Principal::management_canister() && !st.canisters.contains_key(&cb.callee))
                .map(|(id, _)| *id)
                .collect()
        };
        if !lost.is_empty() {
            let reject = Reject {
                code: RejectCode::SysTransient,
                error_code: None,
                message: "this node restarted while the call to another node was in flight; it was lost".into(),
            };
            self.fail_remote_calls(&lost, &reject);
        }
        lost.len()
    }

    /// Answers the remote calls of `callbacks` with `reject` (those still
    /// waiting; the rest are skipped), refunding their cycles.
    pub fn fail_remote_calls(&self, callbacks: &[u64], reject: &Reject) {
        let mut st = self.lock();
        for &callback in callbacks {
            if st.remote_expired.remove(&callback) {
                continue;
            }
            let Some(cb) = st.callbacks.get(&callback) else { continue };
            let (caller, refund) = (cb.caller, cb.cycles);
            st.credit(&caller, u128::from(refund));
            self.inner.enqueue(&mut st, caller, Task::Response { callback, result: Err(reject.clone()), refund });
        }
    }
}
