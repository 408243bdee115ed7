//! A load generator for nft-event-router: it holds many Server-Sent Events streams open,
//! publishes events at a fixed rate through the HTTP publish API, and reports what arrived,
//! how late, and what it cost the server in memory.
//!
//! It is a library so that the test suite can run a small scenario in-process against the
//! real router (`tests/smoke.rs`); `src/main.rs` is a thin command line over [`run_blocking`].
//!
//! Each event carries its send time (microseconds since the UNIX epoch, in
//! `data.previousVolume` of a `volume_milestone_reached` event) and its index in the run
//! (`data.currentVolume`), so a subscriber computes publish→receive latency from the frame
//! alone and knows which user the event was for (event `i` goes to user `i % users`).
//!
//! # Layout
//!
//! * [`scenario`]: what to run ([`Scenario`]) and where ([`scenario::Target`]), validated.
//! * [`subscriber`]: one task per SSE connection: bind a 127.0.0.x source address, connect,
//!   send a hand-written HTTP/1.1 request, parse frames as they stream in, check cursor order.
//! * [`http1`]: the minimal HTTP/1.1 client side those tasks need: the request, the response
//!   head, and a streaming chunked-transfer decoder.
//! * [`sse`]: a streaming SSE frame parser that never copies a complete line.
//! * [`publisher`]: paces `POST /api/v1/events` (or nchan's or Pushpin's publish request) at
//!   the target rate over a small keep-alive pool and counts what was accepted, per user.
//! * [`kafka`]: with `--kafka-brokers`, a consumer on the topics the published event type is
//!   routed to: publish → record on the broker, beside publish → first SSE frame.
//! * [`grip_origin`]: the GRIP origin behind Pushpin (binary `grip-origin`) for the
//!   side-by-side runs against Pushpin and nchan (`--target`, `bench/run.sh`).
//! * [`token`]: mints the HS256 tokens the router expects.
//! * [`probe`]: clocks, the server's RSS and our own CPU time from `/proc`.
//! * [`report`]: the figures, as a human summary and as JSON.
//! * [`runner`]: the phases of a run (connect, publish or hold, drain, stop) tied together.

#![forbid(unsafe_code)]

pub mod grip_origin;
pub mod http1;
pub mod kafka;
pub mod probe;
pub mod publisher;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sse;
pub mod subscriber;
pub mod token;

pub use report::Report;
pub use runner::{run, run_blocking};
pub use scenario::Scenario;
