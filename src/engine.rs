//! The Wasmtime engines of a node, their compile caches and time slicing.
//!
//! Every component a node runs is compiled by the engine of its kind, so a
//! compiled artifact is valid for every guest of that kind. Compiled
//! components are cached twice, both keyed by the BLAKE3 hash of the
//! component bytes (BLAKE3 rather than SHA-256 because every cached spawn
//! pays for it: it hashes several times faster here):
//!
//! - in memory, for the life of the node (a second spawn of the same bytes
//!   costs a hash and a map lookup);
//! - on disk under `<cache dir>/<compiler>-<engine fingerprint>/<blake3>.cwasm`,
//!   so a second `ww run` of the same image does not compile again. The
//!   fingerprint covers the Wasmtime version and every setting that affects
//!   code generation (compiler, opt level, fuel, epochs, memory layout); the
//!   compiler name is in the path too. Artifacts of another configuration are
//!   never loaded.
//!
//! Loads of different components run at the same time (no lock is held while
//! compiling; each compile also spreads its functions over all cores via
//! Wasmtime's parallel compilation); concurrent loads of the same new bytes
//! compile once.
//!
//! # Which compiler (measured with `cargo bench --bench compile`, 2 cores)
//!
//! A cold compile of a ~600 KiB canister component costs, in CPU time:
//! Cranelift (`opt_level=speed`, the old setting) ~600–650 ms; Cranelift
//! `opt_level=none` ~450–680 ms (the optimizer is a small part: register
//! allocation and lowering dominate); Cranelift with the single-pass register
//! allocator ~10–40 % less (but Wasmtime marks it not production-ready);
//! `generate_address_map(false)` no measurable gain; inlining 3–4× more;
//! Winch (Wasmtime's single-pass baseline compiler) ~65–130 ms. Parallel
//! compilation (on by default) halves Cranelift's wall time on two cores.
//! Eleven canisters cost ≥ 7 s of CPU with Cranelift at any setting, so a
//! cold deploy under 3 s on two cores needs Winch: `ww run` deploying 11
//! canisters with a cold cache took 4.3 s with Cranelift everywhere, 1.4 s
//! with the defaults below, 0.8 s with Winch everywhere (warm: ~70 ms).
//!
//! Winch code is slower: a CPU loop ~1.4–1.8×, inter-canister calls/s
//! −13–20 %, capnp echo over stdio −8–16 %. Winch supports fuel and epoch
//! interruption, and every test passes with either compiler
//! (`WW_COMPILER=winch|cranelift cargo test`). Its fuel is deterministic, but
//! it charges differently from Cranelift (41,218 vs 40,255 instructions for
//! the same `probe.slow(1000)`), so a canister engine must not mix compilers
//! — which rules out tiering canisters (Winch first, Cranelift recompiled in
//! the background): a call near its instruction limit could succeed before
//! the swap and trap after it. (Tiering would also need two Wasmtime engines,
//! since Winch code needs Winch's calling convention, and callers that pick
//! the linker and store by `Component::engine`.)
//!
//! Hence the defaults ([`Codegen::default_for`]):
//! - **canisters: Winch.** Deploys are frequent and many, fuel stays
//!   deterministic, and canister messages are short;
//! - **processes: Cranelift.** An image has few process components (pid0 and
//!   services, compiled concurrently, once per image thanks to the disk
//!   cache) and they run long-lived RPC loops where the faster code pays.
//!
//! `WW_COMPILER=cranelift` or `winch` (or [`EngineConfig::codegen`]) selects
//! one compiler for both kinds, e.g. Cranelift for compute-heavy canisters.
//!
//! Process instances come from Wasmtime's pooling allocator (slots reserved
//! once, reused without mmap/munmap per spawn); [`MAX_INSTANCES`] bounds how
//! many guests can be alive at once. Canisters use host-owned memory (see
//! `replica::memory`) and fuel.
//!
//! Time slicing: the process engine runs with epoch interruption. A ticker
//! thread advances the Wasmtime epoch every [`TICK`]; each guest store yields
//! back to the async executor at every tick, so a guest that spins forever
//! shares its thread fairly with other guests and can be killed at its next
//! tick.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::Module;
use wasmtime::component::Component;

