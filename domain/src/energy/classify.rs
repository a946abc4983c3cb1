//! Which power class a device falls in, from what its agent sends: maker and model
//! (SMBIOS), the chassis class, the SMBIOS chassis type code where known, a display's
//! diagonal (EDID).
//!
//! The rules are data (`deploy/power-classes.toml`, embedded), each with its source:
//! maker aliases, the model-name normalisation that makes makers' marketing names and
//! SMBIOS product names meet, Lenovo machine types, model-family rules, chassis codes
//! and display bands. A new model family is a line in that file, not a code change.
//!
//! Pure: parsing and matching only, no I/O.

use std::collections::HashMap;

use serde::Deserialize;

use crate::energy::catalogue::{DeviceClass, PowerClass};

/// The embedded rules (`deploy/power-classes.toml`).
pub const DEFAULT_CLASSES_TOML: &str = include_str!("../../../deploy/power-classes.toml");

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("power-class rules are not valid TOML for this layout: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("power-class rules: {what}[{index}]: {reason}")]
    Invalid {
        what: &'static str,
        index: usize,
        reason: String,
    },
}

/// A class decision and the rule behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub class: PowerClass,
    /// What decided, for a person: the rule's words and its source.
    pub why: String,
}

/// The parsed rules.
#[derive(Debug, Clone)]
pub struct Rules {
    makers: HashMap<String, String>,
    phrases: Vec<(Vec<String>, Vec<String>)>,
    words: HashMap<String, String>,
    drop: Vec<String>,
    machine_types: Vec<MachineType>,
    rules: Vec<Rule>,
    chassis: HashMap<u8, (PowerClass, String)>,
    bands: Vec<(f64, PowerClass, String)>,
}

