//! Console sessions: signing in with the admin token gives a random session
//! id (the cookie, HttpOnly, SameSite=Strict, expiring) and a separate
//! random CSRF token the page sends in `X-CSRF-Token` with every request
//! that changes something. Held in memory: a restarted control plane signs
//! every console out, which costs a sign-in, not a secret on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::token::random_token;

/// Name of the session cookie.
pub const COOKIE: &str = "usher_console";
/// Header the page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most (the oldest goes first): a bound on memory for
/// someone who signs in in a loop with the right token.
const MAX_SESSIONS: usize = 256;

/// One signed-in console.
#[derive(Debug, Clone)]
pub struct Session {
    /// Short name for events ("who"): the first 8 characters of the id.
    pub who: String,
    pub csrf: String,
    pub expires: Instant,
}

/// Every open session; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
}

impl Sessions {
    /// Opens a session: its id (for the cookie) and the session.
    pub fn open(&self) -> (String, Session) {
        let id = random_token();
        let session = Session {
            who: format!("console-{}", &id[..8.min(id.len())]),
            csrf: random_token(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.lock();
        map.retain(|_, s| s.expires > Instant::now());
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// The session a `Cookie` header names, if live.
    pub fn from_cookie_header(&self, header: Option<&str>) -> Option<(String, Session)> {
        let id = cookie_value(header?, COOKIE)?;
        self.get(id).map(|s| (id.to_string(), s))
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value for a new session (`max_age` 0 signs out).
pub fn set_cookie(id: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// True when a state-changing request comes from the page itself: its
/// `Origin` names the host it was sent to (`Host`). Browsers send `Origin`
/// with every POST, so a missing one is refused too.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let (Some(origin), Some(host)) = (origin, host) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let s = Sessions::default();
        let (id, session) = s.open();
        assert_ne!(id, session.csrf, "the CSRF token is not the cookie");
        let header = format!("theme=dark; {COOKIE}={id}; x=1");
        let (found, _) = s.from_cookie_header(Some(&header)).expect("found");
        assert_eq!(found, id);
        assert!(s.from_cookie_header(Some("usher_console=nope")).is_none());
        assert!(s.from_cookie_header(None).is_none());
        s.close(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let first = s.open().0;
        for _ in 0..MAX_SESSIONS {
            s.open();
        }
        assert!(s.get(&first).is_none(), "the oldest went first");
        assert_eq!(s.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn origins() {
        assert!(same_origin(
            Some("http://127.0.0.1:7900"),
            Some("127.0.0.1:7900")
        ));
        assert!(same_origin(
            Some("https://Admin.example"),
            Some("admin.example")
        ));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("127.0.0.1:7900")
        ));
        assert!(!same_origin(Some("null"), Some("127.0.0.1:7900")));
        assert!(!same_origin(None, Some("127.0.0.1:7900")));
        assert!(!same_origin(Some("http://127.0.0.1:7900"), None));
        assert!(
            !same_origin(Some("http://127.0.0.1:79000"), Some("127.0.0.1:7900")),
            "no prefix match"
        );
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie("abc", SESSION_TTL, false);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Max-Age=28800")
        );
        assert!(set_cookie("abc", Duration::ZERO, true).ends_with("Max-Age=0; Secure"));
    }
}
