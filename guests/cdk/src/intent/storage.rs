//! Intent storage: single steps over stable memory, knowing nothing about
//! calls. Memory ids (the canister's registry, owner
//! [`memory::INTENTS`](crate::memory::INTENTS)):
//! - 18 meta: one fixed 48-byte block (magic, schema version, the id
//!   counter, counts), written whole in one write;
//! - 19 records: a vector of fixed-size records indexed by id - 1 (key,
//!   quantity, state, created_at, ttl): reading or rewriting one is one
//!   access, however many there are;
//! - 20 per-key totals: a vector of fixed-size (key, reserved, committed,
//!   pending count) entries, so limits never scan records; a heap index
//!   (key → slot, built by one pass over the totals after a start) makes
//!   an update one write;
//! - 21 the pending index of reservations with a TTL ((expiry, id) → id:
//!   expiry sweeps and recovery; a reservation without one never expires,
//!   and indexing it would cost every call two tree updates: listing those
//!   scans the records once per module lifetime, then a heap set follows
//!   them);
//! - 22-25 reserved.
//!
//! Every step is a handful of `ic0.stable64_*` calls, each a crossing into
//! the host (a reservation and its settlement: 7 writes and 7 reads; the
//! first layout, with B-trees for records and totals, took 27 and 18).
//! The heap caches (meta, totals) are safe: the replica rolls the
//! heap back with stable memory, and an upgrade starts them empty.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory as _, StableBTreeMap, Storable};

use super::MAX_KEY_BYTES;
use crate::api;
use crate::memory::{self, Memory};

/// The layout of the records below. A canister whose intent storage says
/// otherwise traps rather than misread it.
pub const SCHEMA_VERSION: u32 = 2;

const META: u8 = 18;
const RECORDS: u8 = 19;
const TOTALS: u8 = 20;
const PENDING: u8 = 21;

/// The first bytes of the meta block.
const META_MAGIC: &[u8; 4] = b"WWIM";

/// Pending index keys of reservations without a TTL.
const NEVER: u64 = u64::MAX;

/// A key in a fixed-size slot: its length, then [`MAX_KEY_BYTES`] bytes.
const KEY_SLOT: usize = 1 + MAX_KEY_BYTES;

/// Little-endian fields, read back with bounds checks (a short record is
/// damage: trap rather than misread).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        if self.0.len() < n {
            api::trap("intent storage is damaged: a record is too short");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8));
        u64::from_le_bytes(b)
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4));
        u32::from_le_bytes(b)
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn key(&mut self) -> String {
        let n = self.u8() as usize;
        let slot = self.take(MAX_KEY_BYTES);
        if n > MAX_KEY_BYTES {
            api::trap(format!("intent storage is damaged: a key of {n} bytes"));
        }
        String::from_utf8_lossy(&slot[..n]).into_owned()
    }
}

fn put_key(out: &mut Vec<u8>, key: &str) {
    // Keys are checked by `IntentKey::try_new`; a longer one is a bug here.
    let bytes = &key.as_bytes()[..key.len().min(MAX_KEY_BYTES)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
    out.resize(out.len() + MAX_KEY_BYTES - bytes.len(), 0);
}

macro_rules! fixed_storable {
    ($t:ty, $size:expr) => {
        impl Storable for $t {
            fn to_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.encode())
            }
            fn into_bytes(self) -> Vec<u8> {
                self.encode()
            }
            fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
                Self::decode(&mut Reader(&bytes))
            }
            const BOUND: Bound = Bound::Bounded { max_size: $size, is_fixed_size: true };
        }
    };
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Meta {
    pub schema_version: u32,
    pub next_id: u64,
    pub pending_total: u64,
    pub committed_total: u64,
    pub aborted_total: u64,
}

