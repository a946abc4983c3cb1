//! TLS towards the collector: which CA the agent trusts (`ca_cert`, else the system
//! roots), its optional client certificate, and turning a failed handshake into a
//! sentence an operator can act on ("check ca_cert") instead of a rustls enum.
//!
//! The URL scheme selects TLS: `https://` (gRPC) and `mqtts://` (MQTT). rustls with the
//! ring provider, as in the collector.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the agent's config says about TLS (top-level keys `ca_cert`, `client_cert`,
/// `client_key`).
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

    /// A rustls client config (for MQTT over TLS; gRPC goes through tonic's own).
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

/// The one crypto provider of the agent: ring (aws-lc needs a C toolchain with cmake).
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

/// An operator-facing explanation of a TLS failure found anywhere in `err`'s source
/// chain; `None` when the failure is not about TLS.
pub fn explain(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(explain_rustls(tls));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(explain_rustls(tls));
        }
        cur = e.source();
    }
    None
}

/// The same for an error known only by its text (rumqttc flattens its TLS errors).
pub fn explain_text(text: &str) -> Option<String> {
    let hint = if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        UNKNOWN_CA
    } else if text.contains("NotValidForName") {
        WRONG_NAME
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        NEED_CLIENT_CERT
    } else if text.contains("InvalidContentType") || text.contains("CorruptMessage") {
        NOT_TLS
    } else {
        return None;
    };
    Some(format!("TLS handshake with collector failed: {hint}"))
}

const UNKNOWN_CA: &str = "certificate signed by unknown authority; check ca_cert";
const WRONG_NAME: &str = "the collector's certificate does not name this host; use the \
                          host name it was issued for in `collector`, or reissue it with \
                          `veille-collector init-tls --san <host>`";
const NEED_CLIENT_CERT: &str = "the collector requires a client certificate; set client_cert \
                                and client_key";
const NOT_TLS: &str = "the collector does not speak TLS on this port; use http:// or \
                       mqtt:// (or enable [tls] on the collector)";

fn explain_rustls(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let hint = match e {
        // BadSignature: a CA with the same name as the real issuer, but another key.
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => UNKNOWN_CA.to_owned(),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            WRONG_NAME.to_owned()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the collector's certificate has expired".to_owned()
        }
        E::InvalidCertificate(other) => {
            format!("the collector's certificate is not acceptable ({other:?}); check ca_cert")
        }
        E::AlertReceived(A::CertificateRequired | A::HandshakeFailure) => {
            NEED_CLIENT_CERT.to_owned()
        }
        E::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown) => {
            "the collector refused our client certificate; check client_cert against its \
             [tls] client_ca"
                .to_owned()
        }
        E::InvalidMessage(_) => NOT_TLS.to_owned(),
        other => other.to_string(),
    };
    format!("TLS handshake with collector failed: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ca_is_explained_through_an_io_error() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let text = explain(&io).unwrap();
        assert!(text.contains("unknown authority; check ca_cert"), "{text}");
        assert!(explain(&std::io::Error::other("connection refused")).is_none());
        assert!(
            explain_text(
                "Tls(Io(Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))"
            )
            .unwrap()
            .contains("check ca_cert")
        );
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
