//! The query string of a log route: known keys only, numbers and flags
//! checked, each problem an [`ApiError::BadRequest`] naming its parameter.

use std::collections::HashMap;

use crate::api::ApiError;

/// Largest `limit` a caller may ask for.
const MAX_LIMIT: i64 = 10_000;
/// Rows returned when the caller names no `limit`.
const DEFAULT_LIMIT: i64 = 1000;

/// A log route's query parameters.
pub struct LogQuery(pub HashMap<String, String>);

impl LogQuery {
    /// Refuses any parameter not in `allowed` (a typo must not silently
    /// widen the answer).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad(
                k.clone(),
                format!("{k}: unknown query parameter"),
            )),
            None => Ok(()),
        }
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A whole number, if present.
    pub fn num(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.0
            .get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad(key, format!("{key}: not a whole number: {v}")))
            })
            .transpose()
    }

    /// `limit`, 1..=10000, default 1000.
    pub fn limit(&self) -> Result<i64, ApiError> {
        let l = self.num("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&l) {
            return Err(ApiError::bad("limit", "limit: must be 1..=10000"));
        }
        Ok(l)
    }

    /// A `true`/`false` parameter (absent = false).
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.text(key) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(v) => Err(ApiError::bad(key, format!("{key}: not true or false: {v}"))),
        }
    }
}
