//! The envelope every event travels in: `eventId`, `eventType`, `userId`, `timestamp`, `data`,
//! `source`, `version` and `correlationId`.

use super::{EventData, EventType};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// Schema version of the envelope; consumers branch on it when it changes.
pub const EVENT_VERSION: &str = "1.0.0";

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub event_id: String,
    pub event_type: EventType,
    pub user_id: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
    pub data: EventData,
    pub source: String,
    #[schema(value_type = String, example = "1.0.0")]
    pub version: &'static str,
    pub correlation_id: Option<String>,
}

fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl Envelope {
    /// A new envelope stamped now, with a fresh time-ordered id.
    pub fn new(
        user_id: impl Into<String>,
        data: EventData,
        source: impl Into<String>,
        correlation_id: Option<String>,
    ) -> Self {
        Envelope {
            event_id: new_event_id(),
            event_type: data.event_type(),
            user_id: user_id.into(),
            timestamp: Utc::now(),
            data,
            source: source.into(),
            version: EVENT_VERSION,
            correlation_id,
        }
    }

    /// Compact JSON, one line: what goes on the wire after `data:`.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and numbers into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The event id of a publish that carries an idempotency key: `nft_` and 32 hex digits of
/// SHA-256 over the publisher, the route and the key. The id *is* the request, so the store's
/// unique event id makes a retry find the first attempt's event, on any instance and after a
/// restart, and two publishers' keys never collide.
pub fn keyed_event_id(publisher: &str, route: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [publisher, route, key] {
        hash.update(part.as_bytes());
        // A separator that none of the parts may contain, so ("ab", "c") and ("a", "bc")
        // differ.
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("nft_{hex}")
}

/// `nft_` plus a UUIDv7: unique without coordination and sortable by creation time.
pub fn new_event_id() -> String {
    format!("nft_{}", uuid::Uuid::now_v7().simple())
}

/// An envelope as read back from the wire, before its `data` is typed.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    event_id: String,
    event_type: String,
    user_id: String,
    timestamp: DateTime<Utc>,
    data: serde_json::Value,
    source: String,
    version: String,
    #[serde(default)]
    correlation_id: Option<String>,
}

impl Envelope {
    /// Parses an envelope that another router (or this one) put on the wire, typing its data
    /// exactly as a publish request's. Only major version 1 is understood.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, super::EventError> {
        let raw: RawEnvelope = serde_json::from_slice(bytes).map_err(|e| super::EventError {
            field: None,
            message: format!("not an event envelope: {e}"),
        })?;
        if raw.version.split('.').next() != Some("1") {
            return Err(super::EventError {
                field: Some("version".into()),
                message: format!("version: unsupported envelope version `{}`", raw.version),
            });
        }
        let event_type: EventType = raw.event_type.parse().map_err(|e| super::EventError {
            field: Some("eventType".into()),
            message: format!("eventType: {e}"),
        })?;
        Ok(Envelope {
            event_id: raw.event_id,
            event_type,
            user_id: raw.user_id,
            timestamp: raw.timestamp,
            data: EventData::parse(event_type, raw.data)?,
            source: raw.source,
            version: EVENT_VERSION,
            correlation_id: raw.correlation_id,
        })
    }
}
