//! The gRPC transport: unary `Report` calls on a lazily connecting tonic channel,
//! bearer token in metadata, TLS for `https://`.

use std::future::Future;
use std::time::Duration;

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use veille_proto::v1::telemetry_client::TelemetryClient;
use veille_proto::v1::{Ack, ReportBatch};

use super::{SendError, Transport};

/// How long one send may take before it counts as failed (a large backlog batch over a
/// slow link still fits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Transport for GrpcTransport {
    fn send(&mut self, batch: ReportBatch) -> impl Future<Output = Result<Ack, SendError>> + Send {
        GrpcTransport::send(self, batch)
    }

    fn trusted_for_key_pinning(&self) -> bool {
        true
    }
}

#[derive(Clone)]
pub struct GrpcTransport {
    client: TelemetryClient<Channel>,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl GrpcTransport {
    /// Prepares a lazily connecting channel: nothing is dialled until the first send, so
    /// an agent starts (and spools) while the collector is down.
    pub fn new(url: &str, token: &str) -> Result<Self, SendError> {
        Self::with_tls(url, token, &crate::tls::TlsFiles::default())
    }

    /// [`GrpcTransport::new`]; an `https://` URL speaks TLS, trusting `tls.ca_cert` (else
    /// the system roots) and presenting `tls.client_cert` if set.
    pub fn with_tls(url: &str, token: &str, tls: &crate::tls::TlsFiles) -> Result<Self, SendError> {
        let bad = |reason: String| SendError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .tcp_keepalive(Some(Duration::from_secs(60)));
        if url.starts_with("https://") {
            let mut config = ClientTlsConfig::new();
            config = match tls.ca_pem().map_err(|e| bad(e.to_string()))? {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = tls.identity_pem().map_err(|e| bad(e.to_string()))? {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| bad(format!("TLS: {e}")))?;
        }
        let channel = endpoint.connect_lazy();
        let auth = if token.is_empty() {
            None
        } else {
            Some(
                MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    bad("the token contains characters not allowed in a header".into())
                })?,
            )
        };
        let client = TelemetryClient::new(channel)
            .max_encoding_message_size(veille_proto::defaults::MAX_BATCH_BYTES);
        Ok(Self { client, auth })
    }

    pub async fn send(&mut self, batch: ReportBatch) -> Result<Ack, SendError> {
        let mut request = tonic::Request::new(batch);
        if let Some(auth) = &self.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        match self.client.report(request).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(classify(status)),
        }
    }
}

fn classify(status: tonic::Status) -> SendError {
    // A failed TLS handshake arrives as Unavailable with the rustls error deep in the
    // source chain: say what to fix instead.
    if let Some(hint) =
        crate::tls::explain(&status).or_else(|| crate::tls::explain_text(&format!("{status:?}")))
    {
        return SendError::Unavailable(hint);
    }
    tracing::debug!(status = ?status, "gRPC call failed");
    let text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::InvalidArgument => SendError::Invalid(status.message().to_owned()),
        Code::Unauthenticated | Code::PermissionDenied => SendError::Unauthenticated(text),
        _ => SendError::Unavailable(text),
    }
}
