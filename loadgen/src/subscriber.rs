//! One task per SSE connection. It connects from its own loopback source address, sends its
//! request, reports whether the stream was accepted, then reads frames until told to stop,
//! recording each event's latency and checking that cursors only go up.

use crate::http1::{self, BodyDecoder};
use crate::probe::Clock;
use crate::sse::{Frame, SseParser};
use hdrhistogram::Histogram;
use memchr::memmem::Finder;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

/// Read buffer of one connection; frames of the router are a few hundred bytes.
const READ_BUF: usize = 4096;
/// Latency histograms are sharded by connection so that recording rarely contends.
const SHARDS: usize = 16;
/// Highest latency recorded exactly, in microseconds (larger values are clamped to it).
const MAX_LATENCY_US: u64 = 600_000_000;

pub(crate) static SENT_AT: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"previousVolume\":"));
pub(crate) static EVENT_INDEX: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"currentVolume\":"));
/// The per-user sequence the publisher puts in a peer's events (nchan sets its own `id:`).
static PEER_SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"lgSeq\":"));
static RESYNC: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\":\"resync\""));

/// State every subscriber updates and the runner reads while the run goes on.
pub struct Shared {
    pub clock: Clock,
    pub users: usize,
    /// Streams open now.
    pub held: AtomicU64,
    /// Streams open now, per user: what an event for that user should reach.
    pub held_per_user: Vec<AtomicU32>,
    /// Event frames received (the loadgen's own events and any other).
    pub event_frames: AtomicU64,
    /// The run's own events received, on every connection.
    pub deliveries: AtomicU64,
    /// Frames without an `id:`: welcome, retry, heartbeats.
    pub control_frames: AtomicU64,
    /// Per event index, when its first frame arrived on any connection (`u64::MAX`: not yet).
    /// Empty unless the Kafka path is measured, which sets it beside the broker's record.
    pub first_frame_us: Vec<AtomicU64>,
    latency_shards: Vec<Mutex<Histogram<u64>>>,
}

impl Shared {
    pub fn new(users: usize, clock: Clock) -> anyhow::Result<Self> {
        let mut shards = Vec::with_capacity(SHARDS);
        for _ in 0..SHARDS {
            shards.push(Mutex::new(latency_histogram()?));
        }
        Ok(Shared {
            clock,
            users,
            held: AtomicU64::new(0),
            held_per_user: (0..users).map(|_| AtomicU32::new(0)).collect(),
            event_frames: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            control_frames: AtomicU64::new(0),
            first_frame_us: Vec::new(),
            latency_shards: shards,
        })
    }

    /// Also notes when the first frame of each of the first `events` events arrives.
    pub fn with_first_frames(mut self, events: usize) -> Self {
        self.first_frame_us = (0..events).map(|_| AtomicU64::new(u64::MAX)).collect();
        self
    }

    fn record_latency(&self, shard: usize, micros: u64) {
        let mut histogram = self.latency_shards[shard % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        histogram.saturating_record(micros.max(1));
    }

    /// Every shard's latencies in one histogram.
    pub fn latencies(&self) -> anyhow::Result<Histogram<u64>> {
        let mut all = latency_histogram()?;
        for shard in &self.latency_shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            all.add(&*shard)
                .map_err(|e| anyhow::anyhow!("merging latency histograms: {e:?}"))?;
        }
        Ok(all)
    }
}

pub(crate) fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| anyhow::anyhow!("creating a latency histogram: {e:?}"))
}

/// Which connection this is and whom it is for.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    pub index: usize,
    pub user: usize,
    pub server: SocketAddr,
    pub source: Option<SocketAddr>,
    /// The complete HTTP request to send.
    pub request: Arc<[u8]>,
    pub timeout: Duration,
    /// Stop reading once accepted (a slow client): the server's buffers and policy take it.
    pub stalled: bool,
}

/// Why a connection did not become a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    Bind(std::io::ErrorKind),
    Connect(std::io::ErrorKind),
    Timeout,
    /// The server answered, but not with 200.
    Status(u16),
    BadResponse(String),
}