impl Meta {
    const SIZE: usize = 4 + 4 + 8 * 4;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::SIZE);
        out.extend_from_slice(META_MAGIC);
        out.extend_from_slice(&self.schema_version.to_le_bytes());
        for v in [self.next_id, self.pending_total, self.committed_total, self.aborted_total] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
    fn decode(r: &mut Reader<'_>) -> Self {
        if r.take(4) != META_MAGIC {
            api::trap("intent storage is damaged or in another layout: the meta block (memory 18) does not start with WWIM");
        }
        Self { schema_version: r.u32(), next_id: r.u64(), pending_total: r.u64(), committed_total: r.u64(), aborted_total: r.u64() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    Committed,
    Aborted,
}

#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub key: String,
    pub quantity: u64,
    pub state: State,
    pub created_at: u64,
    pub ttl_secs: Option<u64>,
}
fixed_storable!(Record, (KEY_SLOT + 8 + 1 + 8 + 1 + 8) as u32);

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_SLOT + 26);
        put_key(&mut out, &self.key);
        out.extend_from_slice(&self.quantity.to_le_bytes());
        out.push(self.state as u8);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.push(self.ttl_secs.is_some() as u8);
        out.extend_from_slice(&self.ttl_secs.unwrap_or(0).to_le_bytes());
        out
    }
    fn decode(r: &mut Reader<'_>) -> Self {
        let key = r.key();
        let quantity = r.u64();
        let state = match r.u8() {
            0 => State::Pending,
            1 => State::Committed,
            2 => State::Aborted,
            s => api::trap(format!("intent storage is damaged: state {s}")),
        };
        let created_at = r.u64();
        let has_ttl = r.u8() != 0;
        let ttl = r.u64();
        Self { key, quantity, state, created_at, ttl_secs: has_ttl.then_some(ttl) }
    }

    /// Replica time after which the reservation is expired (`NEVER`).
    pub fn expires_at(&self) -> u64 {
        self.ttl_secs.and_then(|t| t.checked_mul(1_000_000_000)).and_then(|t| self.created_at.checked_add(t)).unwrap_or(NEVER)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub reserved: u64,
    pub committed: u64,
    pub pending_count: u64,
}

/// One key's totals as stored (memory 20).
struct TotalsEntry {
    key: String,
    totals: Totals,
}
fixed_storable!(TotalsEntry, (KEY_SLOT + 24) as u32);

impl TotalsEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_SLOT + 24);
        put_key(&mut out, &self.key);
        let t = &self.totals;
        for v in [t.reserved, t.committed, t.pending_count] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
    fn decode(r: &mut Reader<'_>) -> Self {
        let key = r.key();
        Self { key, totals: Totals { reserved: r.u64(), committed: r.u64(), pending_count: r.u64() } }
    }
}

thread_local! {
    static META_MEMORY: Memory = memory::claim(META, memory::INTENTS, "intent meta");
    /// The meta block as last read or written (`None` until first used).
    static META_CACHE: RefCell<Option<Meta>> = const { RefCell::new(None) };
    static RECORD_VEC: ic_stable_structures::Vec<Record, Memory> =
        ic_stable_structures::Vec::init(memory::claim(RECORDS, memory::INTENTS, "intent records"));
    static TOTALS_VEC: ic_stable_structures::Vec<TotalsEntry, Memory> =
        ic_stable_structures::Vec::init(memory::claim(TOTALS, memory::INTENTS, "intent totals"));
    /// Key → (slot in the totals vector, its totals), built by one pass
    /// over the vector on first use.
    static TOTALS_INDEX: RefCell<Option<BTreeMap<String, (u64, Totals)>>> = const { RefCell::new(None) };
    /// Pending reservations without a TTL, once listed (`None` until then:
    /// the first listing after a start scans the records).
    static UNTIMED: RefCell<Option<std::collections::BTreeSet<u64>>> = const { RefCell::new(None) };
    static PENDING_MAP: RefCell<StableBTreeMap<u128, u64, Memory>> =
        RefCell::new(StableBTreeMap::init(memory::claim(PENDING, memory::INTENTS, "intent pending index")));
}

