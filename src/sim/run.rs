//! One simulated run: a fresh replica with no executor threads, the
//! scenario's canisters installed, then a fault phase in which the chooser
//! decides every step (which eligible step runs, when the workload's next
//! ingress message arrives, which faults fire), then a quiet phase without
//! faults or choices that must conclude every call (liveness). Invariants
//! are checked after every step; the run ends at the first violation.

use std::collections::BTreeMap;
use std::time::Instant;

use candid::Principal;
use tokio::sync::oneshot;

use super::check::{CallOutcome, SystemCheck};
use super::chooser::Chooser;
use super::faults::{FaultKind, FaultPlan};
use super::inject::{self, Fired};
use super::predicate::Predicate;
use super::scenario::{Scenario, When, resolve_name, substitute};
use super::SimError;
use crate::replica::sim::{Step, StepId, StepWhat};
use crate::replica::{CallResult, Clock, Replica, ReplicaConfig, install};

/// Simulated time starts at 2026-01-01T00:00:00Z.
pub const START_NS: u64 = 1_767_225_600_000_000_000;
/// Simulated time each decision of the fault phase takes.
const STEP_NS: u64 = 1_000_000;

/// The user scenario messages come from (a controller of every canister).
pub fn default_user() -> Principal {
    Principal::self_authenticating(b"ww-sim-user")
}

/// A failure: the invariant, what was seen, and the step it was seen at.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub invariant: String,
    pub detail: String,
    pub step: usize,
}

/// One line of the timeline: one step.
#[derive(Clone, Debug)]
pub struct TimelineLine {
    pub step: usize,
    pub time_ns: u64,
    pub text: String,
}

/// What a run did.
pub struct RunOutcome {
    pub seed: Option<u64>,
    pub plan: FaultPlan,
    pub decisions: Vec<u32>,
    pub failure: Option<Failure>,
    pub timeline: Vec<TimelineLine>,
    /// Faults that fired, by kind.
    pub faults: BTreeMap<FaultKind, u32>,
    /// Expiries by position.
    pub expiries: BTreeMap<&'static str, u32>,
    /// The state digest after every step (the determinism check compares them).
    pub digests: Vec<[u8; 32]>,
    /// A digest of every canister's memory at the end.
    pub final_digest: [u8; 32],
    pub steps: usize,
    pub simulated_ns: u64,
    pub real: std::time::Duration,
    /// The inter-canister call history: (callback, caller -> callee.method, outcome).
    pub history: Vec<String>,
}

/// Modules compiled once per engine and reused by every run (each replica
/// installs its own copy).
pub struct Prepared {
    modules: Vec<install::PreparedModule>,
    /// The Candid interface each module carries.
    interfaces: Vec<Option<String>>,
}

impl Prepared {
    pub fn new(engine: &crate::engine::Engine, scenario: &Scenario) -> Result<Self, SimError> {
        let replica = new_replica(engine.clone())?;
        let mut modules = Vec::new();
        let mut interfaces = Vec::new();
        for c in &scenario.canisters {
            let id = replica.create_canister(vec![default_user()]);
            let m = install::prepare_module(&replica, &id, &c.module).map_err(|r| SimError::Canister(c.name.clone(), r.message))?;
            interfaces.push(install::module_interface(replica.runtime(), &m.bytes));
            modules.push(m);
        }
        Ok(Self { modules, interfaces })
    }

    fn module(&self, i: usize) -> install::PreparedModule {
        let m = &self.modules[i];
        install::PreparedModule { code: m.code.clone(), hash: m.hash, bytes: m.bytes.clone() }
    }
}

/// A simulated replica. Its randomness (`raw_rand`) is the same for every
/// seed: a replayed decision log, which has no seed, must see what the
/// seeded run saw.
fn new_replica(engine: crate::engine::Engine) -> Result<Replica, SimError> {
    let config = ReplicaConfig { threads: 0, simulated: true, seed: 0, clock: Clock::Rounds { start_ns: START_NS }, ..ReplicaConfig::default() };
    let replica = Replica::new(engine, config).map_err(|e| SimError::Replica(e.to_string()))?;
    replica.sim_record();
    Ok(replica)
}

/// What the run is told to do beyond the scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Hash every canister's memory after every step (slow; the run-twice
    /// check uses it).
    pub deep_digests: bool,
}

