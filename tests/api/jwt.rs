//! Tokens as services issue them: RS256 and ES256 verified against a JWKS or PEM file (keys
//! from `tests/fixtures/jwt`), `kid` selection, `iss`/`aud`, leeway, rotation without a
//! restart, and algorithm confusion refused. Over real sockets, on the stream route.

use crate::helpers::{failed_start, spawn_app_with, TestApp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://id.example.test";
const AUDIENCE: &str = "nft-event-router";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Claims for `sub` valid for ten minutes, from [`ISSUER`] for [`AUDIENCE`].
fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "exp": now() + 600, "iss": ISSUER, "aud": AUDIENCE})
}

/// Signs `claims` with the fixture key `key` under `alg`, naming `kid`.
fn sign(alg: Algorithm, key: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key)).expect("fixture key");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).expect("RSA key"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).expect("EC key"),
        _ => EncodingKey::from_secret(&pem),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key).expect("signed")
}

/// Opens the stream with `token`: its status and, for a refusal, the message.
async fn try_stream(app: &TestApp, token: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    if status == 200 {
        return (200, String::new());
    }
    let body: serde_json::Value = response.json().await.expect("json error");
    (
        status,
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn app_with_keys(path: &Path) -> TestApp {
    spawn_app_with(&format!(
        "[auth]\njwt_public_keys = {:?}\njwt_issuer = {ISSUER:?}\njwt_audience = {AUDIENCE:?}\njwt_keys_reload_check_secs = 1\n",
        path.display().to_string()
    ))
    .await
}

#[actix_web::test]
async fn rs256_and_es256_tokens_verify_by_kid_with_issuer_and_audience_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(fixture("jwks-1.json"), &jwks).expect("copy");
    let app = app_with_keys(&jwks).await;

    let rs = sign(
        Algorithm::RS256,
        "rsa-1.key.pem",
        Some("rsa-1"),
        &claims("idp-u1"),
    );
    assert_eq!(try_stream(&app, &rs).await.0, 200, "RS256 by kid");
    let es = sign(
        Algorithm::ES256,
        "ec-1.key.pem",
        Some("ec-1"),
        &claims("idp-u2"),
    );
    assert_eq!(try_stream(&app, &es).await.0, 200, "ES256 by kid");
    // The router's own HS256 tokens keep working beside them.
    let own = app.token("idp-u3", nft_event_router::auth::Role::User);
    assert_eq!(try_stream(&app, &own).await.0, 200, "HS256");
    // Within the leeway (a few seconds of clock skew) still valid.
    let mut skewed = claims("idp-u4");
    skewed["exp"] = json!(now() - 2);
    let skewed = sign(Algorithm::RS256, "rsa-1.key.pem", Some("rsa-1"), &skewed);
    assert_eq!(try_stream(&app, &skewed).await.0, 200, "inside the leeway");

    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let mut wrong_issuer = claims("x");
    wrong_issuer["iss"] = json!("https://evil.example.test");
    cases.push((
        "wrong issuer",
        sign(
            Algorithm::RS256,
            "rsa-1.key.pem",
            Some("rsa-1"),
            &wrong_issuer,
        ),
        "wrong issuer",
    ));
    let mut no_audience = claims("x");
    no_audience.as_object_mut().expect("object").remove("aud");
    cases.push((
        "no audience",
        sign(
            Algorithm::RS256,
            "rsa-1.key.pem",
            Some("rsa-1"),
            &no_audience,
        ),
        "missing",
    ));
    let mut wrong_audience = claims("x");
    wrong_audience["aud"] = json!("another-service");
    cases.push((
        "wrong audience",
        sign(
            Algorithm::ES256,
            "ec-1.key.pem",
            Some("ec-1"),
            &wrong_audience,
        ),
        "wrong audience",
    ));
    let mut expired = claims("x");
    expired["exp"] = json!(now() - 60);
    cases.push((
        "expired",
        sign(Algorithm::RS256, "rsa-1.key.pem", Some("rsa-1"), &expired),
        "expired",
    ));
    cases.push((
        "unknown kid",
        sign(
            Algorithm::RS256,
            "rsa-2.key.pem",
            Some("rsa-2"),
            &claims("x"),
        ),
        "unknown kid",
    ));
    cases.push((
        "no kid among several keys",
        sign(Algorithm::RS256, "rsa-1.key.pem", None, &claims("x")),
        "kid required",
    ));
    cases.push((
        "signed by another key under a known kid",
        sign(
            Algorithm::RS256,
            "rsa-2.key.pem",
            Some("rsa-1"),
            &claims("x"),
        ),
        "signature",
    ));
    for (what, token, says) in cases {
        let (status, message) = try_stream(&app, &token).await;
        assert_eq!(status, 401, "{what}");
        assert!(message.contains(says), "{what}: {message}");
    }
}

#[actix_web::test]
async fn algorithm_confusion_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(fixture("jwks-1.json"), &jwks).expect("copy");
    let app = app_with_keys(&jwks).await;

    // HS256 with the RSA public key as the HMAC secret (the classic confusion attack).
    let confused = sign(
        Algorithm::HS256,
        "rsa-1.pub.pem",
        Some("rsa-1"),
        &claims("x"),
    );
    assert_eq!(
        try_stream(&app, &confused).await.0,
        401,
        "public key as HS secret"
    );
    // An EC key's kid on an RS256 token, and an RSA key's kid on an ES256 token.
    let cross = sign(
        Algorithm::RS256,
        "rsa-1.key.pem",
        Some("ec-1"),
        &claims("x"),
    );
    let (status, message) = try_stream(&app, &cross).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "token algorithm is not accepted")
    );
    let cross = sign(
        Algorithm::ES256,
        "ec-1.key.pem",
        Some("rsa-1"),
        &claims("x"),
    );
    assert_eq!(try_stream(&app, &cross).await.0, 401);
    // `alg: none`, no signature.
    use base64_like::encode_url;
    let unsigned = format!(
        "{}.{}.",
        encode_url(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
        encode_url(claims("x").to_string().as_bytes())
    );
    assert_eq!(try_stream(&app, &unsigned).await.0, 401, "alg none");
    // RS384 is not among the accepted algorithms even with a matching RSA key.
    let rs384 = sign_rs384("rsa-1.key.pem", "rsa-1", &claims("x"));
    let (status, message) = try_stream(&app, &rs384).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "token algorithm is not accepted")
    );

    // Without public keys configured, RS256 is not accepted at all.
    let plain = spawn_app_with("").await;
    let rs = sign(
        Algorithm::RS256,
        "rsa-1.key.pem",
        Some("rsa-1"),
        &claims("x"),
    );
    assert_eq!(try_stream(&plain, &rs).await.0, 401);
}

