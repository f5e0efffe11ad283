//! Applying the fault plan to a simulated replica, one decision at a time:
//! which step runs next (M1), whether it runs at all (M3), whether it hits
//! the instruction limit (R1, with R3), whether a bounded-wait call
//! expires (M6), and whether a controller stops or starts a canister (O1;
//! upgrades, O2, are [`super::upgrade`]).
//! Shared by `ww sim` runs and PocketIC instances under `ww test --seeds`
//! (which leave O1 out: a test's own canisters stopping under it would
//! only say the test does not expect it).

use std::collections::BTreeMap;

use super::chooser::Chooser;
use super::faults::{FaultKind, FaultPlan, Profile};
use crate::replica::sim::{ExpiryPosition, Step, StepId, StepWhat};
use crate::replica::{RejectCode, Replica, Status};
use candid::{Encode, Principal};

/// The instruction limit an injected instruction-limit trap allows (any
/// real work exceeds it).
pub const CUT_INSTRUCTIONS: u64 = 2_000;

/// Faults fired so far, by kind, and expiries by position.
#[derive(Clone, Debug, Default)]
pub struct Fired {
    pub kinds: BTreeMap<FaultKind, u32>,
    pub expiries: BTreeMap<&'static str, u32>,
}

impl Fired {
    pub(super) fn add(&mut self, kind: FaultKind) {
        *self.kinds.entry(kind).or_default() += 1;
    }
}

/// What happened to a chosen step.
pub enum Applied {
    /// M3: rejected before it ran.
    Rejected(RejectCode),
    /// It ran; `fault` says what was done to it, if anything.
    Ran { fault: Option<String> },
    /// It could not run now (its canister is busy with a query).
    Skipped,
}

/// Which of `options` runs next: the oldest (0) unless M1 fires.
pub fn pick(plan: &FaultPlan, chooser: &mut Chooser, fired: &mut Fired, options: usize) -> usize {
    if options > 1 && plan.rate(FaultKind::Interleave).is_some_and(|r| chooser.chance(r)) {
        fired.add(FaultKind::Interleave);
        return chooser.draw(options as u32) as usize;
    }
    0
}

/// Runs `step` with the faults the plan draws for it.
pub fn step(replica: &Replica, step: &Step, plan: &FaultPlan, chooser: &mut Chooser, fired: &mut Fired) -> Applied {
    let mut fault = None;
    match (&step.what, step.id) {
        // M3: a request from a canister (here or on another node) that has
        // not started may be rejected.
        (StepWhat::Request { callback: Some(_), .. } | StepWhat::Request { remote: true, .. }, StepId::Request { context })
            if plan.rate(FaultKind::SpontaneousReject).is_some_and(|r| chooser.chance(r)) =>
        {
            let code = if plan.profile >= Profile::Spec && chooser.draw(2) == 1 { RejectCode::SysFatal } else { RejectCode::SysTransient };
            fired.add(FaultKind::SpontaneousReject);
            replica.sim_reject(context, code);
            return Applied::Rejected(code);
        }
        (StepWhat::Lifecycle(_), _) => {}
        _ => {
            // M4: every call_perform of this execution fails.
            if plan.rate(FaultKind::CallPerformFails).is_some_and(|r| chooser.chance(r)) {
                fired.add(FaultKind::CallPerformFails);
                replica.sim_fail_calls();
                fault = Some("M4 call_perform fails".to_string());
            }
            // R1 (and R3 with it): this execution hits the instruction limit.
            if plan.rate(FaultKind::InstructionLimit).is_some_and(|r| chooser.chance(r)) {
                let cleanup_too = plan.rate(FaultKind::CleanupTrap).is_some_and(|r| chooser.chance(r));
                fired.add(FaultKind::InstructionLimit);
                let mut text = "R1 instruction limit".to_string();
                if cleanup_too {
                    fired.add(FaultKind::CleanupTrap);
                    text.push_str(" + R3 cleanup trap");
                }
                replica.sim_cut_instructions(CUT_INSTRUCTIONS, cleanup_too);
                fault = Some(match fault {
                    Some(m4) => format!("{m4} + {text}"),
                    None => text,
                });
            }
            // R2: this execution's memory.grow fails.
            if plan.rate(FaultKind::GrowFails).is_some_and(|r| chooser.chance(r)) {
                fired.add(FaultKind::GrowFails);
                replica.sim_fail_grow();
                let text = "R2 memory.grow fails".to_string();
                fault = Some(match fault {
                    Some(before) => format!("{before} + {text}"),
                    None => text,
                });
            }
        }
    }
    if replica.sim_execute(step.id) {
        Applied::Ran { fault }
    } else {
        // What was set for it must not hit another execution.
        replica.sim_clear_next();
        Applied::Skipped
    }
}

