//! Which node hosts which canister: each node is a subnet owning one range
//! of canister ids (by index, see [`crate::replica::canister_index`]).
//! A node's range comes from its image's `etc/canister-range` or is derived
//! from its peer id ([`derived_range`]); nodes announce their ranges when a
//! stream opens, and a range that overlaps this node's or another peer's
//! is refused ([`RoutingTable::admit`]), so every id routes to one node.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use candid::Principal;
use libp2p::PeerId;
use sha2::{Digest, Sha256};

use crate::replica::canister_index;

/// Canister ids per derived range (as many as one replica's default subnet).
pub const RANGE_SIZE: u64 = 1 << 20;
/// Derived ranges are slots of [`RANGE_SIZE`] ids from here; slot 1 is the
/// range of a node without a network
/// ([`crate::replica::DEFAULT_CANISTER_RANGE`]), so slots start at 2.
const SLOTS_BASE: u64 = 0x8000_0000_0000_0000;
const FIRST_SLOT: u64 = 2;
/// How many slots a peer id may hash to.
const SLOTS: u64 = 1 << 20;

/// A range of canister indexes, both ends included.
pub type CanisterRange = RangeInclusive<u64>;

/// The range a node with `peer` as its id owns when its image sets none.
pub fn derived_range(peer: &PeerId) -> CanisterRange {
    let digest = Sha256::new().chain_update(b"ww canister range\0").chain_update(peer.to_bytes()).finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let slot = FIRST_SLOT + u64::from_be_bytes(head) % SLOTS;
    let start = SLOTS_BASE + slot * RANGE_SIZE;
    start..=start + (RANGE_SIZE - 1)
}

/// The subnet id of the node with `peer` as its id (`ic0.subnet_self`).
pub fn subnet_of(peer: &PeerId) -> Principal {
    Principal::self_authenticating(peer.to_bytes())
}

/// Parses `START-END` (decimal or `0x` hex canister indexes), as
/// `etc/canister-range` holds it.
pub fn parse_range(text: &str) -> Result<CanisterRange, String> {
    let text = text.trim();
    let (a, b) = text.split_once('-').ok_or_else(|| format!("'{text}' is not START-END"))?;
    let num = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
            None => s.replace('_', "").parse(),
        }
        .map_err(|e| format!("'{s}' is not a canister index: {e}"))
    };
    let (start, end) = (num(a)?, num(b)?);
    if start > end {
        return Err(format!("the range {start:#x}-{end:#x} is empty"));
    }
    Ok(start..=end)
}

/// Why a peer's range was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeConflict {
    #[error("its canister range {theirs} overlaps this node's {ours}")]
    Local { theirs: String, ours: String },
    #[error("its canister range {theirs} overlaps {ours} of peer {other}")]
    Peer { theirs: String, ours: String, other: PeerId },
}

fn show(r: &CanisterRange) -> String {
    format!("{:#x}-{:#x}", r.start(), r.end())
}

fn overlaps(a: &CanisterRange, b: &CanisterRange) -> bool {
    a.start() <= b.end() && b.start() <= a.end()
}

/// This node's range and the ranges its peers announced.
#[derive(Debug)]
pub struct RoutingTable {
    local: CanisterRange,
    peers: BTreeMap<PeerId, CanisterRange>,
}

impl RoutingTable {
    pub fn new(local: CanisterRange) -> Self {
        Self { local, peers: BTreeMap::new() }
    }

    pub fn local(&self) -> &CanisterRange {
        &self.local
    }

    /// Records `peer`'s range unless it overlaps this node's or another
    /// peer's (a peer may announce its own range again).
    pub fn admit(&mut self, peer: PeerId, range: CanisterRange) -> Result<(), RangeConflict> {
        if overlaps(&range, &self.local) {
            return Err(RangeConflict::Local { theirs: show(&range), ours: show(&self.local) });
        }
        if let Some((other, r)) = self.peers.iter().find(|(p, r)| **p != peer && overlaps(&range, r)) {
            return Err(RangeConflict::Peer { theirs: show(&range), ours: show(r), other: *other });
        }
        self.peers.insert(peer, range);
        Ok(())
    }

    /// The peer whose range holds `canister` (never this node).
    pub fn route(&self, canister: &Principal) -> Option<PeerId> {
        let index = canister_index(canister)?;
        self.peers.iter().find(|(_, r)| r.contains(&index)).map(|(p, _)| *p)
    }

    /// Whether `peer` announced a range (it opened a stream with this node).
    pub fn announced(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Whether `canister` is in `peer`'s announced range.
    pub fn hosted_by(&self, peer: &PeerId, canister: &Principal) -> bool {
        canister_index(canister).is_some_and(|i| self.peers.get(peer).is_some_and(|r| r.contains(&i)))
    }

    /// Every known range: this node's first (with `None`), then the peers'.
    pub fn ranges(&self) -> Vec<(Option<PeerId>, CanisterRange)> {
        std::iter::once((None, self.local.clone())).chain(self.peers.iter().map(|(p, r)| (Some(*p), r.clone()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::canister_id;

    #[test]
    fn derived_ranges_are_stable_and_outside_the_default_range() {
        let p = PeerId::random();
        assert_eq!(derived_range(&p), derived_range(&p));
        let r = derived_range(&p);
        assert_eq!(r.end() - r.start() + 1, RANGE_SIZE);
        assert!(!overlaps(&r, &crate::replica::DEFAULT_CANISTER_RANGE));
        assert_ne!(derived_range(&PeerId::random()), r, "another peer, another slot (1 in 2^20 to collide)");
    }

    #[test]
    fn overlapping_ranges_are_refused_and_ids_route_to_their_owner() {
        let mut t = RoutingTable::new(100..=199);
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(matches!(t.admit(a, 150..=250), Err(RangeConflict::Local { .. })));
        t.admit(a, 200..=299).unwrap();
        t.admit(a, 200..=299).unwrap();
        let err = t.admit(b, 299..=400).unwrap_err();
        assert_eq!(err, RangeConflict::Peer { theirs: "0x12b-0x190".into(), ours: "0xc8-0x12b".into(), other: a });
        t.admit(b, 300..=400).unwrap();
        assert_eq!(t.route(&canister_id(250)), Some(a));
        assert_eq!(t.route(&canister_id(300)), Some(b));
        assert_eq!(t.route(&canister_id(150)), None, "this node's own");
        assert_eq!(t.route(&Principal::anonymous()), None);
        assert!(t.hosted_by(&b, &canister_id(400)) && !t.hosted_by(&b, &canister_id(250)));
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("0x10-0x1f\n"), Ok(16..=31));
        assert_eq!(parse_range("5 - 9"), Ok(5..=9));
        assert!(parse_range("9-5").unwrap_err().contains("empty"));
        assert!(parse_range("x").unwrap_err().contains("START-END"));
        assert!(parse_range("1-zz").unwrap_err().contains("not a canister index"));
    }
}
