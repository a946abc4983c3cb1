//! French and English for the web page: one table of strings, the language chosen by
//! `?lang=` (remembered in a cookie) or else the browser's `Accept-Language`, and
//! numbers written the way each language writes them (French: `1 234,5`). Pure.

/// A language of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fr,
    En,
}

/// Name of the cookie remembering a `?lang=` choice.
pub const COOKIE: &str = "veille_lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (for the toggle link).
    pub fn other(self) -> Lang {
        match self {
            Lang::Fr => Lang::En,
            Lang::En => Lang::Fr,
        }
    }

    /// The first of French or English in an `Accept-Language` header, by quality then
    /// order; French (the public bodies' language) when neither appears.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in header.split(',').enumerate() {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse().ok()))
                .unwrap_or(1.0f32);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l).unwrap_or_default()
    }

    /// `?lang=` first, then the cookie, then `Accept-Language`.
    pub fn choose(query: Option<&str>, cookie: Option<&str>, accept: Option<&str>) -> Lang {
        query
            .and_then(Lang::parse)
            .or_else(|| cookie.and_then(Lang::parse))
            .unwrap_or_else(|| Lang::from_accept_language(accept.unwrap_or("")))
    }

    /// `v` with `decimals` decimals and grouped thousands: `1 234,5` (French, narrow
    /// no-break space) or `1,234.5` (English). Non-finite values print as `—`.
    pub fn num(self, v: f64, decimals: usize) -> String {
        if !v.is_finite() {
            return "—".to_owned();
        }
        let s = format!("{:.decimals$}", v.abs());
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s.as_str(), None),
        };
        let (group, point) = match self {
            Lang::Fr => ('\u{202f}', ','),
            Lang::En => (',', '.'),
        };
        let mut out = String::new();
        // "-0,0" reads oddly: only a value that rounds to non-zero keeps its sign.
        if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
            out.push('-');
        }
        let n = int.len();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (n - i) % 3 == 0 {
                out.push(group);
            }
            out.push(c);
        }
        if let Some(f) = frac {
            out.push(point);
            out.push_str(f);
        }
        out
    }

    /// `v` with as many decimals as a small figure needs to show something (three
    /// below 1, two below 10, one above): a pilot's first 0.27 kWh must not read 0.0.
    pub fn amount(self, v: f64) -> String {
        let a = v.abs();
        let d = if a < 1.0 {
            3
        } else if a < 10.0 {
            2
        } else {
            1
        };
        self.num(v, d)
    }

    /// A percentage with one decimal and the language's spacing (`12,5 %`, `12.5%`).
    pub fn pct(self, v: f64) -> String {
        match self {
            Lang::Fr => format!("{}\u{202f}%", self.num(v, 1)),
            Lang::En => format!("{}%", self.num(v, 1)),
        }
    }

    /// The string `key` in this language.
    pub fn t(self, key: Key) -> &'static str {
        let (fr, en) = text(key);
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }
}

