//! Receipts: what makes a service's domain command idempotent under an `Idempotency-Key`.
//!
//! A keyed command (recording a trading volume, awarding a badge) stores its answer as a
//! receipt in the same transaction as the state change and the events it caused. A retry with
//! the key finds the receipt and gets the first answer back, on any instance and after a
//! restart, instead of being decided again (which would answer "badge already earned", or a
//! volume with no previous value). The receipt's key is unique in the store, so of two racing
//! first attempts one commits and the other rolls back and answers the winner's receipt.
//!
//! A command the rules refuse writes nothing, so it leaves no receipt: its retry is decided
//! again, and is refused again unless the state changed meanwhile.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The idempotency key a command was sent with, as the domain needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    /// The key as the caller sent it, for the error that names it.
    pub given: String,
    /// The receipt's key: a digest of the caller, the route and the given key, so two callers'
    /// keys never collide.
    pub key: String,
    /// A digest of the request, so a retry with a different request is told apart.
    pub fingerprint: String,
}

impl Keyed {
    /// `caller` and `route` scope `given`; `request` are the request's facts in a fixed order
    /// (user, values, correlation id).
    pub fn new(caller: &str, route: &str, given: String, request: &[&str]) -> Keyed {
        Keyed {
            key: fingerprint(&[caller, route, &given]),
            fingerprint: fingerprint(request),
            given,
        }
    }
}

/// Hex SHA-256 over `parts`, each ended by a NUL (which no part may contain), so `("ab", "c")`
/// and `("a", "bc")` differ.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A receipt to store with a change: the key, the request's fingerprint and the answer
/// (compact JSON of a [`CommandAnswer`]). The store adds the events' cursors and ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub key: String,
    pub fingerprint: String,
    pub answer: String,
}

/// A receipt as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReceipt {
    pub fingerprint: String,
    pub answer: String,
    /// `(cursor, event id)` of each event the command caused, in cursor order.
    pub events: Vec<(u64, String)>,
}

/// What a keyed command answers, the first time and on every retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAnswer {
    pub previous_volume: f64,
    pub current_volume: f64,
    pub qualified_tiers: Vec<u32>,
    /// `(cursor, event id)` of the events it caused.
    #[serde(skip)]
    pub events: Vec<(u64, String)>,
    /// True when this is a stored answer to a retry: nothing was written or delivered again.
    #[serde(skip)]
    pub replayed: bool,
}

impl CommandAnswer {
    /// The answer a stored receipt holds.
    pub fn replayed(receipt: StoredReceipt) -> Option<CommandAnswer> {
        let mut answer: CommandAnswer = serde_json::from_str(&receipt.answer).ok()?;
        answer.events = receipt.events;
        answer.replayed = true;
        Some(answer)
    }

    /// Compact JSON of what a receipt keeps (without the events, which the store adds).
    pub fn to_json(&self) -> String {
        // A struct of numbers serializes infallibly.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
        assert_eq!(fingerprint(&["x"]).len(), 64);
    }

    #[test]
    fn an_answer_comes_back_from_its_receipt_with_the_events() {
        let answer = CommandAnswer {
            previous_volume: 10.0,
            current_volume: 2500.5,
            qualified_tiers: vec![1, 2],
            events: vec![],
            replayed: false,
        };
        let back = CommandAnswer::replayed(StoredReceipt {
            fingerprint: "f".into(),
            answer: answer.to_json(),
            events: vec![(7, "nft_a".into())],
        })
        .expect("parsed");
        assert_eq!(back.current_volume, 2500.5);
        assert_eq!(back.qualified_tiers, vec![1, 2]);
        assert_eq!(back.events, vec![(7, "nft_a".to_owned())]);
        assert!(back.replayed);
    }
}
