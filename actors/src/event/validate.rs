//! Turning untrusted bytes into a typed event, with an error that names the offending field.

use super::{EventData, EventType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Longest accepted `userId` or `correlationId`, in bytes. Ids end up in keys, logs and
/// headers; an unbounded one is a memory and log-injection hazard.
pub const MAX_ID_LEN: usize = 128;

/// Why an event was rejected. `field` is the JSON path of the offending field (`data.tierId`),
/// when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EventError {
    pub field: Option<String>,
    pub message: String,
}

impl EventError {
    fn at(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        EventError {
            message: format!("{field}: {reason}"),
            field: Some(field),
        }
    }

    fn body(reason: impl std::fmt::Display) -> Self {
        EventError {
            field: None,
            message: reason.to_string(),
        }
    }

    /// Maps a path-tracked serde error to the field it is about. serde reports a missing field
    /// at its parent's path, so the field's own name is lifted out of the message.
    fn from_serde(prefix: &str, err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let inner = err.inner();
        if inner.is_syntax() || inner.is_eof() {
            return EventError::body(format!("body is not valid JSON: {inner}"));
        }
        let mut path = err.path().to_string();
        if path == "." {
            path.clear();
        }
        let text = strip_position(&inner.to_string());
        let field = match missing_field_name(&text) {
            Some(name) => join_path(&join_path(prefix, &path), name),
            None => join_path(prefix, &path),
        };
        if field.is_empty() {
            EventError::body(text)
        } else {
            EventError::at(field, text)
        }
    }
}

fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}.{b}"),
    }
}

/// serde names a missing field only in its message, at the parent's path.
fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// serde_json appends " at line 1 column 42"; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn parse_at<T: DeserializeOwned>(prefix: &str, value: serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| EventError::from_serde(prefix, e))
}

/// The body of `POST /api/v1/events`, before its `data` is typed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPublish {
    event_type: String,
    user_id: String,
    data: serde_json::Value,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// The publish body as the API document shows it: [`RawPublish`] with `data` typed by
/// `eventType` ([`super::TypedData`]).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishBody {
    #[serde(flatten)]
    typed: super::TypedData,
    #[schema(format = "identifier")]
    user_id: String,
    #[schema(format = "identifier")]
    correlation_id: Option<String>,
}

/// Numbers written with a fraction of zero (`25.0`) are whole numbers, as JSON Schema has
/// them: read them as integers, so a field typed `u32` takes `25.0` as it takes `25`.
pub fn whole_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // Exactly representable, and within the integer types' range.
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    // Truncation is exact here: the value has no fraction.
                    #[allow(clippy::cast_possible_truncation)]
                    let whole = f as i64;
                    *value = serde_json::Value::from(whole);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A publish request whose every field has been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest {
    pub event_type: EventType,
    pub user_id: String,
    pub data: EventData,
    pub correlation_id: Option<String>,
}

impl PublishRequest {
    /// Parses and validates a publish body. Nothing partially valid gets through.
    pub fn from_json(body: &[u8]) -> Result<Self, EventError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: RawPublish =
            serde_path_to_error::deserialize(&mut de).map_err(|e| EventError::from_serde("", e))?;
        de.end()
            .map_err(|e| EventError::body(format!("body is not valid JSON: {e}")))?;

        let event_type: EventType = raw
            .event_type
            .parse()
            .map_err(|e| EventError::at("eventType", e))?;
        check_id("userId", &raw.user_id)?;
        if let Some(id) = &raw.correlation_id {
            check_id("correlationId", id)?;
        }
        let mut data = raw.data;
        whole_numbers(&mut data);
        let data = EventData::parse(event_type, data)?;
        Ok(PublishRequest {
            event_type,
            user_id: raw.user_id,
            data,
            correlation_id: raw.correlation_id,
        })
    }
}

/// Ids must be non-empty, bounded, and printable: they become SSE routing keys, Kafka keys and
/// log fields. Unicode format characters (general category Cf: bidirectional overrides such as
/// U+202E, zero-width spaces and joiners) are refused beside control characters (Cc), because
/// they make two different ids look identical in a log line, the admin page or the audit log.
pub fn check_id(field: &str, id: &str) -> Result<(), EventError> {
    if id.trim().is_empty() {
        return Err(EventError::at(field, "must not be empty"));
    }
    if id.chars().count() > MAX_ID_LEN {
        return Err(EventError::at(
            field,
            format!("longer than {MAX_ID_LEN} characters"),
        ));
    }
    if let Some(c) = id.chars().find(|&c| is_invisible(c)) {
        return Err(EventError::at(
            field,
            format!(
                "contains a control or format character (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// The JSON Schema `pattern` of what [`check_id`] takes (the length is the schema's
/// `maxLength`): some character that is not white space, and none that [`is_invisible`]
/// refuses. Built from the same predicate, so the API document cannot drift from the check.
pub fn id_pattern() -> String {
    // Runs of consecutive refused characters, as (first, last).
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
        if !is_invisible(c) {
            continue;
        }
        let n = u32::from(c);
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => runs.push((n, n)),
        }
    }
    let mut class = String::new();
    for (first, last) in runs {
        push_class_char(&mut class, first);
        if last != first {
            class.push('-');
            push_class_char(&mut class, last);
        }
    }
    format!("^(?=.*\\S)[^{class}]*$")
}

/// A character of a regex class: a `\u` escape in the BMP; beyond it the character itself,
/// which regex engines in Unicode mode take (no `\u` escape can name it).
fn push_class_char(class: &mut String, n: u32) {
    match char::from_u32(n) {
        Some(c) if n > 0xFFFF => class.push(c),
        _ => class.push_str(&format!("\\u{n:04X}")),
    }
}

/// Control (Cc) or format (Cf) characters: what an identifier shown to people must not hold.
pub fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.is_control() || c.general_category() == GeneralCategory::Format
}

fn check_volume(field: &str, v: f64) -> Result<(), EventError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(EventError::at(field, "must be a non-negative number"))
    }
}

