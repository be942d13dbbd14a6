//! See ctprep_core::fuzzing::roundtrip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ctprep_core::fuzzing::roundtrip(data));
