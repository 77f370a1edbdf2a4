//! `usher ctl`: the operator's command line over the admin API.
//!
//! Size: over 400 lines because it holds the clap command tree of every
//! subcommand and their dispatch; splitting it per area (apps, servers,
//! logs) is open work.

mod client;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use client::{Client, CtlError};

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Base URL of the control plane's admin API.
    #[arg(long, env = "USHER_URL", default_value = "http://127.0.0.1:7900")]
    url: String,
    /// File holding the admin token (`<data_dir>/admin.token`); else the
    /// USHER_TOKEN environment variable.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
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
    /// Hosts the agents run on (latest facts).
    Hosts {
        #[command(flatten)]
        limit: Limit,
    },
    /// Registered agents, whether connected, when last heard, and their
    /// servers' status.
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
struct Limit {
    /// At most this many rows (1..10000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// A duration in whole seconds: `90`, `90s`, `5m`, `2h`, `1d`.
fn duration_secs(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().ok()?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_secs)
}

/// `--since`: a duration back from now (`90s`, `10m`, `2h`, `1d`, plain
/// seconds) or, when it has 13+ digits, a Unix time in microseconds.
fn since_us(text: &str, now_us: u64) -> Result<u64, CtlError> {
    let t = text.trim();
    let bad = || {
        CtlError::Local(format!(
            "--since: not a duration like 90s, 10m, 2h, 1d: {text:?}"
        ))
    };
    if t.len() >= 13 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let secs = duration_secs(t).ok_or_else(bad)?;
    Ok(now_us.saturating_sub(secs.saturating_mul(1_000_000)))
}

/// `--for`: how long a pinned load holds, more than zero seconds; with the
/// duration as the operator wrote it (`90` reads `90s`).
fn pin_secs(text: &str) -> Result<(u64, String), CtlError> {
    let t = text.trim();
    match duration_secs(t) {
        Some(0) => Err(CtlError::Local(
            "--for: must be longer than 0s (or leave it out to pin until --clear)".into(),
        )),
        Some(s) if t.bytes().all(|b| b.is_ascii_digit()) => Ok((s, format!("{t}s"))),
        Some(s) => Ok((s, t.to_string())),
        None => Err(CtlError::Local(format!(
            "--for: not a duration like 90, 90s, 5m, 1h: {text:?}"
        ))),
    }
}

fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Builds `path?k=v&…` from the parameters that are set.
fn query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

#[derive(Debug, Subcommand)]
enum AppCmd {
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
}

