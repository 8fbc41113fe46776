#![no_main]
//! cargo +nightly fuzz run control (see docs/fuzzing.md)

libfuzzer_sys::fuzz_target!(|data: &[u8]| molt::fuzzing::control(data));
