//! The Debian packages: `cargo deb --no-build` packs the binaries `cargo build
//! --workspace --bins` made (debug ones, so the test adds no release build: cargo-deb
//! insists on a `release` directory, so the test gives it one holding links to them),
//! then `dpkg-deb -c/-I` show what an operator would install: files and their modes,
//! conffiles, Depends, maintainer scripts; `systemd-analyze verify` checks the units.
//!
//! cargo-deb comes from `scripts/test.sh` (`cargo install cargo-deb --locked --root .ci/tools`),
//! or `$CARGO_DEB`, or the PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn cargo_deb() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_DEB") {
        return PathBuf::from(p);
    }
    let local = workspace().join(".ci/tools/bin/cargo-deb");
    if local.exists() {
        return local;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("cargo-deb"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "cargo-deb not found: run scripts/test.sh, or `cargo install cargo-deb --locked --root \
             .ci/tools`, or set CARGO_DEB"
        )
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the .deb of `package` (whose binary is `bin`) and returns its path.
fn build_deb(package: &str, bin: &str, work: &Path) -> PathBuf {
    let built = veille_tests::bin(bin);
    let release = work.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    let staged = release.join(bin);
    if std::fs::hard_link(&built, &staged).is_err() {
        std::fs::copy(&built, &staged).unwrap();
    }
    let out = work.join(format!("{package}.deb"));
    run(Command::new(cargo_deb())
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", work.join("target"))
        .args(["-p", package, "--no-build", "--fast", "--no-dbgsym", "-o"])
        .arg(&out));
    assert!(out.exists(), "{} not written", out.display());
    out
}

fn info(deb: &Path, field: &str) -> String {
    run(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg(field))
        .trim()
        .to_owned()
}

/// `dpkg-deb -c` lines as (mode, path).
fn contents(deb: &Path) -> Vec<(String, String)> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?.to_owned();
            let path = l
                .split_whitespace()
                .last()?
                .trim_start_matches('.')
                .to_owned();
            Some((mode, path))
        })
        .collect()
}

fn control_file(deb: &Path, name: &str) -> String {
    run(Command::new("dpkg-deb").args(["-I"]).arg(deb).arg(name))
}

fn mode_of(files: &[(String, String)], path: &str) -> String {
    files
        .iter()
        .find(|(_, p)| p == path)
        .map(|(m, _)| m.clone())
        .unwrap_or_else(|| panic!("{path} is not in the package: {files:?}"))
}

#[test]
fn agent_and_collector_packages_hold_hardened_units_conffiles_and_safe_scripts() {
    let work = tempfile::tempdir().unwrap();
    let agent = build_deb("veille-agent", "veille-agent", work.path());
    let collector = build_deb("veille-collector", "veille-collector", work.path());

    // Agent: files, modes, conffile, metadata.
    let summary = run(Command::new("dpkg-deb").arg("-I").arg(&agent));
    assert!(summary.contains("Package: veille-agent"), "{summary}");
    assert!(
        info(&agent, "Depends").contains("libc6"),
        "$auto found libc"
    );
    let recommends = info(&agent, "Recommends");
    assert!(recommends.contains("polkitd") && recommends.contains("libnss-systemd"));
    let files = contents(&agent);
    assert!(mode_of(&files, "/usr/bin/veille-agent").starts_with("-rwxr-xr-x"));
    assert_eq!(mode_of(&files, "/etc/veille/agent.toml"), "-rw-------");
    mode_of(&files, "/lib/systemd/system/veille-agent.service");
    mode_of(&files, "/usr/share/polkit-1/rules.d/50-veille-agent.rules");
    // The desktop notifier starts in every graphical session.
    assert_eq!(
        mode_of(&files, "/etc/xdg/autostart/veille-notifier.desktop"),
        "-rw-r--r--"
    );
    let conffiles = control_file(&agent, "conffiles");
    assert!(
        conffiles
            .lines()
            .any(|l| l.trim() == "/etc/veille/agent.toml"),
        "{conffiles}"
    );
    // The packaged config is the annotated one, and a fresh install is not ready to run.
    let extract = work.path().join("agent-root");
    run(Command::new("dpkg-deb").arg("-x").arg(&agent).arg(&extract));
    let packaged = std::fs::read_to_string(extract.join("etc/veille/agent.toml")).unwrap();
    assert_eq!(packaged, include_str!("../../deploy/agent.toml"));
    let check = Command::new(veille_tests::bin("veille-agent"))
        .args(["check-config", "--config"])
        .arg(extract.join("etc/veille/agent.toml"))
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(1),
        "unconfigured → ExecCondition skips"
    );
    assert!(String::from_utf8_lossy(&check.stderr).contains("collector is empty"));
    // postinst enables, and starts only a configured agent.
    let postinst = control_file(&agent, "postinst");
    assert!(postinst.contains("deb-systemd-helper enable veille-agent.service"));
    let start = postinst.find("systemctl start").expect("a guarded start");
    let guard = postinst.find("check-config").expect("check-config guard");
    assert!(
        guard < start,
        "the start is behind check-config:\n{postinst}"
    );
    control_file(&agent, "prerm");
    control_file(&agent, "postrm");
    let unit =
        std::fs::read_to_string(extract.join("lib/systemd/system/veille-agent.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=veille-agent",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecCondition=/usr/bin/veille-agent check-config",
        "LoadCredential=agent.toml:/etc/veille/agent.toml",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "{line} in the agent unit"
        );
    }

    // Collector.
    let files = contents(&collector);
    assert!(mode_of(&files, "/usr/bin/veille-collector").starts_with("-rwxr-xr-x"));
    assert_eq!(mode_of(&files, "/etc/veille/collector.toml"), "-rw-r-----");
    let conffiles = control_file(&collector, "conffiles");
    assert!(
        conffiles
            .lines()
            .any(|l| l.trim() == "/etc/veille/collector.toml")
    );
    assert!(info(&collector, "Depends").contains("libc6"));
    let extract = work.path().join("collector-root");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&collector)
        .arg(&extract));
    let unit = std::fs::read_to_string(extract.join("lib/systemd/system/veille-collector.service"))
        .unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=veille",
        "CapabilityBoundingSet=",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} in the collector unit"
        );
    }
    let postrm = control_file(&collector, "postrm");
    assert!(!postrm.contains("rm -rf"), "purge keeps the fleet's data");

    // systemd's own checker: every directive known and valid. The binaries are not
    // installed here, so only that complaint is expected. `scripts/test.sh` installs it
    // (package `systemd`): a machine without it fails here rather than skipping the
    // check in silence (issue 23).
    let version = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing (apt-get install systemd, or run scripts/test.sh): {version:?}"
    );
    for unit in [
        work.path()
            .join("agent-root/lib/systemd/system/veille-agent.service"),
        work.path()
            .join("collector-root/lib/systemd/system/veille-collector.service"),
    ] {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.contains("Command /usr/bin/veille-") && l.contains("is not executable"))
            })
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(complaints.is_empty(), "{}: {text}", unit.display());
    }
}
