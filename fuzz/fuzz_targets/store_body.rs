#![no_main]
//! `store_body`: see `shared::fuzzing::store_body` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::store_body(data));
