//! The chain port: minting and burning NFTs. Flows call it between their database steps, so
//! every call is idempotent by `(operation, kind)`: a flow resumed after a crash asks again
//! and gets the same NFT rather than a second one.
//!
//! The default adapter is [`LocalLedger`]: a ledger kept in the router's database, with
//! deterministic base58 mint addresses and transaction signatures derived from the operation.
//! It is a ledger, not a blockchain, and says so in every record (`ledger://` metadata URIs).
//! It can inject faults (a failure rate, added latency) for tests and demos.

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The flow this mint belongs to; a repeated request returns the first result.
    pub operation_id: String,
    pub user_id: String,
    pub tier_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub nft_id: String,
    pub mint_address: String,
    pub transaction_signature: String,
    pub metadata_uri: String,
    pub gas_used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnRequest {
    pub operation_id: String,
    pub user_id: String,
    pub mint_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burned {
    pub transaction_signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The call did not happen (network, injected fault); the same request may succeed later.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The chain refused the request; retrying will not help.
    #[error("chain rejected the request: {0}")]
    Rejected(String),
}

/// Mints and burns. Blocking; called on the blocking pool.
pub trait Chain: Send + Sync + 'static {
    fn mint(&self, request: &MintRequest) -> Result<Minted, ChainError>;
    fn burn(&self, request: &BurnRequest) -> Result<Burned, ChainError>;
}

/// What kind of ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Mint,
    Burn,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Mint => "mint",
            EntryKind::Burn => "burn",
        }
    }
}

/// One ledger entry, unique by `(operation_id, kind)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub operation_id: String,
    pub kind: EntryKind,
    pub user_id: String,
    pub tier_id: Option<u32>,
    pub nft_id: String,
    pub mint_address: String,
    pub signature: String,
}

/// Where the ledger keeps its entries (the router's database; memory in tests).
pub trait LedgerBook: Send + Sync + 'static {
    /// Stores `entry` unless an entry for its `(operation_id, kind)` exists; returns the entry
    /// that is stored either way.
    fn record(&self, entry: &LedgerEntry) -> Result<LedgerEntry, ChainError>;
    /// The entry for `(operation_id, kind)`, if recorded.
    fn find(&self, operation_id: &str, kind: EntryKind) -> Result<Option<LedgerEntry>, ChainError>;
}

/// Injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LedgerFaults {
    /// Share of calls (0.0–1.0) that fail as `Unavailable` without touching the ledger.
    pub failure_rate: f64,
    /// Added to every call.
    pub latency: Duration,
}

/// The default chain adapter: a ledger in the database.
pub struct LocalLedger {
    book: Arc<dyn LedgerBook>,
    faults: LedgerFaults,
}

/// Solana-sized identifiers: 32-byte addresses, 64-byte signatures, base58.
fn derive(parts: &[&str], bytes: usize) -> String {
    let mut out = Vec::with_capacity(bytes);
    let mut round = 0u32;
    while out.len() < bytes {
        let mut hash = Sha256::new();
        hash.update(b"nft-event-router local ledger");
        hash.update(round.to_be_bytes());
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        out.extend_from_slice(&hash.finalize());
        round += 1;
    }
    out.truncate(bytes);
    bs58::encode(out).into_string()
}

impl LocalLedger {
    pub fn new(book: Arc<dyn LedgerBook>, faults: LedgerFaults) -> Self {
        LocalLedger { book, faults }
    }

    /// Applies the injected faults: latency always, failure by chance.
    fn weather(&self) -> Result<(), ChainError> {
        if !self.faults.latency.is_zero() {
            std::thread::sleep(self.faults.latency);
        }
        if self.faults.failure_rate > 0.0 && fastrand::f64() < self.faults.failure_rate {
            return Err(ChainError::Unavailable("injected ledger fault".into()));
        }
        Ok(())
    }
}

impl Chain for LocalLedger {
    fn mint(&self, request: &MintRequest) -> Result<Minted, ChainError> {
        // A confirmed entry answers a repeated request even in bad weather: a flow resumed
        // after a crash learns what already happened instead of guessing.
        let entry = match self.book.find(&request.operation_id, EntryKind::Mint)? {
            Some(entry) => entry,
            None => {
                self.weather()?;
                self.record_mint(request)?
            }
        };
        Ok(Minted {
            metadata_uri: format!("ledger://nft/{}", entry.nft_id),
            nft_id: entry.nft_id,
            mint_address: entry.mint_address,
            transaction_signature: entry.signature,
            gas_used: 5_000,
        })
    }

