//! `[control.tls]`: the certificate and key the admin listener (admin API
//! and agent channel) serves https / wss with.
//!
//! Both files are read and checked when the config is, so a bad one stops
//! `usher control` at start with the file and key named, instead of warp
//! failing at bind. The check includes a TLS handshake in memory between
//! a server with this pair and a client that verifies the server's
//! signature against the certificate's public key: that is how a key that
//! does not belong to the certificate is caught (rustls 0.22 has no direct
//! "keys match" call).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig};
use rustls::{ServerConnection, SignatureScheme};
use serde::Deserialize;

/// `[control.tls]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    /// PEM certificate chain (the server's certificate first); relative to
    /// the config file's folder.
    pub cert_file: String,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1), alone
    /// in its file; relative to the config file's folder.
    pub key_file: String,
}

/// A checked certificate and key, as PEM bytes for warp.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    /// The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// What is wrong with the pair; `key()` says which config key to name.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")]
    NoKey { path: String },
    #[error("{path}: {problem}")]
    BadPem {
        key: &'static str,
        path: String,
        problem: String,
    },
    #[error("{path} does not belong to the certificate in {cert}: {problem}")]
    Mismatch {
        path: String,
        cert: String,
        problem: String,
    },
}

impl TlsError {
    /// The key under `[control.tls]` the problem is in.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. } | TlsError::BadPem { key, .. } => key,
            TlsError::NoCertificate { .. } => "cert_file",
            TlsError::NoKey { .. } | TlsError::Mismatch { .. } => "key_file",
        }
    }
}

impl TlsInput {
    /// Reads both files (relative paths against `base_dir`) and checks them.
    pub fn check(&self, base_dir: &Path) -> Result<ServerTls, TlsError> {
        let cert_file = base_dir.join(&self.cert_file);
        let key_file = base_dir.join(&self.key_file);
        let read = |key: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                key,
                path: path.display().to_string(),
                source,
            })
        };
        let tls = ServerTls {
            cert_pem: read("cert_file", &cert_file)?,
            key_pem: read("key_file", &key_file)?,
            cert_file,
            key_file,
        };
        tls.server_config()?;
        Ok(tls)
    }
}

impl ServerTls {
    /// The rustls server config of this pair, after the in-memory handshake
    /// proved the key signs for the certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let cert_path = self.cert_file.display().to_string();
        let key_path = self.key_file.display().to_string();
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &self.cert_pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadPem {
                key: "cert_file",
                path: cert_path.clone(),
                problem: format!("bad PEM: {e}"),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate { path: cert_path });
        }
        let key = only_key(&self.key_pem, &key_path)?;
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::BadPem {
                key: "key_file",
                path: key_path.clone(),
                problem: format!("not a usable key for this certificate: {e}"),
            })?;
        let server = Arc::new(server);
        handshake(server.clone()).map_err(|problem| TlsError::Mismatch {
            path: key_path,
            cert: cert_path,
            problem,
        })?;
        Ok(server)
    }
}

/// The one private key of a key file. warp refuses a key file with
/// anything else in it (a certificate, a second key), so this does too,
/// naming it.
fn only_key(pem: &[u8], path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bad = |problem: String| TlsError::BadPem {
        key: "key_file",
        path: path.to_string(),
        problem,
    };
    let mut key = None;
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        let item = item.map_err(|e| bad(format!("bad PEM: {e}")))?;
        let k: PrivateKeyDer<'static> =
            match item {
                rustls_pemfile::Item::Pkcs1Key(k) => k.into(),
                rustls_pemfile::Item::Pkcs8Key(k) => k.into(),
                rustls_pemfile::Item::Sec1Key(k) => k.into(),
                _ => return Err(bad(
                    "holds something besides the private key (a certificate?); give the key alone"
                        .into(),
                )),
            };
        if key.replace(k).is_some() {
            return Err(bad("holds more than one private key".into()));
        }
    }
    key.ok_or_else(|| TlsError::NoKey {
        path: path.to_string(),
    })
}

