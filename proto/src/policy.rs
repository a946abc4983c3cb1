//! Auto-shutdown policy: validation and pure evaluation, shared by the agent (which
//! enforces) and the collector (which reports compliance and replays drafts), so both
//! reach the same decision from the same inputs.
//!
//! # Windows and daylight saving
//! A [`ShutdownWindow`] is written in local wall time of its IANA zone and follows the
//! wall clock. It opens at the first instant the local clock reads `start` or later and
//! closes at the last instant it reads `end`:
//! - `start` or `end` inside a gap (Europe/Paris, last Sunday of March, 02:00 → 03:00): the
//!   boundary is the jump itself, 03:00 CEST. A window 02:30–04:00 that day lasts one hour.
//! - `start` or `end` inside a fold (last Sunday of October, 03:00 → 02:00): `start` is
//!   its first occurrence and `end` its second, so the window never closes and reopens.
//!   A window 02:30–04:00 that day lasts two and a half hours.
//!
//! A window whose `end` is not after `start` ends the next day; it belongs to the day it
//! starts on (Sunday 22:00–06:00 is open on Monday at 05:00, and not on Sunday at 05:00).
//!
//! # Closure days, actions and maintenance windows
//! - A closure day (`Policy::closure_days`: a public holiday or a site's closing day) is
//!   one more window, from local midnight to the next midnight of `closure_time_zone`;
//!   its [`WindowSpan::window`] index is `windows.len() + i`.
//! - Each window has an action ([`span_action`]): power off, hibernate or sleep. Where
//!   windows overlap, the merged span takes the action of the one that started first.
//! - Inside a maintenance window ([`maintenance_span`]) nothing is warned or shut down
//!   ([`SkipReason::InMaintenance`]); [`next_maintenance`] is where the agent arms its
//!   wake-up before it shuts down.
//!
//! # Time
//! Nothing here reads a clock: callers pass `now`, so tests and the collector's replay
//! drive evaluation with any instant they like.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::topics::valid_segment;
use crate::v1::{
    ChassisClass, MaintenanceWindow, Policy, PolicyMode, ShutdownAction, ShutdownWindow,
};
use crate::validate::{ValidationError, check_count, check_id, check_text, quoted};

/// Bounds [`validate_policy`] enforces. A warning shorter than this minimum does not
/// give a user time to save their work; an idle threshold shorter than a minute would
/// shut down someone who is reading.
pub const MIN_IDLE_THRESHOLD_S: u32 = 60;
pub const MAX_IDLE_THRESHOLD_S: u32 = 24 * 3600;
pub const MIN_WARNING_S: u32 = 60;
pub const MAX_WARNING_S: u32 = 3600;
pub const MAX_POSTPONES: u32 = 10;
pub const MIN_POSTPONE_S: u32 = 60;
pub const MAX_POSTPONE_S: u32 = 4 * 3600;

/// How many calendar years of public holidays the collector expands into a policy's
/// `closure_days` when it signs it (the current one and the next two): a policy set in
/// December still covers the whole next year. Re-sign (`policy set`) at least every
/// two years, or holidays past the last one stop being windows.
pub const CLOSURE_YEARS: i16 = 3;
/// Most closure days a policy may carry: every day of [`CLOSURE_YEARS`] years.
pub const MAX_CLOSURE_DAYS: usize = 366 * CLOSURE_YEARS as usize;
/// Most maintenance windows and never-interrupt names a policy may carry.
pub const MAX_MAINTENANCE_WINDOWS: usize = 16;
/// Longest name compared from `never_interrupt`: Linux keeps at most 15 bytes of a
/// process name in `/proc/PID/comm` (TASK_COMM_LEN − 1); a longer name is compared on
/// its first 15 bytes.
pub const PROCESS_NAME_LEN: usize = 15;
/// How far ahead [`next_maintenance`] looks, in days: a "5th Tuesday" window can be
/// three months away, nothing recurring is further than a year.
pub const MAINTENANCE_LOOKAHEAD_DAYS: i64 = 366;

/// `ShutdownWindow::days` for every day of the week.
pub const ALL_DAYS: u32 = 0x7f;
/// `ShutdownWindow::days` for Monday to Friday.
pub const WORKING_DAYS: u32 = 0x1f;

/// What the agent knows about the device it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub chassis: ChassisClass,
    /// The agent's configured tags (`Inventory::tags`).
    pub tags: Vec<String>,
    pub hostname: String,
    /// The agent's local `allow_shutdown` setting: the second half of the servers'
    /// double opt-in. A policy alone can never shut a server down.
    pub allow_shutdown: bool,
}

/// What the agent should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Outside every window: nothing to do. An agent holding a warning drops it (the
    /// window closed, or a postpone carried the shutdown past its end).
    Nothing,
    /// Inside a window, but this device is not to be shut down; report the reason once.
    Skip { reason: SkipReason },
    /// Mode `enforce`: carry the action out.
    Enforce(Action),
    /// Mode `dry-run`: report the action as "would have", never carry it out. The agent
    /// keeps the same state as if it had (it records `warned_at`) so that the report
    /// says when the shutdown would have happened.
    DryRun(Action),
}

/// A step of the warn → shut down sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Warn the logged-in users now that the machine shuts down at `shutdown_at` unless
    /// they postpone; the caller then passes `warned_at = Some(now)` from here on.
    Warn { shutdown_at: Timestamp },
    /// A warning is in force; the shutdown is due at `shutdown_at` (later after each
    /// postpone). Nothing to do but wait.
    Countdown { shutdown_at: Timestamp },
    /// The deadline has passed: shut down now.
    ShutDown,
}

/// Why a device inside a window is not shut down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// The policy's mode is `off` (or missing).
    #[error("policy mode is off")]
    ModeOff,
    /// The policy is for a group (tag) this device is not in.
    #[error("device is not in group {0:?}")]
    NotSelected(String),
    #[error("chassis {} is excluded", .0.as_str_name())]
    ExcludedChassis(ChassisClass),
    #[error("tag {0:?} is excluded")]
    ExcludedTag(String),
    #[error("hostname {0:?} is excluded")]
    ExcludedHostname(String),
    /// A server (or a device of unknown chassis, which may be one) that the policy does
    /// not name in `servers_named`.
    #[error("server not named by the policy")]
    ServerNotNamed,
    /// A server the policy names, on an agent whose local config does not set
    /// `allow_shutdown = true`.
    #[error("server named by the policy but allow_shutdown is false in the agent's config")]
    ServerNotAllowed,
    /// Someone used the machine within the idle threshold: no warning yet.
    #[error("user active")]
    UserActive,
    /// A warning now would end after the window closes: no warning is started.
    #[error("too late in the window for a warning")]
    TooLateInWindow,
    /// A maintenance (patch) window is open: the machine stays on for it.
    #[error("maintenance window {0} is open")]
    InMaintenance(usize),
}

