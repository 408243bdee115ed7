//! HS256 tokens as the router verifies them: claims `sub`, `role`, `exp`.

use anyhow::Context;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    role: &'a str,
    exp: u64,
}

/// Signs tokens with the router's secret, all expiring at the same instant.
pub struct TokenMinter {
    key: EncodingKey,
    exp: u64,
}

impl TokenMinter {
    /// Tokens valid for `ttl_secs` from now.
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        TokenMinter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            exp: crate::probe::unix_secs() + ttl_secs,
        }
    }

    /// A token for user `sub` with `role` (`user` or `service`).
    pub fn mint(&self, sub: &str, role: &str) -> anyhow::Result<String> {
        let claims = Claims {
            sub,
            role,
            exp: self.exp,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .with_context(|| format!("signing a {role} token for {sub}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[test]
    fn a_minted_token_verifies_with_the_same_secret() {
        let minter = TokenMinter::new("a-secret-of-enough-length", 60);
        let token = minter.mint("u1", "user").expect("mint");
        let decoded = decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"a-secret-of-enough-length"),
            &Validation::new(Algorithm::HS256),
        )
        .expect("valid");
        assert_eq!(decoded.claims["sub"], "u1");
        assert_eq!(decoded.claims["role"], "user");
    }
}
