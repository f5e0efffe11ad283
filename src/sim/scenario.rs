//! Scenario files (TOML): the canisters by path with their init arguments,
//! the workload of ingress messages, the fault profile, the phase lengths
//! and the application invariants. `$name` in any Candid text stands for
//! the principal of the canister called `name`, or, when no canister has
//! that name, for a user identity derived from the name (`$alice`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candid::Principal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::faults::Profile;
use super::SimError;
use crate::candid_args::one_line;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    #[serde(default)]
    profile: Profile,
    /// Only these fault kinds of the profile (`["M1", "M6"]`); default all.
    #[serde(default)]
    faults: Option<Vec<String>>,
    /// Decisions in the fault phase.
    #[serde(default = "default_steps")]
    steps: u32,
    /// Steps the quiet phase may take to conclude every call (liveness).
    #[serde(default = "default_quiet_steps")]
    quiet_steps: u32,
    /// Keep the replica in a state directory: cuts become decisions and
    /// N1 (node crash and restart) may fire.
    #[serde(default)]
    durable: bool,
    /// Nodes in the simulation (default 1): each a replica with its own
    /// canister range, joined by simulated XNet links (N2 may fire).
    #[serde(default = "one")]
    nodes: u32,
    #[serde(rename = "canister")]
    canisters: Vec<CanisterFile>,
    #[serde(rename = "workload", default)]
    workload: Vec<Workload>,
    #[serde(rename = "invariant", default)]
    invariants: Vec<Invariant>,
}

fn default_steps() -> u32 {
    200
}

fn default_quiet_steps() -> u32 {
    5_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CanisterFile {
    name: String,
    /// The module, relative to the scenario file.
    wasm: PathBuf,
    /// Candid text of the init arguments (default `()`).
    #[serde(default)]
    init: Option<String>,
    /// The module O2 upgrades the canister to (it may be `wasm` itself);
    /// without one, O2 leaves the canister alone.
    #[serde(default)]
    upgrade: Option<PathBuf>,
    /// Candid text of the `post_upgrade` arguments, typed by the new
    /// module's init arguments (default: none).
    #[serde(default)]
    upgrade_arg: Option<String>,
    /// The node hosting it (0 to `nodes - 1`; default 0).
    #[serde(default)]
    node: u32,
}

/// Ingress messages the simulator submits during the fault phase, at times
/// it chooses (whatever is left is submitted in the quiet phase).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub canister: String,
    pub method: String,
    /// Candid text of the arguments (default `()`).
    #[serde(default = "empty_args")]
    pub arg: String,
    /// How many such messages.
    #[serde(default = "one")]
    pub count: u32,
    /// Who sends them (`$name` or a principal; default the scenario's user).
    #[serde(default)]
    pub caller: Option<String>,
}

fn empty_args() -> String {
    "()".into()
}

fn one() -> u32 {
    1
}

/// An application invariant: a predicate over Candid queries (see
/// [`super::predicate`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariant {
    pub name: String,
    pub check: String,
    /// `always`: after every step; `end` (default): once every call has
    /// concluded.
    #[serde(default)]
    pub when: When,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    Always,
    #[default]
    End,
}

/// A canister of the scenario, its module read and hashed.
#[derive(Clone, Debug)]
pub struct CanisterSpec {
    pub name: String,
    pub wasm: PathBuf,
    pub module: std::sync::Arc<[u8]>,
    /// SHA-256 of the module (the IC's module hash), hex.
    pub module_hash: String,
    pub init: String,
    /// What O2 upgrades it to.
    pub upgrade: Option<UpgradeSpec>,
    /// The node hosting it.
    pub node: usize,
}

/// The module a canister is upgraded to, and the `post_upgrade` arguments.
#[derive(Clone, Debug)]
pub struct UpgradeSpec {
    pub wasm: PathBuf,
    pub module: std::sync::Arc<[u8]>,
    pub module_hash: String,
    /// Candid text of the `post_upgrade` arguments, typed by the new
    /// module's init arguments; `None`: no arguments (`DIDL` with none).
    pub arg: Option<String>,
}

/// A loaded scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub profile: Profile,
    /// Only these fault kinds (`None`: every kind the profile allows).
    pub faults: Option<Vec<super::faults::FaultKind>>,
    pub steps: u32,
    pub quiet_steps: u32,
    /// The replica runs in a state directory (N1 may fire).
    pub durable: bool,
    /// Nodes joined by simulated XNet links (N2 may fire when several).
    pub nodes: usize,
    pub canisters: Vec<CanisterSpec>,
    pub workload: Vec<Workload>,
    pub invariants: Vec<Invariant>,
    /// BLAKE3 of the scenario file, hex.
    pub digest: String,
}

