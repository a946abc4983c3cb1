//! The packed forms the store keeps its bulk data in: a device-hour of raw reports in
//! one value, a device-day of hourly rollups in another.
//!
//! Why pack: one row per 60-s report costs every engine its row and index overhead
//! (sled ~550 B per ~100-byte report, PostgreSQL 6.6–7.4 KB per device-hour, issue 17),
//! while the reports of one device in one hour differ by a few bytes each: seq +1, start
//! = previous end, a minute long, uptime +60. Stored as deltas, a report takes ~15 bytes
//! and a device-hour one row.
//!
//! Both codecs are lossless for every value the contract allows (property tests below):
//! idempotency compares a resend with the stored report field by field, so a stored
//! report must decode to exactly what arrived. Values outside the common shape (a
//! `cpu_util` that is not a whole permille, a negative time, a huge counter) take more
//! bytes, never a rounding.

use prost::Message;
use veille_proto::v1::Report;

use veille_domain::energy::rollup::HourRollup;

/// First byte of a packed device-hour of reports: bump it when that layout changes,
/// and teach [`decode_reports`] the old one or refuse it. 1 was report after report
/// (~17 bytes each); 2 was one block of columns, in runs where values repeat; 3 is a
/// list of such blocks ("chunks"), so that reports are appended without unpacking the
/// hour ([`append_reports`]).
const REPORTS_FORMAT: u8 = 3;

/// First byte of a packed rollup day, apart from [`REPORTS_FORMAT`] so each layout
/// moves on its own. 1 was varints of whole ms (decoding them was a third of a month
/// report's time, BENCHMARKS.md 6a); 2 is fixed-width columns ([`encode_rollup_day`]).
const ROLLUP_FORMAT: u8 = 2;

/// Hours in a packed rollup day.
pub const HOURS_PER_DAY: usize = 24;

const FIELDS: usize = veille_domain::energy::rollup::FIELDS;

/// Bytes of a rollup day's header: format, 24-bit hour mask, one width per field.
const ROLLUP_HEADER: usize = 1 + 3 + FIELDS;

/// Width of a column of raw f64 bits, the one for values no integer width holds.
const RAW_WIDTH: u8 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("packed value of format {found}, this version reads format {expected}")]
    Format { found: u8, expected: u8 },
    #[error("packed value truncated")]
    Truncated,
    #[error("packed value malformed: {0}")]
    Malformed(&'static str),
}

/// Packs reports (any order; read back in seq order) as one chunk. Reports are
/// expected to have distinct seqs; the store guarantees it.
///
/// Layout ([`REPORTS_FORMAT`]): the format byte, the count of reports, the count of
/// chunks, then each chunk as its length in bytes and its body ([`encode_chunk`]).
/// One chunk is the compact form, the one a closed hour keeps; [`append_reports`]
/// adds chunks.
pub fn encode_reports(reports: &[Report]) -> Vec<u8> {
    let chunk = encode_chunk(reports);
    let mut out = Vec::with_capacity(chunk.len() + 8);
    out.push(REPORTS_FORMAT);
    put_varint(&mut out, reports.len() as u128);
    put_varint(&mut out, 1);
    put_varint(&mut out, chunk.len() as u128);
    out.extend_from_slice(&chunk);
    out
}

/// Adds `new` reports (distinct seqs, none of them in `packed`) to a packed hour
/// without unpacking it: they go in a chunk of their own, merged with the last
/// chunks while those hold no more reports than it (a binary counter), so an hour
/// holds at most log2(reports) + 1 chunks and each report is repacked at most that
/// many times.
///
/// Why: a device sending a report a second over MQTT (BENCHMARKS.md 8a) appends to a
/// row of up to 3,600 reports once per ingest group, and unpacking and repacking the
/// whole row each time made ingest quadratic in the row's size. A chunk costs its
/// header and its own boot ids (~40 B for a 36-character boot id), so the store
/// compacts a row to one chunk ([`compact_reports`]) once the device has moved on to
/// a later hour. Above [`MAX_RUN_REPORTS`] reports the hour is packed whole, so the
/// decoder's bound on the count holds.
pub fn append_reports(packed: &[u8], new: &[Report]) -> Result<Vec<u8>, CodecError> {
    let chunks = chunks_of(packed)?;
    let stored: usize = chunks.iter().map(|c| c.reports).sum();
    let total = stored + new.len();
    if total > MAX_RUN_REPORTS {
        let mut all = decode_reports(packed)?;
        all.extend_from_slice(new);
        return Ok(encode_reports(&all));
    }
    let mut keep = chunks.len();
    let mut tail = new.len();
    while let Some(last) = keep.checked_sub(1).and_then(|i| chunks.get(i))
        && last.reports <= tail
    {
        tail += last.reports;
        keep -= 1;
    }
    let mut merged: Vec<Report> = Vec::with_capacity(tail);
    for c in chunks.get(keep..).unwrap_or_default() {
        let body = packed.get(c.body.clone()).ok_or(CodecError::Truncated)?;
        merged.extend(decode_chunk(body)?);
    }
    merged.extend_from_slice(new);
    let chunk = encode_chunk(&merged);
    // The chunks before `keep` are copied as they are.
    let first = chunks.first().map_or(packed.len(), |c| c.start);
    let kept_end = chunks.get(keep).map_or(packed.len(), |c| c.start);
    let kept = packed.get(first..kept_end).ok_or(CodecError::Truncated)?;
    let mut out = Vec::with_capacity(kept.len() + chunk.len() + 16);
    out.push(REPORTS_FORMAT);
    put_varint(&mut out, total as u128);
    put_varint(&mut out, (keep + 1) as u128);
    out.extend_from_slice(kept);
    put_varint(&mut out, chunk.len() as u128);
    out.extend_from_slice(&chunk);
    Ok(out)
}

/// A packed hour of several chunks packed again as one (the compact form), or `None`
/// when it already is one chunk.
pub fn compact_reports(packed: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
    if chunks_of(packed)?.len() <= 1 {
        return Ok(None);
    }
    Ok(Some(encode_reports(&decode_reports(packed)?)))
}

