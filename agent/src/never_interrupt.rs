//! Work a policy must never interrupt: a process the policy names (`never_interrupt =
//! ["backup", "rsync"]`), and an OS update being installed, which always counts (a PC
//! switched off in the middle of dpkg may not boot again).
//!
//! Behind [`WorkProbe`] so tests use a fake `/proc` tree: [`ProcWorkProbe`] reads
//! `<root>/proc/*/comm` and the dpkg locks under `<root>/var/lib/dpkg`; [`NoWorkProbe`]
//! sees nothing (platforms without a probe yet).

use std::path::{Path, PathBuf};

use veille_proto::policy::PROCESS_NAME_LEN;

/// Process names (as in `/proc/PID/comm`, already cut to 15 bytes) of an OS update in
/// progress: dpkg and apt themselves, and unattended-upgrades (whose comm is cut to
/// `unattended-upgr`).
pub const OS_UPDATE_PROCESSES: [&str; 5] =
    ["dpkg", "apt", "apt-get", "aptitude", "unattended-upgr"];

/// The locks apt and dpkg hold while they change the system, relative to the root.
pub const DPKG_LOCKS: [&str; 2] = ["var/lib/dpkg/lock-frontend", "var/lib/dpkg/lock"];

/// Why the machine is busy with work not to interrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Busy {
    /// A process named in the policy's `never_interrupt` runs.
    Named(String),
    /// An OS update is being installed (what shows it).
    OsUpdate(String),
}

impl Busy {
    /// The `POLICY_SKIPPED` detail: a code (`never_interrupt`, `os_update`), then the
    /// reason.
    pub fn detail(&self) -> String {
        match self {
            Busy::Named(name) => format!("never_interrupt: {name} is running"),
            Busy::OsUpdate(what) => format!("os_update: {what}"),
        }
    }
}

/// Finds work not to interrupt.
pub trait WorkProbe: Send + Sync {
    /// The first work found, OS updates first; `names` are the policy's
    /// `never_interrupt` (compared on their first 15 bytes, like the kernel's).
    fn busy(&self, names: &[String]) -> Option<Busy>;
}

/// Sees nothing: platforms without a probe, and tests that do not test this.
#[derive(Debug, Default)]
pub struct NoWorkProbe;

impl WorkProbe for NoWorkProbe {
    fn busy(&self, _names: &[String]) -> Option<Busy> {
        None
    }
}

/// Reads process names from `<root>/proc/*/comm` and tests the dpkg locks.
///
/// # Platform-specific behaviour
/// Linux: the dpkg locks are tested with an open-file-description lock query
/// (`F_OFD_GETLK`), which sees the `fcntl` locks apt and dpkg take without taking one;
/// a lock file the agent may not open (mode 0640 root) is not evidence either way, and
/// the process names still show the update.
#[derive(Debug, Clone)]
pub struct ProcWorkProbe {
    root: PathBuf,
}

impl ProcWorkProbe {
    /// `/` for the real machine, a temp dir in tests.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    fn process_names(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.root.join("proc")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
            .map(|c| c.trim_end_matches('\n').to_owned())
            .collect()
    }

    fn dpkg_lock_held(&self) -> Option<String> {
        DPKG_LOCKS
            .iter()
            .find(|l| lock_held(&self.root.join(l)))
            .map(|l| format!("/{l} is locked"))
    }
}

impl WorkProbe for ProcWorkProbe {
    fn busy(&self, names: &[String]) -> Option<Busy> {
        if let Some(lock) = self.dpkg_lock_held() {
            return Some(Busy::OsUpdate(lock));
        }
        let running = self.process_names();
        if let Some(p) = running
            .iter()
            .find(|p| OS_UPDATE_PROCESSES.contains(&p.as_str()))
        {
            return Some(Busy::OsUpdate(format!("{p} is running")));
        }
        names
            .iter()
            .find(|n| running.iter().any(|p| *p == comm_name(n)))
            .map(|n| Busy::Named(n.clone()))
    }
}

/// A name as the kernel keeps it in `comm`: its first 15 bytes (cut on a character
/// boundary).
fn comm_name(name: &str) -> &str {
    let mut end = name.len().min(PROCESS_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Whether another open file description holds a write-conflicting `fcntl` lock on
/// `path` (what apt's and dpkg's locks are).
#[cfg(target_os = "linux")]
fn lock_held(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: `flock` is plain data, zeroed is a valid value; F_OFD_GETLK only reads
    // and writes that struct, on a descriptor that stays open for the call.
    unsafe {
        let mut query: libc::flock = std::mem::zeroed();
        query.l_type = libc::F_WRLCK as libc::c_short;
        query.l_whence = libc::SEEK_SET as libc::c_short;
        if libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut query) != 0 {
            return false;
        }
        query.l_type != libc::F_UNLCK as libc::c_short
    }
}

#[cfg(not(target_os = "linux"))]
fn lock_held(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(root: &Path, processes: &[(u32, &str)]) {
        for (pid, comm) in processes {
            let dir = root.join("proc").join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        }
        // Not a process: ignored.
        std::fs::create_dir_all(root.join("proc/sys")).unwrap();
    }

    #[test]
    fn named_processes_and_updates_are_found_in_the_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        fake_proc(root.path(), &[(1, "systemd"), (412, "rsync"), (77, "bash")]);
        let probe = ProcWorkProbe::new(root.path());
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            probe.busy(&names(&["backup", "rsync"])),
            Some(Busy::Named("rsync".into()))
        );
        assert_eq!(probe.busy(&names(&["backup"])), None);
        assert_eq!(probe.busy(&[]), None);
        // The kernel keeps 15 bytes: a long name matches its cut comm.
        fake_proc(root.path(), &[(500, "veeam-backup-ag")]);
        assert_eq!(
            probe.busy(&names(&["veeam-backup-agent"])),
            Some(Busy::Named("veeam-backup-agent".into()))
        );
        // unattended-upgrades, listed or not, and before any named process.
        fake_proc(root.path(), &[(900, "unattended-upgr")]);
        let busy = probe.busy(&names(&["rsync"])).unwrap();
        assert_eq!(busy, Busy::OsUpdate("unattended-upgr is running".into()));
        assert_eq!(busy.detail(), "os_update: unattended-upgr is running");
        assert_eq!(
            Busy::Named("rsync".into()).detail(),
            "never_interrupt: rsync is running"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_held_dpkg_lock_is_an_os_update() {
        use std::os::fd::AsRawFd;
        let root = tempfile::tempdir().unwrap();
        fake_proc(root.path(), &[(1, "systemd")]);
        let lock = root.path().join(DPKG_LOCKS[0]);
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, "").unwrap();
        let probe = ProcWorkProbe::new(root.path());
        // Present but free.
        assert_eq!(probe.busy(&[]), None);
        // Held the way apt holds it (an fcntl write lock), here through another open
        // file description of this process, which an OFD query sees.
        let holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock)
            .unwrap();
        // SAFETY: as in `lock_held`; the descriptor outlives the call.
        let rc = unsafe {
            let mut l: libc::flock = std::mem::zeroed();
            l.l_type = libc::F_WRLCK as libc::c_short;
            l.l_whence = libc::SEEK_SET as libc::c_short;
            libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &l)
        };
        assert_eq!(rc, 0);
        assert_eq!(
            probe.busy(&[]),
            Some(Busy::OsUpdate(
                "/var/lib/dpkg/lock-frontend is locked".into()
            ))
        );
        drop(holder);
        assert_eq!(probe.busy(&[]), None);
    }
}
