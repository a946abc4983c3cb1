//! The command-line surface of both binaries, as DESIGN.md lists it.

use std::process::Command;

use veille_tests::bin;

fn run(bin_name: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin(bin_name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {bin_name} {args:?}: {e}"))
}

#[test]
fn help_works_for_every_subcommand() {
    for (b, subs) in [
        (
            "veille-agent",
            vec!["run", "once", "status", "print-config"],
        ),
        (
            "veille-collector",
            vec!["serve", "demo", "print-config", "devices"],
        ),
    ] {
        let top = run(b, &["--help"]);
        assert!(top.status.success(), "{b} --help");
        let text = String::from_utf8_lossy(&top.stdout).to_string();
        for sub in subs {
            assert!(
                text.contains(sub),
                "{b} --help does not list {sub}:\n{text}"
            );
            let out = run(b, &[sub, "--help"]);
            assert!(out.status.success(), "{b} {sub} --help failed");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("Usage"),
                "{b} {sub} --help prints no usage"
            );
        }
    }
}

#[test]
fn print_config_prints_valid_annotated_toml() {
    for b in ["veille-agent", "veille-collector"] {
        let out = run(b, &["print-config"]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines().filter(|l| l.starts_with('#')).count() > 5,
            "{b}: not annotated"
        );
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{b} print-config is not TOML: {e}"));
    }
}

#[test]
fn a_config_error_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "report_intervall_s = 60\n").unwrap();
    let out = run(
        "veille-agent",
        &["status", "--config", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("report_intervall_s"), "{err}");
}

#[test]
fn once_prints_a_valid_report_of_this_machine() {
    let out = run("veille-agent", &["once", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["device_id"], veille_tests::this_device_id());
    let r = &v["reports"][0];
    assert_eq!(r["boot_id"], veille_tests::this_boot_id());
    let len = r["end_unix_ms"].as_i64().unwrap() - r["start_unix_ms"].as_i64().unwrap();
    let states: i64 = ["active_ms", "idle_ms", "sleep_ms"]
        .iter()
        .map(|k| r[k].as_i64().unwrap())
        .sum();
    assert_eq!(states, len);
    assert!(len >= 1000, "sampled for a second: {len} ms");
    assert!(!v["inventory"]["hostname"].as_str().unwrap().is_empty());
    // Issue 21: enums printed as numbers ("activity_rule": 2, "chassis": 0).
    let rule = r["activity_rule"].as_str().expect("activity_rule by name");
    assert!(
        ["USER_INPUT", "CPU_BUSY", "MIXED"].contains(&rule),
        "{rule}"
    );
    let chassis = v["inventory"]["chassis"].as_str().expect("chassis by name");
    assert!(
        chassis.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
        "{chassis}"
    );
    for e in r["events"].as_array().unwrap() {
        assert!(e["kind"].is_string(), "event kind by name: {e}");
    }
}
