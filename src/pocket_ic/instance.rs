//! One PocketIC instance: a replica in rounds mode ([`Clock::Rounds`]), its
//! subnets (canister id ranges of that one replica), and the ingress
//! messages submitted to it with their outcomes.
//!
//! Subnets: every subnet the client asks for gets a subnet id, a seed and a
//! range of 2^20 canister ids; the first application subnet (else the first
//! subnet) is the default one, where ingress-created canisters go. All
//! subnets share one replica and one scheduler, so calls between subnets
//! behave like calls within one (ww has no cross-subnet latency).
//!
//! Time is PocketIC's, to the nanosecond (the replica's rounds mode, see
//! `replica::ingress`): a round runs at the time set if it moved since the
//! last round, else 1 ns after it; queries see the last round's time; a
//! message awaited runs rounds until it completes (one for ingress, two
//! more per management call a canister makes).
//!
//! Invariants: a message id names one submitted message forever; its
//! outcome, once known, is kept (ingress history) until the instance is
//! deleted; only its sender may read its status.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use candid::Principal;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::wire::{self, SubnetKind};
use crate::certified::CertifiedState;
use crate::certified::keys::SubnetKeys;
use crate::replica::{self, CallResult, Clock, Replica, ReplicaConfig, canister_id, canister_index};
pub(crate) use crate::replica::wall_clock_ns;

/// PocketIC's default initial time: 2021-05-06T19:17:10Z.
pub const GENESIS_NS: u64 = 1_620_328_630_000_000_000;

/// Rounds `await_ingress_message` runs at most before giving up on a message.
pub const MAX_AWAIT_ROUNDS: usize = 100;

/// Canister ids per subnet.
const SUBNET_RANGE_SIZE: u64 = 1 << 20;

/// Where PocketIC's first application subnet's ids start (index of
/// `lxzze-o7777-77777-aaaaa-cai`); further subnets take the ranges below.
const FIRST_APPLICATION_RANGE_START: u64 = 0xFFFF_FFFF_FFE0_0000;

/// The NNS subnet's ids, as on mainnet (the NNS canisters' well-known ids).
const NNS_RANGE: RangeInclusive<u64> = 0..=SUBNET_RANGE_SIZE - 1;

/// Why an instance cannot do what was asked (the client gets the message).
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("ww's PocketIC server does not support {0}")]
    Unsupported(String),
    #[error("the instance has no subnet: ask for at least one (e.g. an application subnet)")]
    NoSubnet,
    #[error("cannot start the replica: {0}")]
    Replica(String),
    #[error("ww test's simulation settings: {0}")]
    Simulation(String),
    #[error("unknown message id {0}: it was never submitted to this instance")]
    UnknownMessage(String),
    #[error("message {id} did not complete: {why}")]
    Incomplete { id: String, why: String },
    #[error(transparent)]
    Clock(#[from] replica::ClockError),
}

/// One subnet of an instance.
#[derive(Clone, Debug)]
pub struct Subnet {
    pub id: Principal,
    pub kind: SubnetKind,
    pub seed: [u8; 32],
    pub spec: wire::SubnetSpec,
    pub range: RangeInclusive<u64>,
}

impl Subnet {
    /// The replica's view of this subnet: its range, its size and the
    /// threshold keys PocketIC puts on it.
    fn range_of_replica(&self) -> replica::SubnetRange {
        let modern = super::server::ServerVersion::from_env().map_or(false, |v| v.major >= 14);
        let (nodes, keys) = subnet_profile(self.kind, modern);
        replica::SubnetRange { id: self.id, canisters: self.range.clone(), nodes, keys, cost_schedule: self.cost_schedule() }
    }

    /// Whether the subnet charges cycles: PocketIC's `cost_schedule`, on
    /// the subnet kinds that are IC application subnets; the IC's system
    /// subnets (NNS, II, Bitcoin, System) charge only for signatures;
    /// cloud engines are always free.
    fn cost_schedule(&self) -> replica::cycles::CostSchedule {
        use replica::cycles::CostSchedule;
        match (self.kind, self.spec.cost_schedule) {
            (SubnetKind::NNS | SubnetKind::II | SubnetKind::Bitcoin | SubnetKind::System, _) => CostSchedule::System,
            (SubnetKind::CloudEngine, _) | (_, wire::CanisterCyclesCostSchedule::Free) => CostSchedule::Free,
            (_, wire::CanisterCyclesCostSchedule::Normal) => CostSchedule::Normal,
        }
    }
}

