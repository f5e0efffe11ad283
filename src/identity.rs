//! The node's identity: an Ed25519 key kept in the state directory. Its
//! self-authenticating principal is the admin that controls what pid0 and
//! the CLI create; the same key is the node's libp2p identity, so a node
//! keeps its peer id across restarts (peers list it in `boot/`).

use std::io::Write;
use std::path::{Path, PathBuf};

use candid::Principal;
use libp2p::identity::ed25519;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_DER_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// File name of the key in the state directory.
pub const KEY_FILE: &str = "identity.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an Ed25519 secret key (expected 64 hex digits)")]
    Malformed { path: PathBuf },
}

/// The principal of an Ed25519 public key, as the IC derives it.
pub fn principal_of(public: &ed25519::PublicKey) -> Principal {
    let mut der = ED25519_DER_PREFIX.to_vec();
    der.extend_from_slice(&public.to_bytes());
    Principal::self_authenticating(&der)
}

/// A node's key and the admin principal derived from it.
#[derive(Clone)]
pub struct NodeIdentity {
    pub keypair: ed25519::Keypair,
    pub admin: Principal,
}

impl NodeIdentity {
    fn new(keypair: ed25519::Keypair) -> Self {
        let admin = principal_of(&keypair.public());
        Self { keypair, admin }
    }

    /// The libp2p peer id of the key.
    pub fn peer_id(&self) -> libp2p::PeerId {
        libp2p::identity::PublicKey::from(self.keypair.public()).to_peer_id()
    }

    /// A secret seed for `purpose`, derived from the key (so it lives as
    /// long as the state directory's identity): the certified state's keys.
    pub fn derived_seed(&self, purpose: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let secret = self.keypair.secret();
        sha2::Sha256::new().chain_update(purpose).chain_update(secret.as_ref()).finalize().into()
    }

    /// The key as libp2p takes it.
    pub fn libp2p_keypair(&self) -> libp2p::identity::Keypair {
        libp2p::identity::Keypair::from(self.keypair.clone())
    }
}

/// The principal of the node whose peer id is `peer` (its key is in the id:
/// Ed25519 peer ids inline the public key); `None` for other key types.
pub fn principal_of_peer(peer: &libp2p::PeerId) -> Option<Principal> {
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if hash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    Some(principal_of(&key.try_into_ed25519().ok()?))
}

/// Loads the key from `dir`, creating it (mode 0600) if missing.
pub fn load_or_create(dir: &Path) -> Result<NodeIdentity, IdentityError> {
    let path = dir.join(KEY_FILE);
    let io = |source| IdentityError::Io { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut bytes = hex::decode(text.trim()).map_err(|_| IdentityError::Malformed { path: path.clone() })?;
            let secret = ed25519::SecretKey::try_from_bytes(&mut bytes).map_err(|_| IdentityError::Malformed { path: path.clone() })?;
            Ok(NodeIdentity::new(ed25519::Keypair::from(secret)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let keypair = ed25519::Keypair::generate();
            let mut file = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?
            };
            writeln!(file, "{}", hex::encode(keypair.secret().as_ref())).map_err(io)?;
            Ok(NodeIdentity::new(keypair))
        }
        Err(e) => Err(io(e)),
    }
}

/// A fresh identity that is not kept anywhere.
pub fn ephemeral() -> NodeIdentity {
    NodeIdentity::new(ed25519::Keypair::generate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap().admin;
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a, b.admin);
        assert_eq!(b.peer_id(), load_or_create(dir.path()).unwrap().peer_id(), "the peer id is kept too");
        assert_eq!(principal_of_peer(&b.peer_id()), Some(b.admin), "a peer's principal comes from its id");
        assert_eq!(a.as_slice().len(), 29, "self-authenticating principals are 29 bytes");
        assert_eq!(a.as_slice()[28], 0x02);
        std::fs::write(dir.path().join(KEY_FILE), "zz").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(IdentityError::Malformed { .. })));
    }
}