impl ConnectFailure {
    /// A short label to count failures by.
    pub fn label(&self) -> String {
        match self {
            ConnectFailure::Bind(kind) => format!("bind: {kind}"),
            ConnectFailure::Connect(kind) => format!("connect: {kind}"),
            ConnectFailure::Timeout => "timeout".to_owned(),
            ConnectFailure::Status(code) => format!("HTTP {code}"),
            ConnectFailure::BadResponse(what) => format!("bad response: {what}"),
        }
    }
}

/// How the connect attempt of connection `index` ended; each task sends exactly one.
#[derive(Debug)]
pub struct ConnectOutcome {
    pub index: usize,
    pub result: Result<(), ConnectFailure>,
}

/// What one connection saw, handed back when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnStats {
    pub user: usize,
    pub connected: bool,
    /// The loadgen's events received (each counted once per frame).
    pub received: u64,
    /// Frames whose cursor equals the previous one.
    pub duplicates: u64,
    /// Frames whose cursor is lower than the previous one.
    pub out_of_order: u64,
    /// Loadgen events meant for another user.
    pub misrouted: u64,
    /// Event frames that are not the loadgen's (no send time or index), or have no numeric id.
    pub foreign: u64,
    /// `resync` frames: the server could not resume exactly.
    pub resyncs: u64,
    /// The stream ended (closed, reset, or broken framing) before the run told it to stop.
    pub ended_early: bool,
    pub last_cursor: Option<u64>,
    /// It stopped reading on purpose: its deliveries are not counted.
    pub stalled: bool,
}

/// Runs connection `spec` until `stop` turns true or the stream ends.
pub async fn subscribe(
    spec: ConnSpec,
    shared: Arc<Shared>,
    outcomes: mpsc::UnboundedSender<ConnectOutcome>,
    mut stop: watch::Receiver<bool>,
) -> ConnStats {
    let mut stats = ConnStats {
        user: spec.user,
        ..ConnStats::default()
    };
    let mut buf = vec![0u8; READ_BUF];
    let opened = tokio::time::timeout(spec.timeout, open(&spec, &mut buf)).await;
    let (mut stream, head, body_start) = match opened {
        Ok(Ok(open)) => open,
        Ok(Err(failure)) => return report_failure(&spec, &outcomes, failure, stats),
        Err(_elapsed) => return report_failure(&spec, &outcomes, ConnectFailure::Timeout, stats),
    };
    if head.status != 200 {
        let failure = ConnectFailure::Status(head.status);
        return report_failure(&spec, &outcomes, failure, stats);
    }
    stats.connected = true;
    stats.stalled = spec.stalled;
    shared.held.fetch_add(1, Ordering::Relaxed);
    if !spec.stalled {
        shared.held_per_user[spec.user].fetch_add(1, Ordering::Relaxed);
    }
    let _ = outcomes.send(ConnectOutcome {
        index: spec.index,
        result: Ok(()),
    });
    // The runner counts outcomes until every sender is gone.
    drop(outcomes);
    if spec.stalled {
        // Hold the socket without reading until the run stops; what the server does with
        // the backlog (buffer, drop, close) shows in its memory and in the others' latency.
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        shared.held.fetch_sub(1, Ordering::Relaxed);
        drop(stream);
        return stats;
    }

    let mut reader = StreamReader {
        decoder: BodyDecoder::new(head.framing),
        parser: SseParser::new(),
        shared: &shared,
        shard: spec.index,
        stats: &mut stats,
    };
    let mut healthy = reader.feed(&buf[..body_start]);
    while healthy && !reader.decoder.is_done() {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => healthy = false,
                Ok(n) => healthy = reader.feed(&buf[..n]),
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    let ended_early = !*stop.borrow();
    stats.ended_early = ended_early;
    shared.held.fetch_sub(1, Ordering::Relaxed);
    shared.held_per_user[spec.user].fetch_sub(1, Ordering::Relaxed);
    stats
}

fn report_failure(
    spec: &ConnSpec,
    outcomes: &mpsc::UnboundedSender<ConnectOutcome>,
    failure: ConnectFailure,
    stats: ConnStats,
) -> ConnStats {
    let _ = outcomes.send(ConnectOutcome {
        index: spec.index,
        result: Err(failure),
    });
    stats
}

/// Connects, sends the request and reads the response head.
async fn open(
    spec: &ConnSpec,
    buf: &mut Vec<u8>,
) -> Result<(TcpStream, http1::ResponseHead, usize), ConnectFailure> {
    let socket = TcpSocket::new_v4().map_err(|e| ConnectFailure::Bind(e.kind()))?;
    if let Some(source) = spec.source {
        socket
            .bind(source)
            .map_err(|e| ConnectFailure::Bind(e.kind()))?;
    }
    let mut stream = socket
        .connect(spec.server)
        .await
        .map_err(|e| ConnectFailure::Connect(e.kind()))?;
    stream
        .set_nodelay(true)
        .map_err(|e| ConnectFailure::Connect(e.kind()))?;
    stream
        .write_all(&spec.request)
        .await
        .map_err(|e| ConnectFailure::Connect(e.kind()))?;
    let (head, body_start) = http1::read_head(&mut stream, buf)
        .await
        .map_err(|e| ConnectFailure::BadResponse(e.to_string()))?;
    Ok((stream, head, body_start))
}

/// Body bytes → payload → frames → checks, for one connection.
struct StreamReader<'a> {
    decoder: BodyDecoder,
    parser: SseParser,
    shared: &'a Shared,
    shard: usize,
    stats: &'a mut ConnStats,
}

