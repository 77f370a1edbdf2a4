//! Small readers of nginx request data: addresses, headers, strings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ngx::ffi::{ngx_http_request_t, ngx_str_t, ngx_table_elt_t};

/// The bytes of an `ngx_str_t` (empty for a null pointer).
pub fn bytes(s: &ngx_str_t) -> &[u8] {
    if s.data.is_null() || s.len == 0 {
        return &[];
    }
    s.as_bytes()
}

/// An `ngx_str_t` as text (lossy).
pub fn text(s: &ngx_str_t) -> String {
    String::from_utf8_lossy(bytes(s)).into_owned()
}

/// Converts a C socket address.
///
/// # Safety
/// `sa` must be null or point at a socket address of its family's size.
pub unsafe fn sockaddr(sa: *const ngx::ffi::sockaddr) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the family field is at the start of every sockaddr; the
    // specific struct is read only for its own family.
    unsafe {
        let sa = sa.cast::<libc::sockaddr>();
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let v4 = &*sa.cast::<libc::sockaddr_in>();
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
            }
            libc::AF_INET6 => {
                let v6 = &*sa.cast::<libc::sockaddr_in6>();
                let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(v6.sin6_port)))
            }
            _ => None,
        }
    }
}

/// True when the client connected over loopback (or a Unix socket).
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn client_is_loopback(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: a valid request has a valid connection and client address.
    unsafe {
        let c = (*r).connection;
        let sa = (*c).sockaddr;
        if !sa.is_null() && i32::from((*sa.cast::<libc::sockaddr>()).sa_family) == libc::AF_UNIX {
            return true;
        }
        match sockaddr(sa) {
            Some(a) => match a.ip() {
                IpAddr::V4(ip) => ip.is_loopback(),
                IpAddr::V6(ip) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            },
            None => false,
        }
    }
}

/// Value of a single request header element.
///
/// # Safety
/// `h` must be null or a valid header element.
pub unsafe fn header<'a>(h: *const ngx_table_elt_t) -> Option<&'a [u8]> {
    // SAFETY: caller's contract; the value lives in the request pool, which
    // outlives every use here (all within one handler call).
    unsafe { h.as_ref().map(|h| bytes(&*std::ptr::addr_of!(h.value))) }
}

/// All `Cookie` headers of the request joined with "; ".
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn cookies(r: *mut ngx_http_request_t) -> Option<String> {
    // SAFETY: in nginx 1.22 `headers_in.cookies` is an array of pointers to
    // header elements, filled while the headers were parsed.
    unsafe {
        let arr = &(*r).headers_in.cookies;
        if arr.elts.is_null() || arr.nelts == 0 {
            return None;
        }
        let elts: &[*mut ngx_table_elt_t] = arr.as_slice();
        let mut out = String::new();
        for h in elts {
            if let Some(v) = header(*h) {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(&String::from_utf8_lossy(v));
            }
        }
        Some(out)
    }
}
