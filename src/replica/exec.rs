//! One canister instance and the execution of one message on it.
//!
//! [`CanisterInstance`] owns a canister's Wasmtime store, its heap
//! ([`CanisterMemory`]) and its stable memory. [`CanisterInstance::execute`]
//! runs one entry point as one atomic message execution:
//!
//! - the instruction limit is fuel; the time is fixed for the execution;
//! - `ic0` calls are checked against the entry point's context (a call that
//!   is not allowed traps, as on the IC) and their effects are staged in an
//!   [`ExecContext`];
//! - on return, heap and stable memory are committed and the staged effects
//!   (reply, outgoing calls, timer) are handed to the replica;
//! - on any error (a trap, `ic0.trap`, out of fuel, a host-side failure) the
//!   store is unusable (Wasmtime poisons it), so the instance is rebuilt from
//!   its `InstancePre` on the same memory, which is rolled back to the last
//!   commit; stable memory is rolled back from its journal; no effect escapes.
//! - queries always roll back, and keep only their reply.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use candid::Principal;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::memory::{CanisterMemory, with_memory_slot};
use super::stable::StableMemory;
use super::types::{ErrorCode, Limits, RejectCode};
use crate::engine::one_line;

wasmtime::component::bindgen!({
    world: "canister",
    path: "wit/canister.wit",
    imports: { default: trappable },
});

use exports::ww::canister::entry::MethodKind as WitMethodKind;
use ww::canister::ic0;

/// What kind of method a canister exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    Update,
    Query,
}

/// The entry point a message execution runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    Init,
    PreUpgrade,
    PostUpgrade,
    Update(String),
    /// A query; `replicated` is false for a query call (3 MiB replies).
    Query { method: String, replicated: bool },
    Reply(u64),
    Reject(u64),
    Cleanup(u64),
    Timer,
}

impl EntryPoint {
    fn name(&self) -> &'static str {
        match self {
            EntryPoint::Init => "canister_init",
            EntryPoint::PreUpgrade => "canister_pre_upgrade",
            EntryPoint::PostUpgrade => "canister_post_upgrade",
            EntryPoint::Update(_) => "update",
            EntryPoint::Query { .. } => "query",
            EntryPoint::Reply(_) => "reply callback",
            EntryPoint::Reject(_) => "reject callback",
            EntryPoint::Cleanup(_) => "cleanup callback",
            EntryPoint::Timer => "canister_global_timer",
        }
    }
    pub fn is_query(&self) -> bool {
        matches!(self, EntryPoint::Query { .. })
    }
    /// Runs in replicated mode (everything but a query call).
    pub fn is_replicated(&self) -> bool {
        !matches!(self, EntryPoint::Query { replicated: false, .. })
    }
}

/// Everything an execution is given.
#[derive(Clone, Debug)]
pub struct MessageInput {
    pub entry: EntryPoint,
    pub arg: Vec<u8>,
    pub caller: Principal,
    /// For a reject callback: the reject.
    pub reject: Option<(RejectCode, String)>,
    pub deadline: u64,
    pub cycles_available: u64,
    pub cycles_refunded: u64,
    /// The call context still needs a response (so reply/reject are allowed).
    pub needs_response: bool,
    pub time: u64,
    pub instruction_limit: u64,
    /// Instructions the call context's earlier executions took
    /// (`performance_counter(1)`).
    pub context_instructions: u64,
    /// The canister's `wasm_memory_limit` where it applies (updates, init,
    /// post_upgrade); `None`: no limit but the host's.
    pub wasm_memory_limit: Option<u64>,
    /// Leave heap and stable changes staged instead of committing them (the
    /// caller commits or discards; used by upgrades).
    pub stage_only: bool,
}

impl MessageInput {
    pub fn new(entry: EntryPoint, caller: Principal, time: u64, instruction_limit: u64) -> Self {
        Self {
            entry,
            arg: Vec::new(),
            caller,
            reject: None,
            deadline: 0,
            cycles_available: 0,
            cycles_refunded: 0,
            needs_response: false,
            time,
            instruction_limit,
            context_instructions: 0,
            wasm_memory_limit: None,
            stage_only: false,
        }
    }
}

