//! An ENFORCE policy end to end with the real binaries and a recording enforcer
//! (`[enforcer] command` = a script appending its arguments to a file; nothing is
//! powered off). Two agents run side by side so the test stays near two minutes:
//! - online: `policy set` on a running collector → the agent pins the key and holds the
//!   policy → idle past the threshold it warns, then "shuts down" when the warning time
//!   is up → POLICY_WARNED / POLICY_SHUTDOWN reach the store and the compliance report.
//! - offline: an agent gets the policy from its collector, then the collector is stopped
//!   and the agent restarted on the same state dir: it loads the stored policy and
//!   enforces it alone (warn, then power off), and its events reach the collector once
//!   it is back.
//!
//! Idle time: without logind sessions the agent counts idle time from the last CPU-busy
//! sample; `cpu_busy_threshold = 1.0` makes this machine count as idle whatever its load.
//! The VM reports no chassis (unknown = maybe a server), so the policy names this host
//! and the agents set `allow_shutdown = true`: the servers' double opt-in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use veille_proto::v1::EventKind;
use veille_tests::{Agent, Collector, bin, stored_reports, wait_until};

/// Longer than the harness's deadline: idle threshold + warning time are 60 s each.
const ENFORCE_DEADLINE: Duration = Duration::from_secs(170);

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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// Sets an enforce policy open now (every day, UTC, from 30 minutes ago for two hours,
/// across midnight when it falls there) with the shortest idle threshold and warning
/// time validation allows, through the running collector.
fn set_enforce_policy(data: &Path, files: &Path) {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let hm = |z: jiff::Zoned| z.strftime("%H:%M").to_string();
    let start = hm(now.checked_sub(jiff::Span::new().minutes(30)).unwrap());
    let end = hm(now.checked_add(jiff::Span::new().hours(2)).unwrap());
    let path = files.join("enforce.toml");
    std::fs::write(
        &path,
        format!(
            "org = \"default\"\nmode = \"enforce\"\nidle_threshold_s = 60\nwarning_s = 60\n\
             servers_named = [\"{}\"]\n\n[[windows]]\ndays = [\"all\"]\nstart = \"{start}\"\n\
             end = \"{end}\"\ntime_zone = \"UTC\"\n",
            hostname()
        ),
    )
    .unwrap();
    let (ok, out, err) = run(&["policy", "set", "--file", path.to_str().unwrap()], data);
    assert!(ok, "policy set failed: {err}");
    assert!(out.contains("version 1"), "{out}");
}

