//! Many writers on one user: every number once, and readers never see a hole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use super::{backends, connect, event, seqs, unique_user};
use crate::store::StoreError;

#[test]
fn concurrent_appends_for_one_user_get_every_seq_once_and_readers_see_no_gaps() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 200;
    const TOTAL: u64 = THREADS * PER_THREAD;

    for backend in backends() {
        let store = connect(&backend, THREADS as u32 + 1);
        let user = unique_user();
        let writers_done = Arc::new(AtomicBool::new(false));

        // A reader pages through the stream while it is being written. Every page must be a
        // run of consecutive numbers right after the cursor: a hole would mean it saw N+1
        // committed before N, and a client following the cursor would skip N for good.
        let reader = {
            let (store, user, done) = (store.clone(), user.clone(), writers_done.clone());
            thread::spawn(move || -> Result<u64, String> {
                let mut cursor = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = store
                        .events_after(&user, cursor, 37)
                        .map_err(|e| e.to_string())?;
                    for (offset, stored) in page.iter().enumerate() {
                        let expected = cursor + offset as u64 + 1;
                        if stored.seq != expected {
                            return Err(format!(
                                "page after {cursor}: got {} at {expected}",
                                stored.seq
                            ));
                        }
                    }
                    cursor += page.len() as u64;
                    if finished && page.is_empty() {
                        return Ok(cursor);
                    }
                }
            })
        };

        let writers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (store, user) = (store.clone(), user.clone());
                thread::spawn(move || -> Result<Vec<u64>, StoreError> {
                    let mut got = Vec::new();
                    for _ in 0..PER_THREAD {
                        let stored = store.append(&[event(&user)])?;
                        got.extend(stored.iter().map(|e| e.seq));
                    }
                    Ok(got)
                })
            })
            .collect();
        let mut assigned: Vec<u64> = Vec::new();
        for writer in writers {
            let seqs = writer
                .join()
                .expect("writer thread panicked")
                .unwrap_or_else(|e| panic!("{}: append failed: {e}", backend.name));
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "one thread's seqs must increase"
            );
            assigned.extend(seqs);
        }
        writers_done.store(true, Ordering::SeqCst);

        assigned.sort_unstable();
        assert_eq!(
            assigned,
            (1..=TOTAL).collect::<Vec<_>>(),
            "{}",
            backend.name
        );
        let read = reader.join().expect("reader thread panicked");
        assert_eq!(read, Ok(TOTAL), "{}: reader", backend.name);
        let all = store.events_after(&user, 0, 10_000).expect("events_after");
        assert_eq!(
            seqs(&all),
            (1..=TOTAL).collect::<Vec<_>>(),
            "{}",
            backend.name
        );
        assert_eq!(
            store.stream_bounds(&user).expect("bounds"),
            (Some(1), TOTAL)
        );
    }
}
