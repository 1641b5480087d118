#![no_main]
//! The check itself lives in `fuzz/checks/config.rs`, shared with the stable smoke test.

#[path = "../checks/config.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
