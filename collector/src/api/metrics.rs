//! `GET /metrics`: the collector's own health and fleet gauges in the Prometheus text
//! format ([`crate::api::prometheus`]).
//!
//! Label cardinality is bounded by design: labels are only `org` (configured orgs),
//! `site` (at most `[metrics] max_sites` sites, the largest by value, the rest summed
//! into `site="other"` per org), `state` (five values) and `reason` (fixed lists). No
//! per-device label: a fleet of 10,000 PCs stays a few dozen series.
//!
//! The fleet gauges are computed at each scrape from the registry (one pass over the
//! devices, their latest report and today's rollups): scrape every minute, not every
//! second, on a large fleet.

use crate::config::metrics::MetricsConfig;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use veille_proto::v1::{ChassisClass, EventKind, Report};

use crate::api::prometheus::{CONTENT_TYPE, Exposition, Kind};
use crate::auth::{Auth, bearer_token, constant_time_eq};
use crate::ingest::mqtt::drops::DropReason;
use crate::metrics::{IngestMetrics, IngestSnapshot};
use crate::reports::{self, ReportError};
use crate::store::Store;
use veille_domain::energy::catalogue::DeviceClass;
use veille_domain::energy::consumption::{Context, GroupBy};
use veille_domain::energy::rollup::{report_rollup, rollup_energy_wh};

/// A device's state from its latest report, for `veille_devices{state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LastState {
    Active,
    Idle,
    Sleep,
    Off,
    Unknown,
}

impl LastState {
    pub const ALL: [LastState; 5] = [
        LastState::Active,
        LastState::Idle,
        LastState::Sleep,
        LastState::Off,
        LastState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LastState::Active => "active",
            LastState::Idle => "idle",
            LastState::Sleep => "sleep",
            LastState::Off => "off",
            LastState::Unknown => "unknown",
        }
    }
}

/// The state a device is in now, judged from its latest report: a SHUTDOWN in it
/// means off; a report older than `silent_after_ms` without one means unknown (the
/// machine may be off, or unplugged from the network: no evidence either way);
/// otherwise the dominant state of that report (sleep, or active vs idle).
pub fn last_state(last: Option<&Report>, now_ms: i64, silent_after_ms: i64) -> LastState {
    let Some(r) = last else {
        return LastState::Unknown;
    };
    if r.events
        .iter()
        .any(|e| e.kind == EventKind::Shutdown as i32)
    {
        return LastState::Off;
    }
    if now_ms - r.end_unix_ms > silent_after_ms {
        return LastState::Unknown;
    }
    if r.sleep_ms > r.active_ms + r.idle_ms {
        LastState::Sleep
    } else if r.active_ms >= r.idle_ms && r.active_ms > 0 {
        LastState::Active
    } else {
        LastState::Idle
    }
}

/// Keeps the `max` largest (org, site) values and sums the others into
/// `(org, "other")`; sorted by org then site.
pub fn cap_sites(
    values: BTreeMap<(String, String), f64>,
    max: usize,
) -> BTreeMap<(String, String), f64> {
    if values.len() <= max {
        return values;
    }
    let mut all: Vec<((String, String), f64)> = values.into_iter().collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = BTreeMap::new();
    for (i, ((org, site), v)) in all.into_iter().enumerate() {
        let key = if i < max {
            (org, site)
        } else {
            (org, "other".to_owned())
        };
        *out.entry(key).or_insert(0.0) += v;
    }
    out
}

/// The fleet's gauges at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    /// (org, state) → devices.
    pub devices: BTreeMap<(String, LastState), u64>,
    /// org → devices whose latest report is older than the silence threshold.
    pub silent: BTreeMap<String, u64>,
    /// (org, site) → modelled or measured W of the devices reporting now.
    pub power_w: BTreeMap<(String, String), f64>,
    /// (org, site) → kWh since local midnight.
    pub kwh_today: BTreeMap<(String, String), f64>,
}

