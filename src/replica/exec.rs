//! One canister instance and the execution of one message on it: the
//! execution core both kinds of canister share.
//!
//! A canister's code is a [`Code`]: a component of `wit/canister.wit`
//! (built with `ww-cdk`; front end in [`component`]) or a core module
//! importing the IC's `ic0` (ic-cdk, Motoko; front end in [`core_module`],
//! its system API over linear memory in [`ic0_raw`]). Both front ends are
//! thin: the system API's logic ([`system_api`]), the staged effects, fuel,
//! commit and rollback are this module's, whatever the kind.
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
//!   heap goes back to the last commit and stable memory is rolled back from
//!   its journal; no effect escapes. A component's store is unusable after a
//!   trap (Wasmtime poisons it), so its instance is rebuilt from its
//!   `InstancePre` on the same memory; a core module's instance stays, and
//!   its mutable globals are set back to their committed values.
//! - queries always roll back, and keep only their reply.
//! - `debug_print` lines and trap messages of replicated executions go to
//!   the canister's log ([`CanisterInstance::take_logs`]), trapped or not.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candid::Principal;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::memory::{CanisterMemory, HeapTracking};
use super::stable::StableMemory;
use super::types::{ErrorCode, Limits, RejectCode};
use crate::engine::one_line;

mod component;
mod core_module;
mod image;
mod store;
mod ic0_raw;
pub use ic0_raw::subnet_id;
pub mod module_check;
mod system_api;

pub use core_module::{CoreModule, extract_candid};
pub use image::InstanceImage;
use store::new_store;

/// What kind of method a canister exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MethodKind {
    Update,
    Query,
    /// Runs only as a non-replicated query; may call other canisters'
    /// queries and composite queries.
    CompositeQuery,
}

/// A canister's compiled code, of either kind.
#[derive(Clone)]
pub enum Code {
    /// A component of `wit/canister.wit` (ww-cdk).
    Component(Component),
    /// A core module importing `ic0` (ic-cdk, Motoko, ...).
    Core(Arc<CoreModule>),
}

/// Where a call's response goes in the calling canister: handed back to it
/// in `EntryPoint::{Reply, Reject, Cleanup}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Continuation {
    /// A component's `entry.on-reply/on-reject/on-cleanup(env)`.
    Component { env: u64 },
    /// A core module's callbacks: function table indices and their envs
    /// (`ic0.call_new`, `ic0.call_on_cleanup`).
    Core {
        reply: (u64, u64),
        reject: (u64, u64),
        cleanup: Option<(u64, u64)>,
    },
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
    Reply(Continuation),
    Reject(Continuation),
    Cleanup(Continuation),
    Timer,
    /// `canister_heartbeat`, once per round.
    Heartbeat,
    /// `canister_on_low_wasm_memory`: the heap came within the canister's
    /// `wasm_memory_threshold` of its `wasm_memory_limit`.
    LowMemory,
    /// `canister_inspect_message` for an ingress update to `method`.
    Inspect { method: String },
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
            EntryPoint::Heartbeat => "canister_heartbeat",
            EntryPoint::LowMemory => "canister_on_low_wasm_memory",
            EntryPoint::Inspect { .. } => "canister_inspect_message",
        }
    }
    /// Keeps no state (queries and inspect_message).
    pub fn is_query(&self) -> bool {
        matches!(self, EntryPoint::Query { .. } | EntryPoint::Inspect { .. })
    }
    /// Runs in replicated mode (everything but a query call and inspect_message).
    pub fn is_replicated(&self) -> bool {
        !matches!(self, EntryPoint::Query { replicated: false, .. } | EntryPoint::Inspect { .. })
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
    /// Part of a composite query's call graph (the method or one of its
    /// callbacks): non-replicated, may call queries (without cycles), and
    /// leaves its changes staged for the graph's next execution on this
    /// canister; the graph discards them at its end.
    pub composite: bool,
    /// Every `ic0.call_perform` of this execution fails (the simulator's
    /// M4: the IC may refuse a call synchronously, e.g. its queue is full).
    pub fail_calls: bool,
    /// Every `memory.grow` of the heap returns -1 (the simulator's R2).
    pub fail_grow: bool,
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
            composite: false,
            fail_calls: false,
            fail_grow: false,
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
    pub continuation: Continuation,
    /// The caller's canister version in the execution that made the call.
    pub caller_version: u64,
    /// What `call_perform` charged for the call and its request bytes.
    pub fee: u128,
    /// What it set aside for the response.
    pub reservation: super::cycles::Reservation,
}

