//! ww: a runtime that hosts Internet Computer canister logic off-chain as
//! WASI components.
//!
//! The host is this library plus a thin `ww` binary. Modules follow the data
//! path of `ww run <image>...`:
//!
//! - [`image`]: layer directories to one merged FHS root (`bin/`, `etc/`,
//!   `boot/`, `svc/`).
//! - [`engine`]: the one Wasmtime engine, the compile cache, time slicing.
//! - [`pipe`]: bounded in-memory byte pipes between host and guest stdio.
//! - [`process`]: process guests, their stdio, limits and exit codes.
//! - [`rpc`]: Cap'n Proto servers (`Membrane`, `Host`, `Executor`, ...) and
//!   epoch guards.
//! - [`net`]: the node's libp2p identity and network view.
//! - [`replica`]: canisters with IC message semantics, the management canister.
//! - [`identity`]: the node's admin identity (a self-authenticating principal).
//! - [`control`]: the control socket the CLI talks to.
//! - [`node`]: ties the above together and boots an image.
//! - [`pocket_ic`]: ww as a PocketIC server (`ww pocket-ic`, or `ww` run as
//!   `pocket-ic`), for tests written against the `pocket-ic` client crate.
//!
//! `ARCHITECTURE.md` at the repository root has the map and the invariants.

pub mod bench;
pub mod candid_args;
pub mod certified;
pub mod chain_keys;
pub mod control;
pub mod engine;
pub mod http;
pub mod identity;
pub mod image;
pub mod net;
pub mod node;
pub mod outcalls;
pub mod pipe;
pub mod pocket_ic;
pub mod process;
pub mod replica;
pub mod rpc;
pub mod sim;

/// Code generated from `capnp/ww.capnp`.
pub mod ww_capnp {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/ww_capnp.rs"));
}
