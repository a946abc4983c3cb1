//! The energy model end to end, through the library's public API:
//!
//! 1. ENERGY STAR TEC check: a desktop and a notebook replayed over a year with the TEC
//!    duty cycle give the TEC formula's kWh, both through the rollups + session edges
//!    (`consumption::device_figures`) and through the raw reports (`gaps::classify` +
//!    `energy::device_energy`).
//! 2. Properties (proptest) on random device timelines ingested into a real embedded
//!    `Store`: shares sum to 100 %, rollups equal the raw computation, a silent hole
//!    inside a boot session is never off, splitting a period adds up, and
//!    `Store::rebuild_rollups` gives back what ingest maintained.

use std::collections::BTreeMap;

use proptest::prelude::*;
use veille_collector::reports;
use veille_collector::store::Store;
use veille_domain::energy::catalogue::{Catalogue, DeviceClass, PowerProfile};
use veille_domain::energy::consumption::{
    self, Context, DeviceData, EnergyConfig, Figures, GroupBy, SessionEdge,
};
use veille_domain::energy::gaps;
use veille_domain::energy::model as energy;
use veille_domain::energy::rollup::{self, HOUR_MS, HourRollup};
use veille_proto::v1::{
    ChassisClass, EnergySource, Event, EventKind, Inventory, Measurement, Report, ReportBatch,
};

const MIN_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 2025-01-06 00:00:00 UTC, a Monday.
const T0: i64 = 1_736_121_600_000;
const ORG: &str = "acme";
const DEVICE: &str = "pc-1";

fn ctx() -> Context {
    let config = EnergyConfig {
        timezone: "UTC".into(),
        ..EnergyConfig::default()
    };
    Context::new(&config, Catalogue::builtin()).expect("context")
}

fn event(kind: EventKind, at_unix_ms: i64) -> Event {
    Event {
        kind: kind as i32,
        at_unix_ms,
        count: 1,
        detail: String::new(),
    }
}

fn rel_close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + abs
}

// ---------------------------------------------------------------------------------
// 1. ENERGY STAR TEC
// ---------------------------------------------------------------------------------

/// TEC duty cycle, in percent of the year.
#[derive(Debug, Clone, Copy)]
struct Duty {
    off: i64,
    sleep: i64,
    long_idle: i64,
    short_idle: i64,
}

/// v6/v7 desktop, integrated desktop (ENERGY-DATA.md).
const DESKTOP_DUTY: Duty = Duty {
    off: 45,
    sleep: 5,
    long_idle: 15,
    short_idle: 35,
};
/// v6/v7 and v8 notebook (ENERGY-DATA.md).
const NOTEBOOK_DUTY: Duty = Duty {
    off: 25,
    sleep: 35,
    long_idle: 10,
    short_idle: 30,
};

/// The first boot, and the start and end of the replayed year: 07:00 UTC, so that the
/// period is hour-aligned and starts exactly at a boot (no "agent starting" unknown).
const TEC_FROM: i64 = T0 + 7 * HOUR_MS;
const TEC_TO: i64 = TEC_FROM + 365 * DAY_MS;

