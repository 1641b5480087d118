//! The checks behind each fuzz target, one function per target taking arbitrary bytes.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`, nightly) and the stable smoke test
//! (`tests/fuzz_smoke.rs`), so each property is written once. A check panics when it finds a
//! bug; anything else an input does is fine.

pub mod config;
pub mod http_head;
pub mod jsonrpc_envelope;
pub mod session_id;
pub mod sse;
