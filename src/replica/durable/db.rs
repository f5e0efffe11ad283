//! The state directory's storage: one LMDB environment (through heed) in
//! `<state>/replica/`, written one cut per transaction.
//!
//! Why LMDB: measured beside redb on the same machine (PLAN.md,
//! ARCHITECTURE.md), a durable commit of a few pages costs about half of
//! redb's and bulk pages go 2-3× faster; the disk's `fdatasync`, not the
//! engine, bounds what is left. LMDB's copy-on-write B-tree with two meta
//! pages makes every transaction atomic and crash safe, but it keeps no
//! checksums: every record here is `BLAKE3(table, key, payload)[..8] ++
//! payload`, checked on every read, so a flipped bit is refused by name
//! rather than loaded.
//!
//! Tables (key → record payload):
//! - `meta`: `format` → [`FORMAT`]; `state` → the replica-wide state;
//! - `canisters`: canister id → its slot (postcard, see `form`);
//! - `heap`, `stable`: canister key ++ block/page index (u32 BE) → 64 KiB
//!   (a heap's last block may be shorter);
//! - `modules`: SHA-256 → module bytes;
//! - `chunks`: canister key ++ SHA-256 → chunk bytes;
//! - `snapshots`: canister key ++ snapshot id → a snapshot taken from the
//!   canister (written once: it never changes);
//! - `uploads`: canister key ++ the rest `form::uploads` makes of a
//!   snapshot id and a part → an uploaded snapshot, piece by piece (it
//!   changes with each upload).

use std::fs::File;
use std::path::{Path, PathBuf};

use candid::Principal;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RwTxn};

/// The state directory's format. A directory written with another is
/// refused (no migration yet).
/// 2: canister settings gained `log_memory_limit`, `snapshot_visibility`,
/// `status_visibility` and `minimum_incoming_canister_call_cycles`.
/// 3: cycles accounting: 128-bit balances, the time memory is charged up
/// to, calls' response reservations.
/// Also in 3: the `uploads` table keeps uploaded snapshots.
pub const FORMAT: u32 = 4;
/// What `meta/format` holds before the version.
const FORMAT_TAG: &[u8] = b"ww-state-dir";
/// Address space reserved for the environment (the file grows as needed).
const MAP_SIZE: usize = 1 << 40;
const CHECKSUM_LEN: usize = 8;

/// Why a state directory cannot be used. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("state directory {path}: in use by another ww process")]
    InUse { path: PathBuf },
    #[error("state directory {path}: {message}")]
    Engine { path: PathBuf, message: String },
    #[error("state directory {path}: damaged: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error("state directory {path}: written in format {found}, this ww reads format {FORMAT}")]
    Incompatible { path: PathBuf, found: String },
    #[error("state directory {path}: cannot restore: {what}")]
    Restore { path: PathBuf, what: String },
}

/// Heap or stable memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Heap,
    Stable,
}

/// One memory's changes in a cut.
#[derive(Debug, Default)]
pub struct MemoryWrite {
    /// Delete every stored block of this memory first.
    pub clear: bool,
    /// Delete stored blocks from this index on (the memory shrank or
    /// blocks beyond its size are stale); `None`: keep.
    pub truncate_from: Option<u32>,
    pub blocks: Vec<(u32, Vec<u8>)>,
}

