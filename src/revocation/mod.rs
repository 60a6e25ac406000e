//! Revocation: what has been revoked, how the proxy checks it, and how it
//! survives a restart.
//!
//! - [`event`]: the [`Event`] and its JSON wire format, shared with the Redis
//!   stream and with other systems that append revocations.
//! - [`state`]: [`RevocationState`], the in-memory set behind the one check
//!   every request runs ([`RevocationState::is_revoked`]).
//! - [`log`]: [`RevocationLog`], the embedded append-only file that makes a
//!   revocation durable before the revoker gets its answer, and is compacted
//!   as the tokens it covers expire.
//! - [`stream`]: fleet mode over a Redis stream; each replica also keeps the
//!   log above as its own durable copy, with an [`outbox`] for what Redis
//!   refused and an [`epoch`] that tells a complete stream from a lost one.
//! - [`service`]: [`Revocations`], which keeps state, sink and cache in step.
//!
//! The intended flow for a revocation: validate, `state.apply(&ev)`, then
//! `log.append(&ev).await`, then answer. Applying first means the gateway
//! refuses the token even if the write fails, and it is what makes
//! [`RevocationLog::compact_with`] safe against racing revocations. On start:
//! `RevocationLog::open`, apply every replayed event, then `sweep(now)`.

pub mod event;
pub mod log;
pub mod state;

pub use event::{Event, EventError, Source, Target};
pub use log::{LogError, Replay, RevocationLog};
pub use state::{Checked, Counts, RevocationState};
pub mod epoch;
pub mod outbox;
pub mod service;
pub mod stream;
pub use service::Revocations;
