//! Who may do what: agents present their organisation's enrollment token, operators the
//! operator token. Pure: the token files are handled by [`crate::tokens`].

/// The identity behind a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The collector's operator: sees every organisation.
    Operator,
    /// An organisation's token: may send reports for that org and read only that org.
    Org(String),
}

/// The tokens the collector accepts. Compares in constant time with respect to the
/// content of the presented token, and always walks every configured token, so timing
/// does not tell which prefix or which org was close.
#[derive(Clone)]
pub struct Auth {
    orgs: Vec<(String, String)>,
    operator: String,
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
    /// `orgs` are (org id, token) pairs; `operator` is the operator token.
    pub fn new(orgs: Vec<(String, String)>, operator: String) -> Self {
        Self { orgs, operator }
    }

    /// The org whose token this is, for the gRPC ingest path (the operator token does
    /// not send reports).
    pub fn org_for_token(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (id, expected) in &self.orgs {
            if constant_time_eq(token.as_bytes(), expected.as_bytes()) && found.is_none() {
                found = Some(id.as_str());
            }
        }
        found
    }

    /// Who this token belongs to, for the HTTP API.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let operator = constant_time_eq(token.as_bytes(), self.operator.as_bytes());
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
                ("acme".into(), "token-acme-0123456789".into()),
                ("town".into(), "token-town-0123456789".into()),
            ],
            "operator-0123456789".into(),
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
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
