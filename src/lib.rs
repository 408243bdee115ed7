//! nft-event-router: routes NFT domain events to people over Server-Sent Events and to
//! services over Kafka. This crate is the edge around the `actors` crate.
//!
//! # Layout
//!
//! * [`acceptor`]: each connection's front door: user streams served on their socket, the rest
//!   handed to actix-web.
//! * [`config`]: typed settings from `config.toml` and `NFT_ROUTER__…` environment overrides.
//! * [`cli`]: the command line (`serve`, `token`, `kafka-cluster`).
//! * [`cluster`]: several instances as one: the live bus on Redis pub/sub, cluster-wide
//!   connection leases, instance reports.
//! * [`auth`]: HS256 JWTs, the [`auth::Principal`] extractor, roles.
//! * [`cache`]: the counter cache, Redis or in-process.
//! * [`error`]: the JSON error shape and its HTTP status mapping.
//! * [`kafka`]: the rdkafka adapter: embedded or real cluster, topics, the idempotent producer,
//!   consumer-group loops with retries and the dead-letter topic.
//! * [`store`]: diesel over SQLite or MySQL: the journal, outbox, consumer tables.
//! * [`routes`]: one file per HTTP route.
//! * [`request_id`]: a request id on every HTTP request, and its log line.
//! * [`logging`]: log lines with key-values, as text or JSON.
//! * [`streams`]: the contract every path that serves a stream keeps (resume point, headers,
//!   the door with its limits).
//! * [`hangup`]: notices an SSE client hanging up on an idle stream; the one module allowed
//!   `unsafe` (four libc epoll calls, each with its safety argument).
//! * [`startup`]: [`startup::Application`], built on a listener and run until a shutdown
//!   future resolves (the tests start exactly this).
//!
//! The actors (sessions, per-user supervisors, the session registry) and the event types live
//! in the `actors` crate; see its crate documentation.

#![deny(unsafe_code)]

pub mod acceptor;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cors;
pub mod error;
pub mod forwarded;
#[allow(unsafe_code)]
pub mod hangup;
pub mod kafka;
pub mod limits;
pub mod logging;
#[cfg(test)]
mod parser_properties;
pub mod reload;
pub mod request_id;
pub mod routes;
pub mod startup;
pub mod store;
pub mod streams;
pub mod tls;