#[derive(Debug, Subcommand)]
enum ServerCmd {
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

#[derive(Debug, Subcommand)]
enum WsiCmd {
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

fn token(args: &CtlArgs) -> Result<String, CtlError> {
    read_token(
        args.token_file.as_deref(),
        std::env::var("USHER_TOKEN").ok(),
    )
}

/// The admin token from the file when given, else from `USHER_TOKEN`.
fn read_token(file: Option<&Path>, env: Option<String>) -> Result<String, CtlError> {
    if let Some(path) = file {
        let t = std::fs::read_to_string(path).map_err(|e| {
            CtlError::Local(format!("cannot read token file {}: {e}", path.display()))
        })?;
        let t = t.trim();
        if t.is_empty() {
            return Err(CtlError::Local(format!(
                "token file {} is empty (the control plane writes it as <data_dir>/admin.token)",
                path.display()
            )));
        }
        return Ok(t.to_string());
    }
    match env {
        Some(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Some(_) => Err(CtlError::Local(
            "USHER_TOKEN is empty: set it to the contents of <data_dir>/admin.token".into(),
        )),
        None => Err(CtlError::Local(
            "no admin token: pass --token-file <data_dir>/admin.token or set USHER_TOKEN".into(),
        )),
    }
}

fn seg(name: &str) -> String {
    // Names are [A-Za-z0-9._-]; anything else would be refused by the API,
    // but keep the path well formed whatever was typed.
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What to print after a successful call.
enum Show {
    Apps,
    Servers,
    Wsis,
    Hosts,
    Agents,
    Events,
    Metrics,
    Requests,
    Line(String),
}

fn run(args: &CtlArgs) -> Result<(Value, Show), CtlError> {
    let c = Client::new(&args.url, token(args)?);
    Ok(match &args.what {
        What::Apps => (c.call("GET", "/apps", None)?, Show::Apps),
        What::Servers => (c.call("GET", "/servers", None)?, Show::Servers),
        What::Wsis => (c.call("GET", "/wsis", None)?, Show::Wsis),
        What::Hosts { limit } => (
            c.call(
                "GET",
                &query("/hosts", &[("limit", Some(limit.limit.to_string()))]),
                None,
            )?,
            Show::Hosts,
        ),
        What::Agents { limit } => (
            c.call(
                "GET",
                &query("/agents", &[("limit", Some(limit.limit.to_string()))]),
                None,
            )?,
            Show::Agents,
        ),
        What::Events {
            since,
            component,
            kind,
            limit,
        } => {
            let from = since
                .as_deref()
                .map(|t| since_us(t, now().as_micros() as u64))
                .transpose()?;
            let path = query(
                "/events",
                &[
                    ("component", component.clone()),
                    ("type", kind.clone()),
                    ("from_us", from.map(|v| v.to_string())),
                    ("limit", Some(limit.limit.to_string())),
                ],
            );
            (c.call("GET", &path, None)?, Show::Events)
        }
        What::Metrics {
            component,
            metric,
            since,
            limit,
        } => {
            let from = since
                .as_deref()
                .map(|t| since_us(t, now().as_micros() as u64))
                .transpose()?;
            let path = query(
                "/metrics",
                &[
                    ("component", component.clone()),
                    ("metric", metric.clone()),
                    ("from_us", from.map(|v| v.to_string())),
                    ("limit", Some(limit.limit.to_string())),
                ],
            );
            (c.call("GET", &path, None)?, Show::Metrics)
        }
        What::Requests {
            server,
            status,
            path,
            since,
            probes,
            limit,
        } => {
            let from = since
                .as_deref()
                .map(|t| since_us(t, now().as_micros() as u64))
                .transpose()?;
            let p = query(
                "/requests",
                &[
                    ("server", server.clone()),
                    ("status", status.map(|s| s.to_string())),
                    ("path", path.clone()),
                    ("from_us", from.map(|v| v.to_string())),
                    ("probes", probes.then(|| "true".to_string())),
                    ("limit", Some(limit.limit.to_string())),
                ],
            );
            (c.call("GET", &p, None)?, Show::Requests)
        }
        What::App(cmd) => match cmd {
            AppCmd::Enable { name } => (
                c.call("POST", &format!("/apps/{}/enable", seg(name)), None)?,
                Show::Line(format!("app {name} enabled")),
            ),
            AppCmd::Disable { name } => (
                c.call("POST", &format!("/apps/{}/disable", seg(name)), None)?,
                Show::Line(format!("app {name} disabled: new users get the sorry page")),
            ),
            AppCmd::Add {
                name,
                listen,
                mode,
                sorry_page,
                stateful,
                epsilon,
                obsolescence_secs,
                max_concurrent,
                disabled,
            } => {
                let mut body = json!({"name": name, "listen": listen, "mode": mode, "enabled": !disabled, "stateful": stateful});
                if let Some(v) = sorry_page {
                    body["sorry_page"] = json!(v);
                }
                if let Some(v) = epsilon {
                    body["epsilon"] = json!(v);
                }
                if let Some(v) = obsolescence_secs {
                    body["obsolescence_secs"] = json!(v);
                }
                if let Some(v) = max_concurrent {
                    body["max_concurrent"] = json!(v);
                }
                (
                    c.call("POST", "/apps", Some(&body))?,
                    Show::Line(format!("app {name} added; front door on http://{listen}")),
                )
            }
            AppCmd::Remove { name } => (
                c.call("DELETE", &format!("/apps/{}", seg(name)), None)?,
                Show::Line(format!("app {name} removed")),
            ),
        },
        What::Server(cmd) => match cmd {
            ServerCmd::Enable { name } => (
                c.call("POST", &format!("/servers/{}/enable", seg(name)), None)?,
                Show::Line(format!("server {name} enabled")),
            ),
            ServerCmd::Disable { name } => (
                c.call("POST", &format!("/servers/{}/disable", seg(name)), None)?,
                Show::Line(format!("server {name} disabled")),
            ),
            ServerCmd::Load {
                name,
                value,
                for_,
                clear,
            } => {
                let path = format!("/servers/{}/load", seg(name));
                match value {
                    Some(value) if !clear => {
                        let pin = for_.as_deref().map(pin_secs).transpose()?;
                        let mut body = json!({"value": value});
                        let line = match pin {
                            Some((secs, text)) => {
                                body["for_secs"] = json!(secs);
                                format!("{name} pinned at {value} for {text}")
                            }
                            None => format!("{name} pinned at {value} until cleared"),
                        };
                        (c.call("PUT", &path, Some(&body))?, Show::Line(line))
                    }
                    _ => (
                        c.call("DELETE", &path, None)?,
                        Show::Line(format!("{name}: pin cleared")),
                    ),
                }
            }
            ServerCmd::Redirect { name, target, off } => {
                let t = if *off { Value::Null } else { json!(target) };
                let v = c.call(
                    "PUT",
                    &format!("/servers/{}/redirect", seg(name)),
                    Some(&json!({"target": t})),
                )?;
                let line = match (off, target) {
                    (false, Some(t)) => format!("server {name}: redirecting users to {t}"),
                    _ => format!("server {name}: redirect off"),
                };
                (v, Show::Line(line))
            }
            ServerCmd::Add {
                name,
                app,
                url,
                capacity,
            } => (
                c.call(
                    "POST",
                    "/servers",
                    Some(&json!({"name": name, "app": app, "url": url, "capacity": capacity})),
                )?,
                Show::Line(format!("server {name} added to app {app}")),
            ),
            ServerCmd::Remove { name } => (
                c.call("DELETE", &format!("/servers/{}", seg(name)), None)?,
                Show::Line(format!("server {name} removed")),
            ),
        },
        What::Wsi(cmd) => match cmd {
            WsiCmd::Add {
                name,
                url,
                role,
                app,
                server,
                token,
                wsi_token_file,
            } => {
                let mut body = json!({"name": name, "url": url, "role": role, "app": app});
                if let Some(v) = server {
                    body["server"] = json!(v);
                }
                if let Some(v) = token {
                    body["token"] = json!(v);
                }
                if let Some(v) = wsi_token_file {
                    body["token_file"] = json!(v);
                }
                (
                    c.call("POST", "/wsis", Some(&body))?,
                    Show::Line(format!("WSI {name} added")),
                )
            }
            WsiCmd::Remove { name } => (
                c.call("DELETE", &format!("/wsis/{}", seg(name)), None)?,
                Show::Line(format!("WSI {name} removed")),
            ),
        },
    })
}

pub fn main(args: CtlArgs) -> ExitCode {
    match run(&args) {
        Ok((value, show)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                let text = match show {
                    Show::Apps => output::apps(&value),
                    Show::Servers => output::servers(&value, now().as_secs_f64()),
                    Show::Wsis => output::wsis(&value),
                    Show::Hosts => output::hosts(&value),
                    Show::Agents => output::agents(&value),
                    Show::Events => output::events(&value),
                    Show::Metrics => output::metrics(&value),
                    Show::Requests => output::requests(&value),
                    Show::Line(l) => format!("{l}\n"),
                };
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_help_says() {
        assert_eq!(duration_secs("90"), Some(90));
        assert_eq!(duration_secs("90s"), Some(90));
        assert_eq!(duration_secs("5m"), Some(300));
        assert_eq!(duration_secs("1h"), Some(3600));
        assert_eq!(duration_secs("2d"), Some(172_800));
        for bad in ["", "m", "5x", "-5", "1.5m", "5 m"] {
            assert_eq!(duration_secs(bad), None, "{bad:?}");
        }
        assert_eq!(pin_secs("1h").expect("1h"), (3600, "1h".into()));
        assert_eq!(pin_secs(" 60 ").expect("60"), (60, "60s".into()));
        assert!(pin_secs("0s").is_err());
        assert!(pin_secs("soon")
            .expect_err("bad")
            .to_string()
            .contains("--for"));
        assert_eq!(since_us("10s", 100_000_000).expect("10s"), 90_000_000);
        assert_eq!(
            since_us("1790000000000000", 0).expect("µs"),
            1_790_000_000_000_000
        );
        assert!(since_us("x", 0).is_err());
    }

    #[test]
    fn an_empty_token_file_says_so() {
        let path = std::env::temp_dir().join(format!("usher-ctl-token-{}", std::process::id()));
        std::fs::write(&path, "\n").expect("write");
        let e = read_token(Some(&path), Some("from-env".into())).expect_err("empty");
        assert!(
            e.to_string()
                .starts_with(&format!("token file {} is empty", path.display())),
            "{e}"
        );
        std::fs::write(&path, " s3cret\n").expect("write");
        assert_eq!(read_token(Some(&path), None).expect("token"), "s3cret");
        std::fs::remove_file(&path).expect("remove");
        let e = read_token(Some(&path), None).expect_err("missing");
        assert!(e.to_string().contains("cannot read token file"), "{e}");
        assert_eq!(read_token(None, Some(" t ".into())).expect("env"), "t");
        assert!(read_token(None, Some(" ".into()))
            .expect_err("blank env")
            .to_string()
            .contains("USHER_TOKEN is empty"));
        assert!(read_token(None, None)
            .expect_err("none")
            .to_string()
            .contains("no admin token"));
    }

    #[test]
    fn load_takes_a_value_a_duration_or_clear() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            ctl: CtlArgs,
        }
        let load = |args: &[&str]| {
            let mut all = vec!["usher"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|c| match c.ctl.what {
                What::Server(ServerCmd::Load {
                    value, for_, clear, ..
                }) => (value, for_, clear),
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(
            load(&["server", "load", "c", "500"]).expect("pin"),
            (Some(500), None, false)
        );
        assert_eq!(
            load(&["server", "load", "c", "500", "--for", "60s"]).expect("for"),
            (Some(500), Some("60s".into()), false)
        );
        assert_eq!(
            load(&["server", "load", "c", "--clear"]).expect("clear"),
            (None, None, true)
        );
        assert!(load(&["server", "load", "c"]).is_err());
        assert!(load(&["server", "load", "c", "500", "--clear"]).is_err());
        assert!(load(&["server", "load", "c", "--clear", "--for", "5m"]).is_err());
    }
}