impl EventData {
    /// Types `data` as the payload of `event_type`, naming the first field that does not fit.
    pub fn parse(event_type: EventType, data: serde_json::Value) -> Result<Self, EventError> {
        if !data.is_object() {
            return Err(EventError::at("data", "must be a JSON object"));
        }
        const P: &str = "data";
        let typed = match event_type {
            EventType::NftUnlocked => EventData::NftUnlocked(parse_at(P, data)?),
            EventType::NftUpgraded => EventData::NftUpgraded(parse_at(P, data)?),
            EventType::BadgeEarned => EventData::BadgeEarned(parse_at(P, data)?),
            EventType::NftMinted => EventData::NftMinted(parse_at(P, data)?),
            EventType::NftBurned => EventData::NftBurned(parse_at(P, data)?),
            EventType::VolumeMilestoneReached => {
                let d: super::VolumeMilestoneReached = parse_at(P, data)?;
                check_volume("data.previousVolume", d.previous_volume)?;
                check_volume("data.currentVolume", d.current_volume)?;
                check_volume("data.milestone", d.milestone)?;
                EventData::VolumeMilestoneReached(d)
            }
            EventType::TierQualificationChanged => {
                EventData::TierQualificationChanged(parse_at(P, data)?)
            }
            EventType::NftUnlockFailed => EventData::NftUnlockFailed(parse_at(P, data)?),
            EventType::SystemAlert => EventData::SystemAlert(parse_at(P, data)?),
            EventType::SystemAlertResolved => EventData::SystemAlertResolved(parse_at(P, data)?),
            EventType::MetricsReport => EventData::MetricsReport(parse_at(P, data)?),
        };
        Ok(typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlocked_body() -> serde_json::Value {
        serde_json::json!({
            "eventType": "nft_unlocked",
            "userId": "u1",
            "data": {
                "nftId": "n1", "tierName": "Bronze", "tierId": 1,
                "mintAddress": "m", "imageUrl": "https://x/1.png",
                "benefits": {"tradingFeeReduction": "5%", "aiAgentWeeklyUses": 10, "prioritySupport": false}
            }
        })
    }

    fn parse(v: &serde_json::Value) -> Result<PublishRequest, EventError> {
        PublishRequest::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn accepts_a_valid_event() {
        let req = parse(&unlocked_body()).expect("valid");
        assert_eq!(req.event_type, EventType::NftUnlocked);
        assert_eq!(req.user_id, "u1");
    }

    #[test]
    fn names_a_missing_nested_field() {
        let mut v = unlocked_body();
        v["data"]["benefits"]
            .as_object_mut()
            .expect("object")
            .remove("prioritySupport");
        let err = parse(&v).expect_err("invalid");
        assert_eq!(err.field.as_deref(), Some("data.benefits.prioritySupport"));
    }

    #[test]
    fn names_a_wrongly_typed_field() {
        let mut v = unlocked_body();
        v["data"]["tierId"] = serde_json::json!("one");
        let err = parse(&v).expect_err("invalid");
        assert_eq!(err.field.as_deref(), Some("data.tierId"));
    }

    #[test]
    fn rejects_unknown_type_and_missing_user() {
        let mut v = unlocked_body();
        v["eventType"] = serde_json::json!("nft_exploded");
        assert_eq!(
            parse(&v).expect_err("x").field.as_deref(),
            Some("eventType")
        );
        let mut v = unlocked_body();
        v.as_object_mut().expect("object").remove("userId");
        assert_eq!(parse(&v).expect_err("x").field.as_deref(), Some("userId"));
    }

    #[test]
    fn rejects_malformed_json_and_unknown_fields() {
        let err = PublishRequest::from_json(b"{\"eventType\": ").expect_err("x");
        assert!(err.message.contains("not valid JSON"), "{err}");
        let mut v = unlocked_body();
        v["data"]["internalId"] = serde_json::json!(7);
        assert_eq!(
            parse(&v).expect_err("x").field.as_deref(),
            Some("data.internalId")
        );
    }
}
