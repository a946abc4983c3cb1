//! CPU time counters, from which the sampler derives `cpu_util` (the energy model's load
//! and the fallback "CPU busy" activity rule).

use super::{CpuTimes, Host, ProbeError};

/// Aggregate CPU time of all CPUs since boot, in clock ticks (`USER_HZ`).
///
/// Guest time is already counted in user and nice, so it is not added again. Steal
/// counts as busy: the host ran someone else, but this machine wanted the CPU.
///
/// # Platform-specific behaviour
///
/// Linux: the `cpu` line of `/proc/stat`. Kernels before 2.6 have only the first four
/// columns (user nice system idle); missing columns count as zero. The idle and iowait
/// counters can go backwards on some tickless kernels, which
/// [`CpuTimes::util_since`] reports as `None`.
pub fn cpu_times(host: &Host) -> Result<CpuTimes, ProbeError> {
    const FILE: &str = "proc/stat";
    let stat = host.read_to_string(FILE)?;
    let malformed = |reason: String| ProbeError::malformed(host.path(FILE), reason);

    let line = stat
        .lines()
        .find_map(|line| line.strip_prefix("cpu "))
        .ok_or_else(|| malformed("no aggregate cpu line".into()))?;
    let mut fields = [0u64; 8];
    let mut columns = 0;
    for (slot, text) in fields.iter_mut().zip(line.split_whitespace()) {
        *slot = text
            .parse()
            .map_err(|_| malformed(format!("cpu column {columns} is not a counter")))?;
        columns += 1;
    }
    if columns < 4 {
        return Err(malformed(format!(
            "cpu line has {columns} columns, expected at least 4"
        )));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
    let sum = |values: &[u64]| {
        values
            .iter()
            .try_fold(0u64, |acc, v| acc.checked_add(*v))
            .ok_or_else(|| malformed("cpu counters overflow".into()))
    };
    let busy = sum(&[user, nice, system, irq, softirq, steal])?;
    let total = sum(&[busy, idle, iowait])?;
    Ok(CpuTimes { busy, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn host_with_stat(content: &str) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proc")).unwrap();
        fs::write(dir.path().join("proc/stat"), content).unwrap();
        let host = Host::at(dir.path());
        (dir, host)
    }

    #[test]
    fn aggregate_line_is_summed_without_guest_columns() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let (_dir, host) = host_with_stat(
            "cpu  100 20 30 1000 50 4 6 8 70 9\n\
             cpu0 1 1 1 1 1 1 1 1 1 1\n\
             cpu1 1 1 1 1 1 1 1 1 1 1\n\
             btime 1714550400\n",
        );
        assert_eq!(
            cpu_times(&host).unwrap(),
            CpuTimes {
                busy: 100 + 20 + 30 + 4 + 6 + 8,
                total: 100 + 20 + 30 + 4 + 6 + 8 + 1000 + 50,
            }
        );
    }

    #[test]
    fn per_cpu_lines_are_not_mistaken_for_the_aggregate() {
        let (_dir, host) = host_with_stat("cpu0 1 1 1 1\ncpu  2 0 2 6\n");
        assert_eq!(cpu_times(&host).unwrap(), CpuTimes { busy: 4, total: 10 });
    }

    #[test]
    fn old_kernels_with_four_columns_are_accepted() {
        let (_dir, host) = host_with_stat("cpu  10 2 3 85\n");
        assert_eq!(
            cpu_times(&host).unwrap(),
            CpuTimes {
                busy: 15,
                total: 100
            }
        );
    }

    #[test]
    fn malformed_cpu_lines_are_rejected() {
        for bad in [
            "",
            "cpu0 1 2 3 4\n",
            "cpu  1 2 3\n",
            "cpu  \n",
            "cpu  1 2 x 4\n",
            "cpu  1 2 -3 4\n",
            "cpu  18446744073709551615 1 0 0\n",
            "cpu  1 0 0 18446744073709551615 1\n",
            "cpu  99999999999999999999999 0 0 0\n",
        ] {
            let (_dir, host) = host_with_stat(bad);
            assert!(
                matches!(cpu_times(&host), Err(ProbeError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_proc_stat_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            cpu_times(&Host::at(dir.path())),
            Err(ProbeError::Unavailable { .. })
        ));
    }
}
