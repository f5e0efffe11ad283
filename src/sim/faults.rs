//! The fault vocabulary: only what the IC interface specification allows a
//! replica to do, each kind labelled with the clause that allows it, grouped
//! in profiles; and the per-seed fault plan (swarm testing: each seed turns
//! on its own subset of the profile's kinds, each at its own rate).
//!
//! Never injected, because the spec forbids it: duplicate delivery, reordering
//! two delivered requests of one caller-callee pair, `SYS_UNKNOWN` on an
//! unbounded-wait call, a `SYS_TRANSIENT`/`SYS_FATAL`/`DESTINATION_INVALID`
//! reject after the callee started executing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::chooser::Chooser;

/// Which faults may be injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// What mainnet is known to do.
    #[default]
    Strict,
    /// Everything the spec's formal model permits (resource traps included).
    Spec,
    /// `spec` plus cleanup traps.
    Adversarial,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(Self::Strict),
            "spec" => Ok(Self::Spec),
            "adversarial" => Ok(Self::Adversarial),
            other => Err(format!("unknown profile {other:?} (strict, spec or adversarial)")),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Strict => "strict",
            Self::Spec => "spec",
            Self::Adversarial => "adversarial",
        })
    }
}

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// M1: the next step is any eligible one, not the oldest.
    Interleave,
    /// M3: a request that has not started is rejected.
    SpontaneousReject,
    /// M6: a bounded-wait call expires with `SYS_UNKNOWN`.
    Expiry,
    /// R1: an execution hits the instruction limit.
    InstructionLimit,
    /// R3: the cleanup callback after a trapped callback traps too.
    CleanupTrap,
    /// O1: a controller stops a canister between executions, or starts it
    /// again.
    StopStart,
    /// M4: `ic0.call_perform` fails synchronously (no callback ever runs).
    CallPerformFails,
    /// O2: a controller upgrades a canister between executions: stopped
    /// first (`strict`), or with its calls in flight (`spec` and up), whose
    /// callbacks then run in the new module.
    Upgrade,
    /// N1: the node crashes and restarts from its state directory's last
    /// cut (scenarios with `durable = true`).
    Crash,
    /// M5: a canister runs down to its freezing threshold (calls to it are
    /// rejected with `SYS_TRANSIENT`), until it is topped up again.
    Frozen,
    /// N2: an XNet link between two nodes is lost (frames in flight with
    /// it; both ends reconnect and resume), or the transport delivers a
    /// frame twice (the receiver must drop the copy). Scenarios with
    /// several nodes.
    Link,
    /// R2: `memory.grow` fails (returns -1) during an execution of a
    /// canister without a memory allocation; its allocator then traps.
    GrowFails,
}

impl FaultKind {
    /// Every kind, in the order a plan draws them (new kinds go last, so
    /// older plans and logs keep their meaning).
    pub const ALL: [FaultKind; 12] = [
        Self::Interleave,
        Self::SpontaneousReject,
        Self::Expiry,
        Self::InstructionLimit,
        Self::CleanupTrap,
        Self::StopStart,
        Self::CallPerformFails,
        Self::Upgrade,
        Self::Crash,
        Self::Frozen,
        Self::Link,
        Self::GrowFails,
    ];

