//! Command line: `nft-event-router [--config PATH] [serve]`, and the `token` and
//! `kafka-cluster` subcommands.

use crate::auth::Role;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "nft-event-router",
    version,
    about = "Real-time NFT event router: SSE to people, Kafka to services"
)]
pub struct Cli {
    /// Configuration file (default: ./config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router (the default).
    Serve,
    /// Print a signed development JWT for the configured secret.
    Token {
        /// The token's subject (user id, admin name or service name).
        #[arg(long)]
        user: String,
        /// The token's role.
        #[arg(long, value_enum, default_value = "user")]
        role: Role,
        /// Lifetime in seconds (default: auth.dev_token_ttl_secs).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Write a self-signed TLS certificate and key for local HTTPS (development only), and
    /// print the `[http.tls]` lines that use them.
    DevCert {
        /// Where `cert.pem` and `key.pem` go (created if missing).
        #[arg(long, value_name = "DIR", default_value = "data/tls")]
        out: PathBuf,
        /// Names the certificate is valid for.
        #[arg(long = "name", value_name = "NAME", default_values_t = [String::from("localhost"), String::from("127.0.0.1")])]
        names: Vec<String>,
    },
    /// Run an embedded Kafka cluster on its own, with the configured topics, so that several
    /// router instances on this machine can share it (`kafka.brokers` = the bound address).
    KafkaCluster {
        /// Bootstrap address to serve; port 0 picks a free one (the ready line names it).
        /// Text, not a parsed address, so that a bad value fails with one line of our own.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9092")]
        bind: String,
    },
}
