//! RAPL energy counters (CPU packages and their DRAM), for the `RAPL` measurement.
//!
//! RAPL measures the CPU package(s) and DRAM only, never the whole system: disks, fans,
//! the power supply's losses, the GPU card and the screen are outside it. The collector
//! reports it beside the energy model and never substitutes it for whole-system energy
//! (see "The energy model" in DESIGN.md); the contract's `EnergySource::Rapl` says so.
//!
//! # Platform-specific behaviour
//!
//! Linux: the powercap tree, `/sys/class/powercap/`, which lists every zone flat:
//!
//! ```text
//! intel-rapl:0      name "package-0"   counted
//! intel-rapl:0:0    name "core"        inside package-0: not counted
//! intel-rapl:0:1    name "uncore"      inside package-0 (integrated GPU): not counted
//! intel-rapl:0:2    name "dram"        beside package-0, not inside it: counted
//! intel-rapl:1      name "package-1"   second socket: counted
//! intel-rapl:1      name "psys"        (laptops) whole platform, overlaps package: not counted
//! intel-rapl-mmio:0 name "package-0"   same package through MMIO: not counted (twice)
//! ```
//!
//! AMD Zen CPUs are served by the same `intel_rapl_msr` driver since Linux 5.8ish, so
//! they appear under the same `intel-rapl:N` names with `package-N` zones (and a `core`
//! sub-zone, usually no `dram`). There is no `amd-rapl` powercap control type in the
//! kernel; AMD's `amd_energy` and the out-of-tree `zenergy` drivers are hwmon devices,
//! not read here.
//!
//! Since Linux 5.10 (CVE-2020-8694, "Platypus") `energy_uj` is readable by root only, so
//! an agent running as an ordinary user finds the tree but cannot read it: [`RaplMeter::try_discover`]
//! then says so. Virtual machines usually have no powercap tree at all.
//!
//! Each counter is in microjoules and wraps to zero after `max_energy_range_uj` (about
//! 262 kJ on common parts: 15 minutes at 280 W). A wrap is only detectable if the
//! counter is read at least once per wrap, so read it every sample tick, not only once
//! per report.

use super::{Host, ProbeError};
use std::path::PathBuf;

/// Where the powercap zones are listed, relative to the host root.
const POWERCAP: &str = "sys/class/powercap";

/// Why there is no RAPL measurement on this machine (logged once at start).
#[derive(Debug, thiserror::Error)]
pub enum RaplUnavailable {
    #[error("no powercap tree ({0})")]
    NoPowercap(#[source] std::io::Error),
    #[error("no RAPL package or dram zone in the powercap tree")]
    NoZones,
    #[error("RAPL counters are readable by root only (Linux 5.10 and later): {0}")]
    PermissionDenied(PathBuf),
    #[error("no RAPL zone could be read: {0}")]
    Unreadable(#[source] ProbeError),
}

/// What one zone measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaplDomain {
    /// A CPU package (socket), cores and uncore included.
    Package,
    /// The DRAM attached to a package.
    Dram,
}

/// One counted zone and the counter value of its last successful read.
#[derive(Debug, Clone)]
struct Zone {
    /// `sys/class/powercap/intel-rapl:0:2`, relative to the host root.
    dir: String,
    domain: RaplDomain,
    max_range_uj: u64,
    last_uj: u64,
}

/// Energy of the CPU packages and their DRAM, read as deltas of the RAPL counters.
///
/// Stateful: each [`read_delta_j`](Self::read_delta_j) gives the energy since the
/// previous one (the first, since discovery).
#[derive(Debug, Clone)]
pub struct RaplMeter {
    host: Host,
    zones: Vec<Zone>,
}

impl RaplMeter {
    /// The meter, or `None` when this machine has no readable RAPL zone; the reason is
    /// logged here, once, since a caller discovers once at start.
    pub fn discover(host: &Host) -> Option<RaplMeter> {
        match Self::try_discover(host) {
            Ok(meter) => {
                tracing::info!(zones = ?meter.zones(), "RAPL energy counters found");
                Some(meter)
            }
            Err(reason) => {
                tracing::info!(%reason, "no RAPL measurement");
                None
            }
        }
    }

