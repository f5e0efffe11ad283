//! Faults a test script injects into an ordinary replica (a PocketIC
//! instance through ww's `/ww/inject_fault` route, or Rust code), at the
//! moment the script chooses rather than from a seed: only what the IC
//! interface specification allows a replica to do.
//!
//! - [`ScriptedFault::RejectCalls`]: the next `count` requests from one
//!   canister to another (one method, or any) are rejected before they
//!   execute ("spontaneous request rejection"; `SYS_TRANSIENT` or
//!   `SYS_FATAL`; the callee never runs).
//! - [`ScriptedFault::FailCallPerform`]: in the next `count` executions of
//!   a canister (of one of its methods, if named) every `ic0.call_perform`
//!   fails synchronously (a full queue); no callback runs for those calls.
//! - [`ScriptedFault::InstructionLimit`]: the next `count` executions of a
//!   canister (of one of its methods, if named) hit the instruction limit
//!   (a trap the IC may produce on any execution near the limit); a
//!   trapped callback's cleanup still runs.
//!
//! Without a method, "execution" means any: a heartbeat, a timer or a
//! callback counts too; with one, only the method's own first execution
//! (the call itself, not the callbacks after its awaits).
//! - [`ScriptedFault::ExpireCalls`]: every bounded-wait call from one
//!   canister to another still waiting expires now with `SYS_UNKNOWN`,
//!   wherever it is (the request in flight, the callee running, the reply in
//!   flight, which is then dropped).
//!
//! The scheduler consults [`Scripted`] under the state lock when it starts
//! an execution; an empty table costs one map lookup.

use candid::Principal;

use super::sim::InstructionCut;
use super::state::{Origin, State};
use super::{Reject, RejectCode, Replica};

/// The instruction limit an injected instruction-limit trap allows (any
/// real work exceeds it).
const CUT_INSTRUCTIONS: u64 = 2_000;

/// A fault a test injects.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScriptedFault {
    RejectCalls { caller: Principal, callee: Principal, method: Option<String>, code: ScriptedReject, count: u32 },
    FailCallPerform { canister: Principal, method: Option<String>, count: u32 },
    InstructionLimit { canister: Principal, method: Option<String>, count: u32 },
    ExpireCalls { caller: Principal, callee: Principal },
}

/// The reject codes a request may be spontaneously rejected with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ScriptedReject {
    SysTransient,
    SysFatal,
}

#[derive(Debug)]
struct RejectRule {
    caller: Principal,
    callee: Principal,
    method: Option<String>,
    code: RejectCode,
    remaining: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExecutionFault {
    FailCalls,
    Cut,
}

#[derive(Debug)]
struct ExecutionRule {
    canister: Principal,
    method: Option<String>,
    fault: ExecutionFault,
    remaining: u32,
}

/// The faults injected and not used up yet.
#[derive(Debug, Default)]
pub(super) struct Scripted {
    rejects: Vec<RejectRule>,
    executions: Vec<ExecutionRule>,
}

impl Scripted {
    /// Whether any reject rule waits (checked before anything else on the
    /// path every call takes).
    pub(super) fn has_rejects(&self) -> bool {
        !self.rejects.is_empty()
    }

    /// The reject a request from `caller` to `method` of `callee` gets
    /// instead of running, if a rule takes it.
    pub(super) fn take_reject(&mut self, caller: &Principal, callee: &Principal, method: &str) -> Option<Reject> {
        let rule = self
            .rejects
            .iter_mut()
            .find(|r| r.caller == *caller && r.callee == *callee && r.method.as_deref().is_none_or(|m| m == method))?;
        rule.remaining -= 1;
        let code = rule.code;
        self.rejects.retain(|r| r.remaining > 0);
        Some(Reject { code, error_code: None, message: format!("the request to {callee} was rejected before it executed (injected fault)") })
    }

