//! The actors of nft-event-router and their typed messages.
//!
//! Everything here runs in-process on an actix `System` without a database, cache or broker,
//! which is what makes the `testkit` possible. The HTTP edge, storage and broker adapters live in
//! the router crate and talk to these actors only through the messages defined beside them.
//!
//! # Layout
//!
//! * [`event`]: the envelope, the closed set of event types and their typed payloads, and the
//!   validation that turns untrusted JSON into them (errors name the offending field).
//! * [`frame`]: SSE frames encoded once and shared by every session that receives them, and a
//!   client-side parser.
//! * [`journal`]: the durable per-user event log as a port ([`EventLog`]), `EventJournal` (the
//!   single, batching writer that stores an event before anyone hears of it) and
//!   `RetentionPruner`.
//! * [`session`]: `SseSession`, one actor per open stream. Owns the bounded queue feeding the
//!   HTTP body; catches up from the journal after a cursor, then goes live without gaps or
//!   duplicates; closes itself when the client leaves or reads too slowly.
//! * [`supervisor`]: `UserSupervisor`, one actor per connected user. Enforces the per-user
//!   connection limit and fans frames out to the user's sessions.
//! * [`registry`]: `SessionRegistry`, user id → supervisor. Creates and retires supervisors,
//!   routes published frames, answers connection statistics.
//! * [`bus`]: the live bus between router instances as a port ([`bus::LiveBus`]; [`bus::NoBus`]
//!   for one instance). A fast path only: cursors and the store make up for what it drops.
//! * [`sweeper`]: `HeadSweeper`, which compares the journal's stream heads with what this
//!   instance's supervisors saw, so an event whose bus message was lost still arrives.
//! * [`stream_config`]: the stream tunables shared by the three actors above.
//! * [`metrics`]: the Prometheus collectors of one router (a handle, never a global) behind
//!   `GET /metrics`, and the [`MetricsSnapshot`](metrics::MetricsSnapshot) the alerts are
//!   evaluated on.
//! * `testkit` (feature `testkit`): an in-process harness that wires all of the above, and
//!   the conformance suite every adapter of the ports passes.
//!
//! # Lifecycle
//!
//! Publish: `Append` → `EventJournal` stores it (cursor assigned in the same transaction) →
//! `Publish` → registry → `Fanout` → supervisor → `Deliver` → each session → bounded queue.
//!
//! `Connect` → registry → `OpenSession` → supervisor reserves a slot and starts the session →
//! session sends `SessionStarted` → … → session stops and sends `SessionEnded { reason }` →
//! supervisor with no sessions left sends `SupervisorIdle` → registry retires it.

#![forbid(unsafe_code)]

/// Mailbox capacity of the actors every request goes through (registry, journal): large enough
/// that `send` never waits for room under a burst, yet far below actix's limit (its sender
/// count shares the same bound, so "unbounded" would make every new `Addr` clone panic).
pub const MAILBOX_CAPACITY: usize = 1 << 20;

pub mod bus;
pub mod consumers;
pub mod domain;
pub mod event;
pub mod frame;
pub mod journal;
pub mod metrics;
pub mod monitoring;
pub mod operations_feed;
pub mod outbox;
pub mod registry;
pub mod routing;
pub mod session;
pub mod stream_config;
pub mod supervisor;
pub mod sweeper;
#[cfg(feature = "testkit")]
pub mod testkit;

/// The README's Rust examples, compiled and run as this crate's doctests.
#[cfg(all(doctest, feature = "testkit"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

pub use event::{Envelope, EventData, EventType};
pub use frame::{Encoded, Frame};
pub use journal::{EventJournal, EventLog};
pub use registry::{Connect, Publish, SessionRegistry, SseStats};
pub use session::{EndReason, Resume};
pub use stream_config::StreamConfig;
pub use supervisor::{ConnectError, SessionHandle};
