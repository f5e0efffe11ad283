//! Canister settings (`canister_settings` in the IC's `ic.did`): what
//! `create_canister` and `update_settings` set and `canister_status`
//! reports back.
//!
//! [`Settings`] is a canister's definite settings, kept by the replica.
//! [`Settings::apply`] validates every field of a partial update first and
//! changes nothing if one is out of range (as the IC does); a field left out
//! is left unchanged. The controllers live in the canister's slot (the
//! scheduler checks them on every management call) and are validated here.
//!
//! ww stores and reports every setting; it does not yet enforce the ones that
//! depend on cycle charging (freezing threshold, reserved cycles) or memory
//! allocation.

use candid::{CandidType, Deserialize, Nat, Principal};

use super::{ErrorCode, Reject};

/// Most controllers a canister may have.
pub const MAX_CONTROLLERS: usize = 10;
/// Most principals in `log_visibility = allowed_viewers`.
pub const MAX_ALLOWED_VIEWERS: usize = 10;
/// Most environment variables, and the longest name and value (bytes).
pub const MAX_ENV_VARS: usize = 20;
pub const MAX_ENV_VAR_LEN: usize = 128;
/// Upper bound of `memory_allocation`, `wasm_memory_limit` and
/// `wasm_memory_threshold` (2^48 bytes).
const MAX_MEMORY_SETTING: u64 = 1 << 48;

/// Who may see a canister's logs (`log_visibility`), snapshots or status:
/// the IC's one `variant { controllers; public; allowed_viewers }`.
#[derive(CandidType, Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub enum Visibility {
    #[default]
    #[serde(rename = "controllers")]
    Controllers,
    #[serde(rename = "public")]
    Public,
    #[serde(rename = "allowed_viewers")]
    AllowedViewers(Vec<Principal>),
}

/// Who may read a canister's logs.
pub type LogVisibility = Visibility;

/// One environment variable.
#[derive(CandidType, Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentVariable {
    pub name: String,
    pub value: String,
}

/// `canister_settings`: a partial update (absent fields stay as they are).
#[derive(CandidType, Deserialize, Default, Clone, Debug)]
pub struct CanisterSettings {
    pub controllers: Option<Vec<Principal>>,
    pub compute_allocation: Option<Nat>,
    pub memory_allocation: Option<Nat>,
    pub freezing_threshold: Option<Nat>,
    pub reserved_cycles_limit: Option<Nat>,
    pub log_visibility: Option<LogVisibility>,
    pub log_memory_limit: Option<Nat>,
    pub snapshot_visibility: Option<Visibility>,
    pub status_visibility: Option<Visibility>,
    pub minimum_incoming_canister_call_cycles: Option<Nat>,
    pub wasm_memory_limit: Option<Nat>,
    pub wasm_memory_threshold: Option<Nat>,
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
}

/// `definite_canister_settings`, as `canister_status` reports them (every
/// field of the IC's current record, so clients built against it decode it).
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct DefiniteCanisterSettings {
    pub controllers: Vec<Principal>,
    pub compute_allocation: Nat,
    pub memory_allocation: Nat,
    pub freezing_threshold: Nat,
    pub reserved_cycles_limit: Nat,
    pub minimum_incoming_canister_call_cycles: Nat,
    pub log_visibility: LogVisibility,
    pub log_memory_limit: Nat,
    pub snapshot_visibility: Visibility,
    pub status_visibility: Visibility,
    pub wasm_memory_limit: Nat,
    pub wasm_memory_threshold: Nat,
    pub environment_variables: Vec<EnvironmentVariable>,
}

/// A canister's settings besides its controllers; IC defaults.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub compute_allocation: u64,
    pub memory_allocation: u64,
    pub freezing_threshold: u64,
    pub reserved_cycles_limit: u64,
    pub log_visibility: LogVisibility,
    /// 0 (the default, as PocketIC reports it) means the subnet's log
    /// window ([`super::logs::LOG_BUFFER_BYTES`]).
    pub log_memory_limit: u64,
    /// Who may list the canister's snapshots.
    pub snapshot_visibility: Visibility,
    /// Who may read `canister_status`.
    pub status_visibility: Visibility,
    pub minimum_incoming_canister_call_cycles: u128,
    pub wasm_memory_limit: u64,
    pub wasm_memory_threshold: u64,
    pub environment_variables: Vec<EnvironmentVariable>,
    /// The same, as `ic0.env_var_*` sees them (sorted by name); kept with
    /// them so an execution gets them without copying.
    #[serde(skip)]
    env_vars: std::sync::Arc<Vec<(String, String)>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            compute_allocation: 0,
            memory_allocation: 0,
            freezing_threshold: 2_592_000,
            reserved_cycles_limit: 5_000_000_000_000,
            log_visibility: LogVisibility::Controllers,
            log_memory_limit: 0,
            snapshot_visibility: Visibility::Controllers,
            status_visibility: Visibility::Controllers,
            minimum_incoming_canister_call_cycles: 0,
            wasm_memory_limit: 3 << 30,
            wasm_memory_threshold: 0,
            environment_variables: Vec::new(),
            env_vars: Default::default(),
        }
    }
}

