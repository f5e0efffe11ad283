//! Canister signatures as senders' keys (the root of Internet Identity's
//! delegation chains): the key names a canister and a seed; a signature is
//! a certificate of that canister's certified data plus a hash tree whose
//! root is that data and which holds `sig/SHA256(seed)/SHA256(message)`.
//! Verified against this replica's own root key, since the canister runs
//! here.

use candid::Principal;
use ic_certification::hash_tree::LookupResult;
use ic_certification::{Certificate, HashTree};
use sha2::{Digest, Sha256};

/// The DER algorithm identifier of a canister signature key: SEQUENCE {
/// OID 1.3.6.1.4.1.56387.1.2 }.
const ALGORITHM: [u8; 14] = [0x30, 0x0c, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb8, 0x43, 0x01, 0x02];

/// Domain separator of a certificate's signed message.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";

/// The canister and seed of a canister signature key; `None` for another
/// kind of key.
pub fn parse_key(der: &[u8]) -> Option<(Principal, Vec<u8>)> {
    let (tag, body, rest) = der_item(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let algorithm = body.strip_prefix(&ALGORITHM[..])?;
    let (tag, bits, rest) = der_item(algorithm)?;
    if tag != 0x03 || !rest.is_empty() {
        return None;
    }
    let key = bits.strip_prefix(&[0u8][..])?;
    let (len, key) = key.split_first()?;
    let len = usize::from(*len);
    if key.len() < len {
        return None;
    }
    let canister = Principal::try_from_slice(&key[..len]).ok()?;
    Some((canister, key[len..].to_vec()))
}

/// One DER item: (tag, contents, what follows).
fn der_item(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[derive(serde::Deserialize)]
struct Signature {
    #[serde(with = "serde_bytes")]
    certificate: Vec<u8>,
    tree: HashTree,
}

/// Verifies the canister signature `sig` of `message` by the key of
/// `canister` and `seed`, against the raw 96-byte root key `root`.
pub fn verify(canister: &Principal, seed: &[u8], message: &[u8], sig: &[u8], root: &[u8]) -> Result<(), String> {
    let sig: Signature = serde_cbor::from_slice(sig).map_err(|e| format!("not a canister signature (CBOR {{certificate, tree}}): {e}"))?;
    let certificate: Certificate = serde_cbor::from_slice(&sig.certificate).map_err(|e| format!("its certificate cannot be decoded: {e}"))?;
    if certificate.delegation.is_some() {
        return Err("its certificate carries a delegation; this replica signs its certificates with its root key".into());
    }
    let mut signed = STATE_ROOT_DOMAIN.to_vec();
    signed.extend_from_slice(&certificate.tree.digest());
    ic_verify_bls_signature::verify_bls_signature(&certificate.signature, &signed, root)
        .map_err(|()| "its certificate is not signed by this replica's root key".to_string())?;
    let certified = certificate.tree.lookup_path([b"canister".as_slice(), canister.as_slice(), b"certified_data".as_slice()]);
    match certified {
        LookupResult::Found(data) if data == sig.tree.digest() => {}
        LookupResult::Found(_) => return Err(format!("its tree is not the certified data of canister {canister}")),
        _ => return Err(format!("its certificate does not hold the certified data of canister {canister}")),
    }
    let seed_hash = Sha256::digest(seed);
    let message_hash = Sha256::digest(message);
    match sig.tree.lookup_path([b"sig".as_slice(), seed_hash.as_slice(), message_hash.as_slice()]) {
        LookupResult::Found(b"") => Ok(()),
        LookupResult::Found(_) => Err("its tree's sig leaf is not empty".into()),
        _ => Err("its tree does not hold sig/<SHA-256 of the seed>/<SHA-256 of the message>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canister_signature_key_is_parsed() {
        let canister = Principal::from_text("rdmx6-jaaaa-aaaaa-aaadq-cai").unwrap();
        let seed = b"seed";
        let mut bits = vec![0u8, canister.as_slice().len() as u8];
        bits.extend_from_slice(canister.as_slice());
        bits.extend_from_slice(seed);
        let mut body = ALGORITHM.to_vec();
        body.extend_from_slice(&[0x03, bits.len() as u8]);
        body.extend_from_slice(&bits);
        let mut der = vec![0x30, body.len() as u8];
        der.extend_from_slice(&body);
        assert_eq!(parse_key(&der), Some((canister, seed.to_vec())));
        assert_eq!(parse_key(&der[..der.len() - 1]), None);
        assert_eq!(parse_key(b"\x30\x2a\x30\x05\x06\x03\x2b\x65\x70"), None);
    }
}
