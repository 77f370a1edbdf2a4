//! A worker's view of what to do: the orders of the latest snapshot (server
//! role) or the front door built from it (interceptor role), falling back to
//! the static configuration until a snapshot arrives. Built once per
//! snapshot version; the request path only reads it (and applies its own
//! epsilon bumps, per worker, without a lock).

use usher_core::model::join_url;
use usher_core::probe::is_probe;
use usher_core::rules::redirectable_method;
use usher_core::snapshot::{AppView, ServerView, Snapshot};
use usher_core::{
    AppMode, FieldMask, FrontDoor, Pick, RedirectRules, SteeringOutcome, BUILT_IN_SORRY_PAGE,
};

use crate::authority::authority_of;
use crate::config::Settings;

/// What one worker acts on.
#[derive(Debug, Clone)]
pub struct View {
    /// Snapshot version applied (0: static configuration only).
    pub version: u64,
    /// Server role: base URL to redirect users to, when ordered.
    pub redirect_target: Option<String>,
    /// Server role: configured rules merged with the snapshot's.
    pub rules: RedirectRules,
    /// Server role: fields to record.
    pub mask: FieldMask,
    /// Server role: path prefixes to record (empty: every request).
    pub report_pages: Vec<String>,
    /// Interceptor role: the front door of the configured app.
    pub door: Option<Door>,
}

/// A front door and, per server, the `IP:port` for the override_host policy.
#[derive(Debug, Clone)]
pub struct Door {
    pub door: FrontDoor,
    pub hosts: Vec<Option<String>>,
}

/// What the interceptor does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer 302 with this location.
    Redirect(String),
    /// Let the request through with the steering header set to this host
    /// (`IP:port`); the request counts as in flight at `server` until the
    /// caller reports it with [`Door::finished`].
    Proxy { host: String, server: String },
    /// Answer 503 with this HTML body.
    Sorry(String),
    /// Answer a plain 503 (no server and no sorry page configured).
    Unavailable,
}

impl View {
    /// The view before any snapshot: configured mask, rules and servers.
    pub fn from_settings(s: &Settings, now_secs: f64) -> View {
        let door = (!s.servers.is_empty()).then(|| Door::new(&static_app(s), now_secs));
        View {
            version: 0,
            redirect_target: None,
            rules: s.rules.clone(),
            mask: s.mask,
            report_pages: Vec::new(),
            door,
        }
    }

    /// The view a snapshot gives. A snapshot without orders clears any
    /// redirect; one that does not name the app keeps the static servers.
    pub fn from_snapshot(s: &Settings, snap: &Snapshot, now_secs: f64) -> View {
        let mut view = View::from_settings(s, now_secs);
        view.version = snap.version;
        if let Some(orders) = &snap.orders {
            view.redirect_target = orders.redirect.as_ref().map(|r| r.target.clone());
            view.rules = merge_rules(&s.rules, &orders.rules);
            if let (Some(m), true) = (orders.field_mask, s.agent.is_some()) {
                view.mask = m;
            }
            view.report_pages = orders.report_pages.clone();
        }
        if let Some(app) = snap.apps.iter().find(|a| a.name == s.app) {
            view.door = Some(Door::new(app, now_secs));
        }
        view
    }

    /// Takes over what the previous view's front door learned (the same
    /// app's servers, by name and URL): requests in flight stay counted.
    pub fn carry_over(&mut self, old: &View) {
        if let (Some(new), Some(old)) = (self.door.as_mut(), old.door.as_ref()) {
            new.door.carry_over(&old.door);
        }
    }

    /// True when a request to `path` is recorded.
    pub fn reports(&self, path: &str) -> bool {
        self.report_pages.is_empty()
            || self
                .report_pages
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }

    /// Server role: where to redirect this request, if anywhere. Only a
    /// `GET` or `HEAD` is ever redirected, never an agent probe, and only
    /// when the rules allow its path and cookie.
    pub fn redirect_for(
        &self,
        method: &str,
        path_and_query: &str,
        cookie: Option<&str>,
    ) -> Option<String> {
        let target = self.redirect_target.as_ref()?;
        if !redirectable_method(method) {
            return None;
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        if is_probe(query) {
            return None;
        }
        self.rules
            .may_redirect(path, cookie)
            .then(|| join_url(target, path_and_query))
    }
}

impl Door {
    fn new(app: &AppView, now_secs: f64) -> Door {
        Door {
            door: FrontDoor::new(app, now_secs),
            hosts: app.servers.iter().map(|s| authority_of(&s.url)).collect(),
        }
    }

