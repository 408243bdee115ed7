//! The Kafka outbox: unpublished events in id order, marking them published, the backlog.

use chrono::SubsecRound;
use std::sync::Arc;

use super::{connect, event, isolated_backends, unique_user};
use crate::store::{OutboxEntry, Store};

fn ids(entries: &[OutboxEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.id).collect()
}

fn event_ids(entries: &[OutboxEntry]) -> Vec<String> {
    entries.iter().map(|e| e.event_id.clone()).collect()
}

/// Marks everything pending as published, as a relay that is fully caught up would have.
pub(super) fn publish_all(store: &Store) {
    loop {
        let pending = store.pending_outbox(500).expect("pending");
        if pending.is_empty() {
            return;
        }
        store
            .mark_published(&ids(&pending))
            .expect("mark published");
    }
}

#[test]
fn pending_events_come_oldest_first_with_their_fields() {
    for backend in isolated_backends() {
        let store = connect(&backend, 2);
        let (alice, bob) = (unique_user(), unique_user());
        let first = vec![event(&alice), event(&bob)];
        let second = vec![event(&alice)];
        store.append(&first).expect("append");
        store.append(&second).expect("append");

        let pending = store.pending_outbox(10).expect("pending");

        let appended: Vec<_> = first.iter().chain(&second).collect();
        assert_eq!(
            event_ids(&pending),
            appended
                .iter()
                .map(|e| e.event_id.clone())
                .collect::<Vec<_>>(),
            "{}: append order",
            backend.name
        );
        assert!(
            pending.windows(2).all(|w| w[0].id < w[1].id),
            "{}: ids ascend",
            backend.name
        );
        for (entry, new) in pending.iter().zip(&appended) {
            assert_eq!(entry.user_id, new.user_id);
            assert_eq!(entry.event_type, new.event_type.into());
            assert_eq!(entry.correlation_id, new.correlation_id);
            assert_eq!(entry.envelope_json, new.envelope_json);
            // Stored to the microsecond: where the relay's publish latency starts.
            assert_eq!(entry.created_at, new.created_at.trunc_subsecs(6));
        }
        assert_eq!(
            store.pending_outbox(2).expect("pending"),
            pending[..2].to_vec()
        );
        assert!(store.pending_outbox(0).expect("pending").is_empty());
    }
}

#[test]
fn marked_events_leave_the_queue_and_marking_again_is_harmless() {
    for backend in isolated_backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        store
            .append(&[event(&user), event(&user), event(&user)])
            .expect("append");
        let pending = store.pending_outbox(10).expect("pending");

        store
            .mark_published(&ids(&pending[..2]))
            .expect("mark published");

        assert_eq!(
            store.pending_outbox(10).expect("pending"),
            pending[2..].to_vec(),
            "{}",
            backend.name
        );
        // A relay retrying a batch, ids that name no row, an empty batch: nothing changes.
        store
            .mark_published(&[pending[0].id, 999_999_999, u64::MAX])
            .expect("mark again");
        store.mark_published(&[]).expect("mark nothing");
        assert_eq!(store.pending_outbox(10).expect("pending"), pending[2..]);
        assert_eq!(store.outbox_backlog().expect("backlog"), 1);
        // Published events are still the user's stream: the outbox never hides them from SSE.
        assert_eq!(store.events_after(&user, 0, 10).expect("read").len(), 3);
    }
}

#[test]
fn the_backlog_counts_what_waits_to_be_published() {
    // More than one UPDATE chunk, so marking a large batch is covered too.
    const MANY: usize = 1_100;

    for backend in isolated_backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        assert_eq!(
            store.outbox_backlog().expect("backlog"),
            0,
            "{}",
            backend.name
        );

        let batch: Vec<_> = (0..MANY).map(|_| event(&user)).collect();
        store.append(&batch).expect("append");
        assert_eq!(store.outbox_backlog().expect("backlog"), MANY as u64);

        let pending = store.pending_outbox(MANY).expect("pending");
        assert_eq!(pending.len(), MANY);
        store
            .mark_published(&ids(&pending[..MANY - 1]))
            .expect("mark published");
        assert_eq!(
            store.outbox_backlog().expect("backlog"),
            1,
            "{}",
            backend.name
        );

        publish_all(&store);
        assert_eq!(store.outbox_backlog().expect("backlog"), 0);
        assert!(store.pending_outbox(10).expect("pending").is_empty());
    }
}

#[test]
fn the_store_serves_the_relay_as_its_outbox_port() {
    use actors::outbox::Outbox;

    for backend in isolated_backends() {
        let store = connect(&backend, 1);
        let outbox: Arc<dyn Outbox> = Arc::new(store.clone());
        let user = unique_user();
        store.append(&[event(&user), event(&user)]).expect("append");

        let pending = outbox.pending(10).expect("pending");
        assert_eq!(
            pending,
            store.pending_outbox(10).expect("pending"),
            "{}",
            backend.name
        );
        assert_eq!(outbox.backlog().expect("backlog"), 2);
        outbox.mark_published(&ids(&pending)).expect("mark");
        assert_eq!(outbox.backlog().expect("backlog"), 0);
    }
}

/// A database made before `nft_events.correlation_id` existed gets the column at the next
/// start, and its unpublished rows get their correlation id from the envelope, so the relay's
/// headers stay right across the upgrade.
#[test]
fn an_older_database_gains_the_correlation_column_with_its_pending_values() {
    use diesel::connection::SimpleConnection;

    for backend in isolated_backends() {
        let store = connect(&backend, 2);
        let user = unique_user();
        {
            let mut conn = store.checkout().expect("connection");
            conn.batch_execute(&format!(
                "ALTER TABLE nft_events DROP COLUMN correlation_id;
                 INSERT INTO nft_events (user_id, seq, event_id, event_type, envelope_json,
                     created_at, published_at)
                 VALUES ('{user}', 1, 'old-1', 'nft_unlocked',
                     '{{\"eventId\":\"old-1\",\"correlationId\":\"c-old\"}}',
                     '2026-01-01 00:00:00', NULL),
                    ('{user}', 2, 'old-2', 'nft_unlocked',
                     '{{\"eventId\":\"old-2\",\"correlationId\":null}}',
                     '2026-01-01 00:00:00', NULL);"
            ))
            .unwrap_or_else(|e| panic!("{}: make an older schema: {e}", backend.name));
        }
        drop(store);

        let store = connect(&backend, 2);
        let pending = store.pending_outbox(10).expect("pending");
        let correlation: Vec<_> = pending
            .iter()
            .map(|e| (e.event_id.as_str(), e.correlation_id.as_deref()))
            .collect();
        assert_eq!(
            correlation,
            vec![("old-1", Some("c-old")), ("old-2", None)],
            "{}",
            backend.name
        );
        let next = event(&format!("{user}-new"));
        store
            .append(std::slice::from_ref(&next))
            .expect("append after upgrade");
        let after = store.pending_outbox(10).expect("pending");
        assert_eq!(
            after.last().and_then(|e| e.correlation_id.clone()),
            next.correlation_id,
            "{}: new rows carry theirs",
            backend.name
        );
    }
}
