//! The environment root installs a role with, kept in stable memory
//! (memory [`ENV_MEMORY_ID`](crate::ENV_MEMORY_ID)) so upgrades keep it.

use std::cell::RefCell;
use ww_cdk::ic_stable_structures::StableCell;
use ww_cdk::{CandidType, Deserialize, Principal, api};

use crate::memory::{ENV_MEMORY_ID, Memory, raw_memory};
use crate::storable::Candid;

/// The install and upgrade argument of every role:
/// `record { role : text; root : principal; parent : principal; version : text }`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InitArgs {
    /// The role this canister plays (`app`, `shard`, ...).
    pub role: String,
    /// The root canister of the deployment.
    pub root: Principal,
    /// The canister that asked root for this one (root itself for top-level roles).
    pub parent: Principal,
    /// The version of the code being installed.
    pub version: String,
}

/// What `canic_env` returns (and what stable memory keeps).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CanicEnv {
    /// The role, as given at install.
    pub role: String,
    /// The root, as given at install.
    pub root: Principal,
    /// The parent, as given at install.
    pub parent: Principal,
    /// The version of the running code (the latest install or upgrade).
    pub version: String,
    /// Replica time of the install, in nanoseconds since the epoch.
    pub installed_at: u64,
    /// How many upgrades (`post_upgrade` runs) since the install.
    pub upgrades: u32,
}

thread_local! {
    /// `None` until `init` (or a first `post_upgrade`) runs.
    static ENV: RefCell<StableCell<Candid<Option<CanicEnv>>, Memory>> =
        RefCell::new(StableCell::init(raw_memory(ENV_MEMORY_ID), Candid(None)));
}

fn store(env: CanicEnv) {
    ENV.with(|cell| cell.borrow_mut().set(Candid(Some(env))));
}

/// The stored environment, if `init` has run.
pub fn env() -> Option<CanicEnv> {
    ENV.with(|cell| cell.borrow().get().0.clone())
}

/// True once `init` has run.
pub fn ready() -> bool {
    env().is_some()
}

/// The stored environment; traps if `init` never ran (it always has by the
/// time a method can be called: a trapping `init` fails the install).
pub fn canic_env() -> CanicEnv {
    match env() {
        Some(env) => env,
        None => api::trap("canic_env: this canister was never initialized"),
    }
}

/// Call from `#[init]`: records the environment, the install time and zero upgrades.
pub fn init(args: InitArgs) {
    let InitArgs {
        role,
        root,
        parent,
        version,
    } = args;
    ww_cdk::println!("{role} {version}: installed (root {root}, parent {parent})");
    store(CanicEnv {
        role,
        root,
        parent,
        version,
        installed_at: api::time(),
        upgrades: 0,
    });
}

/// Call from `#[post_upgrade]`: takes the new version and counts the
/// upgrade; role, root, parent and install time stay as stored. Code
/// upgraded from a build that kept no environment starts one from `args`.
pub fn post_upgrade(args: InitArgs) {
    let env = match env() {
        Some(old) => {
            if old.role != args.role {
                ww_cdk::println!(
                    "{}: upgrade argument names role {:?}; keeping the installed role",
                    old.role,
                    args.role
                );
            }
            CanicEnv {
                version: args.version,
                upgrades: old.upgrades.saturating_add(1),
                ..old
            }
        }
        None => CanicEnv {
            role: args.role,
            root: args.root,
            parent: args.parent,
            version: args.version,
            installed_at: api::time(),
            upgrades: 1,
        },
    };
    ww_cdk::println!(
        "{} {}: upgraded (upgrade {})",
        env.role,
        env.version,
        env.upgrades
    );
    store(env);
}
