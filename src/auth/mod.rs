//! JWT authentication: minting development tokens (HS256) and turning a request's token into
//! a [`Principal`]. Besides the router's own HS256 secret, RS256 and ES256 tokens that other
//! services issue verify against public keys ([`keyset`]), with `iss` and `aud` checked when
//! configured. Browsers' `EventSource` cannot set headers, so the stream also accepts the
//! token as `?access_token=`.

pub mod keyset;

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use keyset::{NoKey, PublicKeys};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a token holder may do.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An end user: their own streams and flows (also a token without a `role` claim, as an
    /// identity provider issues them).
    #[default]
    User,
    /// An operator: the operations feed, statistics, badges.
    Admin,
    /// Another backend service: publishes events.
    Service,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub role: Role,
    pub exp: u64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
    /// The token's `exp`: a stream it opened ends then.
    pub expires_at: SystemTime,
}

impl Principal {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// Signing and verification keys, built once from the configured secret and, when
/// configured, an identity provider's public keys.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    hs256: Validation,
    /// RS256/ES256 keys; `None`: only HS256 tokens verify.
    public: Option<Arc<PublicKeys>>,
    rs256: Validation,
    es256: Validation,
    /// Whether `?access_token=` is accepted (`auth.query_tokens`).
    query_tokens: bool,
}

