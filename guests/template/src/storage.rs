//! Template storage: the three stable maps every template holder keeps.
//!
//! - manifests: release key (`template_id@version`) → [`ManifestRecord`];
//! - chunk sets: release key → [`ChunkSetRecord`] (payload hash and size, the
//!   hash of each chunk);
//! - chunks: chunk key (`template_id@version#index`) → a slot of raw stable
//!   memory holding its bytes ([`ChunkSlot`]).
//!
//! Root keeps its bootstrap staging buffer here; the wasm_store keeps its
//! published releases here. The rules are the same for both: a chunk needs a
//! prepared chunk set, an index below its chunk count and the prepared hash;
//! a release is complete when every chunk is present and the concatenation
//! has the declared size and SHA-256. Chunk hashes are computed by the caller
//! on the host (the management canister's `upload_chunk` returns them), never
//! trusted from the sender.

use crate::memory::{self, Memory};
use crate::types::{
    ChunkingMode, Error, ErrorCode, ManifestState, TemplateChunkSetPrepareInput, TemplateManifestInput,
    TemplateVersionCount,
};
use candid::{CandidType, Decode, Encode};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use ww_cdk::ic_stable_structures::storable::Bound;
use ww_cdk::ic_stable_structures::{StableBTreeMap, StableCell, Storable};

/// Longest template id.
pub const TEMPLATE_ID_MAX_BYTES: usize = 160;
/// Longest version string.
pub const VERSION_MAX_BYTES: usize = 64;
/// Most chunks one release may have (the chunk store's capacity).
pub const MAX_CHUNKS_PER_RELEASE: usize = 100;

/// A release: a template at a version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseKey {
    pub template_id: String,
    pub version: String,
}

impl ReleaseKey {
    pub fn new(template_id: impl Into<String>, version: impl Into<String>) -> Self {
        Self { template_id: template_id.into(), version: version.into() }
    }
}

impl std::fmt::Display for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.template_id, self.version)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn take_str(bytes: &[u8], at: &mut usize) -> String {
    let len = u16::from_le_bytes([bytes[*at], bytes[*at + 1]]) as usize;
    let s = String::from_utf8_lossy(&bytes[*at + 2..*at + 2 + len]).into_owned();
    *at += 2 + len;
    s
}

impl Storable for ReleaseKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let mut out = Vec::with_capacity(4 + self.template_id.len() + self.version.len());
        put_str(&mut out, &self.template_id);
        put_str(&mut out, &self.version);
        Cow::Owned(out)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let mut at = 0;
        let template_id = take_str(&bytes, &mut at);
        let version = take_str(&bytes, &mut at);
        Self { template_id, version }
    }
    const BOUND: Bound = Bound::Bounded { max_size: (4 + TEMPLATE_ID_MAX_BYTES + VERSION_MAX_BYTES) as u32, is_fixed_size: false };
}

/// One chunk of a release.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkKey {
    pub release: ReleaseKey,
    pub index: u32,
}

impl std::fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.release, self.index)
    }
}

impl Storable for ChunkKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let mut out = self.release.to_bytes().into_owned();
        out.extend_from_slice(&self.index.to_le_bytes());
        Cow::Owned(out)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let split = bytes.len() - 4;
        let release = ReleaseKey::from_bytes(Cow::Borrowed(&bytes[..split]));
        let index = u32::from_le_bytes([bytes[split], bytes[split + 1], bytes[split + 2], bytes[split + 3]]);
        Self { release, index }
    }
    const BOUND: Bound = Bound::Bounded { max_size: (8 + TEMPLATE_ID_MAX_BYTES + VERSION_MAX_BYTES) as u32, is_fixed_size: false };
}

/// A stored manifest (the input minus its key).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ManifestRecord {
    pub role: String,
    pub payload_hash: ByteBuf,
    pub payload_size_bytes: u64,
    pub store_binding: String,
    pub chunking_mode: ChunkingMode,
    pub manifest_state: ManifestState,
    pub approved_at: Option<u64>,
    pub created_at: u64,
}

