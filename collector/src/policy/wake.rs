//! Wake-on-LAN through a relay agent, the collector's side (issue 19). A request is
//! queued in the store's `wake_requests` tree (so `veille-collector wake`, the API of
//! any collector sharing the store, and the maintenance scheduler all feed the same
//! queue), with the relay already chosen by `veille_domain::policy::wake_relay`. The
//! [`WakeQueue`] keeps the unexpired ones in memory, signed, per relay: every Ack to
//! that relay carries them (`Ack.wake`) until they expire; the agent sends each id once.
//!
//! Signed with the policy key (`veille_proto::signing::sign_wake`): an Ack over MQTT can
//! be forged by any broker client, and an agent only obeys what verifies against the
//! key it pinned.

use std::collections::HashMap;
use std::sync::RwLock;

use jiff::Timestamp;
use prost::Message;
use veille_domain::policy::wake_relay::{
    self, Candidate, NoRelay, QueuedWake, choose_relay, is_awake, pending_for_target,
};
use veille_proto::signing::{self, SigningKey};
use veille_proto::v1::{Inventory, Policy, PolicyMode, SignedWakeRequest};

use crate::store::engine::Tree;
use crate::store::{Store, StoreError};

/// `POST`: wake the device named by the path's `{id}` (operator token).
pub const API_PATH: &str = "/api/v1/devices/{id}/wake";

#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    #[error("no device {device:?} in org {org:?}")]
    UnknownDevice { org: String, device: String },
    #[error("no device with hostname {hostname:?} in org {org:?}")]
    UnknownHostname { org: String, hostname: String },
    #[error("hostname {hostname:?} names {count} devices of org {org:?}; name one with --device")]
    AmbiguousHostname {
        org: String,
        hostname: String,
        count: usize,
    },
    #[error("cannot wake {device:?}: {reason}")]
    NoRelay { device: String, reason: NoRelay },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt wake request in the store: {0}")]
    Corrupt(String),
}

impl WakeError {
    /// Not found (exit code 2, HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            WakeError::UnknownDevice { .. } | WakeError::UnknownHostname { .. }
        )
    }

    /// The operator's input or the fleet's state, not a fault (exit code 2, HTTP 409).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            WakeError::AmbiguousHostname { .. } | WakeError::NoRelay { .. }
        )
    }
}

/// What [`enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Queued {
    #[serde(flatten)]
    pub request: QueuedWake,
    /// An unexpired request for this device was already waiting: that one is returned
    /// and nothing new was queued.
    pub already_pending: bool,
}

/// The device id of `device`, or of the one device of `org` whose hostname is
/// `hostname` (ASCII case-insensitive, like policies' hostnames).
pub fn resolve(
    store: &Store,
    org: &str,
    device: Option<&str>,
    hostname: Option<&str>,
) -> Result<String, WakeError> {
    if let Some(device) = device {
        return match store.device(org, device)? {
            Some(d) => Ok(d.device_id),
            None => Err(WakeError::UnknownDevice {
                org: org.to_owned(),
                device: device.to_owned(),
            }),
        };
    }
    pick_by_hostname(
        &store.devices(Some(org))?,
        org,
        hostname.unwrap_or_default(),
    )
}

/// The id of the one device of `org` among `records` named `hostname` (ASCII
/// case-insensitive, like policies' hostnames).
pub fn pick_by_hostname(
    records: &[veille_domain::devices::DeviceRecord],
    org: &str,
    hostname: &str,
) -> Result<String, WakeError> {
    let found: Vec<_> = records
        .iter()
        .filter(|d| d.org == org && d.hostname.eq_ignore_ascii_case(hostname))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.device_id.clone()),
        [] => Err(WakeError::UnknownHostname {
            org: org.to_owned(),
            hostname: hostname.to_owned(),
        }),
        many => Err(WakeError::AmbiguousHostname {
            org: org.to_owned(),
            hostname: hostname.to_owned(),
            count: many.len(),
        }),
    }
}

