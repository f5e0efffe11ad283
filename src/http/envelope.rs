//! Requests of the IC's HTTP interface as they arrive: the CBOR envelope
//! (`content`, `sender_pubkey`, `sender_sig`, `sender_delegation`), its
//! content by request type, and the request id, hashed from the content map
//! as received.

use candid::Principal;
use ciborium::Value;

use crate::certified::hash::{hash_of_map, hash_value};

/// The most bytes a `nonce` may have.
const MAX_NONCE: usize = 32;
/// The most paths a read_state request may ask for, and labels per path.
const MAX_PATHS: usize = 1000;
const MAX_PATH_LABELS: usize = 127;
/// The most delegations in a chain, and targets per delegation.
pub const MAX_DELEGATIONS: usize = 20;
const MAX_TARGETS: usize = 1000;

/// A malformed request (HTTP 400), with what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn bad(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// A decoded envelope.
#[derive(Debug)]
pub struct Envelope {
    pub content: Content,
    /// `hash_of_map(content)`: the request id.
    pub request_id: [u8; 32],
    pub sender_pubkey: Option<Vec<u8>>,
    pub sender_sig: Option<Vec<u8>>,
    pub delegations: Vec<SignedDelegation>,
    /// The whole request body's size (what the IC charges ingress by).
    pub size: usize,
}

/// One link of a delegation chain.
#[derive(Debug)]
pub struct SignedDelegation {
    pub pubkey: Vec<u8>,
    pub expiration: u64,
    pub targets: Option<Vec<Principal>>,
    /// `"queries"` or `"all"` when given.
    pub permissions: Option<String>,
    /// `hash_of_map(delegation)` as received: what `signature` signs.
    pub hash: [u8; 32],
    pub signature: Vec<u8>,
}

/// What a request asks.
#[derive(Debug)]
pub enum Content {
    Call(CallContent),
    Query(CallContent),
    ReadState(ReadStateContent),
}

impl Content {
    pub fn sender(&self) -> Principal {
        match self {
            Content::Call(c) | Content::Query(c) => c.sender,
            Content::ReadState(r) => r.sender,
        }
    }

    pub fn ingress_expiry(&self) -> u64 {
        match self {
            Content::Call(c) | Content::Query(c) => c.ingress_expiry,
            Content::ReadState(r) => r.ingress_expiry,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Content::Call(_) => "call",
            Content::Query(_) => "query",
            Content::ReadState(_) => "read_state",
        }
    }
}

/// A call's or query's content.
#[derive(Debug)]
pub struct CallContent {
    pub canister_id: Principal,
    pub method_name: String,
    pub arg: Vec<u8>,
    pub sender: Principal,
    pub ingress_expiry: u64,
    /// `sender_info`: data about the sender and the canister that signed it.
    pub sender_info: Option<SenderInfo>,
}

#[derive(Debug)]
pub struct SenderInfo {
    pub info: Vec<u8>,
    pub signer: Principal,
}

#[derive(Debug)]
pub struct ReadStateContent {
    pub sender: Principal,
    pub ingress_expiry: u64,
    pub paths: Vec<Vec<Vec<u8>>>,
}

/// Decodes a request body.
pub fn decode(body: &[u8]) -> Result<Envelope, Malformed> {
    let value: Value = ciborium::from_reader(body).map_err(|e| bad(format!("Could not parse body as read request: the body is not CBOR: {e}")))?;
    let entries = as_map(untag(value), "the envelope")?;
    let mut content = None;
    let (mut sender_pubkey, mut sender_sig, mut delegations) = (None, None, Vec::new());
    for (key, value) in entries {
        match key.as_str() {
            "content" => content = Some(value),
            "sender_pubkey" => sender_pubkey = Some(as_bytes(value, "sender_pubkey")?),
            "sender_sig" => sender_sig = Some(as_bytes(value, "sender_sig")?),
            "sender_delegation" => delegations = decode_delegations(value)?,
            _ => {}
        }
    }
    let content = content.ok_or_else(|| bad("the envelope has no content"))?;
    let request_id = hash_value(&content).map_err(|e| bad(format!("the content cannot be hashed: {e}")))?;
    let content = decode_content(content)?;
    Ok(Envelope { content, request_id, sender_pubkey, sender_sig, delegations, size: body.len() })
}

