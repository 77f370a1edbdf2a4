//! Redirect rules: which requests a web server may send elsewhere.
//!
//! A user in the middle of a session (a cart, a checkout) must never be moved,
//! because the session state lives on this server. A page is *stateful* when
//! it is listed, or lies under a stateful prefix, or when the request carries
//! the session cookie marker. If an allow list is set, only listed pages may
//! be redirected at all.
//!
//! The request method matters too: a 302 makes a browser repeat the request
//! as a `GET` without its body, so a web server answers 302 only to `GET`
//! and `HEAD` ([`redirectable_method`]) and serves every other method where
//! it landed. A front door placing a new user has no such choice (it serves
//! nothing itself), so it answers `307` to other methods, which keeps the
//! method and the body ([`front_door_redirect_status`]).

use serde::{Deserialize, Serialize};

/// The operator's redirect rules for one server or application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectRules {
    /// Exact paths that hold session state (e.g. `/cart`); never redirected.
    #[serde(default)]
    pub stateful: Vec<String>,
    /// Path prefixes under which every page is stateful (e.g. `/checkout/`).
    #[serde(default)]
    pub stateful_prefixes: Vec<String>,
    /// If not empty, only these exact paths (or prefixes ending in `*`) may be
    /// redirected.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Name of the cookie that marks a user with session state; a request
    /// carrying it is never redirected.
    #[serde(default)]
    pub session_cookie: Option<String>,
}

impl RedirectRules {
    /// True when the request may be redirected to another server.
    ///
    /// `path` is the request path without the query; `cookie_header` the raw
    /// `Cookie` header(s), if any.
    pub fn may_redirect(&self, path: &str, cookie_header: Option<&str>) -> bool {
        if self.is_stateful_path(path) {
            return false;
        }
        if let (Some(name), Some(cookies)) = (&self.session_cookie, cookie_header) {
            if has_cookie(cookies, name) {
                return false;
            }
        }
        if !self.allow.is_empty() {
            return self.allow.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => a == path,
            });
        }
        true
    }

    /// True when the path is listed as stateful or lies under a stateful prefix.
    pub fn is_stateful_path(&self, path: &str) -> bool {
        self.stateful.iter().any(|s| s == path)
            || self
                .stateful_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }

    /// Checks the rules are well formed; names the bad field.
    pub fn validate(&self) -> Result<(), crate::ModelError> {
        for (field, list) in [
            ("stateful", &self.stateful),
            ("stateful_prefixes", &self.stateful_prefixes),
            ("allow", &self.allow),
        ] {
            for (i, p) in list.iter().enumerate() {
                if !p.starts_with('/') {
                    return Err(crate::ModelError::invalid(
                        format!("{field}[{i}]"),
                        "must start with '/'",
                    ));
                }
            }
        }
        if let Some(c) = &self.session_cookie {
            if c.is_empty()
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"=;,".contains(&b))
            {
                return Err(crate::ModelError::invalid(
                    "session_cookie",
                    "must be a cookie name",
                ));
            }
        }
        Ok(())
    }
}

/// True when a web server may answer a request with this method with a 302:
/// only `GET` and `HEAD` (methods are case-sensitive). Any other method is
/// served where it landed, since a browser turns a 302 into a `GET` and drops
/// the body (a submitted form would be lost).
pub fn redirectable_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// The status a front door (interceptor role) answers when it sends a new
/// user to a server in redirect mode: `302` for `GET` and `HEAD`, `307`
/// (the client repeats the same method with the same body) for every other
/// method.
pub fn front_door_redirect_status(method: &str) -> u16 {
    if redirectable_method(method) {
        302
    } else {
        307
    }
}

/// True when a `Cookie` header holds a cookie called `name` (any value).
pub fn has_cookie(cookie_header: &str, name: &str) -> bool {
    cookie_header.split(';').any(|pair| {
        let key = pair.split('=').next().unwrap_or("").trim();
        key == name
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RedirectRules {
        RedirectRules {
            stateful: vec!["/cart".into()],
            stateful_prefixes: vec!["/checkout/".into()],
            allow: vec![],
            session_cookie: Some("usher_session".into()),
        }
    }

    #[test]
    fn stateful_pages_and_cookie_are_kept() {
        let r = rules();
        assert!(r.may_redirect("/", None));
        assert!(r.may_redirect("/cartoon", None));
        assert!(!r.may_redirect("/cart", None));
        assert!(!r.may_redirect("/checkout/pay", None));
        assert!(!r.may_redirect("/", Some("a=1; usher_session=xyz")));
        assert!(r.may_redirect("/", Some("a=1; not_usher_session=xyz")));
    }

    #[test]
    fn allow_list_limits_redirects() {
        let r = RedirectRules {
            allow: vec!["/".into(), "/static/*".into()],
            ..rules()
        };
        assert!(r.may_redirect("/", None));
        assert!(r.may_redirect("/static/a.css", None));
        assert!(!r.may_redirect("/about", None));
        assert!(!r.may_redirect("/cart", None));
    }

    #[test]
    fn only_get_and_head_are_redirected_with_302() {
        assert!(redirectable_method("GET"));
        assert!(redirectable_method("HEAD"));
        for m in [
            "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "", "GETX",
        ] {
            assert!(!redirectable_method(m), "{m:?}");
        }
        assert_eq!(front_door_redirect_status("GET"), 302);
        assert_eq!(front_door_redirect_status("HEAD"), 302);
        assert_eq!(front_door_redirect_status("POST"), 307);
        assert_eq!(front_door_redirect_status("PUT"), 307);
        assert_eq!(front_door_redirect_status("DELETE"), 307);
    }

    #[test]
    fn validation_names_field() {
        let r = RedirectRules {
            stateful: vec!["cart".into()],
            ..Default::default()
        };
        assert_eq!(r.validate().unwrap_err().field(), "stateful[0]");
    }
}
