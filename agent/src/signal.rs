//! Signal names as the configuration and the control plane spell them
//! (`TERM`, `SIGTERM`, ...), and sending one to a process. Its own module so
//! that the config (which checks `stop_signal`) and process control (which
//! sends it) both use it without importing each other.

use rustix::process::{kill_process, Pid, Signal};

/// The signals a server may be stopped with.
const SIGNALS: [(&str, Signal); 7] = [
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("KILL", Signal::KILL),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("TERM", Signal::TERM),
];

/// The signal of a name (`TERM`, `SIGTERM`, ...).
pub fn signal(name: &str) -> Option<Signal> {
    let name = name.trim_start_matches("SIG");
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Signal number of a name (`TERM`, `SIGTERM`, ...).
pub fn signal_number(name: &str) -> Option<i32> {
    signal(name).map(Signal::as_raw)
}

/// Sends `sig` to process `pid` with the kill(2) system call.
pub fn send(pid: u32, sig: Signal) -> Result<(), String> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("kill {pid}: not a process id"))?;
    kill_process(target, sig).map_err(|e| format!("kill -{} {pid}: {e}", sig.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_linux_numbers() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("TERM"), Some(15));
        assert_eq!(signal_number("KILL"), Some(9));
        assert_eq!(signal_number("HUP"), Some(1));
        assert_eq!(signal_number("USR2"), Some(12));
        assert_eq!(signal_number("BOGUS"), None);
        assert_eq!(signal_number(""), None);
    }

    #[test]
    fn sending_to_no_process_is_an_error() {
        assert!(send(0, Signal::TERM).is_err(), "pid 0 is refused");
        assert!(send(u32::MAX, Signal::TERM).is_err());
    }
}
