//! The auto-shutdown policy end to end with the real binaries: `policy set` on a running
//! collector → the signed policy rides on the gRPC Ack → the agent pins the key on
//! first contact, keeps the policy and evaluates it (dry run: events only) → the events
//! reach the store and the compliance report. A policy signed by another key, planted in
//! the collector's store, is rejected by the agent (POLICY_REJECTED) which keeps the
//! old one. Enforcement (warn → postpone → power off) is tested in-process with the
//! recording enforcer (`veille_agent::policy` tests): no test powers anything off.

use std::path::Path;
use std::process::Command;

use veille_proto::v1::EventKind;
use veille_tests::{Agent, Collector, bin, stored_reports, wait_until};

fn run(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A dry-run policy whose window (every day, UTC) is open now for two more hours.
fn policy_file(dir: &Path, org: &str, version: u64) -> std::path::PathBuf {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let hm = |z: jiff::Zoned| z.strftime("%H:%M").to_string();
    let start = hm(now.checked_sub(jiff::Span::new().minutes(30)).unwrap());
    let end = hm(now.checked_add(jiff::Span::new().hours(2)).unwrap());
    let path = dir.join(format!("policy-{version}.toml"));
    std::fs::write(
        &path,
        format!(
            "org = \"{org}\"\nversion = {version}\nmode = \"dry-run\"\nidle_threshold_s = 60\n\
             warning_s = 60\npostpones_allowed = 1\npostpone_s = 60\n\n[[windows]]\n\
             days = [\"all\"]\nstart = \"{start}\"\nend = \"{end}\"\ntime_zone = \"UTC\"\n"
        ),
    )
    .unwrap();
    path
}

fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

fn compliance(data: &Path) -> serde_json::Value {
    let (ok, out, err) = run(
        &[
            "report",
            "compliance",
            "--from",
            &today(),
            "--to",
            &today(),
            "--format",
            "json",
        ],
        data,
    );
    assert!(ok, "report compliance failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn events(reports: &[veille_proto::v1::Report], kind: EventKind) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| &r.events)
        .filter(|e| e.kind == kind as i32)
        .map(|e| e.detail.clone())
        .collect()
}

#[test]
fn a_signed_dry_run_policy_reaches_the_agent_and_a_forged_one_is_rejected() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let (url, token, grpc) = (collector.url(), collector.token(), collector.grpc.clone());
    let mut collector = collector;

    // Set through the running server (HTTP API, operator token).
    let file = policy_file(files.path(), "default", 0);
    let (ok, out, err) = run(
        &["policy", "set", "--file", file.to_str().unwrap()],
        data.path(),
    );
    assert!(ok, "policy set failed: {err}");
    assert!(out.contains("version 1"), "{out}");
    // A version not above the current one is refused, naming both (exit 2).
    let stale = policy_file(files.path(), "default", 1);
    let (ok, _, err) = run(
        &["policy", "set", "--file", stale.to_str().unwrap()],
        data.path(),
    );
    assert!(!ok && err.contains("not above"), "{err}");
    let (ok, out, err) = run(&["policy", "show", "--format", "json"], data.path());
    assert!(ok, "policy show failed: {err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let public_key = shown["public_key"].as_str().unwrap().to_owned();
    let key_id = shown["key_id"].as_str().unwrap().to_owned();
    assert_eq!(shown["policies"][0]["version"], 1);
    assert_eq!(shown["policies"][0]["mode"], "dry-run");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path().join("policy.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The agent gets it with its first Ack, pins the key (TOFU over gRPC), evaluates.
    let mut agent = Agent::start("agent", state.path(), &url, &token, Some("policy-dev"));
    agent.proc.wait_for_line("new policy accepted");
    agent.proc.wait_for_line("policy: skipped");
    wait_until("the key to be pinned", || {
        agent.state()["pinned_policy_key"].as_str() == Some(public_key.as_str())
    });
    let status = Command::new(bin("veille-agent"))
        .args(["status", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("version 1 mode dry-run") && status.contains(&key_id),
        "{status}"
    );
    // Nothing is pending, so nothing can be postponed.
    let postpone = Command::new(bin("veille-agent"))
        .args(["postpone", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!postpone.status.success());

    // Dry run: a POLICY_SKIPPED event (user active, a would-warn, or an exclusion of
    // this machine's chassis) reaches the compliance report through the server.
    wait_until("a POLICY_SKIPPED in the compliance report", || {
        let c = compliance(data.path());
        c[0]["skipped"].as_u64().unwrap_or(0) >= 1
    });
    let c = compliance(data.path());
    assert_eq!(c[0]["policy_version"], 1);
    assert_eq!(c[0]["shutdowns"], 0, "a dry run never shuts down");

    // A forged policy planted in the store: version 2, signed by another key.
    assert_eq!(collector.proc.stop(), Some(0));
    {
        use veille_collector::policy::{PolicyFile, set};
        let store = veille_collector::store::Store::open(
            &data.path().join(veille_collector::store::STORE_DIR),
        )
        .unwrap();
        let forger = veille_proto::signing::generate_signing_key().unwrap();
        let text = std::fs::read_to_string(policy_file(files.path(), "default", 2)).unwrap();
        let mut draft = PolicyFile::parse(&text).unwrap();
        draft.mode = "enforce".into();
        set(&store, &forger, &draft).unwrap();
    }
    let collector = Collector::start(data.path(), &grpc);
    agent.proc.wait_for_line("policy rejected");
    wait_until("a POLICY_REJECTED in the compliance report", || {
        compliance(data.path())[0]["rejected"].as_u64().unwrap_or(0) >= 1
    });
    let status = Command::new(bin("veille-agent"))
        .args(["status", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("version 1 mode dry-run"),
        "old policy kept: {status}"
    );

    assert_eq!(agent.proc.stop(), Some(0));
    wait_until("the spool to drain", || agent.spooled() == 0);
    let mut collector = collector;
    assert_eq!(collector.proc.stop(), Some(0));
    let reports = stored_reports(data.path(), "policy-dev");
    assert!(!events(&reports, EventKind::PolicySkipped).is_empty());
    assert_eq!(events(&reports, EventKind::PolicyRejected), ["unknown_key"]);
    assert!(events(&reports, EventKind::PolicyShutdown).is_empty());
}
