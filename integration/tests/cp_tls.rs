//! TLS between the agent and the control plane (issue 10, "TLS (rustls)"):
//!
//! * the real `usher control` with `[control.tls]` serves the admin API
//!   over https and the agent channel over wss (plain http to it fails);
//! * the real `usher agent` with a `wss://` control_url and the test CA in
//!   `ca_file` connects: `usher ctl --ca-file` lists it connected;
//! * an agent trusting only the built-in roots, or another CA, never
//!   connects and logs a certificate error; `usher ctl` without the CA
//!   fails the same way;
//! * `ws://` to a non-loopback address is refused at the config check,
//!   naming the file and `control_url`, unless `insecure = true` (checked
//!   with the agent's own config loader: nothing dials 192.0.2.1).
//!
//! The CA and the server certificate (127.0.0.1, localhost) are made here,
//! at test time, with rcgen.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use usher_integration::{
    agent_config, eventually, http, start_agent, AgentBinary, Artifact, ControlPlane,
};

/// A CA, as (certificate, key), its certificate also as PEM.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA cert");
        TestCa { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
    fn server(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params")
                .signed_by(&key, &self.cert, &self.key)
                .expect("server cert");
        (cert.pem(), key.serialize_pem())
    }
}

/// `usher ctl --url https://… --token-file … [--ca-file CA] --json agents`.
fn ctl_agents(cp: &ControlPlane, ca: Option<&Path>) -> Output {
    let mut cmd = Command::new(Artifact::Usher.path());
    cmd.arg("ctl")
        .arg("--url")
        .arg(format!("https://127.0.0.1:{}", cp.admin_port))
        .arg("--token-file")
        .arg(cp.dir.path().join("var/admin.token"))
        .env_remove("USHER_TOKEN")
        .env_remove("USHER_CA_FILE");
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    cmd.args(["--json", "agents"])
        .output()
        .expect("run usher ctl")
}

