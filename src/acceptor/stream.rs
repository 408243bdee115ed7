//! Serving a user stream straight on its socket: the response head, then the session's
//! already-encoded frames, written as they come with no buffer of our own.
//!
//! The contract is the actix-web route's (`crate::streams`): the same authentication, the same
//! 401 / 429 / 503 JSON errors, the same headers, chunked encoding on HTTP/1.1. After a refusal
//! a keep-alive connection goes back to actix-web for its next request, as after any other
//! response. When a session ends (queue overflow, shutdown) its body is terminated and the
//! connection closed: the client reconnects with `Last-Event-ID` anyway, and a server that is
//! stopping should not keep it.

use super::head::StreamRequest;
use super::Streams;
use crate::auth;
use crate::error::ApiError;
use crate::limits::caps::StreamSlot;
use crate::request_id::RequestId;
use crate::streams::{connect, resume_point, STREAM_HEADERS};
use actix_web::body::MessageBody;
use actix_web::ResponseError;
use actors::session::CutOff;
use actors::Encoded;
use std::io::{self, IoSlice, Write as _};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frames written with one system call at most (a burst queued while the socket was busy).
const BATCH: usize = 16;

/// How long a stream that is ending may take to finish the chunk it was writing and to write
/// the last chunk. A client that reads again within it finds a well-formed end of body; one
/// that does not is disconnected anyway.
const END_GRACE: Duration = Duration::from_secs(5);

/// How a served request left the connection.
pub enum After {
    /// The response is complete and the client may send another request.
    KeepAlive,
    /// The connection is done.
    Close,
}

/// An opened stream: what its pump needs for as long as it runs.
struct Opened {
    frames: mpsc::Receiver<Encoded>,
    cut_off: Option<CutOff>,
    /// Holds the stream's place under the caps until the stream ends.
    slot: StreamSlot,
    chunked: bool,
}

/// Serves one stream request: opens the session (or answers the refusal), then pumps frames
/// until either side ends.
///
/// Opening runs in a boxed future of its own: an async fn keeps its arguments and every local
/// it has not ended the scope of in its state for the whole call, so the request's fields, the
/// principal, the CORS headers and the one-off writes would otherwise size every idle
/// stream's task for as long as it is open.
pub async fn serve(io: &mut TcpStream, request: Box<StreamRequest>, streams: &Streams) -> After {
    let Opened {
        mut frames,
        mut cut_off,
        slot: _slot,
        chunked,
    } = match Box::pin(open(io, request, streams)).await {
        Ok(opened) => opened,
        Err(after) => return after,
    };
    let ending = pump(io, &mut frames, &mut cut_off, chunked, streams.stall_limit).await;
    // Dropping the receiver is what tells the session its client is gone; a session that
    // ended or was cut off has nothing more to say either.
    drop(frames);
    let by = match ending {
        Ending::SessionClosed => tokio::time::Instant::now() + END_GRACE,
        Ending::CutOff { by } => by,
        Ending::ClientGone | Ending::Stalled => return After::Close,
    };
    if chunked {
        // The last chunk, then the end of the sending side: a client that reads on finds a
        // complete body followed by end-of-file.
        let _ = Box::pin(tokio::time::timeout_at(by, async {
            io.write_all(b"0\r\n\r\n").await?;
            io.shutdown().await
        }))
        .await;
    }
    After::Close
}

/// Authenticates, opens the session and writes the response head; a refusal is answered here
/// and ends with what the connection does next.
async fn open(
    io: &mut TcpStream,
    request: Box<StreamRequest>,
    streams: &Streams,
) -> Result<Opened, After> {
    // Only these two outlive the request's own (heap) fields, which are dropped before the
    // stream starts.
    let (http10, keep_alive) = (request.http10, request.keep_alive);
    let principal = streams.door.count_unauthorized(auth::authenticate(
        &streams.keys,
        auth::Credentials {
            authorization: request.authorization.as_deref(),
            cookie: request.cookie.as_deref(),
            query: &request.query,
        },
        true,
    ));
    let resume = resume_point(request.last_event_id.as_deref(), &request.query);
    let id = RequestId::from_header(request.request_id.as_deref());
    // Empty (no allocation) unless the request comes from an allowed other origin.
    let cors = streams.cors.response_headers(request.origin.as_deref());
    let address = streams.door.client_address(
        io.peer_addr().ok().map(|a| a.ip()),
        request.forwarded_for.iter().map(Vec::as_slice),
    );
    drop(request);
    let opened = match principal {
        Ok(principal) => {
            // Boxed: opening awaits the limits, the leases and the registry, whose futures
            // are large; inline they would size this task for as long as the stream is open
            // (about 1 KiB of every idle stream).
            Box::pin(connect(&streams.door, &principal, address, resume, None)).await
        }
        Err(e) => Err(e),
    };
    // `_slot` holds the stream's place under the caps until this function returns.
    let (frames, cut_off, _slot) = match opened {
        Ok(opened) => (
            opened.handle.frames,
            Some(opened.handle.cut_off),
            opened.slot,
        ),
        Err(e) => {
            log_request(&id, e.status_code().as_u16());
            return Err(write_error(io, &e, &id, &cors, keep_alive).await);
        }
    };
    let chunked = !http10;
    log_request(&id, 200);
    if write_head(io, chunked, &id, &cors).await.is_err() {
        return Err(After::Close);
    }
    Ok(Opened {
        frames,
        cut_off,
        slot: _slot,
        chunked,
    })
}

