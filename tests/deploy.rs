//! The IC deploy simulation on the replica, without booting a node: root
//! (`guests/canisters/root`), wasm_store (`guests/canisters/wasm_store`) and
//! the nine role canisters, driven the way the deployment pipeline drives
//! them (`guests/deployer`): install root, stage every release (manifest,
//! prepare, chunks), resume, read the overview, run admin commands.
//!
//! Each test owns one replica. Small store policies force rollover instead
//! of large payloads. Installs are checked on the host side through
//! [`Replica::install_history`], not through root's own report.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use candid::{CandidType, Deserialize, Encode, Principal};
use serde_bytes::ByteBuf;
use ww::replica::install::prepare_module;
use ww::replica::{InstallMode, InstallSource, Replica};
use ww_template::types::*;
use ww_template::{BOOTSTRAP_BINDING, WASM_STORE_ROLE, template_id_for_role};

#[path = "deploy/harness.rs"]
mod harness;
#[path = "deploy/pipeline.rs"]
mod pipeline;

use harness::*;

// ---------------------------------------------------------------------------
// 1. Bootstrap happy path

#[tokio::test]
async fn bootstrap_installs_the_whole_release_set() {
    let d = Deploy::new(Deploy::init(&ROLES, None)).await;
    d.stage_release_set(&ROLES).await;
    assert!(!d.ready().await, "not ready before resume");
    let report = d.resume().await.expect("resume");
    assert!(d.ready().await, "root is ready");

    // The report: wasm_store first, then the roles alphabetically, all Created.
    let order: Vec<&str> = report.roles.iter().map(|r| r.role.as_str()).collect();
    let mut expected = vec![WASM_STORE_ROLE];
    expected.extend(ROLES);
    assert_eq!(order, expected);
    assert!(report.roles.iter().all(|r| r.action == RoleAction::Created), "{report:?}");
    assert_eq!(report.published_releases, 9);
    assert_eq!(report.published_bytes, ROLES.iter().map(|r| payload(r).len() as u64).sum::<u64>());

    let store = d.only_store().await;
    assert_eq!(report.store, store);
    assert!(d.stored_chunks(d.root).await.is_empty(), "root keeps no payload in its chunk store");
    let registry = d.registry().await;
    assert_eq!(registry.len(), 10, "wasm_store and nine roles: {registry:?}");
    for role in ROLES {
        let pid = d.role_pid(role).await;
        assert!(d.r.exists(&pid), "{role}'s canister exists");
        let status = d.canister_status(pid).await;
        assert!(status.settings.controllers.contains(&d.root), "{role} is controlled by root");
        assert_eq!(status.module_hash.map(|h| h.into_vec()), Some(sha256(payload(role))), "{role}'s module hash");
        let env: CanicEnv = d.query_as(d.admin, pid, "canic_env", no_args()).await;
        assert_eq!((env.role.as_str(), env.root, env.parent, env.version.as_str()), (role, d.root, d.root, V1));
        assert_eq!(role_of(&report, role).pid, Some(pid));
    }
    let store_status = d.canister_status(store).await;
    assert!(store_status.settings.controllers.contains(&d.root));
    assert_eq!(store_status.module_hash.map(|h| h.into_vec()), Some(sha256(payload(WASM_STORE_ROLE))));

    // The store's catalog: the nine releases, each with its hash.
    let catalog = d.store_catalog(store).await;
    assert_eq!(catalog.len(), 9, "{catalog:?}");
    for role in ROLES {
        let e = catalog.iter().find(|e| e.role == role).unwrap_or_else(|| panic!("{role} not in the catalog"));
        assert_eq!((e.template_id.as_str(), e.version.as_str()), (template_id_for_role(role).as_str(), V1));
        assert_eq!(e.payload_hash.as_slice(), sha256(payload(role)).as_slice());
    }
    assert_eq!(d.store_status(store).await.release_count, 9);

    // The overview: one store, active, generation 1, nine templates.
    let o = d.overview().await;
    let s = &o.stores[0];
    assert_eq!(o.publication.active_binding.as_deref(), Some(store.to_text().as_str()));
    assert_eq!((o.publication.detached_binding.as_deref(), o.publication.retired_binding.as_deref()), (None, None));
    assert_eq!(o.publication.generation, 1);
    assert_eq!((s.binding.clone(), s.publication_slot), (store.to_text(), Some(PublicationSlot::Active)));
    assert_eq!((s.template_count, s.release_count), (9, 9));
    assert_eq!(s.templates.len(), 9);
    assert!(s.templates.iter().all(|t| t.versions == 1));
    assert_eq!(s.gc.mode, GcMode::Normal);
    assert_eq!((s.max_store_bytes, s.headroom_bytes), (40_000_000, Some(4_000_000)));
    assert!(!s.within_headroom);

    // Every manifest was rebound from the staging buffer to the store.
    for st in d.debug().await.staged {
        let want = if st.role == WASM_STORE_ROLE { BOOTSTRAP_BINDING.to_string() } else { store.to_text() };
        assert_eq!(st.store_binding, want, "{st:?}");
    }
}

// ---------------------------------------------------------------------------
// 2. No fallback: bootstrap requires staged input

#[tokio::test]
async fn bootstrap_requires_the_staged_store_release() {
    let d = Deploy::new(Deploy::init(&["app"], None)).await;
    expect_err(d.resume().await, ErrorCode::BootstrapNotReady, "waiting for staged wasm_store");
    assert_eq!(d.r.canister_ids(), vec![d.root], "nothing but root exists");
    assert!(!d.ready().await);

    // Other roles alone are not enough.
    d.stage("app", V1, payload("app")).await.expect("staging app");
    expect_err(d.resume().await, ErrorCode::BootstrapNotReady, "waiting for staged wasm_store");
    assert_eq!(d.r.canister_ids(), vec![d.root]);

    // The store's manifest and chunk set without its chunk: still refused.
    let store = payload(WASM_STORE_ROLE);
    d.stage_manifest(&manifest(WASM_STORE_ROLE, V1, store)).await.expect("manifest");
    d.prepare(&prepare_input(WASM_STORE_ROLE, V1, store)).await.expect("prepare");
    let debug = d.debug().await;
    assert!(!debug.ready_for_bootstrap && !debug.ready, "{debug:?}");
    let e = expect_err(d.resume().await, ErrorCode::BootstrapNotReady, "waiting for staged wasm_store");
    assert!(e.message.contains("has not been published"), "{e}");
    assert_eq!(d.r.canister_ids(), vec![d.root]);
    assert!(d.overview().await.stores.is_empty());

    // The chunk arrives: the same resume now proceeds.
    d.publish_chunk(&chunk_input(WASM_STORE_ROLE, V1, 0, store)).await.expect("chunk");
    assert!(d.debug().await.ready_for_bootstrap);
    d.resume().await.expect("resume");
    assert!(d.ready().await);
    assert_eq!(d.registry().await.len(), 2);
}

