#![no_main]
//! The check itself lives in `fuzz/checks/session_id.rs`, shared with the stable smoke test.

#[path = "../checks/session_id.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
