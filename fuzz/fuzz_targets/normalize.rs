#![no_main]
//! `normalize`: see `shared::fuzzing::normalize` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::normalize(data));
