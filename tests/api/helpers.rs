//! `spawn_app`: the production `Application` on port 0, plus an SSE client over TCP.

use actors::frame::{FrameParser, ParsedFrame};
use figment::providers::{Format, Toml};
use figment::Figment;
use futures_util::StreamExt;
use nft_event_router::auth::{JwtKeys, Role};
use nft_event_router::config::Settings;
use nft_event_router::startup::Application;
use secrecy::ExposeSecret;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::oneshot;

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub address: String,
    /// The internal listener (`http.internal_bind`), when the app has one.
    pub internal: Option<String>,
    /// The database this app stores events in; another app on the same URL sees them.
    pub store_url: String,
    /// The app's Kafka cluster (embedded: faults can be injected).
    pub broker: std::sync::Arc<nft_event_router::kafka::KafkaCluster>,
    pub keys: JwtKeys,
    pub client: reqwest::Client,
    /// The in-process app's metrics; `None` for a [`TestApp::remote`] one.
    metrics: Option<std::sync::Arc<actors::metrics::Metrics>>,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The TLS pair's directory, kept as long as the app serves it.
    pub tls_dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// A fresh, empty database for one test: a new SQLite file, or, when `DATABASE_URL` names a
/// MySQL/MariaDB server, a new database on it (so pruning in one test cannot touch another's).
pub fn fresh_store_url() -> String {
    let name = format!("nftr_test_{}", uuid::Uuid::new_v4().simple());
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("mysql://") => create_mysql_database(&url, &name),
        _ => format!(
            "sqlite://{}",
            std::env::temp_dir().join(format!("{name}.db")).display()
        ),
    }
}

/// The test databases of earlier runs, dropped once per run before the first is made: every
/// test makes its own, and some outlive their `TestApp` (restarts, child processes), so they
/// are not dropped one by one.
#[cfg(feature = "mysql")]
static SWEPT: std::sync::Once = std::sync::Once::new();

#[cfg(feature = "mysql")]
fn sweep_earlier_runs(conn: &mut diesel::MysqlConnection) {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Schema {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let old = diesel::sql_query(
        "SELECT schema_name AS name FROM information_schema.schemata \
         WHERE schema_name LIKE 'nftr\\_test\\_%'",
    )
    .load::<Schema>(conn)
    .unwrap_or_default();
    for schema in old {
        let _ =
            diesel::sql_query(format!("DROP DATABASE IF EXISTS `{}`", schema.name)).execute(conn);
    }
}

#[cfg(feature = "mysql")]
fn create_mysql_database(server_url: &str, name: &str) -> String {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::MysqlConnection::establish(server_url).expect("DATABASE_URL reachable");
    SWEPT.call_once(|| sweep_earlier_runs(&mut conn));
    diesel::sql_query(format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .expect("create test database");
    let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
    format!("{base}/{name}")
}

#[cfg(not(feature = "mysql"))]
fn create_mysql_database(_: &str, _: &str) -> String {
    panic!("DATABASE_URL names MySQL: run the tests with --features mysql")
}

/// Starts the router with the repo's `config.toml`, `extra` TOML layered on top, on a fresh
/// database.
pub async fn spawn_app_with(extra: &str) -> TestApp {
    spawn_app_on(&fresh_store_url(), extra).await
}

/// Starts the router on the database at `store_url`.
pub async fn spawn_app_on(store_url: &str, extra: &str) -> TestApp {
    let figment = Figment::from(Toml::file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.toml"
    )))
    .merge(Toml::string(
        "[http]\nbind = \"127.0.0.1:0\"\nworkers = 2\n[cluster]\ndrain_secs = 0\n",
    ))
    .merge(Toml::string(&format!("[store]\nurl = {store_url:?}\n")))
    .merge(Toml::string(&redis_settings()))
    .merge(Toml::string(extra));
    let settings = Settings::from_figment(figment).expect("test settings are valid");
    let keys = JwtKeys::new(settings.auth.jwt_secret.expose_secret().as_bytes());
    let app = Application::build(&settings)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let internal = app
        .internal_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let broker = app.broker();
    let metrics = Some(app.metrics());
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = actix_web::rt::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        internal,
        store_url: store_url.to_owned(),
        broker,
        keys,
        client: test_client(),
        metrics,
        shutdown: Some(tx),
        stopped: Some(stopped),
        tls_dir: None,
    }
}

