//! Notifications: stored once per event, listed newest first per user, marked read.

use std::sync::Arc;

use actors::consumers::{NewNotification, Priority};
use chrono::{Duration, TimeZone, Utc};

use super::{backends, connect, unique_id, unique_user};
use crate::store::{NotificationRow, Store, StoreError};

fn notification(user: &str, n: u32) -> NewNotification {
    NewNotification {
        event_id: unique_id(),
        user_id: user.to_string(),
        event_type: "badge_earned".to_string(),
        title: format!("Badge {n}"),
        message: format!("You earned badge {n} ✨"),
        priority: Priority::High,
        data_json: format!(r#"{{"badge":{n}}}"#),
        created_at: Utc::now(),
    }
}

fn titles(rows: &[NotificationRow]) -> Vec<String> {
    rows.iter().map(|r| r.title.clone()).collect()
}

/// Inserts `count` notifications for `user`, titled "Badge 1" … in insertion order.
fn insert_many(store: &Store, user: &str, count: u32) {
    for n in 1..=count {
        assert!(store
            .insert_notification(&notification(user, n))
            .expect("insert"));
    }
}

#[test]
fn a_notification_is_stored_once_per_event_with_its_fields() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let mut new = notification(&user, 1);
        new.created_at = Utc
            .with_ymd_and_hms(2024, 3, 1, 8, 30, 0)
            .single()
            .expect("valid date")
            + Duration::nanoseconds(987_654_321);
        new.priority = Priority::Low;

        let first = store.insert_notification(&new).expect("insert");
        let mut again = new.clone();
        again.title = "a redelivery, rendered differently".to_string();
        let second = store.insert_notification(&again).expect("insert again");

        assert_eq!((first, second), (true, false), "{}", backend.name);
        let rows = store.list_notifications(&user, None, 10).expect("list");
        assert_eq!(rows.len(), 1, "{}", backend.name);
        let row = &rows[0];
        assert_eq!(
            (
                &row.event_id,
                &row.user_id,
                &row.event_type,
                &row.title,
                &row.message
            ),
            (
                &new.event_id,
                &new.user_id,
                &new.event_type,
                &new.title,
                &new.message
            ),
            "{}",
            backend.name
        );
        assert_eq!(row.priority, "low");
        assert_eq!(row.data_json, new.data_json);
        assert_eq!(
            row.created_at,
            new.created_at - Duration::nanoseconds(321),
            "{}: kept to the microsecond",
            backend.name
        );
        assert_eq!(row.read_at, None);
        assert!(row.id > 0);
    }
}

#[test]
fn notifications_list_newest_first_and_page_backwards_by_id() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        insert_many(&store, &user, 5);

        let page1 = store.list_notifications(&user, None, 2).expect("page 1");
        let page2 = store
            .list_notifications(&user, Some(page1[1].id), 2)
            .expect("page 2");
        let page3 = store
            .list_notifications(&user, Some(page2[1].id), 2)
            .expect("page 3");
        let past_end = store
            .list_notifications(&user, Some(page3[0].id), 2)
            .expect("past the end");

        assert_eq!(titles(&page1), ["Badge 5", "Badge 4"], "{}", backend.name);
        assert_eq!(titles(&page2), ["Badge 3", "Badge 2"], "{}", backend.name);
        assert_eq!(titles(&page3), ["Badge 1"], "{}", backend.name);
        assert!(past_end.is_empty(), "{}", backend.name);
        let all = store.list_notifications(&user, None, 10).expect("all");
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "ids descend");
        assert_eq!(
            store
                .list_notifications(&user, Some(u64::MAX), 10)
                .expect("huge cursor"),
            all
        );
        assert!(store
            .list_notifications(&user, None, 0)
            .expect("limit 0")
            .is_empty());
    }
}