/// Where one chunk of a packed hour lies, and how many reports it holds.
struct Chunk {
    /// Offset of the chunk's length prefix.
    start: usize,
    /// The chunk's body.
    body: std::ops::Range<usize>,
    reports: usize,
}

/// Reads a packed hour's header: (reports, chunks), after the checks that keep a
/// corrupt value from sizing an allocation.
fn header(r: &mut Reader<'_>) -> Result<(usize, usize), CodecError> {
    let format = r.byte()?;
    if format != REPORTS_FORMAT {
        return Err(CodecError::Format {
            found: format,
            expected: REPORTS_FORMAT,
        });
    }
    let n = usize::try_from(r.varint()?).map_err(|_| CodecError::Malformed("length"))?;
    if n > r.bytes.len().max(MAX_RUN_REPORTS) {
        // Plain columns take a byte a report: a count above the input's length (and
        // above what runs may hold) is a lie, refused before it sizes an allocation.
        return Err(CodecError::Malformed("report count beyond the value"));
    }
    // Every chunk takes two bytes at least (its length and its count): `len` bounds it.
    let chunks = r.len()?;
    Ok((n, chunks))
}

/// The chunks of a packed hour, from their headers (bodies are not decoded).
fn chunks_of(packed: &[u8]) -> Result<Vec<Chunk>, CodecError> {
    let mut r = Reader {
        bytes: packed,
        pos: 0,
    };
    let (n, count) = header(&mut r)?;
    let mut out = Vec::with_capacity(count);
    let mut sum = 0usize;
    for _ in 0..count {
        let start = r.pos;
        let len = r.len()?;
        let from = r.pos;
        let body = r.take(len)?;
        let reports = usize::try_from(
            Reader {
                bytes: body,
                pos: 0,
            }
            .varint()?,
        )
        .map_err(|_| CodecError::Malformed("length"))?;
        sum = sum.saturating_add(reports);
        out.push(Chunk {
            start,
            body: from..r.pos,
            reports,
        });
    }
    if sum != n {
        return Err(CodecError::Malformed("chunk counts do not add up"));
    }
    if r.pos != packed.len() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    Ok(out)
}

/// One chunk's body: the count, the boot ids, then one column per field in [`Col`]'s
/// order, each either plain (every report's value) or in runs (a count and a value,
/// for as many reports). Values are what makes a report
/// small beside the one before it: seq and start as deltas, the length, idle as what
/// the interval leaves over. Why columns: within an hour each field repeats itself
/// (seq +60, start = previous end, 60,000 ms long, uptime +60, a minute all active or
/// all idle, the same `cpu_util` while the load holds), so most columns are one run
/// and a report takes a few bytes, where report after report took ~17 (BENCHMARKS.md 6b).
/// Each chunk starts its deltas afresh, so appending one needs nothing of the others.
fn encode_chunk(reports: &[Report]) -> Vec<u8> {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    let mut boots: Vec<&str> = Vec::new();
    for r in &sorted {
        if !boots.contains(&r.boot_id.as_str()) {
            boots.push(&r.boot_id);
        }
    }
    let mut cols: [Column; COLUMNS] = Default::default();
    let mut prev = Prev::default();
    for r in &sorted {
        let boot = boots
            .iter()
            .position(|b| *b == r.boot_id)
            .unwrap_or_default();
        // Idle is usually what remains of the interval: store the difference.
        let rest = i128::from(r.end_unix_ms)
            - i128::from(r.start_unix_ms)
            - i128::from(r.active_ms)
            - i128::from(r.sleep_ms);
        let extra = Report {
            events: r.events.clone(),
            measurements: r.measurements.clone(),
            temperatures: r.temperatures.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        for (col, c) in cols.iter_mut().zip(Col::ALL) {
            let out = &mut col.bytes;
            match c {
                Col::Seq => put_varint(out, u128::from(r.seq.wrapping_sub(prev.seq))),
                Col::Boot => put_varint(out, boot as u128),
                Col::Start => put_signed(out, i128::from(r.start_unix_ms) - i128::from(prev.end)),
                Col::Length => {
                    put_signed(out, i128::from(r.end_unix_ms) - i128::from(r.start_unix_ms))
                }
                Col::BootTime => put_signed(
                    out,
                    i128::from(r.boot_time_unix_s) - i128::from(prev.boot_time),
                ),
                Col::Uptime => put_signed(out, i128::from(r.uptime_s) - i128::from(prev.uptime)),
                Col::Active => put_varint(out, u128::from(r.active_ms)),
                Col::Sleep => put_varint(out, u128::from(r.sleep_ms)),
                Col::Idle => put_signed(out, rest - i128::from(r.idle_ms)),
                Col::Rule => put_signed(out, i128::from(r.activity_rule)),
                Col::Cpu => put_cpu(out, r.cpu_util),
                Col::Extra => {
                    put_varint(out, extra.len() as u128);
                    out.extend_from_slice(&extra);
                }
            }
            col.ends.push(out.len());
        }
        prev = Prev {
            seq: r.seq,
            end: r.end_unix_ms,
            boot_time: r.boot_time_unix_s,
            uptime: r.uptime_s,
        };
    }
    let body: usize = cols.iter().map(|c| c.bytes.len()).sum();
    let mut out = Vec::with_capacity(16 + boots.iter().map(|b| b.len() + 1).sum::<usize>() + body);
    put_varint(&mut out, sorted.len() as u128);
    put_varint(&mut out, boots.len() as u128);
    for b in &boots {
        put_varint(&mut out, b.len() as u128);
        out.extend_from_slice(b.as_bytes());
    }
    // Above MAX_RUN_REPORTS every column is plain: each report then takes a byte at
    // least, which is what bounds a decoder's work on a corrupt count.
    let runs = sorted.len() <= MAX_RUN_REPORTS;
    for col in &cols {
        col.write(&mut out, runs);
    }
    out
}

/// The columns of a packed hour, in their order there.
#[derive(Debug, Clone, Copy)]
enum Col {
    Seq,
    Boot,
    Start,
    Length,
    BootTime,
    Uptime,
    Active,
    Sleep,
    Idle,
    Rule,
    Cpu,
    Extra,
}

const COLUMNS: usize = 12;

impl Col {
    const ALL: [Col; COLUMNS] = [
        Col::Seq,
        Col::Boot,
        Col::Start,
        Col::Length,
        Col::BootTime,
        Col::Uptime,
        Col::Active,
        Col::Sleep,
        Col::Idle,
        Col::Rule,
        Col::Cpu,
        Col::Extra,
    ];
}

/// A column's values while packing: their bytes end to end, and where each ends.
#[derive(Default)]
struct Column {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// A column's first byte: every value follows, one per report.
const PLAIN: u8 = 0;
/// A column's first byte: runs follow, each a count (≥ 1) and the value it repeats.
const RUNS: u8 = 1;

/// Most reports one packed value may hold with columns in runs. A run makes a report
/// cost less than a byte, so a corrupt count could not be checked against the value's
/// length: above this, columns are plain and it can (65,536 reports in an hour is one
/// every 55 ms; agents report every 60 s).
const MAX_RUN_REPORTS: usize = 1 << 16;

impl Column {
    /// Writes the column plain or in runs, whichever is smaller (plain on a tie).
    fn write(&self, out: &mut Vec<u8>, runs_allowed: bool) {
        let mut items = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            items.push(self.bytes.get(start..end).unwrap_or_default());
            start = end;
        }
        if runs_allowed {
            let mut runs = Vec::new();
            let mut i = 0;
            while let Some(item) = items.get(i) {
                let len = items[i..].iter().take_while(|x| *x == item).count();
                put_varint(&mut runs, len as u128);
                runs.extend_from_slice(item);
                i += len;
            }
            if runs.len() < self.bytes.len() {
                out.push(RUNS);
                out.extend_from_slice(&runs);
                return;
            }
        }
        out.push(PLAIN);
        out.extend_from_slice(&self.bytes);
    }
}

#[derive(Default)]
struct Prev {
    seq: u64,
    end: i64,
    boot_time: i64,
    uptime: u64,
}

/// Unpacks what [`encode_reports`] and [`append_reports`] wrote, in seq order.
pub fn decode_reports(bytes: &[u8]) -> Result<Vec<Report>, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let (n, chunks) = header(&mut r)?;
    let mut out: Vec<Report> = Vec::with_capacity(n);
    for _ in 0..chunks {
        let len = r.len()?;
        let body = r.take(len)?;
        let reports = decode_chunk(body)?;
        if reports.len() > n - out.len() {
            return Err(CodecError::Malformed("chunk counts do not add up"));
        }
        out.extend(reports);
    }
    if out.len() != n {
        return Err(CodecError::Malformed("chunk counts do not add up"));
    }
    if r.pos != bytes.len() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    // Each chunk is in seq order, and chunks are appended in arrival order: a late
    // batch's chunk may hold seqs below those before it.
    if !out.is_sorted_by_key(|r| r.seq) {
        out.sort_by_key(|r| r.seq);
    }
    Ok(out)
}

