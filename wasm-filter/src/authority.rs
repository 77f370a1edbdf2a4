//! `IP:port` of a server's base URL: the form Envoy's override_host policy
//! matches (used by the view and checked by the config).

/// `IP:port` of a base URL whose host is an IP literal (the form the
/// override_host policy matches); the port defaults from the scheme.
pub fn authority_of(url: &str) -> Option<String> {
    let (rest, default_port) = match url.strip_prefix("http://") {
        Some(r) => (r, 80u16),
        None => (url.strip_prefix("https://")?, 443u16),
    };
    let authority = rest.split('/').next()?;
    let port_of = |p: Option<&str>| match p {
        Some(p) => p.parse::<u16>().ok(),
        None => Some(default_port),
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        if !after.is_empty() && !after.starts_with(':') {
            return None;
        }
        let port = port_of(after.strip_prefix(':'))?;
        return Some(format!("[{inner}]:{port}"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, port_of(Some(p))?),
        None => (authority, default_port),
    };
    host.parse::<std::net::Ipv4Addr>().ok()?;
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            authority_of("http://127.0.0.1:8081"),
            Some("127.0.0.1:8081".into())
        );
        assert_eq!(
            authority_of("http://127.0.0.1/"),
            Some("127.0.0.1:80".into())
        );
        assert_eq!(authority_of("https://[::1]:9/"), Some("[::1]:9".into()));
        assert_eq!(authority_of("https://[::1]"), Some("[::1]:443".into()));
        assert_eq!(authority_of("http://example.com:80"), None);
    }
}