impl Scenario {
    /// Reads a scenario file and the modules it names.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Scenario(format!("{}: {e}", path.display())))?;
        let file: ScenarioFile =
            toml::from_str(&text).map_err(|e| SimError::Scenario(format!("{}: {}", path.display(), one_line(&e.to_string()))))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if file.canisters.is_empty() {
            return Err(SimError::Scenario(format!("{}: no [[canister]]", path.display())));
        }
        if !(1..=16).contains(&file.nodes) {
            return Err(SimError::Scenario(format!("{}: nodes = {} (1 to 16)", path.display(), file.nodes)));
        }
        let mut canisters: Vec<CanisterSpec> = Vec::new();
        for c in file.canisters {
            if c.node >= file.nodes {
                return Err(SimError::Scenario(format!("canister {:?}: node {} (the scenario has {} nodes, from 0)", c.name, c.node, file.nodes)));
            }
            if canisters.iter().any(|o| o.name == c.name) {
                return Err(SimError::Scenario(format!("{}: two canisters are called {:?}", path.display(), c.name)));
            }
            let read = |file: &Path| -> Result<(PathBuf, std::sync::Arc<[u8]>, String), SimError> {
                let wasm = dir.join(file);
                let module: std::sync::Arc<[u8]> =
                    std::fs::read(&wasm).map_err(|e| SimError::Scenario(format!("canister {:?}: {}: {e}", c.name, wasm.display())))?.into();
                let module_hash = hex::encode(Sha256::digest(&module));
                Ok((wasm, module, module_hash))
            };
            let (wasm, module, module_hash) = read(&c.wasm)?;
            let upgrade = match &c.upgrade {
                Some(file) => {
                    let (wasm, module, module_hash) = read(file)?;
                    Some(UpgradeSpec { wasm, module, module_hash, arg: c.upgrade_arg.clone() })
                }
                None if c.upgrade_arg.is_some() => {
                    return Err(SimError::Scenario(format!("canister {:?}: upgrade_arg without an upgrade module", c.name)));
                }
                None => None,
            };
            canisters.push(CanisterSpec { name: c.name, wasm, module, module_hash, init: c.init.unwrap_or_else(empty_args), upgrade, node: c.node as usize });
        }
        let names: Vec<&str> = canisters.iter().map(|c| c.name.as_str()).collect();
        for w in &file.workload {
            if !names.contains(&w.canister.as_str()) {
                return Err(SimError::Scenario(format!("workload calls {:?}, which is no canister of the scenario", w.canister)));
            }
        }
        for inv in &file.invariants {
            super::predicate::Predicate::parse(&inv.check).map_err(|e| SimError::Scenario(format!("invariant {:?}: {e}", inv.name)))?;
        }
        let faults = match &file.faults {
            Some(list) => Some(super::rounds::parse_kinds(&list.join(",")).map_err(|e| SimError::Scenario(format!("{}: {e}", path.display())))?),
            None => None,
        };
        let name = file.name.unwrap_or_else(|| path.file_stem().map_or("scenario".into(), |s| s.to_string_lossy().into_owned()));
        Ok(Self {
            path: path.to_path_buf(),
            name,
            profile: file.profile,
            faults,
            steps: file.steps,
            quiet_steps: file.quiet_steps,
            durable: file.durable,
            nodes: file.nodes as usize,
            canisters,
            workload: file.workload,
            invariants: file.invariants,
            digest: blake3::hash(text.as_bytes()).to_hex().to_string(),
        })
    }

    /// The module hashes by canister name, and `name (upgrade)` for the
    /// module O2 upgrades it to (what an artifact records).
    pub fn module_hashes(&self) -> BTreeMap<String, String> {
        let mut hashes = BTreeMap::new();
        for c in &self.canisters {
            hashes.insert(c.name.clone(), c.module_hash.clone());
            if let Some(u) = &c.upgrade {
                hashes.insert(format!("{} (upgrade)", c.name), u.module_hash.clone());
            }
        }
        hashes
    }

    /// The fault kinds a run may draw from: those the scenario names, or
    /// every kind; never O2 when no canister names a module to upgrade to,
    /// never N1 without a state directory, never N2 on one node.
    pub fn fault_kinds(&self) -> Vec<super::faults::FaultKind> {
        use super::faults::FaultKind;
        let upgradable = self.canisters.iter().any(|c| c.upgrade.is_some());
        self.faults
            .as_deref()
            .unwrap_or(&FaultKind::ALL)
            .iter()
            .copied()
            .filter(|k| match k {
                FaultKind::Upgrade => upgradable,
                FaultKind::Crash => self.durable,
                FaultKind::Link => self.nodes > 1,
                _ => true,
            })
            .collect()
    }
}

/// The principal a `$name` stands for: a canister's id, else a user
/// identity derived from the name.
pub fn resolve_name(name: &str, ids: &BTreeMap<String, Principal>) -> Principal {
    ids.get(name).copied().unwrap_or_else(|| Principal::self_authenticating(format!("ww-sim-user:{name}")))
}

/// Candid text with every `$name` replaced by its principal's text.
pub fn substitute(text: &str, ids: &BTreeMap<String, Principal>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut name = String::new();
        while let Some((_, n)) = chars.peek() {
            if n.is_ascii_alphanumeric() || *n == '_' || *n == '-' {
                name.push(*n);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&resolve_name(&name, ids).to_text());
        }
    }
    out
}