/// How often the engine's epoch advances: the time slice of a guest.
pub const TICK: Duration = Duration::from_millis(10);

/// How many component instances (processes) can be alive at once.
pub const MAX_INSTANCES: u32 = 1000;
/// Core instances and memories a single component may have.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// The largest component the node accepts (bytes of Wasm).
pub const MAX_COMPONENT_SIZE: usize = 64 << 20;

/// Why a component could not be loaded. Every variant is the input's fault,
/// except [`LoadError::Engine`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{what}: cannot read: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: not a WebAssembly file (bad magic number)")]
    NotWasm { what: String },
    #[error("{what}: a core WebAssembly module, not a component (build for wasm32-wasip2)")]
    CoreModule { what: String },
    #[error("{what}: too large ({size} bytes, the limit is {MAX_COMPONENT_SIZE})")]
    TooLarge { what: String, size: usize },
    #[error("{what}: invalid {kind}: {reason}")]
    Invalid { what: String, kind: &'static str, reason: String },
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// The BLAKE3 hash of a component's bytes: its identity in the caches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WasmHash(pub [u8; 32]);

impl WasmHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// What an engine runs. The two need different Wasmtime settings, so a node
/// has one engine of each kind (each with its own compile cache directory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// Process guests: pooling allocator, epoch time slicing.
    #[default]
    Process,
    /// Canisters: host-owned memory (for commit/rollback, see
    /// `replica::memory`), fuel as the deterministic instruction counter.
    Canister,
}

/// Which compiler turns Wasm into machine code. Each has its own on-disk
/// cache directory (and the engine fingerprint differs anyway), so artifacts
/// of different compilers never mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codegen {
    /// Cranelift, `opt_level=speed`: the fastest code, ~4× slower compiles.
    Cranelift,
    /// Winch, Wasmtime's single-pass baseline compiler: ~4× faster compiles,
    /// code ~1.2–1.8× slower.
    Winch,
}

impl Codegen {
    /// Parses `cranelift` or `winch`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cranelift" | "optimizing" => Some(Self::Cranelift),
            "winch" | "baseline" => Some(Self::Winch),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cranelift => "cranelift",
            Self::Winch => "winch",
        }
    }

    /// The default for an engine kind (see the module documentation):
    /// Winch for canisters, Cranelift for processes.
    pub fn default_for(kind: EngineKind) -> Self {
        match kind {
            EngineKind::Canister => Self::Winch,
            EngineKind::Process => Self::Cranelift,
        }
    }

    /// `$WW_COMPILER` (`cranelift` or `winch`, for both kinds) when set and
    /// valid, else [`Codegen::default_for`] the kind.
    pub fn from_env(kind: EngineKind) -> Self {
        match std::env::var("WW_COMPILER") {
            Ok(s) => Self::parse(&s).unwrap_or_else(|| {
                tracing::warn!(value = %s, "ignoring unknown WW_COMPILER (expected cranelift or winch)");
                Self::default_for(kind)
            }),
            Err(_) => Self::default_for(kind),
        }
    }
}

/// Engine settings a node is created with.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    pub kind: EngineKind,
    /// Where compiled components are kept; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The most linear memory any one guest memory may grow to (bytes);
    /// `0` means [`crate::process::DEFAULT_MEMORY_LIMIT`].
    pub max_memory: usize,
    /// The compiler; `None` means [`Codegen::from_env`] (`$WW_COMPILER`,
    /// else the kind's default).
    pub codegen: Option<Codegen>,
}

