#![no_main]
//! cargo +nightly fuzz run mbc (see docs/fuzzing.md)

libfuzzer_sys::fuzz_target!(|data: &[u8]| molt::fuzzing::mbc(data));