// ---------------------------------------------------------------------------
// 3. wasm_store starts empty and answers root only

/// A wasm_store installed directly by the test, answering `root`.
async fn direct_store(r: &Replica, root: Principal, policy: WasmStorePolicy) -> Principal {
    let id = r.create_canister(vec![admin()]);
    let m = prepare_module(r, &id, payload(WASM_STORE_ROLE)).expect("preparing wasm_store");
    let arg = Encode!(&WasmStoreInitArgs { root, policy }).expect("encoding");
    r.install(admin(), id, InstallMode::Install, m, arg).await.expect("installing wasm_store");
    id
}

#[tokio::test]
async fn wasm_store_starts_empty_and_answers_root_only() {
    let r = replica();
    let root = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xF0, 1, 1]);
    let store = direct_store(&r, root, WasmStorePolicy::default()).await;
    let d = Deploy { r, admin: admin(), root };

    let status = d.store_status(store).await;
    assert_eq!((status.occupied_store_bytes, status.template_count, status.release_count), (0, 0, 0));
    assert!(status.templates.is_empty());
    assert_eq!(status.gc.mode, GcMode::Normal);
    assert_eq!((status.max_store_bytes, status.remaining_store_bytes), (40_000_000, 40_000_000));
    assert!(d.store_catalog(store).await.is_empty());
    assert!(d.stored_chunks(store).await.is_empty(), "its chunk store is empty");
    let root_seen: Principal = d.query_as(stranger(), store, "canic_wasm_store_root", no_args()).await;
    assert_eq!(root_seen, root);

    // Anyone but root (its controller included) is refused everywhere.
    let bytes = b"not a release".to_vec();
    let key = (template_id_for_role("app"), V1.to_string());
    for caller in [admin(), stranger()] {
        let unauthorized = |e: Error| {
            assert_eq!(e.code, ErrorCode::Unauthorized, "{e}");
            assert!(e.message.contains("answers root"), "{e}");
        };
        let q = |m: &'static str, arg: Vec<u8>| d.query_as::<Result<candid::Reserved>>(caller, store, m, arg);
        for (m, arg) in [
            ("canic_wasm_store_catalog", no_args()),
            ("canic_wasm_store_status", no_args()),
            ("canic_wasm_store_info", Encode!(&key.0, &key.1).expect("encoding")),
            ("canic_wasm_store_chunk", Encode!(&key.0, &key.1, &0u32).expect("encoding")),
        ] {
            unauthorized(q(m, arg).await.expect_err(m));
        }
        let u = |m: &'static str, arg: Vec<u8>| d.update_as::<Result<candid::Reserved>>(caller, store, m, arg);
        for (m, arg) in [
            ("canic_wasm_store_stage_manifest", Encode!(&manifest("app", V1, &bytes)).expect("encoding")),
            ("canic_wasm_store_prepare", Encode!(&prepare_input("app", V1, &bytes)).expect("encoding")),
            ("canic_wasm_store_publish_chunk", Encode!(&chunk_input("app", V1, 0, &bytes)).expect("encoding")),
            ("canic_wasm_store_prepare_gc", no_args()),
            ("canic_wasm_store_begin_gc", no_args()),
            ("canic_wasm_store_complete_gc", no_args()),
        ] {
            unauthorized(u(m, arg).await.expect_err(m));
        }
    }
    // Nothing changed.
    let after = d.store_status(store).await;
    assert_eq!((after.occupied_store_bytes, after.release_count, after.gc.mode), (0, 0, GcMode::Normal));
}

// ---------------------------------------------------------------------------
// 4. Only wasm_store is installed inline; the rest chunked and hash-verified

#[tokio::test]
async fn only_wasm_store_is_installed_inline() {
    let roles = ["app", "minimal", "user_hub"];
    let d = Deploy::new(Deploy::init(&roles, None)).await;
    d.stage_release_set(&roles).await;
    d.resume().await.expect("resume");
    let store = d.only_store().await;

    // Root itself: the test installed it through the host API.
    let root = d.history(d.root);
    assert_eq!(root.len(), 1);
    assert_eq!((root[0].mode, root[0].source, root[0].caller), (InstallMode::Install, InstallSource::Host, d.admin));

    // The store: install_code (inline), by root, with its payload's hash.
    let h = d.history(store);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!((h[0].mode, h[0].source, h[0].caller), (InstallMode::Install, InstallSource::InstallCode, d.root));
    assert_eq!(h[0].module_hash.to_vec(), sha256(payload(WASM_STORE_ROLE)));

    // Every role: install_chunked_code from the store, by root, hash-verified.
    for role in roles {
        let pid = d.role_pid(role).await;
        let h = d.history(pid);
        assert_eq!(h.len(), 1, "{role}: {h:?}");
        assert_eq!((h[0].mode, h[0].source, h[0].caller), (InstallMode::Install, InstallSource::InstallChunkedCode { store }, d.root), "{role}");
        assert_eq!(h[0].module_hash.to_vec(), sha256(payload(role)), "{role}");
    }

    // Nothing else was created, and every canister but root came from root.
    let mut ids = d.r.canister_ids();
    ids.sort();
    let mut expected = vec![d.root, store];
    for role in roles {
        expected.push(d.role_pid(role).await);
    }
    expected.sort();
    assert_eq!(ids, expected);
    let inline: Vec<_> = ids
        .iter()
        .filter(|id| d.history(**id).iter().any(|e| e.source == InstallSource::InstallCode))
        .collect();
    assert_eq!(inline, vec![&store], "the one inline install is the store's");
}

// ---------------------------------------------------------------------------
// 5. Staging errors, each named

