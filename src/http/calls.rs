//! The call, query and read_state endpoints: each checks the envelope
//! (request type, expiry, sender, effective canister id), then hands the
//! request to the replica and answers from the certified state.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use candid::Principal;
use ciborium::Value;

use super::envelope::{self, CallContent, Content, Envelope};
use super::{Front, cbor, plain, text};
use crate::certified::Scope;
use crate::certified::requests::error_code;
use crate::replica::Reject;
use crate::replica::exec::CallerInfo;

/// The longest time ahead an `ingress_expiry` may be: the IC's 5 minutes
/// plus its 30 seconds of permitted drift.
pub const MAX_INGRESS_TTL: u64 = (5 * 60 + 30) * 1_000_000_000;

/// The management canister's methods any effective canister id may carry.
const CREATE_METHODS: &[&str] = &["create_canister", "provisional_create_canister_with_cycles"];

type Front_ = State<Arc<Front>>;

/// Where an endpoint sends: `/canister/<ecid>/` or `/subnet/<sid>/`.
#[derive(Clone, Copy)]
enum Endpoint {
    Canister(Principal),
    Subnet(Principal),
}

impl Endpoint {
    fn scope(self) -> Scope {
        match self {
            Endpoint::Canister(p) => Scope::Canister(p),
            Endpoint::Subnet(p) => Scope::Subnet(p),
        }
    }
}

fn parse_principal(text: &str, what: &str) -> Result<Principal, Response> {
    Principal::from_text(text).map_err(|e| plain(StatusCode::BAD_REQUEST, format!("the {what} {text:?} in the URL is not a principal: {e}")))
}

fn canister_endpoint(ecid: &str) -> Result<Endpoint, Response> {
    parse_principal(ecid, "effective canister id").map(Endpoint::Canister)
}

fn subnet_endpoint(front: &Front, sid: &str) -> Result<Endpoint, Response> {
    let sid = parse_principal(sid, "subnet id")?;
    if sid != front.state.subnet_id() {
        return Err(plain(StatusCode::NOT_FOUND, format!("subnet {sid} is not a subnet of this replica (its subnet is {})", front.state.subnet_id())));
    }
    Ok(Endpoint::Subnet(sid))
}

/// Decodes and checks a request of kind `kind` sent to `endpoint`: its
/// expiry, its sender and signatures, and its effective canister id.
fn admit(front: &Front, body: &[u8], kind: &str, endpoint: Endpoint) -> Result<Envelope, Response> {
    let envelope = envelope::decode(body).map_err(|e| plain(StatusCode::BAD_REQUEST, e.0))?;
    if let Content::Call(c) | Content::Query(c) = &envelope.content {
        let limit = front.state.replica().limits().max_inter_canister_payload;
        if c.arg.len() > limit {
            return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, format!("the {kind}'s argument is {} bytes, more than the ingress limit of {limit} bytes", c.arg.len())));
        }
    }
    if envelope.content.kind() != kind {
        return Err(plain(StatusCode::BAD_REQUEST, format!("a {} request was sent to the {kind} endpoint", envelope.content.kind())));
    }
    let now = front.state.replica().time();
    // The spec lets anonymous queries and read_state requests skip the
    // expiry check (agents read /time that way to fix their clock).
    let anonymous_read = kind != "call" && envelope.content.sender() == Principal::anonymous();
    if !anonymous_read {
        check_expiry(envelope.content.ingress_expiry(), now)?;
    }
    let target = match (&envelope.content, endpoint) {
        (Content::Call(c) | Content::Query(c), Endpoint::Canister(ecid)) => {
            let creation = c.canister_id == Principal::management_canister() && CREATE_METHODS.contains(&c.method_name.as_str());
            if !creation && !front.state.holds(&ecid) {
                return Err(not_here(front, ecid));
            }
            check_effective_canister(c, ecid, kind)?;
            Some(if c.canister_id == Principal::management_canister() { ecid } else { c.canister_id })
        }
        (Content::Call(c) | Content::Query(c), Endpoint::Subnet(_)) => {
            let allowed = match kind {
                "call" => c.canister_id == Principal::management_canister() && CREATE_METHODS.contains(&c.method_name.as_str()),
                _ => c.canister_id == Principal::management_canister() && c.method_name == "list_canisters",
            };
            if !allowed {
                return Err(plain(
                    StatusCode::BAD_REQUEST,
                    format!("{}.{} cannot be sent to a subnet endpoint (only aaaaa-aa's create_canister and provisional_create_canister_with_cycles calls, and its list_canisters query)", c.canister_id, c.method_name),
                ));
            }
            None
        }
        (Content::ReadState(r), Endpoint::Canister(ecid)) => {
            // Agents read `/time` through any well-known canister id (the
            // ICP ledger's, to fix their clock): only a canister's own paths
            // need it to be here.
            if !front.state.holds(&ecid) && r.paths.iter().any(|p| p.first().is_some_and(|l| l == b"canister")) {
                return Err(not_here(front, ecid));
            }
            Some(ecid)
        }
        (Content::ReadState(_), Endpoint::Subnet(_)) => None,
    };
    let root = front.state.root_key();
    let root = &root[root.len().saturating_sub(96)..];
    super::auth::authenticate(&envelope, now, target.as_ref(), root).map_err(|e| plain(StatusCode::FORBIDDEN, e.0))?;
    Ok(envelope)
}

