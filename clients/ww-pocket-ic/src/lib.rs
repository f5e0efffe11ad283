//! Scripted faults for `pocket-ic` tests run against ww's PocketIC server
//! (`POCKET_IC_BIN` pointing at the `ww` binary, or its `pocket-ic`
//! symlink). Each fault is one the IC interface specification allows a
//! replica to produce, injected when the test says, so a test can check
//! how its canisters handle the failures the IC may hand them:
//!
//! - [`Faults::reject_calls`]: the next `count` requests from one canister
//!   to another are rejected before they run (`SYS_TRANSIENT` or
//!   `SYS_FATAL`: "spontaneous request rejection"); the callee never sees
//!   them.
//! - [`Faults::fail_call_perform`]: in the next `count` executions of a
//!   canister's method every `ic0.call_perform` fails synchronously
//!   (ic-cdk: `CallPerformFailed`); no callback runs for those calls.
//! - [`Faults::instruction_limit`]: the next `count` executions of a
//!   canister's method trap on the instruction limit (a trapped callback's
//!   cleanup still runs, as on the IC).
//!
//! With `method: None` any execution counts, heartbeats, timers and
//! callbacks included; with a method, only that method's own first
//! execution.
//! - [`Faults::expire_calls`]: every bounded-wait call from one canister
//!   to another still waiting expires now with `SYS_UNKNOWN`, wherever it
//!   is; a callee that already replied keeps its changes.
//!
//! ```no_run
//! # fn demo(pic: &pocket_ic::PocketIc, wallet: candid::Principal, ledger: candid::Principal) {
//! use ww_pocket_ic::{Faults, Reject};
//! let faults = Faults::new(pic.get_server_url().as_str(), pic.instance_id());
//! faults.reject_calls(wallet, ledger, Some("transfer"), Reject::SysTransient, 1).unwrap();
//! // ... the wallet's next transfer call is rejected before the ledger runs it
//! # }
//! ```
//!
//! The requests are blocking (`reqwest::blocking`): call them from test
//! code, not from inside an async runtime. Against the real PocketIC
//! server every call fails with [`FaultError::Refused`] (the route is
//! ww's own).

use candid::Principal;
use serde::Serialize;

/// The reject codes a request may be spontaneously rejected with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Reject {
    SysTransient,
    SysFatal,
}

/// Why a fault was not injected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    #[error("the PocketIC server at {url} could not be reached: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the PocketIC server refused the fault ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the PocketIC server's answer is not a count: {0}")]
    BadAnswer(String),
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Fault<'a> {
    RejectCalls { caller: Principal, callee: Principal, method: Option<&'a str>, code: Reject, count: u32 },
    FailCallPerform { canister: Principal, method: Option<&'a str>, count: u32 },
    InstructionLimit { canister: Principal, method: Option<&'a str>, count: u32 },
    ExpireCalls { caller: Principal, callee: Principal },
}

/// The faults of one PocketIC instance.
pub struct Faults {
    url: String,
    client: reqwest::blocking::Client,
}

impl Faults {
    /// For instance `instance_id` of the server at `server_url`
    /// (`PocketIc::get_server_url`, `PocketIc::instance_id`).
    pub fn new(server_url: &str, instance_id: usize) -> Self {
        let base = server_url.trim_end_matches('/');
        Self { url: format!("{base}/instances/{instance_id}/ww/inject_fault"), client: reqwest::blocking::Client::new() }
    }

    /// Rejects the next `count` requests from `caller` to `callee` (to
    /// `method` only, if given) before they execute.
    pub fn reject_calls(&self, caller: Principal, callee: Principal, method: Option<&str>, code: Reject, count: u32) -> Result<(), FaultError> {
        self.inject(&Fault::RejectCalls { caller, callee, method, code, count }).map(drop)
    }

    /// Fails every `ic0.call_perform` in the next `count` executions of
    /// `canister` (of its `method` only, if given).
    pub fn fail_call_perform(&self, canister: Principal, method: Option<&str>, count: u32) -> Result<(), FaultError> {
        self.inject(&Fault::FailCallPerform { canister, method, count }).map(drop)
    }

    /// Makes the next `count` executions of `canister` (of its `method`
    /// only, if given) trap on the instruction limit.
    pub fn instruction_limit(&self, canister: Principal, method: Option<&str>, count: u32) -> Result<(), FaultError> {
        self.inject(&Fault::InstructionLimit { canister, method, count }).map(drop)
    }

    /// Expires every bounded-wait call from `caller` to `callee` still
    /// waiting; how many expired.
    pub fn expire_calls(&self, caller: Principal, callee: Principal) -> Result<u32, FaultError> {
        self.inject(&Fault::ExpireCalls { caller, callee })
    }

    fn inject(&self, fault: &Fault<'_>) -> Result<u32, FaultError> {
        let response = self.client.post(&self.url).json(fault).send().map_err(|source| FaultError::Unreachable { url: self.url.clone(), source })?;
        let status = response.status();
        let body = response.text().map_err(|source| FaultError::Unreachable { url: self.url.clone(), source })?;
        if !status.is_success() {
            return Err(FaultError::Refused { status: status.as_u16(), message: body.trim().to_string() });
        }
        serde_json::from_str(&body).map_err(|e| FaultError::BadAnswer(format!("{e}: {body}")))
    }
}
