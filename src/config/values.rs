//! How single configuration values are read: durations from whole seconds or milliseconds,
//! numbers with a floor, fractions, secrets with a minimum length, the instance id. Each
//! refuses a bad value with a message that figment attaches to the key, so a bad value fails
//! start-up once, where it is read, and the rest of the router holds only checked types.

use secrecy::{ExposeSecret, SecretString};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Any whole number of seconds (0 allowed).
pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// At least `MIN` whole seconds.
pub fn secs_at_least<'de, D: Deserializer<'de>, const MIN: u64>(
    d: D,
) -> Result<Duration, D::Error> {
    at_least::<D, MIN>(d).map(Duration::from_secs)
}

/// Any whole number of milliseconds (0 allowed).
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// At least `MIN` milliseconds.
pub fn millis_at_least<'de, D: Deserializer<'de>, const MIN: u64>(
    d: D,
) -> Result<Duration, D::Error> {
    at_least::<D, MIN>(d).map(Duration::from_millis)
}

/// Whole days, as a duration (0: nothing is kept past the next pruning pass).
pub fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let days = u64::deserialize(d)?;
    days.checked_mul(86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| D::Error::custom("is too large"))
}

/// A count of at least `MIN`.
pub fn count_at_least<'de, D: Deserializer<'de>, const MIN: u64>(d: D) -> Result<usize, D::Error> {
    let n = at_least::<D, MIN>(d)?;
    usize::try_from(n).map_err(|_| D::Error::custom("is too large"))
}

fn at_least<'de, D: Deserializer<'de>, const MIN: u64>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n < MIN {
        return Err(D::Error::custom(format!("must be at least {MIN}")));
    }
    Ok(n)
}

/// A share between 0.0 and 1.0.
pub fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(D::Error::custom("must be between 0.0 and 1.0"));
    }
    Ok(x)
}

/// A finite number not below zero (an alert threshold).
pub fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if !(x.is_finite() && x >= 0.0) {
        return Err(D::Error::custom("must be a non-negative number"));
    }
    Ok(x)
}

/// Text that is not blank (a topic name, a database URL).
pub fn not_blank<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// A secret that is not blank (the store URL may carry a password).
pub fn secret_not_blank<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    let s = not_blank(d)?;
    Ok(SecretString::from(s))
}

/// A signing secret of at least 16 bytes: shorter HS256 keys are guessable.
pub fn signing_secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    let s = SecretString::deserialize(d)?;
    if s.expose_secret().len() < 16 {
        return Err(D::Error::custom("must be at least 16 bytes"));
    }
    Ok(s)
}

/// This instance's id in log lines, Redis keys, metric labels and the admin pages: kept to a
/// safe alphabet. Configured as text; empty means "generate one at start-up", read as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceId(String);

impl InstanceId {
    /// A fresh id: `nftr-` and 8 hex digits.
    pub fn generate() -> InstanceId {
        InstanceId(format!("nftr-{:08x}", fastrand::u32(..)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for InstanceId {
    type Err = &'static str;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let safe = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if id.is_empty() || id.len() > 64 || !safe {
            return Err("at most 64 characters of a-z, A-Z, 0-9, '.', '_' and '-'");
        }
        Ok(InstanceId(id.to_owned()))
    }
}

/// `""` is `None` (no such listener); anything else must be `host:port` with a numeric host.
pub fn optional_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{e}: expected an address like 127.0.0.1:9090")))
}

/// `""` (or only spaces) is `None`; anything else is the text, trimmed.
pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// `""` is `None` (generate one); anything else must be a valid [`InstanceId`].
pub fn optional_instance_id<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<InstanceId>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(D::Error::custom)
}
