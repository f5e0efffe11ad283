//! The Rust API: a simulation driven from Rust code rather than a scenario
//! file. Build one ([`SimBuilder`]: canisters by module and encoded init
//! argument, profile, fault kinds, state directory), then drive it: submit
//! ingress messages at the moments the test chooses, run one decision at a
//! time ([`Sim::step`]) with the seed's faults, inject scripted faults
//! ([`Sim::inject`]), run a fault-free quiet phase that must conclude every
//! call ([`Sim::run_until_quiescent`]), and read the outcomes, the call
//! history and the timeline. The same seed gives the same run; the
//! decision log ([`Sim::decisions`]) replays it ([`SimBuilder::replay`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ww::sim::api::{SimBuilder, Stepped};
//! let ledger = std::fs::read("sim_ledger.wasm")?;
//! let mut sim = SimBuilder::new().canister("ledger", ledger, candid::Encode!(&())?).seed(7)?;
//! let id = sim.submit(ww::sim::run::default_user(), "ledger", "tx_count", candid::Encode!()?)?;
//! while let Stepped::Ran | Stepped::Waited = sim.step()? {}
//! sim.run_until_quiescent()?;
//! println!("{:?}", sim.outcome(id));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use candid::Principal;

use super::SimError;
use super::chooser::Chooser;
use super::crash::Durable;
use super::faults::{FaultKind, FaultPlan, Profile};
use super::inject;
use super::run::{Failure, START_NS, TimelineLine, default_user, install_now, new_replica, sim_config};
pub use super::runner::IngressOutcome;
use super::runner::{Progress, Run};
use crate::replica::{CallResult, Replica, install};

/// What one [`Sim::step`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stepped {
    /// A step ran.
    Ran,
    /// Nothing was eligible: time jumped to the next timer or deadline.
    Waited,
    /// Nothing is eligible and nothing is due.
    Quiescent,
    /// An invariant failed (the simulation should stop here).
    Failed(Failure),
}

/// A fault a test injects at a moment of its choosing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Fault {
    /// N1: the node crashes now and restarts from its last cut (needs
    /// [`SimBuilder::durable`]).
    Crash,
    /// A cut now (what the node's persister does on its own schedule).
    Cut,
    /// O1: the controller stops the named canister.
    Stop(String),
    /// O1: the controller starts the named canister.
    Start(String),
    /// R2: every `memory.grow` of the next execution fails (a canister
    /// without a memory allocation).
    GrowFails,
}

/// An ingress message submitted through [`Sim::submit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngressId(usize);

struct CanisterSetup {
    name: String,
    module: Arc<[u8]>,
    init: Vec<u8>,
}

