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
