//! The module's configuration as the directives leave it, and how a
//! location inherits from its server block and `http` block.

use std::ffi::{c_char, c_void};

use ngx::ffi::{ngx_conf_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;
use usher_core::model::AppMode;
use usher_core::snapshot::{default_obsolescence_secs, AppView, ServerView};
use usher_core::{FieldMask, RedirectRules};

/// Fields recorded when no `usher_record` is given.
pub const DEFAULT_FIELDS: &[&str] = &[
    "server_endpoint",
    "client_endpoint",
    "method",
    "content_path",
    "status",
    "content_length",
    "start_time",
    "processing_time",
    "logged_at",
];

/// Bytes per ring when `usher_ring` gives no size.
pub const DEFAULT_RING_BYTES: usize = 1 << 20;

/// `http`-level settings.
#[derive(Debug, Default)]
pub struct MainConf {
    /// `usher_ring PATH [SIZE]`: the record channel file and bytes per ring.
    pub ring_path: Option<String>,
    pub ring_bytes: usize,
    /// True once any usher directive was seen (the module is in use).
    pub used: bool,
    /// True when some server block or location has `usher_role server`
    /// (only then is every request timed from POST_READ).
    pub server_role: bool,
    /// `usher_random_seed N`: fixed seed of the workers' random draws
    /// (worker `i` uses `N + i`), for reproducible tests.
    pub random_seed: Option<u64>,
}

/// What a server block or location plays.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    #[default]
    Off,
    Server,
    Interceptor,
}

/// Server-block / location settings; `None` means "inherit".
#[derive(Debug, Default)]
pub struct LocConf {
    pub role: Option<Role>,
    pub app: Option<String>,
    pub record: Option<FieldMask>,
    /// This location is the command endpoint (not inherited).
    pub command: bool,
    pub token: Option<String>,
    pub stateful: Option<Vec<String>>,
    pub stateful_prefixes: Option<Vec<String>>,
    pub allow: Option<Vec<String>>,
    pub session_cookie: Option<String>,
    /// `usher_server` lines given at this level.
    pub servers: Vec<ServerView>,
    pub mode: Option<AppMode>,
    pub sorry_page: Option<String>,
    /// `usher_obsolescence`: seconds until a dynamic load value has aged out.
    pub obsolescence_secs: Option<f64>,
    /// Filled by the merge: the static redirect rules of this location.
    pub rules: RedirectRules,
    /// Filled by the merge: the interceptor's static defaults.
    pub static_app: Option<AppView>,
}

impl LocConf {
    /// The role, `Off` when none was set.
    pub fn role(&self) -> Role {
        self.role.unwrap_or_default()
    }

    /// Field mask configured here (or the default).
    pub fn record_mask(&self) -> FieldMask {
        self.record.unwrap_or_else(|| {
            FieldMask::from_names(DEFAULT_FIELDS.iter().copied()).unwrap_or_default()
        })
    }

    fn inherit(&mut self, prev: &LocConf) {
        fn take<T: Clone>(mine: &mut Option<T>, prev: &Option<T>) {
            if mine.is_none() {
                mine.clone_from(prev);
            }
        }
        take(&mut self.role, &prev.role);
        take(&mut self.app, &prev.app);
        take(&mut self.record, &prev.record);
        take(&mut self.token, &prev.token);
        take(&mut self.stateful, &prev.stateful);
        take(&mut self.stateful_prefixes, &prev.stateful_prefixes);
        take(&mut self.allow, &prev.allow);
        take(&mut self.session_cookie, &prev.session_cookie);
        take(&mut self.mode, &prev.mode);
        take(&mut self.sorry_page, &prev.sorry_page);
        take(&mut self.obsolescence_secs, &prev.obsolescence_secs);
        if self.servers.is_empty() {
            self.servers.clone_from(&prev.servers);
        }
    }

    /// Builds the derived values; the error is a message for `nginx -t`.
    fn finish(&mut self) -> Result<(), String> {
        self.rules = RedirectRules {
            stateful: self.stateful.clone().unwrap_or_default(),
            stateful_prefixes: self.stateful_prefixes.clone().unwrap_or_default(),
            allow: self.allow.clone().unwrap_or_default(),
            session_cookie: self.session_cookie.clone(),
        };
        self.static_app = None;
        if self.role() == Role::Interceptor && !self.command {
            let Some(app) = self.app.clone() else {
                return Err("\"usher_role interceptor\" needs \"usher_app NAME\"".into());
            };
            self.static_app = Some(AppView {
                name: app,
                enabled: true,
                mode: self.mode.unwrap_or_default(),
                epsilon: 0.0,
                obsolescence_secs: self
                    .obsolescence_secs
                    .unwrap_or_else(default_obsolescence_secs),
                sorry_page: self.sorry_page.clone(),
                servers: self.servers.clone(),
            });
        }
        if self.command && self.token.is_none() {
            return Err(
                "\"usher_command\" needs \"usher_command_token\" or \"usher_command_token_file\""
                    .into(),
            );
        }
        Ok(())
    }
}

/// `merge_loc_conf` for nginx: inherit, then check and derive.
///
/// # Safety
/// nginx passes its configuration context and two `LocConf` pointers created
/// by this module's `create_loc_conf`.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    crate::guard(ngx::core::NGX_CONF_ERROR, || {
        // SAFETY: both pointers are this module's `LocConf`s (see above) and
        // nginx holds no other reference to them during the merge.
        let (prev, conf) = unsafe { (&*prev.cast::<LocConf>(), &mut *conf.cast::<LocConf>()) };
        conf.inherit(prev);
        match conf.finish() {
            Ok(()) => std::ptr::null_mut(),
            Err(msg) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", msg);
                ngx::core::NGX_CONF_ERROR
            }
        }
    })
}
