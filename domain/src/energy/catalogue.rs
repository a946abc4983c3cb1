//! Power profiles: how many watts a device draws in each state, per power class, with
//! per manufacturer + model entries, and the look-up that says which one a device gets
//! and why.
//!
//! Three embedded data files, every figure with its source:
//! - `deploy/power-profiles.toml`: one profile per [`PowerClass`], calibrated so that
//!   each class's yearly TEC under its ENERGY STAR duty cycle is the median that makers
//!   declare for the class (checked by `domain/tests/calibration.rs`), with a low/high
//!   range from the class's spread;
//! - `deploy/power-classes.toml`: which class a device is in ([`crate::energy::classify`]);
//! - `deploy/power-models.toml`: per-model declared TECs (Boavizta data, ODbL 1.0).
//!
//! A user file with the profiles' layout extends or overrides them
//! ([`Catalogue::with_overrides`]).
//!
//! Pure: parsing and look-ups only, no I/O.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use veille_proto::v1::ChassisClass;

use crate::energy::classify::{ClassifyError, Rules};

/// The embedded default profiles (`deploy/power-profiles.toml`).
pub const DEFAULT_CATALOGUE_TOML: &str = include_str!("../../../deploy/power-profiles.toml");

/// The embedded per-model catalogue (`deploy/power-models.toml`), derived from
/// Boavizta's environmental-footprint-data under the Open Database License 1.0.
pub const DEFAULT_MODELS_TOML: &str = include_str!("../../../deploy/power-models.toml");

/// What kind of device the inventory says it is: the chassis classes on the wire, plus
/// displays, plus the fallback for an unknown chassis. Finer cuts are [`PowerClass`].
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
    /// Every class.
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

    /// The key used in files and reports.
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

    /// From [`DeviceClass::as_str`]'s names (a CLI's `--class`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// From `Inventory.chassis` as it is on the wire; an out-of-range value (a newer
    /// agent) is [`DeviceClass::Unknown`].
    pub fn from_wire(chassis: i32) -> Self {
        ChassisClass::try_from(chassis).map_or(DeviceClass::Unknown, Self::from)
    }

    /// `Inventory.chassis_type` as it is on the wire: `None` for 0 (the agent read no
    /// code, or an agent older than the field) and for anything past
    /// [`veille_proto::defaults::MAX_CHASSIS_TYPE`] (validation refuses those).
    pub fn chassis_code_from_wire(code: u32) -> Option<u8> {
        u8::try_from(code)
            .ok()
            .filter(|c| (1..=veille_proto::defaults::MAX_CHASSIS_TYPE).contains(c))
    }

    /// The power class of a device about which nothing finer is known.
    pub fn default_power_class(self) -> PowerClass {
        match self {
            DeviceClass::Desktop => PowerClass::Desktop,
            DeviceClass::Laptop => PowerClass::Laptop,
            DeviceClass::AllInOne => PowerClass::AllInOne,
            DeviceClass::ThinClient => PowerClass::ThinClient,
            DeviceClass::Workstation => PowerClass::Workstation,
            DeviceClass::Server => PowerClass::Server,
            DeviceClass::MiniPc => PowerClass::MiniPc,
            DeviceClass::Tablet => PowerClass::Tablet,
            DeviceClass::Monitor => PowerClass::Monitor,
            DeviceClass::Unknown => PowerClass::Unknown,
        }
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

/// The class a power profile is kept for: a [`DeviceClass`] cut finer where makers'
/// declared consumption says the cut matters (a micro desktop draws a third of a tower;
/// a 5000-series Precision five times a 3000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerClass {
    /// A desktop of unknown form factor.
    Desktop,
    DesktopTower,
    DesktopSff,
    /// Micro, ultra, tiny, mini PCs.
    MiniPc,
    AllInOne,
    ThinClient,
    /// A desktop workstation of unknown tier.
    Workstation,
    /// Single desktop-class CPU (Dell Precision 3xxx, HP Z2, ThinkStation P3xx).
    WorkstationEntry,
    /// Xeon W / dual socket (Precision 5xxx–7xxx towers, HP Z6/Z8, ThinkStation P7xx+).
    WorkstationHigh,
    Laptop,
    /// Convertible and detachable notebooks.
    Convertible,
    MobileWorkstation,
    Tablet,
    /// A server of unknown socket count (two-socket figures).
    Server,
    #[serde(rename = "server_1s")]
    Server1s,
    #[serde(rename = "server_2s")]
    Server2s,
    /// A display of unknown size (the 21.5–25" band).
    Monitor,
    MonitorSmall,
    #[serde(rename = "monitor_27")]
    Monitor27,
    MonitorLarge,
    Unknown,
}

