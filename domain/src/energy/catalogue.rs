//! Power profiles: how many watts a device draws in each state, per chassis class,
//! with per manufacturer + model overrides.
//!
//! The defaults live in `deploy/power-profiles.toml`, embedded in the binary; every
//! figure carries the source it came from (or says `assumption:`), so a report can say
//! where its numbers come from. A user file with the same layout extends or overrides
//! the defaults ([`Catalogue::with_overrides`]).
//!
//! Pure: parsing and look-ups only, no I/O.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;
use veille_proto::v1::ChassisClass;

/// The embedded default catalogue (`deploy/power-profiles.toml`).
pub const DEFAULT_CATALOGUE_TOML: &str = include_str!("../../../deploy/power-profiles.toml");

/// What kind of device a profile describes: the inventory's chassis classes, plus
/// displays, plus the fallback for an unknown chassis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    Desktop,
    Laptop,
    AllInOne,
    ThinClient,
    Workstation,
    Server,
    MiniPc,
    Tablet,
    Monitor,
    #[default]
    Unknown,
}

impl DeviceClass {
    /// Every class; the default catalogue must have a profile for each.
    pub const ALL: [DeviceClass; 10] = [
        DeviceClass::Desktop,
        DeviceClass::Laptop,
        DeviceClass::AllInOne,
        DeviceClass::ThinClient,
        DeviceClass::Workstation,
        DeviceClass::Server,
        DeviceClass::MiniPc,
        DeviceClass::Tablet,
        DeviceClass::Monitor,
        DeviceClass::Unknown,
    ];

    /// The key used in the catalogue file.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Desktop => "desktop",
            DeviceClass::Laptop => "laptop",
            DeviceClass::AllInOne => "all_in_one",
            DeviceClass::ThinClient => "thin_client",
            DeviceClass::Workstation => "workstation",
            DeviceClass::Server => "server",
            DeviceClass::MiniPc => "mini_pc",
            DeviceClass::Tablet => "tablet",
            DeviceClass::Monitor => "monitor",
            DeviceClass::Unknown => "unknown",
        }
    }

    /// From `Inventory.chassis` as it is on the wire; an out-of-range value (a newer
    /// agent) is [`DeviceClass::Unknown`].
    pub fn from_wire(chassis: i32) -> Self {
        ChassisClass::try_from(chassis).map_or(DeviceClass::Unknown, Self::from)
    }
}

impl From<ChassisClass> for DeviceClass {
    fn from(c: ChassisClass) -> Self {
        match c {
            ChassisClass::Unknown => DeviceClass::Unknown,
            ChassisClass::Desktop => DeviceClass::Desktop,
            ChassisClass::Laptop => DeviceClass::Laptop,
            ChassisClass::AllInOne => DeviceClass::AllInOne,
            ChassisClass::ThinClient => DeviceClass::ThinClient,
            ChassisClass::Workstation => DeviceClass::Workstation,
            ChassisClass::Server => DeviceClass::Server,
            ChassisClass::Tablet => DeviceClass::Tablet,
            ChassisClass::MiniPc => DeviceClass::MiniPc,
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One power figure and where it comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// Watts.
    pub value: f64,
    /// The publication, database or datasheet; `assumption: …` when there is none.
    pub source: String,
}

/// Power per state of one kind of device, in watts (validated: finite, ≥ 0,
/// `p_idle_w ≤ p_max_w`).
#[derive(Debug, Clone, PartialEq)]
pub struct PowerProfile {
    /// Soft-off with the plug in.
    pub p_off_w: Figure,
    /// Suspended or hibernated.
    pub p_sleep_w: Figure,
    /// Awake at zero CPU utilisation.
    pub p_idle_w: Figure,
    /// Awake at full CPU utilisation.
    pub p_max_w: Figure,
}

/// Which entry of the catalogue [`Catalogue::profile_for`] used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileOrigin {
    /// A profile for this manufacturer + model.
    Model,
    /// The default for the device's chassis class.
    ClassDefault(DeviceClass),
    /// The chassis class is unknown: the `unknown` profile was used. Reports should
    /// flag results that rely on it.
    UnknownClassFallback,
}

impl ProfileOrigin {
    /// True when the profile is a guess for a device of unknown class.
    pub fn is_fallback(self) -> bool {
        matches!(self, ProfileOrigin::UnknownClassFallback)
    }
}

/// Why a catalogue was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("power-profile catalogue is not valid TOML for this layout: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("power profile {profile}: field `{field}` is missing")]
    Missing {
        profile: String,
        field: &'static str,
    },
    #[error("power profile {profile}: field `{field}` = {value}: {reason}")]
    Invalid {
        profile: String,
        field: &'static str,
        value: f64,
        reason: String,
    },
    #[error("power profile {profile}: field `{field}` has an empty source")]
    NoSource {
        profile: String,
        field: &'static str,
    },
    #[error("power-profile catalogue: models[{index}]: manufacturer and model must not be empty")]
    EmptyModelKey { index: usize },
}

