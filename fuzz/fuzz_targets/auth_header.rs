#![no_main]
//! `auth_header`: see `shared::fuzzing::auth_header` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::auth_header(data));
