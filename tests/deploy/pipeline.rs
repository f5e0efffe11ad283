//! Demonstration 4 of issue 23: the deploy simulation (root, wasm_store
//! and the nine roles of examples/images/ic-deploy) driven the way the
//! pipeline (`guests/deployer`) drives root, inside `ww sim`'s Rust API
//! under the strict mix of messaging faults and node crashes (N1). Shared
//! by tests/sim.rs and benches/sim.rs; self-contained (no test helpers).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use candid::{Decode, Encode, Principal};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use ww::sim::FaultKind;
use ww::sim::api::{IngressOutcome, Sim, SimBuilder, Stepped};
use ww_template::types::*;
use ww_template::{BOOTSTRAP_BINDING, CHUNK_BYTES, WASM_STORE_ROLE, template_id_for_role};

/// The release set besides wasm_store.
pub const ROLES: [&str; 9] = ["app", "minimal", "scale", "scale_hub", "shard", "shard_hub", "test", "user_hub", "user_shard"];
pub const V1: &str = "0.1.0";

/// The release build of a guest canister (read once per binary).
pub fn payload(name: &str) -> &'static [u8] {
    static PAYLOADS: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    let all = PAYLOADS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-wasip2/release");
        ROLES
            .iter()
            .chain(&[WASM_STORE_ROLE, "root"])
            .map(|n| {
                let path = dir.join(format!("{n}.wasm"));
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (`make test` builds the guests)", path.display()));
                (n.to_string(), bytes)
            })
            .collect()
    });
    all.get(name).unwrap_or_else(|| panic!("no payload {name}"))
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

pub fn manifest(role: &str, version: &str, bytes: &[u8]) -> TemplateManifestInput {
    TemplateManifestInput {
        template_id: template_id_for_role(role),
        role: role.into(),
        version: version.into(),
        payload_hash: ByteBuf::from(sha256(bytes)),
        payload_size_bytes: bytes.len() as u64,
        store_binding: BOOTSTRAP_BINDING.into(),
        chunking_mode: ChunkingMode::Chunked,
        manifest_state: ManifestState::Approved,
        approved_at: None,
        created_at: 0,
    }
}

pub fn prepare_input(role: &str, version: &str, bytes: &[u8]) -> TemplateChunkSetPrepareInput {
    TemplateChunkSetPrepareInput {
        template_id: template_id_for_role(role),
        version: version.into(),
        payload_hash: ByteBuf::from(sha256(bytes)),
        payload_size_bytes: bytes.len() as u64,
        chunk_hashes: bytes.chunks(CHUNK_BYTES).map(|c| ByteBuf::from(sha256(c))).collect(),
    }
}

pub fn chunk_input(role: &str, version: &str, index: u32, bytes: &[u8]) -> TemplateChunkInput {
    TemplateChunkInput { template_id: template_id_for_role(role), version: version.into(), chunk_index: index, bytes: ByteBuf::from(bytes.to_vec()) }
}

/// The pipeline's calls to root, in order: every release staged (manifest,
/// prepare, each 1 MiB chunk), wasm_store first.
pub fn staging_calls() -> Vec<(&'static str, Vec<u8>)> {
    let mut calls = Vec::new();
    for role in std::iter::once(WASM_STORE_ROLE).chain(ROLES) {
        let bytes = payload(role);
        calls.push(("canic_template_stage_manifest_admin", Encode!(&manifest(role, V1, bytes)).expect("encoding")));
        calls.push(("canic_template_prepare_admin", Encode!(&prepare_input(role, V1, bytes)).expect("encoding")));
        for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            calls.push(("canic_template_publish_chunk_admin", Encode!(&chunk_input(role, V1, i as u32, chunk)).expect("encoding")));
        }
    }
    calls
}

/// The deployer: the simulation's user, a controller of root and (through
/// root's init) of everything root creates.
pub fn deployer() -> Principal {
    ww::sim::run::default_user()
}

