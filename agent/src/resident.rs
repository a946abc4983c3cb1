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
//! After that, [`unmap_clean_code_pages`] runs after every tick and every send: it
//! unmaps the clean pages of every read-only file mapping (the binary's and the
//! libraries') without evicting them from the page cache, so the loop's own code,
//! 4.9 MiB of a steady 5.4 MiB RSS with the libraries' share, is mapped only while it
//! runs and faults back in from memory: 1.9 MiB steady (issue 21's target is 5 MiB;
//! BENCHMARKS.md §3, session 9).
//!
//! `MADV_PAGEOUT` is a hint that never loses data: clean file pages are dropped and
//! re-read from the file when used, a page another process maps too is skipped, and
//! a written (copy-on-write) page is only swapped out where there is swap. Only the
//! agent's own executable is named, never a shared library.
//!
//! # Platform-specific behaviour
//! Linux 5.4 and later for `MADV_PAGEOUT` (an older kernel answers `EINVAL` and
//! nothing changes); `MADV_DONTNEED` is in every Linux. Not compiled on other systems.

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
    // MADV_PAGEOUT only reclaims pages and never changes what a read of them returns.
    advise(&readonly_ranges(&maps, &exe), libc::MADV_PAGEOUT)
}

/// Gives `advice` to each of `ranges`; returns how many bytes were advised.
///
/// Callers pass only ranges the kernel listed as this process's own mappings (in
/// `/proc/self/maps` or `smaps`), with an advice that leaves what a read of them
/// returns unchanged there: no reference into that memory is then invalidated.
fn advise(ranges: &[Range], advice: libc::c_int) -> std::io::Result<usize> {
    let mut advised = 0;
    for &(start, end) in ranges {
        // SAFETY: see above: an own mapping, and an advice that keeps its contents.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
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

/// Unmaps from this process the clean pages of its read-only file mappings (the
/// executable's and the shared libraries' code and constants) with `MADV_DONTNEED`;
/// returns how many bytes were advised. Meant to be called after each sample and each
/// send, so that the agent's RSS between two ticks holds only its data.
///
/// Unlike [`release_startup_pages`], the pages stay in the page cache: the next tick
/// maps them back with minor faults (no read from disk), and a library's pages, which
/// every other process maps too, are only unmapped from this one. The cost is those
/// faults, a few hundred per minute (BENCHMARKS.md §3, session 9).
///
/// `MADV_DONTNEED` on a private mapping discards the pages that differ from the file,
/// so a mapping is only named when `/proc/self/smaps` shows none (`Anonymous: 0 kB`):
/// that keeps out the relocated read-only data (RELRO) and any code page a debugger
/// wrote a breakpoint into. Such a page can only appear in a mapping that is writable
/// at some point, which a read-only mapping of an already loaded file is not.
pub fn unmap_clean_code_pages() -> std::io::Result<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    // Each range is a private, read-only mapping of a file with no page that differs
    // from the file (checked in smaps): MADV_DONTNEED there only drops page-table
    // entries, and the next access maps the same file contents back, so no read ever
    // sees other bytes.
    advise(&clean_readonly_file_ranges(&smaps), libc::MADV_DONTNEED)
}

/// The private read-only mappings of files (a path starting with `/`: not `[vdso]`,
/// not anonymous memory) with no anonymous page, in a `/proc/<pid>/smaps` listing.
/// A mapping whose `Anonymous:` line is missing or does not parse is skipped.
fn clean_readonly_file_ranges(smaps: &str) -> Vec<Range> {
    let mut out = Vec::new();
    // The current mapping, while its `Anonymous:` line has not been read.
    let mut candidate: Option<Range> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            if let Some(range) = candidate.take()
                && rest.trim() == "0 kB"
            {
                out.push(range);
            }
            continue;
        }
        // A mapping's header: `start-end perms offset dev inode path`.
        let Some((start, end)) = first.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        candidate = None;
        let perms = fields.next().unwrap_or_default().as_bytes();
        let path = line.splitn(6, |c: char| c.is_ascii_whitespace()).nth(5);
        let file = path.is_some_and(|p| p.trim_start().starts_with('/'));
        // `r?-p`: readable, not writable, private.
        if file
            && end > start
            && perms.len() == 4
            && perms[0] == b'r'
            && perms[1] == b'-'
            && perms[3] == b'p'
        {
            candidate = Some((start, end));
        }
    }
    out
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

    /// Two mappings of `/proc/self/smaps`, shortened to the lines that matter.
    const SMAPS: &str = "\
55d0b000-55e00000 r-xp 00001000 fe:01 1311 /usr/bin/veille-agent
Size:               1000 kB
Rss:                 600 kB
Anonymous:             0 kB
55e00000-55e40000 r--p 000f6000 fe:01 1311 /usr/bin/veille-agent
Rss:                  64 kB
Anonymous:            60 kB
55e40000-55e48000 rw-p 00136000 fe:01 1311 /usr/bin/veille-agent
Anonymous:             0 kB
55e48000-55e49000 r--p 00000000 00:00 0
Anonymous:             0 kB
7f00000-7f10000 r-xp 00028000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f10000-7f11000 r--s 00000000 fe:01 2223 /dev/shm/shared
Anonymous:             0 kB
7f20000-7f21000 r--p 00000000 fe:01 3333 /usr/lib/locale/C.utf8/LC_CTYPE
Anonymous:             4 kB
7f30000-7f31000 r--p 00000000 fe:01 3334 /usr/lib/libno-anonymous-line.so
7ffe000-7fff000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_private_read_only_file_mappings_are_unmapped() {
        assert_eq!(
            clean_readonly_file_ranges(SMAPS),
            [(0x55d0b000, 0x55e00000), (0x7f00000, 0x7f10000)]
        );
        assert_eq!(clean_readonly_file_ranges("garbage\n\nAnonymous: 0 kB"), []);
    }

    #[test]
    fn the_running_test_binary_unmaps_its_code_and_runs_on() {
        let advised = unmap_clean_code_pages().unwrap();
        assert!(advised > 0);
        // The code that runs now was unmapped a moment ago.
        assert_eq!(clean_readonly_file_ranges(SMAPS).len(), 2);
    }
}
