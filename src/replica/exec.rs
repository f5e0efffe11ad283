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

impl ExecState {
    fn cx(&mut self, function: &str) -> wasmtime::Result<&mut ExecContext> {
        match self.ctx.as_mut() {
            Some(c) => Ok(c),
            None => trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.{function} called outside of a message execution"),
            ),
        }
    }

    /// The context, if `function` may be called from the current entry point.
    fn allowed(&mut self, function: &str, ok: impl Fn(&EntryPoint) -> bool) -> wasmtime::Result<&mut ExecContext> {
        let cx = self.cx(function)?;
        if !ok(&cx.input.entry) {
            let from = cx.input.entry.name();
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("\"ic0.{function}\" cannot be executed in {from} mode"),
            );
        }
        Ok(cx)
    }
}

use EntryPoint as E;

fn can_read_arg(e: &EntryPoint) -> bool {
    matches!(e, E::Init | E::PostUpgrade | E::Update(_) | E::Query { .. } | E::Reply(_))
}
fn can_respond(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_))
}
fn can_call(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Reply(_) | E::Reject(_) | E::Timer)
}
fn is_callback(e: &EntryPoint) -> bool {
    matches!(e, E::Reply(_) | E::Reject(_))
}
/// Where the cycles attached to the call can be seen and accepted.
fn can_take_cycles(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Query { replicated: true, .. } | E::Reply(_) | E::Reject(_))
}

