//! scopegate: downscoped tokens and instant revocation in front of a content API.
//!
//! How a request flows through the modules:
//!
//! - [`server`] accepts connections (plain or [rustls](server::tls_config)),
//!   and hands each request to [`gateway::Gateway::handle`].
//! - `/oauth2/token` and `/oauth2/revoke` go to [`oauth`]: token exchange
//!   mints a sealed token ([`token`]); revocation goes to [`revocation`].
//! - Every other request runs the phases of [`enforce`]: the [`target`] is
//!   canonicalised, the [`policy`] route matched, the bearer token resolved to
//!   a [`grant`] (cached; external tokens via [`introspect`]), revocation
//!   checked, then scopes ([`scope`]) and the route's object, reading only
//!   what is needed of the body ([`json`], [`upload`]).
//! - An allowed request becomes a [`proxy::Permit`], the only thing
//!   [`proxy::forward`] accepts; it goes out through [`upstream`].
//! - Refusals are [`error::Rejection`]s, turned into HTTP answers in one place.
//! - Every request ends in one [`access_log`] line.
//! - [`admin`] serves health, readiness, [`metrics`] and admin revocations.
//! - [`app`] assembles a gateway from its files; [`config`] validates them.
//! - [`sample_api`] is a small Box-shaped API for the demo and the tests.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod ancestry;
pub mod app;
pub mod body;
pub mod clock;
pub mod config;
pub mod cors;
pub mod demo;
pub mod digest;
pub mod enforce;
pub mod error;
pub mod gateway;
pub mod grant;
pub mod introspect;
pub mod json;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod revocation;
pub mod sample_api;
pub mod scope;
pub mod server;
pub mod target;
pub mod token;
pub mod upload;
pub mod upload_session;
pub mod upstream;