/// The agents the control plane lists as connected (over https with `ca`).
fn connected_agents(cp: &ControlPlane, ca: &Path) -> Vec<String> {
    let out = ctl_agents(cp, Some(ca));
    assert!(
        out.status.success(),
        "usher ctl over https: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ctl --json");
    let list = v
        .as_array()
        .or_else(|| v["agents"].as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter(|a| a["connected"] == true)
        .filter_map(|a| a["agent_id"].as_str().map(str::to_string))
        .collect()
}

/// An agent config over wss:// with `ca_file` (or none), id `id`.
fn wss_agent(dir: &Path, cp: &ControlPlane, id: &str, ca: Option<&Path>) -> String {
    let mut extra = String::new();
    if let Some(ca) = ca {
        extra = format!("ca_file = \"{}\"\n", ca.display());
    }
    agent_config(dir, cp.admin_port, &cp.agent_token(), &[], None)
        .replace("ws://", "wss://")
        .replace("agent_id = \"agent-1\"", &format!("agent_id = \"{id}\""))
        .replace(
            "reconnect_max_ms = 500\n",
            &format!("reconnect_max_ms = 500\n{extra}"),
        )
}

#[test]
fn agent_reaches_the_control_plane_over_wss_only_with_the_right_ca() {
    let ca = TestCa::new("usher test CA");
    let other = TestCa::new("some other CA");
    let (cert, key) = ca.server();
    let cp = start_tls_cp(&cert, &key, &ca, &other);
    let ca_file = cp.dir.path().join("ca.pem");
    let other_ca = cp.dir.path().join("other-ca.pem");

    let log = cp.log();
    assert!(
        log.contains(&format!(
            "admin API on https://127.0.0.1:{}/api/v1/",
            cp.admin_port
        )) && log.contains(&format!(
            "agent channel wss://127.0.0.1:{}/api/v1/agent/channel",
            cp.admin_port
        )),
        "start-up log: {log}"
    );
    // Plain http to the https listener gets no admin API answer.
    let plain = http()
        .get(&format!("http://127.0.0.1:{}/api/v1/agents", cp.admin_port))
        .call();
    assert!(
        !matches!(&plain, Ok(r) if r.status() == 200),
        "plain http answered: {plain:?}"
    );
    // usher ctl without the CA: a certificate error, not an answer.
    let out = ctl_agents(&cp, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("certificate"),
        "usher ctl without --ca-file: {err}"
    );
    assert!(connected_agents(&cp, &ca_file).is_empty());

    let good_dir = tempfile::tempdir().expect("tempdir");
    let no_ca_dir = tempfile::tempdir().expect("tempdir");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let good = start_agent(
        good_dir.path(),
        &wss_agent(good_dir.path(), &cp, "agent-tls", Some(&ca_file)),
        AgentBinary::Usher,
    );
    let no_ca = start_agent(
        no_ca_dir.path(),
        &wss_agent(no_ca_dir.path(), &cp, "agent-roots", None),
        AgentBinary::Usher,
    );
    let wrong = start_agent(
        other_dir.path(),
        &wss_agent(other_dir.path(), &cp, "agent-other-ca", Some(&other_ca)),
        AgentBinary::Standalone,
    );

    let took = eventually(Duration::from_secs(15), || {
        connected_agents(&cp, &ca_file) == ["agent-tls"]
    });
    assert!(
        took.is_some(),
        "agent-tls not listed as connected over wss; agent log:\n{}\ncontrol log:\n{}",
        good.log_text(),
        cp.log()
    );
    assert!(good.log_text().contains(&format!(
        "control channel to wss://127.0.0.1:{}",
        cp.admin_port
    )));

    // The other two try (and retry) but fail at the certificate.
    for (name, agent) in [("built-in roots", &no_ca), ("other CA", &wrong)] {
        let failed = eventually(Duration::from_secs(10), || {
            let log = agent.log_text();
            log.contains("invalid peer certificate") && log.contains("UnknownIssuer")
        });
        assert!(
            failed.is_some(),
            "{name}: no certificate error logged:\n{}",
            agent.log_text()
        );
        assert!(!agent.log_text().contains("open;"), "{name} connected");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(connected_agents(&cp, &ca_file), ["agent-tls"]);
    eprintln!("agent-tls connected over wss after {took:?}");
}

/// `usher control` with `[control.tls]` from `tls/cert.pem`, `tls/key.pem`,
/// and the two CA files beside the config.
fn start_tls_cp(cert: &str, key: &str, ca: &TestCa, other: &TestCa) -> ControlPlane {
    // Relative paths are against the config file's folder, where the
    // fixture writes the files.
    ControlPlane::start_with(
        "tls = { cert_file = \"tls-cert.pem\", key_file = \"tls-key.pem\" }",
        "",
        &[
            ("tls-cert.pem", cert),
            ("tls-key.pem", key),
            ("ca.pem", &ca.pem()),
            ("other-ca.pem", &other.pem()),
        ],
    )
}

#[test]
fn plain_text_to_a_non_loopback_control_plane_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = agent_config(dir.path(), 7900, "agent-token", &[], None)
        .replace("127.0.0.1:7900", "192.0.2.1:7900");

    // The real binary stops at the config check (exit 2), naming the file
    // and the key; it never dials.
    let mut agent = start_agent(dir.path(), &base, AgentBinary::Usher);
    let exited = eventually(Duration::from_secs(10), || agent.exit_status().is_some());
    assert!(
        exited.is_some(),
        "the agent did not stop at its config check"
    );
    assert_eq!(agent.exit_status().and_then(|s| s.code()), Some(2));
    let log = agent.log_text();
    let path = dir.path().join("agent.toml");
    assert!(
        log.contains(&format!(
            "{}: control_url: ws:// to 192.0.2.1, which is not a loopback address",
            path.display()
        )),
        "{log}"
    );

    // With insecure = true the same file passes the check the binary runs
    // (the agent's own loader), so nothing here connects anywhere.
    let insecure = base.replace(
        "reconnect_max_ms = 500\n",
        "reconnect_max_ms = 500\ninsecure = true\n",
    );
    std::fs::write(&path, &insecure).expect("write");
    let cfg = usher_agent::AgentConfig::load(&path).expect("insecure = true is accepted");
    assert!(cfg.insecure);
    assert_eq!(cfg.control_url, "ws://192.0.2.1:7900/api/v1/agent/channel");

    // wss:// with a CA file that is not there: refused at start, naming it.
    let missing = dir.path().join("missing-ca.pem");
    let tls = base.replace("ws://", "wss://").replace(
        "reconnect_max_ms = 500\n",
        &format!(
            "reconnect_max_ms = 500\nca_file = \"{}\"\n",
            missing.display()
        ),
    );
    std::fs::write(&path, &tls).expect("write");
    let e = usher_agent::AgentConfig::load(&path)
        .expect_err("a missing CA file")
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: ca_file: cannot read {}",
            path.display(),
            missing.display()
        )),
        "{e}"
    );
}
