//! Reading text files people export from other tools (meters, the grid operator):
//! the encodings and spellings their headers come in.

/// Decodes a file: UTF-8 (BOM stripped), else Latin-1 (Excel's French re-saves, RTE's
/// éCO2mix downloads), which maps every byte to a character and so never fails.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A header as compared: trimmed, lower case, `é è ê` as `e`, no-break spaces as
/// spaces ("Taux de Co2", "TAUX DE CO2 (g/kWh)", "Périmètre" meet their spellings).
pub(crate) fn fold(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace(['é', 'è', 'ê'], "e")
        .replace('\u{a0}', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_bom_and_latin1_both_decode() {
        assert_eq!(decode(b"\xEF\xBB\xBFP\xC3\xA9rim\xC3\xA8tre"), "Périmètre");
        assert_eq!(decode(b"P\xE9rim\xE8tre"), "Périmètre");
        assert_eq!(fold(" Taux de CO2\u{a0}(g/kWh) "), "taux de co2 (g/kwh)");
    }
}
