//! TLS as a client, the same for the agent (towards the collector, gRPC and MQTT) and
//! the collector (towards an external MQTT broker): which CA to trust (a PEM file, else
//! the system roots), an optional client certificate, and errors that name the config
//! key and the file. rustls with the ring provider (aws-lc needs cmake and nasm).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS files of a client: the agent's top-level keys `ca_cert`, `client_cert`,
/// `client_key`, or the collector's `[mqtt]` keys of the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA bundle to trust; empty: the system's roots.
    pub ca_cert: String,
    /// PEM client certificate chain; empty: none.
    pub client_cert: String,
    /// PEM private key of `client_cert`.
    pub client_key: String,
}

/// A client certificate chain and its private key, PEM texts.
pub type IdentityPem = (Vec<u8>, Vec<u8>);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {key} {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {path} holds no PEM {what}")]
    Empty {
        key: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{key} {path}: {reason}")]
    Invalid {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("client_cert and client_key go together: set both or neither")]
    HalfIdentity,
    #[error("no trusted CA: ca_cert is empty and the system has no root certificates ({0})")]
    NoRoots(String),
}

impl TlsFiles {
    /// The CA bundle's PEM text, `None` for the system roots.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, TlsError> {
        if self.ca_cert.is_empty() {
            return Ok(None);
        }
        let pem = read("ca_cert", &self.ca_cert)?;
        certs("ca_cert", &self.ca_cert, &pem)?;
        Ok(Some(pem))
    }

    /// The client certificate and key PEM texts, if configured.
    pub fn identity_pem(&self) -> Result<Option<IdentityPem>, TlsError> {
        match (self.client_cert.is_empty(), self.client_key.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => {
                let cert = read("client_cert", &self.client_cert)?;
                certs("client_cert", &self.client_cert, &cert)?;
                let key = read("client_key", &self.client_key)?;
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| TlsError::Invalid {
                    key: "client_key",
                    path: PathBuf::from(&self.client_key),
                    reason: format!("no usable PEM private key ({e})"),
                })?;
                Ok(Some((cert, key)))
            }
            _ => Err(TlsError::HalfIdentity),
        }
    }

    /// A rustls client config (for MQTT over TLS; the agent's gRPC goes through tonic's
    /// own, fed by [`Self::ca_pem`] and [`Self::identity_pem`]).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match self.ca_pem()? {
            Some(pem) => {
                for cert in certs("ca_cert", &self.ca_cert, &pem)? {
                    roots.add(cert).map_err(|e| TlsError::Invalid {
                        key: "ca_cert",
                        path: PathBuf::from(&self.ca_cert),
                        reason: e.to_string(),
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or_else(|| "none found".to_owned(), ToString::to_string);
                    return Err(TlsError::NoRoots(why));
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid {
                key: "ca_cert",
                path: PathBuf::new(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots);
        match self.identity_pem()? {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let chain = certs("client_cert", &self.client_cert, &cert)?;
                let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| TlsError::Invalid {
                    key: "client_key",
                    path: PathBuf::from(&self.client_key),
                    reason: e.to_string(),
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Invalid {
                        key: "client_key",
                        path: PathBuf::from(&self.client_key),
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// The one crypto provider: ring (aws-lc needs a C toolchain with cmake).
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: PathBuf::from(path),
        source,
    })
}

fn certs(
    key: &'static str,
    path: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            key,
            path: PathBuf::from(path),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            key,
            path: Path::new(path).to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Why a client's TLS handshake failed, in the cases an operator can act on. Each side
/// words the advice for its own config keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The peer's certificate does not chain to the trusted CA.
    UnknownCa,
    /// The peer's certificate does not name the host in the URL.
    WrongName,
    /// The peer asks for a client certificate.
    ClientCertRequired,
    /// The peer does not speak TLS on this port.
    NotTls,
}

/// Classifies a failure known only by its text: rumqttc keeps rustls' error only in
/// its Debug text. `None` when the text is not about one of these.
pub fn classify_text(text: &str) -> Option<HandshakeFailure> {
    let any = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if any(&["UnknownIssuer", "unknown issuer", "BadSignature"]) {
        Some(HandshakeFailure::UnknownCa)
    } else if any(&["NotValidForName"]) {
        Some(HandshakeFailure::WrongName)
    } else if any(&[
        "CertificateRequired",
        "certificate required",
        "HandshakeFailure",
    ]) {
        Some(HandshakeFailure::ClientCertRequired)
    } else if any(&["InvalidContentType", "CorruptMessage"]) {
        Some(HandshakeFailure::NotTls)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_errors_are_classified() {
        assert_eq!(
            classify_text("Tls(Io(Custom { error: InvalidCertificate(UnknownIssuer) }))"),
            Some(HandshakeFailure::UnknownCa)
        );
        assert_eq!(
            classify_text("InvalidCertificate(NotValidForName)"),
            Some(HandshakeFailure::WrongName)
        );
        assert_eq!(
            classify_text("AlertReceived(CertificateRequired)"),
            Some(HandshakeFailure::ClientCertRequired)
        );
        assert_eq!(
            classify_text("InvalidMessage(InvalidContentType)"),
            Some(HandshakeFailure::NotTls)
        );
        assert_eq!(classify_text("Connection refused (os error 111)"), None);
    }

    #[test]
    fn file_errors_name_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        let files = TlsFiles {
            ca_cert: empty.display().to_string(),
            ..TlsFiles::default()
        };
        let e = files.ca_pem().unwrap_err().to_string();
        assert!(e.starts_with("ca_cert ") && e.contains("empty.pem"), "{e}");
        let missing = TlsFiles {
            ca_cert: "/nonexistent/ca.pem".into(),
            ..TlsFiles::default()
        };
        assert!(
            missing
                .ca_pem()
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/ca.pem")
        );
        let half = TlsFiles {
            client_cert: "x".into(),
            ..TlsFiles::default()
        };
        assert!(matches!(half.identity_pem(), Err(TlsError::HalfIdentity)));
    }
}
