//! The admin operations feed: once per event id, read by cursor in commit order, bounded and
//! pruned like a user's stream, and written concurrently without a reader ever skipping a row.
//!
//! The feed is one table-wide stream, so every test here uses [`isolated_backends`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration as StdDuration;

use actors::journal::{EventLog, LogError};
use chrono::{Duration, TimeZone, Utc};
use diesel::prelude::*;

use super::{connect, isolated_backends, seqs, unique_id, unique_user};
use crate::store::schema::operations_feed;
use crate::store::{OperationsLog, Store, StoreError, StoredEvent};

/// Records a fresh operation for `user`; returns its event id.
fn record(store: &Store, user: &str) -> String {
    let event_id = unique_id();
    let stored = store
        .record_operation(&event_id, "nft_minted", user, &envelope(&event_id, user))
        .expect("record_operation");
    assert!(stored, "a new event id is stored");
    event_id
}

fn envelope(event_id: &str, user: &str) -> String {
    format!(r#"{{"eventId":"{event_id}","eventType":"nft_minted","userId":"{user}"}}"#)
}

fn event_ids(events: &[StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

#[test]
fn an_operation_is_stored_with_the_next_seq_and_its_fields() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        assert_eq!(store.operations_bounds().expect("bounds"), (None, 0));
        let before = Utc::now() - Duration::seconds(1);

        let event_id = unique_id();
        let json = envelope(&event_id, &user);
        assert!(store
            .record_operation(&event_id, "nft_minted", &user, &json)
            .expect("record"));

        let read = store.operations_after(0, 10).expect("read");
        assert_eq!(read.len(), 1, "{}", backend.name);
        let entry = &read[0];
        assert_eq!(
            (
                entry.seq,
                entry.event_id.as_str(),
                entry.event_type.as_str(),
                entry.user_id.as_str(),
                entry.envelope_json.as_str(),
            ),
            (
                1,
                event_id.as_str(),
                "nft_minted",
                user.as_str(),
                json.as_str()
            ),
            "{}",
            backend.name
        );
        assert!(entry.created_at >= before && entry.created_at <= Utc::now());
        assert_eq!(store.operations_bounds().expect("bounds"), (Some(1), 1));
    }
}

#[test]
fn a_redelivered_event_id_is_refused_and_consumes_no_seq() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let first = record(&store, &user);

        let again = store
            .record_operation(&first, "other_type", &user, "{}")
            .expect("record again");

        assert!(!again, "{}: a redelivery answers false", backend.name);
        let read = store.operations_after(0, 10).expect("read");
        assert_eq!(event_ids(&read), vec![first.clone()]);
        assert_eq!(
            read[0].event_type.as_str(),
            "nft_minted",
            "the first copy stays"
        );
        assert_eq!(store.operations_bounds().expect("bounds"), (Some(1), 1));
        let next = record(&store, &user);
        assert_eq!(
            seqs(&store.operations_after(1, 10).expect("read")),
            vec![2],
            "{}: {next} follows without a gap",
            backend.name
        );
    }
}

#[test]
fn invalid_operations_are_refused_before_touching_the_database() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let long_id = "x".repeat(65);
        for (event_id, event_type, user_id) in [
            ("", "nft_minted", user.as_str()),
            (long_id.as_str(), "nft_minted", user.as_str()),
            ("e1", "", user.as_str()),
            ("e1", "nft_minted", ""),
        ] {
            let refused = store.record_operation(event_id, event_type, user_id, "{}");
            assert!(
                matches!(refused, Err(StoreError::InvalidEvent(_))),
                "{}: {refused:?}",
                backend.name
            );
        }
        assert_eq!(store.operations_bounds().expect("bounds"), (None, 0));
    }
}

#[test]
fn operations_after_reads_oldest_first_from_the_cursor_up_to_the_limit() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let users: Vec<String> = (0..5).map(|_| unique_user()).collect();
        let ids: Vec<String> = users.iter().map(|u| record(&store, u)).collect();

        let all = store.operations_after(0, 100).expect("read all");
        assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5], "{}", backend.name);
        assert_eq!(event_ids(&all), ids);
        assert_eq!(
            all.iter().map(|e| e.user_id.clone()).collect::<Vec<_>>(),
            users,
            "one stream, whatever the user"
        );
        assert_eq!(
            seqs(&store.operations_after(1, 2).expect("page")),
            vec![2, 3]
        );
        assert_eq!(seqs(&store.operations_after(4, 10).expect("tail")), vec![5]);
        assert!(store.operations_after(5, 10).expect("at head").is_empty());
        assert!(store.operations_after(0, 0).expect("limit 0").is_empty());
        assert!(store
            .operations_after(u64::MAX, 10)
            .expect("past the end")
            .is_empty());
        assert_eq!(store.operations_bounds().expect("bounds"), (Some(1), 5));
    }
}

#[test]
fn pruning_deletes_the_oldest_entries_and_numbering_continues() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        record(&store, &user);
        record(&store, &user);
        thread::sleep(StdDuration::from_millis(20));
        let cutoff = Utc::now();
        thread::sleep(StdDuration::from_millis(20));
        let kept = record(&store, &user);

        let pruned = store.prune_operations_older_than(cutoff).expect("prune");

        assert_eq!(pruned, 2, "{}", backend.name);
        let left = store.operations_after(0, 10).expect("read");
        assert_eq!(seqs(&left), vec![3]);
        assert_eq!(event_ids(&left), vec![kept]);
        assert_eq!(store.operations_bounds().expect("bounds"), (Some(3), 3));
        assert_eq!(store.prune_operations_older_than(cutoff).expect("again"), 0);
        record(&store, &user);
        assert_eq!(store.operations_bounds().expect("bounds"), (Some(3), 4));

        let everything = Utc::now() + Duration::seconds(1);
        assert_eq!(
            store.prune_operations_older_than(everything).expect("all"),
            2
        );
        assert_eq!(
            store.operations_bounds().expect("bounds"),
            (None, 4),
            "{}: the counter outlives its rows",
            backend.name
        );
    }
}

