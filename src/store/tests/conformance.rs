//! The diesel store passes the ports' shared conformance suite (the in-memory adapters pass
//! the same one in the `actors` crate), on SQLite and, with `DATABASE_URL`, on MariaDB.

use super::{connect, isolated_backends};
use actors::testkit::conformance;

#[test]
fn the_store_passes_the_event_log_conformance_suite() {
    for backend in isolated_backends() {
        let store = connect(&backend, 4);
        conformance::event_log(&store);
    }
}

#[test]
fn the_store_passes_the_outbox_conformance_suite() {
    for backend in isolated_backends() {
        let store = connect(&backend, 4);
        conformance::outbox(&store);
    }
}

#[test]
fn the_store_passes_the_consumer_store_conformance_suite() {
    for backend in isolated_backends() {
        let store = connect(&backend, 4);
        conformance::consumer_stores(&store, &store);
    }
}

#[test]
fn the_store_passes_the_operations_feed_conformance_suite() {
    for backend in isolated_backends() {
        let store = connect(&backend, 4);
        let feed = crate::store::OperationsLog(store.clone());
        conformance::operations_feed(&store, &feed);
    }
}

#[test]
fn the_store_passes_the_domain_receipts_conformance_suite() {
    for backend in isolated_backends() {
        let store = connect(&backend, 4);
        conformance::domain_receipts(&store);
    }
}