/// Runs a TLS handshake in memory against `server`; the client accepts any
/// certificate but checks the handshake signature with the certificate's
/// public key, so it fails exactly when the key is not the certificate's.
fn handshake(server: Arc<ServerConfig>) -> Result<(), String> {
    let client = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SignatureOnly))
        .with_no_client_auth();
    let name = ServerName::try_from("usher.invalid").map_err(|e| e.to_string())?;
    let mut c = ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(server).map_err(|e| e.to_string())?;
    for _ in 0..8 {
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).map_err(|e| e.to_string())?;
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| e.to_string())?;
        }
        wire.clear();
        while s.wants_write() {
            s.write_tls(&mut wire).map_err(|e| e.to_string())?;
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| e.to_string())?;
        }
    }
    Err("the test handshake did not finish".into())
}

/// Trusts any certificate, verifies every handshake signature.
#[derive(Debug)]
struct SignatureOnly;

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = ring::default_provider().signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = ring::default_provider().signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A CA and a server certificate for 127.0.0.1 it signed: (cert PEM,
    /// key PEM).
    fn server_pair() -> (String, String) {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).expect("ca cert");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn config_with(dir: &Path, files: &[(&str, &str)]) -> Result<Config, String> {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        let text = "[control.tls]\ncert_file = \"tls/cert.pem\"\nkey_file = \"tls/key.pem\"\n";
        Config::parse(&dir.join("usher.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_matching_pair_is_accepted_relative_to_the_config_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
        let (cert, key) = server_pair();
        let c = config_with(
            dir.path(),
            &[("tls/cert.pem", &cert), ("tls/key.pem", &key)],
        )
        .expect("valid");
        let tls = c.tls.expect("tls on");
        assert_eq!(tls.cert_file, dir.path().join("tls/cert.pem"));
        assert_eq!(tls.cert_pem, cert.as_bytes());
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
        // No section: no TLS.
        let c = Config::parse(&dir.path().join("usher.toml"), "").expect("valid");
        assert!(c.tls.is_none());
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
        let (cert, key) = server_pair();
        let (_, other_key) = server_pair();
        let at = |k: &str| format!("usher.toml: control.tls.{k}: ");

        let e = config_with(dir.path(), &[]).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}cannot read {}",
                at("cert_file"),
                dir.path().join("tls/cert.pem").display()
            )),
            "{e}"
        );

        let e = config_with(dir.path(), &[("tls/cert.pem", &cert)]).unwrap_err();
        assert!(
            e.starts_with(&format!("{}cannot read", at("key_file"))),
            "{e}"
        );

        let e = config_with(
            dir.path(),
            &[("tls/cert.pem", "not pem"), ("tls/key.pem", &key)],
        )
        .unwrap_err();
        assert!(
            e.starts_with(&at("cert_file")) && e.contains("holds no PEM certificate"),
            "{e}"
        );

        let e =
            config_with(dir.path(), &[("tls/cert.pem", &cert), ("tls/key.pem", "")]).unwrap_err();
        assert!(
            e.starts_with(&at("key_file")) && e.contains("holds no PEM private key"),
            "{e}"
        );

        let both = format!("{key}{cert}");
        let e = config_with(dir.path(), &[("tls/key.pem", &both)]).unwrap_err();
        assert!(
            e.starts_with(&at("key_file")) && e.contains("give the key alone"),
            "{e}"
        );

        let e = config_with(dir.path(), &[("tls/key.pem", &other_key)]).unwrap_err();
        assert!(
            e.starts_with(&at("key_file")) && e.contains("does not belong to the certificate in"),
            "{e}"
        );

        let text = "[control.tls]\ncert_file = \"c.pem\"\n";
        let e = Config::parse(&dir.path().join("usher.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("control.tls") && e.contains("key_file"), "{e}");
    }
}
