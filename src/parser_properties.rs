//! Property tests of this crate's parsers of outside input: the acceptor's request-head
//! classifier, `Last-Event-ID` and the query's cursor, the CORS origin list, configuration
//! values. (The publish body and identifiers are covered in `actors/tests/parsers.rs`.)
//! Bounded case counts, so they run in the ordinary test command.

use crate::acceptor::head::{classify, Head, USER_STREAM_PATH};
use crate::config::Settings;
use crate::cors::AllowedOrigin;
use crate::streams::resume_point;
use actors::Resume;
use figment::providers::{Format, Toml};
use figment::Figment;
use proptest::prelude::*;

fn bounded(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn repo_config() -> Figment {
    Figment::from(Toml::file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.toml"
    )))
}

/// A header value as a client may send it: visible ASCII and spaces, no leading space.
const HEADER_VALUE: &str = "[!-~][ -~]{0,40}";

proptest! {
    #![proptest_config(bounded(256))]

    #[test]
    fn any_bytes_are_classified_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 1..700),
        exhausted in any::<bool>(),
    ) {
        let _ = classify(&bytes, exhausted);
    }

    #[test]
    fn a_well_formed_stream_request_keeps_its_credentials_and_cursor(
        token in HEADER_VALUE,
        cursor in HEADER_VALUE,
        query in "[a-zA-Z0-9=&_%-]{0,40}",
        origin in proptest::option::of("https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?"),
    ) {
        let token = token.trim_end().to_owned();
        let cursor = cursor.trim_end().to_owned();
        let target = if query.is_empty() {
            USER_STREAM_PATH.to_owned()
        } else {
            format!("{USER_STREAM_PATH}?{query}")
        };
        let origin_line = origin.as_ref().map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\
             Last-Event-ID: {cursor}\r\n{origin_line}\r\n"
        );
        match classify(head.as_bytes(), false) {
            Head::Stream(r) => {
                prop_assert_eq!(r.head_len, head.len());
                prop_assert_eq!(r.authorization, Some(token.into_bytes()));
                prop_assert_eq!(r.last_event_id, Some(cursor.into_bytes()));
                prop_assert_eq!(r.origin, origin.map(String::into_bytes));
                prop_assert_eq!(r.query, query);
            }
            other => prop_assert!(false, "{:?} is {:?}", head, other),
        }
    }

    #[test]
    fn any_cursor_header_or_query_gives_a_resume_point_without_panicking(
        header in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        query in "\\PC{0,60}",
    ) {
        let _ = resume_point(header.as_deref(), &query);
    }

    #[test]
    fn a_numeric_cursor_resumes_after_it_from_the_header_or_the_query(n in any::<u64>()) {
        prop_assert_eq!(resume_point(Some(n.to_string().as_bytes()), ""), Resume::After(n));
        prop_assert_eq!(
            resume_point(None, &format!("lastEventId={n}")),
            Resume::After(n)
        );
        // The header wins over the query, and blank means live.
        prop_assert_eq!(
            resume_point(Some(n.to_string().as_bytes()), "lastEventId=1"),
            Resume::After(n)
        );
        prop_assert_eq!(resume_point(Some(b" "), &format!("lastEventId={n}")), Resume::Live);
    }

    #[test]
    fn a_non_numeric_cursor_is_invalid(cursor in "[a-zA-Z][a-zA-Z0-9]{0,10}") {
        prop_assert_eq!(resume_point(Some(cursor.as_bytes()), ""), Resume::Invalid);
    }

    #[test]
    fn an_origin_entry_is_parsed_or_refused_without_panicking(entry in "\\PC{0,40}") {
        if let Ok(origin) = AllowedOrigin::try_from(entry.clone()) {
            prop_assert!(entry == "*" || entry.starts_with("http://") || entry.starts_with("https://"));
            let _ = origin;
        }
    }
}

proptest! {
    // Each case reads the whole configuration: fewer of them.
    #![proptest_config(bounded(48))]

    #[test]
    fn a_duration_key_is_accepted_exactly_from_its_minimum(secs in 0u64..100_000) {
        let f = repo_config().merge(Toml::string(&format!("[sse]\nheartbeat_secs = {secs}")));
        match Settings::from_figment(f) {
            Ok(settings) => {
                prop_assert!(secs >= 1);
                prop_assert_eq!(settings.sse.heartbeat.as_secs(), secs);
            }
            Err(e) => {
                prop_assert!(secs == 0);
                prop_assert!(e.to_string().contains("sse.heartbeat_secs"), "{}", e);
            }
        }
    }

    #[test]
    fn any_text_for_an_address_is_parsed_or_refused_naming_the_key(bind in "\\PC{0,30}") {
        let value = toml_string(&bind);
        let f = repo_config().merge(Toml::string(&format!("[http]\nbind = {value}")));
        if let Err(e) = Settings::from_figment(f) {
            let text = e.to_string();
            prop_assert!(
                text.contains("http.bind") || text.contains("auth."),
                "{}",
                text
            );
        }
    }
}

/// `value` as a TOML basic string.
fn toml_string(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}
