//! The Windows agent run for real, under Wine: the MSI built from the cross-built
//! agent is installed silently into a fresh Wine prefix with properties pointing at a
//! collector on loopback, Wine's service manager runs the agent, and the device must
//! appear at the collector with a Windows inventory and reports that tile time. Then
//! the admin's commands (`status`, `postpone`, `once --format json`), an upgrade that
//! keeps the installed properties, and an uninstall that keeps the state directory.
//!
//! What Wine cannot show (WTS sessions, the interrupt time of Windows 10, real SMBIOS
//! on a VM, a shutdown) must degrade to "not available": any crash of the agent fails
//! the test. What only a real Windows can check is listed in `deploy/windows/README.md`.
//!
//! Needs the Debian packages wine64 and wine (the `wine` launcher), gcc-mingw-w64-x86-64
//! (the agent's linker, and the stub DLL below), wixl and msitools (`.ci/run` installs
//! them all), and the cross-built agent. Nothing is skipped: a missing tool fails with
//! what to install.
//!
//! Wine 8 (Debian 12) has no `bcryptprimitives.dll`, whose `ProcessPrng` every Rust
//! program since 1.78 imports: the test builds a stub of it with MinGW from
//! `tests/fixtures/wine/bcryptprimitives.c` into the prefix (a test fixture, never
//! shipped; Windows 10 and later have the real one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use veille_agent::msi_properties::REGISTRY_KEY;
use veille_agent::policy::PostponeError;
use veille_agent::probes::{WindowsClockSource, windows_version};
use veille_proto::v1::{ActivityRule, EventKind, Report};
use veille_tests::windows::{
    build_msi, build_msi_version, next_version, run, windows_exe, workspace,
};
use veille_tests::{Collector, devices_json, stored_reports, wait_until};

/// `HKLM\…` key of a Windows service.
const SERVICES_KEY: &str = r"SYSTEM\CurrentControlSet\Services";
/// Where Windows keeps the version the inventory reports.
const CURRENT_VERSION_KEY: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
/// `msiexec`'s exit code for "installed; restart to finish".
const ERROR_SUCCESS_REBOOT_REQUIRED: i32 = 3010;
/// Where Windows Installer lists installed products, by ProductCode.
const UNINSTALL_KEY: &str = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";

/// The first program found among `candidates` (names on `PATH`, or absolute paths).
fn find_tool(candidates: &[&str], install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for candidate in candidates {
        let candidate = Path::new(candidate);
        if candidate.is_absolute() {
            if candidate.is_file() {
                return candidate.to_owned();
            }
            continue;
        }
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join(candidate))
            .find(|p| p.is_file())
        {
            return found;
        }
    }
    panic!("none of {candidates:?} found: {install}")
}

/// What a Wine program printed and how it exited.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A fresh Wine prefix in a temp dir, with its own persistent wineserver (so that the
/// agent's service keeps running between the test's commands), killed on drop.
struct Wine {
    wine: PathBuf,
    wineserver: PathBuf,
    prefix: PathBuf,
    /// Holds the prefix and the programs' output files.
    dir: tempfile::TempDir,
    server: Option<Child>,
}

impl Wine {
    fn new() -> Wine {
        let wine = find_tool(
            &["wine", "wine64", "/usr/lib/wine/wine64"],
            "apt-get install wine64 wine (the Wine test runs the Windows agent)",
        );
        let wineserver = find_tool(
            &["wineserver", "/usr/lib/wine/wineserver64"],
            "apt-get install wine64 wine",
        );
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("prefix");
        let mut wine = Wine {
            wine,
            wineserver,
            prefix,
            dir,
            server: None,
        };
        // A fresh prefix that says Windows 10, the oldest Windows the agent supports
        // (Wine 8 defaults to Windows 7).
        wine.ok(&["wineboot", "--init"]);
        wine.ok(&["winecfg", "-v", "win10"]);
        // Let the server that created the prefix save it and exit: Wine's MSI then
        // fails to create services in a prefix initialised under a server already
        // running (`StartServices` finds no service, error 1060).
        let waited = wine
            .command(&wine.wineserver)
            .arg("-w")
            .status()
            .expect("wineserver -w");
        assert!(waited.success(), "wineserver -w: {waited}");
        // Persistent, in the foreground (so that drop can stop it): without it the
        // server, and the agent's service with it, stop a few seconds after the last
        // program the test started.
        let server = wine
            .command(&wine.wineserver)
            .arg("-p")
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wineserver");
        wine.server = Some(server);
        wine
    }

