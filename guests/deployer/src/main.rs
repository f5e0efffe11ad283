//! The deployment pipeline: pid0 of `examples/images/ic-deploy`.
//!
//! It owns all deployable input. From the image it reads the release set:
//! `/etc/release.conf` (roles, versions, which roles root auto-creates, the
//! store policy) and one payload per role under `/lib/release/` (`<role>.wasm.gz`
//! or `<role>.wasm`, root's included), each optionally with the checksum its
//! build published (`<payload>.sha256`, `sha256sum` format; without it the
//! pipeline hashes the payload itself). Then, through its session's Replica
//! capability (as the node's admin identity):
//!
//! 1. creates and installs root (or finds the `root` a previous run created,
//!    and upgrades it if its payload changed);
//! 2. stages wasm_store first, then every other role, into root (manifest,
//!    prepare, chunks of at most 1 MiB), skipping releases root already holds;
//! 3. resumes root's bootstrap, which publishes into the wasm_store and
//!    installs or upgrades every role, chunked and hash-verified;
//! 4. prints `canic_wasm_store_overview` as Candid text and a summary table.
//!
//! Run against a node that already deployed (`ww deploy`), the same steps
//! stage only the changed roles and root upgrades only those.
//!
//! Config format (`/etc/release.conf`), one `key = value` per line, `#`
//! comments:
//!
//! ```text
//! version = 0.1.0                 # the default version of every role
//! roles = wasm_store app minimal  # the release set (root is implicit)
//! auto_create = app test          # roles root creates once published
//! version.app = 0.1.1             # a per-role version
//! max_store_bytes = 40000000      # store policy (optional)
//! headroom_bytes = 4000000
//! ```

use candid::{CandidType, Decode, Encode, Principal};
use serde::Deserialize;
use serde_bytes::ByteBuf;
use sha2::Digest;
use std::collections::BTreeMap;
use std::time::Instant;
use ww_guest::{CallReject, Replica, Session};
use ww_template::types::{
    BootstrapReport, ChunkingMode, Error, ManifestState, Result, RoleAction, RootInitArgs, TemplateChunkInput,
    TemplateChunkSetInfoResponse, TemplateChunkSetPrepareInput, TemplateManifestInput, WasmStoreBootstrapDebugResponse,
    WasmStoreOverviewResponse, WasmStorePolicy,
};
use ww_template::{CHUNK_BYTES, WASM_STORE_ROLE, format_bytes, template_id_for_role};

const CONFIG_PATH: &str = "/etc/release.conf";
const RELEASE_DIR: &str = "/lib/release";
const ROOT_NAME: &str = "root";

/// A pipeline step's outcome.
type Step<T> = std::result::Result<T, Fail>;

/// A pipeline failure: one line for the user.
#[derive(Debug)]
struct Fail(String);

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<capnp::Error> for Fail {
    fn from(e: capnp::Error) -> Self {
        Fail(format!("session: {e}"))
    }
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail(msg.into())
}

/// The release set, from the config.
struct ReleaseConfig {
    default_version: String,
    roles: Vec<String>,
    auto_create: Vec<String>,
    versions: BTreeMap<String, String>,
    policy: Option<WasmStorePolicy>,
}

