//! root: the control plane of the deployment.
//!
//! Root orchestrates, validates and routes; it never owns deployable Wasm
//! beyond its bootstrap staging buffer. It owns:
//! - the staging buffer (template maps, memory ids 10-12 and 15): the pipeline stages
//!   release manifests, chunk sets and chunks here (admin endpoints); after
//!   publication only the wasm_store release keeps its bytes here (root needs
//!   them to create stores);
//! - the publication state (active, detached and retired store bindings) and
//!   the store inventory (memory id 60), see [`ww_template::lifecycle`];
//! - the registry of canisters it created (memory id 9);
//! - its configuration (memory id 13): auto-created roles, extra controllers,
//!   the store policy.
//!
//! The bootstrap (`canic_wasm_store_bootstrap_resume_root_admin`) refuses to
//! run until the staged wasm_store release is complete (no fallback); it then
//! validates every staged release (failing closed before any store write),
//! creates the first wasm_store and installs it inline (`install_code`, the
//! module assembled from root's staging buffer; the only inline install),
//! publishes the staged releases into the
//! active store and rebinds their manifests to it, then creates every
//! auto-created role (alphabetically) with `install_chunked_code` from the
//! store, hash-verified by the host. Run again later, the same endpoint is a
//! reconcile: publish what was newly staged and upgrade every role whose
//! approved payload hash differs from the module it runs.
//!
//! Every admin endpoint is controller-only.

use candid::{CandidType, Encode, Principal};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use std::cell::{Cell, RefCell};
use ww_cdk::call::Call;
use ww_cdk::ic_stable_structures::StableCell;
use ww_cdk::{init, post_upgrade, query, update};
use ww_template::lifecycle::{self, PublicationState, Transition};
use ww_template::memory::{self, Memory};
use ww_template::mgmt::{self, InstallMode};
use ww_template::storage::{self, ChunkSetRecord, ManifestRecord, ReleaseKey, StableCandid};
use ww_template::types::*;
use ww_template::{BOOTSTRAP_BINDING, WASM_STORE_ROLE, format_bytes, gc};

mod children;

/// A store in root's inventory.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
struct StoreRecord {
    binding: String,
    pid: Principal,
    created_at: u64,
    /// Root's mirror of the store's GC state.
    gc: WasmStoreGcStatusResponse,
}

/// Root's publication state and store inventory.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
struct SubnetState {
    publication: PublicationState,
    stores: Vec<StoreRecord>,
    ready: bool,
}

thread_local! {
    static CONFIG: RefCell<StableCell<StableCandid<RootInitArgs>, Memory>> =
        RefCell::new(StableCell::init(memory::get(memory::ROOT_CONFIG), StableCandid(RootInitArgs::default())));
    static STATE: RefCell<StableCell<StableCandid<SubnetState>, Memory>> =
        RefCell::new(StableCell::init(memory::get(memory::SUBNET_STATE), StableCandid(SubnetState::default())));
    static REGISTRY: RefCell<StableCell<StableCandid<Vec<CanisterRecordResponse>>, Memory>> =
        RefCell::new(StableCell::init(memory::get(memory::SUBNET_REGISTRY), StableCandid(Vec::new())));
    /// A bootstrap, reconcile or admin workflow is running (heap only: an
    /// upgrade or a fresh start clears it).
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

// ---------------------------------------------------------------------------
// State access

fn now_secs() -> u64 {
    ww_cdk::api::time() / 1_000_000_000
}

fn config() -> RootInitArgs {
    CONFIG.with(|c| c.borrow().get().0.clone())
}

fn store_policy() -> WasmStorePolicy {
    config().store_policy.unwrap_or_default()
}

fn state() -> SubnetState {
    STATE.with(|s| s.borrow().get().0.clone())
}

fn set_state(state: SubnetState) {
    STATE.with(|s| s.borrow_mut().set(StableCandid(state)));
}

fn registry() -> Vec<CanisterRecordResponse> {
    REGISTRY.with(|r| r.borrow().get().0.clone())
}

fn set_registry(records: Vec<CanisterRecordResponse>) {
    REGISTRY.with(|r| r.borrow_mut().set(StableCandid(records)));
}

fn register(record: CanisterRecordResponse) {
    let mut records = registry();
    records.retain(|r| r.pid != record.pid);
    records.push(record);
    set_registry(records);
}

fn unregister(pid: Principal) {
    let mut records = registry();
    records.retain(|r| r.pid != pid);
    set_registry(records);
}

fn registered_role(role: &str) -> Option<CanisterRecordResponse> {
    registry().into_iter().find(|r| r.role == role)
}

/// Applies a lifecycle transition and logs it.
fn transition(t: Transition) -> Result<bool> {
    let mut s = state();
    let before = s.publication.clone();
    let changed = lifecycle::apply(&mut s.publication, &t, now_secs())?;
    if changed {
        ww_cdk::println!("{}", lifecycle::describe(t.kind(), &before, &s.publication));
        set_state(s);
    }
    Ok(changed)
}

fn store_by_binding(binding: &str) -> Option<StoreRecord> {
    state().stores.into_iter().find(|s| s.binding == binding)
}

fn mirror_gc(binding: &str, mode: GcMode) {
    let mut s = state();
    if let Some(store) = s.stores.iter_mut().find(|st| st.binding == binding)
        && store.gc.mode != mode
    {
        let now = now_secs();
        store.gc.mode = mode;
        store.gc.changed_at = now;
        match mode {
            GcMode::Normal => store.gc = gc::initial(now),
            GcMode::Prepared => {
                store.gc.prepared_at = Some(now);
                store.gc.started_at = None;
                store.gc.completed_at = None;
            }
            GcMode::InProgress => store.gc.started_at = Some(now),
            GcMode::Complete => {
                store.gc.completed_at = Some(now);
                store.gc.runs_completed += 1;
            }
        }
        set_state(s);
    }
}

// ---------------------------------------------------------------------------
// Guards

fn require_controller() -> Result<()> {
    let caller = ww_cdk::api::msg_caller();
    if !ww_cdk::api::is_controller(&caller) {
        return Err(Error::new(ErrorCode::Unauthorized, format!("{caller} is not a controller of root")));
    }
    Ok(())
}

/// Serialises root's long workflows (each spans many commits).
struct BusyGuard;

impl BusyGuard {
    fn enter(what: &str) -> Result<Self> {
        if BUSY.with(|b| b.replace(true)) {
            return Err(Error::new(ErrorCode::Conflict, format!("{what}: another root workflow is running")));
        }
        Ok(BusyGuard)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(false));
    }
}

