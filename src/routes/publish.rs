use super::BodyLimit;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiErrorBody, IDEMPOTENCY_HEADER};
use crate::limits::Limits;
use crate::request_id::RequestId;
use actix::Addr;
use actix_web::{post, web, HttpRequest, HttpResponse};
use actors::event::{check_id, keyed_event_id, EventError, PublishBody, PublishRequest};
use actors::journal::{Append, AppendOnce, Appended, EventJournal};
use actors::Envelope;
use futures_util::StreamExt;

/// Header that carries a correlation id across services.
pub const CORRELATION_HEADER: &str = "X-Correlation-Id";

/// Header of the 202 naming the accepted event's cursor in its user's stream.
pub const CURSOR_HEADER: &str = "X-Event-Cursor";

/// Header of a 202 that answers a retry with the first attempt's event.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// Longest `Idempotency-Key` taken (as Stripe's).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What an idempotency key is scoped to besides its publisher.
const PUBLISH_ROUTE: &str = "POST /api/v1/events";

/// A service publishes one event. The body is typed against the event's schema before
/// anything is stored: a request is either accepted whole or rejected with the offending field
/// named (400 `INVALID_EVENT`). 202 means stored durably (and handed to the user's streams);
/// when the store is down the answer is 503 and nothing was stored or delivered.
///
/// With an `Idempotency-Key` the event's id is derived from the publisher and the key, so a
/// retry of the same request (after a cut connection, on any instance, after a restart) gets
/// the first attempt's 202 again, same event id and cursor, marked `Idempotent-Replayed: true`,
/// and nothing is stored or delivered twice. The key is remembered as long as its event is
/// retained (`store.retention_days`). The same key with a different request is a 422
/// `IDEMPOTENCY_KEY_REUSED`.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "events",
    request_body = PublishBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry return the first answer (1 to 255 visible ASCII)"),
        ("X-Correlation-Id" = Option<String>, Header, pattern = "^[ -~]*[!-~][ -~]*$", max_length = 128, description = "Fills a missing `correlationId`"),
    ),
    responses(
        (status = 202, description = "Stored durably and handed to the user's streams", body = Envelope,
            headers(("X-Event-Cursor" = u64, description = "The event's cursor in its user's stream"))),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 422, description = "Refused by the NFT domain's rules", body = ApiErrorBody),
        (status = 429, description = "A rate limit of `[limits]`, with `Retry-After`", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/events")]
pub async fn publish_event(
    req: HttpRequest,
    request_id: RequestId,
    principal: Principal,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    journal: web::Data<Addr<EventJournal>>,
    limits: web::Data<Limits>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Service])?;
    limits.publish(&principal.user_id).await?;
    let key = idempotency_key(&req)?;
    let body = read_body(payload, limit.0).await?;
    let mut request = PublishRequest::from_json(&body).map_err(ApiError::InvalidEvent)?;
    // Checked whenever sent, even when the body's `correlationId` wins.
    let header = correlation_header(&req)?;
    if request.correlation_id.is_none() {
        request.correlation_id = header;
    }

    let keyed_id = key
        .as_deref()
        .map(|key| keyed_event_id(&principal.user_id, PUBLISH_ROUTE, key));
    let mut envelope = Envelope::new(
        request.user_id,
        request.data,
        principal.user_id,
        request.correlation_id,
    );
    let event_id = keyed_id.unwrap_or_else(|| envelope.event_id.clone());
    envelope.event_id = event_id.clone();
    let correlation_id = envelope.correlation_id.clone();
    let not_running = |_| ApiError::Unavailable("the event journal is not running".to_owned());
    let (appended, replayed): (Appended, bool) = match key {
        None => (
            journal
                .send(Append { envelope })
                .await
                .map_err(not_running)??,
            false,
        ),
        Some(key) => {
            let asked = serde_json::to_value(&envelope).unwrap_or_default();
            let once = journal
                .send(AppendOnce { envelope })
                .await
                .map_err(not_running)??;
            if once.replayed && !same_request(&asked, &once.appended.envelope_json) {
                return Err(ApiError::IdempotencyKeyReused(key));
            }
            (once.appended, once.replayed)
        }
    };
    log::info!(
        target: "http",
        request_id = request_id.as_str(),
        event_id = event_id.as_str(),
        correlation_id = correlation_id.as_deref().unwrap_or("-"),
        seq = appended.seq;
        "{}", if replayed { "event replayed for its idempotency key" } else { "event accepted" }
    );
    let mut response = HttpResponse::Accepted();
    response
        .content_type("application/json")
        .insert_header((CURSOR_HEADER, appended.seq.to_string()));
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    Ok(response.body(appended.envelope_json))
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY
        || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Err(ApiError::InvalidEvent(EventError {
            field: Some(IDEMPOTENCY_HEADER.to_owned()),
            message: format!(
                "{IDEMPOTENCY_HEADER}: must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ),
        }));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Whether the stored envelope answers the same request as `asked` (the new envelope): same
/// user, type, data, publisher and correlation id. Ids and timestamps differ by nature.
fn same_request(asked: &serde_json::Value, stored_json: &str) -> bool {
    let Ok(stored) = serde_json::from_str::<serde_json::Value>(stored_json) else {
        return false;
    };
    ["userId", "eventType", "data", "source", "correlationId"]
        .iter()
        .all(|field| asked.get(field) == stored.get(field))
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