/// A recording enforcer: appends one line per call, its arguments space-separated.
fn recorder(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join(format!("{name}.calls"));
    let script = dir.join(format!("{name}.sh"));
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits for a `warn <deadline> <message>` then a `poweroff`, and nothing else.
fn wait_for_warn_then_poweroff(log: &Path, started: Instant) {
    while calls(log).len() < 2 {
        assert!(
            started.elapsed() < ENFORCE_DEADLINE,
            "no warn + poweroff recorded in {}: {:?}",
            log.display(),
            calls(log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = calls(log);
    assert_eq!(c.len(), 2, "{c:?}");
    let mut warn = c[0].splitn(3, ' ');
    assert_eq!(warn.next(), Some("warn"), "{c:?}");
    let deadline: i64 = warn.next().unwrap().parse().unwrap();
    let now_s = veille_tests::now_unix_ms() / 1000;
    assert!(
        (now_s - 120..=now_s + 5).contains(&deadline),
        "deadline {deadline} vs now {now_s}"
    );
    assert!(
        warn.next().unwrap().contains("veille-agent postpone"),
        "{c:?}"
    );
    assert_eq!(c[1], "poweroff");
}

fn events(reports: &[veille_proto::v1::Report], kind: EventKind) -> usize {
    reports
        .iter()
        .flat_map(|r| &r.events)
        .filter(|e| e.kind == kind as i32)
        .count()
}

fn compliance(data: &Path) -> serde_json::Value {
    let (from, to) = (
        veille_tests::collector_day(-1),
        veille_tests::collector_day(1),
    );
    let (ok, out, err) = run(
        &[
            "report",
            "compliance",
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "json",
        ],
        data,
    );
    assert!(ok, "report compliance failed: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn an_idle_agent_is_warned_then_shut_down_online_and_with_its_collector_stopped() {
    let files = tempfile::tempdir().unwrap();
    let (online_data, offline_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (online_state, offline_state) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (online_script, online_log) = recorder(files.path(), "online");
    let (offline_script, offline_log) = recorder(files.path(), "offline");
    let env = |script: &Path| {
        vec![
            ("VEILLE_CPU_BUSY_THRESHOLD", "1.0".to_owned()),
            ("VEILLE_ALLOW_SHUTDOWN", "true".to_owned()),
            (
                "VEILLE_ENFORCER__COMMAND",
                script.to_str().unwrap().to_owned(),
            ),
        ]
    };
    let start_agent = |name: &str, state: &Path, c: (&str, &str), script: &Path| {
        let env = env(script);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Agent::start_with(name, state, c.0, c.1, Some(name), &env)
    };

    let mut online_collector = Collector::start(online_data.path(), "127.0.0.1:0");
    set_enforce_policy(online_data.path(), files.path());
    let mut offline_collector = Collector::start_with(
        "collector-offline",
        offline_data.path(),
        "127.0.0.1:0",
        None,
        &[],
    );
    set_enforce_policy(offline_data.path(), files.path());
    let (offline_url, offline_token, offline_grpc) = (
        offline_collector.url(),
        offline_collector.token(),
        offline_collector.grpc.clone(),
    );

    // Offline agent: gets and pins the policy, then loses its collector and restarts.
    let mut offline = start_agent(
        "enforce-offline",
        offline_state.path(),
        (&offline_url, &offline_token),
        &offline_script,
    );
    offline.proc.wait_for_line("new policy accepted");
    wait_until("the offline agent to pin the key", || {
        offline.state()["pinned_policy_key"].is_string()
    });
    assert_eq!(offline.proc.stop(), Some(0));
    assert_eq!(offline_collector.proc.stop(), Some(0));
    let mut offline = start_agent(
        "enforce-offline",
        offline_state.path(),
        (&offline_url, &offline_token),
        &offline_script,
    );
    offline.proc.wait_for_line("stored policy loaded");
    let offline_started = Instant::now();

    let online_started = Instant::now();
    let mut online = start_agent(
        "enforce-online",
        online_state.path(),
        (&online_collector.url(), &online_collector.token()),
        &online_script,
    );
    online.proc.wait_for_line("new policy accepted");
    // Idle below the threshold: nothing is done yet.
    assert!(calls(&online_log).is_empty() && calls(&offline_log).is_empty());

    wait_for_warn_then_poweroff(&offline_log, offline_started);
    wait_for_warn_then_poweroff(&online_log, online_started);

    // The online agent's events reached the store and the compliance report.
    wait_until("the shutdown in the compliance report", || {
        compliance(online_data.path())[0]["shutdowns"].as_u64() == Some(1)
    });
    let c = compliance(online_data.path());
    assert_eq!(c[0]["policy_mode"], "enforce", "{c}");
    assert_eq!(c[0]["warned"], 1, "{c}");
    assert_eq!(online.proc.stop(), Some(0));
    wait_until("the online spool to drain", || online.spooled() == 0);
    assert_eq!(online_collector.proc.stop(), Some(0));
    let reports = stored_reports(online_data.path(), "enforce-online");
    assert_eq!(events(&reports, EventKind::PolicyWarned), 1);
    assert_eq!(events(&reports, EventKind::PolicyShutdown), 1);

    // The offline agent's events wait in its spool until its collector is back.
    assert!(offline.spooled() > 0);
    let mut offline_collector = Collector::start_with(
        "collector-offline",
        offline_data.path(),
        &offline_grpc,
        None,
        &[],
    );
    wait_until("the offline spool to drain", || offline.spooled() == 0);
    assert_eq!(offline.proc.stop(), Some(0));
    assert_eq!(offline_collector.proc.stop(), Some(0));
    let reports = stored_reports(offline_data.path(), "enforce-offline");
    assert_eq!(events(&reports, EventKind::PolicyWarned), 1);
    assert_eq!(events(&reports, EventKind::PolicyShutdown), 1);
    // Nothing was enforced twice.
    assert_eq!(calls(&online_log).len(), 2);
    assert_eq!(calls(&offline_log).len(), 2);
}
