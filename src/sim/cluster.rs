//! Runs of scenarios with several nodes (`nodes = N`): one simulated
//! replica per node, each with its own canister range (and state directory
//! when `durable`), joined by the simulated network of [`super::xnet`].
//! Every decision of the fault phase picks a node to take a step (then
//! that node's own choice among its eligible steps) or a network move;
//! then the faults between steps on every node, N2 on the network, the
//! cross-node checks, and per node a cut and N1.

use std::collections::BTreeMap;
use std::time::Instant;

use candid::Principal;

use super::SimError;
use super::chooser::Chooser;
use super::crash::Durable;
use super::faults::{FaultKind, FaultPlan};
use super::inject::{self, Fired};
use super::predicate::Predicate;
use super::run::{Failure, Phases, Prepared, RunOptions, RunOutcome, START_NS, TimelineLine, default_user, encode, install_now, invariants, phases, sim_config};
use super::runner::{Pending, Progress, Run, check_predicates};
use super::scenario::{Scenario, When, resolve_name};
use super::upgrade;
use super::xnet::{NetMove, NodeLayout, SimNet};
use crate::replica::{Replica, ReplicaConfig};

/// Simulated time each decision takes.
const STEP_NS: u64 = 1_000_000;

/// The nodes of a run and the network between them.
struct Cluster {
    runs: Vec<Run>,
    net: SimNet,
    ids: BTreeMap<String, Principal>,
    /// The node that took the last step (nodes take turns by default).
    last_node: Option<usize>,
    timeline: Vec<TimelineLine>,
    fired: Fired,
    steps: usize,
    quiet_steps: u32,
}

enum Choice {
    Node(usize),
    Net(NetMove),
}

impl Cluster {
    fn now(&self) -> u64 {
        self.runs.iter().map(Run::now).max().unwrap_or(START_NS)
    }

    fn advance_to(&self, ns: u64) {
        for r in &self.runs {
            r.replica.sim_advance_to(ns);
        }
    }

    /// The nodes' timeline lines so far, then `line` (if any), in order.
    fn gather(&mut self, line: Option<String>) {
        let step = self.steps;
        for r in &mut self.runs {
            self.timeline.extend(r.timeline.drain(..).map(|l| TimelineLine { step, ..l }));
        }
        if let Some(text) = line.filter(|l| !l.is_empty()) {
            let time_ns = self.now().saturating_sub(START_NS);
            self.timeline.push(TimelineLine { step, time_ns, text });
        }
    }

    fn failed(&mut self, mut f: Failure) -> Progress {
        self.gather(None);
        f.step = self.steps;
        Progress::Failed(f)
    }

    /// What may happen now: the nodes with a step or a message to take
    /// (the ones after the last to act first), then the network's moves.
    fn choices(&mut self) -> Vec<Choice> {
        self.net.transmit();
        let n = self.runs.len();
        let first = self.last_node.map_or(0, |l| l + 1);
        let mut choices: Vec<Choice> = (0..n)
            .map(|i| (first + i) % n)
            .filter(|&i| !self.runs[i].pending.is_empty() || !self.runs[i].eligible().is_empty())
            .map(Choice::Node)
            .collect();
        choices.extend(self.net.moves().into_iter().map(Choice::Net));
        choices
    }

