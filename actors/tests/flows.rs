//! Unlock and upgrade flows driven in-process through the testkit harness: the journal over
//! the in-memory log, the local ledger over an in-memory book with injected faults.

use actix::Addr;
use actors::consumers::Cache;
use actors::domain::*;
use actors::event::Benefits;
use actors::journal::EventLog;
use actors::testkit::{sample_rules, Harness};
use serde_json::Value;
use std::time::Duration;

/// Many tiers that need volume only, so one user can upgrade many times.
fn long_rules(tiers: u32) -> DomainRules {
    let tier = |id: u32| TierRule {
        id,
        name: format!("Tier {id}"),
        milestone: f64::from(id) * 1000.0,
        image_url: format!("https://example.invalid/t{id}.png"),
        benefits: Benefits {
            trading_fee_reduction: format!("{id}%"),
            ai_agent_weekly_uses: id * 10,
            priority_support: id > 2,
        },
        badges_required: 0,
    };
    DomainRules::new((1..=tiers).map(tier).collect(), vec![]).expect("valid rules")
}

/// The whole system over `rules` (the sample rules have three tiers; tier 2 needs one badge,
/// tier 3 two).
struct World {
    harness: Harness,
}

impl World {
    fn new(rules: DomainRules) -> World {
        World {
            harness: Harness::builder().rules(rules).start(),
        }
    }

    /// A domain actor over this world's log, ledger and cache.
    fn domain(&self, faults: LedgerFaults, policy: FlowPolicy) -> Addr<NftDomain> {
        self.harness.start_domain(faults, policy)
    }

    fn state(&self, user: &str) -> UserState {
        self.harness.log().user_state(user).expect("state")
    }

    /// The user's events as stored: `(eventType, data)`, oldest first.
    fn events(&self, user: &str) -> Vec<(String, Value)> {
        self.harness
            .log()
            .events_after(user, 0, 10_000)
            .expect("events")
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.envelope_json).expect("json");
                (e.event_type.to_string(), v["data"].clone())
            })
            .collect()
    }

    /// Mint addresses the ledger holds for `user` and has not burned.
    fn live_nfts(&self, user: &str) -> Vec<String> {
        let entries = self.harness.ledger_book().entries();
        let burned: Vec<&str> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Burn)
            .map(|e| e.mint_address.as_str())
            .collect();
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Mint && e.user_id == user)
            .filter(|e| !burned.contains(&e.mint_address.as_str()))
            .map(|e| e.mint_address.clone())
            .collect()
    }
}

fn fast() -> FlowPolicy {
    FlowPolicy {
        attempts: 3,
        backoff: Duration::from_millis(1),
    }
}

async fn volume(domain: &Addr<NftDomain>, user: &str, volume: f64) {
    domain
        .send(RecordVolume {
            user_id: user.into(),
            volume,
            correlation_id: None,
            once: None,
        })
        .await
        .expect("delivered")
        .expect("recorded");
}

async fn earn_and_activate(domain: &Addr<NftDomain>, user: &str, badge: &str) {
    domain
        .send(AwardBadge {
            user_id: user.into(),
            badge_id: badge.into(),
            correlation_id: None,
            once: None,
        })
        .await
        .expect("delivered")
        .expect("awarded");
    domain
        .send(ActivateBadge {
            user_id: user.into(),
            badge_id: badge.into(),
            correlation_id: None,
        })
        .await
        .expect("delivered")
        .expect("activated");
}

async fn unlock(domain: &Addr<NftDomain>, user: &str, tier: u32) -> Result<String, DomainFailure> {
    domain
        .send(StartUnlock {
            user_id: user.into(),
            tier_id: tier,
            correlation_id: None,
        })
        .await
        .expect("delivered")
}

async fn upgrade(domain: &Addr<NftDomain>, user: &str, tier: u32) -> Result<String, DomainFailure> {
    domain
        .send(StartUpgrade {
            user_id: user.into(),
            target_tier_id: tier,
            correlation_id: Some("corr-1".into()),
        })
        .await
        .expect("delivered")
}

async fn operation(domain: &Addr<NftDomain>, user: &str, op: &str) -> Option<FlowRecord> {
    domain
        .send(GetOperation {
            user_id: user.into(),
            operation_id: op.into(),
        })
        .await
        .expect("delivered")
        .expect("read")
}

async fn idle(domain: &Addr<NftDomain>) {
    tokio::time::timeout(Duration::from_secs(30), domain.send(FlowsIdle))
        .await
        .expect("flows end")
        .expect("delivered");
}