/// The catalogue: one profile per [`DeviceClass`] plus per-model profiles.
#[derive(Debug, Clone)]
pub struct Catalogue {
    classes: BTreeMap<DeviceClass, PowerProfile>,
    /// Keyed by normalised (manufacturer, model).
    models: HashMap<(String, String), PowerProfile>,
}

impl Catalogue {
    /// The embedded defaults.
    ///
    /// # Panics
    /// Never in a released binary: the embedded file is checked by a unit test, so a
    /// broken default fails the build's tests, not a running collector.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_CATALOGUE_TOML).expect("embedded deploy/power-profiles.toml is valid")
    }

    /// A complete catalogue from TOML text: every class and every field required.
    pub fn parse(toml_text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = toml::from_str(toml_text)?;
        let mut cat = Catalogue {
            classes: BTreeMap::new(),
            models: HashMap::new(),
        };
        for class in DeviceClass::ALL {
            let partial = file.classes.get(&class).cloned().unwrap_or_default();
            let profile = partial.complete(&format!("class `{class}`"))?;
            cat.classes.insert(class, profile);
        }
        cat.add_models(file.models)?;
        Ok(cat)
    }

    /// This catalogue extended by a user file of the same layout, in which every
    /// section and field is optional: a class entry overrides only the fields it gives;
    /// a `[[models]]` entry (all four fields required) adds a model or replaces one
    /// with the same manufacturer + model.
    pub fn with_overrides(&self, user_toml: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = toml::from_str(user_toml)?;
        let mut cat = self.clone();
        for (class, partial) in file.classes {
            let name = format!("class `{class}`");
            let base = &cat.classes[&class];
            let merged = PartialProfile {
                p_off_w: partial.p_off_w.or_else(|| Some(base.p_off_w.clone())),
                p_sleep_w: partial.p_sleep_w.or_else(|| Some(base.p_sleep_w.clone())),
                p_idle_w: partial.p_idle_w.or_else(|| Some(base.p_idle_w.clone())),
                p_max_w: partial.p_max_w.or_else(|| Some(base.p_max_w.clone())),
            };
            cat.classes.insert(class, merged.complete(&name)?);
        }
        cat.add_models(file.models)?;
        Ok(cat)
    }

    /// The profile to use for a device, and which entry it came from: the model's own
    /// profile if the catalogue has one (manufacturer and model compared ignoring case
    /// and surrounding spaces), else the class default; an unknown class gets the
    /// `unknown` profile, flagged as [`ProfileOrigin::UnknownClassFallback`].
    pub fn profile_for(
        &self,
        class: DeviceClass,
        manufacturer: &str,
        model: &str,
    ) -> (&PowerProfile, ProfileOrigin) {
        if let Some(key) = model_key(manufacturer, model)
            && let Some(p) = self.models.get(&key)
        {
            return (p, ProfileOrigin::Model);
        }
        let origin = if class == DeviceClass::Unknown {
            ProfileOrigin::UnknownClassFallback
        } else {
            ProfileOrigin::ClassDefault(class)
        };
        (&self.classes[&class], origin)
    }

    /// The default profile of a class.
    pub fn class_profile(&self, class: DeviceClass) -> &PowerProfile {
        &self.classes[&class]
    }

    fn add_models(&mut self, models: Vec<ModelEntry>) -> Result<(), CatalogueError> {
        for (index, m) in models.into_iter().enumerate() {
            let key = model_key(&m.manufacturer, &m.model)
                .ok_or(CatalogueError::EmptyModelKey { index })?;
            let name = format!("model `{} {}`", m.manufacturer.trim(), m.model.trim());
            let profile = PartialProfile {
                p_off_w: m.p_off_w,
                p_sleep_w: m.p_sleep_w,
                p_idle_w: m.p_idle_w,
                p_max_w: m.p_max_w,
            }
            .complete(&name)?;
            self.models.insert(key, profile);
        }
        Ok(())
    }
}

