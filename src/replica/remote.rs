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
//!   (payload limit, callable method); its answer, with the unaccepted
//!   cycles, goes to [`RemoteRouter::respond`] under the replica's lock.
//! - **Durable streams.** With a state directory, a cut holds the router's
//!   own state ([`RemoteRouter::capture`]) taken under the same lock as
//!   the replica's: what was sent, answered and received is in a cut
//!   together with its effects or not at all; the router lets messages
//!   leave, and acknowledges what it received, only once a cut holding
//!   them is synced ([`RemoteRouter::synced`]). A restarted node resumes
//!   its streams from there.
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
    /// Takes the answer to a call another node made (see
    /// [`Replica::accept_remote_call`]). Called with the replica's state
    /// locked, as [`RemoteRouter::send`].
    fn respond(&self, to: RemoteOrigin, response: RemoteResponse);
    /// The router's state for a cut being captured (with the replica's
    /// state locked): what restores it. `None`: it keeps nothing.
    fn capture(&self) -> Option<Vec<u8>> {
        None
    }
    /// The oldest captured cut not yet reported is synced: what it holds
    /// may leave the node and be acknowledged.
    fn synced(&self) {}
    /// Forwards an ingress message for a canister another node hosts (a
    /// `ww call` made on this node); the receiver gets its result. Called
    /// without the replica's state locked.
    fn forward_ingress(&self, ingress: ForwardedIngress) -> oneshot::Receiver<CallResult>;
    /// The canister index ranges of the peers, by peer id.
    fn peer_ranges(&self) -> Vec<(String, std::ops::RangeInclusive<u64>)>;
}

/// Where the answer to a call another node made goes: the calling node
/// (its peer id, as text), the incarnation of it that called, and its
/// callback.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteOrigin {
    pub peer: String,
    pub incarnation: u64,
    pub callback: u64,
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
        if self.inner.remote.set(router.clone()).is_err() {
            tracing::warn!("a remote router is already set; keeping the first");
            return;
        }
        let mut st = self.lock();
        for (to, response) in std::mem::take(&mut st.unsent_remote) {
            router.respond(to, response);
        }
        st.router = Some(router);
    }

    /// The router's state the state directory kept (once: the router that
    /// takes it restores from it).
    pub fn take_router_image(&self) -> Option<Vec<u8>> {
        self.lock().router_image.take()
    }

    /// Whether the state directory kept a router's state.
    pub fn has_router_image(&self) -> bool {
        self.lock().router_image.is_some()
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

    /// A call a canister on another node (`from`) makes here. Exactly one
    /// answer goes to [`RemoteRouter::respond`] (a reject when the call
    /// cannot run). `received` runs under the replica's lock with the call
    /// context opened (or the refusal given), so a cut holds the message as
    /// received exactly when it holds its effect.
    pub fn accept_remote_call(
        &self,
        request: RemoteRequest,
        from: RemoteOrigin,
        received: impl FnOnce(),
    ) {
        let limit = self.inner.config.limits.max_inter_canister_payload;
        let RemoteRequest {
            caller,
            callee,
            method,
            arg,
            cycles,
            deadline,
            callback,
        } = request;
        let mut st = self.lock();
        received();
        let refuse = |st: &mut super::state::State, reject: Reject| {
            st.respond_remote(
                from.clone(),
                RemoteResponse {
                    result: Err(reject),
                    refund: cycles,
                },
            )
        };
        if arg.len() > limit {
            let reject = Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("the request from {caller} to {callee} ({} bytes) is larger than {limit} bytes", arg.len()),
            );
            return refuse(&mut st, reject);
        }
        if callee == Principal::management_canister() {
            let reject = Reject {
                code: RejectCode::DestinationInvalid,
                error_code: None,
                message: "the management canister only takes calls from its own node's canisters".into(),
            };
            return refuse(&mut st, reject);
        }
        if let Err(reject) = st.check_callable(&callee, &method, false) {
            let reject = if reject.error_code == Some(ErrorCode::CanisterNotFound) {
                Reject { code: RejectCode::DestinationInvalid, ..reject }
            } else {
                reject
            };
            return refuse(&mut st, reject);
        }
        let context = st.new_context(callee, caller, Origin::Remote(from), deadline);
        if let Some(c) = st.contexts.get_mut(&context) {
            c.cycles = cycles;
        }
        if let Some(sim) = st.sim.as_mut() {
            sim.events.push(super::sim::SimEvent::RemoteAccepted { context, caller, callee, callback });
        }
        self.inner.enqueue(
            &mut st,
            callee,
            Task::Call {
                context,
                method,
                arg,
                caller,
                query: None,
                cycles,
            },
        );
    }

    /// The response to the remote call of `callback`. Runs the callback,
    /// unless it is gone or its deadline already answered it (then the
    /// response is dropped, as a late response on one node is).
    /// `received` runs under the replica's lock first (see
    /// [`Replica::accept_remote_call`]).
    /// `received` says whether the router expected the response; the
    /// return value whether it was taken.
    pub fn deliver_remote_response(
        &self,
        callback: u64,
        response: RemoteResponse,
        received: impl FnOnce() -> bool,
    ) -> bool {
        let mut st = self.lock();
        if !received() {
            return false;
        }
        if st.remote_expired.remove(&callback) {
            tracing::debug!(
                callback,
                "dropping a remote response that came after its deadline"
            );
            return false;
        }
        let Some(cb) = st.callbacks.get(&callback) else {
            tracing::debug!(callback, "dropping a remote response without a callback");
            return false;
        };
        let caller = cb.caller;
        st.credit(&caller, u128::from(response.refund));
        self.inner.enqueue(
            &mut st,
            caller,
            Task::Response {
                callback,
                result: response.result,
                refund: response.refund,
            },
        );
        true
    }

    /// Refuses a call another node made before it opens a context (the
    /// router's own checks), as [`Replica::accept_remote_call`] would.
    pub fn refuse_remote_call(
        &self,
        to: RemoteOrigin,
        reject: Reject,
        refund: u64,
        received: impl FnOnce(),
    ) {
        let mut st = self.lock();
        received();
        st.respond_remote(
            to,
            RemoteResponse {
                result: Err(reject),
                refund,
            },
        );
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
        self.fail_remote_calls_with(|| callbacks.to_vec(), reject);
    }

    /// Answers with `reject` the remote calls `lost` returns, calling it
    /// under the replica's lock (so a cut holds the router's change and
    /// the answers together).
    pub fn fail_remote_calls_with(&self, lost: impl FnOnce() -> Vec<u64>, reject: &Reject) {
        let mut st = self.lock();
        for callback in lost() {
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
