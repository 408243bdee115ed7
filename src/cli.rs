//! Command line: `nft-event-router [--config PATH] [serve]` and the `token` subcommand.

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
}
