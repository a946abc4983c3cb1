//! GLPI REST API answers (`apirest.php`, documented in glpi-project/glpi's `apirest.md`)
//! → the same rows as the CSV import ([`GlpiRow`]), so that matching, storing and the
//! summary are one path whatever the source. No I/O: the collector's `glpi` module
//! sends the requests and hands the bodies and headers here.
//!
//! # What is read
//! Pages of "Get all items" (`GET /Computer?expand_dropdowns=true&with_infocoms=true
//! &range=0-99`): a JSON array of items. With `expand_dropdowns`, dropdown fields hold
//! names: `locations_id` is the location's full name ("Mairie > Accueil"),
//! `manufacturers_id`, `computermodels_id` / `monitormodels_id` and `states_id` likewise.
//! A dropdown that is not a string (a number: the dropdown was not expanded, or 0 for
//! none) is read as absent, never as a name. GLPI writes an empty dropdown as `""`,
//! `" "` or `"&nbsp;"`; all three are absent.
//!
//! `_infocoms` (the financial and administrative tab) is an object, or `[]` when the
//! item has none (PHP's empty array): `buy_date`, `delivery_date`, `use_date` (startup),
//! `decommission_date`, `warranty_date` and `warranty_duration` (months; negative for a
//! lifetime warranty). Dates are `YYYY-MM-DD` (a time after them is ignored), `null` or
//! `0000-00-00` for none.
//!
//! # What is left out of the active fleet
//! - deleted items (`is_deleted`: in GLPI's trash, not yet purged);
//! - templates (`is_template`: a model for new items, not an asset);
//! - decommissioned items: a decommission date on or before today, or a state whose
//!   name contains one of [`DECOMMISSIONED_STATES`].
//!
//! # Paging
//! GLPI answers a page with `Content-Range: first-last/total` and status 206 while
//! items remain, 200 for the last (or only) page. [`next_start`] checks each header
//! against the range asked for and says where the next page starts, so a page that
//! does not follow on (items added or removed between two pages are fine; a range that
//! moves is not) stops the sync rather than skipping or repeating items.

use serde_json::{Map, Value};

use crate::renewal::glpi::{GlpiRow, parse_date};
use crate::renewal::horizon::Date;

/// State names (GLPI's Setup → Dropdowns → Status of items, free text per site) that
/// mean the item has left the fleet. Compared lower-cased, accents removed, as
/// substrings: "Hors service > Rebut" and "Au rebut" both match "rebut". Add a site's
/// own wording here; a word that also names a living state ("hors service" is often
/// "broken, awaiting repair") must not be listed.
pub const DECOMMISSIONED_STATES: &[&str] = &[
    // French (GLPI fr_FR, and the usual wording of public bodies' inventories)
    "rebut",
    "decommissionne",
    "reforme",
    "mis au pilon",
    // English (GLPI en_GB)
    "decommissioned",
    "retired",
    "disposed",
    "scrapped",
];

/// The asset types read from GLPI, in the order they are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemType {
    Computer,
    Monitor,
}

impl ItemType {
    /// Every type a sync reads.
    pub const ALL: [ItemType; 2] = [ItemType::Computer, ItemType::Monitor];

    /// GLPI's itemtype, as in the URL (`apirest.php/Computer`).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Computer => "Computer",
            ItemType::Monitor => "Monitor",
        }
    }

    /// The model dropdown's field.
    fn model_field(self) -> &'static str {
        match self {
            ItemType::Computer => "computermodels_id",
            ItemType::Monitor => "monitormodels_id",
        }
    }
}

/// One item of a page, with what decides whether it is in the active fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiItem {
    pub itemtype: ItemType,
    /// GLPI's id (unique per itemtype only).
    pub id: u64,
    /// The facts the CSV import would read; `line` is 0 until [`active_rows`] numbers it.
    pub row: GlpiRow,
    /// The state's name (`states_id` expanded), if any.
    pub state: Option<String>,
    pub deleted: bool,
    pub template: bool,
    pub decommission_date: Option<Date>,
    /// End of the warranty: `warranty_date` + `warranty_duration` months; `None` when
    /// either is missing or the warranty is for life.
    pub warranty_end: Option<Date>,
}