impl SkipReason {
    /// A stable short code for events (`POLICY_SKIPPED` detail) and compliance reports,
    /// independent of the wording of the message.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ModeOff => "mode_off",
            SkipReason::NotSelected(_) => "not_selected",
            SkipReason::ExcludedChassis(_) => "excluded_chassis",
            SkipReason::ExcludedTag(_) => "excluded_tag",
            SkipReason::ExcludedHostname(_) => "excluded_hostname",
            SkipReason::ServerNotNamed => "server_not_named",
            SkipReason::ServerNotAllowed => "server_not_allowed",
            SkipReason::UserActive => "user_active",
            SkipReason::TooLateInWindow => "too_late_in_window",
            SkipReason::InMaintenance(_) => "in_maintenance",
        }
    }
}

/// One occurrence of a window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpan {
    /// Index into `Policy::windows`.
    pub window: usize,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Decides what a device should do at `now`.
///
/// - `idle_s`: seconds since the last user input (what `idle_threshold_s` compares to).
/// - `postpones_used`: postpones the user made since the current warning (counts above
///   `postpones_allowed` count as `postpones_allowed`).
/// - `warned_at`: when the current warning was given, `None` if none. A warning given
///   before the current window opened is stale and ignored, so an agent that slept
///   through a deadline warns again rather than shutting down without notice.
///
/// Once warned, the countdown goes on even if the user becomes active: their way out is
/// a postpone ([`can_postpone`]); when postpones run out, the machine shuts down.
/// Overlapping windows count as one, from the earliest start to the latest end of those
/// open at `now`. Windows that do not parse (a policy that skipped [`validate_policy`])
/// never open.
pub fn evaluate(
    policy: &Policy,
    now: Timestamp,
    facts: &DeviceFacts,
    idle_s: u64,
    postpones_used: u32,
    warned_at: Option<Timestamp>,
) -> Decision {
    let Some(span) = open_span(policy, now) else {
        return Decision::Nothing;
    };
    let dry_run = match policy.mode() {
        PolicyMode::Enforce => false,
        PolicyMode::DryRun => true,
        PolicyMode::Off | PolicyMode::Unspecified => {
            return Decision::Skip {
                reason: SkipReason::ModeOff,
            };
        }
    };
    if let Some(reason) = exclusion(policy, facts) {
        return Decision::Skip { reason };
    }
    if let Some(m) = maintenance_span(policy, now) {
        return Decision::Skip {
            reason: SkipReason::InMaintenance(m.window),
        };
    }
    let action = match warned_at.filter(|w| *w >= span.start) {
        Some(warned) => {
            let shutdown_at = shutdown_deadline(policy, warned, postpones_used);
            if now >= shutdown_at {
                Action::ShutDown
            } else {
                Action::Countdown { shutdown_at }
            }
        }
        None => {
            if idle_s < u64::from(policy.idle_threshold_s) {
                return Decision::Skip {
                    reason: SkipReason::UserActive,
                };
            }
            let shutdown_at = add_s(now, u64::from(policy.warning_s));
            if shutdown_at > span.end {
                return Decision::Skip {
                    reason: SkipReason::TooLateInWindow,
                };
            }
            Action::Warn { shutdown_at }
        }
    };
    if dry_run {
        Decision::DryRun(action)
    } else {
        Decision::Enforce(action)
    }
}

/// When a shutdown warned at `warned_at` is due: `warning_s` later, plus `postpone_s`
/// per postpone used (at most `postpones_allowed` of them).
pub fn shutdown_deadline(policy: &Policy, warned_at: Timestamp, postpones_used: u32) -> Timestamp {
    let postpones = u64::from(postpones_used.min(policy.postpones_allowed));
    let delay_s = u64::from(policy.warning_s) + postpones * u64::from(policy.postpone_s);
    add_s(warned_at, delay_s)
}

/// Whether the user may postpone once more (the agent's `postpone` command asks this,
/// then counts the postpone in `postpones_used`).
pub fn can_postpone(policy: &Policy, postpones_used: u32) -> bool {
    postpones_used < policy.postpones_allowed
}

/// The window occurrence open at `now`, if any (overlapping ones merged, see
/// [`evaluate`]); closure days included.
pub fn open_span(policy: &Policy, now: Timestamp) -> Option<WindowSpan> {
    let mut open: Option<WindowSpan> = None;
    for (i, parsed) in parsed_windows(policy) {
        let today = now.to_zoned(parsed.tz.clone()).date();
        // A window open now started today or, crossing midnight, yesterday.
        for date in [today.yesterday().ok(), Some(today)].into_iter().flatten() {
            if !parsed.runs_on(date) {
                continue;
            }
            let Some((start, end)) = parsed.span_on(date) else {
                continue;
            };
            if start <= now && now < end {
                open = Some(match open {
                    None => WindowSpan {
                        window: i,
                        start,
                        end,
                    },
                    Some(o) => WindowSpan {
                        window: if start < o.start { i } else { o.window },
                        start: o.start.min(start),
                        end: o.end.max(end),
                    },
                });
            }
        }
    }
    open
}

/// What the machine does at the end of a warning in window `window` (a
/// [`WindowSpan::window`]): the window's action, `closure_action` for a closure day;
/// unspecified is power off.
pub fn span_action(policy: &Policy, window: usize) -> ShutdownAction {
    let action = match policy.windows.get(window) {
        Some(w) => w.action(),
        None => policy.closure_action(),
    };
    match action {
        ShutdownAction::Unspecified => ShutdownAction::PowerOff,
        a => a,
    }
}

/// The file's and the events' name of an action.
pub fn action_name(action: ShutdownAction) -> &'static str {
    match action {
        ShutdownAction::Unspecified | ShutdownAction::PowerOff => "power_off",
        ShutdownAction::Hibernate => "hibernate",
        ShutdownAction::Sleep => "sleep",
    }
}

/// The maintenance window open at `now`, if any (`window` indexes
/// `Policy::maintenance`).
pub fn maintenance_span(policy: &Policy, now: Timestamp) -> Option<WindowSpan> {
    for (i, parsed) in parsed_maintenance(policy) {
        let today = now.to_zoned(parsed.tz.clone()).date();
        for date in [today.yesterday().ok(), Some(today)].into_iter().flatten() {
            if parsed.runs_on(date)
                && let Some((start, end)) = parsed.span_on(date)
                && start <= now
                && now < end
            {
                return Some(WindowSpan {
                    window: i,
                    start,
                    end,
                });
            }
        }
    }
    None
}

/// The first maintenance window that starts after `now` (within
/// [`MAINTENANCE_LOOKAHEAD_DAYS`]): when a machine shut down at `now` should wake.
pub fn next_maintenance(policy: &Policy, now: Timestamp) -> Option<WindowSpan> {
    let mut next: Option<WindowSpan> = None;
    for (i, parsed) in parsed_maintenance(policy) {
        let today = now.to_zoned(parsed.tz.clone()).date();
        for date in today
            .series(jiff::Span::new().days(1))
            .take(MAINTENANCE_LOOKAHEAD_DAYS as usize)
        {
            if parsed.runs_on(date)
                && let Some((start, end)) = parsed.span_on(date)
                && start > now
            {
                if next.is_none_or(|n| start < n.start) {
                    next = Some(WindowSpan {
                        window: i,
                        start,
                        end,
                    });
                }
                break;
            }
        }
    }
    next
}

