//! The IC's public HTTP interface for one replica (what ic-agent,
//! agent-js, icp-cli and `PocketIc::make_live` talk to): `/api/v2/status`,
//! calls (v2 asynchronous, v3/v4 synchronous with a certificate), queries
//! signed by the node key, and read_state certificates, all CBOR. The
//! requests are checked here ([`envelope`], [`auth`]); what they do goes
//! through the replica's ingress API and the one [`CertifiedState`].
//!
//! Served by `ww serve --http ADDR` / `ww run --serve --http ADDR` and, under
//! `/instances/<id>/`, by the PocketIC server.

pub mod auth;
mod calls;
pub mod canister_sig;
pub mod envelope;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ciborium::Value;

use crate::certified::CertifiedState;

/// How long a synchronous call waits for its answer before answering 202
/// (the IC's ingress certificate timeout).
pub const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(10);

/// The largest request body (HTTP 413 beyond): the IC's 2 MiB ingress
/// payload plus room for the envelope.
pub const MAX_BODY: usize = 4 << 20;

/// How the interface answers.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// See [`DEFAULT_SYNC_WAIT`].
    pub sync_wait: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { sync_wait: DEFAULT_SYNC_WAIT }
    }
}

/// What the handlers share.
pub(crate) struct Front {
    state: Arc<CertifiedState>,
    config: HttpConfig,
}

/// The interface's routes (`/api/...`), for `state`'s replica.
pub fn router(state: Arc<CertifiedState>, config: HttpConfig) -> Router {
    let front = Arc::new(Front { state, config });
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v2/canister/{ecid}/call", post(calls::call_v2))
        .route("/api/v3/canister/{ecid}/call", post(calls::call_sync))
        .route("/api/v4/canister/{ecid}/call", post(calls::call_sync))
        .route("/api/v4/subnet/{sid}/call", post(calls::subnet_call))
        .route("/api/v2/canister/{ecid}/query", post(calls::query))
        .route("/api/v3/canister/{ecid}/query", post(calls::query))
        .route("/api/v3/subnet/{sid}/query", post(calls::subnet_query))
        .route("/api/v2/canister/{ecid}/read_state", post(calls::read_state))
        .route("/api/v3/canister/{ecid}/read_state", post(calls::read_state))
        .route("/api/v2/subnet/{sid}/read_state", post(calls::subnet_read_state))
        .route("/api/v3/subnet/{sid}/read_state", post(calls::subnet_read_state))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(allow_any_origin))
        .with_state(front)
}

/// Browsers' frontends call the interface from another origin, as they do
/// a replica's.
async fn allow_any_origin(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    response
}

/// A bound listener serving the interface until dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves `router` on the current tokio runtime.
    pub async fn bind(addr: SocketAddr, router: Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the HTTP interface stopped");
            }
        });
        tracing::info!(url = %format!("http://{addr}/"), "serving the IC HTTP interface");
        Ok(Self { addr, stop: Some(stop) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL agents are given.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn status(axum::extract::State(front): axum::extract::State<Arc<Front>>) -> Response {
    cbor(
        StatusCode::OK,
        Value::Map(vec![
            (text("root_key"), Value::Bytes(front.state.root_key().to_vec())),
            (text("replica_health_status"), text("healthy")),
            (text("impl_version"), text(env!("CARGO_PKG_VERSION"))),
            (text("impl_source"), text("ww")),
        ]),
    )
}

/// A self-described CBOR answer.
pub(crate) fn cbor(status: StatusCode, value: Value) -> Response {
    let mut body = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(&Value::Tag(55799, Box::new(value)), &mut body);
    (status, [(header::CONTENT_TYPE, "application/cbor")], body).into_response()
}

/// A plain-text error answer, as the IC gives them.
pub(crate) fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::debug!(%status, %message, "HTTP interface refusal");
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}