    fn burn(&self, request: &BurnRequest) -> Result<Burned, ChainError> {
        let entry = match self.book.find(&request.operation_id, EntryKind::Burn)? {
            Some(entry) => entry,
            None => {
                self.weather()?;
                self.book.record(&LedgerEntry {
                    operation_id: request.operation_id.clone(),
                    kind: EntryKind::Burn,
                    user_id: request.user_id.clone(),
                    tier_id: None,
                    nft_id: String::new(),
                    mint_address: request.mint_address.clone(),
                    signature: derive(&["burn-signature", &request.operation_id], 64),
                })?
            }
        };
        Ok(Burned {
            transaction_signature: entry.signature,
        })
    }
}

impl LocalLedger {
    fn record_mint(&self, request: &MintRequest) -> Result<LedgerEntry, ChainError> {
        let tier = request.tier_id.to_string();
        let mint_address = derive(
            &["mint", &request.operation_id, &request.user_id, &tier],
            32,
        );
        self.book.record(&LedgerEntry {
            operation_id: request.operation_id.clone(),
            kind: EntryKind::Mint,
            user_id: request.user_id.clone(),
            tier_id: Some(request.tier_id),
            nft_id: format!("nft-{}", &mint_address[..12]),
            signature: derive(&["mint-signature", &request.operation_id], 64),
            mint_address,
        })
    }
}

/// A ledger book in memory, for tests and the testkit.
#[derive(Default)]
pub struct MemoryLedgerBook {
    entries: std::sync::Mutex<Vec<LedgerEntry>>,
}

impl MemoryLedgerBook {
    pub fn new() -> Self {
        MemoryLedgerBook::default()
    }

    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl LedgerBook for MemoryLedgerBook {
    fn record(&self, entry: &LedgerEntry) -> Result<LedgerEntry, ChainError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| ChainError::Unavailable("ledger lock poisoned".into()))?;
        if let Some(existing) = entries
            .iter()
            .find(|e| e.operation_id == entry.operation_id && e.kind == entry.kind)
        {
            return Ok(existing.clone());
        }
        entries.push(entry.clone());
        Ok(entry.clone())
    }

    fn find(&self, operation_id: &str, kind: EntryKind) -> Result<Option<LedgerEntry>, ChainError> {
        let entries = self
            .entries
            .lock()
            .map_err(|_| ChainError::Unavailable("ledger lock poisoned".into()))?;
        Ok(entries
            .iter()
            .find(|e| e.operation_id == operation_id && e.kind == kind)
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(faults: LedgerFaults) -> (LocalLedger, Arc<MemoryLedgerBook>) {
        let book = Arc::new(MemoryLedgerBook::new());
        (LocalLedger::new(book.clone(), faults), book)
    }

    fn mint_request(op: &str) -> MintRequest {
        MintRequest {
            operation_id: op.into(),
            user_id: "u1".into(),
            tier_id: 2,
        }
    }

    #[test]
    fn mints_are_deterministic_idempotent_and_solana_shaped() {
        let (chain, book) = ledger(LedgerFaults::default());
        let first = chain.mint(&mint_request("op-1")).expect("minted");
        let again = chain.mint(&mint_request("op-1")).expect("minted");
        assert_eq!(first, again, "a repeated request returns the first mint");
        assert_eq!(book.entries().len(), 1);
        let other = chain.mint(&mint_request("op-2")).expect("minted");
        assert_ne!(first.mint_address, other.mint_address);

        let address = bs58::decode(&first.mint_address)
            .into_vec()
            .expect("base58");
        let signature = bs58::decode(&first.transaction_signature)
            .into_vec()
            .expect("base58");
        assert_eq!((address.len(), signature.len()), (32, 64));
        assert!(first.metadata_uri.starts_with("ledger://"));

        let (fresh, _) = ledger(LedgerFaults::default());
        assert_eq!(
            fresh.mint(&mint_request("op-1")).expect("minted"),
            first,
            "deterministic"
        );
    }

    #[test]
    fn burns_are_idempotent_by_operation() {
        let (chain, book) = ledger(LedgerFaults::default());
        let request = BurnRequest {
            operation_id: "op-9".into(),
            user_id: "u1".into(),
            mint_address: "Mint".into(),
        };
        let a = chain.burn(&request).expect("burned");
        let b = chain.burn(&request).expect("burned");
        assert_eq!(a, b);
        assert_eq!(book.entries().len(), 1);
    }

    #[test]
    fn injected_faults_fail_without_touching_the_ledger() {
        let (always, book) = ledger(LedgerFaults {
            failure_rate: 1.0,
            latency: Duration::ZERO,
        });
        assert!(matches!(
            always.mint(&mint_request("x")),
            Err(ChainError::Unavailable(_))
        ));
        assert!(book.entries().is_empty());

        let (some, _) = ledger(LedgerFaults {
            failure_rate: 0.3,
            latency: Duration::ZERO,
        });
        let failures = (0..1000)
            .filter(|i| some.mint(&mint_request(&format!("op-{i}"))).is_err())
            .count();
        assert!(
            (150..450).contains(&failures),
            "about 30% failed: {failures}"
        );
    }
}