/// The whole exposition.
pub fn render(
    orgs: &[String],
    ingest: &IngestSnapshot,
    store_bytes: Option<u64>,
    fleet: &Fleet,
    max_sites: usize,
) -> String {
    let mut e = Exposition::new();
    e.family(
        "veille_build_info",
        Kind::Gauge,
        "Always 1; the collector's version as a label.",
    )
    .sample(
        "veille_build_info",
        &[("version", veille_proto::defaults::VERSION)],
        1.0,
    );
    let counters: [(&str, &str, u64); 5] = [
        (
            "veille_ingest_batches_total",
            "Report batches stored and acknowledged (gRPC and MQTT).",
            ingest.batches,
        ),
        (
            "veille_ingest_reports_stored_total",
            "New reports stored; rate() of it is the ingest rate.",
            ingest.reports_stored,
        ),
        (
            "veille_ingest_duplicates_total",
            "Reports received again with identical content (resends after a lost Ack).",
            ingest.duplicates,
        ),
        (
            "veille_ingest_conflicts_total",
            "Reports received under a stored seq with different content (kept apart).",
            ingest.conflicts,
        ),
        (
            "veille_store_flushes_total",
            "Group-commit flushes (fsyncs) of the store.",
            ingest.flushes,
        ),
    ];
    for (name, help, v) in counters {
        e.single(name, Kind::Counter, help, v as f64);
    }
    e.single(
        "veille_store_flush_errors_total",
        Kind::Counter,
        "Store flushes that failed (batches then answered unavailable).",
        ingest.flush_errors as f64,
    );
    e.family(
        "veille_ingest_rejected_total",
        Kind::Counter,
        "Batches or requests refused, by reason.",
    );
    for (reason, v) in [
        ("unauthenticated", ingest.rejected_unauthenticated),
        ("invalid", ingest.rejected_invalid),
        ("unavailable", ingest.rejected_unavailable),
    ] {
        e.sample(
            "veille_ingest_rejected_total",
            &[("reason", reason)],
            v as f64,
        );
    }
    e.family(
        "veille_mqtt_dropped_total",
        Kind::Counter,
        "MQTT messages on a reports topic dropped, by reason.",
    );
    for (reason, v) in [
        (DropReason::BadTopic, ingest.mqtt_bad_topic),
        (DropReason::BadProtobuf, ingest.mqtt_bad_protobuf),
        (DropReason::TooLarge, ingest.mqtt_too_large),
        (DropReason::DeviceMismatch, ingest.mqtt_device_mismatch),
        (DropReason::UnknownOrg, ingest.mqtt_unknown_org),
        (DropReason::Invalid, ingest.mqtt_invalid),
    ] {
        e.sample(
            "veille_mqtt_dropped_total",
            &[("reason", reason.as_str())],
            v as f64,
        );
    }
    e.single(
        "veille_mqtt_auth_refused_total",
        Kind::Counter,
        "MQTT connections refused by the embedded broker (wrong org or token).",
        ingest.mqtt_auth_refused as f64,
    );
    e.single(
        "veille_mqtt_cross_org_refused_total",
        Kind::Counter,
        "Embedded-broker MQTT connections closed for a topic outside their token's org.",
        ingest.mqtt_cross_org_refused as f64,
    );
    e.single(
        "veille_mqtt_acks_published_total",
        Kind::Counter,
        "Acks published on devices' MQTT ack topics.",
        ingest.mqtt_acks_published as f64,
    );
    if let Some(bytes) = store_bytes {
        e.single(
            "veille_store_size_bytes",
            Kind::Gauge,
            "Bytes the store takes on disk.",
            bytes as f64,
        );
    }
    e.family(
        "veille_devices",
        Kind::Gauge,
        "Devices by the state of their latest report (unknown: silent without a SHUTDOWN).",
    );
    for org in orgs {
        for st in LastState::ALL {
            let n = fleet.devices.get(&(org.clone(), st)).copied().unwrap_or(0);
            e.sample(
                "veille_devices",
                &[("org", org), ("state", st.as_str())],
                n as f64,
            );
        }
    }
    e.family(
        "veille_devices_silent",
        Kind::Gauge,
        "Devices whose latest report is older than [metrics] silent_after_minutes.",
    );
    for org in orgs {
        let n = fleet.silent.get(org).copied().unwrap_or(0);
        e.sample("veille_devices_silent", &[("org", org)], n as f64);
    }
    e.family(
        "veille_power_watts",
        Kind::Gauge,
        "Power drawn now by the devices reporting, by site: the energy model applied to each device's latest report (measured where a meter exists, else modelled), monitors included. An estimate.",
    );
    for ((org, site), w) in cap_sites(fleet.power_w.clone(), max_sites) {
        e.sample("veille_power_watts", &[("org", &org), ("site", &site)], w);
    }
    e.family(
        "veille_energy_today_kwh",
        Kind::Gauge,
        "kWh since local midnight by site, as the consumption report computes it (measured, modelled and inferred off).",
    );
    for ((org, site), kwh) in cap_sites(fleet.kwh_today.clone(), max_sites) {
        e.sample(
            "veille_energy_today_kwh",
            &[("org", &org), ("site", &site)],
            kwh,
        );
    }
    e.finish()
}

