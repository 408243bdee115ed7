//! The in-memory adapters pass the ports' shared conformance suite (the diesel store passes
//! the same one in the router crate, on SQLite and MariaDB).

use actors::consumers::MemoryConsumerStore;
use actors::journal::MemoryLog;
use actors::testkit::conformance;

#[test]
fn the_memory_log_passes_the_event_log_conformance_suite() {
    conformance::event_log(&MemoryLog::new());
}

#[test]
fn the_memory_log_passes_the_outbox_conformance_suite() {
    conformance::outbox(&MemoryLog::new());
}

#[test]
fn the_memory_consumer_store_passes_the_consumer_store_conformance_suite() {
    let store = MemoryConsumerStore::new();
    conformance::consumer_stores(&store, &store);
}

#[test]
fn the_memory_feed_passes_the_operations_feed_conformance_suite() {
    let store = std::sync::Arc::new(MemoryConsumerStore::new());
    conformance::operations_feed(&*store, &actors::consumers::MemoryFeedLog(store.clone()));
}

#[test]
fn the_memory_log_passes_the_domain_receipts_conformance_suite() {
    conformance::domain_receipts(&MemoryLog::new());
}
