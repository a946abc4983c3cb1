//! Login throttling per client address (issue 21): a token is long and random, but
//! nothing else stops a client from trying tokens as fast as the server answers.
//! After [`MAX_FAILURES`] refused logins from one address within [`WINDOW_MS`], that
//! address gets `429 Too Many Requests` (with `Retry-After`) without its token being
//! looked at, until the window that began at its first failure has passed. A
//! successful login clears the address's count.
//!
//! Keyed by IP, not by port: a client opens a new connection (a new port) per try.
//! Pure apart from the caller's clock (`now_ms`), so tests drive time by hand.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Refused logins an address may have within [`WINDOW_MS`] before it must wait.
pub const MAX_FAILURES: u32 = 5;

/// The window over which failures count, and so the longest wait: 15 minutes.
pub const WINDOW_MS: i64 = 15 * 60_000;

/// Addresses remembered at most: a flood from many addresses cannot grow memory
/// without bound (expired entries go first, then all).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    first_ms: i64,
    count: u32,
}

/// The failures of each address; shared by the login handler's calls.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    by_addr: Mutex<HashMap<Option<IpAddr>, Failures>>,
}

impl LoginThrottle {
    /// `Some(seconds)` to wait if `addr` may not try now; `None` if it may. `addr` is
    /// `None` where the server does not know it (in-process tests): one shared count.
    pub fn blocked_for_s(&self, addr: Option<IpAddr>, now_ms: i64) -> Option<u64> {
        let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.get(&addr)?;
        let ends = f.first_ms + WINDOW_MS;
        (f.count >= MAX_FAILURES && now_ms < ends)
            .then(|| u64::try_from((ends - now_ms + 999) / 1000).unwrap_or(1))
    }

    /// Counts a refused login from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>, now_ms: i64) {
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&addr) {
            map.retain(|_, f| now_ms < f.first_ms + WINDOW_MS);
            if map.len() >= MAX_ADDRESSES {
                map.clear();
            }
        }
        let f = map.entry(addr).or_insert(Failures {
            first_ms: now_ms,
            count: 0,
        });
        if now_ms >= f.first_ms + WINDOW_MS {
            *f = Failures {
                first_ms: now_ms,
                count: 0,
            };
        }
        f.count += 1;
    }

    /// A successful login from `addr`: its count starts again.
    pub fn succeeded(&self, addr: Option<IpAddr>) {
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_waits_after_too_many_failures_others_do_not() {
        let t = LoginThrottle::default();
        let (a, b) = (ip("192.0.2.1"), ip("2001:db8::1"));
        let t0 = 1_000_000;
        for i in 0..MAX_FAILURES {
            assert_eq!(t.blocked_for_s(a, t0 + i64::from(i)), None, "try {i}");
            t.failed(a, t0 + i64::from(i));
        }
        assert_eq!(t.blocked_for_s(a, t0 + 10), Some(900));
        assert_eq!(t.blocked_for_s(a, t0 + WINDOW_MS - 1_500), Some(2));
        assert_eq!(t.blocked_for_s(b, t0 + 10), None, "another address");
        // The window that began at the first failure ends: a fresh count.
        assert_eq!(t.blocked_for_s(a, t0 + WINDOW_MS), None);
        t.failed(a, t0 + WINDOW_MS);
        assert_eq!(t.blocked_for_s(a, t0 + WINDOW_MS + 1), None);
    }

    #[test]
    fn success_clears_the_count() {
        let t = LoginThrottle::default();
        let a = ip("192.0.2.7");
        for i in 0..MAX_FAILURES - 1 {
            t.failed(a, i64::from(i));
        }
        t.succeeded(a);
        for i in 0..MAX_FAILURES - 1 {
            t.failed(a, 10 + i64::from(i));
        }
        assert_eq!(t.blocked_for_s(a, 20), None);
        t.failed(a, 21);
        assert!(t.blocked_for_s(a, 22).is_some());
    }

    #[test]
    fn memory_stays_bounded() {
        let t = LoginThrottle::default();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.failed(Some(IpAddr::from(i.to_be_bytes())), 0);
        }
        assert!(t.by_addr.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
