//! The Wasmtime store of a canister instance: its WASI context holds only
//! what a canister may see (the replica's time for both clocks, randomness
//! seeded from the canister's name, stdout and stderr into the log), no
//! filesystem, environment or sockets; fuel is set per execution.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};

use super::{CanisterRuntime, ExecState};
use crate::replica::stable::StableMemory;

pub(super) fn new_store(runtime: &CanisterRuntime, stable: StableMemory, clock: Arc<AtomicU64>, name: Arc<str>) -> Store<ExecState> {
    let mut wasi = WasiCtx::builder();
    wasi.wall_clock(ReplicaClock(clock.clone()))
        .monotonic_clock(ReplicaClock(clock.clone()))
        .secure_random(seeded_rng(&name))
        .insecure_random(seeded_rng(&name))
        .insecure_random_seed(0)
        .stdout(crate::process::LogSink::new(&format!("canister {name}")))
        .stderr(crate::process::LogSink::new(&format!("canister {name}")));
    let state = ExecState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        stable,
        ctx: None,
        clock,
        log_name: name,
        memory: None,
        log: Vec::new(),
        print_style: runtime.print_style,
        root_key: runtime.root_key.clone(),
        key_routing: runtime.key_routing.clone(),
    };
    let mut store = Store::new(runtime.engine.wasmtime(), state);
    // Fuel is set per execution; instantiation itself is not metered here.
    let _ = store.set_fuel(u64::MAX);
    store
}

fn seeded_rng(name: &str) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let seed = blake3::hash(name.as_bytes());
    rand::rngs::StdRng::from_seed(*seed.as_bytes())
}

/// Replica time for the canister's WASI clocks.
struct ReplicaClock(Arc<AtomicU64>);

impl HostWallClock for ReplicaClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

impl HostMonotonicClock for ReplicaClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
