//! The HTTP endpoints of the PocketIC protocol (v13 client): the server's
//! instances and blob store, and each instance's calls, rounds, time,
//! cycles, stable memory and topology.
//!
//! Every reply is synchronous: HTTP 200 with the bare JSON of the result
//! (`null` for unit), or an error status with `{"message": ...}` that names
//! what was wrong. ww never answers 202/409, so the client's polling routes
//! (`read_graph`, `prune_graph`) only ever find nothing. Routes that need
//! what ww does not have (canister signature verification, deleting
//! subnets) answer with an error saying so. Snapshots move to and from a
//! directory as [`super::snapshot_dir`] says.
//!
//! The routes are those of the pocket-ic clients (13 and 16) and of PicJS
//! 0.23 (`@dfinity/pic`), which also reads the topology at
//! `GET /instances/<id>/_/topology` (as dfx and agents do).
//!
//! An instance's operations run one at a time (its async mutex); rounds
//! block, so they run on the blocking thread pool. Only `tick`,
//! `await_ingress_message` and auto progress run rounds (see
//! [`super::instance`] for how time moves).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use candid::Principal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::instance::{Instance, InstanceError, wall_clock_ns};
use super::wire::{self, RawCanisterResult};
use crate::engine::{Engine, EngineConfig, EngineKind, default_cache_dir};
use crate::replica::management::ProvisionalCreateCanisterArgs;

/// A refused request: the status and the `{"message"}` body.
#[derive(Debug)]
pub struct Failure(StatusCode, String);

impl Failure {
    pub(super) fn message(&self) -> &str {
        &self.1
    }
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, message.into())
    }
    fn unsupported(what: &str) -> Self {
        Self(StatusCode::NOT_IMPLEMENTED, format!("ww's PocketIC server does not support {what}"))
    }
}

impl From<InstanceError> for Failure {
    fn from(e: InstanceError) -> Self {
        Self::bad(e.to_string())
    }
}

impl From<wire::WireError> for Failure {
    fn from(e: wire::WireError) -> Self {
        Self::bad(e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.0, message = %self.1, "request refused");
        (self.0, Json(wire::ApiError::new(self.1))).into_response()
    }
}

type Reply<T> = Result<Json<T>, Failure>;

/// The server's state: the canister engine, the instances, the blob store.
pub struct Server {
    engine: Engine,
    /// By instance id; `None` once deleted (ids are never reused).
    instances: Mutex<Vec<Option<Arc<tokio::sync::Mutex<Instance>>>>>,
    /// Blob id (SHA-256 of the bytes as uploaded) to (bytes, gzip-compressed).
    blobs: Mutex<HashMap<Vec<u8>, (Bytes, bool)>>,
    /// HTTP gateways by id; `None` once stopped.
    gateways: Mutex<Vec<Option<crate::http::HttpServer>>>,
}

type Shared = Arc<Server>;