impl ReleaseConfig {
    fn parse(text: &str) -> Step<Self> {
        let mut config = ReleaseConfig {
            default_version: String::new(),
            roles: Vec::new(),
            auto_create: Vec::new(),
            versions: BTreeMap::new(),
            policy: None,
        };
        let mut max_store_bytes = None;
        let mut headroom_bytes = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(fail(format!("{CONFIG_PATH}:{}: expected `key = value`, got `{line}`", n + 1)));
            };
            let (key, value) = (key.trim(), value.trim());
            let words = || value.split_whitespace().map(str::to_string).collect::<Vec<_>>();
            let number = |what: &str| {
                value.replace('_', "").parse::<u64>().map_err(|_| fail(format!("{CONFIG_PATH}:{}: {what} must be a number, got `{value}`", n + 1)))
            };
            match key {
                "version" => config.default_version = value.to_string(),
                "roles" => config.roles = words(),
                "auto_create" => config.auto_create = words(),
                "max_store_bytes" => max_store_bytes = Some(number("max_store_bytes")?),
                "headroom_bytes" => headroom_bytes = Some(number("headroom_bytes")?),
                _ if key.starts_with("version.") => {
                    config.versions.insert(key["version.".len()..].to_string(), value.to_string());
                }
                _ => return Err(fail(format!("{CONFIG_PATH}:{}: unknown key `{key}`", n + 1))),
            }
        }
        if config.default_version.is_empty() {
            return Err(fail(format!("{CONFIG_PATH}: `version` is missing")));
        }
        if !config.roles.iter().any(|r| r == WASM_STORE_ROLE) {
            return Err(fail(format!("{CONFIG_PATH}: `roles` must include {WASM_STORE_ROLE}")));
        }
        for role in &config.auto_create {
            if !config.roles.contains(role) {
                eprintln!("warning: auto_create role '{role}' is not in the release set; root will skip it");
            }
        }
        if max_store_bytes.is_some() || headroom_bytes.is_some() {
            let default = WasmStorePolicy::default();
            config.policy = Some(WasmStorePolicy {
                max_store_bytes: max_store_bytes.unwrap_or(default.max_store_bytes),
                headroom_bytes: headroom_bytes.or(default.headroom_bytes),
                ..default
            });
        }
        Ok(config)
    }

    fn version_of(&self, role: &str) -> &str {
        self.versions.get(role).map(String::as_str).unwrap_or(&self.default_version)
    }
}

/// One role's payload, split and hashed.
struct Payload {
    role: String,
    version: String,
    bytes: Vec<u8>,
    hash: Vec<u8>,
    chunk_hashes: Vec<Vec<u8>>,
}

impl Payload {
    fn load(role: &str, version: &str) -> Step<Self> {
        let gz = format!("{RELEASE_DIR}/{role}.wasm.gz");
        let raw = format!("{RELEASE_DIR}/{role}.wasm");
        let (path, bytes) = match std::fs::read(&gz) {
            Ok(bytes) => (gz, bytes),
            Err(_) => (
                raw.clone(),
                std::fs::read(&raw).map_err(|e| fail(format!("payload of role '{role}' ({gz} or {raw}): {e}")))?,
            ),
        };
        if bytes.is_empty() {
            return Err(fail(format!("payload of role '{role}' ({path}) is empty")));
        }
        let published = published_sha256(&path)?;
        let chunks = bytes.len().div_ceil(CHUNK_BYTES);
        let (hash, chunk_hashes) = match published {
            // A one-chunk payload's hash is its chunk's hash: the release's
            // published checksum is enough, no hashing in Wasm. (A stale
            // checksum is caught by root: the host hashes every chunk.)
            Some(hash) if chunks == 1 => (hash.clone(), vec![hash]),
            published => {
                let chunk_hashes: Vec<Vec<u8>> = bytes.chunks(CHUNK_BYTES).map(|c| sha2::Sha256::digest(c).to_vec()).collect();
                let hash = match published {
                    Some(hash) => hash,
                    None if chunks == 1 => chunk_hashes[0].clone(),
                    None => sha2::Sha256::digest(&bytes).to_vec(),
                };
                (hash, chunk_hashes)
            }
        };
        Ok(Self { role: role.to_string(), version: version.to_string(), bytes, hash, chunk_hashes })
    }

    fn template_id(&self) -> String {
        template_id_for_role(&self.role)
    }
}

/// The checksum a release publishes next to a payload: `<payload>.sha256`,
/// in `sha256sum` format (`<64 hex digits>  <name>`). `None` when absent.
fn published_sha256(payload: &str) -> Step<Option<Vec<u8>>> {
    let path = format!("{payload}.sha256");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("{path}: {e}"))),
    };
    let digits = text.split_whitespace().next().unwrap_or("");
    let hash = (digits.len() == 64)
        .then(|| (0..32).map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()).collect::<Option<Vec<u8>>>())
        .flatten()
        .ok_or_else(|| fail(format!("{path}: expected a SHA-256 in hex (sha256sum format), got `{}`", text.trim())))?;
    Ok(Some(hash))
}

