//! The replica: canisters with IC message semantics.
pub mod exec;
pub mod memory;
pub mod stable;
pub mod types;
