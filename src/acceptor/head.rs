//! Recognizing a user-stream request from the first bytes of a connection, without consuming
//! them: anything this module does not fully understand is left to actix-web, which answers
//! it (400 for a malformed request, 404, 405, 413, ...) exactly as before.

use futures_util::FutureExt;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The route the lean acceptor serves; every other path goes to actix-web.
pub const USER_STREAM_PATH: &str = "/api/v1/user/nft-events";

/// How a stream request starts: its method and path.
const REQUEST_PREFIX: &[u8] = b"GET /api/v1/user/nft-events";

/// Largest request head looked at. A stream request is a few hundred bytes (a bearer token,
/// `Last-Event-ID`, browser headers); a larger head is left to actix-web and its own limits.
pub const MAX_HEAD: usize = 4096;

/// Headers parsed at most; more than that is left to actix-web.
const MAX_HEADERS: usize = 32;

/// The longest pause between two looks at a head that has not fully arrived.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A complete, body-less `GET` of the user stream over HTTP/1.x.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// Bytes the head takes on the connection (to consume once it is accepted).
    pub head_len: usize,
    /// HTTP/1.0: no chunked encoding, the connection ends with the stream.
    pub http10: bool,
    /// Whether the connection may carry another request once this one is answered.
    pub keep_alive: bool,
    pub authorization: Option<Vec<u8>>,
    /// The `Cookie` header (the stream cookie, `crate::auth::STREAM_COOKIE`).
    pub cookie: Option<Vec<u8>>,
    pub last_event_id: Option<Vec<u8>>,
    /// The caller's `X-Request-Id`, if any.
    pub request_id: Option<Vec<u8>>,
    /// The page's `Origin`, for cross-origin access (`crate::cors`).
    pub origin: Option<Vec<u8>>,
    /// Every `X-Forwarded-For` value, in order (read only from trusted proxies,
    /// `crate::forwarded`); empty, without an allocation, when there is none.
    pub forwarded_for: Vec<Vec<u8>>,
    /// The query string, without the `?`.
    pub query: String,
}

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Stream(StreamRequest),
    /// Anything else: another route or method, a body, an upgrade, a malformed or oversized
    /// head. actix-web handles it.
    Other,
    /// A stream request may still be arriving.
    Incomplete,
}

/// Classifies `buf`, the bytes received so far. `exhausted` says no more will be looked at
/// (the buffer is full), so a partial head is `Other`.
pub fn classify(buf: &[u8], exhausted: bool) -> Head {
    let seen = buf.len().min(REQUEST_PREFIX.len());
    if buf[..seen] != REQUEST_PREFIX[..seen] {
        return Head::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if !exhausted => return Head::Incomplete,
        Ok(httparse::Status::Partial) | Err(_) => return Head::Other,
    };
    let Some(target) = request.path else {
        return Head::Other;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != USER_STREAM_PATH || request.method != Some("GET") {
        return Head::Other;
    }
    let http10 = match request.version {
        Some(0) => true,
        Some(1) => false,
        _ => return Head::Other,
    };
    let mut keep_alive = !http10;
    let mut authorization = None;
    let mut cookie = None;
    let mut last_event_id = None;
    let mut request_id = None;
    let mut origin = None;
    let mut forwarded_for = Vec::new();
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            if header.value != b"0" {
                return Head::Other;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Head::Other;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Head::Other;
                }
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization.get_or_insert_with(|| header.value.to_vec());
        } else if name.eq_ignore_ascii_case("cookie") {
            cookie.get_or_insert_with(|| header.value.to_vec());
        } else if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id.get_or_insert_with(|| header.value.to_vec());
        } else if name.eq_ignore_ascii_case("x-request-id") {
            request_id.get_or_insert_with(|| header.value.to_vec());
        } else if name.eq_ignore_ascii_case("origin") {
            origin.get_or_insert_with(|| header.value.to_vec());
        } else if name.eq_ignore_ascii_case(crate::forwarded::FORWARDED_FOR) {
            forwarded_for.push(header.value.to_vec());
        }
    }
    Head::Stream(StreamRequest {
        head_len,
        http10,
        keep_alive,
        authorization,
        cookie,
        last_event_id,
        request_id,
        origin,
        forwarded_for,
        query: query.to_owned(),
    })
}

/// What a connection opened with.
#[derive(Debug)]
pub enum Peeked {
    Stream(StreamRequest),
    Other,
    /// The peer closed (or failed) before sending a request.
    Closed,
}

