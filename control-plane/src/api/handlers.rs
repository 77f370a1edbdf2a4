//! One async function per admin route: parse, check, change the store in
//! one transaction, answer JSON.

use bytes::Bytes;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;
use super::models::{parse_body, servers_out, LoadBody, RedirectBody, WsiOut};
use crate::model::Origin;
use crate::spec::{AppInput, ServerInput, WsiInput};
use crate::state::AppState;
use crate::store;
use crate::views::now_unix;

type Answer = Result<Response, ApiError>;

fn json<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

fn created<T: Serialize>(value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), StatusCode::CREATED).into_response()
}

/// Runs one change in the store, then waits until the front doors serve it.
async fn change<T, F>(st: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, store::StoreError> + Send + 'static,
{
    let value = st.store.mutate(f).await?;
    st.settle().await;
    Ok(value)
}

fn field(f: &str) -> String {
    f.to_string()
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    json(&serde_json::json!({"ok": true}))
}

/// `GET /apps`.
pub async fn list_apps(st: AppState) -> Answer {
    let live = st.live.get();
    let apps: Vec<serde_json::Value> = st
        .store
        .fleet()
        .apps
        .iter()
        .map(|a| app_out(a, &live))
        .collect();
    Ok(json(&apps))
}

/// An app as the API shows it: its configuration and whether the manager
/// judges it swamped (`swamped`: why, or `null`).
pub(crate) fn app_out(app: &crate::model::App, live: &crate::live::Live) -> serde_json::Value {
    let mut v = serde_json::to_value(app).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("swamped".into(), serde_json::json!(live.swamped(&app.name)));
    }
    v
}

/// `GET /apps/{app}`.
pub async fn get_app(name: String, st: AppState) -> Answer {
    let fleet = st.store.fleet();
    let app = fleet.app(&name).ok_or(ApiError::NotFound {
        kind: "app",
        name: name.clone(),
    })?;
    Ok(json(&app_out(app, &st.live.get())))
}

/// `POST /apps`.
pub async fn add_app(st: AppState, body: Bytes) -> Answer {
    let input: AppInput = parse_body(&body)?;
    let base = st.base_dir.clone();
    // Reading the sorry page is file I/O: keep it off the async runtime.
    let app = tokio::task::spawn_blocking(move || input.check(&field, &base, Origin::Api))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    // Refuse an address nobody can listen on now (taken by another
    // process), rather than accept an app whose front door cannot start.
    if st.store.fleet().apps.iter().all(|a| a.listen != app.listen) {
        if let Err(e) = std::net::TcpListener::bind(app.listen) {
            return Err(ApiError::bad(
                "listen",
                format!("listen: cannot listen on {}: {e}", app.listen),
            ));
        }
    }
    let out = app.clone();
    change(&st, move |tx| store::add_app(tx, &app)).await?;
    Ok(created(&app_out(&out, &st.live.get())))
}

/// `DELETE /apps/{app}`.
pub async fn remove_app(name: String, st: AppState) -> Answer {
    change(&st, move |tx| store::remove_app(tx, &name)).await?;
    Ok(json(&serde_json::json!({"removed": true})))
}

/// `POST /apps/{app}/enable` and `/disable`.
pub async fn set_app_enabled(name: String, enabled: bool, st: AppState) -> Answer {
    let n = name.clone();
    change(&st, move |tx| store::set_app_enabled(tx, &n, enabled)).await?;
    get_app(name, st).await
}

/// `GET /servers`.
pub async fn list_servers(st: AppState) -> Answer {
    let fleet = st.store.fleet();
    let out = servers_out(&fleet, &st.live.get(), now_unix());
    Ok(json(&out))
}

/// `GET /servers/{name}`.
pub async fn get_server(name: String, st: AppState) -> Answer {
    server_answer(&st, &name, StatusCode::OK)
}

/// One server as the API shows it, with `status`.
fn server_answer(st: &AppState, name: &str, status: StatusCode) -> Answer {
    let fleet = st.store.fleet();
    let out = servers_out(&fleet, &st.live.get(), now_unix());
    let s = out
        .iter()
        .find(|s| s.server.name == name)
        .ok_or(ApiError::NotFound {
            kind: "server",
            name: name.to_string(),
        })?;
    Ok(warp::reply::with_status(warp::reply::json(s), status).into_response())
}

/// `POST /servers`.
pub async fn add_server(st: AppState, body: Bytes) -> Answer {
    let input: ServerInput = parse_body(&body)?;
    let server = input.check(&field, Origin::Api)?;
    let name = server.name.clone();
    change(&st, move |tx| store::add_server(tx, &server)).await?;
    server_answer(&st, &name, StatusCode::CREATED)
}

/// `DELETE /servers/{name}`.
pub async fn remove_server(name: String, st: AppState) -> Answer {
    change(&st, move |tx| store::remove_server(tx, &name)).await?;
    Ok(json(&serde_json::json!({"removed": true})))
}

/// `POST /servers/{name}/enable` and `/disable`.
pub async fn set_server_enabled(name: String, enabled: bool, st: AppState) -> Answer {
    let n = name.clone();
    change(&st, move |tx| store::set_server_enabled(tx, &n, enabled)).await?;
    get_server(name, st).await
}

/// `PUT /servers/{name}/load`: pins the load value (for `for_secs`, or
/// until cleared); measurements are kept but not applied meanwhile.
pub async fn set_load(name: String, st: AppState, body: Bytes) -> Answer {
    let (value, for_secs) = parse_body::<LoadBody>(&body)?.check()?;
    let n = name.clone();
    let until = for_secs.map(|d| now_unix() + d);
    change(&st, move |tx| store::set_load(tx, &n, Some((value, until)))).await?;
    get_server(name, st).await
}

/// `DELETE /servers/{name}/load`: clears the pin.
pub async fn clear_load(name: String, st: AppState) -> Answer {
    let n = name.clone();
    change(&st, move |tx| store::set_load(tx, &n, None)).await?;
    get_server(name, st).await
}

/// `PUT /servers/{name}/redirect`.
pub async fn set_redirect(name: String, st: AppState, body: Bytes) -> Answer {
    let target = parse_body::<RedirectBody>(&body)?.target;
    let n = name.clone();
    change(&st, move |tx| {
        store::set_redirect(tx, &n, target.as_deref())
    })
    .await?;
    get_server(name, st).await
}

/// `GET /wsis`.
pub async fn list_wsis(st: AppState) -> Answer {
    let fleet = st.store.fleet();
    let out: Vec<WsiOut<'_>> = fleet
        .wsis
        .iter()
        .map(|w| WsiOut {
            wsi: w,
            push: st.push_status.get(&w.name),
        })
        .collect();
    Ok(json(&out))
}

/// `POST /wsis`.
pub async fn add_wsi(st: AppState, body: Bytes) -> Answer {
    let input: WsiInput = parse_body(&body)?;
    let base = st.base_dir.clone();
    let allow_remote = st.allow_remote_wsis;
    let wsi =
        tokio::task::spawn_blocking(move || input.check(&field, &base, allow_remote, Origin::Api))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    let out = wsi.clone();
    change(&st, move |tx| store::add_wsi(tx, &wsi)).await?;
    Ok(created(&WsiOut {
        wsi: &out,
        push: None,
    }))
}

/// `DELETE /wsis/{name}`.
pub async fn remove_wsi(name: String, st: AppState) -> Answer {
    change(&st, move |tx| store::remove_wsi(tx, &name)).await?;
    Ok(json(&serde_json::json!({"removed": true})))
}
