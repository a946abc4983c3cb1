//! Carbon and cost of electricity: kgCO2e = kWh × grid factor; € = kWh × tariff, with
//! optional time-of-day bands (peak / off-peak).
//!
//! Pure: the timezone is an input (an offset in minutes east of UTC), not a tz
//! database look-up; the caller picks the offset valid for the interval (split
//! intervals at DST changes, or pass one report at a time).

use serde::Deserialize;

/// ADEME Base Empreinte, "Electricité – mix moyen – consommation", France, current
/// edition: 0.0461 kgCO2e/kWh for 2025 (smoothed over 2022–25). The previous
/// edition's 2022 value was 0.0520.
pub const ADEME_FR_MIX_KG_PER_KWH: f64 = 0.0461;
/// Year of [`ADEME_FR_MIX_KG_PER_KWH`].
pub const ADEME_FR_MIX_YEAR: u16 = 2025;
/// Source of [`ADEME_FR_MIX_KG_PER_KWH`].
pub const ADEME_FR_MIX_SOURCE: &str = "ADEME Base Empreinte, \"Electricité – mix moyen – consommation\", France, 2025 (smoothed 2022–25)";

/// Default tariff, €/kWh all taxes included: about the French regulated "Base" tariff
/// (13.43 c€/kWh before excise and VAT, Feb 2025) with taxes. Editable.
pub const DEFAULT_EUR_PER_KWH: f64 = 0.20;

use veille_proto::units::MS_PER_HOUR;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CarbonError {
    #[error("`{field}` = {value}: must be a finite number ≥ 0")]
    Negative { field: String, value: f64 },
    #[error("tariff band `{band}`: hours {start_hour}–{end_hour} invalid: {reason}")]
    BadHours {
        band: String,
        start_hour: u8,
        end_hour: u8,
        reason: &'static str,
    },
    #[error("tariff bands `{first}` and `{second}` both cover local hour {hour}")]
    Overlap {
        first: String,
        second: String,
        hour: u8,
    },
    #[error("interval ends before it starts: start_ms = {start_ms}, end_ms = {end_ms}")]
    InvertedInterval { start_ms: i64, end_ms: i64 },
}

fn check(field: &str, value: f64) -> Result<(), CarbonError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(CarbonError::Negative {
            field: field.to_owned(),
            value,
        })
    }
}

/// A grid's carbon intensity with its provenance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFactor {
    /// kgCO2e per kWh consumed.
    pub kg_co2e_per_kwh: f64,
    /// Where the figure comes from.
    pub source: String,
    /// The year the figure describes.
    pub year: u16,
}

impl Default for GridFactor {
    /// France's mean consumption mix, ADEME (see [`ADEME_FR_MIX_KG_PER_KWH`]).
    fn default() -> Self {
        GridFactor {
            kg_co2e_per_kwh: ADEME_FR_MIX_KG_PER_KWH,
            source: ADEME_FR_MIX_SOURCE.to_owned(),
            year: ADEME_FR_MIX_YEAR,
        }
    }
}

impl GridFactor {
    /// Refuses a negative or non-finite factor.
    pub fn validate(&self) -> Result<(), CarbonError> {
        check("kg_co2e_per_kwh", self.kg_co2e_per_kwh)
    }

    /// kgCO2e for `kwh`.
    pub fn kg_co2e(&self, kwh: f64) -> f64 {
        kwh * self.kg_co2e_per_kwh
    }
}

/// A price that applies during local hours `[start_hour, end_hour)`; wraps midnight
/// when `end_hour < start_hour` (e.g. off-peak 22 → 6).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffBand {
    /// Shown in cost breakdowns, e.g. "heures creuses".
    pub name: String,
    /// 0..=23.
    pub start_hour: u8,
    /// 0..=24; must differ from `start_hour`.
    pub end_hour: u8,
    /// €/kWh.
    pub eur_per_kwh: f64,
}

/// Electricity price: a base price, and optional bands that override it during some
/// local hours.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    /// €/kWh outside every band.
    pub base_eur_per_kwh: f64,
    /// Non-overlapping bands; hours in none of them use the base price.
    #[serde(default)]
    pub bands: Vec<TariffBand>,
}

impl Default for Tariff {
    fn default() -> Self {
        Tariff {
            base_eur_per_kwh: DEFAULT_EUR_PER_KWH,
            bands: Vec::new(),
        }
    }
}

/// The name of the base price in a [`Cost`] breakdown.
pub const BASE_BAND: &str = "base";

/// Energy and cost in one band.
#[derive(Debug, Clone, PartialEq)]
pub struct CostLine {
    /// A band's name, or [`BASE_BAND`].
    pub band: String,
    pub kwh: f64,
    pub eur: f64,
}

