//! Start-up's code handed back to the kernel once the agent runs (issue 21: RSS).
//!
//! The kernel maps a binary's file pages in blocks around each fault (fault-around),
//! so parsing the command line and the config, probing the inventory, setting up TLS
//! and the first connection leave most of the binary resident: 4.7 MiB of a 5.7 MiB
//! agent, while the steady loop keeps about 3.1 MiB of it (1.8 MiB for a sample every
//! 10 s, the rest for a report every 60 s; measured: BENCHMARKS.md §3, session 8,
//! where the agent's RSS goes from 7.0 to 5.4 MiB). Once start-up is over,
//! [`release_startup_pages`] asks the kernel to reclaim the executable's read-only
//! mappings; what the loop uses faults back in on its next tick, the rest stays out
//! until it is needed again (an hourly inventory re-probe, a policy).
//!
//! `MADV_PAGEOUT` is a hint that never loses data: clean file pages are dropped and
//! re-read from the file when used, a page another process maps too is skipped, and
//! a written (copy-on-write) page is only swapped out where there is swap. Only the
//! agent's own executable is named, never a shared library.
//!
//! # Platform-specific behaviour
//! Linux 5.4 and later (`MADV_PAGEOUT`); an older kernel answers `EINVAL` and nothing
//! changes. Not compiled on other systems.

use std::path::Path;

/// One mapping of `/proc/self/maps`: `[start, end)`.
type Range = (usize, usize);

/// Asks the kernel to reclaim the pages of this process's executable that are mapped
/// read-only (code, constants); returns how many bytes were advised. Meant to be
/// called once, after start-up: each call makes the next use of that code fault it
/// back in from the file.
pub fn release_startup_pages() -> std::io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0;
    for (start, end) in readonly_ranges(&maps, &exe) {
        // SAFETY: the range is one of this process's own mappings, as the kernel
        // listed it; MADV_PAGEOUT only reclaims pages and never changes what a read
        // of them returns, so no reference into that memory is invalidated.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += end - start;
    }
    Ok(advised)
}

/// The read-only mappings of `exe` in a `/proc/<pid>/maps` listing. A line that does
/// not parse is skipped: the worst outcome is a page left resident.
fn readonly_ranges(maps: &str, exe: &Path) -> Vec<Range> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (range, perms) = (fields.next()?, fields.next()?);
            // offset, device, inode, then the path (which may hold spaces).
            let path = line.splitn(6, |c: char| c.is_ascii_whitespace()).nth(5)?;
            let path = path.trim_start();
            if Path::new(path) != exe || perms.as_bytes().get(1) != Some(&b'-') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PIE agent's mappings as Linux 6.x lists them (addresses shortened).
    const MAPS: &str = "\
55d0a000-55d0b000 r--p 00000000 fe:01 1311 /usr/bin/veille-agent
55d0b000-55e00000 r-xp 00001000 fe:01 1311 /usr/bin/veille-agent
55e00000-55e40000 r--p 000f6000 fe:01 1311 /usr/bin/veille-agent
55e40000-55e48000 rw-p 00136000 fe:01 1311 /usr/bin/veille-agent
55e48000-55e49000 rw-p 00000000 00:00 0
7f00000-7f10000 r-xp 00028000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libc.so.6
7f20000-7f21000 r--p 00000000 fe:01 3333 /usr/bin/veille-agent-old
7ffd000-7ffe000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn only_the_executables_read_only_mappings_are_named() {
        assert_eq!(
            readonly_ranges(MAPS, Path::new("/usr/bin/veille-agent")),
            [
                (0x55d0a000, 0x55d0b000),
                (0x55d0b000, 0x55e00000),
                (0x55e00000, 0x55e40000)
            ]
        );
    }

    #[test]
    fn a_replaced_binary_keeps_its_mappings_under_the_deleted_name() {
        let maps = "1000-2000 r-xp 00001000 fe:01 9 /usr/bin/veille-agent (deleted)\n\
                    2000-3000 r-xp 00001000 fe:01 9 /usr/bin/veille-agent\n";
        assert_eq!(
            readonly_ranges(maps, Path::new("/usr/bin/veille-agent (deleted)")),
            [(0x1000, 0x2000)]
        );
        assert_eq!(readonly_ranges("garbage\n\n1-0 r-xp", Path::new("/x")), []);
    }

    #[test]
    fn the_running_test_binary_gives_its_pages_back() {
        match release_startup_pages() {
            Ok(advised) => assert!(advised > 0),
            // A kernel before 5.4 has no MADV_PAGEOUT.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}"),
        }
    }
}
