//! The Windows agent and its installer, checked on Linux with real tools: the
//! cross-built `veille-agent.exe` must be a PE32+ x86-64 executable, and the MSI built
//! from it by `deploy/windows/build-msi.sh` (wixl) must install the service, write the
//! installer properties to the registry, keep them across upgrades and upgrade in
//! place, as read back with `msiinfo` and `msiextract` (msitools).
//!
//! Needs `cargo build -p veille-agent --target x86_64-pc-windows-gnu` first (the
//! README's test command does it) and the Debian packages wixl and msitools (`.ci/run`
//! installs them). Nothing is skipped: a missing piece fails with what to do.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use veille_agent::msi_properties::{PROPERTIES, REGISTRY_KEY};
use veille_tests::windows::{build_msi, run, windows_exe, workspace};

/// Rows of one MSI table (`msiinfo export` prints three header lines first).
fn table(msi: &Path, name: &str) -> Vec<Vec<String>> {
    run(Command::new("msiinfo").arg("export").arg(msi).arg(name))
        .lines()
        .skip(3)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// A two-column table (`Property`, `AppSearch`) as a map of its first columns.
fn pairs(msi: &Path, name: &str) -> BTreeMap<String, String> {
    table(msi, name)
        .into_iter()
        .map(|r| (r[0].clone(), r.get(1).cloned().unwrap_or_default()))
        .collect()
}

/// Asserts `bytes` is a PE32+ image for x86-64 and returns its subsystem.
fn assert_pe32_plus_x64(bytes: &[u8], what: &str) -> u16 {
    assert_eq!(bytes.get(..2), Some(&b"MZ"[..]), "{what}: no MZ header");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&bytes[pe..pe + 4], b"PE\0\0", "{what}: no PE signature");
    assert_eq!(u16_at(pe + 4), 0x8664, "{what}: machine is not x86-64");
    let optional = pe + 24;
    assert_eq!(u16_at(optional), 0x20b, "{what}: not PE32+");
    // Subsystem: offset 68 of the PE32+ optional header.
    u16_at(optional + 68)
}

#[test]
fn the_windows_agent_is_a_pe32_plus_console_program() {
    let bytes = std::fs::read(windows_exe()).unwrap();
    // 3 = IMAGE_SUBSYSTEM_WINDOWS_CUI: `veille-agent run` in a console prints its logs,
    // and the service manager starts console programs as well.
    assert_eq!(assert_pe32_plus_x64(&bytes, "veille-agent.exe"), 3);
}