impl StreamReader<'_> {
    /// False once the stream can no longer be read (broken framing or an overlong line).
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let StreamReader {
            decoder,
            parser,
            shared,
            shard,
            stats,
        } = self;
        let mut parse_ok = true;
        let decoded = decoder.feed(bytes, &mut |payload| {
            if parse_ok {
                parse_ok = parser
                    .feed(payload, &mut |frame| on_frame(frame, shared, *shard, stats))
                    .is_ok();
            }
        });
        decoded.is_ok() && parse_ok
    }
}

fn on_frame(frame: Frame<'_>, shared: &Shared, shard: usize, stats: &mut ConnStats) {
    // The router's cursor is the frame's `id:`; a peer's is the publisher's `lgSeq`.
    let peer_seq = number_after(&PEER_SEQ, frame.data);
    if frame.id.is_none() && peer_seq.is_none() {
        shared.control_frames.fetch_add(1, Ordering::Relaxed);
        return;
    }
    shared.event_frames.fetch_add(1, Ordering::Relaxed);
    if RESYNC.find(frame.data).is_some() {
        stats.resyncs += 1;
        return;
    }
    let cursor = match peer_seq {
        Some(seq) => Some(seq as u64),
        None => frame
            .id
            .and_then(|id| std::str::from_utf8(id).ok())
            .and_then(|c| c.parse::<u64>().ok()),
    };
    let sent_us = number_after(&SENT_AT, frame.data);
    let index = number_after(&EVENT_INDEX, frame.data);
    let (Some(cursor), Some(sent_us), Some(index)) = (cursor, sent_us, index) else {
        stats.foreign += 1;
        return;
    };
    let received_us = shared.clock.now_us();
    shared.record_latency(shard, received_us.saturating_sub(sent_us as u64));
    if let Some(first) = shared.first_frame_us.get(index as usize) {
        first.fetch_min(received_us, Ordering::Relaxed);
    }
    match stats.last_cursor {
        Some(last) if cursor == last => stats.duplicates += 1,
        Some(last) if cursor < last => stats.out_of_order += 1,
        _ => stats.last_cursor = Some(cursor),
    }
    if (index as u64) % shared.users as u64 != stats.user as u64 {
        stats.misrouted += 1;
    }
    stats.received += 1;
    shared.deliveries.fetch_add(1, Ordering::Relaxed);
}

