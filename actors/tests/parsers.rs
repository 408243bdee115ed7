//! Property tests of the parsers of outside input in this crate: the publish body (every event
//! type's schema) and identifiers. Bounded case counts, so they run in the ordinary test
//! command; a failing case is printed shrunk.

use actors::event::{check_id, is_invisible, sample_data, PublishRequest, MAX_ID_LEN};
use actors::EventType;
use proptest::prelude::*;

fn bounded() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid publish body of `event_type` for `user`.
fn body(event_type: EventType, user: &str) -> serde_json::Value {
    serde_json::json!({
        "eventType": event_type.as_str(),
        "userId": user,
        "data": sample_data(event_type),
    })
}

/// Characters that make ids look alike or break lines: format (Cf) and control (Cc).
const INVISIBLE: &[char] = &[
    '\u{202e}', '\u{202d}', '\u{2066}', '\u{200b}', '\u{200d}', '\u{feff}', '\u{ad}', '\u{0}',
    '\u{7}', '\n', '\u{1b}', '\u{7f}', '\u{85}',
];

proptest! {
    #![proptest_config(bounded())]

    #[test]
    fn any_bytes_are_parsed_or_refused_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..600)
    ) {
        let _ = PublishRequest::from_json(&bytes);
    }

    #[test]
    fn a_valid_event_of_any_type_is_accepted_for_any_visible_user_id(
        index in 0..EventType::ALL.len(),
        user in "[A-Za-z0-9_.:@-]{1,64}",
    ) {
        let event_type = EventType::ALL[index];
        let text = body(event_type, &user).to_string();
        let request = PublishRequest::from_json(text.as_bytes());
        prop_assert!(request.is_ok(), "{}: {:?}", text, request.err());
        let request = request.unwrap_or_else(|_| unreachable!());
        prop_assert_eq!(request.event_type, event_type);
        prop_assert_eq!(request.user_id, user);
    }

    #[test]
    fn a_body_with_one_field_changed_is_accepted_whole_or_refused_naming_a_field(
        index in 0..EventType::ALL.len(),
        field in "[a-zA-Z]{1,12}",
        value in prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
        ],
        in_data in any::<bool>(),
    ) {
        let event_type = EventType::ALL[index];
        let mut json = body(event_type, "u1");
        let target = if in_data { &mut json["data"] } else { &mut json };
        if let Some(object) = target.as_object_mut() {
            object.insert(field, value);
        }
        if let Err(e) = PublishRequest::from_json(json.to_string().as_bytes()) {
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.field.is_some(), "a field-level change names its field: {}", e.message);
        }
    }

    #[test]
    fn an_id_is_accepted_exactly_when_non_blank_bounded_and_visible(id in any::<String>()) {
        let expected = !id.trim().is_empty()
            && id.len() <= MAX_ID_LEN
            && !id.chars().any(is_invisible);
        prop_assert_eq!(check_id("userId", &id).is_ok(), expected, "{:?}", id);
    }

    #[test]
    fn an_invisible_character_anywhere_in_an_id_is_refused(
        before in "[a-z0-9]{0,20}",
        after in "[a-z0-9]{0,20}",
        c in proptest::sample::select(INVISIBLE),
    ) {
        let id = format!("{before}{c}{after}");
        let refused = check_id("userId", &id);
        prop_assert!(refused.is_err(), "{:?} was accepted", id);
        let text = body(EventType::BadgeEarned, &id).to_string();
        let error = PublishRequest::from_json(text.as_bytes()).err();
        prop_assert_eq!(error.and_then(|e| e.field), Some("userId".to_owned()));
    }
}