    /// Picks for one new user; `fallback_sorry` is the configured page.
    pub fn decide(
        &mut self,
        now_secs: f64,
        draws: [f64; 2],
        path_and_query: &str,
        fallback_sorry: Option<&str>,
    ) -> Decision {
        let sorry = |door: &FrontDoor| {
            door.sorry_page
                .clone()
                .or_else(|| fallback_sorry.map(str::to_string))
        };
        match self.door.pick(now_secs, draws) {
            Pick::Server(i) => {
                let Some(server) = self.door.servers().get(i) else {
                    return Decision::Unavailable;
                };
                match self.door.mode {
                    AppMode::Redirect => Decision::Redirect(join_url(&server.url, path_and_query)),
                    AppMode::Proxy => match self.hosts.get(i).cloned().flatten() {
                        Some(host) => Decision::Proxy {
                            host,
                            server: server.name.clone(),
                        },
                        None => {
                            let name = server.name.clone();
                            self.finished(&name, now_secs, 0.0, SteeringOutcome::Abandoned);
                            Decision::Unavailable
                        }
                    },
                }
            }
            Pick::Disabled => Decision::Sorry(
                sorry(&self.door).unwrap_or_else(|| BUILT_IN_SORRY_PAGE.to_string()),
            ),
            Pick::NoServer => sorry(&self.door).map_or(Decision::Unavailable, Decision::Sorry),
        }
    }
}

impl Door {
    /// Reports how a request let through to `server` ended.
    pub fn finished(&mut self, server: &str, now_secs: f64, took: f64, how: SteeringOutcome) {
        self.door.finished(server, now_secs, took, how);
    }
}

/// The configured servers as an app view (static capacities, no load yet).
fn static_app(s: &Settings) -> AppView {
    AppView {
        name: s.app.clone(),
        enabled: true,
        mode: s.mode,
        epsilon: s.epsilon,
        obsolescence_secs: usher_core::snapshot::default_obsolescence_secs(),
        sorry_page: None,
        servers: s
            .servers
            .iter()
            .map(|c| ServerView {
                name: c.name.clone(),
                url: c.url.clone(),
                capacity: c.capacity,
                dynamic_load: None,
                load_age_secs: 0.0,
                available: true,
                ..Default::default()
            })
            .collect(),
    }
}

/// Configured rules and the snapshot's together: a page either calls
/// stateful stays; the snapshot's allow list and cookie win when set.
pub fn merge_rules(config: &RedirectRules, snap: &RedirectRules) -> RedirectRules {
    let union = |a: &[String], b: &[String]| {
        let mut v = a.to_vec();
        v.extend(b.iter().filter(|x| !a.contains(x)).cloned());
        v
    };
    RedirectRules {
        stateful: union(&config.stateful, &snap.stateful),
        stateful_prefixes: union(&config.stateful_prefixes, &snap.stateful_prefixes),
        allow: if snap.allow.is_empty() {
            config.allow.clone()
        } else {
            snap.allow.clone()
        },
        session_cookie: snap
            .session_cookie
            .clone()
            .or_else(|| config.session_cookie.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn settings(json: &str) -> Settings {
        parse(json.as_bytes()).expect("valid config")
    }

    #[test]
    fn redirects_follow_orders_and_rules() {
        let s = settings(r#"{"role":"server","app":"shop","stateful":["/cart"]}"#);
        let snap = Snapshot::from_json(
            br#"{"version":2,"orders":{"redirect":{"target":"http://127.0.0.1:9/"},
                 "rules":{"stateful_prefixes":["/checkout/"],"session_cookie":"sid"}}}"#,
        )
        .expect("snapshot");
        let v = View::from_snapshot(&s, &snap, 0.0);
        assert_eq!(
            v.redirect_for("GET", "/a?b=1", None),
            Some("http://127.0.0.1:9/a?b=1".into())
        );
        assert_eq!(
            v.redirect_for("HEAD", "/a", None),
            Some("http://127.0.0.1:9/a".into())
        );
        assert_eq!(v.redirect_for("GET", "/cart", None), None);
        assert_eq!(v.redirect_for("GET", "/checkout/pay", None), None);
        assert_eq!(v.redirect_for("GET", "/a", Some("x=1; sid=2")), None);
        assert_eq!(
            View::from_settings(&s, 0.0).redirect_for("GET", "/a", None),
            None
        );
    }

    #[test]
    fn probes_and_other_methods_are_served_where_they_landed() {
        let s = settings(r#"{"role":"server","app":"shop"}"#);
        let snap = Snapshot::from_json(
            br#"{"version":2,"orders":{"redirect":{"target":"http://127.0.0.1:9/"}}}"#,
        )
        .expect("snapshot");
        let v = View::from_snapshot(&s, &snap, 0.0);
        assert_eq!(v.redirect_for("GET", "/health?usher-probe=7", None), None);
        assert_eq!(v.redirect_for("HEAD", "/h?a=1&usher-probe=3", None), None);
        assert_eq!(
            v.redirect_for("GET", "/health?xusher-probe=7", None),
            Some("http://127.0.0.1:9/health?xusher-probe=7".into()),
            "not a probe"
        );
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(v.redirect_for(m, "/", None), None, "{m}");
        }
    }

    #[test]
    fn interceptor_static_then_snapshot() {
        let s = settings(
            r#"{"role":"interceptor","app":"shop","mode":"proxy",
                "servers":[{"name":"a","url":"http://127.0.0.1:81","capacity":1},
                           {"name":"b","url":"http://127.0.0.1:82","capacity":3}]}"#,
        );
        let mut v = View::from_settings(&s, 0.0);
        let door = v.door.as_mut().expect("door");
        assert_eq!(
            door.decide(0.0, [0.1, 0.1], "/", None),
            Decision::Proxy {
                host: "127.0.0.1:81".into(),
                server: "a".into()
            }
        );
        assert_eq!(
            door.decide(0.0, [0.9, 0.9], "/", None),
            Decision::Proxy {
                host: "127.0.0.1:82".into(),
                server: "b".into()
            }
        );
        let snap = Snapshot::from_json(
            br#"{"version":5,"apps":[{"name":"shop","enabled":false,"servers":[]}]}"#,
        )
        .expect("snapshot");
        let mut v = View::from_snapshot(&s, &snap, 0.0);
        let door = v.door.as_mut().expect("door");
        assert_eq!(
            door.decide(0.0, [0.5, 0.5], "/", None),
            Decision::Sorry(BUILT_IN_SORRY_PAGE.into())
        );
        let snap = Snapshot::from_json(
            br#"{"version":6,"apps":[{"name":"shop","enabled":true,"sorry_page":"busy","servers":[
                {"name":"a","url":"http://127.0.0.1:81","capacity":1,"available":false}]}]}"#,
        )
        .expect("snapshot");
        let mut v = View::from_snapshot(&s, &snap, 0.0);
        let door = v.door.as_mut().expect("door");
        assert_eq!(
            door.decide(0.0, [0.5, 0.5], "/", None),
            Decision::Sorry("busy".into())
        );
    }

    #[test]
    fn redirect_mode_joins_the_path() {
        let s = settings(
            r#"{"role":"interceptor","app":"shop",
                "servers":[{"name":"a","url":"http://127.0.0.1:81/","capacity":1}]}"#,
        );
        let mut v = View::from_settings(&s, 0.0);
        let door = v.door.as_mut().expect("door");
        assert_eq!(
            door.decide(0.0, [0.3, 0.3], "/x?y", None),
            Decision::Redirect("http://127.0.0.1:81/x?y".into())
        );
        assert_eq!(
            door.decide(0.0, [0.3, 0.3], "//evil/x", None),
            Decision::Redirect("http://127.0.0.1:81//evil/x".into()),
            "a `//` path stays a path on the configured host"
        );
    }
}
