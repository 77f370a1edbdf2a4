//! The console's live feed: one Server-Sent Events stream per open page.
//! Every second (and at once when the page connects) it sends one `fleet`
//! event holding the whole picture the page draws: apps, servers (state,
//! share of new users, load and its age, PID, the manager's decisions) and
//! the newest events, and the alerts not yet acknowledged. One message a second for the whole fleet is cheaper
//! for the page than one per change, and "within a second" is the promise.
//! When the session ends the stream sends `signed-out` and closes.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::stream::{self, Stream};
use serde::Serialize;
use warp::sse::Event;

use super::alerts::{open_alerts, Alert};
use crate::api::handlers::app_out;
use crate::api::log::{latest_events, EventRow};
use crate::api::models::{servers_out, ServerOut};
use crate::state::AppState;
use crate::views::now_unix;

/// How often the feed sends the picture.
pub const FEED_EVERY: Duration = Duration::from_secs(1);
/// Events sent with each picture.
pub const FEED_EVENTS: u32 = 50;

/// One picture of the fleet.
#[derive(Debug, Serialize)]
pub struct Picture<'a> {
    /// When it was taken (unix seconds).
    pub at: f64,
    pub apps: Vec<serde_json::Value>,
    pub servers: Vec<ServerOut<'a>>,
    /// The newest events, newest first (empty if the logging database
    /// could not be read this time).
    pub events: Vec<EventRow>,
    /// Alerts not yet acknowledged, newest first (`super::alerts`).
    pub alerts: Vec<Alert>,
}

/// The picture as JSON.
pub async fn picture_json(st: &AppState) -> String {
    let events = latest_events(&st.manager, FEED_EVENTS)
        .await
        .unwrap_or_default();
    let alerts = open_alerts(&st.manager, &st.acks).await.unwrap_or_default();
    let fleet = st.store.fleet();
    let live = st.live.get();
    let picture = Picture {
        alerts,
        at: now_unix(),
        apps: fleet.apps.iter().map(|a| app_out(a, &live)).collect(),
        servers: servers_out(&fleet, &live, now_unix()),
        events,
    };
    serde_json::to_string(&picture).unwrap_or_else(|_| "{}".to_string())
}

/// The stream for session `id`: a picture now and every [`FEED_EVERY`].
pub fn stream(st: AppState, id: String) -> impl Stream<Item = Result<Event, Infallible>> {
    let tick = tokio::time::interval(FEED_EVERY);
    stream::unfold(
        (st, id, tick, false),
        |(st, id, mut tick, ended)| async move {
            if ended {
                return None;
            }
            tick.tick().await;
            if st.sessions.get(&id).is_none() {
                let e = Event::default().event("signed-out").data("{}");
                return Some((Ok(e), (st, id, tick, true)));
            }
            let e = Event::default()
                .event("fleet")
                .data(picture_json(&st).await);
            Some((Ok(e), (st, id, tick, false)))
        },
    )
}