#[tokio::test]
async fn staging_errors_are_named() {
    let d = Deploy::new(Deploy::init(&[], None)).await;
    let app = payload("app");

    // Chunk before prepare (the manifest alone is not a chunk set).
    d.stage_manifest(&manifest("app", V1, app)).await.expect("manifest");
    expect_err(d.publish_chunk(&chunk_input("app", V1, 0, app)).await, ErrorCode::TemplateChunkSetMissing, "before its chunk set was prepared");

    // Empty prepare.
    let mut empty = prepare_input("app", V1, app);
    empty.chunk_hashes.clear();
    expect_err(d.prepare(&empty).await, ErrorCode::TemplateChunkSetEmpty, "lists no chunk hashes");

    d.prepare(&prepare_input("app", V1, app)).await.expect("prepare");
    // Chunk index out of range (one chunk: only index 0).
    expect_err(d.publish_chunk(&chunk_input("app", V1, 1, app)).await, ErrorCode::TemplateChunkIndexOutOfRange, "out of range (chunk count 1)");
    // Chunk hash mismatch (one byte flipped).
    let mut bad = app.to_vec();
    bad[100] ^= 0xff;
    expect_err(d.publish_chunk(&chunk_input("app", V1, 0, &bad)).await, ErrorCode::TemplateChunkHashMismatch, "prepared as");
    assert!(d.stored_chunks(d.root).await.is_empty(), "the rejected chunk is not kept in root's chunk store");

    let debug = d.debug().await;
    let st = debug.staged.iter().find(|s| s.role == "app").expect("app is staged");
    assert_eq!((st.expected_chunk_count, st.stored_chunk_count, st.publishable), (1, 0, false), "no bad chunk was kept");
    d.publish_chunk(&chunk_input("app", V1, 0, app)).await.expect("the right chunk");
    let debug = d.debug().await;
    let st = debug.staged.iter().find(|s| s.role == "app").expect("app is staged");
    assert_eq!((st.stored_chunk_count, st.publishable), (1, true));

    // The same key with another payload is a conflict, not a silent replace.
    expect_err(d.stage_manifest(&manifest("app", V1, &bad)).await, ErrorCode::Conflict, "already staged with a different payload");
}

#[tokio::test]
async fn staged_set_mismatch_fails_before_any_store_write() {
    let d = Deploy::new(Deploy::init(&["minimal"], None)).await;
    d.stage_release_set(&["minimal"]).await;

    // A payload hash mismatch: manifest and prepare declare a hash its (well
    // hashed) chunk does not have. Detected at resume, before any store exists.
    let app = payload("app");
    let wrong_hash = ByteBuf::from(sha256(b"something else"));
    d.stage_manifest(&TemplateManifestInput { payload_hash: wrong_hash.clone(), ..manifest("app", V1, app) }).await.expect("manifest");
    d.prepare(&TemplateChunkSetPrepareInput { payload_hash: wrong_hash, ..prepare_input("app", V1, app) }).await.expect("prepare");
    d.publish_chunk(&chunk_input("app", V1, 0, app)).await.expect("chunk");
    expect_err(d.resume().await, ErrorCode::PayloadHashMismatch, "app@0.1.0: chunks hash to");
    assert_eq!(d.r.canister_ids(), vec![d.root], "no store (and no role) was created");
    assert!(d.overview().await.stores.is_empty());
    assert!(!d.ready().await);

    // A fixed release (a new version) lets the bootstrap run.
    d.stage("app", V2, app).await.expect("staging app 0.2.0");
    d.resume().await.expect("resume");
    let store = d.only_store().await;
    let before_overview = d.overview().await;
    let before_status = d.store_status(store).await;
    let before_chunks = d.stored_chunks(store).await;
    let before_ids = d.r.canister_ids();
    assert_eq!(before_status.release_count, 2);

    // A payload size mismatch in a later staged release: detected at resume,
    // the store untouched.
    let shard = payload("shard");
    d.stage_manifest(&TemplateManifestInput { payload_size_bytes: shard.len() as u64 + 1, ..manifest("shard", V1, shard) })
        .await
        .expect("manifest");
    d.prepare(&TemplateChunkSetPrepareInput { payload_size_bytes: shard.len() as u64 + 1, ..prepare_input("shard", V1, shard) })
        .await
        .expect("prepare");
    d.publish_chunk(&chunk_input("shard", V1, 0, shard)).await.expect("chunk");
    expect_err(d.resume().await, ErrorCode::PayloadSizeMismatch, "declares");
    expect_err(
        d.root_update::<Result<()>>("canic_template_publish_to_current_store_admin", no_args()).await,
        ErrorCode::PayloadSizeMismatch,
        "declares",
    );
    assert_eq!(d.overview().await, before_overview, "root's publication state is unchanged");
    assert_eq!(d.store_status(store).await, before_status, "the store is untouched");
    assert_eq!(d.stored_chunks(store).await, before_chunks);
    assert_eq!(d.r.canister_ids(), before_ids);
}

#[tokio::test]
async fn auto_create_without_a_manifest_is_skipped() {
    let d = Deploy::new(Deploy::init(&["app", "minimal", "test"], None)).await;
    d.stage_release_set(&["app", "test"]).await;
    let report = d.resume().await.expect("resume");
    let minimal = role_of(&report, "minimal");
    assert_eq!((minimal.action, minimal.pid, minimal.version.as_str()), (RoleAction::Skipped, None, ""));
    for role in ["app", "test"] {
        assert_eq!(role_of(&report, role).action, RoleAction::Created);
        let pid = d.role_pid(role).await;
        assert_eq!(d.canister_status(pid).await.module_hash.map(|h| h.into_vec()), Some(sha256(payload(role))));
    }
    assert!(d.registry().await.iter().all(|r| r.role != "minimal"));
    assert!(d.ready().await);

    // Staged later, the next resume creates it.
    d.stage("minimal", V1, payload("minimal")).await.expect("staging minimal");
    let report = d.resume().await.expect("resume");
    assert_eq!(role_of(&report, "minimal").action, RoleAction::Created);
    assert_eq!(role_of(&report, "app").action, RoleAction::Unchanged);
}

