//! Web sessions: a browser logs in once with an org or operator token and then carries
//! a random session id in a cookie, never the token itself.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (a form on another
//! site cannot ride on it: with POST-only login and logout this is the CSRF defence) and
//! `Path=/`; with TLS on (`[tls] cert`) it is also `Secure`, so a browser never sends it
//! back over plaintext (with `require = false` the same port still accepts http://, and
//! a login there is refused by the browser rather than leaking). Sessions live in memory: a collector restart logs everyone out, which is
//! acceptable for a read-only page and keeps no session secret on disk. Pure apart from
//! the random ids; the clock is the caller's.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;

use crate::auth::{Principal, constant_time_eq};

/// Name of the session cookie.
pub const COOKIE: &str = "veille_session";

/// Most sessions kept at once; beyond it the oldest is dropped (bounds memory when a
/// script logs in in a loop).
pub const MAX_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    pub expires_ms: i64,
}

/// The open sessions, by id.
#[derive(Debug)]
pub struct Sessions {
    ttl_ms: i64,
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Sessions lasting `ttl_ms` from login (no sliding renewal: a stolen cookie dies
    /// on schedule).
    pub fn new(ttl_ms: i64) -> Self {
        Self {
            ttl_ms,
            inner: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    /// Opens a session for `principal` at `now_ms`; returns its id.
    pub fn open(&self, principal: Principal, now_ms: i64) -> String {
        let id = new_id();
        let mut map = self.lock();
        map.retain(|_, s| s.expires_ms > now_ms);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                principal,
                expires_ms: now_ms.saturating_add(self.ttl_ms),
            },
        );
        id
    }

    /// The principal of a live session. The id is compared in constant time against
    /// every key so that timing does not reveal a prefix of a valid id.
    pub fn get(&self, id: &str, now_ms: i64) -> Option<Principal> {
        let map = self.lock();
        let mut found = None;
        for (k, s) in map.iter() {
            if constant_time_eq(k.as_bytes(), id.as_bytes()) && found.is_none() {
                found = Some(s.clone());
            }
        }
        found.filter(|s| s.expires_ms > now_ms).map(|s| s.principal)
    }

    /// Ends a session (logout). Unknown ids are ignored.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a valid map: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 256 random bits from the OS-seeded generator, hex.
fn new_id() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `Set-Cookie` value opening a session; `secure` when the collector serves TLS.
pub fn set_cookie(id: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{}; Max-Age={max_age_s}",
        secure_attr(secure)
    )
}

/// The `Set-Cookie` value erasing the session cookie (same attributes, or a browser
/// would keep the `Secure` one).
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict{}; Max-Age=0",
        secure_attr(secure)
    )
}

fn secure_attr(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

/// The value of cookie `name` in a `Cookie:` header (`a=1; b=2`).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_its_expiry_and_dies_at_logout() {
        let s = Sessions::new(1000);
        let id = s.open(Principal::Org("acme".into()), 10_000);
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(s.get(&id, 10_999), Some(Principal::Org("acme".into())));
        assert_eq!(s.get(&id, 11_000), None, "expired at ttl");
        let op = s.open(Principal::Operator, 20_000);
        assert_ne!(op, id);
        assert_eq!(s.get(&op, 20_001), Some(Principal::Operator));
        assert_eq!(
            s.len(),
            1,
            "the expired session was swept at the next login"
        );
        s.close(&op);
        assert_eq!(s.get(&op, 20_002), None);
        assert!(s.is_empty());
    }

    #[test]
    fn unknown_and_prefix_ids_are_refused() {
        let s = Sessions::new(1000);
        let id = s.open(Principal::Operator, 0);
        assert_eq!(s.get(&id[..63], 1), None);
        assert_eq!(s.get("", 1), None);
        assert_eq!(s.get(&format!("{id}0"), 1), None);
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let s = Sessions::new(i64::MAX / 2);
        for i in 0..(MAX_SESSIONS as i64 + 5) {
            s.open(Principal::Operator, i);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_are_secure_exactly_when_tls_is_on() {
        assert!(set_cookie("abc", 60, true).contains("; Secure;"));
        assert!(clear_cookie(true).contains("; Secure;"));
        assert!(!clear_cookie(false).contains("Secure"));
    }

    #[test]
    fn cookies_are_http_only_strict_and_parsed_back() {
        let c = set_cookie("abc", 60, false);
        assert!(c.starts_with("veille_session=abc;"));
        assert!(c.contains("HttpOnly"));
        assert!(c.contains("SameSite=Strict"));
        assert!(!c.contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert_eq!(
            cookie_value("x=1; veille_session=abc; y=2", COOKIE),
            Some("abc")
        );
        assert_eq!(cookie_value("veille_sessionx=abc", COOKIE), None);
        assert_eq!(cookie_value("", COOKIE), None);
    }
}
