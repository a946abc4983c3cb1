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
//! Writes (`room add`, `room setpoint`, `import meters`) open the store directly: the
//! collector must be stopped (sled locks the store while it runs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::{Args, Subcommand};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::auth::{Auth, Principal};
use crate::cli::ConfigArgs;
use crate::cli::remote::RouteError;
use crate::config::Config;
use crate::reports::{self, OutputFormat, ReportError};
use crate::store::STORE_DIR;
use crate::store::meters::{self as meter_store, daily_means};
use crate::store::{Store, StoreError, device_key, prefix};
use veille_domain::energy::consumption::{Context, device_figures};
use veille_domain::rooms::loadcurve::{LoadCurveOptions, PowerUnit, parse_load_curve};
use veille_domain::rooms::meters::Quantity;
use veille_domain::rooms::setpoint::{
    Comparison, RoomSeries, SetpointOptions, SetpointReport, setpoint_report,
};

/// The meter roles of a room.
pub const ROLES: [&str; 5] = ["it", "total", "cooling", "inlet", "outdoor"];

/// Hours of a local day that must have readings for the day to count (75 %).
pub const MIN_HOURS_PER_DAY: usize = 18;
/// Largest share of a day an IT member device may be "unknown" (no reports and no
/// inferred off) for the day's IT power to count.
pub const MAX_IT_UNKNOWN_SHARE: f64 = 0.25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetpointChange {
    /// When the setpoint changed, Unix ms.
    pub at_ms: i64,
    pub from_c: f64,
    pub to_c: f64,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Room {
    pub org: String,
    pub name: String,
    pub site: String,
    /// Member devices: those whose inventory has this tag…
    pub tag: String,
    /// …or these hostnames (or device ids).
    pub hosts: Vec<String>,
    /// Role (`it`, `total`, `cooling`, `inlet`, `outdoor`) → meter id.
    pub meters: BTreeMap<String, String>,
    /// In time order.
    pub setpoints: Vec<SetpointChange>,
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "the store is locked: stop the collector first (rooms, setpoints and meter imports write to the store)"
    )]
    ServerRunning,
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
            RoomError::Usage(_) | RoomError::LoadCurve { .. } | RoomError::Read { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Add (or replace) a server room: its site, member devices and meters. The
    /// collector must be stopped.
    Add(RoomAddArgs),
    /// List the rooms with their members, meters and setpoint changes.
    List(RoomListArgs),
    /// Record a setpoint change of a room's cooling. The collector must be stopped.
    Setpoint(RoomSetpointArgs),
}

#[derive(Debug, Clone, Args)]
pub struct OrgArg {
    /// Organisation; default: the only configured org (`default` without [[orgs]]).
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RoomAddArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub org: OrgArg,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub site: String,
    /// Member devices: those whose inventory carries this tag.
    #[arg(long, conflicts_with = "hosts")]
    pub tag: Option<String>,
    /// Member devices by hostname (or device id), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// A meter of the room, ROLE=METER_ID with ROLE one of it, total (incl. cooling),
    /// cooling, inlet, outdoor. Repeatable.
    #[arg(long = "meter", value_name = "ROLE=METER_ID")]
    pub meters: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RoomListArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub org: OrgArg,
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

#[derive(Debug, Clone, Args)]
pub struct RoomSetpointArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub org: OrgArg,
    #[arg(long)]
    pub room: String,
    /// When: RFC 3339 (`2024-05-01T09:00:00+02:00`), or local `YYYY-MM-DD[THH:MM]` in
    /// energy.timezone.
    #[arg(long)]
    pub at: String,
    /// Setpoint before, °C.
    #[arg(long, allow_hyphen_values = true)]
    pub from: f64,
    /// Setpoint after, °C.
    #[arg(long, allow_hyphen_values = true)]
    pub to: f64,
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Clone, Args)]
pub struct ImportMetersArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub org: OrgArg,
    /// Load-curve CSV (Enedis-style `Horodate;Valeur`, average power per step).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The meter the readings belong to.
    #[arg(long)]
    pub meter: String,
    /// Unit of the values when the file does not say (checked when it does).
    #[arg(long, value_parser = ["W", "kW"])]
    pub unit: Option<String>,
    /// Step of the curve, minutes.
    #[arg(long, default_value_t = 30)]
    pub step_minutes: u32,
}

#[derive(Debug, Clone, Args)]
pub struct SetpointArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub org: OrgArg,
    #[arg(long)]
    pub room: String,
    /// Days compared on each side of a change (the day of the change excluded).
    #[arg(long, default_value_t = 14)]
    pub window_days: u32,
    /// Also show cooling power adjusted for outdoor temperature (needs an outdoor meter).
    #[arg(long)]
    pub adjust_outdoor: bool,
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