/// Whether stable memory holds intent storage, read without touching it:
/// the canister's `MemoryManager` header (magic `MGR`, layout version 1)
/// gives the meta memory a size.
pub(crate) fn exists() -> bool {
    use crate::stable::{stable_read, stable_size};
    /// `memory_sizes_in_pages[id]` in the header: after magic (3 bytes),
    /// version (1), bucket count (2), bucket size (2), reserved (32).
    const SIZES_AT: u64 = 40;
    if stable_size() == 0 {
        return false;
    }
    let mut magic = [0u8; 4];
    stable_read(0, &mut magic);
    if &magic != b"MGR\x01" {
        return false;
    }
    let mut size = [0u8; 8];
    stable_read(SIZES_AT + 8 * META as u64, &mut size);
    u64::from_le_bytes(size) > 0
}

/// Why a step could not be taken (the workflow decides what it means).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StepError {
    Overflow,
    NotPending { state: Option<State> },
}

fn pending_key(expires_at: u64, id: u64) -> u128 {
    ((expires_at as u128) << 64) | id as u128
}

fn load_meta() -> Meta {
    META_MEMORY.with(|m| {
        if m.size() == 0 {
            if m.grow(1) < 0 {
                api::trap("intent storage: stable memory cannot grow for the meta block");
            }
            let fresh = Meta { schema_version: SCHEMA_VERSION, next_id: 1, ..Meta::default() };
            m.write(0, &fresh.encode());
            return fresh;
        }
        let mut bytes = [0u8; Meta::SIZE];
        m.read(0, &mut bytes);
        Meta::decode(&mut Reader(&bytes))
    })
}

fn meta<R>(f: impl FnOnce(&mut Meta) -> R) -> R {
    let mut m = META_CACHE.with(|c| c.borrow().clone()).unwrap_or_else(load_meta);
    if m.schema_version != SCHEMA_VERSION {
        api::trap(format!("intent storage has schema version {}, this ww-cdk reads {SCHEMA_VERSION}", m.schema_version));
    }
    let out = f(&mut m);
    META_MEMORY.with(|mem| mem.write(0, &m.encode()));
    META_CACHE.with(|c| *c.borrow_mut() = Some(m));
    out
}

/// Runs `f` on the totals index, building it on first use.
fn with_totals_index<R>(f: impl FnOnce(&mut BTreeMap<String, (u64, Totals)>) -> R) -> R {
    TOTALS_INDEX.with(|i| {
        let mut i = i.borrow_mut();
        let index = i.get_or_insert_with(|| {
            TOTALS_VEC.with(|v| v.iter().enumerate().map(|(slot, e)| (e.key, (slot as u64, e.totals))).collect())
        });
        f(index)
    })
}

pub(crate) fn totals(key: &str) -> Totals {
    with_totals_index(|i| i.get(key).map(|(_, t)| *t)).unwrap_or_default()
}

fn set_totals(key: &str, totals: Totals) {
    let entry = TotalsEntry { key: key.to_owned(), totals };
    with_totals_index(|i| match i.get_mut(key) {
        Some((slot, t)) => {
            *t = totals;
            TOTALS_VEC.with(|v| v.set(*slot, &entry));
        }
        None => {
            let slot = TOTALS_VEC.with(|v| {
                v.push(&entry);
                v.len() - 1
            });
            i.insert(key.to_owned(), (slot, totals));
        }
    })
}

