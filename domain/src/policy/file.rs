//! The policy file an operator writes (`policy set --file`, TOML or JSON; the HTTP API
//! takes the JSON form) ⇄ the contract's [`Policy`]. Names instead of bit masks and enum
//! numbers (`weekdays`, `thin-client`), unknown keys refused so a typo is not silently
//! ignored. Validation of the result is `veille_proto::policy::validate_policy`.
//!
//! Every key added after the first release has a default that keeps an older file's
//! meaning: no holidays, no closure days, `power_off`, no maintenance window, nothing
//! never to interrupt beyond OS updates.
//!
//! # Calendars
//! `holidays = "FR"` and closure calendars become explicit `closure_days` in the signed
//! policy, for [`CLOSURE_YEARS`] calendar years from the `first_year` the caller passes
//! to [`PolicyFile::to_policy`] (the collector passes the current year; `policy replay`
//! the first year replayed). ICS files named in `closure_calendars` are read by the CLI
//! and folded in with [`PolicyFile::with_calendars`] before the file is sent anywhere:
//! the collector's API takes only resolved `closure_days` and never opens a path.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use veille_proto::policy::{ALL_DAYS, CLOSURE_YEARS, WORKING_DAYS, action_name};
use veille_proto::v1::{
    ChassisClass, ClosureDay, MaintenanceWindow, Policy, PolicyMode, ShutdownAction, ShutdownWindow,
};
use veille_proto::validate::ValidationError;

use super::holidays::{HolidayError, holidays};
use super::ics::{IcsError, parse_ics};