/// Reads the fleet's gauges from the store.
pub fn fleet(
    store: &Store,
    ctx: &Context,
    orgs: &[String],
    now_ms: i64,
    silent_after_ms: i64,
) -> Result<Fleet, ReportError> {
    let mut f = Fleet::default();
    for record in store.devices(None)? {
        let last = store
            .reports(
                &record.org,
                &record.device_id,
                record.highest_seq..=record.highest_seq,
            )?
            .into_iter()
            .next();
        let state = last_state(last.as_ref(), now_ms, silent_after_ms);
        *f.devices.entry((record.org.clone(), state)).or_insert(0) += 1;
        let silent = now_ms - record.last_report_end_unix_ms > silent_after_ms;
        if silent {
            *f.silent.entry(record.org.clone()).or_insert(0) += 1;
        }
        let inv = store
            .inventory(&record.org, &record.device_id)?
            .unwrap_or_default();
        let site = if inv.site.is_empty() {
            "(none)".to_owned()
        } else {
            inv.site.clone()
        };
        let w = match (&last, silent, state) {
            (Some(r), false, s) if s != LastState::Off => {
                let c = ctx.for_org(&record.org);
                let class = DeviceClass::from(
                    ChassisClass::try_from(inv.chassis).unwrap_or(ChassisClass::Unknown),
                );
                let (profile, _) = c.catalogue.profile_for(
                    class,
                    DeviceClass::chassis_code_from_wire(inv.chassis_type),
                    &inv.manufacturer,
                    &inv.model,
                );
                let monitor = c.catalogue.class_profile(DeviceClass::Monitor);
                let roll = report_rollup(r);
                let (measured, modelled, _) = rollup_energy_wh(&roll, profile);
                let monitors_wh = inv.monitors.len() as f64
                    * (monitor.p_idle_w.value * roll.awake_ms
                        + monitor.p_sleep_w.value * roll.sleep_ms)
                    / 3_600_000.0;
                if roll.covered_ms > 0.0 {
                    (measured + modelled + monitors_wh) * 3_600_000.0 / roll.covered_ms
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        *f.power_w.entry((record.org.clone(), site)).or_insert(0.0) += w;
    }
    let today = crate::web::data::today(ctx, now_ms);
    for org in orgs {
        let r = reports::consumption_report(
            store,
            ctx,
            Some(org),
            &today,
            &today,
            GroupBy::Site,
            now_ms,
        )?;
        for row in r.rows {
            f.kwh_today.insert((org.clone(), row.key), row.figures.kwh);
        }
    }
    Ok(f)
}

#[derive(Clone)]
struct MetricsState {
    config: Arc<MetricsConfig>,
    store: Arc<Store>,
    auth: Arc<Auth>,
    ctx: Arc<Context>,
    ingest: Arc<IngestMetrics>,
}

/// `GET /metrics`, merged into the HTTP router by the server.
pub fn router(
    config: MetricsConfig,
    store: Arc<Store>,
    auth: Arc<Auth>,
    ctx: Arc<Context>,
    ingest: Arc<IngestMetrics>,
) -> Router {
    if !config.enabled {
        return Router::new();
    }
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(MetricsState {
            config: Arc::new(config),
            store,
            auth,
            ctx,
            ingest,
        })
}

async fn metrics(State(s): State<MetricsState>, headers: HeaderMap) -> Response {
    if !s.config.token.is_empty() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), s.config.token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token ([metrics] token)\n",
            )
                .into_response();
        }
    }
    let snapshot = s.ingest.snapshot();
    let orgs: Vec<String> = s.auth.org_ids().map(str::to_owned).collect();
    let now = crate::clock::now_ms();
    let silent_ms = i64::from(s.config.silent_after_minutes) * 60_000;
    let max_sites = s.config.max_sites;
    let st = s.clone();
    let done = tokio::task::spawn_blocking(move || {
        let fleet = fleet(&st.store, &st.ctx, &orgs, now, silent_ms)?;
        let bytes = st.store.size_on_disk().ok();
        Ok::<_, ReportError>(render(&orgs, &snapshot, bytes, &fleet, max_sites))
    })
    .await;
    match done {
        Ok(Ok(text)) => {
            let mut resp = text.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            resp
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "/metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "/metrics task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::Event;

    fn report(end: i64, active: u64, idle: u64, sleep: u64) -> Report {
        Report {
            start_unix_ms: end - 60_000,
            end_unix_ms: end,
            active_ms: active,
            idle_ms: idle,
            sleep_ms: sleep,
            ..Default::default()
        }
    }

    #[test]
    fn the_state_comes_from_the_latest_report_and_its_age() {
        let now = 10_000_000;
        let silent = 900_000;
        assert_eq!(last_state(None, now, silent), LastState::Unknown);
        assert_eq!(
            last_state(Some(&report(now, 40_000, 20_000, 0)), now, silent),
            LastState::Active
        );
        assert_eq!(
            last_state(Some(&report(now, 10_000, 50_000, 0)), now, silent),
            LastState::Idle
        );
        assert_eq!(
            last_state(Some(&report(now, 0, 10_000, 50_000)), now, silent),
            LastState::Sleep
        );
        assert_eq!(
            last_state(Some(&report(now - silent - 1, 60_000, 0, 0)), now, silent),
            LastState::Unknown,
            "silent without SHUTDOWN: no evidence"
        );
        let mut off = report(now - 5 * silent, 60_000, 0, 0);
        off.events.push(Event {
            kind: EventKind::Shutdown as i32,
            ..Default::default()
        });
        assert_eq!(last_state(Some(&off), now, silent), LastState::Off);
    }

    #[test]
    fn sites_beyond_the_cap_are_summed_into_other() {
        let mut v = BTreeMap::new();
        for (i, site) in ["a", "b", "c", "d"].iter().enumerate() {
            v.insert(("o".to_owned(), site.to_string()), (i + 1) as f64);
        }
        v.insert(("p".to_owned(), "z".to_owned()), 0.5);
        let capped = cap_sites(v.clone(), 2);
        assert_eq!(capped.len(), 4);
        assert_eq!(capped[&("o".into(), "d".into())], 4.0);
        assert_eq!(capped[&("o".into(), "c".into())], 3.0);
        assert_eq!(capped[&("o".into(), "other".into())], 3.0);
        assert_eq!(capped[&("p".into(), "other".into())], 0.5);
        assert_eq!(cap_sites(v.clone(), 10), v);
    }

    #[test]
    fn the_exposition_lists_every_family_with_bounded_labels() {
        let orgs = vec!["acme".to_owned()];
        let mut fleet = Fleet::default();
        fleet.devices.insert(("acme".into(), LastState::Idle), 3);
        fleet.power_w.insert(("acme".into(), "Lyon".into()), 120.5);
        let ingest = IngestSnapshot {
            reports_stored: 7,
            rejected_invalid: 2,
            ..Default::default()
        };
        let text = render(&orgs, &ingest, Some(4096), &fleet, 20);
        assert!(text.contains("veille_ingest_reports_stored_total 7\n"));
        assert!(text.contains("veille_ingest_rejected_total{reason=\"invalid\"} 2\n"));
        assert!(text.contains("veille_devices{org=\"acme\",state=\"idle\"} 3\n"));
        assert!(text.contains("veille_devices{org=\"acme\",state=\"off\"} 0\n"));
        assert!(text.contains("veille_power_watts{org=\"acme\",site=\"Lyon\"} 120.5\n"));
        assert!(text.contains("veille_store_size_bytes 4096\n"));
        assert!(text.contains("veille_mqtt_dropped_total{reason=\"bad_protobuf\"} 0\n"));
        assert!(!text.contains("device_id"), "no per-device label");
    }
}