// ---------------------------------------------------------------------------
// Store calls

async fn call_store<A: CandidType, R: CandidType + DeserializeOwned>(store: Principal, method: &str, arg: A) -> Result<R> {
    let reply = Call::unbounded_wait(store, method)
        .with_arg(arg)
        .await
        .map_err(|e| Error::new(ErrorCode::CallFailed, format!("{method} on store {store}: {e}")))?;
    let result: Result<R> =
        reply.candid().map_err(|e| Error::new(ErrorCode::CallFailed, format!("{method} on store {store}: {e}")))?;
    result
}

async fn store_status(store: Principal) -> Result<WasmStoreStatusResponse> {
    call_store(store, "canic_wasm_store_status", ()).await
}

async fn store_chunk(store: Principal, key: &ReleaseKey, index: u32) -> Result<Vec<u8>> {
    let reply = Call::unbounded_wait(store, "canic_wasm_store_chunk")
        .with_args(&(key.template_id.clone(), key.version.clone(), index))
        .await
        .map_err(|e| Error::new(ErrorCode::CallFailed, format!("canic_wasm_store_chunk {key}#{index} on {store}: {e}")))?;
    let result: Result<TemplateChunkResponse> =
        reply.candid().map_err(|e| Error::new(ErrorCode::CallFailed, format!("canic_wasm_store_chunk on {store}: {e}")))?;
    Ok(result?.bytes.into_vec())
}

// ---------------------------------------------------------------------------
// Lifecycle hooks

#[init]
fn init(args: RootInitArgs) {
    CONFIG.with(|c| c.borrow_mut().set(StableCandid(args)));
}

/// Keeps all stable state; a given argument replaces the configuration.
#[post_upgrade]
fn post_upgrade(args: Option<RootInitArgs>) {
    if let Some(args) = args {
        CONFIG.with(|c| c.borrow_mut().set(StableCandid(args)));
    }
}

// ---------------------------------------------------------------------------
// Pipeline staging (controller-only)

/// Stages a release manifest into root's staging buffer. The manifest is
/// normalised: bound to `bootstrap`, Chunked, Approved now; any other approved
/// manifest of the role becomes Deprecated. Re-staging the release root
/// already holds approved with the same payload is a no-op; the same release
/// key with a different payload is a conflict (bump the version).
#[update]
fn canic_template_stage_manifest_admin(input: TemplateManifestInput) -> Result<()> {
    require_controller()?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    if let Some(existing) = storage::manifest(&key) {
        if existing.payload_hash != input.payload_hash || existing.payload_size_bytes != input.payload_size_bytes {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("release {key} is already staged with a different payload; stage a new version"),
            ));
        }
        if existing.manifest_state == ManifestState::Approved {
            return Ok(());
        }
    }
    let now = now_secs();
    storage::stage_manifest(TemplateManifestInput {
        store_binding: BOOTSTRAP_BINDING.into(),
        chunking_mode: ChunkingMode::Chunked,
        manifest_state: ManifestState::Approved,
        approved_at: Some(now),
        created_at: now,
        ..input
    })
}

/// Declares a staged release's chunks.
#[update]
fn canic_template_prepare_admin(input: TemplateChunkSetPrepareInput) -> Result<TemplateChunkSetInfoResponse> {
    require_controller()?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    if let Some(existing) = storage::chunk_set(&key)
        && existing.chunk_hashes == input.chunk_hashes
        && existing.payload_hash == input.payload_hash
        && existing.payload_size_bytes == input.payload_size_bytes
    {
        return Ok(TemplateChunkSetInfoResponse { chunk_hashes: existing.chunk_hashes });
    }
    if storage::manifest(&key).is_some_and(|m| m.store_binding != BOOTSTRAP_BINDING) {
        return Err(Error::new(ErrorCode::Conflict, format!("release {key} is already published with other chunks")));
    }
    let set = storage::prepare(&input, now_secs())?;
    Ok(TemplateChunkSetInfoResponse { chunk_hashes: set.chunk_hashes })
}

