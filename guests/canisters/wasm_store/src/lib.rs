//! wasm_store: the data plane of the deployment.
//!
//! A passive container of published releases: approved manifests (its
//! catalog), chunk sets and chunks, in stable memory (memory ids 10-12 and 15), and
//! the store-local GC state (id 62). It starts empty, gains data only through
//! root's publication, has no bootstrap knowledge and no lifecycle authority:
//! every endpoint answers root only (the principal given at install).
//!
//! Every published chunk also goes into the store's own IC chunk store
//! (`upload_chunk`, hashed on the host), which both verifies its hash and
//! makes it ready for root's `install_chunked_code` with this store as the
//! source. (The reference implementation copies chunks there lazily at the
//! first install; doing it at publication means the stable map and the chunk
//! store never disagree.)
//!
//! GC runs `Normal → Prepared → InProgress → Complete` on root's command;
//! publication is accepted only in `Normal`; completing wipes the chunk store
//! and all three maps.

use candid::Principal;
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use ww_cdk::ic_stable_structures::StableCell;
use ww_cdk::{init, query, update};
use ww_template::memory::{self, Memory};
use ww_template::storage::{self, ReleaseKey, StableCandid};
use ww_template::types::{
    Error, ErrorCode, GcMode, ManifestState, Result, TemplateChunkInput, TemplateChunkResponse,
    TemplateChunkSetInfoResponse, TemplateChunkSetPrepareInput, TemplateManifestInput, WasmStoreCatalogEntryResponse,
    WasmStoreGcReport, WasmStoreGcStatusResponse, WasmStoreInitArgs, WasmStorePolicy, WasmStoreStatusResponse,
};
use ww_template::{format_bytes, gc, mgmt};

thread_local! {
    static CONFIG: RefCell<StableCell<StableCandid<Option<WasmStoreInitArgs>>, Memory>> =
        RefCell::new(StableCell::init(memory::get(memory::WASM_STORE_CONFIG), StableCandid(None)));
    static GC: RefCell<StableCell<StableCandid<Option<WasmStoreGcStatusResponse>>, Memory>> =
        RefCell::new(StableCell::init(memory::get(memory::WASM_STORE_GC_STATE), StableCandid(None)));
}

fn now_secs() -> u64 {
    ww_cdk::api::time() / 1_000_000_000
}

fn config() -> WasmStoreInitArgs {
    CONFIG.with(|c| c.borrow().get().0.clone()).unwrap_or_else(|| ww_cdk::api::trap("wasm_store: not initialised"))
}

fn policy() -> WasmStorePolicy {
    config().policy
}

fn gc_state() -> WasmStoreGcStatusResponse {
    GC.with(|g| g.borrow().get().0.clone()).unwrap_or_else(|| gc::initial(0))
}

fn set_gc_state(state: WasmStoreGcStatusResponse) {
    GC.with(|g| g.borrow_mut().set(StableCandid(Some(state))));
}

/// Every endpoint answers root only.
fn require_root() -> Result<()> {
    let caller = ww_cdk::api::msg_caller();
    let root = config().root;
    if caller != root {
        return Err(Error::new(ErrorCode::Unauthorized, format!("wasm_store answers root ({root}) only, not {caller}")));
    }
    Ok(())
}

/// Publication needs GC mode Normal.
fn require_accepting() -> Result<()> {
    let mode = gc_state().mode;
    if mode != GcMode::Normal {
        return Err(Error::new(ErrorCode::Conflict, format!("wasm_store takes no publication while gc is {mode:?}")));
    }
    Ok(())
}

/// Fails if adding `extra` bytes (and possibly a new template or version)
/// would exceed the policy.
fn ensure_capacity(key: &ReleaseKey, extra: u64) -> Result<()> {
    let policy = policy();
    let occupancy = storage::occupancy();
    let projected = occupancy.occupied_bytes + extra;
    if projected > policy.max_store_bytes {
        return Err(Error::new(
            ErrorCode::WasmStoreCapacityExceeded,
            format!("{key}: projected {projected} bytes exceed max_store_bytes {}", policy.max_store_bytes),
        ));
    }
    let existing = occupancy.templates.iter().find(|t| t.template_id == key.template_id);
    if let (Some(max), None) = (policy.max_templates, existing)
        && occupancy.template_count >= max
    {
        return Err(Error::new(ErrorCode::WasmStoreCapacityExceeded, format!("{key}: template limit {max} reached")));
    }
    if let (Some(max), Some(t)) = (policy.max_template_versions_per_template, existing)
        && storage::chunk_set(key).is_none()
        && storage::manifest(key).is_none()
        && t.versions >= max
    {
        return Err(Error::new(ErrorCode::WasmStoreCapacityExceeded, format!("{key}: version limit {max} reached")));
    }
    Ok(())
}