/// A PocketIC subnet's size and the threshold keys it holds. Servers from
/// 14 on keep `test_key_1` and `dfx_test_key` on the TestThresholdKeys
/// subnet (13 nodes, like mainnet's) and only `key_1` on the II and
/// fiduciary subnets (34 nodes), and add ECDSA over P-256; older servers
/// put every key on II and fiduciary (28 nodes then).
fn subnet_profile(kind: SubnetKind, modern: bool) -> (u32, Vec<crate::chain_keys::KeyId>) {
    use crate::chain_keys::{KeyId, Scheme};
    let keys_named = |names: &[&str]| -> Vec<KeyId> {
        Scheme::ALL
            .iter()
            .filter(|s| modern || **s != Scheme::EcdsaSecp256r1)
            .flat_map(|s| names.iter().map(move |n| KeyId::new(*s, *n)))
            .collect()
    };
    match (kind, modern) {
        (SubnetKind::II | SubnetKind::Fiduciary, true) => (34, keys_named(&["key_1"])),
        (SubnetKind::II | SubnetKind::Fiduciary, false) => (28, keys_named(&crate::chain_keys::KEY_NAMES)),
        (SubnetKind::TestThresholdKeys, _) => (13, keys_named(&["dfx_test_key", "test_key_1"])),
        (SubnetKind::NNS, _) => (40, Vec::new()),
        (SubnetKind::SNS, _) => (34, Vec::new()),
        _ => (13, Vec::new()),
    }
}

/// A submitted ingress message.
struct Message {
    sender: Principal,
    pending: Option<oneshot::Receiver<CallResult>>,
    outcome: Option<CallResult>,
}

impl Message {
    /// The outcome, if the message has completed.
    fn poll(&mut self) -> Option<&CallResult> {
        if self.outcome.is_none()
            && let Some(rx) = self.pending.as_mut()
        {
            match rx.try_recv() {
                Ok(result) => self.outcome = Some(result),
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    self.outcome = Some(Err(replica::Reject::system(replica::ErrorCode::SubnetOversubscribed, "the replica dropped the message")));
                }
            }
            self.pending = None;
        }
        self.outcome.as_ref()
    }
}

/// One PocketIC instance.
pub struct Instance {
    pub replica: Replica,
    pub subnets: Vec<Subnet>,
    messages: HashMap<Vec<u8>, Message>,
    submitted: u64,
    /// Rounds run automatically (`auto_progress`); the task's stop switch.
    pub auto_progress: Option<tokio::sync::watch::Sender<bool>>,
    /// The certified state, signed by the root subnet's key (the NNS if
    /// there is one, else the default subnet) and holding every subnet's
    /// canister ranges (no delegations yet: agents see one subnet).
    pub certified: Arc<CertifiedState>,
    /// The instance's IC HTTP interface (`/instances/<id>/api/...`).
    pub api: axum::Router,
    /// Outcalls waiting for a mock (or made for real once live).
    pub outcalls: Arc<crate::outcalls::mock::MockAdapter>,
    /// Rounds under seeded faults (`ww test --seeds`, see [`crate::sim::rounds`]).
    sim: Option<std::sync::Mutex<crate::sim::rounds::SimRounds>>,
}

impl Instance {
    /// An instance with the subnets `config` asks for, on `engine`.
    pub fn new(engine: crate::engine::Engine, number: usize, config: &wire::InstanceConfig) -> Result<Self, InstanceError> {
        refuse_unsupported(config)?;
        let subnets = plan_subnets(number, &config.subnet_config_set)?;
        let start_ns = match &config.initial_time {
            Some(wire::InitialTime::Timestamp(t)) => t.nanos_since_epoch,
            Some(wire::InitialTime::AutoProgress(_)) => wall_clock_ns().max(GENESIS_NS),
            None => GENESIS_NS,
        };
        let root = subnets.iter().find(|s| s.kind == SubnetKind::NNS).unwrap_or(&subnets[0]);
        let root_keys = SubnetKeys::from_seed(&root.seed);
        let sim = crate::sim::rounds::SimRounds::from_env().map_err(InstanceError::Simulation)?;
        let replica = Replica::new(
            engine,
            ReplicaConfig {
                root_key: Arc::from(root_keys.root.der().to_vec()),
                clock: Clock::Rounds { start_ns },
                subnets: subnets.iter().map(Subnet::range_of_replica).collect(),
                // `provisional_create_canister_with_cycles` without an
                // amount: the IC's default provisional balance, 100 T (v13
                // clients send 0 and add cycles; v14+ send 100 T).
                initial_cycles: 100_000_000_000_000,
                // Test output shows what canisters print, as with PocketIC.
                echo_logs: true,
                flexible_outcalls_disabled: without_flexible_outcalls(&subnets, config),
                simulated: sim.is_some(),
                ..ReplicaConfig::default()
            },
        )
        .map_err(|e| InstanceError::Replica(e.to_string()))?;
        let ranges: Vec<(Principal, Principal)> = subnets.iter().map(|s| (canister_id(*s.range.start()), canister_id(*s.range.end()))).collect();
        let certified = CertifiedState::new(replica.clone(), root_keys, &ranges);
        let api = crate::http::router(certified.clone(), crate::http::HttpConfig::default());
        let outcalls = Arc::new(crate::outcalls::mock::MockAdapter::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            replica.set_outcalls(outcalls.clone(), runtime);
        }
        if sim.is_some() {
            replica.sim_record();
            replica.sim_carry_management();
        }
        let sim = sim.map(std::sync::Mutex::new);
        Ok(Self { replica, subnets, messages: HashMap::new(), submitted: 0, auto_progress: None, certified, api, outcalls, sim })
    }

