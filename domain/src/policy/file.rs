//! The policy file an operator writes (`policy set --file`, TOML or JSON; the HTTP API
//! takes the JSON form) ⇄ the contract's [`Policy`]. Names instead of bit masks and enum
//! numbers (`weekdays`, `thin-client`), unknown keys refused so a typo is not silently
//! ignored. Validation of the result is `veille_proto::policy::validate_policy`.

use serde::{Deserialize, Serialize};
use veille_proto::policy::{ALL_DAYS, WORKING_DAYS};
use veille_proto::v1::{ChassisClass, Policy, PolicyMode, ShutdownWindow};
use veille_proto::validate::ValidationError;

/// Why a policy file cannot become a [`Policy`].
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// Not TOML/JSON of the expected shape (the parser's message).
    #[error("policy file: {0}")]
    Parse(String),
    /// A value that has no meaning (a day or chassis name), naming the field.
    #[error("policy: {0}")]
    Invalid(#[from] ValidationError),
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

/// The file's name of a policy mode (`policy show`, logs).
pub fn mode_name(mode: PolicyMode) -> &'static str {
    match mode {
        PolicyMode::Off => "off",
        PolicyMode::DryRun => "dry-run",
        PolicyMode::Enforce => "enforce",
        PolicyMode::Unspecified => "unspecified",
    }
}

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

    /// The protobuf policy (not yet validated; `version` as written).
    pub fn to_policy(&self) -> Result<Policy, PolicyFileError> {
        let bad = |field: String, value: &str, reason: &str| {
            PolicyFileError::Invalid(ValidationError {
                field,
                value: format!("{value:?}"),
                reason: reason.to_owned(),
            })
        };
        let mode = match self.mode.as_str() {
            "off" => PolicyMode::Off,
            "dry-run" | "dry_run" => PolicyMode::DryRun,
            "enforce" => PolicyMode::Enforce,
            other => return Err(bad("mode".into(), other, "must be off, dry-run or enforce")),
        };
        let mut windows = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let mut days = 0;
            for (j, d) in w.days.iter().enumerate() {
                let d = d.to_ascii_lowercase();
                days |= match d.as_str() {
                    "all" => ALL_DAYS,
                    "weekdays" => WORKING_DAYS,
                    _ => match DAY_NAMES.iter().position(|n| d.starts_with(n)) {
                        Some(bit) if d.len() == 3 || d.ends_with("day") => 1 << bit,
                        _ => {
                            return Err(bad(
                                format!("windows[{i}].days[{j}]"),
                                &d,
                                "a day name (mon … sun), weekdays or all",
                            ));
                        }
                    },
                };
            }
            windows.push(ShutdownWindow {
                days,
                start: w.start.clone(),
                end: w.end.clone(),
                time_zone: w.time_zone.clone(),
            });
        }
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
        })
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
                    days: (0..7)
                        .filter(|b| w.days & (1 << b) != 0)
                        .map(|b| DAY_NAMES[b].to_owned())
                        .collect(),
                    start: w.start.clone(),
                    end: w.end.clone(),
                    time_zone: w.time_zone.clone(),
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
        }
    }
}
