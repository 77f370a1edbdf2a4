//! `usher ctl`: the operator's command line over the admin API.
//!
//! [`args`] is the command tree, [`parse`] reads durations and builds
//! queries, [`token`] finds the admin token, [`client`] calls the API and
//! [`output`] prints tables; [`process`] sends process orders (start, stop,
//! restart); [`acts`] orders the manager's actions (drain, undrain, an
//! app's policy); this file maps each subcommand to its call.
//!
//! Size: about 90 lines are unit tests; the mapping itself is under 360.

mod acts;
mod args;
mod client;
mod output;
mod parse;
mod process;
mod token;
mod wsi;

use std::process::ExitCode;

use serde_json::{json, Value};

pub use args::CtlArgs;
use args::{AgentCmd, AppCmd, ServerCmd, What, WsiCmd};
use client::{Client, CtlError};
use parse::{now, pin_secs, query, seg, since_us};
use token::token;

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
    Policy,
    Line(String),
}

fn run(args: &CtlArgs) -> Result<(Value, Show), CtlError> {
    if let Some(url) = &args.wsi {
        return wsi::run(args, url);
    }
    let c = Client::with_ca_file(&args.url, token(args)?, args.ca_file.as_deref())?;
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
            AppCmd::Policy { name, set } => (acts::policy(&c, name, set)?, Show::Policy),
            AppCmd::Mode { name, .. } => {
                return Err(CtlError::Local(format!(
                    "app mode {name}: only with --wsi (through the control plane the mode \
                     is given when the app is added: app add --mode)"
                )))
            }
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
            ServerCmd::Start { name } => {
                process::order(&c, "start", name, None).map(|(v, line)| (v, Show::Line(line)))?
            }
            ServerCmd::Stop { name, signal } => process::order(&c, "stop", name, signal.as_deref())
                .map(|(v, line)| (v, Show::Line(line)))?,
            ServerCmd::Restart { name } => {
                process::order(&c, "restart", name, None).map(|(v, line)| (v, Show::Line(line)))?
            }
            ServerCmd::Drain { name, quiet, then } => {
                acts::drain(&c, name, quiet.as_deref(), *then)
                    .map(|(v, line)| (v, Show::Line(line)))?
            }
            ServerCmd::Undrain { name } => {
                acts::undrain(&c, name).map(|(v, line)| (v, Show::Line(line)))?
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
        What::Agent(cmd) => match cmd {
            AgentCmd::Add { id, servers } => {
                let v = c.call(
                    "POST",
                    "/agents",
                    Some(&json!({"id": id, "servers": servers})),
                )?;
                let token = v.get("token").and_then(Value::as_str).unwrap_or("?");
                let line = format!(
                    "agent {id} added, bound to {}\ntoken (shown only now; put it in the agent's token_file):\n{token}",
                    servers.join(", ")
                );
                (v, Show::Line(line))
            }
            AgentCmd::Remove { id } => {
                let v = c.call("DELETE", &format!("/agents/{}", seg(id)), None)?;
                let mut line = format!("agent {id} removed");
                if v.get("revoked").and_then(Value::as_bool) == Some(true) {
                    line.push_str("; its token is revoked");
                }
                if v.get("disconnected").and_then(Value::as_bool) == Some(true) {
                    line.push_str("; it was disconnected");
                }
                (v, Show::Line(line))
            }
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
                    Show::Policy => output::policy(&value),
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
    use super::parse::duration_secs;
    use super::token::read_token;
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