/// Stages one chunk. Its SHA-256 is computed on the host and must be the
/// prepared hash: the chunk goes through root's own chunk store, which is
/// emptied right after (root's chunk store is only a hashing scratchpad and
/// holds no bytes between calls; the staging buffer keeps the chunk). A chunk
/// of a release already published is accepted and dropped.
#[update]
async fn canic_template_publish_chunk_admin(input: TemplateChunkInput) -> Result<()> {
    require_controller()?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    let expected = storage::expected_chunk_hash(&key, input.chunk_index)?;
    let published = storage::manifest(&key).is_some_and(|m| m.store_binding != BOOTSTRAP_BINDING);
    if storage::has_chunk(&key, input.chunk_index) && !published {
        if storage::chunk(&key, input.chunk_index).as_deref() == Some(input.bytes.as_slice()) {
            return Ok(());
        }
    }
    let me = ww_cdk::api::canister_self();
    let hash = mgmt::upload_chunk(me, &input.bytes).await?;
    mgmt::clear_chunk_store(me).await?;
    storage::check_chunk_hash(&key, input.chunk_index, &hash, &expected)?;
    let published = storage::manifest(&key).is_some_and(|m| m.store_binding != BOOTSTRAP_BINDING);
    if !published {
        storage::put_chunk(&key, input.chunk_index, input.bytes.into_vec());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Bootstrap and reconcile

/// Runs the bootstrap (first time) or a reconcile (later): see the module
/// docs. Refuses with `BootstrapNotReady` until the staged wasm_store release
/// is complete.
#[update]
async fn canic_wasm_store_bootstrap_resume_root_admin() -> Result<BootstrapReport> {
    require_controller()?;
    let _busy = BusyGuard::enter("bootstrap")?;
    reconcile().await
}

async fn reconcile() -> Result<BootstrapReport> {
    let (store_key, store_manifest) = approved_for_role_not_ready(WASM_STORE_ROLE)?;
    let store_set = storage::validate_release(&store_key, &store_manifest).map_err(|e| {
        Error::new(ErrorCode::BootstrapNotReady, format!("waiting for staged wasm_store manifest + chunks: {}", e.message))
    })?;
    // Validate every staged release before any store write.
    let staged = staged_releases();
    for (key, manifest) in &staged {
        storage::validate_release(key, manifest)?;
    }
    let mut report_roles = Vec::new();

    // The first store, installed inline from root's staging buffer.
    if state().stores.is_empty() {
        let started = ww_cdk::api::time();
        let store = create_store(&store_key, &store_manifest).await?;
        transition(Transition::Activate(store.binding.clone()))?;
        ww_cdk::println!("bootstrap: created wasm_store {} (inline install_code from root staging)", store.pid);
        report_roles.push(role_report(WASM_STORE_ROLE, Some(store.pid), &store_key, &store_manifest, &store_set, RoleAction::Created, started));
    }

    // Publish every staged release (and anything the active store lacks).
    let (store, published_releases, published_bytes) = publish_current_release_set().await?;

    // Auto-create, alphabetically.
    let mut auto_create = config().auto_create;
    auto_create.sort();
    auto_create.dedup();
    for role in &auto_create {
        if role == WASM_STORE_ROLE {
            continue;
        }
        if registered_role(role).is_some() {
            continue;
        }
        let Ok((key, manifest)) = storage::approved_for_role(role) else {
            ww_cdk::println!("WARN auto_create: skipping {role}; approved manifest not staged");
            report_roles.push(RoleReport {
                role: role.clone(),
                pid: None,
                version: String::new(),
                module_hash: None,
                payload_size_bytes: 0,
                chunk_count: 0,
                action: RoleAction::Skipped,
                elapsed_ns: 0,
            });
            continue;
        };
        let started = ww_cdk::api::time();
        let set = chunk_set_of(&key)?;
        let pid = create_role(role, ww_cdk::api::canister_self(), &key, &manifest, &set).await?;
        report_roles.push(role_report(role, Some(pid), &key, &manifest, &set, RoleAction::Created, started));
    }

    // Upgrade every registered role whose approved payload changed.
    for record in registry() {
        if report_roles.iter().any(|r| r.pid == Some(record.pid)) {
            continue;
        }
        let started = ww_cdk::api::time();
        let Ok((key, manifest)) = storage::approved_for_role(&record.role) else { continue };
        let set = chunk_set_of(&key)?;
        let action = if record.module_hash == manifest.payload_hash {
            RoleAction::Unchanged
        } else if record.role == WASM_STORE_ROLE {
            upgrade_store(record.pid, &key, &manifest).await?;
            RoleAction::Upgraded
        } else {
            upgrade_role(&record, &key, &manifest, &set).await?;
            RoleAction::Upgraded
        };
        report_roles.push(role_report(&record.role, Some(record.pid), &key, &manifest, &set, action, started));
    }

    let mut s = state();
    if !s.ready {
        s.ready = true;
        set_state(s);
        ww_cdk::println!("root: READY");
    }
    report_roles.sort_by(|a, b| (a.role != WASM_STORE_ROLE, &a.role).cmp(&(b.role != WASM_STORE_ROLE, &b.role)));
    Ok(BootstrapReport { store, published_releases, published_bytes, roles: report_roles })
}

fn role_report(
    role: &str,
    pid: Option<Principal>,
    key: &ReleaseKey,
    manifest: &ManifestRecord,
    set: &ChunkSetRecord,
    action: RoleAction,
    started: u64,
) -> RoleReport {
    RoleReport {
        role: role.into(),
        pid,
        version: key.version.clone(),
        module_hash: Some(manifest.payload_hash.clone()),
        payload_size_bytes: manifest.payload_size_bytes,
        chunk_count: set.chunk_count(),
        action,
        elapsed_ns: ww_cdk::api::time().saturating_sub(started),
    }
}

fn approved_for_role_not_ready(role: &str) -> Result<(ReleaseKey, ManifestRecord)> {
    storage::approved_for_role(role).map_err(|e| {
        Error::new(ErrorCode::BootstrapNotReady, format!("waiting for staged {role} manifest + chunks: {}", e.message))
    })
}

fn chunk_set_of(key: &ReleaseKey) -> Result<ChunkSetRecord> {
    storage::chunk_set(key).ok_or_else(|| Error::new(ErrorCode::TemplateChunkSetMissing, format!("release {key} has no chunk set")))
}

/// Approved, Chunked releases still bound to root's staging buffer (the
/// wasm_store release stays there: it is never published into a store).
fn staged_releases() -> Vec<(ReleaseKey, ManifestRecord)> {
    storage::manifests()
        .into_iter()
        .filter(|(_, m)| {
            m.role != WASM_STORE_ROLE
                && m.store_binding == BOOTSTRAP_BINDING
                && m.chunking_mode == ChunkingMode::Chunked
                && m.manifest_state == ManifestState::Approved
        })
        .collect()
}

/// Every approved non-store release (the current release set).
fn current_release_set() -> Vec<(ReleaseKey, ManifestRecord)> {
    storage::manifests()
        .into_iter()
        .filter(|(_, m)| m.role != WASM_STORE_ROLE && m.manifest_state == ManifestState::Approved)
        .collect()
}

fn controllers_for_children() -> Vec<Principal> {
    let mut controllers = vec![ww_cdk::api::canister_self()];
    for c in config().controllers {
        if !controllers.contains(&c) {
            controllers.push(c);
        }
    }
    controllers
}

/// The wasm_store module from root's staging buffer, validated (every chunk
/// present, the declared size and hash), for its inline install.
fn store_module(key: &ReleaseKey, manifest: &ManifestRecord) -> Result<Vec<u8>> {
    let set = storage::validate_release(key, manifest)?;
    let mut module = Vec::with_capacity(set.payload_size_bytes as usize);
    for index in 0..set.chunk_count() {
        let bytes = storage::chunk(key, index)
            .ok_or_else(|| Error::new(ErrorCode::TemplateChunkMissing, format!("chunk {key}#{index} is not staged in root")))?;
        module.extend_from_slice(&bytes);
    }
    Ok(module)
}

/// Creates a wasm_store and installs it inline (`install_code`) from root's
/// staging buffer: the only inline install root makes.
async fn create_store(key: &ReleaseKey, manifest: &ManifestRecord) -> Result<StoreRecord> {
    let module = store_module(key, manifest)?;
    let pid = mgmt::create_canister(controllers_for_children()).await?;
    let me = ww_cdk::api::canister_self();
    let arg = Encode!(&WasmStoreInitArgs { root: me, policy: store_policy() }).expect("encoding the store init argument");
    let now = now_secs();
    register(CanisterRecordResponse {
        pid,
        role: WASM_STORE_ROLE.into(),
        parent: me,
        module_hash: manifest.payload_hash.clone(),
        created_at: now,
    });
    if let Err(e) = mgmt::install_code(InstallMode::Install, pid, &module, arg).await {
        unregister(pid);
        discard_canister(pid).await;
        return Err(Error::new(e.code, format!("failed to install wasm_store {pid}: {}", e.message)));
    }
    let record = StoreRecord { binding: pid.to_text(), pid, created_at: now, gc: gc::initial(now) };
    let mut s = state();
    s.stores.push(record.clone());
    s.stores.sort_by(|a, b| a.binding.cmp(&b.binding));
    set_state(s);
    ww_cdk::println!(
        "install_canister: {pid} ({WASM_STORE_ROLE}, template={}, size={}, mode=Inline)",
        key.template_id,
        format_bytes(manifest.payload_size_bytes)
    );
    Ok(record)
}

/// Upgrades a wasm_store inline from root's staging buffer.
async fn upgrade_store(pid: Principal, key: &ReleaseKey, manifest: &ManifestRecord) -> Result<()> {
    let module = store_module(key, manifest)?;
    let me = ww_cdk::api::canister_self();
    let arg = Encode!(&WasmStoreInitArgs { root: me, policy: store_policy() }).expect("encoding the store init argument");
    mgmt::install_code(InstallMode::Upgrade(None), pid, &module, arg).await?;
    set_module_hash(pid, &manifest.payload_hash);
    ww_cdk::println!("upgrade: {pid} ({WASM_STORE_ROLE}) -> {key}");
    Ok(())
}

/// Best effort: stop and delete a canister whose install failed.
async fn discard_canister(pid: Principal) {
    if let Err(e) = mgmt::stop_canister(pid).await {
        ww_cdk::println!("WARN cleanup of {pid}: {e}");
        return;
    }
    if let Err(e) = mgmt::delete_canister(pid).await {
        ww_cdk::println!("WARN cleanup of {pid}: {e}");
    }
}

fn set_module_hash(pid: Principal, hash: &ByteBuf) {
    let mut records = registry();
    if let Some(r) = records.iter_mut().find(|r| r.pid == pid) {
        r.module_hash = hash.clone();
    }
    set_registry(records);
}

/// The store a manifest is bound to.
fn store_for_manifest(key: &ReleaseKey, manifest: &ManifestRecord) -> Result<StoreRecord> {
    store_by_binding(&manifest.store_binding).ok_or_else(|| {
        Error::new(ErrorCode::NotFound, format!("release {key}: wasm store binding '{}' is not registered", manifest.store_binding))
    })
}

fn role_init_arg(role: &str, parent: Principal, version: &str) -> Vec<u8> {
    let me = ww_cdk::api::canister_self();
    Encode!(&RoleInitArgs { role: role.into(), root: me, parent, version: version.into() }).expect("encoding a role init argument")
}

/// Creates a role's canister under `parent` and installs it chunked from its store.
async fn create_role(role: &str, parent: Principal, key: &ReleaseKey, manifest: &ManifestRecord, set: &ChunkSetRecord) -> Result<Principal> {
    let store = store_for_manifest(key, manifest)?;
    let pid = mgmt::create_canister(controllers_for_children()).await?;
    register(CanisterRecordResponse {
        pid,
        role: role.into(),
        parent,
        module_hash: manifest.payload_hash.clone(),
        created_at: now_secs(),
    });
    let installed = mgmt::install_chunked_code(
        InstallMode::Install,
        pid,
        store.pid,
        &set.chunk_hashes,
        &manifest.payload_hash,
        role_init_arg(role, parent, &key.version),
    )
    .await;
    if let Err(e) = installed {
        unregister(pid);
        discard_canister(pid).await;
        return Err(Error::new(e.code, format!("failed to install canister {pid} ({role}): {}", e.message)));
    }
    ww_cdk::println!(
        "install_canister: {pid} ({role}, template={}, size={}, mode=Chunked, store={})",
        key.template_id,
        format_bytes(manifest.payload_size_bytes),
        store.pid
    );
    Ok(pid)
}

/// Upgrades a role's canister chunked from its store (stable memory kept).
async fn upgrade_role(record: &CanisterRecordResponse, key: &ReleaseKey, manifest: &ManifestRecord, set: &ChunkSetRecord) -> Result<()> {
    let running = mgmt::module_hash(record.pid).await?;
    if running.as_deref() == Some(manifest.payload_hash.as_slice()) {
        ww_cdk::println!("upgrade: {} ({}) already running target module", record.pid, record.role);
        set_module_hash(record.pid, &manifest.payload_hash);
        return Ok(());
    }
    let store = store_for_manifest(key, manifest)?;
    mgmt::install_chunked_code(
        InstallMode::Upgrade(None),
        record.pid,
        store.pid,
        &set.chunk_hashes,
        &manifest.payload_hash,
        role_init_arg(&record.role, record.parent, &key.version),
    )
    .await
    .map_err(|e| Error::new(e.code, format!("failed to upgrade canister {} ({}): {}", record.pid, record.role, e.message)))?;
    set_module_hash(record.pid, &manifest.payload_hash);
    ww_cdk::println!("upgrade: {} ({}) -> {key} (chunked from {})", record.pid, record.role, store.pid);
    Ok(())
}

// ---------------------------------------------------------------------------
// Publication

/// Resolves the store that takes the next publication of `needed` bytes,
/// promoting another store or creating a new one (rollover) when the
/// preferred store is within its headroom or too full.
async fn resolve_publication_store(needed: u64) -> Result<StoreRecord> {
    let s = state();
    let selectable: Vec<StoreRecord> = s
        .stores
        .iter()
        .filter(|st| lifecycle::is_selectable(&s.publication, &st.binding) && st.gc.mode == GcMode::Normal)
        .cloned()
        .collect();
    let mut preferred = s.publication.active_binding.as_deref().and_then(store_by_binding);
    if preferred.is_none() && s.publication.active_binding.is_some() {
        ww_cdk::println!("ws active binding is stale; clearing it");
        transition(Transition::ClearActive)?;
    }
    if preferred.is_none() {
        let mut oldest = selectable.clone();
        oldest.sort_by_key(|st| st.created_at);
        preferred = oldest.into_iter().next();
    }
    let mut candidates = Vec::new();
    if let Some(p) = &preferred {
        candidates.push(p.clone());
    }
    let mut others: Vec<StoreRecord> = selectable.into_iter().filter(|st| Some(&st.binding) != preferred.as_ref().map(|p| &p.binding)).collect();
    others.sort_by_key(|st| st.created_at);
    candidates.extend(others);
    for candidate in &candidates {
        let status = store_status(candidate.pid).await?;
        let fits = status.remaining_store_bytes >= needed.saturating_add(status.headroom_bytes.unwrap_or(0));
        if status.gc.mode == GcMode::Normal && !status.within_headroom && fits {
            if s.publication.active_binding.as_deref() != Some(candidate.binding.as_str()) {
                transition(Transition::Activate(candidate.binding.clone()))?;
            }
            return Ok(candidate.clone());
        }
        ww_cdk::println!(
            "ws '{}' cannot take {} (remaining {}, within headroom: {})",
            candidate.binding,
            format_bytes(needed),
            format_bytes(status.remaining_store_bytes),
            status.within_headroom
        );
    }
    // Nothing fits: a new store (the rollover guard runs before creating it).
    let probe = {
        let mut p = state().publication;
        lifecycle::apply(&mut p, &Transition::Activate("(new store)".into()), now_secs()).map(|_| ())
    };
    probe?;
    let (key, manifest) = storage::approved_for_role(WASM_STORE_ROLE)?;
    let store = create_store(&key, &manifest).await?;
    transition(Transition::Activate(store.binding.clone()))?;
    ww_cdk::println!(
        "ws preferred {} within headroom, created {}",
        preferred.map(|p| p.binding).unwrap_or_else(|| "-".into()),
        store.binding
    );
    Ok(store)
}

/// Makes the active store hold the whole current release set: staged releases
/// and releases bound to other stores are published into it and rebound.
/// Returns the store, the number of releases and bytes published.
async fn publish_current_release_set() -> Result<(Principal, u32, u64)> {
    let current = current_release_set();
    for (key, manifest) in current.iter().filter(|(_, m)| m.store_binding == BOOTSTRAP_BINDING) {
        storage::validate_release(key, manifest)?;
    }
    let active = state().publication.active_binding;
    let pending: Vec<_> = current.iter().filter(|(_, m)| Some(&m.store_binding) != active.as_ref()).cloned().collect();
    let needed: u64 = pending.iter().map(|(_, m)| m.payload_size_bytes).sum();
    let store = if pending.is_empty() {
        match active.as_deref().and_then(store_by_binding) {
            Some(store) => store,
            None => resolve_publication_store(0).await?,
        }
    } else {
        resolve_publication_store(needed).await?
    };
    // The chosen store may differ from the old active one (rollover): publish
    // everything not bound to it.
    let pending: Vec<_> = current_release_set().into_iter().filter(|(_, m)| m.store_binding != store.binding).collect();
    let mut bytes = 0;
    for (key, manifest) in &pending {
        publish_release(&store, key, manifest).await?;
        bytes += manifest.payload_size_bytes;
    }
    Ok((store.pid, pending.len() as u32, bytes))
}

/// Prepares `key` in `store` and sends it every chunk, read from root's
/// staging buffer (a release still bound to `bootstrap`) or from the store
/// it is bound to. Returns whether the chunks came from the staging buffer.
async fn transfer_chunks(store: &StoreRecord, key: &ReleaseKey, manifest: &ManifestRecord, set: &ChunkSetRecord) -> Result<bool> {
    let source = if manifest.store_binding == BOOTSTRAP_BINDING { None } else { Some(store_for_manifest(key, manifest)?) };
    let _: TemplateChunkSetInfoResponse = call_store(
        store.pid,
        "canic_wasm_store_prepare",
        TemplateChunkSetPrepareInput {
            template_id: key.template_id.clone(),
            version: key.version.clone(),
            payload_hash: set.payload_hash.clone(),
            payload_size_bytes: set.payload_size_bytes,
            chunk_hashes: set.chunk_hashes.clone(),
        },
    )
    .await?;
    for index in 0..set.chunk_count() {
        let bytes = match &source {
            None => storage::chunk(key, index)
                .ok_or_else(|| Error::new(ErrorCode::TemplateChunkMissing, format!("chunk {key}#{index} is not staged in root")))?,
            Some(source) => store_chunk(source.pid, key, index).await?,
        };
        let () = call_store(
            store.pid,
            "canic_wasm_store_publish_chunk",
            TemplateChunkInput {
                template_id: key.template_id.clone(),
                version: key.version.clone(),
                chunk_index: index,
                bytes: ByteBuf::from(bytes),
            },
        )
        .await?;
    }
    Ok(source.is_none())
}

/// Publishes one release into `store` (chunks, then the manifest into the
/// store's catalog) and rebinds root's manifest to it.
async fn publish_release(store: &StoreRecord, key: &ReleaseKey, manifest: &ManifestRecord) -> Result<()> {
    let set = chunk_set_of(key)?;
    let from_staging = transfer_chunks(store, key, manifest, &set).await?;
    let now = now_secs();
    let mut rebound = storage::manifest(key).unwrap_or_else(|| manifest.clone());
    rebound.store_binding = store.binding.clone();
    rebound.chunking_mode = ChunkingMode::Chunked;
    rebound.approved_at = Some(now);
    let () = call_store(store.pid, "canic_wasm_store_stage_manifest", rebound.to_input(key)).await?;
    storage::put_manifest(key.clone(), rebound);
    if from_staging {
        storage::remove_chunks(key);
    }
    ww_cdk::println!(
        "tpl.publish {} -> {key} (store={}, chunks={}, {})",
        manifest.role,
        store.pid,
        set.chunk_count(),
        format_bytes(set.payload_size_bytes)
    );
    Ok(())
}

/// Publishes the staged releases (and whatever the active store lacks) into
/// the current store.
#[update]
async fn canic_template_publish_to_current_store_admin() -> Result<()> {
    require_controller()?;
    let _busy = BusyGuard::enter("publish")?;
    if state().stores.is_empty() {
        return Err(Error::new(ErrorCode::BootstrapNotReady, "no wasm_store exists yet; resume the bootstrap first"));
    }
    for (key, manifest) in staged_releases() {
        storage::validate_release(&key, &manifest)?;
    }
    publish_current_release_set().await.map(|_| ())
}

// ---------------------------------------------------------------------------
// Admin commands: publication and store lifecycle

#[update]
async fn canic_wasm_store_admin(command: WasmStoreAdminCommand) -> Result<WasmStoreAdminResponse> {
    require_controller()?;
    let _busy = BusyGuard::enter("wasm store admin")?;
    match command {
        WasmStoreAdminCommand::PublishCurrentReleaseToStore { store_pid } => {
            let s = state();
            let store = s
                .stores
                .iter()
                .find(|st| st.pid == store_pid)
                .cloned()
                .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("store {store_pid} is not registered")))?;
            if !lifecycle::is_selectable(&s.publication, &store.binding) || store.gc.mode != GcMode::Normal {
                return Err(Error::new(ErrorCode::Conflict, format!("ws binding '{}' is detached/retired", store.binding)));
            }
            for (key, manifest) in current_release_set() {
                if manifest.store_binding == store.binding {
                    continue;
                }
                // A copy: the manifest stays bound where it is.
                let set = chunk_set_of(&key)?;
                copy_release(&store, &key, &manifest, &set).await?;
            }
            Ok(WasmStoreAdminResponse::PublishedCurrentReleaseToStore { store_pid })
        }
        WasmStoreAdminCommand::PublishCurrentReleaseToCurrentStore => {
            if state().stores.is_empty() {
                return Err(Error::new(ErrorCode::BootstrapNotReady, "no wasm_store exists yet"));
            }
            let (store_pid, _, _) = publish_current_release_set().await?;
            Ok(WasmStoreAdminResponse::PublishedCurrentReleaseToCurrentStore { store_pid })
        }
        WasmStoreAdminCommand::SetPublicationBinding { binding } => {
            if store_by_binding(&binding).is_none() {
                return Err(Error::new(ErrorCode::NotFound, format!("ws binding '{binding}' is not registered")));
            }
            transition(Transition::Activate(binding.clone()))?;
            Ok(WasmStoreAdminResponse::SetPublicationBinding { binding })
        }
        WasmStoreAdminCommand::ClearPublicationBinding => {
            transition(Transition::ClearActive)?;
            Ok(WasmStoreAdminResponse::ClearedPublicationBinding)
        }
        WasmStoreAdminCommand::RetireDetachedBinding => {
            let Some(detached) = state().publication.detached_binding else {
                return Ok(WasmStoreAdminResponse::RetiredDetachedBinding { binding: None });
            };
            let serving = current_release_set().iter().filter(|(_, m)| m.store_binding == detached).count();
            if serving > 0 {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!("ws retirement blocked: '{detached}' still serves {serving} approved releases; publish them to the current store first"),
                ));
            }
            transition(Transition::RetireDetached)?;
            Ok(WasmStoreAdminResponse::RetiredDetachedBinding { binding: Some(detached) })
        }
        WasmStoreAdminCommand::PrepareRetiredStoreGc => {
            let binding = retired_gc_step("canic_wasm_store_prepare_gc", GcMode::Prepared).await?;
            Ok(WasmStoreAdminResponse::PreparedRetiredStoreGc { binding })
        }
        WasmStoreAdminCommand::BeginRetiredStoreGc => {
            let binding = retired_gc_step("canic_wasm_store_begin_gc", GcMode::InProgress).await?;
            Ok(WasmStoreAdminResponse::BeganRetiredStoreGc { binding })
        }
        WasmStoreAdminCommand::CompleteRetiredStoreGc => {
            let Some(binding) = state().publication.retired_binding else {
                return Ok(WasmStoreAdminResponse::CompletedRetiredStoreGc { binding: None });
            };
            let store = store_by_binding(&binding)
                .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("retired ws '{binding}' is not registered")))?;
            let _: WasmStoreGcReport = call_store(store.pid, "canic_wasm_store_complete_gc", ()).await?;
            mirror_gc(&binding, GcMode::Complete);
            Ok(WasmStoreAdminResponse::CompletedRetiredStoreGc { binding: Some(binding) })
        }
        WasmStoreAdminCommand::FinalizeRetiredBinding => {
            let Some(binding) = state().publication.retired_binding else {
                return Ok(WasmStoreAdminResponse::FinalizedRetiredBinding { result: None });
            };
            let store = store_by_binding(&binding)
                .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("retired ws '{binding}' is not registered")))?;
            let status = store_status(store.pid).await?;
            if status.gc.mode != GcMode::Complete {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!("retired ws '{binding}' not ready for finalize; gc={:?}", status.gc.mode),
                ));
            }
            transition(Transition::FinalizeRetired)?;
            Ok(WasmStoreAdminResponse::FinalizedRetiredBinding { result: Some(StoreRef { binding, store_pid: store.pid }) })
        }
        WasmStoreAdminCommand::DeleteFinalizedStore { binding, store_pid } => {
            let store = store_by_binding(&binding)
                .filter(|st| st.pid == store_pid)
                .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("ws '{binding}' ({store_pid}) is not registered")))?;
            if lifecycle::is_referenced(&state().publication, &binding) {
                return Err(Error::new(ErrorCode::Conflict, format!("ws '{binding}' is still referenced")));
            }
            let status = store_status(store.pid).await?;
            if status.gc.mode != GcMode::Complete {
                return Err(Error::new(ErrorCode::Conflict, format!("ws '{binding}' gc is {:?}, not Complete", status.gc.mode)));
            }
            if status.occupied_store_bytes != 0 || status.template_count != 0 || status.release_count != 0 {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "ws '{binding}' is not empty ({} bytes, {} templates, {} releases)",
                        status.occupied_store_bytes, status.template_count, status.release_count
                    ),
                ));
            }
            if lifecycle::is_referenced(&state().publication, &binding) {
                return Err(Error::new(ErrorCode::Conflict, format!("ws '{binding}' is still referenced")));
            }
            mgmt::stop_canister(store.pid).await?;
            mgmt::delete_canister(store.pid).await?;
            let mut s = state();
            s.stores.retain(|st| st.binding != binding);
            set_state(s);
            unregister(store.pid);
            ww_cdk::println!("ws deleted {binding} ({store_pid})");
            Ok(WasmStoreAdminResponse::DeletedFinalizedStore { binding, store_pid })
        }
    }
}

