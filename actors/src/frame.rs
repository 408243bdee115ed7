//! SSE frames, encoded once and shared. An event fanned out to many sessions is serialized a
//! single time; each session queues a reference-counted handle to the same bytes.

use crate::event::{EventType, StoredType};
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{SecondsFormat, Utc};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

/// Where resynchronizing clients fetch a fresh snapshot.
pub const SNAPSHOT_URL: &str = "/api/v1/user/nfts";

/// One complete SSE frame (terminated by a blank line), ready to write to a socket. A stored
/// event's frame also carries its cursor (so a session can drop one it already sent), its type
/// when this build knows it (which streams show it, which counter it adds to), and, while it is
/// live, when the journal committed it (where its delivery latency starts). All `Copy` beside
/// the shared bytes, so fanning a frame out to many sessions clones nothing heavier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    seq: Option<u64>,
    event_type: Option<EventType>,
    committed_at: Option<Instant>,
    bytes: Encoded,
}

/// A frame's bytes as they wait in a session's queue: one pointer wide. A bounded queue
/// allocates its first block of slots when it is made, for every open stream, idle or not;
/// with `Bytes` (four words) in each slot that block was over a kilobyte per stream, with a
/// pointer it is a quarter of that. Fanning a frame out still clones a reference count only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(Arc<Bytes>);

impl Deref for Encoded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Encoded> for Bytes {
    /// The bytes themselves when this was the last handle, else a clone of the handle to them.
    fn from(encoded: Encoded) -> Bytes {
        Arc::try_unwrap(encoded.0).unwrap_or_else(|shared| Bytes::clone(&shared))
    }
}

impl Frame {
    fn raw(bytes: Bytes) -> Self {
        Frame {
            seq: None,
            event_type: None,
            committed_at: None,
            bytes: Encoded(Arc::new(bytes)),
        }
    }

    /// A stored event: `id: <seq>` + `data: <envelope json>`. Read back from the store, it is
    /// counted as delivered when a session queues it, but not timed: it was not waiting on us.
    pub fn stored(seq: u64, event_type: &StoredType, json: &str) -> Self {
        let mut frame = Frame::event(&seq.to_string(), json);
        frame.seq = Some(seq);
        frame.event_type = event_type.known();
        frame
    }

    /// The same frame, live: its delivery is timed from `at`, the commit.
    pub fn committed(mut self, at: Instant) -> Self {
        self.committed_at = Some(at);
        self
    }

    /// The type of a stored event's frame, when this build knows it.
    pub fn event_type(&self) -> Option<EventType> {
        self.event_type
    }

    /// When the journal committed a live frame's event.
    pub fn committed_at(&self) -> Option<Instant> {
        self.committed_at
    }

    /// Tells the client its cursor cannot be resumed and where to fetch a snapshot. Carries the
    /// stream's head as its id (when there is one), so the client's next reconnect resumes
    /// from there instead of being told to resync again.
    pub fn resync(head: u64) -> Self {
        let json = serde_json::json!({ "type": "resync", "snapshotUrl": SNAPSHOT_URL }).to_string();
        if head == 0 {
            return Frame::data(&json);
        }
        let mut frame = Frame::event(&head.to_string(), &json);
        frame.seq = Some(head);
        frame
    }

    /// The cursor of a stored event's frame (and of a resync).
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    /// `id: <id>` + `data: <json>`. Unnamed, so `EventSource.onmessage` receives it.
    /// `json` must be a single line (compact serde_json output is).
    pub fn event(id: &str, json: &str) -> Self {
        let mut b = BytesMut::with_capacity(id.len() + json.len() + 13);
        b.put_slice(b"id: ");
        b.put_slice(id.as_bytes());
        b.put_slice(b"\ndata: ");
        b.put_slice(json.as_bytes());
        b.put_slice(b"\n\n");
        Frame::raw(b.freeze())
    }

    /// `data: <json>` without an id: control messages that must not move the client's
    /// `Last-Event-ID`.
    pub fn data(json: &str) -> Self {
        let mut b = BytesMut::with_capacity(json.len() + 8);
        b.put_slice(b"data: ");
        b.put_slice(json.as_bytes());
        b.put_slice(b"\n\n");
        Frame::raw(b.freeze())
    }

