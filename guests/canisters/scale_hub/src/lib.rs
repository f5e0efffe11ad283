//! The `scale_hub` role: the registry of a pool's `scale` workers, and the
//! dispatcher that spreads jobs over them by weighted round robin.
//!
//! Stable memory: the workers (memory 0, principal -> [`Worker`]) and the
//! dispatch cursor (memory 1), besides the common environment (memory 13).
//! A worker accepts jobs from its parent, so root installs workers with
//! this hub as their parent.
//!
//! The Candid interface is `scale_hub.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, memory};
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use ww_cdk::call::Call;
use ww_cdk::ic_stable_structures::{StableBTreeMap, StableCell};
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The largest weight a worker may have.
const MAX_WEIGHT: u32 = 100;
/// The most workers in the pool.
const MAX_WORKERS: u64 = 500;

/// A registered worker.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Worker {
    pub id: Principal,
    /// Its share of the jobs, relative to the other workers' (1 to 100).
    pub weight: u32,
    /// Replica time of the registration, nanoseconds.
    pub registered_at: u64,
    /// Jobs it accepted through `dispatch`.
    pub dispatched: u64,
}

/// A job, as `scale.submit_job` takes it.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct JobRequest {
    pub kind: String,
    pub payload: ByteBuf,
}

/// `scale.submit_job`'s receipt.
#[derive(CandidType, Deserialize, Clone, Debug)]
struct JobReceipt {
    id: u64,
    checksum: u64,
}

/// What `dispatch` returns: where the job went.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Dispatched {
    pub worker: Principal,
    pub job_id: u64,
    pub checksum: u64,
}

thread_local! {
    static WORKERS: RefCell<StableBTreeMap<Principal, Candid<Worker>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    /// Dispatches so far: the round-robin position.
    static CURSOR: RefCell<StableCell<u64, Memory>> =
        RefCell::new(StableCell::init(memory(1), 0));
}

#[init]
fn init(args: InitArgs) {
    role_common::init(args);
}

#[post_upgrade]
fn post_upgrade(args: InitArgs) {
    role_common::post_upgrade(args);
}

/// Adds a worker, or changes its weight (administrators only).
#[update]
fn register_worker(id: Principal, weight: u32) -> Result<(), String> {
    role_common::require_admin()?;
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(format!(
            "the weight is {weight}; it must be 1 to {MAX_WEIGHT}"
        ));
    }
    if id == Principal::anonymous() || id == Principal::management_canister() {
        return Err(format!("{id} cannot be a worker"));
    }
    WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        let worker = match w.get(&id) {
            Some(Candid(old)) => Worker { weight, ..old },
            None if w.len() >= MAX_WORKERS => {
                return Err(format!("the pool already has {MAX_WORKERS} workers"));
            }
            None => Worker {
                id,
                weight,
                registered_at: api::time(),
                dispatched: 0,
            },
        };
        w.insert(id, Candid(worker));
        Ok(())
    })
}

/// Removes a worker (administrators only); true if it was registered.
#[update]
fn remove_worker(id: Principal) -> Result<bool, String> {
    role_common::require_admin()?;
    Ok(WORKERS.with(|w| w.borrow_mut().remove(&id).is_some()))
}

/// The workers, by principal.
#[query]
fn workers() -> Vec<Worker> {
    WORKERS.with(|w| w.borrow().values().map(|c| c.0).collect())
}

/// The worker at round-robin position `cursor`: the workers, by principal,
/// each taking `weight` consecutive positions out of the total weight.
fn worker_at(cursor: u64) -> Option<Principal> {
    WORKERS.with(|w| {
        let w = w.borrow();
        let total: u64 = w.values().map(|c| u64::from(c.0.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut position = cursor % total;
        for Candid(worker) in w.values() {
            let weight = u64::from(worker.weight);
            if position < weight {
                return Some(worker.id);
            }
            position -= weight;
        }
        None
    })
}

/// The worker the next `dispatch` would pick.
#[query]
fn next_worker() -> Option<Principal> {
    worker_at(CURSOR.with(|c| *c.borrow().get()))
}

/// Sends a job to the next worker (administrators only) and returns where it
/// went and the worker's receipt. The round-robin position advances even if
/// the worker then fails, so a failing worker does not take every retry.
#[update]
async fn dispatch(job: JobRequest) -> Result<Dispatched, String> {
    role_common::require_admin()?;
    let cursor = CURSOR.with(|c| {
        let mut c = c.borrow_mut();
        let cursor = *c.get();
        c.set(cursor.wrapping_add(1));
        cursor
    });
    let worker = worker_at(cursor).ok_or("no worker is registered")?;
    let response = Call::unbounded_wait(worker, "submit_job")
        .with_arg(&job)
        .await
        .map_err(|e| format!("worker {worker}: {e}"))?;
    let receipt = response
        .candid::<Result<JobReceipt, String>>()
        .map_err(|e| format!("worker {worker} replied with something else: {e}"))?
        .map_err(|e| format!("worker {worker} refused the job: {e}"))?;
    WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        if let Some(Candid(mut entry)) = w.get(&worker) {
            entry.dispatched = entry.dispatched.saturating_add(1);
            w.insert(worker, Candid(entry));
        }
    });
    Ok(Dispatched {
        worker,
        job_id: receipt.id,
        checksum: receipt.checksum,
    })
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