    /// The meter, or why there is none. Reads every counted zone once: that read is the
    /// baseline of the first [`read_delta_j`](Self::read_delta_j). A zone that cannot be
    /// read now is left out for good (a permission or a driver does not appear later).
    pub fn try_discover(host: &Host) -> Result<RaplMeter, RaplUnavailable> {
        let entries =
            std::fs::read_dir(host.path(POWERCAP)).map_err(RaplUnavailable::NoPowercap)?;
        let mut dirs: Vec<(Vec<u32>, String)> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let indices = zone_indices(&name)?;
                Some((indices, name))
            })
            .collect();
        // Sorted by index so that zones() is stable (read_dir order is not).
        dirs.sort();

        let mut zones = Vec::new();
        let mut first_error = None;
        let mut denied = None;
        let mut candidates = 0;
        for (indices, name) in dirs {
            let dir = format!("{POWERCAP}/{name}");
            let Ok(zone_name) = host.read_to_string(&format!("{dir}/name")) else {
                continue;
            };
            let zone_name = zone_name.trim();
            let domain = match indices.len() {
                1 if zone_name.starts_with("package") => RaplDomain::Package,
                2 if zone_name == "dram" => RaplDomain::Dram,
                _ => continue,
            };
            candidates += 1;
            let read = read_counter(host, &format!("{dir}/max_energy_range_uj")).and_then(
                |max_range_uj| {
                    if max_range_uj == 0 {
                        return Err(ProbeError::malformed(
                            host.path(&format!("{dir}/max_energy_range_uj")),
                            "max_energy_range_uj is 0",
                        ));
                    }
                    let last_uj = read_energy(host, &dir, max_range_uj)?;
                    Ok((max_range_uj, last_uj))
                },
            );
            match read {
                Ok((max_range_uj, last_uj)) => zones.push(Zone {
                    dir,
                    domain,
                    max_range_uj,
                    last_uj,
                }),
                Err(ProbeError::Unavailable { path, source })
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    denied.get_or_insert(path);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }

        if !zones.is_empty() {
            return Ok(RaplMeter {
                host: host.clone(),
                zones,
            });
        }
        Err(match (candidates, denied, first_error) {
            (0, _, _) => RaplUnavailable::NoZones,
            (_, Some(path), _) => RaplUnavailable::PermissionDenied(path),
            (_, None, Some(error)) => RaplUnavailable::Unreadable(error),
            (_, None, None) => RaplUnavailable::NoZones,
        })
    }

    /// The counted zones, as (`powercap` directory name, domain), for the start-up log.
    pub fn zones(&self) -> Vec<(&str, RaplDomain)> {
        self.zones
            .iter()
            .map(|zone| {
                let name = zone.dir.rsplit('/').next().unwrap_or(&zone.dir);
                (name, zone.domain)
            })
            .collect()
    }

    /// Joules used by the packages and DRAM since the previous call, summed over zones.
    ///
    /// A counter below its previous value wrapped once (`new + max_range − old`). A zone
    /// whose read fails this time is skipped and keeps its old baseline, so its energy
    /// is counted by the next successful read rather than lost: this delta is then an
    /// undercount and the next one an overcount, but their sum is right. `None` when no
    /// zone could be read.
    ///
    /// Across a suspend the counters may restart from zero, which looks like a wrap:
    /// call [`rebaseline`](Self::rebaseline) on resume and do not report the delta.
    pub fn read_delta_j(&mut self) -> Option<f64> {
        let mut total_uj: u64 = 0;
        let mut any = false;
        for zone in &mut self.zones {
            let Ok(now_uj) = read_energy(&self.host, &zone.dir, zone.max_range_uj) else {
                continue;
            };
            let delta_uj = if now_uj >= zone.last_uj {
                now_uj - zone.last_uj
            } else {
                // Both are at most max_range_uj, so this neither overflows nor underflows.
                now_uj + (zone.max_range_uj - zone.last_uj)
            };
            zone.last_uj = now_uj;
            total_uj = total_uj.saturating_add(delta_uj);
            any = true;
        }
        any.then(|| total_uj as f64 / 1e6)
    }

    /// Takes the current counter values as the new baseline, dropping the energy since
    /// the last read (after a resume, when a counter may have restarted).
    pub fn rebaseline(&mut self) {
        for zone in &mut self.zones {
            if let Ok(now_uj) = read_energy(&self.host, &zone.dir, zone.max_range_uj) {
                zone.last_uj = now_uj;
            }
        }
    }
}

