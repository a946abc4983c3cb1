//! The operator's comparison between bodies: for each organisation, indicators
//! normalised so that a town of 40 PCs and an EPCI of 900 can be set side by side, and
//! its position among anonymised peers of its kind and size (quartiles).
//!
//! Pure: the per-org figures come from the consumption and renewal reports, the
//! profiles (kind, population band, headcount) from the configuration.
//!
//! # Indicators (each `None` when its denominator is zero)
//! - `kwh_per_device_year`, `kgco2e_per_device_year`: the period's energy and emissions
//!   per device, scaled to 365.25 days (a month's figure × ~12).
//! - `on_outside_working_hours_pct`: of the hours devices were on, the share outside the
//!   org's working hours (nights, weekends, holidays): what a shutdown policy targets.
//! - `median_age_years`, `past_horizon_pct`: over the renewal report's rows (agents'
//!   devices, their monitors and the assets without agent).
//! - `reuse_pct`: of the devices past their horizon, the share on the reuse list
//!   (working, under the recycling age).
//! - `measured_pct`, `modelled_pct`: how much of the energy was metered vs modelled.
//! - `devices_per_staff`: devices over the org's headcount.
//!
//! # Peers and anonymity
//! An org's peers are the orgs of the same kind and population band, else of the same
//! kind, else every org: the first group with at least [`MIN_PEERS`] orgs (the org
//! itself included). With fewer, no quartiles are given: with two, the quartiles
//! would give the other org's values away. An org's view ([`CompareReport::for_org`])
//! holds its own values and its peers' quartiles, never another org's name or rank; the
//! operator's view holds every org, ranked by kWh per device-year (lowest first).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::devices::csv_field;

/// The smallest peer group whose quartiles are shown.
pub const MIN_PEERS: usize = 3;

/// Days in a year, for per-year figures.
const DAYS_PER_YEAR: f64 = 365.25;

/// The kinds of public body.
pub const ORG_KINDS: [&str; 6] = ["commune", "epci", "departement", "region", "etat", "other"];

/// Population bands (inhabitants); empty = unknown.
pub const POPULATION_BANDS: [&str; 5] = ["lt_2k", "2k_10k", "10k_50k", "50k_200k", "gt_200k"];

/// Who an org is, from the configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgProfile {
    pub org: String,
    /// One of [`ORG_KINDS`].
    pub kind: String,
    /// One of [`POPULATION_BANDS`], or empty (unknown).
    pub population_band: String,
    /// Staff; 0 = unknown.
    pub headcount: u32,
    /// Its kWh target, if it set one ([`crate::trajectory`]).
    #[serde(skip)]
    pub target: Option<crate::trajectory::Target>,
}

impl OrgProfile {
    /// The profile of an org the configuration says nothing about.
    pub fn unknown(org: &str) -> Self {
        Self {
            org: org.to_owned(),
            kind: "other".to_owned(),
            population_band: String::new(),
            headcount: 0,
            target: None,
        }
    }
}

/// One org's raw figures over the period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgFigures {
    pub devices: u64,
    pub kwh: f64,
    pub kg_co2e: f64,
    pub hours_on: f64,
    pub hours_on_outside_working_hours: f64,
    pub measured_pct: f64,
    pub modelled_pct: f64,
    /// Age in months of every row of the renewal report.
    pub ages_months: Vec<u32>,
    pub past_horizon: u32,
    pub reuse: u32,
}

/// The normalised indicators of one org. Field names are a stable interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Indicators {
    pub kwh_per_device_year: Option<f64>,
    pub kgco2e_per_device_year: Option<f64>,
    pub on_outside_working_hours_pct: Option<f64>,
    pub median_age_years: Option<f64>,
    pub past_horizon_pct: Option<f64>,
    pub reuse_pct: Option<f64>,
    pub measured_pct: Option<f64>,
    pub modelled_pct: Option<f64>,
    pub devices_per_staff: Option<f64>,
}

