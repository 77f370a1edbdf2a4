//! The whole closed loop on loopback, for the `loop_*` tests. Three
//! demo apps, each behind its own real nginx with the usher module (server
//! role, record ring, command endpoint), one `usher agent` reading the three
//! rings and probing through nginx, and `usher control` (built-in front door
//! in redirect mode, the manager on its admin listener, snapshot pushes to
//! the three nginx). Every process runs on free ports in temp folders and is
//! stopped by PID when the `Stack` is dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::agent::{start_agent, AgentBinary};
use crate::control_plane::ControlPlane;
use crate::demo_app::DemoApp;
use crate::http::call;
use crate::nginx::{Nginx, TOKEN};
use crate::poll::eventually;
use crate::ports::{free_port, wait_for_port};
use crate::proc::Proc;

pub const NAMES: [&str; 3] = ["web1", "web2", "web3"];
/// The demo apps' normal service time.
pub const SERVICE_MS: u64 = 10;

/// The whole loop.
pub struct Stack {
    pub apps: Vec<DemoApp>,
    pub nginx: Vec<Nginx>,
    pub cp: ControlPlane,
    pub front_door_port: u16,
    agent: Option<Proc>,
    agent_dir: tempfile::TempDir,
}

impl Stack {
    /// Starts everything and waits until the agent reports every server
    /// with a dynamic load value. `manager` is extra `[manager]` text
    /// (empty: the defaults).
    pub fn start(manager: &str) -> Stack {
        let apps: Vec<DemoApp> = NAMES
            .iter()
            .map(|n| DemoApp::spec(n).workers(8).service_ms(SERVICE_MS).start())
            .collect();
        let nginx: Vec<Nginx> = apps
            .iter()
            .map(|a| {
                Nginx::start(
                    "usher_ring {RING} 1m;",
                    &format!(
                        "usher_role server; usher_app shop;\n\
                         usher_record method request_line content_path status start_time processing_time client_endpoint;\n\
                         location / {{ proxy_pass http://127.0.0.1:{}; }}",
                        a.port
                    ),
                )
            })
            .collect();
        let front_door_port = free_port();
        let mut body = format!(
            "[manager]\n{manager}\n\n[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front_door_port}\"\nmode = \"redirect\"\n"
        );
        for (name, n) in NAMES.iter().zip(&nginx) {
            body.push_str(&format!(
                "\n[[servers]]\nname = \"{name}\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{port}\"\ncapacity = 5\n\
                 \n[[wsis]]\nname = \"ngx-{name}\"\nurl = \"http://127.0.0.1:{port}/usher/command\"\ntoken = \"{TOKEN}\"\nrole = \"server\"\napp = \"shop\"\nserver = \"{name}\"\n",
                port = n.port
            ));
        }
        let cp = ControlPlane::start(&body, &[]);
        wait_for_port(front_door_port, Duration::from_secs(10));
        let agent_token = cp.agent_token();

        let agent_dir = tempfile::tempdir().expect("tempdir");
        let mut text = format!(
            "agent_id = \"loop-agent\"\ndata_dir = \"{data}\"\ncontrol_url = \"ws://127.0.0.1:{admin}/api/v1/agent/channel\"\ntoken = \"{agent_token}\"\n\
             [records]\nbatch_ms = 200\n",
            data = agent_dir.path().join("data").display(),
            admin = cp.admin_port,
        );
        for (name, n) in NAMES.iter().zip(&nginx) {
            text.push_str(&format!(
                "[[servers]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\nring = \"{ring}\"\nprobe_body = \"ok {name}\"\n",
                port = n.port,
                ring = n.ring.display()
            ));
        }
        let agent = start_agent(agent_dir.path(), &text, AgentBinary::Usher);
        let stack = Stack {
            apps,
            nginx,
            cp,
            front_door_port,
            agent: Some(agent),
            agent_dir,
        };
        let ready = eventually(Duration::from_secs(15), || {
            let servers = stack.servers();
            NAMES.iter().all(|n| {
                servers
                    .get(*n)
                    .is_some_and(|s| s["dynamic_load"].as_u64().is_some())
            })
        });
        assert!(
            ready.is_some(),
            "the loop did not report every server's load within 15 s: {:?}\n--- agent log:\n{}\n--- control log:\n{}",
            stack.servers(),
            stack.agent_log(),
            stack.cp.log()
        );
        stack
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.agent_dir.path().join("agent.log")).unwrap_or_default()
    }

    /// `GET /api/v1/servers` by name.
    pub fn servers(&self) -> BTreeMap<String, Value> {
        let v = self.cp.api_ok("GET", "/api/v1/servers", None);
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| Some((s["name"].as_str()?.to_string(), s)))
            .collect()
    }

    /// Which server (by name) a front-door Location points at.
    pub fn server_of(&self, location: &str) -> Option<&'static str> {
        NAMES
            .iter()
            .zip(&self.nginx)
            .find(|(_, n)| location.starts_with(&format!("http://127.0.0.1:{}/", n.port)))
            .map(|(name, _)| *name)
    }

    /// Sends `n` new-user requests to the front door; counts the referrals
    /// per server (every answer must be a redirect to one of them).
    pub fn referrals(&self, agent: &ureq::Agent, n: usize) -> BTreeMap<&'static str, usize> {
        let url = format!("http://127.0.0.1:{}/", self.front_door_port);
        let mut counts: BTreeMap<&'static str, usize> = NAMES.iter().map(|n| (*n, 0)).collect();
        for _ in 0..n {
            let r = call(agent.get(&url), None);
            assert!(
                (300..400).contains(&r.status),
                "front door answered {} {}",
                r.status,
                r.body
            );
            let loc = r.location.as_deref().unwrap_or_default();
            let s = self
                .server_of(loc)
                .unwrap_or_else(|| panic!("Location {loc:?} names no server"));
            *counts.entry(s).or_default() += 1;
        }
        counts
    }

    /// Admin API GET as JSON (asserting 200).
    pub fn get(&self, path: &str) -> Value {
        self.cp.api_ok("GET", path, None)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.stop();
        }
        self.cp.stop();
    }
}