#[init]
fn init(args: WasmStoreInitArgs) {
    CONFIG.with(|c| c.borrow_mut().set(StableCandid(Some(args))));
    set_gc_state(gc::initial(now_secs()));
}

/// Records an approved manifest in the store's catalog (one approved per role).
#[update]
fn canic_wasm_store_stage_manifest(input: TemplateManifestInput) -> Result<()> {
    require_root()?;
    require_accepting()?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    ensure_capacity(&key, 512)?;
    storage::stage_manifest(input)
}

/// Declares a release's chunks, with capacity enforcement.
#[update]
fn canic_wasm_store_prepare(input: TemplateChunkSetPrepareInput) -> Result<TemplateChunkSetInfoResponse> {
    require_root()?;
    require_accepting()?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    let already = storage::chunk_set(&key).is_some_and(|s| s.chunk_hashes == input.chunk_hashes);
    if !already {
        let held: u64 = (0..input.chunk_hashes.len() as u32).filter_map(|i| storage::chunk(&key, i)).map(|c| c.len() as u64).sum();
        ensure_capacity(&key, input.payload_size_bytes.saturating_sub(held) + 64 + 40 * input.chunk_hashes.len() as u64)?;
    }
    let set = storage::prepare(&input, now_secs())?;
    Ok(TemplateChunkSetInfoResponse { chunk_hashes: set.chunk_hashes })
}

/// Stores one chunk after the host has hashed it into the store's chunk store.
#[update]
async fn canic_wasm_store_publish_chunk(input: TemplateChunkInput) -> Result<()> {
    require_root()?;
    require_accepting()?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    let expected = storage::expected_chunk_hash(&key, input.chunk_index)?;
    if storage::has_chunk(&key, input.chunk_index) {
        // Idempotent: the stored chunk was verified when it arrived; the
        // bytes given now must still be the right ones.
        if storage::chunk(&key, input.chunk_index).as_deref() == Some(input.bytes.as_slice()) {
            return Ok(());
        }
    } else {
        ensure_capacity(&key, input.bytes.len() as u64 + 32)?;
    }
    let hash = mgmt::upload_chunk(ww_cdk::api::canister_self(), &input.bytes).await?;
    storage::check_chunk_hash(&key, input.chunk_index, &hash, &expected)?;
    require_accepting()?;
    storage::put_chunk(&key, input.chunk_index, input.bytes.into_vec());
    Ok(())
}

/// The store's approved manifests.
#[query]
fn canic_wasm_store_catalog() -> Result<Vec<WasmStoreCatalogEntryResponse>> {
    require_root()?;
    Ok(storage::manifests()
        .into_iter()
        .filter(|(_, m)| m.manifest_state == ManifestState::Approved)
        .map(|(k, m)| WasmStoreCatalogEntryResponse {
            role: m.role,
            template_id: k.template_id,
            version: k.version,
            payload_hash: m.payload_hash,
            payload_size_bytes: m.payload_size_bytes,
        })
        .collect())
}

/// A release's chunk hashes.
#[query]
fn canic_wasm_store_info(template_id: String, version: String) -> Result<TemplateChunkSetInfoResponse> {
    require_root()?;
    let key = ReleaseKey::new(template_id, version);
    let set = storage::chunk_set(&key).ok_or_else(|| Error::new(ErrorCode::NotFound, format!("release {key} is not in this store")))?;
    Ok(TemplateChunkSetInfoResponse { chunk_hashes: set.chunk_hashes })
}