/// A response produced by an execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Reply(Vec<u8>),
    Reject(String),
}

/// A call queued by an execution (sent only if it commits).
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub cycles: u64,
    pub timeout_seconds: Option<u32>,
    pub env: u64,
    /// The caller's canister version in the execution that made the call.
    pub caller_version: u64,
}

/// The effects of a committed execution.
#[derive(Debug, Default)]
pub struct Effects {
    pub response: Option<Response>,
    pub calls: Vec<OutgoingCall>,
    /// The global timer as the execution left it (if it set it).
    pub timer: Option<u64>,
    pub cycles_accepted: u64,
    pub instructions: u64,
    pub dirty_pages: usize,
}

/// How an execution ended.
#[derive(Debug)]
pub enum Outcome {
    Committed(Effects),
    Trapped { code: ErrorCode, message: String, instructions: u64 },
}

/// Facts about the canister that `ic0` exposes; kept current by the replica.
#[derive(Clone, Debug)]
pub struct CanisterInfo {
    pub id: Principal,
    pub controllers: Vec<Principal>,
    /// 1 running, 2 stopping, 3 stopped.
    pub status: u32,
    pub version: u64,
    pub balance: u64,
}

/// Counts a canister's outstanding calls to a callee (for backpressure).
pub type OutstandingCalls = Arc<dyn Fn(&Principal) -> u32 + Send + Sync>;

/// Per-execution state: the input and everything staged so far.
pub struct ExecContext {
    input: MessageInput,
    info: CanisterInfo,
    limits: Limits,
    outstanding: OutstandingCalls,
    reply_buf: Vec<u8>,
    response: Option<Response>,
    calls: Vec<OutgoingCall>,
    timer: Option<u64>,
    current_timer: u64,
    cycles_accepted: u64,
    /// Set by `ic0.trap`: the canister's own message.
    trap_message: Option<String>,
}

/// The store data of a canister instance.
pub struct ExecState {
    wasi: WasiCtx,
    table: ResourceTable,
    stable: StableMemory,
    ctx: Option<ExecContext>,
    clock: Arc<AtomicU64>,
    log_name: Arc<str>,
}

impl WasiView for ExecState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A host-side trap raised from an `ic0` call.
#[derive(Debug)]
struct HostTrap {
    code: ErrorCode,
    message: String,
}

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostTrap {}

fn trap<T>(code: ErrorCode, message: impl Into<String>) -> wasmtime::Result<T> {
    Err(wasmtime::Error::new(HostTrap {
        code,
        message: message.into(),
    }))
}

mod system_api;

use EntryPoint as E;

/// The per-node engine and linker for canisters.
#[derive(Clone)]
pub struct CanisterRuntime {
    engine: crate::engine::Engine,
    linker: Arc<Linker<ExecState>>,
    limits: Limits,
}

