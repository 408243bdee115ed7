//! An in-process harness for the actor system: no sockets, no database, no broker.
//!
//! ```
//! use actors::testkit::{sample_event, Harness};
//! use actors::{EventType, StreamConfig};
//!
//! # actix::System::new().block_on(async {
//! let harness = Harness::start(StreamConfig::default());
//! let mut phone = harness.attach("u1").await.expect("slot free");
//! let mut other = harness.attach("u2").await.expect("slot free");
//!
//! let event = sample_event("u1", EventType::BadgeEarned);
//! let cursor = harness.publish(&event).await.expect("stored");
//!
//! let got = phone.next_event().await.expect("delivered");
//! assert_eq!(got["eventId"], event.event_id.as_str());
//! assert!(other.no_event_within(std::time::Duration::from_millis(50)).await);
//! # });
//! ```
//!
//! Call [`Harness::start`] inside a running actix `System` (`#[actix::test]`,
//! `#[actix_web::test]`, or `System::new().block_on`).

use crate::bus::{LiveBus, NoBus};
pub mod conformance;

pub use crate::event::sample_data;

use crate::event::{Envelope, EventData, EventType};
use crate::frame::{FrameParser, ParsedFrame};
use crate::journal::{Append, EventJournal, LogError, MemoryLog};
use crate::registry::{CloseAll, Connect, GetStats, SessionRegistry, SseStats};
use crate::session::{Resume, SessionId};
use crate::stream_config::StreamConfig;
use crate::supervisor::ConnectError;
use actix::prelude::*;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the `next_*` helpers wait before giving up.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// A running registry and journal over an in-memory log, with helpers to attach clients and
/// publish.
pub struct Harness {
    registry: Addr<SessionRegistry>,
    journal: Addr<EventJournal>,
    log: Arc<MemoryLog>,
}

impl Harness {
    pub fn start(config: StreamConfig) -> Self {
        Harness::start_shared(config, Arc::new(MemoryLog::new()), Arc::new(NoBus))
    }

    /// One "instance" of several over the same `log`, telling the others over `bus`: what
    /// several router processes on one database are, in-process.
    pub fn start_shared(config: StreamConfig, log: Arc<MemoryLog>, bus: Arc<dyn LiveBus>) -> Self {
        let registry = SessionRegistry::new(config, log.clone())
            .with_bus(bus.clone())
            .start();
        let journal = EventJournal::new(log.clone(), registry.clone().recipient())
            .with_bus(bus)
            .start();
        Harness {
            registry,
            journal,
            log,
        }
    }

    /// The in-memory log, e.g. to switch it off (`set_down(true)`) like a failed database.
    pub fn log(&self) -> Arc<MemoryLog> {
        self.log.clone()
    }

    pub fn journal(&self) -> Addr<EventJournal> {
        self.journal.clone()
    }

    /// The registry, to send it messages directly.
    pub fn registry(&self) -> Addr<SessionRegistry> {
        self.registry.clone()
    }

    /// Opens a live session for `user_id`, as a stream request without a cursor would.
    pub async fn attach(&self, user_id: &str) -> Result<TestClient, ConnectError> {
        self.attach_from(user_id, Resume::Live).await
    }

    /// Opens a session that starts at `resume`, as a reconnect with `Last-Event-ID` would.
    pub async fn attach_from(
        &self,
        user_id: &str,
        resume: Resume,
    ) -> Result<TestClient, ConnectError> {
        let handle = self
            .registry
            .send(Connect {
                home: None,
                lease: None,
                user_id: user_id.to_owned(),
                resume,
                client_gone: None,
            })
            .await
            .map_err(|_| ConnectError::Unavailable)??;
        Ok(TestClient {
            id: handle.id,
            frames: handle.frames,
            parser: FrameParser::new(),
        })
    }

    /// Stores an envelope in the journal, which then delivers it; answers its cursor.
    pub async fn publish(&self, envelope: &Envelope) -> Result<u64, LogError> {
        let appended = self
            .journal
            .send(Append {
                envelope: envelope.clone(),
            })
            .await
            .map_err(|_| LogError::unavailable("journal stopped"))??;
        Ok(appended.seq)
    }

    pub async fn stats(&self) -> SseStats {
        self.registry.send(GetStats).await.unwrap_or_default()
    }

    /// Polls the statistics until `pred` holds; false if it never did within `wait`.
    pub async fn wait_for_stats(&self, wait: Duration, pred: impl Fn(&SseStats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if pred(&self.stats().await) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Closes every session, as a graceful shutdown does.
    pub fn close_all(&self) {
        self.registry.do_send(CloseAll);
    }
}

/// The client end of one session: the frames the HTTP body would have carried.
pub struct TestClient {
    id: SessionId,
    frames: mpsc::Receiver<Bytes>,
    parser: FrameParser,
}

impl TestClient {
    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// The next frame of any kind; `None` when the stream ended or `wait` passed.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<ParsedFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self.parser.next_frame() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(deadline, self.frames.recv())
                .await
                .ok()??;
            self.parser.feed(&chunk);
        }
    }

    pub async fn next_frame(&mut self) -> Option<ParsedFrame> {
        self.next_frame_within(DEFAULT_WAIT).await
    }

    /// The next event envelope as JSON, skipping control frames (welcome, retry, heartbeat,
    /// resync).
    pub async fn next_event(&mut self) -> Option<serde_json::Value> {
        Some(self.next_event_with_cursor().await?.1)
    }

    /// The next event with the cursor from its `id:` line.
    pub async fn next_event_with_cursor(&mut self) -> Option<(u64, serde_json::Value)> {
        loop {
            let frame = self.next_frame().await?;
            if frame.control_type().is_some() {
                continue;
            }
            if let Some(id) = &frame.id {
                return Some((id.parse().ok()?, frame.json()?));
            }
        }
    }

    /// True if no event (control frames aside) arrives within `wait`.
    pub async fn no_event_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame_within(left).await {
                Some(frame) if frame.id.is_some() && frame.control_type().is_none() => {
                    return false
                }
                Some(_) => continue,
                None => return true,
            }
        }
    }

    /// True once the session has closed the stream (draining what was queued), within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// The client goes away, as when a browser tab closes.
    pub fn disconnect(self) {}
}

/// A valid envelope of `event_type` for `user_id`, with a fresh id.
pub fn sample_event(user_id: &str, event_type: EventType) -> Envelope {
    // The samples above are valid by construction; a failure here is a bug in this module.
    let data = EventData::parse(event_type, sample_data(event_type))
        .unwrap_or_else(|e| panic!("sample for {event_type} is invalid: {e}"));
    Envelope::new(user_id, data, "testkit", None)
}
