//! ww as a PocketIC server: the `pocket-ic` client crate (13.x, and 16.x
//! with `WW_POCKET_IC_VERSION=16`) and PicJS can use the `ww` binary as
//! their server (`POCKET_IC_BIN`, or a `pocket-ic` symlink to `ww`), and
//! tests written against PocketIC run their canisters on ww's replica.
//!
//! Time is PocketIC's to the nanosecond, so suites may assert exact
//! timestamps:
//! - an instance's time starts at its initial time (PocketIC's genesis by
//!   default); rounds run only on `tick`, on `await_ingress_message` (until
//!   the message is done, at most 100) and in auto progress;
//! - a round runs at the time if `set_time` moved it since the last round,
//!   else 1 ns after the last round;
//! - `get_time` shows `set_time` at once; queries see the last round's time
//!   until the next round runs (at exactly the time set);
//!   `set_certified_time` is seen by queries at once, and the next round
//!   runs 1 ns after it;
//! - an awaited update takes one round, plus two for each call its canister
//!   makes to the management canister (the request runs in the next round,
//!   the response in the one after); calls between canisters run on within
//!   a round. So `create_canister` and `install_canister` take a round each.
//!
//! - [`wire`]: the protocol's JSON bodies and the reject conversions.
//! - [`server`]: the process protocol: command line, `--version`, port file,
//!   the HTTP listener, idle and hard TTLs, signals.
//! - [`instance`]: the state of one PocketIC instance (its subnets and
//!   replica).
//! - [`routes`]: the HTTP endpoints the client calls.
//! - [`snapshot_dir`]: canister snapshots to and from a directory (dfx's
//!   layout).
//! - [`gateway`]: each instance's IC HTTP interface (`/instances/<id>/api`)
//!   and HTTP gateways (`make_live`).

pub mod gateway;
pub mod instance;
pub mod routes;
pub mod server;
pub mod snapshot_dir;
pub mod wire;

/// Serves the PocketIC protocol as `args` say, until idle, past the hard
/// TTL, or SIGINT/SIGTERM.
pub async fn serve(args: server::ServerArgs) -> Result<(), server::ServerError> {
    let router = routes::router().map_err(|e| server::ServerError::Engine(e.to_string()))?;
    server::run(args, router, || {}).await
}
