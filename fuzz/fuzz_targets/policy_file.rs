//! A policy file as an operator writes it (`policy set --file`, TOML or JSON; the HTTP
//! API and the web page's replay form take the same text): parsed, re-serialised as
//! JSON and as TOML it reads back as itself; with its closure calendars folded in it
//! becomes a protobuf policy, and a valid one survives `policy show`'s file form
//! (`from_policy`) unchanged. (`signed_policy` fuzzes the protobuf side.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use veille_domain::policy::file::PolicyFile;
use veille_proto::v1::Policy;
use veille_proto::validate_policy;

/// What every calendar the file names reads as: one event over a bank-holiday bridge.
const CALENDAR: &str = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260515\r\n\
DTEND;VALUE=DATE:20260516\r\nSUMMARY:Pont de l'Ascension\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
/// The year `policy set` would take as the first of its closure years.
const YEAR: i16 = 2026;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = PolicyFile::parse(text) else {
        return;
    };
    let json = serde_json::to_string(&file).expect("a policy file serialises to JSON");
    assert_eq!(
        PolicyFile::parse(&json).ok().as_ref(),
        Some(&file),
        "JSON: {json}"
    );
    // TOML has no integer above i64::MAX: a `version` that large cannot be written back.
    if let Ok(toml) = toml::to_string(&file) {
        assert_eq!(
            PolicyFile::parse(&toml).ok().as_ref(),
            Some(&file),
            "TOML: {toml}"
        );
    }
    let calendars: Vec<(String, String)> = file
        .closure_calendars
        .iter()
        .map(|name| (name.clone(), CALENDAR.to_owned()))
        .collect();
    let Ok(file) = file.with_calendars(&calendars) else {
        return;
    };
    let Ok(policy) = file.to_policy(YEAR) else {
        return;
    };
    if validate_policy(&Policy {
        version: policy.version.max(1),
        ..policy.clone()
    })
    .is_err()
    {
        return;
    }
    let shown = PolicyFile::from_policy(&policy);
    assert_eq!(
        shown.to_policy(YEAR).ok().as_ref(),
        Some(&policy),
        "{shown:?}"
    );
});
