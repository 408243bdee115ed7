//! The JSON error shape of every route: `{ "code": N, "message": "...", "error_code": "..." }`
//! (plus `field` when a request field is to blame), one `ResponseError` impl for all of them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::domain::{DomainError, DomainFailure};
use actors::event::EventError;
use actors::journal::LogError;

use crate::store::StoreError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("This route requires another role")]
    Forbidden,
    /// Refused for a reason other than the role, said in the message.
    #[error("{0}")]
    ForbiddenBecause(String),
    #[error("Too many SSE connections")]
    RateLimited,
    /// A token bucket of `crate::limits` is empty: 429 with `Retry-After`.
    #[error("Too many requests (the {limit} limit); retry after {}s", retry_after_secs(*.retry_after))]
    Throttled {
        limit: &'static str,
        retry_after: std::time::Duration,
    },
    /// A stream cap is reached: 503 with `Retry-After`.
    #[error("{message}")]
    AtCapacity {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    InvalidEvent(EventError),
    #[error("{name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// A request body that is not what the route takes (the field is named when known).
    #[error("{0}")]
    InvalidRequest(EventError),
    /// The NFT domain's rules refuse the request.
    #[error("{0}")]
    Domain(DomainError),
    #[error("{0}")]
    NotFound(String),
    /// The path exists under other methods (listed, for `Allow`).
    #[error("Method not allowed; this path takes {0}")]
    MethodNotAllowed(String),
    /// An `Idempotency-Key` already answered a different request (422: the retry is not the
    /// same request, and repeating it will not help).
    #[error("Idempotency-Key {0:?} was used for a different request")]
    IdempotencyKeyReused(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

/// Whole seconds for `Retry-After`, rounded up and at least 1 (0 would invite an immediate
/// retry into the same refusal).
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The header that makes a service write safe to retry (`crate::routes::publish`).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The JSON body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiErrorBody<'a> {
    code: u16,
    message: String,
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn error_code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => "FORBIDDEN",
            ApiError::RateLimited | ApiError::Throttled { .. } => "RATE_LIMITED",
            ApiError::AtCapacity { .. } => "UNAVAILABLE",
            ApiError::InvalidEvent(_) => "INVALID_EVENT",
            ApiError::InvalidParameter { .. } => "INVALID_PARAMETER",
            ApiError::InvalidRequest(_) => "INVALID_REQUEST",
            ApiError::Domain(e) => e.error_code(),
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            ApiError::IdempotencyKeyReused(_) => "IDEMPOTENCY_KEY_REUSED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited | ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AtCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InvalidEvent(_)
            | ApiError::InvalidParameter { .. }
            | ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Domain(DomainError::FlowInProgress(_)) => StatusCode::CONFLICT,
            ApiError::Domain(_) | ApiError::IdempotencyKeyReused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            // The detail is for operators, not for clients.
            log::error!("internal error: {detail}");
        }
        let field = match self {
            ApiError::InvalidEvent(e) | ApiError::InvalidRequest(e) => e.field.as_deref(),
            ApiError::InvalidParameter { name, .. } => Some(*name),
            ApiError::IdempotencyKeyReused(_) => Some(IDEMPOTENCY_HEADER),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Throttled { retry_after, .. } | ApiError::AtCapacity { retry_after, .. } =
            self
        {
            response.insert_header(("Retry-After", retry_after_secs(*retry_after).to_string()));
        }
        if let ApiError::MethodNotAllowed(methods) = self {
            response.insert_header(("Allow", methods.as_str()));
        }
        response.json(ApiErrorBody {
            code: self.status_code().as_u16(),
            message: self.to_string(),
            error_code: self.error_code(),
            field,
        })
    }
}

/// The ladder from the ports' errors to the API's: every handler answers a failed store, journal
/// or domain call with `?`. "Unavailable" stays 503 (retry later) all the way up; anything else
/// is a 500 whose detail goes to the log, not to the client.
impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<DomainFailure> for ApiError {
    fn from(e: DomainFailure) -> Self {
        match e {
            DomainFailure::Refused(e) => ApiError::Domain(e),
            DomainFailure::Store(e) => e.into(),
            DomainFailure::KeyReused(key) => ApiError::IdempotencyKeyReused(key),
        }
    }
}

/// A blocking-pool task that did not finish (it panicked, or the pool is shutting down).
impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}