/// Cost of an interval's energy, split by band (bands in tariff order, then base;
/// bands the interval does not touch are left out).
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub total_eur: f64,
    pub lines: Vec<CostLine>,
}

impl Tariff {
    /// Checks prices and hours; returns, for each local hour, the index of its band
    /// (`bands.len()` for the base price).
    fn hour_table(&self) -> Result<[usize; 24], CarbonError> {
        check("base_eur_per_kwh", self.base_eur_per_kwh)?;
        let base = self.bands.len();
        let mut table = [base; 24];
        for (i, b) in self.bands.iter().enumerate() {
            check(
                &format!("bands[{i}].eur_per_kwh ({})", b.name),
                b.eur_per_kwh,
            )?;
            let bad = |reason| CarbonError::BadHours {
                band: b.name.clone(),
                start_hour: b.start_hour,
                end_hour: b.end_hour,
                reason,
            };
            if b.start_hour > 23 || b.end_hour > 24 {
                return Err(bad("start_hour must be 0..=23 and end_hour 0..=24"));
            }
            if b.start_hour == b.end_hour || (b.start_hour == 0 && b.end_hour == 24) {
                // An empty band is a typo; an all-day band is the base price.
                return Err(bad("a band must cover some hours, but not all 24"));
            }
            let mut h = b.start_hour;
            while h != b.end_hour % 24 {
                if table[h as usize] != base {
                    return Err(CarbonError::Overlap {
                        first: self.bands[table[h as usize]].name.clone(),
                        second: b.name.clone(),
                        hour: h,
                    });
                }
                table[h as usize] = i;
                h = (h + 1) % 24;
            }
        }
        Ok(table)
    }

    /// Validates the tariff (prices finite and ≥ 0, hours in range, bands disjoint).
    pub fn validate(&self) -> Result<(), CarbonError> {
        self.hour_table().map(|_| ())
    }