impl PowerClass {
    /// Every class; the default catalogue must have a profile for each.
    pub const ALL: [PowerClass; 21] = [
        PowerClass::Desktop,
        PowerClass::DesktopTower,
        PowerClass::DesktopSff,
        PowerClass::MiniPc,
        PowerClass::AllInOne,
        PowerClass::ThinClient,
        PowerClass::Workstation,
        PowerClass::WorkstationEntry,
        PowerClass::WorkstationHigh,
        PowerClass::Laptop,
        PowerClass::Convertible,
        PowerClass::MobileWorkstation,
        PowerClass::Tablet,
        PowerClass::Server,
        PowerClass::Server1s,
        PowerClass::Server2s,
        PowerClass::Monitor,
        PowerClass::MonitorSmall,
        PowerClass::Monitor27,
        PowerClass::MonitorLarge,
        PowerClass::Unknown,
    ];

    /// The key used in the catalogue files.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerClass::Desktop => "desktop",
            PowerClass::DesktopTower => "desktop_tower",
            PowerClass::DesktopSff => "desktop_sff",
            PowerClass::MiniPc => "mini_pc",
            PowerClass::AllInOne => "all_in_one",
            PowerClass::ThinClient => "thin_client",
            PowerClass::Workstation => "workstation",
            PowerClass::WorkstationEntry => "workstation_entry",
            PowerClass::WorkstationHigh => "workstation_high",
            PowerClass::Laptop => "laptop",
            PowerClass::Convertible => "convertible",
            PowerClass::MobileWorkstation => "mobile_workstation",
            PowerClass::Tablet => "tablet",
            PowerClass::Server => "server",
            PowerClass::Server1s => "server_1s",
            PowerClass::Server2s => "server_2s",
            PowerClass::Monitor => "monitor",
            PowerClass::MonitorSmall => "monitor_small",
            PowerClass::Monitor27 => "monitor_27",
            PowerClass::MonitorLarge => "monitor_large",
            PowerClass::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The chassis class a device of this power class reports (or would).
    pub fn device_class(self) -> DeviceClass {
        match self {
            PowerClass::Desktop
            | PowerClass::DesktopTower
            | PowerClass::DesktopSff
            | PowerClass::Workstation
            | PowerClass::WorkstationEntry
            | PowerClass::WorkstationHigh => DeviceClass::Desktop,
            PowerClass::MiniPc => DeviceClass::MiniPc,
            PowerClass::AllInOne => DeviceClass::AllInOne,
            PowerClass::ThinClient => DeviceClass::ThinClient,
            PowerClass::Laptop | PowerClass::Convertible | PowerClass::MobileWorkstation => {
                DeviceClass::Laptop
            }
            PowerClass::Tablet => DeviceClass::Tablet,
            PowerClass::Server | PowerClass::Server1s | PowerClass::Server2s => DeviceClass::Server,
            PowerClass::Monitor
            | PowerClass::MonitorSmall
            | PowerClass::Monitor27
            | PowerClass::MonitorLarge => DeviceClass::Monitor,
            PowerClass::Unknown => DeviceClass::Unknown,
        }
    }
}

impl fmt::Display for PowerClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ENERGY STAR duty cycle that turns a profile into a yearly TEC (ENERGY-DATA.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// v6/v7 desktop and integrated desktop: off 45 %, sleep 5 %, long + short idle 50 %.
    #[default]
    Desktop,
    /// Notebook: off 25 %, sleep 35 %, long + short idle 40 %.
    Notebook,
    /// Display: on 35 %, sleep 65 %.
    Display,
    /// Servers: idle all year (no ENERGY STAR client cycle applies).
    AlwaysOn,
}

impl Duty {
    /// Shares of the year (off, sleep, idle or on).
    pub fn shares(self) -> (f64, f64, f64) {
        match self {
            Duty::Desktop => (0.45, 0.05, 0.50),
            Duty::Notebook => (0.25, 0.35, 0.40),
            Duty::Display => (0.0, 0.65, 0.35),
            Duty::AlwaysOn => (0.0, 0.0, 1.0),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Duty::Desktop => "desktop",
            Duty::Notebook => "notebook",
            Duty::Display => "display",
            Duty::AlwaysOn => "always_on",
        }
    }
}

/// One power figure and where it comes from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// Watts.
    pub value: f64,
    /// The publication, database or datasheet; `assumption: …` when there is none.
    pub source: String,
}

