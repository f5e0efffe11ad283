//! Code installation as executions: install, reinstall and upgrade (atomic:
//! pre_upgrade, a new instance on the same stable memory, post_upgrade; any
//! trap leaves the old version running as it was), and what a successful
//! one changes in the canister's slot; stopping, starting and deleting
//! canisters.

use std::sync::Arc;

use candid::Principal;

use super::exec::{self, CanisterInstance, EntryPoint, MessageInput, Outcome};
use super::scheduler::{Finished, Inner, outstanding_counter, send_call};
use super::stable::StableMemory;
use super::state::{Done, InstallJob, ModuleSource, Origin};
use super::history::{Change, ChangeDetails, ChangeOrigin};
use super::{ErrorCode, InstallMode, InstallSource, Reject, RejectCode, Replica, Status, completion, not_controller};

/// What the history records of an install besides the module hash.
#[derive(Clone, Copy)]
pub(super) struct Deployment {
    pub(super) mode: InstallMode,
    pub(super) source: InstallSource,
    pub(super) origin: ChangeOrigin,
}

/// The state changes of a successful install; the caller learns of it only
/// once they are applied (so its next call finds the new module).
pub(super) fn installed(
    instance: Box<CanisterInstance>,
    canister: Principal,
    module: ModuleSource,
    deployment: Deployment,
    effects: exec::Effects,
    done: Done,
) -> Finished {
    let module_hash = module.hash;
    let wasm64 = instance.wasm64();
    let methods = instance.methods().clone();
    let heartbeat = instance.has_system_export("canister_heartbeat");
    let low_memory_hook = instance.has_system_export("canister_on_low_wasm_memory");
    Finished {
        instance: Some(instance),
        apply: Box::new(move |inner, st| {
            let time = st.now();
            if let Some(slot) = st.canisters.get_mut(&canister) {
                // The install's execution (init or post_upgrade).
                slot.charge(slot.fees.execution_cost(effects.instructions, wasm64));
                slot.module_hash = Some(module_hash);
                slot.module = Some(module.bytes);
                slot.methods = methods;
                slot.heartbeat = heartbeat;
                slot.heartbeat_queued = false;
                slot.low_memory_hook = low_memory_hook;
                slot.low_memory_fired = false;
                slot.version += 1;
                slot.timer = effects.timer.unwrap_or(0);
                slot.history.record(Change {
                    time,
                    canister_version: slot.version,
                    origin: deployment.origin,
                    details: ChangeDetails::CodeDeployment { mode: deployment.mode, module_hash, source: deployment.source },
                });
            }
            let context = st.new_context(canister, Principal::management_canister(), Origin::System, 0);
            for call in effects.calls {
                send_call(inner, st, canister, context, call);
            }
            st.maybe_close(context);
            done.call(Ok(()));
        }),
    }
}

