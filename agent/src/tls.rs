//! TLS towards the collector: the files come from [`veille_proto::tls`] (shared with the
//! collector's own client side); here, turning a failed handshake into a sentence an
//! operator can act on ("check ca_cert") instead of a rustls enum.
//!
//! The URL scheme selects TLS: `https://` (gRPC) and `mqtts://` (MQTT). rustls with the
//! ring provider, as in the collector.

use veille_proto::tls::{HandshakeFailure, classify_text};
pub use veille_proto::tls::{IdentityPem, TlsError, TlsFiles, provider};

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
    let hint = match classify_text(text)? {
        HandshakeFailure::UnknownCa => UNKNOWN_CA,
        HandshakeFailure::WrongName => WRONG_NAME,
        HandshakeFailure::ClientCertRequired => NEED_CLIENT_CERT,
        HandshakeFailure::NotTls => NOT_TLS,
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
}