#[tokio::test]
async fn admin_endpoints_are_controller_only_and_stores_answer_root_only() {
    let d = Deploy::new(Deploy::init(&["minimal"], None)).await;
    d.stage_release_set(&["minimal"]).await;
    d.resume().await.expect("resume");
    let store = d.only_store().await;
    let before = d.overview().await;

    let bytes = payload("app");
    let updates = [
        ("canic_template_stage_manifest_admin", Encode!(&manifest("app", V1, bytes)).expect("encoding")),
        ("canic_template_prepare_admin", Encode!(&prepare_input("app", V1, bytes)).expect("encoding")),
        ("canic_template_publish_chunk_admin", Encode!(&chunk_input("app", V1, 0, bytes)).expect("encoding")),
        ("canic_wasm_store_bootstrap_resume_root_admin", no_args()),
        ("canic_template_publish_to_current_store_admin", no_args()),
        ("canic_wasm_store_admin", Encode!(&WasmStoreAdminCommand::ClearPublicationBinding).expect("encoding")),
        ("canic_wasm_store_admin", Encode!(&WasmStoreAdminCommand::RetireDetachedBinding).expect("encoding")),
        (
            "canic_wasm_store_admin",
            Encode!(&WasmStoreAdminCommand::DeleteFinalizedStore { binding: store.to_text(), store_pid: store }).expect("encoding"),
        ),
    ];
    // A stranger, and the store itself (root's child, not its controller).
    for caller in [stranger(), store] {
        for (m, arg) in &updates {
            let r: Result<candid::Reserved> = d.update_as(caller, d.root, m, arg.clone()).await;
            expect_err(r, ErrorCode::Unauthorized, "is not a controller of root");
        }
        for m in ["canic_wasm_store_bootstrap_debug", "canic_wasm_store_overview"] {
            let r: Result<candid::Reserved> = d.query_as(caller, d.root, m, no_args()).await;
            expect_err(r, ErrorCode::Unauthorized, "is not a controller of root");
        }
    }
    assert_eq!(d.overview().await, before, "nothing changed");
    assert!(d.debug().await.staged.iter().all(|s| s.role != "app"), "nothing was staged");

    // The store answers root only, not the admin (its controller) nor a role.
    let minimal = d.role_pid("minimal").await;
    for caller in [d.admin, stranger(), minimal] {
        let r: Result<candid::Reserved> = d.query_as(caller, store, "canic_wasm_store_status", no_args()).await;
        expect_err(r, ErrorCode::Unauthorized, "answers root");
        let r: Result<candid::Reserved> = d.update_as(caller, store, "canic_wasm_store_prepare_gc", no_args()).await;
        expect_err(r, ErrorCode::Unauthorized, "answers root");
    }
    assert_eq!(d.store_status(store).await.gc.mode, GcMode::Normal);
}

// ---------------------------------------------------------------------------
// 6. Store GC: monotonic, idempotent per mode; Complete wipes the store

#[tokio::test]
async fn store_gc_is_monotonic_idempotent_and_complete_wipes() {
    let r = replica();
    // The test plays root.
    let store = direct_store(&r, admin(), WasmStorePolicy::default()).await;
    let d = Deploy { r, admin: admin(), root: admin() };
    let call = |m: &'static str| d.update_as::<Result<()>>(admin(), store, m, no_args());
    let complete = || d.update_as::<Result<WasmStoreGcReport>>(admin(), store, "canic_wasm_store_complete_gc", no_args());

    // Publish one release into it.
    let bytes = payload("minimal");
    let info: Result<TemplateChunkSetInfoResponse> =
        d.update_as(admin(), store, "canic_wasm_store_prepare", Encode!(&prepare_input("minimal", V1, bytes)).expect("encoding")).await;
    info.expect("prepare");
    let r: Result<()> =
        d.update_as(admin(), store, "canic_wasm_store_publish_chunk", Encode!(&chunk_input("minimal", V1, 0, bytes)).expect("encoding")).await;
    r.expect("publish chunk");
    let mut m = manifest("minimal", V1, bytes);
    m.store_binding = store.to_text();
    let r: Result<()> = d.update_as(admin(), store, "canic_wasm_store_stage_manifest", Encode!(&m).expect("encoding")).await;
    r.expect("stage manifest");
    let s = d.store_status(store).await;
    assert_eq!((s.release_count, s.template_count), (1, 1));
    assert!(s.occupied_store_bytes > bytes.len() as u64);
    assert_eq!(d.stored_chunks(store).await, vec![sha256(bytes)]);

    // Out of order, from Normal.
    expect_err(call("canic_wasm_store_begin_gc").await, ErrorCode::Conflict, "Normal -> InProgress is not allowed");
    expect_err(complete().await, ErrorCode::Conflict, "Normal -> Complete is not allowed");
    assert_eq!(d.store_status(store).await.gc.mode, GcMode::Normal);

    // Prepared, twice: the second is a no-op (timestamps unchanged).
    call("canic_wasm_store_prepare_gc").await.expect("prepare gc");
    let prepared = d.store_status(store).await.gc;
    assert_eq!((prepared.mode, prepared.started_at, prepared.completed_at), (GcMode::Prepared, None, None));
    assert!(prepared.prepared_at.is_some());
    d.r.advance_time(Duration::from_secs(60));
    call("canic_wasm_store_prepare_gc").await.expect("prepare gc again");
    assert_eq!(d.store_status(store).await.gc, prepared, "idempotent");
    expect_err(complete().await, ErrorCode::Conflict, "Prepared -> Complete is not allowed");
    // No publication while collecting.
    let r: Result<()> =
        d.update_as(admin(), store, "canic_wasm_store_publish_chunk", Encode!(&chunk_input("minimal", V1, 0, bytes)).expect("encoding")).await;
    expect_err(r, ErrorCode::Conflict, "takes no publication while gc is Prepared");

    // InProgress, twice.
    call("canic_wasm_store_begin_gc").await.expect("begin gc");
    let begun = d.store_status(store).await.gc;
    assert_eq!(begun.mode, GcMode::InProgress);
    assert!(begun.started_at.is_some());
    d.r.advance_time(Duration::from_secs(60));
    call("canic_wasm_store_begin_gc").await.expect("begin gc again");
    assert_eq!(d.store_status(store).await.gc, begun, "idempotent");
    expect_err(call("canic_wasm_store_prepare_gc").await, ErrorCode::Conflict, "InProgress -> Prepared is not allowed");

    // Complete wipes everything: maps and the chunk store.
    let report = complete().await.expect("complete gc");
    assert_eq!(
        (report.cleared_release_count, report.cleared_template_count, report.cleared_chunk_count, report.cleared_chunk_store_hash_count),
        (1, 1, 1, 1)
    );
    assert_eq!(report.reclaimed_store_bytes, s.occupied_store_bytes);
    let wiped = d.store_status(store).await;
    assert_eq!((wiped.occupied_store_bytes, wiped.release_count, wiped.template_count), (0, 0, 0));
    assert_eq!((wiped.gc.mode, wiped.gc.runs_completed), (GcMode::Complete, 1));
    assert!(d.store_catalog(store).await.is_empty());
    assert!(d.stored_chunks(store).await.is_empty(), "the chunk store was cleared");
    let chunk: Result<TemplateChunkResponse> = d
        .query_as(admin(), store, "canic_wasm_store_chunk", Encode!(&template_id_for_role("minimal"), &V1, &0u32).expect("encoding"))
        .await;
    expect_err(chunk, ErrorCode::TemplateChunkSetMissing, "before its chunk set was prepared");

    // Complete again: nothing to do. Nothing goes back.
    d.r.advance_time(Duration::from_secs(60));
    let again = complete().await.expect("complete gc again");
    assert_eq!((again.reclaimed_store_bytes, again.cleared_release_count), (0, 0));
    assert_eq!(d.store_status(store).await.gc, wiped.gc, "idempotent");
    expect_err(call("canic_wasm_store_prepare_gc").await, ErrorCode::Conflict, "Complete -> Prepared is not allowed");
    expect_err(call("canic_wasm_store_begin_gc").await, ErrorCode::Conflict, "Complete -> InProgress is not allowed");
}

