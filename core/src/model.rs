//! Names and values of the managed objects (applications, servers) that every
//! part validates the same way.

use serde::{Deserialize, Serialize};

/// How a front door hands a user to the chosen server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AppMode {
    /// Answer 302 with the chosen server's URL (the design's way).
    #[default]
    Redirect,
    /// Forward the request to the chosen server and stream the answer back.
    Proxy,
}

/// A value that breaks a rule of the model; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

impl ModelError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ModelError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field the error is about.
    pub fn field(&self) -> &str {
        match self {
            ModelError::Invalid { field, .. } => field,
        }
    }
}

/// Names of apps and servers: 1..=64 of `[A-Za-z0-9._-]`, so they are safe in
/// URLs, file names, metric labels and nginx/Envoy configs.
pub fn validate_name(field: &str, name: &str) -> Result<(), ModelError> {
    if name.is_empty() || name.len() > 64 {
        return Err(ModelError::invalid(field, "must be 1 to 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(ModelError::invalid(
            field,
            "may only hold letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Static capacity is the operator's 1..=10.
pub fn validate_capacity(field: &str, capacity: u32) -> Result<(), ModelError> {
    if (1..=10).contains(&capacity) {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("must be 1..10, got {capacity}"),
        ))
    }
}

/// Dynamic load values are 0..=10000.
pub fn validate_load(field: &str, value: u32) -> Result<(), ModelError> {
    if value <= crate::DYNAMIC_LOAD_MAX {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("must be 0..10000, got {value}"),
        ))
    }
}

/// A server or front-door base URL: `http://host[:port]` or `https://…`, no
/// query, no fragment, no user info; a trailing `/` is allowed. Redirects are
/// built from these, never from anything in a request.
pub fn validate_base_url(field: &str, url: &str) -> Result<(), ModelError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| ModelError::invalid(field, "must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(ModelError::invalid(field, "has no host"));
    }
    if url.len() > 2048 {
        return Err(ModelError::invalid(field, "is longer than 2048 characters"));
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || "?#@\\\"<>".contains(c);
    if url.chars().any(bad) {
        return Err(ModelError::invalid(
            field,
            "may not hold spaces, control characters, '?', '#', '@', '\\', '\"', '<' or '>'",
        ));
    }
    Ok(())
}

/// Joins a configured base URL with a request's path and query, so the
/// redirect target is always the configured host. `path_and_query` that does
/// not start with `/` (an absolute URI, `*`) is replaced by `/`.
///
/// A path that starts with `//` (`//x/y`) is kept whole: placed after the
/// base URL's host it is only a path (`http://a:1//x/y`), never the
/// scheme-relative `//x` host it would be on its own, because `base`
/// always carries a scheme and a host (`validate_base_url`).
pub fn join_url(base: &str, path_and_query: &str) -> String {
    let base = base.trim_end_matches('/');
    if path_and_query.starts_with('/') {
        format!("{base}{path_and_query}")
    } else {
        format!("{base}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(validate_name("name", "shop-1.eu_a").is_ok());
        assert!(validate_name("name", "").is_err());
        assert!(validate_name("name", "a b").is_err());
        assert!(validate_base_url("url", "http://127.0.0.1:8081").is_ok());
        assert!(validate_base_url("url", "https://a.example/").is_ok());
        assert!(validate_base_url("url", "ftp://x").is_err());
        assert!(validate_base_url("url", "http://evil@x").is_err());
        assert!(validate_base_url("url", "http://").is_err());
        assert_eq!(
            validate_capacity("capacity", 11).unwrap_err().field(),
            "capacity"
        );
    }

    #[test]
    fn join_never_takes_a_host_from_the_request() {
        assert_eq!(join_url("http://a:1/", "/x?y=1"), "http://a:1/x?y=1");
        assert_eq!(join_url("http://a:1", "http://evil/x"), "http://a:1/");
        assert_eq!(join_url("http://a:1", "*"), "http://a:1/");
        assert_eq!(join_url("http://a:1", "//evil/x"), "http://a:1//evil/x");
        assert_eq!(join_url("http://a:1/", "//x/y?q=1"), "http://a:1//x/y?q=1");
        assert_eq!(join_url("http://a:1/p", "///x"), "http://a:1/p///x");
    }
}
