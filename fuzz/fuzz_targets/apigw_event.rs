#![no_main]
//! `apigw_event`: see `shared::fuzzing::apigw_event` (the regression test replays the same function on stable).

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::apigw_event(data));
