//! The web page end to end: a real collector with a simulated fleet sent over gRPC,
//! driven by the real Debian Chromium through chromedriver (WebDriver). Logs in, reads
//! the overview's figures and compares them with `veille-collector report
//! consumption` for the same month, downloads the CSV and compares it byte for byte
//! with the CLI's, opens a device page, and saves screenshots (paths and sizes in the
//! test log). Without a session every page redirects to the login; a wrong token is
//! refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use fantoccini::Locator;
use veille_tests::fleet::{http, sample_fleet, seed};
use veille_tests::{Collector, bin, savings_fleet};

use veille_tests::browser::browser;

/// The collector's report month (its default time zone) as `veille-collector` sees it.
fn this_month() -> (String, String, String) {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let today = jiff::Timestamp::now().to_zoned(tz).date();
    let first = today.first_of_month();
    (
        format!("{:04}-{:02}", first.year(), first.month()),
        first.to_string(),
        first.last_of_month().to_string(),
    )
}

fn cli_report(data: &Path, from: &str, to: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new(bin("veille-collector"))
        .args(["report", "consumption", "--data-dir"])
        .arg(data)
        .args(["--from", from, "--to", to])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report consumption: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Width and height from a PNG's IHDR.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn save_screenshot(dir: &Path, name: &str, png: &[u8]) -> PathBuf {
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    let (w, h) = png_size(png);
    println!(
        "screenshot {}: {} bytes, {w}x{h}",
        path.display(),
        png.len()
    );
    assert!(png.len() > 5_000, "a blank screenshot is tiny");
    path
}