impl ManifestRecord {
    /// The manifest as its Candid input/response shape.
    pub fn to_input(&self, key: &ReleaseKey) -> TemplateManifestInput {
        TemplateManifestInput {
            template_id: key.template_id.clone(),
            role: self.role.clone(),
            version: key.version.clone(),
            payload_hash: self.payload_hash.clone(),
            payload_size_bytes: self.payload_size_bytes,
            store_binding: self.store_binding.clone(),
            chunking_mode: self.chunking_mode,
            manifest_state: self.manifest_state,
            approved_at: self.approved_at,
            created_at: self.created_at,
        }
    }
}

/// A stored chunk set.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChunkSetRecord {
    pub payload_hash: ByteBuf,
    pub payload_size_bytes: u64,
    pub chunk_hashes: Vec<ByteBuf>,
    pub created_at: u64,
}

impl ChunkSetRecord {
    pub fn chunk_count(&self) -> u32 {
        self.chunk_hashes.len() as u32
    }
}

macro_rules! candid_storable {
    ($t:ty) => {
        impl Storable for $t {
            fn to_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(Encode!(self).expect("encoding a stored record"))
            }
            fn into_bytes(self) -> Vec<u8> {
                Encode!(&self).expect("encoding a stored record")
            }
            fn from_bytes(bytes: Cow<[u8]>) -> Self {
                Decode!(&bytes, $t).expect("decoding a stored record")
            }
            const BOUND: Bound = Bound::Unbounded;
        }
    };
}

candid_storable!(ManifestRecord);
candid_storable!(ChunkSetRecord);

/// Where a chunk's bytes live: slot `slot` of the chunk slab memory (each
/// slot is [`crate::CHUNK_BYTES`] long, at offset `slot * CHUNK_BYTES`), the
/// first `len` bytes of it.
///
/// Chunks are not values of a `StableBTreeMap`: the map splits an unbounded
/// value into 1 KiB overflow pages, so a 1 MiB chunk took about a thousand
/// stable-memory reads or writes. In a slot it is one write and one read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSlot {
    pub slot: u32,
    pub len: u32,
}

impl Storable for ChunkSlot {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let mut out = Vec::with_capacity(8);
        out.extend_from_slice(&self.slot.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        Cow::Owned(out)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Self { slot: word(0), len: word(4) }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 8, is_fixed_size: true };
}

/// A `StableBTreeMap` of small records with a write-through mirror on the
/// heap: reads never decode from stable memory (Candid decoding every
/// manifest on each `occupancy` or role lookup made publication quadratic).
/// The mirror is loaded on first use after a start or an upgrade; every write
/// goes to both, and a trap rolls both back together (heap and stable memory
/// commit atomically per execution), so they cannot diverge.
struct MirroredMap<K: Storable + Ord + Clone, V: Storable + Clone> {
    stable: StableBTreeMap<K, V, Memory>,
    /// Each value with the bytes its key and value take in stable memory.
    heap: Option<BTreeMap<K, (V, u64)>>,
}

fn stored_size<K: Storable, V: Storable>(k: &K, v: &V) -> u64 {
    (k.to_bytes().len() + v.to_bytes().len()) as u64
}

impl<K: Storable + Ord + Clone, V: Storable + Clone> MirroredMap<K, V> {
    fn init(memory: Memory) -> Self {
        Self { stable: StableBTreeMap::init(memory), heap: None }
    }

    fn heap(&mut self) -> &mut BTreeMap<K, (V, u64)> {
        let stable = &self.stable;
        self.heap.get_or_insert_with(|| {
            stable
                .iter()
                .map(|e| {
                    let (k, v) = e.into_pair();
                    let n = stored_size(&k, &v);
                    (k, (v, n))
                })
                .collect()
        })
    }

    fn get(&mut self, k: &K) -> Option<V> {
        self.heap().get(k).map(|(v, _)| v.clone())
    }

    fn insert(&mut self, k: K, v: V) {
        let n = stored_size(&k, &v);
        self.stable.insert(k.clone(), v.clone());
        self.heap().insert(k, (v, n));
    }

    fn remove(&mut self, k: &K) {
        self.stable.remove(k);
        self.heap().remove(k);
    }

    fn pairs(&mut self) -> Vec<(K, V)> {
        self.heap().iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()
    }

