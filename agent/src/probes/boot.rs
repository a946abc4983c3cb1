//! The current boot session: its id (reports of one boot session share it, and the
//! collector infers "off" between two of them) and when it started.

use super::{Host, ProbeError, is_uuid_shaped};

/// A random UUID the kernel draws at every boot, lowercase.
///
/// # Platform-specific behaviour
///
/// Linux: `/proc/sys/kernel/random/boot_id`, readable by everyone. A container sees
/// its host's boot id.
pub fn boot_id(host: &Host) -> Result<String, ProbeError> {
    const FILE: &str = "proc/sys/kernel/random/boot_id";
    let raw = host.read_to_string(FILE)?;
    let id = raw.trim().to_ascii_lowercase();
    if !is_uuid_shaped(&id) {
        return Err(ProbeError::malformed(
            host.path(FILE),
            format!("not a UUID: {:?}", id.chars().take(40).collect::<String>()),
        ));
    }
    Ok(id)
}

/// Boot time in Unix seconds.
///
/// The kernel derives `btime` from the wall clock minus the boot-time clock, so it moves
/// by the same amount when NTP steps the wall clock: compare boot ids, not boot times,
/// to tell two boots apart.
pub fn boot_time_unix_s(host: &Host) -> Result<i64, ProbeError> {
    const FILE: &str = "proc/stat";
    let stat = host.read_to_string(FILE)?;
    let value = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .ok_or_else(|| ProbeError::malformed(host.path(FILE), "no btime line"))?;
    match value.trim().parse::<i64>() {
        Ok(btime) if btime > 0 => Ok(btime),
        _ => Err(ProbeError::malformed(
            host.path(FILE),
            format!(
                "btime is not a positive integer: {:?}",
                value.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// Seconds since boot, including time asleep (the kernel's boot-time clock).
pub fn uptime_s(host: &Host) -> Result<f64, ProbeError> {
    const FILE: &str = "proc/uptime";
    let raw = host.read_to_string(FILE)?;
    let first = raw.split_whitespace().next().unwrap_or_default();
    match first.parse::<f64>() {
        Ok(uptime) if uptime.is_finite() && uptime >= 0.0 => Ok(uptime),
        _ => Err(ProbeError::malformed(
            host.path(FILE),
            format!(
                "uptime is not a non-negative number: {:?}",
                first.chars().take(40).collect::<String>()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn host_with(relative: &str, content: &str) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        let host = Host::at(dir.path());
        (dir, host)
    }

    fn empty_host() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::at(dir.path());
        (dir, host)
    }

    const STAT: &str = "cpu  10 0 5 100 0 0 0 0 0 0\n\
                        cpu0 10 0 5 100 0 0 0 0 0 0\n\
                        intr 12345 0 0\n\
                        ctxt 987654\n\
                        btime 1714550400\n\
                        processes 4242\n\
                        procs_running 1\n";

    #[test]
    fn boot_id_is_read_trimmed_and_lowercased() {
        let (_dir, host) = host_with(
            "proc/sys/kernel/random/boot_id",
            "3F6A9C1E-5B2D-4E8F-9A7C-1D2E3F4A5B6C\n",
        );
        assert_eq!(
            boot_id(&host).unwrap(),
            "3f6a9c1e-5b2d-4e8f-9a7c-1d2e3f4a5b6c"
        );
    }

    #[test]
    fn malformed_boot_id_is_rejected() {
        for bad in [
            "",
            "\n",
            "not-a-uuid",
            "3f6a9c1e5b2d4e8f9a7c1d2e3f4a5b6c",
            "3f6a9c1e-5b2d-4e8f-9a7c-1d2e3f4a5b6",
            "3f6a9c1e-5b2d-4e8f-9a7c-1d2e3f4a5b6g",
            "3f6a9c1e-5b2d-4e8f-9a7c-1d2e3f4a5b6c-00",
            "ééééééééééééééééééé",
        ] {
            let (_dir, host) = host_with("proc/sys/kernel/random/boot_id", bad);
            assert!(
                matches!(boot_id(&host), Err(ProbeError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_boot_id_is_unavailable() {
        let (_dir, host) = empty_host();
        assert!(matches!(
            boot_id(&host),
            Err(ProbeError::Unavailable { .. })
        ));
    }

    #[test]
    fn btime_is_read_from_proc_stat() {
        let (_dir, host) = host_with("proc/stat", STAT);
        assert_eq!(boot_time_unix_s(&host).unwrap(), 1_714_550_400);
    }

    #[test]
    fn malformed_btime_is_rejected() {
        for bad in [
            "",
            "cpu  1 2 3 4\n",
            "btime\n",
            "btime \n",
            "btime abc\n",
            "btime -5\n",
            "btime 0\n",
            "btime 1.5\n",
            "btime 99999999999999999999999\n",
            "xbtime 1714550400\n",
        ] {
            let (_dir, host) = host_with("proc/stat", bad);
            assert!(
                matches!(boot_time_unix_s(&host), Err(ProbeError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_proc_stat_is_unavailable() {
        let (_dir, host) = empty_host();
        assert!(matches!(
            boot_time_unix_s(&host),
            Err(ProbeError::Unavailable { .. })
        ));
    }

    #[test]
    fn uptime_is_the_first_field() {
        let (_dir, host) = host_with("proc/uptime", "35142.27 131234.56\n");
        assert_eq!(uptime_s(&host).unwrap(), 35142.27);
    }

    #[test]
    fn malformed_uptime_is_rejected() {
        for bad in ["", "\n", "abc 1.0\n", "-1.0 2.0\n", "NaN 1\n", "inf 1\n"] {
            let (_dir, host) = host_with("proc/uptime", bad);
            assert!(
                matches!(uptime_s(&host), Err(ProbeError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_uptime_is_unavailable() {
        let (_dir, host) = empty_host();
        assert!(matches!(
            uptime_s(&host),
            Err(ProbeError::Unavailable { .. })
        ));
    }
}