struct Ingress {
    label: String,
    rx: oneshot::Receiver<CallResult>,
    answered: bool,
}

/// Runs the scenario once with `chooser`.
pub fn run(engine: &crate::engine::Engine, scenario: &Scenario, prepared: &Prepared, mut chooser: Chooser, seed: Option<u64>, options: RunOptions) -> Result<RunOutcome, SimError> {
    let started = Instant::now();
    let replica = new_replica(engine.clone())?;
    let user = default_user();
    // Create every canister first, so init arguments can name them all.
    let mut ids = BTreeMap::new();
    for c in &scenario.canisters {
        ids.insert(c.name.clone(), replica.create_canister(vec![user]));
    }
    for (i, c) in scenario.canisters.iter().enumerate() {
        let id = ids[&c.name];
        let module = prepared.module(i);
        let did = prepared.interfaces[i].as_deref();
        if let Some(did) = did {
            replica.remember_interface(module.hash, did.to_string());
        }
        let arg = encode(&c.init, did, None, &ids).map_err(|e| SimError::Canister(c.name.clone(), format!("init arguments: {e}")))?;
        let mut rx = replica.sim_install(user, id, module, arg);
        // Setup runs without faults or choices.
        while let Some(step) = replica.sim_steps().into_iter().next() {
            replica.sim_execute(step.id);
        }
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(r)) => return Err(SimError::Canister(c.name.clone(), format!("install failed: {r}"))),
            Err(_) => return Err(SimError::Canister(c.name.clone(), "install did not finish".into())),
        }
    }
    replica.sim_take_events();
    let plan = FaultPlan::draw_among(scenario.profile, scenario.faults.as_deref(), &mut chooser);
    let predicates: Vec<(String, Predicate, When)> = scenario
        .invariants
        .iter()
        .map(|i| Predicate::parse(&i.check).map(|p| (i.name.clone(), p, i.when)).map_err(|e| SimError::Scenario(format!("invariant {:?}: {e}", i.name))))
        .collect::<Result<_, _>>()?;
    // The workload's messages in order (popped from the end).
    let mut pending: Vec<usize> = scenario.workload.iter().enumerate().flat_map(|(i, w)| std::iter::repeat_n(i, w.count as usize)).collect();
    pending.reverse();
    let mut sim = Run {
        replica,
        ids,
        scenario,
        check: SystemCheck::default(),
        ingress: Vec::new(),
        timeline: Vec::new(),
        fired: Fired::default(),
        digests: Vec::new(),
        steps: 0,
        options,
    };
    let mut failure = None;
    // The fault phase.
    for _ in 0..scenario.steps {
        let now = sim.now();
        sim.replica.sim_advance_to(now + STEP_NS);
        let steps = sim.replica.sim_steps();
        let options_count = steps.len() + usize::from(!pending.is_empty());
        if options_count == 0 {
            match sim.replica.sim_next_event() {
                Some(t) => {
                    sim.replica.sim_advance_to(t);
                    continue;
                }
                None => break,
            }
        }
        let pick = inject::pick(&plan, &mut chooser, &mut sim.fired, options_count);
        let result = if pick >= steps.len() {
            // Submitting is only a choice while steps wait; with nothing to
            // run, the next message arrives.
            let w = pending.pop().ok_or_else(|| SimError::Replica("no workload left".into()))?;
            sim.submit(w)
        } else {
            sim.run_step(&steps[pick], &plan, &mut chooser)
        };
        if let Some(f) = result
            .or_else(|| sim.maybe_expire(&plan, &mut chooser))
            .or_else(|| sim.maybe_operate(&plan, &mut chooser))
            .or_else(|| sim.check_always(&predicates))
        {
            failure = Some(f);
            break;
        }
    }
    // The quiet phase: the rest of the workload, no faults, oldest first.
    if failure.is_none() {
        failure = sim.quiet(&mut pending);
    }
    if failure.is_none() {
        failure = sim.check_end(&predicates);
    }
    let final_digest = sim.replica.sim_digest(true);
    let simulated_ns = sim.now().saturating_sub(START_NS);
    let history = sim
        .check
        .calls
        .iter()
        .map(|(cb, c)| {
            let name = |p: &Principal| sim.name(p);
            format!("call #{cb} {} -> {}.{} ({}): {}", name(&c.caller), name(&c.callee), c.method, if c.bounded { "bounded" } else { "unbounded" }, c.outcome.map_or("unanswered".into(), CallOutcome::label))
        })
        .collect();
    Ok(RunOutcome {
        seed,
        plan,
        decisions: chooser.into_log(),
        failure,
        timeline: sim.timeline,
        faults: sim.fired.kinds,
        expiries: sim.fired.expiries,
        digests: sim.digests,
        final_digest,
        steps: sim.steps,
        simulated_ns,
        real: started.elapsed(),
        history,
    })
}

