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
            vec![
                "run",
                "once",
                "status",
                "postpone",
                "notifier",
                "print-config",
            ],
        ),
        (
            "veille-collector",
            vec!["serve", "demo", "print-config", "devices", "catalogue"],
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

/// Issue 18: `catalogue lookup` says which profile a device gets, how it matched, and
/// the yearly TEC with its range, from the real binary and the embedded catalogue.
#[test]
fn catalogue_lookup_says_what_matched_and_the_tec() {
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["catalogue", "lookup", "--format", "json"];
        all.extend_from_slice(args);
        let out = run("veille-collector", &all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let close = |v: &serde_json::Value, want: f64| {
        let got = v.as_f64().unwrap();
        assert!((got - want).abs() < 0.01, "{got} != {want}");
    };

    // A per-model entry: Dell's sheet declares 101.45 kWh/yr; entries carry ±10 %.
    let v = json(&[
        "--manufacturer",
        "Dell Inc.",
        "--model",
        "OptiPlex 7090 Tower",
    ]);
    assert_eq!(v["matched"], "model entry");
    assert_eq!(v["class"], "desktop_tower");
    close(&v["tec_kwh"], 101.45);
    close(&v["tec_low_kwh"], 0.9 * 101.45);
    close(&v["tec_high_kwh"], 1.1 * 101.45);
    assert!(v["p_idle_w"]["source"].as_str().unwrap().contains("ODbL"));

    // No entry, SMBIOS chassis type 35 (Mini PC): the mini_pc class, whose profile is
    // off 1.5 W, sleep 1.6 W, idle 6.75 W under the desktop duty cycle:
    // 8.76 × (1.5·0.45 + 1.6·0.05 + 6.75·0.5) = 36.18 kWh/yr, range ×0.76 … ×1.13.
    let v = json(&[
        "--manufacturer",
        "Acme",
        "--model",
        "Box 9",
        "--chassis",
        "35",
    ]);
    assert_eq!(v["matched"], "chassis code");
    assert_eq!(v["class"], "mini_pc");
    assert_eq!(v["chassis_class"], "mini_pc");
    close(&v["tec_kwh"], 36.18);
    close(&v["tec_low_kwh"], 36.1788 * 0.76);
    close(&v["tec_high_kwh"], 36.1788 * 1.13);

    // A model-family rule, and the table format.
    let out = run(
        "veille-collector",
        &[
            "catalogue",
            "lookup",
            "--manufacturer",
            "HP",
            "--model",
            "HP t640 Thin Client",
            "--class",
            "desktop",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("class    thin_client"), "{text}");
    assert!(text.contains("matched  model-family rule"), "{text}");

    // A class that does not exist is a usage error.
    let out = run(
        "veille-collector",
        &[
            "catalogue",
            "lookup",
            "--manufacturer",
            "A",
            "--model",
            "B",
            "--class",
            "toaster",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("toaster"));
}
