//! Analytics counts: once per event id, per type and UTC minute, and totals per type.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{backends, connect, unique_id, unique_type};
use crate::store::{Store, StoreError};

fn at(hour: u32, minute: u32, second: u32, micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 17, hour, minute, second)
        .single()
        .expect("valid date")
        + Duration::microseconds(micros)
}

/// The total of one event type, or `None` when it was never counted. (Other tests' types are
/// in the table too on a shared database.)
fn total_of(store: &Store, event_type: &str) -> Option<u64> {
    store
        .totals()
        .expect("totals")
        .into_iter()
        .find(|(t, _)| t == event_type)
        .map(|(_, total)| total)
}

#[test]
fn counting_the_same_event_id_twice_counts_it_once() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let (event_type, other_type) = (unique_type(), unique_type());
        let event_id = unique_id();

        let first = store
            .count_event(&event_id, &event_type, at(12, 0, 30, 0))
            .expect("count");
        let again = store
            .count_event(&event_id, &event_type, at(12, 0, 30, 0))
            .expect("count again");
        // A redelivery is recognised by its id alone, whatever else it carries.
        let disguised = store
            .count_event(&event_id, &other_type, at(18, 0, 0, 0))
            .expect("count disguised");

        assert_eq!(
            (first, again, disguised),
            (true, false, false),
            "{}",
            backend.name
        );
        assert_eq!(total_of(&store, &event_type), Some(1), "{}", backend.name);
        assert_eq!(total_of(&store, &other_type), None, "{}", backend.name);
        assert_eq!(
            store.minute_counts(Some(&event_type)).expect("minutes"),
            vec![(event_type.clone(), at(12, 0, 0, 0), 1)],
            "{}",
            backend.name
        );
        assert!(store
            .minute_counts(Some(&other_type))
            .expect("minutes")
            .is_empty());
    }
}

#[test]
fn events_are_bucketed_by_utc_minute_and_totalled_per_type() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let (a, b) = (unique_type(), unique_type());
        let occurrences = [
            (&a, at(12, 0, 0, 0)),
            (&a, at(12, 0, 59, 999_999)),
            (&a, at(12, 1, 0, 0)),
            (&a, at(13, 0, 30, 250)),
            (&b, at(12, 0, 10, 0)),
        ];

        for (event_type, occurred_at) in occurrences {
            assert!(store
                .count_event(&unique_id(), event_type, occurred_at)
                .expect("count"));
        }

        assert_eq!(
            store.minute_counts(Some(&a)).expect("minutes"),
            vec![
                (a.clone(), at(12, 0, 0, 0), 2),
                (a.clone(), at(12, 1, 0, 0), 1),
                (a.clone(), at(13, 0, 0, 0), 1),
            ],
            "{}",
            backend.name
        );
        assert_eq!(total_of(&store, &a), Some(4), "{}", backend.name);
        assert_eq!(total_of(&store, &b), Some(1), "{}", backend.name);

        // Unfiltered: every type, ordered by type then minute.
        let ours: Vec<_> = store
            .minute_counts(None)
            .expect("minutes")
            .into_iter()
            .filter(|(t, _, _)| *t == a || *t == b)
            .collect();
        let mut expected = vec![
            (a.clone(), at(12, 0, 0, 0), 2),
            (a.clone(), at(12, 1, 0, 0), 1),
            (a.clone(), at(13, 0, 0, 0), 1),
            (b.clone(), at(12, 0, 0, 0), 1),
        ];
        expected.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
        assert_eq!(ours, expected, "{}", backend.name);
        let totals = store.totals().expect("totals");
        assert!(
            totals.windows(2).all(|w| w[0].0 < w[1].0),
            "{}: totals ordered by type",
            backend.name
        );
    }
}

#[test]
fn concurrent_deliveries_of_the_same_events_count_each_once() {
    const THREADS: usize = 4;
    const EVENTS: usize = 25;

    for backend in backends() {
        let store = connect(&backend, THREADS as u32);
        let event_type = unique_type();
        let event_ids: Arc<Vec<String>> = Arc::new((0..EVENTS).map(|_| unique_id()).collect());

        // Every thread delivers every event, each starting at a different one, so the same id
        // is often in flight on several connections at once.
        let workers: Vec<_> = (0..THREADS)
            .map(|offset| {
                let (store, event_type, ids) =
                    (store.clone(), event_type.clone(), event_ids.clone());
                thread::spawn(move || -> Result<Vec<(String, bool)>, StoreError> {
                    (0..EVENTS)
                        .map(|i| {
                            let id = &ids[(i + offset * 7) % EVENTS];
                            let counted = store.count_event(id, &event_type, at(9, 30, 0, 0))?;
                            Ok((id.clone(), counted))
                        })
                        .collect()
                })
            })
            .collect();
        let mut counted_by: HashMap<String, usize> = HashMap::new();
        for worker in workers {
            let results = worker
                .join()
                .expect("worker panicked")
                .unwrap_or_else(|e| panic!("{}: count_event failed: {e}", backend.name));
            for (id, counted) in results {
                *counted_by.entry(id).or_default() += usize::from(counted);
            }
        }

        assert_eq!(counted_by.len(), EVENTS, "{}", backend.name);
        assert!(
            counted_by.values().all(|&n| n == 1),
            "{}: each event counted by exactly one delivery: {counted_by:?}",
            backend.name
        );
        assert_eq!(
            total_of(&store, &event_type),
            Some(EVENTS as u64),
            "{}",
            backend.name
        );
        assert_eq!(
            store.minute_counts(Some(&event_type)).expect("minutes"),
            vec![(event_type.clone(), at(9, 30, 0, 0), EVENTS as u64)],
            "{}",
            backend.name
        );
    }
}

