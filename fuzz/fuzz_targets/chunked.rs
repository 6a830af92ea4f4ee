#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| http_server::fuzzing::chunked(data));