    fn clear(&mut self) {
        self.stable.clear_new();
        self.heap = Some(BTreeMap::new());
    }
}

thread_local! {
    static MANIFESTS: RefCell<MirroredMap<ReleaseKey, ManifestRecord>> =
        RefCell::new(MirroredMap::init(memory::get(memory::TEMPLATE_MANIFESTS)));
    static CHUNK_SETS: RefCell<MirroredMap<ReleaseKey, ChunkSetRecord>> =
        RefCell::new(MirroredMap::init(memory::get(memory::TEMPLATE_CHUNK_SETS)));
    /// Chunk key → its slot in [`CHUNK_SLABS`].
    static CHUNKS: RefCell<StableBTreeMap<ChunkKey, ChunkSlot, Memory>> =
        RefCell::new(StableBTreeMap::init(memory::get(memory::TEMPLATE_CHUNKS)));
    /// The chunk bytes, one [`crate::CHUNK_BYTES`] slot per chunk.
    static CHUNK_SLABS: Memory = memory::get(memory::TEMPLATE_CHUNK_SLABS);
    /// Bytes of chunk keys and values held (kept so status needs no scan).
    static CHUNK_BYTES_HELD: RefCell<StableCell<u64, Memory>> =
        RefCell::new(StableCell::init(memory::get(memory::TEMPLATE_STATS), 0));
}

fn err(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message)
}

fn check_ids(template_id: &str, version: &str) -> Result<(), Error> {
    if template_id.is_empty() || template_id.len() > TEMPLATE_ID_MAX_BYTES {
        return Err(err(ErrorCode::InvalidInput, format!("template id '{template_id}' must be 1 to {TEMPLATE_ID_MAX_BYTES} bytes")));
    }
    if version.is_empty() || version.len() > VERSION_MAX_BYTES {
        return Err(err(ErrorCode::InvalidInput, format!("version '{version}' of {template_id} must be 1 to {VERSION_MAX_BYTES} bytes")));
    }
    Ok(())
}

fn check_hash(what: &str, hash: &[u8]) -> Result<(), Error> {
    if hash.len() != 32 {
        return Err(err(ErrorCode::InvalidInput, format!("{what} must be a 32-byte SHA-256, got {} bytes", hash.len())));
    }
    Ok(())
}

/// Stores a manifest. If it is `Approved`, every other approved manifest of the
/// same role becomes `Deprecated` (one approved manifest per role).
pub fn stage_manifest(input: TemplateManifestInput) -> Result<(), Error> {
    check_ids(&input.template_id, &input.version)?;
    check_hash("payload_hash", &input.payload_hash)?;
    if input.role.is_empty() {
        return Err(err(ErrorCode::InvalidInput, format!("manifest {}@{} has an empty role", input.template_id, input.version)));
    }
    let key = ReleaseKey::new(&input.template_id, &input.version);
    let record = ManifestRecord {
        role: input.role,
        payload_hash: input.payload_hash,
        payload_size_bytes: input.payload_size_bytes,
        store_binding: input.store_binding,
        chunking_mode: input.chunking_mode,
        manifest_state: input.manifest_state,
        approved_at: input.approved_at,
        created_at: input.created_at,
    };
    MANIFESTS.with(|m| {
        let mut m = m.borrow_mut();
        if record.manifest_state == ManifestState::Approved {
            let others: Vec<(ReleaseKey, ManifestRecord)> = m
                .pairs()
                .into_iter()
                .filter(|(k, r)| *k != key && r.role == record.role && r.manifest_state == ManifestState::Approved)
                .collect();
            for (k, mut r) in others {
                r.manifest_state = ManifestState::Deprecated;
                m.insert(k, r);
            }
        }
        m.insert(key, record);
    });
    Ok(())
}

/// Replaces a stored manifest as is (no deprecation of others).
pub fn put_manifest(key: ReleaseKey, record: ManifestRecord) {
    MANIFESTS.with(|m| m.borrow_mut().insert(key, record));
}

pub fn manifest(key: &ReleaseKey) -> Option<ManifestRecord> {
    MANIFESTS.with(|m| m.borrow_mut().get(key))
}

