//! The core-module front end: unmodified IC canisters (ic-cdk, Motoko, ...)
//! that import `ic0` (see `ic0_raw`). Entry points are exports by name
//! (`canister_update <m>`, ...); callbacks are entries of the function
//! table, called with their env; the mutable globals (exported by
//! `module_check`) are snapshotted at every commit and restored on rollback,
//! so a trap leaves nothing behind, globals included.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::{Func, Global, Instance, InstancePre, Module, Store, Table, Val};

use super::module_check::{CheckedModule, MEMORY_EXPORT, TABLE_EXPORT};
use super::{CanisterRuntime, Continuation, EntryPoint, ExecState, InstallError, MethodKind, trap};
use crate::engine::one_line;
use crate::replica::memory::{CanisterMemory, with_memory_slot};
use crate::replica::types::ErrorCode;

/// A checked, instrumented and compiled core module.
pub struct CoreModule {
    module: Module,
    memory64: bool,
    methods: HashMap<String, MethodKind>,
    system_exports: Vec<String>,
    globals: Vec<String>,
    eop: bool,
}

impl CoreModule {
    /// Compiles a module [`super::module_check::check_core_module`] accepted.
    pub fn compile(runtime: &CanisterRuntime, what: &str, checked: CheckedModule) -> Result<Self, String> {
        let module = runtime.engine.load_module(what, &checked.bytes).map_err(|e| e.to_string())?;
        Ok(Self {
            module,
            memory64: checked.memory64,
            methods: checked.methods,
            system_exports: checked.system_exports,
            globals: checked.globals,
            eop: checked.enhanced_orthogonal_persistence,
        })
    }

    pub fn methods(&self) -> &HashMap<String, MethodKind> {
        &self.methods
    }

    pub fn memory64(&self) -> bool {
        self.memory64
    }

    pub fn inspects_messages(&self) -> bool {
        self.has_system_export("canister_inspect_message")
    }

    pub fn has_system_export(&self, name: &str) -> bool {
        self.system_exports.iter().any(|e| e == name)
    }

    pub fn enhanced_orthogonal_persistence(&self) -> bool {
        self.eop
    }
}

/// A live core instance and what the host reaches in it.
pub(super) struct CoreFront {
    module: Arc<CoreModule>,
    pre: InstancePre<ExecState>,
    instance: Instance,
    /// Method name → its export; system entry point name → its export.
    methods: HashMap<String, Func>,
    system: HashMap<String, Func>,
    table: Option<Table>,
    globals: Vec<Global>,
    committed_globals: Vec<Val>,
}

impl CoreFront {
    pub(super) fn memory64(&self) -> bool {
        self.module.memory64
    }

    pub(super) fn new(
        runtime: &CanisterRuntime,
        module: &Arc<CoreModule>,
        memory: &CanisterMemory,
        store: &mut Store<ExecState>,
        fresh: bool,
    ) -> Result<Self, InstallError> {
        let linker = if module.memory64 { &runtime.core_linker64 } else { &runtime.core_linker32 };
        let pre = linker
            .instantiate_pre(&module.module)
            .map_err(|e| InstallError::Invalid(format!("cannot link: {}", one_line(&e))))?;
        let instance = with_memory_slot(memory, || pre.instantiate(&mut *store))
            .map_err(|e| InstallError::Invalid(format!("instantiation failed: {}", one_line(&e))))?;
        if fresh {
            // The baseline: data segments and `(start)` as instantiation left them.
            memory.commit()?;
        }
        let mut front = Self {
            module: module.clone(),
            pre,
            instance,
            methods: HashMap::new(),
            system: HashMap::new(),
            table: None,
            globals: Vec::new(),
            committed_globals: Vec::new(),
        };
        front.bind(store).map_err(InstallError::Invalid)?;
        front.snapshot_globals(store);
        Ok(front)
    }

    pub(super) fn module(&self) -> &CoreModule {
        &self.module
    }

