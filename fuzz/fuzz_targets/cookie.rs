#![no_main]
//! `cookie`: see `shared::fuzzing::cookie` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::cookie(data));
