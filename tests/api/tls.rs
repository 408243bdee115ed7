//! TLS on the public listener (HTTP/2 and HTTP/1.1 by ALPN), h2c on the plain one, the
//! certificate reloaded without a restart, and failed handshakes counted, all over real
//! sockets with a rustls client.

use crate::helpers::{failed_start, spawn_app_with, test_client_builder, SseClient, TestApp};
use nft_event_router::auth::Role;
use reqwest::Version;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Writes a fresh self-signed pair for localhost into `dir`; returns the certificate's PEM.
pub(crate) fn write_pair(dir: &Path) -> String {
    let (cert, key) = nft_event_router::tls::self_signed(vec!["localhost".into()]).expect("pair");
    std::fs::write(dir.join("cert.pem"), &cert).expect("cert written");
    std::fs::write(dir.join("key.pem"), key).expect("key written");
    cert
}

/// A client that trusts only `cert_pem` and offers `alpn`.
#[allow(deprecated)] // the ring provider, as the router uses (src/tls.rs)
pub(crate) fn client_trusting(cert_pem: &str, alpn: &[&[u8]]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("a root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let builder = test_client_builder().tls_backend_preconfigured(config);
    let builder = if alpn == [b"http/1.1".as_slice()] {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().expect("client")
}

/// An app serving TLS from `dir`, reached at `https://localhost:PORT` through a client that
/// trusts the pair in `dir`.
pub(crate) async fn spawn_tls_app(dir: &Path, cert_pem: &str, alpn: &[&[u8]]) -> TestApp {
    tls_app_in(
        dir,
        cert_pem,
        alpn,
        "[sse]\nmax_connections_per_user = 20\n",
    )
    .await
}

/// An app serving TLS with a pair of its own and `extra` configuration (no other change), at
/// `https://localhost:PORT` through a client offering `alpn`.
pub(crate) async fn spawn_tls_app_with(extra: &str, alpn: &[&[u8]]) -> TestApp {
    let dir = temp_dir();
    let cert = write_pair(dir.path());
    let mut app = tls_app_in(dir.path(), &cert, alpn, extra).await;
    app.tls_dir = Some(Arc::new(dir));
    app
}

/// An app serving the pair in `dir` with `extra` configuration.
async fn tls_app_in(dir: &Path, cert_pem: &str, alpn: &[&[u8]], extra: &str) -> TestApp {
    let extra = format!(
        "{extra}\n[http.tls]\ncert = {:?}\nkey = {:?}\nreload_check_secs = 1\n",
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string(),
    );
    let mut app = spawn_app_with(&extra).await;
    app.address = app.address.replace("http://127.0.0.1", "https://localhost");
    app.client = client_trusting(cert_pem, alpn);
    app
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[actix_web::test]
async fn over_tls_h2_many_streams_share_one_connection_and_all_get_the_event() {
    let dir = temp_dir();
    let cert = write_pair(dir.path());
    let app = spawn_tls_app(dir.path(), &cert, &[b"h2", b"http/1.1"]).await;

    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), Version::HTTP_2, "ALPN chose h2");

    // Ten streams of one user on one client: one h2 connection, ten streams on it.
    let mut streams = Vec::new();
    for _ in 0..10 {
        let response = app.open_stream_response("tls-u1").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), Version::HTTP_2);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "the stream's headers over h2"
        );
        streams.push(SseClient::new(response));
    }
    let published = app.publish_n("tls-u1", 2).await;
    for (i, stream) in streams.iter_mut().enumerate() {
        for (cursor, id) in &published {
            let (got_cursor, envelope) = stream.next_event().await.expect("an event");
            assert_eq!(&got_cursor, cursor, "stream {i}");
            assert_eq!(
                envelope["eventId"].as_str(),
                Some(id.as_str()),
                "stream {i}"
            );
        }
    }

    // Resume over h2 with Last-Event-ID: only what came after.
    let later = app.publish_n("tls-u1", 1).await;
    let resumed = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .bearer_auth(app.token("tls-u1", Role::User))
        .header("Last-Event-ID", &published[1].0)
        .send()
        .await
        .expect("resume");
    let mut resumed = SseClient::new(resumed);
    assert_eq!(resumed.next_event().await.expect("resumed").0, later[0].0);

    // Over TLS the stream cookie is `Secure`, and opens the stream over h2.
    let set = app
        .client
        .post(app.url("/api/v1/user/stream-cookie"))
        .bearer_auth(app.token("tls-u1", Role::User))
        .send()
        .await
        .expect("cookie");
    assert_eq!(set.status(), 204);
    let set = set.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(set.contains("; Secure"), "{set}");
    let pair = set.split(';').next().expect("pair");
    let by_cookie = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .header("Cookie", pair)
        .send()
        .await
        .expect("stream by cookie");
    assert_eq!(by_cookie.status(), 200);
    assert_eq!(by_cookie.version(), Version::HTTP_2);
}