    /// Finds the exports in the current instance.
    fn bind(&mut self, store: &mut Store<ExecState>) -> Result<(), String> {
        let instance = self.instance;
        let mut get = |name: &str| instance.get_func(&mut *store, name).ok_or_else(|| format!("export `{name}` is missing"));
        self.methods = self.module.methods.iter().map(|(m, k)| Ok((m.clone(), get(&export_name(m, *k))?))).collect::<Result<_, String>>()?;
        self.system = self.module.system_exports.iter().map(|n| Ok((n.clone(), get(n)?))).collect::<Result<_, String>>()?;
        self.table = instance.get_table(&mut *store, TABLE_EXPORT);
        self.globals = self
            .module
            .globals
            .iter()
            .map(|g| instance.get_global(&mut *store, g).ok_or_else(|| format!("global `{g}` is missing")))
            .collect::<Result<_, _>>()?;
        store.data_mut().memory = instance.get_memory(&mut *store, MEMORY_EXPORT);
        Ok(())
    }

    /// Records the mutable globals as committed.
    pub(super) fn snapshot_globals(&mut self, store: &mut Store<ExecState>) {
        self.committed_globals.clear();
        self.committed_globals.extend(self.globals.iter().map(|g| g.get(&mut *store)));
    }

    /// The committed values of the mutable globals (for a snapshot).
    pub(super) fn committed_globals(&self) -> &[Val] {
        &self.committed_globals
    }

    /// Makes `values` the committed globals and sets them (loading a
    /// snapshot); refused when they do not fit the module's globals.
    pub(super) fn load_globals(&mut self, store: &mut Store<ExecState>, values: &[Val]) -> Result<(), String> {
        if values.len() != self.globals.len() {
            return Err(format!("the snapshot has {} mutable globals, the module {}", values.len(), self.globals.len()));
        }
        self.committed_globals = values.to_vec();
        self.restore_globals(store).map_err(|e| one_line(&e))
    }

    /// Sets the mutable globals back to their committed values.
    pub(super) fn restore_globals(&mut self, store: &mut Store<ExecState>) -> wasmtime::Result<()> {
        for (g, v) in self.globals.iter().zip(&self.committed_globals) {
            g.set(&mut *store, v.clone())?;
        }
        Ok(())
    }

    /// A new instance in `store` (fresh) on `memory`.
    pub(super) fn rebuild(&mut self, memory: &CanisterMemory, store: &mut Store<ExecState>) -> wasmtime::Result<()> {
        self.instance = with_memory_slot(memory, || self.pre.instantiate(&mut *store))?;
        self.bind(store).map_err(|e| wasmtime::format_err!("{e}"))
    }

    /// Runs `entry`: an export by name, or a callback from the table.
    pub(super) fn call(&mut self, store: &mut Store<ExecState>, entry: &EntryPoint) -> wasmtime::Result<()> {
        let system = |name: &str| self.system.get(name);
        let func = match entry {
            EntryPoint::Update(method) | EntryPoint::Query { method, .. } => match self.methods.get(method) {
                Some(f) => f,
                None => return trap(ErrorCode::CanisterMethodNotFound, format!("the module does not export method `{method}`")),
            },
            EntryPoint::Reply(c) | EntryPoint::Reject(c) | EntryPoint::Cleanup(c) => {
                let Continuation::Core { reply, reject, cleanup } = c else {
                    return trap(ErrorCode::CanisterTrapped, "a component's callback reached a core module");
                };
                let (fun, env) = match entry {
                    EntryPoint::Reply(_) => *reply,
                    EntryPoint::Reject(_) => *reject,
                    _ => match cleanup {
                        Some(c) => *c,
                        None => return Ok(()),
                    },
                };
                return self.call_callback(store, fun, env);
            }
            // Optional entry points the module does not export do nothing;
            // without `canister_inspect_message` every message is accepted.
            EntryPoint::Init => match system("canister_init") {
                Some(f) => f,
                None => return Ok(()),
            },
            EntryPoint::PreUpgrade => match system("canister_pre_upgrade") {
                Some(f) => f,
                None => return Ok(()),
            },
            EntryPoint::PostUpgrade => match system("canister_post_upgrade") {
                Some(f) => f,
                None => return Ok(()),
            },
            EntryPoint::Inspect { .. } => match system("canister_inspect_message") {
                Some(f) => f,
                None => return store.data_mut().accept_message(),
            },
            EntryPoint::Timer => match system("canister_global_timer") {
                Some(f) => f,
                None => return trap(ErrorCode::CanisterMethodNotFound, "the module does not export `canister_global_timer`"),
            },
            EntryPoint::Heartbeat | EntryPoint::LowMemory => match system(entry.name()) {
                Some(f) => f,
                None => return trap(ErrorCode::CanisterMethodNotFound, format!("the module does not export `{}`", entry.name())),
            },
        };
        func.call(&mut *store, &[], &mut [])
    }