fn model_key(manufacturer: &str, model: &str) -> Option<(String, String)> {
    let (ma, mo) = (manufacturer.trim(), model.trim());
    if ma.is_empty() || mo.is_empty() {
        return None;
    }
    Some((ma.to_lowercase(), mo.to_lowercase()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    classes: BTreeMap<DeviceClass, PartialProfile>,
    #[serde(default)]
    models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialProfile {
    p_off_w: Option<Figure>,
    p_sleep_w: Option<Figure>,
    p_idle_w: Option<Figure>,
    p_max_w: Option<Figure>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    manufacturer: String,
    model: String,
    p_off_w: Option<Figure>,
    p_sleep_w: Option<Figure>,
    p_idle_w: Option<Figure>,
    p_max_w: Option<Figure>,
}

impl PartialProfile {
    /// Checks presence and values; `profile` names the entry in errors.
    fn complete(self, profile: &str) -> Result<PowerProfile, CatalogueError> {
        let get = |f: Option<Figure>, field: &'static str| -> Result<Figure, CatalogueError> {
            let fig = f.ok_or_else(|| CatalogueError::Missing {
                profile: profile.to_owned(),
                field,
            })?;
            if !fig.value.is_finite() || fig.value < 0.0 {
                return Err(CatalogueError::Invalid {
                    profile: profile.to_owned(),
                    field,
                    value: fig.value,
                    reason: "must be a finite number of watts ≥ 0".to_owned(),
                });
            }
            if fig.source.trim().is_empty() {
                return Err(CatalogueError::NoSource {
                    profile: profile.to_owned(),
                    field,
                });
            }
            Ok(fig)
        };
        let p = PowerProfile {
            p_off_w: get(self.p_off_w, "p_off_w")?,
            p_sleep_w: get(self.p_sleep_w, "p_sleep_w")?,
            p_idle_w: get(self.p_idle_w, "p_idle_w")?,
            p_max_w: get(self.p_max_w, "p_max_w")?,
        };
        if p.p_idle_w.value > p.p_max_w.value {
            return Err(CatalogueError::Invalid {
                profile: profile.to_owned(),
                field: "p_idle_w",
                value: p.p_idle_w.value,
                reason: format!("greater than p_max_w = {}", p.p_max_w.value),
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalogue_is_valid_and_complete() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE_TOML).unwrap();
        for class in DeviceClass::ALL {
            let p = cat.class_profile(class);
            for f in [&p.p_off_w, &p.p_sleep_w, &p.p_idle_w, &p.p_max_w] {
                assert!(!f.source.is_empty(), "{class}");
            }
        }
        let d = cat.class_profile(DeviceClass::Desktop);
        assert_eq!((d.p_idle_w.value, d.p_max_w.value), (39.0, 175.0));
        assert!(d.p_idle_w.source.contains("ENERGY STAR"));
        // Figures with no published source say so.
        assert!(
            cat.class_profile(DeviceClass::Workstation)
                .p_max_w
                .source
                .starts_with("assumption")
        );
    }

    #[test]
    fn every_chassis_class_on_the_wire_maps_to_a_profile() {
        let cat = Catalogue::builtin();
        for wire in 0..=8 {
            let class = DeviceClass::from_wire(wire);
            let (_, origin) = cat.profile_for(class, "", "");
            assert_eq!(origin.is_fallback(), wire == 0, "chassis {wire}");
        }
        assert_eq!(DeviceClass::from_wire(99), DeviceClass::Unknown);
        assert_eq!(DeviceClass::from_wire(4), DeviceClass::ThinClient);
    }

    #[test]
    fn unknown_class_falls_back_and_is_flagged() {
        let cat = Catalogue::builtin();
        let (p, origin) = cat.profile_for(DeviceClass::Unknown, "Acme", "X1");
        assert_eq!(origin, ProfileOrigin::UnknownClassFallback);
        assert!(origin.is_fallback());
        assert!(p.p_idle_w.source.starts_with("fallback"));
        let (_, origin) = cat.profile_for(DeviceClass::Laptop, "Acme", "X1");
        assert_eq!(origin, ProfileOrigin::ClassDefault(DeviceClass::Laptop));
        assert!(!origin.is_fallback());
    }

    #[test]
    fn overrides_take_precedence_model_over_class() {
        let user = r#"
            [classes.desktop]
            p_idle_w = { value = 25.0, source = "our own meter, 2024" }

            [[models]]
            manufacturer = "Dell Inc."
            model = "OptiPlex 7090"
            p_off_w = { value = 0.3, source = "Dell sheet" }
            p_sleep_w = { value = 1.0, source = "Dell sheet" }
            p_idle_w = { value = 12.0, source = "Dell sheet" }
            p_max_w = { value = 90.0, source = "Dell sheet" }
        "#;
        let base = Catalogue::builtin();
        let cat = base.with_overrides(user).unwrap();

        // Class override replaces only the field it names.
        let (p, origin) = cat.profile_for(DeviceClass::Desktop, "HP", "EliteDesk");
        assert_eq!(origin, ProfileOrigin::ClassDefault(DeviceClass::Desktop));
        assert_eq!(p.p_idle_w.value, 25.0);
        assert_eq!(p.p_idle_w.source, "our own meter, 2024");
        assert_eq!(p.p_max_w.value, 175.0);

        // Model beats class, matched ignoring case and spaces, whatever the class.
        let (p, origin) = cat.profile_for(DeviceClass::Desktop, " DELL INC. ", "optiplex 7090");
        assert_eq!(origin, ProfileOrigin::Model);
        assert_eq!(p.p_idle_w.value, 12.0);
        let (_, origin) = cat.profile_for(DeviceClass::Unknown, "Dell Inc.", "OptiPlex 7090");
        assert_eq!(origin, ProfileOrigin::Model);

        // A later override replaces the model entry.
        let again = r#"
            [[models]]
            manufacturer = "dell inc."
            model = "optiplex 7090"
            p_off_w = { value = 0.3, source = "x" }
            p_sleep_w = { value = 1.0, source = "x" }
            p_idle_w = { value = 14.0, source = "x" }
            p_max_w = { value = 90.0, source = "x" }
        "#;
        let cat2 = cat.with_overrides(again).unwrap();
        assert_eq!(
            cat2.profile_for(DeviceClass::Desktop, "Dell Inc.", "OptiPlex 7090")
                .0
                .p_idle_w
                .value,
            14.0
        );

        // The base is untouched.
        assert_eq!(
            base.profile_for(DeviceClass::Desktop, "Dell Inc.", "OptiPlex 7090")
                .1,
            ProfileOrigin::ClassDefault(DeviceClass::Desktop)
        );
    }

    #[test]
    fn invalid_values_are_refused_naming_class_and_field() {
        let base = Catalogue::builtin();
        let cases = [
            (
                "[classes.laptop]\np_sleep_w = { value = -1.0, source = \"x\" }",
                "class `laptop`",
                "p_sleep_w",
            ),
            (
                "[classes.server]\np_off_w = { value = nan, source = \"x\" }",
                "class `server`",
                "p_off_w",
            ),
            (
                "[classes.tablet]\np_max_w = { value = inf, source = \"x\" }",
                "class `tablet`",
                "p_max_w",
            ),
            // Idle above max (max stays 175 from the default).
            (
                "[classes.desktop]\np_idle_w = { value = 200.0, source = \"x\" }",
                "class `desktop`",
                "p_idle_w",
            ),
        ];
        for (toml_text, profile, field) in cases {
            let err = base.with_overrides(toml_text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(profile) && msg.contains(field), "{msg}");
        }
        let err = base
            .with_overrides("[classes.desktop]\np_idle_w = { value = 200.0, source = \"x\" }")
            .unwrap_err();
        assert!(
            err.to_string().contains("greater than p_max_w = 175"),
            "{err}"
        );
    }

    #[test]
    fn incomplete_or_unknown_entries_are_refused() {
        let base = Catalogue::builtin();
        // A model needs all four fields.
        let err = base
            .with_overrides(
                "[[models]]\nmanufacturer = \"A\"\nmodel = \"B\"\np_idle_w = { value = 1.0, source = \"x\" }",
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                CatalogueError::Missing {
                    field: "p_off_w",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("model `A B`"), "{err}");
        // Unknown class names and unknown keys are typos, not silently ignored.
        assert!(matches!(
            base.with_overrides("[classes.desktp]\n").unwrap_err(),
            CatalogueError::Parse(_)
        ));
        assert!(matches!(
            base.with_overrides("[classes.desktop]\np_idle = { value = 1.0, source = \"x\" }")
                .unwrap_err(),
            CatalogueError::Parse(_)
        ));
        // A figure with no source.
        assert!(matches!(
            base.with_overrides("[classes.desktop]\np_idle_w = { value = 1.0, source = \" \" }")
                .unwrap_err(),
            CatalogueError::NoSource {
                field: "p_idle_w",
                ..
            }
        ));
        // A full catalogue must give every class.
        assert!(matches!(
            Catalogue::parse("").unwrap_err(),
            CatalogueError::Missing { .. }
        ));
        // Empty model key.
        let err = base
            .with_overrides(
                "[[models]]\nmanufacturer = \" \"\nmodel = \"B\"\np_off_w = { value = 1.0, source = \"x\" }\np_sleep_w = { value = 1.0, source = \"x\" }\np_idle_w = { value = 1.0, source = \"x\" }\np_max_w = { value = 1.0, source = \"x\" }",
            )
            .unwrap_err();
        assert!(matches!(err, CatalogueError::EmptyModelKey { index: 0 }));
    }
}