// ---------------------------------------------------------------------------
// 7. Publication lifecycle invariants

#[tokio::test]
async fn publication_lifecycle_rollover_retire_gc_finalize_delete() {
    use WasmStoreAdminCommand as C;
    // A policy the first publication (app + minimal) fills exactly to its
    // headroom: the store is then within headroom and takes no more.
    let headroom = 1_000_000u64;
    let first = (payload("app").len() + payload("minimal").len()) as u64;
    let policy = WasmStorePolicy {
        max_store_bytes: first + headroom,
        headroom_bytes: Some(headroom),
        max_templates: None,
        max_template_versions_per_template: None,
    };
    let d = Deploy::new(Deploy::init(&["minimal"], Some(policy))).await;
    d.stage_release_set(&["app", "minimal"]).await;
    d.resume().await.expect("resume");
    let o = d.overview().await;
    assert_eq!(o.publication.generation, 1);
    let s1 = o.stores[0].pid;
    let b1 = s1.to_text();
    assert!(o.stores[0].within_headroom, "the first store is within headroom: {:?}", o.stores[0]);
    assert!(d.store_status(s1).await.within_headroom);

    // Rollover: a new version of minimal cannot go into S1; root creates S2,
    // S1 becomes detached, generation + 1 (exactly once).
    let minimal_v2 = gzip(payload("minimal"));
    d.stage("minimal", V2, &minimal_v2).await.expect("staging minimal 0.2.0");
    let report = d.resume().await.expect("resume (rollover)");
    let o = d.overview().await;
    assert_eq!(o.stores.len(), 2);
    let s2 = report.store;
    let b2 = s2.to_text();
    assert_ne!(s2, s1);
    assert_eq!(
        (o.publication.active_binding.as_deref(), o.publication.detached_binding.as_deref(), o.publication.retired_binding.as_deref()),
        (Some(b2.as_str()), Some(b1.as_str()), None)
    );
    assert_eq!(o.publication.generation, 2);
    assert_eq!(role_of(&report, "minimal").action, RoleAction::Upgraded);
    let minimal = d.role_pid("minimal").await;
    let last = d.history(minimal).last().cloned().expect("minimal was installed");
    assert_eq!((last.mode, last.source, last.module_hash.to_vec()), (InstallMode::Upgrade, InstallSource::InstallChunkedCode { store: s2 }, sha256(&minimal_v2)));
    // Everything current now lives in S2; S1 serves nothing.
    let catalog: Vec<(String, String)> = d.store_catalog(s2).await.into_iter().map(|e| (e.role, e.version)).collect();
    assert_eq!(catalog, [("app".to_string(), V1.to_string()), ("minimal".to_string(), V2.to_string())]);
    let generation = |o: &WasmStoreOverviewResponse| o.publication.generation;

    // Detached stores are never selected for publication.
    expect_err(d.admin(C::PublishCurrentReleaseToStore { store_pid: s1 }).await, ErrorCode::Conflict, "is detached/retired");
    expect_err(d.admin(C::SetPublicationBinding { binding: b1.clone() }).await, ErrorCode::Conflict, "is detached/retired");
    expect_err(d.admin(C::SetPublicationBinding { binding: "nope".into() }).await, ErrorCode::NotFound, "not registered");
    d.admin(C::SetPublicationBinding { binding: b2.clone() }).await.expect("re-activating the active store");
    assert_eq!(generation(&d.overview().await), 2, "a no-op does not count");
    // Nothing retired yet: the GC and finalize commands do nothing.
    assert_eq!(d.admin(C::PrepareRetiredStoreGc).await, Ok(WasmStoreAdminResponse::PreparedRetiredStoreGc { binding: None }));
    assert_eq!(d.admin(C::FinalizeRetiredBinding).await, Ok(WasmStoreAdminResponse::FinalizedRetiredBinding { result: None }));
    // A referenced store cannot be deleted.
    expect_err(d.admin(C::DeleteFinalizedStore { binding: b1.clone(), store_pid: s1 }).await, ErrorCode::Conflict, "still referenced");
    assert_eq!(generation(&d.overview().await), 2);

    // Retire S1.
    assert_eq!(d.admin(C::RetireDetachedBinding).await, Ok(WasmStoreAdminResponse::RetiredDetachedBinding { binding: Some(b1.clone()) }));
    let o = d.overview().await;
    assert_eq!((o.publication.detached_binding.as_deref(), o.publication.retired_binding.as_deref()), (None, Some(b1.as_str())));
    assert!(o.publication.retired_at > 0);
    assert_eq!(generation(&o), 3);
    expect_err(d.admin(C::SetPublicationBinding { binding: b1.clone() }).await, ErrorCode::Conflict, "is detached/retired");
    expect_err(d.admin(C::PublishCurrentReleaseToStore { store_pid: s1 }).await, ErrorCode::Conflict, "is detached/retired");

    // Clear the active binding: S2 detached (S2 still serves releases, so it
    // cannot be retired yet).
    assert_eq!(d.admin(C::ClearPublicationBinding).await, Ok(WasmStoreAdminResponse::ClearedPublicationBinding));
    assert_eq!(generation(&d.overview().await), 4);
    d.admin(C::ClearPublicationBinding).await.expect("clearing again");
    assert_eq!(generation(&d.overview().await), 4, "a no-op does not count");
    expect_err(d.admin(C::RetireDetachedBinding).await, ErrorCode::Conflict, "still serves 2 approved releases");
    expect_err(d.admin(C::SetPublicationBinding { binding: b2.clone() }).await, ErrorCode::Conflict, "is detached/retired");

    // Publishing now needs a store: neither S1 (retired) nor S2 (detached) is
    // selectable, so root creates S3.
    let published = d.admin(C::PublishCurrentReleaseToCurrentStore).await.expect("publish");
    let WasmStoreAdminResponse::PublishedCurrentReleaseToCurrentStore { store_pid: s3 } = published else { panic!("{published:?}") };
    let b3 = s3.to_text();
    assert!(s3 != s1 && s3 != s2);
    let o = d.overview().await;
    assert_eq!(
        (o.publication.active_binding.as_deref(), o.publication.detached_binding.as_deref(), o.publication.retired_binding.as_deref()),
        (Some(b3.as_str()), Some(b2.as_str()), Some(b1.as_str()))
    );
    assert_eq!(generation(&o), 5);
    assert_eq!(d.store_catalog(s3).await.len(), 2);

    // Every slot occupied: retirement and rollover are blocked.
    expect_err(d.admin(C::RetireDetachedBinding).await, ErrorCode::Conflict, "ws retirement blocked: retired slot occupied");
    expect_err(d.admin(C::ClearPublicationBinding).await, ErrorCode::Conflict, "ws rollover blocked: retired slot occupied");
    // A release S3 cannot take (it would need a new store): blocked too, no
    // canister created.
    let big_app = vec![0x5a; (o.stores.iter().find(|s| s.pid == s3).expect("s3").remaining_payload_bytes - headroom + 1) as usize];
    d.stage("app", V2, &big_app).await.expect("staging app 0.2.0");
    let ids = d.r.canister_ids();
    expect_err(d.resume().await, ErrorCode::Conflict, "ws rollover blocked: retired slot occupied");
    assert_eq!(d.r.canister_ids(), ids, "no store was created");
    assert_eq!(generation(&d.overview().await), 5);

    // S1's cleanup, out of order first.
    expect_err(d.admin(C::FinalizeRetiredBinding).await, ErrorCode::Conflict, "not ready for finalize; gc=Normal");
    expect_err(d.admin(C::BeginRetiredStoreGc).await, ErrorCode::Conflict, "Normal -> InProgress is not allowed");
    expect_err(d.admin(C::CompleteRetiredStoreGc).await, ErrorCode::Conflict, "Normal -> Complete is not allowed");
    let mirror = |o: &WasmStoreOverviewResponse| o.stores.iter().find(|s| s.pid == s1).expect("s1").gc.clone();
    assert_eq!(d.admin(C::PrepareRetiredStoreGc).await, Ok(WasmStoreAdminResponse::PreparedRetiredStoreGc { binding: Some(b1.clone()) }));
    let prepared = mirror(&d.overview().await);
    assert_eq!(prepared.mode, GcMode::Prepared);
    d.r.advance_time(Duration::from_secs(5));
    d.admin(C::PrepareRetiredStoreGc).await.expect("prepare again");
    assert_eq!(mirror(&d.overview().await), prepared, "idempotent");
    assert_eq!(d.store_status(s1).await.gc.mode, GcMode::Prepared);
    expect_err(d.admin(C::FinalizeRetiredBinding).await, ErrorCode::Conflict, "gc=Prepared");
    assert_eq!(d.admin(C::BeginRetiredStoreGc).await, Ok(WasmStoreAdminResponse::BeganRetiredStoreGc { binding: Some(b1.clone()) }));
    d.admin(C::BeginRetiredStoreGc).await.expect("begin again");
    expect_err(d.admin(C::DeleteFinalizedStore { binding: b1.clone(), store_pid: s1 }).await, ErrorCode::Conflict, "still referenced");
    assert!(d.store_status(s1).await.release_count > 0, "S1 still holds its releases");
    assert_eq!(d.admin(C::CompleteRetiredStoreGc).await, Ok(WasmStoreAdminResponse::CompletedRetiredStoreGc { binding: Some(b1.clone()) }));
    let wiped = d.store_status(s1).await;
    assert_eq!((wiped.gc.mode, wiped.occupied_store_bytes, wiped.release_count, wiped.template_count), (GcMode::Complete, 0, 0, 0));
    assert!(d.stored_chunks(s1).await.is_empty());
    d.admin(C::CompleteRetiredStoreGc).await.expect("complete again");
    expect_err(d.admin(C::PrepareRetiredStoreGc).await, ErrorCode::Conflict, "Complete -> Prepared is not allowed");
    assert_eq!(mirror(&d.overview().await).mode, GcMode::Complete);
    assert_eq!(generation(&d.overview().await), 5, "GC is store-local: no publication mutation");

    // Finalize: the retired slot is cleared.
    assert_eq!(
        d.admin(C::FinalizeRetiredBinding).await,
        Ok(WasmStoreAdminResponse::FinalizedRetiredBinding { result: Some(StoreRef { binding: b1.clone(), store_pid: s1 }) })
    );
    let o = d.overview().await;
    assert_eq!((o.publication.retired_binding.as_deref(), o.publication.retired_at), (None, 0));
    assert_eq!(generation(&o), 6);
    // Delete: the wrong pair is not found; the finalized store goes.
    expect_err(d.admin(C::DeleteFinalizedStore { binding: b1.clone(), store_pid: s2 }).await, ErrorCode::NotFound, "is not registered");
    assert_eq!(
        d.admin(C::DeleteFinalizedStore { binding: b1.clone(), store_pid: s1 }).await,
        Ok(WasmStoreAdminResponse::DeletedFinalizedStore { binding: b1.clone(), store_pid: s1 })
    );
    assert!(!d.r.exists(&s1), "S1 was deleted");
    let o = d.overview().await;
    assert_eq!(o.stores.iter().map(|s| s.pid).collect::<Vec<_>>().len(), 2);
    assert!(o.stores.iter().all(|s| s.pid != s1));
    assert!(d.registry().await.iter().all(|r| r.pid != s1));
    assert_eq!(generation(&o), 6);

    // With the retired slot free, the blocked rollover goes through: S4
    // active, S3 detached, S2 retired.
    let report = d.resume().await.expect("resume (second rollover)");
    let s4 = report.store;
    let b4 = s4.to_text();
    let o = d.overview().await;
    assert_eq!(
        (o.publication.active_binding.as_deref(), o.publication.detached_binding.as_deref(), o.publication.retired_binding.as_deref()),
        (Some(b4.as_str()), Some(b3.as_str()), Some(b2.as_str()))
    );
    assert_eq!(generation(&o), 7);
    assert!(o.publication.retired_at > 0);
    // Only the active store holds the current release set.
    for st in d.debug().await.staged.iter().filter(|s| s.manifest_state == ManifestState::Approved && s.role != WASM_STORE_ROLE) {
        assert_eq!(st.store_binding, b4, "{st:?}");
    }
}

