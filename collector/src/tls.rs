//! TLS on the collector's ports (`[tls]` in `deploy/collector.toml`): rustls with the
//! ring provider in front of the gRPC server, the HTTP API and the embedded MQTT broker.
//!
//! One acceptor serves every port, so that all of them behave alike: the first byte of
//! a connection says whether the client speaks TLS (a handshake record starts with
//! 0x16). A TLS client gets the handshake; a plaintext client is served as before when
//! `require = false` (moving a fleet to TLS one agent at a time) and refused with a
//! server-side log line naming the peer and the port when `require = true`. Handshakes
//! run in their own tasks, bounded by [`HANDSHAKE_TIMEOUT`], so a slow or silent client
//! never holds up the others.
//!
//! Client certificates (`client_ca`) are asked of agents on the gRPC and MQTT ports
//! only: the HTTP API is for people and scripts, authenticated by bearer tokens.
//!
//! The server certificate is re-read when its files change ([`ReloadingCert`]): a
//! renewed certificate (`init-tls --san …`, certbot, the PKI's tooling) is served from
//! the next handshake, without a restart that would drop every agent's connection.

use crate::config::tls::TlsConfig;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send its first byte and finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read tls.{key} {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("tls.{key} {path}: {reason}")]
    Invalid {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("tls.cert and tls.key go together: set both or neither")]
    HalfIdentity,
    #[error("tls.client_ca is set but tls.cert is empty: client certificates need TLS on")]
    ClientCaWithoutCert,
}

/// Ready-made server configs: one for the agents' ports (client certificates per
/// `client_ca`), one for the HTTP API (never asks for one).
#[derive(Clone)]
pub struct ServerTls {
    pub agents: Arc<rustls::ServerConfig>,
    pub http: Arc<rustls::ServerConfig>,
    /// Refuse plaintext.
    pub require: bool,
    /// Whether agents must present a client certificate.
    pub client_certs: bool,
    /// The server certificate file (pinned by the local CLI, see `listen.json`).
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("require", &self.require)
            .field("client_certs", &self.client_certs)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// The one crypto provider of the collector: ring (aws-lc needs cmake and nasm).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Loads the certificates; `Ok(None)` when TLS is off (`cert` empty).
    pub fn load(&self) -> Result<Option<ServerTls>, TlsError> {
        match (self.cert.is_empty(), self.key.is_empty()) {
            (true, true) if self.client_ca.is_empty() => return Ok(None),
            (true, true) => return Err(TlsError::ClientCaWithoutCert),
            (false, false) => {}
            _ => return Err(TlsError::HalfIdentity),
        }
        let certified = Arc::new(ReloadingCert::load(
            PathBuf::from(&self.cert),
            PathBuf::from(&self.key),
        )?);
        let invalid =
            |key: &'static str, path: &str, e: &dyn std::fmt::Display| TlsError::Invalid {
                key,
                path: PathBuf::from(path),
                reason: e.to_string(),
            };
        let builder = || {
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| invalid("cert", &self.cert, &e))
        };
        let agents_builder = if self.client_ca.is_empty() {
            builder()?.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for ca in read_certs("client_ca", Path::new(&self.client_ca))? {
                roots
                    .add(ca)
                    .map_err(|e| invalid("client_ca", &self.client_ca, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| invalid("client_ca", &self.client_ca, &e))?;
            builder()?.with_client_cert_verifier(verifier)
        };
        let mut agents = agents_builder.with_cert_resolver(certified.clone());
        // gRPC is HTTP/2 only; the MQTT port ignores ALPN.
        agents.alpn_protocols = vec![b"h2".to_vec()];
        let mut http = builder()?
            .with_no_client_auth()
            .with_cert_resolver(certified);
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(ServerTls {
            agents: Arc::new(agents),
            http: Arc::new(http),
            require: self.require,
            client_certs: !self.client_ca.is_empty(),
            cert_path: PathBuf::from(&self.cert),
        }))
    }
}

/// How often a handshake may look at the certificate files' modification times.
pub const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The server certificate and key, re-read when either file changes (checked at most
/// every [`CERT_CHECK_INTERVAL`], at a handshake). A replacement that does not load (a
/// key that does not match, a half-written file) is logged and the previous pair kept,
/// so a renewal gone wrong never takes the ports down.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    current: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

/// Modification time and length of both files: a change in either means "re-read".
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
}

impl ReloadingCert {
    /// Loads the pair; errors name the key (`tls.cert`, `tls.key`) and the file.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let stamp = stamp(&cert, &key);
        let current = Arc::new(certified_key(&cert, &key)?);
        Ok(Self {
            cert,
            key,
            state: Mutex::new(Loaded {
                current,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The pair to present at a handshake starting at `now`.
    pub fn current(&self, now: Instant) -> Arc<CertifiedKey> {
        // A panic while holding the lock leaves a valid state: keep serving.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(st.checked) >= CERT_CHECK_INTERVAL {
            st.checked = now;
            let seen = stamp(&self.cert, &self.key);
            if seen != st.stamp {
                st.stamp = seen;
                match certified_key(&self.cert, &self.key) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "server certificate reloaded");
                        st.current = Arc::new(k);
                    }
                    Err(e) => tracing::error!(error = %e,
                        "the server certificate files changed but do not load; still serving the previous certificate"),
                }
            }
        }
        st.current.clone()
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current(Instant::now()))
    }
}

