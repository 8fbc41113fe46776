#![no_main]
//! cargo +nightly fuzz run update (see docs/fuzzing.md)

libfuzzer_sys::fuzz_target!(|data: &[u8]| molt::fuzzing::update(data));