#[test]
fn users_see_only_their_own_notifications() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let (alice, bob) = (unique_user(), unique_user());
        insert_many(&store, &alice, 2);
        insert_many(&store, &bob, 1);

        let alices = store.list_notifications(&alice, None, 10).expect("alice");
        let bobs = store.list_notifications(&bob, None, 10).expect("bob");

        assert_eq!(titles(&alices), ["Badge 2", "Badge 1"], "{}", backend.name);
        assert!(alices.iter().all(|r| r.user_id == alice));
        assert_eq!(titles(&bobs), ["Badge 1"], "{}", backend.name);
        assert_eq!(bobs[0].user_id, bob);
        assert_eq!(store.unread_count(&alice).expect("unread"), 2);
        assert_eq!(store.unread_count(&bob).expect("unread"), 1);
        // Case matters, as for event streams (utf8mb4_bin on MySQL).
        assert!(store
            .list_notifications(&alice.to_uppercase(), None, 10)
            .expect("nobody")
            .is_empty());
        assert_eq!(store.unread_count(&unique_user()).expect("unread"), 0);
    }
}

#[test]
fn a_user_can_mark_only_their_own_notifications_read() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let (alice, bob) = (unique_user(), unique_user());
        insert_many(&store, &alice, 2);
        let target = store.list_notifications(&alice, None, 1).expect("list")[0].clone();

        let by_bob = store
            .mark_notification_read(&bob, target.id)
            .expect("bob marks");
        assert!(!by_bob, "{}: not bob's notification", backend.name);
        assert_eq!(store.unread_count(&alice).expect("unread"), 2);

        let by_alice = store
            .mark_notification_read(&alice, target.id)
            .expect("alice marks");
        assert!(by_alice, "{}", backend.name);
        let read = store.list_notifications(&alice, None, 1).expect("list")[0].clone();
        let first_read_at = read.read_at.expect("read_at set");
        assert!(first_read_at >= target.created_at, "{}", backend.name);
        assert_eq!(store.unread_count(&alice).expect("unread"), 1);

        // Marking again still answers true and keeps the first read time.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(store
            .mark_notification_read(&alice, target.id)
            .expect("mark again"));
        let again = store.list_notifications(&alice, None, 1).expect("list")[0].clone();
        assert_eq!(again.read_at, Some(first_read_at), "{}", backend.name);

        assert!(!store
            .mark_notification_read(&alice, 999_999_999_999)
            .expect("no such id"));
        assert!(!store
            .mark_notification_read(&alice, u64::MAX)
            .expect("impossible id"));
    }
}

#[test]
fn notifications_that_do_not_fit_the_schema_are_refused() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let mut long_title = notification(&user, 1);
        long_title.title = "t".repeat(256);
        let mut no_user = notification(&user, 2);
        no_user.user_id = String::new();
        let mut long_message = notification(&user, 3);
        long_message.message = "m".repeat(65_536);

        for bad in [long_title, no_user, long_message] {
            let err = store.insert_notification(&bad).expect_err("refused");
            assert!(
                matches!(err, StoreError::InvalidEvent(_)),
                "{}: {err:?}",
                backend.name
            );
        }
        let mut widest = notification(&user, 4);
        widest.title = "é".repeat(255);
        assert!(store
            .insert_notification(&widest)
            .expect("255 characters fit"));
    }
}

#[test]
fn rows_serialize_in_camel_case_and_the_store_is_the_consumers_port() {
    use actors::consumers::NotificationStore;

    for backend in backends() {
        let store = connect(&backend, 1);
        let port: Arc<dyn NotificationStore> = Arc::new(store.clone());
        let user = unique_user();
        let new = notification(&user, 7);

        assert!(port.insert_notification(&new).expect("insert"));
        assert!(!port.insert_notification(&new).expect("insert again"));

        let row = store.list_notifications(&user, None, 1).expect("list")[0].clone();
        let json = serde_json::to_value(&row).expect("serialize");
        assert_eq!(json["eventId"], new.event_id.as_str(), "{}", backend.name);
        assert_eq!(json["userId"], user.as_str());
        assert_eq!(json["eventType"], "badge_earned");
        assert_eq!(json["priority"], "high");
        let data: serde_json::Value = serde_json::from_str(&new.data_json).expect("data is JSON");
        assert_eq!(json["data"], data, "served as the object itself");
        assert!(json["createdAt"].is_string());
        assert!(json["readAt"].is_null());
    }
}
