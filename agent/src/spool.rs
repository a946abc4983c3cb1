//! The agent's durable disk queue of reports.
//!
//! Every report is written here, and made durable, before any attempt to send it; it
//! leaves only when the collector's `Ack` says it is durably stored (`ack`), when the
//! collector refuses it as invalid (`reject`, kept aside for a human), or when the
//! bounds force the oldest out (counted, and reported to the collector as a
//! `SPOOL_DROPPED` event by the caller).
//!
//! # On-disk layout
//!
//! One file per report in the spool directory (`<state_dir>/spool/`), named by its
//! zero-padded seq so that a directory listing sorts like the queue:
//! `00000000000000000042.pb`. A file is a 12-byte header followed by the
//! prost-encoded `veille.v1.Report`:
//!
//! | bytes | content                                   |
//! |-------|-------------------------------------------|
//! | 0..4  | magic `VSP1`                              |
//! | 4..8  | payload length, u32 little-endian         |
//! | 8..12 | CRC-32 (IEEE) of the payload, little-endian |
//! | 12..  | payload                                   |
//!
//! Beside the entries: `corrupt/` (entries that failed their checks, kept for a human)
//! and `rejected/` (entries the collector refused, each with a `.reason` file).
//!
//! # Crash safety
//!
//! An entry is written to `<name>.tmp`, fsync'd, renamed to `<name>`, and the directory
//! is fsync'd before [`Spool::push`] returns `Ok`. Rename is atomic, so a process killed
//! at any instant (SIGKILL, power cut) leaves either no entry or a complete one under the
//! final name, plus at worst a `.tmp` file that was never reported as written and that
//! [`Spool::open`] deletes. The checksum catches what the file system may still get
//! wrong (a torn write on a disk that lies about flushes, bit rot): such an entry is
//! moved to `corrupt/` at open instead of blocking the queue. The test
//! `sigkill_mid_push_loses_nothing_acknowledged` kills a real writer process with
//! SIGKILL in the middle of pushes and checks this.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use veille_proto::v1::Report;

const MAGIC: [u8; 4] = *b"VSP1";
const HEADER_LEN: usize = 12;
const ENTRY_EXT: &str = "pb";
const TMP_SUFFIX: &str = ".tmp";
const SEQ_DIGITS: usize = 20;
const CORRUPT_DIR: &str = "corrupt";
const REJECTED_DIR: &str = "rejected";
/// An entry larger than a whole batch cannot be one report: it is corrupt, and reading
/// it whole would be a way to exhaust memory.
const MAX_ENTRY_BYTES: u64 = veille_proto::defaults::MAX_BATCH_BYTES as u64;
/// Allocation unit assumed for the size bound: on ext4, NTFS, XFS and tmpfs a file
/// occupies at least one 4 KiB block, so a 400-byte report costs 4 KiB of disk.
pub const BLOCK_BYTES: u64 = 4096;

/// How much the spool may hold. When a push goes past either bound, the oldest entries
/// (lowest seq) are dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Disk space the entries may use, each entry counted as its length rounded up to
    /// [`BLOCK_BYTES`] (what it really occupies on the disk, not just its payload).
    pub max_bytes: u64,
    /// Entries whose report ended longer ago than this are dropped: the collector keeps
    /// raw reports for a bounded time anyway, and an agent cut off for longer than this
    /// is better re-enrolled than flooding the collector with ancient minutes.
    pub max_age: Duration,
}