/// The checks of one algorithm: `exp` and `sub` always, `iss` and `aud` when given (and then
/// required: a token without them is refused).
fn validation(algorithm: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
    let mut required = vec!["exp", "sub"];
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        // Without a configured audience there is nothing to match an `aud` against.
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;

impl JwtKeys {
    /// HS256 with `secret` only.
    pub fn new(secret: &[u8]) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            hs256: validation(Algorithm::HS256, None, None),
            public: None,
            rs256: validation(Algorithm::RS256, None, None),
            es256: validation(Algorithm::ES256, None, None),
            query_tokens: true,
        }
    }

    /// Whether `?access_token=` is accepted at all (`auth.query_tokens`).
    pub fn with_query_tokens(mut self, accepted: bool) -> Self {
        self.query_tokens = accepted;
        self
    }

    /// Also accepts RS256 and ES256 tokens signed by `public`'s keys, whose `iss` and `aud`
    /// must be `issuer` and `audience` when given. The router's own HS256 tokens (development
    /// tokens) carry neither and are not held to them.
    pub fn with_public_keys(
        mut self,
        public: Arc<PublicKeys>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        self.public = Some(public);
        self.rs256 = validation(Algorithm::RS256, issuer, audience);
        self.es256 = validation(Algorithm::ES256, issuer, audience);
        self
    }

    /// The key and checks for a token, by its header: the secret for HS256, a public key of
    /// the same algorithm for RS256/ES256, nothing for any other algorithm.
    fn key_for(&self, token: &str) -> Result<(DecodingKey, &Validation), ApiError> {
        let header = decode_header(token)
            .map_err(|_| ApiError::Unauthorized("token is invalid".to_owned()))?;
        let refused = |why: &str| ApiError::Unauthorized(why.to_owned());
        let validation = match header.alg {
            Algorithm::HS256 => return Ok((self.decoding.clone(), &self.hs256)),
            Algorithm::RS256 => &self.rs256,
            Algorithm::ES256 => &self.es256,
            _ => return Err(refused("token algorithm is not accepted")),
        };
        let public = self
            .public
            .as_ref()
            .ok_or_else(|| refused("token algorithm is not accepted"))?;
        let key = public
            .find(header.kid.as_deref(), header.alg)
            .map_err(|e| match e {
                NoKey::KidRequired => refused("token is invalid: kid required"),
                NoKey::UnknownKid => refused("token is invalid: unknown kid"),
                NoKey::WrongAlgorithm => refused("token algorithm is not accepted"),
            })?;
        Ok((key, validation))
    }

    /// A signed token for `user_id` with `role`, valid for `ttl_secs`.
    pub fn mint(&self, user_id: &str, role: Role, ttl_secs: u64) -> Result<String, ApiError> {
        self.mint_until(user_id, role, unix_now() + ttl_secs)
    }

    /// A signed token for `user_id` with `role` that expires at `exp` (Unix seconds).
    pub fn mint_until(&self, user_id: &str, role: Role, exp: u64) -> Result<String, ApiError> {
        let claims = Claims {
            sub: user_id.to_owned(),
            role,
            exp,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token failed: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let (key, validation) = self.key_for(token)?;
        let data = decode::<Claims>(token, &key, validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidIssuer => "token is invalid: wrong issuer",
                ErrorKind::InvalidAudience => "token is invalid: wrong audience",
                ErrorKind::MissingRequiredClaim(_) => {
                    "token is invalid: a required claim is missing"
                }
                _ => "token is invalid",
            };
            ApiError::Unauthorized(why.to_owned())
        })?;
        // The subject becomes a user id (stream key, log field, audit actor): held to the
        // same rule as a user id in a request.
        if let Err(e) = actors::event::check_id("sub", &data.claims.sub) {
            return Err(ApiError::Unauthorized(format!(
                "token is invalid: {}",
                e.message
            )));
        }
        Ok(Principal {
            user_id: data.claims.sub,
            role: data.claims.role,
            expires_at: UNIX_EPOCH + std::time::Duration::from_secs(data.claims.exp),
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The cookie a browser's streams authenticate with (`POST /api/v1/user/stream-cookie` sets
/// it), so that no token travels in a URL.
pub const STREAM_COOKIE: &str = "nftr_stream";

/// What a request may carry a token in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a [u8]>,
    /// The `Cookie` header; read only where the route accepts the stream cookie.
    pub cookie: Option<&'a [u8]>,
    pub query: &'a str,
}

/// The token of a request: the `Authorization` header; else, on a stream route
/// (`stream_route`), the stream cookie; else `?access_token=` in the query string, unless
/// `auth.query_tokens` turned that off. A present header that is not a bearer token wins over
/// the rest (no token).
fn token_of(
    keys: &JwtKeys,
    credentials: Credentials<'_>,
    stream_route: bool,
) -> Result<Option<String>, ApiError> {
    if let Some(value) = credentials.authorization {
        let bearer = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        return Ok(bearer);
    }
    if stream_route {
        if let Some(token) = credentials.cookie.and_then(stream_cookie) {
            return Ok(Some(token));
        }
    }
    #[derive(Deserialize)]
    struct Query {
        access_token: Option<String>,
    }
    let query = web::Query::<Query>::from_query(credentials.query)
        .ok()
        .and_then(|q| q.into_inner().access_token);
    match query {
        Some(_) if !keys.query_tokens => Err(ApiError::Unauthorized(
            "tokens in the URL are turned off (auth.query_tokens = false): send the \
             Authorization header, or use the stream cookie"
                .to_owned(),
        )),
        other => Ok(other),
    }
}

/// The stream cookie's value in a `Cookie` header.
fn stream_cookie(header: &[u8]) -> Option<String> {
    std::str::from_utf8(header)
        .ok()?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STREAM_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// Who the request's token says it comes from: 401 without a token or with a bad one.
/// `stream_route`: the route serves a stream, which also accepts the stream cookie (a stream
/// only reads, so a cookie sent along cannot make it do anything for another site).
pub fn authenticate(
    keys: &JwtKeys,
    credentials: Credentials<'_>,
    stream_route: bool,
) -> Result<Principal, ApiError> {
    match token_of(keys, credentials, stream_route)? {
        None => Err(ApiError::Unauthorized(
            "Authentication required: send a bearer token".to_owned(),
        )),
        Some(token) => keys.verify(&token),
    }
}

/// The principal of a stream route: as [`Principal`], plus the stream cookie.
pub struct StreamPrincipal(pub Principal);

fn from_request(req: &HttpRequest, stream_route: bool) -> Result<Principal, ApiError> {
    let keys = req
        .app_data::<web::Data<JwtKeys>>()
        .ok_or_else(|| ApiError::Internal("JWT keys are not configured".to_owned()))?;
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    // HTTP/2 may split the cookies over several headers.
    let cookies: Vec<&[u8]> = req
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .map(|v| v.as_bytes())
        .collect();
    let joined = (cookies.len() > 1).then(|| cookies.join(&b"; "[..]));
    let credentials = Credentials {
        authorization,
        cookie: joined.as_deref().or(cookies.first().copied()),
        query: req.query_string(),
    };
    authenticate(keys, credentials, stream_route)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(from_request(req, false))
    }
}

impl FromRequest for StreamPrincipal {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(from_request(req, true).map(StreamPrincipal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_foreign_ones_do_not() {
        let keys = JwtKeys::new(b"0123456789abcdef0123");
        let token = keys.mint("u1", Role::Admin, 60).expect("mint");
        let p = keys.verify(&token).expect("valid");
        assert_eq!((p.user_id.as_str(), p.role), ("u1", Role::Admin));

        let other = JwtKeys::new(b"another-secret-of-16+");
        assert!(matches!(
            other.verify(&token),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            keys.verify("garbage"),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn unsigned_and_expired_tokens_are_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123");
        // `alg: none`, no signature: {"alg":"none","typ":"JWT"}.{"sub":"u1","role":"admin",...}
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let claims = "eyJzdWIiOiJ1MSIsInJvbGUiOiJhZG1pbiIsImV4cCI6NDEwMjQ0NDgwMH0";
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            assert!(
                matches!(keys.verify(&token), Err(ApiError::Unauthorized(_))),
                "{token}"
            );
        }
        let expired = Claims {
            sub: "u1".into(),
            role: Role::User,
            exp: unix_now() - 3600,
        };
        let token = encode(&Header::new(Algorithm::HS256), &expired, &keys.encoding).expect("sign");
        match keys.verify(&token) {
            Err(ApiError::Unauthorized(why)) => assert_eq!(why, "token expired"),
            other => panic!("an expired token was not refused: {other:?}"),
        }
    }

    #[test]
    fn subjects_with_control_or_format_characters_are_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123");
        for sub in ["", "a\u{202e}b", "u\u{200b}1", "u\n1", "u\u{7f}"] {
            let token = keys.mint(sub, Role::User, 60).expect("mint");
            match keys.verify(&token) {
                Err(ApiError::Unauthorized(why)) => {
                    assert!(why.starts_with("token is invalid: sub"), "{why}")
                }
                other => panic!("{sub:?} was not refused: {other:?}"),
            }
        }
    }
}