/// Everything a cut writes, in one transaction.
#[derive(Default)]
pub struct CutWrite {
    pub state: Vec<u8>,
    /// Canister records to write (`Some`) or delete (`None`, with all its
    /// memories and chunks).
    pub canisters: Vec<(Principal, Option<Vec<u8>>)>,
    pub memories: Vec<(Principal, MemoryKind, MemoryWrite)>,
    pub modules: Vec<([u8; 32], std::sync::Arc<[u8]>)>,
    pub drop_modules: Vec<[u8; 32]>,
    pub chunks: Vec<(Principal, [u8; 32], bytes::Bytes)>,
    pub drop_chunks: Vec<(Principal, [u8; 32])>,
    /// (canister, snapshot id, the stored snapshot).
    pub snapshots: Vec<(Principal, Vec<u8>, Vec<u8>)>,
    pub drop_snapshots: Vec<(Principal, Vec<u8>)>,
    /// Uploaded snapshots' pieces: (canister, key rest, payload).
    pub uploads: Vec<(Principal, Vec<u8>, Vec<u8>)>,
    /// Every record of `uploads` under (canister, key rest prefix) goes.
    pub drop_uploads: Vec<(Principal, Vec<u8>)>,
    /// Records kept for the node beside the replica (the ingress history):
    /// written (`Some`) or deleted (`None`).
    pub sidecar: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl CutWrite {
    /// Bytes of memory pages, modules and chunks the cut writes.
    pub fn bulk_bytes(&self) -> usize {
        self.memories.iter().flat_map(|(_, _, m)| &m.blocks).map(|(_, b)| b.len()).sum::<usize>()
            + self.modules.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.chunks.iter().map(|(_, _, c)| c.len()).sum::<usize>()
            + self.snapshots.iter().map(|(_, _, s)| s.len()).sum::<usize>()
            + self.uploads.iter().map(|(_, _, u)| u.len()).sum::<usize>()
    }
}

/// Records of one canister-scoped table: (key suffix, payload) per canister.
pub type PerCanister<K> = std::collections::HashMap<Principal, Vec<(K, Vec<u8>)>>;
/// (key, payload) pairs of a table.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// What a state directory holds, read and checked.
#[derive(Default)]
pub struct Loaded {
    /// `None`: a new, empty directory.
    pub state: Option<Vec<u8>>,
    pub canisters: Vec<(Principal, Vec<u8>)>,
    pub heap: PerCanister<u32>,
    pub stable: PerCanister<u32>,
    pub modules: std::collections::HashMap<[u8; 32], Vec<u8>>,
    pub chunks: PerCanister<[u8; 32]>,
    /// (snapshot id, the stored snapshot), in key order.
    pub snapshots: PerCanister<Vec<u8>>,
    /// (key rest, payload) of the uploaded snapshots' pieces, in key order.
    pub uploads: PerCanister<Vec<u8>>,
    /// The node's records kept beside the replica (see [`CutWrite::sidecar`]).
    pub sidecar: Records,
}

/// The open environment.
pub struct StateDb {
    env: Env,
    file: PathBuf,
    meta: Database<Bytes, Bytes>,
    canisters: Database<Bytes, Bytes>,
    heap: Database<Bytes, Bytes>,
    stable: Database<Bytes, Bytes>,
    modules: Database<Bytes, Bytes>,
    chunks: Database<Bytes, Bytes>,
    snapshots: Database<Bytes, Bytes>,
    uploads: Database<Bytes, Bytes>,
    sidecar: Database<Bytes, Bytes>,
    /// Held for the life of the process: one ww per directory.
    _lock: File,
}

/// A record: the checksum of (table, key, payload), then the payload.
pub fn encode_record(table: &str, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKSUM_LEN + payload.len());
    out.extend_from_slice(&checksum(table, key, payload));
    out.extend_from_slice(payload);
    out
}

fn checksum(table: &str, key: &[u8], payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = blake3::Hasher::new();
    h.update(table.as_bytes());
    h.update(&[0]);
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key);
    h.update(payload);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..CHECKSUM_LEN]);
    out
}

/// A canister-scoped key prefix: the id's length, then the id.
fn canister_key(id: &Principal) -> Vec<u8> {
    let bytes = id.as_slice();
    let mut key = Vec::with_capacity(1 + bytes.len() + 32);
    key.push(bytes.len() as u8);
    key.extend_from_slice(bytes);
    key
}