fn invalid(message: String) -> Reject {
    Reject::system(ErrorCode::InvalidManagementPayload, message)
}

/// `n` as a u64 no larger than `max`.
fn bounded(field: &str, n: &Nat, max: u64) -> Result<u64, Reject> {
    match u64::try_from(&n.0) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(invalid(format!("Invalid settings: {field} {n} must be at most {max}"))),
    }
}

/// A visibility setting, checked: at most [`MAX_ALLOWED_VIEWERS`] viewers.
fn checked_visibility(field: &str, v: &Visibility) -> Result<Visibility, Reject> {
    if let Visibility::AllowedViewers(viewers) = v
        && viewers.len() > MAX_ALLOWED_VIEWERS
    {
        return Err(invalid(format!(
            "Invalid settings: {field}: at most {MAX_ALLOWED_VIEWERS} allowed viewers, {} given",
            viewers.len()
        )));
    }
    Ok(v.clone())
}

impl Visibility {
    /// Whether `caller` may see what this visibility guards, given the
    /// canister's `controllers` (who always may).
    pub fn allows(&self, caller: &Principal, controllers: &[Principal]) -> bool {
        controllers.contains(caller)
            || match self {
                Visibility::Controllers => false,
                Visibility::Public => true,
                Visibility::AllowedViewers(viewers) => viewers.contains(caller),
            }
    }
}

/// A controller list as the IC keeps it: a set, in principal order (by
/// length, then bytes), each once. `canister_status`, `canister_info` and
/// the change history report it so.
pub fn controller_set(mut controllers: Vec<Principal>) -> Vec<Principal> {
    controllers.sort();
    controllers.dedup();
    controllers
}

/// Checks a new controller list.
pub fn check_controllers(controllers: &[Principal]) -> Result<(), Reject> {
    if controllers.len() > MAX_CONTROLLERS {
        return Err(invalid(format!(
            "Invalid settings: at most {MAX_CONTROLLERS} controllers are allowed, {} given",
            controllers.len()
        )));
    }
    Ok(())
}

impl Settings {
    /// The environment variables as `ic0.env_var_*` sees them: sorted by name.
    pub fn env_vars(&self) -> std::sync::Arc<Vec<(String, String)>> {
        self.env_vars.clone()
    }

    /// Validates every field of `update`, then applies them all; on an
    /// error nothing changes.
    pub fn apply(&mut self, update: &CanisterSettings) -> Result<(), Reject> {
        if let Some(c) = &update.controllers {
            check_controllers(c)?;
        }
        let mut next = self.clone();
        if let Some(n) = &update.compute_allocation {
            next.compute_allocation = bounded("compute_allocation", n, 100)?;
        }
        if let Some(n) = &update.memory_allocation {
            next.memory_allocation = bounded("memory_allocation", n, MAX_MEMORY_SETTING)?;
        }
        if let Some(n) = &update.freezing_threshold {
            next.freezing_threshold = bounded("freezing_threshold", n, u64::MAX)?;
        }
        if let Some(n) = &update.reserved_cycles_limit {
            next.reserved_cycles_limit = bounded("reserved_cycles_limit", n, u64::MAX)?;
        }
        if let Some(v) = &update.log_visibility {
            next.log_visibility = checked_visibility("log_visibility", v)?;
        }
        if let Some(n) = &update.log_memory_limit {
            next.log_memory_limit = bounded("log_memory_limit", n, MAX_MEMORY_SETTING)?;
        }
        if let Some(v) = &update.snapshot_visibility {
            next.snapshot_visibility = checked_visibility("snapshot_visibility", v)?;
        }
        if let Some(v) = &update.status_visibility {
            next.status_visibility = checked_visibility("status_visibility", v)?;
        }
        if let Some(n) = &update.minimum_incoming_canister_call_cycles {
            next.minimum_incoming_canister_call_cycles = u128::try_from(&n.0)
                .map_err(|_| invalid(format!("Invalid settings: minimum_incoming_canister_call_cycles {n} must be at most {}", u128::MAX)))?;
        }
        if let Some(n) = &update.wasm_memory_limit {
            next.wasm_memory_limit = bounded("wasm_memory_limit", n, MAX_MEMORY_SETTING)?;
        }
        if let Some(n) = &update.wasm_memory_threshold {
            next.wasm_memory_threshold = bounded("wasm_memory_threshold", n, MAX_MEMORY_SETTING)?;
        }
        if let Some(vars) = &update.environment_variables {
            if vars.len() > MAX_ENV_VARS {
                return Err(invalid(format!("Invalid settings: at most {MAX_ENV_VARS} environment variables, {} given", vars.len())));
            }
            let mut names = std::collections::BTreeSet::new();
            for v in vars {
                if v.name.len() > MAX_ENV_VAR_LEN || v.value.len() > MAX_ENV_VAR_LEN {
                    return Err(invalid(format!(
                        "Invalid settings: environment variable {:?}: names and values are at most {MAX_ENV_VAR_LEN} bytes",
                        v.name
                    )));
                }
                if !names.insert(v.name.as_str()) {
                    return Err(invalid(format!("Invalid settings: environment variable {:?} is given twice", v.name)));
                }
            }
            next.environment_variables = vars.clone();
            next.sort_env_vars();
        }
        *self = next;
        Ok(())
    }

