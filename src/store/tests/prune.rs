//! Retention: pruning deletes old events but never lets a number be reused.

use chrono::{Duration, TimeZone, Utc};

use super::{backends, connect, event, event_at, seqs, unique_user};

#[test]
fn pruning_keeps_the_counter_so_numbers_are_never_reused() {
    for backend in backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        let long_ago = Utc
            .with_ymd_and_hms(2001, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        store
            .append(&[event_at(&user, long_ago), event_at(&user, long_ago)])
            .expect("append old");
        store.append(&[event(&user)]).expect("append recent");

        let pruned = store
            .prune_older_than(long_ago + Duration::days(1))
            .expect("prune");

        // Other tests on a shared MySQL never write events this old, but an aborted earlier
        // run might have left some: at least ours must be gone.
        assert!(pruned >= 2, "{}: pruned {pruned}", backend.name);
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
    for backend in backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let long_ago = Utc
            .with_ymd_and_hms(2002, 6, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        store.append(&[event_at(&user, long_ago)]).expect("append");

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