#[test]
fn the_msi_installs_the_service_and_writes_the_properties() {
    let exe = windows_exe();
    let dir = tempfile::tempdir().unwrap();
    let msi = dir.path().join("veille-agent.msi");
    build_msi(&exe, &msi);

    let tables = run(Command::new("msiinfo").arg("tables").arg(&msi));
    for t in [
        "File",
        "Component",
        "ServiceInstall",
        "ServiceControl",
        "Registry",
        "Property",
        "Upgrade",
        "AppSearch",
        "RegLocator",
        "CustomAction",
    ] {
        assert!(
            tables.lines().any(|l| l == t),
            "table {t} missing: {tables}"
        );
    }

    // The properties: version from the workspace, a stable upgrade code, the
    // installer's public properties passed to the elevated install, the token hidden
    // from logs.
    let props = pairs(&msi, "Property");
    assert_eq!(props["ProductVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(props["ProductName"], "Veille agent");
    assert_eq!(props["ALLUSERS"], "1", "per-machine install");
    let wxs = std::fs::read_to_string(workspace().join("deploy/windows/veille-agent.wxs")).unwrap();
    let upgrade_code = props["UpgradeCode"]
        .trim_matches(['{', '}'])
        .to_ascii_lowercase();
    assert!(
        wxs.contains(&format!("UpgradeCode=\"{upgrade_code}\"")),
        "UpgradeCode {upgrade_code} is not the one in the .wxs"
    );
    let secure: Vec<&str> = props["SecureCustomProperties"].split(';').collect();
    let hidden: Vec<&str> = props["MsiHiddenProperties"].split(';').collect();
    assert!(hidden.contains(&"TOKEN"), "{hidden:?}");
    for (property, _) in PROPERTIES {
        assert!(secure.contains(property), "{property} not in {secure:?}");
    }

    // One registry value per property, verbatim, where the agent reads them.
    let registry = table(&msi, "Registry");
    let written: BTreeMap<String, (String, String, String)> = registry
        .iter()
        .map(|r| {
            (
                r[3].clone(),
                (
                    r[1].clone(),
                    r[2].trim_end_matches('\\').to_owned(),
                    r[4].clone(),
                ),
            )
        })
        .collect();
    assert_eq!(written.len(), PROPERTIES.len(), "{registry:?}");
    for (property, _) in PROPERTIES {
        // Root 2 = HKEY_LOCAL_MACHINE.
        assert_eq!(
            written.get(*property),
            Some(&(
                "2".to_owned(),
                REGISTRY_KEY.to_owned(),
                format!("[{property}]")
            )),
            "registry value {property}"
        );
    }

    // An upgrade without properties keeps the installed values: AppSearch reads each
    // one back from the 64-bit registry (type 18 = raw | 64-bit) ...
    let search = pairs(&msi, "AppSearch");
    let locators: BTreeMap<String, Vec<String>> = table(&msi, "RegLocator")
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    for (property, _) in PROPERTIES {
        let signature = &search[*property];
        let loc = &locators[signature];
        assert_eq!(
            (
                loc[1].as_str(),
                loc[2].as_str(),
                loc[3].as_str(),
                loc[4].as_str()
            ),
            ("2", REGISTRY_KEY, *property, "18"),
            "{property}"
        );
    }
    // ... and a value given on the command line wins: saved before AppSearch,
    // restored after it, all before the registry is written.
    let sequence: BTreeMap<String, i64> = table(&msi, "InstallExecuteSequence")
        .into_iter()
        .map(|r| (r[0].clone(), r[2].parse().unwrap()))
        .collect();
    let at = |action: &str| {
        *sequence
            .get(action)
            .unwrap_or_else(|| panic!("{action} not sequenced"))
    };
    for (property, _) in PROPERTIES {
        assert!(at(&format!("Save{property}")) < at("AppSearch"));
        assert!(at(&format!("Restore{property}")) > at("AppSearch"));
        assert!(at(&format!("Restore{property}")) < at("WriteRegistryValues"));
    }
    let actions: BTreeMap<String, Vec<String>> = table(&msi, "CustomAction")
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    let restore = &actions["RestoreTOKEN"];
    assert_eq!(
        (restore[2].as_str(), restore[3].as_str()),
        ("TOKEN", "[CMDLINE_TOKEN]")
    );

    // Upgrade in place: the old version is found and removed in the same transaction;
    // a newer installed version blocks a downgrade.
    let upgrades = table(&msi, "Upgrade");
    let detected: Vec<&str> = upgrades.iter().map(|r| r[6].as_str()).collect();
    assert!(detected.contains(&"WIX_UPGRADE_DETECTED"), "{upgrades:?}");
    assert!(detected.contains(&"WIX_DOWNGRADE_DETECTED"), "{upgrades:?}");
    assert!(at("RemoveExistingProducts") > at("InstallValidate"));
    assert!(at("RemoveExistingProducts") < at("InstallInitialize"));

    // The service: own process (16), automatic start (2), LocalSystem, started as
    // `veille-agent.exe service`.
    let services = table(&msi, "ServiceInstall");
    assert_eq!(services.len(), 1, "{services:?}");
    let s = &services[0];
    assert_eq!(
        (
            s[1].as_str(),
            s[3].as_str(),
            s[4].as_str(),
            s[8].as_str(),
            s[10].as_str()
        ),
        ("veille-agent", "16", "2", "LocalSystem", "service")
    );
    // Started at install (1), stopped at install (2) and uninstall (32), deleted at
    // uninstall (128); waits for it.
    let control = table(&msi, "ServiceControl");
    assert_eq!(control.len(), 1, "{control:?}");
    assert_eq!(
        (
            control[0][1].as_str(),
            control[0][2].as_str(),
            control[0][4].as_str()
        ),
        ("veille-agent", "163", "1")
    );

    // The file: in the service's component, which also carries the service.
    let files = table(&msi, "File");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0][2], "veille-agent.exe");
    let service_component = &s[11];
    assert_eq!(&files[0][1], service_component);
    let components: BTreeMap<String, Vec<String>> = table(&msi, "Component")
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    // Attributes 256 = 64-bit component; directory INSTALLDIR (Program Files\Veille).
    let c = &components[service_component];
    assert_eq!((c[2].as_str(), c[3].as_str()), ("INSTALLDIR", "256"));

    // What gets installed is the agent, still a PE32+ program after stripping.
    let extracted = dir.path().join("x");
    std::fs::create_dir(&extracted).unwrap();
    run(Command::new("msiextract")
        .arg("-C")
        .arg(&extracted)
        .arg(&msi));
    let installed = std::fs::read(extracted.join("Veille/veille-agent.exe")).unwrap();
    assert_pe32_plus_x64(&installed, "installed veille-agent.exe");
    assert_eq!(files[0][3], installed.len().to_string(), "File table size");
}

#[test]
fn every_build_is_a_new_product_of_the_same_upgrade_family() {
    let exe = windows_exe();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.msi"), dir.path().join("b.msi"));
    build_msi(&exe, &a);
    build_msi(&exe, &b);
    let (pa, pb) = (pairs(&a, "Property"), pairs(&b, "Property"));
    assert_ne!(pa["ProductCode"], pb["ProductCode"]);
    assert_eq!(pa["UpgradeCode"], pb["UpgradeCode"]);
}

#[test]
fn a_missing_exe_is_a_clear_error() {
    let out = Command::new(workspace().join("deploy/windows/build-msi.sh"))
        .arg("/nonexistent/veille-agent.exe")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not found") && stderr.contains("x86_64-pc-windows-gnu"),
        "{stderr}"
    );
}