/// The effects of a committed execution.
#[derive(Debug, Default)]
pub struct Effects {
    pub response: Option<Response>,
    pub calls: Vec<OutgoingCall>,
    /// The global timer as the execution left it (if it set it).
    pub timer: Option<u64>,
    pub cycles_accepted: u64,
    /// Cycles `ic0.cycles_burn128` burned.
    pub cycles_burned: u128,
    /// What `ic0.certified_data_set` left, if it was called.
    pub certified_data: Option<Vec<u8>>,
    /// `canister_inspect_message` called `ic0.accept_message`.
    pub accepted: bool,
    pub instructions: u64,
    pub dirty_pages: usize,
}

/// How an execution ended.
#[derive(Debug)]
pub enum Outcome {
    Committed(Effects),
    Trapped { code: ErrorCode, message: String, instructions: u64 },
}

/// Facts about the canister that `ic0` exposes, and about the call context
/// the execution runs in; kept current by the replica.
#[derive(Clone, Debug)]
pub struct CanisterInfo {
    pub id: Principal,
    pub controllers: Vec<Principal>,
    /// 1 running, 2 stopping, 3 stopped.
    pub status: u32,
    pub version: u64,
    /// The balance the execution starts with (its prepayment taken).
    pub balance: u128,
    /// What it may not spend below.
    pub freezing_limit: u128,
    /// What its subnet charges.
    pub fees: super::cycles::Fees,
    /// The module is Wasm64 (instructions cost twice as much).
    pub wasm64: bool,
    /// The canister's environment variables (`ic0.env_var_*`), sorted by name.
    pub env_vars: Arc<Vec<(String, String)>>,
    pub certified_data: Arc<Vec<u8>>,
    /// The subnet the canister lives on (`ic0.subnet_self`).
    pub subnet: Principal,
    /// The sender info of the ingress message whose call context this
    /// execution belongs to (`ic0.msg_caller_info_*`); `None` (empty) for
    /// everything else.
    pub caller_info: Option<Arc<CallerInfo>>,
    /// A certificate of the canister's certified data, for a non-replicated
    /// query (`ic0.data_certificate_*`), made when first asked for; `None`
    /// everywhere else.
    pub data_certificate: Option<super::certified_view::LazyCertificate>,
}

/// What an ingress message's sender info says of its sender, as
/// `ic0.msg_caller_info_data` and `ic0.msg_caller_info_signer` give it: data
/// about the caller and the principal (bytes) of the canister that signed
/// it. Only messages from outside carry one (PocketIC's `sender_info`); ww
/// verifies nothing, as PocketIC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerInfo {
    pub data: Vec<u8>,
    pub signer: Vec<u8>,
}

/// How the host prints what canisters `debug_print` (each line once, when
/// the execution prints it, whatever becomes of the execution).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrintStyle {
    /// ww's log (`tracing`, info): `[<canister name>] <line>`.
    #[default]
    Log,
    /// `[Canister <id>] <line>` straight to stderr, as PocketIC (the IC's
    /// hypervisor) prints it.
    PocketIc,
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
    cycles_burned: u128,
    /// What the staged calls cost (fees and reservations).
    call_charges: u128,
    certified_data: Option<Vec<u8>>,
    accepted: bool,
    /// The call a core module is building (`ic0.call_new` .. `call_perform`).
    pending_call: Option<system_api::StagedCall>,
    /// Set by `ic0.trap`: the canister's own message.
    trap_message: Option<String>,
}

