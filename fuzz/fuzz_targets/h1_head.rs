//! The upstream answer's head and the framing decision of the lean HTTP/1.1
//! exchange (`upstream::h1`): `data[0]` picks the request method, `data[1]`
//! a split point, the rest is what the upstream sent. See
//! `scopegate::upstream::fuzzing::answer_head` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scopegate::upstream::fuzzing::answer_head(data);
});
