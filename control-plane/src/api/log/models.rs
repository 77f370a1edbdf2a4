//! Typed rows of the logging database as the API returns them.

use rusqlite::Row;
use serde::Serialize;

use crate::api::agents::AgentState;
use crate::manager::ServerStatus;

/// A host's latest facts.
#[derive(Debug, Serialize)]
pub struct HostRow {
    pub host_id: String,
    pub host_name: String,
    pub agent_id: String,
    /// The agent's `HostFacts` as it sent them (null if they do not parse).
    pub facts: serde_json::Value,
    pub time_logged_us: i64,
}

impl HostRow {
    pub const COLUMNS: &'static str = "host_id, host_name, agent_id, facts, time_logged_us";

    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<HostRow> {
        Ok(HostRow {
            host_id: r.get(0)?,
            host_name: r.get(1)?,
            agent_id: r.get(2)?,
            facts: json_column(r.get(3)?),
            time_logged_us: r.get(4)?,
        })
    }
}

/// An agent the manager has heard from, with its live connection state.
#[derive(Debug, Serialize)]
pub struct AgentRow {
    pub agent_id: String,
    pub host_id: String,
    pub host_name: String,
    /// The servers it said it watches (null if they do not parse).
    pub servers: serde_json::Value,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub connected: bool,
    pub pinged: bool,
    /// Seconds since any message from it; null if not heard since the
    /// manager started.
    pub last_heard_age_secs: Option<f64>,
    pub last_heard_unix: Option<f64>,
    /// The manager's latest verdicts on its servers.
    pub status: Vec<ServerStatus>,
    /// connected, silent, gone (not connected for over `gone_after_s`:
    /// removable) or never (has its own token, never connected).
    pub state: AgentState,
    /// The servers bound to its own token; null for an agent on the
    /// shared token.
    pub bound_servers: Option<Vec<String>>,
    /// Reports, events and record batches about servers it does not watch,
    /// refused since the manager started.
    pub refused_reports: u64,
}

impl AgentRow {
    pub const COLUMNS: &'static str =
        "agent_id, host_id, host_name, servers, first_seen_us, last_seen_us";

    /// An agent with its own token that never said hello.
    pub fn never(id: &str) -> AgentRow {
        AgentRow {
            agent_id: id.to_string(),
            host_id: String::new(),
            host_name: String::new(),
            servers: serde_json::Value::Null,
            first_seen_us: 0,
            last_seen_us: 0,
            connected: false,
            pinged: false,
            last_heard_age_secs: None,
            last_heard_unix: None,
            status: Vec::new(),
            state: AgentState::Never,
            bound_servers: None,
            refused_reports: 0,
        }
    }

    /// The stored part; the handler fills in the live part.
    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<AgentRow> {
        Ok(AgentRow {
            agent_id: r.get(0)?,
            host_id: r.get(1)?,
            host_name: r.get(2)?,
            servers: json_column(r.get(3)?),
            first_seen_us: r.get(4)?,
            last_seen_us: r.get(5)?,
            connected: false,
            pinged: false,
            last_heard_age_secs: None,
            last_heard_unix: None,
            status: Vec::new(),
            state: AgentState::Never,
            bound_servers: None,
            refused_reports: 0,
        })
    }
}

/// One logged figure over one interval.
#[derive(Debug, Serialize)]
pub struct MetricRow {
    pub component: String,
    pub metric: String,
    pub interval_start_us: i64,
    pub interval_stop_us: i64,
    pub value: f64,
}

impl MetricRow {
    pub const COLUMNS: &'static str =
        "component, metric, interval_start_us, interval_stop_us, value";

    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<MetricRow> {
        Ok(MetricRow {
            component: r.get(0)?,
            metric: r.get(1)?,
            interval_start_us: r.get(2)?,
            interval_stop_us: r.get(3)?,
            value: r.get(4)?,
        })
    }
}

/// One logged event.
#[derive(Debug, Serialize)]
pub struct EventRow {
    pub agent_id: String,
    pub seq: i64,
    pub origin_id: String,
    pub origin_name: String,
    pub type_name: String,
    pub type_code: i64,
    pub text: String,
    pub time_occurred_us: i64,
    pub time_logged_us: i64,
}

impl EventRow {
    pub const COLUMNS: &'static str = "agent_id, seq, origin_id, origin_name, type_name, \
        type_code, text, time_occurred_us, time_logged_us";

    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
        Ok(EventRow {
            agent_id: r.get(0)?,
            seq: r.get(1)?,
            origin_id: r.get(2)?,
            origin_name: r.get(3)?,
            type_name: r.get(4)?,
            type_code: r.get(5)?,
            text: r.get(6)?,
            time_occurred_us: r.get(7)?,
            time_logged_us: r.get(8)?,
        })
    }
}

/// Declares the request row once: the struct, its column list and its
/// reader, so the three cannot drift apart.
macro_rules! request_row {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// One logged request, every field the web server recorded.
        #[derive(Debug, Serialize)]
        pub struct RequestRow {
            $(pub $field: $ty,)*
        }

        impl RequestRow {
            pub const COLUMNS: &'static str = stringify!($($field),*);

            pub fn from_row(r: &Row<'_>) -> rusqlite::Result<RequestRow> {
                let mut i = 0..;
                Ok(RequestRow {
                    $($field: r.get(i.next().unwrap_or_default())?,)*
                })
            }
        }
    };
}

request_row! {
    id: i64,
    agent_id: String,
    server: String,
    time_logged_us: i64,
    server_endpoint: Option<String>,
    client_endpoint: Option<String>,
    client_host: Option<String>,
    user_name: Option<String>,
    auth_type: Option<String>,
    auth_db_path: Option<String>,
    request_line: Option<String>,
    content_path: Option<String>,
    accept: Option<String>,
    method: Option<String>,
    user_agent: Option<String>,
    connection: Option<String>,
    pragma: Option<String>,
    status: Option<i64>,
    protocol: Option<String>,
    last_modified: Option<i64>,
    content_length: Option<i64>,
    content_type: Option<String>,
    start_time_us: Option<i64>,
    processing_time_us: Option<i64>,
    cookies: Option<String>,
    referer: Option<String>,
    redirect_location: Option<String>,
    aborted: Option<i64>,
    queue_delay_us: Option<i64>,
    logged_at_us: Option<i64>,
}

/// A column that holds JSON text, as JSON (null if it does not parse).
fn json_column(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}