/// One line of a canister's log: what `debug_print` printed or a trap
/// message, at the replica time of the execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub time: u64,
    pub content: Vec<u8>,
}

/// The store data of a canister instance.
pub struct ExecState {
    wasi: WasiCtx,
    table: ResourceTable,
    stable: StableMemory,
    ctx: Option<ExecContext>,
    clock: Arc<AtomicU64>,
    log_name: Arc<str>,
    /// A core module's linear memory (its `ic0` works on it).
    memory: Option<wasmtime::Memory>,
    /// Log lines not yet taken by the replica.
    log: Vec<LogLine>,
    /// How `debug_print` lines are printed on the host.
    print_style: PrintStyle,
    /// The root key canisters see (`ic0.root_key_*`), DER.
    root_key: Arc<[u8]>,
    /// Which subnet holds each threshold key (`ic0.cost_sign_with_*`).
    key_routing: Arc<crate::replica::threshold::KeyRouting>,
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

/// The per-node engine and linkers for canisters: one for components, one
/// for core modules with a 32-bit memory, one for 64-bit.
#[derive(Clone)]
pub struct CanisterRuntime {
    engine: crate::engine::Engine,
    component_linker: Arc<wasmtime::component::Linker<ExecState>>,
    core_linker32: Arc<wasmtime::Linker<ExecState>>,
    core_linker64: Arc<wasmtime::Linker<ExecState>>,
    limits: Limits,
    heap_tracking: HeapTracking,
    print_style: PrintStyle,
    root_key: Arc<[u8]>,
    key_routing: Arc<crate::replica::threshold::KeyRouting>,
}

impl CanisterRuntime {
    pub fn new(engine: crate::engine::Engine, limits: Limits) -> wasmtime::Result<Self> {
        let component_linker = component::linker(engine.wasmtime())?;
        let core_linker32 = ic0_raw::linker(engine.wasmtime(), false)?;
        let core_linker64 = ic0_raw::linker(engine.wasmtime(), true)?;
        Ok(Self {
            engine,
            component_linker: Arc::new(component_linker),
            core_linker32: Arc::new(core_linker32),
            core_linker64: Arc::new(core_linker64),
            limits,
            heap_tracking: HeapTracking::host_default(),
            print_style: PrintStyle::default(),
            root_key: Arc::from(Vec::new()),
            key_routing: Arc::default(),
        })
    }

    /// Instances created from now on print `debug_print` lines in `style`.
    pub fn set_print_style(&mut self, style: PrintStyle) {
        self.print_style = style;
    }

    /// The root key (DER) `ic0.root_key_copy` gives canisters.
    pub fn set_root_key(&mut self, der: Arc<[u8]>) {
        self.root_key = der;
    }

    /// Where threshold keys live, for `ic0.cost_sign_with_*`.
    pub fn set_key_routing(&mut self, routing: Arc<crate::replica::threshold::KeyRouting>) {
        self.key_routing = routing;
    }

    /// Canister heaps created from now on use `tracking`.
    pub fn set_heap_tracking(&mut self, tracking: HeapTracking) {
        self.heap_tracking = tracking;
    }