#[derive(Debug, Clone)]
struct Rule {
    maker: Option<String>,
    /// Every pattern must match a word; each pattern is a list of alternatives.
    words: Vec<Vec<String>>,
    when: Option<Vec<DeviceClass>>,
    class: PowerClass,
    source: String,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineType {
    maker: String,
    prefix: String,
    model: String,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    makers: Vec<MakerEntry>,
    #[serde(default)]
    normalise: NormaliseEntry,
    #[serde(default)]
    machine_types: Vec<MachineType>,
    #[serde(default)]
    rules: Vec<RuleEntry>,
    #[serde(default)]
    chassis: Vec<ChassisEntry>,
    #[serde(default)]
    monitor_bands: Vec<BandEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MakerEntry {
    name: String,
    aliases: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormaliseEntry {
    #[serde(default)]
    phrases: Vec<(String, String)>,
    #[serde(default)]
    words: Vec<(String, String)>,
    #[serde(default)]
    drop: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    maker: Option<String>,
    words: Vec<String>,
    when: Option<Vec<DeviceClass>>,
    class: PowerClass,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChassisEntry {
    codes: Vec<u8>,
    class: PowerClass,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BandEntry {
    below_in: f64,
    class: PowerClass,
    source: String,
}

/// Lowercase, trimmed, without a trailing "." ("Dell Inc." → "dell inc").
fn simple(s: &str) -> String {
    s.trim().trim_end_matches('.').trim().to_lowercase()
}

/// Lowercase words, anything in parentheses dropped, punctuation other than "." (and a
/// "." not between digits) turned into spaces.
fn words_of(s: &str) -> Vec<String> {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0u32;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '.' => {
                let digit = |j: Option<&char>| j.is_some_and(|c| c.is_ascii_digit());
                if digit(i.checked_sub(1).and_then(|j| chars.get(j))) && digit(chars.get(i + 1)) {
                    out.push('.');
                } else {
                    out.push(' ');
                }
            }
            c if c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => out.push(' '),
        }
    }
    out.split_whitespace().map(str::to_owned).collect()
}

impl Rules {
    /// The embedded rules.
    ///
    /// # Panics
    /// Never in a released binary: a unit test parses the embedded file.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_CLASSES_TOML).expect("embedded deploy/power-classes.toml is valid")
    }

    pub fn parse(toml_text: &str) -> Result<Self, ClassifyError> {
        let file: RulesFile = toml::from_str(toml_text)?;
        let invalid = |what, index, reason: &str| ClassifyError::Invalid {
            what,
            index,
            reason: reason.to_owned(),
        };
        let mut makers = HashMap::new();
        for (i, m) in file.makers.iter().enumerate() {
            let name = simple(&m.name);
            if name.is_empty() {
                return Err(invalid("makers", i, "empty name"));
            }
            makers.insert(name.clone(), name.clone());
            for a in &m.aliases {
                makers.insert(simple(a), name.clone());
            }
        }
        let phrases = file
            .normalise
            .phrases
            .iter()
            .map(|(a, b)| (words_of(a), words_of(b)))
            .collect();
        let words = file
            .normalise
            .words
            .iter()
            .map(|(a, b)| (simple(a), simple(b)))
            .collect();
        let drop = file.normalise.drop.iter().map(|w| simple(w)).collect();
        if let Some(i) = file
            .machine_types
            .iter()
            .position(|m| m.source.trim().is_empty() || m.prefix.trim().is_empty())
        {
            return Err(invalid("machine_types", i, "needs a prefix and a source"));
        }
        let mut rules = Vec::new();
        for (i, r) in file.rules.into_iter().enumerate() {
            if r.words.is_empty() || r.source.trim().is_empty() {
                return Err(invalid("rules", i, "needs words and a source"));
            }
            rules.push(Rule {
                maker: r.maker.as_deref().map(simple),
                text: r.words.join(" + "),
                words: r
                    .words
                    .iter()
                    .map(|w| w.split('|').map(simple).collect())
                    .collect(),
                when: r.when,
                class: r.class,
                source: r.source,
            });
        }
        let mut chassis = HashMap::new();
        for (i, c) in file.chassis.into_iter().enumerate() {
            for code in c.codes {
                if chassis.insert(code, (c.class, c.source.clone())).is_some() {
                    return Err(invalid("chassis", i, &format!("code {code} given twice")));
                }
            }
        }
        let mut bands = Vec::new();
        for (i, b) in file.monitor_bands.into_iter().enumerate() {
            if !(b.below_in.is_finite() && b.below_in > 0.0)
                || bands.last().is_some_and(|(prev, _, _)| *prev >= b.below_in)
            {
                return Err(invalid(
                    "monitor_bands",
                    i,
                    "below_in must be > 0 and increasing",
                ));
            }
            bands.push((b.below_in, b.class, b.source));
        }
        Ok(Self {
            makers,
            phrases,
            words,
            drop,
            machine_types: file.machine_types,
            rules,
            chassis,
            bands,
        })
    }

    /// The maker's one name ("Dell Inc.", "DELL", EDID "DEL" → "dell"); an unknown
    /// maker is kept lowercased, without a trailing ".".
    pub fn maker(&self, manufacturer: &str) -> String {
        let s = simple(manufacturer);
        self.makers.get(&s).cloned().unwrap_or(s)
    }

    /// The normalised model words (see the file's `[normalise]`), Lenovo machine types
    /// replaced by the model they name.
    pub fn model_words(&self, maker: &str, model: &str) -> Vec<String> {
        let mut w = words_of(model);
        if w.len() == 1 {
            let code = w[0].clone();
            if let Some(mt) = self
                .machine_types
                .iter()
                .find(|m| simple(&m.maker) == maker && code.starts_with(&simple(&m.prefix)))
            {
                w = words_of(&mt.model);
            }
        }
        while w.first().is_some_and(|f| self.maker(f) == maker) {
            w.remove(0);
        }
        for (from, to) in &self.phrases {
            let mut i = 0;
            while !from.is_empty() && i + from.len() <= w.len() {
                if w[i..i + from.len()] == from[..] {
                    w.splice(i..i + from.len(), to.iter().cloned());
                    i += to.len();
                } else {
                    i += 1;
                }
            }
        }
        w.into_iter()
            .map(|x| self.words.get(&x).cloned().unwrap_or(x))
            .filter(|x| !self.drop.contains(x))
            .collect()
    }

    /// The key a per-model entry is filed under: normalised maker and model words.
    pub fn model_key(&self, manufacturer: &str, model: &str) -> Option<String> {
        let maker = self.maker(manufacturer);
        let words = self.model_words(&maker, model);
        if maker.is_empty() || words.is_empty() {
            return None;
        }
        Some(format!("{maker}|{}", words.join(" ")))
    }

    /// The first model-family rule that matches.
    pub fn family(&self, class: DeviceClass, manufacturer: &str, model: &str) -> Option<Decision> {
        let maker = self.maker(manufacturer);
        let words = self.model_words(&maker, model);
        if words.is_empty() {
            return None;
        }
        self.rules
            .iter()
            .find(|r| {
                r.maker.as_ref().is_none_or(|m| *m == maker)
                    && r.when.as_ref().is_none_or(|w| w.contains(&class))
                    && r.words
                        .iter()
                        .all(|alts| words.iter().any(|w| alts.iter().any(|p| glob(p, w))))
            })
            .map(|r| Decision {
                class: r.class,
                why: format!(
                    "model-family rule {}{} ({})",
                    r.maker
                        .as_ref()
                        .map(|m| format!("{m}: "))
                        .unwrap_or_default(),
                    r.text,
                    r.source
                ),
            })
    }

    /// The class an SMBIOS chassis type code says (bit 7, the lock flag, ignored).
    pub fn chassis(&self, code: u8) -> Option<Decision> {
        self.chassis
            .get(&(code & 0x7F))
            .map(|(class, source)| Decision {
                class: *class,
                why: format!("SMBIOS chassis type {} ({source})", code & 0x7F),
            })
    }

    /// A display's class from its diagonal in inches.
    pub fn monitor_band(&self, diagonal_in: f64) -> Option<Decision> {
        if !(diagonal_in.is_finite() && diagonal_in > 0.0) {
            return None;
        }
        self.bands
            .iter()
            .find(|(below, _, _)| diagonal_in < *below)
            .map(|(_, class, source)| Decision {
                class: *class,
                why: format!("display diagonal {diagonal_in:.1} in ({source})"),
            })
    }
}

/// A display's diagonal in inches from EDID's image size in centimetres; `None` when
/// EDID gives no size (0, as projectors and some panels report).
pub fn diagonal_in(width_cm: u32, height_cm: u32) -> Option<f64> {
    if width_cm == 0 || height_cm == 0 {
        return None;
    }
    let (w, h) = (f64::from(width_cm), f64::from(height_cm));
    Some((w * w + h * h).sqrt() / 2.54)
}

/// Word pattern: `#` one ASCII digit, `*` any run of characters, anything else itself.
fn glob(pattern: &str, word: &str) -> bool {
    fn go(p: &[char], w: &[char]) -> bool {
        match p.split_first() {
            None => w.is_empty(),
            Some(('*', rest)) => (0..=w.len()).any(|i| go(rest, &w[i..])),
            Some(('#', rest)) => w.first().is_some_and(char::is_ascii_digit) && go(rest, &w[1..]),
            Some((c, rest)) => w.first() == Some(c) && go(rest, &w[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let w: Vec<char> = word.chars().collect();
    go(&p, &w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(class: DeviceClass, maker: &str, model: &str) -> Option<PowerClass> {
        Rules::builtin()
            .family(class, maker, model)
            .map(|d| d.class)
    }

    #[test]
    fn patterns() {
        assert!(glob("m*q", "m720q"));
        assert!(!glob("m*q", "m720s"));
        assert!(glob("3###", "3640"));
        assert!(!glob("3###", "36400"));
        assert!(!glob("3###", "5820"));
        assert!(glob("r##15", "r6515"));
        assert!(glob("*", "x"));
    }

    #[test]
    fn makers_are_aliased() {
        let r = Rules::builtin();
        for m in ["Dell Inc.", "DELL", "dell inc", " Dell ", "DEL"] {
            assert_eq!(r.maker(m), "dell", "{m}");
        }
        assert_eq!(r.maker("Hewlett-Packard"), "hp");
        assert_eq!(r.maker("LENOVO"), "lenovo");
        assert_eq!(r.maker("Acme Corp."), "acme corp");
    }

    #[test]
    fn marketing_names_and_smbios_names_meet() {
        let r = Rules::builtin();
        let k = |m: &str, n: &str| r.model_key(m, n).unwrap();
        assert_eq!(
            k("Dell", "OptiPlex 3050 All-in-One Desktop"),
            k("Dell Inc.", "OptiPlex 3050 AIO")
        );
        assert_eq!(
            k("Dell", "OptiPlex 7090 Small Form Factor"),
            "dell|optiplex 7090 sff"
        );
        assert_eq!(
            k("HP", "HP EliteDesk 800 G4 DM 65W"),
            "hp|elitedesk 800 g4 micro 65w"
        );
        assert_eq!(
            k("HP", "HP 250 G9 Notebook PC"),
            k("HP", "250 G9 Notebook PC")
        );
        // Lenovo: the agent's "marketing (machine type)", or the machine type alone.
        assert_eq!(
            k("LENOVO", "ThinkCentre M720q (10T7S0A500)"),
            "lenovo|thinkcentre m720q"
        );
        assert_eq!(k("LENOVO", "10T7S0A500"), "lenovo|thinkcentre m720q");
        assert_eq!(k("LENOVO", "20L6S0AB00"), "lenovo|thinkpad t480");
        assert_eq!(
            k("Microsoft", "Surface Book 2  13.5-inch display"),
            "microsoft|surface book 2 13.5 inch"
        );
        assert_eq!(r.model_key("Dell", "  "), None);
    }

    #[test]
    fn family_rules_decide_what_the_chassis_cannot() {
        use DeviceClass as D;
        use PowerClass as P;
        assert_eq!(
            fam(D::Desktop, "Dell Inc.", "Wyse 5070 Thin Client"),
            Some(P::ThinClient)
        );
        assert_eq!(
            fam(D::Desktop, "HP", "HP t640 Thin Client"),
            Some(P::ThinClient)
        );
        assert_eq!(fam(D::Desktop, "HP", "HP t630"), Some(P::ThinClient));
        assert_eq!(
            fam(D::Desktop, "FUJITSU", "FUTRO S740"),
            Some(P::ThinClient)
        );
        assert_eq!(
            fam(D::Desktop, "Dell Inc.", "Precision 3640 Tower"),
            Some(P::WorkstationEntry)
        );
        assert_eq!(
            fam(D::Desktop, "Dell Inc.", "Precision 7920 Tower"),
            Some(P::WorkstationHigh)
        );
        assert_eq!(
            fam(D::Laptop, "Dell Inc.", "Precision 7560"),
            Some(P::MobileWorkstation)
        );
        assert_eq!(
            fam(D::Desktop, "HP", "HP Z2 Tower G5 Workstation"),
            Some(P::WorkstationEntry)
        );
        assert_eq!(
            fam(D::Desktop, "LENOVO", "ThinkStation P520 (30BE)"),
            Some(P::Workstation)
        );
        assert_eq!(
            fam(D::Desktop, "Dell Inc.", "OptiPlex 7090 Micro"),
            Some(P::MiniPc)
        );
        assert_eq!(
            fam(D::Desktop, "Dell Inc.", "OptiPlex 3090 Ultra"),
            Some(P::MiniPc)
        );
        assert_eq!(
            fam(D::Desktop, "HP", "HP EliteDesk 800 G5 Desktop Mini"),
            Some(P::MiniPc)
        );
        assert_eq!(
            fam(D::Desktop, "HP", "HP ProDesk 400 G6 SFF"),
            Some(P::DesktopSff)
        );
        assert_eq!(
            fam(D::Desktop, "LENOVO", "ThinkCentre M720q (10T7S0A500)"),
            Some(P::MiniPc)
        );
        assert_eq!(
            fam(D::Desktop, "LENOVO", "ThinkCentre M920t (10SF)"),
            Some(P::DesktopTower)
        );
        assert_eq!(
            fam(D::Laptop, "Dell Inc.", "Latitude 7420 2-in-1"),
            Some(P::Convertible)
        );
        assert_eq!(
            fam(D::Server, "Dell Inc.", "PowerEdge R6515"),
            Some(P::Server1s)
        );
        assert_eq!(
            fam(D::Server, "Dell Inc.", "PowerEdge R340"),
            Some(P::Server1s)
        );
        assert_eq!(
            fam(D::Server, "Dell Inc.", "PowerEdge R740xd"),
            Some(P::Server2s)
        );
        assert_eq!(
            fam(D::Server, "HPE", "ProLiant DL380 Gen10"),
            Some(P::Server2s)
        );
        assert_eq!(
            fam(D::Tablet, "Microsoft Corporation", "Surface Pro 7"),
            Some(P::Tablet)
        );
        assert_eq!(
            fam(D::Laptop, "Microsoft Corporation", "Surface Laptop Go 2"),
            Some(P::Laptop)
        );
        // No rule: the chassis decides.
        assert_eq!(fam(D::Desktop, "Dell Inc.", "OptiPlex 7090"), None);
        assert_eq!(fam(D::Laptop, "Dell Inc.", "Latitude 5420"), None);
        assert_eq!(fam(D::Desktop, "Acme", ""), None);
    }

    #[test]
    fn chassis_codes_and_display_bands() {
        let r = Rules::builtin();
        assert_eq!(r.chassis(35).unwrap().class, PowerClass::MiniPc);
        assert_eq!(r.chassis(4).unwrap().class, PowerClass::DesktopSff);
        assert_eq!(r.chassis(7 | 0x80).unwrap().class, PowerClass::DesktopTower);
        assert_eq!(r.chassis(32).unwrap().class, PowerClass::Convertible);
        assert_eq!(r.chassis(2), None);
        assert_eq!(r.monitor_band(23.8).unwrap().class, PowerClass::Monitor);
        assert_eq!(
            r.monitor_band(21.4).unwrap().class,
            PowerClass::MonitorSmall
        );
        assert_eq!(r.monitor_band(27.0).unwrap().class, PowerClass::Monitor27);
        assert_eq!(
            r.monitor_band(34.0).unwrap().class,
            PowerClass::MonitorLarge
        );
        assert_eq!(r.monitor_band(0.0), None);
    }

    /// EDID sizes are whole centimetres: a 27" 16:9 panel reports about 60 × 34 cm.
    #[test]
    fn edid_diagonal() {
        let d = diagonal_in(60, 34).unwrap();
        assert!((d - 27.15).abs() < 0.05, "{d}");
        let d = diagonal_in(53, 30).unwrap(); // a 24" panel
        assert!((d - 23.98).abs() < 0.05, "{d}");
        assert_eq!(diagonal_in(0, 30), None);
        let r = Rules::builtin();
        assert_eq!(
            r.monitor_band(diagonal_in(60, 34).unwrap()).unwrap().class,
            PowerClass::Monitor27
        );
    }

    #[test]
    fn broken_rules_are_refused() {
        assert!(matches!(
            Rules::parse("[[rules]]\nwords = []\nclass = \"laptop\"\nsource = \"x\""),
            Err(ClassifyError::Invalid { what: "rules", .. })
        ));
        assert!(matches!(
            Rules::parse("[[rules]]\nwords = [\"a\"]\nclass = \"lapto\"\nsource = \"x\""),
            Err(ClassifyError::Parse(_))
        ));
        assert!(matches!(
            Rules::parse(
                "[[monitor_bands]]\nbelow_in = 25.0\nclass = \"monitor\"\nsource = \"x\"\n[[monitor_bands]]\nbelow_in = 20.0\nclass = \"monitor\"\nsource = \"x\""
            ),
            Err(ClassifyError::Invalid {
                what: "monitor_bands",
                ..
            })
        ));
    }
}
