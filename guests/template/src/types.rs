//! The Candid types of root's and the wasm_store's interfaces.
//!
//! Field names follow the reference deployment model (Canic 0.19), so its
//! tooling habits carry over. Hashes are SHA-256 (32 bytes), sizes are bytes,
//! times are seconds since the epoch unless a name says otherwise.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// How a release's payload reaches the installer.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkingMode {
    /// Installed from the installer's own chunk store; reserved for the
    /// wasm_store bootstrap.
    Inline,
    /// Installed with `install_chunked_code` from a store's chunk store.
    Chunked,
}

/// Where a manifest stands. At most one manifest per role is `Approved`.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestState {
    Staged,
    Approved,
    Blocked,
    Deprecated,
}

/// A release manifest as the pipeline submits it (and as root reports it).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateManifestInput {
    pub template_id: String,
    pub role: String,
    pub version: String,
    pub payload_hash: ByteBuf,
    pub payload_size_bytes: u64,
    pub store_binding: String,
    pub chunking_mode: ChunkingMode,
    pub manifest_state: ManifestState,
    pub approved_at: Option<u64>,
    pub created_at: u64,
}

/// Declares a release's chunks before they are published.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateChunkSetPrepareInput {
    pub template_id: String,
    pub version: String,
    pub payload_hash: ByteBuf,
    pub payload_size_bytes: u64,
    pub chunk_hashes: Vec<ByteBuf>,
}

/// The chunk hashes of a prepared release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateChunkSetInfoResponse {
    pub chunk_hashes: Vec<ByteBuf>,
}

/// One chunk of a prepared release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateChunkInput {
    pub template_id: String,
    pub version: String,
    pub chunk_index: u32,
    pub bytes: ByteBuf,
}

/// One chunk's bytes.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateChunkResponse {
    pub bytes: ByteBuf,
}

/// What went wrong, by kind; the message has the details.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The caller may not call this endpoint.
    Unauthorized,
    /// The input is malformed (an empty id, a bad hash length, ...).
    InvalidInput,
    /// A chunk arrived for a release that was never prepared.
    TemplateChunkSetMissing,
    /// A prepare listed no chunk hashes.
    TemplateChunkSetEmpty,
    /// A chunk index is not below the prepared chunk count.
    TemplateChunkIndexOutOfRange,
    /// A chunk's SHA-256 is not the prepared hash.
    TemplateChunkHashMismatch,
    /// A prepared chunk has not been published.
    TemplateChunkMissing,
    /// The chunks' total size is not the declared payload size.
    PayloadSizeMismatch,
    /// The chunks' concatenation does not hash to the declared payload hash.
    PayloadHashMismatch,
    /// No approved manifest for a role.
    ApprovedManifestMissing,
    /// More than one approved manifest for a role.
    ApprovedManifestConflict,
    /// A publication would exceed the store's capacity.
    WasmStoreCapacityExceeded,
    /// The store is within its headroom and takes no new publication.
    WasmStoreWithinHeadroom,
    /// Bootstrap cannot proceed: the staged release set is incomplete.
    BootstrapNotReady,
    /// A lifecycle or GC transition is not allowed from the current state.
    Conflict,
    /// A named thing (store, binding, release, canister) does not exist.
    NotFound,
    /// A call to another canister or the management canister failed.
    CallFailed,
}

/// The error of every fallible endpoint.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand for an endpoint result.
pub type Result<T> = std::result::Result<T, Error>;

/// Store-local GC mode; strictly monotonic.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GcMode {
    Normal,
    Prepared,
    InProgress,
    Complete,
}

/// A store's GC state (the store's own, or root's mirror of it).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreGcStatusResponse {
    pub mode: GcMode,
    pub changed_at: u64,
    pub prepared_at: Option<u64>,
    pub started_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub runs_completed: u32,
}

/// Versions held per template.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateVersionCount {
    pub template_id: String,
    pub versions: u16,
}

/// The store's own account of its contents (`canic_wasm_store_status`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreStatusResponse {
    pub gc: WasmStoreGcStatusResponse,
    pub occupied_store_bytes: u64,
    pub occupied_store_size: String,
    pub max_store_bytes: u64,
    pub max_store_size: String,
    pub remaining_store_bytes: u64,
    pub remaining_store_size: String,
    pub headroom_bytes: Option<u64>,
    pub headroom_size: Option<String>,
    pub within_headroom: bool,
    pub template_count: u32,
    pub max_templates: Option<u32>,
    pub release_count: u32,
    pub max_template_versions_per_template: Option<u16>,
    pub templates: Vec<TemplateVersionCount>,
}

/// The store's reply to a completed GC: what the wipe reclaimed.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreGcReport {
    pub reclaimed_store_bytes: u64,
    pub cleared_template_count: u32,
    pub cleared_release_count: u32,
    pub cleared_chunk_count: u32,
    pub cleared_chunk_store_hash_count: u32,
}

/// A store's capacity policy.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasmStorePolicy {
    pub max_store_bytes: u64,
    pub headroom_bytes: Option<u64>,
    pub max_templates: Option<u32>,
    pub max_template_versions_per_template: Option<u16>,
}

impl Default for WasmStorePolicy {
    /// The implicit store policy: 40 MB, 4 MB headroom, no count limits.
    fn default() -> Self {
        Self {
            max_store_bytes: 40_000_000,
            headroom_bytes: Some(4_000_000),
            max_templates: None,
            max_template_versions_per_template: None,
        }
    }
}

/// The wasm_store's install argument.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreInitArgs {
    /// The only principal the store answers.
    pub root: Principal,
    pub policy: WasmStorePolicy,
}