// ---------------------------------------------------------------------------
// 8. Re-staging: one approved manifest per role; upgrades only on a new hash

#[tokio::test]
async fn restaging_deprecates_and_upgrades_only_changed_hashes() {
    #[derive(CandidType, Deserialize, Debug)]
    struct Pings {
        count: u64,
        last_caller: Option<Principal>,
    }
    let d = Deploy::new(Deploy::init(&["minimal"], None)).await;
    d.stage_release_set(&["minimal"]).await;
    d.resume().await.expect("resume");
    let store = d.only_store().await;
    let minimal = d.role_pid("minimal").await;
    assert_eq!(d.update_as::<u64>(d.admin, minimal, "ping", no_args()).await, 1);
    assert_eq!(d.update_as::<u64>(d.admin, minimal, "ping", no_args()).await, 2);
    let v1_hash = sha256(payload("minimal"));

    // The same release again: a no-op, and the resume upgrades nothing.
    d.stage("minimal", V1, payload("minimal")).await.expect("re-staging the same release");
    let report = d.resume().await.expect("resume");
    assert_eq!(role_of(&report, "minimal").action, RoleAction::Unchanged);
    assert_eq!(role_of(&report, WASM_STORE_ROLE).action, RoleAction::Unchanged);
    assert_eq!(d.canister_status(minimal).await.module_hash.map(|h| h.into_vec()), Some(v1_hash.clone()));
    assert_eq!(d.history(minimal).len(), 1);
    assert!(d.stored_chunks(d.root).await.is_empty(), "root keeps no payload in its chunk store");

    // A new version with another payload (the same Wasm, gzipped).
    let v2 = gzip(payload("minimal"));
    let v2_hash = sha256(&v2);
    assert_ne!(v2_hash, v1_hash);
    d.stage("minimal", V2, &v2).await.expect("staging 0.2.0");
    let debug = d.debug().await;
    let states: Vec<(&str, ManifestState)> =
        debug.staged.iter().filter(|s| s.role == "minimal").map(|s| (s.version.as_str(), s.manifest_state)).collect();
    assert_eq!(states, [(V1, ManifestState::Deprecated), (V2, ManifestState::Approved)], "one approved manifest per role");

    let report = d.resume().await.expect("resume");
    let line = role_of(&report, "minimal");
    assert_eq!((line.action, line.version.as_str(), line.pid), (RoleAction::Upgraded, V2, Some(minimal)));
    assert_eq!(d.canister_status(minimal).await.module_hash.map(|h| h.into_vec()), Some(v2_hash.clone()));
    let h = d.history(minimal);
    assert_eq!(h.len(), 2);
    assert_eq!((h[1].mode, h[1].source, h[1].caller, h[1].module_hash.to_vec()), (InstallMode::Upgrade, InstallSource::InstallChunkedCode { store }, d.root, v2_hash));
    // Stable memory kept.
    let env: CanicEnv = d.query_as(d.admin, minimal, "canic_env", no_args()).await;
    assert_eq!((env.upgrades, env.version.as_str(), env.role.as_str(), env.root), (1, V2, "minimal", d.root));
    let pings: Pings = d.query_as(d.admin, minimal, "pings", no_args()).await;
    assert_eq!((pings.count, pings.last_caller), (2, Some(d.admin)));
    // The store's catalog, too, has one approved minimal: the new one.
    let catalog: Vec<_> = d.store_catalog(store).await.into_iter().filter(|e| e.role == "minimal").map(|e| e.version).collect();
    assert_eq!(catalog, [V2]);

    // And again: nothing to do.
    let report = d.resume().await.expect("resume");
    assert_eq!(role_of(&report, "minimal").action, RoleAction::Unchanged);
    assert_eq!(d.history(minimal).len(), 2);
}

