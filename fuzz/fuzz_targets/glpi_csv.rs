//! A GLPI computer export (`import glpi FILE`, the web page's upload): all or nothing,
//! so a file gives rows or one error that names a line of the file. A row's line is
//! a physical line after the header, in file order; its dates re-format to ISO dates
//! that read back as themselves; its lifespan is within the documented 1–30 years.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veille_domain::renewal::glpi::{GlpiError, parse};
use veille_domain::renewal::horizon::Date;

fuzz_target!(|data: &[u8]| {
    // Physical lines, as the parser counts them: `\n`, `\r\n` and a lone `\r` (old Mac
    // files) each end one; a last line without an end counts.
    let lines = data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
        .count()
        + 1;
    let export = match parse(data) {
        Ok(export) => export,
        Err(e) => {
            let line = match e {
                GlpiError::Encoding { line }
                | GlpiError::UnterminatedQuote { line }
                | GlpiError::TextAfterQuote { line }
                | GlpiError::FieldCount { line, .. }
                | GlpiError::BadValue { line, .. } => line,
                _ => return,
            };
            assert!(
                (1..=lines).contains(&line),
                "error on line {line} of {lines}"
            );
            return;
        }
    };
    assert!(matches!(export.separator, ';' | ','));
    let mut previous = 1;
    for row in &export.rows {
        assert!(
            row.line > previous && row.line <= lines,
            "row line {} after {previous}",
            row.line
        );
        previous = row.line;
        for date in [row.purchase_date, row.delivery_date, row.startup_date]
            .into_iter()
            .flatten()
        {
            assert_eq!(Date::parse_iso(&date.to_string()), Some(date));
        }
        if let Some(months) = row.lifespan_months {
            assert!((12..=360).contains(&months), "lifespan {months} months");
        }
    }
    assert_eq!(parse(data).ok(), Some(export), "not deterministic");
});