#[test]
fn pruning_stops_at_the_first_entry_to_keep_so_no_hole_opens() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        for _ in 0..3 {
            record(&store, &user);
        }
        // Seq 3 as if stamped by an instance whose clock lags far behind: older than seq 2.
        let long_ago = Utc
            .with_ymd_and_hms(2001, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        let mut conn = store.checkout().expect("checkout");
        diesel::update(operations_feed::table.filter(operations_feed::seq.ne(2)))
            .set(operations_feed::created_at.eq(long_ago.naive_utc()))
            .execute(&mut *conn)
            .expect("backdate");
        drop(conn);

        let pruned = store
            .prune_operations_older_than(Utc::now() - Duration::hours(1))
            .expect("prune");

        assert_eq!(pruned, 1, "{}", backend.name);
        assert_eq!(
            seqs(&store.operations_after(0, 10).expect("read")),
            vec![2, 3]
        );
        assert_eq!(store.operations_bounds().expect("bounds"), (Some(2), 3));
    }
}

#[test]
fn the_operations_log_port_reads_the_feed_whatever_the_user_and_refuses_writes() {
    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let user = unique_user();
        let id = record(&store, &user);
        let log = OperationsLog(store.clone());

        let read = log.events_after("", 0, 10).expect("events_after");
        assert_eq!(event_ids(&read), vec![id], "{}", backend.name);
        assert_eq!(log.events_after("someone-else", 0, 10).expect("x"), read);
        assert_eq!(log.stream_bounds("").expect("bounds"), (Some(1), 1));
        assert!(matches!(
            log.append(&[super::event(&user)]),
            Err(LogError::Failed(_))
        ));
        assert!(store
            .events_after(&user, 0, 10)
            .expect("journal")
            .is_empty());
        assert_eq!(
            log.prune_older_than(Utc::now() + Duration::seconds(1))
                .expect("prune"),
            1
        );
        assert_eq!(log.stream_bounds("").expect("bounds"), (None, 1));
    }
}

#[test]
fn concurrent_writers_commit_in_seq_order_so_a_tailing_reader_sees_every_entry_once() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50;
    const TOTAL: usize = THREADS * PER_THREAD;

    for backend in isolated_backends() {
        let store = connect(&backend, THREADS as u32 + 1);
        let writers_done = Arc::new(AtomicBool::new(false));

        // Reads like the feed's tailer: everything after the highest seq read so far. Were a
        // seq ever committed after a higher one, the reader would already be past it and
        // never see that entry.
        let reader = {
            let (store, done) = (store.clone(), writers_done.clone());
            thread::spawn(move || -> Result<Vec<String>, StoreError> {
                let mut last = 0;
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = store.operations_after(last, 17)?;
                    for entry in &page {
                        last = last.max(entry.seq);
                        seen.push(entry.event_id.clone());
                    }
                    if finished && page.is_empty() {
                        return Ok(seen);
                    }
                }
            })
        };

        let writers: Vec<_> = (0..THREADS)
            .map(|_| {
                let store = store.clone();
                thread::spawn(move || -> Result<Vec<String>, StoreError> {
                    let user = unique_user();
                    let mut ids = Vec::with_capacity(PER_THREAD);
                    for _ in 0..PER_THREAD {
                        let event_id = unique_id();
                        let json = envelope(&event_id, &user);
                        if !store.record_operation(&event_id, "nft_minted", &user, &json)? {
                            panic!("fresh event id {event_id} reported as a duplicate");
                        }
                        ids.push(event_id);
                    }
                    Ok(ids)
                })
            })
            .collect();
        let mut written: Vec<String> = Vec::with_capacity(TOTAL);
        for writer in writers {
            let ids = writer
                .join()
                .expect("writer thread panicked")
                .unwrap_or_else(|e| panic!("{}: record_operation failed: {e}", backend.name));
            written.extend(ids);
        }
        writers_done.store(true, Ordering::SeqCst);
        let seen = reader
            .join()
            .expect("reader thread panicked")
            .unwrap_or_else(|e| panic!("{}: reader failed: {e}", backend.name));

        let mut times_seen: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &seen {
            *times_seen.entry(id.as_str()).or_default() += 1;
        }
        let wrong: Vec<_> = written
            .iter()
            .filter(|id| times_seen.get(id.as_str()) != Some(&1))
            .collect();
        assert!(
            wrong.is_empty(),
            "{}: {} of {TOTAL} entries not seen exactly once by the reader: {wrong:?}",
            backend.name,
            wrong.len()
        );
        assert_eq!(seen.len(), TOTAL, "{}", backend.name);
        let all = store.operations_after(0, 10_000).expect("read all");
        assert_eq!(
            seqs(&all),
            (1..=TOTAL as u64).collect::<Vec<_>>(),
            "{}: every number once, no gaps",
            backend.name
        );
        assert_eq!(
            store.operations_bounds().expect("bounds"),
            (Some(1), TOTAL as u64)
        );
    }
}