/// Every manifest, in key order.
pub fn manifests() -> Vec<(ReleaseKey, ManifestRecord)> {
    MANIFESTS.with(|m| m.borrow_mut().pairs())
}

/// The one approved manifest of `role`.
pub fn approved_for_role(role: &str) -> Result<(ReleaseKey, ManifestRecord), Error> {
    let mut approved: Vec<_> =
        manifests().into_iter().filter(|(_, r)| r.role == role && r.manifest_state == ManifestState::Approved).collect();
    match approved.len() {
        0 => Err(err(ErrorCode::ApprovedManifestMissing, format!("no approved manifest for role '{role}'"))),
        1 => Ok(approved.remove(0)),
        n => Err(err(ErrorCode::ApprovedManifestConflict, format!("{n} approved manifests for role '{role}'"))),
    }
}

/// Declares a release's chunks. Re-preparing with different hashes drops the
/// chunks already stored for the release.
pub fn prepare(input: &TemplateChunkSetPrepareInput, now: u64) -> Result<ChunkSetRecord, Error> {
    check_ids(&input.template_id, &input.version)?;
    let key = ReleaseKey::new(&input.template_id, &input.version);
    if input.chunk_hashes.is_empty() {
        return Err(err(ErrorCode::TemplateChunkSetEmpty, format!("prepare for {key} lists no chunk hashes")));
    }
    if input.chunk_hashes.len() > MAX_CHUNKS_PER_RELEASE {
        return Err(err(
            ErrorCode::InvalidInput,
            format!("prepare for {key} lists {} chunks, at most {MAX_CHUNKS_PER_RELEASE}", input.chunk_hashes.len()),
        ));
    }
    check_hash("payload_hash", &input.payload_hash)?;
    for (i, h) in input.chunk_hashes.iter().enumerate() {
        check_hash(&format!("chunk hash {i} of {key}"), h)?;
    }
    let max_payload = (input.chunk_hashes.len() * crate::CHUNK_BYTES) as u64;
    if input.payload_size_bytes == 0 || input.payload_size_bytes > max_payload {
        return Err(err(
            ErrorCode::InvalidInput,
            format!(
                "prepare for {key}: payload of {} bytes cannot be {} chunks of at most {} bytes",
                input.payload_size_bytes,
                input.chunk_hashes.len(),
                crate::CHUNK_BYTES
            ),
        ));
    }
    let record = ChunkSetRecord {
        payload_hash: input.payload_hash.clone(),
        payload_size_bytes: input.payload_size_bytes,
        chunk_hashes: input.chunk_hashes.clone(),
        created_at: now,
    };
    if let Some(old) = chunk_set(&key)
        && old.chunk_hashes != record.chunk_hashes
    {
        remove_chunks(&key);
    }
    CHUNK_SETS.with(|m| m.borrow_mut().insert(key, record.clone()));
    Ok(record)
}

pub fn chunk_set(key: &ReleaseKey) -> Option<ChunkSetRecord> {
    CHUNK_SETS.with(|m| m.borrow_mut().get(key))
}

/// Checks that a chunk may be published; returns the hash it must have.
pub fn expected_chunk_hash(key: &ReleaseKey, index: u32) -> Result<ByteBuf, Error> {
    let set = chunk_set(key)
        .ok_or_else(|| err(ErrorCode::TemplateChunkSetMissing, format!("chunk {key}#{index} before its chunk set was prepared")))?;
    set.chunk_hashes.get(index as usize).cloned().ok_or_else(|| {
        err(
            ErrorCode::TemplateChunkIndexOutOfRange,
            format!("chunk index {index} of {key} is out of range (chunk count {})", set.chunk_count()),
        )
    })
}

/// Checks the hash the host computed for chunk `index` of `key` against the
/// prepared one.
pub fn check_chunk_hash(key: &ReleaseKey, index: u32, hash: &[u8], expected: &[u8]) -> Result<(), Error> {
    if hash == expected {
        return Ok(());
    }
    Err(err(
        ErrorCode::TemplateChunkHashMismatch,
        format!("chunk {key}#{index} hashes to {}, prepared as {}", crate::hex(hash), crate::hex(expected)),
    ))
}