/// The org a command acts on.
pub fn resolve_org(config: &Config, arg: &OrgArg) -> Result<String, RoomError> {
    if let Some(o) = &arg.org {
        return Ok(o.clone());
    }
    match config.orgs.as_slice() {
        [] => Ok("default".into()),
        [one] => Ok(one.id.clone()),
        _ => Err(RoomError::Usage(
            "several orgs are configured: pass --org".into(),
        )),
    }
}

fn open_for_write(config: &Config) -> Result<Store, RoomError> {
    let dir = config.data_dir().join(STORE_DIR);
    Store::open(&dir).map_err(|e| match e {
        StoreError::Locked { .. } => RoomError::ServerRunning,
        e => RoomError::Store(e),
    })
}

fn load_config(c: &ConfigArgs) -> Result<Config, RoomError> {
    c.load_config()
        .map_err(|e| RoomError::Usage(format!("configuration: {e}")))
}

pub fn get_room(store: &Store, org: &str, name: &str) -> Result<Option<Room>, StoreError> {
    let key = device_key(org, name);
    match store.rooms()?.get(&key)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                tree: "rooms",
                key: format!("{org}/{name}"),
                reason: e.to_string(),
            }),
    }
}

pub fn put_room(store: &Store, room: &Room) -> Result<(), StoreError> {
    let v = serde_json::to_vec(room).unwrap_or_default();
    store
        .rooms()?
        .insert(device_key(&room.org, &room.name), v)?;
    store.flush()
}

pub fn rooms_of(store: &Store, org: Option<&str>) -> Result<Vec<Room>, StoreError> {
    let tree = store.rooms()?;
    let iter = match org {
        Some(o) => tree.scan_prefix(prefix(o)),
        None => tree.iter(),
    };
    let mut out = Vec::new();
    for e in iter {
        let (k, v) = e?;
        out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            tree: "rooms",
            key: String::from_utf8_lossy(&k).replace('\0', "/"),
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

fn check_name(what: &str, v: &str) -> Result<(), RoomError> {
    if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
        return Err(RoomError::Usage(format!(
            "{what} {v:?}: 1-128 characters, no control characters"
        )));
    }
    Ok(())
}

/// Parses `--at`: RFC 3339, or a local date (midnight) / date-time in `ctx.tz`.
pub fn parse_at(ctx: &Context, s: &str) -> Result<i64, RoomError> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let bad = |e: String| RoomError::Usage(format!("--at {s:?}: {e}"));
    let dt: jiff::civil::DateTime = match s.parse::<Date>() {
        Ok(d) => d.to_datetime(jiff::civil::Time::midnight()),
        Err(_) => s.parse().map_err(|e: jiff::Error| bad(e.to_string()))?,
    };
    let z = dt
        .to_zoned(ctx.tz.clone())
        .map_err(|e| bad(e.to_string()))?;
    Ok(z.timestamp().as_millisecond())
}

/// `room add|list|setpoint`: the text to print.
pub fn room_command(cmd: RoomCommand) -> Result<String, RoomError> {
    match cmd {
        RoomCommand::Add(a) => {
            let config = load_config(&a.config)?;
            let org = resolve_org(&config, &a.org)?;
            check_name("--name", &a.name)?;
            check_name("--site", &a.site)?;
            let mut meters = BTreeMap::new();
            for m in &a.meters {
                let (role, id) = m.split_once('=').ok_or_else(|| {
                    RoomError::Usage(format!("--meter {m:?}: expected ROLE=METER_ID"))
                })?;
                if !ROLES.contains(&role) {
                    return Err(RoomError::Usage(format!(
                        "--meter {m:?}: role {role:?} is not one of {}",
                        ROLES.join(", ")
                    )));
                }
                check_name("meter id", id)?;
                meters.insert(role.to_owned(), id.to_owned());
            }
            let store = open_for_write(&config)?;
            let setpoints = get_room(&store, &org, &a.name)?
                .map(|r| r.setpoints)
                .unwrap_or_default();
            let room = Room {
                org: org.clone(),
                name: a.name.clone(),
                site: a.site,
                tag: a.tag.unwrap_or_default(),
                hosts: a.hosts.into_iter().filter(|h| !h.is_empty()).collect(),
                meters,
                setpoints,
            };
            put_room(&store, &room)?;
            Ok(format!("room {:?} of org {org:?} saved\n", room.name))
        }
        RoomCommand::List(a) => {
            let config = load_config(&a.config)?;
            let org = a.org.org.clone();
            let path = match &org {
                Some(o) => format!("/api/v1/rooms?org={o}"),
                None => "/api/v1/rooms".into(),
            };
            let json = runtime_block(reports::via_server_or_store(&config, &path, move |s| {
                Ok(serde_json::to_string(&rooms_of(s, org.as_deref())?).unwrap_or_default())
            }))?;
            let rooms: Vec<Room> = serde_json::from_str(&json)
                .map_err(|e| RoomError::Usage(format!("bad answer from the collector: {e}")))?;
            Ok(if a.format == "json" {
                serde_json::to_string_pretty(&rooms).unwrap_or_default() + "\n"
            } else {
                rooms_table(&rooms)
            })
        }
        RoomCommand::Setpoint(a) => {
            let config = load_config(&a.config)?;
            let org = resolve_org(&config, &a.org)?;
            let ctx = reports::context(&config)?;
            let at_ms = parse_at(&ctx, &a.at)?;
            if !(a.from.is_finite() && a.to.is_finite()) {
                return Err(RoomError::Usage("--from and --to must be numbers".into()));
            }
            let store = open_for_write(&config)?;
            let mut room = get_room(&store, &org, &a.room)?
                .ok_or_else(|| RoomError::Usage(format!("no room {:?} in org {org:?}", a.room)))?;
            room.setpoints.retain(|s| s.at_ms != at_ms);
            room.setpoints.push(SetpointChange {
                at_ms,
                from_c: a.from,
                to_c: a.to,
                note: a.note,
            });
            room.setpoints.sort_by_key(|s| s.at_ms);
            put_room(&store, &room)?;
            Ok(format!(
                "room {:?}: setpoint {} °C → {} °C at {} recorded\n",
                room.name,
                a.from,
                a.to,
                Timestamp::from_millisecond(at_ms).map_or(String::new(), |t| t.to_string())
            ))
        }
    }
}

