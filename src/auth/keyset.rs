//! Public keys for the RS256 and ES256 tokens other services issue: one key from a PEM file,
//! or a JWKS file whose keys are picked by the token's `kid`. The file is reloaded without a
//! restart ([`crate::reload`]), so an identity provider's key rotation reaches the router by
//! replacing the file.
//!
//! Each key verifies only its own algorithm: an RSA key only RS256, a P-256 key only ES256,
//! whatever a token's header claims. A symmetric key in the file is refused, so a public key
//! can never become an HMAC secret (algorithm confusion).

use crate::reload::{FileStamps, Reloadable};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A keys file that cannot be used, naming it.
#[derive(Debug, thiserror::Error)]
#[error("JWT public keys {path}: {why}")]
pub struct KeysError {
    path: PathBuf,
    why: String,
}

/// One verification key and the one algorithm it verifies.
#[derive(Clone)]
struct VerifyKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

/// What a keys file holds.
#[derive(Clone, Default)]
struct KeySet {
    /// A JWKS file's keys, by `kid`.
    by_kid: HashMap<String, VerifyKey>,
    /// A PEM file's one key, for a token with any `kid` or none.
    only: Option<VerifyKey>,
}

/// Why a token's key was not found; each is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKey {
    /// The token names no `kid` and the file holds several keys.
    KidRequired,
    /// No key has the token's `kid`.
    UnknownKid,
    /// The key exists but verifies another algorithm than the token's header names.
    WrongAlgorithm,
}

/// The reloadable public keys.
pub struct PublicKeys {
    path: PathBuf,
    stamps: FileStamps,
    current: RwLock<Arc<KeySet>>,
}

impl PublicKeys {
    /// Loads the file once; a file that is missing or holds no usable key fails here.
    pub fn open(path: &Path) -> Result<Arc<Self>, KeysError> {
        let stamps = FileStamps::new(&[path]);
        let set = load(path)?;
        Ok(Arc::new(PublicKeys {
            path: path.to_owned(),
            stamps,
            current: RwLock::new(Arc::new(set)),
        }))
    }

    /// The key for a token whose header names `kid` and `algorithm`.
    pub fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<DecodingKey, NoKey> {
        let set = self.current.read().map(|s| s.clone()).unwrap_or_default();
        let key = match (kid, &set.only) {
            (_, Some(only)) => only.clone(),
            (Some(kid), None) => set.by_kid.get(kid).cloned().ok_or(NoKey::UnknownKid)?,
            (None, None) if set.by_kid.len() == 1 => set
                .by_kid
                .values()
                .next()
                .cloned()
                .ok_or(NoKey::UnknownKid)?,
            (None, None) => return Err(NoKey::KidRequired),
        };
        if key.algorithm != algorithm {
            return Err(NoKey::WrongAlgorithm);
        }
        Ok(key.key)
    }
}

impl Reloadable for PublicKeys {
    fn describe(&self) -> String {
        format!("JWT public keys {}", self.path.display())
    }

    fn stamps(&self) -> &FileStamps {
        &self.stamps
    }

    fn reload(&self) -> Result<(), String> {
        self.stamps.mark();
        let set = load(&self.path).map_err(|e| e.why)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(set);
        }
        Ok(())
    }
}

fn load(path: &Path) -> Result<KeySet, KeysError> {
    let error = |why: String| KeysError {
        path: path.to_owned(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_json {
        let set: JwkSet =
            serde_json::from_slice(&bytes).map_err(|e| error(format!("not a JWKS: {e}")))?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| error("a key has no `kid`".to_owned()))?;
            let algorithm = jwk_algorithm(jwk).map_err(|why| error(format!("key {kid}: {why}")))?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| error(format!("key {kid}: {e}")))?;
            by_kid.insert(kid, VerifyKey { key, algorithm });
        }
        if by_kid.is_empty() {
            return Err(error("holds no key".to_owned()));
        }
        return Ok(KeySet { by_kid, only: None });
    }
    let only = if let Ok(key) = DecodingKey::from_rsa_pem(&bytes) {
        VerifyKey {
            key,
            algorithm: Algorithm::RS256,
        }
    } else if let Ok(key) = DecodingKey::from_ec_pem(&bytes) {
        VerifyKey {
            key,
            algorithm: Algorithm::ES256,
        }
    } else {
        return Err(error(
            "neither a JWKS nor a PEM RSA or P-256 public key".to_owned(),
        ));
    };
    Ok(KeySet {
        by_kid: HashMap::new(),
        only: Some(only),
    })
}

/// The one algorithm a JWK verifies: RS256 for RSA, ES256 for P-256; an `alg` the key states
/// must agree.
fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Algorithm, String> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::EllipticCurve(_) => return Err("only the P-256 curve".to_owned()),
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric key does not belong in a public key file".to_owned())
        }
        AlgorithmParameters::OctetKeyPair(_) => return Err("only RSA and P-256 keys".to_owned()),
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Ok(by_type),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Ok(by_type),
        Some(other) => Err(format!("`alg` {other:?} is not accepted for this key")),
    }
}