impl Indicators {
    /// Every indicator with its name, in a fixed order.
    pub fn named(&self) -> [(&'static str, Option<f64>); 9] {
        [
            ("kwh_per_device_year", self.kwh_per_device_year),
            ("kgco2e_per_device_year", self.kgco2e_per_device_year),
            (
                "on_outside_working_hours_pct",
                self.on_outside_working_hours_pct,
            ),
            ("median_age_years", self.median_age_years),
            ("past_horizon_pct", self.past_horizon_pct),
            ("reuse_pct", self.reuse_pct),
            ("measured_pct", self.measured_pct),
            ("modelled_pct", self.modelled_pct),
            ("devices_per_staff", self.devices_per_staff),
        ]
    }
}

/// Computes the indicators of one org over `period_days`.
pub fn indicators(f: &OrgFigures, headcount: u32, period_days: f64) -> Indicators {
    let per = |num: f64, den: f64| (den > 0.0).then(|| round(num / den, 3));
    let device_years = f.devices as f64 * period_days / DAYS_PER_YEAR;
    Indicators {
        kwh_per_device_year: per(f.kwh, device_years),
        kgco2e_per_device_year: per(f.kg_co2e, device_years),
        on_outside_working_hours_pct: per(100.0 * f.hours_on_outside_working_hours, f.hours_on),
        median_age_years: median_months(&f.ages_months).map(|m| round(m / 12.0, 2)),
        past_horizon_pct: per(
            100.0 * f64::from(f.past_horizon),
            f.ages_months.len() as f64,
        ),
        reuse_pct: per(100.0 * f64::from(f.reuse), f64::from(f.past_horizon)),
        measured_pct: (f.devices > 0).then(|| round(f.measured_pct, 1)),
        modelled_pct: (f.devices > 0).then(|| round(f.modelled_pct, 1)),
        devices_per_staff: per(f.devices as f64, f64::from(headcount)),
    }
}

fn median_months(ages: &[u32]) -> Option<f64> {
    let mut v: Vec<f64> = ages.iter().map(|&a| f64::from(a)).collect();
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// The `q` quantile of sorted values, linear between closest ranks (R's type 7, the
/// spreadsheet QUARTILE.INC); `None` for no values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (sorted.get(lo)?, sorted.get(hi)?);
    Some(a + (h - lo as f64) * (b - a))
}

/// The quartiles of one indicator among peers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quartiles {
    pub indicator: &'static str,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    /// Peers that have a value for this indicator.
    pub orgs: u32,
}

/// An org's peer group: how it was chosen and the quartiles. No names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peers {
    /// `kind_and_band`, `kind`, `all`, or `none` (fewer than [`MIN_PEERS`] orgs).
    pub basis: &'static str,
    /// Orgs in the group, this one included.
    pub orgs: u32,
    pub quartiles: Vec<Quartiles>,
}

/// One org's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgPosition {
    pub org: String,
    pub kind: String,
    pub population_band: String,
    pub headcount: u32,
    /// Rank by kWh per device-year among every org (1 = lowest); only in the
    /// operator's view.
    pub rank: Option<u32>,
    pub devices: u64,
    pub indicators: Indicators,
    pub peers: Peers,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    pub from: String,
    pub to: String,
    pub period_days: f64,
    pub min_peers: usize,
    /// The operator's view: every org, by rank. An org's view: that org only.
    pub orgs: Vec<OrgPosition>,
}

/// Builds the operator's view from every org's profile and figures.
pub fn compare(
    orgs: &[(OrgProfile, OrgFigures)],
    from: &str,
    to: &str,
    period_days: f64,
) -> CompareReport {
    let with_ind: Vec<(&OrgProfile, &OrgFigures, Indicators)> = orgs
        .iter()
        .map(|(p, f)| (p, f, indicators(f, p.headcount, period_days)))
        .collect();
    let mut out: Vec<OrgPosition> = with_ind
        .iter()
        .map(|(p, f, ind)| {
            let same_kind = |o: &&(&OrgProfile, &OrgFigures, Indicators)| o.0.kind == p.kind;
            let kind_band: Vec<_> = with_ind
                .iter()
                .filter(same_kind)
                .filter(|o| {
                    !p.population_band.is_empty() && o.0.population_band == p.population_band
                })
                .collect();
            let kind: Vec<_> = with_ind.iter().filter(same_kind).collect();
            let all: Vec<_> = with_ind.iter().collect();
            let (basis, group) = if kind_band.len() >= MIN_PEERS {
                ("kind_and_band", kind_band)
            } else if kind.len() >= MIN_PEERS {
                ("kind", kind)
            } else if all.len() >= MIN_PEERS {
                ("all", all)
            } else {
                ("none", Vec::new())
            };
            let quartiles = if group.is_empty() {
                Vec::new()
            } else {
                ind.named()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (name, _))| {
                        let mut v: Vec<f64> =
                            group.iter().filter_map(|o| o.2.named()[i].1).collect();
                        if v.len() < MIN_PEERS {
                            return None;
                        }
                        v.sort_by(f64::total_cmp);
                        Some(Quartiles {
                            indicator: name,
                            q1: round(quantile(&v, 0.25)?, 3),
                            median: round(quantile(&v, 0.5)?, 3),
                            q3: round(quantile(&v, 0.75)?, 3),
                            orgs: v.len() as u32,
                        })
                    })
                    .collect()
            };
            OrgPosition {
                org: p.org.clone(),
                kind: p.kind.clone(),
                population_band: p.population_band.clone(),
                headcount: p.headcount,
                rank: None,
                devices: f.devices,
                indicators: ind.clone(),
                peers: Peers {
                    basis,
                    orgs: if basis == "none" {
                        0
                    } else {
                        group.len() as u32
                    },
                    quartiles,
                },
            }
        })
        .collect();
    // Lowest kWh per device-year first; orgs without a figure last, by name.
    out.sort_by(|a, b| {
        let key = |p: &OrgPosition| p.indicators.kwh_per_device_year.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.org.cmp(&b.org))
    });
    for (i, p) in out.iter_mut().enumerate() {
        p.rank = Some(i as u32 + 1);
    }
    CompareReport {
        from: from.to_owned(),
        to: to.to_owned(),
        period_days,
        min_peers: MIN_PEERS,
        orgs: out,
    }
}

