//! The demo application's pages.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use warp::http::{header, Response, StatusCode};
use warp::Filter;

use crate::app::App;

/// Cookie that carries the cart's session id (usher's default session marker).
pub const SESSION_COOKIE: &str = "usher_session";

type Reply = Response<String>;

fn page(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
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
            let name = html_escape(&app.name);
            app.serve(|| {
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
            app.serve(|| {
                page(
                    StatusCode::OK,
                    "text/html",
                    "<!doctype html><p>static page</p>\n".to_string(),
                )
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
                let items = app.serve(|| app.cart(&session, item)).await;
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
        .map(|q: HashMap<String, String>, app: Arc<App>| {
            let parse = |k: &str| q.get(k).map(|v| v.parse::<u64>().map_err(|_| k.to_string())).transpose();
            match (parse("service_ms"), parse("burn_ms")) {
                (Ok(s), Ok(b)) => {
                    app.set_knobs(s, b);
                    page(StatusCode::OK, "application/json", serde_json::to_string(&app.stats()).unwrap_or_default())
                }
                (Err(k), _) | (_, Err(k)) => page(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    serde_json::json!({"error": format!("{k} must be a whole number of milliseconds")}).to_string(),
                ),
            }
        });

    index
        .or(health)
        .unify()
        .or(static_page)
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