struct Run<'a> {
    replica: Replica,
    ids: BTreeMap<String, Principal>,
    scenario: &'a Scenario,
    check: SystemCheck,
    ingress: Vec<Ingress>,
    timeline: Vec<TimelineLine>,
    fired: Fired,
    digests: Vec<[u8; 32]>,
    steps: usize,
    options: RunOptions,
}

impl Run<'_> {
    fn now(&self) -> u64 {
        self.replica.time()
    }

    fn name(&self, p: &Principal) -> String {
        self.ids.iter().find(|(_, id)| *id == p).map_or_else(|| if *p == default_user() { "user".into() } else { p.to_text() }, |(n, _)| n.clone())
    }

    fn line(&mut self, text: String) {
        self.timeline.push(TimelineLine { step: self.steps, time_ns: self.now().saturating_sub(START_NS), text });
    }

    /// Submits the next message of workload entry `w`.
    fn submit(&mut self, w: usize) -> Option<Failure> {
        let work = &self.scenario.workload[w];
        let id = self.ids[&work.canister];
        let caller = work.caller.as_deref().map_or(default_user(), |c| match c.strip_prefix('$') {
            Some(name) => resolve_name(name, &self.ids),
            None => Principal::from_text(c).unwrap_or_else(|_| resolve_name(c, &self.ids)),
        });
        let did = self.replica.candid_interface(&id);
        let arg = match encode(&work.arg, did.as_deref(), Some(&work.method), &self.ids) {
            Ok(a) => a,
            Err(e) => return Some(Failure { invariant: "scenario".into(), detail: format!("{}.{}: {e}", work.canister, work.method), step: self.steps }),
        };
        let label = format!("{}.{} (message {})", work.canister, work.method, self.ingress.len() + 1);
        let rx = self.replica.sim_submit(caller, id, &work.method, arg);
        self.steps += 1;
        self.line(format!("ingress  {label} submitted"));
        self.ingress.push(Ingress { label, rx, answered: false });
        self.after_step()
    }

    /// Runs one step, with the faults the plan draws for it.
    fn run_step(&mut self, step: &Step, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
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
    fn maybe_expire(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        let (callback, label) = inject::expire(&self.replica, plan, chooser, &mut self.fired)?;
        let events = self.replica.sim_take_events();
        self.line(format!("fault: M6 call #{callback} expires ({label}): the caller will get SYS_UNKNOWN"));
        self.check.observe(&events).map(|(inv, detail)| Failure { invariant: inv.into(), detail, step: self.steps })
    }

    /// O1: a controller may stop or start a canister.
    fn maybe_operate(&mut self, plan: &FaultPlan, chooser: &mut Chooser) -> Option<Failure> {
        let canisters: Vec<(String, Principal)> = self.ids.iter().map(|(n, id)| (n.clone(), *id)).collect();
        let done = inject::operate(&self.replica, &canisters, default_user(), plan, chooser, &mut self.fired)?;
        self.line(format!("fault: O1 the controller calls {done}"));
        let events = self.replica.sim_take_events();
        self.check.observe(&events).map(|(inv, detail)| Failure { invariant: inv.into(), detail, step: self.steps })
    }

    /// After a step: the ingress answers that came, and the state digest.
    fn after_step(&mut self) -> Option<Failure> {
        let mut lines = Vec::new();
        for i in &mut self.ingress {
            if i.answered {
                continue;
            }
            match i.rx.try_recv() {
                Ok(r) => {
                    i.answered = true;
                    lines.push(match r {
                        Ok(bytes) => format!("ingress  {} answered: {}", i.label, show_reply(&bytes)),
                        Err(reject) => format!("ingress  {} rejected: {}", i.label, short(&reject.to_string())),
                    });
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => {
                    i.answered = true;
                    lines.push(format!("ingress  {} lost its response", i.label));
                }
            }
        }
        for l in lines {
            self.line(l);
        }
        let digest = self.replica.sim_digest(self.options.deep_digests);
        self.digests.push(digest);
        None
    }

    fn check_always(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure> {
        // A stopped (or stopping) canister answers no query: the check
        // waits until the controller starts it again (the quiet phase
        // starts every canister before the final checks).
        let all_running = self.ids.values().all(|id| self.replica.status(id).is_none_or(|s| s.status == crate::replica::Status::Running));
        if !all_running {
            return None;
        }
        self.check_predicates(predicates, |w| w == When::Always)
    }

    fn check_end(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure> {
        self.check_predicates(predicates, |_| true)
    }

    fn check_predicates(&mut self, predicates: &[(String, Predicate, When)], now: impl Fn(When) -> bool) -> Option<Failure> {
        for (name, p, when) in predicates {
            if !now(*when) {
                continue;
            }
            match p.holds(&self.replica, &self.ids, default_user()) {
                Ok((true, _)) => {}
                Ok((false, shown)) => return Some(Failure { invariant: name.clone(), detail: format!("violated: {shown}"), step: self.steps }),
                Err(e) => return Some(Failure { invariant: name.clone(), detail: format!("cannot be evaluated: {e}"), step: self.steps }),
            }
        }
        None
    }

    /// Liveness: without faults, every call and message concludes.
    fn quiet(&mut self, pending: &mut Vec<usize>) -> Option<Failure> {
        self.line("quiet phase: no more faults".into());
        let canisters: Vec<(String, Principal)> = self.ids.iter().map(|(n, id)| (n.clone(), *id)).collect();
        let started = inject::start_all(&self.replica, &canisters, default_user());
        if !started.is_empty() {
            self.line(format!("the controller starts {}", started.join(", ")));
        }
        for _ in 0..self.scenario.quiet_steps {
            let steps = self.replica.sim_steps();
            let result = if let Some(step) = steps.first() {
                let step = step.clone();
                self.run_step(&step, &FaultPlan::default(), &mut Chooser::replay(Vec::new()))
            } else if let Some(w) = pending.pop() {
                self.submit(w)
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
        let open: Vec<String> = self.ingress.iter().filter(|i| !i.answered).map(|i| i.label.clone()).collect();
        let unanswered = self.check.unanswered();
        let (contexts, callbacks) = self.replica.open_calls();
        if !open.is_empty() || !unanswered.is_empty() || contexts > 0 || callbacks > 0 || !pending.is_empty() {
            return Some(Failure {
                invariant: "I7 liveness".into(),
                detail: format!(
                    "after {} quiet steps: ingress unanswered {open:?}, calls unanswered {unanswered:?}, {contexts} call contexts and {callbacks} callbacks open",
                    self.scenario.quiet_steps
                ),
                step: self.steps,
            });
        }
        None
    }

    fn describe(&self, step: &Step) -> String {
        let on = self.name(&step.canister);
        match &step.what {
            StepWhat::Request { caller, method, callback, .. } => match callback {
                Some(cb) => format!("{on}.{method} (call #{cb} from {})", self.name(caller)),
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

/// Candid text encoded against a method's (or the init's) declared types.
pub(super) fn encode(text: &str, did: Option<&str>, method: Option<&str>, ids: &BTreeMap<String, Principal>) -> Result<Vec<u8>, String> {
    let text = substitute(text, ids);
    let idl = candid_parser::parse_idl_args(&text).map_err(|e| format!("bad Candid {text:?}: {}", crate::candid_args::one_line(&e.to_string())))?;
    match did.and_then(|d| crate::candid_args::method_types(d, method).ok()) {
        Some((env, args, _)) => crate::candid_args::typed_bytes(idl, &env, &args),
        None => idl.to_bytes(),
    }
    .map_err(|e| format!("cannot encode {text:?}: {}", crate::candid_args::one_line(&e.to_string())))
}

fn show_reply(bytes: &[u8]) -> String {
    candid::IDLArgs::from_bytes(bytes).map_or_else(|_| format!("{} bytes", bytes.len()), |a| short(&a.to_string()))
}

fn short(s: &str) -> String {
    let s = crate::candid_args::one_line(s);
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}
