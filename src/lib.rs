//! nft-event-router: routes NFT domain events to people over Server-Sent Events and (in later
//! stages) to services over Kafka. This crate is the edge around the `actors` crate.
//!
//! # Layout
//!
//! * [`config`]: typed settings from `config.toml` and `NFT_ROUTER__…` environment overrides.
//! * [`cli`]: the command line (`serve`, `token`).
//! * [`auth`]: HS256 JWTs, the [`auth::Principal`] extractor, roles.
//! * [`error`]: the JSON error shape and its HTTP status mapping.
//! * [`routes`]: one file per HTTP route.
//! * [`peer`]: notices an SSE client hanging up on an idle stream.
//! * [`startup`]: [`startup::Application`], built on a listener and run until a shutdown
//!   future resolves (the tests start exactly this).
//!
//! The actors (sessions, per-user supervisors, the session registry) and the event types live
//! in the `actors` crate; see its crate documentation.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod peer;
pub mod routes;
pub mod startup;
pub mod store;