/// Every window occurrence overlapping `[from, to)`, sorted by start (not merged): what
/// the collector's compliance report and `policy replay` measure against.
pub fn spans_between(policy: &Policy, from: Timestamp, to: Timestamp) -> Vec<WindowSpan> {
    let mut spans = Vec::new();
    if from >= to {
        return spans;
    }
    for (i, parsed) in parsed_windows(policy) {
        let Ok(first) = from.to_zoned(parsed.tz.clone()).date().yesterday() else {
            continue;
        };
        let last = to.to_zoned(parsed.tz.clone()).date();
        // A closure day: one date to check, not every date of the range (a year's
        // report over three years of closure days).
        if let Some(date) = parsed.only {
            if (first..=last).contains(&date)
                && let Some((start, end)) = parsed.span_on(date)
                && start < to
                && end > from
            {
                spans.push(WindowSpan {
                    window: i,
                    start,
                    end,
                });
            }
            continue;
        }
        for date in first.series(jiff::Span::new().days(1)) {
            if date > last {
                break;
            }
            if parsed.runs_on(date)
                && let Some((start, end)) = parsed.span_on(date)
                && start < to
                && end > from
            {
                spans.push(WindowSpan {
                    window: i,
                    start,
                    end,
                });
            }
        }
    }
    spans.sort_by_key(|s| (s.start, s.window));
    spans
}

/// Every maintenance window occurrence overlapping `[from, to)`, sorted by start
/// (`window` indexes `Policy::maintenance`): time the compliance report and replay do
/// not count against a device, since the policy wants it on.
pub fn maintenance_between(policy: &Policy, from: Timestamp, to: Timestamp) -> Vec<WindowSpan> {
    let mut spans = Vec::new();
    if from >= to {
        return spans;
    }
    for (i, parsed) in parsed_maintenance(policy) {
        let Ok(first) = from.to_zoned(parsed.tz.clone()).date().yesterday() else {
            continue;
        };
        let last = to.to_zoned(parsed.tz.clone()).date();
        for date in first.series(jiff::Span::new().days(1)) {
            if date > last {
                break;
            }
            if parsed.runs_on(date)
                && let Some((start, end)) = parsed.span_on(date)
                && start < to
                && end > from
            {
                spans.push(WindowSpan {
                    window: i,
                    start,
                    end,
                });
            }
        }
    }
    spans.sort_by_key(|s| (s.start, s.window));
    spans
}

/// The `ShutdownWindow::days` bit of a weekday (bit 0 = Monday ... bit 6 = Sunday).
pub fn day_bit(day: Weekday) -> u32 {
    1 << day.to_monday_zero_offset()
}

/// `ShutdownWindow::days` for a set of weekdays.
pub fn days_mask(days: &[Weekday]) -> u32 {
    days.iter().fold(0, |mask, d| mask | day_bit(*d))
}

/// Parses a window boundary: exactly `HH:MM`, 24-hour clock, `00:00` to `23:59`.
pub fn parse_local_time(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i8> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| ((h - b'0') * 10 + (l - b'0')) as i8)
    };
    let (hour, minute) = (two(0)?, two(3)?);
    Time::new(hour, minute, 0, 0).ok()
}

/// Checks a policy before the collector signs it and after the agent verified it.
/// Errors name the field (`windows[1].time_zone`) and the value.
pub fn validate_policy(p: &Policy) -> Result<(), ValidationError> {
    check_id("org", &p.org)?;
    if !valid_segment(&p.org) {
        return Err(ValidationError::new(
            "org",
            quoted(&p.org),
            "must not contain '/', '+' or '#'",
        ));
    }
    check_text("group_tag", &p.group_tag)?;
    if p.version == 0 {
        return Err(ValidationError::new("version", 0, "must be at least 1"));
    }
    let mode = PolicyMode::try_from(p.mode).ok();
    if matches!(mode, None | Some(PolicyMode::Unspecified)) {
        return Err(ValidationError::new(
            "mode",
            p.mode,
            "must be off, dry-run or enforce",
        ));
    }
    if p.windows.is_empty() && p.closure_days.is_empty() && mode != Some(PolicyMode::Off) {
        return Err(ValidationError::new(
            "windows",
            "0 windows",
            "a dry-run or enforce policy needs at least one window or closure day",
        ));
    }
    check_count("windows", p.windows.len())?;
    for (i, w) in p.windows.iter().enumerate() {
        validate_window(&format!("windows[{i}]"), w)?;
    }
    validate_closures(p)?;
    if p.maintenance.len() > MAX_MAINTENANCE_WINDOWS {
        return Err(ValidationError::new(
            "maintenance",
            format!("{} windows", p.maintenance.len()),
            format!("at most {MAX_MAINTENANCE_WINDOWS}"),
        ));
    }
    for (i, m) in p.maintenance.iter().enumerate() {
        let at = format!("maintenance[{i}]");
        validate_window(
            &at,
            &ShutdownWindow {
                days: m.days,
                start: m.start.clone(),
                end: m.end.clone(),
                time_zone: m.time_zone.clone(),
                action: 0,
            },
        )?;
        if m.week_of_month > 5 {
            return Err(ValidationError::new(
                format!("{at}.week_of_month"),
                m.week_of_month,
                "0 (every week) or 1 to 5 (the Nth such day of the month)",
            ));
        }
    }
    check_count("never_interrupt", p.never_interrupt.len())?;
    for (i, name) in p.never_interrupt.iter().enumerate() {
        check_id(&format!("never_interrupt[{i}]"), name)?;
        if name.contains('/') {
            return Err(ValidationError::new(
                format!("never_interrupt[{i}]"),
                quoted(name),
                "a process name, not a path",
            ));
        }
    }
    bounded(
        "idle_threshold_s",
        p.idle_threshold_s,
        MIN_IDLE_THRESHOLD_S,
        MAX_IDLE_THRESHOLD_S,
    )?;
    bounded("warning_s", p.warning_s, MIN_WARNING_S, MAX_WARNING_S)?;
    bounded("postpones_allowed", p.postpones_allowed, 0, MAX_POSTPONES)?;
    if p.postpones_allowed > 0 {
        bounded("postpone_s", p.postpone_s, MIN_POSTPONE_S, MAX_POSTPONE_S)?;
    }
    check_count("excluded_chassis", p.excluded_chassis.len())?;
    for (i, c) in p.excluded_chassis.iter().enumerate() {
        if ChassisClass::try_from(*c).is_err() {
            return Err(ValidationError::new(
                format!("excluded_chassis[{i}]"),
                c,
                "unknown chassis class",
            ));
        }
    }
    for (field, list) in [
        ("excluded_tags", &p.excluded_tags),
        ("excluded_hostnames", &p.excluded_hostnames),
        ("servers_named", &p.servers_named),
    ] {
        check_count(field, list.len())?;
        for (i, item) in list.iter().enumerate() {
            check_id(&format!("{field}[{i}]"), item)?;
        }
    }
    Ok(())
}