/// A year of days: each day boots at 07:00 UTC, sends one-minute reports (idle, then a
/// sleep block starting mid-minute, then idle again), and its last report carries
/// SHUTDOWN; the machine is then off until the next morning's boot. A day of 1440
/// minutes splits exactly into the duty cycle's whole minutes (percent × 14.4).
///
/// TEC's long idle and short idle are both reported as idle: our model has a single
/// idle level (P_idle); "active" would draw P(u) ≥ P_idle and is not part of TEC.
fn tec_year(duty: Duty) -> Vec<Report> {
    let pct_min = |pct: i64| pct * 1440 / 100;
    assert_eq!(pct_min(100), 1440);
    let idle_min = pct_min(duty.long_idle) + pct_min(duty.short_idle);
    let sleep_min = pct_min(duty.sleep);
    let session_min = idle_min + sleep_min;
    assert_eq!(session_min + pct_min(duty.off), 1440);
    let sleep_from = (idle_min / 2) * MIN_MS + 30_000;
    let sleep_to = sleep_from + sleep_min * MIN_MS;
    let mut out = Vec::with_capacity((365 * session_min) as usize);
    let mut seq = 0u64;
    for day in 0..365 {
        let boot = TEC_FROM + day * DAY_MS;
        for k in 0..session_min {
            let (a, b) = (k * MIN_MS, (k + 1) * MIN_MS);
            let sleep = (b.min(sleep_to) - a.max(sleep_from)).max(0);
            seq += 1;
            let mut events = Vec::new();
            if k == 0 {
                events.push(event(EventKind::Boot, boot));
                events.push(event(EventKind::AgentStart, boot));
            }
            if k == session_min - 1 {
                events.push(event(EventKind::Shutdown, boot + b - 1));
            }
            out.push(Report {
                boot_id: format!("boot-{day}"),
                seq,
                start_unix_ms: boot + a,
                end_unix_ms: boot + b,
                boot_time_unix_s: boot / 1000,
                uptime_s: (b / 1000) as u64,
                active_ms: 0,
                idle_ms: (MIN_MS - sleep) as u64,
                sleep_ms: sleep as u64,
                events,
                ..Default::default()
            });
        }
    }
    out
}

/// Session edges as the store would keep them for `reports` (grouped by boot id).
fn edges_of(reports: &[Report]) -> Vec<SessionEdge> {
    let mut by_boot: BTreeMap<&str, SessionEdge> = BTreeMap::new();
    for r in reports {
        let shutdown = r
            .events
            .iter()
            .any(|e| e.kind == EventKind::Shutdown as i32);
        let stop = r
            .events
            .iter()
            .any(|e| e.kind == EventKind::AgentStop as i32)
            && !shutdown;
        let e = by_boot.entry(&r.boot_id).or_insert(SessionEdge {
            boot_ms: r.boot_time_unix_s * 1000,
            first_start_ms: r.start_unix_ms,
            last_end_ms: r.end_unix_ms,
            last_shutdown: shutdown,
            last_agent_stop: stop,
        });
        e.first_start_ms = e.first_start_ms.min(r.start_unix_ms);
        if r.end_unix_ms >= e.last_end_ms {
            e.last_end_ms = r.end_unix_ms;
            e.last_shutdown = shutdown;
            e.last_agent_stop = stop;
        }
    }
    by_boot.into_values().collect()
}

