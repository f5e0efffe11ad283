//! A canister's Wasm chunk store: the IC's chunked install
//! (`upload_chunk`, `stored_chunks`, `clear_chunk_store`,
//! `install_chunked_code`).
//!
//! Each canister has one store of at most [`MAX_CHUNKS`] chunks of at most
//! [`MAX_CHUNK_SIZE`] bytes, keyed by their SHA-256 (re-uploading a stored
//! chunk is a no-op, even when the store is full). It is part of the
//! canister's state: it lives in the replica's canister slot, counts towards
//! `canister_status`'s `memory_size` and goes away with the canister.
//!
//! Chunks are [`Bytes`]: uploading keeps the ingress payload's buffer when
//! the chunk is most of it (no copy), and installing takes cheap references
//! under the replica's lock and assembles the module outside it, hashing
//! while it copies. A module of one chunk is not copied at all.
//!
//! SHA-256 runs on the host through `sha2`, which detects the CPU's SHA
//! extensions (SHA-NI on x86-64) at run time; see [`sha_extensions`].

use std::collections::BTreeMap;

use bytes::Bytes;
use candid::Principal;
use sha2::{Digest, Sha256};

use super::install::MAX_WASM_MODULE;
use super::{ErrorCode, Reject, Replica};

/// The largest chunk, as on the IC (1 MiB).
pub const MAX_CHUNK_SIZE: usize = 1 << 20;

/// How many distinct chunks one canister's store holds, as on the IC.
pub const MAX_CHUNKS: usize = 100;

/// A chunk's SHA-256.
pub type ChunkHash = [u8; 32];

/// Why a chunk store operation failed (the caller's input or the store's
/// state). Rendered on one line; becomes an `IC0504` reject.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkStoreError {
    #[error("Wasm chunk size {size} exceeds the maximum chunk size of {MAX_CHUNK_SIZE}")]
    ChunkTooLarge { size: usize },
    #[error("Wasm chunk store of canister {canister} has already reached its maximum capacity of {MAX_CHUNKS} chunks")]
    Full { canister: Principal },
    #[error("a chunk hash in chunk_hashes_list has {len} bytes, not 32")]
    InvalidChunkHash { len: usize },
    #[error("wasm_module_hash has {len} bytes, not 32")]
    InvalidModuleHash { len: usize },
    #[error("chunk_hashes_list is empty; it must list the module's chunks in order")]
    EmptyHashList,
    #[error("Chunk hash {} was not found in the chunk store of canister {store}", hex::encode(.hash))]
    ChunkNotFound { hash: ChunkHash, store: Principal },
    #[error("the module assembled from the chunks would have {size} bytes, more than the limit of {MAX_WASM_MODULE}")]
    ModuleTooLarge { size: u64 },
    #[error("Wasm module hash {} does not match given hash {}", hex::encode(.actual), hex::encode(.expected))]
    ModuleHashMismatch { actual: ChunkHash, expected: ChunkHash },
}

impl From<ChunkStoreError> for Reject {
    fn from(e: ChunkStoreError) -> Self {
        Reject::system(ErrorCode::CanisterContractViolation, format!("Error from Wasm chunk store: {e}."))
    }
}

/// One canister's chunks, by hash (cloning shares the chunks' bytes).
#[derive(Clone, Default)]
pub struct ChunkStore {
    chunks: BTreeMap<ChunkHash, Bytes>,
    /// Bytes of all chunks.
    size: u64,
}