/// A canister route this replica does not serve (HTTP 404).
fn not_here(front: &Front, ecid: Principal) -> Response {
    plain(StatusCode::NOT_FOUND, format!("canister {ecid} is not in the canister ranges of subnet {} (this replica's)", front.state.subnet_id()))
}

/// The IC's expiry rule, in its words (agents look for the prefix).
fn check_expiry(expiry: u64, now: u64) -> Result<(), Response> {
    let max = now.saturating_add(MAX_INGRESS_TTL);
    if expiry < now || expiry > max {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid request expiry: Specified ingress_expiry not within expected range: Minimum allowed expiry: {now} ns, Maximum allowed expiry: {max} ns, Provided expiry: {expiry} ns (ns since the Unix epoch; the replica's time is {now})"
            ),
        ));
    }
    Ok(())
}

/// The spec's effective canister id rule for a call or query to `ecid`.
fn check_effective_canister(c: &CallContent, ecid: Principal, kind: &str) -> Result<(), Response> {
    if c.canister_id != Principal::management_canister() {
        if c.canister_id != ecid {
            return Err(plain(StatusCode::BAD_REQUEST, format!("Specified CanisterId {} does not match effective canister id in URL {ecid}", c.canister_id)));
        }
        return Ok(());
    }
    if kind == "call" && CREATE_METHODS.contains(&c.method_name.as_str()) {
        return Ok(());
    }
    if kind == "query" && c.method_name == "list_canisters" {
        return Ok(());
    }
    let field = if c.method_name == "install_chunked_code" { "target_canister" } else { "canister_id" };
    match principal_field(&c.arg, field) {
        Some(id) if id == ecid => Ok(()),
        Some(id) => Err(plain(StatusCode::BAD_REQUEST, format!("Specified CanisterId {id} (the {field} of aaaaa-aa.{}) does not match effective canister id in URL {ecid}", c.method_name))),
        None => Err(plain(
            StatusCode::BAD_REQUEST,
            format!("aaaaa-aa.{} has no effective canister id: its argument has no principal field {field}", c.method_name),
        )),
    }
}

/// The principal in field `name` of the first argument (a record).
fn principal_field(arg: &[u8], name: &str) -> Option<Principal> {
    let args = candid::IDLArgs::from_bytes(arg).ok()?;
    let candid::IDLValue::Record(fields) = args.args.into_iter().next()? else {
        return None;
    };
    let id = candid::types::Label::Named(name.to_string()).get_id();
    fields.into_iter().find(|f| f.id.get_id() == id).and_then(|f| match f.val {
        candid::IDLValue::Principal(p) => Some(p),
        _ => None,
    })
}

fn caller_info(c: &CallContent) -> Option<CallerInfo> {
    c.sender_info.as_ref().map(|s| CallerInfo { data: s.info.clone(), signer: s.signer.as_slice().to_vec() })
}