fn tec_check(name: &str, class: DeviceClass, duty: Duty) {
    let ctx = ctx();
    let profile: PowerProfile = ctx.catalogue.class_profile(class).clone();
    let (p, origin) = ctx.catalogue.profile_for(class, None, "", "");
    assert!(!origin.is_fallback());
    assert_eq!(p, &profile);
    let frac = |pct: i64| pct as f64 / 100.0;
    // ENERGY-DATA.md: E_TEC = 8760/1000 × Σ P·T. Our profile has one idle level, so
    // P_long_idle = P_short_idle = P_idle.
    let tec_kwh = 8.76
        * (profile.p_off_w.value * frac(duty.off)
            + profile.p_sleep_w.value * frac(duty.sleep)
            + profile.p_idle_w.value * frac(duty.long_idle + duty.short_idle));

    let reports = tec_year(duty);
    // (a) hourly rollups + session edges → consumption::device_figures.
    let mut hours = BTreeMap::new();
    rollup::accumulate(&reports, &mut hours);
    let dev = DeviceData {
        org: ORG.into(),
        device_id: name.into(),
        class,
        hours: hours.into_iter().collect(),
        sessions: edges_of(&reports),
        ..Default::default()
    };
    let f = consumption::device_figures(&dev, &ctx, TEC_FROM, TEC_TO).expect("figures");
    // (b) raw reports → gaps::classify + energy::device_energy.
    let (e, cov) = energy::device_energy(&reports, &profile, TEC_FROM, TEC_TO).expect("energy");
    let b_kwh = e.total_wh() / 1000.0;

    println!(
        "TEC {name:<8} {class}: E_TEC {tec_kwh:.3} kWh/yr | rollups {:.3} kWh (off {:.3}, \
         shares modelled {:.2} % off {:.2} % unknown {:.2} %) | raw {b_kwh:.3} kWh \
         (off {} h, unknown {} h) | rel. diff rollups/raw {:.2e}",
        f.kwh,
        f.inferred_off_kwh,
        f.coverage_ms()[1] / (TEC_TO - TEC_FROM) as f64 * 100.0,
        f.coverage_ms()[2] / (TEC_TO - TEC_FROM) as f64 * 100.0,
        f.coverage_ms()[3] / (TEC_TO - TEC_FROM) as f64 * 100.0,
        cov.totals.off_ms / HOUR_MS as u64,
        cov.totals.unknown_ms / HOUR_MS as u64,
        (f.kwh - b_kwh).abs() / b_kwh,
    );
    // The year is built to the minute from the duty cycle, so the model must give E_TEC
    // up to float rounding. (Issue 23: the 1 % allowed before hid any error in sleep or
    // off power, which weigh 0.2-0.4 % of the total.)
    assert!(
        rel_close(f.kwh, tec_kwh, 1e-9, 0.0),
        "{name}: rollups {} kWh vs TEC {tec_kwh}",
        f.kwh
    );
    assert!(
        rel_close(b_kwh, tec_kwh, 1e-9, 0.0),
        "{name}: raw {b_kwh} kWh vs TEC {tec_kwh}"
    );
    assert!(
        rel_close(f.kwh, b_kwh, 1e-6, 0.0),
        "{name}: rollups {} vs raw {b_kwh}",
        f.kwh
    );
    // The duty cycle itself is what the model saw.
    let year_ms = (TEC_TO - TEC_FROM) as f64;
    assert!(rel_close(
        cov.totals.off_ms as f64 / year_ms,
        frac(duty.off),
        1e-12,
        0.0
    ));
    assert_eq!(cov.totals.unknown_ms, 0);
    assert!(rel_close(
        f.coverage_ms()[2] / year_ms,
        frac(duty.off),
        1e-12,
        0.0
    ));
}

#[test]
fn energy_star_tec_desktop_over_a_year() {
    tec_check("desktop", DeviceClass::Desktop, DESKTOP_DUTY);
}

#[test]
fn energy_star_tec_notebook_over_a_year() {
    tec_check("notebook", DeviceClass::Laptop, NOTEBOOK_DUTY);
}

// ---------------------------------------------------------------------------------
// 2. Properties on random timelines, ingested into a real store
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RepSpec {
    len_ms: i64,
    /// Silence after this report inside its session (ignored after a session's last).
    gap_after_ms: i64,
    active_pm: u64,
    sleep_pm: u64,
    util: f64,
    /// 0 none, 1 external meter, 2 RAPL, 3 IPMI + RAPL.
    meas: u8,
    joules: f64,
    /// The agent stopped after this report (restarted later in the same boot).
    agent_stop: bool,
}

#[derive(Debug, Clone)]
struct SessSpec {
    /// Silence between the previous session's last report and this boot.
    off_before_ms: i64,
    /// From boot to the agent's first report.
    boot_delay_ms: i64,
    reps: Vec<RepSpec>,
    /// How the session's last report ends: 0 nothing (killed), 1 SHUTDOWN, 2 AGENT_STOP.
    end: u8,
}

#[derive(Debug, Clone)]
struct Timeline {
    start_offset_ms: i64,
    sessions: Vec<SessSpec>,
    /// Batch sizes, cycled: how the agent grouped its reports.
    batch_sizes: Vec<usize>,
}

fn rep_spec() -> impl Strategy<Value = RepSpec> {
    (
        1_000i64..5_400_000,
        prop_oneof![3 => Just(0i64), 1 => 1i64..7_200_000],
        0u64..=1000,
        0u64..=1000,
        0.0f64..=1.0,
        0u8..4,
        0.0f64..1e6,
        proptest::bool::weighted(0.05),
    )
        .prop_map(
            |(len_ms, gap_after_ms, active_pm, sleep_pm, util, meas, joules, agent_stop)| RepSpec {
                len_ms,
                gap_after_ms,
                active_pm,
                sleep_pm,
                util,
                meas,
                joules,
                agent_stop,
            },
        )
}