    /// A new, empty canister heap with this runtime's limits and tracking.
    pub fn new_heap(&self) -> Result<CanisterMemory, super::memory::MemoryError> {
        CanisterMemory::with_tracking(self.limits.wasm_memory_limit, self.limits.memory_guard, self.heap_tracking)
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

/// The code-kind-specific half of an instance.
enum Front {
    Component(component::ComponentFront),
    Core(core_module::CoreFront),
}

/// A canister's live instance: store, heap, stable memory, method table.
pub struct CanisterInstance {
    runtime: CanisterRuntime,
    /// The code it runs (for snapshots and upgrades that keep the heap).
    code: Code,
    front: Front,
    store: Store<ExecState>,
    memory: CanisterMemory,
    methods: HashMap<String, MethodKind>,
}

impl CanisterInstance {
    /// Instantiates `code` on a fresh heap and the given stable memory,
    /// which is taken as it is: changes it has staged (an upgrade's
    /// pre_upgrade writes) stay staged, to be committed or rolled back by
    /// the next execution. Runs no canister code except a core module's
    /// `(start)` and a component's `methods` (on a copy of the heap that is
    /// thrown away, without the stable memory).
    pub fn new(runtime: &CanisterRuntime, code: &Code, stable: StableMemory, name: &str) -> Result<Self, InstallError> {
        Self::new_on(runtime, code, stable, name, None)
    }

    /// [`CanisterInstance::new`] on a kept heap (an upgrade with
    /// `wasm_memory_persistence = keep`): the heap stays as committed, and
    /// what instantiation writes (`(start)`; such modules have passive data
    /// segments) is staged for the next execution.
    pub fn new_on(
        runtime: &CanisterRuntime,
        code: &Code,
        stable: StableMemory,
        name: &str,
        heap: Option<CanisterMemory>,
    ) -> Result<Self, InstallError> {
        let fresh = heap.is_none();
        let memory = match heap {
            Some(m) => m,
            None => runtime.new_heap()?,
        };
        let clock = Arc::new(AtomicU64::new(0));
        let name: Arc<str> = name.into();
        // The stable memory joins after instantiation: resetting the heap
        // after `methods` must not roll back what the stable memory has staged.
        let mut store = new_store(runtime, StableMemory::default(), clock, name);
        let (front, methods) = match code {
            Code::Component(c) => {
                let (front, methods) = component::ComponentFront::new(runtime, c, &memory, &mut store, fresh)?;
                (Front::Component(front), methods)
            }
            Code::Core(m) => {
                let front = core_module::CoreFront::new(runtime, m, &memory, &mut store, fresh)?;
                (Front::Core(front), m.methods().clone())
            }
        };
        let mut instance = Self {
            runtime: runtime.clone(),
            code: code.clone(),
            front,
            store,
            memory,
            methods,
        };
        // On a fresh heap, back to the baseline (a component's method
        // listing ran on it). On a kept heap, what `(start)` wrote stays
        // staged for post_upgrade to commit (Motoko's runtime initializes
        // itself there), or for its trap to undo.
        if fresh {
            instance
                .restore_after_discard(false)
                .map_err(|e| InstallError::Invalid(format!("resetting after instantiation: {e}")))?;
        }
        instance.put_stable(stable);
        Ok(instance)
    }

    pub fn methods(&self) -> &HashMap<String, MethodKind> {
        &self.methods
    }

    /// A Wasm64 module (its instructions cost twice as much).
    pub fn wasm64(&self) -> bool {
        matches!(&self.front, Front::Core(f) if f.memory64())
    }

    /// The instance runs a core module (not a component).
    pub fn is_core(&self) -> bool {
        matches!(self.front, Front::Core(_))
    }

    /// The code exports the system entry point `name` (e.g.
    /// `canister_heartbeat`; components have none but their WIT entries).
    pub fn has_system_export(&self, name: &str) -> bool {
        match &self.front {
            Front::Core(c) => c.module().has_system_export(name),
            Front::Component(_) => false,
        }
    }

    /// The code exports `canister_inspect_message`.
    pub fn inspects_messages(&self) -> bool {
        match &self.front {
            Front::Core(c) => c.module().inspects_messages(),
            Front::Component(_) => false,
        }
    }

    /// A core module declared enhanced orthogonal persistence (its heap may
    /// be kept across upgrades).
    pub fn keeps_main_memory(&self) -> bool {
        match &self.front {
            Front::Core(c) => c.module().enhanced_orthogonal_persistence(),
            Front::Component(_) => false,
        }
    }

    pub fn memory_size(&self) -> usize {
        self.memory.committed_size()
    }

    pub fn stable_size_bytes(&self) -> u64 {
        self.store.data().stable.size_bytes()
    }

    /// The stable memory (committed state between executions).
    pub fn stable(&self) -> &StableMemory {
        &self.store.data().stable
    }

    /// Takes the stable memory out, staged changes included (for an upgrade).
    pub fn take_stable(&mut self) -> StableMemory {
        std::mem::take(&mut self.store.data_mut().stable)
    }

    /// Puts stable memory (back) in.
    pub fn put_stable(&mut self, stable: StableMemory) {
        self.store.data_mut().stable = stable;
    }

    /// Takes the heap out (an upgrade that keeps main memory); the instance
    /// is unusable afterwards.
    pub fn take_heap(self) -> CanisterMemory {
        let CanisterInstance { memory, store, .. } = self;
        drop(store);
        memory
    }

    /// The code this instance runs.
    pub fn code(&self) -> Code {
        self.code.clone()
    }

    /// Commits the heap as it is (what a `stage_only` execution left),
    /// leaving stable memory staged.
    pub fn commit_heap(&mut self) -> Result<(), String> {
        self.memory.commit().map(|_| ()).map_err(|e| e.to_string())
    }

    /// The log lines replicated executions produced since the last call.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.store.data_mut().log)
    }

    /// Commits what a `stage_only` execution left staged.
    pub fn commit_staged(&mut self) -> Result<(), String> {
        self.memory.commit().map_err(|e| e.to_string())?;
        self.store.data_mut().stable.commit();
        if let Front::Core(c) = &mut self.front {
            c.snapshot_globals(&mut self.store);
        }
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
        let composite = input.composite;
        let heap_limit = input.wasm_memory_limit;
        let fail_grow = input.fail_grow;
        let heap_before = self.memory.size() as u64;
        let entry = input.entry.clone();
        let time = input.time;
        let log_before = self.store.data().log.len();
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
            cycles_burned: 0,
            call_charges: 0,
            certified_data: None,
            accepted: false,
            pending_call: None,
            trap_message: None,
        });
        if let Err(e) = self.store.set_fuel(limit) {
            return self.trapped(&entry, time, ErrorCode::CanisterTrapped, format!("setting the instruction limit: {}", one_line(&e)), 0);
        }
        let started = std::time::Instant::now();
        self.memory.refuse_growth(fail_grow);
        let result = match &mut self.front {
            Front::Component(f) => f.call(&mut self.store, &entry),
            Front::Core(f) => f.call(&mut self.store, &entry),
        };
        self.memory.refuse_growth(false);
        let instructions = limit.saturating_sub(self.store.get_fuel().unwrap_or(0));
        if !entry.is_replicated() || composite {
            // Non-replicated executions leave nothing in the log.
            self.store.data_mut().log.truncate(log_before);
        }
        match result {
            Ok(()) => {
                let Some(cx) = self.store.data_mut().ctx.take() else {
                    return self.trapped(&entry, time, ErrorCode::CanisterTrapped, "execution context lost".into(), instructions);
                };
                if composite {
                    return Outcome::Committed(Effects {
                        response: cx.response,
                        calls: cx.calls,
                        instructions,
                        ..Effects::default()
                    });
                }
                if entry.is_query() {
                    if let Err(e) = self.restore_after_discard(false) {
                        tracing::error!(error = %e, "query rollback failed");
                    }
                    // Only the reply is kept (and, in replicated mode, the
                    // cycles accepted).
                    return Outcome::Committed(Effects {
                        response: cx.response,
                        cycles_accepted: if entry.is_replicated() { cx.cycles_accepted } else { 0 },
                        accepted: cx.accepted,
                        instructions,
                        ..Effects::default()
                    });
                }
                let effects = Effects {
                    response: cx.response,
                    calls: cx.calls,
                    timer: cx.timer,
                    cycles_accepted: cx.cycles_accepted,
                    cycles_burned: cx.cycles_burned,
                    certified_data: cx.certified_data,
                    accepted: false,
                    instructions,
                    dirty_pages: 0,
                };
                if stage_only {
                    return Outcome::Committed(effects);
                }
                // The canister's `wasm_memory_limit` (update, init and
                // post_upgrade): growing past it traps.
                let heap = self.memory.size() as u64;
                if let Some(max) = heap_limit
                    && heap > max
                    && heap > heap_before
                {
                    return self.trapped(
                        &entry,
                        time,
                        ErrorCode::CanisterWasmMemoryLimitExceeded,
                        format!("Canister exceeded its current Wasm memory limit of {max} bytes. The peak Wasm memory usage was {heap} bytes. If the canister reaches 4GiB, then it may stop functioning and may become unrecoverable. Please reach out to the canister owner to investigate the reason for the increased memory usage. It might be necessary to move data from the Wasm memory to the stable memory. If such high Wasm memory usage is expected and safe, then the developer can increase the Wasm memory limit in the canister settings."),
                        instructions,
                    );
                }
                let ran = started.elapsed();
                let stats = match self.memory.commit() {
                    Ok(stats) => stats,
                    Err(e) => {
                        return self.trapped(&entry, time, ErrorCode::CanisterTrapped, format!("committing the heap failed: {e}"), instructions);
                    }
                };
                self.store.data_mut().stable.commit();
                if let Front::Core(c) = &mut self.front {
                    c.snapshot_globals(&mut self.store);
                }
                tracing::trace!(
                    canister = %self.store.data().log_name,
                    entry = ?entry,
                    instructions,
                    run_us = ran.as_micros() as u64,
                    commit_us = (started.elapsed() - ran).as_micros() as u64,
                    private_pages = stats.private_pages,
                    dirty_pages = stats.dirty_pages,
                    "executed"
                );
                Outcome::Committed(Effects {
                    dirty_pages: stats.dirty_pages,
                    ..effects
                })
            }
            Err(e) => {
                let (code, message) = classify_trap(&e, limit);
                self.trapped(&entry, time, code, message, instructions)
            }
        }
    }

