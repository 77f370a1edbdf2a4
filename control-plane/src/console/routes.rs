//! The console's own routes on the admin listener: the page and its files
//! under `/console/`, sign-in and sign-out, and the live feed. Everything
//! else the page does goes through `/api/v1` with the session cookie
//! (`super::guard`).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::alerts::AlertKey;
use super::assets;
use super::feed;
use super::guard::{
    verdict, Asked, Verdict, CONSOLE_ACTION, CONSOLE_SIGNED_IN, CONSOLE_SIGNED_OUT,
};
use super::session::{same_origin, set_cookie, CSRF_HEADER, SESSION_TTL};
use crate::api::{ApiError, MAX_BODY_BYTES};
use crate::state::AppState;
use crate::token::bearer_matches;

/// `POST /console/session`: `{"token": "<admin token>"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

fn with_state(
    st: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || st.clone())
}

fn json_reply(value: &serde_json::Value, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// Security headers on every console answer: no framing, no sniffing, and
/// a policy that lets the page load nothing but its own files.
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn sign_in(
    st: AppState,
    origin: Option<String>,
    host: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !same_origin(origin.as_deref(), host.as_deref()) {
        return Err(ApiError::Forbidden(
            "origin: sign in from the console's own page".into(),
        ));
    }
    let input: SignIn = crate::api::models::parse_body(&body)?;
    if !bearer_matches(Some(&format!("Bearer {}", input.token)), &st.token) {
        return Err(ApiError::Unauthorized);
    }
    let (id, session) = st.sessions.open();
    st.manager
        .raise_event(
            &session.who,
            CONSOLE_SIGNED_IN,
            format!("{} signed in", session.who),
        )
        .await;
    let mut r = json_reply(
        &serde_json::json!({"csrf": session.csrf, "who": session.who, "expires_in_s": SESSION_TTL.as_secs()}),
        StatusCode::OK,
    );
    if let Ok(v) = header::HeaderValue::from_str(&set_cookie(&id, SESSION_TTL, st.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /console/session`: the page asks whether it is signed in (and gets
/// its CSRF token back after a reload).
async fn whoami(st: AppState, cookie: Option<String>) -> Result<Response, ApiError> {
    let (_, s) = st
        .sessions
        .from_cookie_header(cookie.as_deref())
        .ok_or(ApiError::Unauthorized)?;
    Ok(json_reply(
        &serde_json::json!({"csrf": s.csrf, "who": s.who}),
        StatusCode::OK,
    ))
}

/// `POST /console/session/end`: signs out (CSRF and Origin checked).
async fn sign_out(
    st: AppState,
    cookie: Option<String>,
    csrf: Option<String>,
    origin: Option<String>,
    host: Option<String>,
) -> Result<Response, ApiError> {
    let found = st.sessions.from_cookie_header(cookie.as_deref());
    let v = verdict(Asked {
        safe_method: false,
        bearer_ok: false,
        session: found.as_ref().map(|(_, s)| s),
        csrf: csrf.as_deref(),
        origin: origin.as_deref(),
        host: host.as_deref(),
    });
    let (id, session) = match (v, found) {
        (Verdict::ConsoleChange(_), Some(f)) => f,
        (Verdict::Refused(r), _) => return Err(r.error()),
        _ => return Err(ApiError::Unauthorized),
    };
    st.sessions.close(&id);
    st.manager
        .raise_event(
            &session.who,
            CONSOLE_SIGNED_OUT,
            format!("{} signed out", session.who),
        )
        .await;
    let mut r = json_reply(&serde_json::json!({"signed_out": true}), StatusCode::OK);
    if let Ok(v) = header::HeaderValue::from_str(&set_cookie("", Duration::ZERO, st.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /console/alerts/ack`: `{"agent_id": "...", "seq": N}` (CSRF and
/// Origin checked, like every console change; logged as one).
async fn ack_alert(
    st: AppState,
    cookie: Option<String>,
    csrf: Option<String>,
    origin: Option<String>,
    host: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let found = st.sessions.from_cookie_header(cookie.as_deref());
    let who = match verdict(Asked {
        safe_method: false,
        bearer_ok: false,
        session: found.as_ref().map(|(_, s)| s),
        csrf: csrf.as_deref(),
        origin: origin.as_deref(),
        host: host.as_deref(),
    }) {
        Verdict::ConsoleChange(who) => who,
        Verdict::Refused(r) => return Err(r.error()),
        _ => return Err(ApiError::Unauthorized),
    };
    let key: AlertKey = crate::api::models::parse_body(&body)?;
    let text = format!("{who} acknowledged alert {} #{}", key.agent_id, key.seq);
    st.acks.ack(key);
    st.manager.raise_event(&who, CONSOLE_ACTION, text).await;
    Ok(json_reply(
        &serde_json::json!({"acknowledged": true}),
        StatusCode::OK,
    ))
}

/// `GET /console/feed`: the live feed (Server-Sent Events) of a session.
async fn feed(st: AppState, cookie: Option<String>) -> Result<Response, ApiError> {
    let (id, _) = st
        .sessions
        .from_cookie_header(cookie.as_deref())
        .ok_or(ApiError::Unauthorized)?;
    let events = feed::stream(st, id);
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

/// Every console route; answers are [`Result`]s the admin API's recover
/// turns into JSON errors.
pub fn routes(st: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let s = move || with_state(st.clone());
    let cookie = || warp::header::optional::<String>("cookie");
    let origin = || warp::header::optional::<String>("origin");
    let host = || warp::header::optional::<String>("host");
    let to_reply = |r: Result<Response, ApiError>| match r {
        Ok(r) => hardened(r),
        Err(e) => hardened(e.into_response()),
    };

    // `/console` and `/console/` both answer the page (its links are
    // absolute), then its files.
    let page = warp::path!("console" / ..)
        .and(warp::get())
        .and(warp::path::tail())
        .and_then(|tail: warp::path::Tail| async move {
            assets::answer(tail.as_str()).ok_or_else(warp::reject::not_found)
        });
    let session_get = warp::path!("console" / "session")
        .and(warp::get())
        .and(s())
        .and(cookie())
        .then(whoami);
    let session_post = warp::path!("console" / "session")
        .and(warp::post())
        .and(s())
        .and(origin())
        .and(host())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .then(sign_in);
    let session_end = warp::path!("console" / "session" / "end")
        .and(warp::post())
        .and(s())
        .and(cookie())
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and(origin())
        .and(host())
        .then(sign_out);
    let ack = warp::path!("console" / "alerts" / "ack")
        .and(warp::post())
        .and(s())
        .and(cookie())
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and(origin())
        .and(host())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .then(ack_alert);
    let live = warp::path!("console" / "feed")
        .and(warp::get())
        .and(s())
        .and(cookie())
        .then(feed);

    session_get
        .or(session_post)
        .unify()
        .or(session_end)
        .unify()
        .or(ack)
        .unify()
        .or(live)
        .unify()
        .map(to_reply)
        .or(page.map(hardened))
        .unify()
}