/// Splits a canister-scoped key into the id and the rest.
fn split_canister_key(key: &[u8]) -> Option<(Principal, &[u8])> {
    let len = *key.first()? as usize;
    let id = key.get(1..1 + len)?;
    Some((Principal::try_from_slice(id).ok()?, &key[1 + len..]))
}

impl StateDb {
    /// Opens (or creates) the environment in `dir`, refusing a directory
    /// another process uses, of another format, or truncated.
    pub fn open(dir: &Path) -> Result<Self, StateDirError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateDirError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        // SAFETY: flock on a file we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StateDirError::InUse { path: dir.to_path_buf() });
        }
        let file = dir.join("data.mdb");
        let existing_len = match std::fs::metadata(&file) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&file)(e)),
        };
        let engine = |e: heed::Error| StateDirError::Engine { path: file.clone(), message: e.to_string() };
        if existing_len == Some(0) {
            return Err(StateDirError::Damaged { path: file.clone(), what: "the file is empty".into() });
        }
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE).max_dbs(12);
        // SAFETY: one environment per directory in this process, and the
        // lock file keeps other processes out.
        let env = unsafe { options.open(dir) }.map_err(|e| match e {
            heed::Error::Mdb(heed::MdbError::Invalid | heed::MdbError::Corrupted | heed::MdbError::VersionMismatch) => {
                StateDirError::Damaged { path: file.clone(), what: format!("not an LMDB file this ww can read ({e})") }
            }
            e => engine(e),
        })?;
        // A truncated file would fault (SIGBUS) on the first read past
        // its end: check its length against the last page LMDB committed.
        if let Some(len) = existing_len {
            let info = env.info();
            let page = env.stat().page_size as u64;
            let needed = (info.last_page_number as u64 + 1) * page;
            if len < needed {
                return Err(StateDirError::Damaged { path: file.clone(), what: format!("truncated: {len} bytes, the last transaction needs {needed}") });
            }
        }
        let mut w = env.write_txn().map_err(engine)?;
        let mut create = |name: &str| env.create_database::<Bytes, Bytes>(&mut w, Some(name)).map_err(engine);
        let (meta, canisters, heap, stable, modules, chunks, snapshots, uploads, sidecar) = (
            create("meta")?,
            create("canisters")?,
            create("heap")?,
            create("stable")?,
            create("modules")?,
            create("chunks")?,
            create("snapshots")?,
            create("uploads")?,
            create("sidecar")?,
        );
        let db = Self { env: env.clone(), file: file.clone(), meta, canisters, heap, stable, modules, chunks, snapshots, uploads, sidecar, _lock: lock };
        match db.get_checked(&w, &db.meta, "meta", b"format")? {
            None if existing_len.is_none() || db.meta.len(&w).map_err(engine)? == 0 => {
                let mut payload = FORMAT_TAG.to_vec();
                payload.extend_from_slice(&FORMAT.to_le_bytes());
                db.meta.put(&mut w, b"format", &encode_record("meta", b"format", &payload)).map_err(engine)?;
            }
            None => return Err(db.damaged("the format record is missing")),
            Some(payload) => {
                let version = payload.strip_prefix(FORMAT_TAG).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(u32::from_le_bytes);
                match version {
                    Some(FORMAT) => {}
                    Some(v) => return Err(StateDirError::Incompatible { path: db.file.clone(), found: v.to_string() }),
                    None => return Err(StateDirError::Incompatible { path: db.file.clone(), found: "unknown (not a ww state directory)".into() }),
                }
            }
        }
        w.commit().map_err(engine)?;
        Ok(db)
    }

    /// The data file (what error messages name).
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn engine(&self, e: heed::Error) -> StateDirError {
        match e {
            heed::Error::Mdb(heed::MdbError::Corrupted | heed::MdbError::PageNotFound | heed::MdbError::Invalid) => self.damaged(&e.to_string()),
            e => StateDirError::Engine { path: self.file.clone(), message: e.to_string() },
        }
    }

    fn damaged(&self, what: &str) -> StateDirError {
        StateDirError::Damaged { path: self.file.clone(), what: what.to_string() }
    }

    fn check<'a>(&self, table: &str, key: &[u8], record: &'a [u8]) -> Result<&'a [u8], StateDirError> {
        if record.len() < CHECKSUM_LEN {
            return Err(self.damaged(&format!("record {table}/{} is too short", hex::encode(key))));
        }
        let (sum, payload) = record.split_at(CHECKSUM_LEN);
        if sum != checksum(table, key, payload) {
            return Err(self.damaged(&format!("record {table}/{} fails its checksum", hex::encode(key))));
        }
        Ok(payload)
    }

    fn get_checked(&self, txn: &heed::RoTxn, db: &Database<Bytes, Bytes>, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateDirError> {
        match db.get(txn, key).map_err(|e| self.engine(e))? {
            None => Ok(None),
            Some(record) => Ok(Some(self.check(table, key, record)?.to_vec())),
        }
    }

    /// Every record of `db`, checked.
    fn all(&self, txn: &heed::RoTxn, db: &Database<Bytes, Bytes>, table: &str) -> Result<Records, StateDirError> {
        let mut out = Vec::new();
        for item in db.iter(txn).map_err(|e| self.engine(e))? {
            let (key, record) = item.map_err(|e| self.engine(e))?;
            out.push((key.to_vec(), self.check(table, key, record)?.to_vec()));
        }
        Ok(out)
    }

    /// Reads and checks everything.
    pub fn load(&self) -> Result<Loaded, StateDirError> {
        let r = self.env.read_txn().map_err(|e| self.engine(e))?;
        let mut loaded = Loaded { state: self.get_checked(&r, &self.meta, "meta", b"state")?, ..Loaded::default() };
        let bad_key = |table: &str, key: &[u8]| self.damaged(&format!("record {table}/{} has a malformed key", hex::encode(key)));
        for (key, payload) in self.all(&r, &self.canisters, "canisters")? {
            let id = Principal::try_from_slice(&key).map_err(|_| bad_key("canisters", &key))?;
            loaded.canisters.push((id, payload));
        }
        for (table, db, into) in [("heap", &self.heap, &mut loaded.heap), ("stable", &self.stable, &mut loaded.stable)] {
            for (key, payload) in self.all(&r, db, table)? {
                let (id, rest) = split_canister_key(&key).ok_or_else(|| bad_key(table, &key))?;
                let index = <[u8; 4]>::try_from(rest).map_err(|_| bad_key(table, &key))?;
                into.entry(id).or_default().push((u32::from_be_bytes(index), payload));
            }
        }
        for (key, payload) in self.all(&r, &self.modules, "modules")? {
            let hash = <[u8; 32]>::try_from(key.as_slice()).map_err(|_| bad_key("modules", &key))?;
            loaded.modules.insert(hash, payload);
        }
        for (key, payload) in self.all(&r, &self.chunks, "chunks")? {
            let (id, rest) = split_canister_key(&key).ok_or_else(|| bad_key("chunks", &key))?;
            let hash = <[u8; 32]>::try_from(rest).map_err(|_| bad_key("chunks", &key))?;
            loaded.chunks.entry(id).or_default().push((hash, payload));
        }
        for (table, db, into) in [("snapshots", &self.snapshots, &mut loaded.snapshots), ("uploads", &self.uploads, &mut loaded.uploads)] {
            for (key, payload) in self.all(&r, db, table)? {
                let (id, rest) = split_canister_key(&key).ok_or_else(|| bad_key(table, &key))?;
                into.entry(id).or_default().push((rest.to_vec(), payload));
            }
        }
        loaded.sidecar = self.all(&r, &self.sidecar, "sidecar")?;
        Ok(loaded)
    }

    /// Writes one cut in one transaction and syncs it.
    pub fn write(&self, cut: &CutWrite) -> Result<(), StateDirError> {
        let e = |e| self.engine(e);
        let mut w = self.env.write_txn().map_err(e)?;
        self.meta.put(&mut w, b"state", &encode_record("meta", b"state", &cut.state)).map_err(e)?;
        for (id, record) in &cut.canisters {
            let key = id.as_slice();
            match record {
                Some(payload) => self.canisters.put(&mut w, key, &encode_record("canisters", key, payload)).map_err(e)?,
                None => {
                    self.canisters.delete(&mut w, key).map_err(e)?;
                    let prefix = canister_key(id);
                    for db in [&self.heap, &self.stable, &self.chunks, &self.snapshots, &self.uploads] {
                        delete_prefix(db, &mut w, &prefix, None).map_err(e)?;
                    }
                }
            }
        }
        for (id, kind, m) in &cut.memories {
            let (db, table) = match kind {
                MemoryKind::Heap => (&self.heap, "heap"),
                MemoryKind::Stable => (&self.stable, "stable"),
            };
            let prefix = canister_key(id);
            if m.clear {
                delete_prefix(db, &mut w, &prefix, None).map_err(e)?;
            } else if let Some(from) = m.truncate_from {
                delete_prefix(db, &mut w, &prefix, Some(from)).map_err(e)?;
            }
            let mut key = prefix.clone();
            for (index, bytes) in &m.blocks {
                key.truncate(prefix.len());
                key.extend_from_slice(&index.to_be_bytes());
                db.put(&mut w, &key, &encode_record(table, &key, bytes)).map_err(e)?;
            }
        }
        for (hash, bytes) in &cut.modules {
            self.modules.put(&mut w, hash, &encode_record("modules", hash, bytes)).map_err(e)?;
        }
        for hash in &cut.drop_modules {
            self.modules.delete(&mut w, hash).map_err(e)?;
        }
        for (id, hash, bytes) in &cut.chunks {
            let mut key = canister_key(id);
            key.extend_from_slice(hash);
            self.chunks.put(&mut w, &key, &encode_record("chunks", &key, bytes)).map_err(e)?;
        }
        for (id, hash) in &cut.drop_chunks {
            let mut key = canister_key(id);
            key.extend_from_slice(hash);
            self.chunks.delete(&mut w, &key).map_err(e)?;
        }
        for (id, snapshot, payload) in &cut.snapshots {
            let mut key = canister_key(id);
            key.extend_from_slice(snapshot);
            self.snapshots.put(&mut w, &key, &encode_record("snapshots", &key, payload)).map_err(e)?;
        }
        for (id, snapshot) in &cut.drop_snapshots {
            let mut key = canister_key(id);
            key.extend_from_slice(snapshot);
            self.snapshots.delete(&mut w, &key).map_err(e)?;
        }
        for (id, rest) in &cut.drop_uploads {
            let mut prefix = canister_key(id);
            prefix.extend_from_slice(rest);
            delete_prefix(&self.uploads, &mut w, &prefix, None).map_err(e)?;
        }
        for (id, rest, payload) in &cut.uploads {
            let mut key = canister_key(id);
            key.extend_from_slice(rest);
            self.uploads.put(&mut w, &key, &encode_record("uploads", &key, payload)).map_err(e)?;
        }
        for (key, record) in &cut.sidecar {
            match record {
                Some(payload) => self.sidecar.put(&mut w, key, &encode_record("sidecar", key, payload)).map_err(e)?,
                None => {
                    self.sidecar.delete(&mut w, key).map_err(e)?;
                }
            }
        }
        w.commit().map_err(e)
    }
}

