//! Retention: pruning deletes old published events, never an unpublished one, and never lets
//! a number be reused.
//!
//! These tests count what a prune deleted, which on a shared database would include other
//! tests' old rows, hence [`isolated_backends`].

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::outbox::publish_all;
use super::{connect, event, event_at, isolated_backends, seqs, unique_user};

fn long_ago(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

#[test]
fn pruning_keeps_the_counter_so_numbers_are_never_reused() {
    for backend in isolated_backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        let long_ago = long_ago(2001);
        store
            .append(&[event_at(&user, long_ago), event_at(&user, long_ago)])
            .expect("append old");
        store.append(&[event(&user)]).expect("append recent");
        publish_all(&store);

        let pruned = store
            .prune_older_than(long_ago + Duration::days(1))
            .expect("prune");

        assert_eq!(pruned, 2, "{}", backend.name);
        assert_eq!(
            seqs(&store.events_after(&user, 0, 10).expect("read")),
            vec![3]
        );
        assert_eq!(store.stream_bounds(&user).expect("bounds"), (Some(3), 3));

        let next = store.append(&[event(&user)]).expect("append after prune");
        assert_eq!(seqs(&next), vec![4], "{}", backend.name);
        assert_eq!(store.prune_older_than(long_ago).expect("prune again"), 0);
        assert_eq!(store.stream_bounds(&user).expect("bounds"), (Some(3), 4));
    }
}

#[test]
fn pruning_everything_leaves_bounds_with_no_retained_events() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let long_ago = long_ago(2002);
        store.append(&[event_at(&user, long_ago)]).expect("append");
        publish_all(&store);

        store
            .prune_older_than(long_ago + Duration::seconds(1))
            .expect("prune");

        assert_eq!(
            store.stream_bounds(&user).expect("bounds"),
            (None, 1),
            "{}",
            backend.name
        );
    }
}

#[test]
fn pruning_never_deletes_an_unpublished_event_however_old() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let long_ago = long_ago(2003);
        let old: Vec<_> = (0..3).map(|_| event_at(&user, long_ago)).collect();
        store.append(&old).expect("append");
        let pending = store.pending_outbox(10).expect("pending");
        store
            .mark_published(&[pending[0].id])
            .expect("publish the first");

        let pruned = store.prune_older_than(Utc::now()).expect("prune");

        // Only the published one went; the others are still queued for Kafka and readable.
        assert_eq!(pruned, 1, "{}", backend.name);
        assert_eq!(
            seqs(&store.events_after(&user, 0, 10).expect("read")),
            vec![2, 3]
        );
        assert_eq!(
            store.pending_outbox(10).expect("pending"),
            pending[1..].to_vec(),
            "{}",
            backend.name
        );

        // Once the relay catches up, they age out like any other event.
        publish_all(&store);
        assert_eq!(store.prune_older_than(Utc::now()).expect("prune"), 2);
        assert_eq!(store.stream_bounds(&user).expect("bounds"), (None, 3));
    }
}
