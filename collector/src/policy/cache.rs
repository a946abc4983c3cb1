//! The signed policies in memory, per org: what the gRPC Ack and the MQTT policy topic
//! hand to agents without a store read per report; `changes()` wakes the MQTT
//! publisher when an operator sets a new version.

use std::collections::HashMap;
use std::sync::RwLock;

use veille_proto::signing::{self, SigningKey};
use veille_proto::v1::SignedPolicy;

use crate::policy::{PolicyError, current_all};
use crate::store::Store;

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
}

impl PolicyCache {
    /// The cache filled from the store, announcing `key`'s public half.
    pub fn load(store: &Store, key: &SigningKey) -> Result<Self, PolicyError> {
        let cache = Self {
            public_key: signing::encode_verifying_key(&key.verifying_key()),
            ..Self::default()
        };
        for (p, s) in current_all(store)? {
            cache.put(&p.org, s);
        }
        Ok(cache)
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

    /// Changes whenever a policy is put (`policy set`).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