/// `[0]` for `intel-rapl:0`, `[0, 2]` for `intel-rapl:0:2`; `None` for other control
/// types (`intel-rapl-mmio:0` duplicates package 0) and the `intel-rapl` directory.
fn zone_indices(name: &str) -> Option<Vec<u32>> {
    let rest = name.strip_prefix("intel-rapl:")?;
    rest.split(':').map(|index| index.parse().ok()).collect()
}

/// A zone's `energy_uj`, which must not exceed its range.
fn read_energy(host: &Host, dir: &str, max_range_uj: u64) -> Result<u64, ProbeError> {
    let file = format!("{dir}/energy_uj");
    let value = read_counter(host, &file)?;
    if value > max_range_uj {
        return Err(ProbeError::malformed(
            host.path(&file),
            format!("{value} exceeds max_energy_range_uj {max_range_uj}"),
        ));
    }
    Ok(value)
}

/// A non-negative integer file.
fn read_counter(host: &Host, file: &str) -> Result<u64, ProbeError> {
    let raw = host.read_to_string(file)?;
    raw.trim().parse().map_err(|_| {
        ProbeError::malformed(
            host.path(file),
            format!(
                "not a counter: {:?}",
                raw.trim().chars().take(40).collect::<String>()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    const RANGE: u64 = 262_143_328_850;

    fn zone(root: &Path, dir: &str, name: &str, energy_uj: u64) {
        let dir = root.join(POWERCAP).join(dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        fs::write(dir.join("max_energy_range_uj"), format!("{RANGE}\n")).unwrap();
        fs::write(dir.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    }

    fn set_energy(root: &Path, dir: &str, energy_uj: u64) {
        fs::write(
            root.join(POWERCAP).join(dir).join("energy_uj"),
            format!("{energy_uj}\n"),
        )
        .unwrap();
    }

    /// Two sockets with DRAM, plus the zones that must not be counted.
    fn two_sockets() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(POWERCAP).join("intel-rapl")).unwrap();
        zone(root, "intel-rapl:0", "package-0", 1_000_000);
        zone(root, "intel-rapl:0:0", "core", 500_000);
        zone(root, "intel-rapl:0:1", "uncore", 100_000);
        zone(root, "intel-rapl:0:2", "dram", 2_000_000);
        zone(root, "intel-rapl:1", "package-1", 3_000_000);
        zone(root, "intel-rapl:1:0", "dram", 4_000_000);
        zone(root, "intel-rapl:2", "psys", 9_000_000);
        zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000);
        let host = Host::at(root);
        (dir, host)
    }

    #[test]
    fn packages_and_dram_are_summed_and_nothing_else() {
        let (dir, host) = two_sockets();
        let mut meter = RaplMeter::try_discover(&host).unwrap();
        assert_eq!(
            meter.zones(),
            vec![
                ("intel-rapl:0", RaplDomain::Package),
                ("intel-rapl:0:2", RaplDomain::Dram),
                ("intel-rapl:1", RaplDomain::Package),
                ("intel-rapl:1:0", RaplDomain::Dram),
            ]
        );
        let root = dir.path();
        set_energy(root, "intel-rapl:0", 1_000_000 + 10_000_000); // 10 J
        set_energy(root, "intel-rapl:0:0", 500_000 + 7_000_000); // inside package: ignored
        set_energy(root, "intel-rapl:0:2", 2_000_000 + 2_000_000); // 2 J
        set_energy(root, "intel-rapl:1", 3_000_000 + 20_000_000); // 20 J
        set_energy(root, "intel-rapl:1:0", 4_000_000 + 3_000_000); // 3 J
        set_energy(root, "intel-rapl:2", 9_000_000 + 99_000_000); // psys: ignored
        set_energy(root, "intel-rapl-mmio:0", 1_000_000 + 10_000_000); // duplicate: ignored
        assert_eq!(meter.read_delta_j(), Some(35.0));
        // Nothing moved since: the baseline advanced.
        assert_eq!(meter.read_delta_j(), Some(0.0));
    }

    #[test]
    fn a_counter_that_wrapped_counts_through_the_range() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", RANGE - 1_000_000);
        let host = Host::at(dir.path());
        let mut meter = RaplMeter::try_discover(&host).unwrap();
        set_energy(dir.path(), "intel-rapl:0", 4_000_000);
        assert_eq!(meter.read_delta_j(), Some(5.0));
        set_energy(dir.path(), "intel-rapl:0", 4_500_000);
        assert_eq!(meter.read_delta_j(), Some(0.5));
    }

    #[test]
    fn a_zone_missing_at_a_read_is_skipped_and_keeps_its_baseline() {
        let (dir, host) = two_sockets();
        let mut meter = RaplMeter::try_discover(&host).unwrap();
        let root = dir.path();
        set_energy(root, "intel-rapl:0", 1_000_000 + 1_000_000); // 1 J
        fs::remove_file(root.join(POWERCAP).join("intel-rapl:1/energy_uj")).unwrap();
        // package-0 only; both dram zones did not move.
        assert_eq!(meter.read_delta_j(), Some(1.0));
        // package-1 is back, 6 J past its discovery baseline: counted now, not lost.
        set_energy(root, "intel-rapl:1", 3_000_000 + 6_000_000);
        assert_eq!(meter.read_delta_j(), Some(6.0));
    }

    #[test]
    fn a_malformed_read_is_skipped_and_all_failing_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 1_000_000);
        let host = Host::at(dir.path());
        let mut meter = RaplMeter::try_discover(&host).unwrap();
        for bad in ["", "x", "-5", "1.5", &(RANGE + 1).to_string()] {
            fs::write(
                dir.path().join(POWERCAP).join("intel-rapl:0/energy_uj"),
                bad,
            )
            .unwrap();
            assert_eq!(meter.read_delta_j(), None, "{bad:?}");
        }
        set_energy(dir.path(), "intel-rapl:0", 3_000_000);
        assert_eq!(meter.read_delta_j(), Some(2.0));
    }

    #[test]
    fn rebaseline_drops_the_energy_since_the_last_read() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 50_000_000);
        let host = Host::at(dir.path());
        let mut meter = RaplMeter::try_discover(&host).unwrap();
        // After resume the counter restarted: that is not a wrap.
        set_energy(dir.path(), "intel-rapl:0", 1_000_000);
        meter.rebaseline();
        set_energy(dir.path(), "intel-rapl:0", 1_250_000);
        assert_eq!(meter.read_delta_j(), Some(0.25));
    }

    #[test]
    #[cfg(unix)]
    fn unreadable_energy_is_permission_denied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 1_000_000);
        let energy = dir.path().join(POWERCAP).join("intel-rapl:0/energy_uj");
        fs::set_permissions(&energy, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read_to_string(&energy).is_ok() {
            // Running as root: the mode does not stop us, nothing to test here.
            return;
        }
        let host = Host::at(dir.path());
        match RaplMeter::try_discover(&host) {
            Err(RaplUnavailable::PermissionDenied(path)) => assert_eq!(path, energy),
            other => panic!("{other:?}"),
        }
        assert!(RaplMeter::discover(&host).is_none());
    }

    #[test]
    fn an_unreadable_zone_is_left_out_when_others_read() {
        let (dir, host) = two_sockets();
        fs::remove_file(dir.path().join(POWERCAP).join("intel-rapl:0:2/energy_uj")).unwrap();
        let meter = RaplMeter::try_discover(&host).unwrap();
        assert_eq!(
            meter.zones(),
            vec![
                ("intel-rapl:0", RaplDomain::Package),
                ("intel-rapl:1", RaplDomain::Package),
                ("intel-rapl:1:0", RaplDomain::Dram),
            ]
        );
    }

    #[test]
    fn no_tree_or_no_counted_zone_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::at(dir.path());
        assert!(matches!(
            RaplMeter::try_discover(&host),
            Err(RaplUnavailable::NoPowercap(_))
        ));
        assert!(RaplMeter::discover(&host).is_none());

        zone(dir.path(), "intel-rapl:0:0", "core", 1);
        zone(dir.path(), "intel-rapl:1", "psys", 1);
        zone(dir.path(), "intel-rapl-mmio:0", "package-0", 1);
        assert!(matches!(
            RaplMeter::try_discover(&host),
            Err(RaplUnavailable::NoZones)
        ));
    }

    #[test]
    fn a_zero_or_malformed_range_leaves_the_zone_out() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 0);
        let range = dir
            .path()
            .join(POWERCAP)
            .join("intel-rapl:0/max_energy_range_uj");
        for bad in ["0", "", "lots"] {
            fs::write(&range, bad).unwrap();
            assert!(
                matches!(
                    RaplMeter::try_discover(&Host::at(dir.path())),
                    Err(RaplUnavailable::Unreadable(ProbeError::Malformed { .. }))
                ),
                "{bad:?}"
            );
        }
    }
}