fn runtime_block<T>(f: impl Future<Output = Result<T, ReportError>>) -> Result<T, RoomError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RoomError::Usage(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f)?)
}

fn rooms_table(rooms: &[Room]) -> String {
    let mut s = String::from("ORG\tROOM\tSITE\tMEMBERS\tMETERS\tSETPOINT CHANGES\n");
    for r in rooms {
        let members = if !r.tag.is_empty() {
            format!("tag:{}", r.tag)
        } else {
            r.hosts.join(",")
        };
        let meters: Vec<String> = r.meters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            r.org,
            r.name,
            r.site,
            members,
            meters.join(","),
            r.setpoints.len()
        ));
    }
    s
}

/// `import meters FILE --meter ID`: the summary to print. The whole file is checked
/// before anything is stored.
pub fn import_meters(a: ImportMetersArgs) -> Result<String, RoomError> {
    let config = load_config(&a.config)?;
    let org = resolve_org(&config, &a.org)?;
    check_name("--meter", &a.meter)?;
    let bytes = std::fs::read(&a.file).map_err(|source| RoomError::Read {
        path: a.file.clone(),
        source,
    })?;
    let opts = LoadCurveOptions {
        unit: a.unit.as_deref().map(|u| match u {
            "kW" => PowerUnit::KW,
            _ => PowerUnit::W,
        }),
        step_minutes: a.step_minutes,
    };
    let curve = parse_load_curve(&bytes, &opts).map_err(|source| RoomError::LoadCurve {
        path: a.file.clone(),
        source,
    })?;
    let store = open_for_write(&config)?;
    let (new, present) = meter_store::import_load_curve(&store, &org, &a.meter, &curve)?;
    let mut out = format!(
        "meter {:?} (org {org:?}): {} points in {} ({:?} unit), {new} new, {present} already stored, {} duplicate lines ignored, {:.1} kWh\n",
        a.meter,
        curve.points.len(),
        curve.unit,
        curve.unit_source,
        curve.duplicate_lines.len(),
        curve.energy_kwh()
    );
    if curve.gaps.is_empty() {
        out.push_str("no gaps\n");
    } else {
        for g in &curve.gaps {
            let t =
                |ms: i64| Timestamp::from_millisecond(ms).map_or(String::new(), |t| t.to_string());
            out.push_str(&format!(
                "gap: {} → {} ({} missing steps)\n",
                t(g.from_ms),
                t(g.to_ms),
                g.missing_steps
            ));
        }
    }
    Ok(out)
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
/// `None` and the name is unique).
pub fn setpoint_output(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    room_name: &str,
    opts: &SetpointOptions,
    format: OutputFormat,
) -> Result<String, RoomError> {
    let mut found: Vec<Room> = rooms_of(store, org)?
        .into_iter()
        .filter(|r| r.name == room_name)
        .collect();
    let room = match found.len() {
        0 => return Err(RoomError::Usage(format!("no room {room_name:?}"))),
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
        let first = change
            .checked_sub(w.days())
            .map_err(|e| RoomError::Usage(e.to_string()))?;
        let end = change
            .checked_add((w + 1).days())
            .map_err(|e| RoomError::Usage(e.to_string()))?;
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
    let r = RoomReport {
        org: room.org,
        room: room.name,
        site: room.site,
        changes,
    };
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(&r).unwrap_or_default() + "\n",
        _ => setpoint_table(&r),
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

/// The query string of `GET /api/v1/reports/setpoint`.
pub fn setpoint_query(a: &SetpointArgs) -> String {
    let mut q = format!(
        "room={}&window_days={}&adjust_outdoor={}&format={}",
        encode(&a.room),
        a.window_days,
        a.adjust_outdoor,
        a.format
    );
    if let Some(o) = &a.org.org {
        q.push_str(&format!("&org={}", encode(o)));
    }
    q
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `report setpoint`: from the running server, else from the store.
pub fn setpoint_command(a: SetpointArgs) -> Result<String, RoomError> {
    let config = load_config(&a.config)?;
    let ctx = reports::context(&config)?;
    let opts = SetpointOptions {
        window_days: a.window_days,
        adjust_outdoor: a.adjust_outdoor,
        ..SetpointOptions::default()
    };
    let format = OutputFormat::parse(&a.format)?;
    let path = format!("/api/v1/reports/setpoint?{}", setpoint_query(&a));
    let (org, room) = (a.org.org.clone(), a.room.clone());
    // The local path's usage errors travel as a report error and come back as usage.
    let out = runtime_block(reports::via_server_or_store(&config, &path, move |s| {
        setpoint_output(s, &ctx, org.as_deref(), &room, &opts, format)
            .map_err(|e| ReportError::Task(e.to_string()))
    }));
    match out {
        Err(RoomError::Report(ReportError::Task(m))) => Err(RoomError::Usage(m)),
        Err(RoomError::Report(ReportError::Route(RouteError::Refused {
            status: 400,
            body,
            ..
        }))) => Err(RoomError::Usage(body)),
        o => o,
    }
}

#[derive(Clone)]
struct ApiState {
    store: Arc<Store>,
    auth: Arc<Auth>,
    ctx: Arc<Context>,
}

/// `GET /api/v1/rooms` and `GET /api/v1/reports/setpoint`, merged into the server's app.
pub fn router(store: Arc<Store>, auth: Arc<Auth>, ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/api/v1/rooms", get(list_api))
        .route("/api/v1/reports/setpoint", get(setpoint_api))
        .with_state(ApiState { store, auth, ctx })
}

#[derive(Debug, Deserialize)]
struct SetpointParams {
    room: String,
    org: Option<String>,
    window_days: Option<u32>,
    adjust_outdoor: Option<bool>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListParams {
    org: Option<String>,
}

fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// The org the request may see: its own for an org token; the `org` asked (or all)
/// for the operator.
fn scope(
    auth: &Auth,
    headers: &HeaderMap,
    asked: Option<String>,
) -> Result<Option<String>, (StatusCode, &'static str)> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.map(|t| auth.principal(t)) {
        Some(Some(Principal::Operator)) => Ok(asked),
        Some(Some(Principal::Org(id))) => match asked {
            Some(a) if a != id => Err((StatusCode::FORBIDDEN, "another org's rooms")),
            _ => Ok(Some(id)),
        },
        Some(None) => Err((StatusCode::UNAUTHORIZED, "unknown token")),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "missing token: send `Authorization: Bearer <operator or organisation token>`",
        )),
    }
}

async fn list_api(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    let org = match scope(&st.auth, &headers, p.org) {
        Ok(o) => o,
        Err((status, why)) => return api_error(status, why),
    };
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || rooms_of(&store, org.as_deref())).await {
        Ok(Ok(rooms)) => axum::Json(rooms).into_response(),
        Ok(Err(e)) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn setpoint_api(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(p): Query<SetpointParams>,
) -> Response {
    let org = match scope(&st.auth, &headers, p.org) {
        Ok(o) => o,
        Err((status, why)) => return api_error(status, why),
    };
    let format = match OutputFormat::parse(p.format.as_deref().unwrap_or("json")) {
        Ok(OutputFormat::Csv) => {
            return api_error(StatusCode::BAD_REQUEST, "format: table or json");
        }
        Ok(f) => f,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let opts = SetpointOptions {
        window_days: p.window_days.unwrap_or(14),
        adjust_outdoor: p.adjust_outdoor.unwrap_or(false),
        ..SetpointOptions::default()
    };
    let (store, ctx) = (st.store.clone(), st.ctx.clone());
    let done = tokio::task::spawn_blocking(move || {
        setpoint_output(&store, &ctx, org.as_deref(), &p.room, &opts, format)
    })
    .await;
    match done {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(e)) if e.is_usage() => api_error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "setpoint report failed");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(_) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}
