//! Only integration tests (tests/): see Cargo.toml.