/// Stores a chunk whose hash the caller has verified (idempotent). Traps if
/// stable memory cannot grow (the host's stable memory limit), which rolls
/// the whole message back.
pub fn put_chunk(key: &ReleaseKey, index: u32, bytes: Vec<u8>) {
    use ww_cdk::ic_stable_structures::Memory as _;
    let chunk_key = ChunkKey { release: key.clone(), index };
    let key_len = chunk_key.to_bytes().len() as u64;
    let new_len = bytes.len() as u64;
    let old = CHUNKS.with(|m| m.borrow().get(&chunk_key));
    // The chunk's old slot, else the lowest free one.
    let slot = old.map(|o| o.slot).unwrap_or_else(|| {
        let used: std::collections::BTreeSet<u32> = CHUNKS.with(|m| m.borrow().iter().map(|e| e.value().slot).collect());
        (0..).find(|s| !used.contains(s)).unwrap_or(0)
    });
    let offset = slot as u64 * crate::CHUNK_BYTES as u64;
    CHUNK_SLABS.with(|slabs| {
        let needed_pages = (offset + crate::CHUNK_BYTES as u64).div_ceil(ww_cdk::stable::WASM_PAGE_SIZE_IN_BYTES);
        let size = slabs.size();
        if needed_pages > size && slabs.grow(needed_pages - size) < 0 {
            ww_cdk::api::trap(format!("chunk {chunk_key}: stable memory cannot grow to {needed_pages} pages"));
        }
        slabs.write(offset, &bytes);
    });
    CHUNKS.with(|m| m.borrow_mut().insert(chunk_key, ChunkSlot { slot, len: bytes.len() as u32 }));
    CHUNK_BYTES_HELD.with(|c| {
        let mut c = c.borrow_mut();
        let held = *c.get();
        let held = match old {
            Some(old) => held - old.len as u64 + new_len,
            None => held + key_len + new_len,
        };
        c.set(held);
    });
}

pub fn chunk(key: &ReleaseKey, index: u32) -> Option<Vec<u8>> {
    use ww_cdk::ic_stable_structures::Memory as _;
    let slot = CHUNKS.with(|m| m.borrow().get(&ChunkKey { release: key.clone(), index }))?;
    let mut bytes = vec![0u8; slot.len as usize];
    CHUNK_SLABS.with(|slabs| slabs.read(slot.slot as u64 * crate::CHUNK_BYTES as u64, &mut bytes));
    Some(bytes)
}

pub fn has_chunk(key: &ReleaseKey, index: u32) -> bool {
    CHUNKS.with(|m| m.borrow().contains_key(&ChunkKey { release: key.clone(), index }))
}

/// How many of a release's chunks are stored.
pub fn stored_chunk_count(key: &ReleaseKey) -> u32 {
    let Some(set) = chunk_set(key) else { return 0 };
    (0..set.chunk_count()).filter(|i| has_chunk(key, *i)).count() as u32
}

/// Drops a release's chunk bytes (its manifest and chunk set stay).
pub fn remove_chunks(key: &ReleaseKey) {
    let Some(set) = chunk_set(key) else { return };
    for index in 0..set.chunk_count() {
        let chunk_key = ChunkKey { release: key.clone(), index };
        let key_len = chunk_key.to_bytes().len() as u64;
        if let Some(old) = CHUNKS.with(|m| m.borrow_mut().remove(&chunk_key)) {
            CHUNK_BYTES_HELD.with(|c| {
                let mut c = c.borrow_mut();
                let held = c.get().saturating_sub(key_len + old.len as u64);
                c.set(held);
            });
        }
    }
}

/// Drops a release entirely: manifest, chunk set and chunks.
pub fn remove_release(key: &ReleaseKey) {
    remove_chunks(key);
    CHUNK_SETS.with(|m| m.borrow_mut().remove(key));
    MANIFESTS.with(|m| m.borrow_mut().remove(key));
}