/// Looks at the connection's first bytes without consuming them, until they are a complete
/// stream request, clearly something else, or `patience` has passed (then actix-web takes the
/// connection and applies its own request timeout).
///
/// The buffer lives on the heap only while looking, so the long-lived part of a stream's task
/// does not carry it.
pub async fn peek(io: &TcpStream, patience: Duration) -> Peeked {
    let deadline = Instant::now() + patience;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = match tokio::time::timeout_at(deadline, io.peek(&mut buf)).await {
            Err(_) => return Peeked::Other,
            Ok(Err(_)) | Ok(Ok(0)) => return Peeked::Closed,
            Ok(Ok(n)) => n,
        };
        match classify(&buf[..n], n == buf.len()) {
            Head::Stream(request) => return Peeked::Stream(request),
            Head::Other => return Peeked::Other,
            Head::Incomplete => {
                // A client that has ended its side will never complete the head.
                if let Some(Ok(ready)) = io.ready(Interest::READABLE).now_or_never() {
                    if ready.is_read_closed() {
                        return Peeked::Other;
                    }
                }
                // Peeking does not consume, so the socket stays readable: wait a little for
                // the rest instead of spinning.
                if Instant::now() + pause >= deadline {
                    return Peeked::Other;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(head: &str) -> StreamRequest {
        match classify(head.as_bytes(), false) {
            Head::Stream(r) => r,
            other => panic!("{head:?} is {other:?}"),
        }
    }

    #[test]
    fn the_request_prefix_names_the_stream_path() {
        assert_eq!(REQUEST_PREFIX, format!("GET {USER_STREAM_PATH}").as_bytes());
    }

    #[test]
    fn a_browser_stream_request_is_recognized_with_its_credentials() {
        let head = "GET /api/v1/user/nft-events?access_token=abc&lastEventId=4 HTTP/1.1\r\n\
                    Host: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 7\r\n\
                    authorization: Bearer t0k\r\n\r\n";
        let r = stream(head);
        assert_eq!(r.head_len, head.len());
        assert!(!r.http10);
        assert!(r.keep_alive);
        assert_eq!(r.authorization.as_deref(), Some(&b"Bearer t0k"[..]));
        assert_eq!(r.last_event_id.as_deref(), Some(&b"7"[..]));
        assert_eq!(r.query, "access_token=abc&lastEventId=4");
        assert!(r.forwarded_for.is_empty());
    }

    #[test]
    fn every_forwarded_for_header_is_kept_in_order() {
        let r = stream(
            "GET /api/v1/user/nft-events HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n\
             x-forwarded-for: 10.0.0.2\r\n\r\n",
        );
        assert_eq!(
            r.forwarded_for,
            vec![b"1.2.3.4, 10.0.0.1".to_vec(), b"10.0.0.2".to_vec()]
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let r = stream("GET /api/v1/user/nft-events HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!r.keep_alive);
        let r = stream("GET /api/v1/user/nft-events HTTP/1.0\r\n\r\n");
        assert!(r.http10 && !r.keep_alive);
        let r = stream("GET /api/v1/user/nft-events HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.http10 && r.keep_alive);
    }

    #[test]
    fn everything_else_is_left_to_actix_web() {
        for head in [
            "GET /api/v1/user/nfts HTTP/1.1\r\n\r\n",
            "GET /api/v1/user/nft-events/x HTTP/1.1\r\n\r\n",
            "POST /api/v1/user/nft-events HTTP/1.1\r\n\r\n",
            "HEAD /api/v1/user/nft-events HTTP/1.1\r\n\r\n",
            "GET /api/v1/user/nft-events HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "GET /api/v1/user/nft-events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /api/v1/user/nft-events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /api/v1/user/nft-events HTTP/2.0\r\n\r\n",
            "GET /api/v1/user/nft-events HTTP/1.1\r\nBad Header\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "\x16\x03\x01\x02\x00",
        ] {
            assert_eq!(classify(head.as_bytes(), false), Head::Other, "{head:?}");
        }
    }

    #[test]
    fn a_head_still_arriving_is_waited_for_unless_the_buffer_is_full() {
        for partial in [
            "G",
            "GET /api/v1/us",
            "GET /api/v1/user/nft-events HTTP/1.1\r\nHost: x",
        ] {
            assert_eq!(classify(partial.as_bytes(), false), Head::Incomplete);
            assert_eq!(classify(partial.as_bytes(), true), Head::Other);
        }
    }

    /// Arbitrary bytes never panic and never make a stream request out of a head that does not
    /// start with the stream's request line.
    #[test]
    fn random_bytes_and_mutated_heads_are_classified_without_panicking() {
        let valid =
            b"GET /api/v1/user/nft-events?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 3\r\n\r\n";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let mut buf = valid.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % buf.len();
                match next() % 3 {
                    0 => buf[at] = next() as u8,
                    1 => {
                        buf.remove(at);
                    }
                    _ => buf.insert(at, next() as u8),
                }
                if buf.is_empty() {
                    buf.push(b'G');
                }
            }
            let cut = (next() as usize) % (buf.len() + 1);
            let slice = &buf[..cut.max(1)];
            if let Head::Stream(r) = classify(slice, next() % 2 == 0) {
                assert!(slice.starts_with(b"GET /api/v1/user/nft-events"));
                assert!(r.head_len <= slice.len());
            }
        }
    }
}
