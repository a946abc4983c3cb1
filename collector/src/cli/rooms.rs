//! `room add|list|setpoint`, `import meters` and `report setpoint`: the server-room
//! verbs of the command line. Writes open the store directly; the report asks the
//! running server first, else reads the store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use jiff::Timestamp;
use jiff::civil::Date;
use veille_domain::energy::consumption::Context;
use veille_domain::rooms::loadcurve::{
    Column, LoadCurveError, LoadCurveOptions, PowerUnit, parse_load_curve,
};
use veille_domain::rooms::setpoint::SetpointOptions;

use crate::cli::remote::RouteError;
use crate::cli::{CliError, ConfigArgs, report_via_server_or_store};
use crate::config::Config;
use crate::reports::setpoint::{RoomError, setpoint_output};
use crate::reports::{self, OutputFormat, ReportError};
use crate::store::Store;
use crate::store::meters as meter_store;
use crate::store::rooms::{ROLES, Room, SetpointChange, get_room, put_room, rooms_of};

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Add (or replace) a server room: its site, member devices and meters. Works with
    /// the collector running.
    Add(RoomAddArgs),
    /// List the rooms with their members, meters and setpoint changes.
    List(RoomListArgs),
    /// Record a setpoint change of a room's cooling. Works with the collector running.
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
    #[arg(long, default_value_t = LoadCurveOptions::DEFAULT_STEP_MINUTES)]
    pub step_minutes: u32,
    /// The timestamp column, by header name (case and accents ignored) or 1-based
    /// position, when the file's is not one of the known names (Horodate, Horodatage,
    /// timestamp, date, time, heure) or there are two.
    #[arg(long, value_name = "NAME|N", value_parser = parse_column)]
    pub time_column: Option<Column>,
    /// The value column, by header name or 1-based position, when the file's is not
    /// one of the known names (Valeur, value, puissance, power, load, mesure).
    #[arg(long, value_name = "NAME|N", value_parser = parse_column)]
    pub value_column: Option<Column>,
    /// Field delimiter (one character; `tab` for a tab); default: `;`, tab or `,`,
    /// whichever the line has.
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<char>,
    /// Values use a decimal comma and may group thousands with dots or spaces
    /// (`1 234,5`, as French Excel writes them).
    #[arg(long)]
    pub decimal_comma: bool,
}

fn parse_column(s: &str) -> Result<Column, String> {
    s.parse().map_err(|e: LoadCurveError| e.to_string())
}

/// One character, or `tab`: a tab is hard to pass on a command line.
fn parse_delimiter(s: &str) -> Result<char, String> {
    if s.eq_ignore_ascii_case("tab") || s == "\\t" {
        return Ok('\t');
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != '"' && !c.is_alphanumeric() => Ok(c),
        _ => Err(format!(
            "{s:?}: one character that is not a letter, a digit or a quote (or `tab`)"
        )),
    }
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

/// The store, opened beside a running collector if there is one (both engines take a
/// second process).
fn open_for_write(config: &Config) -> Result<Store, RoomError> {
    config.open_store().map_err(RoomError::Store)
}

fn load_config(c: &ConfigArgs) -> Result<Config, RoomError> {
    c.load_config()
        .map_err(|e| RoomError::Usage(format!("configuration: {e}")))
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
pub fn room_command(cmd: RoomCommand) -> Result<String, CliError> {
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
                    ))
                    .into());
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
            let json = runtime_block(report_via_server_or_store(&config, &path, move |s| {
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
                return Err(RoomError::Usage("--from and --to must be numbers".into()).into());
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

fn runtime_block<T>(f: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RoomError::Usage(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(f)
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
pub fn import_meters(a: ImportMetersArgs) -> Result<String, CliError> {
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
        time_column: a.time_column.clone(),
        value_column: a.value_column.clone(),
        delimiter: a.delimiter,
        decimal_comma: a.decimal_comma,
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
pub fn setpoint_command(a: SetpointArgs) -> Result<String, CliError> {
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
    let out = runtime_block(report_via_server_or_store(&config, &path, move |s| {
        setpoint_output(s, &ctx, org.as_deref(), &room, &opts, format)
            .map_err(|e| ReportError::Task(e.to_string()))
    }));
    match out {
        Err(CliError::Report(ReportError::Task(m))) => Err(RoomError::Usage(m).into()),
        Err(CliError::Route(RouteError::Refused {
            status: 400 | 404,
            body,
            ..
        })) => Err(RoomError::Usage(body).into()),
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_and_columns_from_the_command_line() {
        assert_eq!(parse_delimiter("tab"), Ok('\t'));
        assert_eq!(parse_delimiter("\\t"), Ok('\t'));
        assert_eq!(parse_delimiter("|"), Ok('|'));
        assert_eq!(parse_delimiter(";"), Ok(';'));
        for bad in ["", "ab", "x", "7", "\""] {
            assert!(parse_delimiter(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_column("4"), Ok(Column::Position(4)));
        assert_eq!(
            parse_column(" Date de fin "),
            Ok(Column::Name("Date de fin".into()))
        );
        assert!(parse_column("0").is_err());
    }
}