#[actix_web::test]
async fn over_tls_http1_streams_work_and_h2c_works_in_the_clear() {
    let dir = temp_dir();
    let cert = write_pair(dir.path());
    let app = spawn_tls_app(dir.path(), &cert, &[b"http/1.1"]).await;
    let response = app.open_stream_response("tls-h1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_11);
    let mut stream = SseClient::new(response);
    let published = app.publish_n("tls-h1", 1).await;
    assert_eq!(stream.next_event().await.expect("event").0, published[0].0);

    // A plain listener answers HTTP/2 with prior knowledge, streams included.
    let mut plain = spawn_app_with("").await;
    plain.client = test_client_builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = plain.open_stream_response("h2c-u1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    let mut stream = SseClient::new(response);
    let published = plain.publish_n("h2c-u1", 1).await;
    assert_eq!(stream.next_event().await.expect("event").0, published[0].0);
    // And plain HTTP/1.1 as before.
    let h1 = reqwest::Client::new()
        .get(plain.url("/healthz"))
        .send()
        .await
        .expect("h1");
    assert_eq!(h1.version(), Version::HTTP_11);
}

#[actix_web::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_open_streams_stay() {
    let dir = temp_dir();
    let first = write_pair(dir.path());
    let app = spawn_tls_app(dir.path(), &first, &[b"h2", b"http/1.1"]).await;
    let mut open = SseClient::new(app.open_stream_response("tls-reload").await);

    let second = write_pair(dir.path());
    let trusting_second = client_trusting(&second, &[b"h2", b"http/1.1"]);
    let mut served = false;
    for _ in 0..50 {
        if trusting_second
            .get(app.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "the renewed certificate was never served");
    // A client that trusts only the old certificate cannot make a new connection.
    let trusting_first = client_trusting(&first, &[b"h2", b"http/1.1"]);
    assert!(trusting_first
        .get(app.url("/healthz"))
        .send()
        .await
        .is_err());

    // The stream opened on the old certificate still delivers.
    let published = app.publish_n("tls-reload", 1).await;
    assert_eq!(open.next_event().await.expect("event").0, published[0].0);
}

#[actix_web::test]
async fn a_failed_handshake_is_counted_and_disturbs_no_one() {
    let dir = temp_dir();
    let cert = write_pair(dir.path());
    let app = spawn_tls_app(dir.path(), &cert, &[b"h2", b"http/1.1"]).await;
    let mut stream = SseClient::new(app.open_stream_response("tls-bad").await);

    let port = app.address.rsplit(':').next().expect("a port").to_owned();
    for _ in 0..3 {
        let mut raw = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .expect("connect");
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut rest),
        )
        .await;
    }
    // A client that trusts nothing the router presents.
    let other = temp_dir();
    let stranger = write_pair(other.path());
    assert!(client_trusting(&stranger, &[b"h2"])
        .get(app.url("/healthz"))
        .send()
        .await
        .is_err());

    let mut counted = 0;
    for _ in 0..50 {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        counted = text
            .lines()
            .find(|l| l.starts_with("nft_router_tls_handshake_failures_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0);
        if counted >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counted, 4,
        "three plain-text requests and one refused certificate"
    );

    let published = app.publish_n("tls-bad", 1).await;
    assert_eq!(stream.next_event().await.expect("event").0, published[0].0);
}

#[test]
fn a_bad_certificate_or_key_fails_start_up_with_one_line_naming_it() {
    let dir = temp_dir();
    write_pair(dir.path());
    let missing: PathBuf = dir.path().join("nope.pem");
    let exe = env!("CARGO_BIN_EXE_nft-event-router");
    for (cert, key, named) in [
        (missing.clone(), dir.path().join("key.pem"), "nope.pem"),
        (
            dir.path().join("cert.pem"),
            dir.path().join("cert.pem"),
            "TLS key",
        ),
    ] {
        let stderr = failed_start(
            dir.path(),
            &[
                ("NFT_ROUTER__HTTP__TLS__CERT", cert.as_os_str()),
                ("NFT_ROUTER__HTTP__TLS__KEY", key.as_os_str()),
            ],
        );
        let line = stderr
            .lines()
            .find(|l| l.contains(named))
            .unwrap_or_else(|| panic!("no line names {named}: {stderr}"));
        assert!(line.contains("TLS"), "{line}");
    }
    // One of the two without the other is a configuration error.
    let out = std::process::Command::new(exe)
        .env("NFT_ROUTER__HTTP__TLS__CERT", dir.path().join("cert.pem"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.tls.key"));
}

#[test]
fn dev_cert_writes_a_pair_the_router_serves() {
    let dir = temp_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nft-event-router"))
        .args(["dev-cert", "--out"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[http.tls]"), "{stdout}");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    nft_event_router::tls::CertificateStore::open(&cert, &key).expect("the pair loads");
}

/// A stream opened with a token that expires in `ttl` seconds ends then, with a
/// `token_expired` frame; a reconnect with a fresh token resumes from the last cursor and
/// misses nothing.
async fn a_stream_ends_at_its_tokens_expiry(app: &TestApp, user: &str) {
    let token = app.keys.mint(user, Role::User, 2).expect("mint");
    let response = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut stream = SseClient::new(response);
    let first = app.publish_n(user, 1).await;
    assert_eq!(stream.next_event().await.expect("event").0, first[0].0);
    let ended = loop {
        let frame = stream
            .next_frame_within(Duration::from_secs(6))
            .await
            .expect("a frame before the stream ends");
        if frame.control_type().as_deref() == Some("token_expired") {
            break frame;
        }
        assert_eq!(frame.id, None, "no event was published: {frame:?}");
    };
    assert_eq!(ended.id, None, "the final frame carries no cursor");
    assert!(
        stream
            .next_frame_within(Duration::from_secs(3))
            .await
            .is_none(),
        "the stream ended after its token_expired frame"
    );
    // Published while the client had no stream: the resume with a fresh token delivers it.
    let missed = app.publish_n(user, 1).await;
    let resumed = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .bearer_auth(app.token(user, Role::User))
        .header("Last-Event-ID", &first[0].0)
        .send()
        .await
        .expect("resume");
    let mut resumed = SseClient::new(resumed);
    assert_eq!(
        resumed.next_event().await.expect("missed event").0,
        missed[0].0
    );
}

#[actix_web::test]
async fn streams_end_when_their_token_expires_on_every_path() {
    // The lean HTTP/1.1 path.
    let plain = spawn_app_with("").await;
    a_stream_ends_at_its_tokens_expiry(&plain, "exp-plain").await;
    // actix-web's HTTP/2 path, over TLS.
    let dir = temp_dir();
    let cert = write_pair(dir.path());
    let tls = spawn_tls_app(dir.path(), &cert, &[b"h2"]).await;
    a_stream_ends_at_its_tokens_expiry(&tls, "exp-h2").await;
    let metrics = tls
        .client
        .get(tls.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("nft_router_sse_sessions_closed_total{")
                && l.contains("reason=\"token_expired\"")
                && l.ends_with(" 1")),
        "{text}"
    );
}
