#![no_main]
//! The check itself lives in `fuzz/checks/jsonrpc_envelope.rs`, shared with the stable smoke test.

#[path = "../checks/jsonrpc_envelope.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
