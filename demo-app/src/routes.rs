//! The demo application's pages.
//!
//! `/` and `/static.html` are stateless; `/cart` keeps state behind the
//! session cookie; `/account` marks itself stateful with the response header
//! `Usher-Stateful: 1` (a web server interface then never redirects it). The
//! `error_pct` knob makes that share of `/` and `/static.html` fail at once
//! with 500 (a fast error, no worker taken); `/health` never fails. Pages
//! add the drawn latency (`--latency`); `/health` does not, so an agent's
//! probe with its own timeout measures the queue, not the page's slowness.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use warp::http::{header, Response, StatusCode};
use warp::Filter;

use crate::app::App;

/// Cookie that carries the cart's session id (usher's default session marker).
pub const SESSION_COOKIE: &str = "usher_session";

/// The header `/account` marks itself stateful with.
const STATEFUL_HEADER: &str = "Usher-Stateful";

type Reply = Response<String>;

fn page(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// The fast error the `error_pct` knob answers with.
fn injected_error(app: &App) -> Reply {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain",
        format!("error from {} (error_pct)\n", app.name),
    )
}

/// The knobs a `POST /control` query sets: (service_ms, burn_ms, error_pct),
/// or the message naming the bad one.
type Knobs = (Option<u64>, Option<u64>, Option<u64>);

