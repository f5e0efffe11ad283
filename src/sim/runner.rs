//! One simulated replica and everything a run keeps around it (the
//! canisters by name, the system checker, the ingress messages, the
//! timeline, the faults fired, the state directory), and the moves a run
//! makes: one decision of the fault phase (a step or a submission, then
//! the faults between steps, the `always` invariants, a cut, N1), and the
//! quiet phase. Scenario runs ([`super::run`]) and the Rust API
//! ([`super::api`]) drive it.

use std::collections::BTreeMap;

use candid::Principal;
use tokio::sync::oneshot;

use super::SimError;
use super::check::{CallOutcome, SystemCheck};
use super::chooser::Chooser;
use super::crash::Durable;
use super::faults::{FaultKind, FaultPlan};
use super::inject::{self, Fired};
use super::predicate::Predicate;
use super::run::{Failure, START_NS, TimelineLine, default_user, encode, new_replica, sim_config};
use super::scenario::When;
use super::upgrade;
use crate::replica::sim::{Step, StepId, StepWhat};
use crate::replica::{CallResult, Replica};

/// Simulated time each decision of the fault phase takes.
const STEP_NS: u64 = 1_000_000;

/// An ingress message waiting for the chooser to submit it.
pub(super) struct Pending {
    pub caller: Principal,
    pub canister: String,
    pub method: String,
    /// Candid text, encoded against the canister's interface when the
    /// message is submitted.
    pub arg: String,
}

/// What became of an ingress message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum IngressOutcome {
    Replied(Vec<u8>),
    Rejected(crate::replica::Reject),
    /// Its answer died with the node (N1) before a cut acknowledged it, or
    /// the replica dropped it.
    Lost,
}

pub(super) struct Ingress {
    pub label: String,
    rx: oneshot::Receiver<CallResult>,
    pub outcome: Option<IngressOutcome>,
    /// Answered and in a cut since (durable runs): the caller has it.
    acknowledged: bool,
}