fn reject(what: &str, r: CallReject) -> Fail {
    fail(format!("{what}: {r}"))
}

/// An update call with one Candid argument, decoded as `R`.
async fn update<A: CandidType, R: CandidType + for<'de> Deserialize<'de>>(
    replica: &Replica,
    canister: Principal,
    method: &str,
    arg: &A,
) -> Step<R> {
    let bytes = Encode!(arg).map_err(|e| fail(format!("{method}: encoding: {e}")))?;
    let reply = replica.call(canister.as_slice(), method, &bytes).await?.map_err(|r| reject(method, r))?;
    Decode!(&reply, R).map_err(|e| fail(format!("{method}: reply: {e}")))
}

async fn query<R: CandidType + for<'de> Deserialize<'de>>(replica: &Replica, canister: Principal, method: &str) -> Step<R> {
    let bytes = Encode!().map_err(|e| fail(format!("{method}: encoding: {e}")))?;
    let reply = replica.query(canister.as_slice(), method, &bytes).await?.map_err(|r| reject(method, r))?;
    Decode!(&reply, R).map_err(|e| fail(format!("{method}: reply: {e}")))
}

/// Unwraps root's `Result` with the endpoint named.
fn ok<T>(method: &str, r: Result<T>) -> Step<T> {
    r.map_err(|e| fail(format!("{method}: {e}")))
}

#[derive(CandidType, Deserialize)]
struct CanisterIdRecord {
    canister_id: Principal,
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterArgs {
    settings: Option<CanisterSettings>,
}

#[derive(CandidType, Deserialize)]
struct CanisterSettings {
    controllers: Option<Vec<Principal>>,
}

#[derive(CandidType, Deserialize)]
enum InstallMode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "upgrade")]
    Upgrade(Option<()>),
}

#[derive(CandidType, Deserialize)]
struct InstallCodeArgs {
    mode: InstallMode,
    canister_id: Principal,
    wasm_module: ByteBuf,
    arg: ByteBuf,
}

#[derive(CandidType, Deserialize)]
struct CanisterStatus {
    module_hash: Option<ByteBuf>,
}

/// Finds root or creates it; upgrades it when its payload changed.
async fn ensure_root(replica: &Replica, me: Principal, config: &ReleaseConfig, root: &Payload) -> Step<Principal> {
    let mgmt = Principal::management_canister();
    let init = RootInitArgs { auto_create: config.auto_create.clone(), controllers: vec![me], store_policy: config.policy };
    let init = Encode!(&init).map_err(|e| fail(e.to_string()))?;
    if let Some(raw) = replica.lookup(ROOT_NAME).await? {
        let id = Principal::from_slice(&raw);
        let status: CanisterStatus = update(replica, mgmt, "canister_status", &CanisterIdRecord { canister_id: id }).await?;
        if status.module_hash.as_deref() != Some(&root.hash) {
            eprintln!("Upgrading root {id} ({})", format_bytes(root.bytes.len() as u64));
            let args = InstallCodeArgs {
                mode: InstallMode::Upgrade(None),
                canister_id: id,
                wasm_module: ByteBuf::from(root.bytes.clone()),
                arg: ByteBuf::from(init),
            };
            let () = update(replica, mgmt, "install_code", &args).await?;
        } else {
            eprintln!("Found root {id} (unchanged)");
        }
        return Ok(id);
    }
    let created: CanisterIdRecord =
        update(replica, mgmt, "provisional_create_canister_with_cycles", &CreateCanisterArgs { settings: Some(CanisterSettings { controllers: Some(vec![me]) }) })
            .await?;
    let id = created.canister_id;
    let args = InstallCodeArgs {
        mode: InstallMode::Install,
        canister_id: id,
        wasm_module: ByteBuf::from(root.bytes.clone()),
        arg: ByteBuf::from(init),
    };
    let () = update(replica, mgmt, "install_code", &args).await?;
    replica.set_name(ROOT_NAME, id.as_slice()).await?;
    eprintln!("Created root {id} ({})", format_bytes(root.bytes.len() as u64));
    Ok(id)
}

