//! The chunked body decoder of the lean HTTP/1.1 exchange: the same data and
//! verdict however the bytes are split into reads. See
//! `scopegate::upstream::fuzzing::chunked`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scopegate::upstream::fuzzing::chunked(data);
});