    /// The short id of the reference's vocabulary.
    pub fn id(self) -> &'static str {
        match self {
            Self::Interleave => "M1",
            Self::SpontaneousReject => "M3",
            Self::Expiry => "M6",
            Self::InstructionLimit => "R1",
            Self::CleanupTrap => "R3",
            Self::StopStart => "O1",
            Self::CallPerformFails => "M4",
            Self::Upgrade => "O2",
            Self::Crash => "N1",
            Self::Frozen => "M5",
            Self::Link => "N2",
            Self::GrowFails => "R2",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Interleave => "interleave",
            Self::SpontaneousReject => "spontaneous reject",
            Self::Expiry => "bounded-wait expiry",
            Self::InstructionLimit => "instruction-limit trap",
            Self::CleanupTrap => "cleanup trap",
            Self::StopStart => "stop/start",
            Self::CallPerformFails => "call_perform fails",
            Self::Upgrade => "upgrade",
            Self::Crash => "node crash",
            Self::Frozen => "frozen canister",
            Self::Link => "XNet link fault",
            Self::GrowFails => "memory.grow fails",
        }
    }

    /// The clause of the IC interface specification that allows it.
    pub fn clause(self) -> &'static str {
        match self {
            Self::Interleave => "Ordering guarantees: only requests of one caller-callee pair keep their order",
            Self::SpontaneousReject => "Spontaneous request rejection: a request may be rejected before it executes",
            Self::Expiry => "Call expiry: a bounded-wait call may end in SYS_UNKNOWN at any time",
            Self::InstructionLimit => "Traps include exceeding the per-message instruction limit",
            Self::CleanupTrap => "call_on_cleanup: the cleanup callback may trap too",
            Self::StopStart => "Canister status: controllers stop and start canisters; a stopping canister rejects new calls but takes responses",
            Self::CallPerformFails => "ic0.call_perform may fail (lack of resources, a full queue); then no callback runs",
            Self::Upgrade => {
                "Canister upgrades: a controller may upgrade a canister between executions; callbacks of calls in flight then run in the new module (the spec advises stopping first)"
            }
            Self::Crash => "ww's durability promise: a node restarts from its state directory's last cut; what it acknowledged is in that cut",
            Self::Frozen => "Calls to frozen canisters are rejected (SYS_TRANSIENT): a canister may run down to its freezing threshold",
            Self::Link => "ww's XNet promise: a lost connection resumes where the peer's acknowledgements left off, each message delivered once",
            Self::GrowFails => "Resource limits: memory.grow may fail (return -1) for a canister without a memory allocation when the subnet is short of memory",
        }
    }

    /// The profiles it belongs to.
    pub fn allowed_in(self, profile: Profile) -> bool {
        match self {
            // O2 in `strict` only as stop, upgrade, start (see `unsafe_upgrades`).
            Self::Interleave | Self::SpontaneousReject | Self::Expiry | Self::StopStart | Self::CallPerformFails | Self::Upgrade | Self::Crash | Self::Frozen | Self::Link => true,
            Self::InstructionLimit | Self::GrowFails => profile >= Profile::Spec,
            Self::CleanupTrap => profile >= Profile::Adversarial,
        }
    }
}

/// The rates a seed can give an active fault kind.
const RATES: [f64; 4] = [0.02, 0.05, 0.1, 0.25];

/// Which fault kinds a seed turned on, and how often each fires.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub profile: Profile,
    pub rates: BTreeMap<FaultKind, f64>,
}

impl FaultPlan {
    /// Draws the plan (its draws are the first decisions of a run): each
    /// kind the profile allows is on with probability one half.
    pub fn draw(profile: Profile, chooser: &mut Chooser) -> Self {
        Self::draw_among(profile, None, chooser)
    }

    /// [`FaultPlan::draw`] among the kinds `only` names (of those the
    /// profile allows).
    pub fn draw_among(profile: Profile, only: Option<&[FaultKind]>, chooser: &mut Chooser) -> Self {
        let mut rates = BTreeMap::new();
        for kind in FaultKind::ALL {
            if !kind.allowed_in(profile) || only.is_some_and(|o| !o.contains(&kind)) {
                continue;
            }
            // 0 (the simplest decision) is "off".
            if chooser.draw(2) == 1 {
                rates.insert(kind, RATES[chooser.draw(RATES.len() as u32) as usize]);
            }
        }
        Self { profile, rates }
    }

    /// Whether O2 may upgrade a canister that has calls in flight (not in
    /// `strict`: operators who follow the spec stop the canister first).
    pub fn unsafe_upgrades(&self) -> bool {
        self.profile >= Profile::Spec
    }

    pub fn rate(&self, kind: FaultKind) -> Option<f64> {
        self.rates.get(&kind).copied()
    }

    /// One line: the kinds on and their rates.
    pub fn describe(&self) -> String {
        if self.rates.is_empty() {
            return format!("{}: no faults", self.profile);
        }
        let kinds: Vec<String> = self.rates.iter().map(|(k, r)| format!("{} {} {:.0}%", k.id(), k.name(), r * 100.0)).collect();
        format!("{}: {}", self.profile, kinds.join(", "))
    }
}