fn sign_rs384(key: &str, kid: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key)).expect("fixture key");
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("key"),
    )
    .expect("signed")
}

/// Unpadded base64url, for hand-made token parts.
mod base64_like {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode_url(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[actix_web::test]
async fn a_rotated_key_set_is_used_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(fixture("jwks-1.json"), &jwks).expect("copy");
    let app = app_with_keys(&jwks).await;
    let old = sign(
        Algorithm::RS256,
        "rsa-1.key.pem",
        Some("rsa-1"),
        &claims("rot-1"),
    );
    let new = sign(
        Algorithm::RS256,
        "rsa-2.key.pem",
        Some("rsa-2"),
        &claims("rot-2"),
    );
    assert_eq!(try_stream(&app, &old).await.0, 200);
    assert_eq!(try_stream(&app, &new).await.0, 401);

    // Some file systems keep whole-second times: make sure the change is seen as one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::copy(fixture("jwks-2.json"), &jwks).expect("rotate");
    let mut rotated = false;
    for _ in 0..50 {
        if try_stream(&app, &new).await.0 == 200 {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rotated, "the rotated-in key was never accepted");
    assert_eq!(try_stream(&app, &old).await.0, 401, "the rotated-out key");
    let es = sign(
        Algorithm::ES256,
        "ec-1.key.pem",
        Some("ec-1"),
        &claims("rot-3"),
    );
    assert_eq!(
        try_stream(&app, &es).await.0,
        200,
        "the key kept across rotation"
    );

    // A broken file keeps the loaded keys.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&jwks, "{ not json").expect("break");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(try_stream(&app, &new).await.0, 200, "after a broken reload");
}

#[actix_web::test]
async fn a_pem_public_key_verifies_tokens_without_a_kid_and_bad_files_fail_start_up() {
    let app = app_with_keys(&fixture("rsa-1.pub.pem")).await;
    let rs = sign(Algorithm::RS256, "rsa-1.key.pem", None, &claims("pem-u1"));
    assert_eq!(try_stream(&app, &rs).await.0, 200);
    let es = sign(Algorithm::ES256, "ec-1.key.pem", None, &claims("pem-u2"));
    assert_eq!(
        try_stream(&app, &es).await.0,
        401,
        "an ES256 token against an RSA key"
    );

    let dir = tempfile::tempdir().expect("dir");
    let secret_jwks = dir.path().join("oct.json");
    std::fs::write(
        &secret_jwks,
        r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}"#,
    )
    .expect("write");
    for (path, says) in [
        (dir.path().join("missing.json"), "missing.json"),
        (secret_jwks, "symmetric"),
    ] {
        let stderr = failed_start(
            dir.path(),
            &[("NFT_ROUTER__AUTH__JWT_PUBLIC_KEYS", path.as_os_str())],
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("JWT public keys") && l.contains(says)),
            "{stderr}"
        );
    }
}
