//! One suite for every adapter of the store's ports: the in-memory adapters run it in this
//! crate's tests, the diesel store runs it on SQLite and MariaDB in the router's. A behaviour
//! the actors rely on is written down here once, so the adapters cannot drift apart unseen.
//!
//! Each check uses ids of its own (a fresh prefix), so several checks, or several runs, can
//! share one database. A failed check panics naming the check and what the adapter answered.

use crate::consumers::{
    AuditStore, NewAuditEntry, NewNotification, NotificationStore, OperationsStore, Priority,
};
use crate::domain::{ChangeError, DomainState, Receipt, StateChange};
use crate::event::EventType;
use crate::event::StoredType;
use crate::journal::{AppendedOnce, EventLog, NewEvent, StoredEvent};
use crate::outbox::Outbox;
use chrono::{DateTime, Duration as Age, Utc};

/// Every check of [`EventLog`] on `log`.
pub fn event_log(log: &dyn EventLog) {
    sequences_are_dense_and_per_user(log);
    reads_are_ordered_limited_and_verbatim(log);
    bounds_and_heads_follow_the_stream(log);
    a_duplicate_event_id_fails_the_whole_batch(log);
    an_empty_batch_stores_nothing(log);
    a_keyed_event_is_stored_once(log);
}

/// Every check of [`Outbox`] (with the [`EventLog`] that fills it) on `store`. Pruning deletes
/// by age over the whole store, so give this a store of its own.
pub fn outbox<S: EventLog + Outbox>(store: &S) {
    pending_entries_are_in_commit_order_until_published(store);
    pruning_keeps_what_the_broker_has_not_acknowledged(store);
}

/// Every check of receipts of keyed domain commands, on a store that is both the log and the
/// domain state.
pub fn domain_receipts<S: EventLog + DomainState>(store: &S) {
    a_receipt_is_stored_with_its_change_once(store);
}

/// Every check of the consumer stores that deduplicate by event id.
pub fn consumer_stores(audit: &dyn AuditStore, notifications: &dyn NotificationStore) {
    an_audit_entry_is_appended_once(audit);
    a_notification_is_inserted_once(notifications);
}