    /// Settings read back from a state directory (which keeps the
    /// variables once).
    pub fn restored(mut self) -> Self {
        self.sort_env_vars();
        self
    }

    fn sort_env_vars(&mut self) {
        let mut sorted: Vec<(String, String)> = self.environment_variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
        sorted.sort();
        self.env_vars = std::sync::Arc::new(sorted);
    }

    /// The heap limit executions that enforce it (updates, init,
    /// post_upgrade) apply; 0 means none.
    pub fn heap_limit(&self) -> Option<u64> {
        (self.wasm_memory_limit != 0).then_some(self.wasm_memory_limit)
    }

    /// The definite settings with `controllers`.
    pub fn definite(&self, controllers: Vec<Principal>) -> DefiniteCanisterSettings {
        DefiniteCanisterSettings {
            controllers,
            compute_allocation: self.compute_allocation.into(),
            memory_allocation: self.memory_allocation.into(),
            freezing_threshold: self.freezing_threshold.into(),
            reserved_cycles_limit: self.reserved_cycles_limit.into(),
            minimum_incoming_canister_call_cycles: self.minimum_incoming_canister_call_cycles.into(),
            log_visibility: self.log_visibility.clone(),
            log_memory_limit: self.log_memory_limit.into(),
            snapshot_visibility: self.snapshot_visibility.clone(),
            status_visibility: self.status_visibility.clone(),
            wasm_memory_limit: self.wasm_memory_limit.into(),
            wasm_memory_threshold: self.wasm_memory_threshold.into(),
            environment_variables: self.environment_variables.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_field_changes_nothing() {
        let mut s = Settings::default();
        let update = CanisterSettings {
            freezing_threshold: Some(7u64.into()),
            compute_allocation: Some(101u64.into()),
            ..CanisterSettings::default()
        };
        let err = s.apply(&update).unwrap_err();
        assert!(err.message.contains("compute_allocation"), "{err}");
        assert_eq!(s, Settings::default());
        let update = CanisterSettings { freezing_threshold: Some(7u64.into()), ..CanisterSettings::default() };
        s.apply(&update).unwrap();
        assert_eq!(s.freezing_threshold, 7);
        assert_eq!(s.compute_allocation, 0, "fields left out stay");
    }

    #[test]
    fn limits() {
        let mut s = Settings::default();
        let many = vec![Principal::anonymous(); 11];
        assert!(s.apply(&CanisterSettings { controllers: Some(many.clone()), ..Default::default() }).is_err());
        let viewers = CanisterSettings { log_visibility: Some(LogVisibility::AllowedViewers(many)), ..Default::default() };
        assert!(s.apply(&viewers).is_err());
        let var = |n: &str| EnvironmentVariable { name: n.into(), value: "v".into() };
        let twice = CanisterSettings { environment_variables: Some(vec![var("A"), var("A")]), ..Default::default() };
        assert!(s.apply(&twice).is_err());
        let big = CanisterSettings { wasm_memory_limit: Some(Nat::from(1u64 << 49)), ..Default::default() };
        assert!(s.apply(&big).is_err());
        assert_eq!(s, Settings::default());
    }
}
