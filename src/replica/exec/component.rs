//! The component front end: canisters built with `ww-cdk`, components of
//! `wit/canister.wit`. The typed `ic0` interface is a thin layer on the
//! shared system API ([`super::system_api`]); entry points are the
//! component's `entry` exports, the method table comes from `entry.methods`.

use std::collections::HashMap;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, StoreContextMut};

use super::{CanisterRuntime, Continuation, EntryPoint, ExecState, InstallError, MethodKind, trap};
use crate::engine::one_line;
use crate::replica::memory::{CanisterMemory, with_memory_slot};
use crate::replica::types::ErrorCode;

wasmtime::component::bindgen!({
    world: "canister",
    path: "wit/canister.wit",
    imports: { default: trappable },
});

use exports::ww::canister::entry::MethodKind as WitMethodKind;
pub(super) use ww::canister::ic0;

/// The component linker: WASI (deterministic, see `new_store`) and `ic0`.
pub(super) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<ExecState>> {
    let mut linker: Linker<ExecState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Canister::add_to_linker::<ExecState, HasSelf<ExecState>>(&mut linker, |s| s)?;
    linker.allow_shadowing(true);
    // performance-counter needs the store's fuel, which a `Host` method
    // cannot see.
    linker.instance("ww:canister/ic0@0.1.0")?.func_wrap(
        "performance-counter",
        |store: StoreContextMut<'_, ExecState>, (kind,): (u32,)| super::system_api::performance_counter(&store, kind).map(|n| (n,)),
    )?;
    Ok(linker)
}

pub(super) struct ComponentFront {
    pre: CanisterPre<ExecState>,
    bindings: Canister,
}

impl ComponentFront {
    /// Instantiates `component` on `memory` and lists its methods (on a heap
    /// the caller rolls back).
    pub(super) fn new(
        runtime: &CanisterRuntime,
        component: &Component,
        memory: &CanisterMemory,
        store: &mut Store<ExecState>,
        fresh: bool,
    ) -> Result<(Self, HashMap<String, MethodKind>), InstallError> {
        let pre = runtime
            .component_linker
            .instantiate_pre(component)
            .map_err(|e| InstallError::Invalid(format!("cannot link: {}", one_line(&e))))?;
        let pre = CanisterPre::new(pre).map_err(|e| InstallError::Invalid(format!("not a canister component: {}", one_line(&e))))?;
        let bindings = with_memory_slot(memory, || pre.instantiate(&mut *store))
            .map_err(|e| InstallError::Invalid(format!("instantiation failed: {}", one_line(&e))))?;
        if fresh {
            // The baseline: data segments as instantiation wrote them.
            memory.commit()?;
        }
        let listed = bindings
            .ww_canister_entry()
            .call_methods(&mut *store)
            .map_err(|e| InstallError::Invalid(format!("listing methods failed: {}", one_line(&e))))?;
        let methods = listed
            .into_iter()
            .map(|m| {
                let kind = match m.kind {
                    WitMethodKind::Update => MethodKind::Update,
                    WitMethodKind::Query => MethodKind::Query,
                    WitMethodKind::CompositeQuery => MethodKind::CompositeQuery,
                };
                (m.name, kind)
            })
            .collect();
        Ok((Self { pre, bindings }, methods))
    }

    /// A new instance in `store` (fresh) on `memory`.
    pub(super) fn rebuild(&mut self, memory: &CanisterMemory, store: &mut Store<ExecState>) -> wasmtime::Result<()> {
        self.bindings = with_memory_slot(memory, || self.pre.instantiate(&mut *store))?;
        Ok(())
    }

    /// Runs `entry`.
    pub(super) fn call(&mut self, store: &mut Store<ExecState>, entry: &EntryPoint) -> wasmtime::Result<()> {
        let api = self.bindings.ww_canister_entry();
        let env = |c: &Continuation| match c {
            Continuation::Component { env } => Ok(*env),
            Continuation::Core { .. } => trap(ErrorCode::CanisterTrapped, "a core module's callback reached a component"),
        };
        match entry {
            EntryPoint::Init => api.call_init(store),
            EntryPoint::PreUpgrade => api.call_pre_upgrade(store),
            EntryPoint::PostUpgrade => api.call_post_upgrade(store),
            EntryPoint::Update(m) => api.call_update(store, m),
            EntryPoint::Query { method, .. } => api.call_query(store, method),
            EntryPoint::Reply(c) => api.call_on_reply(store, env(c)?),
            EntryPoint::Reject(c) => api.call_on_reject(store, env(c)?),
            EntryPoint::Cleanup(c) => api.call_on_cleanup(store, env(c)?),
            EntryPoint::Timer => api.call_on_timer(store),
            // Components have no heartbeat entry point (never scheduled).
            EntryPoint::Heartbeat | EntryPoint::LowMemory => Ok(()),
            // Components have no inspect_message: every message is accepted.
            EntryPoint::Inspect { .. } => Ok(()),
        }
    }
}