    /// One decision of the fault phase.
    fn decide_now(&mut self, plan: &FaultPlan, chooser: &mut Chooser, predicates: &[(String, Predicate, When)]) -> Result<Progress, SimError> {
        let now = self.now();
        self.advance_to(now + STEP_NS);
        let choices = self.choices();
        if choices.is_empty() {
            if self.cut_what_waits()? {
                return Ok(Progress::Ran);
            }
            return Ok(match self.runs.iter().filter_map(|r| r.replica.sim_next_event()).min() {
                Some(t) => {
                    self.advance_to(t);
                    Progress::Waited
                }
                None => Progress::Quiescent,
            });
        }
        self.steps += 1;
        let pick = inject::pick(plan, chooser, &mut self.fired, choices.len());
        let failure = match choices[pick] {
            Choice::Node(n) => {
                self.last_node = Some(n);
                let run = &mut self.runs[n];
                let steps = run.eligible();
                let options = steps.len() + usize::from(!run.pending.is_empty());
                let pick = inject::pick(plan, chooser, &mut run.fired, options);
                if pick >= steps.len() {
                    match run.pending.pop() {
                        Some(p) => run.submit_pending(p),
                        None => return Err(SimError::Replica("no workload left".into())),
                    }
                } else {
                    run.run_step(&steps[pick], plan, chooser)
                }
            }
            Choice::Net(mv) => {
                self.gather(None);
                match self.net.apply(mv, &mut self.runs) {
                    Ok(line) => {
                        self.gather(Some(line));
                        None
                    }
                    Err(f) => Some(f),
                }
            }
        };
        if let Some(f) = failure {
            return Ok(self.failed(f));
        }
        for run in &mut self.runs {
            let f = run
                .maybe_expire(plan, chooser)
                .or_else(|| run.maybe_operate(plan, chooser))
                .or_else(|| run.maybe_upgrade(plan, chooser))
                .or_else(|| run.maybe_freeze(plan, chooser));
            if let Some(f) = f {
                return Ok(self.failed(f));
            }
        }
        self.gather(None);
        if let Some(line) = self.net.fault(plan, chooser, &mut self.fired) {
            self.gather(Some(line));
        }
        if let Some(f) = self.net.cross_check(&mut self.runs) {
            return Ok(self.failed(f));
        }
        if self.runs.iter().all(Run::settled)
            && let Some(f) = self.predicates(predicates, |w| w == When::Always)
        {
            return Ok(self.failed(f));
        }
        for n in 0..self.runs.len() {
            if !self.runs[n].maybe_cut_then_crash(plan, chooser)? {
                continue;
            }
            let failure = self.runs[n].crash()?.or_else(|| self.net.restarted(n, &mut self.runs));
            if let Some(f) = failure {
                return Ok(self.failed(f));
            }
        }
        self.gather(None);
        Ok(Progress::Ran)
    }

    /// Writes a cut on every node where something waits for one (an
    /// answer to acknowledge, messages to send): what the persister does
    /// when a node is otherwise idle. Whether any was written.
    fn cut_what_waits(&mut self) -> Result<bool, SimError> {
        let mut cut = false;
        for (n, r) in self.runs.iter_mut().enumerate() {
            if r.awaits_cut() || self.net.awaits_cut(n) {
                r.cut()?;
                cut = true;
            }
        }
        Ok(cut)
    }

    fn predicates(
        &self,
        predicates: &[(String, Predicate, When)],
        now: impl Fn(When) -> bool,
    ) -> Option<Failure> {
        let replicas: Vec<Replica> = self.runs.iter().map(|r| r.replica.clone()).collect();
        check_predicates(&replicas, &self.ids, predicates, now, self.steps)
    }

    /// The quiet phase: no faults, the first choice every time, until
    /// nothing is left; then every node's liveness.
    fn quiet_now(&mut self) -> Option<Failure> {
        self.gather(Some("quiet phase: no more faults".into()));
        for r in &mut self.runs {
            r.calm();
        }
        let nodes = self.runs.len() as u32;
        for _ in 0..self.quiet_steps.saturating_mul(nodes) {
            let choices = self.choices();
            let failure = match choices.first() {
                Some(Choice::Node(n)) => {
                    let n = *n;
                    self.last_node = Some(n);
                    self.steps += 1;
                    let run = &mut self.runs[n];
                    match run.eligible().first().cloned() {
                        Some(step) => run.run_step(&step, &FaultPlan::default(), &mut Chooser::replay(Vec::new())),
                        None => run.pending.pop().and_then(|p| run.submit_pending(p)),
                    }
                }
                Some(Choice::Net(mv)) => {
                    self.steps += 1;
                    self.gather(None);
                    match self.net.apply(*mv, &mut self.runs) {
                        Ok(line) => {
                            self.gather(Some(line));
                            None
                        }
                        Err(f) => Some(f),
                    }
                }
                None => {
                    match self.cut_what_waits() {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => {
                            return Some(Failure {
                                invariant: "scenario".into(),
                                detail: e.to_string(),
                                step: self.steps,
                            });
                        }
                    }
                    match self
                        .runs
                        .iter()
                        .filter_map(|r| r.replica.sim_next_event())
                        .min()
                    {
                        Some(t) => {
                            self.advance_to(t);
                            continue;
                        }
                        None => break,
                    }
                }
            };
            let failure = failure.or_else(|| self.net.cross_check(&mut self.runs));
            if let Some(mut f) = failure {
                self.gather(None);
                f.step = self.steps;
                return Some(f);
            }
            let now = self.now();
            self.advance_to(now + STEP_NS);
        }
        let failure = self.runs.iter_mut().find_map(Run::liveness);
        self.gather(None);
        failure
    }
}

