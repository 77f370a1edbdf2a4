//! The module's tables for nginx: context (configuration callbacks), the
//! directive list, phase handlers and process hooks.

use std::ffi::c_void;
use std::ptr::{addr_of, addr_of_mut};

use ngx::ffi::{
    ngx_array_push, ngx_command_t, ngx_conf_t, ngx_cycle_t, ngx_http_handler_pt, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_phases_NGX_HTTP_LOG_PHASE,
    ngx_http_phases_NGX_HTTP_POST_READ_PHASE, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};

use crate::conf::{LocConf, MainConf};

/// Marker type carrying the configuration types for the `ngx` crate.
pub(crate) struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module table is a static that nginx only writes during
        // configuration (indexes), before any request is served.
        unsafe { &*addr_of!(ngx_http_usher_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes a valid configuration context.
        crate::guard(ngx::core::Status::NGX_ERROR.into(), || unsafe {
            crate::variable::add_variables(cf)
        })
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes a valid configuration context.
        crate::guard(ngx::core::Status::NGX_ERROR.into(), || unsafe {
            register_handlers(cf)
        })
    }
}

// SAFETY: the main configuration slot of this module holds a `MainConf`
// created by `HttpModule::create_main_conf` for exactly this type.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}

// SAFETY: the location configuration slot holds a `LocConf` created by
// `HttpModule::create_loc_conf` for exactly this type.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

/// Adds the POST_READ (start time), ACCESS (redirect / pick) and LOG (record)
/// handlers.
///
/// # Safety
/// `cf` must be the valid configuration context of `postconfiguration`.
unsafe fn register_handlers(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: the caller passes a valid, exclusive configuration context.
    let cf = unsafe { &mut *cf };
    let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(cf) else {
        return ngx::core::Status::NGX_ERROR.into();
    };
    let phases = [
        (
            ngx_http_phases_NGX_HTTP_POST_READ_PHASE,
            crate::timing::post_read_handler as unsafe extern "C" fn(_) -> _,
        ),
        (
            ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
            crate::access::access_handler,
        ),
        (
            ngx_http_phases_NGX_HTTP_LOG_PHASE,
            crate::log_phase::log_handler,
        ),
    ];
    for (phase, handler) in phases {
        // SAFETY: the phase arrays were created by the core module with
        // elements of type `ngx_http_handler_pt`.
        let h = unsafe { ngx_array_push(&mut cmcf.phases[phase as usize].handlers) }
            .cast::<ngx_http_handler_pt>();
        if h.is_null() {
            return ngx::core::Status::NGX_ERROR.into();
        }
        // SAFETY: `h` points at a fresh element of the array.
        unsafe { *h = Some(handler) };
    }
    ngx::core::Status::NGX_OK.into()
}

static NGX_HTTP_USHER_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(Module::preconfiguration),
    postconfiguration: Some(Module::postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(crate::conf::merge_loc_conf),
};

/// Master process, after the whole configuration was read: create (or keep)
/// the record ring file and the shared snapshot zone.
unsafe extern "C" fn init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    crate::guard(ngx::core::Status::NGX_ERROR.into(), || {
        // SAFETY: nginx passes the cycle being initialised.
        unsafe { crate::channel::init_module(cycle) }
    })
}

/// Each worker at start: pick this worker's ring, arm the snapshot timer.
unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    crate::guard(ngx::core::Status::NGX_OK.into(), || {
        // SAFETY: nginx passes the running cycle.
        unsafe { crate::worker::init_process(cycle) }
    })
}

static mut NGX_HTTP_USHER_COMMANDS: [ngx_command_t; crate::directives::COUNT + 1] =
    crate::directives::commands();

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_usher_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(NGX_HTTP_USHER_MODULE_CTX) as *mut c_void,
    commands: addr_of_mut!(NGX_HTTP_USHER_COMMANDS).cast(),
    type_: NGX_HTTP_MODULE as _,
    init_module: Some(init_module),
    init_process: Some(init_process),
    ..ngx_module_t::default()
};