/// The Wasmtime configuration of an engine of this kind compiling with
/// `codegen`. `runtime` adds what only matters for running guests (the
/// pooling allocator of process engines, which reserves address space for
/// every slot at engine creation); it does not change the generated code,
/// so compile-only engines (benchmarks) leave it out.
pub fn wasmtime_config(config: &EngineConfig, codegen: Codegen, runtime: bool) -> wasmtime::Config {
    let mut cfg = wasmtime::Config::new();
    // Parallel compilation (rayon's global pool, one thread per core) is
    // Wasmtime's default; it halves a Cranelift compile on two cores.
    cfg.wasm_component_model(true).parallel_compilation(true);
    match codegen {
        Codegen::Cranelift => {
            cfg.strategy(wasmtime::Strategy::Cranelift)
                .cranelift_opt_level(wasmtime::OptLevel::Speed);
        }
        Codegen::Winch => {
            cfg.strategy(wasmtime::Strategy::Winch);
        }
    }
    match config.kind {
        EngineKind::Process => {
            cfg.epoch_interruption(true);
            if runtime {
                let max_memory = match config.max_memory {
                    0 => crate::process::DEFAULT_MEMORY_LIMIT,
                    n => n,
                };
                let mut pool = wasmtime::PoolingAllocationConfig::new();
                pool.total_component_instances(MAX_INSTANCES)
                    .total_core_instances(MAX_INSTANCES * CORE_INSTANCES_PER_COMPONENT)
                    .total_memories(MAX_INSTANCES * 2)
                    .total_tables(MAX_INSTANCES * CORE_INSTANCES_PER_COMPONENT)
                    .total_stacks(MAX_INSTANCES)
                    .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
                    .max_memories_per_component(CORE_INSTANCES_PER_COMPONENT)
                    .max_tables_per_component(CORE_INSTANCES_PER_COMPONENT)
                    .max_memory_size(max_memory);
                cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
            }
        }
        EngineKind::Canister => {
            // Host memory is incompatible with the pooling allocator and
            // with copy-on-write memory images (a Wasmtime 48 panic).
            let limits = crate::replica::types::Limits::default();
            cfg.with_host_memory(Arc::new(crate::replica::memory::CanisterMemoryCreator))
                .memory_init_cow(false)
                .memory_reservation(limits.wasm_memory_limit as u64)
                .memory_guard_size(limits.memory_guard as u64)
                // IC canisters may have a 64-bit memory (Motoko's enhanced
                // orthogonal persistence).
                .wasm_memory64(true)
                .consume_fuel(true);
        }
    }
    cfg
}

/// The node's Wasmtime engine plus its compile caches. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    codegen: Codegen,
    /// `<cache dir>/<codegen>-<engine fingerprint>/`.
    disk_dir: Option<PathBuf>,
    memory: Mutex<HashMap<WasmHash, Artifact>>,
    /// One compile per hash at a time: concurrent loads of the same new
    /// bytes wait for the first instead of compiling again. Loads of
    /// different bytes never wait for each other.
    inflight: Mutex<HashMap<WasmHash, Arc<Mutex<()>>>>,
}

impl Engine {
    pub fn new(config: &EngineConfig) -> Result<Self, LoadError> {
        let codegen = config.codegen.unwrap_or_else(|| Codegen::from_env(config.kind));
        let cfg = wasmtime_config(config, codegen, true);
        let wasmtime =
            wasmtime::Engine::new(&cfg).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let disk_dir = config
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}-{}", codegen.name(), fingerprint(&wasmtime))));
        let inner = Arc::new(EngineInner {
            wasmtime,
            codegen,
            disk_dir,
            memory: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        });
        if config.kind == EngineKind::Process {
            spawn_ticker(Arc::downgrade(&inner));
        }
        Ok(Self { inner })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The compiler of this engine.
    pub fn codegen(&self) -> Codegen {
        self.inner.codegen
    }