fn validate_closures(p: &Policy) -> Result<(), ValidationError> {
    check_text("holidays", &p.holidays)?;
    if ShutdownAction::try_from(p.closure_action).is_err() {
        return Err(ValidationError::new(
            "closure_action",
            p.closure_action,
            "unknown action",
        ));
    }
    if p.closure_days.is_empty() {
        return Ok(());
    }
    if p.closure_days.len() > MAX_CLOSURE_DAYS {
        return Err(ValidationError::new(
            "closure_days",
            format!("{} days", p.closure_days.len()),
            format!("at most {MAX_CLOSURE_DAYS} ({CLOSURE_YEARS} years)"),
        ));
    }
    if jiff::tz::db().get(&p.closure_time_zone).is_err() || p.closure_time_zone.is_empty() {
        return Err(ValidationError::new(
            "closure_time_zone",
            quoted(&p.closure_time_zone),
            "unknown IANA time zone (required with closure days)",
        ));
    }
    let mut previous: Option<Date> = None;
    for (i, day) in p.closure_days.iter().enumerate() {
        let at = format!("closure_days[{i}]");
        let date = parse_date(&day.date).ok_or_else(|| {
            ValidationError::new(
                format!("{at}.date"),
                quoted(&day.date),
                "must be YYYY-MM-DD",
            )
        })?;
        if previous.is_some_and(|p| p >= date) {
            return Err(ValidationError::new(
                format!("{at}.date"),
                quoted(&day.date),
                "closure days must be sorted, each date once",
            ));
        }
        previous = Some(date);
        check_text(&format!("{at}.name"), &day.name)?;
    }
    Ok(())
}

fn validate_window(at: &str, w: &ShutdownWindow) -> Result<(), ValidationError> {
    if ShutdownAction::try_from(w.action).is_err() {
        return Err(ValidationError::new(
            format!("{at}.action"),
            w.action,
            "unknown action",
        ));
    }
    if w.days == 0 || w.days & !ALL_DAYS != 0 {
        return Err(ValidationError::new(
            format!("{at}.days"),
            format!("{:#x}", w.days),
            "a non-empty set of bits 0 (Monday) to 6 (Sunday)",
        ));
    }
    let time = |field: &str, value: &str| {
        parse_local_time(value).ok_or_else(|| {
            ValidationError::new(
                format!("{at}.{field}"),
                quoted(value),
                "must be a local time HH:MM (00:00 to 23:59)",
            )
        })
    };
    let start = time("start", &w.start)?;
    let end = time("end", &w.end)?;
    if start == end {
        return Err(ValidationError::new(
            format!("{at}.end"),
            quoted(&w.end),
            "must differ from start (an earlier end means the next day)",
        ));
    }
    if w.time_zone.is_empty() || jiff::tz::db().get(&w.time_zone).is_err() {
        return Err(ValidationError::new(
            format!("{at}.time_zone"),
            quoted(&w.time_zone),
            "unknown IANA time zone",
        ));
    }
    Ok(())
}

fn bounded(field: &str, value: u32, min: u32, max: u32) -> Result<(), ValidationError> {
    if value < min || value > max {
        return Err(ValidationError::new(
            field,
            value,
            format!("must be in {min}..={max}"),
        ));
    }
    Ok(())
}

/// Why this device is out of the policy's reach, checked in this order: group, host,
/// tag, chassis, server double opt-in. Names and tags compare ASCII case-insensitively.
fn exclusion(policy: &Policy, facts: &DeviceFacts) -> Option<SkipReason> {
    let has_tag = |tag: &str| facts.tags.iter().any(|t| t.eq_ignore_ascii_case(tag));
    if !policy.group_tag.is_empty() && !has_tag(&policy.group_tag) {
        return Some(SkipReason::NotSelected(policy.group_tag.clone()));
    }
    let named = |list: &[String]| list.iter().any(|h| h.eq_ignore_ascii_case(&facts.hostname));
    if named(&policy.excluded_hostnames) {
        return Some(SkipReason::ExcludedHostname(facts.hostname.clone()));
    }
    if let Some(tag) = policy.excluded_tags.iter().find(|t| has_tag(t)) {
        return Some(SkipReason::ExcludedTag(tag.clone()));
    }
    if policy.excluded_chassis.contains(&(facts.chassis as i32)) {
        return Some(SkipReason::ExcludedChassis(facts.chassis));
    }
    // A device that cannot say what it is may be a server: same double opt-in.
    if matches!(facts.chassis, ChassisClass::Server | ChassisClass::Unknown) {
        if !named(&policy.servers_named) {
            return Some(SkipReason::ServerNotNamed);
        }
        if !facts.allow_shutdown {
            return Some(SkipReason::ServerNotAllowed);
        }
    }
    None
}

fn add_s(t: Timestamp, s: u64) -> Timestamp {
    i64::try_from(s)
        .ok()
        .and_then(|s| t.checked_add(SignedDuration::from_secs(s)).ok())
        .unwrap_or(Timestamp::MAX)
}

/// A window with its strings parsed: a shutdown window, a closure day or a maintenance
/// window.
struct ParsedWindow {
    days: u32,
    /// 0: every week; N: only the Nth `days` weekday of the month.
    week_of_month: u32,
    /// A closure day: this date only.
    only: Option<Date>,
    start: Time,
    end: Time,
    tz: TimeZone,
}

/// The shutdown windows then the closure days of `policy`, with their
/// [`WindowSpan::window`] index; those that do not parse are left out.
fn parsed_windows(policy: &Policy) -> impl Iterator<Item = (usize, ParsedWindow)> + '_ {
    let windows = policy
        .windows
        .iter()
        .enumerate()
        .filter_map(|(i, w)| Some((i, ParsedWindow::parse(w)?)));
    let tz = jiff::tz::db().get(&policy.closure_time_zone).ok();
    let closures = policy
        .closure_days
        .iter()
        .enumerate()
        .filter_map(move |(j, day)| {
            Some((
                policy.windows.len() + j,
                ParsedWindow {
                    days: ALL_DAYS,
                    week_of_month: 0,
                    only: Some(parse_date(&day.date)?),
                    // start = end: from midnight to the next.
                    start: Time::midnight(),
                    end: Time::midnight(),
                    tz: tz.clone()?,
                },
            ))
        });
    windows.chain(closures)
}

/// The maintenance windows of `policy` that parse, with their index.
fn parsed_maintenance(policy: &Policy) -> impl Iterator<Item = (usize, ParsedWindow)> + '_ {
    policy
        .maintenance
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, ParsedWindow::parse_maintenance(m)?)))
}

/// A closure day's date: exactly `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 10 {
        return None;
    }
    s.parse().ok()
}

#[derive(Clone, Copy)]
enum Edge {
    Start,
    End,
}

impl ParsedWindow {
    fn parse(w: &ShutdownWindow) -> Option<Self> {
        Some(Self {
            days: w.days,
            week_of_month: 0,
            only: None,
            start: parse_local_time(&w.start)?,
            end: parse_local_time(&w.end)?,
            tz: jiff::tz::db().get(&w.time_zone).ok()?,
        })
    }

    fn parse_maintenance(m: &MaintenanceWindow) -> Option<Self> {
        Some(Self {
            days: m.days,
            week_of_month: m.week_of_month,
            only: None,
            start: parse_local_time(&m.start)?,
            end: parse_local_time(&m.end)?,
            tz: jiff::tz::db().get(&m.time_zone).ok()?,
        })
    }