// ---------------------------------------------------------------------------
// 9. No embedded payloads

/// Whether any 64 KiB window of `needle` (aligned at 64 KiB, plus the last
/// one) occurs in `haystack`. An embedded copy of the payload (raw) would
/// contain every one of them.
fn shares_a_window(haystack: &[u8], needle: &[u8]) -> bool {
    const WINDOW: usize = 64 * 1024;
    if needle.len() < WINDOW || haystack.len() < WINDOW {
        return false;
    }
    let mut starts: Vec<usize> = (0..=needle.len() - WINDOW).step_by(WINDOW).collect();
    starts.push(needle.len() - WINDOW);
    // Index the windows by their first 8 bytes, then one pass over the haystack.
    let mut by_prefix: BTreeMap<[u8; 8], Vec<&[u8]>> = BTreeMap::new();
    for s in starts {
        let w = &needle[s..s + WINDOW];
        by_prefix.entry(w[..8].try_into().expect("8 bytes")).or_default().push(w);
    }
    (0..=haystack.len() - WINDOW).any(|i| {
        let prefix: [u8; 8] = haystack[i..i + 8].try_into().expect("8 bytes");
        by_prefix.get(&prefix).is_some_and(|ws| ws.iter().any(|w| &haystack[i..i + WINDOW] == *w))
    })
}

/// The data segments of every core module in a component (nested too).
fn data_segments(component: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let wasmparser::Payload::DataSection(reader) = payload.expect("a valid component") {
            for data in reader {
                out.push(data.expect("a valid data segment").data.to_vec());
            }
        }
    }
    out
}

#[test]
fn no_embedded_payloads_in_root_or_wasm_store() {
    let root = payload("root");
    let store = payload(WASM_STORE_ROLE);
    // The detector finds an embedded copy (so its silence means something).
    let mut planted = store.to_vec();
    planted.extend_from_slice(payload("app"));
    assert!(shares_a_window(&planted, payload("app")));

    for role in ROLES {
        for (name, bytes) in [("root", root), (WASM_STORE_ROLE, store)] {
            assert!(!shares_a_window(bytes, payload(role)), "{name}.wasm contains a 64 KiB piece of {role}.wasm");
            assert!(!shares_a_window(bytes, &gzip(payload(role))), "{name}.wasm contains a piece of {role}.wasm.gz");
        }
    }
    assert!(!shares_a_window(root, store), "root.wasm contains a piece of wasm_store.wasm");

    for (name, bytes) in [("root", root), (WASM_STORE_ROLE, store)] {
        let segments = data_segments(bytes);
        assert!(!segments.is_empty(), "{name} has data segments (the check is not vacuous)");
        for (i, seg) in segments.iter().enumerate() {
            assert!(!seg.windows(4).any(|w| w == b"\0asm"), "{name}: data segment {i} ({} bytes) holds a Wasm module", seg.len());
        }
    }
    // And the check sees a module in data when there is one.
    let mut with_module = b"prefix".to_vec();
    with_module.extend_from_slice(&payload("minimal")[..64]);
    assert!(with_module.windows(4).any(|w| w == b"\0asm"));
}