/// Why an item is not part of the active fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOutReason {
    Deleted,
    Template,
    DecommissionedOn(Date),
    DecommissionedState(String),
}

impl std::fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftOutReason::Deleted => f.write_str("deleted"),
            LeftOutReason::Template => f.write_str("template"),
            LeftOutReason::DecommissionedOn(d) => write!(f, "decommissioned on {d}"),
            LeftOutReason::DecommissionedState(s) => write!(f, "state \"{s}\""),
        }
    }
}

impl ApiItem {
    /// Why this item is out of the active fleet on `today`, or `None` if it is in.
    pub fn left_out(&self, today: Date) -> Option<LeftOutReason> {
        if self.deleted {
            return Some(LeftOutReason::Deleted);
        }
        if self.template {
            return Some(LeftOutReason::Template);
        }
        if let Some(d) = self.decommission_date.filter(|d| *d <= today) {
            return Some(LeftOutReason::DecommissionedOn(d));
        }
        self.state
            .as_deref()
            .filter(|s| is_decommissioned_state(s))
            .map(|s| LeftOutReason::DecommissionedState(s.to_owned()))
    }
}

/// True when `state` names a decommissioned item (see [`DECOMMISSIONED_STATES`]).
pub fn is_decommissioned_state(state: &str) -> bool {
    let folded: String = state
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'à' | 'â' | 'ä' => 'a',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            c => c,
        })
        .collect();
    DECOMMISSIONED_STATES.iter().any(|w| folded.contains(w))
}

/// An item left out of the active fleet, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub itemtype: ItemType,
    pub id: u64,
    pub name: Option<String>,
    pub reason: LeftOutReason,
}

/// The active fleet of a whole sync, as rows for [`crate::renewal::glpi::match_rows`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActiveFleet {
    /// `line` is the item's position in the sync (1 = the first item of the first
    /// page, computers before monitors), so the summary can name every item.
    pub rows: Vec<GlpiRow>,
    /// Which item each row is: `(itemtype, id)` at the same index as `rows`.
    pub items: Vec<(ItemType, u64)>,
    pub left_out: Vec<LeftOut>,
}

impl ActiveFleet {
    /// The rows to match against devices: computers only. An agent runs on a computer,
    /// never on a monitor; a monitor named after its PC (common in GLPI) would
    /// otherwise match that PC by hostname and give it the monitor's dates, or make the
    /// PC's own row ambiguous.
    pub fn matchable_rows(&self) -> Vec<GlpiRow> {
        self.rows
            .iter()
            .zip(&self.items)
            .filter(|(_, (t, _))| *t == ItemType::Computer)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Active items of `itemtype`.
    pub fn active(&self, itemtype: ItemType) -> usize {
        self.items.iter().filter(|(t, _)| *t == itemtype).count()
    }
}

/// Splits every fetched item into the active fleet and the left-out ones.
pub fn active_rows(items: &[ApiItem], today: Date) -> ActiveFleet {
    let mut fleet = ActiveFleet::default();
    for (i, item) in items.iter().enumerate() {
        match item.left_out(today) {
            Some(reason) => fleet.left_out.push(LeftOut {
                itemtype: item.itemtype,
                id: item.id,
                name: item.row.name.clone(),
                reason,
            }),
            None => {
                fleet.rows.push(GlpiRow {
                    line: i + 1,
                    ..item.row.clone()
                });
                fleet.items.push((item.itemtype, item.id));
            }
        }
    }
    fleet
}

/// Why an answer of GLPI cannot be read. Nothing of the sync is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    #[error("the answer is not a list of items")]
    NotAList,
    #[error("item {index} of the page: {reason}")]
    BadItem { index: usize, reason: String },
    #[error("{itemtype} {id}: {field} = {value:?} is not a date")]
    BadDate {
        itemtype: &'static str,
        id: u64,
        field: &'static str,
        value: String,
    },
    #[error("Content-Range {0:?} is not first-last/total")]
    BadContentRange(String),
    #[error("asked for items from {asked}, GLPI sent {got:?}")]
    RangeMismatch { asked: u64, got: String },
    #[error("status 206 (partial content) without a Content-Range header")]
    MissingContentRange,
}