    /// The instance's topology as the client reads it.
    pub fn topology(&self) -> wire::Topology {
        let subnet_configs = self
            .subnets
            .iter()
            .map(|s| {
                let config = wire::SubnetConfig {
                    subnet_kind: s.kind,
                    subnet_admins: s.spec.subnet_admins.clone(),
                    cost_schedule: s.spec.cost_schedule,
                    subnet_seed: s.seed,
                    instruction_config: s.spec.instruction_config,
                    canister_ranges: vec![wire::CanisterIdRange {
                        start: canister_id(*s.range.start()).into(),
                        end: canister_id(*s.range.end()).into(),
                    }],
                };
                (s.id, config)
            })
            .collect();
        let default = &self.subnets[0];
        wire::Topology { subnet_configs, default_effective_canister_id: canister_id(*default.range.start()).into() }
    }

    /// The subnet whose id range holds `canister`.
    pub fn subnet_of(&self, canister: &Principal) -> Option<&Subnet> {
        let index = canister_index(canister)?;
        self.subnets.iter().find(|s| s.range.contains(&index))
    }

    /// A subnet's public key (DER).
    pub fn subnet_public_key(&self, id: &Principal) -> Option<Vec<u8>> {
        self.subnet(id).map(|s| SubnetKeys::from_seed(&s.seed).root.der().to_vec())
    }

    pub fn subnet(&self, id: &Principal) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == *id)
    }

    /// The first free canister id on `subnet` (for a creation routed there).
    pub fn free_id_on(&self, subnet: &Subnet) -> Option<Principal> {
        subnet.range.clone().map(canister_id).find(|id| !self.replica.exists(id) && !self.replica.was_deleted(id))
    }

    /// Accepts an ingress update (with the sender's info, if any) for the
    /// next round; the message id, or the reject that refused it at once.
    pub async fn submit(
        &mut self,
        sender: Principal,
        canister: Principal,
        method: &str,
        payload: Vec<u8>,
        sender_info: Option<replica::exec::CallerInfo>,
    ) -> Result<Vec<u8>, replica::Reject> {
        self.submitted += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.submitted.to_be_bytes());
        hasher.update(sender.as_slice());
        hasher.update(canister.as_slice());
        hasher.update(method.as_bytes());
        hasher.update(&payload);
        let id = hasher.finalize().to_vec();
        let rx = self.replica.submit_ingress_with_info(sender, canister, method, payload, sender_info).await?;
        self.messages.insert(id.clone(), Message { sender, pending: Some(rx), outcome: None });
        Ok(id)
    }

    /// One round, then the outcalls it made become visible (and old ones
    /// time out), as PocketIC's rounds do.
    pub fn round(&self) -> Result<replica::RoundReport, replica::ClockError> {
        let report = match &self.sim {
            Some(sim) => sim.lock().unwrap_or_else(|e| e.into_inner()).round(&self.replica),
            None => self.replica.execute_round()?,
        };
        self.outcalls.tick(self.replica.time());
        Ok(report)
    }

    /// The size of subnet `id`, if it is one of this instance's.
    pub fn subnet_nodes(&self, id: &Principal) -> Option<u32> {
        self.subnets.iter().find(|s| s.id == *id).map(|s| s.range_of_replica().nodes)
    }

    /// Runs rounds until message `id` completes (at most
    /// [`MAX_AWAIT_ROUNDS`], and no longer once nothing is left to run), as
    /// PocketIC awaits: its status first, then a round, and again.
    /// Blocking: call it off the async runtime's worker threads.
    pub fn await_message(&mut self, id: &[u8]) -> Result<CallResult, InstanceError> {
        let name = hex::encode(id);
        for _ in 0..MAX_AWAIT_ROUNDS {
            if let Some(outcome) = self.outcome(id, &name)? {
                return Ok(outcome);
            }
            let report = self.round()?;
            if report.jobs == 0 && report.deferred == 0 && report.carried == 0 && self.replica.held_ingress() == 0 {
                // A mocked outcall still being transformed answers soon.
                if self.replica.outcalls_outstanding() > self.outcalls.waiting() {
                    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    while self.replica.outcalls_outstanding() > self.outcalls.waiting() && std::time::Instant::now() < until {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    continue;
                }
                return self.outcome(id, &name)?.ok_or_else(|| InstanceError::Incomplete {
                    id: name.clone(),
                    why: "no canister has work left that could answer it".into(),
                });
            }
        }
        self.outcome(id, &name)?
            .ok_or_else(|| InstanceError::Incomplete { id: name.clone(), why: format!("still running after {MAX_AWAIT_ROUNDS} rounds") })
    }

    /// Message `id`'s outcome if it has completed.
    fn outcome(&mut self, id: &[u8], name: &str) -> Result<Option<CallResult>, InstanceError> {
        let message = self.messages.get_mut(id).ok_or_else(|| InstanceError::UnknownMessage(name.to_string()))?;
        Ok(message.poll().cloned())
    }

    /// A message's status: `Ok(None)` while it runs (or is unknown),
    /// `Err(sender)` when `caller` is given and is not its sender.
    pub fn ingress_status(&mut self, id: &[u8], caller: Option<Principal>) -> Result<Option<CallResult>, Principal> {
        let Some(message) = self.messages.get_mut(id) else { return Ok(None) };
        if let Some(caller) = caller
            && caller != message.sender
        {
            return Err(message.sender);
        }
        Ok(message.poll().cloned())
    }
}