fn sess_spec(min_reps: usize, max_reps: usize) -> impl Strategy<Value = SessSpec> {
    (
        prop_oneof![1 => Just(0i64), 4 => 1i64..(2 * DAY_MS)],
        0i64..300_000,
        proptest::collection::vec(rep_spec(), min_reps..max_reps),
        0u8..3,
    )
        .prop_map(|(off_before_ms, boot_delay_ms, reps, end)| SessSpec {
            off_before_ms,
            boot_delay_ms,
            reps,
            end,
        })
}

fn timeline() -> impl Strategy<Value = Timeline> {
    (
        0i64..HOUR_MS,
        proptest::collection::vec(sess_spec(1, 10), 1..5),
        proptest::collection::vec(1usize..8, 1..6),
    )
        .prop_map(|(start_offset_ms, sessions, batch_sizes)| Timeline {
            start_offset_ms,
            sessions,
            batch_sizes,
        })
}

/// One boot session with a silent hole inside (no report, no event, same boot after).
fn holed_timeline() -> impl Strategy<Value = Timeline> {
    (
        0i64..HOUR_MS,
        sess_spec(2, 10),
        1_000i64..(3 * DAY_MS),
        proptest::collection::vec(1usize..8, 1..6),
    )
        .prop_map(|(start_offset_ms, mut s, hole, batch_sizes)| {
            let i = (hole as usize) % (s.reps.len() - 1);
            s.reps[i].gap_after_ms = hole;
            Timeline {
                start_offset_ms,
                sessions: vec![s],
                batch_sizes,
            }
        })
}

fn build(t: &Timeline) -> Vec<Report> {
    let mut out = Vec::new();
    let mut at = T0 + t.start_offset_ms;
    let mut seq = 0u64;
    for (si, s) in t.sessions.iter().enumerate() {
        if si > 0 {
            at += s.off_before_ms;
        }
        let boot_ms = at;
        at += s.boot_delay_ms;
        for (ri, r) in s.reps.iter().enumerate() {
            let last = ri + 1 == s.reps.len();
            let (start, end) = (at, at + r.len_ms);
            let len = r.len_ms as u64;
            let active = len * r.active_pm / 1000;
            let sleep = (len - active) * r.sleep_pm / 1000;
            let mut events = Vec::new();
            if last && s.end == 1 {
                events.push(event(EventKind::Shutdown, end - 1));
            } else if (last && s.end == 2) || (!last && r.agent_stop) {
                events.push(event(EventKind::AgentStop, end - 1));
            }
            let mut measurements = Vec::new();
            if r.meas == 1 {
                measurements.push(Measurement {
                    energy_j: r.joules,
                    source: EnergySource::ExternalMeter as i32,
                });
            }
            if r.meas == 3 {
                measurements.push(Measurement {
                    energy_j: r.joules,
                    source: EnergySource::IpmiDcmi as i32,
                });
            }
            if r.meas >= 2 {
                measurements.push(Measurement {
                    energy_j: r.joules / 3.0,
                    source: EnergySource::Rapl as i32,
                });
            }
            seq += 1;
            out.push(Report {
                boot_id: format!("boot-{si}"),
                seq,
                start_unix_ms: start,
                end_unix_ms: end,
                boot_time_unix_s: boot_ms / 1000,
                uptime_s: ((start - boot_ms) / 1000) as u64,
                active_ms: active,
                idle_ms: len - active - sleep,
                sleep_ms: sleep,
                cpu_util: r.util,
                events,
                measurements,
                ..Default::default()
            });
            at = end + if last { 0 } else { r.gap_after_ms };
        }
    }
    out
}

/// A temp store with the timeline ingested batch by batch (validated like ingest does).
struct Ingested {
    _dir: tempfile::TempDir,
    store: Store,
    reports: Vec<Report>,
}