/// Unpacks one chunk's body ([`encode_chunk`]), in seq order.
fn decode_chunk(bytes: &[u8]) -> Result<Vec<Report>, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let n = usize::try_from(r.varint()?).map_err(|_| CodecError::Malformed("length"))?;
    if n > bytes.len().max(MAX_RUN_REPORTS) {
        // Plain columns take a byte a report: a count above the chunk's length (and
        // above what runs may hold) is a lie, refused before it sizes an allocation.
        return Err(CodecError::Malformed("report count beyond the value"));
    }
    let nboots = r.len()?;
    let mut boots = Vec::with_capacity(nboots.min(1024));
    for _ in 0..nboots {
        let len = r.len()?;
        let b = r.take(len)?;
        boots.push(
            std::str::from_utf8(b)
                .map_err(|_| CodecError::Malformed("boot id is not UTF-8"))?
                .to_owned(),
        );
    }
    let seq = r.column(n, Reader::varint)?;
    let boot = r.column(n, Reader::len)?;
    let start = r.column(n, Reader::signed)?;
    let length = r.column(n, Reader::signed)?;
    let boot_time = r.column(n, Reader::signed)?;
    let uptime = r.column(n, Reader::signed)?;
    let active = r.column(n, Reader::varint)?;
    let sleep = r.column(n, Reader::varint)?;
    let idle = r.column(n, Reader::signed)?;
    let rule = r.column(n, Reader::signed)?;
    let cpu = r.column(n, Reader::cpu)?;
    let extra = r.column(n, |r| {
        let len = r.len()?;
        r.take(len)
    })?;
    if r.pos != bytes.len() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    let mut out = Vec::with_capacity(n);
    let mut prev = Prev::default();
    for i in 0..n {
        // Every column holds n values (Reader::column): the indexing cannot miss.
        let seq = prev.seq.wrapping_add(u64_of(seq[i])?);
        let boot = boots
            .get(boot[i])
            .ok_or(CodecError::Malformed("boot index out of range"))?
            .clone();
        let start = i64_of(i128::from(prev.end) + start[i])?;
        let end = i64_of(i128::from(start) + length[i])?;
        let boot_time = i64_of(i128::from(prev.boot_time) + boot_time[i])?;
        let uptime = u64_of_i(i128::from(prev.uptime) + uptime[i])?;
        let active = u64_of(active[i])?;
        let sleep = u64_of(sleep[i])?;
        let rest = i128::from(end) - i128::from(start) - i128::from(active) - i128::from(sleep);
        let idle = u64_of_i(rest - idle[i])?;
        let rule = i32::try_from(rule[i]).map_err(|_| CodecError::Malformed("rule"))?;
        let extra = Report::decode(extra[i])
            .map_err(|_| CodecError::Malformed("events, measurements or temperatures"))?;
        out.push(Report {
            boot_id: boot,
            seq,
            start_unix_ms: start,
            end_unix_ms: end,
            boot_time_unix_s: boot_time,
            uptime_s: uptime,
            active_ms: active,
            idle_ms: idle,
            sleep_ms: sleep,
            activity_rule: rule,
            events: extra.events,
            cpu_util: cpu[i],
            measurements: extra.measurements,
            temperatures: extra.temperatures,
        });
        prev = Prev {
            seq,
            end,
            boot_time,
            uptime,
        };
    }
    Ok(out)
}

