//! Embodied (manufacturing) carbon per device class, amortised per year of service.
//!
//! Manufacturing is most of an office device's footprint, so the yearly share of it
//! falls as the device is kept longer: [`EmbodiedTable::yearly_embodied_kg`] and
//! [`EmbodiedTable::gain_of_keeping_one_more_year`] put a number on "keep it a year
//! longer" for the renewal report.
//!
//! The figures are the `[embodied]` table of `deploy/renewal.toml` (embedded), each with
//! its source. Published figures disagree (ENERGY-DATA.md): ADEME's monitor is ~5× below
//! manufacturers' product carbon sheets (different scope), ADEME's server ~3× above; the
//! defaults use one source family (ADEME via Boavizta) wherever it has a figure, so that
//! classes compare with each other, and a user file overrides any class
//! ([`EmbodiedTable::with_overrides`]).
//!
//! Pure: parsing and arithmetic only.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::energy::catalogue::DeviceClass;
use crate::renewal::horizon::{DEFAULT_RENEWAL_TOML, RenewalError, RenewalFile};

/// One class's embodied carbon and where the figure comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbodiedEntry {
    /// kgCO2e for manufacturing, transport and end of life of one device (the scope of
    /// the named source).
    pub kgco2e: f64,
    /// The publication, database or reasoning (`assumption: …`).
    pub source: String,
}

/// Embodied carbon for every [`DeviceClass`].
#[derive(Debug, Clone)]
pub struct EmbodiedTable {
    classes: BTreeMap<DeviceClass, EmbodiedEntry>,
}