/// A certificate chain and its private key, checked to belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs("cert", cert)?;
    let key_pem = read("key", key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        key: "key",
        path: key.to_owned(),
        reason: format!("no usable PEM private key ({e})"),
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| TlsError::Invalid {
        key: "key",
        path: key.to_owned(),
        reason: format!("does not go with tls.cert {} ({e})", cert.display()),
    })
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file (at least one).
pub fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            key,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            key,
            path: path.to_owned(),
            reason: "no PEM certificate in the file".into(),
        });
    }
    Ok(certs)
}

/// An accepted connection: TLS, or plaintext where allowed.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

/// Accepts on `listener` until `stop`, handshaking each connection in its own task,
/// and delivers the ready connections (with their peer address) on the returned
/// channel. `what` names the port in log lines ("gRPC", "HTTP", "MQTT").
pub fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    require: bool,
    what: &'static str,
    mut stop: watch::Receiver<bool>,
) -> mpsc::Receiver<(Conn, SocketAddr)> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stop.wait_for(|s| *s) => return,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!(error = %e, "{what}: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let conn = match tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    handshake(tcp, &acceptor, require),
                )
                .await
                {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(refusal)) => {
                        tracing::warn!(%peer, "{what} port: {refusal}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "{what} port: no TLS handshake within {HANDSHAKE_TIMEOUT:?}; closed");
                        return;
                    }
                };
                let _ = tx.send((conn, peer)).await;
            });
        }
    });
    rx
}

/// Why a connection was not accepted (logged with the peer).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "plaintext connection refused: this port requires TLS ([tls] require = true); the client must use https:// or mqtts://"
    )]
    Plaintext,
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("connection closed before the first byte: {0}")]
    Io(io::Error),
}

async fn handshake(tcp: TcpStream, acceptor: &TlsAcceptor, require: bool) -> Result<Conn, Refusal> {
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await.map_err(Refusal::Io)?;
    if n == 0 {
        return Err(Refusal::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        return if require {
            Err(Refusal::Plaintext)
        } else {
            Ok(Conn::Plain(tcp))
        };
    }
    acceptor
        .accept(tcp)
        .await
        .map(|s| Conn::Tls(Box::new(s)))
        .map_err(Refusal::Handshake)
}

/// The HTTP API's listener for `axum::serve` over [`accept_loop`].
pub struct HttpsListener {
    pub rx: mpsc::Receiver<(Conn, SocketAddr)>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for HttpsListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended (stop): axum's graceful shutdown takes it from here.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The gRPC server's incoming stream over [`accept_loop`].
pub fn grpc_incoming(
    rx: mpsc::Receiver<(Conn, SocketAddr)>,
) -> impl tokio_stream::Stream<Item = Result<Conn, io::Error>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(rx).map(|(c, _)| Ok(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let k = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::write(&cert, k.cert.pem()).unwrap();
        std::fs::write(&key, k.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    /// Moves a file's mtime ahead: two writes within one clock tick keep the same mtime,
    /// which a renewal minutes apart never does.
    fn touch_ahead(path: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(secs))
            .unwrap();
    }

    fn der(k: &CertifiedKey) -> Vec<u8> {
        k.cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_served_after_the_check_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "old.example");
        let r = ReloadingCert::load(cert.clone(), key.clone()).unwrap();
        let t0 = Instant::now();
        let first = der(&r.current(t0));
        write_pair(dir.path(), "new.example");
        touch_ahead(&cert, 10);
        let renewed = std::fs::read(&cert).unwrap();
        // Within the interval the files are not even looked at.
        assert_eq!(der(&r.current(t0)), first);
        let later = der(&r.current(t0 + CERT_CHECK_INTERVAL));
        assert_ne!(later, first, "the renewed certificate is served");
        let pem_der: Vec<u8> = CertificateDer::pem_slice_iter(&renewed)
            .next()
            .unwrap()
            .unwrap()
            .as_ref()
            .to_vec();
        assert_eq!(later, pem_der);
    }

    #[test]
    fn a_broken_replacement_keeps_the_previous_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "good.example");
        let r = ReloadingCert::load(cert.clone(), key.clone()).unwrap();
        let t0 = Instant::now();
        let good = der(&r.current(t0));
        // A key of another pair: the files changed, but they do not go together.
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = write_pair(other.path(), "other.example");
        std::fs::copy(&other_key, &key).unwrap();
        touch_ahead(&key, 10);
        assert_eq!(der(&r.current(t0 + CERT_CHECK_INTERVAL)), good);
        // Both files back to a matching pair: served (the stamp moved on, so the failed
        // attempt above did not stop later changes from being picked up).
        let fresh = tempfile::tempdir().unwrap();
        let (fresh_cert, fresh_key) = write_pair(fresh.path(), "fresh.example");
        std::fs::copy(&fresh_cert, &cert).unwrap();
        std::fs::copy(&fresh_key, &key).unwrap();
        touch_ahead(&key, 20);
        let fresh_der = der(&r.current(t0 + 2 * CERT_CHECK_INTERVAL));
        assert_ne!(fresh_der, good);
        // Garbage too.
        std::fs::write(&cert, "not a certificate").unwrap();
        touch_ahead(&cert, 30);
        assert_eq!(der(&r.current(t0 + 3 * CERT_CHECK_INTERVAL)), fresh_der);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_at_start_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a.example");
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = write_pair(other.path(), "b.example");
        std::fs::copy(&other_key, &key).unwrap();
        let e = ReloadingCert::load(cert, key).unwrap_err().to_string();
        assert!(
            e.starts_with("tls.key ") && e.contains("does not go with tls.cert"),
            "{e}"
        );
    }
}
