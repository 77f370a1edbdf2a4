//! `usher watch`'s options, and their check into a [`WatchConfig`].
//!
//! Each number of seconds is checked by clap as it is parsed, so a bad
//! value is reported naming its option, with exit code 2. What needs two
//! options at once (the first wait above the ceiling) is checked by
//! [`WatchArgs::validate`], which the caller also turns into exit code 2.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use usher_core::backoff::Backoff;

/// The longest wait any option accepts: a day. A larger value is almost
/// surely a typo (milliseconds for seconds), and would look like a hang.
const MAX_SECONDS: f64 = 86_400.0;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Wait before the first restart after a failure, in seconds; each quick
    /// failure in a row doubles it (up to --max-delay).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = seconds, allow_negative_numbers = true)]
    initial_delay: Duration,

    /// Constant wait once --max-attempts quick failures in a row are used
    /// up, and the ceiling of every wait, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds, allow_negative_numbers = true)]
    max_delay: Duration,

    /// How many failures in a row get a growing wait (A_max); after that the
    /// wait is --max-delay.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    max_attempts: u32,

    /// A run at least this long (seconds) counts as healthy: the next
    /// failure waits --initial-delay again.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds, allow_negative_numbers = true)]
    healthy_after: Duration,

    /// After forwarding SIGTERM/SIGINT, how long (seconds) the component
    /// may take to exit before it is sent SIGKILL.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds, allow_negative_numbers = true)]
    stop_timeout: Duration,

    /// Append every event to this file as one JSON object a line
    /// (created with mode 0600 if missing); see docs/watch.md.
    #[arg(long, value_name = "PATH")]
    events_file: Option<PathBuf>,

    /// Keep the running component's PID in this file (written at each
    /// start, removed when it exits).
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,

    /// The component's name in events and logs (default: CMD's file name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// The component to run, after `--`: the program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Checked options: what the watcher runs and how.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub backoff: Backoff,
    pub stop_timeout: Duration,
    pub events_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Options that parse one by one but do not fit together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("--initial-delay ({initial:?}) is above --max-delay ({max:?})")]
    InitialAboveMax { initial: Duration, max: Duration },
    #[error("no command to run: give it after `--` (usher watch -- CMD [ARGS...])")]
    NoCommand,
}

impl WatchArgs {
    /// The checked configuration, or which options disagree.
    pub fn validate(self) -> Result<WatchConfig, ArgsError> {
        if self.initial_delay > self.max_delay {
            return Err(ArgsError::InitialAboveMax {
                initial: self.initial_delay,
                max: self.max_delay,
            });
        }
        let mut command = self.command.into_iter();
        let program = command.next().ok_or(ArgsError::NoCommand)?;
        let name = self.name.unwrap_or_else(|| default_name(&program));
        Ok(WatchConfig {
            backoff: Backoff {
                initial: self.initial_delay,
                max: self.max_delay,
                max_attempts: self.max_attempts,
                healthy_after: self.healthy_after,
            },
            stop_timeout: self.stop_timeout,
            events_file: self.events_file,
            pid_file: self.pid_file,
            name,
            program,
            args: command.collect(),
        })
    }
}

/// The last path component of the program (`/usr/bin/usher` → `usher`).
fn default_name(program: &OsString) -> String {
    std::path::Path::new(program)
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// A number of seconds (`0.2`, `30`): more than 0, at most a day.
fn seconds(s: &str) -> Result<Duration, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds (e.g. 0.5 or 30): {s:?}"))?;
    if !(n > 0.0 && n <= MAX_SECONDS) {
        return Err(format!(
            "must be more than 0 and at most {MAX_SECONDS} seconds, not {s}"
        ));
    }
    Ok(Duration::from_secs_f64(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        watch: WatchArgs,
    }

    fn parse(args: &[&str]) -> Result<WatchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("watch").chain(args.iter().copied())).map(|c| c.watch)
    }

    #[test]
    fn defaults_and_command_after_the_double_dash() {
        let cfg = parse(&["--", "/usr/bin/usher", "control", "--config", "u.toml"])
            .expect("parse")
            .validate()
            .expect("valid");
        assert_eq!(cfg.backoff.initial, Duration::from_secs(1));
        assert_eq!(cfg.backoff.max, Duration::from_secs(60));
        assert_eq!(cfg.backoff.max_attempts, 5);
        assert_eq!(cfg.backoff.healthy_after, Duration::from_secs(10));
        assert_eq!(cfg.stop_timeout, Duration::from_secs(10));
        assert_eq!(cfg.name, "usher");
        assert_eq!(cfg.program, "/usr/bin/usher");
        assert_eq!(cfg.args, ["control", "--config", "u.toml"]);
        assert_eq!(cfg.events_file, None);
    }

    #[test]
    fn fractions_of_a_second_and_a_name() {
        let cfg = parse(&[
            "--initial-delay",
            "0.2",
            "--max-delay",
            "1",
            "--name",
            "cp",
            "--",
            "true",
        ])
        .expect("parse")
        .validate()
        .expect("valid");
        assert_eq!(cfg.backoff.initial, Duration::from_millis(200));
        assert_eq!(cfg.name, "cp");
    }

    #[test]
    fn a_bad_value_names_its_option_and_exits_2() {
        for (opt, value) in [
            ("--initial-delay", "abc"),
            ("--max-delay", "0"),
            ("--healthy-after", "-1"),
            ("--stop-timeout", "NaN"),
            ("--max-delay", "1e9"),
            ("--max-attempts", "-3"),
        ] {
            // `--opt=value`: a separate "-1" would be taken for a flag.
            let arg = format!("{opt}={value}");
            let err = parse(&[&arg, "--", "true"]).expect_err(opt);
            assert_eq!(err.exit_code(), 2, "{opt} {value}");
            assert!(err.to_string().contains(opt), "{opt}: {err}");
        }
    }

    #[test]
    fn the_command_is_required_after_the_double_dash() {
        assert_eq!(parse(&[]).expect_err("no command").exit_code(), 2);
        // A negative number reaches the check (not "unexpected argument '-1'").
        let err = parse(&["--initial-delay", "-1", "--", "true"]).expect_err("negative");
        assert!(err.to_string().contains("must be more than 0"), "{err}");
        // Without `--` the program would be taken for an option value or refused.
        assert!(parse(&["sleep", "1"]).is_err());
    }

    #[test]
    fn initial_above_max_is_refused() {
        let err = parse(&["--initial-delay", "5", "--max-delay", "1", "--", "true"])
            .expect("parse")
            .validate()
            .expect_err("initial above max");
        assert!(matches!(err, ArgsError::InitialAboveMax { .. }));
        assert!(err.to_string().contains("--initial-delay"));
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds(" 30 "), Ok(Duration::from_secs(30)));
        assert!(seconds("86400").is_ok());
        for bad in ["", "x", "0", "-0.1", "inf", "NaN", "86401"] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }
}