impl EmbodiedTable {
    /// The embedded defaults.
    ///
    /// # Panics
    /// Never in a released binary: a unit test parses the embedded file.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_RENEWAL_TOML).expect("embedded deploy/renewal.toml is valid")
    }

    /// A complete table from a renewal file: every class required in `[embodied]`.
    pub fn parse(toml_text: &str) -> Result<Self, RenewalError> {
        let file: RenewalFile = toml::from_str(toml_text)?;
        let mut classes = BTreeMap::new();
        for class in DeviceClass::ALL {
            let e = file
                .embodied
                .get(&class)
                .cloned()
                .ok_or_else(|| RenewalError::Missing {
                    key: format!("embodied.{class}"),
                })?;
            classes.insert(class, e);
        }
        let table = EmbodiedTable { classes };
        table.validate()?;
        Ok(table)
    }

    /// This table with the `[embodied]` entries of a user renewal file applied (the
    /// rest of that file is read by [`crate::renewal::horizon::RenewalPolicy::with_overrides`]).
    pub fn with_overrides(&self, user_toml: &str) -> Result<Self, RenewalError> {
        let file: RenewalFile = toml::from_str(user_toml)?;
        let mut table = self.clone();
        table.classes.extend(file.embodied);
        table.validate()?;
        Ok(table)
    }

    fn validate(&self) -> Result<(), RenewalError> {
        for (class, e) in &self.classes {
            let key = format!("embodied.{class}.kgco2e");
            if !e.kgco2e.is_finite() || e.kgco2e < 0.0 {
                return Err(RenewalError::Invalid {
                    key,
                    value: e.kgco2e.to_string(),
                    reason: "must be a finite number of kgCO2e ≥ 0".to_owned(),
                });
            }
            if e.source.trim().is_empty() {
                return Err(RenewalError::NoSource {
                    key: format!("embodied.{class}"),
                });
            }
        }
        Ok(())
    }

    /// The figure for a class, with its source.
    pub fn entry(&self, class: DeviceClass) -> &EmbodiedEntry {
        &self.classes[&class]
    }

    /// Embodied kgCO2e per year of service after `years_of_service` years: the whole
    /// figure over the years served, counting a first (partial) year as one so a new
    /// device carries its whole footprint rather than dividing by zero.
    pub fn yearly_embodied_kg(&self, class: DeviceClass, years_of_service: u32) -> f64 {
        self.classes[&class].kgco2e / f64::from(years_of_service.max(1))
    }

    /// How much the yearly embodied footprint drops if a device that has served
    /// `current_service_years` serves one more year: `yearly(n) − yearly(n + 1)`, in
    /// kgCO2e per year. Always ≥ 0, and smaller each year (the gain is largest early).
    pub fn gain_of_keeping_one_more_year(
        &self,
        class: DeviceClass,
        current_service_years: u32,
    ) -> f64 {
        let n = current_service_years.max(1);
        self.yearly_embodied_kg(class, n) - self.yearly_embodied_kg(class, n.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_embedded_table_is_complete_and_sourced() {
        let t = EmbodiedTable::parse(DEFAULT_RENEWAL_TOML).unwrap();
        for c in DeviceClass::ALL {
            let e = t.entry(c);
            assert!(e.kgco2e > 0.0, "{c}");
            assert!(!e.source.trim().is_empty(), "{c}");
        }
        assert_eq!(t.entry(DeviceClass::Laptop).kgco2e, 181.0);
        assert_eq!(t.entry(DeviceClass::Desktop).kgco2e, 277.0);
        assert_eq!(t.entry(DeviceClass::Monitor).kgco2e, 64.7);
        assert_eq!(t.entry(DeviceClass::Server).kgco2e, 3660.0);
        // The monitor's disagreement between sources is stated where the figure is.
        assert!(t.entry(DeviceClass::Monitor).source.contains("328"));
    }

    #[test]
    fn amortisation_over_four_five_six_years() {
        let t = EmbodiedTable::builtin();
        let laptop = DeviceClass::Laptop; // 181 kgCO2e
        assert!(close(t.yearly_embodied_kg(laptop, 4), 45.25));
        assert!(close(t.yearly_embodied_kg(laptop, 5), 36.2));
        assert!(close(t.yearly_embodied_kg(laptop, 6), 181.0 / 6.0)); // 30.1666…
        // 45.25 − 36.2 = 9.05; 36.2 − 30.1666… = 6.0333…
        assert!(close(t.gain_of_keeping_one_more_year(laptop, 4), 9.05));
        assert!(close(
            t.gain_of_keeping_one_more_year(laptop, 5),
            36.2 - 181.0 / 6.0
        ));

        let desktop = DeviceClass::Desktop; // 277 kgCO2e
        assert!(close(t.yearly_embodied_kg(desktop, 4), 69.25));
        assert!(close(t.yearly_embodied_kg(desktop, 5), 55.4));
        assert!(close(t.yearly_embodied_kg(desktop, 6), 277.0 / 6.0)); // 46.1666…
        assert!(close(t.gain_of_keeping_one_more_year(desktop, 4), 13.85));
        assert!(close(
            t.gain_of_keeping_one_more_year(desktop, 5),
            55.4 - 277.0 / 6.0
        ));

        // The gain shrinks each year but stays positive.
        assert!(
            t.gain_of_keeping_one_more_year(desktop, 6)
                < t.gain_of_keeping_one_more_year(desktop, 5)
        );
        assert!(t.gain_of_keeping_one_more_year(desktop, 40) > 0.0);
    }

    #[test]
    fn a_new_device_carries_its_whole_footprint() {
        let t = EmbodiedTable::builtin();
        assert!(close(t.yearly_embodied_kg(DeviceClass::Laptop, 0), 181.0));
        assert!(close(t.yearly_embodied_kg(DeviceClass::Laptop, 1), 181.0));
        assert!(close(
            t.gain_of_keeping_one_more_year(DeviceClass::Laptop, 0),
            90.5
        ));
    }

    #[test]
    fn a_user_file_overrides_one_class() {
        let user = r#"
            [embodied]
            monitor = { kgco2e = 328.0, source = "manufacturer sheets, 24-inch median (Boavizta environmental-footprint-data)" }
        "#;
        let t = EmbodiedTable::builtin().with_overrides(user).unwrap();
        assert_eq!(t.entry(DeviceClass::Monitor).kgco2e, 328.0);
        assert_eq!(t.entry(DeviceClass::Laptop).kgco2e, 181.0);
        assert!(close(t.yearly_embodied_kg(DeviceClass::Monitor, 8), 41.0));
        let bad = "[embodied]\nlaptop = { kgco2e = -1.0, source = \"x\" }";
        assert!(EmbodiedTable::builtin().with_overrides(bad).is_err());
        let bad = "[embodied]\nlaptop = { kgco2e = 10.0 }";
        assert!(EmbodiedTable::builtin().with_overrides(bad).is_err());
    }
}
