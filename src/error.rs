//! The JSON error shape of every route: `{ "code": N, "message": "...", "error_code": "..." }`
//! (plus `field` when a request field is to blame), one `ResponseError` impl for all of them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::domain::DomainError;
use actors::event::EventError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("This route requires another role")]
    Forbidden,
    #[error("Too many SSE connections")]
    RateLimited,
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
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
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
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::RateLimited => "RATE_LIMITED",
            ApiError::InvalidEvent(_) => "INVALID_EVENT",
            ApiError::InvalidParameter { .. } => "INVALID_PARAMETER",
            ApiError::InvalidRequest(_) => "INVALID_REQUEST",
            ApiError::Domain(e) => e.error_code(),
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidEvent(_)
            | ApiError::InvalidParameter { .. }
            | ApiError::InvalidRequest(_)
            | ApiError::Domain(DomainError::VolumeDecreased { .. }) => StatusCode::BAD_REQUEST,
            ApiError::Domain(DomainError::FlowInProgress(_)) => StatusCode::CONFLICT,
            ApiError::Domain(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
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
            _ => None,
        };
        HttpResponse::build(self.status_code())
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .json(ErrorBody {
                code: self.status_code().as_u16(),
                message: self.to_string(),
                error_code: self.error_code(),
                field,
            })
    }
}