/// Records a new pending reservation and adds it to its key's totals;
/// returns its id (ids never repeat, across upgrades too).
pub(crate) fn insert_pending(record: Record) -> Result<u64, StepError> {
    let mut t = totals(&record.key);
    t.reserved = t.reserved.checked_add(record.quantity).ok_or(StepError::Overflow)?;
    t.pending_count = t.pending_count.checked_add(1).ok_or(StepError::Overflow)?;
    let id = meta(|m| {
        let id = m.next_id;
        m.next_id += 1;
        m.pending_total += 1;
        id
    });
    if RECORD_VEC.with(|v| v.len()) != id - 1 {
        api::trap(format!("intent storage is damaged: {} records for id {id}", RECORD_VEC.with(|v| v.len())));
    }
    set_totals(&record.key, t);
    if record.ttl_secs.is_some() {
        PENDING_MAP.with(|m| m.borrow_mut().insert(pending_key(record.expires_at(), id), id));
    } else {
        UNTIMED.with(|u| u.borrow_mut().as_mut().map(|set| set.insert(id)));
    }
    RECORD_VEC.with(|v| v.push(&record));
    Ok(id)
}

/// Moves pending reservation `id` to `to` (committed or aborted),
/// updating its key's totals and the pending index.
pub(crate) fn settle(id: u64, to: State) -> Result<Record, StepError> {
    let Some(mut record) = id.checked_sub(1).and_then(|i| RECORD_VEC.with(|v| v.get(i))) else {
        return Err(StepError::NotPending { state: None });
    };
    if record.state != State::Pending {
        return Err(StepError::NotPending { state: Some(record.state) });
    }
    let mut t = totals(&record.key);
    t.reserved = t.reserved.saturating_sub(record.quantity);
    t.pending_count = t.pending_count.saturating_sub(1);
    if to == State::Committed {
        t.committed = t.committed.checked_add(record.quantity).ok_or(StepError::Overflow)?;
    }
    set_totals(&record.key, t);
    if record.ttl_secs.is_some() {
        PENDING_MAP.with(|m| m.borrow_mut().remove(&pending_key(record.expires_at(), id)));
    } else {
        UNTIMED.with(|u| u.borrow_mut().as_mut().map(|set| set.remove(&id)));
    }
    record.state = to;
    RECORD_VEC.with(|v| v.set(id - 1, &record));
    meta(|m| {
        m.pending_total = m.pending_total.saturating_sub(1);
        match to {
            State::Committed => m.committed_total += 1,
            _ => m.aborted_total += 1,
        }
    });
    Ok(record)
}

/// Ids of pending reservations expired at `now` (expiry before `now`).
pub(crate) fn expired(now: u64) -> Vec<u64> {
    PENDING_MAP.with(|m| m.borrow().range(..pending_key(now, 0)).map(|e| e.value()).collect())
}

/// The earliest expiry of a pending reservation, if any expires.
pub(crate) fn next_expiry() -> Option<u64> {
    PENDING_MAP.with(|m| m.borrow().first_key_value()).map(|(k, _)| (k >> 64) as u64).filter(|e| *e != NEVER)
}

/// The record of reservation `id`.
pub(crate) fn record(id: u64) -> Option<Record> {
    id.checked_sub(1).and_then(|i| RECORD_VEC.with(|v| v.get(i)))
}

/// Pending reservations, by id.
pub(crate) fn pending() -> Vec<(u64, Record)> {
    let mut ids: Vec<u64> = PENDING_MAP.with(|m| m.borrow().iter().map(|e| e.value()).collect());
    let untimed = UNTIMED.with(|u| u.borrow().clone()).unwrap_or_else(|| {
        let set: std::collections::BTreeSet<u64> = RECORD_VEC.with(|v| {
            v.iter().enumerate().filter(|(_, r)| r.state == State::Pending && r.ttl_secs.is_none()).map(|(i, _)| i as u64 + 1).collect()
        });
        UNTIMED.with(|u| *u.borrow_mut() = Some(set.clone()));
        set
    });
    ids.extend(untimed);
    let mut out: Vec<(u64, Record)> = ids.into_iter().filter_map(|id| RECORD_VEC.with(|v| v.get(id - 1)).map(|r| (id, r))).collect();
    out.sort_by_key(|(id, _)| *id);
    out
}
