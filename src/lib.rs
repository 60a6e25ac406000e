//! scopegate: downscoped tokens and instant revocation in front of a content API.
//!
//! How a request flows through the modules:
//!
//! - [`server`] accepts connections (plain or [rustls](tls::tls_config)),
//!   and hands each request to [`gateway::Gateway::handle`].
//! - `/oauth2/token` and `/oauth2/revoke` go to [`oauth`]: token exchange
//!   mints a sealed token ([`token`]); revocation goes to [`revocation`].
//! - Every other request runs the phases of [`enforce`]: the [`target`] is
//!   canonicalised (its query read into pairs by [`query`]), the [`policy`]
//!   route matched, the bearer token resolved to
//!   a [`grant`] (cached; external tokens via [`introspect`]), revocation
//!   checked, then scopes ([`scope`]) and the route's object, reading only
//!   what is needed of the body ([`json`], [`upload`]); a downscoped
//!   token's JSON body holds only the fields its route lists
//!   ([`body_fields`]).
//! - An allowed request becomes a [`proxy::Permit`], the only thing
//!   [`proxy::forward`] accepts; it goes out through [`upstream`].
//! - Answers to downscoped tokens are redacted and their URLs pointed at the
//!   gateway ([`answer`], over the pure [`redact`]); `?fields=` is filtered
//!   the same way ([`fields`]).
//! - Refusals are [`error::Rejection`]s, turned into HTTP answers in one place.
//! - Every request ends in one [`access_log`] line.
//! - [`admin`] serves health, readiness, [`metrics`] and admin revocations.
//! - [`app`] assembles a gateway from its files; [`config`] validates them.
//! - [`sample_api`] is a small Box-shaped API for the demo and the tests.
//! - [`ssf`] receives identity providers' Security Event Tokens and turns
//!   them into subject revocations.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod ancestry;
pub mod answer;
pub mod app;
pub mod body;
pub mod body_fields;
pub mod clock;
pub mod config;
pub mod cors;
pub mod demo;
pub mod digest;
pub mod enforce;
pub mod error;
pub mod fields;
pub mod framing;
pub mod gateway;
pub mod grant;
pub mod headers;
pub mod introspect;
pub mod json;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod proxy;
pub mod query;
pub mod ratelimit;
pub mod redact;
pub mod reload;
pub mod revocation;
pub mod sample_api;
pub mod scope;
pub mod server;
pub mod ssf;
pub mod target;
pub mod tls;
pub mod token;
pub mod upload;
pub mod upload_session;
pub mod upstream;