/// Stages one role: manifest, prepare, then every chunk (sent together).
async fn stage(replica: &Replica, root: Principal, p: &Payload) -> Step<()> {
    let manifest = TemplateManifestInput {
        template_id: p.template_id(),
        role: p.role.clone(),
        version: p.version.clone(),
        payload_hash: ByteBuf::from(p.hash.clone()),
        payload_size_bytes: p.bytes.len() as u64,
        store_binding: ww_template::BOOTSTRAP_BINDING.into(),
        chunking_mode: ChunkingMode::Chunked,
        manifest_state: ManifestState::Approved,
        approved_at: None,
        created_at: 0,
    };
    let m = "canic_template_stage_manifest_admin";
    ok(m, update::<_, Result<()>>(replica, root, m, &manifest).await?)?;
    let prepare = TemplateChunkSetPrepareInput {
        template_id: p.template_id(),
        version: p.version.clone(),
        payload_hash: ByteBuf::from(p.hash.clone()),
        payload_size_bytes: p.bytes.len() as u64,
        chunk_hashes: p.chunk_hashes.iter().cloned().map(ByteBuf::from).collect(),
    };
    let m = "canic_template_prepare_admin";
    ok(m, update::<_, Result<TemplateChunkSetInfoResponse>>(replica, root, m, &prepare).await?)?;
    let m = "canic_template_publish_chunk_admin";
    let total = p.chunk_hashes.len();
    let sends = p.bytes.chunks(CHUNK_BYTES).enumerate().map(|(i, bytes)| {
        let input = TemplateChunkInput {
            template_id: p.template_id(),
            version: p.version.clone(),
            chunk_index: i as u32,
            bytes: ByteBuf::from(bytes.to_vec()),
        };
        async move {
            let r = ok(m, update::<_, Result<()>>(replica, root, m, &input).await?);
            if total > 1 {
                eprintln!("  {} chunk {}/{total}", p.role, i + 1);
            }
            r
        }
    });
    futures::future::try_join_all(sends).await?;
    Ok(())
}

fn principal_text(p: Option<Principal>) -> String {
    p.map(|p| p.to_text()).unwrap_or_else(|| "-".into())
}

