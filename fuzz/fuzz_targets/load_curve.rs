//! A utility load curve (`import meters FILE`, with the command's options): a file
//! imports whole or not at all. Imported, its points are one per step, sorted, finite
//! in W, each from a data line of the file; its gaps lie between points. Refused, the
//! error names lines of the file.
//!
//! The first byte chooses the options (unit, delimiter, decimal comma, step, columns by
//! position), so the seeds in fuzz/seeds/load_curve start with one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veille_domain::rooms::loadcurve::{
    Column, LoadCurveError, LoadCurveOptions, PowerUnit, parse_load_curve,
};

fn options(flags: u8) -> LoadCurveOptions {
    let by_position = flags & 0x80 != 0;
    LoadCurveOptions {
        unit: [None, Some(PowerUnit::W), Some(PowerUnit::KW), None][usize::from(flags & 3)],
        delimiter: [None, Some(';'), Some(','), Some('\t')][usize::from(flags >> 2 & 3)],
        decimal_comma: flags & 0x10 != 0,
        step_minutes: [30, 10, 60, 1][usize::from(flags >> 5 & 3)],
        time_column: by_position.then_some(Column::Position(1)),
        value_column: by_position.then_some(Column::Position(2)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let opts = options(flags);
    // An upper bound on the lines the parser counts (Latin-1 or UTF-8: `\n` ends them).
    let lines = body.iter().filter(|b| **b == b'\n').count() + 1;
    let in_file = |line: usize| (1..=lines).contains(&line);
    let curve = match parse_load_curve(body, &opts) {
        Ok(curve) => curve,
        Err(e) => {
            match e {
                LoadCurveError::Parse { line, column, .. } => {
                    assert!(in_file(line) && column >= 1, "{e}");
                }
                LoadCurveError::Conflict {
                    first_line,
                    second_line,
                    ..
                }
                | LoadCurveError::Step {
                    first_line,
                    second_line,
                    ..
                } => assert!(
                    in_file(first_line) && first_line < second_line && in_file(second_line),
                    "{e}"
                ),
                LoadCurveError::UnknownUnit { line, .. }
                | LoadCurveError::AmbiguousColumn { line, .. } => {
                    assert!(in_file(line), "{e}");
                }
                LoadCurveError::Empty { header_line } => assert!(in_file(header_line), "{e}"),
                _ => {}
            }
            return;
        }
    };
    let step_ms = i64::from(opts.step_minutes) * 60_000;
    // A file whose every value is empty imports nothing, and says which lines.
    assert!(!curve.points.is_empty() || !curve.empty_lines.is_empty());
    if let Some(unit) = opts.unit {
        assert_eq!(curve.unit, unit);
    }
    for p in &curve.points {
        assert_eq!(p.end_ms - p.start_ms, step_ms, "{p:?}");
        assert!(p.power_w.is_finite(), "non-finite power {p:?}");
        assert!(in_file(p.line), "{p:?}");
    }
    for w in curve.points.windows(2) {
        assert!(w[1].end_ms - w[0].end_ms >= step_ms, "steps overlap: {w:?}");
    }
    for g in &curve.gaps {
        assert!(g.from_ms < g.to_ms && g.missing_steps >= 1, "{g:?}");
    }
    for &line in curve.duplicate_lines.iter().chain(&curve.empty_lines) {
        assert!(in_file(line));
    }
    assert!(curve.energy_kwh().is_finite(), "non-finite energy");
});
