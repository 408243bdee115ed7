//! Integration tests: the real application on port 0, driven over real TCP sockets.

mod acceptor;
mod alerts;
mod binary;
mod browser;
mod cluster;
mod cors;
mod domain;
mod flows;
mod helpers;
mod idempotency;
mod internal;
mod jwt;
mod kafka;
mod kafka_cluster;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod operations;
mod pages;
mod proxy;
mod publish;
mod replay;
mod stats;
mod stream;
mod tls;