    fn call_callback(&mut self, store: &mut Store<ExecState>, fun: u64, env: u64) -> wasmtime::Result<()> {
        let Some(table) = self.table else {
            return trap(ErrorCode::CanisterTrapped, "the module has no function table for its callbacks");
        };
        let Some(func) = table.get(&mut *store, fun).and_then(|r| r.as_func().flatten().copied()) else {
            return trap(ErrorCode::CanisterTrapped, format!("callback {fun} is not a function in the table"));
        };
        let arg = if self.module.memory64 { Val::I64(env as i64) } else { Val::I32(env as i32) };
        func.call(&mut *store, &[arg], &mut []).map_err(|e| {
            if e.downcast_ref::<wasmtime::Trap>().is_none() && e.downcast_ref::<super::HostTrap>().is_none() {
                wasmtime::Error::new(super::HostTrap {
                    code: ErrorCode::CanisterTrapped,
                    message: format!("callback {fun} has the wrong type: {}", one_line(&e)),
                })
            } else {
                e
            }
        })
    }
}

fn export_name(method: &str, kind: MethodKind) -> String {
    match kind {
        MethodKind::Update => format!("canister_update {method}"),
        MethodKind::Query => format!("canister_query {method}"),
        MethodKind::CompositeQuery => format!("canister_composite_query {method}"),
    }
}

/// The Candid interface of an ic-cdk module without a
/// `candid:service` section, read as `candid-extractor` does: the module
/// is instantiated in a sandbox (every import traps, a throwaway heap) and
/// its `get_candid_pointer` export (`ic_cdk::export_candid!`) is called; it
/// returns a pointer to the interface as a NUL-terminated string. `None`
/// when the module has no such export or the call fails.
pub fn extract_candid(runtime: &CanisterRuntime, module: &CoreModule) -> Option<String> {
    const EXPORT: &str = "get_candid_pointer";
    const MAX_INTERFACE: usize = 4 << 20;
    let ty = module.module.get_export(EXPORT)?;
    let func_ty = ty.func()?;
    if func_ty.params().len() != 0 || func_ty.results().len() != 1 {
        return None;
    }
    let mut linker: wasmtime::Linker<()> = wasmtime::Linker::new(runtime.engine.wasmtime());
    linker.define_unknown_imports_as_traps(&module.module).ok()?;
    let memory = runtime.new_heap().ok()?;
    let mut store = Store::new(runtime.engine.wasmtime(), ());
    store.set_fuel(runtime.limits.instructions_per_query).ok()?;
    let instance = with_memory_slot(&memory, || linker.instantiate(&mut store, &module.module)).ok()?;
    let f = instance.get_func(&mut store, EXPORT)?;
    let mut out = [Val::I32(0)];
    f.call(&mut store, &[], &mut out).ok()?;
    let ptr = match out[0] {
        Val::I32(p) => p as u32 as usize,
        Val::I64(p) => usize::try_from(p).ok()?,
        _ => return None,
    };
    let heap = instance.get_memory(&mut store, MEMORY_EXPORT)?;
    let data = heap.data(&store).get(ptr..)?;
    let len = data.iter().take(MAX_INTERFACE).position(|b| *b == 0)?;
    String::from_utf8(data[..len].to_vec()).ok()
}
