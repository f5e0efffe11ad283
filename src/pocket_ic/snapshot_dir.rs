//! A canister snapshot to and from a directory on the server's machine:
//! what PocketIC's `update/canister_snapshot_download` and
//! `update/canister_snapshot_upload` do for the client's
//! `canister_snapshot_download` / `canister_snapshot_upload`.
//!
//! The layout is dfx's (`dfx canister snapshot download|upload --dir`),
//! which PocketIC's server writes byte for byte (DFINITY's test of the
//! route diffs the two directories):
//! - `metadata.json`: `read_canister_snapshot_metadata`'s result as
//!   `serde_json` pretty-prints `ic-management-canister-types`'
//!   `ReadCanisterSnapshotMetadataResult` (blobs as arrays of numbers, a
//!   `v128` global as its 32-bit digits, no final newline);
//! - `wasm_module.bin` and `wasm_memory.bin`: the module and the heap,
//!   always (empty files if empty);
//! - `stable_memory.bin`: stable memory, only if not empty;
//! - `wasm_chunk_store/<hex SHA-256>.bin`: each chunk of the chunk store,
//!   the folder only if there is one.
//!
//! Both go through the replica's snapshot transfer methods, as the
//! management canister's `read_canister_snapshot_*` and
//! `upload_canister_snapshot_*` would for the sender: its
//! `snapshot_visibility` decides who may download, only controllers upload,
//! and the IC's errors come back as they are. A download needs the
//! directory empty or absent (it is then created) and writes only the files
//! above inside it. An upload reads and checks every file first (sizes
//! against `metadata.json`, each chunk against its name), so a bad
//! directory changes nothing; the new snapshot's id is the result.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use candid::Principal;
use serde::Deserialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::replica::management::ChunkHashRecord;
use crate::replica::snapshot_transfer::{
    GlobalTimer, LowMemoryHookStatus, MAX_SLICE_SIZE_BYTES, SnapshotDataKind, SnapshotDataOffset, SnapshotGlobal, UploadSnapshotMetadataArgs,
};
use crate::replica::{Reject, Replica};

const METADATA: &str = "metadata.json";
const MODULE: &str = "wasm_module.bin";
const HEAP: &str = "wasm_memory.bin";
const STABLE: &str = "stable_memory.bin";
const CHUNKS: &str = "wasm_chunk_store";

/// Why a snapshot could not be moved to or from a directory.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotDirError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("snapshot directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("snapshot directory {0} is not empty: a download needs an empty or new directory")]
    NotEmpty(PathBuf),
    #[error("snapshot directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: not the snapshot metadata dfx and PocketIC write: {source}")]
    Metadata { path: PathBuf, source: serde_json::Error },
    #[error("{path}: global {index} is null: its kind is unknown")]
    UnknownGlobal { path: PathBuf, index: usize },
    #[error("{path}: {found} bytes, but {METADATA} says {expected}")]
    Size { path: PathBuf, found: u64, expected: u64 },
    #[error("{path}: the chunk's SHA-256 is {found}, not the hash its name and {METADATA} give")]
    ChunkHash { path: PathBuf, found: String },
    /// The replica refused (the reject's message: `IC0xxx: ...`).
    #[error("{doing} of canister {canister}: {reject}")]
    Refused { doing: String, canister: Principal, reject: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotDirError + '_ {
    move |source| SnapshotDirError::Io { path: path.to_path_buf(), source }
}

fn dir_io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotDirError + '_ {
    move |source| SnapshotDirError::Dir { path: path.to_path_buf(), source }
}

/// `doing` something to `canister`, refused.
fn refused(doing: String, canister: Principal) -> impl FnOnce(Reject) -> SnapshotDirError {
    move |r| SnapshotDirError::Refused { doing, canister, reject: r.message }
}

/// Makes `dir` an empty directory: creates it if absent, refuses one that
/// holds anything.
fn empty_dir(dir: &Path) -> Result<(), SnapshotDirError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(SnapshotDirError::NotADirectory(dir.to_path_buf())),
        Ok(_) => match std::fs::read_dir(dir).map_err(dir_io(dir))?.next() {
            None => Ok(()),
            Some(_) => Err(SnapshotDirError::NotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir).map_err(dir_io(dir)),
        Err(e) => Err(dir_io(dir)(e)),
    }
}

