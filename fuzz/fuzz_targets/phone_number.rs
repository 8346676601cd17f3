#![no_main]
//! `phone_number`: see `shared::fuzzing::phone_number` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::phone_number(data));