/// The server's routes, on a canister engine of its own.
pub fn router() -> Result<Router, crate::engine::LoadError> {
    let engine = Engine::new(&EngineConfig { kind: EngineKind::Canister, cache_dir: default_cache_dir(), ..EngineConfig::default() })?;
    let server = Arc::new(Server { engine, instances: Mutex::new(Vec::new()), blobs: Mutex::new(HashMap::new()), gateways: Mutex::new(Vec::new()) });
    let i = "/instances/{id}";
    Ok(Router::new()
        .route("/instances", post(create_instance).get(list_instances))
        .route("/instances/", post(create_instance).get(list_instances))
        .route(i, delete(delete_instance))
        .route(&format!("{i}/"), delete(delete_instance))
        .route("/blobstore", post(upload_blob))
        .route("/blobstore/", post(upload_blob))
        .route("/blobstore/{blob}", get(download_blob))
        .route(&format!("{i}/read/topology"), get(topology))
        .route(&format!("{i}/_/topology"), get(topology))
        .route(&format!("{i}/read/get_time"), get(get_time))
        .route(&format!("{i}/update/set_time"), post(set_time))
        .route(&format!("{i}/update/set_certified_time"), post(set_certified_time))
        .route(&format!("{i}/update/tick"), post(tick))
        .route(&format!("{i}/update/submit_ingress_message"), post(submit_ingress))
        .route(&format!("{i}/update/await_ingress_message"), post(await_ingress))
        .route(&format!("{i}/read/ingress_status"), post(ingress_status))
        .route(&format!("{i}/read/query"), post(query))
        .route(&format!("{i}/update/add_cycles"), post(add_cycles))
        .route(&format!("{i}/read/get_cycles"), post(get_cycles))
        .route(&format!("{i}/read/get_controllers"), post(get_controllers))
        .route(&format!("{i}/read/get_subnet"), post(get_subnet))
        .route(&format!("{i}/read/get_stable_memory"), post(get_stable_memory))
        .route(&format!("{i}/update/set_stable_memory"), post(set_stable_memory))
        .route(&format!("{i}/read/get_canister_http"), get(get_canister_http))
        .route(&format!("{i}/update/mock_canister_http"), post(mock_canister_http))
        .route(&format!("{i}/auto_progress"), post(auto_progress).get(is_auto_progress))
        .route(&format!("{i}/stop_progress"), post(stop_progress))
        .route(&format!("{i}/read/pub_key"), post(pub_key))
        .route(&format!("{i}/api/{{*rest}}"), axum::routing::any(super::gateway::instance_api))
        .route(&format!("{i}/update/canister_snapshot_download"), post(canister_snapshot_download))
        .route(&format!("{i}/update/canister_snapshot_upload"), post(canister_snapshot_upload))
        .route(&format!("{i}/update/delete_subnet"), post(|| async { Failure::unsupported("deleting subnets") }))
        .route(&format!("{i}/update/mock_flexible_canister_http"), post(mock_flexible_canister_http))
        // ww's own: a fault a test injects (the `ww-pocket-ic` client crate).
        .route(&format!("{i}/ww/inject_fault"), post(inject_fault))
        .route("/verify_signature", post(|| async { Failure::unsupported("verify_signature (canister signatures)") }))
        .route("/http_gateway", post(super::gateway::create))
        .route("/http_gateway/{gateway}/stop", post(super::gateway::stop))
        .route("/read_graph/{label}/{op}", get(|| async { Failure::not_found("no such operation: ww answers every request synchronously") }))
        .route("/prune_graph/{label}/{op}", delete(|| async { Json(()) }))
        .fallback(|method: Method, uri: Uri| async move { Failure::not_found(format!("no such route: {method} {uri}")) })
        .with_state(server))
}

/// Parses a JSON request body, naming the route when it cannot.
fn parse<T: DeserializeOwned>(what: &str, body: &Bytes) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure::bad(format!("bad {what} request body: {e}")))
}

fn ok<T: Serialize>(value: T) -> Reply<T> {
    Ok(Json(value))
}

impl Server {
    pub(super) fn add_gateway(&self, gateway: crate::http::HttpServer) -> usize {
        let mut gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        gateways.push(Some(gateway));
        gateways.len() - 1
    }

    /// Stops gateway `id` (its listener closes); unknown ids are ignored.
    pub(super) fn stop_gateway(&self, id: usize) {
        let stopped = self.gateways.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id).and_then(Option::take);
        drop(stopped);
    }

    pub(super) fn instance(&self, id: usize) -> Result<Arc<tokio::sync::Mutex<Instance>>, Failure> {
        let instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        match instances.get(id) {
            Some(Some(instance)) => Ok(instance.clone()),
            Some(None) => Err(Failure::not_found(format!("instance {id} was deleted"))),
            None => Err(Failure::not_found(format!("instance {id} does not exist"))),
        }
    }
}