/// A store entry of the store's catalog (its approved manifests).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreCatalogEntryResponse {
    pub role: String,
    pub template_id: String,
    pub version: String,
    pub payload_hash: ByteBuf,
    pub payload_size_bytes: u64,
}

/// Root's publication slots.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct WasmStorePublicationStateResponse {
    pub active_binding: Option<String>,
    pub detached_binding: Option<String>,
    pub retired_binding: Option<String>,
    pub generation: u64,
    pub changed_at: u64,
    pub retired_at: u64,
}

/// Which publication slot a store occupies.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicationSlot {
    Active,
    Detached,
    Retired,
}

/// One store in root's overview (built from root-owned state only).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreOverviewStoreResponse {
    pub binding: String,
    pub pid: Principal,
    pub created_at: u64,
    pub publication_slot: Option<PublicationSlot>,
    pub gc: WasmStoreGcStatusResponse,
    pub payload_bytes: u64,
    pub payload_size: String,
    pub remaining_payload_bytes: u64,
    pub remaining_payload_size: String,
    pub max_store_bytes: u64,
    pub max_store_size: String,
    pub headroom_bytes: Option<u64>,
    pub headroom_size: Option<String>,
    pub within_headroom: bool,
    pub template_count: u32,
    pub release_count: u32,
    pub max_templates: Option<u32>,
    pub max_template_versions_per_template: Option<u16>,
    pub templates: Vec<TemplateVersionCount>,
}

/// `canic_wasm_store_overview`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreOverviewResponse {
    pub stores: Vec<WasmStoreOverviewStoreResponse>,
    pub publication: WasmStorePublicationStateResponse,
}

/// Root's publication and lifecycle commands (`canic_wasm_store_admin`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum WasmStoreAdminCommand {
    PublishCurrentReleaseToStore { store_pid: Principal },
    PublishCurrentReleaseToCurrentStore,
    SetPublicationBinding { binding: String },
    ClearPublicationBinding,
    RetireDetachedBinding,
    PrepareRetiredStoreGc,
    BeginRetiredStoreGc,
    CompleteRetiredStoreGc,
    FinalizeRetiredBinding,
    DeleteFinalizedStore { binding: String, store_pid: Principal },
}

/// A binding and its store.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoreRef {
    pub binding: String,
    pub store_pid: Principal,
}

/// The reply to each [`WasmStoreAdminCommand`].
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum WasmStoreAdminResponse {
    PublishedCurrentReleaseToStore { store_pid: Principal },
    PublishedCurrentReleaseToCurrentStore { store_pid: Principal },
    SetPublicationBinding { binding: String },
    ClearedPublicationBinding,
    RetiredDetachedBinding { binding: Option<String> },
    PreparedRetiredStoreGc { binding: Option<String> },
    BeganRetiredStoreGc { binding: Option<String> },
    CompletedRetiredStoreGc { binding: Option<String> },
    FinalizedRetiredBinding { result: Option<StoreRef> },
    DeletedFinalizedStore { binding: String, store_pid: Principal },
}

/// Root's install argument.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RootInitArgs {
    /// Roles root creates once the release set is published, in any order
    /// (root creates them alphabetically).
    pub auto_create: Vec<String>,
    /// Extra controllers of every canister root creates (root always is one).
    pub controllers: Vec<Principal>,
    /// The policy of every store root creates; the implicit one if absent.
    pub store_policy: Option<WasmStorePolicy>,
}

/// A staged or published release, as root sees it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TemplateStagingStatusResponse {
    pub role: String,
    pub template_id: String,
    pub version: String,
    pub store_binding: String,
    pub manifest_state: ManifestState,
    pub chunking_mode: ChunkingMode,
    pub payload_hash: ByteBuf,
    pub payload_size_bytes: u64,
    pub payload_size: String,
    pub chunk_set_present: bool,
    pub expected_chunk_count: u32,
    pub stored_chunk_count: u32,
    pub publishable: bool,
}

/// `canic_wasm_store_bootstrap_debug`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmStoreBootstrapDebugResponse {
    pub ready_for_bootstrap: bool,
    pub ready: bool,
    pub bootstrap: Option<TemplateStagingStatusResponse>,
    pub staged: Vec<TemplateStagingStatusResponse>,
}

/// What root did for one role during a bootstrap or reconcile.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleAction {
    /// Created and installed (chunked from the store; inline for wasm_store).
    Created,
    /// Upgraded because the approved payload's hash changed.
    Upgraded,
    /// Already running the approved payload.
    Unchanged,
    /// Listed for auto-creation but no approved manifest was staged.
    Skipped,
}

/// One line of a [`BootstrapReport`].
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoleReport {
    pub role: String,
    pub pid: Option<Principal>,
    pub version: String,
    pub module_hash: Option<ByteBuf>,
    pub payload_size_bytes: u64,
    pub chunk_count: u32,
    pub action: RoleAction,
    /// Time root spent on this role, in nanoseconds of replica time.
    pub elapsed_ns: u64,
}

/// The reply of a bootstrap resume: every role root manages.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BootstrapReport {
    pub store: Principal,
    pub published_releases: u32,
    pub published_bytes: u64,
    pub roles: Vec<RoleReport>,
}

/// A canister root created, as its registry records it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CanisterRecordResponse {
    pub pid: Principal,
    pub role: String,
    pub parent: Principal,
    pub module_hash: ByteBuf,
    pub created_at: u64,
}

/// The install argument root gives every non-store role.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoleInitArgs {
    pub role: String,
    pub root: Principal,
    pub parent: Principal,
    pub version: String,
}
