//! The I/O edge of `report compliance` and `policy replay`: the devices, rollups and
//! policy events of a period read from the store, handed to
//! [`veille_domain::policy::compliance`], rendered as table, CSV or JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use veille_domain::energy::consumption::Context;
use veille_domain::policy::compliance::DeviceInput;
use veille_proto::policy::validate_policy;
use veille_proto::v1::{EventKind, Policy};

use crate::policy::{PolicyError, PolicyFile, current_all};
use crate::store::Store;

/// The period `[from, to]` (days, `to` included) as Unix ms.
pub fn period_ms(ctx: &Context, from: &str, to: &str) -> Result<(i64, i64), PolicyError> {
    let bad = |e: &dyn std::fmt::Display| PolicyError::Period(e.to_string());
    let from_ms = ctx.day_start_ms(from).map_err(|e| bad(&e))?;
    let next = to
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.tomorrow().ok())
        .ok_or_else(|| PolicyError::Period(format!("date {to:?}: expected YYYY-MM-DD")))?;
    let to_ms = ctx.day_start_ms(&next.to_string()).map_err(|e| bad(&e))?;
    if to_ms <= from_ms {
        return Err(PolicyError::Period(format!(
            "--to {to} is before --from {from}"
        )));
    }
    Ok((from_ms, to_ms))
}

/// Every device of `org` (all orgs: `None`) with its rollups, facts, power profile and
/// the policy events it reported in `[from_ms, to_ms)`.
pub fn load_inputs(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DeviceInput>, PolicyError> {
    let mut out = Vec::new();
    for d in crate::reports::load_devices(store, org, from_ms, to_ms)? {
        let inv = store.inventory(&d.org, &d.device_id)?.unwrap_or_default();
        let mut events = Vec::new();
        for r in store.reports(&d.org, &d.device_id, 0..=u64::MAX)? {
            for e in r.events {
                let kind = EventKind::try_from(e.kind).unwrap_or(EventKind::Unspecified);
                let policy_event = matches!(
                    kind,
                    EventKind::PolicyWarned
                        | EventKind::PolicyPostponed
                        | EventKind::PolicyShutdown
                        | EventKind::PolicySkipped
                        | EventKind::PolicyRejected
                        | EventKind::PolicyWakeArmed
                );
                if policy_event && (from_ms..to_ms).contains(&e.at_unix_ms) {
                    events.push((kind, e.detail));
                }
            }
        }
        // Still running at the end of the period: its latest session reported within
        // the period's last day.
        let end = to_ms.min(crate::clock::now_ms());
        let running_since_ms = d
            .sessions
            .iter()
            .max_by_key(|s| s.first_start_ms)
            .filter(|s| !s.last_shutdown && s.last_end_ms >= end - 24 * 3_600_000)
            .map(|s| s.boot_ms);
        out.push(DeviceInput {
            running_since_ms,
            facts: veille_domain::policy::compliance::facts(inv.chassis, &d.hostname, &d.groups),
            profile: ctx
                .catalogue
                .profile_for(d.class, d.chassis_code, &d.manufacturer, &d.model)
                .0
                .clone(),
            org: d.org,
            device_id: d.device_id,
            site: d.site,
            hours: d.hours,
            events,
        });
    }
    Ok(out)
}

fn render<T: Serialize>(
    rows: &[T],
    format: &str,
    table: fn(&[T]) -> String,
    csv: fn(&[T]) -> String,
) -> String {
    match format {
        "csv" => csv(rows),
        "json" => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        _ => table(rows),
    }
}

/// The compliance rows (one per org and site) of `[from, to]` from the store: what
/// `report compliance`, the API and the web page all show.
pub fn compliance_rows(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    from: &str,
    to: &str,
) -> Result<Vec<veille_domain::policy::compliance::ComplianceRow>, PolicyError> {
    let (from_ms, to_ms) = period_ms(ctx, from, to)?;
    let policies: BTreeMap<String, Policy> = current_all(store)?
        .into_iter()
        .map(|(p, _)| (p.org.clone(), p))
        .collect();
    let inputs = load_inputs(store, ctx, org, from_ms, to_ms)?;
    Ok(veille_domain::policy::compliance::compliance(
        ctx, &policies, &inputs, from_ms, to_ms,
    ))
}

/// `report compliance` from the store.
pub fn compliance_output(
    store: &Store,
    ctx: &Context,
    org: Option<&str>,
    from: &str,
    to: &str,
    format: &str,
) -> Result<String, PolicyError> {
    let rows = compliance_rows(store, ctx, org, from, to)?;
    Ok(render(
        &rows,
        format,
        veille_domain::policy::compliance::compliance_table,
        veille_domain::policy::compliance::compliance_csv,
    ))
}

/// `policy replay` from the store.
pub fn replay_output(
    store: &Store,
    ctx: &Context,
    draft: &PolicyFile,
    from: &str,
    to: &str,
    format: &str,
) -> Result<String, PolicyError> {
    let rows = replay_rows(store, ctx, draft, from, to)?;
    Ok(render(
        &rows,
        format,
        veille_domain::policy::compliance::replay_table,
        veille_domain::policy::compliance::replay_csv,
    ))
}

/// What `draft` would have saved over `[from, to]` (one row per site of its org): what
/// `policy replay`, the API and the web page all show.
pub fn replay_rows(
    store: &Store,
    ctx: &Context,
    draft: &PolicyFile,
    from: &str,
    to: &str,
) -> Result<Vec<veille_domain::policy::compliance::ReplayRow>, PolicyError> {
    let (from_ms, to_ms) = period_ms(ctx, from, to)?;
    // Holidays of the replayed years, not of today's.
    let mut policy = draft.to_policy(crate::policy::year_of_ms(from_ms))?;
    policy.version = policy.version.max(1);
    validate_policy(&policy)?;
    let inputs = load_inputs(store, ctx, Some(&policy.org), from_ms, to_ms)?;
    Ok(veille_domain::policy::compliance::replay(
        ctx, &policy, &inputs, from_ms, to_ms,
    ))
}
