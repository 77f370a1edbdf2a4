//! TLS for the control channel (`wss://`): which certificate authorities
//! the agent trusts, and the one rule about plain text.
//!
//! With `ca_file` the agent trusts exactly the CAs in that PEM file (a
//! private CA that signed the control plane's certificate); without it,
//! the Mozilla roots compiled in from `webpki-roots` (no network, no system
//! store at build or run time). rustls with ring: no openssl.
//!
//! `ws://` sends the agent token, reports and request records in plain
//! text, so it is refused towards any host that is not loopback unless the
//! operator says `insecure = true`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path}: bad PEM: {source}")]
    BadPem {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a usable CA certificate: {problem}")]
    BadCertificate { path: String, problem: String },
}

/// The certificates of a PEM file, at least one (`usher ctl --ca-file`
/// reads its CA file with this too).
pub fn read_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::BadPem {
            path: shown.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: shown });
    }
    Ok(certs)
}

/// Reads the CA certificates of a PEM file into a root store.
pub fn read_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let shown = path.display().to_string();
    let certs = read_ca_certs(path)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: shown.clone(),
            problem: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The client config the channel dials `wss://` with: the CAs of
/// `ca_file`, else the compiled-in Mozilla roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// The host of a `ws://` or `wss://` URL (brackets of an IPv6 literal
/// removed), or `None` when the URL has none.
pub fn url_host(url: &str) -> Option<String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().ok()?;
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_string())
}

/// True for `localhost`, 127.0.0.0/8 and `::1`: traffic that never leaves
/// the machine.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_loopback() {
        assert_eq!(
            url_host("ws://127.0.0.1:7900/api/v1/agent/channel").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("wss://[::1]:7900/x").as_deref(), Some("::1"));
        assert_eq!(
            url_host("ws://cp.example.com/x").as_deref(),
            Some("cp.example.com")
        );
        assert_eq!(url_host("ws:///x"), None);
        for h in ["127.0.0.1", "127.9.9.9", "::1", "localhost", "LocalHost"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "192.0.2.1",
            "0.0.0.0",
            "10.0.0.1",
            "cp.example.com",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn ca_file_errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let e = read_ca_file(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "just words\n").expect("write");
        let e = read_ca_file(&text).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = read_ca_file(&junk).unwrap_err().to_string();
        assert!(e.contains("not a usable CA certificate"), "{e}");
        // No CA file: the compiled-in roots.
        assert!(client_config(None).is_ok());
    }
}