/// Copies a release into `store` without rebinding root's manifest.
async fn copy_release(store: &StoreRecord, key: &ReleaseKey, manifest: &ManifestRecord, set: &ChunkSetRecord) -> Result<()> {
    transfer_chunks(store, key, manifest, set).await?;
    let mut copy = manifest.clone();
    copy.store_binding = store.binding.clone();
    let () = call_store(store.pid, "canic_wasm_store_stage_manifest", copy.to_input(key)).await?;
    Ok(())
}

/// Drives the retired store's GC one step and mirrors the mode.
async fn retired_gc_step(method: &str, mode: GcMode) -> Result<Option<String>> {
    let Some(binding) = state().publication.retired_binding else {
        return Ok(None);
    };
    let store =
        store_by_binding(&binding).ok_or_else(|| Error::new(ErrorCode::NotFound, format!("retired ws '{binding}' is not registered")))?;
    let () = call_store(store.pid, method, ()).await?;
    mirror_gc(&binding, mode);
    Ok(Some(binding))
}

// ---------------------------------------------------------------------------
// Queries

fn staging_status(key: &ReleaseKey, manifest: &ManifestRecord) -> TemplateStagingStatusResponse {
    let set = storage::chunk_set(key);
    let expected = set.as_ref().map_or(0, ChunkSetRecord::chunk_count);
    let stored = storage::stored_chunk_count(key);
    let published = manifest.store_binding != BOOTSTRAP_BINDING;
    TemplateStagingStatusResponse {
        role: manifest.role.clone(),
        template_id: key.template_id.clone(),
        version: key.version.clone(),
        store_binding: manifest.store_binding.clone(),
        manifest_state: manifest.manifest_state,
        chunking_mode: manifest.chunking_mode,
        payload_hash: manifest.payload_hash.clone(),
        payload_size_bytes: manifest.payload_size_bytes,
        payload_size: format_bytes(manifest.payload_size_bytes),
        chunk_set_present: set.is_some(),
        expected_chunk_count: expected,
        stored_chunk_count: if published { expected } else { stored },
        publishable: manifest.chunking_mode == ChunkingMode::Chunked && set.is_some() && (published || stored == expected),
    }
}