/// One chunk's bytes.
#[query]
fn canic_wasm_store_chunk(template_id: String, version: String, chunk_index: u32) -> Result<TemplateChunkResponse> {
    require_root()?;
    let key = ReleaseKey::new(template_id, version);
    storage::expected_chunk_hash(&key, chunk_index)?;
    let bytes = storage::chunk(&key, chunk_index)
        .ok_or_else(|| Error::new(ErrorCode::TemplateChunkMissing, format!("chunk {key}#{chunk_index} is not in this store")))?;
    Ok(TemplateChunkResponse { bytes: ByteBuf::from(bytes) })
}

/// The store's own account of its contents and capacity.
#[query]
fn canic_wasm_store_status() -> Result<WasmStoreStatusResponse> {
    require_root()?;
    let policy = policy();
    let occupancy = storage::occupancy();
    let remaining = policy.max_store_bytes.saturating_sub(occupancy.occupied_bytes);
    Ok(WasmStoreStatusResponse {
        gc: gc_state(),
        occupied_store_bytes: occupancy.occupied_bytes,
        occupied_store_size: format_bytes(occupancy.occupied_bytes),
        max_store_bytes: policy.max_store_bytes,
        max_store_size: format_bytes(policy.max_store_bytes),
        remaining_store_bytes: remaining,
        remaining_store_size: format_bytes(remaining),
        headroom_bytes: policy.headroom_bytes,
        headroom_size: policy.headroom_bytes.map(format_bytes),
        within_headroom: policy.headroom_bytes.is_some_and(|h| remaining <= h),
        template_count: occupancy.template_count,
        max_templates: policy.max_templates,
        release_count: occupancy.release_count,
        max_template_versions_per_template: policy.max_template_versions_per_template,
        templates: occupancy.templates,
    })
}

fn gc_to(mode: GcMode) -> Result<()> {
    let mut state = gc_state();
    if gc::transition(&mut state, mode, now_secs())? {
        set_gc_state(state);
    }
    Ok(())
}

/// GC step 1: stop taking publications.
#[update]
fn canic_wasm_store_prepare_gc() -> Result<()> {
    require_root()?;
    gc_to(GcMode::Prepared)
}

/// GC step 2: collection started.
#[update]
fn canic_wasm_store_begin_gc() -> Result<()> {
    require_root()?;
    gc_to(GcMode::InProgress)
}

/// GC step 3: wipe the chunk store and every map, then mark Complete. Already
/// Complete: nothing to do (an empty report).
#[update]
async fn canic_wasm_store_complete_gc() -> Result<WasmStoreGcReport> {
    require_root()?;
    let mode = gc_state().mode;
    if mode == GcMode::Complete {
        return Ok(WasmStoreGcReport {
            reclaimed_store_bytes: 0,
            cleared_template_count: 0,
            cleared_release_count: 0,
            cleared_chunk_count: 0,
            cleared_chunk_store_hash_count: 0,
        });
    }
    if mode != GcMode::InProgress {
        return Err(Error::new(ErrorCode::Conflict, format!("wasm store gc transition {mode:?} -> Complete is not allowed")));
    }
    let me = ww_cdk::api::canister_self();
    let hashes = mgmt::stored_chunks(me).await?;
    mgmt::clear_chunk_store(me).await?;
    let occupancy = storage::occupancy();
    storage::clear();
    gc_to(GcMode::Complete)?;
    let report = WasmStoreGcReport {
        reclaimed_store_bytes: occupancy.occupied_bytes,
        cleared_template_count: occupancy.template_count,
        cleared_release_count: occupancy.release_count,
        cleared_chunk_count: occupancy.chunk_count,
        cleared_chunk_store_hash_count: hashes.len() as u32,
    };
    ww_cdk::println!(
        "wasm_store: gc complete reclaimed_bytes={} cleared_templates={} cleared_releases={} cleared_chunks={} cleared_chunk_store_hashes={}",
        report.reclaimed_store_bytes,
        report.cleared_template_count,
        report.cleared_release_count,
        report.cleared_chunk_count,
        report.cleared_chunk_store_hash_count
    );
    Ok(report)
}

/// The store's root (for diagnostics).
#[query]
fn canic_wasm_store_root() -> Principal {
    config().root
}

ww_cdk::export_canister!();
ww_cdk::export_candid!();