impl CompareReport {
    /// What `org` may see: its own line, without rank, and its peers' quartiles.
    pub fn for_org(&self, org: &str) -> CompareReport {
        CompareReport {
            orgs: self
                .orgs
                .iter()
                .filter(|p| p.org == org)
                .map(|p| OrgPosition {
                    rank: None,
                    ..p.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The report as JSON (pretty, newline-terminated).
pub fn to_json(r: &CompareReport) -> String {
    serde_json::to_string_pretty(r)
        .map(|s| s + "\n")
        .unwrap_or_default()
}

/// One line per org: profile, rank, indicators, then each indicator's peer quartiles.
pub fn to_csv(r: &CompareReport) -> String {
    let names: Vec<&str> = Indicators::default()
        .named()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let mut header: Vec<String> = [
        "org",
        "kind",
        "population_band",
        "headcount",
        "rank",
        "devices",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(names.iter().map(|n| n.to_string()));
    header.extend(["peer_basis".to_owned(), "peer_orgs".to_owned()]);
    for n in &names {
        header.extend([format!("{n}_q1"), format!("{n}_median"), format!("{n}_q3")]);
    }
    let mut out = header.join(",") + "\n";
    for p in &r.orgs {
        let mut cells = vec![
            p.org.clone(),
            p.kind.clone(),
            p.population_band.clone(),
            p.headcount.to_string(),
            p.rank.map(|r| r.to_string()).unwrap_or_default(),
            p.devices.to_string(),
        ];
        cells.extend(p.indicators.named().iter().map(|(_, v)| opt(*v)));
        cells.extend([p.peers.basis.to_owned(), p.peers.orgs.to_string()]);
        for n in &names {
            match p.peers.quartiles.iter().find(|q| q.indicator == *n) {
                Some(q) => cells.extend([q.q1, q.median, q.q3].map(|v| v.to_string())),
                None => cells.extend([String::new(), String::new(), String::new()]),
            }
        }
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// For people: one block per org, each indicator beside its peers' quartiles.
pub fn to_table(r: &CompareReport) -> String {
    let mut out = format!(
        "Comparison {} → {} ({} days; peers: same kind and population band, else kind, \
         else all, at least {} orgs)\n",
        r.from, r.to, r.period_days, r.min_peers
    );
    for p in &r.orgs {
        let rank = p.rank.map(|r| format!("#{r} ")).unwrap_or_default();
        out.push_str(&format!(
            "\n{rank}{} ({}, population {}, headcount {}): {} devices; peers: {} ({} orgs)\n",
            p.org,
            p.kind,
            if p.population_band.is_empty() {
                "unknown"
            } else {
                &p.population_band
            },
            if p.headcount == 0 {
                "unknown".to_owned()
            } else {
                p.headcount.to_string()
            },
            p.devices,
            p.peers.basis,
            p.peers.orgs
        ));
        let quart: BTreeMap<&str, &Quartiles> =
            p.peers.quartiles.iter().map(|q| (q.indicator, q)).collect();
        for (name, v) in p.indicators.named() {
            let q = quart
                .get(name)
                .map(|q| format!("peers Q1 {}  median {}  Q3 {}", q.q1, q.median, q.q3))
                .unwrap_or_else(|| "peers: -".to_owned());
            out.push_str(&format!(
                "  {name:<30} {:>10}   {q}\n",
                v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(org: &str, kind: &str, band: &str, headcount: u32) -> OrgProfile {
        OrgProfile {
            org: org.into(),
            kind: kind.into(),
            population_band: band.into(),
            headcount,
            target: None,
        }
    }

    fn figures(devices: u64, kwh: f64) -> OrgFigures {
        OrgFigures {
            devices,
            kwh,
            kg_co2e: kwh * 0.05,
            hours_on: 100.0,
            hours_on_outside_working_hours: 25.0,
            measured_pct: 10.0,
            modelled_pct: 90.0,
            ages_months: vec![12, 60, 84],
            past_horizon: 1,
            reuse: 1,
        }
    }

    #[test]
    fn quantiles_interpolate_like_a_spreadsheet() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.25), Some(1.75));
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert_eq!(quantile(&v, 0.75), Some(3.25));
        assert_eq!(quantile(&[7.0], 0.75), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn indicators_are_normalised_per_device_year() {
        // 10 devices, 100 kWh over 36.525 days: 100 kWh per device-year.
        let i = indicators(&figures(10, 100.0), 5, 36.525);
        assert_eq!(i.kwh_per_device_year, Some(100.0));
        assert_eq!(i.kgco2e_per_device_year, Some(5.0));
        assert_eq!(i.on_outside_working_hours_pct, Some(25.0));
        assert_eq!(i.median_age_years, Some(5.0));
        assert_eq!(i.past_horizon_pct, Some(33.333));
        assert_eq!(i.reuse_pct, Some(100.0));
        assert_eq!(i.devices_per_staff, Some(2.0));
        let none = indicators(&OrgFigures::default(), 0, 30.0);
        assert_eq!(none, Indicators::default());
    }

    #[test]
    fn peers_widen_until_there_are_enough_and_an_org_sees_no_other_name() {
        let orgs = vec![
            (
                profile("ville-a", "commune", "2k_10k", 20),
                figures(10, 300.0),
            ),
            (
                profile("ville-b", "commune", "2k_10k", 30),
                figures(10, 100.0),
            ),
            (profile("agglo", "epci", "", 0), figures(10, 200.0)),
        ];
        let r = compare(&orgs, "2026-01-01", "2026-01-31", 36.525);
        let ranked: Vec<(&str, Option<u32>)> =
            r.orgs.iter().map(|p| (p.org.as_str(), p.rank)).collect();
        assert_eq!(
            ranked,
            [
                ("ville-b", Some(1)),
                ("agglo", Some(2)),
                ("ville-a", Some(3))
            ]
        );
        // Two communes are too few: every org is compared with all three.
        for p in &r.orgs {
            assert_eq!((p.peers.basis, p.peers.orgs), ("all", 3));
        }
        let q = &r.orgs[0].peers.quartiles[0];
        assert_eq!(
            (q.indicator, q.q1, q.median, q.q3),
            ("kwh_per_device_year", 150.0, 200.0, 250.0)
        );
        // devices_per_staff: only two orgs have a headcount: no quartiles.
        assert!(
            !r.orgs[0]
                .peers
                .quartiles
                .iter()
                .any(|q| q.indicator == "devices_per_staff")
        );

        let own = r.for_org("ville-a");
        assert_eq!(own.orgs.len(), 1);
        assert_eq!(own.orgs[0].rank, None);
        for text in [to_json(&own), to_csv(&own), to_table(&own)] {
            assert!(text.contains("ville-a"), "{text}");
            assert!(
                !text.contains("ville-b") && !text.contains("agglo"),
                "{text}"
            );
        }

        // Four communes of one band: their own group.
        let mut more = orgs.clone();
        more.push((profile("ville-c", "commune", "2k_10k", 0), figures(5, 50.0)));
        more.push((
            profile("ville-d", "commune", "10k_50k", 0),
            figures(5, 50.0),
        ));
        let r = compare(&more, "a", "b", 36.525);
        let basis = |org: &str| {
            let p = r.orgs.iter().find(|p| p.org == org).unwrap();
            (p.peers.basis, p.peers.orgs)
        };
        assert_eq!(basis("ville-a"), ("kind_and_band", 3));
        assert_eq!(basis("ville-d"), ("kind", 4));
        assert_eq!(basis("agglo"), ("all", 5));
        // Two orgs: no quartiles at all.
        let r = compare(&orgs[..2], "a", "b", 36.525);
        assert!(
            r.orgs
                .iter()
                .all(|p| p.peers.basis == "none" && p.peers.quartiles.is_empty())
        );
        let csv = to_csv(&r);
        assert!(
            csv.starts_with("org,kind,population_band,headcount,rank,devices,kwh_per_device_year")
        );
        assert_eq!(csv.lines().count(), 3);
    }
}
