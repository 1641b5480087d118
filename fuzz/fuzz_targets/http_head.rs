#![no_main]
//! The check itself lives in `fuzz/checks/http_head.rs`, shared with the stable smoke test.

#[path = "../checks/http_head.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