fn reject_fields(reject: &Reject) -> Vec<(Value, Value)> {
    vec![
        (text("reject_code"), Value::Integer((reject.code as u32).into())),
        (text("reject_message"), Value::Text(reject.message.clone())),
        (text("error_code"), Value::Text(error_code(reject))),
    ]
}

/// Submits a call; `Err` is the answer when it was not admitted (a
/// non-replicated rejection) or is a duplicate.
async fn submit(front: &Front, envelope: Envelope, scope: Scope, sync: bool) -> Result<[u8; 32], Response> {
    let size = envelope.size;
    let Content::Call(c) = envelope.content else {
        return Err(plain(StatusCode::BAD_REQUEST, "not a call"));
    };
    let id = envelope.request_id;
    let state = front.state.clone();
    if !state.begin_request(id, c.sender, scope, c.ingress_expiry) {
        // A duplicate: it runs once; a synchronous duplicate gets the answer.
        return Err(if sync { answer_sync(front, id).await } else { accepted() });
    }
    let info = caller_info(&c);
    match state.replica().submit_inspected_ingress(c.sender, c.canister_id, &c.method_name, c.arg, info, size).await {
        Ok(rx) => {
            tokio::spawn(async move {
                let result = rx.await.unwrap_or_else(|_| Err(Reject::system(crate::replica::ErrorCode::SubnetOversubscribed, "the replica is shutting down")));
                state.finish_request(&id, &result);
            });
            Ok(id)
        }
        Err(reject) => {
            state.forget_request(&id);
            let mut fields = vec![(text("status"), text("non_replicated_rejection"))];
            fields.extend(reject_fields(&reject));
            Err(cbor(StatusCode::OK, Value::Map(fields)))
        }
    }
}

fn accepted() -> Response {
    axum::response::IntoResponse::into_response(StatusCode::ACCEPTED)
}

/// The answer of a synchronous call: its certificate once finished within
/// the wait, else 202 (the agent polls read_state).
async fn answer_sync(front: &Front, id: [u8; 32]) -> Response {
    if !front.state.wait_finished(&id, front.config.sync_wait).await {
        return accepted();
    }
    // Acknowledged means durable: the call's effects and its status are in
    // the state directory (if any) before the answer leaves.
    if let Err(why) = front.state.replica().persisted().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, format!("the call's state could not be written: {why}"));
    }
    let certificate = front.state.certificate(&[vec![b"request_status".to_vec(), id.to_vec()]]);
    cbor(StatusCode::OK, Value::Map(vec![(text("status"), text("replied")), (text("certificate"), Value::Bytes(certificate))]))
}

pub(super) async fn call_v2(State(front): Front_, Path(ecid): Path<String>, body: Bytes) -> Response {
    let endpoint = match canister_endpoint(&ecid) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let envelope = match admit(&front, &body, "call", endpoint) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match submit(&front, envelope, endpoint.scope(), false).await {
        Ok(_) => accepted(),
        Err(r) => r,
    }
}

pub(super) async fn call_sync(State(front): Front_, Path(ecid): Path<String>, body: Bytes) -> Response {
    let endpoint = match canister_endpoint(&ecid) {
        Ok(e) => e,
        Err(r) => return r,
    };
    sync_call(&front, endpoint, &body).await
}

pub(super) async fn subnet_call(State(front): Front_, Path(sid): Path<String>, body: Bytes) -> Response {
    let endpoint = match subnet_endpoint(&front, &sid) {
        Ok(e) => e,
        Err(r) => return r,
    };
    sync_call(&front, endpoint, &body).await
}

async fn sync_call(front: &Front, endpoint: Endpoint, body: &[u8]) -> Response {
    let envelope = match admit(front, body, "call", endpoint) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match submit(front, envelope, endpoint.scope(), true).await {
        Ok(id) => answer_sync(front, id).await,
        Err(r) => r,
    }
}

pub(super) async fn query(State(front): Front_, Path(ecid): Path<String>, body: Bytes) -> Response {
    match canister_endpoint(&ecid) {
        Ok(endpoint) => run_query(&front, endpoint, &body).await,
        Err(r) => r,
    }
}

