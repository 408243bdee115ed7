//! Cross-origin access (`http.cors_origins`): which other origins' pages may call the API and
//! open streams. Default: none, so only the router's own origin (its pages) can, and a page
//! elsewhere gets no `Access-Control-Allow-Origin` and is refused by its browser.
//!
//! One policy, applied by both paths that answer: an actix-web middleware for every route
//! (preflights included) and the lean stream acceptor, which writes its own response head and
//! so cannot sit behind a middleware. Tokens travel in the `Authorization` header, never in
//! cookies, so no answer carries `Access-Control-Allow-Credentials`; `*` therefore never
//! meets credentials.

use crate::error::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;

/// Methods a cross-origin caller may use.
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";

/// Request headers a cross-origin caller may send.
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, Cache-Control, \
     X-Correlation-Id, X-Request-Id, Idempotency-Key";

/// Response headers a cross-origin caller may read.
const EXPOSED_HEADERS: &str = "X-Event-Cursor, X-Request-Id, Retry-After";

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// One entry of `http.cors_origins`: `*` (any origin) or `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedOrigin(String);

impl TryFrom<String> for AllowedOrigin {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        if value == "*" {
            return Ok(AllowedOrigin(value));
        }
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"))
            .ok_or_else(|| {
                format!("`{value}` is not `*` or an origin such as https://app.example.com")
            })?;
        let well_formed = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        if !well_formed {
            return Err(format!(
                "`{value}` is not an origin (scheme://host[:port], no path, no trailing slash)"
            ));
        }
        Ok(AllowedOrigin(value.to_ascii_lowercase()))
    }
}

/// The policy, built once from the configuration.
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    pub fn new(origins: &[AllowedOrigin]) -> Self {
        CorsPolicy {
            any: origins.iter().any(|o| o.0 == "*"),
            origins: origins
                .iter()
                .filter(|o| o.0 != "*")
                .map(|o| o.0.clone())
                .collect(),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it may.
    pub fn allow(&self, origin: &[u8]) -> Option<String> {
        if self.any {
            return Some("*".to_owned());
        }
        let origin = std::str::from_utf8(origin).ok()?.to_ascii_lowercase();
        self.origins.contains(&origin).then_some(origin)
    }

    /// The headers an answer to a request from `origin` carries (none for a refused one).
    /// `Vary: Origin` tells caches that the answer depends on who asked.
    pub fn response_headers(&self, origin: Option<&[u8]>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if !self.any && !self.origins.is_empty() {
            headers.push(("vary", "Origin".to_owned()));
        }
        if let Some(allowed) = origin.and_then(|o| self.allow(o)) {
            headers.push(("access-control-allow-origin", allowed));
            headers.push(("access-control-expose-headers", EXPOSED_HEADERS.to_owned()));
        }
        headers
    }
}

/// Whether `req` is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The middleware (`middleware::from_fn(cors::apply)`): answers preflights (204 for an allowed
/// origin, a 403 JSON error otherwise) and adds the allow headers to every other answer to an
/// allowed origin.
pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let policy = req
        .app_data::<web::Data<CorsPolicy>>()
        .map(|p| p.get_ref().clone())
        .unwrap_or_default();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.as_bytes().to_vec());
    if is_preflight(&req) {
        let response = match origin.as_deref().and_then(|o| policy.allow(o)) {
            Some(allowed) => HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
                .insert_header((header::VARY, "Origin"))
                .finish(),
            None => ApiError::ForbiddenBecause(
                "this origin may not call the router (http.cors_origins)".to_owned(),
            )
            .error_response(),
        };
        return Ok(req.into_response(response));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    for (name, value) in policy.response_headers(origin.as_deref()) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Vec<AllowedOrigin> {
        list.iter()
            .map(|o| AllowedOrigin::try_from(o.to_string()).expect("valid"))
            .collect()
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let none = CorsPolicy::new(&[]);
        assert_eq!(none.allow(b"https://app.example.com"), None);
        assert!(none.response_headers(Some(b"https://x.example")).is_empty());

        let listed = CorsPolicy::new(&origins(&[
            "https://App.example.com",
            "http://127.0.0.1:3000",
        ]));
        assert_eq!(
            listed.allow(b"https://app.example.com").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(listed.allow(b"https://evil.example.com"), None);
        assert_eq!(listed.allow(b"null"), None);
        let headers = listed.response_headers(Some(b"http://127.0.0.1:3000"));
        assert!(headers.contains(&("vary", "Origin".to_owned())));
        assert!(headers.contains(&(
            "access-control-allow-origin",
            "http://127.0.0.1:3000".to_owned()
        )));

        let any = CorsPolicy::new(&origins(&["*"]));
        assert_eq!(any.allow(b"https://whoever.example").as_deref(), Some("*"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            "app.example.com",
            "https://app.example.com/",
            "https://a/b",
            "ftp://x",
            "https://",
        ] {
            assert!(AllowedOrigin::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
