//! `veille-collector init-tls`: a private CA and a server certificate for small sites
//! that have no PKI, written to `<data-dir>/tls/` (`ca.pem`, `ca.key`, `server.pem`,
//! `server.key`, keys mode 0600), plus optional client certificates for agents
//! (`clients/<name>.pem|.key`) when the collector requires them (`[tls] client_ca`).
//!
//! The CA is created once and reused by later runs (agents keep trusting the same
//! `ca.pem`). Its name is unique ([`CA_NAME`], the host and a random suffix): two sites'
//! CAs must not share a subject, or a verifier would take one for the other's issuer and
//! report a bad signature instead of an unknown authority. ECDSA P-256 keys (rcgen's
//! default, ring backend).

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Directory inside the data directory.
pub const TLS_DIR: &str = "tls";
/// Start of the CA's common name (followed by the host and a random suffix).
pub const CA_NAME: &str = "Veille collector CA";
/// Validity of the CA.
pub const CA_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum InitTlsError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists but is not usable ({reason}); move ca.pem and ca.key away to start a new CA"
    )]
    BadCaKey { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Rcgen { what: String, source: rcgen::Error },
    #[error("client certificate name {0:?}: use 1-64 of [A-Za-z0-9._-]")]
    BadClientName(String),
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct InitTls {
    /// `<data-dir>/tls`.
    pub dir: PathBuf,
    /// Server certificate names (DNS names or IP addresses); `None`: keep an existing
    /// server certificate, or issue one for [`default_sans`].
    pub sans: Option<Vec<String>>,
    /// Client certificates to issue, by name.
    pub clients: Vec<String>,
    /// Validity of the server and client certificates, days.
    pub days: i64,
}

/// What was written, for the summary printed to the operator.
#[derive(Debug, Clone, Default)]
pub struct Issued {
    pub ca_created: bool,
    pub ca_pem: PathBuf,
    pub server: Option<(PathBuf, PathBuf, Vec<String>)>,
    pub clients: Vec<(PathBuf, PathBuf)>,
}

/// This host's name, `localhost` and `127.0.0.1`.
pub fn default_sans() -> Vec<String> {
    let mut sans = Vec::new();
    if let Some(host) = hostname() {
        sans.push(host);
    }
    for s in ["localhost", "127.0.0.1"] {
        if !sans.iter().any(|x| x == s) {
            sans.push(s.to_owned());
        }
    }
    sans
}

fn hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())?;
    let host = text.trim().to_owned();
    (!host.is_empty()).then_some(host)
}

impl InitTls {
    pub fn run(&self) -> Result<Issued, InitTlsError> {
        create_dir(&self.dir)?;
        let ca_key_path = self.dir.join("ca.key");
        let ca_pem_path = self.dir.join("ca.pem");
        let mut issued = Issued {
            ca_pem: ca_pem_path.clone(),
            ..Issued::default()
        };
        let issuer = if ca_key_path.exists() && ca_pem_path.exists() {
            let read = |path: &Path| {
                std::fs::read_to_string(path).map_err(|source| InitTlsError::Read {
                    path: path.to_owned(),
                    source,
                })
            };
            let bad = |path: &Path| {
                let path = path.to_owned();
                move |e: rcgen::Error| InitTlsError::BadCaKey {
                    path,
                    reason: e.to_string(),
                }
            };
            let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(bad(&ca_key_path))?;
            Issuer::from_ca_cert_pem(&read(&ca_pem_path)?, key).map_err(bad(&ca_pem_path))?
        } else {
            let key = KeyPair::generate().map_err(rcgen_err("generate the CA key"))?;
            let mut params = ca_params();
            validity(&mut params, CA_DAYS);
            let cert = params.self_signed(&key).map_err(rcgen_err("sign the CA"))?;
            write_secret(&ca_key_path, &key.serialize_pem())?;
            write_public(&ca_pem_path, &cert.pem())?;
            issued.ca_created = true;
            Issuer::new(params, key)
        };

        let server_pem = self.dir.join("server.pem");
        let server_key = self.dir.join("server.key");
        let sans = match &self.sans {
            Some(sans) => Some(sans.clone()),
            None if !server_pem.exists() || issued.ca_created => Some(default_sans()),
            None => None,
        };
        if let Some(sans) = sans {
            let mut params = CertificateParams::new(sans.clone())
                .map_err(rcgen_err(format!("server names {sans:?}")))?;
            params.distinguished_name.push(
                DnType::CommonName,
                sans.first().cloned().unwrap_or_default(),
            );
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.use_authority_key_identifier_extension = true;
            validity(&mut params, self.days);
            let key = KeyPair::generate().map_err(rcgen_err("generate the server key"))?;
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(rcgen_err("sign the server certificate"))?;
            write_secret(&server_key, &key.serialize_pem())?;
            write_public(&server_pem, &cert.pem())?;
            issued.server = Some((server_pem, server_key, sans));
        }

        for name in &self.clients {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(InitTlsError::BadClientName(name.clone()));
            }
            let dir = self.dir.join("clients");
            create_dir(&dir)?;
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, name.clone());
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.use_authority_key_identifier_extension = true;
            validity(&mut params, self.days);
            let key = KeyPair::generate().map_err(rcgen_err("generate a client key"))?;
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(rcgen_err(format!("sign client certificate {name}")))?;
            let (pem, key_path) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
            );
            write_secret(&key_path, &key.serialize_pem())?;
            write_public(&pem, &cert.pem())?;
            issued.clients.push((pem, key_path));
        }
        Ok(issued)
    }
}