fn prefix(check: &str) -> String {
    format!(
        "{check}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn new_event(user: &str, id: &str, created_at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        user_id: user.to_owned(),
        event_type: EventType::BadgeEarned,
        correlation_id: Some(format!("corr-{id}")),
        envelope_json: format!(r#"{{"eventId":"{id}","userId":"{user}","data":{{"n":1}}}}"#),
        created_at,
    }
}

fn seqs(log: &dyn EventLog, user: &str) -> Vec<u64> {
    log.events_after(user, 0, 10_000)
        .unwrap_or_else(|e| panic!("events_after({user}) failed: {e}"))
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// Each user's events are numbered 1, 2, 3, … in append order, across batches.
pub fn sequences_are_dense_and_per_user(log: &dyn EventLog) {
    let p = prefix("dense");
    let (a, b) = (format!("{p}-a"), format!("{p}-b"));
    let now = Utc::now();
    let batch: Vec<NewEvent> = [(&a, 1), (&a, 2), (&b, 1), (&a, 3)]
        .iter()
        .map(|(user, n)| new_event(user, &format!("{user}-{n}"), now))
        .collect();
    let stored = log.append(&batch).expect("append a batch");
    let got: Vec<(String, u64)> = stored.iter().map(|e| (e.user_id.clone(), e.seq)).collect();
    assert_eq!(
        got,
        [
            (a.clone(), 1),
            (a.clone(), 2),
            (b.clone(), 1),
            (a.clone(), 3)
        ],
        "append answers each event's per-user seq, in batch order"
    );
    log.append(&[new_event(&a, &format!("{a}-4"), now)])
        .expect("append a second batch");
    assert_eq!(seqs(log, &a), [1, 2, 3, 4], "user a's stream");
    assert_eq!(seqs(log, &b), [1], "user b's stream");
}

/// `events_after` answers oldest first, after the cursor, at most `limit`, and gives back what
/// was stored byte for byte (envelope, type, correlation id).
pub fn reads_are_ordered_limited_and_verbatim(log: &dyn EventLog) {
    let user = prefix("reads");
    let now = Utc::now();
    let batch: Vec<NewEvent> = (1..=5)
        .map(|n| new_event(&user, &format!("{user}-{n}"), now))
        .collect();
    log.append(&batch).expect("append");
    let page = log.events_after(&user, 2, 2).expect("events_after");
    let got: Vec<u64> = page.iter().map(|e| e.seq).collect();
    assert_eq!(got, [3, 4], "after cursor 2, limit 2");
    let third = &page[0];
    assert_eq!(third.event_id, batch[2].event_id);
    assert_eq!(
        third.envelope_json, batch[2].envelope_json,
        "envelope verbatim"
    );
    assert_eq!(third.event_type, StoredType::from(EventType::BadgeEarned));
    assert_eq!(third.correlation_id, batch[2].correlation_id);
    assert!(
        log.events_after(&user, 5, 10).expect("read").is_empty(),
        "nothing after the head"
    );
}

/// Bounds are `(None, 0)` for a stream never written, `(Some(first), last)` after; the heads
/// of several users come in one call.
pub fn bounds_and_heads_follow_the_stream(log: &dyn EventLog) {
    let p = prefix("bounds");
    let (a, b, none) = (format!("{p}-a"), format!("{p}-b"), format!("{p}-none"));
    assert_eq!(log.stream_bounds(&none).expect("bounds"), (None, 0));
    let now = Utc::now();
    log.append(&[
        new_event(&a, &format!("{a}-1"), now),
        new_event(&a, &format!("{a}-2"), now),
        new_event(&b, &format!("{b}-1"), now),
    ])
    .expect("append");
    assert_eq!(log.stream_bounds(&a).expect("bounds"), (Some(1), 2));
    let mut heads = log
        .stream_heads(&[a.clone(), b.clone(), none.clone()])
        .expect("heads");
    heads.retain(|(_, head)| *head > 0);
    heads.sort();
    assert_eq!(heads, [(a, 2), (b, 1)], "heads of the users with events");
}

/// An event id stored before fails the batch that repeats it, as a definite failure (not
/// "unavailable": retrying cannot help), and nothing of that batch is stored.
pub fn a_duplicate_event_id_fails_the_whole_batch(log: &dyn EventLog) {
    let user = prefix("duplicate");
    let now = Utc::now();
    let first = new_event(&user, &format!("{user}-1"), now);
    log.append(std::slice::from_ref(&first)).expect("append");
    let err = log
        .append(&[new_event(&user, &format!("{user}-2"), now), first])
        .expect_err("a repeated event id is refused");
    assert!(!err.is_unavailable(), "a duplicate is definite: {err}");
    assert_eq!(
        seqs(log, &user),
        [1],
        "nothing of the refused batch is stored"
    );
}

/// `append_once` stores an event the first time and answers the stored one, untouched, every
/// later time; `event_by_id` finds it.
pub fn a_keyed_event_is_stored_once(log: &dyn EventLog) {
    let user = prefix("once");
    let id = format!("{user}-k");
    assert_eq!(log.event_by_id(&id).expect("event_by_id"), None);
    let first = match log.append_once(&new_event(&user, &id, Utc::now())) {
        Ok(AppendedOnce::Stored(stored)) => stored,
        other => panic!("a first keyed append stores: {other:?}"),
    };
    let mut retry = new_event(&user, &id, Utc::now() + Age::seconds(5));
    retry.envelope_json = "{}".to_owned();
    match log.append_once(&retry) {
        Ok(AppendedOnce::Existing(existing)) => assert_eq!(existing, first),
        other => panic!("a repeated keyed append answers the stored event: {other:?}"),
    }
    assert_eq!(seqs(log, &user), [1], "stored once");
    assert_eq!(log.event_by_id(&id).expect("event_by_id"), Some(first));
}

/// A change with a receipt stores the receipt with its events' cursors and ids; a second change
/// with the receipt's key is refused as `Receipted` and writes nothing; a change refused on
/// its precondition leaves no receipt.
pub fn a_receipt_is_stored_with_its_change_once<S: EventLog + DomainState>(store: &S) {
    let user = prefix("receipt");
    let key = format!("{user}-key");
    let receipt = |answer: &str| Receipt {
        key: key.clone(),
        fingerprint: "f".repeat(64),
        answer: answer.to_owned(),
    };
    assert_eq!(store.receipt(&key).expect("receipt"), None);

    // Refused on its precondition (the volume is 0, not 5): no receipt.
    let stale = StateChange::SetVolume {
        user_id: user.clone(),
        expected: 5.0,
        volume: 10.0,
    };
    let refused = store.apply_change(&stale, &[], Some(&receipt("{}")));
    assert_eq!(
        refused,
        Err(ChangeError::Conflict),
        "a stale change is a conflict"
    );
    assert_eq!(
        store.receipt(&key).expect("receipt"),
        None,
        "and leaves no receipt"
    );

    let change = StateChange::SetVolume {
        user_id: user.clone(),
        expected: 0.0,
        volume: 10.0,
    };
    let events = [
        new_event(&user, &format!("{user}-1"), Utc::now()),
        new_event(&user, &format!("{user}-2"), Utc::now()),
    ];
    let stored = store
        .apply_change(&change, &events, Some(&receipt(r#"{"n":1}"#)))
        .expect("a keyed change is applied");
    let found = store.receipt(&key).expect("receipt").expect("stored");
    assert_eq!(found.fingerprint, "f".repeat(64));
    assert_eq!(found.answer, r#"{"n":1}"#);
    let want: Vec<(u64, String)> = stored.iter().map(|e| (e.seq, e.event_id.clone())).collect();
    assert_eq!(
        found.events, want,
        "the receipt holds the events' cursors and ids"
    );

    let again = StateChange::SetVolume {
        user_id: user.clone(),
        expected: 10.0,
        volume: 20.0,
    };
    let third = [new_event(&user, &format!("{user}-3"), Utc::now())];
    assert_eq!(
        store.apply_change(&again, &third, Some(&receipt("{}"))),
        Err(ChangeError::Receipted),
        "a second change with the key is refused"
    );
    assert_eq!(seqs(store, &user), [1, 2], "and appends nothing");
    assert_eq!(
        store.user_state(&user).expect("state").volume,
        10.0,
        "nor changes state"
    );
    assert_eq!(store.receipt(&key).expect("receipt"), Some(found));
}

pub fn an_empty_batch_stores_nothing(log: &dyn EventLog) {
    assert!(log.append(&[]).expect("empty batch").is_empty());
}

/// Every appended event waits in the outbox in commit order, with what the record headers
/// need, until it is marked published.
pub fn pending_entries_are_in_commit_order_until_published<S: EventLog + Outbox>(store: &S) {
    let user = prefix("outbox");
    let now = Utc::now();
    let batch: Vec<NewEvent> = (1..=3)
        .map(|n| new_event(&user, &format!("{user}-{n}"), now))
        .collect();
    store.append(&batch).expect("append");
    let before = store.backlog().expect("backlog");
    let mine: Vec<_> = store
        .pending(100_000)
        .expect("pending")
        .into_iter()
        .filter(|e| e.user_id == user)
        .collect();
    let ids: Vec<&str> = mine.iter().map(|e| e.event_id.as_str()).collect();
    let want: Vec<&str> = batch.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, want, "pending in commit order");
    assert!(mine.windows(2).all(|w| w[0].id < w[1].id), "row ids grow");
    assert_eq!(mine[0].correlation_id, batch[0].correlation_id);
    assert_eq!(mine[0].envelope_json, batch[0].envelope_json);
    assert_eq!(mine[0].event_type, StoredType::from(EventType::BadgeEarned));
    assert!(before >= 3, "the backlog counts them: {before}");

    store
        .mark_published(&[mine[0].id, mine[1].id])
        .expect("mark published");
    let left: Vec<String> = store
        .pending(100_000)
        .expect("pending")
        .into_iter()
        .filter(|e| e.user_id == user)
        .map(|e| e.event_id)
        .collect();
    assert_eq!(left, [batch[2].event_id.clone()], "published entries leave");
    assert_eq!(store.backlog().expect("backlog"), before - 2);
    store.mark_published(&[mine[2].id]).expect("mark published");
}

/// Pruning deletes old events the broker has acknowledged, and keeps old ones it has not:
/// retention never loses an event on its way to Kafka.
pub fn pruning_keeps_what_the_broker_has_not_acknowledged<S: EventLog + Outbox>(store: &S) {
    let user = prefix("prune");
    let old = Utc::now() - Age::days(30);
    let batch: Vec<NewEvent> = (1..=3)
        .map(|n| new_event(&user, &format!("{user}-{n}"), old))
        .collect();
    store.append(&batch).expect("append");
    store
        .append(&[new_event(&user, &format!("{user}-4"), Utc::now())])
        .expect("append a recent one");
    let published: Vec<u64> = store
        .pending(100_000)
        .expect("pending")
        .into_iter()
        .filter(|e| e.user_id == user && e.event_id != batch[2].event_id)
        .map(|e| e.id)
        .collect();
    store.mark_published(&published).expect("mark published");
    let pruned = store
        .prune_older_than(Utc::now() - Age::days(1))
        .expect("prune");
    assert!(
        pruned >= 2,
        "the two old published events are pruned: {pruned}"
    );
    assert_eq!(
        seqs(store, &user),
        [3, 4],
        "the unpublished old event and the recent one stay"
    );
    assert_eq!(store.stream_bounds(&user).expect("bounds"), (Some(3), 4));
}

/// Every check of the operations feed: the consumer's store and the feed it is read as.
pub fn operations_feed(store: &dyn OperationsStore, feed: &dyn EventLog) {
    an_operation_is_fed_once_in_commit_order(store, feed);
}

/// A redelivered operations record adds no second feed entry; entries are numbered in the
/// order they were stored, whatever their user, and come back verbatim.
pub fn an_operation_is_fed_once_in_commit_order(store: &dyn OperationsStore, feed: &dyn EventLog) {
    let p = prefix("feed");
    let (_, head) = feed.stream_bounds("any").expect("feed bounds");
    let entries: Vec<(String, String, String)> = (1..=2)
        .map(|n| {
            let id = format!("{p}-{n}");
            let json = format!(r#"{{"eventId":"{id}","eventType":"nft_minted"}}"#);
            (id, format!("{p}-user-{n}"), json)
        })
        .collect();
    for (id, user, json) in &entries {
        assert!(
            store
                .record_operation(id, "nft_minted", user, json)
                .expect("record"),
            "first time"
        );
    }
    let (id, user, json) = &entries[0];
    assert!(
        !store
            .record_operation(id, "nft_minted", user, json)
            .expect("record again"),
        "a repeat records nothing"
    );
    let mine: Vec<StoredEvent> = feed
        .events_after("whoever", head, 10_000)
        .expect("feed")
        .into_iter()
        .filter(|e| e.event_id.starts_with(&p))
        .collect();
    let ids: Vec<&str> = mine.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        [entries[0].0.as_str(), entries[1].0.as_str()],
        "once each, in order"
    );
    assert!(mine[0].seq < mine[1].seq, "numbered in commit order");
    assert_eq!(mine[1].envelope_json, entries[1].2, "verbatim");
    assert_eq!(mine[1].user_id, entries[1].1);
    assert_eq!(mine[1].event_type, StoredType::from(EventType::NftMinted));
    assert!(
        feed.append(&[new_event(&p, &p, Utc::now())]).is_err(),
        "the feed is written by its consumer only"
    );
}

fn audit_entry(id: &str) -> NewAuditEntry {
    NewAuditEntry {
        event_id: id.to_owned(),
        event_type: "badge_earned".to_owned(),
        user_id: format!("{id}-user"),
        source: "conformance".to_owned(),
        correlation_id: Some(format!("corr-{id}")),
        envelope_json: format!(r#"{{"eventId":"{id}"}}"#),
        occurred_at: Utc::now(),
        recorded_at: Utc::now(),
    }
}

/// A redelivered record (Kafka is at least once) appends no second audit row.
pub fn an_audit_entry_is_appended_once(audit: &dyn AuditStore) {
    let entry = audit_entry(&prefix("audit"));
    assert!(
        audit.append_audit(&entry).expect("first append"),
        "first time"
    );
    assert!(
        !audit.append_audit(&entry).expect("second append"),
        "a repeat appends nothing"
    );
}

/// A redelivered record notifies its user once.
pub fn a_notification_is_inserted_once(store: &dyn NotificationStore) {
    let id = prefix("notification");
    let n = NewNotification {
        event_id: id.clone(),
        user_id: format!("{id}-user"),
        event_type: "badge_earned".to_owned(),
        title: "Badge earned".to_owned(),
        message: "First Trade".to_owned(),
        priority: Priority::Normal,
        data_json: "{}".to_owned(),
        created_at: Utc::now(),
    };
    assert!(
        store.insert_notification(&n).expect("first insert"),
        "first time"
    );
    assert!(
        !store.insert_notification(&n).expect("second insert"),
        "a repeat inserts nothing"
    );
}