async fn create_instance(State(server): State<Shared>, body: Bytes) -> Reply<wire::CreateInstanceResponse> {
    let config: wire::InstanceConfig = parse("POST /instances", &body)?;
    let number = server.instances.lock().unwrap_or_else(|e| e.into_inner()).len();
    let engine = server.engine.clone();
    let config2 = config.clone();
    let created = tokio::task::spawn_blocking(move || Instance::new(engine, number, &config2))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("creating the instance: {e}")))?;
    let instance = match created {
        Ok(instance) => instance,
        Err(e) => return ok(wire::CreateInstanceResponse::Error { message: e.to_string() }),
    };
    let topology = instance.topology();
    let auto = matches!(config.initial_time, Some(wire::InitialTime::AutoProgress(_)));
    let delay = match &config.initial_time {
        Some(wire::InitialTime::AutoProgress(c)) => c.artificial_delay_ms,
        _ => None,
    };
    let instance = Arc::new(tokio::sync::Mutex::new(instance));
    let instance_id = {
        let mut instances = server.instances.lock().unwrap_or_else(|e| e.into_inner());
        instances.push(Some(instance.clone()));
        instances.len() - 1
    };
    if auto {
        start_auto_progress(&instance, delay).await;
    }
    let mut http_gateway_info = None;
    if let Some(gateway) = &config.http_gateway_config {
        let gateway: super::gateway::GatewayConfig = serde_json::from_value(gateway.clone()).map_err(|e| Failure::bad(format!("bad http_gateway_config: {e}")))?;
        match super::gateway::start(&server, instance_id, &gateway).await {
            Ok(info) => http_gateway_info = Some(wire::HttpGatewayInfo { instance_id: info.instance_id, port: info.port }),
            Err(message) => return ok(wire::CreateInstanceResponse::Error { message }),
        }
    }
    tracing::debug!(instance = instance_id, subnets = topology.subnet_configs.len(), "instance created");
    ok(wire::CreateInstanceResponse::Created { instance_id, topology, http_gateway_info })
}

async fn list_instances(State(server): State<Shared>) -> Json<Vec<String>> {
    let instances = server.instances.lock().unwrap_or_else(|e| e.into_inner());
    Json(instances.iter().map(|i| if i.is_some() { "Available".to_string() } else { "Deleted".to_string() }).collect())
}

async fn delete_instance(State(server): State<Shared>, Path(id): Path<usize>) -> Reply<()> {
    let removed = {
        let mut instances = server.instances.lock().unwrap_or_else(|e| e.into_inner());
        instances.get_mut(id).and_then(Option::take)
    };
    if let Some(instance) = removed {
        // Stop auto progress; the replica's threads end with its last handle.
        let mut guard = instance.lock().await;
        guard.auto_progress = None;
        guard.outcalls.clear();
        tracing::debug!(instance = id, "instance deleted");
    }
    ok(())
}

async fn upload_blob(State(server): State<Shared>, headers: HeaderMap, body: Bytes) -> Result<String, Failure> {
    let gzip = match headers.get(axum::http::header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("")) {
        None => false,
        Some("gzip") => true,
        Some(other) => return Err(Failure::bad(format!("blob Content-Encoding `{other}` is not supported (gzip or none)"))),
    };
    let id = Sha256::digest(&body).to_vec();
    let text = hex::encode(&id);
    server.blobs.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (body, gzip));
    Ok(text)
}