    /// Whether an occurrence starts on local date `date`.
    fn runs_on(&self, date: Date) -> bool {
        let week = (date.day() as u32 - 1) / 7 + 1;
        self.days & day_bit(date.weekday()) != 0
            && (self.week_of_month == 0 || self.week_of_month == week)
            && self.only.is_none_or(|d| d == date)
    }

    /// The occurrence starting on local date `date` (the caller checked
    /// [`Self::runs_on`]), if it is not empty (02:10–02:50 on the day the clock skips
    /// 02:00–03:00 never opens).
    fn span_on(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        let start = self.resolve(date.to_datetime(self.start), Edge::Start)?;
        let end_date = if self.end > self.start {
            date
        } else {
            date.tomorrow().ok()?
        };
        let end = self.resolve(end_date.to_datetime(self.end), Edge::End)?;
        (start < end).then_some((start, end))
    }

    /// The instant the local clock reaches `dt` (see the module docs).
    fn resolve(&self, dt: DateTime, edge: Edge) -> Option<Timestamp> {
        match self.tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // `dt` read with the later offset is an instant before the jump; the
                // next transition is the jump itself.
                let before_jump = after.to_timestamp(dt).ok()?;
                self.tz.following(before_jump).next().map(|t| t.timestamp())
            }
            AmbiguousOffset::Fold { before, after } => match edge {
                Edge::Start => before.to_timestamp(dt).ok(),
                Edge::End => after.to_timestamp(dt).ok(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: &str = "Europe/Paris";

    fn window(days: u32, start: &str, end: &str) -> ShutdownWindow {
        ShutdownWindow {
            days,
            start: start.into(),
            end: end.into(),
            time_zone: PARIS.into(),
            ..ShutdownWindow::default()
        }
    }

    fn policy(windows: Vec<ShutdownWindow>) -> Policy {
        Policy {
            org: "acme".into(),
            version: 1,
            mode: PolicyMode::Enforce as i32,
            windows,
            idle_threshold_s: 900,
            warning_s: 300,
            postpones_allowed: 2,
            postpone_s: 1800,
            ..Policy::default()
        }
    }

    fn desktop() -> DeviceFacts {
        DeviceFacts {
            chassis: ChassisClass::Desktop,
            tags: vec!["accounting".into()],
            hostname: "pc-042".into(),
            allow_shutdown: false,
        }
    }

    /// An instant from a Paris wall time with an explicit offset, so the DST cases
    /// say which of two equal wall times they mean.
    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const IDLE: u64 = 3600;

    fn eval(p: &Policy, now: &str) -> Decision {
        evaluate(p, at(now), &desktop(), IDLE, 0, None)
    }

    fn warn_at(s: &str) -> Decision {
        Decision::Enforce(Action::Warn { shutdown_at: at(s) })
    }

    #[test]
    fn the_paris_dst_days_are_sundays() {
        // The DST tests below rely on these dates being the change days.
        let march: Date = "2026-03-29".parse().unwrap();
        let october: Date = "2026-10-25".parse().unwrap();
        assert_eq!(march.weekday(), Weekday::Sunday);
        assert_eq!(october.weekday(), Weekday::Sunday);
    }

    #[test]
    fn a_window_in_the_march_gap_opens_when_the_clock_jumps() {
        // 2026-03-29: 02:00 CET (01:00Z) becomes 03:00 CEST. The wall clock never reads
        // 02:30, so the 02:30–04:00 window opens at the jump and lasts one hour.
        let p = policy(vec![window(day_bit(Weekday::Sunday), "02:30", "04:00")]);
        assert_eq!(eval(&p, "2026-03-29T01:59:59+01:00"), Decision::Nothing);
        assert_eq!(
            eval(&p, "2026-03-29T03:00:00+02:00"),
            warn_at("2026-03-29T03:05:00+02:00")
        );
        assert_eq!(
            eval(&p, "2026-03-29T03:59:00+02:00"),
            Decision::Skip {
                reason: SkipReason::TooLateInWindow
            }
        );
        assert_eq!(eval(&p, "2026-03-29T04:00:00+02:00"), Decision::Nothing);
        let span = open_span(&p, at("2026-03-29T03:30:00+02:00")).unwrap();
        assert_eq!(span.start, at("2026-03-29T01:00:00Z"));
        assert_eq!(span.end, at("2026-03-29T02:00:00Z"));
        // A week earlier the same window is 1h30 of plain CET.
        let span = open_span(&p, at("2026-03-22T03:00:00+01:00")).unwrap();
        assert_eq!(span.end.duration_since(span.start).as_secs(), 5400);
    }

    #[test]
    fn a_window_inside_the_march_gap_never_opens() {
        let p = policy(vec![window(day_bit(Weekday::Sunday), "02:10", "02:50")]);
        let day = spans_between(
            &p,
            at("2026-03-29T00:00:00+01:00"),
            at("2026-03-30T00:00:00+02:00"),
        );
        assert_eq!(day, vec![]);
        assert_eq!(eval(&p, "2026-03-29T03:00:00+02:00"), Decision::Nothing);
    }

    #[test]
    fn a_window_in_the_october_fold_spans_both_repeated_hours() {
        // 2026-10-25: 03:00 CEST (01:00Z) becomes 02:00 CET; 02:00–03:00 happens twice.
        // 02:30–04:00 opens at the first 02:30 and closes at 04:00 CET: 2h30, without
        // closing while the clock reads 02:00–02:30 the second time.
        let p = policy(vec![window(day_bit(Weekday::Sunday), "02:30", "04:00")]);
        assert_eq!(eval(&p, "2026-10-25T02:29:59+02:00"), Decision::Nothing);
        assert_eq!(
            eval(&p, "2026-10-25T02:30:00+02:00"),
            warn_at("2026-10-25T02:35:00+02:00")
        );
        // Second 02:15, wall time before the start, still inside.
        assert!(matches!(
            eval(&p, "2026-10-25T02:15:00+01:00"),
            Decision::Enforce(Action::Warn { .. })
        ));
        assert_eq!(eval(&p, "2026-10-25T04:00:00+01:00"), Decision::Nothing);
        let span = open_span(&p, at("2026-10-25T03:00:00+01:00")).unwrap();
        assert_eq!(span.start, at("2026-10-25T00:30:00Z"));
        assert_eq!(span.end, at("2026-10-25T03:00:00Z"));
    }

    #[test]
    fn a_window_ending_in_the_october_fold_ends_at_its_second_occurrence() {
        // Saturday 23:00 to Sunday 02:30: the clock reads 02:30 twice; the window runs
        // until the second time: 3h30 of wall time plus the repeated hour.
        let p = policy(vec![window(day_bit(Weekday::Saturday), "23:00", "02:30")]);
        let span = open_span(&p, at("2026-10-25T02:20:00+01:00")).unwrap();
        assert_eq!(span.start, at("2026-10-24T23:00:00+02:00"));
        assert_eq!(span.end, at("2026-10-25T02:30:00+01:00"));
        assert_eq!(
            span.end.duration_since(span.start).as_secs(),
            4 * 3600 + 1800
        );
    }

    #[test]
    fn a_countdown_across_the_march_jump_counts_real_seconds() {
        // Saturday 22:00 to Sunday 06:00 over the jump: warned at 01:58 CET, 5 minutes
        // later is 03:03 CEST.
        let p = policy(vec![window(day_bit(Weekday::Saturday), "22:00", "06:00")]);
        let warned = at("2026-03-29T01:58:00+01:00");
        assert_eq!(
            evaluate(&p, warned, &desktop(), IDLE, 0, None),
            warn_at("2026-03-29T03:03:00+02:00")
        );
        let later = at("2026-03-29T03:02:00+02:00");
        assert_eq!(
            evaluate(&p, later, &desktop(), 0, 0, Some(warned)),
            Decision::Enforce(Action::Countdown {
                shutdown_at: at("2026-03-29T03:03:00+02:00")
            })
        );
        let due = at("2026-03-29T03:03:00+02:00");
        assert_eq!(
            evaluate(&p, due, &desktop(), 0, 0, Some(warned)),
            Decision::Enforce(Action::ShutDown)
        );
        let span = open_span(&p, due).unwrap();
        assert_eq!(span.end.duration_since(span.start).as_secs(), 7 * 3600);
    }

    #[test]
    fn windows_crossing_midnight_belong_to_their_start_day() {
        // Monday to Friday 20:00–07:00.
        let p = policy(vec![window(WORKING_DAYS, "20:00", "07:00")]);
        // 2026-06-05 is a Friday.
        assert!(matches!(
            eval(&p, "2026-06-05T23:00:00+02:00"),
            Decision::Enforce(Action::Warn { .. })
        ));
        // Saturday morning: Friday's window still open.
        assert!(matches!(
            eval(&p, "2026-06-06T06:50:00+02:00"),
            Decision::Enforce(Action::Warn { .. })
        ));
        assert_eq!(eval(&p, "2026-06-06T07:00:00+02:00"), Decision::Nothing);
        // Saturday evening and the night to Monday: no window starts on the weekend.
        assert_eq!(eval(&p, "2026-06-06T21:00:00+02:00"), Decision::Nothing);
        assert_eq!(eval(&p, "2026-06-08T03:00:00+02:00"), Decision::Nothing);
        // Monday afternoon: between windows.
        assert_eq!(eval(&p, "2026-06-08T15:00:00+02:00"), Decision::Nothing);
    }

    #[test]
    fn a_sunday_window_ends_on_monday_morning() {
        // The week wraps: Sunday is bit 6, its window's last day is Monday (bit 0).
        let p = policy(vec![window(day_bit(Weekday::Sunday), "22:00", "06:00")]);
        // 2026-06-07 is a Sunday.
        assert_eq!(eval(&p, "2026-06-07T21:59:00+02:00"), Decision::Nothing);
        assert!(matches!(
            eval(&p, "2026-06-08T05:00:00+02:00"),
            Decision::Enforce(Action::Warn { .. })
        ));
        assert_eq!(
            eval(&p, "2026-06-08T05:56:00+02:00"),
            Decision::Skip {
                reason: SkipReason::TooLateInWindow
            }
        );
        assert_eq!(eval(&p, "2026-06-08T06:00:00+02:00"), Decision::Nothing);
        // Sunday early morning is not Saturday's (there is none).
        assert_eq!(eval(&p, "2026-06-07T05:00:00+02:00"), Decision::Nothing);
        // A warning from Sunday night is carried out on Monday.
        let warned = at("2026-06-07T23:50:00+02:00");
        assert_eq!(
            evaluate(
                &p,
                at("2026-06-08T00:10:00+02:00"),
                &desktop(),
                0,
                0,
                Some(warned)
            ),
            Decision::Enforce(Action::ShutDown)
        );
        let spans = spans_between(
            &p,
            at("2026-06-01T00:00:00+02:00"),
            at("2026-06-15T00:00:00+02:00"),
        );
        let starts: Vec<Timestamp> = spans.iter().map(|s| s.start).collect();
        // The one of May 31 overlaps the range by its Monday morning.
        assert_eq!(
            starts,
            vec![
                at("2026-05-31T22:00:00+02:00"),
                at("2026-06-07T22:00:00+02:00"),
                at("2026-06-14T22:00:00+02:00")
            ]
        );
    }

    #[test]
    fn postpones_push_the_deadline_up_to_the_limit() {
        let p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        let warned = at("2026-06-08T21:00:00+02:00");
        let deadline = |used| shutdown_deadline(&p, warned, used);
        assert_eq!(deadline(0), at("2026-06-08T21:05:00+02:00"));
        assert_eq!(deadline(1), at("2026-06-08T21:35:00+02:00"));
        assert_eq!(deadline(2), at("2026-06-08T22:05:00+02:00"));
        // More postpones than allowed count as the allowed two.
        assert_eq!(deadline(9), deadline(2));
        assert!(can_postpone(&p, 0) && can_postpone(&p, 1));
        assert!(!can_postpone(&p, 2));
        let now = at("2026-06-08T21:40:00+02:00");
        let d = |used| evaluate(&p, now, &desktop(), 0, used, Some(warned));
        assert_eq!(d(0), Decision::Enforce(Action::ShutDown));
        assert_eq!(d(1), Decision::Enforce(Action::ShutDown));
        assert_eq!(
            d(2),
            Decision::Enforce(Action::Countdown {
                shutdown_at: deadline(2)
            })
        );
    }

    #[test]
    fn a_warning_from_before_the_window_is_stale() {
        let p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        // Warned last night, slept through the day: warn again, never shut down unwarned.
        let yesterday = at("2026-06-07T23:00:00+02:00");
        assert_eq!(
            evaluate(
                &p,
                at("2026-06-08T20:30:00+02:00"),
                &desktop(),
                IDLE,
                0,
                Some(yesterday)
            ),
            warn_at("2026-06-08T20:35:00+02:00")
        );
    }

    #[test]
    fn an_active_user_is_not_warned_but_a_warning_runs_its_course() {
        let p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        let now = at("2026-06-08T21:00:00+02:00");
        assert_eq!(
            evaluate(&p, now, &desktop(), 899, 0, None),
            Decision::Skip {
                reason: SkipReason::UserActive
            }
        );
        assert!(matches!(
            evaluate(&p, now, &desktop(), 900, 0, None),
            Decision::Enforce(Action::Warn { .. })
        ));
        // Warned, then active again: the way out is a postpone.
        let warned = at("2026-06-08T20:50:00+02:00");
        assert_eq!(
            evaluate(&p, now, &desktop(), 0, 0, Some(warned)),
            Decision::Enforce(Action::ShutDown)
        );
    }

    #[test]
    fn exclusions_by_hostname_tag_and_chassis() {
        let mut p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        let now = at("2026-06-08T21:00:00+02:00");
        let skip = |p: &Policy, f: &DeviceFacts| match evaluate(p, now, f, IDLE, 0, None) {
            Decision::Skip { reason } => Some(reason),
            _ => None,
        };
        assert_eq!(skip(&p, &desktop()), None);

        p.excluded_hostnames = vec!["PC-042".into()];
        assert_eq!(
            skip(&p, &desktop()),
            Some(SkipReason::ExcludedHostname("pc-042".into()))
        );
        p.excluded_hostnames.clear();

        p.excluded_tags = vec!["Accounting".into()];
        assert_eq!(
            skip(&p, &desktop()),
            Some(SkipReason::ExcludedTag("Accounting".into()))
        );
        p.excluded_tags.clear();

        p.excluded_chassis = vec![ChassisClass::Laptop as i32];
        let laptop = DeviceFacts {
            chassis: ChassisClass::Laptop,
            ..desktop()
        };
        assert_eq!(
            skip(&p, &laptop),
            Some(SkipReason::ExcludedChassis(ChassisClass::Laptop))
        );
        assert_eq!(skip(&p, &desktop()), None);
        p.excluded_chassis.clear();

        p.group_tag = "library".into();
        assert_eq!(
            skip(&p, &desktop()),
            Some(SkipReason::NotSelected("library".into()))
        );
        p.group_tag = "ACCOUNTING".into();
        assert_eq!(skip(&p, &desktop()), None);
    }

    #[test]
    fn servers_need_the_policy_and_the_local_config() {
        let mut p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        let now = at("2026-06-08T21:00:00+02:00");
        let server = |allow_shutdown| DeviceFacts {
            chassis: ChassisClass::Server,
            hostname: "srv-files".into(),
            allow_shutdown,
            ..desktop()
        };
        let d = |p: &Policy, f: &DeviceFacts| evaluate(p, now, f, IDLE, 0, None);
        let skip = |reason| Decision::Skip { reason };
        // Neither, local only, policy only: never.
        assert_eq!(d(&p, &server(false)), skip(SkipReason::ServerNotNamed));
        assert_eq!(d(&p, &server(true)), skip(SkipReason::ServerNotNamed));
        p.servers_named = vec!["SRV-FILES".into()];
        assert_eq!(d(&p, &server(false)), skip(SkipReason::ServerNotAllowed));
        // Both.
        assert!(matches!(
            d(&p, &server(true)),
            Decision::Enforce(Action::Warn { .. })
        ));
        // A device that does not know its chassis gets the same treatment.
        let unknown = DeviceFacts {
            chassis: ChassisClass::Unknown,
            ..desktop()
        };
        assert_eq!(d(&p, &unknown), skip(SkipReason::ServerNotNamed));
    }

    #[test]
    fn dry_run_never_shuts_down_and_off_does_nothing() {
        let mut p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        p.mode = PolicyMode::DryRun as i32;
        let warned = at("2026-06-08T20:00:00+02:00");
        let mut minutes = 0;
        while minutes < 12 * 60 {
            let now = at("2026-06-08T19:00:00+02:00") + SignedDuration::from_mins(minutes);
            for (idle, w) in [
                (0, None),
                (IDLE, None),
                (0, Some(warned)),
                (IDLE, Some(warned)),
            ] {
                let d = evaluate(&p, now, &desktop(), idle, 0, w);
                assert!(!matches!(d, Decision::Enforce(_)), "{now}: {d:?}");
            }
            minutes += 7;
        }
        assert_eq!(
            evaluate(
                &p,
                at("2026-06-08T21:00:00+02:00"),
                &desktop(),
                0,
                0,
                Some(warned)
            ),
            Decision::DryRun(Action::ShutDown)
        );
        for mode in [PolicyMode::Off, PolicyMode::Unspecified] {
            p.mode = mode as i32;
            assert_eq!(
                eval(&p, "2026-06-08T21:00:00+02:00"),
                Decision::Skip {
                    reason: SkipReason::ModeOff
                }
            );
            assert_eq!(eval(&p, "2026-06-08T12:00:00+02:00"), Decision::Nothing);
        }
    }

    #[test]
    fn overlapping_windows_merge_and_bad_windows_never_open() {
        let p = policy(vec![
            window(ALL_DAYS, "20:00", "23:00"),
            window(ALL_DAYS, "22:00", "02:00"),
            ShutdownWindow {
                time_zone: "Mars/Olympus".into(),
                ..window(ALL_DAYS, "00:00", "23:59")
            },
        ]);
        let span = open_span(&p, at("2026-06-08T22:30:00+02:00")).unwrap();
        assert_eq!(span.window, 0);
        assert_eq!(span.start, at("2026-06-08T20:00:00+02:00"));
        assert_eq!(span.end, at("2026-06-09T02:00:00+02:00"));
        assert_eq!(open_span(&p, at("2026-06-08T12:00:00+02:00")), None);
    }

    #[test]
    fn local_times_parse_strictly() {
        assert_eq!(parse_local_time("07:05"), Some(Time::constant(7, 5, 0, 0)));
        assert_eq!(
            parse_local_time("23:59"),
            Some(Time::constant(23, 59, 0, 0))
        );
        for bad in [
            "24:00", "7:05", "07:60", "07-05", "07:05:00", "", "ab:cd", "+1:05",
        ] {
            assert_eq!(parse_local_time(bad), None, "{bad}");
        }
        assert_eq!(days_mask(&[Weekday::Monday, Weekday::Sunday]), 0b100_0001);
    }

    #[test]
    fn validation_names_the_field_and_value() {
        let good = policy(vec![window(WORKING_DAYS, "20:00", "07:00")]);
        assert_eq!(validate_policy(&good), Ok(()));
        let err = |edit: &dyn Fn(&mut Policy)| {
            let mut p = good.clone();
            edit(&mut p);
            let e = validate_policy(&p).unwrap_err();
            (e.field, e.value)
        };
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(err(&|p| p.version = 0), s("version", "0"));
        assert_eq!(err(&|p| p.org = "a/b".into()), s("org", "\"a/b\""));
        assert_eq!(err(&|p| p.mode = 0), s("mode", "0"));
        assert_eq!(err(&|p| p.mode = 42), s("mode", "42"));
        assert_eq!(err(&|p| p.windows.clear()), s("windows", "0 windows"));
        assert_eq!(
            err(&|p| p.windows[0].time_zone = "Europe/Pariss".into()),
            s("windows[0].time_zone", "\"Europe/Pariss\"")
        );
        assert_eq!(
            err(&|p| p.windows[0].start = "25:00".into()),
            s("windows[0].start", "\"25:00\"")
        );
        assert_eq!(
            err(&|p| p.windows[0].end = "20:00".into()),
            s("windows[0].end", "\"20:00\"")
        );
        assert_eq!(err(&|p| p.windows[0].days = 0), s("windows[0].days", "0x0"));
        assert_eq!(
            err(&|p| p.windows[0].days = 0x80),
            s("windows[0].days", "0x80")
        );
        assert_eq!(err(&|p| p.warning_s = 10), s("warning_s", "10"));
        assert_eq!(err(&|p| p.idle_threshold_s = 0), s("idle_threshold_s", "0"));
        assert_eq!(err(&|p| p.postpone_s = 5), s("postpone_s", "5"));
        assert_eq!(
            err(&|p| p.postpones_allowed = 11),
            s("postpones_allowed", "11")
        );
        assert_eq!(
            err(&|p| p.excluded_chassis = vec![99]),
            s("excluded_chassis[0]", "99")
        );
        assert_eq!(
            err(&|p| p.servers_named = vec!["".into()]),
            s("servers_named[0]", "\"\"")
        );
        // An off policy needs no window; no postpones, no postpone length.
        let mut off = good.clone();
        off.mode = PolicyMode::Off as i32;
        off.windows.clear();
        off.postpones_allowed = 0;
        off.postpone_s = 0;
        assert_eq!(validate_policy(&off), Ok(()));
    }

    fn closure_policy() -> Policy {
        let mut p = policy(vec![window(WORKING_DAYS, "20:00", "07:00")]);
        p.closure_time_zone = PARIS.into();
        p.closure_days = vec![
            crate::v1::ClosureDay {
                date: "2026-07-14".into(),
                name: "Fête nationale".into(),
                public_holiday: true,
            },
            crate::v1::ClosureDay {
                date: "2026-07-15".into(),
                name: "Pont".into(),
                public_holiday: false,
            },
        ];
        p.closure_action = ShutdownAction::Hibernate as i32;
        p
    }

    #[test]
    fn a_closure_day_is_a_whole_day_window_with_its_own_action() {
        let p = closure_policy();
        assert_eq!(validate_policy(&p), Ok(()));
        // 2026-07-14 is a Tuesday: open at noon, from midnight to midnight.
        let span = open_span(&p, at("2026-07-14T12:00:00+02:00")).unwrap();
        assert_eq!(span.start, at("2026-07-14T00:00:00+02:00"));
        assert_eq!(span.end, at("2026-07-15T00:00:00+02:00"));
        assert_eq!(span.window, 1);
        // At 06:00 Monday night's window (20:00–07:00) is open too: merged, and the
        // action is that of the window that opened first.
        let span = open_span(&p, at("2026-07-14T06:00:00+02:00")).unwrap();
        assert_eq!(span.start, at("2026-07-13T20:00:00+02:00"));
        assert_eq!(span.end, at("2026-07-15T00:00:00+02:00"));
        assert_eq!(span.window, 0);
        assert_eq!(span_action(&p, 0), ShutdownAction::PowerOff);
        assert_eq!(span_action(&p, 1), ShutdownAction::Hibernate);
        assert_eq!(span_action(&p, 2), ShutdownAction::Hibernate);
        // The 16th is a working day: closed at noon.
        assert_eq!(open_span(&p, at("2026-07-16T12:00:00+02:00")), None);
        let spans = spans_between(
            &p,
            at("2026-07-14T08:00:00+02:00"),
            at("2026-07-14T09:00:00+02:00"),
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].window, 1);
        assert_eq!(spans[0].start, at("2026-07-14T00:00:00+02:00"));
        assert_eq!(spans[0].end, at("2026-07-15T00:00:00+02:00"));
        // A policy of closure days only is enough for enforce.
        let mut only = p.clone();
        only.windows.clear();
        assert_eq!(validate_policy(&only), Ok(()));
        assert!(matches!(
            evaluate(
                &only,
                at("2026-07-15T10:00:00+02:00"),
                &desktop(),
                IDLE,
                0,
                None
            ),
            Decision::Enforce(Action::Warn { .. })
        ));
    }

    #[test]
    fn closure_days_and_actions_are_validated() {
        let good = closure_policy();
        let err = |edit: &dyn Fn(&mut Policy)| {
            let mut p = good.clone();
            edit(&mut p);
            let e = validate_policy(&p).unwrap_err();
            (e.field, e.value)
        };
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            err(&|p| p.closure_days[1].date = "2026-07-14".into()),
            s("closure_days[1].date", "\"2026-07-14\"")
        );
        assert_eq!(
            err(&|p| p.closure_days[0].date = "14/07/2026".into()),
            s("closure_days[0].date", "\"14/07/2026\"")
        );
        assert_eq!(
            err(&|p| p.closure_time_zone.clear()),
            s("closure_time_zone", "\"\"")
        );
        assert_eq!(err(&|p| p.closure_action = 9), s("closure_action", "9"));
        assert_eq!(
            err(&|p| p.windows[0].action = 7),
            s("windows[0].action", "7")
        );
        assert_eq!(
            err(&|p| p.never_interrupt = vec!["/usr/bin/rsync".into()]),
            s("never_interrupt[0]", "\"/usr/bin/rsync\"")
        );
    }