impl CanisterRuntime {
    pub fn new(engine: crate::engine::Engine, limits: Limits) -> wasmtime::Result<Self> {
        let mut linker: Linker<ExecState> = Linker::new(engine.wasmtime());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Canister::add_to_linker::<ExecState, HasSelf<ExecState>>(&mut linker, |s| s)?;
        linker.allow_shadowing(true);
        linker.instance("ww:canister/ic0@0.1.0")?.func_wrap(
            "performance-counter",
            |store: wasmtime::StoreContextMut<'_, ExecState>, (kind,): (u32,)| {
                let (limit, before) = store
                    .data()
                    .ctx
                    .as_ref()
                    .map_or((0, 0), |c| (c.input.instruction_limit, c.input.context_instructions));
                let this_execution = limit.saturating_sub(store.get_fuel().unwrap_or(0));
                match kind {
                    // Instructions of this execution.
                    0 => Ok((this_execution,)),
                    // Instructions of the whole call context so far.
                    1 => Ok((before.saturating_add(this_execution),)),
                    _ => trap(ErrorCode::CanisterContractViolation, format!("ic0.performance_counter: unknown counter type {kind}")),
                }
            },
        )?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
        })
    }

    pub fn engine(&self) -> &crate::engine::Engine {
        &self.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Why a module could not be installed (the input's fault).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Invalid(String),
    #[error("canister memory: {0}")]
    Memory(#[from] super::memory::MemoryError),
}

/// A canister's live instance: store, heap, stable memory, method table.
pub struct CanisterInstance {
    runtime: CanisterRuntime,
    pre: CanisterPre<ExecState>,
    store: Store<ExecState>,
    bindings: Canister,
    memory: CanisterMemory,
    methods: HashMap<String, MethodKind>,
}

fn new_store(runtime: &CanisterRuntime, stable: StableMemory, clock: Arc<AtomicU64>, name: Arc<str>) -> Store<ExecState> {
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

impl CanisterInstance {
    /// Instantiates `component` on a fresh heap and the given stable memory,
    /// which is taken as it is: changes it has staged (an upgrade's
    /// pre_upgrade writes) stay staged, to be committed or rolled back by
    /// the next execution. Runs no canister code except `methods` (on a copy
    /// of the heap that is thrown away, without the stable memory).
    pub fn new(
        runtime: &CanisterRuntime,
        component: &Component,
        stable: StableMemory,
        name: &str,
    ) -> Result<Self, InstallError> {
        let pre = runtime
            .linker
            .instantiate_pre(component)
            .map_err(|e| InstallError::Invalid(format!("cannot link: {}", one_line(&e))))?;
        let pre = CanisterPre::new(pre)
            .map_err(|e| InstallError::Invalid(format!("not a canister component: {}", one_line(&e))))?;
        let memory = CanisterMemory::new(runtime.limits.wasm_memory_limit, runtime.limits.memory_guard)?;
        let clock = Arc::new(AtomicU64::new(0));
        let name: Arc<str> = name.into();
        // The stable memory joins after listing: resetting the heap after
        // `methods` must not roll back what the stable memory has staged.
        let mut store = new_store(runtime, StableMemory::default(), clock, name);
        let bindings = with_memory_slot(&memory, || pre.instantiate(&mut store))
            .map_err(|e| InstallError::Invalid(format!("instantiation failed: {}", one_line(&e))))?;
        // The baseline: data segments as instantiation wrote them.
        memory.commit()?;
        let listed = bindings
            .ww_canister_entry()
            .call_methods(&mut store)
            .map_err(|e| InstallError::Invalid(format!("listing methods failed: {}", one_line(&e))));
        let mut instance = Self {
            runtime: runtime.clone(),
            pre,
            store,
            bindings,
            memory,
            methods: HashMap::new(),
        };
        let listed = listed?;
        instance
            .restore_after_discard(false)
            .map_err(|e| InstallError::Invalid(format!("resetting after listing methods: {e}")))?;
        instance.put_stable(stable);
        for m in listed {
            let kind = match m.kind {
                WitMethodKind::Update => MethodKind::Update,
                WitMethodKind::Query => MethodKind::Query,
            };
            instance.methods.insert(m.name, kind);
        }
        Ok(instance)
    }

    pub fn methods(&self) -> &HashMap<String, MethodKind> {
        &self.methods
    }

    pub fn memory_size(&self) -> usize {
        self.memory.committed_size()
    }

    pub fn stable_size_bytes(&self) -> u64 {
        self.store.data().stable.size_bytes()
    }

    /// Takes the stable memory out, staged changes included (for an upgrade).
    pub fn take_stable(&mut self) -> StableMemory {
        std::mem::take(&mut self.store.data_mut().stable)
    }

    /// Puts stable memory (back) in.
    pub fn put_stable(&mut self, stable: StableMemory) {
        self.store.data_mut().stable = stable;
    }

    /// Commits what a `stage_only` execution left staged.
    pub fn commit_staged(&mut self) -> Result<(), String> {
        self.memory.commit().map_err(|e| e.to_string())?;
        self.store.data_mut().stable.commit();
        Ok(())
    }

    /// Throws away what a `stage_only` execution left staged.
    pub fn discard_staged(&mut self) {
        if let Err(e) = self.restore_after_discard(false) {
            tracing::error!(error = %e, "discarding staged canister state failed");
        }
    }

    /// Runs one message execution.
    pub fn execute(&mut self, input: MessageInput, info: CanisterInfo, current_timer: u64, outstanding: OutstandingCalls) -> Outcome {
        let limit = input.instruction_limit;
        let stage_only = input.stage_only;
        let heap_limit = input.wasm_memory_limit;
        let heap_before = self.memory.size() as u64;
        let entry = input.entry.clone();
        self.store.data().clock.store(input.time, Ordering::Relaxed);
        self.store.data_mut().ctx = Some(ExecContext {
            input,
            info,
            limits: self.runtime.limits.clone(),
            outstanding,
            reply_buf: Vec::new(),
            response: None,
            calls: Vec::new(),
            timer: None,
            current_timer,
            cycles_accepted: 0,
            trap_message: None,
        });
        if let Err(e) = self.store.set_fuel(limit) {
            return self.trapped(ErrorCode::CanisterTrapped, format!("setting the instruction limit: {}", one_line(&e)), 0);
        }
        let entry_api = self.bindings.ww_canister_entry();
        let started = std::time::Instant::now();
        let result = match &entry {
            E::Init => entry_api.call_init(&mut self.store),
            E::PreUpgrade => entry_api.call_pre_upgrade(&mut self.store),
            E::PostUpgrade => entry_api.call_post_upgrade(&mut self.store),
            E::Update(m) => entry_api.call_update(&mut self.store, m),
            E::Query { method, .. } => entry_api.call_query(&mut self.store, method),
            E::Reply(env) => entry_api.call_on_reply(&mut self.store, *env),
            E::Reject(env) => entry_api.call_on_reject(&mut self.store, *env),
            E::Cleanup(env) => entry_api.call_on_cleanup(&mut self.store, *env),
            E::Timer => entry_api.call_on_timer(&mut self.store),
        };
        let instructions = limit.saturating_sub(self.store.get_fuel().unwrap_or(0));
        match result {
            Ok(()) => {
                let Some(cx) = self.store.data_mut().ctx.take() else {
                    return self.trapped(ErrorCode::CanisterTrapped, "execution context lost".into(), instructions);
                };
                if entry.is_query() {
                    if let Err(e) = self.restore_after_discard(false) {
                        tracing::error!(error = %e, "query rollback failed");
                    }
                    // Only the reply is kept (and, in replicated mode, the
                    // cycles accepted).
                    return Outcome::Committed(Effects {
                        response: cx.response,
                        cycles_accepted: if entry.is_replicated() { cx.cycles_accepted } else { 0 },
                        instructions,
                        ..Effects::default()
                    });
                }
                if stage_only {
                    return Outcome::Committed(Effects {
                        response: cx.response,
                        calls: cx.calls,
                        timer: cx.timer,
                        cycles_accepted: cx.cycles_accepted,
                        instructions,
                        dirty_pages: 0,
                    });
                }
                // The canister's `wasm_memory_limit` (update, init and
                // post_upgrade): growing past it traps.
                let heap = self.memory.size() as u64;
                if let Some(max) = heap_limit
                    && heap > max
                    && heap > heap_before
                {
                    return self.trapped(
                        ErrorCode::CanisterWasmMemoryLimitExceeded,
                        format!("Canister exceeded its current Wasm memory limit of {max} bytes. The peak Wasm memory usage was {heap} bytes. If the canister reaches 4GiB, then it may stop functioning and may become unrecoverable. Please reach out to the canister owner to investigate the reason for the increased memory usage. It might be necessary to move data from the Wasm memory to the stable memory. If such high Wasm memory usage is expected and safe, then the developer can increase the Wasm memory limit in the canister settings."),
                        instructions,
                    );
                }
                let ran = started.elapsed();
                let stats = match self.memory.commit() {
                    Ok(stats) => stats,
                    Err(e) => {
                        return self.trapped(ErrorCode::CanisterTrapped, format!("committing the heap failed: {e}"), instructions);
                    }
                };
                let dirty_pages = stats.dirty_pages;
                self.store.data_mut().stable.commit();
                tracing::trace!(
                    canister = %self.store.data().log_name,
                    entry = ?entry,
                    instructions,
                    run_us = ran.as_micros() as u64,
                    commit_us = (started.elapsed() - ran).as_micros() as u64,
                    private_pages = stats.private_pages,
                    dirty_pages,
                    "executed"
                );
                Outcome::Committed(Effects {
                    response: cx.response,
                    calls: cx.calls,
                    timer: cx.timer,
                    cycles_accepted: cx.cycles_accepted,
                    instructions,
                    dirty_pages,
                })
            }
            Err(e) => {
                let (code, message) = classify_trap(&e, limit);
                self.trapped(code, message, instructions)
            }
        }
    }

    fn trapped(&mut self, code: ErrorCode, message: String, instructions: u64) -> Outcome {
        if let Err(e) = self.restore_after_discard(true) {
            tracing::error!(error = %e, "rebuilding a trapped canister instance failed");
        }
        Outcome::Trapped {
            code,
            message,
            instructions,
        }
    }

    /// Returns heap and stable memory to the last commit. After a trap (or
    /// when the heap size changed) the store is replaced by a new instance.
    fn restore_after_discard(&mut self, rebuild: bool) -> Result<(), String> {
        self.store.data_mut().stable.rollback();
        self.store.data_mut().ctx = None;
        if !rebuild && self.memory.size() == self.memory.committed_size() {
            return self.memory.rollback().map_err(|e| e.to_string());
        }
        // A fresh store and instance on the same (rolled back) memory.
        let old = std::mem::replace(
            &mut self.store,
            new_store(&self.runtime, StableMemory::default(), Arc::new(AtomicU64::new(0)), "".into()),
        );
        let ExecState {
            stable, clock, log_name, ..
        } = old.into_data();
        self.memory.detach();
        self.store = new_store(&self.runtime, stable, clock, log_name);
        let bindings = with_memory_slot(&self.memory, || self.pre.instantiate(&mut self.store)).map_err(|e| one_line(&e))?;
        // Instantiation wrote the data segments again: back to the commit.
        self.memory.rollback().map_err(|e| e.to_string())?;
        self.bindings = bindings;
        Ok(())
    }
}

fn classify_trap(e: &wasmtime::Error, limit: u64) -> (ErrorCode, String) {
    if let Some(t) = e.downcast_ref::<HostTrap>() {
        return (t.code, t.message.clone());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            ErrorCode::CanisterInstructionLimitExceeded,
            format!("Canister exceeded the limit of {limit} instructions for single message execution."),
        ),
        Some(Trap::MemoryOutOfBounds) => (ErrorCode::CanisterTrapped, "heap out of bounds".into()),
        Some(Trap::UnreachableCodeReached) => (ErrorCode::CanisterTrapped, "unreachable".into()),
        Some(Trap::StackOverflow) => (ErrorCode::CanisterTrapped, "stack overflow".into()),
        Some(t) => (ErrorCode::CanisterTrapped, t.to_string()),
        None => (ErrorCode::CanisterTrapped, one_line(e)),
    }
}

/// Checks that every core module in the component has at most one mutable
/// global (the stack pointer, which is back at its initial value at every
/// message boundary). Other mutable globals would not be rolled back with the
/// heap, so such a canister is refused.
pub fn check_component_globals(bytes: &[u8]) -> Result<(), InstallError> {
    use wasmparser::{Parser, Payload};
    let mut memories = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InstallError::Invalid(format!("invalid component: {e}")))?;
        match payload {
            Payload::GlobalSection(globals) => {
                let mut mutable = 0;
                for g in globals {
                    let g = g.map_err(|e| InstallError::Invalid(format!("invalid component: {e}")))?;
                    if g.ty.mutable {
                        mutable += 1;
                    }
                }
                if mutable > 1 {
                    return Err(InstallError::Invalid(format!(
                        "a core module has {mutable} mutable globals; ww canisters may only have the stack pointer (build without threads or the preview1 adapter)"
                    )));
                }
            }
            Payload::MemorySection(mems) => memories += mems.count(),
            _ => {}
        }
    }
    if memories > 1 {
        return Err(InstallError::Invalid(format!(
            "the component defines {memories} memories; a canister may declare at most one"
        )));
    }
    Ok(())
}