/// Parses one page of "Get all items" for `itemtype`.
pub fn parse_page(itemtype: ItemType, body: &[u8]) -> Result<Vec<ApiItem>, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::NotJson(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(ApiError::NotAList);
    };
    items
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let obj = v.as_object().ok_or_else(|| ApiError::BadItem {
                index,
                reason: "not an object".into(),
            })?;
            parse_item(itemtype, obj).map_err(|e| match e {
                ItemError::Api(e) => e,
                ItemError::Bad(reason) => ApiError::BadItem { index, reason },
            })
        })
        .collect()
}

enum ItemError {
    Api(ApiError),
    Bad(String),
}

fn parse_item(itemtype: ItemType, obj: &Map<String, Value>) -> Result<ApiItem, ItemError> {
    let id = match obj.get("id") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ItemError::Bad("no numeric \"id\"".into()))?;
    let infocom = match obj.get("_infocoms") {
        Some(Value::Object(m)) => Some(m),
        // No financial information: GLPI sends PHP's empty array (or nothing).
        Some(Value::Array(a)) if a.is_empty() => None,
        None | Some(Value::Null) => None,
        Some(_) => return Err(ItemError::Bad("\"_infocoms\" is not an object".into())),
    };
    let date = |field: &'static str| -> Result<Option<Date>, ItemError> {
        let Some(v) = infocom.and_then(|m| m.get(field)) else {
            return Ok(None);
        };
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => parse_date(s.trim()).ok_or_else(|| {
                ItemError::Api(ApiError::BadDate {
                    itemtype: itemtype.as_str(),
                    id,
                    field,
                    value: s.clone(),
                })
            }),
            other => Err(ItemError::Api(ApiError::BadDate {
                itemtype: itemtype.as_str(),
                id,
                field,
                value: other.to_string(),
            })),
        }
    };
    let warranty_months = infocom
        .and_then(|m| m.get("warranty_duration"))
        .and_then(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
    let warranty_end = match (date("warranty_date")?, warranty_months) {
        (Some(start), Some(m)) if m > 0 => {
            Some(start.add_months(i32::try_from(m).unwrap_or(i32::MAX)))
        }
        _ => None,
    };
    Ok(ApiItem {
        itemtype,
        id,
        row: GlpiRow {
            line: 0,
            name: text(obj, "name"),
            serial: text(obj, "serial"),
            inventory_number: text(obj, "otherserial"),
            location: text(obj, "locations_id"),
            purchase_date: date("buy_date")?,
            delivery_date: date("delivery_date")?,
            startup_date: date("use_date")?,
            uuid: text(obj, "uuid"),
            manufacturer: text(obj, "manufacturers_id"),
            model: text(obj, itemtype.model_field()),
            // GLPI has no lifespan field (see the CSV import's documentation).
            lifespan_months: None,
        },
        state: text(obj, "states_id"),
        deleted: flag(obj, "is_deleted"),
        template: flag(obj, "is_template"),
        decommission_date: date("decommission_date")?,
        warranty_end,
    })
}

/// A text field; absent for a non-string (an unexpanded dropdown id) and for GLPI's
/// empty forms (`""`, `" "`, `"&nbsp;"`).
fn text(obj: &Map<String, Value>, field: &str) -> Option<String> {
    let s = obj.get(field)?.as_str()?.trim();
    (!s.is_empty() && s != "&nbsp;").then(|| s.to_owned())
}

/// GLPI's booleans: `0`/`1`, `"0"`/`"1"` or `true`/`false`; absent = false.
fn flag(obj: &Map<String, Value>, field: &str) -> bool {
    match obj.get(field) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s.trim() != "0" && !s.trim().is_empty(),
        _ => false,
    }
}

/// `Content-Range: first-last/total` of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: u64,
}

