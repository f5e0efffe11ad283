//! The IC HTTP interface of PocketIC instances: each instance serves it at
//! `/instances/<id>/api/...` on the server's port, and an HTTP gateway
//! (`POST /http_gateway`, `PocketIc::make_live`, or `http_gateway_config`
//! at creation) serves it at `/api/...` (and the topology at
//! `/_/topology`) on a port of its own. Both forward to the instance's
//! [`crate::http`] router, which answers from the instance's certified
//! state. Serving canisters' `http_request` to browsers (asset canisters)
//! is not part of the gateway yet: such requests get a 404 that says so.

use std::sync::{Arc, Weak};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::routes::{Failure, Server};

/// `POST /http_gateway` body (and, without `forward_to`, an instance's
/// `http_gateway_config`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    pub ip_addr: Option<String>,
    pub port: Option<u16>,
    pub forward_to: Option<serde_json::Value>,
    pub domains: Option<Vec<String>>,
    pub https_config: Option<serde_json::Value>,
}

/// What the client is told about a gateway.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// The gateway's own id (for `/http_gateway/<id>/stop`).
    pub instance_id: usize,
    pub port: u16,
}

/// `/instances/<id>/api/<rest>`: the instance's HTTP interface.
pub(super) async fn instance_api(State(server): State<Arc<Server>>, Path((id, rest)): Path<(usize, String)>, request: Request) -> Response {
    match server.instance(id) {
        Ok(instance) => {
            let api = instance.lock().await.api.clone();
            forward(api, &format!("/api/{rest}"), request).await
        }
        Err(failure) => failure.into_response(),
    }
}

/// Hands `request` to `router` as a new request for `path` (method,
/// headers, query and body kept; none of the outer route's extensions,
/// whose path parameters the inner route would see).
async fn forward(router: Router, path: &str, request: Request) -> Response {
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri = match format!("{path}{query}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad path {path}: {e}")).into_response(),
    };
    let (parts, body) = request.into_parts();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.headers_mut() = parts.headers;
    match router.oneshot(inner).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Starts a gateway for instance `instance` as `config` says.
pub(super) async fn start(server: &Arc<Server>, instance: usize, config: &GatewayConfig) -> Result<GatewayInfo, String> {
    if config.https_config.is_some() {
        return Err("ww's PocketIC server does not support an HTTPS gateway (https_config); use plain HTTP on loopback".into());
    }
    server.instance(instance).map_err(|f| f.message().to_string())?;
    let ip: std::net::IpAddr = match &config.ip_addr {
        Some(text) => text.parse().map_err(|e| format!("the gateway's ip_addr {text:?} is not an IP address: {e}"))?,
        None => std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let addr = std::net::SocketAddr::new(ip, config.port.unwrap_or(0));
    let weak = Arc::downgrade(server);
    let router = Router::new()
        .route("/api/{*rest}", any(gateway_api))
        .route("/_/topology", get(gateway_topology))
        .fallback(|uri: Uri| async move {
            (StatusCode::NOT_FOUND, format!("ww's gateway serves the IC HTTP interface (/api/...) and /_/topology; {uri} is not served (canisters' http_request is not served to browsers yet)"))
        })
        .with_state((weak, instance));
    let http = crate::http::HttpServer::bind(addr, router).await.map_err(|e| format!("the gateway cannot listen on {addr}: {e}"))?;
    let port = http.addr().port();
    let id = server.add_gateway(http);
    tracing::debug!(gateway = id, instance, port, "HTTP gateway started");
    Ok(GatewayInfo { instance_id: id, port })
}

type GatewayState = State<(Weak<Server>, usize)>;

async fn gateway_api(State((server, instance)): GatewayState, Path(rest): Path<String>, request: Request<Body>) -> Response {
    let Some(server) = server.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the PocketIC server is shutting down").into_response();
    };
    instance_api(State(server), Path((instance, rest)), request).await
}

async fn gateway_topology(State((server, instance)): GatewayState) -> Response {
    let Some(server) = server.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the PocketIC server is shutting down").into_response();
    };
    match server.instance(instance) {
        Ok(i) => Json(i.lock().await.topology()).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// `POST /http_gateway`.
pub(super) async fn create(State(server): State<Arc<Server>>, body: axum::body::Bytes) -> Json<serde_json::Value> {
    let refuse = |message: String| Json(serde_json::json!({"Error": {"message": message}}));
    let config: GatewayConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return refuse(format!("bad http_gateway request body: {e}")),
    };
    let instance = match config.forward_to.as_ref().and_then(|f| f.get("PocketIcInstance")).and_then(serde_json::Value::as_u64) {
        Some(id) => id as usize,
        None => return refuse("ww's gateway forwards only to a PocketIC instance of this server (forward_to: {\"PocketIcInstance\": id}), not to a replica URL".into()),
    };
    match start(&server, instance, &config).await {
        Ok(info) => Json(serde_json::json!({"Created": info})),
        Err(message) => refuse(message),
    }
}

/// `POST /http_gateway/<id>/stop`.
pub(super) async fn stop(State(server): State<Arc<Server>>, Path(id): Path<usize>) -> Result<Json<()>, Failure> {
    server.stop_gateway(id);
    Ok(Json(()))
}