    /// The cost of `kwh` consumed evenly over `[start_ms, end_ms)` (Unix ms, UTC),
    /// with local time = UTC + `tz_offset_minutes`. A zero-length interval is priced
    /// at the hour it falls in.
    pub fn cost(
        &self,
        start_ms: i64,
        end_ms: i64,
        kwh: f64,
        tz_offset_minutes: i32,
    ) -> Result<Cost, CarbonError> {
        let table = self.hour_table()?;
        check("kwh", kwh)?;
        if end_ms < start_ms {
            return Err(CarbonError::InvertedInterval { start_ms, end_ms });
        }
        let offset_ms = i64::from(tz_offset_minutes) * 60_000;
        let local_start = start_ms.saturating_add(offset_ms);
        let local_end = end_ms.saturating_add(offset_ms);
        let hour_of = |t: i64| t.div_euclid(MS_PER_HOUR).rem_euclid(24) as usize;

        let mut ms_per_band = vec![0u64; self.bands.len() + 1];
        let len = local_end.abs_diff(local_start);
        if len == 0 {
            ms_per_band[table[hour_of(local_start)]] = 1;
        } else {
            let mut t = local_start;
            while t < local_end {
                let next = (t.div_euclid(MS_PER_HOUR) + 1)
                    .saturating_mul(MS_PER_HOUR)
                    .min(local_end);
                ms_per_band[table[hour_of(t)]] += next.abs_diff(t);
                t = next;
            }
        }
        let total_ms: u64 = ms_per_band.iter().sum();
        let mut lines = Vec::new();
        for (i, &ms) in ms_per_band.iter().enumerate() {
            if ms == 0 {
                continue;
            }
            let (band, price) = match self.bands.get(i) {
                Some(b) => (b.name.clone(), b.eur_per_kwh),
                None => (BASE_BAND.to_owned(), self.base_eur_per_kwh),
            };
            let band_kwh = kwh * ms as f64 / total_ms as f64;
            lines.push(CostLine {
                band,
                kwh: band_kwh,
                eur: band_kwh * price,
            });
        }
        Ok(Cost {
            total_eur: lines.iter().map(|l| l.eur).sum(),
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = MS_PER_HOUR;
    /// 2025-03-03 00:00:00 UTC.
    const DAY0: i64 = 1_740_960_000_000;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn hc_hp() -> Tariff {
        Tariff {
            base_eur_per_kwh: 0.25,
            bands: vec![TariffBand {
                name: "heures creuses".into(),
                start_hour: 22,
                end_hour: 6,
                eur_per_kwh: 0.15,
            }],
        }
    }

    #[test]
    fn default_grid_factor_is_ademe_france() {
        let g = GridFactor::default();
        assert_eq!((g.kg_co2e_per_kwh, g.year), (0.0461, 2025));
        assert!(g.source.contains("ADEME Base Empreinte"));
        close(g.kg_co2e(1000.0), 46.1);
        assert!(g.validate().is_ok());
        let bad = GridFactor {
            kg_co2e_per_kwh: f64::NAN,
            ..GridFactor::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("kg_co2e_per_kwh")
        );
    }

    #[test]
    fn default_tariff_is_a_flat_twenty_cents() {
        let c = Tariff::default().cost(DAY0, DAY0 + 5 * H, 10.0, 0).unwrap();
        close(c.total_eur, 2.0);
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.lines[0].band, BASE_BAND);
    }

    #[test]
    fn peak_off_peak_split_spreads_energy_evenly() {
        // 20:00–02:00 UTC, 6 kWh: 2 h base (20–22), 4 h off-peak (22–02).
        let c = hc_hp().cost(DAY0 + 20 * H, DAY0 + 26 * H, 6.0, 0).unwrap();
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[0].band, "heures creuses");
        close(c.lines[0].kwh, 4.0);
        close(c.lines[0].eur, 0.6);
        assert_eq!(c.lines[1].band, BASE_BAND);
        close(c.lines[1].kwh, 2.0);
        close(c.lines[1].eur, 0.5);
        close(c.total_eur, 1.1);
    }

    #[test]
    fn timezone_offset_shifts_the_bands() {
        // 19:00–21:00 UTC is 21:00–23:00 in UTC+2 (Paris, summer): 1 h base, 1 h off-peak.
        let c = hc_hp()
            .cost(DAY0 + 19 * H, DAY0 + 21 * H, 2.0, 120)
            .unwrap();
        close(c.total_eur, 0.25 + 0.15);
        // Half-hour offsets cut hours in the middle: 21:30–22:30 UTC at UTC+0:30 is
        // 22:00–23:00 local, all off-peak.
        let c = hc_hp()
            .cost(DAY0 + 21 * H + H / 2, DAY0 + 22 * H + H / 2, 1.0, 30)
            .unwrap();
        assert_eq!(c.lines.len(), 1);
        close(c.total_eur, 0.15);
        // Negative offsets: 03:00 UTC at UTC−5 is 22:00 local.
        let c = hc_hp().cost(DAY0 + 3 * H, DAY0 + 4 * H, 1.0, -300).unwrap();
        close(c.total_eur, 0.15);
    }

    #[test]
    fn partial_hours_and_zero_length_intervals() {
        // 21:45–22:15: 15 min base, 15 min off-peak.
        let c = hc_hp()
            .cost(DAY0 + 21 * H + 2_700_000, DAY0 + 22 * H + 900_000, 1.0, 0)
            .unwrap();
        close(c.total_eur, 0.5 * 0.15 + 0.5 * 0.25);
        let c = hc_hp().cost(DAY0 + 23 * H, DAY0 + 23 * H, 1.0, 0).unwrap();
        close(c.total_eur, 0.15);
        assert!(matches!(
            hc_hp().cost(10, 5, 1.0, 0),
            Err(CarbonError::InvertedInterval { .. })
        ));
    }

    #[test]
    fn bad_tariffs_are_refused() {
        let mut t = hc_hp();
        t.bands.push(TariffBand {
            name: "pointe".into(),
            start_hour: 5,
            end_hour: 9,
            eur_per_kwh: 0.4,
        });
        let err = t.validate().unwrap_err();
        assert_eq!(
            err,
            CarbonError::Overlap {
                first: "heures creuses".into(),
                second: "pointe".into(),
                hour: 5
            }
        );
        let mut t = hc_hp();
        t.bands[0].end_hour = 22;
        assert!(matches!(t.validate(), Err(CarbonError::BadHours { .. })));
        let mut t = hc_hp();
        t.bands[0].start_hour = 24;
        assert!(matches!(t.validate(), Err(CarbonError::BadHours { .. })));
        let mut t = hc_hp();
        t.bands[0].eur_per_kwh = -0.1;
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("heures creuses")
        );
        // Deserialised from config, unknown keys refused.
        let t: Tariff = toml::from_str(
            "base_eur_per_kwh = 0.2\n[[bands]]\nname = \"hc\"\nstart_hour = 0\nend_hour = 6\neur_per_kwh = 0.1\n",
        )
        .unwrap();
        assert!(t.validate().is_ok());
        assert!(toml::from_str::<Tariff>("base_eur_per_kwh = 0.2\nvat = 1").is_err());
    }
}