/// The request line the actix-web routes log (`request_id::track`), for a stream served here.
fn log_request(id: &RequestId, status: u16) {
    log::info!(
        target: "http",
        request_id = id.as_str(),
        method = "GET",
        path = super::head::USER_STREAM_PATH,
        status = status;
        "request"
    );
}

async fn write_head(
    io: &mut TcpStream,
    chunked: bool,
    id: &RequestId,
    cors: &[(&str, String)],
) -> io::Result<()> {
    let mut head = String::with_capacity(256);
    head.push_str("HTTP/1.1 200 OK\r\n");
    head.push_str("x-request-id: ");
    head.push_str(id.as_str());
    head.push_str("\r\n");
    let cors = cors.iter().map(|(name, value)| (*name, value.as_str()));
    for (name, value) in STREAM_HEADERS.into_iter().chain(cors) {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str(if chunked {
        "transfer-encoding: chunked\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    io.write_all(head.as_bytes()).await
}

/// Writes the error's JSON response (the shape every route answers with).
async fn write_error(
    io: &mut TcpStream,
    error: &ApiError,
    id: &RequestId,
    cors: &[(&str, String)],
    keep_alive: bool,
) -> After {
    let response = error.error_response();
    let status = response.status();
    let (response, body) = response.into_parts();
    let body = body.try_into_bytes().unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("x-request-id: {id}\r\n"));
    for (name, value) in cors {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", body.len()));
    if !keep_alive {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let written = async {
        io.write_all(head.as_bytes()).await?;
        io.write_all(&body).await
    };
    match written.await {
        Ok(()) if keep_alive => After::KeepAlive,
        _ => After::Close,
    }
}

enum Ending {
    /// The session ended and closed its queue.
    SessionClosed,
    /// The session was cut off for falling behind; the body is at a chunk boundary and its
    /// end is due `by` then.
    CutOff { by: tokio::time::Instant },
    /// The client hung up (or the socket failed).
    ClientGone,
    /// The client took no bytes for `stall_limit`.
    Stalled,
}

/// Moves frames from the session's queue to the socket until either side ends. Frames that
/// queued up while a write was in progress go out together, in one chunk and one write. The
/// socket is also watched for the client's end-of-file, so an idle stream notices a hang-up at
/// once rather than at its next heartbeat.
async fn pump(
    io: &mut TcpStream,
    frames: &mut mpsc::Receiver<Encoded>,
    cut_off: &mut Option<CutOff>,
    chunked: bool,
    stall_limit: Duration,
) -> Ending {
    loop {
        tokio::select! {
            biased;
            () = cut_off_fired(cut_off) => {
                return Ending::CutOff { by: tokio::time::Instant::now() + END_GRACE };
            }
            first = frames.recv() => {
                let Some(first) = first else { return Ending::SessionClosed };
                // Boxed: the batch and the write's timer exist only while writing, so an
                // idle stream's task does not carry them.
                match Box::pin(write_burst(io, first, frames, cut_off, chunked, stall_limit)).await {
                    Burst::Written => {}
                    Burst::Failed => return Ending::ClientGone,
                    Burst::Stalled => return Ending::Stalled,
                    Burst::CutOff { by } => return Ending::CutOff { by },
                }
            }
            ready = io.readable() => {
                if ready.is_err() {
                    return Ending::ClientGone;
                }
                let mut probe = [0u8; 64];
                match io.try_read(&mut probe) {
                    Ok(0) => return Ending::ClientGone,
                    // Bytes after a stream request have no meaning; they are dropped.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return Ending::ClientGone,
                }
            }
        }
    }
}

/// How writing one burst ended.
enum Burst {
    Written,
    /// The socket failed (the client is gone).
    Failed,
    /// No progress for the stall limit.
    Stalled,
    /// The session was cut off meanwhile; the chunk in progress was finished (the body is at a
    /// chunk boundary) and the body's end is due `by`.
    CutOff {
        by: tokio::time::Instant,
    },
}

/// Writes `first` and whatever else is queued (up to a batch) as one chunk, giving up after
/// `stall_limit` without progress. If the session is cut off meanwhile, the chunk already
/// begun is still finished (within [`END_GRACE`]) so that the body stays well-formed.
async fn write_burst(
    io: &mut TcpStream,
    first: Encoded,
    frames: &mut mpsc::Receiver<Encoded>,
    cut_off: &mut Option<CutOff>,
    chunked: bool,
    stall_limit: Duration,
) -> Burst {
    let mut batch: [Option<Encoded>; BATCH] = Default::default();
    batch[0] = Some(first);
    let mut n = 1;
    while n < BATCH {
        match frames.try_recv() {
            Ok(frame) => {
                batch[n] = Some(frame);
                n += 1;
            }
            Err(_) => break,
        }
    }
    let batch = &batch[..n];
    let mut done = 0;
    let written = tokio::select! {
        biased;
        written = tokio::time::timeout(stall_limit, write_chunk(io, batch, chunked, &mut done)) => {
            Some(written)
        }
        () = cut_off_fired(cut_off) => None,
    };
    match written {
        Some(Ok(Ok(()))) => Burst::Written,
        Some(Ok(Err(_))) => Burst::Failed,
        Some(Err(_)) => Burst::Stalled,
        None => {
            let by = tokio::time::Instant::now() + END_GRACE;
            match tokio::time::timeout_at(by, write_chunk(io, batch, chunked, &mut done)).await {
                Ok(Ok(())) => Burst::CutOff { by },
                Ok(Err(_)) | Err(_) => Burst::Failed,
            }
        }
    }
}

/// Resolves if the session is cut off; never, once it ended otherwise. The receiver is
/// dropped when it answers, as it may not be polled again.
async fn cut_off_fired(slot: &mut Option<CutOff>) {
    if let Some(cut_off) = slot {
        let fired = cut_off.await.is_ok();
        *slot = None;
        if fired {
            return;
        }
    }
    std::future::pending().await
}

/// Writes `frames` as one chunk (or as they are, without chunked encoding), looping over
/// partial writes. `done` counts the chunk's bytes written so far and is kept up to date
/// between writes, so that a write given up half-way can be resumed where it stopped. The
/// `IoSlice`s are rebuilt on the stack at each poll rather than kept in the future, which
/// keeps every idle stream's task small.
async fn write_chunk(
    io: &mut TcpStream,
    frames: &[Option<Encoded>],
    chunked: bool,
    done: &mut usize,
) -> io::Result<()> {
    let len: usize = frames.iter().flatten().map(|f| f.len()).sum();
    let size_line = format_size_line(len);
    let (head, tail): (&[u8], &[u8]) = if chunked {
        (size_line.as_slice(), b"\r\n")
    } else {
        (&[], &[])
    };
    let total = head.len() + len + tail.len();
    while *done < total {
        let written = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); BATCH + 2];
            let mut count = 0;
            let mut skip = *done;
            for part in std::iter::once(head)
                .chain(frames.iter().flatten().map(|f| &f[..]))
                .chain(std::iter::once(tail))
            {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[count] = IoSlice::new(&part[skip..]);
                skip = 0;
                count += 1;
            }
            std::pin::Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *done += written;
    }
    Ok(())
}

/// `{len:x}\r\n` on the stack.
fn format_size_line(len: usize) -> SizeLine {
    let mut line = SizeLine {
        buf: [0; 18],
        len: 0,
    };
    let mut cursor = io::Cursor::new(&mut line.buf[..]);
    // 16 hex digits and CRLF always fit in 18 bytes.
    let _ = write!(cursor, "{len:x}\r\n");
    line.len = cursor.position() as u8;
    line
}

struct SizeLine {
    buf: [u8; 18],
    len: u8,
}

impl SizeLine {
    fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open stream's task holds this future for the stream's whole life: its size is
    /// per-connection memory (the performance budgets, BENCHMARKS.md: ≤ 8 KiB per idle
    /// connection in all).
    #[actix_web::test]
    async fn an_idle_streams_pump_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let _client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut io, _) = listener.accept().await.expect("accept");
        let (_tx, mut rx) = mpsc::channel::<Encoded>(4);
        let (_cut_tx, cut_off) = tokio::sync::oneshot::channel();
        let mut cut_off = Some(cut_off);
        let pump = pump(&mut io, &mut rx, &mut cut_off, true, Duration::from_secs(1));
        let size = std::mem::size_of_val(&pump);
        assert!(size <= 512, "the pump future grew to {size} bytes");
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        assert_eq!(format_size_line(0).as_slice(), b"0\r\n");
        assert_eq!(format_size_line(255).as_slice(), b"ff\r\n");
        assert_eq!(format_size_line(4096).as_slice(), b"1000\r\n");
    }
}