/// Checks a staged release: every chunk present, the concatenation of the
/// declared size and SHA-256. Returns its chunk set.
pub fn validate_release(key: &ReleaseKey, manifest: &ManifestRecord) -> Result<ChunkSetRecord, Error> {
    let set = chunk_set(key).ok_or_else(|| err(ErrorCode::TemplateChunkSetMissing, format!("release {key} has no chunk set")))?;
    if set.payload_hash != manifest.payload_hash || set.payload_size_bytes != manifest.payload_size_bytes {
        return Err(err(
            ErrorCode::PayloadHashMismatch,
            format!("release {key}: the chunk set's payload hash or size differs from the manifest's"),
        ));
    }
    let mut total = 0u64;
    let mut chunks = Vec::with_capacity(set.chunk_hashes.len());
    for index in 0..set.chunk_count() {
        let bytes = chunk(key, index)
            .ok_or_else(|| err(ErrorCode::TemplateChunkMissing, format!("chunk {key}#{index} has not been published")))?;
        total += bytes.len() as u64;
        chunks.push(bytes);
    }
    if total != set.payload_size_bytes {
        return Err(err(
            ErrorCode::PayloadSizeMismatch,
            format!("release {key}: chunks hold {total} bytes, the manifest declares {}", set.payload_size_bytes),
        ));
    }
    // Each chunk's hash was checked on the host when it arrived; a one-chunk
    // payload's hash is that chunk's hash. Only multi-chunk payloads are hashed
    // here, in Wasm.
    let payload_hash: Vec<u8> = if chunks.len() == 1 {
        set.chunk_hashes[0].to_vec()
    } else {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for c in &chunks {
            hasher.update(c);
        }
        hasher.finalize().to_vec()
    };
    if payload_hash != set.payload_hash.as_slice() {
        return Err(err(
            ErrorCode::PayloadHashMismatch,
            format!(
                "release {key}: chunks hash to {}, the manifest declares {}",
                crate::hex(&payload_hash),
                crate::hex(&set.payload_hash)
            ),
        ));
    }
    Ok(set)
}

/// Storage totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Bytes of every record's key and value (metadata and chunks).
    pub occupied_bytes: u64,
    pub template_count: u32,
    pub release_count: u32,
    pub chunk_count: u32,
    pub templates: Vec<TemplateVersionCount>,
}

/// What the storage holds. Counts come from the union of release keys seen in
/// manifests and chunk sets.
pub fn occupancy() -> Occupancy {
    let mut releases: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut metadata = 0u64;
    MANIFESTS.with(|m| {
        for (k, (_, n)) in m.borrow_mut().heap().iter() {
            metadata += n;
            releases.entry(k.template_id.clone()).or_default().insert(k.version.clone());
        }
    });
    CHUNK_SETS.with(|m| {
        for (k, (_, n)) in m.borrow_mut().heap().iter() {
            metadata += n;
            releases.entry(k.template_id.clone()).or_default().insert(k.version.clone());
        }
    });
    let chunk_count = CHUNKS.with(|m| m.borrow().len()) as u32;
    let chunk_bytes = CHUNK_BYTES_HELD.with(|c| *c.borrow().get());
    Occupancy {
        occupied_bytes: metadata + chunk_bytes,
        template_count: releases.len() as u32,
        release_count: releases.values().map(|v| v.len() as u32).sum(),
        chunk_count,
        templates: releases
            .into_iter()
            .map(|(template_id, versions)| TemplateVersionCount { template_id, versions: versions.len() as u16 })
            .collect(),
    }
}

/// Empties all three maps.
pub fn clear() {
    MANIFESTS.with(|m| m.borrow_mut().clear());
    CHUNK_SETS.with(|m| m.borrow_mut().clear());
    CHUNKS.with(|m| m.borrow_mut().clear_new());
    CHUNK_BYTES_HELD.with(|c| c.borrow_mut().set(0));
}

/// Any Candid value as a stable-structures value (for cells and small records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StableCandid<T>(pub T);

impl<T> Storable for StableCandid<T>
where
    T: CandidType + serde::de::DeserializeOwned,
{
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(Encode!(&self.0).expect("encoding a stored value"))
    }
    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self.0).expect("encoding a stored value")
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Self(Decode!(&bytes, T).expect("decoding a stored value"))
    }
    const BOUND: Bound = Bound::Unbounded;
}