#[test]
fn pages_without_a_session_redirect_and_a_wrong_token_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let addr = collector.http.clone();
    for path in [
        "/",
        "/consumption",
        "/consumption.csv?month=2026-01&by=site",
        "/devices",
        "/device/default/x",
    ] {
        let r = http(&addr, "GET", path, None, None);
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/login"), "{path}");
        assert!(r.body.is_empty(), "{path}: no data without a session");
    }
    let r = http(&addr, "GET", "/", Some("veille_session=forged"), None);
    assert_eq!(r.status, 303, "a forged session id is no session");

    let r = http(
        &addr,
        "POST",
        "/login",
        None,
        Some("token=wrong-token-123456&lang=en"),
    );
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert!(r.text().contains("Unknown token: access refused."));

    // The org token opens a session; the cookie is HttpOnly and SameSite=Strict.
    let token = collector.token();
    let r = http(
        &addr,
        "POST",
        "/login",
        None,
        Some(&format!("token={token}")),
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = http(&addr, "GET", "/", Some(&pair), None);
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
    // Logout is POST only, and ends the session.
    assert_eq!(http(&addr, "GET", "/logout", Some(&pair), None).status, 405);
    assert_eq!(
        http(&addr, "POST", "/logout", Some(&pair), Some("")).status,
        303
    );
    assert_eq!(http(&addr, "GET", "/", Some(&pair), None).status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_logs_in_and_sees_the_cli_figures() {
    let data = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let token = collector.token();
    seed(&collector.url(), &token, &sample_fleet(), 90).await;
    let base = format!("http://{}", collector.http);

    let (mut driver, c) = browser(profile.path()).await;

    let result = async {
        // No session: the overview sends the browser to the login page.
        c.goto(&format!("{base}/")).await?;
        assert_eq!(c.current_url().await?.path(), "/login");

        // A wrong token is refused, with a message and no data.
        c.find(Locator::Id("token")).await?.send_keys("not-the-token-0000").await?;
        c.find(Locator::Id("sign-in")).await?.click().await?;
        let err = c.wait().for_element(Locator::Id("login-error")).await?;
        assert!(!err.text().await?.is_empty());
        assert!(c.find(Locator::Id("kwh")).await.is_err());
        save_screenshot(&shots, "1-login-refused", &c.screenshot().await?);

        // The org token logs in and lands on the overview.
        c.find(Locator::Id("token")).await?.send_keys(&token).await?;
        c.find(Locator::Id("sign-in")).await?.click().await?;
        let kwh = c.wait().for_element(Locator::Id("kwh")).await?;
        assert_eq!(c.current_url().await?.path(), "/");
        // The stylesheet is a file the CSP allows (`style-src 'self'`, no inline
        // style): Chromium applied it, so the header has its colour, not the default.
        let header_bg = c
            .find(Locator::Css("header"))
            .await?
            .css_value("background-color")
            .await?;
        assert_eq!(header_bg, "rgba(18, 58, 99, 1)", "the stylesheet is applied");
        let page_kwh: f64 = kwh.attr("data-value").await?.unwrap().parse().unwrap();
        let page_eur: f64 = c
            .find(Locator::Id("eur"))
            .await?
            .attr("data-value")
            .await?
            .unwrap()
            .parse()
            .unwrap();
        let page_co2: f64 = c
            .find(Locator::Id("kgco2e"))
            .await?
            .attr("data-value")
            .await?
            .unwrap()
            .parse()
            .unwrap();
        let trend_bars = c.find_all(Locator::Css("svg[aria-labelledby='trend-t'] rect")).await?;
        assert_eq!(trend_bars.len(), 12, "12 months on the trend chart");
        save_screenshot(&shots, "2-overview", &c.screenshot().await?);

        // The same month from the command line (through the running server's API).
        let (month, first, last) = this_month();
        let json = cli_report(data.path(), &first, &last, &["--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let total = &v["total"];
        println!(
            "overview {month}: {page_kwh} kWh, {page_eur} €, {page_co2} kgCO2e; CLI: {} kWh, {} €, {} kgCO2e",
            total["kwh"], total["eur"], total["kg_co2e"]
        );
        assert!(page_kwh > 0.0, "90 minutes of three devices");
        assert_eq!(page_kwh, total["kwh"].as_f64().unwrap());
        assert_eq!(page_eur, total["eur"].as_f64().unwrap());
        assert_eq!(page_co2, total["kg_co2e"].as_f64().unwrap());

        // The consumption page by site, and its CSV: the CLI's bytes.
        c.goto(&format!("{base}/consumption?month={month}&by=site")).await?;
        let table = c.wait().for_element(Locator::Id("report")).await?;
        let text = table.text().await?;
        assert!(text.contains("Lyon") && text.contains("Paris"), "{text}");
        let href = c
            .find(Locator::Id("csv"))
            .await?
            .attr("href")
            .await?
            .unwrap();
        save_screenshot(&shots, "3-consumption", &c.screenshot().await?);
        let session = c.get_named_cookie("veille_session").await?;
        let cookie = format!("veille_session={}", session.value());
        let addr = collector.http.clone();
        let path = if href.starts_with("http") {
            url_path(&href)
        } else {
            href.clone()
        };
        let csv = tokio::task::spawn_blocking(move || http(&addr, "GET", &path, Some(&cookie), None))
            .await
            .unwrap();
        assert_eq!(csv.status, 200, "{href}");
        assert!(csv.header("content-disposition").is_some_and(|d| d.starts_with("attachment")));
        let cli_csv = cli_report(data.path(), &first, &last, &["--by", "site", "--format", "csv"]);
        assert_eq!(
            csv.body,
            cli_csv,
            "page CSV:\n{}\nCLI CSV:\n{}",
            csv.text(),
            String::from_utf8_lossy(&cli_csv)
        );
        println!("CSV {href}: {} bytes, identical to the CLI's", csv.body.len());

        // The comparison page: the org's own indicators, the figures of `report compare
        // --org` (through the running server's API), and no rank (an org session).
        c.goto(&format!("{base}/compare?month={month}")).await?;
        let table = c.wait().for_element(Locator::Css("table.compare")).await?;
        assert_eq!(table.attr("data-org").await?.as_deref(), Some("default"));
        assert_eq!(c.find_all(Locator::Css("table.compare")).await?.len(), 1);
        let page_kwh_dy: f64 = c
            .find(Locator::Css("td[data-indicator='kwh_per_device_year']"))
            .await?
            .attr("data-value")
            .await?
            .unwrap()
            .parse()
            .unwrap();
        let out = Command::new(bin("veille-collector"))
            .args(["report", "compare", "--org", "default", "--format", "json", "--data-dir"])
            .arg(data.path())
            .args(["--from", &first, "--to", &last])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let cmp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            page_kwh_dy,
            cmp["orgs"][0]["indicators"]["kwh_per_device_year"].as_f64().unwrap()
        );
        assert!(page_kwh_dy > 0.0);
        assert!(!table.text().await?.contains('#'), "no rank for an org session");
        save_screenshot(&shots, "3b-compare", &c.screenshot().await?);

        // The device list escapes hostnames; a device page has its timeline and inventory.
        c.goto(&format!("{base}/devices")).await?;
        let list = c.wait().for_element(Locator::Id("devices")).await?;
        assert!(list.text().await?.contains("compta<&>02"));
        c.find(Locator::LinkText("accueil-01")).await?.click().await?;
        let tl = c.wait().for_element(Locator::Id("timeline")).await?;
        let cols = tl.find_all(Locator::Css("rect[data-state]")).await?;
        assert!(cols.len() >= 7 * 24, "a column (at least unknown) per hour: {}", cols.len());
        let awake = tl
            .find_all(Locator::Css("rect[data-state='idle']"))
            .await?;
        assert!(!awake.is_empty(), "the seeded hours show as idle");
        let inv = c.find(Locator::Id("inventory")).await?.text().await?;
        assert!(inv.contains("OptiPlex 7090") && inv.contains("Lyon"), "{inv}");
        save_screenshot(&shots, "4-device", &c.screenshot().await?);

        // The renewal and compliance pages show what the CLI computes (through the
        // same server's API), figure for figure.
        let cli = |args: &[&str]| {
            let out = Command::new(bin("veille-collector"))
                .args(args)
                .arg("--data-dir")
                .arg(data.path())
                .args(["--format", "json"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        c.find(Locator::LinkText("Renewal")).await?.click().await?;
        let groups = c.wait().for_element(Locator::Id("renewal-groups")).await?;
        let mut page_groups = Vec::new();
        for row in groups.find_all(Locator::Css("tbody tr")).await? {
            let cells = row.find_all(Locator::Css("td")).await?;
            let mut vals = Vec::new();
            for cell in &cells[2..] {
                vals.push(cell.attr("data-value").await?.unwrap().parse::<f64>().unwrap() as u64);
            }
            page_groups.push((cells[0].text().await?, cells[1].text().await?, vals));
        }
        let renewal = cli(&["report", "renewal"]);
        let cli_groups: Vec<(String, String, Vec<u64>)> = renewal["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let n = |k: &str| g[k].as_u64().unwrap();
                (
                    g["site"].as_str().unwrap().to_owned(),
                    g["class"].as_str().unwrap().to_owned(),
                    vec![
                        n("total"),
                        n("ok"),
                        n("approaching"),
                        n("past"),
                        n("reuse"),
                        n("recycle"),
                        n("without_agent"),
                    ],
                )
            })
            .collect();
        assert!(!cli_groups.is_empty(), "the seeded fleet has devices: {renewal}");
        assert_eq!(page_groups, cli_groups);
        let past_rows = match c.find(Locator::Id("past-horizon")).await {
            Ok(t) => t.find_all(Locator::Css("tbody tr")).await?.len(),
            Err(_) => 0,
        };
        assert_eq!(past_rows, renewal["past_horizon"].as_array().unwrap().len());
        save_screenshot(&shots, "5-renewal", &c.screenshot().await?);

        c.goto(&format!("{base}/compliance?month={month}")).await?;
        let table = c.wait().for_element(Locator::Id("compliance")).await?;
        let compliance = cli(&["report", "compliance", "--from", &first, "--to", &last]);
        let cli_rows = compliance.as_array().unwrap();
        let page_rows = table.find_all(Locator::Css("tbody tr")).await?;
        assert_eq!(page_rows.len(), cli_rows.len());
        for (tr, want) in page_rows.iter().zip(cli_rows) {
            let cells = tr.find_all(Locator::Css("td")).await?;
            assert_eq!(cells[1].text().await?, want["site"].as_str().unwrap());
            let value = |i: usize| {
                let cell = cells[i].clone();
                async move { cell.attr("data-value").await.map(|v| v.unwrap().parse::<f64>().unwrap()) }
            };
            assert_eq!(value(3).await?, want["devices"].as_f64().unwrap());
            assert_eq!(value(5).await?, want["left_on_hours"].as_f64().unwrap());
            assert_eq!(value(6).await?, want["wasted_kwh"].as_f64().unwrap());
        }
        save_screenshot(&shots, "6-compliance", &c.screenshot().await?);

        // Replaying a draft: the form starts from the shipped sample for this org;
        // submitted as is, the page shows what `policy replay` computes on that file.
        c.find(Locator::LinkText("Replay")).await?.click().await?;
        c.wait().for_element(Locator::Id("draft")).await?;
        let (from, to) = (
            c.find(Locator::Id("from")).await?.prop("value").await?.unwrap(),
            c.find(Locator::Id("to")).await?.prop("value").await?.unwrap(),
        );
        assert_eq!((from.as_str(), to.as_str()), (first.as_str(), last.as_str()));
        c.find(Locator::Id("run-replay")).await?.click().await?;
        let table = c.wait().for_element(Locator::Id("replay")).await?;
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policy.toml");
        let replay = cli(&[
            "policy",
            "replay",
            "--file",
            sample.to_str().unwrap(),
            "--from",
            &first,
            "--to",
            &last,
        ]);
        let cli_rows = replay.as_array().unwrap();
        let page_rows = table.find_all(Locator::Css("tbody tr")).await?;
        assert!(!cli_rows.is_empty());
        assert_eq!(page_rows.len(), cli_rows.len());
        for (tr, want) in page_rows.iter().zip(cli_rows) {
            let cells = tr.find_all(Locator::Css("td")).await?;
            assert_eq!(cells[1].text().await?, want["site"].as_str().unwrap());
            for (i, key) in [(2, "devices"), (5, "saved_kwh"), (8, "interrupted_active_h")] {
                let shown: f64 = cells[i].attr("data-value").await?.unwrap().parse().unwrap();
                assert_eq!(shown, want[key].as_f64().unwrap(), "{key}");
            }
        }
        save_screenshot(&shots, "7-replay", &c.screenshot().await?);
        // A draft of another org is refused for an org session, with the reason.
        let draft = c.find(Locator::Id("draft")).await?;
        draft.clear().await?;
        draft
            .send_keys("org = \"elsewhere\"\nmode = \"dry-run\"\n")
            .await?;
        c.find(Locator::Id("run-replay")).await?.click().await?;
        let err = c.wait().for_element(Locator::Id("replay-error")).await?;
        assert!(err.text().await?.contains("elsewhere"), "{}", err.text().await?);

        // French on request: decimal comma, and the choice sticks.
        c.goto(&format!("{base}/?lang=fr")).await?;
        let html = c.find(Locator::Css("html")).await?.attr("lang").await?;
        assert_eq!(html.as_deref(), Some("fr"));
        let shown = c.find(Locator::Id("kwh")).await?.text().await?;
        assert!(shown.contains(',') && shown.ends_with("kWh"), "{shown}");
        c.goto(&format!("{base}/devices")).await?;
        assert_eq!(
            c.find(Locator::Css("html")).await?.attr("lang").await?.as_deref(),
            Some("fr")
        );
        save_screenshot(&shots, "5-overview-fr", &{
            c.goto(&format!("{base}/")).await?;
            c.screenshot().await?
        });

        // Sign out: back to the login, and the pages are closed again.
        c.find(Locator::Css("form[action='/logout'] button")).await?.click().await?;
        c.wait().for_element(Locator::Id("token")).await?;
        c.goto(&format!("{base}/devices")).await?;
        assert_eq!(c.current_url().await?.path(), "/login");
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    driver.stop();
    result.expect("browser steps");
}

/// The savings page (issue 19): a dry-run then an enforced policy and a fleet whose
/// "HQ" devices go off at night once enforced, beside an "Annex" that did not change.
/// The page shows, per site, the figures `report savings --format json` gives, in
/// French too, and says which difference is significant.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_the_savings_of_an_enforced_policy() {
    let (data, files, profile) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let token = collector.token();
    let from = savings_fleet::seed(data.path(), files.path(), &collector.url(), &token).await;
    let (code, out, err) = savings_fleet::collector_cli(
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
    let cli: serde_json::Value = serde_json::from_str(&out).unwrap();
    let base = format!("http://{}", collector.http);
    let (mut driver, c) = browser(profile.path()).await;

    let result = async {
        c.goto(&format!("{base}/savings?lang=en")).await?;
        assert_eq!(c.current_url().await?.path(), "/login");
        c.find(Locator::Id("token"))
            .await?
            .send_keys(&token)
            .await?;
        c.find(Locator::Id("sign-in")).await?.click().await?;
        c.wait().for_element(Locator::Id("kwh")).await?;

        // The navigation leads to the form; the form to the report.
        c.find(Locator::Css("nav a[href='/savings']"))
            .await?
            .click()
            .await?;
        c.find(Locator::Id("policy_version"))
            .await?
            .send_keys("2")
            .await?;
        let day = c.find(Locator::Id("enforced_from")).await?;
        // A date input takes the date as typed in the browser's locale (en-US here):
        // set its value directly instead.
        c.execute(
            "arguments[0].value = arguments[1];",
            vec![serde_json::to_value(&day).unwrap(), serde_json::json!(from)],
        )
        .await?;
        c.find(Locator::Id("show")).await?.click().await?;
        c.wait().for_element(Locator::Id("savings")).await?;
        assert_eq!(c.current_url().await?.path(), "/savings");

        for site in cli["sites"].as_array().unwrap() {
            let name = site["site"].as_str().unwrap();
            let row = c
                .find(Locator::Css(&format!("#savings tr[data-site='{name}']")))
                .await?;
            let values = row.find_all(Locator::Css("td[data-value]")).await?;
            assert_eq!(values.len(), 3, "{name}");
            for (cell, key) in values.iter().zip([
                "baseline_kwh_per_device_day",
                "enforced_kwh_per_device_day",
                "saved_kwh_per_device_day",
            ]) {
                let shown: f64 = cell.attr("data-value").await?.unwrap().parse().unwrap();
                let expected = site[key].as_f64().unwrap();
                assert!(
                    (shown - expected).abs() < 1e-9,
                    "{name} {key}: {shown} vs {expected}"
                );
            }
            let verdict = row.find(Locator::Css("td:last-child")).await?;
            let class = verdict.attr("class").await?.unwrap_or_default();
            let significant = site["significant"].as_bool().unwrap();
            assert_eq!(class == "significant", significant, "{name}: {class}");
        }
        let hq = c
            .find(Locator::Css("#savings tr[data-site='HQ'] td:last-child"))
            .await?;
        assert_eq!(hq.text().await?, "significant saving");
        save_screenshot(&shots, "6-savings", &c.screenshot().await?);

        // In French, with the decimal comma.
        let url = c.current_url().await?;
        c.goto(&format!("{url}&lang=fr")).await?;
        let hq = c
            .find(Locator::Css("#savings tr[data-site='HQ'] td:last-child"))
            .await?;
        assert_eq!(hq.text().await?, "économie significative");
        let annex = c
            .find(Locator::Css("#savings tr[data-site='Annex'] td:last-child"))
            .await?;
        assert_eq!(annex.text().await?, "pas de différence significative");
        let saved = c
            .find(Locator::Css(
                "#savings tr[data-site='HQ'] td[data-value]:nth-of-type(3)",
            ))
            .await?
            .text()
            .await?;
        assert!(saved.contains(','), "{saved}");

        // A dry-run version: the reason, no table.
        c.goto(&format!("{base}/savings?policy_version=1&lang=en"))
            .await?;
        let why = c.find(Locator::Id("savings-error")).await?.text().await?;
        assert!(why.contains("dry-run mode"), "{why}");
        assert!(c.find(Locator::Id("savings")).await.is_err());
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    driver.stop();
    result.expect("browser steps");
}

fn url_path(href: &str) -> String {
    let after = href.split_once("//").map_or(href, |(_, r)| r);
    after
        .find('/')
        .map_or("/".to_owned(), |i| after[i..].to_owned())
}
