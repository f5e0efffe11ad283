//! The deploy simulation's harness: root on a replica of its own, driven
//! the way the pipeline drives it, and the helpers the tests share.

#![allow(dead_code)]

use std::io::Write;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use serde::de::DeserializeOwned;
use ww::replica::install::prepare_module;
use ww::replica::management::{CanisterIdRecord, CanisterStatusResult, ChunkHashRecord};
use ww::replica::{CodeDeployment, InstallMode, Replica, ReplicaConfig};
use ww_template::types::*;
use ww_template::{CHUNK_BYTES, WASM_STORE_ROLE};

use crate::common;

pub use crate::pipeline::{ROLES, V1, chunk_input, manifest, payload, prepare_input, sha256};
pub const V2: &str = "0.2.0";

pub fn admin() -> Principal {
    Principal::self_authenticating(b"ww-deploy-admin")
}

pub fn stranger() -> Principal {
    Principal::self_authenticating(b"ww-deploy-stranger")
}

pub fn mgmt() -> Principal {
    Principal::management_canister()
}

pub fn replica() -> Replica {
    common::canister_replica(ReplicaConfig::default())
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

pub fn no_args() -> Vec<u8> {
    Encode!().expect("encoding ()")
}

/// Asserts `result` failed with `code` and a message containing `fragment`.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T>, code: ErrorCode, fragment: &str) -> Error {
    match result {
        Ok(v) => panic!("expected {code:?} ({fragment:?}), got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            assert!(e.message.contains(fragment), "expected {fragment:?} in {e}");
            e
        }
    }
}

/// The publication invariants, checked on every state the tests see.
#[track_caller]
pub fn check_invariants(p: &WasmStorePublicationStateResponse) {
    let slots: Vec<&String> = [&p.active_binding, &p.detached_binding, &p.retired_binding].into_iter().flatten().collect();
    for (i, a) in slots.iter().enumerate() {
        for b in &slots[i + 1..] {
            assert_ne!(a, b, "bindings are pairwise distinct: {p:?}");
        }
    }
    assert_eq!(p.retired_at != 0, p.retired_binding.is_some(), "retired_at is set iff a retired binding exists: {p:?}");
}

/// Root on a replica of its own, with the pipeline's helpers.
pub struct Deploy {
    pub r: Replica,
    pub admin: Principal,
    pub root: Principal,
}

impl Deploy {
    /// Root's init argument: `auto_create`, the admin as an extra controller
    /// of every canister root creates (so the test can read their status
    /// and chunk stores through the management canister), `policy`.
    pub fn init(auto_create: &[&str], policy: Option<WasmStorePolicy>) -> RootInitArgs {
        RootInitArgs { auto_create: auto_create.iter().map(|s| s.to_string()).collect(), controllers: vec![admin()], store_policy: policy }
    }

    pub async fn new(init: RootInitArgs) -> Self {
        let r = replica();
        let root = r.create_canister(vec![admin()]);
        let m = prepare_module(&r, &root, payload("root")).expect("preparing root");
        r.install(admin(), root, InstallMode::Install, m, Encode!(&init).expect("encoding RootInitArgs"))
            .await
            .expect("installing root");
        Self { r, admin: admin(), root }
    }