/// The JSON number right after `key` (which includes its colon), if there is one.
pub(crate) fn number_after(key: &Finder<'_>, json: &[u8]) -> Option<f64> {
    let start = key.find(json)? + key.needle().len();
    let rest = &json[start..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b',' | b'}' | b']'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cursor: &str, sent: u64, index: u64) -> String {
        format!(
            r#"{{"eventId":"e","eventType":"volume_milestone_reached","userId":"u","data":{{"previousVolume":{sent}.0,"currentVolume":{index}.0,"milestone":100000.0,"tierUnlocked":1}},"id":"{cursor}"}}"#
        )
    }

    fn deliver(stats: &mut ConnStats, shared: &Shared, cursor: &str, index: u64) {
        let data = event(cursor, shared.clock.now_us(), index);
        let frame = Frame {
            id: Some(cursor.as_bytes()),
            data: data.as_bytes(),
            has_data: true,
            retry: None,
        };
        on_frame(frame, shared, 0, stats);
    }

    #[test]
    fn numbers_are_read_from_the_envelope_json() {
        let data = event("1", 1_700_000_000_123_456, 42);
        assert_eq!(
            number_after(&SENT_AT, data.as_bytes()),
            Some(1_700_000_000_123_456.0)
        );
        assert_eq!(number_after(&EVENT_INDEX, data.as_bytes()), Some(42.0));
        assert_eq!(number_after(&EVENT_INDEX, b"{}"), None);
        assert_eq!(
            number_after(&SENT_AT, b"{\"previousVolume\":1.7e15}"),
            Some(1.7e15)
        );
    }

    #[test]
    fn cursors_that_repeat_or_go_back_are_counted() {
        let shared = Shared::new(2, Clock::new()).expect("shared");
        let mut stats = ConnStats {
            user: 1,
            ..ConnStats::default()
        };
        for (cursor, index) in [("1", 1), ("2", 3), ("2", 3), ("1", 1), ("5", 5), ("6", 4)] {
            deliver(&mut stats, &shared, cursor, index);
        }
        assert_eq!(stats.received, 6);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.out_of_order, 1);
        assert_eq!(stats.misrouted, 1, "index 4 is user 0's");
        assert_eq!(stats.last_cursor, Some(6));
        assert_eq!(shared.latencies().expect("merge").len(), 6);
    }

    #[test]
    fn a_peer_event_is_ordered_by_its_sequence_not_by_the_servers_id() {
        let shared = Shared::new(2, Clock::new()).expect("shared");
        let mut stats = ConnStats::default();
        for (nchan_id, seq, index) in [("1700000000:0", 1, 0), ("1700000000:1", 2, 2)] {
            let data = crate::publisher::peer_event_data(seq, index, shared.clock.now_us());
            let frame = Frame {
                id: Some(nchan_id.as_bytes()),
                data: data.as_bytes(),
                has_data: true,
                retry: None,
            };
            on_frame(frame, &shared, 0, &mut stats);
        }
        assert_eq!(stats.received, 2);
        assert_eq!(stats.foreign, 0);
        assert_eq!(stats.last_cursor, Some(2));
        assert_eq!(stats.out_of_order + stats.duplicates + stats.misrouted, 0);
    }

    #[test]
    fn control_frames_and_strangers_are_not_deliveries() {
        let shared = Shared::new(1, Clock::new()).expect("shared");
        let mut stats = ConnStats::default();
        let welcome = Frame {
            id: None,
            data: br#"{"type":"connection_established"}"#,
            has_data: true,
            retry: None,
        };
        on_frame(welcome, &shared, 0, &mut stats);
        let other = Frame {
            id: Some(b"9"),
            data: br#"{"eventType":"badge_earned","data":{}}"#,
            has_data: true,
            retry: None,
        };
        on_frame(other, &shared, 0, &mut stats);
        assert_eq!(stats.received, 0);
        assert_eq!(stats.foreign, 1);
        assert_eq!(shared.control_frames.load(Ordering::Relaxed), 1);
    }
}