/// A client whose pooled connections are dropped after 2 s idle, below the router's 5 s
/// keep-alive: a request never goes out on a connection the router is closing at that very
/// moment (hyper's `IncompleteMessage`).
pub fn test_client() -> reqwest::Client {
    test_client_builder().build().expect("client")
}

/// [`test_client`]'s settings, for a test that adds its own.
pub fn test_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

impl TestApp {
    /// The in-process app's metrics (a remote one's are read over `/metrics`).
    pub fn metrics(&self) -> &actors::metrics::Metrics {
        self.metrics
            .as_deref()
            .expect("an app started in this process")
    }

    /// A handle on a router running elsewhere (the real binary) at `address`, minting tokens
    /// with `app`'s keys (both read the repo's `config.toml`).
    pub fn remote(app: &TestApp, address: &str) -> TestApp {
        TestApp {
            address: address.to_owned(),
            internal: None,
            store_url: app.store_url.clone(),
            broker: app.broker.clone(),
            keys: app.keys.clone(),
            client: test_client(),
            metrics: None,
            shutdown: None,
            stopped: None,
            tls_dir: None,
        }
    }

    /// A handle on a router process at `address` that reads the repo's `config.toml` (same
    /// JWT secret), with no in-process parts of its own.
    pub fn external(address: &str, store_url: &str) -> TestApp {
        let settings = Settings::load(Some(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.toml"
        ))))
        .expect("repo config");
        TestApp {
            address: address.to_owned(),
            internal: None,
            store_url: store_url.to_owned(),
            broker: std::sync::Arc::new(
                nft_event_router::kafka::KafkaCluster::start(
                    &nft_event_router::kafka::Brokers::Bootstrap("127.0.0.1:1".into()),
                )
                .expect("a bootstrap list"),
            ),
            keys: JwtKeys::new(settings.auth.jwt_secret.expose_secret().as_bytes()),
            client: test_client(),
            metrics: None,
            shutdown: None,
            stopped: None,
            tls_dir: None,
        }
    }

    pub fn broker(&self) -> std::sync::Arc<nft_event_router::kafka::KafkaCluster> {
        self.broker.clone()
    }

    pub fn token(&self, user: &str, role: Role) -> String {
        self.keys.mint(user, role, 600).expect("mint")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Opens `GET /api/v1/user/nft-events` as `user`; returns the raw response.
    pub async fn open_stream_response(&self, user: &str) -> reqwest::Response {
        self.client
            .get(self.url("/api/v1/user/nft-events"))
            .bearer_auth(self.token(user, Role::User))
            .send()
            .await
            .expect("request sent")
    }

    /// Opens the admin operations feed as admin `admin`, resuming after `cursor` if given.
    pub async fn open_operations(&self, admin: &str, cursor: Option<&str>) -> SseClient {
        let mut request = self
            .client
            .get(self.url("/api/v1/admin/operations"))
            .bearer_auth(self.token(admin, Role::Admin));
        if let Some(cursor) = cursor {
            request = request.header("Last-Event-ID", cursor);
        }
        let response = request.send().await.expect("request sent");
        assert_eq!(
            response.status(),
            200,
            "operations feed for {admin} accepted"
        );
        SseClient::new(response)
    }

    /// Reopens the stream as `user` with `Last-Event-ID: cursor`.
    pub async fn resume_stream(&self, user: &str, cursor: &str) -> SseClient {
        let response = self
            .client
            .get(self.url("/api/v1/user/nft-events"))
            .bearer_auth(self.token(user, Role::User))
            .header("Last-Event-ID", cursor)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200, "stream for {user} accepted");
        SseClient::new(response)
    }

    /// Publishes `n` valid events for `user`; answers their `(cursor, eventId)`.
    pub async fn publish_n(&self, user: &str, n: usize) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let shown = shown_types();
            let event_type = shown[i % shown.len()];
            let response = self.publish(&event_body(user, event_type)).await;
            assert_eq!(response.status(), 202);
            out.push(accepted(response).await);
        }
        out
    }

    /// Opens a stream as `user` and asserts it was accepted.
    pub async fn open_stream(&self, user: &str) -> SseClient {
        let response = self.open_stream_response(user).await;
        assert_eq!(response.status(), 200, "stream for {user} accepted");
        SseClient::new(response)
    }

    /// Publishes `{eventType, userId, data}` with a service token.
    pub async fn publish(&self, body: &serde_json::Value) -> reqwest::Response {
        self.publish_raw(body.to_string()).await
    }

    pub async fn publish_raw(&self, body: String) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/events"))
            .bearer_auth(self.token("test-service", Role::Service))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.get_as("/api/v1/admin/sse-stats", "ops", Role::Admin)
            .await
    }

    /// `GET path` as `user` with `role`; the JSON body.
    pub async fn get_as(&self, path: &str, user: &str, role: Role) -> serde_json::Value {
        self.client
            .get(self.url(path))
            .bearer_auth(self.token(user, role))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }

    /// `GET /readyz`: status code and body.
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    /// Polls the statistics until `pred` holds.
    pub async fn wait_for_stats(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if pred(&stats) || tokio::time::Instant::now() >= deadline {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers graceful shutdown and waits for the server to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.stopped.take() {
            Some(handle) => handle.await.expect("server task"),
            None => Ok(()),
        }
    }
}

