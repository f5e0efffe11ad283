//! One simulated run: a fresh replica with no executor threads, the
//! scenario's canisters installed, then a fault phase in which the chooser
//! decides every step (which eligible step runs, when the workload's next
//! ingress message arrives, which faults fire), then a quiet phase without
//! faults or choices that must conclude every call (liveness). Invariants
//! are checked after every step; the run ends at the first violation.
//! The moves themselves are [`super::runner`]'s.

use std::collections::BTreeMap;
use std::time::Instant;

use candid::Principal;

use super::SimError;
use super::chooser::Chooser;
use super::crash::Durable;
use super::faults::{FaultKind, FaultPlan};
use super::predicate::Predicate;
use super::runner::{Pending, Progress, Run};
use super::scenario::{Scenario, When, resolve_name, substitute};
use super::upgrade;
use crate::replica::{Clock, InstallMode, Replica, ReplicaConfig, install};

/// Simulated time starts at 2026-01-01T00:00:00Z.
pub const START_NS: u64 = 1_767_225_600_000_000_000;

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
    /// The workload messages this run left out ([`RunOptions::omit`]).
    pub omitted: Vec<usize>,
}

/// Modules compiled once per engine and reused by every run (each replica
/// installs its own copy).
pub struct Prepared {
    modules: Vec<install::PreparedModule>,
    /// The Candid interface each module carries.
    interfaces: Vec<Option<String>>,
    /// The module O2 upgrades each canister to, and its interface.
    upgrades: Vec<Option<(install::PreparedModule, Option<String>)>>,
}

impl Prepared {
    pub fn new(engine: &crate::engine::Engine, scenario: &Scenario) -> Result<Self, SimError> {
        let replica = new_replica(engine.clone())?;
        let mut modules = Vec::new();
        let mut interfaces = Vec::new();
        let mut upgrades = Vec::new();
        for c in &scenario.canisters {
            let id = replica.create_canister(vec![default_user()]);
            let m = install::prepare_module(&replica, &id, &c.module).map_err(|r| SimError::Canister(c.name.clone(), r.message))?;
            interfaces.push(install::module_interface(replica.runtime(), &m.bytes));
            modules.push(m);
            upgrades.push(match &c.upgrade {
                Some(u) => {
                    let m = install::prepare_module(&replica, &id, &u.module)
                        .map_err(|r| SimError::Canister(c.name.clone(), format!("the upgrade module {}: {}", u.wasm.display(), r.message)))?;
                    let did = install::module_interface(replica.runtime(), &m.bytes);
                    Some((m, did))
                }
                None => None,
            });
        }
        Ok(Self { modules, interfaces, upgrades })
    }

    pub(super) fn module(&self, i: usize) -> install::PreparedModule {
        copy(&self.modules[i])
    }

    /// The Candid interface canister `i`'s module carries.
    pub(super) fn interface(&self, i: usize) -> Option<&str> {
        self.interfaces[i].as_deref()
    }

    /// The module O2 upgrades canister `i` to, and its interface.
    pub(super) fn upgrade(&self, i: usize) -> Option<(install::PreparedModule, Option<&str>)> {
        self.upgrades[i].as_ref().map(|(m, did)| (copy(m), did.as_deref()))
    }
}

fn copy(m: &install::PreparedModule) -> install::PreparedModule {
    install::PreparedModule { code: m.code.clone(), hash: m.hash, bytes: m.bytes.clone() }
}

/// A simulated replica. Its randomness (`raw_rand`) is the same for every
/// seed: a replayed decision log, which has no seed, must see what the
/// seeded run saw.
pub(super) fn new_replica(engine: crate::engine::Engine) -> Result<Replica, SimError> {
    let replica = Replica::new(engine, sim_config(START_NS)).map_err(|e| SimError::Replica(e.to_string()))?;
    replica.sim_record();
    Ok(replica)
}

/// Installs `module` on canister `name` (`id`) as the scenario's user and
/// runs the install to the end: setup runs without faults or choices.
pub(super) fn install_now(replica: &Replica, name: &str, id: Principal, module: install::PreparedModule, arg: Vec<u8>) -> Result<(), SimError> {
    let mut rx = replica.sim_install(default_user(), id, InstallMode::Install, module, arg);
    while let Some(step) = replica.sim_steps().into_iter().next() {
        replica.sim_execute(step.id);
    }
    match rx.try_recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(r)) => Err(SimError::Canister(name.to_string(), format!("install failed: {r}"))),
        Err(_) => Err(SimError::Canister(name.to_string(), "install did not finish".into())),
    }
}

/// A simulated replica's configuration, its clock at `start_ns`.
pub(super) fn sim_config(start_ns: u64) -> ReplicaConfig {
    ReplicaConfig { threads: 0, simulated: true, seed: 0, clock: Clock::Rounds { start_ns }, ..ReplicaConfig::default() }
}

/// What the run is told to do beyond the scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Hash every canister's memory after every step (slow; the run-twice
    /// check uses it).
    pub deep_digests: bool,
    /// Workload messages left out, by their index in submission order
    /// (shrinking removes workload this way).
    pub omit: Vec<usize>,
}