    fn trapped(&mut self, entry: &EntryPoint, time: u64, code: ErrorCode, message: String, instructions: u64) -> Outcome {
        let composite = self.store.data().ctx.as_ref().is_some_and(|c| c.input.composite);
        // A component's store is poisoned by a trap; a core module's is not.
        let rebuild = matches!(self.front, Front::Component(_));
        if let Err(e) = self.restore_after_discard(rebuild) {
            tracing::error!(error = %e, "rolling back a trapped canister instance failed");
        }
        if entry.is_replicated() && !composite {
            self.store.data_mut().log.push(LogLine {
                time,
                content: format!("[TRAP]: {message}").into_bytes(),
            });
        }
        Outcome::Trapped {
            code,
            message,
            instructions,
        }
    }

    /// Returns heap and stable memory (and a core module's globals) to the
    /// last commit. The instance is rebuilt on the rolled-back memory when
    /// asked to, or when the heap size changed (Wasmtime caches it).
    fn restore_after_discard(&mut self, rebuild: bool) -> Result<(), String> {
        self.store.data_mut().stable.rollback();
        self.store.data_mut().ctx = None;
        if !rebuild && self.memory.size() == self.memory.committed_size() {
            self.memory.rollback().map_err(|e| e.to_string())?;
            if let Front::Core(c) = &mut self.front {
                c.restore_globals(&mut self.store).map_err(|e| one_line(&e))?;
            }
            return Ok(());
        }
        // A fresh store and instance on the same (rolled back) memory.
        let old = std::mem::replace(
            &mut self.store,
            new_store(&self.runtime, StableMemory::default(), Arc::new(AtomicU64::new(0)), "".into()),
        );
        let ExecState {
            stable, clock, log_name, log, ..
        } = old.into_data();
        self.memory.detach();
        self.store = new_store(&self.runtime, stable, clock, log_name);
        self.store.data_mut().log = log;
        match &mut self.front {
            Front::Component(f) => f.rebuild(&self.memory, &mut self.store).map_err(|e| one_line(&e))?,
            Front::Core(f) => f.rebuild(&self.memory, &mut self.store).map_err(|e| one_line(&e))?,
        }
        // Instantiation wrote the data segments again: back to the commit.
        self.memory.rollback().map_err(|e| e.to_string())?;
        if let Front::Core(c) = &mut self.front {
            c.restore_globals(&mut self.store).map_err(|e| one_line(&e))?;
        }
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