impl Ingress {
    fn answered(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Run {
    /// What the caller of ingress message `i` has been told: with a state
    /// directory an answer reaches it only once a cut holds it
    /// (acknowledged means durable); a lost message is known at once.
    pub fn delivered(&self, i: usize) -> Option<&IngressOutcome> {
        let m = self.ingress.get(i)?;
        match &m.outcome {
            Some(IngressOutcome::Lost) => m.outcome.as_ref(),
            Some(_) if self.durable.is_some() && !m.acknowledged => None,
            other => other.as_ref(),
        }
    }
}

/// What one decision of the fault phase did.
pub(super) enum Progress {
    /// A step ran or a message was submitted.
    Ran,
    /// Nothing was eligible: time jumped to the next event.
    Waited,
    /// Nothing is eligible and nothing is due.
    Quiescent,
    Failed(Failure),
}

/// A simulated replica with everything a run keeps around it: the
/// canisters by name, the system checker, the ingress messages, the
/// timeline, the faults fired, the state directory.
pub(super) struct Run {
    pub replica: Replica,
    pub ids: BTreeMap<String, Principal>,
    pub check: SystemCheck,
    pub ingress: Vec<Ingress>,
    /// Messages the chooser submits (popped from the end).
    pub pending: Vec<Pending>,
    pub quiet_steps: u32,
    pub timeline: Vec<TimelineLine>,
    pub fired: Fired,
    pub digests: Vec<[u8; 32]>,
    pub steps: usize,
    /// Hash every canister's memory after every step.
    pub deep_digests: bool,
    /// The canisters O2 may upgrade, and the upgrades under way.
    pub targets: Vec<upgrade::Target>,
    pub upgrades: upgrade::Upgrades,
    pub engine: crate::engine::Engine,
    /// The state directory (`durable = true`).
    pub durable: Option<Durable>,
    /// The Candid interfaces by module hash (a restarted replica learns them again).
    pub interfaces: Vec<([u8; 32], String)>,
    /// The canister of the last step run (round robin, see `eligible`).
    last_canister: Option<Principal>,
    /// Canisters M5 froze, with the cycles it took from each.
    frozen: BTreeMap<Principal, u128>,
    /// The replica's subnets (several nodes: this node's range; empty: the
    /// default), which a restart restores with.
    pub subnets: Vec<crate::replica::SubnetRange>,
    /// Every canister of the run by name, this node's and the others'
    /// (names in the timeline, `$name` in arguments).
    pub known: BTreeMap<String, Principal>,
    /// Prefixed to this node's timeline lines (several nodes).
    pub label: String,
}

impl Run {
    /// A run around `replica`, whose canisters are installed.
    pub fn new(replica: Replica, ids: BTreeMap<String, Principal>, engine: crate::engine::Engine, durable: Option<Durable>, deep_digests: bool) -> Self {
        Self {
            replica,
            ids,
            check: SystemCheck::default(),
            ingress: Vec::new(),
            pending: Vec::new(),
            quiet_steps: 5_000,
            timeline: Vec::new(),
            fired: Fired::default(),
            digests: Vec::new(),
            steps: 0,
            deep_digests,
            targets: Vec::new(),
            upgrades: upgrade::Upgrades::default(),
            engine,
            durable,
            interfaces: Vec::new(),
            last_canister: None,
            frozen: BTreeMap::new(),
            subnets: Vec::new(),
            known: BTreeMap::new(),
            label: String::new(),
        }
    }

    /// One decision of the fault phase: which eligible step runs (or
    /// whether the next pending message is submitted), then the faults
    /// that may fire between steps, the `always` invariants, a cut and N1.
    pub fn fault_step(&mut self, plan: &FaultPlan, chooser: &mut Chooser, predicates: &[(String, Predicate, When)]) -> Result<Progress, SimError> {
        let now = self.now();
        self.replica.sim_advance_to(now + STEP_NS);
        let steps = self.eligible();
        let options_count = steps.len() + usize::from(!self.pending.is_empty());
        if options_count == 0 {
            // An answer waits for a cut and nothing else runs: the
            // persister writes one.
            if self.awaits_cut() {
                self.cut()?;
                return Ok(Progress::Ran);
            }
            return Ok(match self.replica.sim_next_event() {
                Some(t) => {
                    self.replica.sim_advance_to(t);
                    Progress::Waited
                }
                None => Progress::Quiescent,
            });
        }
        let pick = inject::pick(plan, chooser, &mut self.fired, options_count);
        let result = if pick >= steps.len() {
            // Submitting is only a choice while steps wait; with nothing to
            // run, the next message arrives.
            match self.pending.pop() {
                Some(p) => self.submit_pending(p),
                None => return Err(SimError::Replica("no workload left".into())),
            }
        } else {
            self.run_step(&steps[pick], plan, chooser)
        };
        if let Some(f) = result
            .or_else(|| self.maybe_expire(plan, chooser))
            .or_else(|| self.maybe_operate(plan, chooser))
            .or_else(|| self.maybe_upgrade(plan, chooser))
            .or_else(|| self.maybe_freeze(plan, chooser))
            .or_else(|| self.check_always(predicates))
        {
            return Ok(Progress::Failed(f));
        }
        Ok(match self.maybe_cut_or_crash(plan, chooser)? {
            Some(f) => Progress::Failed(f),
            None => Progress::Ran,
        })
    }

    pub fn now(&self) -> u64 {
        self.replica.time()
    }

    /// The eligible steps, round robin: the canisters after the one that
    /// ran last come first, so the simplest choice (0) lets every canister
    /// make progress, as a round does (a caller retrying in a loop cannot
    /// starve the callee it waits for).
    pub(super) fn eligible(&self) -> Vec<Step> {
        let mut steps = self.replica.sim_steps();
        if let Some(last) = self.last_canister {
            let first_after = steps.iter().position(|s| s.canister > last).unwrap_or(steps.len());
            steps.rotate_left(first_after);
        }
        steps
    }

    pub fn name(&self, p: &Principal) -> String {
        self.ids.iter().chain(&self.known).find(|(_, id)| *id == p).map_or_else(|| if *p == default_user() { "user".into() } else { p.to_text() }, |(n, _)| n.clone())
    }

    pub fn line(&mut self, text: String) {
        let text = if self.label.is_empty() { text } else { format!("{}  {text}", self.label) };
        self.timeline.push(TimelineLine { step: self.steps, time_ns: self.now().saturating_sub(START_NS), text });
    }

    /// Submits a pending message.
    pub(super) fn submit_pending(&mut self, p: Pending) -> Option<Failure> {
        let Some(&id) = self.ids.get(&p.canister) else {
            return Some(Failure { invariant: "scenario".into(), detail: format!("no canister {:?}", p.canister), step: self.steps });
        };
        let did = self.replica.candid_interface(&id);
        let names = if self.known.is_empty() { &self.ids } else { &self.known };
        let arg = match encode(&p.arg, did.as_deref(), Some(&p.method), names) {
            Ok(a) => a,
            Err(e) => return Some(Failure { invariant: "scenario".into(), detail: format!("{}.{}: {e}", p.canister, p.method), step: self.steps }),
        };
        self.submit(p.caller, id, &p.method, arg);
        self.after_step()
    }

    /// Submits an ingress message now (a step); its index in `ingress`.
    pub fn submit(&mut self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> usize {
        let label = format!("{}.{method} (message {})", self.name(&canister), self.ingress.len() + 1);
        let rx = self.replica.sim_submit(caller, canister, method, arg);
        self.steps += 1;
        self.line(format!("ingress  {label} submitted"));
        self.ingress.push(Ingress { label, rx, outcome: None, acknowledged: false });
        self.ingress.len() - 1
    }

    /// Runs one step, with the faults the plan draws for it.
    pub(super) fn run_step(&mut self, step: &Step, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        self.last_canister = Some(step.canister);
        let what = self.describe(step);
        let fault = match inject::step(&self.replica, step, plan, chooser, &mut self.fired) {
            inject::Applied::Rejected(code) => {
                self.steps += 1;
                self.line(format!("{what}  fault: M3 rejected before it ran ({code:?})"));
                let events = self.replica.sim_take_events();
                if let Some((inv, detail)) = self.check.observe(&events) {
                    return Some(Failure { invariant: inv.into(), detail, step: self.steps });
                }
                return self.after_step();
            }
            inject::Applied::Skipped => return None,
            inject::Applied::Ran { fault } => fault.map(|f| format!(" fault: {f}")).unwrap_or_default(),
        };
        self.steps += 1;
        let events = self.replica.sim_take_events();
        let mut outcome = Vec::new();
        for e in &events {
            use crate::replica::sim::SimEvent as E;
            match e {
                E::Executed { committed: true, .. } => outcome.push("committed".to_string()),
                E::Executed { committed: false, trap, .. } => outcome.push(format!("trapped ({})", trap.as_deref().map(short).unwrap_or_default())),
                E::CallSent { callback, callee, method, bounded, .. } => {
                    outcome.push(format!("calls {}.{method} #{callback}{}", self.name(callee), if *bounded { " (bounded)" } else { "" }))
                }
                E::Answered { reject, dropped, callback, .. } => {
                    let to = if callback.is_some() { "caller" } else { "ingress" };
                    outcome.push(match (reject, dropped) {
                        (_, true) => "its response is dropped (the caller got SYS_UNKNOWN)".into(),
                        (None, _) => format!("replies to {to}"),
                        (Some(code), _) => format!("rejects to {to} ({code:?})"),
                    })
                }
                _ => {}
            }
        }
        self.line(format!("{what}{fault}  -> {}", if outcome.is_empty() { "nothing".into() } else { outcome.join(", ") }));
        if let Some((inv, detail)) = self.check.observe(&events) {
            return Some(Failure { invariant: inv.into(), detail, step: self.steps });
        }
        self.after_step()
    }

    /// M6: a bounded-wait call may expire now.
    pub(super) fn maybe_expire(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        let (callback, label) = inject::expire(&self.replica, plan, chooser, &mut self.fired)?;
        let events = self.replica.sim_take_events();
        self.line(format!("fault: M6 call #{callback} expires ({label}): the caller will get SYS_UNKNOWN"));
        self.check.observe(&events).map(|(inv, detail)| Failure { invariant: inv.into(), detail, step: self.steps })
    }

    /// O1: a controller may stop or start a canister.
    pub(super) fn maybe_operate(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        plan.rate(FaultKind::StopStart)?;
        let canisters: Vec<(String, Principal)> = self.ids.iter().map(|(n, id)| (n.clone(), *id)).collect();
        let done = inject::operate(&self.replica, &canisters, default_user(), plan, chooser, &mut self.fired)?;
        self.line(format!("fault: O1 the controller calls {done}"));
        let events = self.replica.sim_take_events();
        self.check.observe(&events).map(|(inv, detail)| Failure { invariant: inv.into(), detail, step: self.steps })
    }

    /// M5: a canister may run down to its freezing threshold, or be topped
    /// up again.
    pub(super) fn maybe_freeze(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        plan.rate(FaultKind::Frozen)?;
        let canisters: Vec<(String, Principal)> = self.ids.iter().map(|(n, id)| (n.clone(), *id)).collect();
        let done = inject::freeze(&self.replica, &canisters, &mut self.frozen, plan, chooser, &mut self.fired)?;
        self.line(done);
        let events = self.replica.sim_take_events();
        self.check.observe(&events).map(|(inv, detail)| Failure { invariant: inv.into(), detail, step: self.steps })
    }

    /// O2: upgrades under way move along; a controller may begin one.
    pub(super) fn maybe_upgrade(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        let mut lines = self.upgrades.advance(&self.replica, &self.targets, default_user());
        lines.extend(self.upgrades.begin(&self.replica, &self.targets, default_user(), plan, chooser, &mut self.fired));
        if lines.is_empty() {
            return None;
        }
        for l in lines {
            self.line(l);
        }
        let events = self.replica.sim_take_events();
        self.check.observe(&events).map(|(inv, detail)| Failure { invariant: inv.into(), detail, step: self.steps })
    }

    /// Writes a cut (durable runs): every answer so far is acknowledged.
    pub fn cut(&mut self) -> Result<(), SimError> {
        let Some(d) = &mut self.durable else { return Ok(()) };
        d.cut(&self.replica, &self.check, self.steps)?;
        for i in &mut self.ingress {
            i.acknowledged |= i.answered();
        }
        Ok(())
    }

    /// Durable runs: a cut may be written now (a decision, as the
    /// persister's timing is), and N1 may crash the node.
    fn maybe_cut_or_crash(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Result<Option<Failure>, SimError> {
        if !self.maybe_cut_then_crash(plan, chooser)? {
            return Ok(None);
        }
        self.crash()
    }

    /// Durable runs: a cut may be written now; whether N1 fires (the
    /// caller crashes the node).
    pub(super) fn maybe_cut_then_crash(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Result<bool, SimError> {
        if self.durable.is_none() {
            return Ok(false);
        }
        if chooser.chance(0.5) {
            self.cut()?;
        }
        if !plan.rate(FaultKind::Crash).is_some_and(|r| chooser.chance(r)) {
            return Ok(false);
        }
        self.fired.add(FaultKind::Crash);
        Ok(true)
    }

    /// Whether an answer waits for a cut (durable runs).
    pub(super) fn awaits_cut(&self) -> bool {
        self.durable.is_some() && self.ingress.iter().any(|i| i.answered() && !i.acknowledged)
    }

    /// N1: the node crashes and restarts from the last cut; I5.
    pub fn crash(&mut self) -> Result<Option<Failure>, SimError> {
        let now = self.now();
        let Some(d) = &mut self.durable else { return Ok(None) };
        let Some(at) = d.last.clone() else { return Ok(None) };
        let placeholder = new_replica(self.engine.clone())?;
        let old = std::mem::replace(&mut self.replica, placeholder);
        let config = crate::replica::ReplicaConfig { subnets: self.subnets.clone(), ..sim_config(at.time_ns) };
        let config = if self.subnets.is_empty() { sim_config(at.time_ns) } else { config };
        let (restored, digest) = d.restart(&self.engine, old, config)?;
        self.replica = restored;
        for (hash, did) in &self.interfaces {
            self.replica.remember_interface(*hash, did.clone());
        }
        let lost: Vec<String> = self.ingress.iter().filter(|i| !i.acknowledged && !matches!(i.outcome, Some(IngressOutcome::Lost))).map(|i| i.label.clone()).collect();
        for i in &mut self.ingress {
            // Unacknowledged answers and waiters die with the node.
            if !i.acknowledged {
                i.outcome = Some(IngressOutcome::Lost);
            }
        }
        self.line(format!(
            "fault: N1 the node crashes and restarts from its last cut (after its step {}){}",
            at.step,
            if lost.is_empty() { String::new() } else { format!("; unacknowledged ingress lost: {}", lost.join(", ")) }
        ));
        for l in self.upgrades.give_up(&self.targets) {
            self.line(l);
        }
        if digest != at.digest {
            return Ok(Some(Failure {
                invariant: "I5 durability".into(),
                detail: format!("the restored replica differs from the cut written after step {} (state digest)", at.step),
                step: self.steps,
            }));
        }
        self.check = at.check;
        self.replica.sim_advance_to(now);
        self.digests.push(self.replica.sim_digest(self.deep_digests));
        Ok(None)
    }

    /// After a step: the ingress answers that came, and the state digest.
    pub(super) fn after_step(&mut self) -> Option<Failure> {
        let mut lines = Vec::new();
        for i in &mut self.ingress {
            if i.answered() {
                continue;
            }
            match i.rx.try_recv() {
                Ok(r) => {
                    lines.push(match &r {
                        Ok(bytes) => format!("ingress  {} answered: {}", i.label, show_reply(bytes)),
                        Err(reject) => format!("ingress  {} rejected: {}", i.label, short(&reject.to_string())),
                    });
                    i.outcome = Some(match r {
                        Ok(bytes) => IngressOutcome::Replied(bytes),
                        Err(reject) => IngressOutcome::Rejected(reject),
                    });
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => {
                    i.outcome = Some(IngressOutcome::Lost);
                    lines.push(format!("ingress  {} lost its response", i.label));
                }
            }
        }
        for l in lines {
            self.line(l);
        }
        let digest = self.replica.sim_digest(self.deep_digests);
        self.digests.push(digest);
        None
    }

    fn check_always(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure> {
        if !self.settled() {
            return None;
        }
        check_predicates(std::slice::from_ref(&self.replica), &self.ids, predicates, |w| w == When::Always, self.steps)
    }

    /// Whether application invariants can be asked now: a stopped (or
    /// stopping) canister answers no query, so the check waits until the
    /// controller starts it again (the quiet phase starts every canister
    /// before the final checks), and a frozen one is topped up.
    pub(super) fn settled(&self) -> bool {
        let all_running = self.ids.values().all(|id| self.replica.status(id).is_none_or(|s| s.status == crate::replica::Status::Running));
        all_running && self.frozen.is_empty()
    }

    pub fn check_end(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure> {
        check_predicates(std::slice::from_ref(&self.replica), &self.ids, predicates, |_| true, self.steps)
    }

    /// Liveness: without faults, every call and message concludes.
    pub fn quiet(&mut self) -> Option<Failure> {
        self.line("quiet phase: no more faults".into());
        self.calm();
        for _ in 0..self.quiet_steps {
            let steps = self.eligible();
            let result = if let Some(step) = steps.first() {
                let step = step.clone();
                self.run_step(&step, &FaultPlan::default(), &mut Chooser::replay(Vec::new()))
            } else if let Some(p) = self.pending.pop() {
                self.submit_pending(p)
            } else if let Some(t) = self.replica.sim_next_event() {
                self.replica.sim_advance_to(t);
                continue;
            } else {
                break;
            };
            if result.is_some() {
                return result;
            }
            let now = self.now();
            self.replica.sim_advance_to(now + STEP_NS);
        }
        self.liveness()
    }

    /// The start of the quiet phase: upgrades under way give up, frozen
    /// canisters are topped up, stopped ones started.
    pub(super) fn calm(&mut self) {
        for l in self.upgrades.give_up(&self.targets) {
            self.line(l);
        }
        for (id, amount) in std::mem::take(&mut self.frozen) {
            self.replica.sim_unfreeze(&id, amount);
            let name = self.name(&id);
            self.line(format!("the controller tops {name} up again"));
        }
        let canisters: Vec<(String, Principal)> = self.ids.iter().map(|(n, id)| (n.clone(), *id)).collect();
        let started = inject::start_all(&self.replica, &canisters, default_user());
        if !started.is_empty() {
            self.line(format!("the controller starts {}", started.join(", ")));
        }
    }

    /// I7 at the end of the quiet phase: every message and call concluded.
    /// Also settles I6's ledger of cycles lost with expired calls.
    pub(super) fn liveness(&mut self) -> Option<Failure> {
        let lost = self.check.settle_lost();
        if lost > 0 {
            self.line(format!("I6: {lost} cycles attached to expired calls were lost (their callees did not accept them)"));
        }
        let open: Vec<String> = self.ingress.iter().filter(|i| !i.answered()).map(|i| i.label.clone()).collect();
        let unanswered = self.check.unanswered();
        let (contexts, callbacks) = self.replica.open_calls();
        if !open.is_empty() || !unanswered.is_empty() || contexts > 0 || callbacks > 0 || !self.pending.is_empty() {
            return Some(Failure {
                invariant: "I7 liveness".into(),
                detail: format!(
                    "after {} quiet steps: ingress unanswered {open:?}, calls unanswered {unanswered:?}, {contexts} call contexts and {callbacks} callbacks open",
                    self.quiet_steps
                ),
                step: self.steps,
            });
        }
        None
    }

    /// The inter-canister call history: one line per call, ok / failed / maybe.
    pub fn history(&self) -> Vec<String> {
        self.check
            .calls
            .iter()
            .map(|(cb, c)| {
                let name = |p: &Principal| self.name(p);
                let wait = if c.bounded { "bounded" } else { "unbounded" };
                let outcome = c.outcome.map_or("unanswered".into(), CallOutcome::label);
                format!("call #{cb} {} -> {}.{} ({wait}): {outcome}", name(&c.caller), name(&c.callee), c.method)
            })
            .collect()
    }

    fn describe(&self, step: &Step) -> String {
        let on = self.name(&step.canister);
        match &step.what {
            StepWhat::Request {
                caller,
                method,
                callback,
                remote,
                ..
            } => match callback {
                Some(cb) => format!("{on}.{method} (call #{cb} from {})", self.name(caller)),
                None if *remote => format!(
                    "{on}.{method} (call from {} on another node)",
                    self.name(caller)
                ),
                None => format!("{on}.{method} (ingress from {})", self.name(caller)),
            },
            StepWhat::Response { callee, reject } => {
                let cb = match step.id {
                    StepId::Response { callback, .. } => callback,
                    _ => 0,
                };
                match reject {
                    None => format!("{on} reply callback (call #{cb} to {})", self.name(callee)),
                    Some(code) => format!("{on} reject callback (call #{cb} to {}, {code:?})", self.name(callee)),
                }
            }
            StepWhat::System(kind) => format!("{on} {kind:?}"),
            StepWhat::Lifecycle(what) => format!("{on} {what}"),
        }
    }
}

/// The application invariants `now` selects, each canister asked on the
/// replica hosting it.
pub(super) fn check_predicates(
    replicas: &[Replica],
    ids: &BTreeMap<String, Principal>,
    predicates: &[(String, Predicate, When)],
    now: impl Fn(When) -> bool,
    step: usize,
) -> Option<Failure> {
    for (name, p, when) in predicates {
        if !now(*when) {
            continue;
        }
        match p.holds(replicas, ids, default_user()) {
            Ok((true, _)) => {}
            Ok((false, shown)) => return Some(Failure { invariant: name.clone(), detail: format!("violated: {shown}"), step }),
            Err(e) => return Some(Failure { invariant: name.clone(), detail: format!("cannot be evaluated: {e}"), step }),
        }
    }
    None
}

fn show_reply(bytes: &[u8]) -> String {
    candid::IDLArgs::from_bytes(bytes).map_or_else(|_| format!("{} bytes", bytes.len()), |a| short(&a.to_string()))
}

fn short(s: &str) -> String {
    let s = crate::candid_args::one_line(s);
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}
