//! The NFT domain rules (docs/DOMAIN.md): tiers qualified by trading volume and activated badges,
//! milestones, and what an unlock or an upgrade requires. Pure functions over a user's state, so
//! the rules are testable without a database, a chain or an actor; and the chain port with its
//! default adapter, the `LocalLedger`.

mod chain;
mod flow;
mod flow_driver;
mod flows;
mod nft_domain;
mod rules;
mod state;

pub use chain::*;
pub use flow::*;
pub use flow_driver::FlowPolicy;
pub use flows::{FlowsIdle, GetOperation, ResumeFlows, StartUnlock, StartUpgrade};
pub use nft_domain::*;
pub use rules::*;
pub use state::*;
