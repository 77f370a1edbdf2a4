//! The clap command tree of `usher ctl`: every subcommand and its options.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Base URL of the control plane's admin API.
    #[arg(long, env = "USHER_URL", default_value = "http://127.0.0.1:7900")]
    pub(super) url: String,
    /// File holding the admin token (`<data_dir>/admin.token`); else the
    /// USHER_TOKEN environment variable.
    #[arg(long)]
    pub(super) token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the control plane's certificate, for
    /// an https:// URL (default: the Mozilla roots compiled in).
    #[arg(long, env = "USHER_CA_FILE")]
    pub(super) ca_file: Option<PathBuf>,
    /// Drive this WSI's command endpoint directly instead of the control
    /// plane (e.g. http://127.0.0.1:8000/usher/command): its snapshot is
    /// read, changed and posted back; --token-file is its command token.
    #[arg(long, value_name = "URL")]
    pub(super) wsi: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub(super) json: bool,
    #[command(subcommand)]
    pub(super) what: What,
}

#[derive(Debug, Subcommand)]
pub(super) enum What {
    /// List applications.
    Apps,
    /// List servers: state, share of new users, load and its age.
    Servers,
    /// List web server interfaces and their last push.
    Wsis,
    /// Change an application.
    #[command(subcommand)]
    App(AppCmd),
    /// Change a server.
    #[command(subcommand)]
    Server(ServerCmd),
    /// Change a web server interface.
    #[command(subcommand)]
    Wsi(WsiCmd),
    /// Issue or revoke an agent's own token.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Hosts the agents run on (latest facts).
    Hosts {
        #[command(flatten)]
        limit: Limit,
    },
    /// Agents: state (connected, silent, gone, never), own or shared
    /// token and bound servers, when last heard, their servers' status.
    Agents {
        #[command(flatten)]
        limit: Limit,
    },
    /// Events from the logging database, newest first.
    Events {
        /// Only since this long ago: 90s, 10m, 2h, 1d (or a Unix time in µs).
        #[arg(long)]
        since: Option<String>,
        /// Only events whose origin id or name is this (agent or server).
        #[arg(long)]
        component: Option<String>,
        /// Only this event type: a name (server_failed) or a code (210).
        #[arg(long = "type")]
        kind: Option<String>,
        #[command(flatten)]
        limit: Limit,
    },
    /// Metric samples (time series), newest first.
    Metrics {
        /// `server:<name>` or `host:<agent>`.
        #[arg(long)]
        component: Option<String>,
        /// e.g. dynamic_load, queue_delay_us, cpu.user.
        #[arg(long)]
        metric: Option<String>,
        /// Only since this long ago: 90s, 10m, 2h, 1d (or a Unix time in µs).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        limit: Limit,
    },
    /// The request log, newest first (without the agents' probes).
    Requests {
        #[arg(long)]
        server: Option<String>,
        /// Only this HTTP status.
        #[arg(long)]
        status: Option<u16>,
        /// Only content paths starting with this.
        #[arg(long)]
        path: Option<String>,
        /// Only since this long ago: 90s, 10m, 2h, 1d (or a Unix time in µs).
        #[arg(long)]
        since: Option<String>,
        /// Include the agents' health probes (`usher-probe=<n>` requests).
        #[arg(long)]
        probes: bool,
        #[command(flatten)]
        limit: Limit,
    },
}

#[derive(Debug, Args)]
pub(super) struct Limit {
    /// At most this many rows (1..10000).
    #[arg(long, default_value_t = 50)]
    pub(super) limit: u32,
}