    /// `program` with this prefix's environment.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("WINEPREFIX", &self.prefix)
            .env("WINEARCH", "win64")
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko download prompt while the prefix is created.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            // Headless: no window, no crash dialog waiting for a click.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        cmd
    }

    /// Runs `wine args…` to completion. Output goes to files, not pipes: the Wine
    /// processes a program starts (services, the device manager) inherit them and
    /// would hold a pipe open long after the program exited.
    fn run(&self, args: &[&str]) -> Ran {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (out, err) = (
            self.dir.path().join(format!("{n}.out")),
            self.dir.path().join(format!("{n}.err")),
        );
        let status = self
            .command(&self.wine)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap_or_else(|e| panic!("cannot run wine {args:?}: {e}"));
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        Ran {
            code: status.code(),
            stdout: read(&out),
            stderr: read(&err),
        }
    }

    /// [`Wine::run`], failing the test unless the program exits 0.
    fn ok(&self, args: &[&str]) -> Ran {
        let ran = self.run(args);
        assert_eq!(
            ran.code,
            Some(0),
            "wine {args:?} failed\nstdout: {}\nstderr: {}",
            ran.stdout,
            ran.stderr
        );
        ran
    }

    /// The string values of `HKLM\key` (`reg query`), `None` when the key is missing.
    fn hklm(&self, key: &str) -> Option<BTreeMap<String, String>> {
        let ran = self.run(&["reg", "query", &format!(r"HKLM\{key}")]);
        (ran.code == Some(0)).then(|| {
            ran.stdout
                .lines()
                .filter_map(|l| {
                    // "    NAME    REG_SZ    value"
                    let mut parts = l.trim_start().trim_end_matches('\r').splitn(3, "    ");
                    let (name, kind) = (parts.next()?, parts.next()?);
                    kind.starts_with("REG_")
                        .then(|| (name.to_owned(), parts.next().unwrap_or("").to_owned()))
                })
                .collect()
        })
    }

    /// `C:\…` inside the prefix as a Unix path (`winepath -u`).
    fn unix_path(&self, windows: &str) -> PathBuf {
        let ran = self.ok(&["winepath", "-u", windows]);
        PathBuf::from(ran.stdout.trim())
    }

    /// A Unix path as Wine's `Z:` drive sees it.
    fn windows_path(unix: &Path) -> String {
        format!("Z:{}", unix.display()).replace('/', "\\")
    }

    /// `msiexec args… /qn /l*v log`; on failure, the log's last lines say why.
    fn msiexec(&self, args: &[&str]) {
        let log = self.dir.path().join("msiexec.log");
        let _ = std::fs::remove_file(&log);
        let log_w = Self::windows_path(&log);
        let mut all = vec!["msiexec"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["/qn", "/l*v", &log_w]);
        let ran = self.run(&all);
        // 3010, "success, reboot required" (the GPO guide counts it as success), is
        // what an upgrade replacing the running service's program returns under Wine;
        // Wine passes exit codes on modulo 256.
        if ran.code != Some(0) && ran.code != Some(ERROR_SUCCESS_REBOOT_REQUIRED % 256) {
            // Windows Installer logs in UTF-16 or ANSI depending on the version.
            let bytes = std::fs::read(&log).unwrap_or_default();
            let text = if bytes.starts_with(&[0xff, 0xfe]) {
                let units: Vec<u16> = bytes[2..]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            panic!(
                "msiexec {args:?} exited {:?}\n{}\n{}",
                ran.code,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                ran.stderr
            );
        }
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // Stops every Windows process of this prefix (the agent's service among them).
        let _ = self
            .command(&self.wineserver)
            .arg("-k")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Builds the `ProcessPrng` stub with MinGW and puts it in the prefix's `system32`.
fn install_prng_stub(wine: &Wine) {
    let gcc = find_tool(
        &["x86_64-w64-mingw32-gcc"],
        "apt-get install gcc-mingw-w64-x86-64 (builds the Wine test's stub DLL)",
    );
    let dll = wine.dir.path().join("bcryptprimitives.dll");
    run(Command::new(gcc)
        .arg("-shared")
        .arg("-o")
        .arg(&dll)
        .arg(workspace().join("tests/fixtures/wine/bcryptprimitives.c"))
        .arg("-ladvapi32"));
    let system32 = wine.unix_path(r"C:\windows\system32");
    std::fs::copy(&dll, system32.join("bcryptprimitives.dll")).unwrap();
}

/// The rows of an MSI table (`msiinfo export`, after its three header lines).
fn msi_rows(msi: &Path, table: &str) -> Vec<Vec<String>> {
    run(Command::new("msiinfo").arg("export").arg(msi).arg(table))
        .lines()
        .skip(3)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// A property of the MSI (`ProductCode`…).
fn msi_property(msi: &Path, name: &str) -> String {
    msi_rows(msi, "Property")
        .into_iter()
        .find(|r| r[0] == name)
        .and_then(|r| r.get(1).cloned())
        .unwrap_or_else(|| panic!("no property {name} in the MSI"))
}

/// Reports of one agent run follow each other without hole or overlap, and each
/// splits its length into active, idle and asleep; a new run (the upgrade restarts
/// the service) starts at or after the previous one's end.
fn assert_reports_tile_time(reports: &[Report]) {
    for r in reports {
        let len = u64::try_from(r.end_unix_ms - r.start_unix_ms).unwrap();
        assert_eq!(r.active_ms + r.idle_ms + r.sleep_ms, len, "{r:?}");
        // Nothing sleeps under Wine: the tick-count clock fallback must not invent it.
        assert_eq!(r.sleep_ms, 0, "{r:?}");
    }
    for pair in reports.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(b.seq > a.seq, "seqs in order: {} then {}", a.seq, b.seq);
        let new_run = b
            .events
            .iter()
            .any(|e| e.kind == EventKind::AgentStart as i32 || e.kind == EventKind::Boot as i32);
        if new_run {
            assert!(b.start_unix_ms >= a.end_unix_ms, "overlap: {a:?} {b:?}");
        } else {
            assert_eq!(
                a.end_unix_ms, b.start_unix_ms,
                "hole or overlap: {a:?} {b:?}"
            );
        }
    }
}

#[test]
fn the_msi_installs_a_service_that_reports_from_wine() {
    let started = Instant::now();
    let exe = windows_exe();
    let wine = Wine::new();
    let msi = wine.dir.path().join("veille-agent.msi");
    build_msi(&exe, &msi);
    // The service's name, as the MSI installs it.
    let service = msi_rows(&msi, "ServiceInstall")[0][1].clone();

    install_prng_stub(&wine);
    eprintln!("[wine] prefix ready after {:?}", started.elapsed());

    let collector_dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(collector_dir.path(), "127.0.0.1:0");
    let (url, token) = (collector.url(), collector.token());

    // Short intervals so that reports arrive within the test, from the file layer the
    // MSI's properties sit on top of.
    let program_data = wine.unix_path(r"C:\ProgramData\Veille");
    std::fs::create_dir_all(&program_data).unwrap();
    std::fs::write(
        program_data.join("agent.toml"),
        "sample_interval_s = 1\nreport_interval_s = 2\n\
         [backoff]\ninitial_ms = 200\nmax_ms = 1000\n",
    )
    .unwrap();

    // Install as the GPO guide says.
    let msi_w = Wine::windows_path(&msi);
    let properties = [
        ("COLLECTOR_URL", url.as_str()),
        ("ORG", "default"),
        ("TOKEN", token.as_str()),
        ("SITE", "Mairie annexe"),
        ("TAGS", "wine,ci"),
    ];
    let assignments: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["/i", msi_w.as_str()];
    args.extend(assignments.iter().map(String::as_str));
    wine.msiexec(&args);
    let installed = wine.hklm(REGISTRY_KEY).expect("the MSI wrote its key");
    for (name, value) in properties {
        assert_eq!(
            installed.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
    let registration = wine
        .hklm(&format!(r"{SERVICES_KEY}\{service}"))
        .expect("the service is registered");
    let image = &registration["ImagePath"];
    assert!(
        image.ends_with("veille-agent.exe\" service")
            || image.ends_with("veille-agent.exe service"),
        "{image}"
    );
    let agent_exe = image
        .trim_end_matches(" service")
        .trim_matches('"')
        .to_owned();
    eprintln!("[wine] installed after {:?}", started.elapsed());

    // The service runs the agent: the device appears, with reports.
    wait_until("the Wine device's first reports", || {
        devices_json(collector_dir.path())
            .iter()
            .any(|d| d["reports"].as_u64() >= Some(3))
    });
    let devices = devices_json(collector_dir.path());
    assert_eq!(devices.len(), 1, "{devices:?}");
    let device_id = devices[0]["device_id"].as_str().unwrap().to_owned();
    eprintln!(
        "[wine] reporting after {:?}: {}",
        started.elapsed(),
        devices[0]
    );

    // The admin's commands, from a prompt (not the service's environment): they find
    // the service's state.
    let status = wine.ok(&[&agent_exe, "status"]).stdout;
    let state_dir_w = status
        .lines()
        .find_map(|l| l.strip_prefix("state directory"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no state directory in: {status}"))
        .to_owned();
    let state_dir = wine.unix_path(&state_dir_w);
    assert!(
        state_dir.join("state.json").is_file(),
        "the service keeps no state where `status` looks ({state_dir_w}): {status}"
    );
    assert!(status.contains("last seq"), "{status}");
    let postpone = wine.run(&[&agent_exe, "postpone"]);
    assert_eq!(postpone.code, Some(1), "{}", postpone.stderr);
    assert!(
        postpone
            .stderr
            .contains(&PostponeError::NothingPending.to_string()),
        "{}",
        postpone.stderr
    );

    // The service's log, next to its state, says which clocks it uses (Wine 8 has no
    // QueryInterruptTime).
    let log = std::fs::read_to_string(state_dir.with_file_name("agent.log")).unwrap_or_default();
    let clocks = [
        WindowsClockSource::InterruptTime,
        WindowsClockSource::TickCount,
        WindowsClockSource::TickCountOnly,
    ]
    .into_iter()
    .find(|source| log.contains(source.describe()))
    .unwrap_or_else(|| panic!("the agent's log names no clock source:\n{log}"));
    eprintln!("[wine] clocks: {clocks:?}");
    assert!(!log.contains("panicked"), "{log}");

    // `once` prints a report and the inventory, read from the same registry.
    let once = wine.ok(&[
        &agent_exe,
        "once",
        "--format",
        "json",
        "--state-dir",
        r"C:\veille-once",
    ]);
    let once: serde_json::Value = serde_json::from_str(&once.stdout)
        .unwrap_or_else(|e| panic!("once printed no JSON ({e}): {}", once.stdout));
    assert_eq!(
        once["device_id"],
        device_id.as_str(),
        "same device id as the service"
    );
    let report = &once["reports"][0];
    assert!(
        report["end_unix_ms"].as_i64() > report["start_unix_ms"].as_i64(),
        "{once}"
    );
    let version = wine.hklm(CURRENT_VERSION_KEY).expect("CurrentVersion");
    let (os_name, os_version, kernel) = windows_version::describe(
        &version["ProductName"],
        version
            .get("DisplayVersion")
            .or(version.get("ReleaseId"))
            .map_or("", String::as_str),
        &version["CurrentBuildNumber"],
        version
            .get("UBR")
            .and_then(|u| u32::from_str_radix(u.trim_start_matches("0x"), 16).ok()),
    );
    assert!(os_name.contains("Windows 10"), "{os_name}");
    let inventory = &once["inventory"];
    assert_eq!(inventory["os_name"], os_name.as_str(), "{once}");
    assert_eq!(inventory["os_version"], os_version.as_str(), "{once}");
    assert_eq!(inventory["kernel"], kernel.as_str(), "{once}");
    assert!(inventory["cpu_cores"].as_u64() >= Some(1), "{once}");
    assert!(inventory["ram_bytes"].as_u64() > Some(0), "{once}");
    eprintln!("[wine] inventory under Wine: {inventory}");

    // An upgrade to the next release without properties keeps the installed ones,
    // replaces the product and restarts the service. (A new build of the same version
    // is a new product too, but MajorUpgrade leaves same-version products alone: it
    // would install beside the old one.)
    let upgrade = wine.dir.path().join("veille-agent-upgrade.msi");
    build_msi_version(&exe, &upgrade, Some(&next_version()));
    let (old_code, new_code) = (
        msi_property(&msi, "ProductCode"),
        msi_property(&upgrade, "ProductCode"),
    );
    assert_ne!(old_code, new_code);
    assert!(wine.hklm(&format!(r"{UNINSTALL_KEY}\{old_code}")).is_some());
    let reports_before = devices_json(collector_dir.path())[0]["reports"]
        .as_u64()
        .unwrap();
    wine.msiexec(&["/i", &Wine::windows_path(&upgrade)]);
    assert_eq!(
        wine.hklm(REGISTRY_KEY).as_ref(),
        Some(&installed),
        "properties kept"
    );
    assert!(wine.hklm(&format!(r"{UNINSTALL_KEY}\{new_code}")).is_some());
    let _ = std::fs::copy(
        wine.dir.path().join("msiexec.log"),
        "/tmp/upgrade-debug.log",
    );
    // Wine's RemoveExistingProducts uninstalls the old product in a process of its
    // own, which may finish after msiexec returned.
    wait_until("the old product to be removed", || {
        wine.hklm(&format!(r"{UNINSTALL_KEY}\{old_code}")).is_none()
    });
    wait_until("reports from the upgraded agent", || {
        devices_json(collector_dir.path())[0]["reports"].as_u64() >= Some(reports_before + 2)
    });
    eprintln!("[wine] upgraded after {:?}", started.elapsed());

    // Uninstall: service, program and properties go; the state directory stays.
    wine.msiexec(&["/x", &Wine::windows_path(&upgrade)]);
    assert!(
        wine.hklm(&format!(r"{SERVICES_KEY}\{service}")).is_none(),
        "service left"
    );
    assert!(
        !wine.unix_path(&agent_exe).exists(),
        "{agent_exe} left after uninstall"
    );
    assert!(
        wine.hklm(REGISTRY_KEY)
            .is_none_or(|values| values.is_empty()),
        "properties left after uninstall"
    );
    assert!(state_dir.join("state.json").is_file(), "state removed");

    // What the collector stored: a Windows inventory, reports that tile time.
    assert_eq!(collector.proc.stop(), Some(0));
    let reports = stored_reports(collector_dir.path(), &device_id);
    assert!(reports.len() >= 5, "{} reports", reports.len());
    assert_reports_tile_time(&reports);
    // No WTS session information under Wine: the CPU-busy rule decides, every time.
    for r in &reports {
        assert_eq!(r.activity_rule, ActivityRule::CpuBusy as i32, "{r:?}");
    }
    let store = veille_collector::store::Store::open(
        &collector_dir
            .path()
            .join(veille_collector::store::STORE_DIR),
    )
    .unwrap();
    let stored = store
        .inventory("default", &device_id)
        .unwrap()
        .expect("inventory");
    assert_eq!(stored.os_name, os_name);
    assert_eq!(stored.site, "Mairie annexe");
    assert_eq!(stored.tags, ["wine", "ci"]);
    assert!(!stored.hostname.is_empty());
    eprintln!("[wine] done after {:?}", started.elapsed());
}