fn ingest(t: &Timeline) -> Ingested {
    let reports = build(t);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let mut rest = reports.as_slice();
    let mut sizes = t.batch_sizes.iter().cycle();
    let mut first = true;
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let batch = ReportBatch {
            device_id: DEVICE.into(),
            reports: chunk.to_vec(),
            inventory: first.then(|| Inventory {
                hostname: "pc-1.acme.test".into(),
                chassis: ChassisClass::Desktop as i32,
                site: "hq".into(),
                ..Default::default()
            }),
            agent_version: "test".into(),
        };
        first = false;
        veille_proto::validate_batch(&batch, i64::MAX / 4).expect("generated batch is valid");
        let outcome = store.apply_batch(ORG, &batch, T0).expect("apply");
        assert_eq!(outcome.stored as usize, n);
    }
    store.flush().expect("flush");
    Ingested {
        _dir: dir,
        store,
        reports,
    }
}

/// The device as a report loads it (rollups of `[from, to)`, sessions, inventory).
fn device(store: &Store, from: i64, to: i64) -> DeviceData {
    let mut devs = reports::load_devices(store, Some(ORG), from, to).expect("load");
    assert_eq!(devs.len(), 1);
    let dev = devs.remove(0);
    assert_eq!(dev.class, DeviceClass::Desktop);
    assert_eq!(dev.monitors, 0);
    dev
}

/// An hour-aligned period around the timeline, picked by `a`, `b`.
fn period(reports: &[Report], a: u32, b: u32) -> (i64, i64) {
    let first = reports.first().unwrap().start_unix_ms;
    let last = reports.last().unwrap().end_unix_ms;
    let lo = rollup::hour_of(first) - 2 * HOUR_MS;
    let hi = rollup::hour_of(last) + 3 * HOUR_MS;
    let n = (hi - lo) / HOUR_MS;
    let i = i64::from(a) % n;
    let j = i + 1 + i64::from(b) % (n - i);
    (lo + i * HOUR_MS, lo + j * HOUR_MS)
}

fn all_rollups(store: &Store) -> Vec<(i64, [u8; rollup::ENCODED_LEN])> {
    store
        .rollups(ORG, DEVICE, i64::MIN, i64::MAX)
        .expect("rollups")
        .into_iter()
        .map(|(h, r)| (h, r.encode()))
        .collect()
}