/// Runs the scenario once with `chooser`.
pub fn run(engine: &crate::engine::Engine, scenario: &Scenario, prepared: &Prepared, mut chooser: Chooser, seed: Option<u64>, options: RunOptions) -> Result<RunOutcome, SimError> {
    if scenario.nodes > 1 {
        return super::cluster::run(engine, scenario, prepared, chooser, seed, options);
    }
    let started = Instant::now();
    let (replica, durable) = if scenario.durable {
        let (replica, durable) = Durable::open(engine, sim_config(START_NS))?;
        (replica, Some(durable))
    } else {
        (new_replica(engine.clone())?, None)
    };
    let mut interfaces = Vec::new();
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
            interfaces.push((module.hash, did.to_string()));
        }
        let arg = encode(&c.init, did, None, &ids).map_err(|e| SimError::Canister(c.name.clone(), format!("init arguments: {e}")))?;
        install_now(&replica, &c.name, id, module, arg)?;
    }
    replica.sim_take_events();
    let mut targets = Vec::new();
    for (i, c) in scenario.canisters.iter().enumerate() {
        let (Some(u), Some((module, did))) = (&c.upgrade, &prepared.upgrades[i]) else { continue };
        if let Some(did) = did {
            replica.remember_interface(module.hash, did.clone());
            interfaces.push((module.hash, did.clone()));
        }
        let arg = match &u.arg {
            Some(text) => encode(text, did.as_deref(), None, &ids).map_err(|e| SimError::Canister(c.name.clone(), format!("upgrade arguments: {e}")))?,
            None => candid::encode_args(()).map_err(|e| SimError::Canister(c.name.clone(), format!("upgrade arguments: {e}")))?,
        };
        targets.push(upgrade::Target { name: c.name.clone(), id: ids[&c.name], module: copy(module), arg });
    }
    let plan = FaultPlan::draw_among(scenario.profile, Some(&scenario.fault_kinds()), &mut chooser);
    let predicates = invariants(scenario)?;
    let mut sim = Run::new(replica, ids, engine.clone(), durable, options.deep_digests);
    sim.targets = targets;
    sim.interfaces = interfaces;
    sim.quiet_steps = scenario.quiet_steps;
    // The workload's messages in order (popped from the end).
    sim.pending = scenario
        .workload
        .iter()
        .flat_map(|w| {
            let caller = w.caller.as_deref().map_or(default_user(), |c| match c.strip_prefix('$') {
                Some(name) => resolve_name(name, &sim.ids),
                None => Principal::from_text(c).unwrap_or_else(|_| resolve_name(c, &sim.ids)),
            });
            let one = move || Pending { caller, canister: w.canister.clone(), method: w.method.clone(), arg: w.arg.clone() };
            std::iter::repeat_with(one).take(w.count as usize)
        })
        .enumerate()
        .filter(|(i, _)| !options.omit.contains(i))
        .map(|(_, p)| p)
        .collect();
    sim.pending.reverse();
    // A crash always has a cut to restart from: the installed canisters.
    sim.cut()?;
    let failure = phases(&mut sim, scenario.steps, &plan, &mut chooser, &predicates)?;
    let final_digest = sim.replica.sim_digest(true);
    let simulated_ns = sim.now().saturating_sub(START_NS);
    let history = sim.history();
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
        omitted: options.omit,
    })
}

/// What runs the phases of a run: a single replica or several nodes.
pub(super) trait Phases {
    /// One decision of the fault phase.
    fn decide(&mut self, plan: &FaultPlan, chooser: &mut Chooser, predicates: &[(String, Predicate, When)]) -> Result<Progress, SimError>;
    /// The quiet phase (liveness).
    fn quiet(&mut self) -> Option<Failure>;
    /// Every application invariant, at the end.
    fn check_end(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure>;
}

impl Phases for Run {
    fn decide(&mut self, plan: &FaultPlan, chooser: &mut Chooser, predicates: &[(String, Predicate, When)]) -> Result<Progress, SimError> {
        self.fault_step(plan, chooser, predicates)
    }
    fn quiet(&mut self) -> Option<Failure> {
        Run::quiet(self)
    }
    fn check_end(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure> {
        Run::check_end(self, predicates)
    }
}

/// The fault phase (`steps` decisions at most), then the quiet phase (the
/// rest of the workload, no faults, oldest first), then the invariants
/// checked at the end; the first failure.
pub(super) fn phases(sim: &mut impl Phases, steps: u32, plan: &FaultPlan, chooser: &mut Chooser, predicates: &[(String, Predicate, When)]) -> Result<Option<Failure>, SimError> {
    for _ in 0..steps {
        match sim.decide(plan, chooser, predicates)? {
            Progress::Ran | Progress::Waited => {}
            Progress::Quiescent => break,
            Progress::Failed(f) => return Ok(Some(f)),
        }
    }
    Ok(sim.quiet().or_else(|| sim.check_end(predicates)))
}

/// The scenario's application invariants, parsed.
pub(super) fn invariants(scenario: &Scenario) -> Result<Vec<(String, Predicate, When)>, SimError> {
    scenario
        .invariants
        .iter()
        .map(|i| Predicate::parse(&i.check).map(|p| (i.name.clone(), p, i.when)).map_err(|e| SimError::Scenario(format!("invariant {:?}: {e}", i.name))))
        .collect()
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

