//! Query-string parameters with errors that name the parameter (400 `INVALID_PARAMETER`).

use crate::error::ApiError;
use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The largest cursor a query takes: the stores keep them as signed 64-bit numbers, and the
/// API document says `int64`.
pub const MAX_CURSOR: u64 = i64::MAX as u64;

pub struct Params(HashMap<String, String>);

impl Params {
    pub fn of(req: &HttpRequest) -> Result<Params, ApiError> {
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| Params(q.into_inner()))
            .map_err(|e| ApiError::InvalidParameter {
                name: "query",
                reason: e.to_string(),
            })
    }

    /// The value, if the parameter is given; given but blank is refused (`?to=` says nothing,
    /// and a client that sends it has a bug worth hearing about).
    pub fn text(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name).map(|v| v.trim()) {
            None => Ok(None),
            Some("") => Err(ApiError::InvalidParameter {
                name,
                reason: "must not be empty when given".to_owned(),
            }),
            Some(value) => Ok(Some(value)),
        }
    }

    /// A whole number within `range`, or `default` when absent.
    pub fn uint(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.text(name)? else {
            return Ok(default);
        };
        let n: u64 = raw.parse().map_err(|_| ApiError::InvalidParameter {
            name,
            reason: "must be a non-negative integer".to_owned(),
        })?;
        if !range.contains(&n) {
            return Err(ApiError::InvalidParameter {
                name,
                reason: format!("must be between {} and {}", range.start(), range.end()),
            });
        }
        Ok(n)
    }

    /// An optional whole number (a cursor such as `before`).
    pub fn opt_uint(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(_) => self.uint(name, 0, 0..=MAX_CURSOR).map(Some),
        }
    }

    /// An optional RFC 3339 time.
    pub fn time(&self, name: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(name)?
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::InvalidParameter {
                        name,
                        reason: "must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z".to_owned(),
                    })
            })
            .transpose()
    }
}
