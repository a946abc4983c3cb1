//! GLPI REST API answers (`glpi sync`): a page body and its `Content-Range`, as a GLPI
//! server (or whatever answers at its URL) sends them. The input is one flag byte
//! (bit 0: monitors, bit 1: status 206, bit 2: a `Content-Range` header, bit 3: ask
//! from the header's own `first`, bits 4–7: the page size), the header up to the first
//! `\n`, then the body.
//!
//! Invariants: a parsed `Content-Range` prints back as itself; paging only moves
//! forward, stays below the total and asks for a range that parses back from where it
//! starts; a page gives one item per element of the JSON array, with that element's
//! id; every parsed item, written back as GLPI JSON, parses to the same item (texts
//! trimmed, dates re-read); a warranty never ends before it starts; the active fleet
//! and the left-out items partition the page, rows numbered in page order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use veille_domain::renewal::glpi_api::{
    ApiError, ApiItem, ItemType, active_rows, next_start, parse_content_range, parse_error_body,
    parse_page, range_param,
};
use veille_domain::renewal::horizon::Date;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let itemtype = if flags & 1 == 0 {
        ItemType::Computer
    } else {
        ItemType::Monitor
    };
    let status = if flags & 2 == 0 { 200 } else { 206 };
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let page_size = u32::from(flags >> 4) * 25 + 1;

    paging(
        status,
        (flags & 4 != 0).then_some(&*header),
        flags & 8 != 0,
        page_size,
    );
    page(itemtype, body);
    let _ = parse_error_body(body);
});

fn paging(status: u16, header: Option<&str>, from_header: bool, page_size: u32) {
    let parsed = header.map(parse_content_range);
    if let Some(Ok(cr)) = parsed {
        let printed = format!("{}-{}/{}", cr.first, cr.last, cr.total);
        assert_eq!(parse_content_range(&printed), Ok(cr));
    }
    let asked = match parsed {
        Some(Ok(cr)) if from_header => cr.first,
        _ => 0,
    };
    // The range asked for starts where it was asked and holds at most a page.
    let asked_range = range_param(asked, page_size);
    let cr = parse_content_range(&format!("{asked_range}/1"))
        .unwrap_or_else(|e| panic!("range {asked_range:?}: {e}"));
    assert_eq!(cr.first, asked);
    assert!(cr.last >= cr.first && cr.last - cr.first < u64::from(page_size));

    match (next_start(status, header, asked), parsed) {
        (Ok(Some(next)), Some(Ok(cr))) => {
            assert!(next > asked, "paging went from {asked} back to {next}");
            assert!(
                next < cr.total,
                "next page {next} past the total {}",
                cr.total
            );
            assert!(cr.first == asked && cr.last < next);
        }
        (Ok(Some(next)), _) => panic!("a next page {next} without a Content-Range"),
        (Ok(None), None) => assert_ne!(status, 206),
        (Ok(None), Some(Ok(_))) | (Err(ApiError::RangeMismatch { .. }), Some(Ok(_))) => {}
        (Err(ApiError::MissingContentRange), None) => assert_eq!(status, 206),
        (Err(ApiError::BadContentRange(_)), Some(Err(_))) => {}
        (other, parsed) => panic!("next_start {other:?} for {parsed:?}"),
    }
}

fn page(itemtype: ItemType, body: &[u8]) {
    let result = parse_page(itemtype, body);
    assert_eq!(parse_page(itemtype, body), result, "not deterministic");
    let elements = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_array().cloned());
    let items = match result {
        Ok(items) => items,
        Err(ApiError::BadItem { index, .. }) => {
            let len = elements.map_or(0, |e| e.len());
            assert!(index < len, "item {index} of {len}");
            return;
        }
        Err(_) => return,
    };
    let Some(elements) = elements else {
        panic!("a page that is not a JSON array");
    };
    assert_eq!(items.len(), elements.len());
    for (item, element) in items.iter().zip(&elements) {
        let id = match element.get("id") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        assert_eq!(id, Some(item.id));
        assert_eq!(item.itemtype, itemtype);
        assert_eq!((item.row.line, item.row.lifespan_months), (0, None));
        round_trip(item);
        warranty(itemtype, item, element);
    }

    let today = Date::from_ymd(2026, 12, 7).unwrap();
    let fleet = active_rows(&items, today);
    assert_eq!(fleet.rows.len(), fleet.items.len());
    assert_eq!(fleet.rows.len() + fleet.left_out.len(), items.len());
    let mut previous = 0;
    for (row, &(t, id)) in fleet.rows.iter().zip(&fleet.items) {
        assert!(row.line > previous && row.line <= items.len());
        previous = row.line;
        let item = &items[row.line - 1];
        assert_eq!((t, id), (item.itemtype, item.id));
        assert_eq!(item.left_out(today), None);
    }
    assert!(fleet.left_out.iter().all(|l| l.itemtype == itemtype));
}

/// The item written back as GLPI would send it parses to the same item (less the
/// warranty's end, which is computed and not written back).
fn round_trip(item: &ApiItem) {
    for text in [
        &item.row.name,
        &item.row.serial,
        &item.row.inventory_number,
        &item.row.location,
        &item.row.uuid,
        &item.row.manufacturer,
        &item.row.model,
        &item.state,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!text.is_empty() && text.trim() == text && text != "&nbsp;");
    }
    let date = |d: Option<Date>| d.map_or(Value::Null, |d| Value::String(d.to_string()));
    let mut infocoms = Map::new();
    infocoms.insert("buy_date".into(), date(item.row.purchase_date));
    infocoms.insert("delivery_date".into(), date(item.row.delivery_date));
    infocoms.insert("use_date".into(), date(item.row.startup_date));
    infocoms.insert("decommission_date".into(), date(item.decommission_date));
    let model = match item.itemtype {
        ItemType::Computer => "computermodels_id",
        ItemType::Monitor => "monitormodels_id",
    };
    let mut written = json!({
        "id": item.id,
        "name": item.row.name,
        "serial": item.row.serial,
        "otherserial": item.row.inventory_number,
        "locations_id": item.row.location,
        "uuid": item.row.uuid,
        "manufacturers_id": item.row.manufacturer,
        "states_id": item.state,
        "is_deleted": u8::from(item.deleted),
        "is_template": u8::from(item.template),
        "_infocoms": infocoms,
    });
    written[model] = json!(item.row.model);
    let body = serde_json::to_vec(&json!([written])).unwrap();
    let back = parse_page(item.itemtype, &body).unwrap_or_else(|e| panic!("{item:?}: {e}"));
    let expected = ApiItem {
        warranty_end: None,
        ..item.clone()
    };
    assert_eq!(back, [expected]);
}

/// A warranty ends on or after its start (read with the same date parser, as a
/// purchase date).
fn warranty(itemtype: ItemType, item: &ApiItem, element: &Value) {
    let Some(end) = item.warranty_end else {
        return;
    };
    let start = element["_infocoms"]["warranty_date"].clone();
    let probe = serde_json::to_vec(&json!([{"id": 0, "_infocoms": {"buy_date": start}}])).unwrap();
    let start = parse_page(itemtype, &probe)
        .ok()
        .and_then(|p| p[0].row.purchase_date);
    let Some(start) = start else {
        panic!("a warranty end {end} without a start ({element})");
    };
    assert!(end >= start, "warranty from {start} ends on {end}");
}
