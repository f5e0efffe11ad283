//! Children that create children: a hub asks root for a worker of its pool's
//! role (`scale_hub` for a `scale`, ...). Root creates the canister with the
//! children's controllers, installs the role's current release chunked from
//! its store, with the hub as the parent in its environment, and records it
//! in the registry under that parent; the next reconcile upgrades it like
//! every other registered canister.
//!
//! The endpoint rejects (it never replies with an error), so an intent the
//! hub attached to its call aborts and the pool slot is free again.

use candid::Principal;
use ww_cdk::{ManualReply, update};
use ww_template::storage;
use ww_template::types::{Error, ErrorCode, Result};

use crate::{BUSY, chunk_set_of, create_role, registry, state};

/// Which registered role may ask for which: each hub creates the workers of
/// its pool, and nothing else.
const CHILD_ROLES: &[(&str, &str)] = &[("scale_hub", "scale"), ("shard_hub", "shard"), ("user_hub", "user_shard")];

/// Creates a canister of `role` whose parent is the caller, and replies
/// with its principal. Callers: a canister root created whose role may
/// have children of `role` ([`CHILD_ROLES`]). Rejects while root is not
/// ready or a bootstrap or reconcile is running, and when the role has no
/// published release.
#[update(manual_reply = true)]
async fn canic_create_child(role: String) -> ManualReply<Principal> {
    match create_child(&role).await {
        Ok(pid) => ManualReply::one(pid),
        Err(e) => ManualReply::reject(format!("canic_create_child({role}): {e}")),
    }
}

async fn create_child(role: &str) -> Result<Principal> {
    let caller = ww_cdk::api::msg_caller();
    let parent = registry()
        .into_iter()
        .find(|r| r.pid == caller)
        .ok_or_else(|| Error::new(ErrorCode::Unauthorized, format!("{caller} is not a canister root created")))?;
    if !CHILD_ROLES.iter().any(|(p, c)| *p == parent.role && *c == role) {
        return Err(Error::new(
            ErrorCode::Unauthorized,
            format!("a {} may not create a {role} (hubs create the workers of their pool)", parent.role),
        ));
    }
    if !state().ready {
        return Err(Error::new(ErrorCode::BootstrapNotReady, "root has not finished its bootstrap"));
    }
    if BUSY.with(|b| b.get()) {
        return Err(Error::new(ErrorCode::Conflict, "a bootstrap or reconcile is running; retry when it is done"));
    }
    let (key, manifest) = storage::approved_for_role(role)?;
    let set = chunk_set_of(&key)?;
    create_role(role, caller, &key, &manifest, &set).await
}
