//! The policy channel: each org's current `SignedPolicy` (protobuf bytes, exactly as
//! the gRPC Ack carries it) as the retained message on `veille/v1/{org}/policy`,
//! published at start for every org that has one and again after each `policy set`
//! ([`PolicyCache::changes`]). Agents verify it against their pinned key: whoever can
//! publish on that topic cannot make them accept a policy the collector did not sign.
//!
//! - Embedded broker: a retained publish on the in-process link (QoS 0, like the Acks:
//!   rumqttd's link has no QoS 1 publish; the broker keeps the retained message in
//!   memory and gives it to every agent that subscribes).
//! - External broker: retained, QoS 1, again after every (re)connection, so a broker
//!   restarted without persistence gets it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use prost::Message;
use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Publish};
use tokio::sync::watch;
use veille_proto::topics;
use veille_proto::v1::SignedPolicy;

use crate::policy::cache::PolicyCache;

/// What was last published per org, to publish only what changed.
pub type Sent = HashMap<String, SignedPolicy>;

/// `(topic, payload)` of every org whose current policy differs from `sent` (all of
/// them when `sent` is empty); records them in `sent`.
pub fn pending(cache: &PolicyCache, sent: &mut Sent) -> Vec<(String, Vec<u8>)> {
    cache
        .all()
        .into_iter()
        .filter_map(|(org, signed)| {
            if sent.get(&org) == Some(&signed) || !topics::valid_segment(&org) {
                return None;
            }
            let payload = signed.encode_to_vec();
            sent.insert(org.clone(), signed);
            Some((topics::policy(&org), payload))
        })
        .collect()
}

/// A retained publish on the embedded broker's link. `LinkTx::publish` has no retain
/// flag; `LinkTx::send` takes the packet as is and is `async` only in name (it never
/// waits), so it is polled once here, under the link's lock.
fn publish_retained(link: &Mutex<LinkTx>, topic: String, payload: Vec<u8>) -> Result<(), String> {
    // QoS 0: the only QoS a local link publishes with.
    let publish = Publish::new(topic.into_bytes(), payload, true);
    let mut tx = link.lock().unwrap_or_else(|e| e.into_inner());
    let send = tx.send(Packet::Publish(publish, None));
    let mut send = std::pin::pin!(send);
    match send.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.map(|_| ()).map_err(|e| e.to_string()),
        Poll::Pending => Err("the embedded broker's link is busy".into()),
    }
}

/// Publishes the policies on the embedded broker now and after each change, until `stop`.
pub async fn run_embedded(
    link: Arc<Mutex<LinkTx>>,
    cache: Arc<PolicyCache>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = cache.changes();
    let mut sent = Sent::new();
    loop {
        changes.borrow_and_update();
        for (topic, payload) in pending(&cache, &mut sent) {
            match publish_retained(&link, topic.clone(), payload) {
                Ok(()) => tracing::info!(%topic, "policy published (retained)"),
                Err(e) => tracing::warn!(%topic, error = %e, "cannot publish the policy"),
            }
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { break },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// Queues the retained QoS 1 publishes of what changed (everything when `sent` is
/// empty) on an external broker's client; non-blocking (called from the poll loop).
pub fn publish_external(client: &rumqttc::AsyncClient, cache: &PolicyCache, sent: &mut Sent) {
    for (topic, payload) in pending(cache, sent) {
        match client.try_publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, true, payload) {
            Ok(()) => tracing::info!(%topic, "policy published (retained)"),
            Err(e) => tracing::warn!(%topic, error = %e, "cannot publish the policy"),
        }
    }
}

/// Resolves when the cache changed; never when there is no cache.
pub async fn changed(changes: &mut Option<watch::Receiver<u64>>) {
    let ok = match changes {
        Some(c) => c.changed().await.is_ok(),
        None => false,
    };
    if !ok {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_gives_what_changed_only() {
        let cache = PolicyCache::default();
        let signed = |v: u8| SignedPolicy {
            policy: vec![v],
            signature: vec![v; 64],
            key_id: "k".into(),
        };
        cache.put("acme", signed(1));
        cache.put("globex", signed(1));
        let mut sent = Sent::new();
        let all = pending(&cache, &mut sent);
        assert_eq!(
            all.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["veille/v1/acme/policy", "veille/v1/globex/policy"]
        );
        assert_eq!(SignedPolicy::decode(&all[0].1[..]).unwrap(), signed(1));
        assert!(pending(&cache, &mut sent).is_empty());
        cache.put("acme", signed(2));
        let changed = pending(&cache, &mut sent);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, "veille/v1/acme/policy");
    }
}