/// Every device of `org` with its inventory's interfaces and when its latest batch
/// arrived (collector clock): the relay candidates, read in two scans.
fn candidates(store: &Store, org: &str) -> Result<Vec<(String, Inventory, i64)>, WakeError> {
    let devices = store.devices(Some(org))?;
    let p = crate::store::prefix(org);
    let inventories: HashMap<Vec<u8>, Vec<u8>> = store
        .read(|tx| tx.kv_scan(Tree::Inventory, &p))?
        .into_iter()
        .collect();
    Ok(devices
        .into_iter()
        .map(|d| {
            let key = crate::store::device_key(org, &d.device_id);
            let inv = inventories
                .get(&key)
                .and_then(|v| Inventory::decode(v.as_slice()).ok())
                .unwrap_or_default();
            (d.device_id, inv, d.last_seen_unix_ms)
        })
        .collect())
}

fn queue_key(q: &QueuedWake) -> Vec<u8> {
    let mut k = crate::store::device_key(&q.org, &q.relay_device_id);
    k.push(0);
    k.extend_from_slice(q.id.as_bytes());
    k
}

/// Every queued request (expired ones too, until [`WakeQueue::refresh`] deletes them).
pub fn queued_all(store: &Store) -> Result<Vec<QueuedWake>, WakeError> {
    store
        .read(|tx| tx.kv_scan(Tree::Wake, b""))?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).map_err(|e| WakeError::Corrupt(e.to_string())))
        .collect()
}