    /// The reconnection delay hint, sent once per stream.
    pub fn retry(millis: u64) -> Self {
        Frame::raw(Bytes::from(format!("retry: {millis}\n\n")))
    }

    /// The last frame of a stream whose token expired: reconnect with a fresh token, resuming
    /// with `Last-Event-ID`.
    pub fn token_expired() -> Self {
        let json = serde_json::json!({
            "type": "token_expired",
            "timestamp": now_rfc3339(),
            "message": "the stream's token expired: reconnect with a fresh token",
        });
        Frame::data(&json.to_string())
    }

    /// The first frame on every stream.
    pub fn connection_established(user_id: &str) -> Self {
        let json = serde_json::json!({
            "type": "connection_established",
            "userId": user_id,
            "timestamp": now_rfc3339(),
            "message": "NFT event stream connected successfully",
        });
        Frame::data(&json.to_string())
    }

    /// The heartbeat frame; carries no id.
    pub fn heartbeat() -> Self {
        let json = serde_json::json!({
            "type": "heartbeat",
            "timestamp": now_rfc3339(),
        });
        Frame::data(&json.to_string())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes as a session queues them.
    pub fn into_encoded(self) -> Encoded {
        self.bytes
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A frame as a client parses it, per the EventSource processing model (the subset the router
/// emits: `id`, `event`, `data`, `retry`, comments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFrame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
}

impl ParsedFrame {
    /// The `data` parsed as JSON, if there is data and it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        self.data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
    }

    /// The `type` field of a control message (`heartbeat`, `connection_established`, …).
    pub fn control_type(&self) -> Option<String> {
        self.json()?.get("type")?.as_str().map(str::to_owned)
    }
}

/// Incremental SSE parser: feed it bytes as they arrive, take complete frames out.
#[derive(Debug, Default)]
pub struct FrameParser {
    buf: Vec<u8>,
}

impl FrameParser {
    pub fn new() -> Self {
        FrameParser::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if a blank line has arrived.
    pub fn next_frame(&mut self) -> Option<ParsedFrame> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&raw[..end]);
        let mut frame = ParsedFrame::default();
        for line in text.split('\n') {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "retry" => frame.retry = value.parse().ok(),
                "data" => match &mut frame.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => frame.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_frame_is_one_pointer_and_shares_its_bytes() {
        assert_eq!(std::mem::size_of::<Encoded>(), std::mem::size_of::<usize>());
        let frame = Frame::data("{}");
        let queued = [frame.clone().into_encoded(), frame.clone().into_encoded()];
        assert_eq!(queued[0].as_ptr(), queued[1].as_ptr());
        let [first, second] = queued;
        let shared = Bytes::from(first);
        assert_eq!(shared.as_ptr(), second.as_ptr());
        drop(frame);
        let last = Bytes::from(second);
        assert_eq!(&last[..], b"data: {}\n\n");
    }

    #[test]
    fn event_frame_round_trips() {
        let f = Frame::event("42", r#"{"a":1}"#);
        assert_eq!(f.bytes(), b"id: 42\ndata: {\"a\":1}\n\n");
        let mut p = FrameParser::new();
        p.feed(&f.bytes()[..5]);
        assert!(p.next_frame().is_none());
        p.feed(&f.bytes()[5..]);
        let parsed = p.next_frame().expect("frame");
        assert_eq!(parsed.id.as_deref(), Some("42"));
        assert_eq!(parsed.json(), Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn control_frames_carry_no_id() {
        let mut p = FrameParser::new();
        p.feed(Frame::heartbeat().bytes());
        p.feed(Frame::retry(3000).bytes());
        let hb = p.next_frame().expect("heartbeat");
        assert_eq!(hb.id, None);
        assert_eq!(hb.control_type().as_deref(), Some("heartbeat"));
        assert_eq!(p.next_frame().expect("retry").retry, Some(3000));
    }
}