impl Issued {
    /// The operator's next steps.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if self.ca_created {
            out.push_str(&format!("created a CA: {}\n", self.ca_pem.display()));
        } else {
            out.push_str(&format!("reused the CA: {}\n", self.ca_pem.display()));
        }
        if let Some((pem, key, sans)) = &self.server {
            out.push_str(&format!(
                "server certificate for {}: {}\n\nIn the collector's config (e.g. /etc/veille/collector.toml):\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n",
                sans.join(", "),
                pem.display(),
                pem.display(),
                key.display(),
            ));
        }
        for (pem, key) in &self.clients {
            out.push_str(&format!(
                "client certificate: {} (key {}); on that agent: client_cert, client_key\n",
                pem.display(),
                key.display()
            ));
        }
        out.push_str(&format!(
            "Distribute {} to every agent (ca_cert = \"/etc/veille/ca.pem\", or the MSI's \
             CA_CERT property) and point them at https://<host>:{} (gRPC) or \
             mqtts://<host>:{} (MQTT). Keep ca.key secret: whoever has it can impersonate \
             the collector.\n",
            self.ca_pem.display(),
            veille_proto::defaults::GRPC_PORT,
            veille_proto::defaults::MQTTS_PORT,
        ));
        out
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let host = hostname().unwrap_or_else(|| "collector".to_owned());
    let suffix: u32 = rand::random();
    dn.push(DnType::CommonName, format!("{CA_NAME} {host} {suffix:08x}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// From yesterday (clock skew between machines) for `days`.
fn validity(params: &mut CertificateParams, days: i64) {
    let today = jiff::Zoned::now().date();
    let from = today.yesterday().unwrap_or(today);
    let to = jiff::Span::new()
        .try_days(days)
        .and_then(|span| today.checked_add(span))
        .unwrap_or(today);
    params.not_before =
        rcgen::date_time_ymd(i32::from(from.year()), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(i32::from(to.year()), to.month() as u8, to.day() as u8);
}

fn rcgen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> InitTlsError {
    let what = what.into();
    move |source| InitTlsError::Rcgen { what, source }
}

fn create_dir(dir: &Path) -> Result<(), InitTlsError> {
    std::fs::create_dir_all(dir).map_err(|source| InitTlsError::Write {
        path: dir.to_owned(),
        source,
    })
}

fn write_public(path: &Path, text: &str) -> Result<(), InitTlsError> {
    std::fs::write(path, text).map_err(|source| InitTlsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes a private key readable by its owner only (0600 from creation on, never
/// briefly world-readable).
fn write_secret(path: &Path, text: &str) -> Result<(), InitTlsError> {
    let err = |source| InitTlsError::Write {
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_chain_rustls_accepts_and_reuses_the_ca() {
        use rustls::client::danger::ServerCertVerifier;
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let first = InitTls {
            dir: tls.clone(),
            sans: Some(vec!["collector.example".into(), "127.0.0.1".into()]),
            clients: vec!["pc-1".into()],
            days: 30,
        }
        .run()
        .unwrap();
        assert!(first.ca_created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["ca.key", "server.key", "clients/pc-1.key"] {
                let mode = std::fs::metadata(tls.join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }
        // The server config loads, and its certificate chains to ca.pem for the name.
        let config = crate::config::tls::TlsConfig {
            cert: tls.join("server.pem").display().to_string(),
            key: tls.join("server.key").display().to_string(),
            client_ca: tls.join("ca.pem").display().to_string(),
            require: true,
        };
        assert!(config.load().unwrap().is_some());
        let ca = crate::tls::read_certs("ca", &tls.join("ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let server = crate::tls::read_certs("cert", &tls.join("server.pem")).unwrap();
        let name = rustls::pki_types::ServerName::try_from("collector.example").unwrap();
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_server_cert(&server[0], &[], &name, &[], now)
            .unwrap();
        let other = rustls::pki_types::ServerName::try_from("elsewhere.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&server[0], &[], &other, &[], now)
                .is_err()
        );

        // A second run keeps the CA (agents keep trusting it) and the server certificate.
        let ca_before = std::fs::read(tls.join("ca.pem")).unwrap();
        let server_before = std::fs::read(tls.join("server.pem")).unwrap();
        let again = InitTls {
            dir: tls.clone(),
            sans: None,
            clients: vec!["pc-2".into()],
            days: 30,
        }
        .run()
        .unwrap();
        assert!(!again.ca_created && again.server.is_none());
        assert_eq!(std::fs::read(tls.join("ca.pem")).unwrap(), ca_before);
        assert_eq!(
            std::fs::read(tls.join("server.pem")).unwrap(),
            server_before
        );
        assert!(again.summary().contains("ca.pem"));
        let bad = InitTls {
            dir: tls,
            sans: None,
            clients: vec!["../x".into()],
            days: 30,
        };
        assert!(matches!(bad.run(), Err(InitTlsError::BadClientName(_))));
    }
}