fn knobs(q: &HashMap<String, String>) -> Result<Knobs, String> {
    let ms = |k: &str| {
        q.get(k)
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| format!("{k} must be a whole number of milliseconds"))
    };
    let pct = q
        .get("error_pct")
        .map(|v| v.parse::<u64>().ok().filter(|p| *p <= 100))
        .map(|p| p.ok_or_else(|| "error_pct must be a whole number from 0 to 100".to_string()))
        .transpose()?;
    Ok((ms("service_ms")?, ms("burn_ms")?, pct))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every route of the demo application.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let with_app = warp::any().map(move || app.clone());

    let index = warp::get()
        .and(warp::path::end())
        .and(with_app.clone())
        .then(|app: Arc<App>| async move {
            if app.fails_now() {
                return injected_error(&app);
            }
            let name = html_escape(&app.name);
            app.serve_page(|| {
                page(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    format!("<!doctype html><title>{name}</title><h1>hello from {name}</h1>\n"),
                )
            })
            .await
        });

    let health = warp::get()
        .and(warp::path!("health"))
        .and(with_app.clone())
        .then(|app: Arc<App>| async move {
            let name = app.name.clone();
            app.serve(|| page(StatusCode::OK, "text/plain", format!("ok {name}\n")))
                .await
        });

    let static_page = warp::get()
        .and(warp::path!("static.html"))
        .and(with_app.clone())
        .then(|app: Arc<App>| async move {
            if app.fails_now() {
                return injected_error(&app);
            }
            app.serve_page(|| {
                page(
                    StatusCode::OK,
                    "text/html",
                    "<!doctype html><p>static page</p>\n".to_string(),
                )
            })
            .await
        });

    let account = warp::get()
        .and(warp::path!("account"))
        .and(with_app.clone())
        .then(|app: Arc<App>| async move {
            let name = html_escape(&app.name);
            app.serve_page(|| {
                let mut r = page(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    format!("<!doctype html><h1>account on {name}</h1>\n"),
                );
                r.headers_mut()
                    .insert(STATEFUL_HEADER, header::HeaderValue::from_static("1"));
                r
            })
            .await
        });

    let cart = warp::path!("cart")
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::cookie::optional(SESSION_COOKIE))
        .and(with_app.clone())
        .then(
            |q: HashMap<String, String>, session: Option<String>, app: Arc<App>| async move {
                let (session, new) = match session {
                    Some(s) if !s.is_empty() && s.len() <= 64 => (s, false),
                    _ => (format!("{:016x}", rand::random::<u64>()), true),
                };
                let item = q.get("add").cloned();
                let name = app.name.clone();
                let items = app.serve_page(|| app.cart(&session, item)).await;
                let list: String = items
                    .iter()
                    .map(|i| format!("<li>{}</li>", html_escape(i)))
                    .collect();
                let mut r = page(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    format!(
                        "<!doctype html><h1>cart on {}</h1><p>{} items</p><ul>{list}</ul>\n",
                        html_escape(&name),
                        items.len()
                    ),
                );
                if new {
                    if let Ok(v) = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly").parse() {
                        r.headers_mut().insert(header::SET_COOKIE, v);
                    }
                }
                r
            },
        );

    let stats = warp::get()
        .and(warp::path!("stats"))
        .and(with_app.clone())
        .map(|app: Arc<App>| {
            page(
                StatusCode::OK,
                "application/json",
                serde_json::to_string(&app.stats()).unwrap_or_default(),
            )
        });

    let control = warp::post()
        .and(warp::path!("control"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_app)
        .map(
            |q: HashMap<String, String>, app: Arc<App>| match knobs(&q) {
                Ok((service_ms, burn_ms, error_pct)) => {
                    app.set_knobs(service_ms, burn_ms, error_pct);
                    page(
                        StatusCode::OK,
                        "application/json",
                        serde_json::to_string(&app.stats()).unwrap_or_default(),
                    )
                }
                Err(message) => page(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    serde_json::json!({ "error": message }).to_string(),
                ),
            },
        );

    index
        .or(health)
        .unify()
        .or(static_page)
        .unify()
        .or(account)
        .unify()
        .or(cart)
        .unify()
        .or(stats)
        .unify()
        .or(control)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(page(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_string(),
            ))
        })
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Arc<App> {
        Arc::new(App::new("t".into(), 2, 0, 0))
    }

    async fn get(app: &Arc<App>, path: &str) -> warp::http::Response<warp::hyper::body::Bytes> {
        warp::test::request()
            .path(path)
            .reply(&routes(app.clone()))
            .await
    }

    #[tokio::test]
    async fn account_marks_itself_stateful() {
        let app = app();
        let r = get(&app, "/account").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["usher-stateful"], "1");
        let r = get(&app, "/").await;
        assert!(r.headers().get("usher-stateful").is_none());
        assert_eq!(app.stats().served, 2);
    }

    #[tokio::test]
    async fn error_pct_fails_pages_but_never_health() {
        let app = app();
        let r = warp::test::request()
            .method("POST")
            .path("/control?error_pct=100")
            .reply(&routes(app.clone()))
            .await;
        assert_eq!(r.status(), 200);
        let stats: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(stats["error_pct"], 100);
        for _ in 0..5 {
            assert_eq!(get(&app, "/").await.status(), 500);
            assert_eq!(get(&app, "/static.html").await.status(), 500);
            assert_eq!(get(&app, "/health").await.status(), 200);
            assert_eq!(get(&app, "/account").await.status(), 200);
        }
        let s = app.stats();
        assert_eq!((s.errors, s.served), (10, 10), "errors take no worker");

        app.set_knobs(None, None, Some(50));
        let failed = {
            let mut n = 0;
            for _ in 0..10 {
                if get(&app, "/").await.status() == 500 {
                    n += 1;
                }
            }
            n
        };
        assert_eq!(failed, 5);
    }

    #[tokio::test]
    async fn bad_knobs_are_refused_and_change_nothing() {
        let app = app();
        for q in [
            "error_pct=101",
            "error_pct=-1",
            "error_pct=x",
            "service_ms=1.5",
        ] {
            let r = warp::test::request()
                .method("POST")
                .path(&format!("/control?{q}"))
                .reply(&routes(app.clone()))
                .await;
            assert_eq!(r.status(), 400, "{q}");
            let body = String::from_utf8_lossy(r.body()).to_string();
            let knob = q.split('=').next().unwrap_or_default();
            assert!(body.contains(knob), "{q}: {body}");
        }
        assert_eq!(app.stats().error_pct, 0);
        assert_eq!(app.stats().service_ms, 0);
    }
}