impl Phases for Cluster {
    fn decide(&mut self, plan: &FaultPlan, chooser: &mut Chooser, predicates: &[(String, Predicate, When)]) -> Result<Progress, SimError> {
        self.decide_now(plan, chooser, predicates)
    }
    fn quiet(&mut self) -> Option<Failure> {
        self.quiet_now()
    }
    fn check_end(&mut self, predicates: &[(String, Predicate, When)]) -> Option<Failure> {
        self.predicates(predicates, |_| true)
    }
}

/// Runs a scenario with several nodes once with `chooser`.
pub(super) fn run(
    engine: &crate::engine::Engine,
    scenario: &Scenario,
    prepared: &Prepared,
    mut chooser: Chooser,
    seed: Option<u64>,
    options: RunOptions,
) -> Result<RunOutcome, SimError> {
    let started = Instant::now();
    let layout: Vec<NodeLayout> = (0..scenario.nodes).map(NodeLayout::new).collect();
    let mut replicas = Vec::new();
    let mut durables = Vec::new();
    for l in &layout {
        let config = ReplicaConfig { subnets: l.subnets(), ..sim_config(START_NS) };
        if scenario.durable {
            let (replica, durable) = Durable::open(engine, config)?;
            replicas.push(replica);
            durables.push(Some(durable));
        } else {
            let replica = Replica::new(engine.clone(), config).map_err(|e| SimError::Replica(e.to_string()))?;
            replica.sim_record();
            replicas.push(replica);
            durables.push(None);
        }
    }
    let user = default_user();
    let mut ids = BTreeMap::new();
    for c in &scenario.canisters {
        ids.insert(c.name.clone(), replicas[c.node].create_canister(vec![user]));
    }
    let mut interfaces = Vec::new();
    let mut targets: Vec<Vec<upgrade::Target>> = (0..scenario.nodes).map(|_| Vec::new()).collect();
    for (i, c) in scenario.canisters.iter().enumerate() {
        let (module, did) = (prepared.module(i), prepared.interface(i));
        if let Some(did) = did {
            interfaces.push((module.hash, did.to_string()));
        }
        if let Some((module, did)) = prepared.upgrade(i) {
            if let Some(did) = did {
                interfaces.push((module.hash, did.to_string()));
            }
            let arg = match &c.upgrade.as_ref().and_then(|u| u.arg.clone()) {
                Some(text) => encode(text, did, None, &ids).map_err(|e| SimError::Canister(c.name.clone(), format!("upgrade arguments: {e}")))?,
                None => candid::encode_args(()).map_err(|e| SimError::Canister(c.name.clone(), format!("upgrade arguments: {e}")))?,
            };
            targets[c.node].push(upgrade::Target { name: c.name.clone(), id: ids[&c.name], module, arg });
        }
    }
    for replica in &replicas {
        for (hash, did) in &interfaces {
            replica.remember_interface(*hash, did.clone());
        }
    }
    let mut runs: Vec<Run> = Vec::new();
    for (n, (replica, durable)) in replicas.into_iter().zip(durables).enumerate() {
        let own: BTreeMap<String, Principal> = scenario.canisters.iter().filter(|c| c.node == n).map(|c| (c.name.clone(), ids[&c.name])).collect();
        let mut run = Run::new(replica, own, engine.clone(), durable, options.deep_digests);
        run.subnets = layout[n].subnets();
        run.known = ids.clone();
        run.label = format!("n{n}");
        run.interfaces = interfaces.clone();
        run.quiet_steps = scenario.quiet_steps;
        run.targets = std::mem::take(&mut targets[n]);
        run.check.foreign = scenario.canisters.iter().filter(|c| c.node != n).map(|c| ids[&c.name]).collect();
        runs.push(run);
    }
    // The nodes are up and connected before the workload starts.
    let mut net = SimNet::join(layout, &mut runs, scenario.durable);
    net.connect_all().map_err(|f| SimError::Replica(f.detail))?;
    for (i, c) in scenario.canisters.iter().enumerate() {
        let arg = encode(&c.init, prepared.interface(i), None, &ids).map_err(|e| SimError::Canister(c.name.clone(), format!("init arguments: {e}")))?;
        install_now(&runs[c.node].replica, &c.name, ids[&c.name], prepared.module(i), arg)?;
    }
    for r in &runs {
        r.replica.sim_take_events();
    }
    // The workload's messages in order, each on its canister's node.
    let node_of: BTreeMap<&str, usize> = scenario.canisters.iter().map(|c| (c.name.as_str(), c.node)).collect();
    let messages = scenario.workload.iter().flat_map(|w| std::iter::repeat_n(w, w.count as usize)).enumerate();
    for (i, w) in messages {
        if options.omit.contains(&i) {
            continue;
        }
        let caller = w.caller.as_deref().map_or(user, |c| match c.strip_prefix('$') {
            Some(name) => resolve_name(name, &ids),
            None => Principal::from_text(c).unwrap_or_else(|_| resolve_name(c, &ids)),
        });
        let node = node_of.get(w.canister.as_str()).copied().unwrap_or(0);
        runs[node].pending.push(Pending { caller, canister: w.canister.clone(), method: w.method.clone(), arg: w.arg.clone() });
    }
    for r in &mut runs {
        r.pending.reverse();
        r.cut()?;
    }
    let plan = FaultPlan::draw_among(scenario.profile, Some(&scenario.fault_kinds()), &mut chooser);
    let predicates = invariants(scenario)?;
    let mut cluster = Cluster { runs, net, ids, last_node: None, timeline: Vec::new(), fired: Fired::default(), steps: 0, quiet_steps: scenario.quiet_steps };
    let failure = phases(&mut cluster, scenario.steps, &plan, &mut chooser, &predicates)?;
    cluster.gather(None);
    let mut faults = cluster.fired.kinds.clone();
    let mut expiries = cluster.fired.expiries.clone();
    let mut digests = Vec::new();
    let mut history = Vec::new();
    let mut final_digest = blake3::Hasher::new();
    for r in &cluster.runs {
        for (k, v) in &r.fired.kinds {
            *faults.entry(*k).or_default() += v;
        }
        for (k, v) in &r.fired.expiries {
            *expiries.entry(k).or_default() += v;
        }
        digests.extend(r.digests.iter().copied());
        history.extend(r.history().into_iter().map(|h| format!("{}  {h}", r.label)));
        final_digest.update(&r.replica.sim_digest(true));
    }
    debug_assert!(faults.keys().all(|k| FaultKind::ALL.contains(k)));
    let simulated_ns = cluster.now().saturating_sub(START_NS);
    Ok(RunOutcome {
        seed,
        plan,
        decisions: chooser.into_log(),
        failure,
        timeline: cluster.timeline,
        faults,
        expiries,
        digests,
        final_digest: *final_digest.finalize().as_bytes(),
        steps: cluster.steps,
        simulated_ns,
        real: started.elapsed(),
        history,
        omitted: options.omit,
    })
}
