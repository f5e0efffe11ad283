//! ww as a PocketIC server: the `pocket-ic` client crate (13.x) can use the
//! `ww` binary as its server (`POCKET_IC_BIN`, or a `pocket-ic` symlink to
//! `ww`), and tests written against PocketIC run their canisters on ww's
//! replica.
//!
//! - [`wire`]: the protocol's JSON bodies and the reject conversions.
//! - [`server`]: the process protocol: command line, `--version`, port file,
//!   the HTTP listener, idle and hard TTLs, signals.
//! - [`instance`]: the state of one PocketIC instance (its subnets and
//!   replica).
//! - [`routes`]: the HTTP endpoints the client calls.

pub mod instance;
pub mod routes;
pub mod server;
pub mod wire;

/// Serves the PocketIC protocol as `args` say, until idle, past the hard
/// TTL, or SIGINT/SIGTERM.
pub async fn serve(args: server::ServerArgs) -> Result<(), server::ServerError> {
    let router = routes::router().map_err(|e| server::ServerError::Engine(e.to_string()))?;
    server::run(args, router, || {}).await
}