impl Default for SpoolLimits {
    /// 64 MiB and 30 days.
    ///
    /// A report encodes to ~150-400 bytes, i.e. one 4 KiB block on disk, so 64 MiB
    /// holds 16,384 reports: 11.4 days at one report a minute, comfortably more than the
    /// 7 days required to ride out a week-long collector or network outage (a long
    /// weekend plus a slow fix). At longer intervals, or on a machine that is off at
    /// night (no reports while off), the age bound binds first: 30 days covers a month of
    /// holidays for a laptop that stays on but offline, and stays well within the
    /// collector's 90-day raw retention, so nothing sent late is already obsolete there.
    /// 64 MiB is negligible even on a thin client's 8 GB flash.
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What the spool holds, from the in-memory index (no disk access).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpoolStats {
    pub count: usize,
    /// Disk space used by the entries, counted like [`SpoolLimits::max_bytes`].
    pub bytes: u64,
    pub oldest_seq: Option<u64>,
    pub newest_seq: Option<u64>,
    /// Smallest `end_unix_ms` among the entries (the one the age bound drops first; not
    /// necessarily the oldest seq if the wall clock was set back).
    pub oldest_end_unix_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// ENOSPC or EDQUOT: nothing was added and the spool is as it was before the call.
    /// The caller keeps the report in memory and pushes it again later.
    #[error(
        "disk full writing {path}: {source}; the report was not spooled (keep it in memory and retry)"
    )]
    Full { path: PathBuf, source: io::Error },
    /// An entry that passed the checks at open no longer does (changed on disk since).
    /// The caller moves it aside with [`Spool::quarantine`] and counts it as dropped.
    #[error("spool entry seq {seq} at {path} is corrupt: {detail}")]
    Corrupt {
        seq: u64,
        path: PathBuf,
        detail: String,
    },
    #[error("no spooled report with seq {seq}")]
    NotFound { seq: u64 },
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> Self {
        if is_disk_full(&source) {
            Self::Full {
                path: path.to_owned(),
                source,
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// ENOSPC / EDQUOT on Unix, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// File length in bytes (header included).
    len: u64,
    end_unix_ms: i64,
}

impl Entry {
    fn footprint(&self) -> u64 {
        footprint(self.len)
    }
}

fn footprint(len: u64) -> u64 {
    len.div_ceil(BLOCK_BYTES).max(1) * BLOCK_BYTES
}

/// The disk queue. One process owns a spool directory at a time.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    /// seq -> entry; mirrors the valid entries on disk so peek and stats never rescan.
    index: BTreeMap<u64, Entry>,
    /// Sum of the entries' footprints, kept with the index.
    bytes: u64,
    quarantined_on_open: u64,
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, normally `<state_dir>/spool`.
    ///
    /// Deletes `.tmp` leftovers of interrupted pushes (never acknowledged to a caller,
    /// so nothing is lost), verifies every entry (header, checksum, decoding, seq equal
    /// to the file name) and moves those that fail to `corrupt/` with a warning: they
    /// are counted in [`Spool::quarantined_on_open`], never silently deleted. Files it
    /// does not recognise are left alone with a warning. Limits are enforced at the next
    /// push, so that the drop count reaches the caller.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(|e| SpoolError::io(dir, e))?;
        sync_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
        if let Some(parent) = dir.parent() {
            // Makes a freshly created spool directory itself durable; best effort, the
            // parent may not be ours to open.
            let _ = sync_dir(parent);
        }
        let mut spool = Spool {
            dir: dir.to_owned(),
            limits,
            index: BTreeMap::new(),
            bytes: 0,
            quarantined_on_open: 0,
        };
        let mut removed_tmp = 0usize;
        let read_dir = fs::read_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
        let mut candidates = Vec::new();
        for item in read_dir {
            let item = item.map_err(|e| SpoolError::io(dir, e))?;
            let path = item.path();
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(path = %path.display(), "unexpected file in spool, left alone");
                continue;
            };
            let file_type = item.file_type().map_err(|e| SpoolError::io(&path, e))?;
            if file_type.is_dir() {
                if name != CORRUPT_DIR && name != REJECTED_DIR {
                    tracing::warn!(path = %path.display(), "unexpected directory in spool, left alone");
                }
                continue;
            }
            if name.ends_with(TMP_SUFFIX) {
                fs::remove_file(&path).map_err(|e| SpoolError::io(&path, e))?;
                removed_tmp += 1;
                continue;
            }
            match parse_entry_name(&name) {
                Some(seq) => candidates.push((seq, path)),
                None => {
                    tracing::warn!(path = %path.display(), "unexpected file in spool, left alone")
                }
            }
        }
        if removed_tmp > 0 {
            tracing::info!(
                count = removed_tmp,
                dir = %dir.display(),
                "removed unfinished spool writes left by an interrupted process"
            );
        }
        for (seq, path) in candidates {
            match read_entry(&path, seq) {
                Ok((report, len)) => {
                    spool.insert(
                        seq,
                        Entry {
                            len,
                            end_unix_ms: report.end_unix_ms,
                        },
                    );
                }
                Err(EntryError::Io(e)) => return Err(SpoolError::io(&path, e)),
                Err(EntryError::Invalid(detail)) => {
                    let dest = spool.move_to_corrupt(&path)?;
                    spool.quarantined_on_open += 1;
                    tracing::warn!(
                        seq,
                        path = %path.display(),
                        moved_to = %dest.display(),
                        detail,
                        "corrupt spool entry quarantined; this report is lost"
                    );
                }
            }
        }
        if removed_tmp > 0 || spool.quarantined_on_open > 0 {
            sync_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
        }
        tracing::debug!(
            dir = %dir.display(),
            count = spool.index.len(),
            bytes = spool.bytes,
            "spool opened"
        );
        Ok(spool)
    }

    /// How many entries [`Spool::open`] moved to `corrupt/`. Each is a lost report: the
    /// caller adds this to the drops it reports as `SPOOL_DROPPED`.
    pub fn quarantined_on_open(&self) -> u64 {
        self.quarantined_on_open
    }

    /// Writes `report` durably (see the module's crash-safety notes): once this returns
    /// `Ok` the report survives SIGKILL and power loss. Pushing a seq already spooled
    /// replaces that entry, so retrying a push whose outcome is unknown is safe.
    ///
    /// Then enforces the limits: entries whose report ended more than `max_age` before
    /// `now_unix_ms` are dropped, then the oldest (lowest seq) until the total fits in
    /// `max_bytes`. The report just pushed is never dropped by its own push, even alone
    /// over a bound. Returns how many entries this push dropped; the caller must add it
    /// to its persisted count of unreported drops. A drop that fails to delete its file
    /// stops the enforcement with a warning (the entry stays, to be retried at the next
    /// push) rather than failing the push, so the count of what was dropped is never
    /// lost with an error.
    ///
    /// # Errors
    /// [`SpoolError::Full`] when the disk is full: nothing was added, the spool is
    /// unchanged, and the caller keeps the report in memory to retry.
    pub fn push(&mut self, report: &Report, now_unix_ms: i64) -> Result<u64, SpoolError> {
        let seq = report.seq;
        let payload = report.encode_to_vec();
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&MAGIC);
        // A Report is far below 4 GiB (strings and repeated fields are bounded).
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let path = self.entry_path(seq);
        write_atomic(&path, &bytes).map_err(|(p, e)| SpoolError::io(&p, e))?;
        self.insert(
            seq,
            Entry {
                len: bytes.len() as u64,
                end_unix_ms: report.end_unix_ms,
            },
        );
        Ok(self.enforce_limits(seq, now_unix_ms))
    }

    /// The oldest `max` reports (lowest seqs first), read back from disk and verified.
    ///
    /// # Errors
    /// [`SpoolError::Corrupt`] names an entry that no longer passes its checks: move it
    /// aside with [`Spool::quarantine`] (and count it as dropped), then peek again.
    pub fn peek(&self, max: usize) -> Result<Vec<Report>, SpoolError> {
        let mut reports = Vec::with_capacity(max.min(self.index.len()));
        for &seq in self.index.keys().take(max) {
            let path = self.entry_path(seq);
            match read_entry(&path, seq) {
                Ok((report, _)) => reports.push(report),
                Err(EntryError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(SpoolError::Corrupt {
                        seq,
                        path,
                        detail: "file vanished from the spool directory".into(),
                    });
                }
                Err(EntryError::Io(e)) => return Err(SpoolError::io(&path, e)),
                Err(EntryError::Invalid(detail)) => {
                    return Err(SpoolError::Corrupt { seq, path, detail });
                }
            }
        }
        Ok(reports)
    }

    /// Removes every entry with seq <= `up_to` (the collector's `highest_durable_seq`);
    /// returns how many. An entry whose file is already gone is simply forgotten.
    ///
    /// # Errors
    /// On an I/O error the entries removed so far stay removed and the rest stay
    /// spooled; acking again later finishes the job (a resend meanwhile is a harmless
    /// duplicate for the collector).
    pub fn ack(&mut self, up_to: u64) -> Result<usize, SpoolError> {
        let seqs: Vec<u64> = self.index.range(..=up_to).map(|(&s, _)| s).collect();
        let mut removed = 0;
        let mut result = Ok(());
        for seq in seqs {
            let path = self.entry_path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(SpoolError::io(&path, e));
                    break;
                }
            }
            self.forget(seq);
            removed += 1;
        }
        if removed > 0 {
            // Not needed for correctness (an ack undone by a crash means a duplicate
            // resend), but keeps the disk in step with the index.
            let synced = sync_dir(&self.dir).map_err(|e| SpoolError::io(&self.dir, e));
            result = result.and(synced);
        }
        result.map(|()| removed)
    }

    /// Moves the entry `seq`, which the collector refused as invalid, to
    /// `rejected/<seq>.pb` with the collector's `reason` in `rejected/<seq>.reason`:
    /// resending it would be refused again and block the queue, and deleting it would
    /// destroy the evidence of the bug. Never resent. An existing rejected file of the
    /// same seq (a reinstalled agent) is kept: the new pair gets a `.N` suffix.
    pub fn reject(&mut self, seq: u64, reason: &str) -> Result<(), SpoolError> {
        if !self.index.contains_key(&seq) {
            return Err(SpoolError::NotFound { seq });
        }
        let rejected = self.dir.join(REJECTED_DIR);
        fs::create_dir_all(&rejected).map_err(|e| SpoolError::io(&rejected, e))?;
        let stem = format!("{seq:0width$}", width = SEQ_DIGITS);
        let base = free_base_name(&rejected, &stem, &[".pb", ".reason"]);
        let reason_path = rejected.join(format!("{base}.reason"));
        let text = format!("seq {seq} refused by the collector: {reason}\n");
        write_atomic(&reason_path, text.as_bytes()).map_err(|(p, e)| SpoolError::io(&p, e))?;
        let from = self.entry_path(seq);
        let to = rejected.join(format!("{base}.pb"));
        fs::rename(&from, &to).map_err(|e| SpoolError::io(&from, e))?;
        self.forget(seq);
        sync_dir(&rejected).map_err(|e| SpoolError::io(&rejected, e))?;
        sync_dir(&self.dir).map_err(|e| SpoolError::io(&self.dir, e))?;
        tracing::warn!(seq, path = %to.display(), reason, "report refused by the collector, kept aside");
        Ok(())
    }

    /// Moves entry `seq` to `corrupt/` after [`Spool::peek`] reported it
    /// [`SpoolError::Corrupt`], so that it no longer blocks the queue. The report is lost
    /// (the caller counts it as dropped) but its bytes are kept for a human.
    pub fn quarantine(&mut self, seq: u64) -> Result<(), SpoolError> {
        if !self.index.contains_key(&seq) {
            return Err(SpoolError::NotFound { seq });
        }
        let path = self.entry_path(seq);
        match self.move_to_corrupt(&path) {
            Ok(dest) => {
                tracing::warn!(seq, moved_to = %dest.display(), "corrupt spool entry quarantined; this report is lost");
            }
            Err(SpoolError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(seq, path = %path.display(), "spool entry vanished; this report is lost");
            }
            Err(e) => return Err(e),
        }
        self.forget(seq);
        sync_dir(&self.dir).map_err(|e| SpoolError::io(&self.dir, e))
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            count: self.index.len(),
            bytes: self.bytes,
            oldest_seq: self.index.keys().next().copied(),
            newest_seq: self.max_seq(),
            oldest_end_unix_ms: self.index.values().map(|e| e.end_unix_ms).min(),
        }
    }

    /// Highest seq spooled: a floor for the next seq when the state file was lost.
    pub fn max_seq(&self) -> Option<u64> {
        self.index.keys().next_back().copied()
    }

    /// Drops what the bounds no longer allow, never `keep`; returns how many.
    fn enforce_limits(&mut self, keep: u64, now_unix_ms: i64) -> u64 {
        let max_age_ms = i64::try_from(self.limits.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_unix_ms.saturating_sub(max_age_ms);
        let mut doomed: BTreeSet<u64> = self
            .index
            .iter()
            .filter(|&(&seq, e)| seq != keep && e.end_unix_ms < cutoff)
            .map(|(&seq, _)| seq)
            .collect();
        let mut bytes_after: u64 = self.bytes
            - doomed
                .iter()
                .map(|s| self.index[s].footprint())
                .sum::<u64>();
        for (&seq, e) in &self.index {
            if bytes_after <= self.limits.max_bytes {
                break;
            }
            if seq == keep || doomed.contains(&seq) {
                continue;
            }
            doomed.insert(seq);
            bytes_after -= e.footprint();
        }
        if doomed.is_empty() {
            return 0;
        }
        let mut dropped = 0u64;
        for seq in doomed {
            let path = self.entry_path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(seq, path = %path.display(), error = %e, "cannot drop spool entry over its bounds; will retry at the next push");
                    break;
                }
            }
            self.forget(seq);
            dropped += 1;
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot fsync spool directory after drops");
        }
        tracing::warn!(
            dropped,
            max_bytes = self.limits.max_bytes,
            max_age_s = self.limits.max_age.as_secs(),
            "spool over its bounds: oldest reports dropped"
        );
        dropped
    }

    fn insert(&mut self, seq: u64, entry: Entry) {
        if let Some(old) = self.index.insert(seq, entry) {
            self.bytes -= old.footprint();
        }
        self.bytes += entry.footprint();
    }

    fn forget(&mut self, seq: u64) {
        if let Some(old) = self.index.remove(&seq) {
            self.bytes -= old.footprint();
        }
    }

    fn entry_path(&self, seq: u64) -> PathBuf {
        self.dir.join(entry_name(seq))
    }

    fn move_to_corrupt(&self, path: &Path) -> Result<PathBuf, SpoolError> {
        let corrupt = self.dir.join(CORRUPT_DIR);
        fs::create_dir_all(&corrupt).map_err(|e| SpoolError::io(&corrupt, e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("entry")
            .to_owned();
        let base = free_base_name(&corrupt, &name, &[""]);
        let dest = corrupt.join(base);
        fs::rename(path, &dest).map_err(|e| SpoolError::io(path, e))?;
        sync_dir(&corrupt).map_err(|e| SpoolError::io(&corrupt, e))?;
        Ok(dest)
    }
}

fn entry_name(seq: u64) -> String {
    format!("{seq:0width$}.{ENTRY_EXT}", width = SEQ_DIGITS)
}

/// `Some(seq)` for exactly `<20 digits>.pb`; anything else is not ours.
fn parse_entry_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(ENTRY_EXT)?.strip_suffix('.')?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `base`, or `base.1`, `base.2`, … : the first for which no `base + suffix` exists in
/// `dir`, so that nothing kept for a human is ever overwritten.
fn free_base_name(dir: &Path, base: &str, suffixes: &[&str]) -> String {
    let taken = |b: &str| {
        suffixes
            .iter()
            .any(|s| dir.join(format!("{b}{s}")).exists())
    };
    if !taken(base) {
        return base.to_owned();
    }
    (1u64..)
        .map(|n| format!("{base}.{n}"))
        .find(|b| !taken(b))
        .unwrap_or_else(|| base.to_owned())
}

enum EntryError {
    Io(io::Error),
    Invalid(String),
}

/// Reads and verifies one entry; returns the report and the file length.
fn read_entry(path: &Path, seq: u64) -> Result<(Report, u64), EntryError> {
    let file = File::open(path).map_err(EntryError::Io)?;
    let len = file.metadata().map_err(EntryError::Io)?.len();
    if len > MAX_ENTRY_BYTES {
        return Err(EntryError::Invalid(format!(
            "{len} bytes, more than any report can be ({MAX_ENTRY_BYTES})"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(EntryError::Io)?;
    let report = decode_entry(&bytes).map_err(EntryError::Invalid)?;
    if report.seq != seq {
        return Err(EntryError::Invalid(format!(
            "holds seq {} but is named for seq {seq}",
            report.seq
        )));
    }
    Ok((report, bytes.len() as u64))
}

/// Decodes one spool file's bytes (header, length, checksum, protobuf Report); the
/// error says what is wrong. Public for the fuzz target (`fuzz/`): spool files are
/// read back after crashes, power cuts and disk errors.
pub fn decode_entry(bytes: &[u8]) -> Result<Report, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if header[0..4] != MAGIC {
        return Err(format!("bad magic {:02x?}", &header[0..4]));
    }
    let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if declared != payload.len() {
        return Err(format!(
            "header says {declared} payload bytes, file has {}",
            payload.len()
        ));
    }
    let expected = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let actual = crc32(payload);
    if expected != actual {
        return Err(format!(
            "checksum mismatch (header {expected:08x}, payload {actual:08x})"
        ));
    }
    Report::decode(payload).map_err(|e| format!("not a valid Report: {e}"))
}

/// Replaces `path` with `bytes` so that, whatever the instant a crash happens, `path`
/// holds either its previous content (or nothing) or all of `bytes`: write to
/// `<path>.tmp`, fsync it, rename over `path`, fsync the directory. On failure the temp
/// file is removed (best effort) and the error names the file it concerns.
///
/// # Platform-specific behaviour
/// On Windows the directory is not fsync'd (a directory cannot be opened as a file
/// there); NTFS journals the rename itself.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, io::Error)> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp_name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err((path.to_owned(), e));
    }
    sync_dir(dir).map_err(|e| (dir.to_owned(), e))
}

/// Makes renames and deletions in `dir` durable.
///
/// # Platform-specific behaviour
/// A no-op on non-Unix platforms, where a directory cannot be opened to be fsync'd.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), table-driven. Detects every
/// burst error up to 32 bits and torn writes; not a defence against tampering (nothing
/// on a local disk the agent's user can write is).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: i64 = 60_000;
    /// 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600_000;

    fn report(seq: u64, end_unix_ms: i64) -> Report {
        Report {
            boot_id: "6f1c2a52-0d4e-4b8e-9a57-3c8e9b1f0a11".into(),
            seq,
            start_unix_ms: end_unix_ms - MINUTE_MS,
            end_unix_ms,
            boot_time_unix_s: T0 / 1000 - 3600,
            uptime_s: 3600,
            active_ms: 40_000,
            idle_ms: 20_000,
            sleep_ms: 0,
            cpu_util: 0.25,
            ..Default::default()
        }
    }

    fn seqs(reports: &[Report]) -> Vec<u64> {
        reports.iter().map(|r| r.seq).collect()
    }

    fn big_limits() -> SpoolLimits {
        SpoolLimits {
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(365 * 24 * 3600),
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn defaults_hold_at_least_seven_days_at_one_report_a_minute() {
        let limits = SpoolLimits::default();
        let week = 7 * 24 * 60;
        // The largest report we expect (~400 bytes) still costs one block.
        assert!(footprint(HEADER_LEN as u64 + 400) * week <= limits.max_bytes);
        assert!(limits.max_age >= Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn push_peek_ack_keep_seq_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut spool = Spool::open(&dir, big_limits()).unwrap();
        for seq in [5, 3, 4, 1, 2] {
            assert_eq!(spool.push(&report(seq, T0 + seq as i64), T0).unwrap(), 0);
        }
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 2, 3, 4, 5]);
        assert_eq!(seqs(&spool.peek(2).unwrap()), vec![1, 2]);
        assert_eq!(spool.peek(2).unwrap()[0], report(1, T0 + 1));
        assert_eq!(spool.ack(3).unwrap(), 3);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![4, 5]);
        assert_eq!(spool.ack(3).unwrap(), 0, "acking again is harmless");
        assert_eq!(spool.ack(100).unwrap(), 2);
        assert!(spool.peek(10).unwrap().is_empty());
        assert_eq!(spool.stats(), SpoolStats::default());
        assert_eq!(spool.max_seq(), None);
        assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    }

    #[test]
    fn entries_are_named_by_padded_seq_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut spool = Spool::open(&dir, big_limits()).unwrap();
        spool.push(&report(42, T0), T0).unwrap();
        spool.push(&report(43, T0 + MINUTE_MS), T0).unwrap();
        assert_eq!(
            files_in(&dir),
            vec!["00000000000000000042.pb", "00000000000000000043.pb"]
        );
        let before = spool.stats();
        drop(spool);
        let spool = Spool::open(&dir, big_limits()).unwrap();
        assert_eq!(spool.stats(), before);
        assert_eq!(spool.max_seq(), Some(43));
        assert_eq!(
            spool.peek(10).unwrap(),
            vec![report(42, T0), report(43, T0 + MINUTE_MS)]
        );
        assert_eq!(spool.quarantined_on_open(), 0);
    }

    #[test]
    fn pushing_a_seq_again_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), big_limits()).unwrap();
        spool.push(&report(7, T0), T0).unwrap();
        spool.push(&report(7, T0 + 5), T0).unwrap();
        assert_eq!(spool.stats().count, 1);
        assert_eq!(spool.stats().bytes, BLOCK_BYTES);
        assert_eq!(spool.peek(10).unwrap(), vec![report(7, T0 + 5)]);
    }

    #[test]
    fn size_bound_drops_oldest_first_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let limits = SpoolLimits {
            max_bytes: 3 * BLOCK_BYTES,
            max_age: Duration::from_secs(365 * 24 * 3600),
        };
        let mut spool = Spool::open(&dir, limits).unwrap();
        for seq in 1..=3 {
            assert_eq!(spool.push(&report(seq, T0), T0).unwrap(), 0);
        }
        assert_eq!(spool.stats().bytes, 3 * BLOCK_BYTES);
        assert_eq!(spool.push(&report(4, T0), T0).unwrap(), 1);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![2, 3, 4]);

        // Lowering the bound: the drops happen at the next push, which reports them all,
        // and the report just pushed is kept even though it alone is over the bound.
        drop(spool);
        let mut spool = Spool::open(
            &dir,
            SpoolLimits {
                max_bytes: 10,
                ..limits
            },
        )
        .unwrap();
        assert_eq!(spool.stats().count, 3, "open enforces nothing");
        assert_eq!(spool.push(&report(5, T0), T0).unwrap(), 3);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![5]);
        assert_eq!(files_in(&dir), vec!["00000000000000000005.pb"]);

        // The index was rebuilt from what is really on disk.
        drop(spool);
        let spool = Spool::open(&dir, limits).unwrap();
        let stats = spool.stats();
        assert_eq!(stats.count, 1);
        assert_eq!(stats.bytes, BLOCK_BYTES);
        assert_eq!((stats.oldest_seq, stats.newest_seq), (Some(5), Some(5)));
    }

    #[test]
    fn age_bound_drops_reports_that_ended_too_long_ago() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(3600),
        };
        let mut spool = Spool::open(tmp.path(), limits).unwrap();
        // seq 2 ended earliest: a clock set back between reports. Age, not seq, decides.
        spool.push(&report(1, T0 + 10 * MINUTE_MS), T0).unwrap();
        spool.push(&report(2, T0), T0).unwrap();
        spool.push(&report(3, T0 + 30 * MINUTE_MS), T0).unwrap();
        assert_eq!(spool.stats().oldest_end_unix_ms, Some(T0));
        // Exactly max_age old is kept.
        assert_eq!(
            spool
                .push(&report(4, T0 + 60 * MINUTE_MS), T0 + 60 * MINUTE_MS)
                .unwrap(),
            0
        );
        let now = T0 + 75 * MINUTE_MS;
        assert_eq!(spool.push(&report(5, now), now).unwrap(), 2);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![3, 4, 5]);
        // The report being pushed is kept even if it is itself too old.
        let now = T0 + 1000 * MINUTE_MS;
        assert_eq!(spool.push(&report(6, T0), now).unwrap(), 3);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![6]);
    }

    #[test]
    fn corrupt_entries_are_quarantined_and_the_rest_stays_readable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut spool = Spool::open(&dir, big_limits()).unwrap();
        for seq in 1..=5 {
            spool.push(&report(seq, T0), T0).unwrap();
        }
        drop(spool);
        // 2: truncated in the middle of the payload.
        let p2 = dir.join(entry_name(2));
        let len = fs::metadata(&p2).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&p2)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        // 3: one payload byte flipped.
        let p3 = dir.join(entry_name(3));
        let mut bytes = fs::read(&p3).unwrap();
        bytes[HEADER_LEN + 5] ^= 0x40;
        fs::write(&p3, &bytes).unwrap();
        // 4: a valid entry under the wrong name.
        fs::copy(dir.join(entry_name(1)), dir.join(entry_name(4))).unwrap();
        // Not ours: left alone.
        fs::write(dir.join("notes.txt"), "hello").unwrap();

        let spool = Spool::open(&dir, big_limits()).unwrap();
        assert_eq!(spool.quarantined_on_open(), 3);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 5]);
        assert_eq!(
            files_in(&dir.join(CORRUPT_DIR)),
            vec![entry_name(2), entry_name(3), entry_name(4)]
        );
        assert_eq!(
            fs::read(dir.join(CORRUPT_DIR).join(entry_name(3))).unwrap(),
            bytes,
            "kept as found, for a human"
        );
        assert!(dir.join("notes.txt").exists());
        drop(spool);

        // A second corrupt entry of the same name does not overwrite the first.
        fs::write(dir.join(entry_name(2)), b"VSP1garbage").unwrap();
        let spool = Spool::open(&dir, big_limits()).unwrap();
        assert_eq!(spool.quarantined_on_open(), 1);
        assert!(
            dir.join(CORRUPT_DIR)
                .join(format!("{}.1", entry_name(2)))
                .exists()
        );
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 5]);
    }

    #[test]
    fn an_entry_corrupted_while_open_is_reported_and_can_be_quarantined() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), big_limits()).unwrap();
        for seq in 1..=3 {
            spool.push(&report(seq, T0), T0).unwrap();
        }
        fs::write(tmp.path().join(entry_name(1)), b"").unwrap();
        fs::remove_file(tmp.path().join(entry_name(2))).unwrap();
        match spool.peek(10) {
            Err(SpoolError::Corrupt { seq: 1, .. }) => {}
            other => panic!("expected Corrupt for seq 1, got {other:?}"),
        }
        spool.quarantine(1).unwrap();
        match spool.peek(10) {
            Err(SpoolError::Corrupt { seq: 2, .. }) => {}
            other => panic!("expected Corrupt for seq 2, got {other:?}"),
        }
        spool.quarantine(2).unwrap();
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![3]);
        assert!(tmp.path().join(CORRUPT_DIR).join(entry_name(1)).exists());
        assert!(matches!(
            spool.quarantine(9),
            Err(SpoolError::NotFound { seq: 9 })
        ));
    }

    #[test]
    fn temp_leftover_of_an_interrupted_push_is_removed_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut spool = Spool::open(&dir, big_limits()).unwrap();
        spool.push(&report(1, T0), T0).unwrap();
        drop(spool);
        // What a process killed between write and rename leaves: a half-written temp
        // file. Its push never returned, so no caller was told it was spooled.
        let full = fs::read(dir.join(entry_name(1))).unwrap();
        fs::write(dir.join(format!("{}.tmp", entry_name(2))), &full[..9]).unwrap();
        let spool = Spool::open(&dir, big_limits()).unwrap();
        assert_eq!(files_in(&dir), vec![entry_name(1)]);
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1]);
        assert_eq!(spool.quarantined_on_open(), 0);
    }

    #[test]
    fn reject_moves_the_entry_aside_with_its_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut spool = Spool::open(&dir, big_limits()).unwrap();
        for seq in 1..=3 {
            spool.push(&report(seq, T0), T0).unwrap();
        }
        let original = fs::read(dir.join(entry_name(2))).unwrap();
        spool
            .reject(2, "reports[0].cpu_util = 1.5: must be in [0, 1]")
            .unwrap();
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 3]);
        let rejected = dir.join(REJECTED_DIR);
        assert_eq!(
            files_in(&rejected),
            vec!["00000000000000000002.pb", "00000000000000000002.reason"]
        );
        assert_eq!(fs::read(rejected.join(entry_name(2))).unwrap(), original);
        let reason = fs::read_to_string(rejected.join("00000000000000000002.reason")).unwrap();
        assert!(reason.contains("cpu_util = 1.5"), "{reason}");
        assert!(matches!(
            spool.reject(2, "again"),
            Err(SpoolError::NotFound { seq: 2 })
        ));
        // Never resent, even after a restart.
        drop(spool);
        let mut spool = Spool::open(&dir, big_limits()).unwrap();
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 3]);
        // The same seq rejected again (a reinstalled agent) keeps the first pair.
        spool.push(&report(2, T0), T0).unwrap();
        spool.reject(2, "second time").unwrap();
        assert_eq!(files_in(&rejected).len(), 4);
        assert!(rejected.join("00000000000000000002.1.reason").exists());
        assert!(rejected.join("00000000000000000002.1.pb").exists());
    }

    /// Unmounts the tmpfs even when the test fails.
    #[cfg(target_os = "linux")]
    struct MountGuard(PathBuf);

    #[cfg(target_os = "linux")]
    impl Drop for MountGuard {
        fn drop(&mut self) {
            let status = std::process::Command::new("umount").arg(&self.0).status();
            if !matches!(status, Ok(s) if s.success()) {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.0)
                    .status();
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn disk_full_is_a_clear_error_and_leaves_the_spool_consistent() {
        let tmp = tempfile::tempdir().unwrap();
        let mount_point = tmp.path().join("small");
        fs::create_dir(&mount_point).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&mount_point)
            .output()
            .expect("cannot run mount(8)");
        assert!(
            out.status.success(),
            "this test needs to mount a 64 KiB tmpfs to fill it (run as root / with \
             CAP_SYS_ADMIN, as CI does); mount failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let _guard = MountGuard(mount_point.clone());

        let dir = mount_point.join("spool");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).unwrap();
        for seq in 1..=3 {
            spool.push(&report(seq, T0), T0).unwrap();
        }
        // Fill what is left of the file system.
        let mut filler = File::create(mount_point.join("filler")).unwrap();
        let chunk = vec![0u8; 1024];
        let fill_error = loop {
            if let Err(e) = filler.write_all(&chunk) {
                break e;
            }
        };
        assert!(is_disk_full(&fill_error), "{fill_error:?}");

        let err = spool.push(&report(4, T0), T0).unwrap_err();
        assert!(matches!(err, SpoolError::Full { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("disk full"), "{message}");
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 2, 3]);
        assert_eq!(spool.stats().count, 3);
        assert_eq!(
            files_in(&dir),
            vec![entry_name(1), entry_name(2), entry_name(3)]
        );

        // Still opens with the earlier entries, while still full.
        drop(spool);
        let mut spool = Spool::open(&dir, SpoolLimits::default()).unwrap();
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 2, 3]);
        assert_eq!(spool.quarantined_on_open(), 0);

        // Once space is back, the caller's retry succeeds.
        drop(filler);
        fs::remove_file(mount_point.join("filler")).unwrap();
        spool.push(&report(4, T0), T0).unwrap();
        assert_eq!(seqs(&spool.peek(10).unwrap()), vec![1, 2, 3, 4]);
        drop(spool);
    }

    const SIGKILL_DIR_ENV: &str = "VEILLE_TEST_SPOOL_SIGKILL_DIR";

    /// The writer half of `sigkill_mid_push_loses_nothing_acknowledged`: runs only when
    /// that test starts it in a child process. Pushes as fast as it can and prints each
    /// seq once `push` has returned `Ok` (i.e. once it is acknowledged to the caller).
    #[test]
    #[ignore = "child process of sigkill_mid_push_loses_nothing_acknowledged"]
    fn sigkill_writer() {
        let Some(dir) = std::env::var_os(SIGKILL_DIR_ENV) else {
            return;
        };
        let mut spool = Spool::open(Path::new(&dir), big_limits()).unwrap();
        let mut out = io::stdout();
        for seq in 1.. {
            // Large enough that a write is not instantaneous.
            let mut r = report(seq, T0);
            r.boot_id = "b".repeat(100);
            r.temperatures = (0..60)
                .map(|i| veille_proto::v1::Temperature {
                    sensor: format!("sensor-{i}"),
                    celsius: 40.0,
                })
                .collect();
            spool.push(&r, T0).unwrap();
            writeln!(out, "pushed {seq}").unwrap();
            out.flush().unwrap();
        }
    }

    /// A process SIGKILLed in the middle of pushes loses nothing it had acknowledged and
    /// leaves no entry that fails its checks.
    #[cfg(unix)]
    #[test]
    fn sigkill_mid_push_loses_nothing_acknowledged() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        // Test names exclude the crate name: "spool::tests::sigkill_writer".
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("{module}::sigkill_writer"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SIGKILL_DIR_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acknowledged = Vec::new();
        for line in io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(seq) = line.strip_prefix("pushed ") {
                acknowledged.push(seq.parse::<u64>().unwrap());
                if acknowledged.len() == 200 {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        assert_eq!(acknowledged.len(), 200, "the writer process stopped early");

        let spool = Spool::open(&dir, big_limits()).unwrap();
        assert_eq!(spool.quarantined_on_open(), 0);
        let held = seqs(&spool.peek(usize::MAX).unwrap());
        for seq in &acknowledged {
            assert!(held.contains(seq), "acknowledged seq {seq} lost");
        }
        // Nothing but whole entries is left.
        assert!(files_in(&dir).iter().all(|n| parse_entry_name(n).is_some()));
    }
}
