//! Who may use `/api/v1`: a caller with the admin token (`Authorization:
//! Bearer`), or a signed-in console (session cookie). A console may read
//! freely; a request of its that changes something must also carry the
//! session's CSRF token (`X-CSRF-Token`) and come from the page's own
//! origin (`Origin` = the `Host` it was sent to), else 403. Each console
//! change is logged as a `console_action` event naming the session.

use warp::http::Method;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::session::{same_origin, Session, CSRF_HEADER};
use crate::api::ApiError;
use crate::state::AppState;
use crate::token::bearer_matches;

/// A console asked for a change through the admin API (who, what).
pub const CONSOLE_ACTION: (u32, &str) = (260, "console_action");
/// A console signed in / out.
pub const CONSOLE_SIGNED_IN: (u32, &str) = (261, "console_signed_in");
pub const CONSOLE_SIGNED_OUT: (u32, &str) = (262, "console_signed_out");

/// What the guard makes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The admin token.
    Token,
    /// A console reading.
    ConsoleRead,
    /// A console changing something: log it under this name.
    ConsoleChange(String),
    Refused(Refusal),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, no live session: 401.
    Unauthorized,
    /// A session, but no or a wrong CSRF token: 403.
    Csrf,
    /// A session, but sent from another origin: 403.
    Origin,
}

impl Refusal {
    pub fn error(self) -> ApiError {
        match self {
            Refusal::Unauthorized => ApiError::Unauthorized,
            Refusal::Csrf => ApiError::Forbidden(
                "csrf: a console request that changes something needs the session's \
                 X-CSRF-Token header"
                    .into(),
            ),
            Refusal::Origin => ApiError::Forbidden(
                "origin: a console request that changes something must come from the \
                 console's own origin"
                    .into(),
            ),
        }
    }
}

/// The request's facts the verdict rests on.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub safe_method: bool,
    pub bearer_ok: bool,
    pub session: Option<&'a Session>,
    pub csrf: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub host: Option<&'a str>,
}

/// Decides (pure: see the tests).
pub fn verdict(a: Asked<'_>) -> Verdict {
    if a.bearer_ok {
        return Verdict::Token;
    }
    let Some(session) = a.session else {
        return Verdict::Refused(Refusal::Unauthorized);
    };
    if a.safe_method {
        return Verdict::ConsoleRead;
    }
    let csrf_ok = a.csrf.is_some_and(|c| {
        !c.is_empty() && usher_core::token::token_eq(c.as_bytes(), session.csrf.as_bytes())
    });
    if !csrf_ok {
        return Verdict::Refused(Refusal::Csrf);
    }
    if !same_origin(a.origin, a.host) {
        return Verdict::Refused(Refusal::Origin);
    }
    Verdict::ConsoleChange(session.who.clone())
}

/// The `/api/v1` guard as a warp filter.
pub fn admin_or_session(st: AppState) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("cookie"))
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and_then(
            move |method: Method,
                  path: FullPath,
                  auth: Option<String>,
                  cookie: Option<String>,
                  csrf: Option<String>,
                  origin: Option<String>,
                  host: Option<String>| {
                let st = st.clone();
                async move {
                    let bearer_ok = bearer_matches(auth.as_deref(), &st.token);
                    let session = if bearer_ok {
                        None
                    } else {
                        st.sessions.from_cookie_header(cookie.as_deref())
                    };
                    let v = verdict(Asked {
                        safe_method: method == Method::GET || method == Method::HEAD,
                        bearer_ok,
                        session: session.as_ref().map(|(_, s)| s),
                        csrf: csrf.as_deref(),
                        origin: origin.as_deref(),
                        host: host.as_deref(),
                    });
                    match v {
                        Verdict::Token | Verdict::ConsoleRead => Ok(()),
                        Verdict::ConsoleChange(who) => {
                            let text = format!("{who} asked {method} {}", path.as_str());
                            st.manager.raise_event(&who, CONSOLE_ACTION, text).await;
                            Ok(())
                        }
                        Verdict::Refused(r) => Err(warp::reject::custom(r.error())),
                    }
                }
            },
        )
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn session() -> Session {
        Session {
            who: "console-abcd1234".into(),
            csrf: "c5rf".into(),
            expires: Instant::now(),
        }
    }

    fn asked(s: Option<&Session>) -> Asked<'_> {
        Asked {
            safe_method: false,
            bearer_ok: false,
            session: s,
            csrf: Some("c5rf"),
            origin: Some("http://127.0.0.1:7900"),
            host: Some("127.0.0.1:7900"),
        }
    }

    #[test]
    fn the_token_or_a_session_with_csrf_and_origin() {
        let s = session();
        assert_eq!(
            verdict(Asked {
                bearer_ok: true,
                ..asked(None)
            }),
            Verdict::Token
        );
        assert_eq!(
            verdict(asked(None)),
            Verdict::Refused(Refusal::Unauthorized)
        );
        assert_eq!(
            verdict(asked(Some(&s))),
            Verdict::ConsoleChange("console-abcd1234".into())
        );
        let read = Asked {
            safe_method: true,
            csrf: None,
            origin: None,
            ..asked(Some(&s))
        };
        assert_eq!(verdict(read), Verdict::ConsoleRead, "reads need no CSRF");
    }

    #[test]
    fn a_change_without_csrf_or_from_elsewhere_is_refused() {
        let s = session();
        for csrf in [None, Some(""), Some("c5r"), Some("c5rfx")] {
            assert_eq!(
                verdict(Asked {
                    csrf,
                    ..asked(Some(&s))
                }),
                Verdict::Refused(Refusal::Csrf),
                "{csrf:?}"
            );
        }
        for origin in [None, Some("http://evil.example"), Some("null")] {
            assert_eq!(
                verdict(Asked {
                    origin,
                    ..asked(Some(&s))
                }),
                Verdict::Refused(Refusal::Origin),
                "{origin:?}"
            );
        }
    }
}
