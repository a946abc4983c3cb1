//! A minimal HTTP/1.1 client for the local CLI talking to its own server over
//! loopback (`veille-collector devices` while `serve` runs): no redirects, no proxies;
//! enough for `http://127.0.0.1:port/api/v1/...`. With TLS on (`listen.json` names the
//! server certificate), it speaks TLS and trusts exactly that certificate: the CLI
//! reads the same files as the server, so no CA is involved.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

mod response;
pub use response::{HttpResponse, parse_response};

/// Where to send a request: an address, and the certificate to pin for TLS.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// PEM file of the server's certificate; `None`: plaintext.
    pub pinned_cert: Option<PathBuf>,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Self {
            addr,
            pinned_cert: None,
        }
    }
}

impl From<&crate::listen_file::ListenInfo> for Target {
    fn from(info: &crate::listen_file::ListenInfo) -> Self {
        Self {
            addr: info.http,
            pinned_cert: info.tls_cert.clone(),
        }
    }
}

/// Largest response body read (the device list of a very large fleet fits).
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("malformed HTTP response from {addr}: {reason}")]
    Malformed { addr: SocketAddr, reason: String },
    #[error("TLS to {addr}: {reason}")]
    Tls { addr: SocketAddr, reason: String },
}

/// `GET path_and_query` on `addr`, with an optional bearer token, the whole exchange
/// bounded by `timeout`.
pub async fn get(
    target: impl Into<Target>,
    path_and_query: &str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<HttpResponse, ClientError> {
    request(target, "GET", path_and_query, bearer, None, timeout).await
}

/// `method path_and_query` on `addr` with an optional JSON body (`policy set` uses
/// `PUT`), the whole exchange bounded by `timeout`.
pub async fn request(
    target: impl Into<Target>,
    method: &str,
    path_and_query: &str,
    bearer: Option<&str>,
    json_body: Option<&[u8]>,
    timeout: Duration,
) -> Result<HttpResponse, ClientError> {
    let target = target.into();
    let addr = target.addr;
    let exchange = exchange(&target, method, path_and_query, bearer, json_body);
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout { addr, timeout }),
    }
}

async fn exchange(
    target: &Target,
    method: &str,
    path_and_query: &str,
    bearer: Option<&str>,
    json_body: Option<&[u8]>,
) -> Result<HttpResponse, ClientError> {
    let addr = target.addr;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect { addr, source })?;
    let Some(cert) = &target.pinned_cert else {
        return talk(tcp, addr, method, path_and_query, bearer, json_body).await;
    };
    let tls_err = |reason: String| ClientError::Tls { addr, reason };
    let pinned = crate::tls::read_certs("cert", cert)
        .map_err(|e| tls_err(e.to_string()))?
        .swap_remove(0);
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { pinned, provider }))
        .with_no_client_auth();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(addr.ip().into(), tcp)
        .await
        .map_err(|e| tls_err(e.to_string()))?;
    talk(stream, addr, method, path_and_query, bearer, json_body).await
}

/// Sends `request` (complete: head and body) on `stream` and reads the whole
/// `Connection: close` response; `addr` names the peer in errors. For callers that
/// build their own headers (the GLPI link).
pub async fn send_raw(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    addr: SocketAddr,
    request: &[u8],
) -> Result<HttpResponse, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    stream.write_all(request).await.map_err(io)?;
    read_response(stream, addr).await
}

async fn read_response(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    addr: SocketAddr,
) -> Result<HttpResponse, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let mut raw = Vec::new();
    let read = (&mut stream)
        .take(MAX_BODY_BYTES as u64 + 64 * 1024)
        .read_to_end(&mut raw)
        .await;
    match read {
        Ok(_) => {}
        // A TLS peer closing without close_notify after a complete response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(io(e)),
    }
    parse_response(&raw).map_err(|reason| ClientError::Malformed { addr, reason })
}

async fn talk(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    bearer: Option<&str>,
    json_body: Option<&[u8]>,
) -> Result<HttpResponse, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let mut request = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n"
    );
    if let Some(body) = json_body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(json_body.unwrap_or_default());
    stream.write_all(&bytes).await.map_err(io)?;
    read_response(stream, addr).await
}

/// Trusts exactly one certificate (the server's own, read from its config), whatever
/// its names or issuer; signatures are still checked.
#[derive(Debug)]
struct PinnedCert {
    pinned: rustls::pki_types::CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
