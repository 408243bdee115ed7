//! Tests of the Kafka adapter against the embedded (mock) cluster; each test starts its own.

mod cluster;
mod consume;
mod kcat;
mod outage;
mod produce;
mod support;
