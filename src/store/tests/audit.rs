//! The audit log: one entry per event, filtered by type, user and occurrence time, paged.

use std::sync::Arc;

use actors::consumers::NewAuditEntry;
use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{backends, connect, unique_id, unique_type, unique_user};
use crate::store::{AuditQuery, AuditRow, Store, StoreError};

fn entry(user: &str, event_type: &str, occurred_at: DateTime<Utc>) -> NewAuditEntry {
    let event_id = unique_id();
    NewAuditEntry {
        envelope_json: format!(
            r#"{{"eventId":"{event_id}","eventType":"{event_type}","userId":"{user}"}}"#
        ),
        event_id,
        event_type: event_type.to_string(),
        user_id: user.to_string(),
        source: "nft-event-router".to_string(),
        correlation_id: Some(unique_id()),
        occurred_at,
        recorded_at: Utc::now(),
    }
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 8, 1, 10, minute, 0)
        .single()
        .expect("valid date")
        + Duration::microseconds(123_456)
}

fn event_ids(rows: &[AuditRow]) -> Vec<String> {
    rows.iter().map(|r| r.event_id.clone()).collect()
}

/// Appends `entries` in order and returns their event ids newest first, the order queries
/// answer in.
fn append_all(store: &Store, entries: &[NewAuditEntry]) -> Vec<String> {
    for e in entries {
        assert!(store.append_audit(e).expect("append"));
    }
    entries.iter().rev().map(|e| e.event_id.clone()).collect()
}

fn by_user(user: &str) -> AuditQuery {
    AuditQuery {
        user_id: Some(user.to_string()),
        limit: 100,
        ..AuditQuery::default()
    }
}

#[test]
fn an_event_is_audited_once_with_its_fields() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let mut new = entry(&user, "nft_minted", at(0) + Duration::nanoseconds(999));
        let mut without_correlation = entry(&user, "nft_burned", at(1));
        without_correlation.correlation_id = None;

        assert!(
            store.append_audit(&new).expect("append"),
            "{}",
            backend.name
        );
        new.source = "a redelivery".to_string();
        assert!(
            !store.append_audit(&new).expect("append again"),
            "{}",
            backend.name
        );
        assert!(store.append_audit(&without_correlation).expect("append"));

        let rows = store.query_audit(&by_user(&user)).expect("query");
        assert_eq!(rows.len(), 2, "{}", backend.name);
        let (second, first) = (&rows[0], &rows[1]);
        assert_eq!(first.event_id, new.event_id);
        assert_eq!(first.event_type, "nft_minted");
        assert_eq!(first.user_id, user);
        assert_eq!(first.source, "nft-event-router", "the first append stands");
        assert_eq!(first.correlation_id, new.correlation_id);
        assert_eq!(first.envelope_json, new.envelope_json);
        assert_eq!(first.occurred_at, at(0), "{}: microseconds", backend.name);
        assert_eq!(
            first.recorded_at.timestamp_micros(),
            new.recorded_at.timestamp_micros()
        );
        assert_eq!(second.correlation_id, None, "{}", backend.name);
        assert!(second.id > first.id);
    }
}

#[test]
fn audit_entries_filter_by_event_type_and_user() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let (alice, bob) = (unique_user(), unique_user());
        let (minted, burned) = (unique_type(), unique_type());
        let entries = [
            entry(&alice, &minted, at(0)),
            entry(&alice, &burned, at(1)),
            entry(&bob, &minted, at(2)),
        ];
        let ids = append_all(&store, &entries);
        let (bob_minted, alice_burned, alice_minted) = (&ids[0], &ids[1], &ids[2]);

        let of_type = store
            .query_audit(&AuditQuery {
                event_type: Some(minted.clone()),
                limit: 10,
                ..AuditQuery::default()
            })
            .expect("by type");
        let of_alice = store.query_audit(&by_user(&alice)).expect("by user");
        let both = store
            .query_audit(&AuditQuery {
                event_type: Some(minted.clone()),
                ..by_user(&alice)
            })
            .expect("by type and user");

        assert_eq!(
            event_ids(&of_type),
            [bob_minted.clone(), alice_minted.clone()],
            "{}",
            backend.name
        );
        assert_eq!(
            event_ids(&of_alice),
            [alice_burned.clone(), alice_minted.clone()],
            "{}",
            backend.name
        );
        assert_eq!(
            event_ids(&both),
            [alice_minted.as_str()],
            "{}",
            backend.name
        );
        assert!(store
            .query_audit(&AuditQuery {
                event_type: Some(burned),
                ..by_user(&bob)
            })
            .expect("nothing")
            .is_empty());
    }
}

