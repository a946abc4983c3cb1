//! Who may do what: agents present their organisation's enrollment token, operators the
//! operator token. Pure: the token files are handled by the `tokens` module.
//!
//! Org tokens are kept and compared as SHA-256 digests ([`TokenHash`]): the collector
//! only needs to verify them, so a copy of its data directory or config does not hand out
//! working tokens. A fast hash is enough, no slow KDF (argon2, scrypt) is needed: a slow
//! KDF protects low-entropy secrets (passwords) from guessing, and these tokens are 128+
//! random bits (the generated ones draw 256), so no dictionary exists to
//! try and SHA-256 preimages are out of reach. It also keeps verification cheap for the
//! MQTT broker's CONNECT storm after an outage.

/// The identity behind a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The collector's operator: sees every organisation.
    Operator,
    /// An organisation's token: may send reports for that org and read only that org.
    Org(String),
}

/// The SHA-256 digest of a token: what the collector keeps and compares instead of the
/// token itself (see the module note for why SHA-256 and not a password KDF).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The digest of `token` (its UTF-8 bytes, as presented, nothing trimmed).
    pub fn of(token: &str) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(token.as_bytes()).into())
    }

    /// Parses 64 hex digits (either case), as `sha256sum` prints them.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(Self(out))
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `token` hashes to this digest, in time independent of where they differ.
    pub fn verify(&self, token: &str) -> bool {
        constant_time_eq(&Self::of(token).0, &self.0)
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not secret, but no use in logs either; a prefix is enough to tell two apart.
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// The tokens the collector accepts, as digests. Compares digests in constant time and
/// always walks every configured org, so timing does not tell which org was close.
#[derive(Clone)]
pub struct Auth {
    orgs: Vec<(String, TokenHash)>,
    operator: TokenHash,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.orgs.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Auth")
            .field("orgs", &ids)
            .field("tokens", &"<redacted>")
            .finish()
    }
}

impl Auth {
    /// `orgs` are (org id, token digest) pairs; `operator` is the operator token's digest.
    pub fn new(orgs: Vec<(String, TokenHash)>, operator: TokenHash) -> Self {
        Self { orgs, operator }
    }

    /// The one verification every door uses (gRPC ingest, MQTT CONNECT, HTTP API, web
    /// login, meter sink): the org whose token this is. The operator token does not send
    /// reports.
    pub fn org_for_token(&self, token: &str) -> Option<&str> {
        let presented = TokenHash::of(token);
        let mut found = None;
        for (id, expected) in &self.orgs {
            if constant_time_eq(&presented.0, &expected.0) && found.is_none() {
                found = Some(id.as_str());
            }
        }
        found
    }

    /// Who this token belongs to, for the HTTP API.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let operator = self.operator.verify(token);
        let org = self.org_for_token(token);
        if operator {
            Some(Principal::Operator)
        } else {
            org.map(|id| Principal::Org(id.to_owned()))
        }
    }

    /// Configured org ids, in configuration order.
    pub fn org_ids(&self) -> impl Iterator<Item = &str> {
        self.orgs.iter().map(|(id, _)| id.as_str())
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive,
/// surrounding spaces ignored). `None` for any other shape.
pub fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Equality whose running time depends only on the lengths, not on where the inputs
/// differ. A length difference is folded into the result rather than returned early,
/// so only the (non-secret) length of the presented token shows in timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the loop into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            vec![
                ("acme".into(), TokenHash::of("token-acme-0123456789")),
                ("town".into(), TokenHash::of("token-town-0123456789")),
            ],
            TokenHash::of("operator-0123456789"),
        )
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        // A prefix padded with NULs must not pass.
        assert!(!constant_time_eq(b"abc\0", b"abc"));
    }

    #[test]
    fn tokens_map_to_their_org_or_to_the_operator() {
        let a = auth();
        assert_eq!(a.org_for_token("token-town-0123456789"), Some("town"));
        assert_eq!(a.org_for_token("token-town-012345678"), None);
        assert_eq!(a.org_for_token("operator-0123456789"), None);
        assert_eq!(
            a.principal("operator-0123456789"),
            Some(Principal::Operator)
        );
        assert_eq!(
            a.principal("token-acme-0123456789"),
            Some(Principal::Org("acme".into()))
        );
        assert_eq!(a.principal("nope"), None);
        assert!(!format!("{a:?}").contains("token-acme"));
    }

    #[test]
    fn token_hash_is_sha256_and_round_trips_through_hex() {
        // `printf %s abc | sha256sum`: the form the README tells operators to use.
        let h = TokenHash::of("abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TokenHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(TokenHash::from_hex(&h.to_hex()[..62]), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(TokenHash::from_hex(&"é".repeat(32)), None);
        assert!(h.verify("abc"));
        assert!(!h.verify("abc "));
        assert!(!h.verify(&h.to_hex()), "the digest is not itself a token");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
