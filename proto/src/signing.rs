//! Policy signatures: the collector signs each [`Policy`] with its ed25519 key and the
//! agent acts only on policies that verify against the key it pinned and are newer than
//! the one it holds. Whoever can publish on the broker cannot shut the fleet down.
//!
//! # Keys
//! - Text form (config files, the collector's data dir, `policy show`): standard base64
//!   with padding of the 32 raw key bytes, 44 characters. The same form serves the
//!   public key ([`encode_verifying_key`], [`parse_verifying_key`]) and the secret seed
//!   ([`encode_signing_key`], [`parse_signing_key`]); surrounding whitespace is ignored
//!   on parsing so a key file may end with a newline.
//! - Key id ([`key_id`]): the first 16 lowercase hex digits (8 bytes) of SHA-256 of the
//!   32-byte public key. It names a key in logs and lets an agent tell "signed by another
//!   key" from "forged"; it is not trusted: the signature is always checked against the
//!   pinned key itself.
//!
//! # What is signed
//! `"veille.v1.Policy\n"` followed by the encoded policy bytes carried in
//! `SignedPolicy::policy`. The prefix keeps a signature over a policy from being valid
//! for anything else the same key may sign later. The agent verifies those exact bytes,
//! then decodes them: a decoded policy is never re-encoded to be checked.
//!
//! Wake-on-LAN requests ([`sign_wake`], [`verify_wake`]) are signed with the same key
//! over `"veille.v1.WakeRequest\n"` followed by the encoded request: whoever can
//! publish an Ack on the broker cannot make agents flood their subnets, and neither
//! signature is valid as the other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer};
use prost::Message;
use sha2::{Digest, Sha256};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::policy::validate_policy;
use crate::v1::{Policy, SignedPolicy, SignedWakeRequest, WakeRequest};
use crate::validate::ValidationError;

/// What precedes the policy bytes in the signed message (domain separation).
pub const SIGNING_CONTEXT: &[u8] = b"veille.v1.Policy\n";

/// What precedes the wake request bytes in the signed message (domain separation).
pub const WAKE_SIGNING_CONTEXT: &[u8] = b"veille.v1.WakeRequest\n";

/// Largest encoded wake request an agent verifies (one is about 150 bytes).
pub const MAX_WAKE_REQUEST_BYTES: usize = 1024;

/// Largest encoded policy an agent verifies (a policy is a few hundred bytes; this
/// bounds the work a hostile publisher can cause).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Why an agent refused a policy. Logged and reported as a `POLICY_REJECTED` event
/// with [`PolicyRejected::code`] as detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyRejected {
    /// No signature at all.
    #[error("unsigned policy")]
    Unsigned,
    /// Signed by a key other than the pinned one (per its key id).
    #[error("signed by unknown key {key_id:?} (pinned key is {pinned})")]
    UnknownKey { key_id: String, pinned: String },
    /// Names the pinned key but the signature does not verify: forged or corrupted.
    #[error("bad signature")]
    BadSignature,
    /// Bytes that are not a signature or not a policy.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// Correctly signed but not valid (a collector bug, or a newer collector's rules).
    #[error("invalid policy: {0}")]
    Invalid(ValidationError),
    /// Not newer than the policy held: a replay or a downgrade.
    #[error("policy version {version} is not newer than the held version {held}")]
    NotNewer { version: u64, held: u64 },
}

impl PolicyRejected {
    /// A stable short code for events and reports.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyRejected::Unsigned => "unsigned",
            PolicyRejected::UnknownKey { .. } => "unknown_key",
            PolicyRejected::BadSignature => "bad_signature",
            PolicyRejected::Malformed { .. } => "malformed",
            PolicyRejected::Invalid(_) => "invalid",
            PolicyRejected::NotNewer { .. } => "not_newer",
        }
    }
}

