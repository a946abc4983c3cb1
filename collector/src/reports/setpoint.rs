//! Server rooms: their member devices and meters, their setpoint changes, and the I/O
//! edge of the setpoint report (issue 8): `room add/list/setpoint`, `import meters`,
//! `report setpoint` and `GET /api/v1/reports/setpoint`.
//!
//! A room is stored as JSON in the `rooms` tree under `org \0 name`. The statistics are
//! [`veille_domain::rooms::setpoint`]'s; this module only gathers daily means: total, cooling, inlet
//! and outdoor from the room's meters ([`crate::store::meters`]), IT power from its IT
//! meter when it has one, else from its member devices' hourly rollups through the
//! energy model ([`veille_domain::energy::consumption::device_figures`]).
//!
//! Writes (`room add`, `room setpoint`, `import meters`) open the store directly, beside
//! a running collector if there is one.

use crate::store::rooms::{Room, rooms_of};
use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use crate::reports::{self, OutputFormat, ReportError};
use crate::store::meters::{self as meter_store, daily_means};
use crate::store::{Store, StoreError};
use veille_domain::energy::consumption::{Context, device_figures};
use veille_domain::rooms::meters::Quantity;
use veille_domain::rooms::setpoint::{
    Comparison, RoomSeries, SetpointOptions, SetpointReport, setpoint_report,
};

/// Hours of a local day that must have readings for the day to count (75 %).
pub const MIN_HOURS_PER_DAY: usize = 18;
/// Largest share of a day an IT member device may be "unknown" (no reports and no
/// inferred off) for the day's IT power to count.
pub const MAX_IT_UNKNOWN_SHARE: f64 = 0.25;

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("{0}")]
    Usage(String),
    /// No room of that name in the caller's scope (the API's 404; an org never learns
    /// whether another org has a room of that name).
    #[error("no room {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("import meters {path}: {source}; nothing was stored")]
    LoadCurve {
        path: PathBuf,
        source: veille_domain::rooms::loadcurve::LoadCurveError,
    },
}

impl RoomError {
    /// Errors of the user's input (exit code 2), not of the system.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RoomError::Usage(_)
                | RoomError::NotFound(_)
                | RoomError::LoadCurve { .. }
                | RoomError::Read { .. }
        )
    }
}

/// One setpoint change and its report.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    pub at: String,
    pub from_c: f64,
    pub to_c: f64,
    pub note: String,
    /// Where IT power came from: `meter`, `agents` or `none`.
    pub it_source: &'static str,
    pub report: SetpointReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomReport {
    pub org: String,
    pub room: String,
    pub site: String,
    pub changes: Vec<ChangeReport>,
}

/// Builds the setpoint report of `room` (searched in `org`, or in every org when
/// `None` and the name is unique), rendered.
pub fn setpoint_output(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    room_name: &str,
    opts: &SetpointOptions,
    format: OutputFormat,
) -> Result<String, RoomError> {
    let r = room_report(store, ctx, org, room_name, opts)?;
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(&r).unwrap_or_default() + "\n",
        _ => setpoint_table(&r),
    })
}

/// The setpoint report of `room` (searched in `org`, or in every org when `None` and
/// the name is unique): every change with its before/after comparisons.
pub fn room_report(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    room_name: &str,
    opts: &SetpointOptions,
) -> Result<RoomReport, RoomError> {
    let mut found: Vec<Room> = rooms_of(store, org)?
        .into_iter()
        .filter(|r| r.name == room_name)
        .collect();
    let room = match found.len() {
        0 => return Err(RoomError::NotFound(room_name.to_owned())),
        1 => found.remove(0),
        _ => {
            return Err(RoomError::Usage(format!(
                "room {room_name:?} exists in several orgs: pass --org"
            )));
        }
    };
    if room.setpoints.is_empty() {
        return Err(RoomError::Usage(format!(
            "room {room_name:?} has no setpoint change: record one with `room setpoint`"
        )));
    }
    let mut changes = Vec::new();
    for sp in &room.setpoints {
        let change = Timestamp::from_millisecond(sp.at_ms)
            .map_err(|e| RoomError::Usage(e.to_string()))?
            .to_zoned(ctx.tz.clone())
            .date();
        let w = i64::from(opts.window_days);
        let day_ms = |d: Date| -> Result<i64, RoomError> {
            Ok(ctx
                .day_start_ms(&d.to_string())
                .map_err(ReportError::from)?)
        };
        // `try_days`: window_days comes from the query string; a span jiff cannot
        // represent is a usage error, not a panic.
        let usage = |e: jiff::Error| RoomError::Usage(format!("window_days={w}: {e}"));
        let first = jiff::Span::new()
            .try_days(w)
            .and_then(|span| change.checked_sub(span))
            .map_err(usage)?;
        let end = jiff::Span::new()
            .try_days(w + 1)
            .and_then(|span| change.checked_add(span))
            .map_err(usage)?;
        let (from_ms, to_ms) = (day_ms(first)?, day_ms(end)?);
        let series_of = |role: &str, q: Quantity| -> Result<_, StoreError> {
            Ok(match room.meters.get(role) {
                None => Default::default(),
                Some(id) => daily_means(
                    &meter_store::readings(store, &room.org, id, q, from_ms, to_ms)?,
                    &ctx.tz,
                    MIN_HOURS_PER_DAY,
                ),
            })
        };
        let mut series = RoomSeries {
            total_power_w: series_of("total", Quantity::Power)?,
            cooling_power_w: series_of("cooling", Quantity::Power)?,
            inlet_c: series_of("inlet", Quantity::Temperature)?,
            outdoor_c: series_of("outdoor", Quantity::Temperature)?,
            it_power_w: Default::default(),
        };
        let it_source = if room.meters.contains_key("it") {
            series.it_power_w = series_of("it", Quantity::Power)?;
            "meter"
        } else if room.tag.is_empty() && room.hosts.is_empty() {
            "none"
        } else {
            series.it_power_w = it_from_agents(store, ctx, &room, first, end)?;
            "agents"
        };
        let mut report =
            setpoint_report(change, &series, opts).map_err(|e| RoomError::Usage(e.to_string()))?;
        if it_source == "agents" && series.it_power_w.is_empty() {
            // Members are configured but none reported enough: not "not metered".
            report.it_power = Comparison::Insufficient {
                reason: format!(
                    "no day in the windows where every member device's time is known (at most {:.0} % unknown)",
                    MAX_IT_UNKNOWN_SHARE * 100.0
                ),
            };
        }
        changes.push(ChangeReport {
            at: Timestamp::from_millisecond(sp.at_ms).map_or(String::new(), |t| t.to_string()),
            from_c: sp.from_c,
            to_c: sp.to_c,
            note: sp.note.clone(),
            it_source,
            report,
        });
    }
    Ok(RoomReport {
        org: room.org,
        room: room.name,
        site: room.site,
        changes,
    })
}

