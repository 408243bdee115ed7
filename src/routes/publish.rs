use super::BodyLimit;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::request_id::RequestId;
use actix::Addr;
use actix_web::{post, web, HttpRequest, HttpResponse};
use actors::event::{check_id, EventError, PublishRequest};
use actors::journal::{Append, EventJournal};
use actors::Envelope;
use futures_util::StreamExt;

/// Header that carries a correlation id across services.
pub const CORRELATION_HEADER: &str = "X-Correlation-Id";

/// Header of the 202 naming the accepted event's cursor in its user's stream.
pub const CURSOR_HEADER: &str = "X-Event-Cursor";

/// A service publishes one event. The body is typed against the event's schema before
/// anything is stored: a request is either accepted whole or rejected with the offending field
/// named (400 `INVALID_EVENT`). 202 means stored durably (and handed to the user's streams);
/// when the store is down the answer is 503 and nothing was stored or delivered.
#[post("/api/v1/events")]
pub async fn publish_event(
    req: HttpRequest,
    request_id: RequestId,
    principal: Principal,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    journal: web::Data<Addr<EventJournal>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Service])?;
    let body = read_body(payload, limit.0).await?;
    let mut request = PublishRequest::from_json(&body).map_err(ApiError::InvalidEvent)?;
    if request.correlation_id.is_none() {
        request.correlation_id = correlation_header(&req)?;
    }

    let envelope = Envelope::new(
        request.user_id,
        request.data,
        principal.user_id,
        request.correlation_id,
    );
    let event_id = envelope.event_id.clone();
    let correlation_id = envelope.correlation_id.clone();
    let appended = journal
        .send(Append { envelope })
        .await
        .map_err(|_| ApiError::Unavailable("the event journal is not running".to_owned()))??;
    log::info!(
        target: "http",
        request_id = request_id.as_str(),
        event_id = event_id.as_str(),
        correlation_id = correlation_id.as_deref().unwrap_or("-"),
        seq = appended.seq;
        "event accepted"
    );
    Ok(HttpResponse::Accepted()
        .content_type("application/json")
        .insert_header((CURSOR_HEADER, appended.seq.to_string()))
        .body(appended.envelope_json))
}

fn correlation_header(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(CORRELATION_HEADER) else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        ApiError::InvalidEvent(EventError {
            field: Some(CORRELATION_HEADER.to_owned()),
            message: format!("{CORRELATION_HEADER}: {why}"),
        })
    };
    let value = value
        .to_str()
        .map_err(|_| invalid("must be visible ASCII"))?;
    check_id(CORRELATION_HEADER, value).map_err(ApiError::InvalidEvent)?;
    Ok(Some(value.to_owned()))
}

/// Reads the body up to `limit` bytes; a larger one is refused without reading it all.
pub(super) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::InvalidEvent(EventError {
            field: None,
            message: format!("body is larger than {limit} bytes"),
        })
    };
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            other => ApiError::InvalidEvent(EventError {
                field: None,
                message: format!("could not read the body: {other}"),
            }),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
