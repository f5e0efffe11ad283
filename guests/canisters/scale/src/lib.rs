//! The `scale` role: a worker of a horizontally scaled pool. It accepts jobs
//! (from its administrators: controllers, the root, its parent `scale_hub`),
//! "processes" each (a checksum of the payload), and counts them by kind.
//!
//! Stable memory: the latest jobs (memory 0, id -> [`Job`], at most 1000),
//! the count per kind (memory 1) and the totals (memory 2), besides the
//! common environment (memory 13).
//!
//! The Candid interface is `scale.did`, next to `Cargo.toml` (checked against
//! this code by `tests/candid.rs`).

use role_common::{Candid, InitArgs, Memory, hash, memory};
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::{StableBTreeMap, StableCell};
use ww_cdk::{CandidType, Deserialize, Principal, api, init, post_upgrade, query, update};

/// The largest payload, in bytes.
const MAX_PAYLOAD: usize = 256 * 1024;
/// The longest job kind, in bytes.
const MAX_KIND: usize = 64;
/// The most distinct job kinds counted.
const MAX_KINDS: u64 = 256;
/// The most jobs kept; older ones are dropped first (the counts stay).
const MAX_RETAINED: u64 = 1000;

/// A job, as submitted.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct JobRequest {
    /// What kind of work (counted per kind).
    pub kind: String,
    /// The input.
    pub payload: ByteBuf,
}

/// What `submit_job` returns.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct JobReceipt {
    /// The job's id on this worker.
    pub id: u64,
    /// The result: FNV-1a of the payload.
    pub checksum: u64,
}

/// A job, as kept.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Job {
    pub id: u64,
    pub kind: String,
    /// Payload size in bytes.
    pub size: u64,
    pub checksum: u64,
    pub submitted_by: Principal,
    /// Replica time, nanoseconds.
    pub submitted_at: u64,
}

/// One job kind and how many jobs of it were accepted.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct KindCount {
    pub kind: String,
    pub count: u64,
}

/// What `stats` returns.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct WorkerStats {
    /// Jobs accepted since install.
    pub accepted: u64,
    /// Payload bytes accepted since install.
    pub bytes: u64,
    /// Jobs still kept (see `job`).
    pub retained: u64,
    /// Accepted jobs per kind.
    pub by_kind: Vec<KindCount>,
}

/// The running totals (memory 2).
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
struct Totals {
    accepted: u64,
    bytes: u64,
}

thread_local! {
    static JOBS: RefCell<StableBTreeMap<u64, Candid<Job>, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(0)));
    static KINDS: RefCell<StableBTreeMap<String, u64, Memory>> =
        RefCell::new(StableBTreeMap::init(memory(1)));
    static TOTALS: RefCell<StableCell<Candid<Totals>, Memory>> =
        RefCell::new(StableCell::init(memory(2), Candid::default()));
}

#[init]
fn init(args: InitArgs) {
    role_common::init(args);
}

#[post_upgrade]
fn post_upgrade(args: InitArgs) {
    role_common::post_upgrade(args);
}

/// Accepts a job (administrators only): checks it, computes its checksum,
/// counts it and keeps its record.
#[update]
fn submit_job(request: JobRequest) -> Result<JobReceipt, String> {
    role_common::require_admin()?;
    let JobRequest { kind, payload } = request;
    role_common::check_text("the job kind", &kind, MAX_KIND)?;
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "the payload is {} bytes; the limit is {MAX_PAYLOAD}",
            payload.len()
        ));
    }
    let known_kind = KINDS.with(|k| k.borrow().contains_key(&kind));
    if !known_kind && KINDS.with(|k| k.borrow().len()) >= MAX_KINDS {
        return Err(format!("this worker already counts {MAX_KINDS} job kinds"));
    }

    let totals = TOTALS.with(|t| {
        let mut t = t.borrow_mut();
        let totals = Totals {
            accepted: t.get().0.accepted.saturating_add(1),
            bytes: t.get().0.bytes.saturating_add(payload.len() as u64),
        };
        t.set(Candid(totals.clone()));
        totals
    });
    KINDS.with(|k| {
        let mut k = k.borrow_mut();
        let count = k.get(&kind).unwrap_or(0).saturating_add(1);
        k.insert(kind.clone(), count);
    });
    let id = totals.accepted;
    let checksum = hash::fnv1a64(&payload);
    let job = Job {
        id,
        kind,
        size: payload.len() as u64,
        checksum,
        submitted_by: api::msg_caller(),
        submitted_at: api::time(),
    };
    JOBS.with(|jobs| {
        let mut jobs = jobs.borrow_mut();
        jobs.insert(id, Candid(job));
        while jobs.len() > MAX_RETAINED {
            jobs.pop_first();
        }
    });
    Ok(JobReceipt { id, checksum })
}

/// The job `id`, if it is still kept.
#[query]
fn job(id: u64) -> Option<Job> {
    JOBS.with(|jobs| jobs.borrow().get(&id).map(|c| c.0))
}

/// Totals and counts per kind.
#[query]
fn stats() -> WorkerStats {
    let totals = TOTALS.with(|t| t.borrow().get().0.clone());
    WorkerStats {
        accepted: totals.accepted,
        bytes: totals.bytes,
        retained: JOBS.with(|jobs| jobs.borrow().len()),
        by_kind: KINDS.with(|k| {
            k.borrow()
                .iter()
                .map(|e| {
                    let (kind, count) = e.into_pair();
                    KindCount { kind, count }
                })
                .collect()
        }),
    }
}

role_common::canic_endpoints!();
ww_cdk::export_canister!();
ww_cdk::export_candid!();
