//! Writes the ballast `cdk_big` embeds: `BALLAST_LEN` bytes of an xorshift64
//! stream (incompressible, so neither the linker nor gzip shrinks the module
//! below the pocket-ic client's 2 MB chunked-install threshold). The tests
//! (tests/pocket-ic) regenerate the same bytes to check `ballast_digest`:
//! keep the generator here and there identical.

use std::io::Write;
use std::path::PathBuf;

/// 2.5 MiB.
const BALLAST_LEN: usize = 2_621_440;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

fn main() {
    let mut x = SEED;
    let mut bytes = Vec::with_capacity(BALLAST_LEN);
    while bytes.len() < BALLAST_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(BALLAST_LEN);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("ballast.bin");
    std::fs::File::create(&out)
        .and_then(|mut f| f.write_all(&bytes))
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    println!("cargo:rerun-if-changed=build.rs");
}