#[actix::test]
async fn unlock_then_upgrade_produces_the_seed_sequence() {
    let world = World::new(sample_rules());
    let domain = world.domain(LedgerFaults::default(), fast());
    volume(&domain, "u1", 300_000.0).await;

    let op = unlock(&domain, "u1", 1).await.expect("202");
    idle(&domain).await;
    let flow = operation(&domain, "u1", &op).await.expect("known");
    assert_eq!(
        (flow.kind, flow.status),
        (FlowKind::Unlock, FlowStatus::Completed)
    );
    let first = world.state("u1").nft.expect("an NFT");
    assert_eq!(first.tier_id, 1);
    assert!(operation(&domain, "someone-else", &op).await.is_none());

    earn_and_activate(&domain, "u1", "a").await;
    let op = upgrade(&domain, "u1", 2).await.expect("202");
    idle(&domain).await;
    let flow = operation(&domain, "u1", &op).await.expect("known");
    assert_eq!(flow.status, FlowStatus::Completed, "{flow:?}");
    assert_eq!(flow.correlation_id.as_deref(), Some("corr-1"));

    let state = world.state("u1");
    let second = state.nft.clone().expect("an NFT");
    assert_eq!(second.tier_id, 2);
    assert_eq!(state.badges.get("a"), Some(&BadgeStatus::Consumed));
    assert_eq!(state.active_flow, None);
    assert_eq!(world.live_nfts("u1"), vec![second.mint_address.clone()]);

    let types: Vec<String> = world.events("u1").into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "volume_milestone_reached",
            "volume_milestone_reached",
            "tier_qualification_changed",
            "nft_minted",
            "nft_unlocked",
            "badge_earned",
            "tier_qualification_changed",
            "nft_minted",
            "nft_burned",
            "nft_upgraded",
        ]
    );
    let events = world.events("u1");
    let unlocked = &events[4].1;
    assert_eq!(unlocked["tierId"], 1);
    assert_eq!(unlocked["tierName"], "Tier 1");
    assert_eq!(unlocked["mintAddress"], first.mint_address.as_str());
    assert_eq!(unlocked["benefits"]["tradingFeeReduction"], "1%");
    let burned = &events[8].1;
    assert_eq!(burned["mintAddress"], first.mint_address.as_str());
    assert_eq!(burned["tierId"], 1);
    let upgraded = &events[9].1;
    assert_eq!(upgraded["oldNft"]["nftId"], first.nft_id.as_str());
    assert_eq!(upgraded["oldNft"]["tierName"], "Tier 1");
    assert_eq!(upgraded["newNft"]["nftId"], second.nft_id.as_str());
    assert_eq!(upgraded["newNft"]["tierId"], 2);
    assert_eq!(
        upgraded["newNft"]["mintAddress"],
        second.mint_address.as_str()
    );
    assert_eq!(upgraded["consumedBadges"], serde_json::json!(["a"]));
    assert_eq!(
        events[7].1["mintAddress"],
        second.mint_address.as_str(),
        "nft_minted names the new NFT"
    );
}