/// Daily mean IT power of the room's member devices (W), from their rollups through the
/// energy model; a day where a member's time is too often unknown is left out.
fn it_from_agents(
    store: &Store,
    ctx: &Context,
    room: &Room,
    first: Date,
    end: Date,
) -> Result<BTreeMap<Date, f64>, RoomError> {
    let day_ms = |d: Date| -> Result<i64, RoomError> {
        Ok(ctx
            .day_start_ms(&d.to_string())
            .map_err(ReportError::from)?)
    };
    let devices: Vec<_> =
        reports::load_devices(store, Some(&room.org), day_ms(first)?, day_ms(end)?)?
            .into_iter()
            .filter(|d| {
                if !room.tag.is_empty() {
                    d.groups.iter().any(|g| g == &room.tag)
                } else {
                    room.hosts
                        .iter()
                        .any(|h| h == &d.hostname || h == &d.device_id)
                }
            })
            .collect();
    let mut out = BTreeMap::new();
    if devices.is_empty() {
        return Ok(out);
    }
    let mut d = first;
    while d < end {
        let next = d.tomorrow().map_err(|e| RoomError::Usage(e.to_string()))?;
        let (s, e) = (day_ms(d)?, day_ms(next)?);
        let mut kwh = 0.0;
        let mut ok = true;
        for dev in &devices {
            let f = device_figures(dev, ctx, s, e).map_err(ReportError::from)?;
            let ms = f.coverage_ms();
            let total: f64 = ms.iter().sum();
            if total <= 0.0 || ms[3] / total > MAX_IT_UNKNOWN_SHARE {
                ok = false;
                break;
            }
            kwh += f.kwh;
        }
        if ok {
            out.insert(d, kwh * 1_000.0 / ((e - s) as f64 / 3_600_000.0));
        }
        d = next;
    }
    Ok(out)
}

fn comparison_line(name: &str, c: &Comparison) -> String {
    match c {
        Comparison::Estimate(e) => format!("  {name}: {}\n", e.verdict),
        Comparison::Insufficient { reason } => format!("  {name}: insufficient data: {reason}\n"),
        Comparison::NotMetered => format!("  {name}: not metered\n"),
    }
}

fn setpoint_table(r: &RoomReport) -> String {
    let mut s = format!("Room {} (site {}, org {})\n", r.room, r.site, r.org);
    for c in &r.changes {
        let rep = &c.report;
        s.push_str(&format!(
            "\nSetpoint {} °C → {} °C at {}{}\n  before: {} … {}; after: {} … {} (day of the change excluded)\n",
            c.from_c,
            c.to_c,
            c.at,
            if c.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.note)
            },
            rep.before.first,
            rep.before.last,
            rep.after.first,
            rep.after.last
        ));
        s.push_str(&comparison_line("cooling power", &rep.cooling_power));
        if let Some(a) = &rep.adjusted {
            s.push_str(&comparison_line(
                &format!(
                    "cooling power, adjusted to {:.1} °C outdoors ({:.1} W/°C)",
                    a.reference_outdoor_c, a.slope_w_per_c
                ),
                &a.cooling,
            ));
        }
        s.push_str(&comparison_line("total power", &rep.total_power));
        s.push_str(&comparison_line(
            &format!("IT power (from {})", c.it_source),
            &rep.it_power,
        ));
        s.push_str(&comparison_line("PUE", &rep.pue));
        s.push_str(&comparison_line("inlet temperature", &rep.inlet));
        s.push_str(&comparison_line("outdoor temperature", &rep.outdoor));
        if let Some(e) = &rep.cooling_saved_kwh_per_day {
            s.push_str(&format!(
                "  cooling energy saved: {:.1} kWh/day (95 % CI {:.1} to {:.1}){}\n",
                e.value,
                e.low,
                e.high,
                if e.adjusted { ", outdoor-adjusted" } else { "" }
            ));
        }
        if let Some(e) = &rep.it_power_added_w {
            s.push_str(&format!(
                "  IT power added: {:.0} W (95 % CI {:.0} to {:.0})\n",
                e.value, e.low, e.high
            ));
        }
    }
    s
}