async fn download_blob(State(server): State<Shared>, Path(blob): Path<String>) -> Result<Response, Failure> {
    let id = hex::decode(&blob).map_err(|e| Failure::bad(format!("blob id `{blob}` is not hex: {e}")))?;
    let blobs = server.blobs.lock().unwrap_or_else(|e| e.into_inner());
    let (bytes, gzip) = blobs.get(&id).ok_or_else(|| Failure::not_found(format!("no blob {blob}")))?;
    let mut response = bytes.clone().into_response();
    if *gzip {
        response.headers_mut().insert(axum::http::header::CONTENT_ENCODING, axum::http::HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// A blob's bytes, decompressed.
fn blob_bytes(server: &Server, id: &wire::BlobId) -> Result<Vec<u8>, Failure> {
    let (bytes, gzip) = server
        .blobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id.0)
        .cloned()
        .ok_or_else(|| Failure::bad(format!("no blob {} in the blob store", hex::encode(&id.0))))?;
    if !gzip {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| Failure::bad(format!("blob {} is not valid gzip: {e}", hex::encode(&id.0))))?;
    Ok(out)
}

async fn topology(State(server): State<Shared>, Path(id): Path<usize>) -> Reply<wire::Topology> {
    ok(server.instance(id)?.lock().await.topology())
}

async fn get_time(State(server): State<Shared>, Path(id): Path<usize>) -> Reply<wire::RawTime> {
    ok(wire::RawTime { nanos_since_epoch: server.instance(id)?.lock().await.replica.time() })
}

/// The time of the next round; queries see it once that round has run.
async fn set_time(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let time: wire::RawTime = parse("set_time", &body)?;
    let instance = server.instance(id)?;
    let guard = instance.lock().await;
    guard.replica.set_time(time.nanos_since_epoch).map_err(|e| Failure::bad(e.to_string()))?;
    ok(())
}

/// The time queries see at once; the next round runs 1 ns later.
async fn set_certified_time(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let time: wire::RawTime = parse("set_certified_time", &body)?;
    let instance = server.instance(id)?;
    let guard = instance.lock().await;
    guard.replica.set_certified_time(time.nanos_since_epoch).map_err(|e| Failure::bad(e.to_string()))?;
    ok(())
}

async fn tick(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    // The block makers (`RawTickConfigs`) do not matter to ww's replica.
    let _: wire::RawTickConfigs = parse("tick", &body)?;
    let guard = server.instance(id)?.lock_owned().await;
    blocking(move || guard.round().map(|_| ()).map_err(Failure::from_clock)).await?;
    ok(())
}

impl Failure {
    fn from_clock(e: crate::replica::ClockError) -> Self {
        Self::bad(e.to_string())
    }
}

/// Runs a blocking instance operation on the blocking thread pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Failure> + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("the round did not finish: {e}")))?
}

/// The sender, target and (for a creation routed to a subnet) rewritten
/// argument of a call, checked against the instance's subnets.
fn route(instance: &Instance, call: &wire::RawCanisterCall) -> Result<(Principal, Principal, Vec<u8>), Failure> {
    let sender = call.sender_principal()?;
    let canister = call.canister_principal()?;
    let effective = call.effective_principal.principal()?;
    let mut payload = call.payload.clone();
    if canister == Principal::management_canister() {
        if let wire::RawEffectivePrincipal::SubnetId(_) = call.effective_principal
            && let Some(subnet_id) = effective
        {
            let subnet = instance.subnet(&subnet_id).ok_or_else(|| Failure::bad(format!("subnet {subnet_id} is not a subnet of this instance")))?;
            if call.method == "provisional_create_canister_with_cycles" || call.method == "create_canister" {
                // The new canister goes to the subnet the call is routed to.
                let mut args: ProvisionalCreateCanisterArgs = candid::decode_one(&payload)
                    .map_err(|e| Failure::bad(format!("bad Candid argument for {}: {e}", call.method)))?;
                if args.specified_id.is_none() {
                    args.specified_id = Some(instance.free_id_on(subnet).ok_or_else(|| Failure::bad(format!("subnet {subnet_id} has no free canister id left")))?);
                    payload = candid::encode_one(&args).map_err(|e| Failure::bad(format!("re-encoding {}: {e}", call.method)))?;
                }
            }
        }
    } else if instance.subnet_of(&canister).is_none() && !instance.replica.exists(&canister) {
        return Err(Failure::bad(format!("canister {canister} does not belong to any subnet of this instance")));
    }
    Ok((sender, canister, payload))
}

async fn submit_ingress(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<Result<wire::RawMessageId, wire::RejectResponse>> {
    let call: wire::RawCanisterCall = parse("submit_ingress_message", &body)?;
    let instance = server.instance(id)?;
    let mut guard = instance.lock().await;
    let (sender, canister, payload) = route(&guard, &call)?;
    ok(match guard.submit(sender, canister, &call.method, payload, call.caller_info()).await {
        Ok(message_id) => Ok(wire::RawMessageId { effective_principal: call.effective_principal, message_id }),
        Err(reject) => Err(wire::reject_to_response(&reject, false)),
    })
}

async fn await_ingress(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<RawCanisterResult> {
    let message: wire::RawMessageId = parse("await_ingress_message", &body)?;
    let mut guard = server.instance(id)?.lock_owned().await;
    let outcome = blocking(move || guard.await_message(&message.message_id).map_err(Failure::from)).await?;
    ok(RawCanisterResult::from_replica(outcome, true))
}

async fn ingress_status(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Result<Response, Failure> {
    let args: wire::RawIngressStatusArgs = parse("ingress_status", &body)?;
    let caller = args.raw_caller.as_ref().map(wire::RawPrincipalId::principal).transpose()?;
    let instance = server.instance(id)?;
    let mut guard = instance.lock().await;
    match guard.ingress_status(&args.raw_message_id.message_id, caller) {
        Ok(status) => Ok(Json(status.map(|r| RawCanisterResult::from_replica(r, true))).into_response()),
        Err(sender) => Ok((
            StatusCode::FORBIDDEN,
            Json(wire::ApiError::new(format!("the caller is not the sender of this message (sent by {sender})"))),
        )
            .into_response()),
    }
}

async fn query(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<RawCanisterResult> {
    let call: wire::RawCanisterCall = parse("query", &body)?;
    let instance = server.instance(id)?;
    let guard = instance.lock().await;
    let (sender, canister, payload) = route(&guard, &call)?;
    let rx = guard.replica.submit_query_with_info(sender, canister, &call.method, payload, call.caller_info());
    let result = rx.await.map_err(|_| Failure(StatusCode::INTERNAL_SERVER_ERROR, "the replica dropped the query".into()))?;
    ok(RawCanisterResult::from_replica(result, false))
}

fn canister_arg(what: &str, body: &Bytes) -> Result<Principal, Failure> {
    let raw: wire::RawCanisterId = parse(what, body)?;
    Ok(raw.principal()?)
}

fn status_of(instance: &Instance, canister: &Principal) -> Result<crate::replica::CanisterStatus, Failure> {
    instance.replica.status(canister).ok_or_else(|| Failure::bad(format!("canister {canister} not found")))
}

async fn add_cycles(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<wire::RawCycles> {
    let args: wire::RawAddCycles = parse("add_cycles", &body)?;
    let canister = principal_of("canister_id", &args.canister_id)?;
    let instance = server.instance(id)?;
    let guard = instance.lock().await;
    guard.replica.deposit_cycles(canister, args.amount).map_err(|r| Failure::bad(r.message))?;
    ok(wire::RawCycles { cycles: status_of(&guard, &canister)?.cycles })
}

/// ww's own route: injects a fault the spec allows (JSON
/// [`crate::replica::scripted::ScriptedFault`]); answers how many calls it
/// affected at once.
async fn inject_fault(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<u32> {
    let fault: crate::replica::scripted::ScriptedFault = parse("inject_fault", &body)?;
    let guard = server.instance(id)?.lock_owned().await;
    ok(guard.replica.inject_fault(fault).map_err(Failure::bad)?)
}

fn principal_of(what: &str, bytes: &[u8]) -> Result<Principal, Failure> {
    Principal::try_from_slice(bytes).map_err(|e| Failure::bad(format!("{what} is not a principal: {e}")))
}

async fn get_cycles(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<wire::RawCycles> {
    let canister = canister_arg("get_cycles", &body)?;
    let guard = server.instance(id)?.lock_owned().await;
    ok(wire::RawCycles { cycles: status_of(&guard, &canister)?.cycles })
}

async fn get_controllers(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<Vec<wire::RawPrincipalId>> {
    let canister = canister_arg("get_controllers", &body)?;
    let guard = server.instance(id)?.lock_owned().await;
    ok(status_of(&guard, &canister)?.controllers.into_iter().map(Into::into).collect())
}

async fn get_subnet(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<Option<wire::RawSubnetId>> {
    let canister = canister_arg("get_subnet", &body)?;
    let guard = server.instance(id)?.lock_owned().await;
    // Only an existing canister has a subnet (`canister_exists` relies on it).
    if !guard.replica.exists(&canister) {
        return ok(None);
    }
    ok(Some(guard.subnet_of(&canister).unwrap_or(&guard.subnets[0]).id.into()))
}

async fn get_stable_memory(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<wire::RawStableMemory> {
    let canister = canister_arg("get_stable_memory", &body)?;
    let guard = server.instance(id)?.lock_owned().await;
    let blob = guard.replica.stable_memory(&canister).map_err(|r| Failure::bad(r.message))?;
    ok(wire::RawStableMemory { blob })
}

async fn set_stable_memory(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let args: wire::RawSetStableMemory = parse("set_stable_memory", &body)?;
    let canister = principal_of("canister_id", &args.canister_id)?;
    let bytes = blob_bytes(&server, &args.blob_id)?;
    let guard = server.instance(id)?.lock_owned().await;
    guard.replica.set_stable_memory(&canister, &bytes).map_err(|r| Failure::bad(r.message))?;
    ok(())
}

/// `update/canister_snapshot_download`: a snapshot into a directory.
async fn canister_snapshot_download(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let args: wire::RawCanisterSnapshotDownload = parse("canister_snapshot_download", &body)?;
    let (sender, canister) = (args.sender.principal()?, args.canister_id.principal()?);
    let guard = server.instance(id)?.lock_owned().await;
    blocking(move || {
        super::snapshot_dir::download(&guard.replica, sender, canister, &args.snapshot_id, &args.snapshot_dir).map_err(|e| Failure::bad(e.to_string()))
    })
    .await?;
    ok(())
}

/// `update/canister_snapshot_upload`: a snapshot from a directory; its id.
async fn canister_snapshot_upload(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<wire::RawCanisterSnapshotId> {
    let args: wire::RawCanisterSnapshotUpload = parse("canister_snapshot_upload", &body)?;
    let (sender, canister) = (args.sender.principal()?, args.canister_id.principal()?);
    let replace = args.replace_snapshot.map(|r| r.snapshot_id);
    let guard = server.instance(id)?.lock_owned().await;
    let snapshot_id = blocking(move || {
        super::snapshot_dir::upload(&guard.replica, sender, canister, replace, &args.snapshot_dir).map_err(|e| Failure::bad(e.to_string()))
    })
    .await?;
    ok(wire::RawCanisterSnapshotId { snapshot_id })
}

/// The outcalls a test can mock now (made before the last round).
async fn get_canister_http(State(server): State<Shared>, Path(id): Path<usize>) -> Reply<Vec<wire::RawCanisterHttpRequest>> {
    let guard = server.instance(id)?.lock_owned().await;
    ok(guard.outcalls.listed().into_iter().map(wire::RawCanisterHttpRequest::from).collect())
}

/// Answers a pending outcall: one response for every node, or one per node.
async fn mock_canister_http(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let mock: wire::RawMockCanisterHttpResponse = parse("mock_canister_http", &body)?;
    let subnet = principal_of("subnet_id", &mock.subnet_id.subnet_id)?;
    let guard = server.instance(id)?.lock_owned().await;
    let nodes = guard.subnet_nodes(&subnet).ok_or_else(|| Failure::bad(format!("subnet {subnet} is not a subnet of instance {id}")))?;
    let responses = std::iter::once(mock.response).chain(mock.additional_responses).map(wire::CanisterHttpResponse::into_mocked).collect();
    guard.outcalls.mock(mock.request_id, subnet, responses, nodes).map_err(|e| Failure::bad(e.to_string()))?;
    ok(())
}

/// Answers a pending flexible outcall: one response per committee node
/// that answered (at most `total_requests`), all in this one call.
async fn mock_flexible_canister_http(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let mock: wire::RawMockFlexibleCanisterHttpResponse = parse("mock_flexible_canister_http", &body)?;
    let subnet = principal_of("subnet_id", &mock.subnet_id.subnet_id)?;
    let guard = server.instance(id)?.lock_owned().await;
    let responses = mock.responses.into_iter().map(wire::CanisterHttpResponse::into_mocked).collect();
    guard.outcalls.mock_flexible(mock.request_id, subnet, responses).map_err(|e| Failure::bad(e.to_string()))?;
    ok(())
}

/// `read/pub_key`: a subnet's public key (DER), the root key for the root
/// subnet (the NNS if there is one).
async fn pub_key(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<Vec<u8>> {
    let raw: wire::RawSubnetId = parse("read/pub_key", &body)?;
    let subnet = principal_of("subnet_id", &raw.subnet_id)?;
    let guard = server.instance(id)?.lock_owned().await;
    guard.subnet_public_key(&subnet).map(Json).ok_or_else(|| Failure::not_found(format!("subnet {subnet} is not a subnet of instance {id}")))
}

/// Rounds every `delay`, at least [`AUTO_PROGRESS_INTERVAL_MS`] (as
/// PocketIC: PicJS asks for a delay of 0), with the time following the wall
/// clock, until stopped.
async fn start_auto_progress(instance: &Arc<tokio::sync::Mutex<Instance>>, delay_ms: Option<u64>) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    {
        let mut guard = instance.lock().await;
        guard.auto_progress = Some(stop);
        // Live: outcalls are made for real, as PocketIC's live mode makes them.
        match crate::outcalls::live::LiveAdapter::new(crate::outcalls::live::AllowList::any(), crate::outcalls::live::DEFAULT_TIMEOUT) {
            Ok(live) => guard.outcalls.go_live(Arc::new(live)),
            Err(e) => tracing::warn!("outcalls stay mocked: the HTTPS client failed to start: {e}"),
        }
    }
    let weak = Arc::downgrade(instance);
    let interval = std::time::Duration::from_millis(delay_ms.unwrap_or(0).max(AUTO_PROGRESS_INTERVAL_MS));
    // The first step at once: the instance is live (its time the wall
    // clock's, certified) when this returns, as `make_live` expects.
    live_step(instance.clone().lock_owned().await).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let Some(instance) = weak.upgrade() else { return };
            let guard = instance.lock_owned().await;
            if guard.auto_progress.is_none() {
                return;
            }
            live_step(guard).await;
        }
    });
}

/// One step of auto progress: the time set to the wall clock's, a round.
async fn live_step(guard: tokio::sync::OwnedMutexGuard<Instance>) {
    let _ = blocking(move || {
        let now = wall_clock_ns();
        if now > guard.replica.time() {
            let _ = guard.replica.set_time(now);
        }
        guard.round().map(|_| ()).map_err(Failure::from_clock)
    })
    .await;
}

/// The least time between automatic rounds (PocketIC's minimum operation
/// delay in auto progress, whatever delay the client gives).
pub const AUTO_PROGRESS_INTERVAL_MS: u64 = 100;

async fn auto_progress(State(server): State<Shared>, Path(id): Path<usize>, body: Bytes) -> Reply<()> {
    let config: wire::AutoProgressConfig = parse("auto_progress", &body)?;
    let instance = server.instance(id)?;
    if instance.lock().await.auto_progress.is_none() {
        start_auto_progress(&instance, config.artificial_delay_ms).await;
    }
    ok(())
}

async fn is_auto_progress(State(server): State<Shared>, Path(id): Path<usize>) -> Reply<bool> {
    ok(server.instance(id)?.lock().await.auto_progress.is_some())
}

async fn stop_progress(State(server): State<Shared>, Path(id): Path<usize>) -> Reply<()> {
    let instance = server.instance(id)?;
    let mut guard = instance.lock().await;
    guard.auto_progress = None;
    guard.outcalls.stop_live();
    ok(())
}
