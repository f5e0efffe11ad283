//! The `scale_hub` role: the registry of a pool's `scale` workers, and the
//! dispatcher that spreads jobs over them by weighted round robin.
//!
//! The pool: `create_worker` asks root for a new `scale` canister with this
//! hub as its parent (root installs it from the wasm_store) and registers
//! it. The pool's maximum (`set_max_workers`, default 32 as in Canic's
//! scaling policy) bounds the workers `create_worker` ever makes: each
//! creation reserves one unit of the intent key [`POOL_KEY`] with the
//! maximum as its capacity, so concurrent `create_worker` calls that would
//! overshoot fail at once, before anything is created. Root's reply commits
//! the unit; its reject (or a lost continuation, after [`CREATE_TTL_SECS`])
//! frees it. Removing a worker does not give its unit back. Workers added
//! with `register_worker` (created elsewhere) are not counted.
//!
//! Stable memory: the workers (memory 0, principal -> [`Worker`]), the
//! dispatch cursor (memory 1) and the pool's maximum (memory 2), besides
//! the common environment (memory 13) and ww-cdk's intents (18-25).
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
use ww_cdk::intent::{self, IntentKey, IntentReservation};
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The largest weight a worker may have.
const MAX_WEIGHT: u32 = 100;
/// The most workers in the pool.
const MAX_WORKERS: u64 = 500;
/// The pool's maximum until `set_max_workers` changes it (Canic's
/// scaling policy default).
const DEFAULT_MAX_WORKERS: u32 = 32;
/// The intent key that counts the workers `create_worker` made.
const POOL_KEY: &str = "scale_hub:pool";
/// The role root creates for the pool.
const WORKER_ROLE: &str = "scale";
/// How long a creation's reservation may stay pending before the sweep
/// frees it (only a continuation lost to an upgrade waits this long).
const CREATE_TTL_SECS: u64 = 600;

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
    /// The most workers `create_worker` makes.
    static MAX_POOL: RefCell<StableCell<u32, Memory>> =
        RefCell::new(StableCell::init(memory(2), DEFAULT_MAX_WORKERS));
}

/// The pool as `pool` reports it.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct PoolStatus {
    /// The most workers `create_worker` makes.
    pub max_workers: u32,
    /// Workers it made.
    pub created: u64,
    /// Creations in flight.
    pub creating: u64,
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

/// Sets the pool's maximum (administrators only), 0 to 500. Lowering it
/// below the workers already made only stops further creations.
#[update]
fn set_max_workers(max: u32) -> Result<(), String> {
    role_common::require_admin()?;
    if u64::from(max) > MAX_WORKERS {
        return Err(format!("the maximum is {max}; it must be 0 to {MAX_WORKERS}"));
    }
    MAX_POOL.with(|m| m.borrow_mut().set(max));
    Ok(())
}

fn pool_key() -> IntentKey {
    IntentKey::try_new(POOL_KEY).unwrap_or_else(|e| api::trap(format!("the pool key: {e}")))
}

/// The pool's maximum, the workers made and the creations in flight.
#[query]
fn pool() -> PoolStatus {
    let totals = intent::totals(&pool_key());
    PoolStatus {
        max_workers: MAX_POOL.with(|m| *m.borrow().get()),
        created: totals.committed,
        creating: totals.pending_count,
    }
}

/// Makes a new worker (administrators only): root creates a `scale`
/// canister with this hub as its parent; the hub registers it with weight
/// 1 and returns it. Fails at once, creating nothing, when the pool's
/// maximum is reached counting the creations in flight.
#[update]
async fn create_worker() -> Result<Principal, String> {
    role_common::require_admin()?;
    let root = role_common::env().ok_or("the hub has no environment (not installed by root)")?.root;
    let max = MAX_POOL.with(|m| *m.borrow().get());
    let reservation = IntentReservation::new(pool_key(), 1).with_capacity(u64::from(max)).with_ttl_secs(CREATE_TTL_SECS);
    let response = Call::unbounded_wait(root, "canic_create_child")
        .with_intent(reservation)
        .with_arg(WORKER_ROLE)
        .await
        .map_err(|e| format!("creating a worker: {e}"))?;
    let id = response
        .candid::<Principal>()
        .map_err(|e| format!("root replied to canic_create_child with something else: {e}"))?;
    WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        let worker = Worker { id, weight: 1, registered_at: api::time(), dispatched: 0 };
        w.insert(id, Candid(worker));
    });
    Ok(id)
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