/// Packs the rollups of one day: slot `i` is the hour starting `i` hours after the
/// day's start (UTC), `None` for an hour without data.
///
/// Layout ([`ROLLUP_FORMAT`]): the format byte, the mask of stored hours (24 bits,
/// little-endian), one width per field, then each field's column: its value for every
/// stored hour, in hour order, in that width. Width 0 is a column of +0.0 (no bytes),
/// 1–4 a whole non-negative number in that many little-endian bytes (milliseconds of
/// an hour take 3), [`RAW_WIDTH`] the f64's own bits. Why columns of fixed width: a
/// month's report over a fleet decodes ~22 M of these rollups, and each column decodes
/// in a loop without a branch per value, where varints cost a third of the report
/// (BENCHMARKS.md 6a); a field is mostly the same kind of number all day (zero when no
/// meter, whole ms, or fractional), so columns cost about what the varints did.
pub fn encode_rollup_day(hours: &[Option<HourRollup>; HOURS_PER_DAY]) -> Vec<u8> {
    let mut mask = 0u32;
    let mut rows: Vec<[f64; FIELDS]> = Vec::with_capacity(HOURS_PER_DAY);
    for (i, h) in hours.iter().enumerate() {
        if let Some(h) = h {
            mask |= 1 << i;
            rows.push(h.as_array());
        }
    }
    let widths: [u8; FIELDS] = std::array::from_fn(|f| column_width(rows.iter().map(|r| r[f])));
    let body: usize = widths.iter().map(|w| usize::from(*w) * rows.len()).sum();
    let mut out = Vec::with_capacity(ROLLUP_HEADER + body);
    out.push(ROLLUP_FORMAT);
    out.extend_from_slice(&mask.to_le_bytes()[..3]);
    out.extend_from_slice(&widths);
    for (f, &w) in widths.iter().enumerate() {
        for r in &rows {
            let v = r[f];
            if w == RAW_WIDTH {
                out.extend_from_slice(&v.to_le_bytes());
            } else if w > 0 {
                // column_width chose w: a whole number in [0, 2^(8w)).
                out.extend_from_slice(&(v as u32).to_le_bytes()[..usize::from(w)]);
            }
        }
    }
    out
}

/// The narrowest width of [`encode_rollup_day`] that holds every value exactly.
fn column_width(values: impl Iterator<Item = f64>) -> u8 {
    let mut max = 0u32;
    for v in values {
        // -0.0 and fractions compare or truncate as others would: the bits decide.
        let whole =
            v >= 0.0 && v <= f64::from(u32::MAX) && f64::from(v as u32).to_bits() == v.to_bits();
        if !whole {
            return RAW_WIDTH;
        }
        max = max.max(v as u32);
    }
    match max {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    }
}

/// Unpacks what [`encode_rollup_day`] wrote.
pub fn decode_rollup_day(bytes: &[u8]) -> Result<[Option<HourRollup>; HOURS_PER_DAY], CodecError> {
    let mut out: [Option<HourRollup>; HOURS_PER_DAY] = Default::default();
    for_each_rollup(bytes, |slot, r| {
        if let Some(s) = out.get_mut(slot) {
            *s = Some(r);
        }
    })?;
    Ok(out)
}