    pub async fn update_as<T: CandidType + DeserializeOwned>(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> T {
        let bytes = self.r.call(caller, canister, method, arg).await.unwrap_or_else(|e| panic!("{method}: {e}"));
        Decode!(&bytes, T).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub async fn query_as<T: CandidType + DeserializeOwned>(&self, caller: Principal, canister: Principal, method: &str, arg: Vec<u8>) -> T {
        let bytes = self.r.query(caller, canister, method, arg).await.unwrap_or_else(|e| panic!("{method}: {e}"));
        Decode!(&bytes, T).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// An update call to root by the admin.
    pub async fn root_update<T: CandidType + DeserializeOwned>(&self, method: &str, arg: Vec<u8>) -> T {
        self.update_as(self.admin, self.root, method, arg).await
    }

    pub async fn stage_manifest(&self, input: &TemplateManifestInput) -> Result<()> {
        self.root_update("canic_template_stage_manifest_admin", Encode!(input).expect("encoding")).await
    }

    pub async fn prepare(&self, input: &TemplateChunkSetPrepareInput) -> Result<TemplateChunkSetInfoResponse> {
        self.root_update("canic_template_prepare_admin", Encode!(input).expect("encoding")).await
    }

    pub async fn publish_chunk(&self, input: &TemplateChunkInput) -> Result<()> {
        self.root_update("canic_template_publish_chunk_admin", Encode!(input).expect("encoding")).await
    }

    /// Stages one release the way the pipeline does: manifest, prepare,
    /// every 1 MiB chunk.
    pub async fn stage(&self, role: &str, version: &str, bytes: &[u8]) -> Result<()> {
        self.stage_manifest(&manifest(role, version, bytes)).await?;
        let info = self.prepare(&prepare_input(role, version, bytes)).await?;
        assert_eq!(info.chunk_hashes.len(), bytes.len().div_ceil(CHUNK_BYTES));
        for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            self.publish_chunk(&chunk_input(role, version, i as u32, chunk)).await?;
        }
        Ok(())
    }

    /// Stages wasm_store, then `roles`, each its release build at `V1`.
    pub async fn stage_release_set(&self, roles: &[&str]) {
        self.stage(WASM_STORE_ROLE, V1, payload(WASM_STORE_ROLE)).await.expect("staging wasm_store");
        for role in roles {
            self.stage(role, V1, payload(role)).await.unwrap_or_else(|e| panic!("staging {role}: {e}"));
        }
    }

    pub async fn resume(&self) -> Result<BootstrapReport> {
        self.root_update("canic_wasm_store_bootstrap_resume_root_admin", no_args()).await
    }

    pub async fn overview(&self) -> WasmStoreOverviewResponse {
        let o: Result<WasmStoreOverviewResponse> =
            self.query_as(self.admin, self.root, "canic_wasm_store_overview", no_args()).await;
        let o = o.expect("overview");
        check_invariants(&o.publication);
        o
    }

    pub async fn admin(&self, command: WasmStoreAdminCommand) -> Result<WasmStoreAdminResponse> {
        let r: Result<WasmStoreAdminResponse> = self.root_update("canic_wasm_store_admin", Encode!(&command).expect("encoding")).await;
        // Every admin command leaves a state that keeps the invariants.
        self.overview().await;
        r
    }

    pub async fn debug(&self) -> WasmStoreBootstrapDebugResponse {
        let d: Result<WasmStoreBootstrapDebugResponse> =
            self.query_as(self.admin, self.root, "canic_wasm_store_bootstrap_debug", no_args()).await;
        d.expect("bootstrap debug")
    }

    pub async fn ready(&self) -> bool {
        self.query_as(self.admin, self.root, "canic_ready", no_args()).await
    }

    pub async fn registry(&self) -> Vec<CanisterRecordResponse> {
        self.query_as(self.admin, self.root, "canic_subnet_registry", no_args()).await
    }

    pub async fn role_pid(&self, role: &str) -> Principal {
        let regs = self.registry().await;
        let found: Vec<_> = regs.iter().filter(|r| r.role == role).collect();
        assert_eq!(found.len(), 1, "one {role} in the registry: {regs:?}");
        found[0].pid
    }

    /// `canister_status` through the management canister, as the admin (a
    /// controller of everything root creates).
    pub async fn canister_status(&self, id: Principal) -> CanisterStatusResult {
        self.update_as(self.admin, mgmt(), "canister_status", Encode!(&CanisterIdRecord { canister_id: id }).expect("encoding")).await
    }

    pub async fn stored_chunks(&self, id: Principal) -> Vec<Vec<u8>> {
        let hashes: Vec<ChunkHashRecord> =
            self.update_as(self.admin, mgmt(), "stored_chunks", Encode!(&CanisterIdRecord { canister_id: id }).expect("encoding")).await;
        hashes.into_iter().map(|h| h.hash).collect()
    }

    /// A store query made as root (the only caller a store answers).
    pub async fn store_status(&self, store: Principal) -> WasmStoreStatusResponse {
        let s: Result<WasmStoreStatusResponse> = self.query_as(self.root, store, "canic_wasm_store_status", no_args()).await;
        s.expect("store status")
    }

    pub async fn store_catalog(&self, store: Principal) -> Vec<WasmStoreCatalogEntryResponse> {
        let c: Result<Vec<WasmStoreCatalogEntryResponse>> =
            self.query_as(self.root, store, "canic_wasm_store_catalog", no_args()).await;
        c.expect("store catalog")
    }

    pub fn history(&self, id: Principal) -> Vec<CodeDeployment> {
        self.r.install_history(&id).unwrap_or_else(|| panic!("{id} does not exist"))
    }

    /// The one store, after a bootstrap.
    pub async fn only_store(&self) -> Principal {
        let o = self.overview().await;
        assert_eq!(o.stores.len(), 1, "one store: {o:?}");
        o.stores[0].pid
    }
}

/// `canic_env` of a role canister.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CanicEnv {
    pub role: String,
    pub root: Principal,
    pub parent: Principal,
    pub version: String,
    pub installed_at: u64,
    pub upgrades: u32,
}

pub fn role_of<'a>(report: &'a BootstrapReport, role: &str) -> &'a RoleReport {
    report.roles.iter().find(|r| r.role == role).unwrap_or_else(|| panic!("{role} is not in the report: {report:?}"))
}

