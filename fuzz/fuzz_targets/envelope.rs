#![no_main]
//! `envelope`: see `shared::fuzzing::envelope` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::envelope(data));