/// [`decode_rollup_day`] without the day's array: each stored hour's slot (0..24) and
/// rollup, in slot order, straight to `each`. A month's report over a fleet decodes
/// ~22 M of these, and moving a 24-slot array of options per day cost more than the
/// decoding. Nothing reaches `each` when the value is malformed.
pub fn for_each_rollup(
    bytes: &[u8],
    mut each: impl FnMut(usize, HourRollup),
) -> Result<(), CodecError> {
    let (&format, rest) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if format != ROLLUP_FORMAT {
        return Err(CodecError::Format {
            found: format,
            expected: ROLLUP_FORMAT,
        });
    }
    let (head, mut columns) = rest
        .split_at_checked(ROLLUP_HEADER - 1)
        .ok_or(CodecError::Truncated)?;
    let (mask, widths) = head.split_at(3);
    let mask = u32::from_le_bytes([mask[0], mask[1], mask[2], 0]);
    let n = mask.count_ones() as usize;
    // Rows of the stored hours, filled column by column; +0.0 is width 0's value.
    let mut rows = [[0f64; FIELDS]; HOURS_PER_DAY];
    let rows = &mut rows[..n];
    for (f, &w) in widths.iter().enumerate() {
        let (column, next) = columns
            .split_at_checked(usize::from(w) * n)
            .ok_or(CodecError::Truncated)?;
        // One loop per width, so none branches on the width per value.
        match w {
            0 => {}
            1 => {
                for (row, b) in rows.iter_mut().zip(column) {
                    row[f] = f64::from(*b);
                }
            }
            2 => {
                for (row, c) in rows.iter_mut().zip(column.chunks_exact(2)) {
                    row[f] = f64::from(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            3 => {
                for (row, c) in rows.iter_mut().zip(column.chunks_exact(3)) {
                    row[f] = f64::from(u32::from_le_bytes([c[0], c[1], c[2], 0]));
                }
            }
            4 => {
                for (row, c) in rows.iter_mut().zip(column.chunks_exact(4)) {
                    row[f] = f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
            }
            RAW_WIDTH => {
                for (row, c) in rows.iter_mut().zip(column.chunks_exact(8)) {
                    row[f] = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                }
            }
            _ => return Err(CodecError::Malformed("column width")),
        }
        columns = next;
    }
    if !columns.is_empty() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    let mut left = mask;
    for row in rows.iter() {
        let slot = left.trailing_zeros() as usize;
        left &= left - 1;
        each(slot, HourRollup::from_array(*row));
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i128) {
    put_varint(out, ((v << 1) ^ (v >> 127)) as u128);
}

/// `cpu_util`: 1 + permille when it is exactly a whole permille (agents round to one:
/// `veille_proto::units::cpu_permille`), else 0 and the eight bytes of the double.
fn put_cpu(out: &mut Vec<u8>, v: f64) {
    const STEPS: f64 = veille_proto::units::CPU_UTIL_STEPS;
    let p = (v * STEPS).round();
    // -0.0 passes the range and compares equal: the sign check keeps it exact.
    if (0.0..=STEPS).contains(&p) && !v.is_sign_negative() && (p / STEPS).to_bits() == v.to_bits() {
        put_varint(out, p as u128 + 1);
    } else {
        put_varint(out, 0);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.bytes.get(self.pos).ok_or(CodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u128, CodecError> {
        // Most values fit one byte (rollup fields of whole ms mostly two or three):
        // the common case returns before the general loop.
        if let Some(&b) = self.bytes.get(self.pos)
            && b & 0x80 == 0
        {
            self.pos += 1;
            return Ok(u128::from(b));
        }
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or(CodecError::Malformed("varint too long"))?;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Malformed("varint too long"))
    }

    /// A column of `n` values of `item`: plain or in runs ([`Column::write`]).
    fn column<T: Clone>(
        &mut self,
        n: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, CodecError> {
        let mut out = Vec::with_capacity(n);
        match self.byte()? {
            PLAIN => {
                for _ in 0..n {
                    out.push(item(self)?);
                }
            }
            RUNS => {
                while out.len() < n {
                    let run = usize::try_from(self.varint()?)
                        .map_err(|_| CodecError::Malformed("run length"))?;
                    if run == 0 || run > n - out.len() {
                        return Err(CodecError::Malformed("run length"));
                    }
                    let v = item(self)?;
                    out.extend(std::iter::repeat_n(v, run));
                }
            }
            _ => return Err(CodecError::Malformed("column kind")),
        }
        Ok(out)
    }

    fn signed(&mut self) -> Result<i128, CodecError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i128) ^ -((v & 1) as i128))
    }

    fn len(&mut self) -> Result<usize, CodecError> {
        let v = self.varint()?;
        let n = usize::try_from(v).map_err(|_| CodecError::Malformed("length"))?;
        if n > self.bytes.len() {
            // Every counted item takes at least one byte: a count above the input's
            // length is a lie, refused before it sizes an allocation.
            return Err(CodecError::Malformed("length beyond the value"));
        }
        Ok(n)
    }

    fn cpu(&mut self) -> Result<f64, CodecError> {
        match self.varint()? {
            0 => Ok(f64::from_le_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            k if k <= veille_proto::units::CPU_UTIL_STEPS as u128 + 1 => {
                Ok((k - 1) as f64 / veille_proto::units::CPU_UTIL_STEPS)
            }
            _ => Err(CodecError::Malformed("cpu_util")),
        }
    }
}

fn u64_of(v: u128) -> Result<u64, CodecError> {
    u64::try_from(v).map_err(|_| CodecError::Malformed("value out of range"))
}

fn u64_of_i(v: i128) -> Result<u64, CodecError> {
    u64::try_from(v).map_err(|_| CodecError::Malformed("value out of range"))
}

fn i64_of(v: i128) -> Result<i64, CodecError> {
    i64::try_from(v).map_err(|_| CodecError::Malformed("value out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use veille_proto::v1::{EnergySource, Event, EventKind, Measurement};

    fn minute(seq: u64, boot: &str) -> Report {
        let start = 1_780_000_000_000 + seq as i64 * 60_000;
        Report {
            boot_id: boot.into(),
            seq,
            start_unix_ms: start,
            end_unix_ms: start + 60_000,
            boot_time_unix_s: 1_779_990_000,
            uptime_s: 10_000 + seq * 60,
            active_ms: 20_000,
            idle_ms: 40_000,
            activity_rule: 1,
            cpu_util: 0.137,
            ..Default::default()
        }
    }

    #[test]
    fn an_hour_of_minute_reports_packs_into_runs() {
        let hour: Vec<Report> = (1..=60)
            .map(|s| minute(s, "1b4e28ba-2fa1-11d2-883f-0016d3cca427"))
            .collect();
        let packed = encode_reports(&hour);
        assert_eq!(decode_reports(&packed).unwrap(), hour);
        // Every column is one run: the boot id and a few bytes a column (99 bytes in
        // format 2; format 3 adds the chunk count and the chunk's length).
        assert!(packed.len() <= 101, "{} bytes", packed.len());
    }

    /// An hour as the simulator and agents send it: spells of activity and idleness,
    /// a minute split between them, `cpu_util` holding while the load does, an event.
    #[test]
    fn an_hour_of_spells_takes_a_few_bytes_a_report() {
        let mut hour: Vec<Report> = Vec::new();
        for s in 1..=60u64 {
            let mut r = minute(s, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
            r.seq = 1_780_000_000 + s * 60;
            (r.active_ms, r.idle_ms, r.cpu_util) = match s % 20 {
                0..=7 => (60_000, 0, 0.412),
                8 => (23_456, 36_544, 0.171),
                _ => (0, 60_000, 0.013),
            };
            if s == 30 {
                r.events.push(Event {
                    kind: EventKind::Sleep as i32,
                    at_unix_ms: r.start_unix_ms + 10,
                    count: 1,
                    detail: String::new(),
                });
            }
            hour.push(r);
        }
        let packed = encode_reports(&hour);
        assert_eq!(decode_reports(&packed).unwrap(), hour);
        assert!(packed.len() < 60 * 3, "{} bytes", packed.len());
    }

    /// Above MAX_RUN_REPORTS, columns are plain: each report takes a byte or more, so
    /// the decoder's check of the count against the value's length holds.
    #[test]
    fn more_reports_than_runs_may_hold_pack_plain() {
        let n = MAX_RUN_REPORTS as u64 + 1;
        let many: Vec<Report> = (1..=n).map(|s| minute(s, "b")).collect();
        let packed = encode_reports(&many);
        assert!(packed.len() > many.len());
        assert_eq!(decode_reports(&packed).unwrap(), many);
        let few = encode_reports(&many[..MAX_RUN_REPORTS]);
        assert!(few.len() < 200, "{} bytes", few.len());
        assert_eq!(decode_reports(&few).unwrap(), many[..MAX_RUN_REPORTS]);
        // A count past both bounds is refused before anything is decoded.
        let mut lie = vec![REPORTS_FORMAT];
        put_varint(&mut lie, MAX_RUN_REPORTS as u128 + 1);
        lie.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode_reports(&lie),
            Err(CodecError::Malformed("report count beyond the value"))
        );
    }

    /// Runs must add up to the count exactly.
    #[test]
    fn runs_past_the_count_are_refused() {
        let packed = encode_reports(&[minute(1, "b"), minute(2, "b"), minute(3, "b")]);
        // format, count 3, one chunk of `len` bytes: count 3, one boot "b", then the
        // seq column: one run, 3 × (+1).
        let len = packed.len() as u8 - 4;
        assert_eq!(
            packed[..11],
            [REPORTS_FORMAT, 3, 1, len, 3, 1, 1, b'b', RUNS, 3, 1]
        );
        assert_eq!(decode_reports(&packed).unwrap().len(), 3);
        let mut over = packed.clone();
        over[9] = 4;
        assert_eq!(
            decode_reports(&over),
            Err(CodecError::Malformed("run length"))
        );
        let mut zero = packed;
        zero[9] = 0;
        assert_eq!(
            decode_reports(&zero),
            Err(CodecError::Malformed("run length"))
        );
    }

    #[test]
    fn odd_values_survive_exactly() {
        let mut r = minute(5, "b");
        r.seq = u64::MAX;
        r.start_unix_ms = i64::MIN;
        r.end_unix_ms = i64::MAX;
        r.uptime_s = u64::MAX;
        r.idle_ms = u64::MAX;
        r.cpu_util = 0.1234567;
        r.activity_rule = -7;
        r.events.push(Event {
            kind: EventKind::Shutdown as i32,
            at_unix_ms: 5,
            count: 1,
            detail: "x".into(),
        });
        r.measurements.push(Measurement {
            energy_j: 12.5,
            source: EnergySource::Rapl as i32,
        });
        let mut zero = minute(0, "");
        zero.cpu_util = -0.0;
        let both = vec![zero, r];
        let back = decode_reports(&encode_reports(&both)).unwrap();
        assert_eq!(back, both);
        assert_eq!(back[0].cpu_util.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn truncated_or_foreign_values_are_errors_not_panics() {
        let packed = encode_reports(&[minute(1, "b"), minute(2, "b")]);
        for cut in 0..packed.len() {
            assert!(decode_reports(&packed[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = packed.clone();
        other[0] = 9;
        assert_eq!(
            decode_reports(&other),
            Err(CodecError::Format {
                found: 9,
                expected: REPORTS_FORMAT
            })
        );
        let mut long = packed;
        long.push(0);
        assert!(decode_reports(&long).is_err());
    }

    /// A device appending one report at a time (MQTT, one report a second): the hour
    /// stays readable after every append, its chunks stay few (a binary counter: one
    /// per set bit of the count), and compacting it gives the bytes of the hour packed
    /// at once.
    #[test]
    fn reports_appended_one_by_one_stay_few_chunks_and_compact_to_one() {
        let all: Vec<Report> = (1..=1000).map(|s| minute(s, "1b4e28ba-2fa1")).collect();
        let mut packed = encode_reports(&all[..1]);
        for n in 2..=all.len() {
            packed = append_reports(&packed, &all[n - 1..n]).unwrap();
            assert_eq!(chunks_of(&packed).unwrap().len(), n.count_ones() as usize);
            if n % 97 == 0 {
                assert_eq!(decode_reports(&packed).unwrap(), all[..n]);
            }
        }
        assert_eq!(decode_reports(&packed).unwrap(), all);
        let compact = compact_reports(&packed).unwrap().unwrap();
        assert_eq!(compact, encode_reports(&all));
        assert_eq!(compact_reports(&compact).unwrap(), None);
    }

    /// A late batch's chunk holds seqs below the ones before it: read back in seq
    /// order all the same.
    #[test]
    fn chunks_out_of_seq_order_read_back_in_seq_order() {
        let late: Vec<Report> = (1..=3).map(|s| minute(s, "a")).collect();
        let first: Vec<Report> = (4..=9).map(|s| minute(s, "b")).collect();
        let packed = append_reports(&encode_reports(&first), &late).unwrap();
        assert_eq!(chunks_of(&packed).unwrap().len(), 2);
        let mut all = late.clone();
        all.extend(first);
        assert_eq!(decode_reports(&packed).unwrap(), all);
        assert_eq!(
            compact_reports(&packed).unwrap().unwrap(),
            encode_reports(&all)
        );
    }

    /// Past MAX_RUN_REPORTS an append packs the hour whole, so the decoder's bound on
    /// the count (a byte a report, or runs below the bound) holds for what it wrote.
    #[test]
    fn an_append_past_the_run_bound_packs_the_hour_whole() {
        let n = MAX_RUN_REPORTS as u64 + 1;
        let many: Vec<Report> = (1..=n).map(|s| minute(s, "b")).collect();
        let packed = encode_reports(&many[..MAX_RUN_REPORTS]);
        let more = append_reports(&packed, &many[MAX_RUN_REPORTS..]).unwrap();
        assert_eq!(chunks_of(&more).unwrap().len(), 1);
        assert_eq!(more, encode_reports(&many));
        assert_eq!(decode_reports(&more).unwrap(), many);
    }

    /// A value cut at a chunk's end, or with a chunk more than its header counts, is
    /// refused: the header's counts of reports and chunks must match the chunks.
    #[test]
    fn a_chunked_value_cut_or_extended_is_refused() {
        let mut packed = encode_reports(&[minute(1, "b"), minute(2, "b")]);
        packed = append_reports(&packed, &[minute(3, "b")]).unwrap();
        assert_eq!(chunks_of(&packed).unwrap().len(), 2);
        for cut in 0..packed.len() {
            assert!(decode_reports(&packed[..cut]).is_err(), "cut at {cut}");
            assert!(chunks_of(&packed[..cut]).is_err(), "cut at {cut}");
            assert!(append_reports(&packed[..cut], &[minute(4, "b")]).is_err());
        }
        let mut long = packed.clone();
        long.push(0);
        assert!(decode_reports(&long).is_err());
        assert!(append_reports(&long, &[minute(4, "b")]).is_err());
        // A second copy of the last chunk, the header unchanged: counts do not add up.
        let last = chunks_of(&packed).unwrap().pop().unwrap();
        let mut twice = packed.clone();
        twice.extend_from_slice(&packed[last.start..]);
        assert!(decode_reports(&twice).is_err());
        // ... and with the chunk count raised, the report count still does not.
        twice[2] = 3;
        assert_eq!(
            decode_reports(&twice),
            Err(CodecError::Malformed("chunk counts do not add up"))
        );
    }

    #[test]
    fn a_rollup_day_round_trips_and_whole_milliseconds_are_small() {
        let mut day: [Option<HourRollup>; HOURS_PER_DAY] = Default::default();
        day[0] = Some(HourRollup {
            covered_ms: 3_600_000.0,
            awake_ms: 3_600_000.0,
            modelled_active_ms: 1_200_000.0,
            modelled_active_util_ms: 164_400.25,
            modelled_idle_ms: 2_400_000.0,
            ..Default::default()
        });
        day[23] = Some(HourRollup {
            measured_j: -0.0,
            sleep_ms: f64::MAX,
            ..Default::default()
        });
        let packed = encode_rollup_day(&day);
        let back = decode_rollup_day(&packed).unwrap();
        assert_eq!(back[0], day[0]);
        assert_eq!(back[23].unwrap().measured_j.to_bits(), (-0.0f64).to_bits());
        assert_eq!(back[23].unwrap().sleep_ms, f64::MAX);
        assert!(back[1..23].iter().all(Option::is_none));
        // Against 2 × 88 bytes unpacked: columns of whole milliseconds (covered,
        // awake, active, idle) take 3 bytes a value, zero columns none, and the three
        // holding a fraction, -0.0 or f64::MAX their 8 bytes.
        assert_eq!(packed.len(), ROLLUP_HEADER + 2 * (4 * 3 + 3 * 8));
    }

    /// A day as the month report reads it: whole ms in 3 bytes, fractions in 8, zero
    /// columns in none, and the values bit for bit.
    #[test]
    fn a_full_rollup_day_takes_each_column_at_its_width() {
        let mut day: [Option<HourRollup>; HOURS_PER_DAY] = Default::default();
        for (i, slot) in day.iter_mut().enumerate() {
            let active = 3_600.0 * (i as f64 * 17.0 % 400.0);
            *slot = Some(HourRollup {
                covered_ms: 3_600_000.0,
                awake_ms: 3_600_000.0 - 1_000.0 * i as f64,
                modelled_active_ms: active,
                modelled_active_util_ms: active * 0.137,
                modelled_idle_ms: 3_600_000.0 - active,
                sleep_ms: i as f64,
                ..Default::default()
            });
        }
        let packed = encode_rollup_day(&day);
        // covered, awake, active, idle: 3 bytes; util: 8; sleep: 1.
        assert_eq!(packed.len(), ROLLUP_HEADER + 24 * (4 * 3 + 8 + 1));
        let back = decode_rollup_day(&packed).unwrap();
        for (a, b) in back.iter().zip(&day) {
            assert_eq!(a.map(|r| r.encode()), b.map(|r| r.encode()));
        }
        for cut in 0..packed.len() {
            assert!(decode_rollup_day(&packed[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = packed.clone();
        long.push(0);
        assert_eq!(
            decode_rollup_day(&long),
            Err(CodecError::Malformed("trailing bytes"))
        );
        let mut old = packed.clone();
        old[0] = 1;
        assert_eq!(
            decode_rollup_day(&old),
            Err(CodecError::Format {
                found: 1,
                expected: ROLLUP_FORMAT
            })
        );
        let mut odd = packed;
        odd[4] = 5;
        assert!(decode_rollup_day(&odd).is_err());
    }

    /// Values at the edges of each width, and the ones no integer width holds.
    #[test]
    fn rollup_values_at_width_edges_survive_exactly() {
        let edges = [
            0.0,
            -0.0,
            1.0,
            255.0,
            256.0,
            65_535.0,
            65_536.0,
            16_777_215.0,
            16_777_216.0,
            f64::from(u32::MAX),
            f64::from(u32::MAX) + 1.0,
            -1.0,
            0.5,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NAN,
        ];
        for &v in &edges {
            for &w in &edges {
                let mut day: [Option<HourRollup>; HOURS_PER_DAY] = Default::default();
                day[3] = Some(HourRollup::from_array([v; FIELDS]));
                day[17] = Some(HourRollup::from_array([w; FIELDS]));
                let back = decode_rollup_day(&encode_rollup_day(&day)).unwrap();
                for (a, b) in back.iter().zip(&day) {
                    assert_eq!(a.map(|r| r.encode()), b.map(|r| r.encode()), "{v} {w}");
                }
            }
        }
    }

    fn any_report() -> impl Strategy<Value = Report> {
        (
            (
                any::<u64>(),
                "[a-z0-9-]{0,40}",
                any::<i64>(),
                any::<i64>(),
                any::<i64>(),
            ),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<i32>(),
            ),
            prop_oneof![
                any::<f64>(),
                (0u32..=1000).prop_map(|p| f64::from(p) / 1000.0)
            ],
            proptest::option::of((any::<i64>(), "[ -~]{0,20}")),
        )
            .prop_map(
                |((seq, boot, start, end, bt), (up, a, i, s, rule), cpu, ev)| Report {
                    boot_id: boot,
                    seq,
                    start_unix_ms: start,
                    end_unix_ms: end,
                    boot_time_unix_s: bt,
                    uptime_s: up,
                    active_ms: a,
                    idle_ms: i,
                    sleep_ms: s,
                    activity_rule: rule,
                    cpu_util: cpu,
                    events: ev
                        .map(|(at, d)| Event {
                            kind: 2,
                            at_unix_ms: at,
                            count: 1,
                            detail: d,
                        })
                        .into_iter()
                        .collect(),
                    ..Default::default()
                },
            )
    }

    proptest! {
        #[test]
        fn every_report_set_round_trips(mut reports in proptest::collection::vec(any_report(), 0..20)) {
            reports.sort_by_key(|r| r.seq);
            reports.dedup_by_key(|r| r.seq);
            let back = decode_reports(&encode_reports(&reports)).unwrap();
            // NaN never equals itself: compare the encodings.
            let a: Vec<Vec<u8>> = back.iter().map(Message::encode_to_vec).collect();
            let b: Vec<Vec<u8>> = reports.iter().map(Message::encode_to_vec).collect();
            prop_assert_eq!(a, b);
        }

        /// Any split of a report set into appends, in any order: read back as the set
        /// in seq order, compacted to the bytes of the set packed at once, and every
        /// cut of the value refused.
        #[test]
        fn reports_appended_in_any_split_round_trip(
            reports in proptest::collection::vec(any_report(), 1..24),
            cuts in proptest::collection::vec(1usize..6, 1..8),
            shuffle in any::<u64>(),
        ) {
            let mut reports = reports;
            reports.sort_by_key(|r| r.seq);
            reports.dedup_by_key(|r| r.seq);
            let mut groups: Vec<Vec<Report>> = Vec::new();
            let mut rest = reports.as_slice();
            for c in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (g, r) = rest.split_at((*c).min(rest.len()));
                groups.push(g.to_vec());
                rest = r;
            }
            // Arrival order: rotated, so a later chunk may hold lower seqs.
            let k = groups.len();
            groups.rotate_left((shuffle % k as u64) as usize);
            let mut packed = encode_reports(&groups[0]);
            for g in &groups[1..] {
                packed = append_reports(&packed, g).unwrap();
            }
            let enc = |rs: &[Report]| rs.iter().map(Message::encode_to_vec).collect::<Vec<_>>();
            prop_assert_eq!(enc(&decode_reports(&packed).unwrap()), enc(&reports));
            let once = encode_reports(&reports);
            let compact = compact_reports(&packed).unwrap().unwrap_or(packed.clone());
            prop_assert_eq!(&compact, &once);
            for cut in 0..packed.len() {
                prop_assert!(decode_reports(&packed[..cut]).is_err());
            }
            let mut long = packed;
            long.push(0);
            prop_assert!(decode_reports(&long).is_err());
        }

        /// Garbage given to the append and compact paths fails cleanly, and what they
        /// accept reads back.
        #[test]
        fn any_bytes_append_or_fail_cleanly(
            body in proptest::collection::vec(prop_oneof![0u8..8, any::<u8>()], 0..200),
        ) {
            let mut bytes = vec![REPORTS_FORMAT];
            bytes.extend_from_slice(&body);
            if let Ok(out) = append_reports(&bytes, &[minute(7, "z")]) {
                prop_assert!(decode_reports(&out).is_ok() || decode_reports(&bytes).is_err());
            }
            if let Ok(Some(out)) = compact_reports(&bytes) {
                prop_assert!(decode_reports(&out).is_ok());
            }
        }

        #[test]
        fn every_rollup_day_round_trips(vals in proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(any::<f64>(), 11)), 24)) {
            let mut day: [Option<HourRollup>; HOURS_PER_DAY] = Default::default();
            for (slot, v) in day.iter_mut().zip(&vals) {
                *slot = v.as_ref().map(|v| {
                    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    HourRollup::decode(&raw).unwrap()
                });
            }
            let back = decode_rollup_day(&encode_rollup_day(&day)).unwrap();
            for (a, b) in back.iter().zip(&day) {
                prop_assert_eq!(a.map(|r| r.encode()), b.map(|r| r.encode()));
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_reports(&bytes);
            let _ = decode_rollup_day(&bytes);
        }

        /// Garbage after a plausible header, so it reaches the columns and their runs.
        #[test]
        fn any_report_columns_decode_or_fail_cleanly(
            n in 0u8..8,
            body in proptest::collection::vec(prop_oneof![0u8..4, any::<u8>()], 0..200),
        ) {
            // One chunk whose length covers the body: the columns are what is tested.
            let mut bytes = vec![REPORTS_FORMAT, n, 1];
            put_varint(&mut bytes, body.len() as u128 + 4);
            bytes.extend_from_slice(&[n, 1, 1, b'b']);
            bytes.extend_from_slice(&body);
            if let Ok(reports) = decode_reports(&bytes) {
                prop_assert_eq!(reports.len(), usize::from(n));
            }
        }

        /// Garbage that passes the format check, so it reaches the column decoder.
        #[test]
        fn any_rollup_body_decodes_or_fails_cleanly(
            mask in any::<u32>(),
            widths in proptest::collection::vec(prop_oneof![0u8..=4, Just(8u8), any::<u8>()], FIELDS),
            body in proptest::collection::vec(any::<u8>(), 0..1200),
        ) {
            let mut bytes = vec![ROLLUP_FORMAT];
            bytes.extend_from_slice(&mask.to_le_bytes()[..3]);
            bytes.extend_from_slice(&widths);
            bytes.extend_from_slice(&body);
            // What decodes (possibly wider than needed) packs again to the same values.
            if let Ok(day) = decode_rollup_day(&bytes) {
                let again = decode_rollup_day(&encode_rollup_day(&day)).unwrap();
                for (a, b) in again.iter().zip(&day) {
                    prop_assert_eq!(a.map(|r| r.encode()), b.map(|r| r.encode()));
                }
            }
        }
    }
}
