//! The `usher_*` directives. Each checks its arguments with the same
//! validators the control plane uses and fails `nginx -t` with a message
//! naming the directive and the bad value.
//!
//! Size: one file on purpose: it is the module's whole directive table and
//! its handlers, the list `nginx -t` users read when a directive is refused;
//! each handler is short.

use std::ffi::{c_char, c_void};

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_NOARGS,
    NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_CONF_TAKE3, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::{ngx_conf_log_error, ngx_string};
use usher_core::model::{validate_base_url, validate_capacity, validate_name, AppMode};
use usher_core::snapshot::ServerView;
use usher_core::{FieldMask, RedirectRules};

use crate::conf::{LocConf, MainConf, Role};
use crate::module::Module;

/// Number of directives.
pub const COUNT: usize = 16;

const ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
const SRV_LOC: u32 = NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type Setter = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const fn command(name: ngx_str_t, flags: u32, conf: usize, set: Setter) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: flags as ngx_uint_t,
        set: Some(set),
        conf,
        offset: 0,
        post: std::ptr::null_mut(),
    }
}

/// The directive table (terminated by an empty entry).
pub const fn commands() -> [ngx_command_t; COUNT + 1] {
    const LOC: usize = NGX_HTTP_LOC_CONF_OFFSET;
    [
        command(
            ngx_string!("usher_role"),
            SRV_LOC | NGX_CONF_TAKE1,
            LOC,
            set_role,
        ),
        command(
            ngx_string!("usher_app"),
            SRV_LOC | NGX_CONF_TAKE1,
            LOC,
            set_app,
        ),
        command(
            ngx_string!("usher_record"),
            ANY | NGX_CONF_1MORE,
            LOC,
            set_record,
        ),
        command(
            ngx_string!("usher_ring"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12,
            NGX_HTTP_MAIN_CONF_OFFSET,
            set_ring,
        ),
        command(
            ngx_string!("usher_command"),
            NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
            LOC,
            set_command,
        ),
        command(
            ngx_string!("usher_command_token"),
            ANY | NGX_CONF_TAKE1,
            LOC,
            set_token,
        ),
        command(
            ngx_string!("usher_command_token_file"),
            ANY | NGX_CONF_TAKE1,
            LOC,
            set_token_file,
        ),
        command(
            ngx_string!("usher_stateful"),
            ANY | NGX_CONF_1MORE,
            LOC,
            set_stateful,
        ),
        command(
            ngx_string!("usher_stateful_prefix"),
            ANY | NGX_CONF_1MORE,
            LOC,
            set_stateful_prefix,
        ),
        command(
            ngx_string!("usher_allow"),
            ANY | NGX_CONF_1MORE,
            LOC,
            set_allow,
        ),
        command(
            ngx_string!("usher_session_cookie"),
            ANY | NGX_CONF_TAKE1,
            LOC,
            set_session_cookie,
        ),
        command(
            ngx_string!("usher_server"),
            SRV_LOC | NGX_CONF_TAKE3,
            LOC,
            set_server,
        ),
        command(
            ngx_string!("usher_mode"),
            SRV_LOC | NGX_CONF_TAKE1,
            LOC,
            set_mode,
        ),
        command(
            ngx_string!("usher_sorry_page"),
            SRV_LOC | NGX_CONF_TAKE1,
            LOC,
            set_sorry_page,
        ),
        command(
            ngx_string!("usher_obsolescence"),
            SRV_LOC | NGX_CONF_TAKE1,
            LOC,
            set_obsolescence,
        ),
        command(
            ngx_string!("usher_random_seed"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
            NGX_HTTP_MAIN_CONF_OFFSET,
            set_random_seed,
        ),
        ngx_command_t::empty(),
    ]
}

/// The directive's arguments (without its name) as UTF-8 strings.
///
/// # Safety
/// `cf` must be the configuration context passed to a directive handler.
unsafe fn args(cf: *mut ngx_conf_t) -> Result<(String, Vec<String>), String> {
    // SAFETY: while a directive handler runs, `cf->args` is an array of
    // `ngx_str_t` holding the directive name and its arguments.
    let all: &[ngx_str_t] = unsafe { (*(*cf).args).as_slice() };
    let name = all
        .first()
        .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(all.len().saturating_sub(1));
    for a in all.iter().skip(1) {
        match std::str::from_utf8(a.as_bytes()) {
            Ok(s) => out.push(s.to_string()),
            Err(_) => return Err(format!("\"{name}\": argument is not UTF-8")),
        }
    }
    Ok((name, out))
}

/// Runs a directive body against the location configuration; reports errors.
///
/// # Safety
/// `cf` and `conf` must be what nginx passes to a directive handler whose
/// `conf` slot is this module's `LocConf` (or `MainConf` for `main`).
unsafe fn run<C>(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    body: impl FnOnce(*mut ngx_conf_t, &mut C, &str, &[String]) -> Result<(), String>,
) -> *mut c_char {
    crate::guard(ngx::core::NGX_CONF_ERROR, || {
        // SAFETY: forwarded from the caller's contract.
        let result = unsafe { args(cf) }.and_then(|(name, args)| {
            // SAFETY: `conf` is this module's configuration of type `C`,
            // exclusively ours while the directive is parsed.
            let conf = unsafe { &mut *conf.cast::<C>() };
            body(cf, conf, &name, &args)
        });
        // SAFETY: `cf` is valid (see above).
        if let Some(main) = Module::main_conf_mut(unsafe { &*cf }) {
            main.used = true;
        }
        match result {
            Ok(()) => ngx::core::NGX_CONF_OK,
            Err(msg) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", msg);
                ngx::core::NGX_CONF_ERROR
            }
        }
    })
}

macro_rules! directive {
    ($fn_name:ident, $conf:ty, |$cf:pat_param, $c:ident, $name:ident, $args:ident| $body:block) => {
        unsafe extern "C" fn $fn_name(
            cf: *mut ngx_conf_t,
            _cmd: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            let body = |$cf: *mut ngx_conf_t,
                        $c: &mut $conf,
                        $name: &str,
                        $args: &[String]|
             -> Result<(), String> { $body };
            // SAFETY: nginx calls this with the directive's context and this
            // module's configuration struct for the directive's conf slot.
            unsafe { run::<$conf>(cf, conf, body) }
        }
    };
}

fn once<T>(slot: &Option<T>, name: &str) -> Result<(), String> {
    match slot {
        Some(_) => Err(format!("\"{name}\" directive is duplicate")),
        None => Ok(()),
    }
}

directive!(set_role, LocConf, |cf, c, name, args| {
    once(&c.role, name)?;
    if args[0] == "server" {
        // SAFETY: `cf` is the valid context of this directive.
        if let Some(main) = Module::main_conf_mut(unsafe { &*cf }) {
            main.server_role = true;
        }
    }
    c.role = Some(match args[0].as_str() {
        "server" => Role::Server,
        "interceptor" => Role::Interceptor,
        other => {
            return Err(format!(
                "\"{name}\": unknown role \"{other}\" (expected server or interceptor)"
            ))
        }
    });
    Ok(())
});

directive!(set_app, LocConf, |_, c, name, args| {
    once(&c.app, name)?;
    validate_name("app", &args[0])
        .map_err(|e| format!("\"{name}\": bad application name \"{}\": {e}", args[0]))?;
    c.app = Some(args[0].clone());
    Ok(())
});

directive!(set_record, LocConf, |_, c, name, args| {
    once(&c.record, name)?;
    let mask = FieldMask::from_names(args.iter().map(String::as_str)).map_err(|bad| {
        format!(
            "\"{name}\": unknown field \"{bad}\" (fields: all, {})",
            FieldMask::ALL.names().join(", ")
        )
    })?;
    c.record = Some(mask);
    Ok(())
});

directive!(set_ring, MainConf, |_, c, name, args| {
    once(&c.ring_path, name)?;
    if !args[0].starts_with('/') {
        return Err(format!(
            "\"{name}\": ring file \"{}\" must be an absolute path",
            args[0]
        ));
    }
    c.ring_bytes = match args.get(1) {
        None => crate::conf::DEFAULT_RING_BYTES,
        Some(size) => parse_size(size)
            .filter(|b| b.is_power_of_two() && (4096..=1 << 30).contains(b))
            .ok_or_else(|| {
                format!(
                    "\"{name}\": bad ring size \"{size}\" (a power of two from 4k to 1g, e.g. 1m)"
                )
            })?,
    };
    c.ring_path = Some(args[0].clone());
    Ok(())
});

/// "1m", "64k", "4096" → bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mult)
}

