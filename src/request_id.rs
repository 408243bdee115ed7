//! A request id on every HTTP request: taken from the caller's `X-Request-Id` when it is a
//! sane id (a proxy in front may have set one), else made here; answered in the response's
//! `X-Request-Id`, and logged with method, path, status and time on one line per request.
//! Handlers take [`RequestId`] to put the same id on their own lines.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::Instant;

/// The header a request id travels in, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a caller.
const MAX_LEN: usize = 128;

/// This request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The caller's id when it is visible ASCII without spaces and at most 128 bytes, else a
    /// new one.
    pub fn from_header(value: Option<&[u8]>) -> RequestId {
        let given = value
            .filter(|v| !v.is_empty() && v.len() <= MAX_LEN)
            .filter(|v| v.iter().all(|b| b.is_ascii_graphic()))
            .and_then(|v| std::str::from_utf8(v).ok());
        match given {
            Some(id) => RequestId(Arc::from(id)),
            None => RequestId::new(),
        }
    }

    /// A fresh id.
    pub fn new() -> RequestId {
        RequestId(Arc::from(uuid::Uuid::new_v4().simple().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<RequestId, Self::Error>>;

    /// The id the middleware gave this request (a fresh one outside it, as in unit tests).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_default()))
    }
}

/// Paths scraped or probed every few seconds: their lines are debug, not info.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The middleware (`middleware::from_fn(request_id::track)`).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = RequestId::from_header(req.headers().get(&REQUEST_ID_HEADER).map(|v| v.as_bytes()));
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let started = Instant::now();
    let mut response = next.call(req).await?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let level = if is_probe(&path) {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    log::log!(
        target: "http",
        level,
        request_id = id.as_str(),
        method = method.as_str(),
        path = path.as_str(),
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64;
        "request"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_caller_id_is_kept_and_anything_else_replaced() {
        assert_eq!(RequestId::from_header(Some(b"abc-123")).as_str(), "abc-123");
        for bad in [&b""[..], b"has space", b"\xff\xfe", &[b'a'; 129]] {
            let id = RequestId::from_header(Some(bad));
            assert_eq!(id.as_str().len(), 32, "{bad:?} replaced by a fresh id");
        }
        assert_ne!(RequestId::new(), RequestId::new());
    }
}