#[actix::test]
async fn refusals_say_which_rule() {
    let world = World::new(sample_rules());
    let domain = world.domain(LedgerFaults::default(), fast());
    let refused = |r: Result<String, DomainFailure>| match r {
        Err(DomainFailure::Refused(e)) => e.error_code(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    volume(&domain, "u1", 120_000.0).await;
    assert_eq!(refused(unlock(&domain, "u1", 2).await), "NOT_QUALIFIED");
    assert_eq!(refused(unlock(&domain, "u1", 9).await), "UNKNOWN_TIER");
    assert_eq!(
        refused(upgrade(&domain, "u1", 2).await),
        "NO_NFT_TO_UPGRADE"
    );
    unlock(&domain, "u1", 1).await.expect("202");
    idle(&domain).await;
    assert_eq!(refused(unlock(&domain, "u1", 1).await), "ALREADY_HOLDS_NFT");
    assert_eq!(refused(upgrade(&domain, "u1", 3).await), "WRONG_TIER");
    assert_eq!(refused(upgrade(&domain, "u1", 2).await), "NOT_QUALIFIED");
    assert!(world
        .harness
        .log()
        .pending_flows()
        .expect("read")
        .is_empty());
}

#[actix::test]
async fn a_second_flow_for_the_user_while_one_runs_is_refused() {
    let world = World::new(sample_rules());
    let slow = LedgerFaults {
        failure_rate: 0.0,
        latency: Duration::from_millis(300),
    };
    let domain = world.domain(slow, fast());
    volume(&domain, "u1", 300_000.0).await;
    volume(&domain, "u2", 300_000.0).await;
    unlock(&domain, "u1", 1).await.expect("202");
    idle(&domain).await;
    earn_and_activate(&domain, "u1", "a").await;

    let (a, b, other) = tokio::join!(
        upgrade(&domain, "u1", 2),
        upgrade(&domain, "u1", 2),
        unlock(&domain, "u2", 1)
    );
    let outcomes = [&a, &b];
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let refusal = outcomes
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("one refused");
    match refusal {
        DomainFailure::Refused(e) => assert_eq!(e.error_code(), "FLOW_IN_PROGRESS"),
        other => panic!("{other:?}"),
    }
    assert!(other.is_ok(), "another user's flow runs meanwhile");
    idle(&domain).await;
    assert_eq!(world.state("u1").nft.map(|n| n.tier_id), Some(2));
    assert_eq!(world.state("u2").nft.map(|n| n.tier_id), Some(1));
}

#[actix::test]
async fn with_a_flaky_ledger_every_user_ends_with_exactly_one_nft() {
    const USERS: usize = 20;
    const UPGRADES: usize = 10;
    let world = World::new(long_rules(40));
    let setup = world.domain(LedgerFaults::default(), fast());
    for u in 0..USERS {
        let user = format!("user-{u}");
        volume(&setup, &user, 1_000_000.0).await;
        unlock(&setup, &user, 1).await.expect("202");
    }
    idle(&setup).await;

    let flaky = LedgerFaults {
        failure_rate: 0.3,
        latency: Duration::ZERO,
    };
    let policy = FlowPolicy {
        attempts: 2,
        backoff: Duration::from_millis(1),
    };
    let domain = world.domain(flaky, policy);
    let mut operations = Vec::new();
    for _round in 0..UPGRADES {
        let mut started = Vec::new();
        for u in 0..USERS {
            let user = format!("user-{u}");
            let target = world.state(&user).nft.expect("holds one").tier_id + 1;
            started.push((user.clone(), upgrade(&domain, &user, target).await));
        }
        idle(&domain).await;
        for (user, op) in started {
            operations.push((user, op.expect("202")));
        }
    }
    assert_eq!(operations.len(), USERS * UPGRADES);

    let (mut completed, mut failed) = (0, 0);
    for (user, op) in &operations {
        let flow = operation(&domain, user, op).await.expect("known");
        match flow.status {
            FlowStatus::Completed => completed += 1,
            FlowStatus::Failed => {
                failed += 1;
                assert!(flow.reason.is_some());
                let reported = world
                    .events(user)
                    .iter()
                    .any(|(t, d)| t == "nft_unlock_failed" && d["operationId"] == op.as_str());
                assert!(reported, "failure of {op} is on {user}'s stream");
            }
            FlowStatus::Pending => panic!("{op} still pending"),
        }
    }
    assert_eq!(completed + failed, USERS * UPGRADES);
    assert!(failed > 0, "with 30% faults and 2 tries some upgrades fail");
    for u in 0..USERS {
        let user = format!("user-{u}");
        let state = world.state(&user);
        let held = state.nft.expect("one NFT");
        assert_eq!(world.live_nfts(&user), vec![held.mint_address], "{user}");
        assert_eq!(state.active_flow, None);
    }
    eprintln!("200 upgrades: {completed} completed, {failed} failed and compensated");
}

#[actix::test]
async fn a_failed_upgrade_restores_the_badges_and_keeps_the_old_nft() {
    let world = World::new(sample_rules());
    let domain = world.domain(LedgerFaults::default(), fast());
    volume(&domain, "u1", 300_000.0).await;
    unlock(&domain, "u1", 1).await.expect("202");
    idle(&domain).await;
    earn_and_activate(&domain, "u1", "a").await;
    let before = world.state("u1").nft.expect("an NFT");

    let broken = world.domain(
        LedgerFaults {
            failure_rate: 1.0,
            latency: Duration::ZERO,
        },
        fast(),
    );
    let op = upgrade(&broken, "u1", 2).await.expect("202");
    idle(&broken).await;
    let flow = operation(&broken, "u1", &op).await.expect("known");
    assert_eq!(flow.status, FlowStatus::Failed);
    assert!(flow.reason.as_deref().unwrap_or("").contains("mint failed"));
    let state = world.state("u1");
    assert_eq!(state.nft, Some(before.clone()));
    assert_eq!(state.badges.get("a"), Some(&BadgeStatus::Activated));
    let (kind, data) = world.events("u1").pop().expect("an event");
    assert_eq!(kind, "nft_unlock_failed");
    assert_eq!(data["nftDefinitionId"], 2);
    assert_eq!(data["operationId"], op.as_str());

    // The badge is usable again: the next try goes through.
    let op = upgrade(&domain, "u1", 2).await.expect("202");
    idle(&domain).await;
    assert_eq!(
        operation(&domain, "u1", &op).await.map(|f| f.status),
        Some(FlowStatus::Completed)
    );
}

/// A pending flow as a router stopped mid-flow leaves it, written step by step like the
/// driver does.
fn interrupted_upgrade(world: &World, user: &str, op: &str, minted: bool) -> FlowRecord {
    let log = world.harness.log();
    let state = world.state(user);
    let now = chrono::Utc::now();
    let flow = FlowRecord {
        operation_id: op.into(),
        user_id: user.into(),
        kind: FlowKind::Upgrade,
        target_tier: 2,
        status: FlowStatus::Pending,
        step: FlowStep::Started,
        reason: None,
        old_nft: state.nft.clone(),
        new_nft: None,
        consumed_badges: vec!["a".into()],
        correlation_id: None,
        created_at: now,
        updated_at: now,
    };
    log.apply_change(&StateChange::StartFlow { flow: flow.clone() }, &[], None)
        .expect("started");
    if !minted {
        return flow;
    }
    let chain = LocalLedger::new(world.harness.ledger_book(), LedgerFaults::default());
    let m = chain
        .mint(&MintRequest {
            operation_id: op.into(),
            user_id: user.into(),
            tier_id: 2,
        })
        .expect("minted");
    let mut next = flow.at(FlowStep::Minted);
    next.new_nft = Some(MintedNft {
        nft_id: m.nft_id,
        tier_id: 2,
        mint_address: m.mint_address,
        transaction_signature: m.transaction_signature,
        metadata_uri: m.metadata_uri,
        gas_used: m.gas_used,
        minted_at: now,
    });
    log.apply_change(&StateChange::AdvanceFlow { flow: next.clone() }, &[], None)
        .expect("advanced");
    next
}

#[actix::test]
async fn a_restarted_domain_resumes_interrupted_flows() {
    let world = World::new(sample_rules());
    let first = world.domain(LedgerFaults::default(), fast());
    for user in ["u1", "u2"] {
        volume(&first, user, 300_000.0).await;
        unlock(&first, user, 1).await.expect("202");
        idle(&first).await;
        earn_and_activate(&first, user, "a").await;
    }
    interrupted_upgrade(&world, "u1", "op-started", false);
    interrupted_upgrade(&world, "u2", "op-minted", true);
    assert_eq!(world.harness.log().pending_flows().expect("read").len(), 2);

    let restarted = world.domain(LedgerFaults::default(), fast());
    let found = restarted
        .send(ResumeFlows)
        .await
        .expect("delivered")
        .expect("resumed");
    assert_eq!(found, 2);
    idle(&restarted).await;
    for (user, op) in [("u1", "op-started"), ("u2", "op-minted")] {
        let flow = operation(&restarted, user, op).await.expect("known");
        assert_eq!(flow.status, FlowStatus::Completed, "{flow:?}");
        let held = world.state(user).nft.expect("one NFT");
        assert_eq!(held.tier_id, 2);
        assert_eq!(world.live_nfts(user), vec![held.mint_address]);
    }
    let minted: Vec<_> = world
        .harness
        .ledger_book()
        .entries()
        .into_iter()
        .filter(|e| e.operation_id == "op-minted" && e.kind == EntryKind::Mint)
        .collect();
    assert_eq!(minted.len(), 1, "the resumed flow reused its mint");
}

#[actix::test]
async fn every_change_drops_the_cached_portfolio() {
    let world = World::new(sample_rules());
    let domain = world.domain(LedgerFaults::default(), fast());
    let cached = |world: &World| {
        let cache = world.harness.cache();
        async move {
            cache
                .get_document(portfolio_key("u1"))
                .await
                .expect("cache up")
        }
    };
    let put = |world: &World| {
        let cache = world.harness.cache();
        async move {
            cache
                .put_document(portfolio_key("u1"), "{}".into(), Duration::from_secs(60))
                .await
                .expect("cache up")
        }
    };
    put(&world).await;
    volume(&domain, "u1", 150_000.0).await;
    assert_eq!(cached(&world).await, None, "volume");

    put(&world).await;
    unlock(&domain, "u1", 1).await.expect("202");
    idle(&domain).await;
    assert_eq!(cached(&world).await, None, "unlock");

    put(&world).await;
    assert_eq!(cached(&world).await.as_deref(), Some("{}"));
}