/// Builds a [`Sim`].
pub struct SimBuilder {
    profile: Profile,
    faults: Option<Vec<FaultKind>>,
    durable: bool,
    canisters: Vec<CanisterSetup>,
    engine: Option<crate::engine::Engine>,
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SimBuilder {
    /// Profile `strict`, every fault kind it allows, no state directory.
    pub fn new() -> Self {
        Self { profile: Profile::Strict, faults: None, durable: false, canisters: Vec::new(), engine: None }
    }

    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Only these fault kinds (of those the profile allows).
    pub fn faults(mut self, kinds: &[FaultKind]) -> Self {
        self.faults = Some(kinds.to_vec());
        self
    }

    /// Keeps the replica in a temporary state directory: cuts become
    /// decisions and N1 may fire (if the fault kinds allow it).
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// A canister, installed in the order given by the simulation's user
    /// ([`default_user`], its controller) with `init` (encoded Candid).
    pub fn canister(mut self, name: &str, module: impl Into<Arc<[u8]>>, init: Vec<u8>) -> Self {
        self.canisters.push(CanisterSetup { name: name.to_string(), module: module.into(), init });
        self
    }

    /// Shares a canister engine (and its compiled modules) between
    /// simulations; default: a new one.
    pub fn engine(mut self, engine: crate::engine::Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The simulation of seed `seed`.
    pub fn seed(self, seed: u64) -> Result<Sim, SimError> {
        self.build(Chooser::seeded(seed))
    }

    /// The simulation that replays `decisions` (a [`Sim::decisions`] log).
    pub fn replay(self, decisions: Vec<u32>) -> Result<Sim, SimError> {
        self.build(Chooser::replay(decisions))
    }

    fn build(self, mut chooser: Chooser) -> Result<Sim, SimError> {
        let engine = match self.engine {
            Some(e) => e,
            None => super::canister_engine()?,
        };
        let (replica, durable) = if self.durable {
            let (replica, durable) = Durable::open(&engine, sim_config(START_NS))?;
            (replica, Some(durable))
        } else {
            (new_replica(engine.clone())?, None)
        };
        let user = default_user();
        let mut ids = BTreeMap::new();
        for c in &self.canisters {
            if ids.insert(c.name.clone(), replica.create_canister(vec![user])).is_some() {
                return Err(SimError::Canister(c.name.clone(), "two canisters have this name".into()));
            }
        }
        let mut interfaces = Vec::new();
        for c in &self.canisters {
            let id = ids[&c.name];
            let module = install::prepare_module(&replica, &id, &c.module).map_err(|r| SimError::Canister(c.name.clone(), r.message))?;
            if let Some(did) = install::module_interface(replica.runtime(), &module.bytes) {
                replica.remember_interface(module.hash, did.clone());
                interfaces.push((module.hash, did));
            }
            install_now(&replica, &c.name, id, module, c.init.clone())?;
        }
        replica.sim_take_events();
        let kinds: Vec<FaultKind> = self
            .faults
            .as_deref()
            .unwrap_or(&FaultKind::ALL)
            .iter()
            .copied()
            // No module pairs here (O2 is a scenario's); N1 needs a state directory.
            .filter(|k| *k != FaultKind::Upgrade && (self.durable || *k != FaultKind::Crash))
            .collect();
        let plan = FaultPlan::draw_among(self.profile, Some(&kinds), &mut chooser);
        let mut run = Run::new(replica, ids, engine, durable, false);
        run.interfaces = interfaces;
        run.cut()?;
        Ok(Sim { run, plan, chooser })
    }
}

/// A simulation driven from Rust code (see the module doc).
pub struct Sim {
    run: Run,
    plan: FaultPlan,
    chooser: Chooser,
}

impl Sim {
    /// The canister called `name`.
    pub fn id(&self, name: &str) -> Option<Principal> {
        self.run.ids.get(name).copied()
    }

    /// The fault kinds this seed turned on, and their rates.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Submits an ingress message from `caller` now.
    pub fn submit(&mut self, caller: Principal, canister: &str, method: &str, arg: Vec<u8>) -> Result<IngressId, SimError> {
        let id = self.id(canister).ok_or_else(|| SimError::Canister(canister.to_string(), "no such canister".into()))?;
        let index = self.run.submit(caller, id, method, arg);
        Ok(IngressId(index))
    }

    /// What the message's sender has been told (`None` while it waits;
    /// with a state directory, until a cut holds the answer).
    pub fn outcome(&self, id: IngressId) -> Option<&IngressOutcome> {
        self.run.delivered(id.0)
    }

    /// One decision with the seed's faults: the next step, then the faults
    /// between steps and the system invariants.
    pub fn step(&mut self) -> Result<Stepped, SimError> {
        Ok(match self.run.fault_step(&self.plan, &mut self.chooser, &[])? {
            Progress::Ran => Stepped::Ran,
            Progress::Waited => Stepped::Waited,
            Progress::Quiescent => Stepped::Quiescent,
            Progress::Failed(f) => Stepped::Failed(f),
        })
    }

    /// The quiet phase: every canister started, then steps without faults
    /// until every call and message has concluded (liveness); `Err` with
    /// the invariant that failed.
    pub fn run_until_quiescent(&mut self) -> Result<(), Failure> {
        match self.run.quiet() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Injects a fault now; a failed invariant (N1's I5) comes back.
    pub fn inject(&mut self, fault: Fault) -> Result<Option<Failure>, SimError> {
        match fault {
            Fault::Crash => {
                if self.run.durable.is_none() {
                    return Err(SimError::Replica("a crash needs a state directory (SimBuilder::durable)".into()));
                }
                self.run.fired.add(FaultKind::Crash);
                self.run.crash()
            }
            Fault::Cut => self.run.cut().map(|()| None),
            Fault::GrowFails => {
                self.run.fired.add(FaultKind::GrowFails);
                self.run.replica.sim_fail_grow();
                self.run.line("injected: R2, the next execution's memory.grow fails".into());
                Ok(None)
            }
            Fault::Stop(name) | Fault::Start(name) if self.id(&name).is_none() => Err(SimError::Canister(name, "no such canister".into())),
            Fault::Stop(name) => Ok(self.controller_calls("stop_canister", &name)),
            Fault::Start(name) => Ok(self.controller_calls("start_canister", &name)),
        }
    }

    /// The controller's `method` (stop or start) on canister `name`.
    fn controller_calls(&mut self, method: &str, name: &str) -> Option<Failure> {
        if let Some(id) = self.id(name) {
            inject::submit_management(&self.run.replica, default_user(), method, id);
            self.run.line(format!("injected: the controller calls {method} {name}"));
        }
        None
    }

    /// A query to a canister now (no step).
    pub fn query(&self, caller: Principal, canister: &str, method: &str, arg: Vec<u8>) -> Result<CallResult, SimError> {
        let id = self.id(canister).ok_or_else(|| SimError::Canister(canister.to_string(), "no such canister".into()))?;
        Ok(self.run.replica.sim_query(caller, id, method, arg))
    }

    /// The replica (read-only views: statuses, install history, time).
    pub fn replica(&self) -> &Replica {
        &self.run.replica
    }

    /// The inter-canister calls so far, each ok / failed / maybe.
    pub fn history(&self) -> Vec<String> {
        self.run.history()
    }

    /// One line per step so far.
    pub fn timeline(&self) -> &[TimelineLine] {
        &self.run.timeline
    }

    /// Faults fired so far, by kind.
    pub fn faults_fired(&self) -> &BTreeMap<FaultKind, u32> {
        &self.run.fired.kinds
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.run.steps
    }

    /// Simulated time since the start, in nanoseconds.
    pub fn simulated_ns(&self) -> u64 {
        self.run.now().saturating_sub(START_NS)
    }

    /// The decision log so far (replays this run with [`SimBuilder::replay`]).
    pub fn decisions(&self) -> Vec<u32> {
        self.chooser.log().to_vec()
    }
}