/// Deletes the keys under `prefix` (those whose u32 suffix is at least
/// `from`, if given).
fn delete_prefix(db: &Database<Bytes, Bytes>, w: &mut RwTxn, prefix: &[u8], from: Option<u32>) -> heed::Result<()> {
    let mut doomed = Vec::new();
    for item in db.prefix_iter(w, prefix)? {
        let (key, _) = item?;
        let keep = from.is_some_and(|from| {
            key.get(prefix.len()..).and_then(|s| <[u8; 4]>::try_from(s).ok()).is_some_and(|i| u32::from_be_bytes(i) < from)
        });
        if !keep {
            doomed.push(key.to_vec());
        }
    }
    for key in doomed {
        db.delete(w, &key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Principal {
        crate::replica::canister_id(n)
    }

    #[test]
    fn a_cut_written_is_read_back_and_deletions_apply() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = StateDb::open(dir.path()).unwrap();
            assert!(db.load().unwrap().state.is_none());
            let mut cut = CutWrite { state: b"s1".to_vec(), ..Default::default() };
            cut.canisters.push((id(1), Some(b"c1".to_vec())));
            cut.memories.push((id(1), MemoryKind::Heap, MemoryWrite { blocks: vec![(0, vec![1; 10]), (3, vec![3; 10])], ..Default::default() }));
            cut.modules.push(([7; 32], std::sync::Arc::from(&b"wasm"[..])));
            cut.chunks.push((id(1), [9; 32], bytes::Bytes::from_static(b"chunk")));
            db.write(&cut).unwrap();
            let mut cut = CutWrite { state: b"s2".to_vec(), ..Default::default() };
            cut.memories.push((id(1), MemoryKind::Heap, MemoryWrite { truncate_from: Some(2), ..Default::default() }));
            db.write(&cut).unwrap();
        }
        let db = StateDb::open(dir.path()).unwrap();
        let loaded = db.load().unwrap();
        assert_eq!(loaded.state.as_deref(), Some(&b"s2"[..]));
        assert_eq!(loaded.canisters, vec![(id(1), b"c1".to_vec())]);
        assert_eq!(loaded.heap[&id(1)], vec![(0, vec![1; 10])]);
        assert_eq!(loaded.modules[&[7; 32]], b"wasm");
        assert_eq!(loaded.chunks[&id(1)], vec![([9; 32], b"chunk".to_vec())]);
        let mut cut = CutWrite { state: b"s3".to_vec(), ..Default::default() };
        cut.canisters.push((id(1), None));
        db.write(&cut).unwrap();
        let loaded = db.load().unwrap();
        assert!(loaded.canisters.is_empty() && loaded.heap.is_empty() && loaded.chunks.is_empty());
    }

    #[test]
    fn uploads_are_written_dropped_by_prefix_and_go_with_their_canister() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let mut cut = CutWrite { state: b"s".to_vec(), ..Default::default() };
        cut.canisters.push((id(1), Some(b"c1".to_vec())));
        for rest in [&b"\x01ahead"[..], b"\x01am0", b"\x01bhead", b"\x01bm0"] {
            cut.uploads.push((id(1), rest.to_vec(), rest.to_vec()));
        }
        db.write(&cut).unwrap();
        let mut cut = CutWrite { state: b"s".to_vec(), ..Default::default() };
        cut.drop_uploads.push((id(1), b"\x01a".to_vec()));
        db.write(&cut).unwrap();
        let kept: Vec<Vec<u8>> = db.load().unwrap().uploads[&id(1)].iter().map(|(rest, _)| rest.clone()).collect();
        assert_eq!(kept, vec![b"\x01bhead".to_vec(), b"\x01bm0".to_vec()], "snapshot a's records gone, b's kept in key order");
        let mut cut = CutWrite { state: b"s".to_vec(), ..Default::default() };
        cut.canisters.push((id(1), None));
        db.write(&cut).unwrap();
        assert!(db.load().unwrap().uploads.is_empty(), "a deleted canister's uploads go with it");
    }

    #[test]
    fn a_second_process_handle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _db = StateDb::open(dir.path()).unwrap();
        let err = StateDb::open(dir.path()).err().expect("a second open must fail");
        assert!(err.to_string().contains("in use by another ww process"), "{err}");
    }
}