/// A key given as text that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not base64: {0}")]
    Base64(String),
    #[error("{0} bytes, an ed25519 key has 32")]
    Length(usize),
    #[error("not an ed25519 public key (not a point of the curve)")]
    NotOnCurve,
}

/// Signs a policy. The collector validates it first ([`validate_policy`]); an agent
/// would refuse an invalid one anyway.
pub fn sign(policy: &Policy, key: &SigningKey) -> SignedPolicy {
    let bytes = policy.encode_to_vec();
    let signature = key.sign(&signed_message(&bytes));
    SignedPolicy {
        policy: bytes,
        signature: signature.to_bytes().to_vec(),
        key_id: key_id(&key.verifying_key()),
    }
}

/// Checks a signed policy against the pinned key and the version held, and returns the
/// policy to keep. Checks, in order: signed at all, signature 64 bytes, key id names
/// the pinned key, signature valid over the exact bytes (strict ed25519 verification),
/// bytes decode, policy valid, version above `held_version`.
pub fn verify(
    signed: &SignedPolicy,
    pinned: &VerifyingKey,
    held_version: Option<u64>,
) -> Result<Policy, PolicyRejected> {
    if signed.signature.is_empty() {
        return Err(PolicyRejected::Unsigned);
    }
    let signature =
        Signature::from_slice(&signed.signature).map_err(|_| PolicyRejected::Malformed {
            what: "signature",
            detail: format!("{} bytes, expected 64", signed.signature.len()),
        })?;
    let pinned_id = key_id(pinned);
    if signed.key_id != pinned_id {
        return Err(PolicyRejected::UnknownKey {
            key_id: signed.key_id.chars().take(64).collect(),
            pinned: pinned_id,
        });
    }
    if signed.policy.len() > MAX_POLICY_BYTES {
        return Err(PolicyRejected::Malformed {
            what: "policy",
            detail: format!("{} bytes, at most {MAX_POLICY_BYTES}", signed.policy.len()),
        });
    }
    pinned
        .verify_strict(&signed_message(&signed.policy), &signature)
        .map_err(|_| PolicyRejected::BadSignature)?;
    let policy =
        Policy::decode(signed.policy.as_slice()).map_err(|e| PolicyRejected::Malformed {
            what: "policy",
            detail: e.to_string(),
        })?;
    validate_policy(&policy).map_err(PolicyRejected::Invalid)?;
    if let Some(held) = held_version
        && policy.version <= held
    {
        return Err(PolicyRejected::NotNewer {
            version: policy.version,
            held,
        });
    }
    Ok(policy)
}

/// The id of a key: first 16 hex digits of SHA-256 of its 32 public bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new signing key from the operating system's random source.
///
/// # Errors
/// When the OS has no random source to give (never on Linux ≥ 3.17, macOS, Windows).
pub fn generate_signing_key() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key as text (44 characters of base64).
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Reads a public key written by [`encode_verifying_key`].
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(&key_bytes(text)?).map_err(|_| KeyError::NotOnCurve)
}

/// The secret key as text, for a file only the collector can read.
pub fn encode_signing_key(key: &SigningKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Reads a secret key written by [`encode_signing_key`].
pub fn parse_signing_key(text: &str) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&key_bytes(text)?))
}

fn key_bytes(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|e| KeyError::Base64(e.to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

fn signed_message(policy_bytes: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, policy_bytes].concat()
}

/// Why an agent refused a wake request. Logged; the packet is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakeRejected {
    #[error("unsigned wake request")]
    Unsigned,
    #[error("wake request signed by unknown key {key_id:?} (pinned key is {pinned})")]
    UnknownKey { key_id: String, pinned: String },
    #[error("wake request with a bad signature")]
    BadSignature,
    #[error("malformed wake request: {0}")]
    Malformed(String),
    #[error("wake request for relay {relay:?}, not this device")]
    OtherRelay { relay: String },
    #[error("wake request expired at {expires_unix_ms} (now {now_unix_ms})")]
    Expired {
        expires_unix_ms: i64,
        now_unix_ms: i64,
    },
}

