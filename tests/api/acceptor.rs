//! The user stream as served by the lean acceptor, spoken to byte by byte over raw TCP: the
//! wire format, keep-alive across the hand-over to actix-web, heads that arrive in pieces,
//! HTTP/1.0, malformed heads, and a fuzz of mutated heads that must never hang, crash or leak.

use crate::helpers::{event_body, spawn_app, spawn_app_with, TestApp, WAIT};
use actors::frame::FrameParser;
use actors::EventType;
use nft_event_router::auth::Role;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const STREAM: &str = "/api/v1/user/nft-events";

/// A response as read off the socket.
struct Response {
    status: u16,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One raw HTTP/1.x connection with a read buffer.
struct Raw {
    io: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(app: &TestApp) -> Raw {
        let address = app.address.trim_start_matches("http://");
        Raw {
            io: TcpStream::connect(address).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = timeout(WAIT, self.io.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn head(&mut self) -> Response {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).expect("ascii head");
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next().expect("status line");
                assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
                let status = status_line[9..12].parse().expect("status code");
                let headers = lines
                    .map(|l| {
                        let (n, v) = l.split_once(':').expect("header line");
                        (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                    })
                    .collect();
                return Response { status, headers };
            }
            assert!(self.fill().await, "closed before a response head");
        }
    }

    async fn body_of_length(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            assert!(self.fill().await, "closed inside a body");
        }
        self.buf.drain(..len).collect()
    }

