//! The system invariants a simulated run checks after every step, from the
//! replica's events (violations are ww bugs or forbidden injections), and
//! the Jepsen-style history of every inter-canister call: ok, failed, or
//! maybe (`SYS_UNKNOWN`: it may or may not have executed).
//!
//! - I1: every callback runs at most once, and every call gets exactly one
//!   response (checked at the end: nothing left open);
//! - I2: a caller's delivered requests to one callee start in send order;
//! - I3: no `SYS_UNKNOWN` on an unbounded-wait call, and no clean reject
//!   (`SYS_FATAL`, `SYS_TRANSIENT`, `DESTINATION_INVALID`) for a request
//!   whose callee started executing;
//! - I6: cycles attached to a call are conserved: what the callee accepted
//!   plus what the caller got back is what was attached; a call that
//!   expired (`SYS_UNKNOWN`) refunds nothing, and what its callee did not
//!   accept is ledgered as lost (as on the IC). Calls to the management
//!   canister and to other nodes' canisters are left out.
//!
//! With several nodes a call's two ends are on two checkers: the caller's
//! records the call, the callee's the remote call context it became
//! ([`RemoteIn`]); both report what the other end must hear of
//! ([`Cross`]), and `super::xnet` joins them.

use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;

use crate::replica::RejectCode;
use crate::replica::sim::SimEvent;

#[derive(Clone, Debug)]
pub struct CallRecord {
    pub caller: Principal,
    pub callee: Principal,
    pub method: String,
    pub bounded: bool,
    pub started: bool,
    pub outcome: Option<CallOutcome>,
    /// The caller's node's incarnation when it sent the call.
    pub incarnation: u64,
    /// Cycles attached.
    pub cycles: u128,
}

/// A call context a canister on another node opened here.
#[derive(Clone, Debug)]
pub struct RemoteIn {
    pub caller_node: usize,
    /// The caller's node's incarnation, as the handshake told it.
    pub caller_incarnation: u64,
    pub callback: u64,
    pub executed: bool,
    pub answered: bool,
}

/// What one end of a cross-node call saw that the other end must hear of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cross {
    /// The callee ran Wasm for the remote call context.
    Executed(u64),
    /// The caller's callback got a clean reject (the callee must not have run it).
    CleanReject(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    Failed(RejectCode),
    /// `SYS_UNKNOWN`: executed or not, the caller cannot tell.
    Maybe,
}

impl CallOutcome {
    pub fn label(self) -> String {
        match self {
            Self::Ok => "ok".into(),
            Self::Maybe => "maybe (SYS_UNKNOWN)".into(),
            Self::Failed(code) => format!("failed ({code:?})"),
        }
    }
}

/// Inter-canister calls by callback id, and the checks over them.
#[derive(Clone, Default)]
pub struct SystemCheck {
    pub calls: BTreeMap<u64, CallRecord>,
    ran: BTreeSet<u64>,
    /// The last callback started per (caller, callee).
    last_started: BTreeMap<(Principal, Principal), u64>,
    /// Callee call contexts of delivered requests, by the caller's callback:
    /// a request counts as executed only once its callee ran Wasm in that
    /// context (a frozen callee refuses it without running).
    delivered: BTreeMap<u64, u64>,
    /// This node's incarnation (several nodes; 0 otherwise).
    pub incarnation: u64,
    /// Remote call contexts by context id.
    pub remote_in: BTreeMap<u64, RemoteIn>,
    /// What the other ends must hear of, since they last looked.
    pub news: Vec<Cross>,
    /// Cycles accepted per call context, and each delivered call's context.
    accepted: BTreeMap<u64, u128>,
    context_of: BTreeMap<u64, u64>,
    /// Canisters other nodes host (their side of a call is not seen here).
    pub foreign: BTreeSet<Principal>,
    /// Cycles lost with expired calls (what their callees did not accept).
    pub lost_cycles: u128,
    /// Expired calls whose lost cycles are not settled yet: callback.
    expired: BTreeSet<u64>,
}