// ---------------------------------------------------------------------------
// Root's storage survives an upgrade (its heap mirror reloads from stable memory)

#[tokio::test]
async fn root_upgrade_keeps_the_staged_set_and_the_bootstrap_goes_on() {
    let d = Deploy::new(Deploy::init(&["app"], None)).await;
    d.stage_release_set(&["app"]).await;
    let before = d.debug().await;
    assert_eq!(before.staged.len(), 2, "{before:?}");

    let m = prepare_module(&d.r, &d.root, payload("root")).expect("preparing root");
    d.r.install(admin(), d.root, InstallMode::Upgrade, m, Encode!(&Option::<RootInitArgs>::None).unwrap())
        .await
        .expect("upgrading root");

    let after = d.debug().await;
    assert_eq!(format!("{:?}", after.staged), format!("{:?}", before.staged), "the staged manifests survive the upgrade");
    assert!(after.ready_for_bootstrap);
    let report = d.resume().await.expect("resume after the upgrade");
    assert_eq!(role_of(&report, "app").action, RoleAction::Created);
    let overview = d.overview().await;
    assert_eq!(overview.stores.len(), 1);
    assert_eq!(overview.stores[0].template_count, 1, "{overview:?}");
}

// ---------------------------------------------------------------------------
// The scale pool: concurrent create_worker calls stop exactly at the maximum

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
struct PoolStatus {
    max_workers: u32,
    created: u64,
    creating: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct Worker {
    id: Principal,
    weight: u32,
    registered_at: u64,
    dispatched: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct JobRequest {
    kind: String,
    payload: ByteBuf,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct Dispatched {
    worker: Principal,
    job_id: u64,
    checksum: u64,
}

/// `create_worker` as `caller`: the hub's own Ok/Err.
async fn create_worker(d: &Deploy, caller: Principal, hub: Principal) -> std::result::Result<Principal, String> {
    d.update_as(caller, hub, "create_worker", no_args()).await
}

#[tokio::test]
async fn concurrent_create_worker_calls_stop_exactly_at_the_pool_maximum() {
    let d = Deploy::new(Deploy::init(&ROLES, None)).await;
    d.stage_release_set(&ROLES).await;
    d.resume().await.expect("bootstrap");
    let hub = d.role_pid("scale_hub").await;
    let deployed_scale = d.role_pid("scale").await;
    let set: std::result::Result<(), String> = d.update_as(admin(), hub, "set_max_workers", Encode!(&5u32).unwrap()).await;
    set.expect("set_max_workers");

    // Twelve callers at once: the calls interleave at the hub's call to root.
    let attempts = futures::future::join_all((0..12).map(|_| create_worker(&d, admin(), hub))).await;
    let created: Vec<Principal> = attempts.iter().filter_map(|a| a.as_ref().ok().copied()).collect();
    assert_eq!(created.len(), 5, "exactly the maximum: {attempts:?}");
    for refused in attempts.iter().filter_map(|a| a.as_ref().err()) {
        assert!(
            refused.contains("intent capacity exceeded key=scale_hub:pool") && refused.contains("capacity=5"),
            "refused with the capacity error: {refused}"
        );
    }
    let pool: PoolStatus = d.query_as(admin(), hub, "pool", no_args()).await;
    assert_eq!(pool, PoolStatus { max_workers: 5, created: 5, creating: 0 });

    // Each worker is a real `scale` canister root installed under the hub.
    let registry = d.registry().await;
    for id in &created {
        let record = registry.iter().find(|r| r.pid == *id).unwrap_or_else(|| panic!("{id} is not in root's registry: {registry:?}"));
        assert_eq!((record.role.as_str(), record.parent), ("scale", hub));
        let env: CanicEnv = d.query_as(admin(), *id, "canic_env", no_args()).await;
        assert_eq!((env.role.as_str(), env.root, env.parent), ("scale", d.root, hub));
        let store = d.only_store().await;
        assert!(
            d.history(*id).iter().any(|h| h.source == InstallSource::InstallChunkedCode { store }),
            "installed chunked from the store"
        );
    }
    assert_eq!(registry.iter().filter(|r| r.role == "scale").count(), 6, "the deployed scale plus five workers");
    let mut workers: Vec<Principal> = d.query_as::<Vec<Worker>>(admin(), hub, "workers", no_args()).await.into_iter().map(|w| w.id).collect();
    let mut expected = created.clone();
    workers.sort();
    expected.sort();
    assert_eq!(workers, expected, "the hub registered exactly the workers it made");
    assert!(!workers.contains(&deployed_scale));

    // The workers take jobs from their parent.
    let job = JobRequest { kind: "resize".into(), payload: ByteBuf::from(b"an image".to_vec()) };
    let sent: std::result::Result<Dispatched, String> = d.update_as(admin(), hub, "dispatch", Encode!(&job).unwrap()).await;
    assert!(created.contains(&sent.expect("dispatch").worker));

    // Raising the maximum by one allows exactly one more.
    let set: std::result::Result<(), String> = d.update_as(admin(), hub, "set_max_workers", Encode!(&6u32).unwrap()).await;
    set.expect("set_max_workers");
    create_worker(&d, admin(), hub).await.expect("the sixth worker");
    let refused = create_worker(&d, admin(), hub).await.expect_err("past the maximum");
    assert!(refused.contains("committed=6 capacity=6"), "{refused}");

    // Nobody else may make workers: not a stranger at the hub, not a canister
    // root did not create, not a role that has no pool of that role.
    let stranger_err = create_worker(&d, stranger(), hub).await.expect_err("a stranger");
    assert!(stranger_err.contains("is not allowed"), "{stranger_err}");
    let direct = d.r.call(admin(), d.root, "canic_create_child", Encode!(&"scale").unwrap()).await.expect_err("not a child");
    assert!(direct.message.contains("is not a canister root created"), "{}", direct.message);
    let app = d.role_pid("app").await;
    let wrong = d.r.call(app, d.root, "canic_create_child", Encode!(&"scale").unwrap()).await.expect_err("app has no pool");
    assert!(wrong.message.contains("a app may not create a scale"), "{}", wrong.message);
    let pool: PoolStatus = d.query_as(admin(), hub, "pool", no_args()).await;
    assert_eq!(pool, PoolStatus { max_workers: 6, created: 6, creating: 0 });
}