/// M6: a bounded-wait call may expire now; which one and where it was.
pub fn expire(replica: &Replica, plan: &FaultPlan, chooser: &mut Chooser, fired: &mut Fired) -> Option<(u64, &'static str)> {
    let rate = plan.rate(FaultKind::Expiry)?;
    let calls = replica.sim_bounded_calls();
    if calls.is_empty() || !chooser.chance(rate) {
        return None;
    }
    let callback = calls[chooser.draw(calls.len() as u32) as usize];
    let position = replica.sim_expire(callback)?;
    fired.add(FaultKind::Expiry);
    let label = match position {
        ExpiryPosition::RequestInFlight => "request in flight",
        ExpiryPosition::CalleeRunning => "callee running",
        ExpiryPosition::ResponseInFlight => "response in flight",
    };
    *fired.expiries.entry(label).or_default() += 1;
    Some((callback, label))
}

/// O1: a controller may stop one of `canisters` now, or start it again
/// (it stays stopping while it has open calls). What was done, if anything.
pub fn operate(replica: &Replica, canisters: &[(String, Principal)], controller: Principal, plan: &FaultPlan, chooser: &mut Chooser, fired: &mut Fired) -> Option<String> {
    let rate = plan.rate(FaultKind::StopStart)?;
    if canisters.is_empty() || !chooser.chance(rate) {
        return None;
    }
    let (name, id) = &canisters[chooser.draw(canisters.len() as u32) as usize];
    let method = match replica.status(id)?.status {
        Status::Running => "stop_canister",
        Status::Stopping | Status::Stopped => "start_canister",
    };
    fired.add(FaultKind::StopStart);
    submit_management(replica, controller, method, *id);
    Some(format!("{method} {name}"))
}

/// M5: one of `canisters` may run down to its freezing threshold now, or
/// (if `frozen` holds it) be topped up again. What was done, if anything.
pub fn freeze(
    replica: &Replica,
    canisters: &[(String, Principal)],
    frozen: &mut BTreeMap<Principal, u128>,
    plan: &FaultPlan,
    chooser: &mut Chooser,
    fired: &mut Fired,
) -> Option<String> {
    let rate = plan.rate(FaultKind::Frozen)?;
    if canisters.is_empty() || !chooser.chance(rate) {
        return None;
    }
    let (name, id) = &canisters[chooser.draw(canisters.len() as u32) as usize];
    if let Some(amount) = frozen.remove(id) {
        replica.sim_unfreeze(id, amount);
        return Some(format!("the controller tops {name} up again"));
    }
    fired.add(FaultKind::Frozen);
    frozen.insert(*id, replica.sim_freeze(id)?);
    Some(format!("fault: M5 {name} runs down to its freezing threshold (frozen)"))
}

/// Starts every canister that is not running (the quiet phase).
pub fn start_all(replica: &Replica, canisters: &[(String, Principal)], controller: Principal) -> Vec<String> {
    let mut started = Vec::new();
    for (name, id) in canisters {
        if replica.status(id).is_some_and(|s| s.status != Status::Running) {
            submit_management(replica, controller, "start_canister", *id);
            started.push(name.clone());
        }
    }
    started
}

/// A controller's ingress to the management canister (its answer is not
/// awaited: a stop answers once the canister has stopped).
pub(super) fn submit_management(replica: &Replica, controller: Principal, method: &str, canister: Principal) {
    let arg = Encode!(&crate::replica::management::CanisterIdRecord { canister_id: canister }).unwrap_or_default();
    drop(replica.sim_submit(controller, Principal::management_canister(), method, arg));
}