/// The plausible span of a profile's energy, as factors on it (low ≤ 1 ≤ high): a
/// modelled kWh figure `e` is reported as `[low·e, high·e]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub low: f64,
    pub high: f64,
    pub source: String,
}

/// Power per state of one kind of device, in watts (validated: finite, ≥ 0,
/// `p_idle_w ≤ p_max_w`), with the duty cycle that gives its TEC and its range.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerProfile {
    /// Soft-off with the plug in.
    pub p_off_w: Figure,
    /// Suspended or hibernated.
    pub p_sleep_w: Figure,
    /// Awake at zero CPU utilisation (a display: on).
    pub p_idle_w: Figure,
    /// Awake at full CPU utilisation.
    pub p_max_w: Figure,
    pub duty: Duty,
    pub range: Range,
}

impl PowerProfile {
    /// Yearly TEC under the profile's duty cycle, kWh:
    /// 8760/1000 × (P_off·T_off + P_sleep·T_sleep + P_idle·T_idle).
    pub fn tec_kwh(&self) -> f64 {
        let (off, sleep, idle) = self.duty.shares();
        8.76 * (self.p_off_w.value * off
            + self.p_sleep_w.value * sleep
            + self.p_idle_w.value * idle)
    }

    /// `(low, high)` of the TEC.
    pub fn tec_range_kwh(&self) -> (f64, f64) {
        let t = self.tec_kwh();
        (t * self.range.low, t * self.range.high)
    }

    /// This profile with every power × `k`: the same shape, another level.
    fn scaled(&self, k: f64, why: &str, range: Range) -> PowerProfile {
        let f = |x: &Figure| Figure {
            value: x.value * k,
            source: why.to_owned(),
        };
        PowerProfile {
            p_off_w: f(&self.p_off_w),
            p_sleep_w: f(&self.p_sleep_w),
            p_idle_w: f(&self.p_idle_w),
            p_max_w: f(&self.p_max_w),
            duty: self.duty,
            range,
        }
    }
}

/// Which entry of the catalogue a look-up used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileOrigin {
    /// A profile for this manufacturer + model.
    Model,
    /// A model-family rule (`deploy/power-classes.toml`) chose the class.
    FamilyRule(PowerClass),
    /// The SMBIOS chassis type code chose the class.
    ChassisCode(PowerClass),
    /// A display's diagonal chose the class.
    MonitorSize(PowerClass),
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

    /// For reports: "model entry", "model-family rule", …
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileOrigin::Model => "model entry",
            ProfileOrigin::FamilyRule(_) => "model-family rule",
            ProfileOrigin::ChassisCode(_) => "chassis code",
            ProfileOrigin::MonitorSize(_) => "display size",
            ProfileOrigin::ClassDefault(_) => "class default",
            ProfileOrigin::UnknownClassFallback => "fallback",
        }
    }
}

/// What a look-up knows of a device.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// The chassis class from the inventory.
    pub class: DeviceClass,
    /// The SMBIOS chassis type code, when known (finer than the class).
    pub chassis_code: Option<u8>,
    pub manufacturer: &'a str,
    pub model: &'a str,
    /// A display's diagonal, inches.
    pub screen_in: Option<f64>,
}

/// The profile a device gets, and why.
#[derive(Debug, Clone)]
pub struct Lookup<'c> {
    pub profile: &'c PowerProfile,
    pub class: PowerClass,
    pub origin: ProfileOrigin,
    /// For a person: which entry or rule matched, and its source.
    pub why: String,
    /// The per-model entry's maker and model as its file names them.
    pub model_entry: Option<(&'c str, &'c str)>,
}

impl Lookup<'_> {
    /// What `catalogue lookup` shows: the class, how it matched, the powers with their
    /// sources, and the yearly TEC under the profile's duty cycle with its range.
    pub fn report(&self, q: &Query<'_>) -> LookupReport {
        let (low, high) = self.profile.tec_range_kwh();
        LookupReport {
            manufacturer: q.manufacturer.to_owned(),
            model: q.model.to_owned(),
            chassis_class: q.class.as_str(),
            chassis_code: q.chassis_code,
            screen_in: q.screen_in,
            class: self.class.as_str(),
            matched: self.origin.as_str(),
            why: self.why.clone(),
            model_entry: self.model_entry.map(|(m, n)| format!("{m} {n}")),
            duty: self.profile.duty.as_str(),
            p_off_w: self.profile.p_off_w.clone(),
            p_sleep_w: self.profile.p_sleep_w.clone(),
            p_idle_w: self.profile.p_idle_w.clone(),
            p_max_w: self.profile.p_max_w.clone(),
            tec_kwh: self.profile.tec_kwh(),
            tec_low_kwh: low,
            tec_high_kwh: high,
            range_source: self.profile.range.source.clone(),
        }
    }
}