async fn pipeline(session: Session) -> Step<()> {
    let started = Instant::now();
    let replica = &session.replica;
    let text = std::fs::read_to_string(CONFIG_PATH).map_err(|e| fail(format!("{CONFIG_PATH}: {e}")))?;
    let config = ReleaseConfig::parse(&text)?;
    let me = Principal::from_slice(&replica.principal().await?);

    // wasm_store first: root leaves its bootstrap wait state only with it.
    let mut order: Vec<String> = vec![WASM_STORE_ROLE.to_string()];
    let mut rest: Vec<String> = config.roles.iter().filter(|r| *r != WASM_STORE_ROLE).cloned().collect();
    rest.sort();
    rest.dedup();
    order.extend(rest);
    let loading = Instant::now();
    let payloads = order.iter().map(|r| Payload::load(r, config.version_of(r))).collect::<Step<Vec<_>>>()?;
    let root_payload = Payload::load(ROOT_NAME, config.version_of(ROOT_NAME))?;
    let loaded: u64 = payloads.iter().chain([&root_payload]).map(|p| p.bytes.len() as u64).sum();
    eprintln!(
        "Loaded the release set from {RELEASE_DIR}: {} payloads, {} in {:.1} ms",
        payloads.len() + 1,
        format_bytes(loaded),
        loading.elapsed().as_secs_f64() * 1e3
    );

    let root = ensure_root(replica, me, &config, &root_payload).await?;

    // What root already holds (a redeploy stages only what changed).
    let m = "canic_wasm_store_bootstrap_debug";
    let debug = ok(m, query::<Result<WasmStoreBootstrapDebugResponse>>(replica, root, m).await?)?;
    let held = |p: &Payload| {
        debug.staged.iter().any(|s| {
            s.template_id == p.template_id()
                && s.version == p.version
                && s.payload_hash.as_slice() == p.hash.as_slice()
                && s.manifest_state == ManifestState::Approved
                && s.publishable
        })
    };

    eprintln!("Submitting config-driven release set to root for wasm_store publication from {CONFIG_PATH}");
    eprintln!("Including bootstrap exception role '{WASM_STORE_ROLE}' ahead of the config-defined release set");
    eprintln!("Submitting bootstrap role first so root can leave bootstrap wait state");
    let staging = Instant::now();
    let mut staged_bytes = 0u64;
    for p in &payloads {
        if held(p) {
            eprintln!("Role '{}' {} already staged or published at root (unchanged)", p.role, p.version);
            continue;
        }
        eprintln!(
            "Submitting role '{}' to root for wasm_store publication ({}, {} chunks)",
            p.role,
            format_bytes(p.bytes.len() as u64),
            p.chunk_hashes.len()
        );
        stage(replica, root, p).await?;
        staged_bytes += p.bytes.len() as u64;
    }
    let staging = staging.elapsed();
    if staged_bytes > 0 {
        eprintln!(
            "Staged {} in {:.1} ms ({:.0} MB/s)",
            format_bytes(staged_bytes),
            staging.as_secs_f64() * 1e3,
            staged_bytes as f64 / staging.as_secs_f64() / 1e6
        );
    }

    eprintln!("Resuming root bootstrap after full release set staging");
    eprintln!("Waiting for root to reach READY");
    let m = "canic_wasm_store_bootstrap_resume_root_admin";
    let report = match update::<_, Result<BootstrapReport>>(replica, root, m, &()).await? {
        Ok(report) => report,
        Err(e) => {
            let m = "canic_wasm_store_bootstrap_debug";
            if let Ok(Ok(debug)) = query::<Result<WasmStoreBootstrapDebugResponse>>(replica, root, m).await {
                eprintln!("{m}: ready_for_bootstrap={} ready={}", debug.ready_for_bootstrap, debug.ready);
            }
            return Err(fail(format!("root bootstrap failed: {e}")));
        }
    };
    let ready: bool = query(replica, root, "canic_ready").await?;
    if !ready {
        return Err(fail("root answered the resume but is not READY"));
    }
    eprintln!("Root bootstrap resumed and reached READY");

    let m = "canic_wasm_store_overview";
    let overview = ok(m, query::<Result<WasmStoreOverviewResponse>>(replica, root, m).await?)?;
    let value = candid::IDLValue::try_from_candid_type(&Ok::<_, Error>(overview)).map_err(|e| fail(format!("{m}: {e}")))?;
    eprintln!("{m}:");
    for line in candid::IDLArgs::new(&[value]).to_string().lines() {
        eprintln!("{line}");
    }

    eprintln!("Release summary (root {root}, store {}):", report.store);
    eprintln!("  {:<11} {:<29} {:<8} {:>11} {:>6} {:<9} {:>8}", "role", "canister", "version", "size", "chunks", "action", "time");
    for r in &report.roles {
        eprintln!(
            "  {:<11} {:<29} {:<8} {:>11} {:>6} {:<9} {:>6.1}ms",
            r.role,
            principal_text(r.pid),
            r.version,
            format_bytes(r.payload_size_bytes),
            r.chunk_count,
            format!("{:?}", r.action),
            r.elapsed_ns as f64 / 1e6
        );
    }
    let created = report.roles.iter().filter(|r| r.action == RoleAction::Created).count();
    let upgraded = report.roles.iter().filter(|r| r.action == RoleAction::Upgraded).count();
    let skipped = report.roles.iter().filter(|r| r.action == RoleAction::Skipped).count();
    eprintln!(
        "DEPLOY_OK roles={} created={created} upgraded={upgraded} skipped={skipped} published={} ({}) total_ms={:.1}",
        report.roles.len(),
        report.published_releases,
        format_bytes(report.published_bytes),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() {
    let code = ww_guest::run(|membrane| async move {
        let session = membrane.graft().await.map_err(Fail::from)?;
        pipeline(session).await
    });
    ww_guest::exit(code);
}