impl SystemCheck {
    /// Takes a step's events; the first violated invariant, if any.
    pub fn observe(&mut self, events: &[SimEvent]) -> Option<(&'static str, String)> {
        for event in events {
            match event {
                SimEvent::CallSent { callback, caller, callee, method, bounded, cycles } => {
                    self.calls.insert(
                        *callback,
                        CallRecord {
                            caller: *caller,
                            callee: *callee,
                            method: method.clone(),
                            bounded: *bounded,
                            started: false,
                            outcome: None,
                            incarnation: self.incarnation,
                            cycles: *cycles,
                        },
                    );
                }
                SimEvent::RequestStarted { callback: Some(cb), context } => {
                    let Some(call) = self.calls.get_mut(cb) else { continue };
                    self.delivered.insert(*context, *cb);
                    self.context_of.insert(*cb, *context);
                    let pair = (call.caller, call.callee);
                    if let Some(last) = self.last_started.insert(pair, *cb)
                        && last > *cb
                    {
                        return Some(("I2 per-pair order", format!("{} -> {}: call #{cb} started after the later call #{last}", pair.0, pair.1)));
                    }
                }
                SimEvent::Executed { context, accepted, .. } => {
                    *self.accepted.entry(*context).or_default() += accepted;
                    if let Some(cb) = self.delivered.get(context)
                        && let Some(call) = self.calls.get(cb)
                        && self.accepted[context] > call.cycles
                    {
                        return Some((
                            "I6 cycles conservation",
                            format!("call #{cb} ({}) attached {} cycles, its callee accepted {}", call.method, call.cycles, self.accepted[context]),
                        ));
                    }
                    if let Some(remote) = self.remote_in.get_mut(context) {
                        remote.executed = true;
                        self.news.push(Cross::Executed(*context));
                    }
                    if let Some(call) = self.delivered.get(context).and_then(|cb| self.calls.get_mut(cb)) {
                        call.started = true;
                    }
                }
                SimEvent::CallbackRan { callback, reject, refund } => {
                    if !self.ran.insert(*callback) {
                        return Some(("I1 exactly one response", format!("the callback of call #{callback} ran twice")));
                    }
                    if let Some(violation) = self.conserved(*callback, *reject, *refund) {
                        return Some(("I6 cycles conservation", violation));
                    }
                    let Some(call) = self.calls.get_mut(callback) else { continue };
                    call.outcome = Some(match reject {
                        None => CallOutcome::Ok,
                        Some(RejectCode::SysUnknown) => CallOutcome::Maybe,
                        Some(code) => CallOutcome::Failed(*code),
                    });
                    let clean = matches!(reject, Some(RejectCode::SysFatal | RejectCode::SysTransient | RejectCode::DestinationInvalid));
                    if clean {
                        self.news.push(Cross::CleanReject(*callback));
                    }
                    if *reject == Some(RejectCode::SysUnknown) && !call.bounded {
                        return Some(("I3 reject rules", format!("call #{callback} ({}) waits unbounded but got SYS_UNKNOWN", call.method)));
                    }
                    if clean && call.started {
                        return Some((
                            "I3 reject rules",
                            format!("call #{callback} ({}) got the clean reject {reject:?} after {} started executing it", call.method, call.callee),
                        ));
                    }
                }
                SimEvent::Answered { context, callback: None, .. } => {
                    if let Some(remote) = self.remote_in.get_mut(context) {
                        remote.answered = true;
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// I6 when call `callback`'s callback runs with `refund`: the attached
    /// cycles are what the callee accepted plus the refund (an expired call
    /// refunds nothing; what its callee did not accept is lost).
    fn conserved(&mut self, callback: u64, reject: Option<RejectCode>, refund: u128) -> Option<String> {
        let call = self.calls.get(&callback)?;
        if call.callee == Principal::management_canister() || self.foreign.contains(&call.callee) {
            return None;
        }
        let accepted = self.context_of.get(&callback).and_then(|c| self.accepted.get(c)).copied().unwrap_or(0);
        if reject == Some(RejectCode::SysUnknown) {
            if refund != 0 {
                return Some(format!("call #{callback} ({}) expired but {refund} cycles came back", call.method));
            }
            self.expired.insert(callback);
            return None;
        }
        (accepted + refund != call.cycles).then(|| {
            format!("call #{callback} ({}) attached {} cycles; its callee accepted {accepted} and {refund} came back", call.method, call.cycles)
        })
    }

    /// Settles the cycles of expired calls once their callees are done:
    /// what they did not accept is lost. Returns the total lost so far.
    pub fn settle_lost(&mut self) -> u128 {
        for cb in std::mem::take(&mut self.expired) {
            let Some(call) = self.calls.get(&cb) else { continue };
            let accepted = self.context_of.get(&cb).and_then(|c| self.accepted.get(c)).copied().unwrap_or(0);
            self.lost_cycles += call.cycles.saturating_sub(accepted);
        }
        self.lost_cycles
    }

    /// Calls sent but never answered (checked once every call should have
    /// concluded).
    pub fn unanswered(&self) -> Vec<u64> {
        self.calls.iter().filter(|(cb, _)| !self.ran.contains(cb)).map(|(cb, _)| *cb).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n])
    }

    fn sent(callback: u64, bounded: bool) -> SimEvent {
        SimEvent::CallSent { callback, caller: p(1), callee: p(2), method: "m".into(), bounded, cycles: 0 }
    }

    #[test]
    fn sys_unknown_only_on_bounded_calls() {
        let mut c = SystemCheck::default();
        assert!(c.observe(&[sent(1, true), SimEvent::CallbackRan { callback: 1, reject: Some(RejectCode::SysUnknown), refund: 0 }]).is_none());
        let v = c.observe(&[sent(2, false), SimEvent::CallbackRan { callback: 2, reject: Some(RejectCode::SysUnknown), refund: 0 }]);
        assert_eq!(v.map(|v| v.0), Some("I3 reject rules"));
    }

    #[test]
    fn no_clean_reject_after_the_callee_started() {
        let mut c = SystemCheck::default();
        assert!(c.observe(&[sent(1, false), SimEvent::CallbackRan { callback: 1, reject: Some(RejectCode::SysTransient), refund: 0 }]).is_none());
        // Delivered but refused without running (a frozen callee): clean.
        let delivered = SimEvent::RequestStarted { context: 9, callback: Some(2) };
        assert!(c.observe(&[sent(2, false), delivered, SimEvent::CallbackRan { callback: 2, reject: Some(RejectCode::SysTransient), refund: 0 }]).is_none());
        // Delivered and run (even if it trapped): never a clean reject.
        let delivered = SimEvent::RequestStarted { context: 10, callback: Some(3) };
        let ran = SimEvent::Executed { canister: p(2), context: 10, committed: false, trap: Some("trap".into()), accepted: 0 };
        let v = c.observe(&[sent(3, false), delivered, ran, SimEvent::CallbackRan { callback: 3, reject: Some(RejectCode::SysTransient), refund: 0 }]);
        assert_eq!(v.map(|v| v.0), Some("I3 reject rules"));
    }

    #[test]
    fn attached_cycles_are_accepted_or_refunded_except_what_an_expiry_loses() {
        let send = |callback: u64, cycles: u128| SimEvent::CallSent { callback, caller: p(1), callee: p(2), method: "m".into(), bounded: true, cycles };
        let start = |callback: u64| SimEvent::RequestStarted { context: callback + 10, callback: Some(callback) };
        let ran = |callback: u64, accepted: u128| SimEvent::Executed { canister: p(2), context: callback + 10, committed: true, trap: None, accepted };
        let back = |callback: u64, reject: Option<RejectCode>, refund: u128| SimEvent::CallbackRan { callback, reject, refund };
        let mut c = SystemCheck::default();
        assert!(c.observe(&[send(1, 100), start(1), ran(1, 30), back(1, None, 70)]).is_none());
        // Refunded without running (M3, a frozen callee): all of it.
        assert!(c.observe(&[send(2, 100), back(2, Some(RejectCode::SysTransient), 100)]).is_none());
        let v = c.observe(&[send(3, 100), start(3), ran(3, 30), back(3, None, 80)]);
        assert_eq!(v.map(|v| v.0), Some("I6 cycles conservation"), "10 cycles too many came back");
        let v = c.observe(&[send(4, 100), start(4), ran(4, 130)]);
        assert_eq!(v.map(|v| v.0), Some("I6 cycles conservation"), "accepted more than attached");
        // Expired: nothing comes back; what the callee did not accept is lost.
        let mut c = SystemCheck::default();
        assert!(c.observe(&[send(5, 100), start(5), back(5, Some(RejectCode::SysUnknown), 0), ran(5, 40)]).is_none());
        assert_eq!(c.settle_lost(), 60);
        let v = c.observe(&[send(6, 100), back(6, Some(RejectCode::SysUnknown), 100)]);
        assert_eq!(v.map(|v| v.0), Some("I6 cycles conservation"), "an expired call refunded");
    }

    #[test]
    fn a_callback_runs_once_and_pairs_keep_order() {
        let mut c = SystemCheck::default();
        let ran = SimEvent::CallbackRan { callback: 1, reject: None, refund: 0 };
        assert!(c.observe(&[sent(1, false), ran.clone()]).is_none());
        assert_eq!(c.observe(&[ran]).map(|v| v.0), Some("I1 exactly one response"));
        let mut c = SystemCheck::default();
        let start = |cb| SimEvent::RequestStarted { context: cb + 10, callback: Some(cb) };
        assert!(c.observe(&[sent(1, false), sent(2, false), start(2)]).is_none());
        assert_eq!(c.observe(&[start(1)]).map(|v| v.0), Some("I2 per-pair order"));
        assert_eq!(c.unanswered(), vec![1, 2]);
    }
}