    /// The next chunk of a chunked body; empty for the last one.
    async fn chunk(&mut self) -> Vec<u8> {
        let line_end = loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                break end;
            }
            assert!(self.fill().await, "closed inside a chunk size");
        };
        let size = std::str::from_utf8(&self.buf[..line_end]).expect("ascii size");
        let size = usize::from_str_radix(size, 16).expect("hex size");
        self.buf.drain(..line_end + 2);
        let mut data = self.body_of_length(size + 2).await;
        assert_eq!(&data[size..], b"\r\n", "a chunk ends with CRLF");
        data.truncate(size);
        data
    }

    /// Waits for the server to close the connection.
    async fn closed(&mut self) -> bool {
        loop {
            match timeout(WAIT, self.io.read(&mut [0u8; 1024])).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn stream_request(app: &TestApp, user: &str, extra: &str) -> String {
    format!(
        "GET {STREAM} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {}\r\n{extra}\r\n",
        app.token(user, Role::User)
    )
}

/// Decodes chunks into SSE frames until one carries `event_id`.
async fn wait_for_event(raw: &mut Raw, parser: &mut FrameParser, event_id: &str) {
    loop {
        while let Some(frame) = parser.next_frame() {
            if frame.json().is_some_and(|j| j["eventId"] == event_id) {
                return;
            }
        }
        let chunk = raw.chunk().await;
        assert!(!chunk.is_empty(), "the stream ended early");
        parser.feed(&chunk);
    }
}

async fn publish(app: &TestApp, user: &str) -> String {
    let response = app.publish(&event_body(user, EventType::BadgeEarned)).await;
    assert_eq!(response.status(), 202);
    let envelope: serde_json::Value = response.json().await.expect("json");
    envelope["eventId"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn a_raw_stream_request_gets_a_chunked_event_stream() {
    let app = spawn_app().await;
    let mut raw = Raw::connect(&app).await;
    raw.send(stream_request(&app, "raw1", "").as_bytes()).await;
    let response = raw.head().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    // Same origin only by default: no cross-origin grant.
    assert_eq!(response.header("access-control-allow-origin"), None);
    let mut parser = FrameParser::new();
    parser.feed(&raw.chunk().await);
    let welcome = parser.next_frame().expect("the welcome frame");
    assert_eq!(
        welcome.json().expect("json")["type"],
        "connection_established"
    );
    let event_id = publish(&app, "raw1").await;
    wait_for_event(&mut raw, &mut parser, &event_id).await;
}

#[actix_web::test]
async fn after_a_refused_stream_the_same_connection_serves_the_next_request() {
    let app = spawn_app().await;
    let mut raw = Raw::connect(&app).await;
    raw.send(format!("GET {STREAM} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await;
    let refused = raw.head().await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let len: usize = refused
        .header("content-length")
        .expect("length")
        .parse()
        .expect("number");
    let body: serde_json::Value =
        serde_json::from_slice(&raw.body_of_length(len).await).expect("json error");
    assert_eq!(body["code"], 401);
    assert_eq!(body["error_code"], "UNAUTHORIZED");

    // Keep-alive: the next request on the connection goes to actix-web.
    raw.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let health = raw.head().await;
    assert_eq!(health.status, 200);
    let len = health.header("content-length").expect("length").parse();
    raw.body_of_length(len.expect("number")).await;

    // And a stream request after that one is served by the actix-web route, same contract.
    raw.send(stream_request(&app, "raw2", "").as_bytes()).await;
    let stream = raw.head().await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let mut parser = FrameParser::new();
    let event_id = publish(&app, "raw2").await;
    wait_for_event(&mut raw, &mut parser, &event_id).await;
}

#[actix_web::test]
async fn a_refusal_with_connection_close_closes() {
    let app = spawn_app().await;
    let mut raw = Raw::connect(&app).await;
    raw.send(format!("GET {STREAM} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    let refused = raw.head().await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(raw.closed().await);
}

#[actix_web::test]
async fn a_head_that_arrives_in_pieces_is_still_served() {
    let app = spawn_app().await;
    let mut raw = Raw::connect(&app).await;
    let request = stream_request(&app, "raw3", "Last-Event-ID: \r\n");
    for piece in request.as_bytes().chunks(7) {
        raw.send(piece).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let response = raw.head().await;
    assert_eq!(response.status, 200);
    let mut parser = FrameParser::new();
    let event_id = publish(&app, "raw3").await;
    wait_for_event(&mut raw, &mut parser, &event_id).await;
}

#[actix_web::test]
async fn an_http_1_0_stream_is_close_delimited() {
    let app = spawn_app().await;
    let mut raw = Raw::connect(&app).await;
    let request = stream_request(&app, "raw4", "").replacen("HTTP/1.1", "HTTP/1.0", 1);
    raw.send(request.as_bytes()).await;
    let response = raw.head().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.header("connection"), Some("close"));
    let event_id = publish(&app, "raw4").await;
    let mut parser = FrameParser::new();
    parser.feed(&std::mem::take(&mut raw.buf));
    'outer: loop {
        while let Some(frame) = parser.next_frame() {
            if frame.json().is_some_and(|j| j["eventId"] == event_id) {
                break 'outer;
            }
        }
        assert!(raw.fill().await, "the stream ended early");
        parser.feed(&std::mem::take(&mut raw.buf));
    }
}

#[actix_web::test]
async fn malformed_stream_heads_get_400_from_actix_web() {
    let app = spawn_app().await;
    for head in [
        format!("GET {STREAM} HTTP/1.1\r\nBad Header\r\n\r\n"),
        format!("GET {STREAM} HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n"),
    ] {
        let mut raw = Raw::connect(&app).await;
        raw.send(head.as_bytes()).await;
        assert_eq!(raw.head().await.status, 400, "{head:?}");
    }
}

/// A client that hangs up on an idle stream frees its slot at once (not at the next
/// heartbeat), so its reconnect is not refused.
#[actix_web::test]
async fn a_client_that_hangs_up_frees_its_slot_at_once() {
    let app = spawn_app().await;
    let mut raws = Vec::new();
    for _ in 0..3 {
        let mut raw = Raw::connect(&app).await;
        raw.send(stream_request(&app, "raw5", "").as_bytes()).await;
        assert_eq!(raw.head().await.status, 200);
        raws.push(raw);
    }
    let mut fourth = Raw::connect(&app).await;
    fourth
        .send(stream_request(&app, "raw5", "").as_bytes())
        .await;
    assert_eq!(fourth.head().await.status, 429);
    drop(raws.pop());
    let stats = app
        .wait_for_stats(|s| s["connectionsPerUser"]["raw5"] == 2)
        .await;
    assert_eq!(stats["connectionsPerUser"]["raw5"], 2);
    let mut again = Raw::connect(&app).await;
    again
        .send(stream_request(&app, "raw5", "").as_bytes())
        .await;
    assert_eq!(again.head().await.status, 200);
}

/// Mutated stream heads, each on its own connection: the server answers with a well-formed
/// status line or closes, never hangs past its request timeout, never crashes, and holds no
/// session once the clients are gone.
#[actix_web::test]
async fn fuzzed_heads_never_hang_crash_or_leak() {
    let app = spawn_app().await;
    let valid = stream_request(&app, "fuzz", "Last-Event-ID: 0\r\n").into_bytes();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut answered = 0;
    for round in 0..150 {
        let mut head = valid.clone();
        for _ in 0..(next() % 5 + 1) {
            let at = (next() as usize) % head.len();
            match next() % 4 {
                0 => head[at] = next() as u8,
                1 => {
                    head.remove(at);
                }
                2 => head.insert(at, b"\r\n:?% \0"[(next() % 6) as usize]),
                _ => head[at] = head[at].to_ascii_uppercase(),
            }
        }
        let mut raw = Raw::connect(&app).await;
        raw.send(&head).await;
        // Half-close: a head cut short is then a complete (bad) request or an end of stream.
        raw.io.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        let read = timeout(Duration::from_secs(8), raw.io.read_to_end(&mut got)).await;
        assert!(
            read.is_ok(),
            "round {round}: the server kept {:?} open after the client's end of stream",
            String::from_utf8_lossy(&head)
        );
        if !got.is_empty() {
            assert!(
                got.starts_with(b"HTTP/1.1 ") && got.len() >= 12,
                "round {round}: {:?} answered {:?}",
                String::from_utf8_lossy(&head),
                String::from_utf8_lossy(&got[..got.len().min(80)])
            );
            assert!(got[9..12].iter().all(u8::is_ascii_digit));
            answered += 1;
        }
    }
    assert!(answered > 0, "no fuzzed head got an answer at all");
    // Still healthy, and every fuzzed stream is gone.
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let stats = app.wait_for_stats(|s| s["totalConnections"] == 0).await;
    assert_eq!(stats["totalConnections"], 0, "{stats}");
}

#[actix_web::test]
async fn the_lean_stream_grants_cross_origin_access_to_allowed_origins_only() {
    let app = spawn_app_with("[http]\ncors_origins = [\"http://allowed.example:3000\"]\n").await;
    for (origin, granted) in [
        ("http://allowed.example:3000", true),
        ("http://ALLOWED.example:3000", true),
        ("http://evil.example:3000", false),
    ] {
        let mut raw = Raw::connect(&app).await;
        let extra = format!("Origin: {origin}\r\n");
        raw.send(stream_request(&app, "cors1", &extra).as_bytes())
            .await;
        let response = raw.head().await;
        assert_eq!(response.status, 200, "{origin}");
        assert_eq!(
            response.header("access-control-allow-origin"),
            granted.then_some("http://allowed.example:3000"),
            "{origin}"
        );
        assert_eq!(response.header("vary"), Some("Origin"), "{origin}");
    }
    // A refusal is readable by the allowed page too (it can tell 401 from a network error).
    let mut raw = Raw::connect(&app).await;
    raw.send(
        format!("GET {STREAM} HTTP/1.1\r\nHost: t\r\nOrigin: http://allowed.example:3000\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let response = raw.head().await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("http://allowed.example:3000")
    );
}

/// A client that stops reading: once its queue overflows the session is cut off at once (not
/// after the write stall limit), and a client that reads again finds whole frames, a
/// well-formed end of the chunked body and end-of-file. Resuming from its last whole frame
/// gives it every later event: the cut-off loses nothing.
#[actix_web::test]
async fn a_stream_that_falls_behind_is_cut_off_at_once_with_a_well_formed_end() {
    let app = spawn_app_with("[sse]\nsession_queue = 4\n").await;
    let user = "raw-slow";
    // A small receive window, so that the kernel's buffers fill after a few frames.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let address = app.address.trim_start_matches("http://");
    let io = socket
        .connect(address.parse().expect("address"))
        .await
        .expect("connect");
    let mut raw = Raw {
        io,
        buf: Vec::new(),
    };
    raw.send(stream_request(&app, user, "").as_bytes()).await;
    assert_eq!(raw.head().await.status, 200);

    // Publish without reading until the session is gone.
    let mut published = Vec::new();
    let mut cut_off = false;
    while published.len() < 3000 && !cut_off {
        for _ in 0..10 {
            published.push(publish(&app, user).await);
        }
        let stats = app.stats().await;
        cut_off = stats["connectionsPerUser"][user].as_u64().unwrap_or(0) == 0;
    }
    assert!(
        cut_off,
        "the session overflowed after {} events",
        published.len()
    );

    // Read on: whole chunks up to the last one, then end-of-file.
    let mut parser = FrameParser::new();
    loop {
        let chunk = raw.chunk().await;
        if chunk.is_empty() {
            break;
        }
        parser.feed(&chunk);
    }
    assert!(
        raw.buf.is_empty(),
        "bytes after the last chunk: {:?}",
        raw.buf
    );
    assert!(raw.closed().await, "the connection ends after the body");
    let mut received = Vec::new();
    while let Some(frame) = parser.next_frame() {
        if let (Some(id), Some(json)) = (frame.id.clone(), frame.json()) {
            if let Some(event_id) = json["eventId"].as_str() {
                received.push((id, event_id.to_owned()));
            }
        }
    }
    assert!(
        received.len() < published.len(),
        "the backlog was dropped, not written"
    );
    let got: Vec<&str> = received.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(got, published[..got.len()], "whole frames, in order");

    // Resume from the last whole frame: the rest arrives, none twice.
    let last_id = received.last().map_or("0".to_owned(), |(id, _)| id.clone());
    let mut resumed = app.resume_stream(user, &last_id).await;
    let mut rest = Vec::new();
    while rest.len() < published.len() - got.len() {
        let (_, json) = resumed.next_event().await.expect("a resumed event");
        rest.push(json["eventId"].as_str().expect("eventId").to_owned());
    }
    assert_eq!(rest, published[got.len()..]);
}