/// A look-up as `catalogue lookup` prints it (JSON field names are a contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookupReport {
    pub manufacturer: String,
    pub model: String,
    pub chassis_class: &'static str,
    pub chassis_code: Option<u8>,
    pub screen_in: Option<f64>,
    /// The power class chosen.
    pub class: &'static str,
    /// "model entry", "model-family rule", "chassis code", "display size",
    /// "class default" or "fallback".
    pub matched: &'static str,
    pub why: String,
    pub model_entry: Option<String>,
    pub duty: &'static str,
    pub p_off_w: Figure,
    pub p_sleep_w: Figure,
    pub p_idle_w: Figure,
    pub p_max_w: Figure,
    /// Yearly TEC under the profile's ENERGY STAR duty cycle, and its range.
    pub tec_kwh: f64,
    pub tec_low_kwh: f64,
    pub tec_high_kwh: f64,
    pub range_source: String,
}

impl LookupReport {
    /// Plain text for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!(
            "device   {} {} (chassis {}{}{})\nclass    {}\nmatched  {}: {}\n",
            self.manufacturer,
            self.model,
            self.chassis_class,
            self.chassis_code
                .map(|c| format!(", SMBIOS type {c}"))
                .unwrap_or_default(),
            self.screen_in
                .map(|s| format!(", {s:.1} in"))
                .unwrap_or_default(),
            self.class,
            self.matched,
            self.why
        );
        for (name, f) in [
            ("off", &self.p_off_w),
            ("sleep", &self.p_sleep_w),
            ("idle", &self.p_idle_w),
            ("max", &self.p_max_w),
        ] {
            out.push_str(&format!("{name:<8} {:>8.2} W  {}\n", f.value, f.source));
        }
        out.push_str(&format!(
            "TEC      {:.1} kWh/yr ({} duty cycle), range {:.1}–{:.1} ({})\n",
            self.tec_kwh, self.duty, self.tec_low_kwh, self.tec_high_kwh, self.range_source
        ));
        out
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
    #[error(
        "power-profile catalogue: models[{index}] ({name}): give either the four figures or `class` + `tec_kwh` + `source`"
    )]
    ModelShape { index: usize, name: String },
    #[error("{0}")]
    Classes(#[from] ClassifyError),
}

#[derive(Debug, Clone)]
struct ModelProfile {
    manufacturer: String,
    model: String,
    class: PowerClass,
    profile: PowerProfile,
}

/// The catalogue: one profile per [`PowerClass`], per-model profiles, and the rules
/// that pick a class.
#[derive(Debug, Clone)]
pub struct Catalogue {
    classes: BTreeMap<PowerClass, PowerProfile>,
    /// Keyed by [`Rules::model_key`].
    models: HashMap<String, ModelProfile>,
    rules: Rules,
}

/// Form-factor words (after normalisation): a device whose model name lacks them
/// ("OptiPlex 7090", as Dell's SMBIOS says) can still match the catalogue's "OptiPlex
/// 7090 Micro" when its class says micro.
const FORM_WORDS: [&str; 4] = ["tower", "sff", "micro", "aio"];

