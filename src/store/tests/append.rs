//! Appending and reading back: numbering, field round trips, refusals.

use chrono::{Duration, TimeZone, Utc};

use super::{backends, connect, event, event_at, seqs, unique_user};
use crate::store::StoreError;

#[test]
fn appended_events_read_back_in_order_with_their_fields() {
    for backend in backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        let batch = vec![event(&user), event(&user), event(&user)];

        let stored = store.append(&batch).expect("append");

        assert_eq!(seqs(&stored), vec![1, 2, 3], "{}", backend.name);
        for (new, got) in batch.iter().zip(&stored) {
            assert_eq!(got.event_id, new.event_id);
            assert_eq!(got.user_id, new.user_id);
            assert_eq!(got.event_type, new.event_type.into());
            assert_eq!(got.envelope_json, new.envelope_json);
        }
        let read = store.events_after(&user, 0, 100).expect("events_after");
        assert_eq!(
            read, stored,
            "{}: read back differs from append result",
            backend.name
        );
        let tail = store.events_after(&user, 1, 1).expect("events_after");
        assert_eq!(tail, stored[1..2].to_vec(), "{}", backend.name);
        assert!(store
            .events_after(&user, 3, 100)
            .expect("events_after")
            .is_empty());
        assert!(store
            .events_after(&user, 0, 0)
            .expect("events_after")
            .is_empty());
    }
}

#[test]
fn created_at_round_trips_at_microsecond_precision() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let when = Utc
            .with_ymd_and_hms(2024, 2, 29, 23, 59, 58)
            .single()
            .expect("valid date")
            + Duration::nanoseconds(123_456_789);

        let stored = store.append(&[event_at(&user, when)]).expect("append");

        let expected = Utc
            .with_ymd_and_hms(2024, 2, 29, 23, 59, 58)
            .single()
            .expect("valid date")
            + Duration::microseconds(123_456);
        assert_eq!(stored[0].created_at, expected, "{}", backend.name);
        let read = store.events_after(&user, 0, 10).expect("events_after");
        assert_eq!(read[0].created_at, expected, "{}", backend.name);
    }
}

#[test]
fn each_user_has_its_own_sequence_starting_at_one() {
    for backend in backends() {
        let store = connect(&backend, 2);
        let (alice, bob) = (unique_user(), unique_user());

        let first = store
            .append(&[event(&alice), event(&bob), event(&alice)])
            .expect("append");
        let second = store.append(&[event(&bob), event(&alice)]).expect("append");

        // Input order is kept; numbering is per user.
        assert_eq!(seqs(&first), vec![1, 1, 2], "{}", backend.name);
        assert_eq!(first[1].user_id, bob);
        assert_eq!(seqs(&second), vec![2, 3], "{}", backend.name);
        assert_eq!(
            seqs(&store.events_after(&alice, 0, 10).expect("read")),
            vec![1, 2, 3]
        );
        assert_eq!(
            seqs(&store.events_after(&bob, 0, 10).expect("read")),
            vec![1, 2]
        );
        assert_eq!(store.stream_bounds(&alice).expect("bounds"), (Some(1), 3));
        assert_eq!(
            store.stream_bounds(&unique_user()).expect("bounds"),
            (None, 0)
        );
    }
}

#[test]
fn user_ids_differing_only_in_case_are_different_streams() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let lower = unique_user();
        let upper = lower.to_uppercase();

        store.append(&[event(&lower)]).expect("append");
        let stored = store.append(&[event(&upper)]).expect("append");

        // MySQL's default collations ignore case; the schema's utf8mb4_bin must not.
        assert_eq!(seqs(&stored), vec![1], "{}", backend.name);
        assert_eq!(store.events_after(&upper, 0, 10).expect("read").len(), 1);
    }
}

#[test]
fn a_duplicate_event_id_fails_the_whole_batch() {
    for backend in backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        let original = event(&user);
        store
            .append(std::slice::from_ref(&original))
            .expect("append");

        let mut again = event(&user);
        again.event_id = original.event_id.clone();
        let err = store
            .append(&[event(&user), again])
            .expect_err("duplicate must fail");
        assert!(
            matches!(&err, StoreError::DuplicateEvent { event_id } if *event_id == original.event_id),
            "{}: {err:?}",
            backend.name
        );

        let twin = event(&user);
        let err = store
            .append(&[twin.clone(), twin])
            .expect_err("duplicate within a batch must fail");
        assert!(
            matches!(err, StoreError::DuplicateEvent { .. }),
            "{}: {err:?}",
            backend.name
        );
        assert!(!err.is_unavailable());

        // Both failed batches rolled back: no rows, and no numbers consumed.
        assert_eq!(
            seqs(&store.events_after(&user, 0, 10).expect("read")),
            vec![1]
        );
        assert_eq!(
            seqs(&store.append(&[event(&user)]).expect("append")),
            vec![2]
        );
    }
}

#[test]
fn events_that_do_not_fit_the_schema_are_refused_before_writing() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let mut too_long = event(&user);
        too_long.event_id = "e".repeat(65);
        let mut no_user = event(&user);
        no_user.user_id = String::new();

        for bad in [too_long, no_user] {
            let err = store
                .append(&[event(&user), bad])
                .expect_err("must be refused");
            assert!(
                matches!(err, StoreError::InvalidEvent(_)),
                "{}: {err:?}",
                backend.name
            );
        }
        assert_eq!(store.stream_bounds(&user).expect("bounds"), (None, 0));
        assert!(store.append(&[]).expect("empty batch").is_empty());
    }
}
