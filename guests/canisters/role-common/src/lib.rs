//! `role-common`: what every non-root role canister of a Canic-style
//! deployment shares (root, the control plane, installs them all with the
//! same contract; `wasm_store` is the data plane).
//!
//! # The contract every role implements
//!
//! ```candid
//! type InitArgs = record { role : text; root : principal; parent : principal; version : text };
//! type CanicEnv = record {
//!   role : text; root : principal; parent : principal; version : text;
//!   installed_at : nat64; upgrades : nat32;
//! };
//! service : (InitArgs) -> {
//!   canic_env : () -> (CanicEnv) query;
//!   canic_ready : () -> (bool) query;
//! }
//! ```
//!
//! - `#[init]` and `#[post_upgrade]` take [`InitArgs`] and pass it to
//!   [`init`] / [`post_upgrade`], which keep the environment in stable
//!   memory ([`ENV_MEMORY_ID`], "env"): `installed_at` is the replica time
//!   at init; each upgrade takes the new `version`, keeps `role`, `root`,
//!   `parent` and `installed_at`, and counts itself in `upgrades`.
//! - [`canic_endpoints!`] declares the two queries.
//!
//! A role crate therefore looks like:
//!
//! ```ignore
//! use role_common::InitArgs;
//! use ww_cdk::{init, post_upgrade};
//!
//! #[init]
//! fn init(args: InitArgs) {
//!     role_common::init(args);
//! }
//!
//! #[post_upgrade]
//! fn post_upgrade(args: InitArgs) {
//!     role_common::post_upgrade(args);
//! }
//!
//! role_common::canic_endpoints!();
//! ww_cdk::export_canister!();
//! ww_cdk::export_candid!();
//! ```
//!
//! # Stable memory
//!
//! All durable state lives in stable memory, in the virtual memories of the
//! one [`MemoryManager`](ww_cdk::ic_stable_structures::memory_manager::MemoryManager)
//! per canister ([`memory`]): ids 0 to 12 are the role's own, 13 is the
//! environment. Nothing durable is kept on the heap, so no role needs a
//! `#[pre_upgrade]`.

mod env;
pub mod hash;
mod memory;
mod storable;

pub use env::{CanicEnv, InitArgs, canic_env, env, init, post_upgrade, ready};
pub use memory::{ENV_MEMORY_ID, Memory, memory};
pub use storable::Candid;

use ww_cdk::{Principal, api};

/// Whether `who` may administer this canister: a controller, the root or
/// the parent recorded at install.
pub fn is_admin(who: &Principal) -> bool {
    api::is_controller(who) || env().is_some_and(|e| e.root == *who || e.parent == *who)
}

/// `Ok` if the caller may administer this canister (see [`is_admin`]).
pub fn require_admin() -> Result<(), String> {
    let caller = api::msg_caller();
    if is_admin(&caller) {
        Ok(())
    } else {
        Err(format!(
            "{caller} is not allowed: only controllers, the root and the parent may do this"
        ))
    }
}

/// `Ok` unless the caller is the anonymous principal (for methods that keep
/// per-caller state).
pub fn require_authenticated() -> Result<Principal, String> {
    let caller = api::msg_caller();
    if caller == Principal::anonymous() {
        Err("the anonymous principal cannot do this".to_owned())
    } else {
        Ok(caller)
    }
}

/// Checks a caller-supplied text: 1 to `max` bytes, no control characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if text.len() > max {
        return Err(format!(
            "{what} is {} bytes long; the limit is {max}",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} contains control characters"));
    }
    Ok(())
}

/// Declares the contract's queries in the role crate:
/// `canic_env : () -> (CanicEnv) query` and `canic_ready : () -> (bool) query`.
/// Use it once, at the crate root (it expands to `#[ww_cdk::query]`
/// functions named `canic_env` and `canic_ready`).
#[macro_export]
macro_rules! canic_endpoints {
    () => {
        /// The environment root installed this canister with, the install
        /// time and the number of upgrades since.
        #[::ww_cdk::query]
        fn canic_env() -> $crate::CanicEnv {
            $crate::canic_env()
        }

        /// True once `init` has run.
        #[::ww_cdk::query]
        fn canic_ready() -> bool {
            $crate::ready()
        }
    };
}