directive!(set_command, LocConf, |cf, c, name, _args| {
    if c.command {
        return Err(format!("\"{name}\" directive is duplicate"));
    }
    c.command = true;
    // SAFETY: `cf` is the valid context of this location block.
    let clcf = NgxHttpCoreModule::location_conf_mut(unsafe { &*cf })
        .ok_or_else(|| format!("\"{name}\": no core location configuration"))?;
    clcf.handler = Some(crate::command::command_handler);
    Ok(())
});

/// The token rule every usher host keeps (`usher_core::token`).
fn check_token(name: &str, token: &str) -> Result<(), String> {
    if !usher_core::token::token_is_acceptable(token) {
        return Err(format!("\"{name}\": {}", usher_core::token::TOKEN_RULE));
    }
    Ok(())
}

directive!(set_token, LocConf, |_, c, name, args| {
    once(&c.token, name)?;
    check_token(name, &args[0])?;
    c.token = Some(args[0].clone());
    Ok(())
});

directive!(set_token_file, LocConf, |cf, c, name, args| {
    once(&c.token, name)?;
    // SAFETY: `cf` is the valid context of this directive.
    let path = unsafe { full_path(cf, &args[0]) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("\"{name}\": cannot read \"{path}\": {e}"))?;
    let token = text.trim();
    check_token(name, token)?;
    c.token = Some(token.to_string());
    Ok(())
});

