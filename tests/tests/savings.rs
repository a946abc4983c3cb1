//! Proof of savings end to end (issue 19): the real collector, a dry-run then an
//! enforced policy set through the CLI, and a small fleet sent over gRPC whose devices
//! stay on day and night before enforcement and are off from 18:00 to 08:00 after it.
//! `report savings` (through the running server's API) must find the drop per site
//! and call it significant; a site whose devices did not change must not.

use veille_tests::Collector;
use veille_tests::savings_fleet::{collector_cli, seed};

#[test]
fn report_savings_finds_the_drop_of_an_enforced_policy_per_site() {
    let (data, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let from = tokio::runtime::Runtime::new().unwrap().block_on(seed(
        data.path(),
        files.path(),
        &collector.url(),
        &collector.token(),
    ));

    // Version 2 was set today: no whole day of it yet.
    let (code, _, err) =
        collector_cli(&["report", "savings", "--policy-version", "2"], data.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no whole day of it has passed yet"), "{err}");
    // Version 1 is a dry run.
    let (code, _, err) =
        collector_cli(&["report", "savings", "--policy-version", "1"], data.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("dry-run mode"), "{err}");

    let (code, out, err) = collector_cli(
        &[
            "report",
            "savings",
            "--policy-version",
            "2",
            "--enforced-from",
            &from,
            "--format",
            "json",
        ],
        data.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["org"], "default");
    assert_eq!(r["periods"]["baseline_is_dry_run"], false);
    let sites = r["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{out}");
    let (annex, hq) = (&sites[0], &sites[1]);
    assert_eq!(hq["site"], "HQ");
    // The collector's day is Europe/Paris: 6 whole enforced days at least, the day of
    // the change left out.
    assert!(hq["enforced_days"].as_u64().unwrap() >= 5, "{hq}");
    assert!(hq["baseline_days"].as_u64().unwrap() >= 5, "{hq}");
    assert_eq!(hq["significant"], true, "{hq}");
    let saved = hq["saved_kwh_per_device_day"].as_f64().unwrap();
    let before = hq["baseline_kwh_per_device_day"].as_f64().unwrap();
    assert!(saved > 0.2 * before, "{hq}");
    assert!(hq["saved_low"].as_f64().unwrap() > 0.0, "{hq}");
    assert!(
        hq["verdict"].as_str().unwrap().starts_with("saved "),
        "{hq}"
    );
    assert_eq!(annex["site"], "Annex");
    assert_eq!(annex["significant"], false, "{annex}");

    // The table says it in words.
    let (code, out, err) = collector_cli(
        &[
            "report",
            "savings",
            "--policy-version",
            "2",
            "--enforced-from",
            &from,
        ],
        data.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("(before the policy)"), "{out}");
    assert!(out.contains("no significant difference"), "{out}");
}
