//! The NFT domain rules (docs/DOMAIN.md): tiers qualified by trading volume and activated badges,
//! milestones, and what an unlock or an upgrade requires. Pure functions over a user's state, so
//! the rules are testable without a database, a chain or an actor; and the chain port with its
//! default adapter, the `LocalLedger`.

mod chain;
mod flow_driver;
mod flow_messages;
mod flow_record;
mod nft_domain;
mod receipt;
mod rules;
mod state;

pub use chain::{
    BurnRequest, Burned, Chain, ChainError, EntryKind, LedgerBook, LedgerEntry, LedgerFaults,
    LocalLedger, MemoryLedgerBook, MintRequest, Minted,
};
pub use flow_driver::FlowPolicy;
pub use flow_messages::{FlowsIdle, GetOperation, ResumeFlows, StartUnlock, StartUpgrade};
pub use flow_record::{FlowKind, FlowRecord, FlowStatus, FlowStep, HeldNft, MintedNft};
pub use nft_domain::{
    portfolio_key, ActivateBadge, AwardBadge, DomainFailure, DomainOutcome, GetPortfolio,
    NftDomain, Portfolio, RecordVolume, DOMAIN_SOURCE,
};
pub use receipt::{fingerprint, CommandAnswer, Keyed, Receipt, StoredReceipt};
pub use rules::{BadgeRule, DomainError, DomainRules, RulesError, TierRule};
pub use state::{BadgeStatus, ChangeError, DomainState, StateChange, UserState};
