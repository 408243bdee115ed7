//! HTTP/2 over TLS: every request goes to the actix-web application, as actix-web's own
//! HTTP/2 dispatcher would pass it. This dispatcher exists for one difference: while a
//! response body waits (an idle stream between heartbeats) it also watches the stream for the
//! client's `RST_STREAM`, so a stream the browser closed (a closed tab, an `EventSource`
//! closed) ends at once, with its session and its places under the per-user limit and the
//! caps, as a hang-up does over HTTP/1.1. actix-web's dispatcher notices a reset only at the
//! stream's next write, a heartbeat away.

use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::{Payload, Request, Response};
use actix_service::Service;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue, HttpDate};
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::Stream;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

/// How long a client may take to open HTTP/2 after the TLS handshake.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no open stream for this long is closed (with a GOAWAY), as nginx's
/// `keepalive_timeout` does; a browser opens a new one when it needs it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// How often an idle connection's quiet is checked.
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// Streams one connection may have open at once (as common servers allow: nginx 128,
/// Go 250); more wait for a free one on the client side.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// The largest DATA frame payload written at once (HTTP/2's default frame size).
const CHUNK: usize = 16 * 1024;

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2); actix-web's HTTP/1.1 habits must not leak here.
const CONNECTION_HEADERS: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HeaderName::from_static("keep-alive"),
];

/// Serves one HTTP/2 connection until the client leaves, or, once `stopping` resolves, until
/// its open streams have ended (a GOAWAY tells the client to open no more).
pub async fn serve<T, S>(
    io: T,
    app: Rc<S>,
    peer: Option<SocketAddr>,
    stopping: actix_server::GracefulShutdownSignal,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> + 'static,
{
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .handshake::<_, Bytes>(io);
    let mut connection = match actix_web::rt::time::timeout(PREFACE_TIMEOUT, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            log::debug!("HTTP/2 handshake with {peer:?} failed: {e}");
            return;
        }
        Err(_) => {
            log::debug!("HTTP/2 handshake with {peer:?} timed out");
            return;
        }
    };
    let mut stop = pin!(stopping.notified());
    let mut going_away = false;
    let open = Rc::new(std::cell::Cell::new(0usize));
    let mut last_active = tokio::time::Instant::now();
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    loop {
        tokio::select! {
            next = connection.accept() => match next {
                Some(Ok((request, respond))) => {
                    last_active = tokio::time::Instant::now();
                    let guard = OpenStream::new(&open);
                    let app = app.clone();
                    actix_web::rt::spawn(async move {
                        respond_to(app, request, respond, peer).await;
                        drop(guard);
                    });
                }
                Some(Err(e)) => {
                    log::debug!("HTTP/2 connection with {peer:?} ended: {e}");
                    return;
                }
                None => return,
            },
            () = &mut stop, if !going_away => {
                going_away = true;
                connection.graceful_shutdown();
            }
            _ = idle_check.tick(), if !going_away => {
                if open.get() > 0 {
                    last_active = tokio::time::Instant::now();
                } else if last_active.elapsed() >= IDLE_TIMEOUT {
                    going_away = true;
                    connection.graceful_shutdown();
                }
            }
        }
    }
}

/// Counts a stream as open until dropped.
struct OpenStream(Rc<std::cell::Cell<usize>>);

impl OpenStream {
    fn new(open: &Rc<std::cell::Cell<usize>>) -> Self {
        open.set(open.get() + 1);
        OpenStream(open.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// One request: the application's answer, then its body, until it ends or the client resets
/// the stream.
async fn respond_to<S>(
    app: Rc<S>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: Option<SocketAddr>,
) where
    S: Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let (parts, body) = request.into_parts();
    let head_only = parts.method == http::Method::HEAD;
    let payload: actix_http::BoxedPayloadStream = Box::pin(RequestBody(body));
    let mut req = Request::with_payload(Payload::Stream { payload });
    let head = req.head_mut();
    head.uri = parts.uri;
    head.method = parts.method;
    head.version = parts.version;
    head.headers = parts.headers.into();
    head.peer_addr = peer;
    let response: Response<BoxBody> = match app.call(req).await {
        Ok(response) => HttpResponse::from(response).into(),
        Err(e) => e.into(),
    };
    let (head, body) = response.into_parts();
    let size = body.size();
    let end = head_only || size.is_eof();
    let Ok(mut stream) = respond.send_response(response_head(&head, size), end) else {
        return;
    };
    if !end {
        send_body(body, &mut stream).await;
    }
}

/// The HTTP/2 head of `head`: its status and headers, less the connection-specific ones, with
/// the body's length when it is known and a `Date`.
fn response_head(head: &Response<()>, size: BodySize) -> http::Response<()> {
    let mut out = http::Response::new(());
    *out.status_mut() = head.status();
    *out.version_mut() = http::Version::HTTP_2;
    let headers = out.headers_mut();
    for (name, value) in head.headers() {
        if !CONNECTION_HEADERS.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let BodySize::Sized(n) = size {
        let bodiless =
            head.status() == http::StatusCode::NO_CONTENT || head.status().is_informational();
        if !bodiless {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    if !headers.contains_key(header::DATE) {
        if let Ok(date) = HeaderValue::from_str(&HttpDate::from(SystemTime::now()).to_string()) {
            headers.insert(header::DATE, date);
        }
    }
    out
}

enum Next {
    Chunk(Option<Result<Bytes, actix_web::Error>>),
    Reset,
}

/// Writes `body` within the stream's flow-control window. Waiting for the next chunk or for
/// window, a reset from the client ends it at once: the body is dropped, and with it a
/// stream's session.
async fn send_body(body: BoxBody, stream: &mut SendStream<Bytes>) {
    let mut body = pin!(body);
    loop {
        let next = poll_fn(|cx| {
            if stream.poll_reset(cx).is_ready() {
                return Poll::Ready(Next::Reset);
            }
            body.as_mut()
                .poll_next(cx)
                .map(|chunk| Next::Chunk(chunk.map(|c| c.map_err(actix_web::Error::from))))
        })
        .await;
        let mut chunk = match next {
            Next::Reset => return,
            Next::Chunk(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Next::Chunk(Some(Err(e))) => {
                log::debug!("a response body failed: {e}");
                stream.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Next::Chunk(Some(Ok(chunk))) => chunk,
        };
        while !chunk.is_empty() {
            stream.reserve_capacity(chunk.len().min(CHUNK));
            let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(granted)) => granted,
                // Reset or gone: nobody reads the rest.
                Some(Err(_)) | None => return,
            };
            if granted == 0 {
                continue;
            }
            let part = chunk.split_to(granted.min(chunk.len()));
            if stream.send_data(part, false).is_err() {
                return;
            }
        }
    }
}

/// A request body, its window given back as it is read.
struct RequestBody(RecvStream);

impl Stream for RequestBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = &mut self.0;
        Poll::Ready(match ready!(body.poll_data(cx)) {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                Some(Ok(chunk))
            }
            Some(Err(e)) => Some(Err(PayloadError::Io(std::io::Error::other(e)))),
            None => None,
        })
    }
}