    fn maintenance(days: u32, week: u32, start: &str, end: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days,
            week_of_month: week,
            start: start.into(),
            end: end.into(),
            time_zone: PARIS.into(),
        }
    }

    #[test]
    fn second_tuesday_maintenance_blocks_shutdown_and_is_the_next_wake() {
        let mut p = policy(vec![window(ALL_DAYS, "20:00", "07:00")]);
        p.maintenance = vec![maintenance(day_bit(Weekday::Tuesday), 2, "02:00", "04:00")];
        assert_eq!(validate_policy(&p), Ok(()));
        // December 2026: Tuesdays 1, 8, 15 … the second is the 8th.
        let in_it = at("2026-12-08T03:00:00+01:00");
        assert_eq!(
            evaluate(&p, in_it, &desktop(), IDLE, 0, None),
            Decision::Skip {
                reason: SkipReason::InMaintenance(0)
            }
        );
        assert_eq!(maintenance_span(&p, at("2026-12-01T03:00:00+01:00")), None);
        assert_eq!(maintenance_span(&p, at("2026-12-15T03:00:00+01:00")), None);
        // After it: shut down as usual; the next wake is January's second Tuesday (12th).
        let after = at("2026-12-08T04:00:00+01:00");
        assert!(matches!(
            evaluate(&p, after, &desktop(), IDLE, 0, None),
            Decision::Enforce(Action::Warn { .. })
        ));
        let next = next_maintenance(&p, after).unwrap();
        assert_eq!(next.start, at("2027-01-12T02:00:00+01:00"));
        assert_eq!(next.end, at("2027-01-12T04:00:00+01:00"));
        let before = next_maintenance(&p, at("2026-12-07T21:00:00+01:00")).unwrap();
        assert_eq!(before.start, at("2026-12-08T02:00:00+01:00"));
        // Several windows: the earliest wins; every night 03:00–03:30.
        p.maintenance
            .push(maintenance(ALL_DAYS, 0, "03:00", "03:30"));
        let next = next_maintenance(&p, after).unwrap();
        assert_eq!(next.window, 1);
        assert_eq!(next.start, at("2026-12-09T03:00:00+01:00"));
        let e = |edit: &dyn Fn(&mut Policy)| {
            let mut q = p.clone();
            edit(&mut q);
            validate_policy(&q).unwrap_err().field
        };
        assert_eq!(
            e(&|q| q.maintenance[0].week_of_month = 6),
            "maintenance[0].week_of_month"
        );
        assert_eq!(
            e(&|q| q.maintenance[1].start = "3:00".into()),
            "maintenance[1].start"
        );
        assert_eq!(e(&|q| q.maintenance[1].days = 0), "maintenance[1].days");
        let dec = maintenance_between(
            &p,
            at("2026-12-01T00:00:00+01:00"),
            at("2027-01-01T00:00:00+01:00"),
        );
        // The 31 nights of December and the second Tuesday.
        assert_eq!(dec.len(), 32);
        assert_eq!(dec[0].start, at("2026-12-01T03:00:00+01:00"));
        assert!(
            dec.iter()
                .any(|s| s.window == 0 && s.start == at("2026-12-08T02:00:00+01:00"))
        );
        // No maintenance window: nothing to wake for.
        p.maintenance.clear();
        assert_eq!(next_maintenance(&p, after), None);
    }
}