/// A valid publish body of `event_type` for `user`.
pub fn event_body(user: &str, event_type: actors::EventType) -> serde_json::Value {
    serde_json::json!({
        "eventType": event_type.as_str(),
        "userId": user,
        "data": actors::event::sample_data(event_type),
    })
}

type ByteStream = Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// POSTs `body` as JSON to `path` with a token for `user` in `role`; answers the status and the
/// JSON body (null when there is none).
pub async fn post_json(
    app: &TestApp,
    path: &str,
    role: Role,
    user: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(app.token(user, role))
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The event types a user's own stream carries with the shipped `sse.hidden_event_types`
/// (`nft_minted` and `nft_burned` are for the admins' operations feed).
pub fn shown_types() -> Vec<actors::EventType> {
    use actors::EventType;
    EventType::ALL
        .into_iter()
        .filter(|t| !matches!(t, EventType::NftMinted | EventType::NftBurned))
        .collect()
}

/// Reads SSE frames from a streaming HTTP response, over the real socket.
pub struct SseClient {
    pub headers: reqwest::header::HeaderMap,
    body: ByteStream,
    parser: FrameParser,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        SseClient {
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            parser: FrameParser::new(),
        }
    }

    /// The next frame; `None` if the stream ended or nothing came within `wait`.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<ParsedFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self.parser.next_frame() {
                return Some(frame);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.parser.feed(&chunk),
                _ => return None,
            }
        }
    }

    pub async fn next_frame(&mut self) -> Option<ParsedFrame> {
        self.next_frame_within(WAIT).await
    }

    /// The next event with its cursor, skipping control frames (welcome, retry, heartbeat,
    /// resync).
    pub async fn next_event(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            let frame = self.next_frame().await?;
            if frame.control_type().is_some() {
                continue;
            }
            if let Some(id) = frame.id.clone() {
                return Some((id, frame.json()?));
            }
        }
    }

    /// True if no event arrives within `wait` (control frames are allowed).
    pub async fn no_event_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame_within(left).await {
                Some(f) if f.id.is_some() && f.control_type().is_none() => return false,
                Some(_) => continue,
                None => return true,
            }
        }
    }

    /// True once the server ended the stream within `wait`.
    pub async fn ended_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// `REDIS_URL`, when set, puts the counters in that Redis under a prefix of this test's own.
fn redis_settings() -> String {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => format!(
            "[redis]\nurl = {url:?}\nkey_prefix = \"test-{}:\"\n",
            uuid::Uuid::new_v4().simple()
        ),
        _ => String::new(),
    }
}

/// A user id no other test uses.
pub fn unique_user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

/// `(cursor, eventId)` of a 202 from `POST /api/v1/events`.
pub async fn accepted(response: reqwest::Response) -> (String, String) {
    let cursor = response.headers()["x-event-cursor"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let envelope: serde_json::Value = response.json().await.expect("json");
    (cursor, envelope["eventId"].as_str().expect("id").to_owned())
}

/// Runs the router binary on a loopback port and a fresh SQLite store in `dir`, with `env`
/// overrides, expecting start-up to fail; returns what it wrote to stderr.
pub fn failed_start(dir: &std::path::Path, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_nft-event-router"));
    command
        .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
        .env(
            "NFT_ROUTER__STORE__URL",
            format!("sqlite://{}", dir.join("s.db").display()),
        )
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("the binary runs");
    assert!(!out.status.success(), "the router started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