#[test]
fn counts_that_do_not_fit_the_schema_are_refused_and_change_nothing() {
    for backend in backends() {
        let store = connect(&backend, 1);
        let event_type = unique_type();
        let event_id = unique_id();
        let too_long = "t".repeat(65);

        for (id, t) in [
            ("", event_type.as_str()),
            (event_id.as_str(), ""),
            (event_id.as_str(), too_long.as_str()),
        ] {
            let err = store
                .count_event(id, t, at(1, 2, 3, 0))
                .expect_err("must be refused");
            assert!(
                matches!(err, StoreError::InvalidEvent(_)),
                "{}: {err:?}",
                backend.name
            );
        }

        // The refused attempts left no marker behind: the id still counts.
        assert!(store
            .count_event(&event_id, &event_type, at(1, 2, 3, 0))
            .expect("count"));
    }
}

#[test]
fn the_store_serves_the_analytics_consumer_as_its_port() {
    use actors::consumers::AnalyticsStore;

    for backend in backends() {
        let store = connect(&backend, 1);
        let port: Arc<dyn AnalyticsStore> = Arc::new(store.clone());
        let (event_type, event_id) = (unique_type(), unique_id());

        assert_eq!(
            port.count_event(&event_id, &event_type, Utc::now())
                .expect("count"),
            Some(1),
            "a counted event answers its type's new total"
        );
        let second = unique_id();
        assert_eq!(
            port.count_event(&second, &event_type, Utc::now())
                .expect("count"),
            Some(2)
        );
        assert_eq!(
            port.count_event(&event_id, &event_type, Utc::now())
                .expect("count again"),
            None,
            "an event counted before changes nothing"
        );

        let total = port
            .totals()
            .expect("totals")
            .into_iter()
            .find(|(t, _)| *t == event_type);
        assert_eq!(total, Some((event_type, 2)), "{}", backend.name);
    }
}

#[test]
fn a_batch_counts_in_one_go_and_stops_at_the_first_refused_event() {
    use crate::store::CountedEvent;

    for backend in backends() {
        let store = connect(&backend, 1);
        let (first_type, second_type) = (unique_type(), unique_type());
        let [a, b, c, d, e] = [(); 5].map(|()| unique_id());
        let event = |id: &str, event_type: &str, occurred_at| CountedEvent {
            event_id: id.to_owned(),
            event_type: event_type.to_owned(),
            occurred_at,
        };
        assert!(store
            .count_event(&d, &first_type, at(12, 0, 1, 0))
            .expect("count d"));

        let answers = store
            .count_events(&[
                event(&a, &first_type, at(12, 0, 10, 0)),
                event(&b, &first_type, at(12, 0, 59, 999_999)),
                event(&a, &first_type, at(12, 0, 10, 0)),
                event(&c, &second_type, at(12, 1, 0, 0)),
                event(&d, &first_type, at(12, 0, 1, 0)),
                event(&e, &"t".repeat(65), at(12, 2, 0, 0)),
                event(&e, &second_type, at(12, 2, 0, 0)),
            ])
            .expect("batch");

        let (counted, refused) = answers.split_at(5);
        let counted: Vec<Option<u64>> = counted
            .iter()
            .map(|answer| *answer.as_ref().expect("counted"))
            .collect();
        assert_eq!(
            counted,
            [Some(3), Some(3), None, Some(1), None],
            "{}: each new event answers its type's total after the batch; repeats none",
            backend.name
        );
        assert!(
            matches!(refused, [Err(StoreError::InvalidEvent(_))]),
            "{}: the refused event ends the answers: {refused:?}",
            backend.name
        );
        assert_eq!(total_of(&store, &first_type), Some(3), "{}", backend.name);
        assert_eq!(total_of(&store, &second_type), Some(1), "{}", backend.name);
        assert_eq!(
            store.minute_counts(Some(&first_type)).expect("minutes"),
            vec![(first_type.clone(), at(12, 0, 0, 0), 3)],
            "{}",
            backend.name
        );
        // What came after the refused event was not counted: it counts now.
        assert!(store
            .count_event(&e, &second_type, at(12, 2, 0, 0))
            .expect("count e"));
    }
}