impl ic0::Host for ExecState {
    fn msg_arg_data(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.allowed("msg_arg_data_copy", can_read_arg)?.input.arg.clone())
    }

    fn msg_caller(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.cx("msg_caller_copy")?.input.caller.as_slice().to_vec())
    }

    fn msg_reject_code(&mut self) -> wasmtime::Result<u32> {
        let cx = self.allowed("msg_reject_code", is_callback)?;
        Ok(cx.input.reject.as_ref().map_or(0, |(c, _)| *c as u32))
    }

    fn msg_reject_msg(&mut self) -> wasmtime::Result<String> {
        let cx = self.allowed("msg_reject_msg_copy", |e| matches!(e, E::Reject(_)))?;
        Ok(cx.input.reject.as_ref().map(|(_, m)| m.clone()).unwrap_or_default())
    }

    fn msg_deadline(&mut self) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_deadline", |e| {
            matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_))
        })?;
        Ok(cx.input.deadline)
    }

    fn msg_method_name(&mut self) -> wasmtime::Result<String> {
        // The IC allows it only in `canister_inspect_message`, which ww does
        // not run: everywhere else it traps, so code relying on it fails
        // here as it would on the IC.
        self.allowed("msg_method_name_copy", |_| false)?;
        Ok(String::new())
    }

    fn msg_reply_data_append(&mut self, data: Vec<u8>) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reply_data_append", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reply_data_append: the call was already answered");
        }
        let max = cx.max_reply_bytes();
        if cx.reply_buf.len() + data.len() > max {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.msg_reply_data_append: application payload size ({}) cannot be larger than {max}", cx.reply_buf.len() + data.len()),
            );
        }
        cx.reply_buf.extend_from_slice(&data);
        Ok(())
    }

    fn msg_reply(&mut self) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reply", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reply: the call was already answered (a call gets exactly one response)");
        }
        cx.response = Some(Response::Reply(std::mem::take(&mut cx.reply_buf)));
        Ok(())
    }

    fn msg_reject(&mut self, message: String) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reject", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reject: the call was already answered (a call gets exactly one response)");
        }
        cx.response = Some(Response::Reject(message));
        Ok(())
    }

    fn msg_cycles_available(&mut self) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_cycles_available", can_take_cycles)?;
        Ok(cx.cycles_left())
    }

    fn msg_cycles_accept(&mut self, max_amount: u64) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_cycles_accept", can_take_cycles)?;
        let n = max_amount.min(cx.cycles_left());
        cx.cycles_accepted += n;
        Ok(n)
    }

    fn msg_cycles_refunded(&mut self) -> wasmtime::Result<u64> {
        Ok(self.allowed("msg_cycles_refunded", is_callback)?.input.cycles_refunded)
    }

    fn canister_cycle_balance(&mut self) -> wasmtime::Result<u64> {
        let cx = self.cx("canister_cycle_balance")?;
        let attached: u64 = cx.calls.iter().map(|c| c.cycles).sum();
        Ok(cx.info.balance.saturating_add(cx.cycles_accepted).saturating_sub(attached))
    }

    fn canister_self(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.cx("canister_self_copy")?.info.id.as_slice().to_vec())
    }

    fn canister_status(&mut self) -> wasmtime::Result<u32> {
        Ok(self.cx("canister_status")?.info.status)
    }

    fn canister_version(&mut self) -> wasmtime::Result<u64> {
        Ok(self.cx("canister_version")?.info.version)
    }

    fn is_controller(&mut self, principal: Vec<u8>) -> wasmtime::Result<bool> {
        let cx = self.cx("is_controller")?;
        let Ok(p) = Principal::try_from_slice(&principal) else {
            return trap(ErrorCode::CanisterContractViolation, "ic0.is_controller: not a valid principal");
        };
        Ok(cx.info.controllers.contains(&p))
    }

    fn in_replicated_execution(&mut self) -> wasmtime::Result<bool> {
        let cx = self.cx("in_replicated_execution")?;
        Ok(!matches!(cx.input.entry, E::Query { replicated: false, .. }))
    }

    fn call(&mut self, args: ic0::CallArgs) -> wasmtime::Result<Result<(), ic0::Reject>> {
        let cx = self.allowed("call_perform", can_call)?;
        let Ok(callee) = Principal::try_from_slice(&args.callee) else {
            return trap(ErrorCode::CanisterContractViolation, "ic0.call_new: callee is not a valid principal");
        };
        if args.arg.len() > cx.limits.max_inter_canister_payload {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!(
                    "ic0.call_data_append: payload size ({}) cannot be larger than {}",
                    args.arg.len(),
                    cx.limits.max_inter_canister_payload
                ),
            );
        }
        let staged = cx.calls.iter().filter(|c| c.callee == callee).count() as u32;
        if (cx.outstanding)(&callee) + staged >= cx.limits.max_outstanding_calls {
            return Ok(Err(ic0::Reject {
                code: RejectCode::SysTransient as u32,
                message: format!(
                    "IC0201: Canister {} has {} outstanding calls to {callee}; the queue is full",
                    cx.info.id, cx.limits.max_outstanding_calls
                ),
            }));
        }
        let balance = self.canister_cycle_balance()?;
        let cx = self.cx("call_perform")?;
        if args.cycles > balance {
            // As `ic0.call_cycles_add128` on the IC: a trap, not a reject.
            return trap(
                ErrorCode::CanisterOutOfCycles,
                format!("Canister {} attempted to send {} cycles when only {balance} were available in its balance", cx.info.id, args.cycles),
            );
        }
        cx.calls.push(OutgoingCall {
            callee,
            method: args.method,
            arg: args.arg,
            cycles: args.cycles,
            timeout_seconds: args.timeout_seconds.map(|t| t.min(cx.limits.max_call_timeout_seconds)),
            env: args.env,
            caller_version: cx.info.version,
        });
        Ok(Ok(()))
    }

    fn stable_size(&mut self) -> wasmtime::Result<u64> {
        self.cx("stable64_size")?;
        Ok(self.stable.size())
    }

    fn stable_grow(&mut self, new_pages: u64) -> wasmtime::Result<i64> {
        self.cx("stable64_grow")?;
        Ok(self.stable.grow(new_pages))
    }

    fn stable_read(&mut self, offset: u64, length: u64) -> wasmtime::Result<Vec<u8>> {
        self.cx("stable64_read")?;
        self.stable
            .read(offset, length)
            .or_else(|e| trap(ErrorCode::CanisterTrapped, format!("ic0.stable64_read: {e}")))
    }

    fn stable_write(&mut self, offset: u64, data: Vec<u8>) -> wasmtime::Result<()> {
        self.cx("stable64_write")?;
        self.stable
            .write(offset, &data)
            .or_else(|e| trap(ErrorCode::CanisterTrapped, format!("ic0.stable64_write: {e}")))
    }

    fn time(&mut self) -> wasmtime::Result<u64> {
        Ok(self.cx("time")?.input.time)
    }

    fn global_timer_set(&mut self, timestamp: u64) -> wasmtime::Result<u64> {
        let cx = self.allowed("global_timer_set", |e| !e.is_query())?;
        let previous = cx.timer.unwrap_or(cx.current_timer);
        cx.timer = Some(timestamp);
        Ok(previous)
    }

    fn performance_counter(&mut self, _counter_type: u32) -> wasmtime::Result<u64> {
        // Replaced by a store-aware definition in `CanisterRuntime::new`
        // (it needs the store's fuel); this one is never linked.
        Ok(0)
    }

    fn debug_print(&mut self, message: String) -> wasmtime::Result<()> {
        tracing::info!(target: "ww::canister", "[{}] {}", self.log_name, message);
        Ok(())
    }

    fn trap(&mut self, message: String) -> wasmtime::Result<()> {
        if let Some(cx) = self.ctx.as_mut() {
            cx.trap_message = Some(message.clone());
        }
        trap(ErrorCode::CanisterCalledTrap, message)
    }
}

impl ExecContext {
    /// Cycles of the call not accepted yet; none once it is answered (they
    /// went back with the response).
    fn cycles_left(&self) -> u64 {
        if self.response.is_some() || !self.input.needs_response {
            return 0;
        }
        self.input.cycles_available.saturating_sub(self.cycles_accepted)
    }

    fn max_reply_bytes(&self) -> usize {
        match self.input.entry {
            E::Query { replicated: false, .. } => self.limits.max_query_reply,
            _ => self.limits.max_inter_canister_payload,
        }
    }
}

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
        let listed = match listed {
            Ok(l) => l,
            Err(e) => return Err(e),
        };
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