/// Refuses what ww cannot do rather than pretending to.
fn refuse_unsupported(config: &wire::InstanceConfig) -> Result<(), InstanceError> {
    let features = config.icp_features_requested();
    if !features.is_empty() {
        return Err(InstanceError::Unsupported(format!(
            "ICP features ({}): ww has no NNS, ledger or other system canisters to install",
            features.join(", ")
        )));
    }
    if config.state_dir.is_some() {
        return Err(InstanceError::Unsupported("state_dir (instance state on disk); instances live in memory".into()));
    }
    for (kind, spec) in config.subnet_config_set.subnets() {
        if !matches!(spec.state_config, wire::SubnetStateConfig::New) {
            return Err(InstanceError::Unsupported(format!("a {kind:?} subnet loaded from saved state; subnets start empty")));
        }
    }
    Ok(())
}

/// Ids, seeds and canister ranges for the requested subnets. The NNS gets
/// mainnet's range; the first application subnet PocketIC's (its first
/// canister is `lxzze-o7777-77777-aaaaa-cai`, which suites hard-code), the
/// others the ranges below it.
fn plan_subnets(number: usize, set: &wire::ExtendedSubnetConfigSet) -> Result<Vec<Subnet>, InstanceError> {
    let mut requested = set.subnets();
    if requested.is_empty() {
        return Err(InstanceError::NoSubnet);
    }
    // The default subnet first: the first application subnet, if any.
    if let Some(i) = requested.iter().position(|(k, _)| *k == SubnetKind::Application) {
        let app = requested.remove(i);
        requested.insert(0, app);
    }
    let mut next = FIRST_APPLICATION_RANGE_START;
    Ok(requested
        .into_iter()
        .enumerate()
        .map(|(i, (kind, spec))| {
            let range = if kind == SubnetKind::NNS {
                NNS_RANGE
            } else {
                let r = next..=next + SUBNET_RANGE_SIZE - 1;
                next -= SUBNET_RANGE_SIZE;
                r
            };
            let seed: [u8; 32] = Sha256::digest(format!("ww pocket-ic instance {number} subnet {i} {kind:?}")).into();
            // The id agents derive from the subnet's key.
            let id = SubnetKeys::from_seed(&seed).root.subnet_id();
            Subnet { id, kind, seed, spec: spec.clone(), range }
        })
        .collect())
}

/// The subnets where PocketIC 16 does not offer `flexible_http_request`:
/// those that charge for outcalls (not a system subnet, not a free cost
/// schedule), unless the instance enables beta features
/// (`icp_config.beta_features = Enabled`).
fn without_flexible_outcalls(subnets: &[Subnet], config: &wire::InstanceConfig) -> Vec<Principal> {
    let beta = config.icp_config.as_ref().and_then(|c| c.get("beta_features")).and_then(|f| f.as_str()) == Some("Enabled");
    if beta {
        return Vec::new();
    }
    subnets.iter().filter(|s| s.cost_schedule() == replica::cycles::CostSchedule::Normal).map(|s| s.id).collect()
}
