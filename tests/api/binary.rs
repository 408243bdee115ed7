//! The compiled binary, as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nft-event-router");

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn a_malformed_key_fails_start_up_with_one_line_naming_it() {
    let output = command()
        .env("NFT_ROUTER__SSE__MAX_CONNECTIONS_PER_USER", "many")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("sse.max_connections_per_user"), "{stderr}");

    let output = command()
        .args(["--config", "/nonexistent.toml"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent.toml"));
}

#[test]
fn the_token_subcommand_prints_a_verifiable_jwt() {
    let output = command()
        .args([
            "token", "--user", "alice", "--role", "admin", "--ttl", "120",
        ])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let keys = nft_event_router::auth::JwtKeys::new(b"dev-only-secret-change-me-in-production");
    let principal = keys.verify(&token).expect("valid token");
    assert_eq!(principal.user_id, "alice");
    assert_eq!(principal.role, nft_event_router::auth::Role::Admin);
}

#[test]
fn sigterm_stops_the_router_cleanly() {
    let mut child = command()
        .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
        .env("NFT_ROUTER__HTTP__WORKERS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    let mut banner = BufReader::new(stdout);
    banner.read_line(&mut first).expect("banner");
    assert!(first.contains("http://127.0.0.1:"), "{first}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut banner, &mut rest);
            assert!(status.success(), "exit status {status}: {rest}");
            break;
        }
        assert!(Instant::now() < deadline, "router did not stop within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn with_reuse_port_two_routers_share_one_port() {
    use nft_event_router::startup::listen;
    let first = listen("127.0.0.1:0".parse().expect("address"), true).expect("first");
    let addr = first.local_addr().expect("addr");
    let second = listen(addr, true).expect("a second listener on the same port");
    assert_eq!(second.local_addr().expect("addr"), addr);
    drop(second);
    assert!(
        listen(addr, false).is_err(),
        "without reuse_port the port stays taken"
    );
}

/// One HTTP/1.1 request on a fresh connection; the connection and the response head's status
/// (0 when the router closed or refused the connection without answering).
fn request(addr: &str, head: &str) -> (std::net::TcpStream, u16) {
    use std::io::{Read, Write};
    let mut io = std::net::TcpStream::connect(addr).expect("connect");
    io.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    io.write_all(head.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match io.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    let status = String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (io, status)
}

/// The router under a small open-file limit (`ulimit -n 512`, 192 kept in reserve beyond what
/// it holds at start-up): streams fill the cap, the next one gets 503, and health, readiness
/// and publishing still answer, where without the cap the process would run out of
/// descriptors and answer nothing.
#[test]
fn under_a_small_open_file_limit_the_stream_cap_keeps_the_router_answering() {
    use nft_event_router::auth::{JwtKeys, Role};
    let store = std::env::temp_dir().join(format!("cap-{}.db", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new("sh")
        .args(["-c", &format!("ulimit -n 512 && exec {BIN}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
        .env("NFT_ROUTER__HTTP__WORKERS", "1")
        .env("NFT_ROUTER__STORE__URL", store.to_string_lossy().as_ref())
        .env("NFT_ROUTER__LIMITS__RESERVED_DESCRIPTORS", "192")
        .env("NFT_ROUTER__CLUSTER__DRAIN_SECS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(store.with_extension("log")).expect("log file"),
        ))
        .spawn()
        .expect("starts");
    let mut banner = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut banner)
        .expect("banner");
    let addr = banner
        .split("http://")
        .nth(1)
        .map(|s| s.trim().to_owned())
        .expect("an address in the banner");
    let keys = JwtKeys::new(b"dev-only-secret-change-me-in-production");
    let stream_head = |user: &str| {
        let token = keys.mint(user, Role::User, 600).expect("mint");
        format!(
            "GET /api/v1/user/nft-events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
    };

    let mut streams = Vec::new();
    let refused = loop {
        let (io, status) = request(&addr, &stream_head(&format!("cap-{}", streams.len())));
        if status != 200 {
            break status;
        }
        streams.push(io);
        assert!(streams.len() <= 512, "no cap below the open-file limit");
    };
    assert_eq!(
        refused, 503,
        "the stream past the cap is refused, not dropped"
    );
    // The cap is what is left after the start-up descriptors (about 170 with the embedded
    // Kafka cluster) and the reserve.
    assert!(
        (50..=384).contains(&streams.len()),
        "{} streams under the cap",
        streams.len()
    );

    let plain =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(request(&addr, &plain("/healthz")).1, 200);
    assert_eq!(request(&addr, &plain("/readyz")).1, 200);
    let token = keys.mint("svc", Role::Service, 600).expect("mint");
    let body = serde_json::json!({
        "eventType": "badge_earned",
        "userId": "cap-0",
        "data": actors::event::sample_data(actors::EventType::BadgeEarned),
    })
    .to_string();
    let publish = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(request(&addr, &publish).1, 202);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    drop(streams);
    let _ = std::fs::remove_file(&store);
    let _ = std::fs::remove_file(store.with_extension("log"));
}
