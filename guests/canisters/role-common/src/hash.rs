//! Small deterministic hashes (the same on every replica and every run):
//! FNV-1a for checksums and a mixed variant for rendezvous hashing.

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The SplitMix64 finalizer: spreads FNV's weak low bits over the word.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The rendezvous (highest-random-weight) score of `key` on `node`: the
/// node with the highest score owns the key, and adding a node moves only
/// the keys the new node wins.
pub fn rendezvous_score(node: &[u8], key: &[u8]) -> u64 {
    let mut h = fnv1a64(node);
    // Length-prefix the node so (node, key) pairs cannot collide by shifting bytes.
    h = mix64(h ^ node.len() as u64);
    for b in key {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}
