//! Unlock and upgrade over HTTP: 202 with an operation id, the operation's outcome, the events
//! on the user's stream, the portfolio and its cache, refusals, and a flaky ledger.

use crate::helpers::{
    post_json as post, spawn_app, spawn_app_with, unique_user, SseClient, TestApp,
};
use actors::domain::FlowStatus;
use nft_event_router::auth::Role;
use nft_event_router::store::Store;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub async fn volume(app: &TestApp, user: &str, volume: f64) {
    let (status, body) = post(
        app,
        "/api/v1/internal/trading-volume",
        Role::Service,
        "trading-service",
        json!({ "userId": user, "volume": volume }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

pub async fn earn_and_activate(app: &TestApp, user: &str, badge: &str) {
    let (status, body) = post(
        app,
        "/api/v1/admin/badges",
        Role::Admin,
        "admin",
        json!({ "userId": user, "badgeId": badge }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/v1/user/badges/{badge}/activate");
    let (status, body) = post(app, &path, Role::User, user, Value::Null).await;
    assert_eq!(status, 200, "{body}");
}

pub async fn unlock(app: &TestApp, user: &str, tier: u32) -> (u16, Value) {
    post(
        app,
        "/api/v1/user/unlock-nft",
        Role::User,
        user,
        json!({ "tierId": tier }),
    )
    .await
}

pub async fn upgrade(app: &TestApp, user: &str, tier: u32) -> (u16, Value) {
    post(
        app,
        "/api/v1/user/upgrade-nft",
        Role::User,
        user,
        json!({ "targetTierId": tier }),
    )
    .await
}

/// Polls the operation until it is no longer pending.
pub async fn outcome(app: &TestApp, user: &str, op: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = app
            .get_as(&format!("/api/v1/user/operations/{op}"), user, Role::User)
            .await;
        if body["status"] != "pending" {
            return body;
        }
        assert!(Instant::now() < deadline, "{op} still pending: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn operation_id(body: &Value) -> String {
    body["operationId"]
        .as_str()
        .expect("operationId")
        .to_owned()
}

async fn next_events(stream: &mut SseClient, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(stream.next_event().await.expect("event").1);
    }
    out
}

#[actix_web::test]
async fn unlock_then_upgrade_over_http_reaches_the_stream_and_the_portfolio() {
    let app = spawn_app().await;
    let user = unique_user();
    volume(&app, &user, 300_000.0).await;
    let mut stream = app.open_stream(&user).await;

    let (status, body) = unlock(&app, &user, 1).await;
    assert_eq!(status, 202, "{body}");
    let op = operation_id(&body);
    assert!(op.starts_with("op_"));
    let done = outcome(&app, &user, &op).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["kind"], "unlock");
    let first_mint = done["newNft"]["mintAddress"]
        .as_str()
        .expect("mint")
        .to_owned();

    let response = app
        .client
        .get(app.url("/api/v1/user/nfts"))
        .bearer_auth(app.token(&user, Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["x-cache"], "miss");
    let portfolio: Value = response.json().await.expect("json");
    assert_eq!(portfolio["nft"]["tierId"], 1);
    assert_eq!(portfolio["nft"]["tierName"], "Bronze");
    assert_eq!(portfolio["nft"]["mintAddress"], first_mint.as_str());
    let again = app
        .client
        .get(app.url("/api/v1/user/nfts"))
        .bearer_auth(app.token(&user, Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(again.headers()["x-cache"], "hit");

    earn_and_activate(&app, &user, "first-trade").await;
    let (status, body) = upgrade(&app, &user, 2).await;
    assert_eq!(status, 202, "{body}");
    let done = outcome(&app, &user, &operation_id(&body)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["consumedBadges"], json!(["first-trade"]));

    // nft_minted and nft_burned go to the admins' feed, not to the user's stream.
    let events = next_events(&mut stream, 4).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "nft_unlocked",
            "badge_earned",
            "tier_qualification_changed",
            "nft_upgraded"
        ]
    );
    assert_eq!(events[0]["data"]["mintAddress"], first_mint.as_str());
    let upgraded = &events[3]["data"];
    assert_eq!(upgraded["oldNft"]["tierName"], "Bronze");
    assert_eq!(upgraded["newNft"]["tierId"], 2);
    assert_eq!(upgraded["consumedBadges"], json!(["first-trade"]));

    let portfolio = app.get_as("/api/v1/user/nfts", &user, Role::User).await;
    assert_eq!(
        portfolio["nft"]["tierId"], 2,
        "the upgrade dropped the cache"
    );
    assert_eq!(portfolio["badges"][0]["status"], "consumed");
    assert_eq!(
        portfolio["qualifiedTiers"],
        json!([1, 2]),
        "a consumed badge keeps the tier it paid for qualified"
    );
    assert_eq!(
        portfolio["nft"]["mintAddress"],
        upgraded["newNft"]["mintAddress"]
    );
}

#[actix_web::test]
async fn refusals_are_422_with_the_reason_and_bad_input_400() {
    let app = spawn_app().await;
    let user = unique_user();
    volume(&app, &user, 120_000.0).await;

    let (status, body) = unlock(&app, &user, 2).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!("NOT_QUALIFIED"))
    );
    let (status, body) = upgrade(&app, &user, 2).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!("NO_NFT_TO_UPGRADE"))
    );
    let (status, body) = unlock(&app, &user, 42).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!("UNKNOWN_TIER"))
    );

    let (status, body) = post(
        &app,
        "/api/v1/user/unlock-nft",
        Role::User,
        &user,
        json!({ "tier": 1 }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(
        &app,
        "/api/v1/user/unlock-nft",
        Role::User,
        &user,
        json!({ "tierId": "one" }),
    )
    .await;
    assert_eq!(status, 400);

    let (status, body) = unlock(&app, &user, 1).await;
    assert_eq!(status, 202, "{body}");
    let op = operation_id(&body);
    outcome(&app, &user, &op).await;
    let (status, body) = unlock(&app, &user, 1).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!("ALREADY_HOLDS_NFT"))
    );
    let (status, body) = upgrade(&app, &user, 3).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (422, json!("WRONG_TIER"))
    );

    // Someone else's operation, or none at all, is not found.
    let other = app
        .client
        .get(app.url(&format!("/api/v1/user/operations/{op}")))
        .bearer_auth(app.token("someone-else", Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(other.status().as_u16(), 404);
    let unknown = app
        .client
        .get(app.url("/api/v1/user/operations/op_nothing"))
        .bearer_auth(app.token(&user, Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status().as_u16(), 404);
}

#[actix_web::test]
async fn concurrent_upgrades_for_one_user_get_one_202_and_one_409() {
    // A slow ledger keeps the first flow running while the second request arrives.
    let app = spawn_app_with("[chain]\nlatency_ms = 400\n").await;
    let user = unique_user();
    volume(&app, &user, 300_000.0).await;
    let (_, body) = unlock(&app, &user, 1).await;
    outcome(&app, &user, &operation_id(&body)).await;
    earn_and_activate(&app, &user, "first-trade").await;

    let (a, b) = tokio::join!(upgrade(&app, &user, 2), upgrade(&app, &user, 2));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(refused["error_code"], "FLOW_IN_PROGRESS");
    let accepted = if a.0 == 202 { &a.1 } else { &b.1 };
    let done = outcome(&app, &user, &operation_id(accepted)).await;
    assert_eq!(done["status"], "completed", "{done}");
}

/// Mint addresses the ledger holds for `user` and has not burned.
pub fn live_nfts(store: &Store, user: &str) -> Vec<String> {
    let entries = store.ledger_entries_for_user(user).expect("ledger");
    let burned: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == actors::domain::EntryKind::Burn)
        .map(|e| e.mint_address.clone())
        .collect();
    entries
        .into_iter()
        .filter(|e| e.kind == actors::domain::EntryKind::Mint)
        .map(|e| e.mint_address)
        .filter(|m| !burned.contains(m))
        .collect()
}

/// Eleven tiers that need volume only, so each user can try ten upgrades.
fn eleven_tiers() -> String {
    let mut toml = String::from(
        "[chain]\nfailure_rate = 0.3\nattempts = 2\nretry_backoff_ms = 1\n[domain]\nbadges = []\n",
    );
    for id in 1..=11 {
        toml.push_str(&format!(
            "[[domain.tiers]]\nid = {id}\nname = \"T{id}\"\nmilestone = {}\n\
             image_url = \"https://example.invalid/{id}.png\"\nbadges_required = 0\n\
             benefits = {{ trading_fee_reduction = \"{id}%\", ai_agent_weekly_uses = {id}, \
             priority_support = false }}\n",
            id * 1000
        ));
    }
    toml
}

#[actix_web::test]
async fn with_a_flaky_ledger_200_upgrades_leave_every_user_one_nft() {
    const USERS: usize = 20;
    const ATTEMPTS: usize = 10;
    let app = spawn_app_with(&eleven_tiers()).await;
    let users: Vec<String> = (0..USERS).map(|_| unique_user()).collect();
    for user in &users {
        volume(&app, user, 1_000_000.0).await;
        // Unlocks see the same faults; a failed one is simply asked again.
        loop {
            let (status, body) = unlock(&app, user, 1).await;
            assert_eq!(status, 202, "{body}");
            if outcome(&app, user, &operation_id(&body)).await["status"] == "completed" {
                break;
            }
        }
    }

    let runs = users.iter().map(|user| {
        let app = &app;
        async move {
            let mut results = Vec::new();
            for _ in 0..ATTEMPTS {
                let portfolio = app.get_as("/api/v1/user/nfts", user, Role::User).await;
                let tier = portfolio["nft"]["tierId"].as_u64().expect("an NFT");
                let (status, body) = upgrade(app, user, tier as u32 + 1).await;
                assert_eq!(status, 202, "{body}");
                let op = operation_id(&body);
                let done = outcome(app, user, &op).await;
                results.push((op, done));
            }
            results
        }
    });
    let results = futures_util::future::join_all(runs).await;

    let store = Store::connect(&app.store_url, 2).expect("store");
    let (mut completed, mut failed) = (0, 0);
    for (user, results) in users.iter().zip(&results) {
        let changes = app
            .get_as(
                "/api/v1/user/nft-portfolio-changes?limit=1000",
                user,
                Role::User,
            )
            .await;
        let reported: Vec<&str> = changes["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|change| &change["event"])
            .filter(|e| e["eventType"] == "nft_unlock_failed")
            .filter_map(|e| e["data"]["operationId"].as_str())
            .collect();
        for (op, done) in results {
            match done["status"].as_str() {
                Some("completed") => completed += 1,
                Some("failed") => {
                    failed += 1;
                    assert!(done["reason"].is_string(), "{done}");
                    assert!(reported.contains(&op.as_str()), "{op} reported");
                }
                other => panic!("{op}: {other:?}"),
            }
        }
        let portfolio = app.get_as("/api/v1/user/nfts", user, Role::User).await;
        let held = portfolio["nft"]["mintAddress"].as_str().expect("one NFT");
        assert_eq!(live_nfts(&store, user), vec![held.to_owned()], "{user}");
    }
    assert_eq!(completed + failed, USERS * ATTEMPTS);
    assert!(failed > 0, "30% faults with 2 tries fail some upgrades");
    eprintln!("{completed} upgrades completed, {failed} failed and compensated");
}

/// The real binary on `store_url`, with the ledger slowed by `latency_ms`; answers the child
/// and its base URL.
fn start_router(store_url: &str, latency_ms: u64) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nft-event-router"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
        .env("NFT_ROUTER__HTTP__WORKERS", "1")
        .env("NFT_ROUTER__STORE__URL", store_url)
        .env("NFT_ROUTER__CHAIN__LATENCY_MS", latency_ms.to_string())
        .env("NFT_ROUTER__REDIS__URL", "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    stdout.read_line(&mut banner).expect("banner");
    // Keep reading, so the router never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let start = banner
        .find("http://127.0.0.1:")
        .expect("banner names the address");
    let url: String = banner[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    (child, url.trim_end_matches('/').to_owned())
}

#[actix_web::test]
async fn a_router_killed_mid_upgrade_finishes_or_compensates_it_at_the_next_start() {
    // Keys as the binary's config.toml has them.
    let app = spawn_app().await;
    let store_url = crate::helpers::fresh_store_url();
    let user = unique_user();
    let (mut first, base) = start_router(&store_url, 1000);
    let router = TestApp::remote(&app, &base);

    volume(&router, &user, 300_000.0).await;
    let (status, body) = unlock(&router, &user, 1).await;
    assert_eq!(status, 202, "{body}");
    outcome(&router, &user, &operation_id(&body)).await;
    earn_and_activate(&router, &user, "first-trade").await;
    let (status, body) = upgrade(&router, &user, 2).await;
    assert_eq!(status, 202, "{body}");
    let op = operation_id(&body);
    // The mint takes 1 s, then the burn another 1 s: kill between the two.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let store = Store::connect(&store_url, 2).expect("store");
    let stored = store.flow(&op).expect("read").expect("stored");
    assert_eq!(stored.status, FlowStatus::Pending, "killed mid-flow");
    eprintln!("killed at step {:?}", stored.step);

    let (mut second, base) = start_router(&store_url, 0);
    let router = TestApp::remote(&app, &base);
    let done = outcome(&router, &user, &op).await;
    let portfolio = router.get_as("/api/v1/user/nfts", &user, Role::User).await;
    let held = portfolio["nft"]["mintAddress"].as_str().expect("one NFT");
    assert_eq!(live_nfts(&store, &user), vec![held.to_owned()]);
    match done["status"].as_str() {
        Some("completed") => assert_eq!(portfolio["nft"]["tierId"], 2),
        Some("failed") => {
            assert_eq!(portfolio["nft"]["tierId"], 1);
            assert_eq!(portfolio["badges"][0]["status"], "activated");
        }
        other => panic!("{other:?}: {done}"),
    }
    assert_eq!(portfolio["activeOperation"], Value::Null);
    eprintln!("after the restart the upgrade is {}", done["status"]);
    second.kill().expect("stopped");
    let _ = second.wait();
}