fn without_form_words(key: &str) -> String {
    key.split(' ')
        .filter(|w| !FORM_WORDS.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A model entry is taken as one configuration of its model (Boavizta's README: each
/// sheet describes one): its range is this assumption, not its class's spread.
fn model_range() -> Range {
    Range {
        low: 0.9,
        high: 1.1,
        source: "assumption: ±10 % for other configurations of the model (a maker's sheet describes one configuration)".to_owned(),
    }
}

impl Catalogue {
    /// The embedded defaults: profiles, class rules and the per-model catalogue.
    ///
    /// # Panics
    /// Never in a released binary: the embedded files are checked by a unit test, so a
    /// broken default fails the build's tests, not a running collector.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_CATALOGUE_TOML)
            .and_then(|c| c.with_overrides(DEFAULT_MODELS_TOML))
            .expect("embedded deploy/power-profiles.toml and power-models.toml are valid")
    }

    /// A complete catalogue from TOML text (every class and every field required), the
    /// embedded class rules, no per-model entry but the file's own.
    pub fn parse(toml_text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = toml::from_str(toml_text)?;
        let mut cat = Catalogue {
            classes: BTreeMap::new(),
            models: HashMap::new(),
            rules: Rules::builtin(),
        };
        for class in PowerClass::ALL {
            let partial = file.classes.get(&class).cloned().unwrap_or_default();
            let profile = partial.complete(&format!("class `{class}`"))?;
            cat.classes.insert(class, profile);
        }
        cat.add_models(file.models)?;
        Ok(cat)
    }

    /// This catalogue extended by a file of the same layout, in which every section and
    /// field is optional: a class entry overrides only the fields it gives; a
    /// `[[models]]` entry adds a model or replaces one with the same normalised
    /// manufacturer + model.
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
                duty: partial.duty.or(Some(base.duty)),
                range: partial.range.or_else(|| Some(base.range.clone())),
            };
            cat.classes.insert(class, merged.complete(&name)?);
        }
        cat.add_models(file.models)?;
        Ok(cat)
    }

    /// This catalogue without its per-model entries: what the class rules alone give
    /// (the calibration test measures them so).
    pub fn classes_only(&self) -> Self {
        Self {
            models: HashMap::new(),
            ..self.clone()
        }
    }

    /// Number of per-model entries.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    /// The class rules in use.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The profile a device gets, how it was chosen, and why. In order: a per-model
    /// entry (exact normalised name; or the same name without its form-factor word
    /// when the class the rules give picks one variant), a model-family rule, the
    /// SMBIOS chassis code, a display's diagonal, the chassis class's default, and the
    /// `unknown` profile, flagged as a fallback.
    pub fn lookup(&self, q: &Query<'_>) -> Lookup<'_> {
        let class_decision = self
            .rules
            .family(q.class, q.manufacturer, q.model)
            .map(|d| (d.class, ProfileOrigin::FamilyRule(d.class), d.why))
            .or_else(|| {
                q.chassis_code
                    .and_then(|c| self.rules.chassis(c))
                    .map(|d| (d.class, ProfileOrigin::ChassisCode(d.class), d.why))
            })
            .or_else(|| {
                (q.class == DeviceClass::Monitor)
                    .then_some(q.screen_in)
                    .flatten()
                    .and_then(|s| self.rules.monitor_band(s))
                    .map(|d| (d.class, ProfileOrigin::MonitorSize(d.class), d.why))
            });
        if let Some(key) = self.rules.model_key(q.manufacturer, q.model) {
            if let Some(m) = self.models.get(&key) {
                return self.model_lookup(m, format!("model entry \"{key}\""));
            }
            if let Some((class, _, why)) = &class_decision {
                let bare = without_form_words(&key);
                let mut candidates = self
                    .models
                    .iter()
                    .filter(|(k, m)| without_form_words(k) == bare && m.class == *class);
                if let (Some((k, m)), None) = (candidates.next(), candidates.next()) {
                    return self.model_lookup(
                        m,
                        format!("model entry \"{k}\", the {class} variant of \"{key}\" ({why})"),
                    );
                }
            }
        }
        match class_decision {
            Some((class, origin, why)) => Lookup {
                profile: &self.classes[&class],
                class,
                origin,
                why,
                model_entry: None,
            },
            None => {
                let class = q.class.default_power_class();
                let (origin, why) = if q.class == DeviceClass::Unknown {
                    (
                        ProfileOrigin::UnknownClassFallback,
                        "chassis class unknown: fallback profile".to_owned(),
                    )
                } else {
                    (
                        ProfileOrigin::ClassDefault(q.class),
                        format!("chassis class {}: its default profile", q.class),
                    )
                };
                Lookup {
                    profile: &self.classes[&class],
                    class,
                    origin,
                    why,
                    model_entry: None,
                }
            }
        }
    }

    fn model_lookup<'c>(&'c self, m: &'c ModelProfile, why: String) -> Lookup<'c> {
        Lookup {
            profile: &m.profile,
            class: m.class,
            origin: ProfileOrigin::Model,
            why,
            model_entry: Some((&m.manufacturer, &m.model)),
        }
    }

    /// [`Catalogue::lookup`] with what the inventory carries on the wire: the chassis
    /// class, the SMBIOS chassis code when the agent read one, maker and model.
    pub fn profile_for(
        &self,
        class: DeviceClass,
        chassis_code: Option<u8>,
        manufacturer: &str,
        model: &str,
    ) -> (&PowerProfile, ProfileOrigin) {
        let l = self.lookup(&Query {
            class,
            chassis_code,
            manufacturer,
            model,
            ..Query::default()
        });
        (l.profile, l.origin)
    }

    /// The default profile of a chassis class.
    pub fn class_profile(&self, class: DeviceClass) -> &PowerProfile {
        &self.classes[&class.default_power_class()]
    }

    /// The profile of a power class.
    pub fn power_class_profile(&self, class: PowerClass) -> &PowerProfile {
        &self.classes[&class]
    }

    fn add_models(&mut self, models: Vec<ModelEntry>) -> Result<(), CatalogueError> {
        for (index, m) in models.into_iter().enumerate() {
            let key = self
                .rules
                .model_key(&m.manufacturer, &m.model)
                .ok_or(CatalogueError::EmptyModelKey { index })?;
            let name = format!("model `{} {}`", m.manufacturer.trim(), m.model.trim());
            let (class, profile) = match (m.class, m.tec_kwh, m.source) {
                (Some(class), Some(tec), Some(source))
                    if m.p_off_w.is_none()
                        && m.p_sleep_w.is_none()
                        && m.p_idle_w.is_none()
                        && m.p_max_w.is_none() =>
                {
                    if !(tec.is_finite() && tec > 0.0) {
                        return Err(CatalogueError::Invalid {
                            profile: name,
                            field: "tec_kwh",
                            value: tec,
                            reason: "must be a finite number of kWh/yr > 0".to_owned(),
                        });
                    }
                    if source.trim().is_empty() {
                        return Err(CatalogueError::NoSource {
                            profile: name,
                            field: "tec_kwh",
                        });
                    }
                    let base = &self.classes[&class];
                    let k = tec / base.tec_kwh();
                    let why = format!(
                        "{class} profile scaled ×{k:.3} to the model's declared TEC {tec} kWh/yr ({source})"
                    );
                    (class, base.scaled(k, &why, model_range()))
                }
                (class, None, None) => {
                    let class = class.unwrap_or(PowerClass::Unknown);
                    let profile = PartialProfile {
                        p_off_w: m.p_off_w,
                        p_sleep_w: m.p_sleep_w,
                        p_idle_w: m.p_idle_w,
                        p_max_w: m.p_max_w,
                        duty: Some(self.classes[&class].duty),
                        range: Some(model_range()),
                    }
                    .complete(&name)?;
                    (class, profile)
                }
                _ => {
                    return Err(CatalogueError::ModelShape {
                        index,
                        name: name.trim_start_matches("model ").to_owned(),
                    });
                }
            };
            self.models.insert(
                key,
                ModelProfile {
                    manufacturer: m.manufacturer.trim().to_owned(),
                    model: m.model.trim().to_owned(),
                    class,
                    profile,
                },
            );
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    /// Licence and attribution of a data file (kept with it, not used here).
    #[serde(default)]
    #[allow(dead_code)]
    meta: Option<toml::Table>,
    #[serde(default)]
    classes: BTreeMap<PowerClass, PartialProfile>,
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
    duty: Option<Duty>,
    range: Option<Range>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    manufacturer: String,
    model: String,
    class: Option<PowerClass>,
    tec_kwh: Option<f64>,
    source: Option<String>,
    /// A display's diagonal as its sheet gives it (informative).
    #[serde(default)]
    #[allow(dead_code)]
    screen_in: Option<f64>,
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
        let range = self.range.ok_or_else(|| CatalogueError::Missing {
            profile: profile.to_owned(),
            field: "range",
        })?;
        if !(range.low.is_finite() && range.high.is_finite())
            || range.low < 0.0
            || range.low > 1.0
            || range.high < 1.0
        {
            return Err(CatalogueError::Invalid {
                profile: profile.to_owned(),
                field: "range",
                value: if range.low > 1.0 || range.low < 0.0 {
                    range.low
                } else {
                    range.high
                },
                reason: "needs 0 ≤ low ≤ 1 ≤ high".to_owned(),
            });
        }
        if range.source.trim().is_empty() {
            return Err(CatalogueError::NoSource {
                profile: profile.to_owned(),
                field: "range",
            });
        }
        let p = PowerProfile {
            p_off_w: get(self.p_off_w, "p_off_w")?,
            p_sleep_w: get(self.p_sleep_w, "p_sleep_w")?,
            p_idle_w: get(self.p_idle_w, "p_idle_w")?,
            p_max_w: get(self.p_max_w, "p_max_w")?,
            duty: self.duty.ok_or_else(|| CatalogueError::Missing {
                profile: profile.to_owned(),
                field: "duty",
            })?,
            range,
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
        for class in PowerClass::ALL {
            assert!(
                !cat.power_class_profile(class).range.source.is_empty(),
                "{class}"
            );
        }
        let d = cat.class_profile(DeviceClass::Desktop);
        assert!(
            d.p_idle_w.source.starts_with("calibrated"),
            "{}",
            d.p_idle_w.source
        );
        assert_eq!(d.duty, Duty::Desktop);
        assert_eq!(cat.class_profile(DeviceClass::Laptop).duty, Duty::Notebook);
        assert_eq!(cat.class_profile(DeviceClass::Monitor).duty, Duty::Display);
        // Figures with no published source say so.
        assert!(
            cat.class_profile(DeviceClass::Workstation)
                .p_max_w
                .source
                .starts_with("assumption")
        );
    }

    fn look(
        cat: &Catalogue,
        class: DeviceClass,
        maker: &str,
        model: &str,
    ) -> (PowerClass, ProfileOrigin, String) {
        let l = cat.lookup(&Query {
            class,
            manufacturer: maker,
            model,
            ..Query::default()
        });
        (l.class, l.origin, l.why)
    }

    #[test]
    fn matching_layer_says_what_matched_and_why() {
        let cat = Catalogue::builtin();
        // Aliases: the sheet says "Dell", SMBIOS "Dell Inc."; "All-in-One Desktop" is "AIO".
        let (class, origin, why) = look(
            &cat,
            DeviceClass::AllInOne,
            "Dell Inc.",
            "OptiPlex 3050 AIO",
        );
        assert_eq!(
            (class, origin),
            (PowerClass::AllInOne, ProfileOrigin::Model)
        );
        assert!(why.contains("optiplex 3050 aio"), "{why}");
        let l = cat.lookup(&Query {
            class: DeviceClass::AllInOne,
            manufacturer: "DELL",
            model: "OptiPlex 3050 AIO",
            ..Query::default()
        });
        assert!((l.profile.tec_kwh() - 77.5).abs() < 1e-9);
        assert_eq!(
            l.model_entry,
            Some(("Dell", "OptiPlex 3050 All-in-One Desktop"))
        );
        // Dell's SMBIOS name lacks the form factor: the chassis code picks the variant.
        let l = cat.lookup(&Query {
            class: DeviceClass::Desktop,
            chassis_code: Some(35),
            manufacturer: "Dell Inc.",
            model: "OptiPlex 7070",
            screen_in: None,
        });
        assert_eq!(l.origin, ProfileOrigin::Model);
        assert!((l.profile.tec_kwh() - 36.18).abs() < 1e-6, "{}", l.why);
        // Without it, three variants: no model entry, the desktop default.
        let (class, origin, _) = look(&cat, DeviceClass::Desktop, "Dell Inc.", "OptiPlex 7070");
        assert_eq!(
            (class, origin),
            (
                PowerClass::Desktop,
                ProfileOrigin::ClassDefault(DeviceClass::Desktop)
            )
        );
        // A family rule for a model the catalogue lacks.
        let (class, origin, why) = look(
            &cat,
            DeviceClass::Desktop,
            "LENOVO",
            "ThinkCentre M720q (10T7S0A500)",
        );
        assert_eq!(
            (class, origin),
            (
                PowerClass::MiniPc,
                ProfileOrigin::FamilyRule(PowerClass::MiniPc)
            )
        );
        assert!(why.contains("Tiny"), "{why}");
        // Unknown model, known chassis; unknown everything.
        let (class, origin, _) = look(&cat, DeviceClass::Laptop, "Acme", "Book 1");
        assert_eq!(
            (class, origin),
            (
                PowerClass::Laptop,
                ProfileOrigin::ClassDefault(DeviceClass::Laptop)
            )
        );
        let (_, origin, _) = look(&cat, DeviceClass::Unknown, "Acme", "Box 1");
        assert!(origin.is_fallback());
        // A family rule rescues an unknown chassis.
        let (class, origin, _) = look(&cat, DeviceClass::Unknown, "Dell Inc.", "Wyse 5070");
        assert_eq!(
            (class, origin.is_fallback()),
            (PowerClass::ThinClient, false)
        );
        // Displays by diagonal.
        let l = cat.lookup(&Query {
            class: DeviceClass::Monitor,
            manufacturer: "GSM",
            model: "LG ULTRAFINE",
            screen_in: Some(27.0),
            ..Query::default()
        });
        assert_eq!(l.origin, ProfileOrigin::MonitorSize(PowerClass::Monitor27));
        // The report carries the TEC and its range.
        let q = Query {
            class: DeviceClass::Desktop,
            chassis_code: Some(7),
            manufacturer: "Acme",
            model: "T1",
            screen_in: None,
        };
        let r = cat.lookup(&q).report(&q);
        assert_eq!((r.class, r.matched), ("desktop_tower", "chassis code"));
        assert!(r.tec_low_kwh < r.tec_kwh && r.tec_kwh < r.tec_high_kwh);
        assert!((r.tec_kwh - 105.19).abs() < 0.1, "{}", r.tec_kwh);
        assert!(r.table().contains("TEC      105.2 kWh/yr"), "{}", r.table());
    }

    /// The user file adds models in either form; a half-given model is refused.
    #[test]
    fn user_models_by_declared_tec() {
        let cat = Catalogue::builtin()
            .with_overrides(
                "[[models]]\nmanufacturer = \"LENOVO\"\nmodel = \"ThinkCentre M75q Gen 2\"\nclass = \"mini_pc\"\ntec_kwh = 30.0\nsource = \"sheet\"",
            )
            .unwrap();
        let l = cat.lookup(&Query {
            class: DeviceClass::Desktop,
            manufacturer: "LENOVO",
            model: "ThinkCentre M75q Gen 2 (11JN)",
            ..Query::default()
        });
        assert_eq!(l.origin, ProfileOrigin::Model);
        assert!((l.profile.tec_kwh() - 30.0).abs() < 1e-9);
        assert!(l.profile.p_idle_w.source.contains("declared TEC 30"));
        let err = Catalogue::builtin()
            .with_overrides("[[models]]\nmanufacturer = \"A\"\nmodel = \"B\"\ntec_kwh = 30.0")
            .unwrap_err();
        assert!(
            matches!(err, CatalogueError::ModelShape { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn the_model_catalogue_keeps_its_licence() {
        assert!(DEFAULT_MODELS_TOML.contains("Open Database License (ODbL) 1.0"));
        assert!(DEFAULT_MODELS_TOML.contains("licence = \"ODbL-1.0\""));
        assert!(DEFAULT_MODELS_TOML.contains("Boavizta"));
    }

    #[test]
    fn every_chassis_class_on_the_wire_maps_to_a_profile() {
        let cat = Catalogue::builtin();
        for wire in 0..=8 {
            let class = DeviceClass::from_wire(wire);
            let (_, origin) = cat.profile_for(class, None, "", "");
            assert_eq!(origin.is_fallback(), wire == 0, "chassis {wire}");
        }
        assert_eq!(DeviceClass::from_wire(99), DeviceClass::Unknown);
        assert_eq!(DeviceClass::from_wire(4), DeviceClass::ThinClient);
    }

    #[test]
    fn unknown_class_falls_back_and_is_flagged() {
        let cat = Catalogue::builtin();
        let (p, origin) = cat.profile_for(DeviceClass::Unknown, None, "Acme", "X1");
        assert_eq!(origin, ProfileOrigin::UnknownClassFallback);
        assert!(origin.is_fallback());
        assert!(p.p_idle_w.source.starts_with("fallback"));
        let (_, origin) = cat.profile_for(DeviceClass::Laptop, None, "Acme", "X1");
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
        let (p, origin) = cat.profile_for(DeviceClass::Desktop, None, "HP", "EliteDesk");
        assert_eq!(origin, ProfileOrigin::ClassDefault(DeviceClass::Desktop));
        assert_eq!(p.p_idle_w.value, 25.0);
        assert_eq!(p.p_idle_w.source, "our own meter, 2024");
        assert_eq!(p.p_max_w, base.class_profile(DeviceClass::Desktop).p_max_w);

        // Model beats class, matched ignoring case and spaces, whatever the class.
        let (p, origin) =
            cat.profile_for(DeviceClass::Desktop, None, " DELL INC. ", "optiplex 7090");
        assert_eq!(origin, ProfileOrigin::Model);
        assert_eq!(p.p_idle_w.value, 12.0);
        let (_, origin) = cat.profile_for(DeviceClass::Unknown, None, "Dell Inc.", "OptiPlex 7090");
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
            cat2.profile_for(DeviceClass::Desktop, None, "Dell Inc.", "OptiPlex 7090")
                .0
                .p_idle_w
                .value,
            14.0
        );

        // The base is untouched.
        assert_eq!(
            base.profile_for(DeviceClass::Desktop, None, "Dell Inc.", "OptiPlex 7090")
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
            // Idle above max (max stays the default's).
            (
                "[classes.desktop]\np_idle_w = { value = 2000.0, source = \"x\" }",
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
            .with_overrides("[classes.desktop]\np_idle_w = { value = 2000.0, source = \"x\" }")
            .unwrap_err();
        assert!(err.to_string().contains("greater than p_max_w = "), "{err}");
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
