//! GET over HTTP/1.1 or HTTPS to the GLPI server named by `glpi.url`: the host is
//! resolved, `https://` trusts the system's roots (GLPI sits behind a site's usual
//! certificate), and the answer is read by the CLI's own client
//! ([`crate::http_client::send_raw`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::glpi::BaseUrl;
use crate::http_client::{self, HttpResponse};

/// `GET path` on `base`'s host with `headers`, the whole exchange bounded by
/// `timeout`. The error is a sentence for the operator (never holds a header value).
pub async fn get(
    base: &BaseUrl,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(timeout, exchange(base, path, headers)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer from {}:{} within {timeout:?}",
            base.host, base.port
        )),
    }
}

async fn exchange(
    base: &BaseUrl,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let host_port = format!("{}:{}", base.host, base.port);
    let tcp = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .map_err(|e| format!("cannot connect to {host_port}: {e}"))?;
    let addr = tcp
        .peer_addr()
        .map_err(|e| format!("cannot connect to {host_port}: {e}"))?;
    let host_header = if base.host.contains(':') {
        format!("[{}]:{}", base.host, base.port)
    } else {
        host_port.clone()
    };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let sent = if base.https {
        let server_name = rustls_pki_types::ServerName::try_from(base.host.clone())
            .map_err(|e| format!("{}: not a TLS server name: {e}", base.host))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS to {host_port}: {e}"))?;
        http_client::send_raw(tls, addr, request.as_bytes()).await
    } else {
        http_client::send_raw(tcp, addr, request.as_bytes()).await
    };
    sent.map_err(|e| e.to_string())
}