/// Whether the staged input lets the bootstrap run, and every manifest root holds.
#[query]
fn canic_wasm_store_bootstrap_debug() -> Result<WasmStoreBootstrapDebugResponse> {
    require_controller()?;
    let bootstrap = storage::approved_for_role(WASM_STORE_ROLE).ok().map(|(k, m)| staging_status(&k, &m));
    let ready_for_bootstrap = storage::approved_for_role(WASM_STORE_ROLE)
        .ok()
        .is_some_and(|(k, m)| storage::validate_release(&k, &m).is_ok());
    Ok(WasmStoreBootstrapDebugResponse {
        ready_for_bootstrap,
        ready: state().ready,
        bootstrap,
        staged: storage::manifests().iter().map(|(k, m)| staging_status(k, m)).collect(),
    })
}

/// Whether root finished its bootstrap.
#[query]
fn canic_ready() -> bool {
    state().ready
}

/// The canisters root created.
#[query]
fn canic_subnet_registry() -> Vec<CanisterRecordResponse> {
    let mut records = registry();
    records.sort_by(|a, b| a.role.cmp(&b.role));
    records
}

/// Stores, publication slots and what each store holds, built entirely from
/// root-owned state (no store calls).
#[query]
fn canic_wasm_store_overview() -> Result<WasmStoreOverviewResponse> {
    require_controller()?;
    let s = state();
    let policy = store_policy();
    let manifests = storage::manifests();
    let stores = s
        .stores
        .iter()
        .map(|store| {
            let bound: Vec<_> = manifests
                .iter()
                .filter(|(_, m)| m.store_binding == store.binding && m.manifest_state == ManifestState::Approved)
                .collect();
            let payload_bytes: u64 = bound.iter().map(|(_, m)| m.payload_size_bytes).sum();
            let remaining = policy.max_store_bytes.saturating_sub(payload_bytes);
            let mut templates: Vec<TemplateVersionCount> = Vec::new();
            for (k, _) in &bound {
                match templates.iter_mut().find(|t| t.template_id == k.template_id) {
                    Some(t) => t.versions += 1,
                    None => templates.push(TemplateVersionCount { template_id: k.template_id.clone(), versions: 1 }),
                }
            }
            let slot = if s.publication.active_binding.as_deref() == Some(&store.binding) {
                Some(PublicationSlot::Active)
            } else if s.publication.detached_binding.as_deref() == Some(&store.binding) {
                Some(PublicationSlot::Detached)
            } else if s.publication.retired_binding.as_deref() == Some(&store.binding) {
                Some(PublicationSlot::Retired)
            } else {
                None
            };
            WasmStoreOverviewStoreResponse {
                binding: store.binding.clone(),
                pid: store.pid,
                created_at: store.created_at,
                publication_slot: slot,
                gc: store.gc.clone(),
                payload_bytes,
                payload_size: format_bytes(payload_bytes),
                remaining_payload_bytes: remaining,
                remaining_payload_size: format_bytes(remaining),
                max_store_bytes: policy.max_store_bytes,
                max_store_size: format_bytes(policy.max_store_bytes),
                headroom_bytes: policy.headroom_bytes,
                headroom_size: policy.headroom_bytes.map(format_bytes),
                within_headroom: policy.headroom_bytes.is_some_and(|h| remaining <= h),
                template_count: templates.len() as u32,
                release_count: bound.len() as u32,
                max_templates: policy.max_templates,
                max_template_versions_per_template: policy.max_template_versions_per_template,
                templates,
            }
        })
        .collect();
    Ok(WasmStoreOverviewResponse { stores, publication: s.publication })
}

ww_cdk::export_canister!();
ww_cdk::export_candid!();