/// Parses GLPI's `Content-Range` value (`0-49/200`; spaces tolerated).
pub fn parse_content_range(value: &str) -> Result<ContentRange, ApiError> {
    let bad = || ApiError::BadContentRange(value.to_owned());
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let (range, total) = compact.split_once('/').ok_or_else(bad)?;
    let (first, last) = range.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
    Ok(ContentRange {
        first: num(first)?,
        last: num(last)?,
        total: num(total)?,
    })
}

/// The `range` query value for a page of `page_size` items from `start` (shorter at
/// the end of `u64`: `start` comes from a server's `Content-Range`).
pub fn range_param(start: u64, page_size: u32) -> String {
    let last = start.saturating_add(u64::from(page_size.max(1)) - 1);
    format!("{start}-{last}")
}

/// Where the next page starts after a page asked `from` `asked_start`, given the
/// answer's status and `Content-Range`; `None` when every item has been read.
///
/// 200 without a Content-Range is the whole list; 206 without one is refused (the rest
/// could not be asked for). A range that does not start where it was asked, or ends
/// before it starts while items remain, is refused.
pub fn next_start(
    status: u16,
    content_range: Option<&str>,
    asked_start: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(value) = content_range else {
        return if status == 206 {
            Err(ApiError::MissingContentRange)
        } else {
            Ok(None)
        };
    };
    let cr = parse_content_range(value)?;
    if cr.total == 0 {
        return Ok(None);
    }
    if cr.first != asked_start || cr.last < cr.first {
        return Err(ApiError::RangeMismatch {
            asked: asked_start,
            got: value.to_owned(),
        });
    }
    // `last` is the server's: at u64::MAX no item can follow it.
    Ok(cr.last.checked_add(1).filter(|&next| next < cr.total))
}

