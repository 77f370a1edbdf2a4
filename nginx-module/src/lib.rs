//! usher inside nginx: a dynamic module for Debian's stock nginx 1.22.
//!
//! One location (or server block) plays one role:
//! - `usher_role server`: time every request, write a record of it into this
//!   worker's shared-memory ring for the host's agent, and redirect users
//!   away when a pushed snapshot says so (never from a stateful page, nor
//!   from one that marked itself with `Usher-Stateful: 1`);
//! - `usher_role interceptor`: the front door, a weighted pick over the
//!   pushed load metrics, answered with a 302 or through `$usher_upstream`.
//!
//! Both roles read the same versioned snapshot, pushed to the location marked
//! `usher_command` and shared by every worker. All rules, formats and
//! selection come from `usher-core`; this crate is the nginx glue.
//!
//! Every handler runs inside [`guard`]: a panic never crosses into nginx, the
//! request goes on as if usher were not there.

mod access;
mod channel;
mod command;
mod conf;
mod directives;
mod in_flight;
mod log_phase;
mod module;
mod net;
mod respond;
mod self_mark;
mod shared;
mod timing;
mod variable;
mod worker;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use module::ngx_http_usher_module;

ngx::ngx_modules!(ngx_http_usher_module);

/// Runs `f`, turning a panic into `fallback` (nginx must keep serving).
pub(crate) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}
