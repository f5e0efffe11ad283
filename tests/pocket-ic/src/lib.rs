//! Only integration tests (tests/): the real `pocket-ic` 13 client from
//! crates.io against ww serving the PocketIC server protocol. Run from the
//! repository root, after `make ic-guests` and a ww build:
//!
//! ```sh
//! POCKET_IC_BIN=$PWD/target/debug/pocket-ic \
//!     cargo test --manifest-path tests/pocket-ic/Cargo.toml --target-dir target
//! ```
//!
//! - `calls.rs`: Candid updates and queries, rejects (trap, missing method,
//!   inspect_message, `msg_reject`), submit / tick / await, interleaving at
//!   awaits, inter-canister and management calls from canisters;
//! - `install.rs`: plain, gzip and chunked (> 2 MB, `cdk_big`) installs;
//! - `lifecycle.rs`: cycles, canister_status, upgrade / reinstall, stop /
//!   start / delete, controllers, canister logs, stable memory;
//! - `time.rs`: genesis time, set / advance time, timers, heartbeats;
//! - `instances.rs`: topology, canister ids, isolated instances;
//! - `server.rs`: the server process (version line, port file, TTL).