/// Queues a wake-up of `device_id` through the awake agent of its subnet heard from
/// last, unless one is already pending. `reason` says who asked (`cli`, `api`,
/// `maintenance[<i>]`).
pub fn enqueue(
    store: &Store,
    org: &str,
    device_id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<Queued, WakeError> {
    let all = candidates(store, org)?;
    enqueue_among(store, org, device_id, &all, now_ms, reason)
}

fn enqueue_among(
    store: &Store,
    org: &str,
    device_id: &str,
    all: &[(String, Inventory, i64)],
    now_ms: i64,
    reason: &str,
) -> Result<Queued, WakeError> {
    let Some((_, target, _)) = all.iter().find(|(id, _, _)| id == device_id) else {
        return Err(WakeError::UnknownDevice {
            org: org.to_owned(),
            device: device_id.to_owned(),
        });
    };
    let cands: Vec<Candidate<'_>> = all
        .iter()
        .map(|(id, inv, seen)| Candidate {
            device_id: id,
            interfaces: &inv.interfaces,
            last_report_ms: *seen,
        })
        .collect();
    let relay = choose_relay(
        device_id,
        &target.interfaces,
        &cands,
        now_ms,
        wake_relay::AWAKE_WITHIN_MS,
    )
    .map_err(|reason| WakeError::NoRelay {
        device: device_id.to_owned(),
        reason,
    })?;
    let fresh = QueuedWake::new(org, device_id, &relay, now_ms, reason);
    let mut out = None;
    store.write(|tx| {
        let pending: Vec<QueuedWake> = tx
            .kv_scan(Tree::Wake, &crate::store::prefix(org))?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        if let Some(p) = pending_for_target(&pending, org, device_id, now_ms) {
            out = Some(Queued {
                request: p.clone(),
                already_pending: true,
            });
            return Ok(());
        }
        let value = serde_json::to_vec(&fresh).unwrap_or_default();
        tx.kv_put(Tree::Wake, &queue_key(&fresh), &value)?;
        out = Some(Queued {
            request: fresh.clone(),
            already_pending: false,
        });
        Ok(())
    })?;
    let queued = out.ok_or_else(|| WakeError::Corrupt("write ran no body".into()))?;
    if !queued.already_pending {
        tracing::info!(%org, device_id, relay = %queued.request.relay_device_id,
            mac = %queued.request.mac, broadcast = %queued.request.broadcast, reason,
            "wake-on-lan request queued");
    }
    Ok(queued)
}

/// At the start of each maintenance window of an enforced `policy` that falls in
/// `(from_ms, to_ms]`, queues a wake-up for every device of the org that is not awake
/// (no batch for [`wake_relay::AWAKE_WITHIN_MS`]). Devices no relay can reach are
/// logged and skipped. Returns how many requests were queued.
pub fn wake_for_maintenance(
    store: &Store,
    policy: &Policy,
    from_ms: i64,
    to_ms: i64,
) -> Result<usize, WakeError> {
    if policy.mode != PolicyMode::Enforce as i32 || policy.maintenance.is_empty() {
        return Ok(0);
    }
    let ts = |ms: i64| Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let starting: Vec<_> =
        veille_proto::policy::maintenance_between(policy, ts(from_ms), ts(to_ms + 1))
            .into_iter()
            .filter(|s| {
                let start = s.start.as_millisecond();
                from_ms < start && start <= to_ms
            })
            .collect();
    let Some(span) = starting.first() else {
        return Ok(0);
    };
    let org = &policy.org;
    let all = candidates(store, org)?;
    let reason = format!("maintenance[{}]", span.window);
    let mut queued = 0;
    for (id, _, seen) in &all {
        if is_awake(*seen, to_ms) {
            continue;
        }
        match enqueue_among(store, org, id, &all, to_ms, &reason) {
            Ok(q) if !q.already_pending => queued += 1,
            Ok(_) => {}
            Err(WakeError::NoRelay { reason: why, .. }) => {
                tracing::info!(%org, device_id = %id, reason = %why,
                    "maintenance window: cannot wake this device")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(queued)
}

/// (org, relay) → its signed requests with their expiry (unix ms).
type ByRelay = HashMap<(String, String), Vec<(i64, SignedWakeRequest)>>;

/// The unexpired wake requests in memory, signed, per (org, relay): the gRPC and MQTT
/// Acks read it without touching the store.
#[derive(Debug, Default)]
pub struct WakeQueue {
    key: Option<SigningKey>,
    by_relay: RwLock<ByRelay>,
}

impl WakeQueue {
    pub fn new(key: &SigningKey) -> Self {
        Self {
            key: Some(key.clone()),
            by_relay: RwLock::default(),
        }
    }

    /// The signed requests for `relay` of `org` that have not expired at `now_ms`.
    pub fn for_relay(&self, org: &str, relay: &str, now_ms: i64) -> Vec<SignedWakeRequest> {
        let map = self.by_relay.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(org.to_owned(), relay.to_owned()))
            .map(|v| {
                v.iter()
                    .filter(|(exp, _)| *exp > now_ms)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Re-reads the queue from `store`, deletes the expired requests and signs the
    /// others. Returns how many wait.
    pub fn refresh(&self, store: &Store, now_ms: i64) -> Result<usize, WakeError> {
        let Some(key) = &self.key else {
            return Ok(0);
        };
        let all = queued_all(store)?;
        let expired: Vec<_> = all.iter().filter(|q| q.is_expired(now_ms)).collect();
        if !expired.is_empty() {
            store.write(|tx| {
                for q in &expired {
                    tx.kv_delete(Tree::Wake, &queue_key(q))?;
                }
                Ok(())
            })?;
        }
        let mut map = ByRelay::new();
        let mut waiting = 0;
        for q in all.iter().filter(|q| !q.is_expired(now_ms)) {
            map.entry((q.org.clone(), q.relay_device_id.clone()))
                .or_default()
                .push((q.expires_unix_ms, signing::sign_wake(&q.to_proto(), key)));
            waiting += 1;
        }
        *self.by_relay.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::{NetworkInterface, ReportBatch};

    const T0: i64 = 1_800_000_000_000;

    fn enroll(store: &Store, device: &str, subnet: &str, seen_ms: i64) {
        let batch = ReportBatch {
            device_id: device.into(),
            reports: Vec::new(),
            inventory: Some(Inventory {
                hostname: device.into(),
                interfaces: vec![NetworkInterface {
                    name: "eth0".into(),
                    mac: format!("02:00:00:00:00:{:02x}", device.len()),
                    ipv4_subnets: vec![subnet.into()],
                }],
                ..Default::default()
            }),
            agent_version: "test".into(),
        };
        store.apply_batch("acme", &batch, seen_ms).unwrap();
    }

    #[test]
    fn a_queued_request_reaches_its_relay_signed_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(crate::store::STORE_DIR)).unwrap();
        enroll(&store, "pc-asleep", "192.168.1.0/24", T0 - 3_600_000);
        enroll(&store, "pc-relay", "192.168.1.0/24", T0);
        enroll(&store, "pc-alone", "10.0.0.0/8", T0 - 3_600_000);

        let q = enqueue(&store, "acme", "pc-asleep", T0, "cli").unwrap();
        assert!(!q.already_pending);
        assert_eq!(q.request.relay_device_id, "pc-relay");
        assert_eq!(q.request.broadcast.to_string(), "192.168.1.255");
        let again = enqueue(&store, "acme", "pc-asleep", T0 + 1, "api").unwrap();
        assert!(again.already_pending);
        assert_eq!(again.request, q.request);
        assert!(matches!(
            enqueue(&store, "acme", "pc-alone", T0, "cli"),
            Err(WakeError::NoRelay { .. })
        ));
        assert!(matches!(
            enqueue(&store, "acme", "pc-nobody", T0, "cli"),
            Err(WakeError::UnknownDevice { .. })
        ));

        let key = SigningKey::from_bytes(&[7; 32]);
        let queue = WakeQueue::new(&key);
        assert_eq!(queue.refresh(&store, T0).unwrap(), 1);
        let signed = queue.for_relay("acme", "pc-relay", T0);
        assert_eq!(signed.len(), 1);
        let got = signing::verify_wake(&signed[0], &key.verifying_key(), "pc-relay", T0).unwrap();
        assert_eq!(got.mac, q.request.mac);
        assert!(queue.for_relay("acme", "pc-asleep", T0).is_empty());
        // Expired: no longer carried, and deleted from the store at the next refresh.
        let later = q.request.expires_unix_ms;
        assert!(queue.for_relay("acme", "pc-relay", later).is_empty());
        assert_eq!(queue.refresh(&store, later).unwrap(), 0);
        assert!(queued_all(&store).unwrap().is_empty());
    }

    #[test]
    fn a_starting_maintenance_window_wakes_the_devices_that_sleep_once() {
        use veille_proto::v1::MaintenanceWindow;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(crate::store::STORE_DIR)).unwrap();
        // 2027-01-15T03:00:00Z, a Friday: the nightly window opens.
        let opens = 1_800_000_000_000_i64 - 1_800_000_000_000 % 86_400_000 + 3 * 3_600_000;
        enroll(&store, "pc-asleep", "192.168.1.0/24", opens - 3_600_000);
        enroll(&store, "pc-relay", "192.168.1.0/24", opens);
        let mut policy = Policy {
            org: "acme".into(),
            version: 1,
            mode: PolicyMode::Enforce as i32,
            maintenance: vec![MaintenanceWindow {
                days: veille_proto::policy::ALL_DAYS,
                week_of_month: 0,
                start: "03:00".into(),
                end: "03:30".into(),
                time_zone: "UTC".into(),
            }],
            ..Default::default()
        };
        // Before the start, and in dry-run: nothing.
        assert_eq!(
            wake_for_maintenance(&store, &policy, opens - 120_000, opens - 60_000).unwrap(),
            0
        );
        policy.mode = PolicyMode::DryRun as i32;
        assert_eq!(
            wake_for_maintenance(&store, &policy, opens - 60_000, opens).unwrap(),
            0
        );
        policy.mode = PolicyMode::Enforce as i32;
        // The tick that sees the start queues the sleeping device (the relay is awake).
        assert_eq!(
            wake_for_maintenance(&store, &policy, opens - 60_000, opens).unwrap(),
            1
        );
        let queued = queued_all(&store).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].target_device_id, "pc-asleep");
        assert_eq!(queued[0].reason, "maintenance[0]");
        // Already past the start: the next tick does nothing.
        assert_eq!(
            wake_for_maintenance(&store, &policy, opens, opens + 60_000).unwrap(),
            0
        );
    }
}
