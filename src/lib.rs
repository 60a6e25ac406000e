//! scopegate: downscoped tokens and instant revocation in front of a content API.
#![forbid(unsafe_code)]

pub mod clock;
pub mod digest;
pub mod revocation;
pub mod sample_api;
pub mod scope;