pub(super) async fn subnet_query(State(front): Front_, Path(sid): Path<String>, body: Bytes) -> Response {
    match subnet_endpoint(&front, &sid) {
        Ok(endpoint) => run_query(&front, endpoint, &body).await,
        Err(r) => r,
    }
}

async fn run_query(front: &Front, endpoint: Endpoint, body: &[u8]) -> Response {
    let envelope = match admit(front, body, "query", endpoint) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let request_id = envelope.request_id;
    let Content::Query(c) = envelope.content else {
        return plain(StatusCode::BAD_REQUEST, "not a query");
    };
    let info = caller_info(&c);
    let rx = front.state.replica().submit_query_with_info(c.sender, c.canister_id, &c.method_name, c.arg, info);
    let result = rx.await.unwrap_or_else(|_| Err(Reject::system(crate::replica::ErrorCode::SubnetOversubscribed, "the replica is shutting down")));
    let timestamp = crate::replica::wall_clock_ns();
    let mut signed: Vec<(&str, Value)> = match &result {
        Ok(reply) => vec![("status", text("replied")), ("reply", Value::Map(vec![(text("arg"), Value::Bytes(reply.clone()))]))],
        Err(reject) => {
            let mut fields = vec![("status", text("rejected"))];
            fields.extend(reject_fields(reject).into_iter().filter_map(|(k, v)| match k {
                Value::Text(k) if k == "reject_code" => Some(("reject_code", v)),
                Value::Text(k) if k == "reject_message" => Some(("reject_message", v)),
                Value::Text(k) if k == "error_code" => Some(("error_code", v)),
                _ => None,
            }));
            fields
        }
    };
    let mut response: Vec<(Value, Value)> = signed.iter().map(|(k, v)| (text(k), v.clone())).collect();
    signed.push(("timestamp", Value::Integer(timestamp.into())));
    signed.push(("request_id", Value::Bytes(request_id.to_vec())));
    let signature = front.state.sign_response(&envelope::response_hash(&signed));
    response.push((
        text("signatures"),
        Value::Array(vec![Value::Map(vec![
            (text("timestamp"), Value::Integer(timestamp.into())),
            (text("signature"), Value::Bytes(signature)),
            (text("identity"), Value::Bytes(front.state.node_id().as_slice().to_vec())),
        ])]),
    ));
    cbor(StatusCode::OK, Value::Map(response))
}

pub(super) async fn read_state(State(front): Front_, Path(ecid): Path<String>, body: Bytes) -> Response {
    match canister_endpoint(&ecid) {
        Ok(endpoint) => answer_read_state(&front, endpoint, &body).await,
        Err(r) => r,
    }
}

pub(super) async fn subnet_read_state(State(front): Front_, Path(sid): Path<String>, body: Bytes) -> Response {
    match subnet_endpoint(&front, &sid) {
        Ok(endpoint) => answer_read_state(&front, endpoint, &body).await,
        Err(r) => r,
    }
}

async fn answer_read_state(front: &Front, endpoint: Endpoint, body: &[u8]) -> Response {
    let envelope = match admit(front, body, "read_state", endpoint) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Content::ReadState(r) = envelope.content else {
        return plain(StatusCode::BAD_REQUEST, "not a read_state request");
    };
    if let Err(e) = front.state.authorize(&r.paths, &r.sender, endpoint.scope()) {
        use crate::certified::ReadError;
        let status = match e {
            ReadError::Forbidden(_) => StatusCode::FORBIDDEN,
            ReadError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        return plain(status, e.to_string());
    }
    // A finished request's answer is an acknowledgment: durable first.
    let finished = r.paths.iter().any(|p| {
        p.first().is_some_and(|l| l == b"request_status")
            && p.get(1).and_then(|id| <[u8; 32]>::try_from(id.as_slice()).ok()).and_then(|id| front.state.request(&id)).is_some_and(|rec| rec.status.is_finished())
    });
    if finished && let Err(why) = front.state.replica().persisted().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, format!("the call's state could not be written: {why}"));
    }
    let certificate = front.state.certificate(&r.paths);
    cbor(StatusCode::OK, Value::Map(vec![(text("certificate"), Value::Bytes(certificate))]))
}