/// Resolves a relative path against nginx's prefix (`-p`).
///
/// # Safety
/// `cf` must be a valid configuration context.
unsafe fn full_path(cf: *mut ngx_conf_t, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    // SAFETY: `cf->cycle` is the cycle being configured; its prefix is set.
    let prefix = unsafe { (*(*cf).cycle).prefix };
    let prefix = String::from_utf8_lossy(prefix.as_bytes());
    format!("{}/{path}", prefix.trim_end_matches('/'))
}

/// Checks a list of paths the way the snapshot's rules are checked.
fn paths(name: &str, field: &str, args: &[String]) -> Result<Vec<String>, String> {
    let mut rules = RedirectRules::default();
    match field {
        "allow" => rules.allow = args.to_vec(),
        _ => rules.stateful = args.to_vec(),
    }
    rules.validate().map_err(|e| {
        let i: usize = e
            .field()
            .trim_end_matches(']')
            .rsplit('[')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        format!(
            "\"{name}\": bad path \"{}\": must start with '/'",
            args.get(i).map(String::as_str).unwrap_or("")
        )
    })?;
    Ok(args.to_vec())
}

directive!(set_stateful, LocConf, |_, c, name, args| {
    c.stateful
        .get_or_insert_with(Vec::new)
        .extend(paths(name, "stateful", args)?);
    Ok(())
});

directive!(set_stateful_prefix, LocConf, |_, c, name, args| {
    c.stateful_prefixes
        .get_or_insert_with(Vec::new)
        .extend(paths(name, "stateful", args)?);
    Ok(())
});

directive!(set_allow, LocConf, |_, c, name, args| {
    c.allow
        .get_or_insert_with(Vec::new)
        .extend(paths(name, "allow", args)?);
    Ok(())
});

directive!(set_session_cookie, LocConf, |_, c, name, args| {
    once(&c.session_cookie, name)?;
    let rules = RedirectRules {
        session_cookie: Some(args[0].clone()),
        ..Default::default()
    };
    rules
        .validate()
        .map_err(|_| format!("\"{name}\": bad cookie name \"{}\"", args[0]))?;
    c.session_cookie = Some(args[0].clone());
    Ok(())
});

directive!(set_server, LocConf, |_, c, name, args| {
    let (server, url, capacity) = (&args[0], &args[1], &args[2]);
    validate_name("name", server)
        .map_err(|e| format!("\"{name}\": bad server name \"{server}\": {e}"))?;
    validate_base_url("url", url).map_err(|e| format!("\"{name}\": bad URL \"{url}\": {e}"))?;
    let cap: u32 = capacity
        .parse()
        .map_err(|_| format!("\"{name}\": bad capacity \"{capacity}\" (1..10)"))?;
    validate_capacity("capacity", cap)
        .map_err(|_| format!("\"{name}\": bad capacity \"{capacity}\" (1..10)"))?;
    if c.servers.iter().any(|s| &s.name == server) {
        return Err(format!("\"{name}\": server \"{server}\" listed twice"));
    }
    c.servers.push(ServerView {
        name: server.clone(),
        url: url.clone(),
        capacity: cap,
        dynamic_load: None,
        load_age_secs: 0.0,
        available: true,
        ..Default::default()
    });
    Ok(())
});

directive!(set_mode, LocConf, |_, c, name, args| {
    once(&c.mode, name)?;
    c.mode = Some(match args[0].as_str() {
        "redirect" => AppMode::Redirect,
        "proxy" => AppMode::Proxy,
        other => {
            return Err(format!(
                "\"{name}\": unknown mode \"{other}\" (expected redirect or proxy)"
            ))
        }
    });
    Ok(())
});

directive!(set_sorry_page, LocConf, |cf, c, name, args| {
    once(&c.sorry_page, name)?;
    // SAFETY: `cf` is the valid context of this directive.
    let path = unsafe { full_path(cf, &args[0]) };
    let body = std::fs::read_to_string(&path)
        .map_err(|e| format!("\"{name}\": cannot read \"{path}\": {e}"))?;
    if body.len() > usher_core::MAX_SORRY_PAGE_BYTES {
        return Err(format!(
            "\"{name}\": \"{path}\" is larger than {} KiB",
            usher_core::MAX_SORRY_PAGE_BYTES / 1024
        ));
    }
    c.sorry_page = Some(body);
    Ok(())
});

directive!(set_obsolescence, LocConf, |_, c, name, args| {
    once(&c.obsolescence_secs, name)?;
    let secs: f64 = args[0]
        .strip_suffix('s')
        .unwrap_or(&args[0])
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| {
            format!(
                "\"{name}\": bad duration \"{}\" (seconds, e.g. 1200s)",
                args[0]
            )
        })?;
    c.obsolescence_secs = Some(secs);
    Ok(())
});

directive!(set_random_seed, MainConf, |_, c, name, args| {
    once(&c.random_seed, name)?;
    let seed: u64 = args[0]
        .parse()
        .map_err(|_| format!("\"{name}\": bad seed \"{}\" (an unsigned integer)", args[0]))?;
    c.random_seed = Some(seed);
    Ok(())
});