/// Downloads snapshot `snapshot` of `canister`, as `sender` reads it, into
/// `dir` (empty or absent).
pub fn download(replica: &Replica, sender: Principal, canister: Principal, snapshot: &[u8], dir: &Path) -> Result<(), SnapshotDirError> {
    let doing = || format!("downloading snapshot {}", hex::encode(snapshot));
    let meta = replica.read_snapshot_metadata(sender, canister, snapshot).map_err(refused(doing(), canister))?;
    empty_dir(dir)?;
    let path = dir.join(METADATA);
    let json = serde_json::to_string_pretty(&meta).map_err(|e| SnapshotDirError::Metadata { path: path.clone(), source: e })?;
    std::fs::write(&path, json).map_err(io(&path))?;
    let read = |kind: &SnapshotDataKind| replica.read_snapshot_data(sender, canister, snapshot, kind).map_err(refused(doing(), canister));
    let region = |name: &str, size: u64, kind: fn(u64, u64) -> SnapshotDataKind| -> Result<(), SnapshotDirError> {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut offset = 0;
        while offset < size {
            let n = MAX_SLICE_SIZE_BYTES.min(size - offset);
            file.write_all(&read(&kind(offset, n))?).map_err(io(&path))?;
            offset += n;
        }
        file.sync_all().map_err(io(&path))
    };
    region(MODULE, meta.wasm_module_size, |offset, size| SnapshotDataKind::WasmModule { offset, size })?;
    region(HEAP, meta.wasm_memory_size, |offset, size| SnapshotDataKind::WasmMemory { offset, size })?;
    if meta.stable_memory_size > 0 {
        region(STABLE, meta.stable_memory_size, |offset, size| SnapshotDataKind::StableMemory { offset, size })?;
    }
    if !meta.wasm_chunk_store.is_empty() {
        let chunks = dir.join(CHUNKS);
        std::fs::create_dir(&chunks).map_err(io(&chunks))?;
        for ChunkHashRecord { hash } in &meta.wasm_chunk_store {
            let path = chunks.join(format!("{}.bin", hex::encode(hash)));
            let chunk = read(&SnapshotDataKind::WasmChunk { hash: ByteBuf::from(hash.clone()) })?;
            std::fs::write(&path, chunk).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// What an upload takes of `metadata.json` (fields it does not need, such
/// as `source` or `taken_at_timestamp`, are ignored).
#[derive(Deserialize)]
struct MetadataFile {
    wasm_module_size: u64,
    globals: Vec<Option<SnapshotGlobal>>,
    wasm_memory_size: u64,
    stable_memory_size: u64,
    wasm_chunk_store: Vec<ChunkHashRecord>,
    certified_data: ByteBuf,
    global_timer: Option<GlobalTimer>,
    on_low_wasm_memory_hook_status: Option<LowMemoryHookStatus>,
}

/// `path`, which must hold `expected` bytes.
fn sized(path: PathBuf, expected: u64) -> Result<PathBuf, SnapshotDirError> {
    let found = std::fs::metadata(&path).map_err(io(&path))?.len();
    if found != expected {
        return Err(SnapshotDirError::Size { path, found, expected });
    }
    Ok(path)
}

/// Reads `dir` and checks it: the upload arguments (for `canister`), the
/// module, heap and stable memory files to stream, and the chunks.
fn check(dir: &Path, canister: Principal, replace: Option<Vec<u8>>) -> Result<(UploadSnapshotMetadataArgs, [Option<PathBuf>; 3], Vec<Vec<u8>>), SnapshotDirError> {
    if !std::fs::metadata(dir).map_err(dir_io(dir))?.is_dir() {
        return Err(SnapshotDirError::NotADirectory(dir.to_path_buf()));
    }
    let path = dir.join(METADATA);
    let meta: MetadataFile = serde_json::from_slice(&std::fs::read(&path).map_err(io(&path))?).map_err(|e| SnapshotDirError::Metadata { path: path.clone(), source: e })?;
    let globals = meta
        .globals
        .into_iter()
        .enumerate()
        .map(|(index, g)| g.ok_or_else(|| SnapshotDirError::UnknownGlobal { path: path.clone(), index }))
        .collect::<Result<Vec<_>, _>>()?;
    let files = [
        Some(sized(dir.join(MODULE), meta.wasm_module_size)?),
        Some(sized(dir.join(HEAP), meta.wasm_memory_size)?),
        if meta.stable_memory_size > 0 { Some(sized(dir.join(STABLE), meta.stable_memory_size)?) } else { None },
    ];
    let mut chunks = Vec::new();
    for ChunkHashRecord { hash } in &meta.wasm_chunk_store {
        let path = dir.join(CHUNKS).join(format!("{}.bin", hex::encode(hash)));
        let chunk = std::fs::read(&path).map_err(io(&path))?;
        let found = Sha256::digest(&chunk);
        if found[..] != hash[..] {
            return Err(SnapshotDirError::ChunkHash { path, found: hex::encode(found) });
        }
        chunks.push(chunk);
    }
    let args = UploadSnapshotMetadataArgs {
        canister_id: canister,
        replace_snapshot: replace.map(ByteBuf::from),
        wasm_module_size: meta.wasm_module_size,
        globals,
        wasm_memory_size: meta.wasm_memory_size,
        stable_memory_size: meta.stable_memory_size,
        certified_data: meta.certified_data,
        global_timer: meta.global_timer,
        on_low_wasm_memory_hook_status: meta.on_low_wasm_memory_hook_status,
    };
    Ok((args, files, chunks))
}

/// Uploads the snapshot in `dir` to `canister` as `sender` (replacing
/// snapshot `replace` if given); the new snapshot's id.
pub fn upload(replica: &Replica, sender: Principal, canister: Principal, replace: Option<Vec<u8>>, dir: &Path) -> Result<Vec<u8>, SnapshotDirError> {
    let (args, files, chunks) = check(dir, canister, replace)?;
    let id = replica.upload_snapshot_metadata(sender, &args).map_err(refused("uploading a snapshot".into(), canister))?;
    let doing = || format!("uploading into snapshot {}", hex::encode(&id));
    let filled = (|| {
        let kinds: [fn(u64) -> SnapshotDataOffset; 3] = [
            |offset| SnapshotDataOffset::WasmModule { offset },
            |offset| SnapshotDataOffset::WasmMemory { offset },
            |offset| SnapshotDataOffset::StableMemory { offset },
        ];
        for (path, kind) in files.iter().zip(kinds) {
            let Some(path) = path else { continue };
            let mut file = std::fs::File::open(path).map_err(io(path))?;
            let mut slice = vec![0; MAX_SLICE_SIZE_BYTES as usize];
            let mut offset = 0u64;
            loop {
                let n = read_full(&mut file, &mut slice).map_err(io(path))?;
                if n == 0 {
                    break;
                }
                replica.upload_snapshot_data(sender, canister, &id, kind(offset), &slice[..n]).map_err(refused(doing(), canister))?;
                offset += n as u64;
            }
        }
        for chunk in &chunks {
            replica.upload_snapshot_data(sender, canister, &id, SnapshotDataOffset::WasmChunk, chunk).map_err(refused(doing(), canister))?;
        }
        Ok(())
    })();
    if let Err(e) = filled {
        // Half an upload is no snapshot of anything: it goes.
        let _ = replica.delete_snapshot(sender, canister, &id);
        return Err(e);
    }
    Ok(id)
}

/// Fills `buf` from `file` as far as the file goes; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::history::CandidSnapshotSource;
    use crate::replica::snapshot_transfer::SnapshotMetadata;

    /// The JSON dfx writes for this metadata (`serde_json` pretty-printing
    /// `ic-management-canister-types` 0.8's `ReadCanisterSnapshotMetadataResult`).
    const DFX_JSON: &str = r#"{
  "source": {
    "taken_from_canister": null
  },
  "taken_at_timestamp": 7,
  "wasm_module_size": 3,
  "globals": [
    {
      "i32": -1
    },
    {
      "f64": 0.5
    },
    {
      "v128": [
        1,
        2
      ]
    }
  ],
  "wasm_memory_size": 65536,
  "stable_memory_size": 0,
  "wasm_chunk_store": [
    {
      "hash": [
        1,
        255
      ]
    }
  ],
  "canister_version": 4,
  "certified_data": [
    9
  ],
  "global_timer": {
    "active": 12
  },
  "on_low_wasm_memory_hook_status": "condition_not_satisfied"
}"#;

    fn sample() -> SnapshotMetadata {
        SnapshotMetadata {
            source: CandidSnapshotSource::TakenFromCanister(candid::Reserved),
            taken_at_timestamp: 7,
            wasm_module_size: 3,
            globals: vec![SnapshotGlobal::I32(-1), SnapshotGlobal::F64(0.5), SnapshotGlobal::V128(candid::Nat::from(1u64 + (2u64 << 32)))],
            wasm_memory_size: 65536,
            stable_memory_size: 0,
            wasm_chunk_store: vec![ChunkHashRecord { hash: vec![1, 255] }],
            canister_version: 4,
            certified_data: ByteBuf::from(vec![9]),
            global_timer: Some(GlobalTimer::Active(12)),
            on_low_wasm_memory_hook_status: Some(LowMemoryHookStatus::ConditionNotSatisfied),
        }
    }

    #[test]
    fn metadata_is_written_as_dfx_writes_it_and_read_back() {
        assert_eq!(serde_json::to_string_pretty(&sample()).unwrap(), DFX_JSON);
        let back: MetadataFile = serde_json::from_str(DFX_JSON).unwrap();
        assert_eq!(back.globals, sample().globals.into_iter().map(Some).collect::<Vec<_>>());
        assert_eq!((back.wasm_module_size, back.wasm_memory_size, back.stable_memory_size), (3, 65536, 0));
        assert_eq!(back.certified_data.as_slice(), [9]);
        assert_eq!(back.wasm_chunk_store, vec![ChunkHashRecord { hash: vec![1, 255] }]);
        assert_eq!(back.global_timer, Some(GlobalTimer::Active(12)));
        assert_eq!(back.on_low_wasm_memory_hook_status, Some(LowMemoryHookStatus::ConditionNotSatisfied));
    }

    #[test]
    fn a_download_needs_an_empty_or_new_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("a/b");
        empty_dir(&new).expect("created");
        assert!(new.is_dir());
        empty_dir(&new).expect("empty is fine");
        std::fs::write(new.join("x"), b"x").unwrap();
        let err = empty_dir(&new).unwrap_err().to_string();
        assert!(err.contains("is not empty") && err.contains(new.to_str().unwrap()), "{err}");
        let err = empty_dir(&new.join("x")).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn an_upload_checks_sizes_and_chunk_hashes_before_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let canister = Principal::from_slice(&[1]);
        let err = check(dir, canister, None).unwrap_err().to_string();
        assert!(err.contains("metadata.json"), "{err}");
        let mut meta = sample();
        meta.wasm_chunk_store = vec![ChunkHashRecord { hash: Sha256::digest(b"chunk").to_vec() }];
        std::fs::write(dir.join(METADATA), serde_json::to_string_pretty(&meta).unwrap()).unwrap();
        std::fs::write(dir.join(MODULE), b"abc").unwrap();
        std::fs::write(dir.join(HEAP), vec![0; 100]).unwrap();
        let err = check(dir, canister, None).unwrap_err().to_string();
        assert!(err.contains("wasm_memory.bin: 100 bytes, but metadata.json says 65536"), "{err}");
        std::fs::write(dir.join(HEAP), vec![0; 65536]).unwrap();
        std::fs::create_dir(dir.join(CHUNKS)).unwrap();
        let chunk = dir.join(CHUNKS).join(format!("{}.bin", hex::encode(Sha256::digest(b"chunk"))));
        std::fs::write(&chunk, b"other").unwrap();
        let err = check(dir, canister, None).unwrap_err().to_string();
        assert!(err.contains("SHA-256") && err.contains(chunk.to_str().unwrap()), "{err}");
        std::fs::write(&chunk, b"chunk").unwrap();
        let (args, files, chunks) = check(dir, canister, Some(vec![5])).expect("a good directory");
        assert_eq!((args.wasm_module_size, args.globals.len()), (3, 3));
        assert_eq!(args.replace_snapshot.map(|r| r.into_vec()), Some(vec![5]));
        assert!(files[2].is_none(), "no stable memory file when it is empty");
        assert_eq!(chunks, vec![b"chunk".to_vec()]);
    }
}