/// Why a policy file cannot become a [`Policy`].
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// Not TOML/JSON of the expected shape (the parser's message).
    #[error("policy file: {0}")]
    Parse(String),
    /// A value that has no meaning (a day or chassis name), naming the field.
    #[error("policy: {0}")]
    Invalid(#[from] ValidationError),
    /// `holidays` names no known calendar, or the years are out of range.
    #[error("policy: holidays: {0}")]
    Holidays(#[from] HolidayError),
    /// A closure calendar that is not a readable ICS file.
    #[error("policy: closure calendar {path}: {source}")]
    Calendar { path: String, source: IcsError },
    /// A calendar named in `closure_calendars` whose contents were not given.
    #[error("policy: closure calendar {0}: not read")]
    CalendarMissing(String),
}

/// A policy as an operator writes it (`policy set --file`, TOML or JSON; the HTTP API
/// takes the JSON form). Unknown keys are refused so a typo is not silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Organisation id.
    pub org: String,
    /// Only devices with this tag; empty: the whole organisation.
    #[serde(default)]
    pub group_tag: String,
    /// 0 or absent: the current version + 1. Otherwise must be above the current one.
    #[serde(default)]
    pub version: u64,
    /// `off`, `dry-run` or `enforce`.
    pub mode: String,
    #[serde(default)]
    pub windows: Vec<WindowFile>,
    pub idle_threshold_s: u32,
    pub warning_s: u32,
    #[serde(default)]
    pub postpones_allowed: u32,
    #[serde(default)]
    pub postpone_s: u32,
    /// Chassis classes: desktop, laptop, all-in-one, thin-client, workstation, server,
    /// tablet, mini-pc, unknown.
    #[serde(default)]
    pub excluded_chassis: Vec<String>,
    #[serde(default)]
    pub excluded_tags: Vec<String>,
    #[serde(default)]
    pub excluded_hostnames: Vec<String>,
    #[serde(default)]
    pub servers_named: Vec<String>,
    /// Public holidays that are whole-day windows: `"FR"`, or empty (none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub holidays: String,
    /// With `holidays = "FR"`: also Good Friday and 26 December (Alsace-Moselle).
    #[serde(default, skip_serializing_if = "is_false")]
    pub alsace_moselle: bool,
    /// ICS files of closure days (school holidays, a site's closing days), read by the
    /// CLI at `policy set`/`replay` (relative paths: from the policy file's folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closure_calendars: Vec<String>,
    /// Explicit closure days (and, once calendars are read, theirs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closure_days: Vec<ClosureDayFile>,
    /// IANA zone of holidays and closure days; empty: the first window's zone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub closure_time_zone: String,
    /// What a holiday or closure day does: `power_off` (default), `hibernate`, `sleep`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub closure_action: String,
    /// Maintenance (patch) windows: never shut down inside one; the agent arms a
    /// wake-up for the next one before it shuts down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<MaintenanceFile>,
    /// Process names never to interrupt (`["backup", "rsync"]`); OS updates always count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never_interrupt: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One closure day of a [`PolicyFile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureDayFile {
    /// `YYYY-MM-DD`, local to `closure_time_zone`.
    pub date: String,
    /// Shown in reports ("Fermeture mairie").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// One `[[maintenance]]` window of a [`PolicyFile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceFile {
    /// Like a window's: `tue`, `weekdays`, `all`, ...
    pub days: Vec<String>,
    /// 0 or absent: every week; 1–5: only the Nth such day of the month
    /// (`days = ["tue"]`, `week_of_month = 2`: the second Tuesday, "Patch Tuesday").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub week_of_month: u32,
    /// Local `HH:MM`.
    pub start: String,
    /// Local `HH:MM`; earlier than `start` = the next day.
    pub end: String,
    /// IANA zone.
    pub time_zone: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One window of a [`PolicyFile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowFile {
    /// `mon` … `sun` (or full names), `weekdays`, `all`.
    pub days: Vec<String>,
    /// Local `HH:MM`.
    pub start: String,
    /// Local `HH:MM`; earlier than `start` = the next day.
    pub end: String,
    /// IANA zone, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// `power_off` (default), `hibernate` or `sleep`. A machine that cannot hibernate
    /// or sleep is skipped and reported, never powered off instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const CHASSIS: [(&str, ChassisClass); 9] = [
    ("unknown", ChassisClass::Unknown),
    ("desktop", ChassisClass::Desktop),
    ("laptop", ChassisClass::Laptop),
    ("all-in-one", ChassisClass::AllInOne),
    ("thin-client", ChassisClass::ThinClient),
    ("workstation", ChassisClass::Workstation),
    ("server", ChassisClass::Server),
    ("tablet", ChassisClass::Tablet),
    ("mini-pc", ChassisClass::MiniPc),
];

const ACTIONS: [(&str, ShutdownAction); 3] = [
    ("power_off", ShutdownAction::PowerOff),
    ("hibernate", ShutdownAction::Hibernate),
    ("sleep", ShutdownAction::Sleep),
];

/// The file's name of a policy mode (`policy show`, logs).
pub fn mode_name(mode: PolicyMode) -> &'static str {
    match mode {
        PolicyMode::Off => "off",
        PolicyMode::DryRun => "dry-run",
        PolicyMode::Enforce => "enforce",
        PolicyMode::Unspecified => "unspecified",
    }
}

/// The sample policy shipped in `deploy/policy.toml` (a dry-run, every key documented):
/// what the web page's replay form starts from.
pub const SAMPLE_POLICY_TOML: &str = include_str!("../../../deploy/policy.toml");

impl PolicyFile {
    /// Parses TOML, or JSON when the text starts with `{`.
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| PolicyFileError::Parse(e.to_string()))
        } else {
            toml::from_str(text)
                .map_err(|e| PolicyFileError::Parse(e.to_string().trim().to_owned()))
        }
    }

    /// Folds the ICS `calendars` (each `(name as written in closure_calendars, file
    /// contents)`) into `closure_days`, named after each event's SUMMARY, and empties
    /// `closure_calendars`. Every name listed must be given.
    pub fn with_calendars(
        mut self,
        calendars: &[(String, String)],
    ) -> Result<Self, PolicyFileError> {
        for name in std::mem::take(&mut self.closure_calendars) {
            let Some((_, text)) = calendars.iter().find(|(n, _)| *n == name) else {
                return Err(PolicyFileError::CalendarMissing(name));
            };
            let events = parse_ics(text).map_err(|source| PolicyFileError::Calendar {
                path: name.clone(),
                source,
            })?;
            for event in &events {
                self.closure_days
                    .extend(event.days().map(|d| ClosureDayFile {
                        date: d.to_string(),
                        name: event.name.chars().take(MAX_NAME_CHARS).collect(),
                    }));
            }
        }
        Ok(self)
    }

    /// The protobuf policy (not yet validated; `version` as written). Holidays and
    /// closure days are those of the [`CLOSURE_YEARS`] years from `first_year` on;
    /// closure days outside them are left out.
    pub fn to_policy(&self, first_year: i16) -> Result<Policy, PolicyFileError> {
        let bad = |field: String, value: &str, reason: &str| {
            PolicyFileError::Invalid(ValidationError {
                field,
                value: format!("{value:?}"),
                reason: reason.to_owned(),
            })
        };
        let action = |field: String, name: &str| -> Result<i32, PolicyFileError> {
            if name.is_empty() {
                return Ok(ShutdownAction::Unspecified as i32);
            }
            ACTIONS
                .iter()
                .find(|(n, _)| name.eq_ignore_ascii_case(n))
                .map(|(_, a)| *a as i32)
                .ok_or_else(|| bad(field, name, "power_off, hibernate or sleep"))
        };
        let mode = match self.mode.as_str() {
            "off" => PolicyMode::Off,
            "dry-run" | "dry_run" => PolicyMode::DryRun,
            "enforce" => PolicyMode::Enforce,
            other => return Err(bad("mode".into(), other, "must be off, dry-run or enforce")),
        };
        let mut windows = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            windows.push(ShutdownWindow {
                days: parse_days(&format!("windows[{i}]"), &w.days)?,
                start: w.start.clone(),
                end: w.end.clone(),
                time_zone: w.time_zone.clone(),
                action: action(format!("windows[{i}].action"), &w.action)?,
            });
        }
        let mut maintenance = Vec::new();
        for (i, m) in self.maintenance.iter().enumerate() {
            maintenance.push(MaintenanceWindow {
                days: parse_days(&format!("maintenance[{i}]"), &m.days)?,
                week_of_month: m.week_of_month,
                start: m.start.clone(),
                end: m.end.clone(),
                time_zone: m.time_zone.clone(),
            });
        }
        if let Some(path) = self.closure_calendars.first() {
            return Err(bad(
                "closure_calendars[0]".into(),
                path,
                "calendar files are read by `veille-collector policy set|replay --file`; \
                 through the API, send closure_days",
            ));
        }
        let closure_days = self.closure_days(first_year)?;
        let closure_time_zone = match (&self.closure_time_zone, self.windows.first()) {
            (tz, Some(w)) if tz.is_empty() && !closure_days.is_empty() => w.time_zone.clone(),
            (tz, _) => tz.clone(),
        };
        let mut excluded_chassis = Vec::new();
        for (i, c) in self.excluded_chassis.iter().enumerate() {
            match CHASSIS.iter().find(|(n, _)| c.eq_ignore_ascii_case(n)) {
                Some((_, class)) => excluded_chassis.push(*class as i32),
                None => {
                    return Err(bad(
                        format!("excluded_chassis[{i}]"),
                        c,
                        "unknown chassis class (desktop, laptop, server, …)",
                    ));
                }
            }
        }
        Ok(Policy {
            org: self.org.clone(),
            group_tag: self.group_tag.clone(),
            version: self.version,
            mode: mode as i32,
            windows,
            idle_threshold_s: self.idle_threshold_s,
            warning_s: self.warning_s,
            postpones_allowed: self.postpones_allowed,
            postpone_s: self.postpone_s,
            excluded_chassis,
            excluded_tags: self.excluded_tags.clone(),
            excluded_hostnames: self.excluded_hostnames.clone(),
            servers_named: self.servers_named.clone(),
            closure_days,
            closure_time_zone,
            closure_action: action("closure_action".into(), &self.closure_action)?,
            holidays: self.holidays.to_ascii_uppercase(),
            holidays_alsace_moselle: self.alsace_moselle,
            maintenance,
            never_interrupt: self.never_interrupt.clone(),
        })
    }

    /// Holidays then explicit closure days of the years `first_year ..` [`CLOSURE_YEARS`]
    /// later, sorted, one per date (a holiday keeps its name and flag).
    fn closure_days(&self, first_year: i16) -> Result<Vec<ClosureDay>, PolicyFileError> {
        let years = i64::from(first_year)..i64::from(first_year) + i64::from(CLOSURE_YEARS);
        let mut days: Vec<(Date, ClosureDay)> = Vec::new();
        for year in years.clone() {
            for h in holidays(&self.holidays, year, self.alsace_moselle)? {
                days.push((
                    h.date,
                    ClosureDay {
                        date: h.date.to_string(),
                        name: h.name.to_owned(),
                        public_holiday: true,
                    },
                ));
            }
        }
        for (i, d) in self.closure_days.iter().enumerate() {
            let date = veille_proto::policy::parse_date(&d.date).ok_or_else(|| {
                PolicyFileError::Invalid(ValidationError {
                    field: format!("closure_days[{i}].date"),
                    value: format!("{:?}", d.date),
                    reason: "must be YYYY-MM-DD".into(),
                })
            })?;
            if years.contains(&i64::from(date.year())) {
                days.push((
                    date,
                    ClosureDay {
                        date: date.to_string(),
                        name: d.name.clone(),
                        public_holiday: false,
                    },
                ));
            }
        }
        // Stable: for one date, the holiday (pushed first) stays.
        days.sort_by_key(|(d, _)| *d);
        days.dedup_by_key(|(d, _)| *d);
        Ok(days.into_iter().map(|(_, c)| c).collect())
    }

    /// The file form of a stored policy (for `policy show`).
    pub fn from_policy(p: &Policy) -> Self {
        Self {
            org: p.org.clone(),
            group_tag: p.group_tag.clone(),
            version: p.version,
            mode: mode_name(p.mode()).to_owned(),
            windows: p
                .windows
                .iter()
                .map(|w| WindowFile {
                    days: day_names(w.days),
                    start: w.start.clone(),
                    end: w.end.clone(),
                    time_zone: w.time_zone.clone(),
                    action: file_action(w.action),
                })
                .collect(),
            idle_threshold_s: p.idle_threshold_s,
            warning_s: p.warning_s,
            postpones_allowed: p.postpones_allowed,
            postpone_s: p.postpone_s,
            excluded_chassis: p
                .excluded_chassis
                .iter()
                .map(|c| {
                    CHASSIS
                        .iter()
                        .find(|(_, k)| *k as i32 == *c)
                        .map_or_else(|| c.to_string(), |(n, _)| (*n).to_owned())
                })
                .collect(),
            excluded_tags: p.excluded_tags.clone(),
            excluded_hostnames: p.excluded_hostnames.clone(),
            servers_named: p.servers_named.clone(),
            holidays: p.holidays.clone(),
            alsace_moselle: p.holidays_alsace_moselle,
            closure_calendars: Vec::new(),
            // Holidays are recomputed from `holidays`; the other days are listed.
            closure_days: p
                .closure_days
                .iter()
                .filter(|d| !d.public_holiday)
                .map(|d| ClosureDayFile {
                    date: d.date.clone(),
                    name: d.name.clone(),
                })
                .collect(),
            closure_time_zone: p.closure_time_zone.clone(),
            closure_action: file_action(p.closure_action),
            maintenance: p
                .maintenance
                .iter()
                .map(|m| MaintenanceFile {
                    days: day_names(m.days),
                    week_of_month: m.week_of_month,
                    start: m.start.clone(),
                    end: m.end.clone(),
                    time_zone: m.time_zone.clone(),
                })
                .collect(),
            never_interrupt: p.never_interrupt.clone(),
        }
    }
}

/// Longest closure day name kept from a calendar (`ClosureDay::name` is bounded text).
const MAX_NAME_CHARS: usize = 120;

/// The file's name of a stored action: empty for unspecified (the default), so an old
/// policy shows as it was written.
fn file_action(action: i32) -> String {
    match ShutdownAction::try_from(action) {
        Ok(ShutdownAction::Unspecified) => String::new(),
        Ok(a) => action_name(a).to_owned(),
        Err(_) => action.to_string(),
    }
}

fn day_names(days: u32) -> Vec<String> {
    (0..7)
        .filter(|b| days & (1 << b) != 0)
        .map(|b| DAY_NAMES[b].to_owned())
        .collect()
}

/// A window's `days` as a bit mask; errors name `{at}.days[j]`.
fn parse_days(at: &str, names: &[String]) -> Result<u32, PolicyFileError> {
    let mut days = 0;
    for (j, d) in names.iter().enumerate() {
        let d = d.to_ascii_lowercase();
        days |= match d.as_str() {
            "all" => ALL_DAYS,
            "weekdays" => WORKING_DAYS,
            _ => match DAY_NAMES.iter().position(|n| d.starts_with(n)) {
                Some(bit) if d.len() == 3 || d.ends_with("day") => 1 << bit,
                _ => {
                    return Err(PolicyFileError::Invalid(ValidationError {
                        field: format!("{at}.days[{j}]"),
                        value: format!("{d:?}"),
                        reason: "a day name (mon … sun), weekdays or all".into(),
                    }));
                }
            },
        };
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::policy::validate_policy;

    /// A policy file written before issue 19: none of its keys.
    const OLD: &str = r#"
org = "acme"
mode = "enforce"
idle_threshold_s = 600
warning_s = 300

[[windows]]
days = ["weekdays"]
start = "20:00"
end = "07:00"
time_zone = "Europe/Paris"
"#;

    fn valid(file: &PolicyFile, year: i16) -> Policy {
        let mut p = file.to_policy(year).unwrap();
        p.version = 1;
        validate_policy(&p).unwrap();
        p
    }

    #[test]
    fn an_old_file_still_validates_and_means_what_it_meant() {
        let p = valid(&PolicyFile::parse(OLD).unwrap(), 2026);
        assert_eq!(p.windows[0].action(), ShutdownAction::Unspecified);
        assert!(p.closure_days.is_empty() && p.maintenance.is_empty());
        assert!(p.never_interrupt.is_empty() && p.holidays.is_empty());
        // Shown back, it has none of the new keys.
        let shown = toml::to_string(&PolicyFile::from_policy(&p)).unwrap();
        for key in [
            "holidays",
            "closure",
            "maintenance",
            "never_interrupt",
            "action",
        ] {
            assert!(!shown.contains(key), "{key} in {shown}");
        }
    }

    #[test]
    fn holidays_closures_maintenance_and_actions_reach_the_policy() {
        let top = r#"org = "acme"
holidays = "FR"
alsace_moselle = true
closure_action = "sleep"
closure_days = [{ date = "2026-12-24", name = "Fermeture" }, { date = "2026-12-25" }, { date = "2031-01-02" }]
never_interrupt = ["backup", "rsync"]"#;
        let text = format!(
            r#"{}action = "hibernate"

[[maintenance]]
days = ["tue"]
week_of_month = 2
start = "02:00"
end = "04:00"
time_zone = "Europe/Paris"
"#,
            OLD.replace("org = \"acme\"", top)
        );
        let file = PolicyFile::parse(&text).unwrap();
        let p = valid(&file, 2026);
        assert_eq!(p.windows[0].action(), ShutdownAction::Hibernate);
        assert_eq!(p.closure_action(), ShutdownAction::Sleep);
        assert_eq!(p.closure_time_zone, "Europe/Paris");
        // 13 holidays a year in Alsace-Moselle for 2026–2028, plus 24 December 2026;
        // 25 December is a holiday already (kept as one), 2031 is out of range.
        assert_eq!(p.closure_days.len(), 3 * 13 + 1);
        let christmas_eve = p
            .closure_days
            .iter()
            .find(|d| d.date == "2026-12-24")
            .unwrap();
        assert_eq!(
            (christmas_eve.name.as_str(), christmas_eve.public_holiday),
            ("Fermeture", false)
        );
        let christmas = p
            .closure_days
            .iter()
            .find(|d| d.date == "2026-12-25")
            .unwrap();
        assert_eq!(
            (christmas.name.as_str(), christmas.public_holiday),
            ("Noël", true)
        );
        assert_eq!(p.closure_days[0].date, "2026-01-01");
        assert_eq!(p.closure_days.last().unwrap().date, "2028-12-26");
        assert_eq!(p.maintenance[0].days, 1 << 1);
        assert_eq!(p.maintenance[0].week_of_month, 2);
        assert_eq!(p.never_interrupt, ["backup", "rsync"]);
        // Round trip through `policy show`.
        let back = PolicyFile::from_policy(&p);
        assert_eq!(back.holidays, "FR");
        assert_eq!(back.closure_days.len(), 1);
        let mut again = back.to_policy(2026).unwrap();
        again.version = 1;
        assert_eq!(again, p);
    }

    #[test]
    fn bad_new_keys_name_the_field() {
        let err = |extra: &str| {
            PolicyFile::parse(&format!("{OLD}{extra}"))
                .and_then(|f| f.to_policy(2026))
                .unwrap_err()
                .to_string()
        };
        assert!(err("action = \"nap\"\n").contains("windows[0].action"));
        let top = |line: &str| {
            PolicyFile::parse(&OLD.replace("org = \"acme\"", &format!("org = \"acme\"\n{line}")))
                .and_then(|f| f.to_policy(2026))
                .unwrap_err()
                .to_string()
        };
        assert!(top("holidays = \"XX\"").contains("unknown holiday calendar"));
        assert!(top("closure_action = \"nap\"").contains("closure_action"));
        assert!(top("closure_days = [{ date = \"24/12/2026\" }]").contains("closure_days[0].date"));
        assert!(top("closure_calendars = [\"zone-c.ics\"]").contains("closure_calendars[0]"));
        assert!(top("bogus_key = 1").contains("unknown field"));
    }

    #[test]
    fn closure_calendars_fold_into_closure_days() {
        let file = PolicyFile::parse(&OLD.replace(
            "org = \"acme\"",
            "org = \"acme\"\nclosure_calendars = [\"zone-c.ics\"]",
        ))
        .unwrap();
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261219\r\n\
DTEND;VALUE=DATE:20270104\r\nSUMMARY:Vacances de No\u{eb}l\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let missing = file.clone().with_calendars(&[]).unwrap_err().to_string();
        assert!(missing.contains("zone-c.ics"), "{missing}");
        let bad = file
            .clone()
            .with_calendars(&[("zone-c.ics".into(), "garbage".into())])
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("zone-c.ics") && bad.contains("VCALENDAR"),
            "{bad}"
        );
        let resolved = file
            .with_calendars(&[("zone-c.ics".into(), ics.into())])
            .unwrap();
        assert!(resolved.closure_calendars.is_empty());
        assert_eq!(resolved.closure_days.len(), 16);
        let p = valid(&resolved, 2026);
        assert_eq!(p.closure_days.len(), 16);
        assert_eq!(p.closure_days[0].date, "2026-12-19");
        assert_eq!(p.closure_days[15].date, "2027-01-03");
        assert_eq!(p.closure_days[15].name, "Vacances de Noël");
    }

    /// deploy/policy.toml documents every key: it must stay a valid policy.
    #[test]
    fn the_annotated_example_in_deploy_is_valid() {
        let file = PolicyFile::parse(SAMPLE_POLICY_TOML).unwrap();
        let p = valid(&file, 2026);
        assert_eq!(p.windows[1].action(), ShutdownAction::Sleep);
        assert_eq!(p.maintenance.len(), 2);
        assert_eq!(p.holidays, "FR");
        // 11 holidays a year for three years, and 24 December 2026.
        assert_eq!(p.closure_days.len(), 34);
    }
}
