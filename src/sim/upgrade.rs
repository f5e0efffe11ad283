//! O2: a controller upgrading the scenario's canisters between executions,
//! the way the fault plan draws it. Either as the spec advises (stop the
//! canister, wait until its calls have concluded, upgrade it, start it
//! again: the only way in `strict`), or at once while its calls are in
//! flight (`spec` and up), whose callbacks then run in the new module with
//! the old module's closures, as on the IC. An upgrade spans steps: the
//! stop takes effect only once the canister has no open call context.

use candid::Principal;
use tokio::sync::oneshot;

use super::chooser::Chooser;
use super::faults::{FaultKind, FaultPlan};
use super::inject::{Fired, submit_management};
use crate::replica::{InstallMode, Reject, Replica, Status, install::PreparedModule};

/// A canister O2 may upgrade, with the module it upgrades it to.
pub struct Target {
    pub name: String,
    pub id: Principal,
    pub module: PreparedModule,
    /// The encoded `post_upgrade` arguments.
    pub arg: Vec<u8>,
}

impl Target {
    fn module(&self) -> PreparedModule {
        PreparedModule { code: self.module.code.clone(), hash: self.module.hash, bytes: self.module.bytes.clone() }
    }
}

enum Stage {
    /// `stop_canister` was called; the upgrade follows once it is stopped.
    Stopping,
    /// The upgrade is queued; `start_after`: start the canister once it ran.
    Installing { rx: oneshot::Receiver<Result<(), Reject>>, start_after: bool },
}

struct UnderWay {
    target: usize,
    stage: Stage,
}

/// The upgrades under way.
#[derive(Default)]
pub struct Upgrades {
    under_way: Vec<UnderWay>,
}

impl Upgrades {
    /// Moves the upgrades under way along (no decisions); what happened,
    /// as timeline lines.
    pub fn advance(&mut self, replica: &Replica, targets: &[Target], controller: Principal) -> Vec<String> {
        let mut lines = Vec::new();
        self.under_way.retain_mut(|u| {
            let t = &targets[u.target];
            if let Stage::Stopping = u.stage {
                return match replica.status(&t.id).map(|s| s.status) {
                    Some(Status::Stopped) => {
                        let rx = replica.sim_install(controller, t.id, InstallMode::Upgrade, t.module(), t.arg.clone());
                        lines.push(format!("the controller upgrades {} (stopped, no call in flight)", t.name));
                        u.stage = Stage::Installing { rx, start_after: true };
                        true
                    }
                    Some(Status::Stopping) => true,
                    // Started again meanwhile (O1): this upgrade is given up.
                    _ => {
                        lines.push(format!("the controller gives up upgrading {}: it was started again", t.name));
                        false
                    }
                };
            }
            let Stage::Installing { rx, start_after } = &mut u.stage else { return true };
            let how = match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return true,
                Ok(Ok(())) => "done".to_string(),
                Ok(Err(reject)) => format!("failed, the old module stays: {}", crate::candid_args::one_line(&reject.to_string())),
                Err(oneshot::error::TryRecvError::Closed) => "lost its answer".to_string(),
            };
            let in_flight = replica.sim_calls_in_flight(&t.id);
            let note = if *start_after || in_flight == 0 { String::new() } else { format!(", with {in_flight} call(s) in flight (unsafe)") };
            lines.push(format!("upgrade of {} {how}{note}", t.name));
            if *start_after {
                submit_management(replica, controller, "start_canister", t.id);
                lines.push(format!("the controller starts {}", t.name));
            }
            false
        });
        lines
    }

    /// Maybe begins an upgrade of a target that has none under way: stop
    /// first, or (where the profile allows it) at once. A timeline line
    /// when it did.
    pub fn begin(
        &mut self,
        replica: &Replica,
        targets: &[Target],
        controller: Principal,
        plan: &FaultPlan,
        chooser: &mut Chooser,
        fired: &mut Fired,
    ) -> Option<String> {
        let rate = plan.rate(FaultKind::Upgrade)?;
        let idle: Vec<usize> = (0..targets.len()).filter(|i| !self.under_way.iter().any(|u| u.target == *i)).collect();
        if idle.is_empty() || !chooser.chance(rate) {
            return None;
        }
        let target = idle[chooser.draw(idle.len() as u32) as usize];
        let t = &targets[target];
        fired.add(FaultKind::Upgrade);
        if plan.unsafe_upgrades() && chooser.draw(2) == 1 {
            let rx = replica.sim_install(controller, t.id, InstallMode::Upgrade, t.module(), t.arg.clone());
            self.under_way.push(UnderWay { target, stage: Stage::Installing { rx, start_after: false } });
            return Some(format!("fault: O2 the controller upgrades {} without stopping it", t.name));
        }
        submit_management(replica, controller, "stop_canister", t.id);
        self.under_way.push(UnderWay { target, stage: Stage::Stopping });
        Some(format!("fault: O2 the controller stops {} to upgrade it", t.name))
    }

    /// The quiet phase: upgrades still waiting for a stop are given up (the
    /// quiet phase starts every canister); queued ones run. Timeline lines.
    pub fn give_up(&mut self, targets: &[Target]) -> Vec<String> {
        let lines = self
            .under_way
            .iter()
            .filter(|u| matches!(u.stage, Stage::Stopping))
            .map(|u| format!("the controller gives up upgrading {}", targets[u.target].name))
            .collect();
        self.under_way.clear();
        lines
    }
}
