//! `$usher_upstream`: the base URL of the server the interceptor picked for
//! this request (proxy mode), for `proxy_pass $usher_upstream;`.

use std::ffi::c_void;

use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_pnalloc, ngx_str_t, NGX_ERROR, NGX_HTTP_VAR_NOCACHEABLE, NGX_OK,
};
use ngx::http::HttpModule;
use ngx::ngx_string;

use crate::module::Module;

/// Per-request context: the picked URL, in the request pool.
#[repr(C)]
struct Ctx {
    upstream: ngx_str_t,
}

/// Registers the variables (preconfiguration).
///
/// # Safety
/// `cf` must be a valid configuration context.
pub unsafe fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    let mut name = ngx_string!("usher_upstream");
    // SAFETY: `cf` is valid; nginx copies the name.
    let v = unsafe { ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as _) };
    if v.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: `v` is the variable nginx just created.
    unsafe {
        (*v).get_handler = Some(get_upstream);
        (*v).data = 0;
    }
    NGX_OK as ngx_int_t
}

/// Stores the picked URL for this request.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn set_upstream(r: *mut ngx_http_request_t, url: &str) {
    // SAFETY: memory from the request pool; the context slot of this module
    // holds either null or a `Ctx` we stored.
    unsafe {
        let ctx = ngx_pnalloc((*r).pool, std::mem::size_of::<Ctx>()).cast::<Ctx>();
        let data = ngx_pnalloc((*r).pool, url.len().max(1)).cast::<u8>();
        if ctx.is_null() || data.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(url.as_ptr(), data, url.len());
        ctx.write(Ctx {
            upstream: ngx_str_t {
                len: url.len(),
                data,
            },
        });
        *(*r).ctx.add(Module::module().ctx_index) = ctx.cast::<c_void>();
    }
}

unsafe extern "C" fn get_upstream(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    crate::guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx passes a valid request and value to fill; our context
        // slot holds null or a `Ctx`.
        unsafe {
            let ctx = (*(*r).ctx.add(Module::module().ctx_index)).cast::<Ctx>();
            match ctx.as_ref() {
                Some(ctx) => {
                    (*v).set_len(ctx.upstream.len as u32);
                    (*v).data = ctx.upstream.data;
                    (*v).set_valid(1);
                    (*v).set_no_cacheable(0);
                    (*v).set_not_found(0);
                }
                None => (*v).set_not_found(1),
            }
        }
        NGX_OK as ngx_int_t
    })
}