impl ChunkStore {
    /// Adds `chunk` (whose SHA-256 is `hash`) to the store of `canister`;
    /// a chunk already stored is not added again, even when the store is full.
    pub fn insert(&mut self, canister: Principal, hash: ChunkHash, chunk: Bytes) -> Result<(), ChunkStoreError> {
        check_chunk_size(chunk.len())?;
        if self.chunks.contains_key(&hash) {
            return Ok(());
        }
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(ChunkStoreError::Full { canister });
        }
        self.size += chunk.len() as u64;
        self.chunks.insert(hash, chunk);
        Ok(())
    }

    /// The chunks, by hash.
    pub fn entries(&self) -> impl Iterator<Item = (&ChunkHash, &Bytes)> {
        self.chunks.iter()
    }

    /// A store holding `chunks` (read back from a state directory).
    pub fn restored(chunks: impl IntoIterator<Item = (ChunkHash, Bytes)>) -> Self {
        let chunks: BTreeMap<ChunkHash, Bytes> = chunks.into_iter().collect();
        let size = chunks.values().map(|c| c.len() as u64).sum();
        Self { chunks, size }
    }

    /// The stored hashes, in ascending order (as the IC lists them).
    pub fn hashes(&self) -> Vec<ChunkHash> {
        self.chunks.keys().copied().collect()
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.size = 0;
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes of all stored chunks (counted in `canister_status`'s `memory_size`).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunks listed in `hashes`, in order (cheap references), for the
    /// store of canister `store`.
    pub fn select(&self, store: Principal, hashes: &[ChunkHash]) -> Result<Vec<Bytes>, ChunkStoreError> {
        hashes
            .iter()
            .map(|h| self.chunks.get(h).cloned().ok_or(ChunkStoreError::ChunkNotFound { hash: *h, store }))
            .collect()
    }
}

/// Rejects a chunk larger than [`MAX_CHUNK_SIZE`].
pub fn check_chunk_size(size: usize) -> Result<(), ChunkStoreError> {
    if size > MAX_CHUNK_SIZE {
        return Err(ChunkStoreError::ChunkTooLarge { size });
    }
    Ok(())
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> ChunkHash {
    Sha256::digest(bytes).into()
}

/// Whether this CPU has the SHA extensions `sha2` uses for SHA-256 (else it
/// falls back to a portable implementation, several times slower).
pub fn sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// A Candid `blob` as a 32-byte hash.
pub fn chunk_hash(bytes: &[u8]) -> Result<ChunkHash, ChunkStoreError> {
    bytes.try_into().map_err(|_| ChunkStoreError::InvalidChunkHash { len: bytes.len() })
}

/// A Candid `blob` as a 32-byte module hash.
pub fn module_hash(bytes: &[u8]) -> Result<ChunkHash, ChunkStoreError> {
    bytes.try_into().map_err(|_| ChunkStoreError::InvalidModuleHash { len: bytes.len() })
}

/// Concatenates `chunks` (whose hashes are `hashes`) into the module and
/// checks that its SHA-256 is `expected`. Nothing is allocated for a module
/// over [`MAX_WASM_MODULE`]; a module of one chunk is that chunk, uncopied
/// and not hashed again.
pub fn assemble(hashes: &[ChunkHash], chunks: &[Bytes], expected: &ChunkHash) -> Result<Bytes, ChunkStoreError> {
    let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    if size > MAX_WASM_MODULE as u64 {
        return Err(ChunkStoreError::ModuleTooLarge { size });
    }
    let (module, actual) = match (hashes, chunks) {
        ([], _) | (_, []) => return Err(ChunkStoreError::EmptyHashList),
        ([hash], [chunk]) => (chunk.clone(), *hash),
        _ => {
            let mut module = Vec::with_capacity(size as usize);
            let mut hasher = Sha256::new();
            for chunk in chunks {
                hasher.update(chunk);
                module.extend_from_slice(chunk);
            }
            (Bytes::from(module), hasher.finalize().into())
        }
    };
    if actual != *expected {
        return Err(ChunkStoreError::ModuleHashMismatch { actual, expected: *expected });
    }
    Ok(module)
}

/// The chunk store as the replica offers it (the management canister's
/// `upload_chunk`, `stored_chunks`, `clear_chunk_store`, and the chunks of
/// `install_chunked_code`).
impl Replica {
    /// Adds `chunk` to the chunk store of `canister` and returns its SHA-256.
    /// The caller must be a controller of the canister or the canister
    /// itself. The hash is computed outside the replica's lock.
    pub fn upload_chunk(&self, caller: Principal, canister: Principal, chunk: Bytes) -> Result<ChunkHash, Reject> {
        check_chunk_size(chunk.len())?;
        self.with_chunk_store(caller, canister, |_| Ok(()))?;
        let hash = sha256(&chunk);
        let len = chunk.len();
        self.with_chunk_store(caller, canister, |store| store.insert(canister, hash, chunk))?;
        tracing::debug!(canister = %canister, bytes = len, hash = %hex::encode(hash), "chunk stored");
        Ok(hash)
    }

    /// The hashes in the chunk store of `canister`, ascending (controllers
    /// and the canister itself).
    pub fn stored_chunks(&self, caller: Principal, canister: Principal) -> Result<Vec<ChunkHash>, Reject> {
        self.with_chunk_store(caller, canister, |store| Ok(store.hashes()))
    }

    /// Empties the chunk store of `canister` (controllers and the canister
    /// itself). The chunks (up to 100 MiB) are freed outside the lock.
    pub fn clear_chunk_store(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        let old = self.with_chunk_store(caller, canister, |store| Ok(std::mem::take(store)))?;
        drop(old);
        Ok(())
    }

    /// The chunks `hashes` (in order) from the store of canister `store`,
    /// which `caller` controls or is (for `install_chunked_code`).
    pub fn chunks_for_install(&self, caller: Principal, store: Principal, hashes: &[ChunkHash]) -> Result<Vec<Bytes>, Reject> {
        self.with_chunk_store(caller, store, |s| s.select(store, hashes))
    }

    /// Runs `f` on the chunk store of `canister` under the lock, if
    /// `caller` is a controller of the canister or the canister itself.
    fn with_chunk_store<T>(
        &self,
        caller: Principal,
        canister: Principal,
        f: impl FnOnce(&mut ChunkStore) -> Result<T, ChunkStoreError>,
    ) -> Result<T, Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if caller != canister && !slot.controllers.contains(&caller) {
            return Err(Reject::system(
                ErrorCode::CanisterInvalidController,
                format!("Only the controllers of the canister {canister} and the canister itself can use its chunk store. {caller} is neither."),
            ));
        }
        Ok(f(&mut slot.chunk_store)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Principal {
        super::super::canister_id(super::super::FIRST_CANISTER_INDEX)
    }

    #[test]
    fn dedups_by_hash_even_when_full() {
        let mut store = ChunkStore::default();
        for i in 0..MAX_CHUNKS as u32 {
            let chunk = Bytes::from(i.to_le_bytes().to_vec());
            store.insert(id(), sha256(&chunk), chunk).unwrap();
        }
        assert_eq!(store.len(), MAX_CHUNKS);
        assert_eq!(store.size(), 4 * MAX_CHUNKS as u64);
        let again = Bytes::from(0u32.to_le_bytes().to_vec());
        store.insert(id(), sha256(&again), again).unwrap();
        let new = Bytes::from_static(b"new");
        let err = store.insert(id(), sha256(&new), new).unwrap_err();
        assert_eq!(err, ChunkStoreError::Full { canister: id() });
        assert!(err.to_string().contains("100 chunks"), "{err}");
        store.clear();
        assert!(store.is_empty() && store.size() == 0);
    }

    #[test]
    fn rejects_large_chunks() {
        let mut store = ChunkStore::default();
        let big = Bytes::from(vec![0u8; MAX_CHUNK_SIZE + 1]);
        let err = store.insert(id(), sha256(&big), big).unwrap_err();
        assert!(err.to_string().contains("1048577") && err.to_string().contains("1048576"), "{err}");
    }

    #[test]
    fn assembles_and_checks_the_hash() {
        let a = Bytes::from_static(b"hello ");
        let b = Bytes::from_static(b"world");
        let hashes = [sha256(&a), sha256(&b)];
        let whole = sha256(b"hello world");
        let module = assemble(&hashes, &[a.clone(), b.clone()], &whole).unwrap();
        assert_eq!(&module[..], b"hello world");
        let err = assemble(&hashes, &[a.clone(), b], &hashes[0]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&hex::encode(whole)) && text.contains(&hex::encode(hashes[0])), "{text}");
        // One chunk: the chunk itself, checked against its own hash.
        let one = assemble(&hashes[..1], std::slice::from_ref(&a), &hashes[0]).unwrap();
        assert_eq!(one.as_ptr(), a.as_ptr());
        assert_eq!(assemble(&[], &[], &whole).unwrap_err(), ChunkStoreError::EmptyHashList);
    }

    #[test]
    fn bounds_the_assembled_module() {
        let chunk = Bytes::from(vec![0u8; MAX_CHUNK_SIZE]);
        let n = MAX_WASM_MODULE / MAX_CHUNK_SIZE + 1;
        let hashes = vec![sha256(&chunk); n];
        let chunks = vec![chunk; n];
        let err = assemble(&hashes, &chunks, &[0; 32]).unwrap_err();
        assert!(matches!(err, ChunkStoreError::ModuleTooLarge { .. }), "{err}");
    }

    #[test]
    fn hashes_must_have_32_bytes() {
        assert!(chunk_hash(&[0; 31]).is_err());
        assert!(module_hash(&[0; 33]).unwrap_err().to_string().contains("33 bytes"));
        assert_eq!(chunk_hash(&[7; 32]).unwrap(), [7; 32]);
    }
}
