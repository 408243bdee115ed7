//! The nginx front of docs/nginx/nft-event-router.conf, run as written (ports and certificate
//! paths substituted): TLS and HTTP/2 to the client, streams through it without buffering, and
//! the router counting the client nginx forwards (`http.trusted_proxies`). Needs Debian's
//! `nginx-light`; missing, the test fails with the command that installs it (`.ci/run` does).

use crate::helpers::{spawn_app_with, unique_user, SseClient, TestApp};
use crate::tls::{client_trusting, write_pair};
use nft_event_router::auth::Role;
use reqwest::Version;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const EXAMPLE: &str = include_str!("../../docs/nginx/nft-event-router.conf");

/// The example's site, pointed at `router` and listening on `port` with the pair in `dir`,
/// inside a main configuration that keeps every file of nginx's in `dir`.
fn configuration(dir: &Path, router: &str, port: u16) -> String {
    let substitutions = [
        ("server 127.0.0.1:8080;", format!("server {router};")),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{port} ssl http2;"),
        ),
        (
            "/etc/ssl/events.example.com.pem",
            dir.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/ssl/events.example.com.key",
            dir.join("key.pem").display().to_string(),
        ),
    ];
    let mut site = EXAMPLE.to_owned();
    for (from, to) in substitutions {
        assert!(site.contains(from), "the example still has `{from}`");
        site = site.replace(from, &to);
    }
    std::fs::write(dir.join("site.conf"), site).expect("site written");
    std::fs::create_dir_all(dir.join("tmp")).expect("temp dir");
    // One process (no master): killing it when the test ends leaves no worker behind.
    "master_process off;\ndaemon off;\npid nginx.pid;\nerror_log error.log warn;\n\
     events { worker_connections 256; }\n\
     http {\n  access_log off;\n  client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n\
       fastcgi_temp_path tmp/fastcgi;\n  uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n\
       include site.conf;\n}\n"
        .to_owned()
}

/// nginx on a free port with the example in `dir`; killed when dropped.
async fn start_nginx(dir: &Path, router: &str) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(dir.join("nginx.conf"), configuration(dir, router, port))
        .expect("nginx.conf written");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start nginx ({e}): `apt-get install -y nginx-light` (.ci/run does)")
        });
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    panic!("nginx did not listen on {port}: {log}");
}

/// A stream for `user` through `front`, as the client `forwarded_for` names itself.
async fn stream_through(front: &TestApp, user: &str, forwarded_for: &str) -> reqwest::Response {
    front
        .client
        .get(front.url("/api/v1/user/nft-events"))
        .bearer_auth(front.token(user, Role::User))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .expect("stream through nginx")
}

#[actix_web::test]
#[ignore = "needs nginx (Debian's nginx-light); .ci/run installs and runs it"]
async fn the_documented_nginx_front_serves_streams_over_h2_unbuffered_with_the_clients_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = write_pair(dir.path());
    let app = spawn_app_with(
        "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nmax_streams_per_address = 1\n",
    )
    .await;
    let router = app.address.trim_start_matches("http://").to_owned();
    let (_nginx, port) = start_nginx(dir.path(), &router).await;
    let mut front = TestApp::remote(&app, &format!("https://localhost:{port}"));
    front.client = client_trusting(&cert, &[b"h2"]);

    let health = front
        .client
        .get(front.url("/healthz"))
        .send()
        .await
        .expect("health through nginx");
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), Version::HTTP_2);

    // A stream through nginx gets the event at once: nothing buffers it on the way.
    let user = unique_user();
    let response = stream_through(&front, &user, "203.0.113.5").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    let mut stream = SseClient::new(response);
    let published = app.publish_n(&user, 1).await;
    assert_eq!(stream.next_event().await.expect("event").0, published[0].0);

    // The router counts the clients nginx forwards, one stream each here, not nginx itself.
    let other = stream_through(&front, &unique_user(), "203.0.113.6").await;
    assert_eq!(other.status(), 200, "another client");
    let again = stream_through(&front, &unique_user(), "203.0.113.5").await;
    assert_eq!(again.status(), 503, "the first client is at its cap");
}
