//! The client end of a session in the harness: the frames the HTTP body would have carried,
//! parsed, with waits that answer typed results and, when they fail, what was last seen.

use super::DEFAULT_WAIT;
use crate::event::EventType;
use crate::frame::{Encoded, FrameParser, ParsedFrame};
use crate::session::SessionId;
use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;

/// A wait of the harness that ran out: what it waited for, how long, and the last thing it
/// saw, so a failing test says where delivery stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {what} within {waited:?}; last seen: {last_seen}")]
pub struct Timeout {
    pub what: String,
    pub waited: Duration,
    pub last_seen: String,
}

/// An event as a stream delivered it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The `id:` line: the cursor to resume after this event.
    pub cursor: u64,
    pub event_id: String,
    /// `None` for a type this build does not know.
    pub event_type: Option<EventType>,
    /// The whole envelope.
    pub json: serde_json::Value,
}

pub struct TestClient {
    pub(super) id: SessionId,
    pub(super) frames: mpsc::Receiver<Encoded>,
    pub(super) parser: FrameParser,
    /// The last frame parsed, rendered short, for [`Timeout::last_seen`].
    pub(super) last: Option<String>,
}

impl TestClient {
    pub(super) fn new(id: SessionId, frames: mpsc::Receiver<Encoded>) -> Self {
        TestClient {
            id,
            frames,
            parser: FrameParser::new(),
            last: None,
        }
    }

    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// The next frame of any kind; `None` when the stream ended or `wait` passed.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<ParsedFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self.parser.next_frame() {
                self.last = Some(render(&frame));
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

    /// The next event (control frames skipped), or a [`Timeout`] naming the last frame seen.
    pub async fn expect_event_within(&mut self, wait: Duration) -> Result<ReceivedEvent, Timeout> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.next_frame_within(left).await else {
                return Err(self.timeout("event", wait));
            };
            if frame.control_type().is_some() {
                continue;
            }
            let (Some(id), Some(json)) = (frame.id.as_deref(), frame.json()) else {
                continue;
            };
            let Ok(cursor) = id.parse() else {
                continue;
            };
            return Ok(ReceivedEvent {
                cursor,
                event_id: json["eventId"].as_str().unwrap_or_default().to_owned(),
                event_type: json["eventType"].as_str().and_then(|t| t.parse().ok()),
                json,
            });
        }
    }

    pub async fn expect_event(&mut self) -> Result<ReceivedEvent, Timeout> {
        self.expect_event_within(DEFAULT_WAIT).await
    }

    /// The next `n` events, in order, or a [`Timeout`] saying how many came and the last frame.
    pub async fn expect_events(&mut self, n: usize) -> Result<Vec<ReceivedEvent>, Timeout> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self.expect_event().await {
                Ok(event) => got.push(event),
                Err(mut timeout) => {
                    timeout.what = format!("event {} of {n}", got.len() + 1);
                    return Err(timeout);
                }
            }
        }
        Ok(got)
    }

    /// The next event envelope as JSON, skipping control frames (welcome, retry, heartbeat,
    /// resync).
    pub async fn next_event(&mut self) -> Option<serde_json::Value> {
        self.expect_event().await.ok().map(|e| e.json)
    }

    /// The next event with the cursor from its `id:` line.
    pub async fn next_event_with_cursor(&mut self) -> Option<(u64, serde_json::Value)> {
        self.expect_event().await.ok().map(|e| (e.cursor, e.json))
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

    fn timeout(&self, what: &str, waited: Duration) -> Timeout {
        Timeout {
            what: what.to_owned(),
            waited,
            last_seen: self
                .last
                .clone()
                .unwrap_or_else(|| "no frame at all".to_owned()),
        }
    }
}

/// A frame in one line: its id and the start of its data.
fn render(frame: &ParsedFrame) -> String {
    let data = frame.data.as_deref().unwrap_or("");
    let data: String = data.chars().take(160).collect();
    match &frame.id {
        Some(id) => format!("frame id {id}: {data}"),
        None => format!("frame without id: {data}"),
    }
}

impl fmt::Display for ReceivedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {} at cursor {}", self.event_id, self.cursor)
    }
}