/// GLPI's error body, `["ERROR_CODE", "message"]`: the code and the message, if the
/// body has that shape.
pub fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let list = value.as_array()?;
    let code = list.first()?.as_str()?.to_owned();
    let message = list
        .get(1)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Option<Date> {
        Date::from_ymd(y, m, day)
    }

    /// Two computers shaped like apirest.md's "Get all items" example (expanded
    /// dropdowns, `&nbsp;` for empty ones), with `_infocoms` as "Get an item" returns
    /// it, plus one without financial information (`[]`), one deleted, one template.
    const COMPUTERS: &str = r#"[
      {"id": 34, "entities_id": "Root Entity", "name": "glpi",
       "serial": "VMware-42 01 f4 65", "otherserial": null,
       "locations_id": "Mairie > Accueil", "computermodels_id": "VMware Virtual Platform",
       "manufacturers_id": "VMware, Inc.", "is_deleted": 0, "is_template": 0,
       "states_id": "Production", "uuid": "4201F465-2759-A9FB-11BC-CDB864681F4B",
       "_infocoms": {"id": 5, "buy_date": "2019-03-12", "delivery_date": "2019-03-20",
         "use_date": "2019-04-01", "decommission_date": null,
         "warranty_date": "2019-03-20", "warranty_duration": 36},
       "links": [{"rel": "Entity", "href": "http://path/to/glpi/api/Entity/0"}]},
      {"id": 35, "name": "mavm1", "serial": "&nbsp;", "otherserial": "INV-35",
       "locations_id": "&nbsp;", "states_id": 0, "is_deleted": "0",
       "_infocoms": []},
      {"id": 36, "name": "old", "serial": "X1", "is_deleted": 1, "_infocoms": []},
      {"id": 37, "name": "Modèle poste agent", "is_template": 1}
    ]"#;

    #[test]
    fn a_page_of_computers_becomes_csv_rows() {
        let items = parse_page(ItemType::Computer, COMPUTERS.as_bytes()).unwrap();
        assert_eq!(items.len(), 4);
        let a = &items[0];
        assert_eq!(a.id, 34);
        assert_eq!(a.row.name.as_deref(), Some("glpi"));
        assert_eq!(a.row.serial.as_deref(), Some("VMware-42 01 f4 65"));
        assert_eq!(a.row.inventory_number, None);
        assert_eq!(a.row.location.as_deref(), Some("Mairie > Accueil"));
        assert_eq!(a.row.model.as_deref(), Some("VMware Virtual Platform"));
        assert_eq!(a.row.manufacturer.as_deref(), Some("VMware, Inc."));
        assert_eq!(
            a.row.uuid.as_deref(),
            Some("4201F465-2759-A9FB-11BC-CDB864681F4B")
        );
        assert_eq!(
            (a.row.purchase_date, a.row.delivery_date, a.row.startup_date),
            (d(2019, 3, 12), d(2019, 3, 20), d(2019, 4, 1))
        );
        assert_eq!(a.row.acquisition_date(), d(2019, 3, 12));
        assert_eq!(a.warranty_end, d(2022, 3, 20));
        assert_eq!(a.state.as_deref(), Some("Production"));
        let b = &items[1];
        assert_eq!(
            (
                b.row.serial.clone(),
                b.row.location.clone(),
                b.state.clone()
            ),
            (None, None, None)
        );
        assert_eq!(b.row.inventory_number.as_deref(), Some("INV-35"));
        assert_eq!(b.row.acquisition_date(), None);
        assert!(!b.deleted && items[2].deleted && items[3].template);
    }

    #[test]
    fn deleted_templates_and_decommissioned_items_are_left_out() {
        let today = Date::from_ymd(2026, 12, 7).unwrap();
        let monitors = r#"[
          {"id": 1, "name": "ecran-accueil", "serial": "M1", "states_id": "En service",
           "monitormodels_id": "P2419H", "_infocoms": {"buy_date": "2020-01-02"}},
          {"id": 2, "name": "ecran-cave", "serial": "M2",
           "states_id": "Hors service > Rebut", "_infocoms": []},
          {"id": 3, "name": "ecran-futur", "serial": "M3",
           "_infocoms": {"decommission_date": "2027-06-30"}},
          {"id": 4, "name": "ecran-parti", "serial": "M4",
           "_infocoms": {"decommission_date": "2026-12-07 00:00:00"}},
          {"id": 5, "name": "ecran-x", "serial": "M5", "states_id": "Décommissionné"}
        ]"#;
        let mut items = parse_page(ItemType::Computer, COMPUTERS.as_bytes()).unwrap();
        items.extend(parse_page(ItemType::Monitor, monitors.as_bytes()).unwrap());
        assert_eq!(items[4].row.model.as_deref(), Some("P2419H"));
        let fleet = active_rows(&items, today);
        let lines: Vec<(usize, Option<&str>)> = fleet
            .rows
            .iter()
            .map(|r| (r.line, r.name.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (1, Some("glpi")),
                (2, Some("mavm1")),
                (5, Some("ecran-accueil")),
                (7, Some("ecran-futur"))
            ]
        );
        assert_eq!(
            fleet.items,
            [
                (ItemType::Computer, 34),
                (ItemType::Computer, 35),
                (ItemType::Monitor, 1),
                (ItemType::Monitor, 3)
            ]
        );
        let matchable: Vec<usize> = fleet.matchable_rows().iter().map(|r| r.line).collect();
        assert_eq!(matchable, [1, 2]);
        assert_eq!(
            (
                fleet.active(ItemType::Computer),
                fleet.active(ItemType::Monitor)
            ),
            (2, 2)
        );
        let out: Vec<(ItemType, u64, String)> = fleet
            .left_out
            .iter()
            .map(|l| (l.itemtype, l.id, l.reason.to_string()))
            .collect();
        assert_eq!(
            out,
            [
                (ItemType::Computer, 36, "deleted".to_owned()),
                (ItemType::Computer, 37, "template".to_owned()),
                (
                    ItemType::Monitor,
                    2,
                    "state \"Hors service > Rebut\"".to_owned()
                ),
                (
                    ItemType::Monitor,
                    4,
                    "decommissioned on 2026-12-07".to_owned()
                ),
                (ItemType::Monitor, 5, "state \"Décommissionné\"".to_owned()),
            ]
        );
    }

    #[test]
    fn state_names_are_data() {
        for s in [
            "Rebut",
            "Au rebut",
            "Décommissionné",
            "DECOMMISSIONED",
            "Réformé",
        ] {
            assert!(is_decommissioned_state(s), "{s}");
        }
        for s in [
            "Production",
            "En service",
            "Hors service",
            "En stock",
            "En réparation",
        ] {
            assert!(!is_decommissioned_state(s), "{s}");
        }
    }

    #[test]
    fn bad_pages_are_refused_with_the_item() {
        assert!(matches!(
            parse_page(ItemType::Computer, b"<html>"),
            Err(ApiError::NotJson(_))
        ));
        assert_eq!(
            parse_page(ItemType::Computer, br#"{"id": 1}"#),
            Err(ApiError::NotAList)
        );
        assert!(matches!(
            parse_page(ItemType::Computer, br#"[{"id": 1}, {"name": "x"}]"#),
            Err(ApiError::BadItem { index: 1, .. })
        ));
        let e = parse_page(
            ItemType::Monitor,
            br#"[{"id": 9, "_infocoms": {"buy_date": "2020-13-45"}}]"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Monitor 9: buy_date = \"2020-13-45\" is not a date"
        );
        // An empty list (no computers at all) is a page.
        assert_eq!(parse_page(ItemType::Computer, b"[]").unwrap(), []);
    }

    #[test]
    fn paging_follows_content_range_until_the_total() {
        assert_eq!(
            parse_content_range("0-49/200").unwrap(),
            ContentRange {
                first: 0,
                last: 49,
                total: 200
            }
        );
        assert_eq!(range_param(0, 50), "0-49");
        assert_eq!(range_param(100, 50), "100-149");
        assert_eq!(next_start(206, Some("0-49/120"), 0), Ok(Some(50)));
        assert_eq!(next_start(206, Some("50-99/120"), 50), Ok(Some(100)));
        assert_eq!(next_start(200, Some("100-119/120"), 100), Ok(None));
        assert_eq!(next_start(200, None, 0), Ok(None));
        assert_eq!(next_start(200, Some("0-0/0"), 0), Ok(None));
        assert_eq!(next_start(206, None, 0), Err(ApiError::MissingContentRange));
        assert!(matches!(
            next_start(206, Some("10-49/120"), 0),
            Err(ApiError::RangeMismatch { asked: 0, .. })
        ));
        assert!(matches!(
            next_start(206, Some("0-49"), 0),
            Err(ApiError::BadContentRange(_))
        ));
    }

    /// Regression (glpi_api fuzz target): a `Content-Range` ending at `u64::MAX`
    /// overflowed `last + 1`, and a page asked from near `u64::MAX` overflowed the
    /// range's end (both panics in debug builds, wrong pages in release).
    #[test]
    fn ranges_at_the_end_of_u64_neither_overflow_nor_wrap() {
        let max = u64::MAX;
        assert_eq!(
            next_start(206, Some(&format!("0-{max}/{max}")), 0),
            Ok(None)
        );
        assert_eq!(
            next_start(
                206,
                Some(&format!("{}-{}/{max}", max - 2, max - 2)),
                max - 2
            ),
            Ok(Some(max - 1))
        );
        assert_eq!(range_param(max - 1, 50), format!("{}-{max}", max - 1));
        assert_eq!(range_param(max, 0), format!("{max}-{max}"));
    }

    /// Regression (glpi_api fuzz target): a warranty from December 9999 ended in
    /// January 9999, before it started.
    #[test]
    fn a_warranty_never_ends_before_it_starts() {
        let page = br#"[{"id": 1, "_infocoms": {"warranty_date": "9999-12-01", "warranty_duration": 36}}]"#;
        let items = parse_page(ItemType::Computer, page).unwrap();
        assert_eq!(items[0].warranty_end, d(9999, 12, 1));
    }

    #[test]
    fn glpi_error_bodies_give_code_and_message() {
        assert_eq!(
            parse_error_body(
                r#"["ERROR_GLPI_LOGIN_USER_TOKEN", "le paramètre user_token semble incorrect"]"#
                    .as_bytes()
            ),
            Some((
                "ERROR_GLPI_LOGIN_USER_TOKEN".into(),
                "le paramètre user_token semble incorrect".into()
            ))
        );
        assert_eq!(parse_error_body(b"{\"a\":1}"), None);
        assert_eq!(parse_error_body(b"oops"), None);
    }
}