    /// Reads and loads a component file.
    pub fn load_file(&self, path: &Path) -> Result<(WasmHash, Component), LoadError> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            what: what.clone(),
            source,
        })?;
        self.load(&what, &bytes)
    }

    /// Loads a component from bytes: memory cache, then disk cache, then a
    /// fresh compile (which fills both). `what` names the input in errors.
    ///
    /// Compiling blocks the calling thread; async callers should run this on
    /// a blocking thread when the bytes may be new (see [`Engine::is_cached`]).
    /// Loads of different components may run at the same time (each compile
    /// also spreads over all cores); concurrent loads of the same new bytes
    /// compile once.
    pub fn load(&self, what: &str, bytes: &[u8]) -> Result<(WasmHash, Component), LoadError> {
        self.load_hashed(what, bytes, WasmHash::of(bytes))
    }

    /// [`Engine::load`] for bytes whose hash the caller already computed.
    pub fn load_hashed(&self, what: &str, bytes: &[u8], hash: WasmHash) -> Result<(WasmHash, Component), LoadError> {
        check_header(what, bytes, Kind::Component)?;
        self.load_artifact(what, bytes, hash).map(|c| (hash, c))
    }

    /// Loads a core WebAssembly module (an IC canister module, already
    /// checked and instrumented by the replica) through the same caches.
    pub fn load_module(&self, what: &str, bytes: &[u8]) -> Result<Module, LoadError> {
        check_header(what, bytes, Kind::Module)?;
        self.load_artifact(what, bytes, WasmHash::of(bytes))
    }

    fn load_artifact<A: Compiled>(&self, what: &str, bytes: &[u8], hash: WasmHash) -> Result<A, LoadError> {
        if let Some(c) = self.cached(&hash) {
            return Ok(c);
        }
        let flight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(hash)
            .or_default()
            .clone();
        let result = {
            let _only_one = flight.lock().unwrap_or_else(|e| e.into_inner());
            match self.cached(&hash) {
                Some(c) => Ok(c),
                None => self.load_uncached(what, bytes, &hash),
            }
        };
        {
            let mut inflight = self.inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
            // The last one out removes the entry (the map holds one reference).
            if Arc::strong_count(&flight) == 2 {
                inflight.remove(&hash);
            }
        }
        result
    }

    fn load_uncached<A: Compiled>(&self, what: &str, bytes: &[u8], hash: &WasmHash) -> Result<A, LoadError> {
        let artifact = match self.load_from_disk::<A>(hash) {
            Some(c) => c,
            None => {
                let started = Instant::now();
                let c = A::compile(&self.inner.wasmtime, bytes).map_err(|e| LoadError::Invalid {
                    what: what.to_string(),
                    kind: A::KIND.noun(),
                    reason: one_line(&e),
                })?;
                tracing::debug!(
                    artifact = %what,
                    bytes = bytes.len(),
                    codegen = self.inner.codegen.name(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "compiled"
                );
                self.store_to_disk(hash, &c);
                c
            }
        };
        self.inner
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*hash, artifact.clone().into_artifact());
        Ok(artifact)
    }

    /// True when the component with this hash would load without compiling
    /// (memory or disk hit).
    pub fn is_cached(&self, hash: &WasmHash) -> bool {
        self.inner.memory.lock().unwrap_or_else(|e| e.into_inner()).contains_key(hash)
            || self.disk_path(hash).is_some_and(|p| p.exists())
    }

    fn cached<A: Compiled>(&self, hash: &WasmHash) -> Option<A> {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .and_then(A::from_artifact)
    }

    fn disk_path(&self, hash: &WasmHash) -> Option<PathBuf> {
        self.inner
            .disk_dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", hash.to_hex())))
    }

    fn load_from_disk<A: Compiled>(&self, hash: &WasmHash) -> Option<A> {
        let path = self.disk_path(hash)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store_to_disk` of an engine with
        // the same compiler and fingerprint (the directory name), from bytes
        // whose hash is the file name; Wasmtime additionally checks version
        // and settings.
        match unsafe { A::deserialize_file(&self.inner.wasmtime, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %one_line(&e), "ignoring unusable compile cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store_to_disk<A: Compiled>(&self, hash: &WasmHash, component: &A) {
        let Some(path) = self.disk_path(hash) else {
            return;
        };
        let result = (|| -> Result<(), String> {
            let bytes = component.serialize().map_err(|e| one_line(&e))?;
            let dir = path.parent().ok_or("no parent directory")?;
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            // Write then rename, so a concurrent reader never sees half a file.
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| e.to_string())?;
            tmp.persist(&path).map_err(|e| e.to_string())?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not write compile cache entry");
        }
    }
}

/// The default compile cache directory: `$WW_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/ww`, else `$HOME/.cache/ww`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WW_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("ww"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("ww"))
}

fn fingerprint(engine: &wasmtime::Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

const WASM_MAGIC: [u8; 4] = *b"\0asm";
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// What the caches hold: components (processes, component canisters) and
/// core modules (IC canister modules).
#[derive(Clone)]
enum Artifact {
    Component(Component),
    Module(Module),
}

/// Which of the two an input must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Component,
    Module,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Component => "component",
            Kind::Module => "module",
        }
    }
}

/// A compiled artifact the caches can hold, compile and (de)serialize.
trait Compiled: Clone + Sized {
    const KIND: Kind;
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// # Safety
    /// `path` must hold bytes `serialize` wrote with a compatible engine.
    unsafe fn deserialize_file(engine: &wasmtime::Engine, path: &Path) -> wasmtime::Result<Self>;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    fn into_artifact(self) -> Artifact;
    fn from_artifact(a: &Artifact) -> Option<Self>;
}

impl Compiled for Component {
    const KIND: Kind = Kind::Component;
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }
    unsafe fn deserialize_file(engine: &wasmtime::Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: as the trait requires of the caller.
        unsafe { Component::deserialize_file(engine, path) }
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    fn into_artifact(self) -> Artifact {
        Artifact::Component(self)
    }
    fn from_artifact(a: &Artifact) -> Option<Self> {
        match a {
            Artifact::Component(c) => Some(c.clone()),
            Artifact::Module(_) => None,
        }
    }
}

impl Compiled for Module {
    const KIND: Kind = Kind::Module;
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }
    unsafe fn deserialize_file(engine: &wasmtime::Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: as the trait requires of the caller.
        unsafe { Module::deserialize_file(engine, path) }
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    fn into_artifact(self) -> Artifact {
        Artifact::Module(self)
    }
    fn from_artifact(a: &Artifact) -> Option<Self> {
        match a {
            Artifact::Module(m) => Some(m.clone()),
            Artifact::Component(_) => None,
        }
    }
}

fn check_header(what: &str, bytes: &[u8], kind: Kind) -> Result<(), LoadError> {
    if bytes.len() > MAX_COMPONENT_SIZE {
        return Err(LoadError::TooLarge {
            what: what.to_string(),
            size: bytes.len(),
        });
    }
    if bytes.len() < 8 || bytes[..4] != WASM_MAGIC {
        return Err(LoadError::NotWasm {
            what: what.to_string(),
        });
    }
    if kind == Kind::Component && bytes[4..8] == CORE_VERSION {
        return Err(LoadError::CoreModule {
            what: what.to_string(),
        });
    }
    if kind == Kind::Module && bytes[4..8] != CORE_VERSION {
        return Err(LoadError::Invalid {
            what: what.to_string(),
            kind: "module",
            reason: "a component, not a core module".into(),
        });
    }
    Ok(())
}

/// Renders an error chain on one line.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn spawn_ticker(engine: Weak<EngineInner>) {
    let spawned = std::thread::Builder::new()
        .name("ww-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match engine.upgrade() {
                    Some(e) => e.wasmtime.increment_epoch(),
                    None => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the engine ticker; guests will not be time-sliced");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_with(dir: Option<&Path>, kind: EngineKind, codegen: Codegen) -> Engine {
        Engine::new(&EngineConfig {
            kind,
            cache_dir: dir.map(Path::to_path_buf),
            codegen: Some(codegen),
            ..EngineConfig::default()
        })
        .unwrap()
    }

    fn guest(name: &str) -> Vec<u8> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `make test`: it builds the guests)", p.display()))
    }

    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0"; // the smallest valid component

    #[test]
    fn rejects_non_wasm_and_core_modules() {
        for codegen in [Codegen::Cranelift, Codegen::Winch] {
            let e = engine_with(None, EngineKind::Process, codegen);
            assert!(matches!(e.load("x", b"hello world"), Err(LoadError::NotWasm { .. })));
            let core = b"\0asm\x01\0\0\0";
            assert!(matches!(e.load("x", core), Err(LoadError::CoreModule { .. })));
            let mut truncated = EMPTY.to_vec();
            truncated.extend_from_slice(&[1, 2, 3]);
            let err = e.load("x.wasm", &truncated).unwrap_err();
            assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
            assert!(err.to_string().starts_with("x.wasm: invalid component"));
        }
    }

    #[test]
    fn disk_cache_round_trip() {
        for codegen in [Codegen::Cranelift, Codegen::Winch] {
            let dir = tempfile::tempdir().unwrap();
            let e1 = engine_with(Some(dir.path()), EngineKind::Process, codegen);
            let (h, _) = e1.load("empty", EMPTY).unwrap();
            let files: Vec<_> = walk(dir.path());
            assert_eq!(files.len(), 1, "one artifact written: {files:?}");
            assert!(files[0].ends_with(format!("{}.cwasm", h.to_hex())));
            let subdir = files[0].parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
            assert!(subdir.starts_with(&format!("{}-", codegen.name())), "{subdir}");
            let e2 = engine_with(Some(dir.path()), EngineKind::Process, codegen);
            assert!(e2.is_cached(&WasmHash::of(EMPTY)));
            e2.load("empty", EMPTY).unwrap();
        }
    }

    /// Artifacts of one compiler are never offered to the other (nor to the
    /// other engine kind).
    #[test]
    fn compilers_and_kinds_keep_separate_caches() {
        let dir = tempfile::tempdir().unwrap();
        let winch = engine_with(Some(dir.path()), EngineKind::Canister, Codegen::Winch);
        let (h, _) = winch.load("empty", EMPTY).unwrap();
        for (kind, codegen) in [
            (EngineKind::Canister, Codegen::Cranelift),
            (EngineKind::Process, Codegen::Winch),
            (EngineKind::Process, Codegen::Cranelift),
        ] {
            let other = engine_with(Some(dir.path()), kind, codegen);
            assert!(!other.is_cached(&h), "{kind:?} {codegen:?}");
            other.load("empty", EMPTY).unwrap();
        }
        assert_eq!(walk(dir.path()).len(), 4, "one artifact per kind and compiler");
    }

    /// Real guests compile with both compilers for the engine kind they run
    /// on (fuel for canisters, epochs for processes).
    #[test]
    fn real_guests_compile_with_both_compilers() {
        for (kind, name) in [(EngineKind::Canister, "counter"), (EngineKind::Process, "child-echo")] {
            let bytes = guest(name);
            for codegen in [Codegen::Cranelift, Codegen::Winch] {
                let e = engine_with(None, kind, codegen);
                let (_, c) = e.load(name, &bytes).unwrap();
                assert!(wasmtime::Engine::same(c.engine(), e.wasmtime()));
                assert_eq!(e.codegen(), codegen);
            }
        }
    }

    /// Concurrent loads of the same new bytes compile once and all succeed.
    #[test]
    fn concurrent_loads_compile_once() {
        let e = engine_with(None, EngineKind::Canister, Codegen::Winch);
        let bytes = Arc::new(guest("counter"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (e, bytes) = (e.clone(), bytes.clone());
                std::thread::spawn(move || e.load("counter", &bytes).unwrap().0)
            })
            .collect();
        let hashes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]));
        assert!(e.inner.inflight.lock().unwrap().is_empty());
    }

    #[test]
    fn codegen_defaults_and_names() {
        assert_eq!(Codegen::default_for(EngineKind::Canister), Codegen::Winch);
        assert_eq!(Codegen::default_for(EngineKind::Process), Codegen::Cranelift);
        assert_eq!(Codegen::parse("Winch"), Some(Codegen::Winch));
        assert_eq!(Codegen::parse("cranelift"), Some(Codegen::Cranelift));
        assert_eq!(Codegen::parse("llvm"), None);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
