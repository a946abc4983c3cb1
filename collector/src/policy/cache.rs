//! The signed policies in memory, per org: what the gRPC Ack and the MQTT policy topic
//! hand to agents without a store read per report; `changes()` wakes the MQTT
//! publisher when an operator sets a new version.

use std::collections::HashMap;
use std::sync::RwLock;

use prost::Message;

use veille_proto::signing::{self, SigningKey};
use veille_proto::v1::SignedPolicy;

use crate::policy::wake::{WakeQueue, wake_for_maintenance};
use crate::policy::{PolicyError, current_all};
use crate::store::Store;

/// How often a server re-reads the policies from the store (see
/// [`PolicyCache::refresh`]): how long a policy set elsewhere takes to reach agents.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The current signed policy per org, in memory: the gRPC Ack carries it with every
/// answer, so it must cost a map lookup, not a store read. The MQTT side watches
/// [`Self::changes`] to republish the retained `veille/v1/{org}/policy` message.
#[derive(Debug, Default)]
pub struct PolicyCache {
    by_org: RwLock<HashMap<String, SignedPolicy>>,
    /// The signing key's public half, base64 (`Ack.policy_key`).
    public_key: String,
    /// Bumped by every [`Self::put`].
    changed: tokio::sync::watch::Sender<u64>,
    /// Wake-on-LAN requests for the relays' Acks, refreshed with the policies.
    pub wakes: WakeQueue,
    /// End of the period the maintenance scheduler last looked at (unix ms; 0: not
    /// yet): each refresh wakes the devices for windows starting after it.
    maintenance_checked_ms: std::sync::atomic::AtomicI64,
}

impl PolicyCache {
    /// The cache filled from the store, announcing `key`'s public half.
    pub fn load(store: &Store, key: &SigningKey) -> Result<Self, PolicyError> {
        let cache = Self::load_empty(key);
        for (p, s) in current_all(store)? {
            cache.put(&p.org, s);
        }
        Ok(cache)
    }

    /// A cache with no policy yet, announcing `key`'s public half ([`Self::refresh`]
    /// fills it).
    pub fn load_empty(key: &SigningKey) -> Self {
        Self {
            public_key: signing::encode_verifying_key(&key.verifying_key()),
            wakes: WakeQueue::new(key),
            ..Self::default()
        }
    }

    /// The public key agents pin on first contact (empty for a cache without a key).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub fn get(&self, org: &str) -> Option<SignedPolicy> {
        self.by_org
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(org)
            .cloned()
    }

    pub fn put(&self, org: &str, signed: SignedPolicy) {
        self.by_org
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org.to_owned(), signed);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every org's current signed policy, sorted by org.
    pub fn all(&self) -> Vec<(String, SignedPolicy)> {
        let mut all: Vec<_> = self
            .by_org
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(o, s)| (o.clone(), s.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Puts every org's current policy from `store` whose version differs from the
    /// cached one: a policy set by another collector sharing the database, or written
    /// by a CLI beside this one, reaches this collector's agents. Returns how many
    /// changed.
    pub fn refresh(&self, store: &Store) -> Result<usize, PolicyError> {
        let mut changed = 0;
        for (p, s) in current_all(store)? {
            let held = self.get(&p.org).map(|h| h.policy);
            if held.as_deref() != Some(s.policy.as_slice()) {
                tracing::info!(org = %p.org, version = p.version,
                    "policy changed in the store (another collector or the CLI): now serving it");
                self.put(&p.org, s);
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The periodic work besides [`Self::refresh`]: queues wake-ups for the maintenance
    /// windows of the cached policies that started since the previous call (none at the
    /// first call: a collector started in the middle of a window does not wake the
    /// fleet late), then reloads the wake queue. Several collectors sharing a store may
    /// both see a window start; the queue keeps one request per device.
    pub fn tick_wakes(&self, store: &Store, now_ms: i64) -> Result<(), PolicyError> {
        use std::sync::atomic::Ordering;
        let from_ms = self.maintenance_checked_ms.swap(now_ms, Ordering::Relaxed);
        if from_ms > 0 && from_ms < now_ms {
            for (org, signed) in self.all() {
                let Ok(policy) = veille_proto::v1::Policy::decode(signed.policy.as_slice()) else {
                    continue;
                };
                match wake_for_maintenance(store, &policy, from_ms, now_ms) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(%org, queued = n,
                        "maintenance window started: wake-on-lan requests queued"),
                    Err(e) => tracing::warn!(%org, error = %e,
                        "maintenance window started: cannot queue the wake-ups"),
                }
            }
        }
        self.wakes
            .refresh(store, now_ms)
            .map_err(|e| PolicyError::Task(e.to_string()))?;
        Ok(())
    }

    /// Refreshes the cache from `store` every [`REFRESH_EVERY`] until `stop` turns true.
    pub fn spawn_refresh(
        self: std::sync::Arc<Self>,
        store: std::sync::Arc<Store>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let (cache, store) = (self.clone(), store.clone());
                let work = move || {
                    cache.refresh(&store)?;
                    cache.tick_wakes(&store, crate::clock::now_ms())
                };
                match tokio::task::spawn_blocking(work).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "policy refresh from the store failed")
                    }
                    Err(e) => tracing::warn!(error = %e, "policy refresh task failed"),
                }
            }
        })
    }

    /// Changes whenever a policy is put (`policy set`).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyFile, load_or_create_key, set, tests::DRAFT};

    #[test]
    fn a_policy_set_through_another_handle_reaches_the_cache_at_the_next_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_key(dir.path()).unwrap();
        let server = Store::open(&dir.path().join(crate::store::STORE_DIR)).unwrap();
        let file = PolicyFile::parse(DRAFT).unwrap();
        set(&server, &key, &file).unwrap();
        let cache = PolicyCache::load(&server, &key).unwrap();
        let org = cache.all()[0].0.clone();
        let mut changes = cache.changes();
        changes.mark_unchanged();
        assert_eq!(cache.refresh(&server).unwrap(), 0, "nothing new yet");
        assert!(!changes.has_changed().unwrap());

        // Another process (a CLI, a second collector) sets version 2.
        let other = Store::open(&dir.path().join(crate::store::STORE_DIR)).unwrap();
        let (p2, s2) = set(&other, &key, &file).unwrap();
        assert_eq!(p2.version, 2);
        assert_eq!(cache.refresh(&server).unwrap(), 1);
        assert_eq!(cache.get(&org), Some(s2));
        assert!(
            changes.has_changed().unwrap(),
            "the MQTT publisher is woken"
        );
        assert_eq!(cache.refresh(&server).unwrap(), 0);
    }
}