/// Signs a wake request for its relay's next Ack.
pub fn sign_wake(request: &WakeRequest, key: &SigningKey) -> SignedWakeRequest {
    let bytes = request.encode_to_vec();
    let signature = key.sign(&[WAKE_SIGNING_CONTEXT, &bytes].concat());
    SignedWakeRequest {
        request: bytes,
        signature: signature.to_bytes().to_vec(),
        key_id: key_id(&key.verifying_key()),
    }
}

/// Checks a signed wake request against the pinned key and returns it when it names
/// `device_id` as its relay and expires after `now_unix_ms` (the agent's clock: a
/// request is short-lived, minutes, so clocks need only be roughly right). Checks, in
/// order: signed, key id, size, signature over the exact bytes, decoding, relay,
/// expiry.
pub fn verify_wake(
    signed: &SignedWakeRequest,
    pinned: &VerifyingKey,
    device_id: &str,
    now_unix_ms: i64,
) -> Result<WakeRequest, WakeRejected> {
    if signed.signature.is_empty() {
        return Err(WakeRejected::Unsigned);
    }
    let signature = Signature::from_slice(&signed.signature).map_err(|_| {
        WakeRejected::Malformed(format!(
            "signature of {} bytes, expected 64",
            signed.signature.len()
        ))
    })?;
    let pinned_id = key_id(pinned);
    if signed.key_id != pinned_id {
        return Err(WakeRejected::UnknownKey {
            key_id: signed.key_id.chars().take(64).collect(),
            pinned: pinned_id,
        });
    }
    if signed.request.len() > MAX_WAKE_REQUEST_BYTES {
        return Err(WakeRejected::Malformed(format!(
            "{} bytes, at most {MAX_WAKE_REQUEST_BYTES}",
            signed.request.len()
        )));
    }
    pinned
        .verify_strict(
            &[WAKE_SIGNING_CONTEXT, &signed.request].concat(),
            &signature,
        )
        .map_err(|_| WakeRejected::BadSignature)?;
    let request = WakeRequest::decode(signed.request.as_slice())
        .map_err(|e| WakeRejected::Malformed(e.to_string()))?;
    if request.relay_device_id != device_id {
        return Err(WakeRejected::OtherRelay {
            relay: request.relay_device_id.chars().take(64).collect(),
        });
    }
    if request.expires_unix_ms <= now_unix_ms {
        return Err(WakeRejected::Expired {
            expires_unix_ms: request.expires_unix_ms,
            now_unix_ms,
        });
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::WORKING_DAYS;
    use crate::v1::{PolicyMode, ShutdownWindow};

    /// Fixed keys: tests do not depend on the random source.
    fn collector_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn other_key() -> SigningKey {
        SigningKey::from_bytes(&[8; 32])
    }

    fn policy(version: u64) -> Policy {
        Policy {
            org: "acme".into(),
            version,
            mode: PolicyMode::Enforce as i32,
            windows: vec![ShutdownWindow {
                days: WORKING_DAYS,
                start: "20:00".into(),
                end: "07:00".into(),
                time_zone: "Europe/Paris".into(),
                ..ShutdownWindow::default()
            }],
            idle_threshold_s: 900,
            warning_s: 300,
            postpones_allowed: 1,
            postpone_s: 1800,
            ..Policy::default()
        }
    }

    fn pinned() -> VerifyingKey {
        collector_key().verifying_key()
    }

    #[test]
    fn a_signed_policy_verifies_and_round_trips() {
        let signed = sign(&policy(3), &collector_key());
        assert_eq!(signed.signature.len(), 64);
        assert_eq!(verify(&signed, &pinned(), None), Ok(policy(3)));
        assert_eq!(verify(&signed, &pinned(), Some(2)), Ok(policy(3)));
        // And through the wire, as a field of an Ack.
        let ack = crate::v1::Ack {
            policy: Some(signed),
            ..Default::default()
        };
        let ack = crate::v1::Ack::decode(ack.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            verify(&ack.policy.unwrap(), &pinned(), Some(2)),
            Ok(policy(3))
        );
    }

    #[test]
    fn a_flipped_byte_anywhere_in_the_policy_is_a_bad_signature() {
        let signed = sign(&policy(3), &collector_key());
        for i in 0..signed.policy.len() {
            let mut forged = signed.clone();
            forged.policy[i] ^= 0x01;
            assert_eq!(
                verify(&forged, &pinned(), None),
                Err(PolicyRejected::BadSignature),
                "byte {i}"
            );
        }
        let mut forged = signed.clone();
        forged.signature[10] ^= 0x80;
        assert_eq!(
            verify(&forged, &pinned(), None),
            Err(PolicyRejected::BadSignature)
        );
    }

    #[test]
    fn a_policy_signed_by_another_key_is_refused() {
        // Honest about its key: unknown key.
        let signed = sign(&policy(3), &other_key());
        let err = verify(&signed, &pinned(), None).unwrap_err();
        assert_eq!(err.code(), "unknown_key");
        // Claiming the pinned key's id: the signature still does not verify.
        let mut lying = signed;
        lying.key_id = key_id(&pinned());
        assert_eq!(
            verify(&lying, &pinned(), None),
            Err(PolicyRejected::BadSignature)
        );
    }

    #[test]
    fn a_replayed_older_or_same_version_is_refused() {
        let old = sign(&policy(2), &collector_key());
        assert_eq!(
            verify(&old, &pinned(), Some(5)),
            Err(PolicyRejected::NotNewer {
                version: 2,
                held: 5
            })
        );
        let same = sign(&policy(5), &collector_key());
        assert_eq!(
            verify(&same, &pinned(), Some(5)),
            Err(PolicyRejected::NotNewer {
                version: 5,
                held: 5
            })
        );
    }

    #[test]
    fn unsigned_malformed_and_invalid_policies_are_refused() {
        let signed = sign(&policy(3), &collector_key());
        let unsigned = SignedPolicy {
            signature: vec![],
            ..signed.clone()
        };
        assert_eq!(
            verify(&unsigned, &pinned(), None),
            Err(PolicyRejected::Unsigned)
        );
        let short = SignedPolicy {
            signature: vec![1; 63],
            ..signed.clone()
        };
        assert_eq!(
            verify(&short, &pinned(), None).unwrap_err().code(),
            "malformed"
        );
        // Correctly signed garbage: verified, then fails to decode.
        let garbage = vec![0xff; 5];
        let sig = collector_key().sign(&signed_message(&garbage));
        let garbage = SignedPolicy {
            policy: garbage,
            signature: sig.to_bytes().to_vec(),
            key_id: signed.key_id.clone(),
        };
        assert_eq!(
            verify(&garbage, &pinned(), None).unwrap_err().code(),
            "malformed"
        );
        // Correctly signed but invalid (version 0): the error names the field.
        match verify(&sign(&policy(0), &collector_key()), &pinned(), None) {
            Err(PolicyRejected::Invalid(e)) => assert_eq!(e.field, "version"),
            other => panic!("{other:?}"),
        }
    }

    fn wake(relay: &str, expires_unix_ms: i64) -> WakeRequest {
        WakeRequest {
            id: "w1".into(),
            org: "acme".into(),
            relay_device_id: relay.into(),
            target_device_id: "pc-off".into(),
            mac: "02:00:00:00:00:01".into(),
            broadcast: "192.168.1.255".into(),
            expires_unix_ms,
        }
    }

    #[test]
    fn a_wake_request_verifies_only_for_its_relay_before_it_expires() {
        let signed = sign_wake(&wake("pc-a", 2_000), &collector_key());
        assert_eq!(
            verify_wake(&signed, &pinned(), "pc-a", 1_999),
            Ok(wake("pc-a", 2_000))
        );
        assert_eq!(
            verify_wake(&signed, &pinned(), "pc-b", 1_000),
            Err(WakeRejected::OtherRelay {
                relay: "pc-a".into()
            })
        );
        assert!(matches!(
            verify_wake(&signed, &pinned(), "pc-a", 2_000),
            Err(WakeRejected::Expired { .. })
        ));
    }

    #[test]
    fn forged_unsigned_and_cross_context_wake_requests_are_refused() {
        let good = sign_wake(&wake("pc-a", 2_000), &collector_key());
        // Another key, even announcing the pinned key's id.
        let mut forged = sign_wake(&wake("pc-a", 2_000), &other_key());
        assert!(matches!(
            verify_wake(&forged, &pinned(), "pc-a", 0),
            Err(WakeRejected::UnknownKey { .. })
        ));
        forged.key_id = good.key_id.clone();
        assert_eq!(
            verify_wake(&forged, &pinned(), "pc-a", 0),
            Err(WakeRejected::BadSignature)
        );
        // A changed target under the original signature.
        let mut tampered = good.clone();
        let mut w = wake("pc-a", 2_000);
        w.mac = "02:00:00:00:00:02".into();
        tampered.request = w.encode_to_vec();
        assert_eq!(
            verify_wake(&tampered, &pinned(), "pc-a", 0),
            Err(WakeRejected::BadSignature)
        );
        let mut unsigned = good.clone();
        unsigned.signature.clear();
        assert_eq!(
            verify_wake(&unsigned, &pinned(), "pc-a", 0),
            Err(WakeRejected::Unsigned)
        );
        // A policy signature over the same bytes is not a wake signature.
        let mut cross = good.clone();
        cross.signature = collector_key()
            .sign(&signed_message(&good.request))
            .to_bytes()
            .to_vec();
        assert_eq!(
            verify_wake(&cross, &pinned(), "pc-a", 0),
            Err(WakeRejected::BadSignature)
        );
    }

    #[test]
    fn a_signature_is_bound_to_its_context() {
        // A signature over the bare bytes (no context) does not verify.
        let mut signed = sign(&policy(3), &collector_key());
        signed.signature = collector_key().sign(&signed.policy).to_bytes().to_vec();
        assert_eq!(
            verify(&signed, &pinned(), None),
            Err(PolicyRejected::BadSignature)
        );
    }

    #[test]
    fn keys_round_trip_through_text() {
        let key = generate_signing_key().unwrap();
        assert_ne!(key.to_bytes(), generate_signing_key().unwrap().to_bytes());
        let public = encode_verifying_key(&key.verifying_key());
        assert_eq!(public.len(), 44);
        assert_eq!(
            parse_verifying_key(&format!("  {public}\n")),
            Ok(key.verifying_key())
        );
        let secret = encode_signing_key(&key);
        assert_eq!(
            parse_signing_key(&secret).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert!(matches!(
            parse_verifying_key("not base64!"),
            Err(KeyError::Base64(_))
        ));
        assert_eq!(
            parse_verifying_key(&BASE64.encode([1u8; 31])),
            Err(KeyError::Length(31))
        );
    }

    #[test]
    fn key_id_is_the_sha256_prefix_of_the_public_key() {
        // RFC 8032 test 1 public key; its SHA-256 computed independently
        // (`printf d75a...511a | xxd -r -p | sha256sum`).
        let public = VerifyingKey::from_bytes(&[
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ])
        .unwrap();
        assert_eq!(key_id(&public), KEY_ID_RFC8032_1);
        assert_eq!(key_id(&public).len(), 16);
        assert_ne!(key_id(&public), key_id(&pinned()));
    }

    const KEY_ID_RFC8032_1: &str = "21fe31dfa154a261";
}