/// Submits `method` to root and steps until it is answered; a message lost
/// in a crash or rejected by the system is sent again, as the pipeline
/// does. The reply's bytes, or why the pipeline gives up.
pub fn pipeline_call(sim: &mut Sim, method: &str, arg: &[u8]) -> std::result::Result<Vec<u8>, String> {
    for _attempt in 0..20 {
        let id = sim.submit(deployer(), "root", method, arg.to_vec()).map_err(|e| e.to_string())?;
        while sim.outcome(id).is_none() {
            match sim.step().map_err(|e| e.to_string())? {
                Stepped::Failed(f) => return Err(format!("{}: {}", f.invariant, f.detail)),
                Stepped::Quiescent => return Err(format!("{method}: nothing left to run and no answer")),
                _ => {}
            }
            if sim.steps() > 200_000 {
                return Err("the step budget ran out".into());
            }
        }
        if let Some(IngressOutcome::Replied(bytes)) = sim.outcome(id) {
            return Ok(bytes.clone());
        }
    }
    Err(format!("{method}: no answer after 20 attempts"))
}

/// The faults of the deploy runs: the strict messaging mix and N1.
pub const FAULTS: [FaultKind; 5] = [FaultKind::Interleave, FaultKind::SpontaneousReject, FaultKind::Expiry, FaultKind::CallPerformFails, FaultKind::Crash];

/// One seed of the deploy under `faults`: staged, resumed until root
/// reports the bootstrap done, then a quiet phase. The report, or what
/// failed.
pub fn deploy_seed(engine: &ww::engine::Engine, seed: u64, faults: &[FaultKind]) -> (Sim, std::result::Result<BootstrapReport, String>) {
    let init = RootInitArgs { auto_create: ROLES.iter().map(|s| s.to_string()).collect(), controllers: vec![deployer()], store_policy: None };
    let mut sim = SimBuilder::new()
        .faults(faults)
        .durable(faults.contains(&FaultKind::Crash))
        .engine(engine.clone())
        .canister("root", payload("root").to_vec(), Encode!(&init).expect("encoding"))
        .seed(seed)
        .expect("building the simulation");
    let result = drive(&mut sim);
    (sim, result)
}

/// How many times the pipeline resumes the bootstrap before it gives up
/// (each attempt picks up where the last one stopped).
pub const RESUME_ATTEMPTS: usize = 100;

/// Steps until nothing is left to run.
fn settle(sim: &mut Sim) -> std::result::Result<(), String> {
    loop {
        match sim.step().map_err(|e| e.to_string())? {
            Stepped::Failed(f) => return Err(format!("{}: {}", f.invariant, f.detail)),
            Stepped::Quiescent => return Ok(()),
            _ => {}
        }
        if sim.steps() > 200_000 {
            return Err("the step budget ran out".into());
        }
    }
}

fn drive(sim: &mut Sim) -> std::result::Result<BootstrapReport, String> {
    for (method, arg) in staging_calls() {
        // Root answers `CallFailed` when a call it made failed (its chunk
        // store, the management canister): transient, so sent again.
        let mut attempts = 0;
        loop {
            let reply = pipeline_call(sim, method, &arg)?;
            let refused = match method {
                "canic_template_prepare_admin" => Decode!(&reply, Result<TemplateChunkSetInfoResponse>).map(|r| r.err()),
                _ => Decode!(&reply, Result<()>).map(|r| r.err()),
            };
            match refused.map_err(|e| format!("{method}: {e}"))? {
                None => break,
                Some(e) if e.code == ErrorCode::CallFailed && attempts < 10 => attempts += 1,
                Some(e) => return Err(format!("{method}: root refused: {e}")),
            }
        }
    }
    let mut last = String::new();
    for _ in 0..RESUME_ATTEMPTS {
        let reply = pipeline_call(sim, "canic_wasm_store_bootstrap_resume_root_admin", &Encode!().expect("encoding"))?;
        match Decode!(&reply, Result<BootstrapReport>).map_err(|e| e.to_string())? {
            Ok(report) => {
                sim.run_until_quiescent().map_err(|f| format!("{}: {}", f.invariant, f.detail))?;
                return Ok(report);
            }
            Err(e) => {
                // Another resume may still be at work (one whose answer a
                // crash lost): let what runs finish before trying again.
                last = e.to_string();
                settle(sim)?;
            }
        }
    }
    Err(format!("resume kept failing: {last}"))
}
