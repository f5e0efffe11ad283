//! The one Wasmtime engine of a node, its compile cache and its time slicing.
//!
//! Every component a node runs is compiled by the same [`Engine`], so a
//! compiled artifact is valid for every guest. Compiling is the expensive
//! step (Cranelift does about 2 MB/s on two cores), so compiled components are
//! cached twice, both keyed by the BLAKE3 hash of the component bytes (BLAKE3
//! rather than SHA-256 because every cached spawn pays for it: it hashes
//! several times faster here):
//!
//! - in memory, for the life of the node (a second spawn of the same bytes
//!   costs a hash and a map lookup);
//! - on disk under `<cache dir>/<engine fingerprint>/<blake3>.cwasm`, so a
//!   second `ww run` of the same image does not compile again. The engine
//!   fingerprint covers the Wasmtime version and every setting that affects
//!   code generation; artifacts from another configuration are never loaded.
//!
//! Instances come from Wasmtime's pooling allocator (slots reserved once,
//! reused without mmap/munmap per spawn); [`MAX_INSTANCES`] bounds how many
//! guests can be alive at once.
//!
//! Time slicing: the engine runs with epoch interruption. A ticker thread
//! advances the Wasmtime epoch every [`TICK`]; each guest store yields back to
//! the async executor at every tick, so a guest that spins forever shares its
//! thread fairly with other guests and can be killed at its next tick.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
    #[error("{what}: invalid component: {reason}")]
    Invalid { what: String, reason: String },
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

/// Engine settings a node is created with.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    pub kind: EngineKind,
    /// Where compiled components are kept; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The most linear memory any one guest memory may grow to (bytes);
    /// `0` means [`crate::process::DEFAULT_MEMORY_LIMIT`].
    pub max_memory: usize,
}

/// The node's Wasmtime engine plus its compile caches. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    disk_dir: Option<PathBuf>,
    memory: Mutex<HashMap<WasmHash, Component>>,
}

impl Engine {
    pub fn new(config: &EngineConfig) -> Result<Self, LoadError> {
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
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            .parallel_compilation(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        match config.kind {
            EngineKind::Process => {
                cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
                    .epoch_interruption(true);
            }
            EngineKind::Canister => {
                // Host memory is incompatible with the pooling allocator and
                // with copy-on-write memory images (a Wasmtime 48 panic).
                cfg.with_host_memory(Arc::new(crate::replica::memory::CanisterMemoryCreator))
                    .memory_init_cow(false)
                    .memory_reservation(crate::replica::types::Limits::default().wasm_memory_limit as u64)
                    .memory_guard_size(crate::replica::types::Limits::default().memory_guard as u64)
                    .consume_fuel(true);
            }
        }
        let wasmtime =
            wasmtime::Engine::new(&cfg).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let disk_dir = config
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(fingerprint(&wasmtime)));
        let inner = Arc::new(EngineInner {
            wasmtime,
            disk_dir,
            memory: Mutex::new(HashMap::new()),
        });
        if config.kind == EngineKind::Process {
            spawn_ticker(Arc::downgrade(&inner));
        }
        Ok(Self { inner })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
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
    pub fn load(&self, what: &str, bytes: &[u8]) -> Result<(WasmHash, Component), LoadError> {
        self.load_hashed(what, bytes, WasmHash::of(bytes))
    }

    /// [`Engine::load`] for bytes whose hash the caller already computed.
    pub fn load_hashed(&self, what: &str, bytes: &[u8], hash: WasmHash) -> Result<(WasmHash, Component), LoadError> {
        let what = what.to_string();
        check_header(&what, bytes)?;
        if let Some(c) = self.cached(&hash) {
            return Ok((hash, c));
        }
        let component = match self.load_from_disk(&hash) {
            Some(c) => c,
            None => {
                let started = Instant::now();
                let c = Component::new(&self.inner.wasmtime, bytes).map_err(|e| {
                    LoadError::Invalid {
                        what: what.clone(),
                        reason: one_line(&e),
                    }
                })?;
                tracing::debug!(
                    component = %what,
                    bytes = bytes.len(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "compiled"
                );
                self.store_to_disk(&hash, &c);
                c
            }
        };
        self.inner
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, component.clone());
        Ok((hash, component))
    }

    /// True when the component with this hash would load without compiling
    /// (memory or disk hit).
    pub fn is_cached(&self, hash: &WasmHash) -> bool {
        self.cached(hash).is_some() || self.disk_path(hash).is_some_and(|p| p.exists())
    }

    fn cached(&self, hash: &WasmHash) -> Option<Component> {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    fn disk_path(&self, hash: &WasmHash) -> Option<PathBuf> {
        self.inner
            .disk_dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", hash.to_hex())))
    }

    fn load_from_disk(&self, hash: &WasmHash) -> Option<Component> {
        let path = self.disk_path(hash)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store_to_disk` of an engine with
        // the same fingerprint (the directory name), from bytes whose hash is
        // the file name; Wasmtime additionally checks version and settings.
        match unsafe { Component::deserialize_file(&self.inner.wasmtime, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %one_line(&e), "ignoring unusable compile cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store_to_disk(&self, hash: &WasmHash, component: &Component) {
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

fn check_header(what: &str, bytes: &[u8]) -> Result<(), LoadError> {
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
    if bytes[4..8] == CORE_VERSION {
        return Err(LoadError::CoreModule {
            what: what.to_string(),
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

    fn engine(dir: Option<&Path>) -> Engine {
        Engine::new(&EngineConfig {
            cache_dir: dir.map(Path::to_path_buf),
            ..EngineConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn rejects_non_wasm_and_core_modules() {
        let e = engine(None);
        assert!(matches!(e.load("x", b"hello world"), Err(LoadError::NotWasm { .. })));
        let core = b"\0asm\x01\0\0\0";
        assert!(matches!(e.load("x", core), Err(LoadError::CoreModule { .. })));
        let mut truncated = b"\0asm\x0d\0\x01\0".to_vec();
        truncated.extend_from_slice(&[1, 2, 3]);
        let err = e.load("x.wasm", &truncated).unwrap_err();
        assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
        assert!(err.to_string().starts_with("x.wasm: invalid component"));
    }

    #[test]
    fn disk_cache_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        // The smallest valid component.
        let bytes = b"\0asm\x0d\0\x01\0";
        let e1 = engine(Some(dir.path()));
        let (h, _) = e1.load("empty", bytes).unwrap();
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files.len(), 1, "one artifact written: {files:?}");
        assert!(files[0].ends_with(format!("{}.cwasm", h.to_hex())));
        let e2 = engine(Some(dir.path()));
        assert!(e2.is_cached(&WasmHash::of(bytes)));
        e2.load("empty", bytes).unwrap();
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