#[derive(Debug, Subcommand)]
pub(super) enum AppCmd {
    /// Let the front door send users to servers.
    Enable { name: String },
    /// Show the sorry page (503) to every new user.
    Disable { name: String },
    /// Add an application and start its front door.
    Add {
        name: String,
        /// Front door address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: String,
        /// `redirect` or `proxy`.
        #[arg(long, default_value = "redirect")]
        mode: String,
        /// Sorry page file (relative to the control plane's config folder).
        #[arg(long)]
        sorry_page: Option<String>,
        /// A stateful page (repeatable).
        #[arg(long)]
        stateful: Vec<String>,
        /// Load-metric bump per pick.
        #[arg(long)]
        epsilon: Option<f64>,
        /// Seconds for a dynamic load value to age out.
        #[arg(long)]
        obsolescence_secs: Option<f64>,
        /// Concurrent requests the front door serves.
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Remove an application (its servers and WSIs first).
    Remove { name: String },
    /// Set the app's mode, `redirect` or `proxy` (with --wsi only: through
    /// the control plane the mode is given when the app is added).
    Mode { name: String, mode: String },
    /// Show the thresholds and timings the manager acts on for this app;
    /// with `--set`, change some of them (the others are kept).
    Policy {
        name: String,
        /// A key and its new value, e.g. `heavy_ms=800` or
        /// `offload_to=lightest` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ServerCmd {
    /// Put a server back into rotation.
    Enable { name: String },
    /// Take a server out of rotation.
    Disable { name: String },
    /// Pin the dynamic load value L (0..10000, 10000 = idle): measurements
    /// are kept but not applied until `--clear` or the end of `--for`.
    Load {
        name: String,
        /// 0..10000; higher means more spare capacity.
        #[arg(required_unless_present = "clear")]
        value: Option<u32>,
        /// Pin only this long: 90, 90s, 5m, 1h (default: until --clear).
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "clear")]
        for_: Option<String>,
        /// Clear the pin: the measured value applies again.
        #[arg(long, conflicts_with = "value")]
        clear: bool,
    },
    /// Order the server's WSI to redirect users to another server or to
    /// `front-door`; `--off` cancels the order.
    Redirect {
        /// The server whose users are sent away.
        name: String,
        /// Another server of the same app, or `front-door`.
        #[arg(required_unless_present = "off")]
        target: Option<String>,
        /// End the redirect order.
        #[arg(long, conflicts_with = "target")]
        off: bool,
    },
    /// Start the server's process through the agent that watches it
    /// (agent.toml `start`); prints its PID.
    Start { name: String },
    /// Stop the server's process through its agent (its `stop_signal`,
    /// KILL after 5 s).
    Stop {
        name: String,
        /// Stop with this signal instead: TERM, KILL, INT, HUP, QUIT, USR1, USR2.
        #[arg(long)]
        signal: Option<String>,
    },
    /// Stop and start the server's process through its agent; prints the
    /// old and the new PID.
    Restart { name: String },
    /// Send no new users to the server; once no request but probes came
    /// for the quiet period it is drained (and then stopped or restarted
    /// through its agent, if asked).
    Drain {
        name: String,
        /// Quiet period: 90s, 10m, 1h (default: the app's drain_quiet_s).
        #[arg(long, value_name = "DURATION")]
        quiet: Option<String>,
        /// What to do once drained (default: nothing, it stays drained).
        #[arg(long, value_enum)]
        then: Option<Then>,
    },
    /// End a drain (or a refused automatic restart): the server returns to
    /// rotation.
    Undrain { name: String },
    /// Add a server to an application.
    Add {
        name: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        url: String,
        /// Static capacity 1..10.
        #[arg(long)]
        capacity: u32,
    },
    /// Remove a server.
    Remove { name: String },
}

/// The follow-up of a drain, through the server's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Then {
    Stop,
    Restart,
}

impl Then {
    /// The word the admin API takes.
    pub(super) fn api(self) -> &'static str {
        match self {
            Then::Stop => "stop",
            Then::Restart => "restart",
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum WsiCmd {
    /// Register a web server interface to push snapshots to.
    Add {
        name: String,
        /// Command endpoint URL.
        #[arg(long)]
        url: String,
        /// `server` or `interceptor`.
        #[arg(long)]
        role: String,
        #[arg(long)]
        app: String,
        /// For role server: the server it sits in.
        #[arg(long)]
        server: Option<String>,
        /// The endpoint's token.
        #[arg(long, conflicts_with = "wsi_token_file")]
        token: Option<String>,
        /// File with the endpoint's token (as the control plane sees it).
        #[arg(long = "wsi-token-file")]
        wsi_token_file: Option<String>,
    },
    /// Remove a web server interface.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub(super) enum AgentCmd {
    /// Add an agent with its own token, bound to the servers it may report
    /// on; prints the new token once (usher.db keeps only its hash).
    Add {
        id: String,
        /// The servers it may report on, comma-separated: a,b.
        #[arg(long, value_delimiter = ',', required = true)]
        servers: Vec<String>,
    },
    /// Revoke an agent's own token (a connected agent is disconnected) and
    /// remove it from the list; also removes a gone agent on the shared
    /// token.
    Remove { id: String },
}
