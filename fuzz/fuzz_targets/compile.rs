#![no_main]
//! cargo +nightly fuzz run compile (see docs/fuzzing.md)

libfuzzer_sys::fuzz_target!(|data: &[u8]| molt::fuzzing::source(data));