/// Every string of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    AppTitle,
    Login,
    LoginHelp,
    Token,
    SignIn,
    SignOut,
    WrongToken,
    TooManyLogins,
    Overview,
    Consumption,
    Devices,
    Month,
    Show,
    Energy,
    Cost,
    Carbon,
    Coverage,
    Measured,
    Modelled,
    InferredOff,
    InferredOffReboot,
    Renewal,
    RenewalIntro,
    BySiteClass,
    StatusOk,
    Approaching,
    PastHorizon,
    ReuseList,
    RecyclingList,
    ReuseHelp,
    AgeSource,
    Horizon,
    NoneListed,
    Compliance,
    ComplianceIntro,
    Policy,
    LeftOn,
    LeftOnHours,
    WastedKwh,
    Warned,
    Shutdowns,
    Postponed,
    Skipped,
    NotRestarted7,
    WakesArmed,
    AwakeForMaintenance,
    NoAgent,
    Replay,
    ReplayIntro,
    Draft,
    DateFrom,
    DateTo,
    RunReplay,
    Excluded,
    Affected,
    SavedKwh,
    SavedEur,
    SavedKg,
    InterruptedHours,
    InterruptedSessions,
    Rooms,
    RoomsIntro,
    NoRooms,
    SetpointChange,
    Metric,
    Before,
    After,
    Difference,
    Unknown,
    Trend12,
    Kwh,
    LeftOnNights,
    LeftOnWeekends,
    LeftOnHelp,
    PastRenewal,
    NonePast,
    SetpointVerdicts,
    NoSetpoint,
    Room,
    Change,
    Verdict,
    GroupBy,
    Site,
    SiteTitle,
    Group,
    Class,
    DownloadCsv,
    Total,
    DeviceCount,
    HoursOn,
    HoursOnOutside,
    Hostname,
    LastSeen,
    Reports,
    Timeline,
    TimelineHelp,
    Active,
    Idle,
    Sleep,
    Off,
    Inventory,
    Manufacturer,
    Model,
    Chassis,
    Os,
    Cpu,
    Ram,
    Monitors,
    Tags,
    Serial,
    Bios,
    Organisation,
    AllOrgs,
    NotFound,
    Age,
    Status,
    SkipToContent,
    Language,
    Hours,
    Estimated,
    NoDevices,
    Value,
    Period,
    Savings,
    PolicyVersion,
    EnforcedFrom,
    Baseline,
    Enforced,
    DryRun,
    BeforePolicy,
    KwhPerDeviceDay,
    SavedPerDeviceDay,
    Interval95,
    Significant,
    NotSignificant,
    InsufficientData,
    LeftOut,
    SavingsHelp,
    Compare,
    Indicator,
    PeersHelp,
    WithoutAgent,
    Trajectory,
    Allowed,
    OnTrack,
    OffTrack,
    NoBaseline,
}

