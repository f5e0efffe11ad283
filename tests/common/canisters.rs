//! Helpers for tests that run real canisters on a [`Replica`] without a
//! node: install a built guest, call it with Candid, and the probe
//! canister's result types.

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use ww::replica::{InstallMode, Replica, ReplicaConfig};

/// The caller the tests install and call as (a controller).
pub fn admin() -> Principal {
    Principal::self_authenticating(b"ww-test-admin")
}

/// A replica with default limits.
pub fn replica() -> Replica {
    super::canister_replica(ReplicaConfig::default())
}

/// A replica that charges nothing for messages, memory or creation
/// (`--cycles free`, PocketIC's Free schedule): for tests about cycles that
/// canisters move themselves (attached, accepted, refunded), which stay
/// real there.
pub fn free_replica() -> Replica {
    let mut config = ReplicaConfig::default();
    for subnet in &mut config.subnets {
        subnet.cost_schedule = ww::replica::cycles::CostSchedule::Free;
    }
    super::canister_replica(config)
}

/// The built guest `name`'s bytes.
pub fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(super::guest(name)).unwrap()
}

/// Creates a canister controlled by [`admin`] and installs guest `name`.
pub async fn install(r: &Replica, name: &str, arg: Vec<u8>) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = ww::replica::install::prepare_module(r, &id, &wasm(name)).expect("prepare");
    r.install(admin(), id, InstallMode::Install, m, arg).await.expect("install");
    id
}

/// An update call as [`admin`]; panics on a reject.
pub async fn update<T: CandidType + for<'de> Deserialize<'de>>(r: &Replica, id: Principal, method: &str, arg: Vec<u8>) -> T {
    let bytes = r.call(admin(), id, method, arg).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    Decode!(&bytes, T).unwrap()
}

/// A query call as [`admin`]; panics on a reject.
pub async fn query<T: CandidType + for<'de> Deserialize<'de>>(r: &Replica, id: Principal, method: &str, arg: Vec<u8>) -> T {
    let bytes = r.query(admin(), id, method, arg).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    Decode!(&bytes, T).unwrap()
}

/// Candid for `()`.
pub fn no_args() -> Vec<u8> {
    Encode!().unwrap()
}

/// Candid for `(null : opt nat64)`: the probe's and counter's "no init argument".
pub fn none_arg() -> Vec<u8> {
    Encode!(&Option::<u64>::None).unwrap()
}

/// A failed call, as the probe canister reports it.
#[derive(CandidType, Deserialize, Debug)]
pub struct CallError {
    pub code: u32,
    pub message: String,
}

/// The probe canister's `CallOutcome`.
#[derive(CandidType, Deserialize, Debug)]
pub enum CallOutcome {
    Ok(serde_bytes::ByteBuf),
    Err(CallError),
}