fn decode_content(content: Value) -> Result<Content, Malformed> {
    let fields = as_map(content, "the content")?;
    let mut request_type = None;
    let (mut canister_id, mut method_name, mut arg, mut sender, mut expiry, mut paths, mut sender_info) = (None, None, None, None, None, None, None);
    for (key, value) in fields {
        match key.as_str() {
            "request_type" => request_type = Some(as_text(value, "request_type")?),
            "canister_id" => canister_id = Some(as_principal(value, "canister_id")?),
            "method_name" => method_name = Some(as_text(value, "method_name")?),
            "arg" => arg = Some(as_bytes(value, "arg")?),
            "sender" => sender = Some(as_principal(value, "sender")?),
            "ingress_expiry" => expiry = Some(as_nat(value, "ingress_expiry")?),
            "nonce" => {
                let nonce = as_bytes(value, "nonce")?;
                if nonce.len() > MAX_NONCE {
                    return Err(bad(format!("the nonce is {} bytes; at most {MAX_NONCE} are allowed", nonce.len())));
                }
            }
            "paths" => paths = Some(decode_paths(value)?),
            "sender_info" => sender_info = Some(decode_sender_info(value)?),
            _ => {}
        }
    }
    let sender = sender.ok_or_else(|| bad("the content has no sender"))?;
    let ingress_expiry = expiry.ok_or_else(|| bad("the content has no ingress_expiry"))?;
    let request_type = request_type.ok_or_else(|| bad("the content has no request_type"))?;
    let call = |canister_id: Option<Principal>, method_name: Option<String>, arg: Option<Vec<u8>>, sender_info| -> Result<CallContent, Malformed> {
        Ok(CallContent {
            canister_id: canister_id.ok_or_else(|| bad("the content has no canister_id"))?,
            method_name: method_name.ok_or_else(|| bad("the content has no method_name"))?,
            arg: arg.ok_or_else(|| bad("the content has no arg"))?,
            sender,
            ingress_expiry,
            sender_info,
        })
    };
    match request_type.as_str() {
        "call" => Ok(Content::Call(call(canister_id, method_name, arg, sender_info)?)),
        "query" => Ok(Content::Query(call(canister_id, method_name, arg, sender_info)?)),
        "read_state" => Ok(Content::ReadState(ReadStateContent { sender, ingress_expiry, paths: paths.ok_or_else(|| bad("the content has no paths"))? })),
        other => Err(bad(format!("unknown request_type {other:?} (call, query or read_state)"))),
    }
}

fn decode_paths(value: Value) -> Result<Vec<Vec<Vec<u8>>>, Malformed> {
    let Value::Array(paths) = untag(value) else {
        return Err(bad("paths is not an array"));
    };
    if paths.len() > MAX_PATHS {
        return Err(bad(format!("{} paths were requested; at most {MAX_PATHS} are allowed", paths.len())));
    }
    paths
        .into_iter()
        .map(|path| {
            let Value::Array(labels) = untag(path) else {
                return Err(bad("a path is not an array of blobs"));
            };
            if labels.len() > MAX_PATH_LABELS {
                return Err(bad(format!("a path has {} labels; at most {MAX_PATH_LABELS} are allowed", labels.len())));
            }
            labels.into_iter().map(|l| as_bytes(l, "a path label")).collect()
        })
        .collect()
}

fn decode_sender_info(value: Value) -> Result<SenderInfo, Malformed> {
    let (mut info, mut signer) = (None, None);
    for (key, value) in as_map(value, "sender_info")? {
        match key.as_str() {
            "info" => info = Some(as_bytes(value, "sender_info.info")?),
            "signer" => signer = Some(as_principal(value, "sender_info.signer")?),
            _ => {}
        }
    }
    Ok(SenderInfo { info: info.ok_or_else(|| bad("sender_info has no info"))?, signer: signer.ok_or_else(|| bad("sender_info has no signer"))? })
}

