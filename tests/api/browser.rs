//! The browser pages (`/`, `/admin`) in a real browser: Debian's `chromium`, driven over
//! WebDriver by `chromedriver`, which each test starts on a free port. The pages are plain
//! JavaScript against the live router, so this is where their code actually runs. Missing
//! browser binaries fail the test with the command that installs them (`.ci/run` does).

use crate::helpers::{accepted, event_body, spawn_app, unique_user, TestApp};
use actors::EventType;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use nft_event_router::auth::Role;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Upper bound for anything the page should come to show; polling stops as soon as it does.
/// Generous because the whole suite runs in parallel on a small machine.
const PAGE_WAIT: Duration = Duration::from_secs(20);

/// How long chromedriver may take to say which port it listens on.
const DRIVER_START: Duration = Duration::from_secs(20);

/// Headless, and quiet: no first-run UI, no background or update traffic, no sync.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
];

const INSTALL_HINT: &str = "install Debian's browser and driver: \
     `apt-get install -y chromium chromium-driver` (.ci/run does this)";

/// A program from `env_var`, else `name` on the PATH; a clear failure when neither exists.
fn find_program(env_var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on the PATH (nor set in {env_var}): {INSTALL_HINT}")
        })
}

/// chromedriver and one browser session, with a throw-away profile.
struct Browser {
    client: Client,
    /// Killed when dropped (`kill_on_drop`), after the session has closed the browser.
    _driver: Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        Browser::start_with(&[]).await
    }

    /// A browser started with `flags` beside [`CHROMIUM_FLAGS`].
    async fn start_with(flags: &[&str]) -> Browser {
        let chromedriver = find_program("CHROMEDRIVER", "chromedriver");
        let chromium = find_program("CHROME_BIN", "chromium");
        let mut driver = Command::new(&chromedriver)
            // Port 0: the driver picks a free port and prints it, so parallel tests never race
            // for one.
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; {INSTALL_HINT}",
                    chromedriver.display()
                )
            });
        let port = driver_port(&mut driver).await;

        let profile =
            std::env::temp_dir().join(format!("nftr-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut args: Vec<String> = CHROMIUM_FLAGS
            .iter()
            .chain(flags)
            .map(|f| (*f).to_owned())
            .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start {} ({e}); {INSTALL_HINT}",
                    chromium.display()
                )
            });
        Browser {
            client,
            _driver: driver,
            profile,
        }
    }

    /// Runs `scenario`, then closes the browser whatever happened (a panicking assertion
    /// included, so no chromium outlives the test), then passes the panic on.
    async fn run<F>(self, scenario: impl FnOnce(Client) -> F)
    where
        F: Future<Output = ()>,
    {
        let outcome = AssertUnwindSafe(scenario(self.client.clone()))
            .catch_unwind()
            .await;
        let _ = self.client.clone().close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
        drop(self);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Reads chromedriver's "…started successfully on port N." line, then keeps draining its
/// output so a full pipe can never block it.
async fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("chromedriver stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(DRIVER_START, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("on port ").nth(1) {
                if let Ok(port) = rest.trim_end_matches('.').trim().parse::<u16>() {
                    if port != 0 {
                        return Some(port);
                    }
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("chromedriver did not report its port; {INSTALL_HINT}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    port
}

/// Polls `probe` until it answers `Some`, for at most [`PAGE_WAIT`].
async fn poll<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PAGE_WAIT;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rendered text of the first element matching `css`, if there is one.
async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn attr(client: &Client, css: &str, name: &str) -> Option<String> {
    client
        .find(Locator::Css(css))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()
        .flatten()
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
}

/// Waits until the stream badge `css` says the EventSource is open.
async fn wait_connected(client: &Client, css: &str) {
    let state = poll(|| async move {
        attr(client, css, "data-state")
            .await
            .filter(|s| s == "open")
    })
    .await;
    let shown = text(client, css).await.unwrap_or_default();
    assert!(
        state.is_some(),
        "`{css}` never showed a connected stream; it shows {shown:?}"
    );
}

/// `target/browser/NAME`: where a person looks at what the test saw.
async fn screenshot(client: &Client, name: &str) {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

async fn publish(app: &TestApp, user: &str, event_type: EventType) -> (String, String) {
    let response = app.publish(&event_body(user, event_type)).await;
    assert_eq!(response.status(), 202, "{event_type} accepted");
    accepted(response).await
}

#[actix_web::test]
#[ignore = "needs chromium and chromedriver (Debian packages); .ci/run installs and runs it"]
async fn the_demo_page_mints_a_token_and_shows_events_as_they_arrive() {
    // The browser first: without one the test fails with that alone, before a router exists.
    let browser = Browser::start().await;
    let app = spawn_app().await;
    let user = unique_user();
    browser
        .run(|client| async move {
            let client = &client;
            client.goto(&app.url("/")).await.expect("open /");
            let input = client
                .wait()
                .at_most(PAGE_WAIT)
                .for_element(Locator::Css("#user-id"))
                .await
                .expect("user id field");
            input.clear().await.expect("clear");
            input.send_keys(&user).await.expect("type the user id");
            click(client, "#mint").await;
            wait_connected(client, "#state").await;

            let (cursor, event_id) = publish(&app, &user, EventType::BadgeEarned).await;
            let item = format!("#events li[data-event-id=\"{event_id}\"]");
            let shown = poll(|| text(client, &item)).await;
            let shown = shown.unwrap_or_else(|| panic!("the page never listed event {event_id}"));
            assert!(shown.contains("badge_earned"), "{shown}");
            assert!(
                shown.contains("First Trade"),
                "the payload is shown: {shown}"
            );
            assert_eq!(
                attr(client, &item, "data-cursor").await,
                Some(cursor.clone())
            );
            assert_eq!(text(client, "#last-id").await, Some(cursor));

            // The page's own form publishes too (with a service token it mints), for this user.
            click(client, "#publish summary").await;
            click(client, "#pub-send").await;
            let listed = poll(|| async move {
                let items = client
                    .find_all(Locator::Css("#events li.event"))
                    .await
                    .ok()?;
                (items.len() >= 2).then_some(items.len())
            })
            .await;
            let result = text(client, "#pub-result").await.unwrap_or_default();
            assert!(
                listed.is_some(),
                "the form's event never arrived; form says {result:?}"
            );
            assert!(result.starts_with("accepted"), "{result}");
            screenshot(client, "demo.png").await;
        })
        .await;
}

#[actix_web::test]
#[ignore = "needs chromium and chromedriver (Debian packages); .ci/run installs and runs it"]
async fn the_dashboard_shows_connections_and_the_operations_feed() {
    let browser = Browser::start().await;
    let app = spawn_app().await;
    let user = unique_user();
    browser
        .run(|client| async move {
            let client = &client;
            client.goto(&app.url("/admin")).await.expect("open /admin");
            click(client, "#mint").await;
            let _stream = app.open_stream(&user).await;

            let connections = poll(|| async move {
                let n: u64 = text(client, "#connections").await?.trim().parse().ok()?;
                (n > 0).then_some(n)
            })
            .await;
            let shown = text(client, "#connections").await;
            assert!(
                connections.is_some(),
                "connections never above 0: {shown:?}"
            );
            let per_user = text(client, "#per-user").await.unwrap_or_default();
            assert!(per_user.contains(&user), "{per_user}");

            // The operations feed (GET /api/v1/admin/operations) carries nft_minted.
            let feed_open = poll(|| async move {
                attr(client, "#feed-state", "data-state")
                    .await
                    .filter(|s| s == "open")
            })
            .await;
            let (_, event_id) = publish(&app, &user, EventType::NftMinted).await;
            let item = format!("#feed li[data-event-id=\"{event_id}\"]");
            let listed = match feed_open {
                Some(_) => poll(|| text(client, &item)).await,
                None => None,
            };
            // When the router exports the delivery metrics, the chart shows a rate (it needs two
            // samples of /metrics, two seconds apart).
            let metrics = app.client.get(app.url("/metrics")).send().await;
            let exported = match metrics {
                Ok(response) => response
                    .text()
                    .await
                    .is_ok_and(|t| t.contains("nft_router_events_delivered_total")),
                Err(_) => false,
            };
            let rate = if exported {
                poll(|| async move {
                    text(client, "#rate-now")
                        .await
                        .filter(|t| t.ends_with("/s"))
                })
                .await
            } else {
                None
            };
            // Saved before judging, so a failure leaves a picture of what the page showed.
            screenshot(client, "admin.png").await;
            if exported {
                let note = text(client, "#metrics-note").await.unwrap_or_default();
                assert!(
                    rate.is_some(),
                    "/metrics is there but no rate is shown: {note}"
                );
            }
            let notice = text(client, "#feed-notice").await.unwrap_or_default();
            assert!(
                feed_open.is_some(),
                "the operations feed never opened: {notice}"
            );
            let listed =
                listed.unwrap_or_else(|| panic!("the feed never listed {event_id}: {notice}"));
            assert!(listed.contains("nft_minted"), "{listed}");
        })
        .await;
}

/// A page of another origin: an empty document served on its own port (a different port is
/// a different origin), from which the browser calls the router.
async fn foreign_origin() -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let server = HttpServer::new(|| {
        App::new().route(
            "/",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body("<!doctype html><title>elsewhere</title><p>another origin</p>")
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind the foreign page's server");
    let address = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{address}")
}

/// From the page now open, a `fetch` of an admin route and an `EventSource` on the user
/// stream to `router`: what the browser lets the page do, `{fetch, stream}` as "served" or
/// "refused".
async fn cross_origin_calls(client: &Client, app: &TestApp, user: &str) -> serde_json::Value {
    const SCRIPT: &str = r#"
        const [router, adminToken, userToken, done] = arguments;
        (async () => {
          const result = {};
          try {
            const r = await fetch(router + '/api/v1/admin/sse-stats',
                                  { headers: { Authorization: 'Bearer ' + adminToken } });
            const body = await r.json();
            result.fetch = 'totalConnections' in body ? 'served' : 'odd answer';
          } catch (e) {
            result.fetch = 'refused';
          }
          result.stream = await new Promise((resolve) => {
            const es = new EventSource(router + '/api/v1/user/nft-events?access_token=' + userToken);
            es.onopen = () => { es.close(); resolve('served'); };
            es.onerror = () => { es.close(); resolve('refused'); };
            setTimeout(() => { es.close(); resolve('no answer'); }, 10000);
          });
          done(result);
        })();
    "#;
    client
        .execute_async(
            SCRIPT,
            vec![
                app.address.clone().into(),
                app.token("ops", Role::Admin).into(),
                app.token(user, Role::User).into(),
            ],
        )
        .await
        .expect("the script ran")
}

#[actix_web::test]
#[ignore = "needs chromium and chromedriver (Debian packages); .ci/run installs and runs it"]
async fn a_page_of_another_origin_is_served_only_when_its_origin_is_allowed() {
    let browser = Browser::start().await;
    let allowed = foreign_origin().await;
    let refused = foreign_origin().await;
    let app =
        crate::helpers::spawn_app_with(&format!("[http]\ncors_origins = [\"{allowed}\"]\n")).await;
    let user = unique_user();
    browser
        .run(|client| async move {
            let client = &client;
            client
                .goto(&refused)
                .await
                .expect("open the refused origin's page");
            let outcome = cross_origin_calls(client, &app, &user).await;
            assert_eq!(outcome["fetch"], "refused", "{outcome}");
            assert_eq!(outcome["stream"], "refused", "{outcome}");

            client
                .goto(&allowed)
                .await
                .expect("open the allowed origin's page");
            let outcome = cross_origin_calls(client, &app, &user).await;
            assert_eq!(outcome["fetch"], "served", "{outcome}");
            assert_eq!(outcome["stream"], "served", "{outcome}");
        })
        .await;
}

/// Opens `count` EventSources on the user stream from the page now open, authenticated by the
/// stream cookie (minted with `token`, as the pages do), each counting the events it receives
/// in `window.streams`.
async fn open_event_sources(client: &Client, token: &str, count: usize) {
    const SCRIPT: &str = r#"
        const [token, count, done] = arguments;
        (async () => {
          const minted = await fetch('/api/v1/user/stream-cookie',
                                     { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
          if (minted.status !== 204) { done('stream cookie: ' + minted.status); return; }
          window.streams = [];
          for (let i = 0; i < count; i++) {
            const stream = { opened: false, events: [] };
            stream.source = new EventSource('/api/v1/user/nft-events');
            stream.source.onopen = () => { stream.opened = true; };
            stream.source.onmessage = (message) => {
              try {
                if (JSON.parse(message.data).eventType) stream.events.push(message.lastEventId);
              } catch {}
            };
            window.streams.push(stream);
          }
          done('ok');
        })();
    "#;
    let outcome = client
        .execute_async(SCRIPT, vec![token.into(), count.into()])
        .await
        .expect("the script ran");
    assert_eq!(outcome, "ok", "{outcome}");
}

/// `window.streams` as the page sees it: how many opened, how many are still connecting
/// (`readyState` 0), and which cursors each received.
async fn streams_seen(client: &Client) -> (usize, usize, Vec<Vec<String>>) {
    const SCRIPT: &str = r#"
        return {
          opened: window.streams.filter((s) => s.opened).length,
          connecting: window.streams.filter((s) => s.source.readyState === 0).length,
          events: window.streams.map((s) => s.events),
        };
    "#;
    let seen = client
        .execute(SCRIPT, vec![])
        .await
        .expect("the script ran");
    let events: Vec<Vec<String>> =
        serde_json::from_value(seen["events"].clone()).expect("events as lists of cursors");
    let count = |key: &str| seen[key].as_u64().unwrap_or_default() as usize;
    (count("opened"), count("connecting"), events)
}

/// The page's own protocol, as the browser negotiated it (`h2`, `http/1.1`).
async fn page_protocol(client: &Client) -> String {
    let protocol = client
        .execute(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol;",
            vec![],
        )
        .await
        .expect("the script ran");
    protocol.as_str().unwrap_or_default().to_owned()
}

/// Ten tabs' worth of streams to one origin: over TLS the browser speaks HTTP/2 and all ten
/// run on one connection; over HTTP/1.1 it opens six connections per origin, so four streams
/// wait and miss the event (what HTTP/2 buys).
#[actix_web::test]
#[ignore = "needs chromium and chromedriver (Debian packages); .ci/run installs and runs it"]
async fn ten_streams_from_one_browser_all_run_over_h2_and_stall_at_six_over_http1() {
    const STREAMS: usize = 10;
    const HTTP1_CONNECTIONS_PER_ORIGIN: usize = 6;
    // The certificate is made for the test, so the browser is told to accept it.
    let browser = Browser::start_with(&["--ignore-certificate-errors"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = crate::tls::write_pair(dir.path());
    let tls = crate::tls::spawn_tls_app(dir.path(), &cert, &[b"h2"]).await;
    let plain = crate::helpers::spawn_app_with("[sse]\nmax_connections_per_user = 20\n").await;
    let (h2_user, h1_user) = (unique_user(), unique_user());
    browser
        .run(|client| async move {
            let client = &client;
            client
                .goto(&tls.url("/healthz"))
                .await
                .expect("open over TLS");
            assert_eq!(page_protocol(client).await, "h2");
            open_event_sources(client, &tls.token(&h2_user, Role::User), STREAMS).await;
            let opened = poll(|| async move {
                let (opened, ..) = streams_seen(client).await;
                (opened == STREAMS).then_some(opened)
            })
            .await;
            let (opened_now, ..) = streams_seen(client).await;
            assert!(
                opened.is_some(),
                "over h2 only {opened_now} of {STREAMS} opened"
            );
            let published = tls.publish_n(&h2_user, 1).await;
            let cursor = published[0].0.clone();
            let all = poll(|| {
                let cursor = cursor.clone();
                async move {
                    let (.., events) = streams_seen(client).await;
                    events
                        .iter()
                        .all(|e| e == std::slice::from_ref(&cursor))
                        .then_some(())
                }
            })
            .await;
            let (.., events) = streams_seen(client).await;
            assert!(
                all.is_some(),
                "over h2 every stream gets {cursor}: {events:?}"
            );

            client
                .goto(&plain.url("/healthz"))
                .await
                .expect("open over HTTP/1.1");
            assert_eq!(page_protocol(client).await, "http/1.1");
            open_event_sources(client, &plain.token(&h1_user, Role::User), STREAMS).await;
            let six = poll(|| async move {
                let (opened, ..) = streams_seen(client).await;
                (opened == HTTP1_CONNECTIONS_PER_ORIGIN).then_some(())
            })
            .await;
            let (opened_now, ..) = streams_seen(client).await;
            assert!(six.is_some(), "over HTTP/1.1 {opened_now} streams opened");
            let published = plain.publish_n(&h1_user, 1).await;
            let cursor = published[0].0.clone();
            let got = poll(|| {
                let cursor = cursor.clone();
                async move {
                    let (.., events) = streams_seen(client).await;
                    let got = events
                        .iter()
                        .filter(|e| *e == std::slice::from_ref(&cursor))
                        .count();
                    (got == HTTP1_CONNECTIONS_PER_ORIGIN).then_some(())
                }
            })
            .await;
            let (opened, connecting, events) = streams_seen(client).await;
            assert!(got.is_some(), "six streams get {cursor}: {events:?}");
            // Still stalled: the browser has no connection left for the other four.
            assert_eq!(opened, HTTP1_CONNECTIONS_PER_ORIGIN, "{events:?}");
            assert_eq!(
                connecting,
                STREAMS - HTTP1_CONNECTIONS_PER_ORIGIN,
                "{events:?}"
            );
            assert_eq!(
                events.iter().filter(|e| e.is_empty()).count(),
                STREAMS - HTTP1_CONNECTIONS_PER_ORIGIN,
                "{events:?}"
            );
        })
        .await;
}

/// On the demo page now open: mints a token for `user` and waits until the stream is open.
async fn connect_demo(client: &Client, app: &TestApp, user: &str) {
    client.goto(&app.url("/")).await.expect("open /");
    let input = client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#user-id"))
        .await
        .expect("user id field");
    input.clear().await.expect("clear");
    input.send_keys(user).await.expect("type the user id");
    click(client, "#mint").await;
    wait_connected(client, "#state").await;
}

/// The cursors the demo page lists, oldest first.
async fn listed_cursors(client: &Client) -> Vec<String> {
    let listed = client
        .execute(
            "return [...document.querySelectorAll('#events li.event')]\
               .map((li) => li.dataset.cursor).reverse();",
            vec![],
        )
        .await
        .expect("the script ran");
    serde_json::from_value(listed).expect("a list of cursors")
}

/// Waits until the page lists exactly `cursors`, each once, in order.
async fn wait_listed(client: &Client, cursors: &[String], tab: usize) {
    let listed = poll(|| async move {
        let listed = listed_cursors(client).await;
        (listed == cursors).then_some(())
    })
    .await;
    let shown = listed_cursors(client).await;
    assert!(
        listed.is_some(),
        "tab {tab} lists {shown:?}, not every event once: {cursors:?}"
    );
}

/// The open stream count at the router.
async fn streams_at_router(app: &TestApp, expected: u64) -> Option<u64> {
    poll(|| async move {
        let open = app.stats().await["totalConnections"].as_u64()?;
        (open == expected).then_some(open)
    })
    .await
}

/// Four tabs of one user share one stream (`/client.js`): one leader holds the only
/// connection and passes events on. The leader closes mid-stream; another tab takes over from
/// the cursor the tabs stand at, and every tab still open has every event exactly once.
#[actix_web::test]
#[ignore = "needs chromium and chromedriver (Debian packages); .ci/run installs and runs it"]
async fn four_tabs_share_one_stream_and_a_closing_leader_hands_its_cursor_on() {
    const TABS: usize = 4;
    let browser = Browser::start().await;
    let app = spawn_app().await;
    let user = unique_user();
    browser
        .run(|client| async move {
            let client = &client;
            let mut tabs = vec![client.window().await.expect("the first tab")];
            for _ in 1..TABS {
                tabs.push(client.new_window(true).await.expect("a new tab").handle);
            }
            for tab in &tabs {
                client.switch_to_window(tab.clone()).await.expect("switch");
                connect_demo(client, &app, &user).await;
            }
            let open = app.stats().await["totalConnections"].clone();
            assert!(
                streams_at_router(&app, 1).await.is_some(),
                "{TABS} tabs, one stream at the router; it has {open}"
            );

            let mut cursors: Vec<String> = app
                .publish_n(&user, 3)
                .await
                .into_iter()
                .map(|(cursor, _)| cursor)
                .collect();
            let mut leaders = Vec::new();
            for (i, tab) in tabs.iter().enumerate() {
                client.switch_to_window(tab.clone()).await.expect("switch");
                wait_listed(client, &cursors, i).await;
                if attr(client, "#role", "data-role").await.as_deref() == Some("leader") {
                    leaders.push(i);
                }
            }
            assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");

            // The leader goes, and events go on: some may come while no tab streams.
            client
                .switch_to_window(tabs[leaders[0]].clone())
                .await
                .expect("switch");
            client.close_window().await.expect("close the leader's tab");
            let rest: Vec<_> = tabs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != leaders[0])
                .collect();
            cursors.extend(
                app.publish_n(&user, 3)
                    .await
                    .into_iter()
                    .map(|(cursor, _)| cursor),
            );
            let mut leaders = Vec::new();
            for (i, tab) in &rest {
                client
                    .switch_to_window((*tab).clone())
                    .await
                    .expect("switch");
                wait_listed(client, &cursors, *i).await;
                if attr(client, "#role", "data-role").await.as_deref() == Some("leader") {
                    leaders.push(*i);
                }
            }
            assert_eq!(leaders.len(), 1, "one new leader: {leaders:?}");
            let open = app.stats().await["totalConnections"].clone();
            assert!(
                streams_at_router(&app, 1).await.is_some(),
                "still one stream at the router; it has {open}"
            );
            screenshot(client, "tabs.png").await;
        })
        .await;
}