    /// What an execution of `canister` starting now (of `method`, when it
    /// is a call's first execution) must suffer, if any: each matching
    /// rule, once.
    pub(super) fn take_execution(&mut self, canister: &Principal, method: Option<&str>) -> Option<InstructionCut> {
        if self.executions.is_empty() {
            return None;
        }
        let (mut cut, mut fail_calls) = (false, false);
        for kind in [ExecutionFault::Cut, ExecutionFault::FailCalls] {
            let rule = self.executions.iter_mut().find(|r| {
                r.fault == kind && r.canister == *canister && r.method.as_deref().is_none_or(|m| Some(m) == method)
            });
            if let Some(rule) = rule {
                rule.remaining -= 1;
                match kind {
                    ExecutionFault::Cut => cut = true,
                    ExecutionFault::FailCalls => fail_calls = true,
                }
            }
        }
        self.executions.retain(|r| r.remaining > 0);
        (cut || fail_calls).then_some(InstructionCut { instructions: if cut { CUT_INSTRUCTIONS } else { u64::MAX }, cleanup_too: false, fail_calls, fail_grow: false })
    }
}

/// Whether a queued call context is a request from another canister.
pub(super) fn from_canister(st: &State, context: u64) -> bool {
    st.contexts.get(&context).is_some_and(|c| matches!(c.origin, Origin::Canister { .. }))
}

impl Replica {
    /// Injects `fault`; how many calls it affected at once (expiries), or
    /// 0 for faults that wait for their executions. `Err` names a canister
    /// that does not exist or a count of 0.
    pub fn inject_fault(&self, fault: ScriptedFault) -> Result<u32, String> {
        let exists = |p: &Principal| self.exists(p).then_some(()).ok_or_else(|| format!("canister {p} not found"));
        match fault {
            ScriptedFault::RejectCalls { caller, callee, method, code, count } => {
                exists(&caller)?;
                exists(&callee)?;
                nonzero(count)?;
                let code = match code {
                    ScriptedReject::SysTransient => RejectCode::SysTransient,
                    ScriptedReject::SysFatal => RejectCode::SysFatal,
                };
                self.lock().scripted.rejects.push(RejectRule { caller, callee, method, code, remaining: count });
                Ok(0)
            }
            ScriptedFault::FailCallPerform { canister, method, count } => {
                exists(&canister)?;
                nonzero(count)?;
                self.lock().scripted.executions.push(ExecutionRule { canister, method, fault: ExecutionFault::FailCalls, remaining: count });
                Ok(0)
            }
            ScriptedFault::InstructionLimit { canister, method, count } => {
                exists(&canister)?;
                nonzero(count)?;
                self.lock().scripted.executions.push(ExecutionRule { canister, method, fault: ExecutionFault::Cut, remaining: count });
                Ok(0)
            }
            ScriptedFault::ExpireCalls { caller, callee } => {
                exists(&caller)?;
                exists(&callee)?;
                let calls: Vec<u64> = {
                    let st = self.lock();
                    let mut calls: Vec<u64> = st
                        .deadlines
                        .iter()
                        .map(|(_, cb)| *cb)
                        .filter(|cb| st.callbacks.get(cb).is_some_and(|c| c.caller == caller && c.callee == callee))
                        .collect();
                    calls.sort_unstable();
                    calls
                };
                Ok(calls.into_iter().filter(|cb| self.sim_expire(*cb).is_some()).count() as u32)
            }
        }
    }
}

fn nonzero(count: u32) -> Result<(), String> {
    if count == 0 { Err("count must be at least 1".into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    #[test]
    fn a_reject_rule_takes_matching_requests_until_used_up() {
        let mut s = Scripted::default();
        s.rejects.push(RejectRule { caller: p(1), callee: p(2), method: Some("inc".into()), code: RejectCode::SysFatal, remaining: 2 });
        assert!(s.take_reject(&p(1), &p(2), "get").is_none(), "another method");
        assert!(s.take_reject(&p(3), &p(2), "inc").is_none(), "another caller");
        assert_eq!(s.take_reject(&p(1), &p(2), "inc").map(|r| r.code), Some(RejectCode::SysFatal));
        assert!(s.take_reject(&p(1), &p(2), "inc").is_some());
        assert!(s.take_reject(&p(1), &p(2), "inc").is_none(), "used up");
        assert!(s.rejects.is_empty());
    }

    #[test]
    fn execution_faults_count_down_per_canister_and_method() {
        let mut s = Scripted::default();
        s.executions.push(ExecutionRule { canister: p(1), method: None, fault: ExecutionFault::FailCalls, remaining: 1 });
        s.executions.push(ExecutionRule { canister: p(1), method: None, fault: ExecutionFault::Cut, remaining: 2 });
        s.executions.push(ExecutionRule { canister: p(3), method: Some("inc".into()), fault: ExecutionFault::Cut, remaining: 1 });
        let first = s.take_execution(&p(1), None).unwrap();
        assert!(first.fail_calls && first.instructions == CUT_INSTRUCTIONS);
        let second = s.take_execution(&p(1), Some("any")).unwrap();
        assert!(!second.fail_calls && second.instructions == CUT_INSTRUCTIONS);
        assert!(s.take_execution(&p(1), None).is_none(), "used up");
        assert!(s.take_execution(&p(2), None).is_none(), "another canister");
        assert!(s.take_execution(&p(3), None).is_none(), "a heartbeat is not `inc`");
        assert!(s.take_execution(&p(3), Some("get")).is_none(), "another method");
        assert!(s.take_execution(&p(3), Some("inc")).is_some());
        assert!(s.executions.is_empty());
    }
}