fn check_against_raw(
    dev: &DeviceData,
    raw: &[Report],
    from: i64,
    to: i64,
) -> Result<Figures, TestCaseError> {
    let ctx = ctx();
    let profile = ctx.catalogue.class_profile(DeviceClass::Desktop).clone();
    let f = consumption::device_figures(dev, &ctx, from, to).expect("figures");
    let (e, cov) = energy::device_energy(raw, &profile, from, to).expect("energy");
    let ms = f.coverage_ms();
    let period = (to - from) as f64;
    let close_kwh = |a: f64, b: f64| rel_close(a, b, 1e-6, 1e-12);
    let close_ms = |a: f64, b: f64| rel_close(a, b, 1e-6, 1e-6);
    prop_assert!(
        close_kwh(f.kwh, e.total_wh() / 1000.0),
        "kWh: rollups {} vs raw {}",
        f.kwh,
        e.total_wh() / 1000.0
    );
    prop_assert!(close_kwh(f.measured_kwh, e.measured_wh / 1000.0));
    prop_assert!(close_kwh(f.modelled_kwh, e.modelled_wh / 1000.0));
    prop_assert!(close_kwh(f.inferred_off_kwh, e.inferred_off_wh / 1000.0));
    prop_assert!(close_kwh(f.cpu_dram_kwh, e.cpu_dram_wh / 1000.0));
    prop_assert!(
        close_ms(ms[0] + ms[1], cov.totals.covered_ms as f64),
        "covered: rollups {} vs raw {}",
        ms[0] + ms[1],
        cov.totals.covered_ms
    );
    prop_assert!(
        close_ms(ms[2], cov.totals.off_ms as f64),
        "off: rollups {} vs raw {}",
        ms[2],
        cov.totals.off_ms
    );
    prop_assert!(
        close_ms(ms[3], cov.totals.unknown_ms as f64),
        "unknown: rollups {} vs raw {}",
        ms[3],
        cov.totals.unknown_ms
    );
    // Measured milliseconds: the raw path rounds each cut report down to whole ms.
    prop_assert!((ms[0] - e.measured_ms as f64).abs() <= cov.segments.len() as f64 + 1e-6);
    prop_assert!(close_ms(ms.iter().sum::<f64>(), period));
    Ok(f)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (i) measured + modelled + off + unknown = 100 % for any period (hour-aligned or
    /// not), in the report's rows and total, and in `gaps::Totals::shares`.
    #[test]
    fn shares_sum_to_100(t in timeline(), a in any::<u32>(), b in any::<u32>(),
                         da in 0i64..HOUR_MS, db in 0i64..HOUR_MS) {
        let ing = ingest(&t);
        let (from, to) = period(&ing.reports, a, b);
        let (from, to) = (from + da, (to - db).max(from + da + 1));
        let devs = reports::load_devices(&ing.store, Some(ORG), from, to).expect("load");
        for by in [GroupBy::Device, GroupBy::Site, GroupBy::Month] {
            let r = consumption::report(&devs, &ctx(), "from", "to", from, to, i64::MAX, by)
                .expect("report");
            for f in r.rows.iter().map(|r| &r.figures).chain([&r.total]) {
                let sum = f.measured_pct + f.modelled_pct + f.inferred_off_pct + f.unknown_pct;
                prop_assert!((sum - 100.0).abs() <= 1e-9, "{by:?}: shares sum to {sum}");
                for p in [f.measured_pct, f.modelled_pct, f.inferred_off_pct, f.unknown_pct] {
                    prop_assert!((0.0..=100.0 + 1e-9).contains(&p));
                }
            }
        }
        let s = gaps::classify(&ing.reports, from, to).unwrap().totals.shares().unwrap();
        prop_assert!((s.covered_pct + s.off_pct + s.unknown_pct - 100.0).abs() <= 1e-9);
    }

    /// (ii) Ingest-maintained rollups + stored boot sessions give what the raw reports
    /// give through gaps::classify + energy::device_energy, over any hour-aligned period.
    #[test]
    fn rollups_equal_the_raw_computation(t in timeline(), a in any::<u32>(), b in any::<u32>()) {
        let ing = ingest(&t);
        let (from, to) = period(&ing.reports, a, b);
        let dev = device(&ing.store, from, to);
        check_against_raw(&dev, &ing.reports, from, to)?;
        // The whole timeline and a little around it, too.
        let (from, to) = period(&ing.reports, 0, u32::MAX);
        let dev = device(&ing.store, from, to);
        check_against_raw(&dev, &ing.reports, from, to)?;
        // And the rollups equal a pure accumulation of the raw reports (1e-9 relative:
        // summation order differs between batches).
        let mut direct = BTreeMap::new();
        rollup::accumulate(&ing.reports, &mut direct);
        let stored = ing.store.rollups(ORG, DEVICE, i64::MIN, i64::MAX).unwrap();
        prop_assert_eq!(stored.len(), direct.len());
        for ((h, r), (dh, d)) in stored.iter().zip(direct.iter()) {
            prop_assert_eq!(h, dh);
            prop_assert!(rollups_close(r, d), "hour {h}: {r:?} vs {d:?}");
        }
    }

    /// (iii) A silent hole inside one boot session is never off, whatever the period;
    /// only a trailing SHUTDOWN makes off time (after the session's last report).
    #[test]
    fn a_gap_without_evidence_is_never_off(t in holed_timeline(), a in any::<u32>(), b in any::<u32>()) {
        let ing = ingest(&t);
        let (from, to) = period(&ing.reports, a, b);
        let dev = device(&ing.store, from, to);
        let f = check_against_raw(&dev, &ing.reports, from, to)?;
        let last = ing.reports.last().unwrap();
        let expected_off = if t.sessions[0].end == 1 {
            (to - from.max(last.end_unix_ms)).max(0)
        } else {
            0
        };
        prop_assert_eq!(f.coverage_ms()[2], expected_off as f64);
        let cov = gaps::classify(&ing.reports, from, to).unwrap();
        prop_assert_eq!(cov.totals.off_ms, expected_off as u64);
        if expected_off == 0 {
            prop_assert_eq!(f.inferred_off_kwh, 0.0);
        }
    }

    /// (iv) Splitting a period in two at an hour boundary and adding gives the totals.
    #[test]
    fn splitting_a_period_adds_up(t in timeline(), a in any::<u32>(), b in any::<u32>(), c in any::<u32>()) {
        let ing = ingest(&t);
        let (from, to) = period(&ing.reports, a, b.max(2));
        prop_assume!(to - from >= 2 * HOUR_MS);
        let mid = from + (1 + i64::from(c) % ((to - from) / HOUR_MS - 1)) * HOUR_MS;
        let ctx = ctx();
        let dev = device(&ing.store, from, to);
        let whole = consumption::device_figures(&dev, &ctx, from, to).unwrap();
        let x = consumption::device_figures(&dev, &ctx, from, mid).unwrap();
        let y = consumption::device_figures(&dev, &ctx, mid, to).unwrap();
        let close = |w: f64, p: f64, q: f64| rel_close(w, p + q, 1e-9, 1e-9);
        prop_assert!(close(whole.kwh, x.kwh, y.kwh), "kWh {} vs {} + {}", whole.kwh, x.kwh, y.kwh);
        prop_assert!(close(whole.measured_kwh, x.measured_kwh, y.measured_kwh));
        prop_assert!(close(whole.modelled_kwh, x.modelled_kwh, y.modelled_kwh));
        prop_assert!(close(whole.inferred_off_kwh, x.inferred_off_kwh, y.inferred_off_kwh));
        prop_assert!(close(whole.eur, x.eur, y.eur));
        prop_assert!(close(whole.kg_co2e, x.kg_co2e, y.kg_co2e));
        prop_assert!(close(whole.hours_on, x.hours_on, y.hours_on));
        prop_assert!(close(
            whole.hours_on_outside_working_hours,
            x.hours_on_outside_working_hours,
            y.hours_on_outside_working_hours
        ));
        for k in 0..4 {
            prop_assert!(
                close(whole.coverage_ms()[k], x.coverage_ms()[k], y.coverage_ms()[k]),
                "ms[{k}]: {} vs {} + {}", whole.coverage_ms()[k], x.coverage_ms()[k], y.coverage_ms()[k]
            );
        }
        // The same split on the raw path.
        let profile = ctx.catalogue.class_profile(DeviceClass::Desktop).clone();
        let (ew, _) = energy::device_energy(&ing.reports, &profile, from, to).unwrap();
        let (ex, _) = energy::device_energy(&ing.reports, &profile, from, mid).unwrap();
        let (ey, _) = energy::device_energy(&ing.reports, &profile, mid, to).unwrap();
        prop_assert!(close(ew.total_wh(), ex.total_wh(), ey.total_wh()));
        prop_assert_eq!(ew.period_ms(), ex.period_ms() + ey.period_ms());
    }
}

fn rollups_close(a: &HourRollup, b: &HourRollup) -> bool {
    let fa = a.encode();
    let fb = b.encode();
    fa.chunks_exact(8).zip(fb.chunks_exact(8)).all(|(x, y)| {
        let x = f64::from_le_bytes(x.try_into().unwrap());
        let y = f64::from_le_bytes(y.try_into().unwrap());
        rel_close(x, y, 1e-9, 1e-9)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `Store::rebuild_rollups` recomputes, from the raw reports, byte-identical rollups
    /// to those ingest maintained batch by batch (the issue: "identical results").
    #[test]
    fn rebuild_rollups_is_byte_identical(t in timeline()) {
        let ing = ingest(&t);
        let before = all_rollups(&ing.store);
        let (read, written) = ing.store.rebuild_rollups(|_| {}).unwrap();
        prop_assert_eq!(read as usize, ing.reports.len());
        prop_assert_eq!(written as usize, before.len());
        let after = all_rollups(&ing.store);
        prop_assert_eq!(before.len(), after.len());
        for ((h, x), (h2, y)) in before.iter().zip(after.iter()) {
            prop_assert_eq!(h, h2);
            prop_assert!(x == y, "hour {}: ingest {:?} vs rebuild {:?}", h,
                HourRollup::decode(x), HourRollup::decode(y));
        }
    }
}
