//! The IC's representation-independent hash (`hash_of_map`) over CBOR
//! values as they arrived: request ids, signed delegations and the signable
//! form of query responses. Hashing the received map (not a typed struct
//! re-encoded) keeps fields ww does not know yet in the id, as the spec
//! promises.

use ciborium::Value;
use sha2::{Digest, Sha256};

/// A value the hash is not defined for (floats, booleans, null, a map key
/// that is not text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} cannot be hashed (the IC's representation-independent hash takes nats, ints, blobs, text, arrays and maps with text keys)")]
pub struct Unhashable(pub &'static str);

/// `hash_of_map` of the map `entries`.
pub fn hash_of_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Result<[u8; 32], Unhashable> {
    let mut pairs = Vec::new();
    for (key, value) in entries {
        let mut pair = Vec::with_capacity(64);
        pair.extend_from_slice(&Sha256::digest(key.as_bytes()));
        pair.extend_from_slice(&hash_value(value)?);
        pairs.push(pair);
    }
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for pair in &pairs {
        hasher.update(pair);
    }
    Ok(hasher.finalize().into())
}

/// The hash of one value.
pub fn hash_value(value: &Value) -> Result<[u8; 32], Unhashable> {
    Ok(match value {
        Value::Bytes(bytes) => Sha256::digest(bytes).into(),
        Value::Text(text) => Sha256::digest(text.as_bytes()).into(),
        Value::Integer(int) => {
            let n = i128::from(*int);
            let bytes = if n >= 0 { uleb128(n as u128) } else { sleb128(n) };
            Sha256::digest(&bytes).into()
        }
        Value::Array(items) => {
            let mut hasher = Sha256::new();
            for item in items {
                hasher.update(hash_value(item)?);
            }
            hasher.finalize().into()
        }
        Value::Map(entries) => {
            let mut keyed = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let Value::Text(k) = k else {
                    return Err(Unhashable("a map key that is not text"));
                };
                keyed.push((k.as_str(), v));
            }
            hash_of_map(keyed)?
        }
        Value::Tag(_, inner) => hash_value(inner)?,
        Value::Float(_) => return Err(Unhashable("a float")),
        Value::Bool(_) => return Err(Unhashable("a boolean")),
        Value::Null => return Err(Unhashable("null")),
        _ => return Err(Unhashable("this CBOR value")),
    })
}

/// Unsigned LEB128.
pub fn uleb128(mut n: u128) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Signed LEB128.
fn sleb128(mut n: i128) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// The interface spec's worked example of a request id.
    #[test]
    fn the_spec_example_request_id() {
        let content = vec![
            (text("request_type"), text("call")),
            (text("sender"), Value::Bytes(vec![0x04])),
            (text("ingress_expiry"), Value::Integer(1_685_570_400_000_000_000u64.into())),
            (text("canister_id"), Value::Bytes(hex::decode("00000000000004D2").unwrap())),
            (text("method_name"), text("hello")),
            (text("arg"), Value::Bytes(b"DIDL\x00\xFD*".to_vec())),
        ];
        let id = hash_value(&Value::Map(content)).unwrap();
        assert_eq!(hex::encode(id), "1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101");
    }

    #[test]
    fn leb128_encodings() {
        assert_eq!(uleb128(0), [0]);
        assert_eq!(uleb128(624_485), [0xe5, 0x8e, 0x26]);
        assert_eq!(sleb128(-123_456), [0xc0, 0xbb, 0x78]);
        assert_eq!(sleb128(-1), [0x7f]);
        assert_eq!(sleb128(63), [0x3f]);
        assert_eq!(sleb128(64), [0xc0, 0x00]);
    }

    #[test]
    fn floats_are_refused() {
        assert!(hash_value(&Value::Float(1.0)).is_err());
    }
}