/// Installs a module: install, reinstall or upgrade (atomic).
pub(super) fn run_install(inner: &Arc<Inner>, canister: Principal, old: Option<Box<CanisterInstance>>, job: InstallJob) -> Finished {
    let InstallJob { mode, code, module, arg, caller, source, skip_pre_upgrade, keep_main_memory, origin, done } = job;
    let deployment = Deployment { mode, source, origin };
    let limits = inner.config.limits.clone();
    let (mut info, time, had_module, timer, heap_limit) = {
        let mut st = inner.lock();
        let time = st.now();
        match st.canisters.get_mut(&canister) {
            // The install prepays its instruction limit: a canister that
            // cannot is not touched.
            Some(slot) if !slot.can_pay(slot.fees.execution_cost(limits.instructions_per_install, false)) => {
                let prepay = slot.fees.execution_cost(limits.instructions_per_install, false);
                let why = slot.out_of_cycles(&canister, &caller, prepay);
                let reject = Reject::system(ErrorCode::CanisterOutOfCycles, format!("Canister installation failed with {}", why.message));
                done.call(Err(reject));
                return Finished { instance: old, apply: Box::new(|_, _| {}) };
            }
            Some(slot) => {
                slot.settle_resources(time);
                (slot.info(canister), time, slot.module_hash.is_some(), slot.timer, slot.settings.heap_limit())
            }
            None => {
                done.call(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
                return Finished { instance: old, apply: Box::new(|_, _| {}) };
            }
        }
    };
    let fail = |old: Option<Box<CanisterInstance>>, reject: Reject, done: Done| {
        done.call(Err(reject));
        Finished { instance: old, apply: Box::new(|_, _| {}) }
    };
    let outstanding = outstanding_counter(inner, canister);
    let name = canister.to_text();
    let stable_pages = limits.stable_memory_pages;
    // pre_upgrade sees the version before the install; init and
    // post_upgrade the version after it.
    let old_info = info.clone();
    info.version += 1;
    match mode {
        InstallMode::Install | InstallMode::Reinstall => {
            if mode == InstallMode::Install && had_module {
                let r = Reject::system(
                    ErrorCode::CanisterAlreadyInstalled,
                    format!("Canister {canister} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."),
                );
                return fail(old, r, done);
            }
            let mut instance = match CanisterInstance::new(&inner.runtime, &code, StableMemory::new(stable_pages), &name) {
                Ok(i) => Box::new(i),
                Err(e) => return fail(old, Reject::system(ErrorCode::CanisterInvalidWasm, format!("Canister {canister}: {e}")), done),
            };
            let mut input = MessageInput::new(EntryPoint::Init, caller, time, limits.instructions_per_install);
            input.arg = arg;
            input.wasm_memory_limit = heap_limit;
            match instance.execute(input, info, 0, outstanding) {
                Outcome::Trapped { code, message, .. } => {
                    fail(old, Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during init: {message}")), done)
                }
                Outcome::Committed(effects) => installed(instance, canister, module, deployment, effects, done),
            }
        }
        InstallMode::Upgrade => {
            let Some(mut old_instance) = old else {
                return fail(
                    None,
                    Reject::system(
                        ErrorCode::CanisterWasmModuleNotFound,
                        format!("Error from Canister {canister}: Attempted to upgrade the canister, but it contains no Wasm module."),
                    ),
                    done,
                );
            };
            // Enhanced orthogonal persistence (Motoko): the heap is kept only
            // when asked, and only for a module built for it; a canister
            // running such a module must say what happens to its heap.
            let new_eop = matches!(&code, exec::Code::Core(m) if m.enhanced_orthogonal_persistence());
            let invalid_option = match keep_main_memory {
                Some(true) if !new_eop => Some("Invalid upgrade option: `wasm_memory_persistence = opt variant { keep }` requires a module with enhanced orthogonal persistence; the new module does not declare it."),
                None if old_instance.keeps_main_memory() => Some("Missing upgrade option: Enhanced orthogonal persistence requires the `wasm_memory_persistence` upgrade option."),
                _ => None,
            };
            if let Some(message) = invalid_option {
                return fail(Some(old_instance), Reject::system(ErrorCode::CanisterContractViolation, format!("Error from Canister {canister}: {message}")), done);
            }
            if keep_main_memory == Some(true) {
                return upgrade_keeping_heap(inner, canister, old_instance, code, module, deployment, (arg, caller, time), (old_info, info, timer), skip_pre_upgrade, done);
            }
            // The new module is instantiated first (with no stable memory
            // yet): a module that cannot run is refused before pre_upgrade.
            let mut new_instance = match CanisterInstance::new(&inner.runtime, &code, StableMemory::default(), &name) {
                Ok(i) => Box::new(i),
                Err(e) => {
                    return fail(
                        Some(old_instance),
                        Reject::system(ErrorCode::CanisterInvalidWasm, format!("Canister {canister}: {e}")),
                        done,
                    );
                }
            };
            if !skip_pre_upgrade
                && let Err(reject) = pre_upgrade(&mut old_instance, canister, (caller, time, limits.instructions_per_install), old_info, timer, outstanding.clone())
            {
                return fail(Some(old_instance), reject, done);
            }
            // pre_upgrade's stable memory writes stay staged: post_upgrade's
            // commit keeps them, its trap undoes them.
            new_instance.put_stable(old_instance.take_stable());
            let mut post = MessageInput::new(EntryPoint::PostUpgrade, caller, time, limits.instructions_per_install);
            post.arg = arg;
            post.wasm_memory_limit = heap_limit;
            match new_instance.execute(post, info, 0, outstanding) {
                Outcome::Trapped { code, message, .. } => {
                    // Back to the old version: stable memory (with pre_upgrade's
                    // writes undone) and the old heap.
                    let mut stable = new_instance.take_stable();
                    stable.rollback();
                    old_instance.put_stable(stable);
                    old_instance.discard_staged();
                    fail(
                        Some(old_instance),
                        Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during post_upgrade: {message}")),
                        done,
                    )
                }
                Outcome::Committed(effects) => installed(new_instance, canister, module, deployment, effects, done),
            }
        }
    }
}

/// Runs the old module's pre_upgrade with its heap and stable memory
/// changes left staged (the upgrade commits or discards them). It sees the
/// timer as it is (the install then deactivates it).
fn pre_upgrade(
    old: &mut CanisterInstance,
    canister: Principal,
    (caller, time, instructions): (Principal, u64, u64),
    old_info: exec::CanisterInfo,
    timer: u64,
    outstanding: exec::OutstandingCalls,
) -> Result<(), Reject> {
    let mut pre = MessageInput::new(EntryPoint::PreUpgrade, caller, time, instructions);
    pre.stage_only = true;
    match old.execute(pre, old_info, timer, outstanding) {
        Outcome::Trapped { code, message, .. } => {
            Err(Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during pre_upgrade: {message}")))
        }
        Outcome::Committed(_) => Ok(()),
    }
}

/// An upgrade with `wasm_memory_persistence = keep`: pre_upgrade runs, its
/// heap is kept and the new module is instantiated on it (what `(start)`
/// writes stays staged), then post_upgrade. A trap in post_upgrade
/// brings the old module back on the heap as pre_upgrade left it, with
/// stable memory rolled back (the heap has no second level of staging).
#[allow(clippy::too_many_arguments)]
fn upgrade_keeping_heap(
    inner: &Arc<Inner>,
    canister: Principal,
    mut old_instance: Box<CanisterInstance>,
    code: exec::Code,
    module: ModuleSource,
    deployment: Deployment,
    (arg, caller, time): (Vec<u8>, Principal, u64),
    (old_info, info, timer): (exec::CanisterInfo, exec::CanisterInfo, u64),
    skip_pre_upgrade: bool,
    done: Done,
) -> Finished {
    let limits = inner.config.limits.clone();
    let outstanding = outstanding_counter(inner, canister);
    let name = canister.to_text();
    let fail = |old: Option<Box<CanisterInstance>>, reject: Reject, done: Done| {
        done.call(Err(reject));
        Finished { instance: old, apply: Box::new(|_, _| {}) }
    };
    if !skip_pre_upgrade
        && let Err(reject) = pre_upgrade(&mut old_instance, canister, (caller, time, limits.instructions_per_install), old_info, timer, outstanding.clone())
    {
        return fail(Some(old_instance), reject, done);
    }
    let old_code = old_instance.code();
    let stable = old_instance.take_stable();
    if let Err(e) = old_instance.commit_heap() {
        old_instance.put_stable(stable);
        return fail(Some(old_instance), Reject::system(ErrorCode::CanisterTrapped, format!("Canister {canister}: {e}")), done);
    }
    let heap = old_instance.take_heap();
    let back_to_old = |heap, mut stable: StableMemory, reject: Reject, done: Done| {
        stable.rollback();
        let old = CanisterInstance::new_on(&inner.runtime, &old_code, stable, &name, Some(heap)).ok().map(Box::new);
        if old.is_none() {
            tracing::error!(canister = %canister, "the old module could not be brought back after a failed upgrade");
        }
        fail(old, reject, done)
    };
    let mut new_instance = match CanisterInstance::new_on(&inner.runtime, &code, StableMemory::default(), &name, Some(heap.clone())) {
        Ok(i) => Box::new(i),
        Err(e) => return back_to_old(heap, stable, Reject::system(ErrorCode::CanisterInvalidWasm, format!("Canister {canister}: {e}")), done),
    };
    new_instance.put_stable(stable);
    let mut post = MessageInput::new(EntryPoint::PostUpgrade, caller, time, limits.instructions_per_install);
    post.arg = arg;
    match new_instance.execute(post, info, 0, outstanding) {
        Outcome::Trapped { code, message, .. } => {
            let stable = new_instance.take_stable();
            drop(new_instance);
            let reject = Reject::system(code, format!("Error from Canister {canister}: Canister called trap or trapped during post_upgrade: {message}"));
            back_to_old(heap, stable, reject, done)
        }
        Outcome::Committed(effects) => installed(new_instance, canister, module, deployment, effects, done),
    }
}

/// `uninstall_code`: the module, heap, stable memory and timer go; every
/// call the canister has not answered is rejected and its call contexts are
/// deleted, so responses to its outstanding calls run no callback (they
/// only refund cycles). Cycles, controllers, history and status stay.
pub(super) fn run_uninstall(
    canister: Principal,
    old: Option<Box<CanisterInstance>>,
    origin: ChangeOrigin,
    done: Done,
) -> Finished {
    // Heap and stable memory are freed here, outside the state lock.
    drop(old);
    Finished {
        instance: None,
        apply: Box::new(move |inner, st| {
            let time = st.now();
            let Some(slot) = st.canisters.get_mut(&canister) else {
                return done.call(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
            };
            slot.module_hash = None;
            slot.module = None;
            slot.methods.clear();
            slot.heartbeat = false;
            slot.low_memory_hook = false;
            slot.timer = 0;
            slot.heap_size = 0;
            slot.stable_size = 0;
            slot.version += 1;
            slot.history.record(Change { time, canister_version: slot.version, origin, details: ChangeDetails::CodeUninstall });
            let contexts: Vec<u64> = st.contexts.iter().filter(|(_, c)| c.canister == canister).map(|(id, _)| *id).collect();
            let mut deliveries = Vec::new();
            for id in &contexts {
                let reject = Reject {
                    code: RejectCode::CanisterReject,
                    error_code: None,
                    message: format!("Canister {canister} has been uninstalled."),
                };
                deliveries.extend(st.respond(*id, Err(reject)));
            }
            for cb in st.callbacks.values_mut() {
                if cb.caller == canister {
                    cb.orphaned = true;
                }
            }
            for id in contexts {
                st.delete_context(id);
            }
            for (to, task) in deliveries {
                inner.enqueue(st, to, task);
            }
            st.maybe_stopped(canister);
            done.call(Ok(()));
        }),
    }
}

/// Stopping, starting and deleting canisters (the run status).
impl Replica {
    /// Stops a canister: new calls are rejected, responses still processed;
    /// resolves once no call context is open.
    pub async fn stop(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        completion(|f| self.stop_with(caller, canister, Done::new(f))).await
    }

    pub(super) fn stop_with(&self, caller: Principal, canister: Principal, done: Done) {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return done.call(Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found"))));
        };
        if !slot.controllers.contains(&caller) {
            return done.call(Err(not_controller(&canister, &caller)));
        }
        match slot.status {
            Status::Stopped => done.call(Ok(())),
            _ => {
                if slot.status == Status::Running {
                    slot.version += 1;
                }
                slot.status = Status::Stopping;
                let timeout = self.inner.config.limits.stop_canister_timeout_seconds.saturating_mul(1_000_000_000);
                let until = st.now().saturating_add(timeout);
                if let Some(slot) = st.canisters.get_mut(&canister) {
                    slot.stop_waiters.push((until, done));
                }
                st.maybe_stopped(canister);
                self.inner.clock_changed.notify_all();
            }
        }
    }

    pub fn start(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        let waiters: Vec<_> = std::mem::take(&mut slot.stop_waiters).into_iter().map(|(_, w)| w).collect();
        slot.status = Status::Running;
        slot.version += 1;
        drop(st);
        for w in waiters {
            w.call(Err(Reject::system(ErrorCode::CanisterStoppingCancelled, format!("Canister {canister}'s stop request was cancelled by start_canister"))));
        }
        Ok(())
    }

    pub fn delete(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if !slot.controllers.contains(&caller) {
            return Err(not_controller(&canister, &caller));
        }
        if slot.status != Status::Stopped || slot.busy {
            return Err(Reject::system(
                ErrorCode::CanisterNotStopped,
                format!("Canister {canister} must be stopped before it is deleted."),
            ));
        }
        let slot = st.canisters.remove(&canister);
        // A deleted canister's id is never used again.
        st.deleted.insert(canister);
        st.names.retain(|_, p| *p != canister);
        // Its memory (heap, stable memory, chunk store) is freed outside the lock.
        drop(st);
        drop(slot);
        Ok(())
    }
}