#[test]
fn audit_time_windows_include_from_and_exclude_to() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let entries: Vec<_> = (0..4)
            .map(|m| entry(&user, "nft_unlocked", at(m)))
            .collect();
        let ids = append_all(&store, &entries);
        let window = |from: Option<u32>, to: Option<u32>| {
            let rows = store
                .query_audit(&AuditQuery {
                    from: from.map(at),
                    to: to.map(at),
                    ..by_user(&user)
                })
                .expect("query");
            event_ids(&rows)
        };

        // ids[0] is the entry at minute 3, ids[3] the one at minute 0.
        assert_eq!(window(Some(1), Some(3)), ids[1..3], "{}", backend.name);
        assert_eq!(window(Some(1), None), ids[0..3]);
        assert_eq!(window(None, Some(1)), ids[3..4]);
        assert_eq!(window(Some(0), Some(4)), ids);
        assert!(window(Some(2), Some(2)).is_empty(), "{}", backend.name);
        // Bounds finer than the stored microseconds compare at microsecond precision.
        let just_after = store
            .query_audit(&AuditQuery {
                from: Some(at(3) + Duration::nanoseconds(500)),
                ..by_user(&user)
            })
            .expect("query");
        assert_eq!(event_ids(&just_after), ids[0..1], "{}", backend.name);
    }
}

#[test]
fn audit_pages_go_newest_first_by_id() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let entries: Vec<_> = (0..5)
            .map(|m| entry(&user, "nft_upgraded", at(m)))
            .collect();
        let ids = append_all(&store, &entries);
        let page = |before_id: Option<u64>| {
            store
                .query_audit(&AuditQuery {
                    before_id,
                    limit: 2,
                    ..by_user(&user)
                })
                .expect("page")
        };

        let page1 = page(None);
        let page2 = page(Some(page1[1].id));
        let page3 = page(Some(page2[1].id));

        assert_eq!(event_ids(&page1), ids[0..2], "{}", backend.name);
        assert_eq!(event_ids(&page2), ids[2..4], "{}", backend.name);
        assert_eq!(event_ids(&page3), ids[4..5], "{}", backend.name);
        assert!(page(Some(page3[0].id)).is_empty());
        assert_eq!(event_ids(&page(Some(u64::MAX))), ids[0..2]);
        assert!(store
            .query_audit(&AuditQuery {
                limit: 0,
                ..by_user(&user)
            })
            .expect("limit 0")
            .is_empty());
    }
}

#[test]
fn audit_entries_that_do_not_fit_the_schema_are_refused() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let mut long_source = entry(&user, "nft_minted", at(0));
        long_source.source = "s".repeat(129);
        let mut long_correlation = entry(&user, "nft_minted", at(0));
        long_correlation.correlation_id = Some("c".repeat(129));
        let mut no_type = entry(&user, "nft_minted", at(0));
        no_type.event_type = String::new();

        for bad in [long_source, long_correlation, no_type] {
            let err = store.append_audit(&bad).expect_err("refused");
            assert!(
                matches!(err, StoreError::InvalidEvent(_)),
                "{}: {err:?}",
                backend.name
            );
        }
        assert!(store
            .query_audit(&by_user(&user))
            .expect("query")
            .is_empty());
    }
}

#[test]
fn rows_serialize_in_camel_case_and_the_store_is_the_consumers_port() {
    use actors::consumers::AuditStore;

    for backend in backends() {
        let store = connect(&backend, 1);
        let port: Arc<dyn AuditStore> = Arc::new(store.clone());
        let user = unique_user();
        let new = entry(&user, "badge_earned", at(0));

        assert!(port.append_audit(&new).expect("append"));
        assert!(!port.append_audit(&new).expect("append again"));

        let rows = store.query_audit(&by_user(&user)).expect("query");
        let json = serde_json::to_value(&rows[0]).expect("serialize");
        assert_eq!(json["eventId"], new.event_id.as_str(), "{}", backend.name);
        assert_eq!(json["eventType"], "badge_earned");
        assert_eq!(json["userId"], user.as_str());
        assert_eq!(
            json["correlationId"],
            new.correlation_id.as_deref().expect("set")
        );
        let envelope: serde_json::Value =
            serde_json::from_str(&new.envelope_json).expect("stored envelope is JSON");
        assert_eq!(json["envelope"], envelope, "served as the object itself");
        assert!(json["occurredAt"].is_string());
        assert!(json["recordedAt"].is_string());
    }
}