fn decode_delegations(value: Value) -> Result<Vec<SignedDelegation>, Malformed> {
    let Value::Array(items) = untag(value) else {
        return Err(bad("sender_delegation is not an array"));
    };
    if items.len() > MAX_DELEGATIONS {
        return Err(bad(format!("the delegation chain has {} delegations; at most {MAX_DELEGATIONS} are allowed", items.len())));
    }
    items
        .into_iter()
        .map(|item| {
            let (mut delegation, mut signature) = (None, None);
            for (key, value) in as_map(item, "a signed delegation")? {
                match key.as_str() {
                    "delegation" => delegation = Some(value),
                    "signature" => signature = Some(as_bytes(value, "a delegation's signature")?),
                    _ => {}
                }
            }
            let delegation = delegation.ok_or_else(|| bad("a signed delegation has no delegation"))?;
            let signature = signature.ok_or_else(|| bad("a signed delegation has no signature"))?;
            let hash = hash_value(&delegation).map_err(|e| bad(format!("a delegation cannot be hashed: {e}")))?;
            let (mut pubkey, mut expiration, mut targets, mut permissions) = (None, None, None, None);
            for (key, value) in as_map(delegation, "a delegation")? {
                match key.as_str() {
                    "pubkey" => pubkey = Some(as_bytes(value, "a delegation's pubkey")?),
                    "expiration" => expiration = Some(as_nat(value, "a delegation's expiration")?),
                    "targets" => {
                        let Value::Array(list) = untag(value) else {
                            return Err(bad("a delegation's targets is not an array"));
                        };
                        if list.len() > MAX_TARGETS {
                            return Err(bad(format!("a delegation has {} targets; at most {MAX_TARGETS} are allowed", list.len())));
                        }
                        targets = Some(list.into_iter().map(|t| as_principal(t, "a delegation target")).collect::<Result<_, _>>()?);
                    }
                    "permissions" => permissions = Some(as_text(value, "a delegation's permissions")?),
                    _ => {}
                }
            }
            Ok(SignedDelegation {
                pubkey: pubkey.ok_or_else(|| bad("a delegation has no pubkey"))?,
                expiration: expiration.ok_or_else(|| bad("a delegation has no expiration"))?,
                targets,
                permissions,
                hash,
                signature,
            })
        })
        .collect()
}

/// A query response's signable hash (`hash_of_map` of the response with the
/// request id and timestamp, as the interface spec defines it).
pub fn response_hash(fields: &[(&str, Value)]) -> [u8; 32] {
    // Only blobs, text, nats and maps of them: hashing cannot fail.
    hash_of_map(fields.iter().map(|(k, v)| (*k, v))).unwrap_or_default()
}

fn untag(value: Value) -> Value {
    match value {
        Value::Tag(_, inner) => untag(*inner),
        other => other,
    }
}

fn as_map(value: Value, what: &str) -> Result<Vec<(String, Value)>, Malformed> {
    let Value::Map(entries) = untag(value) else {
        return Err(bad(format!("{what} is not a CBOR map")));
    };
    let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(bad(format!("{what} has a key that is not text")));
        };
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad(format!("{what} has the key {key:?} twice")));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn as_bytes(value: Value, what: &str) -> Result<Vec<u8>, Malformed> {
    match untag(value) {
        Value::Bytes(b) => Ok(b),
        _ => Err(bad(format!("{what} is not a blob"))),
    }
}

fn as_text(value: Value, what: &str) -> Result<String, Malformed> {
    match untag(value) {
        Value::Text(t) => Ok(t),
        _ => Err(bad(format!("{what} is not text"))),
    }
}

fn as_nat(value: Value, what: &str) -> Result<u64, Malformed> {
    match untag(value) {
        Value::Integer(i) => u64::try_from(i128::from(i)).map_err(|_| bad(format!("{what} is not a 64-bit natural number"))),
        _ => Err(bad(format!("{what} is not a natural number"))),
    }
}

fn as_principal(value: Value, what: &str) -> Result<Principal, Malformed> {
    let bytes = as_bytes(value, what)?;
    Principal::try_from_slice(&bytes).map_err(|e| bad(format!("{what} is not a principal: {e}")))
}
