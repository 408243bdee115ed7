//! The local ledger over the real store: idempotent per operation, and the same answer for
//! racing callers.

use super::{backends, connect};
use actors::domain::{BurnRequest, Chain, LedgerFaults, LocalLedger, MintRequest};
use std::sync::Arc;

#[test]
fn the_local_ledger_mints_once_per_operation_in_the_database() {
    for backend in backends() {
        let store = connect(&backend, 4);
        let chain = LocalLedger::new(Arc::new(store.clone()), LedgerFaults::default());
        let op = format!("op-{}", uuid::Uuid::new_v4().simple());
        let request = MintRequest {
            operation_id: op.clone(),
            user_id: "ledger-user".into(),
            tier_id: 3,
        };
        let first = chain.mint(&request).expect("minted");
        let again = chain.mint(&request).expect("minted again");
        assert_eq!(first, again);

        // Racing callers for one new operation all get the one recorded mint.
        let racing = format!("op-{}", uuid::Uuid::new_v4().simple());
        let results: Vec<_> = (0..4)
            .map(|_| {
                let (store, racing) = (store.clone(), racing.clone());
                std::thread::spawn(move || {
                    LocalLedger::new(Arc::new(store), LedgerFaults::default())
                        .mint(&MintRequest {
                            operation_id: racing,
                            user_id: "ledger-user".into(),
                            tier_id: 1,
                        })
                        .expect("minted")
                })
            })
            .map(|t| t.join().expect("thread"))
            .collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));

        let burned = chain
            .burn(&BurnRequest {
                operation_id: op,
                user_id: "ledger-user".into(),
                mint_address: first.mint_address.clone(),
            })
            .expect("burned");
        assert_ne!(burned.transaction_signature, first.transaction_signature);
    }
}