/// (French, English) of `key`: the one table.
fn text(key: Key) -> (&'static str, &'static str) {
    use Key::*;
    match key {
        AppTitle => ("Veille", "Veille"),
        Login => ("Connexion", "Sign in"),
        LoginHelp => (
            "Collez le jeton de votre organisation (ou le jeton opérateur).",
            "Paste your organisation's token (or the operator token).",
        ),
        Token => ("Jeton", "Token"),
        SignIn => ("Se connecter", "Sign in"),
        SignOut => ("Se déconnecter", "Sign out"),
        WrongToken => (
            "Jeton inconnu : accès refusé.",
            "Unknown token: access refused.",
        ),
        TooManyLogins => (
            "Trop d’essais depuis cette adresse : réessayez dans quelques minutes.",
            "Too many attempts from this address: try again in a few minutes.",
        ),
        Overview => ("Vue d’ensemble", "Overview"),
        Consumption => ("Consommation", "Consumption"),
        Devices => ("Postes", "Devices"),
        Compare => ("Comparaison", "Comparison"),
        Trajectory => ("Trajectoire", "Trajectory"),
        Allowed => ("Autorisé (trajectoire)", "Allowed (trajectory)"),
        OnTrack => ("Dans la trajectoire", "On track"),
        OffTrack => ("Au-dessus de la trajectoire", "Above the trajectory"),
        NoBaseline => (
            "Pas de référence : aucune donnée l’année de référence",
            "No baseline: no data in the baseline year",
        ),
        WithoutAgent => (
            "Équipements sans agent (inventaire GLPI) : consommation inconnue, non comptée",
            "Assets without an agent (GLPI inventory): energy unknown, not counted",
        ),
        Indicator => ("Indicateur", "Indicator"),
        PeersHelp => (
            "Pairs : collectivités du même type et de la même strate de population, sinon du même type, sinon toutes (au moins 3, anonymes). Q1, médiane, Q3 des pairs.",
            "Peers: bodies of the same kind and population band, else kind, else all (at least 3, anonymous). Q1, median, Q3 of the peers.",
        ),
        Month => ("Mois", "Month"),
        Show => ("Afficher", "Show"),
        Energy => ("Énergie", "Energy"),
        Cost => ("Coût", "Cost"),
        Carbon => ("Carbone", "Carbon"),
        Coverage => ("Couverture", "Coverage"),
        Measured => ("mesuré", "measured"),
        Modelled => ("modélisé", "modelled"),
        InferredOff => ("éteint (déduit)", "inferred off"),
        InferredOffReboot => (
            "dont déduit d'un redémarrage seul (sans arrêt annoncé)",
            "of which from a reboot only (no shutdown seen)",
        ),
        Unknown => ("inconnu", "unknown"),
        Renewal => ("Renouvellement", "Renewal"),
        RenewalIntro => (
            "Âge de chaque équipement (date d’achat importée, sinon date du BIOS, une estimation, sinon première apparition, un minimum) face à son horizon de renouvellement.",
            "Each device's age (imported purchase date, else BIOS date, an estimate, else first seen, a lower bound) against its renewal horizon.",
        ),
        BySiteClass => ("Par site et classe", "By site and class"),
        StatusOk => ("dans l’horizon", "within horizon"),
        Approaching => ("à échéance proche", "approaching"),
        PastHorizon => ("Au-delà de l’horizon", "Past horizon"),
        ReuseList => ("À réemployer", "For reuse"),
        RecyclingList => ("À recycler", "For recycling"),
        ReuseHelp => (
            "en service, au-delà de l’horizon, sous l’âge de recyclage : à donner ou réemployer (loi REEN)",
            "working, past their horizon, under the recycling age: hand them on (loi REEN)",
        ),
        AgeSource => ("Source de l’âge", "Age from"),
        Horizon => ("Horizon", "Horizon"),
        NoneListed => ("Aucun.", "None."),
        Compliance => ("Conformité", "Compliance"),
        ComplianceIntro => (
            "Application de la politique d’extinction : postes restés allumés dans les plages, énergie gaspillée, avertissements, extinctions et reports.",
            "How the auto-shutdown policy was followed: devices left on in its windows, energy wasted, warnings, shutdowns and postponements.",
        ),
        Policy => ("Politique", "Policy"),
        LeftOn => ("Restés allumés", "Left on"),
        LeftOnHours => ("Heures allumés", "Hours left on"),
        WastedKwh => ("kWh gaspillés", "kWh wasted"),
        Warned => ("Avertis", "Warned"),
        Shutdowns => ("Éteints", "Shut down"),
        Postponed => ("Reportés", "Postponed"),
        Skipped => ("Épargnés", "Skipped"),
        NotRestarted7 => ("Sans redémarrage 7 j+", "Not restarted 7+ days"),
        WakesArmed => ("Réveils programmés", "Wake-ups armed"),
        AwakeForMaintenance => ("Éveillés pour maintenance", "Awake for maintenance"),
        NoAgent => ("sans agent", "without agent"),
        Replay => ("Simulation", "Replay"),
        ReplayIntro => (
            "Ce qu’un projet de politique aurait économisé sur une période passée, à partir des données réelles (limite haute : l’inactivité et les avertissements sont ignorés). Rien n’est appliqué.",
            "What a draft policy would have saved over a past period, from the real data (an upper bound: idle threshold and warnings ignored). Nothing is applied.",
        ),
        Draft => (
            "Projet de politique (TOML, voir deploy/policy.toml)",
            "Draft policy (TOML, see deploy/policy.toml)",
        ),
        DateFrom => ("Du", "From"),
        DateTo => ("Au (inclus)", "To (included)"),
        RunReplay => ("Rejouer", "Replay"),
        Excluded => ("Exclus", "Excluded"),
        Affected => ("Concernés", "Affected"),
        SavedKwh => ("kWh économisés", "kWh saved"),
        SavedEur => ("€ économisés", "€ saved"),
        SavedKg => ("kgCO2e évités", "kgCO2e avoided"),
        InterruptedHours => ("Heures actives coupées", "Active hours cut into"),
        InterruptedSessions => ("Sessions coupées", "Sessions cut into"),
        Rooms => ("Salles serveurs", "Server rooms"),
        RoomsIntro => (
            "Chaque changement de consigne de climatisation : moyennes journalières avant et après, différence et son intervalle de confiance à 95 % (test de Welch).",
            "Each cooling setpoint change: daily means before and after, the difference and its 95 % interval (Welch's test).",
        ),
        NoRooms => (
            "Aucune salle avec un changement de consigne (veille-collector room add, room setpoint).",
            "No room with a setpoint change (veille-collector room add, room setpoint).",
        ),
        SetpointChange => ("Changement de consigne", "Setpoint change"),
        Metric => ("Mesure", "Metric"),
        Before => ("Avant", "Before"),
        After => ("Après", "After"),
        Difference => ("Différence", "Difference"),
        Trend12 => ("Tendance sur 12 mois", "12-month trend"),
        Kwh => ("kWh", "kWh"),
        LeftOnNights => ("Postes allumés la nuit", "Devices left on at night"),
        LeftOnWeekends => ("Postes allumés le week-end", "Devices left on at weekends"),
        LeftOnHelp => (
            "au moins une heure éveillée à plus de moitié hors des heures de travail ce mois-ci",
            "awake for more than half of at least one hour outside working hours this month",
        ),
        PastRenewal => (
            "Postes au-delà de leur horizon de renouvellement",
            "Devices past their renewal horizon",
        ),
        NonePast => ("Aucun.", "None."),
        SetpointVerdicts => (
            "Derniers verdicts de consigne des salles",
            "Latest server-room setpoint verdicts",
        ),
        NoSetpoint => (
            "Aucun changement de consigne enregistré.",
            "No setpoint change recorded.",
        ),
        Room => ("Salle", "Room"),
        Change => ("Changement", "Change"),
        Verdict => ("Verdict", "Verdict"),
        GroupBy => ("Regrouper par", "Group by"),
        Site => ("site", "site"),
        SiteTitle => ("Site", "Site"),
        Group => ("groupe", "group"),
        Class => ("classe", "class"),
        DownloadCsv => ("Télécharger le CSV", "Download the CSV"),
        Total => ("Total", "Total"),
        DeviceCount => ("postes", "devices"),
        HoursOn => ("heures allumé", "hours on"),
        HoursOnOutside => (
            "dont hors heures de travail",
            "of which outside working hours",
        ),
        Hostname => ("Nom", "Hostname"),
        LastSeen => ("Dernier contact", "Last seen"),
        Reports => ("Rapports", "Reports"),
        Timeline => ("Chronologie (7 derniers jours)", "Timeline (last 7 days)"),
        TimelineHelp => (
            "Une colonne par heure ; la hauteur de chaque couleur est la part de l’heure dans cet état.",
            "One column per hour; each colour's height is the share of the hour in that state.",
        ),
        Active => ("actif", "active"),
        Idle => ("inactif", "idle"),
        Sleep => ("veille", "sleep"),
        Off => ("éteint", "off"),
        Inventory => ("Inventaire", "Inventory"),
        Manufacturer => ("Fabricant", "Manufacturer"),
        Model => ("Modèle", "Model"),
        Chassis => ("Châssis", "Chassis"),
        Os => ("Système", "Operating system"),
        Cpu => ("Processeur", "CPU"),
        Ram => ("Mémoire", "RAM"),
        Monitors => ("Écrans", "Monitors"),
        Tags => ("Groupes", "Groups"),
        Serial => ("Numéro de série", "Serial number"),
        Bios => ("Date du BIOS", "BIOS date"),
        Organisation => ("Organisation", "Organisation"),
        AllOrgs => ("toutes", "all"),
        NotFound => ("Introuvable.", "Not found."),
        Age => ("Âge (ans)", "Age (years)"),
        Status => ("Statut", "Status"),
        SkipToContent => ("Aller au contenu", "Skip to content"),
        Language => ("English", "Français"),
        Hours => ("heures", "hours"),
        Estimated => (
            "Les kWh modélisés et déduits sont des estimations (profils de puissance).",
            "Modelled and inferred kWh are estimates (power profiles).",
        ),
        NoDevices => ("Aucun poste.", "No devices."),
        Value => ("Valeur", "Value"),
        Period => ("Période", "Period"),
        Savings => ("Économies", "Savings"),
        PolicyVersion => ("Version de la politique", "Policy version"),
        EnforcedFrom => (
            "Appliquée depuis (si ce n'est pas le jour de sa signature)",
            "Enforced from (when not the day it was set)",
        ),
        Baseline => ("Référence", "Baseline"),
        Enforced => ("Appliquée", "Enforced"),
        DryRun => ("essai à blanc", "dry run"),
        BeforePolicy => ("avant la politique", "before the policy"),
        KwhPerDeviceDay => ("kWh par poste et par jour", "kWh per device and day"),
        SavedPerDeviceDay => (
            "Économisé (kWh par poste et par jour)",
            "Saved (kWh per device and day)",
        ),
        Interval95 => ("Intervalle à 95 %", "95 % interval"),
        Significant => ("économie significative", "significant saving"),
        NotSignificant => (
            "pas de différence significative",
            "no significant difference",
        ),
        InsufficientData => ("données insuffisantes", "insufficient data"),
        LeftOut => (
            "Jours exclus (fériés, fermetures)",
            "Days left out (holidays, closures)",
        ),
        SavingsHelp => (
            "Consommation quotidienne moyenne par poste et par site, avant et pendant l'application d'une version de la politique ; différence avec un intervalle de confiance à 95 % (test de Welch).",
            "Mean daily consumption per device and site, before and while a policy version is enforced; difference with a 95 % confidence interval (Welch's test).",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_language() {
        assert_eq!(Lang::Fr.num(1234.56, 1), "1\u{202f}234,6");
        assert_eq!(Lang::En.num(1234.56, 1), "1,234.6");
        assert_eq!(Lang::Fr.num(1_234_567.0, 0), "1\u{202f}234\u{202f}567");
        assert_eq!(Lang::En.num(999.0, 2), "999.00");
        assert_eq!(Lang::En.num(-1234.0, 0), "-1,234");
        assert_eq!(Lang::Fr.num(-0.01, 1), "0,0");
        assert_eq!(Lang::Fr.num(0.5, 3), "0,500");
        assert_eq!(Lang::En.num(f64::NAN, 1), "—");
        assert_eq!(Lang::Fr.pct(12.25), "12,2\u{202f}%");
        assert_eq!(Lang::Fr.amount(0.01234), "0,012");
        assert_eq!(Lang::En.amount(5.678), "5.68");
        assert_eq!(Lang::En.amount(1234.56), "1,234.6");
        assert_eq!(Lang::En.pct(100.0), "100.0%");
    }

    #[test]
    fn language_from_query_cookie_or_header() {
        assert_eq!(
            Lang::from_accept_language("en-GB,en;q=0.9,fr;q=0.8"),
            Lang::En
        );
        assert_eq!(
            Lang::from_accept_language("fr-FR,fr;q=0.9,en;q=0.8"),
            Lang::Fr
        );
        assert_eq!(
            Lang::from_accept_language("de-DE,en;q=0.5,fr;q=0.7"),
            Lang::Fr
        );
        assert_eq!(Lang::from_accept_language("de"), Lang::Fr);
        assert_eq!(Lang::from_accept_language("en;q=0"), Lang::Fr);
        assert_eq!(Lang::from_accept_language(""), Lang::Fr);
        assert_eq!(Lang::choose(Some("en"), Some("fr"), Some("fr")), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), Some("en"), Some("fr")), Lang::En);
        assert_eq!(Lang::choose(None, None, Some("en-US")), Lang::En);
    }

    #[test]
    fn every_key_has_both_languages() {
        // A sample across the table: an empty string would render an unlabeled control.
        for k in [
            Key::Token,
            Key::SignIn,
            Key::WrongToken,
            Key::TooManyLogins,
            Key::Timeline,
            Key::Period,
        ] {
            assert!(!Lang::Fr.t(k).is_empty() && !Lang::En.t(k).is_empty());
        }
        assert_ne!(Lang::Fr.t(Key::SignOut), Lang::En.t(Key::SignOut));
    }
}
