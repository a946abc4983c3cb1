//! Which Windows this is, from the values under
//! `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion` (read by the Windows probes).
//! Pure, tested on Linux.
//!
//! Windows 11 kept Windows 10's version number (10.0) and even its `ProductName`
//! ("Windows 10 Pro"): only the build number (22000 and later) tells them apart. The
//! inventory must get this right, since a fleet's Windows 10 end of support is exactly
//! what a renewal report is read for.

/// First build of Windows 11.
const WINDOWS_11_FIRST_BUILD: u32 = 22_000;

/// `(os_name, os_version, kernel)` for the inventory: e.g. `("Windows 11 Pro", "23H2",
/// "10.0.22631.4317")`. `product_name`: `ProductName`; `display_version`:
/// `DisplayVersion` (older builds: `ReleaseId`); `build`: `CurrentBuildNumber`; `ubr`:
/// `UBR`, the update revision.
pub fn describe(
    product_name: &str,
    display_version: &str,
    build: &str,
    ubr: Option<u32>,
) -> (String, String, String) {
    let product_name = product_name.trim();
    let build_number = build.trim().parse::<u32>().ok();
    let os_name = match (product_name.strip_prefix("Windows 10"), build_number) {
        (Some(edition), Some(b)) if b >= WINDOWS_11_FIRST_BUILD => {
            format!("Windows 11{edition}")
        }
        _ if product_name.is_empty() => "Windows".to_owned(),
        _ => product_name.to_owned(),
    };
    let os_version = match display_version.trim() {
        "" => build.trim().to_owned(),
        v => v.to_owned(),
    };
    let kernel = match (build_number, ubr) {
        (Some(b), Some(u)) => format!("10.0.{b}.{u}"),
        (Some(b), None) => format!("10.0.{b}"),
        _ => String::new(),
    };
    (os_name, os_version, kernel)
}

#[cfg(test)]
mod tests {
    use super::describe;

    fn d(p: &str, v: &str, b: &str, u: Option<u32>) -> (String, String, String) {
        describe(p, v, b, u)
    }

    #[test]
    fn windows_11_says_windows_10_in_product_name() {
        assert_eq!(
            d("Windows 10 Pro", "23H2", "22631", Some(4317)),
            (
                "Windows 11 Pro".into(),
                "23H2".into(),
                "10.0.22631.4317".into()
            )
        );
        assert_eq!(
            d("Windows 10 Enterprise", "22H2", "19045", Some(5131)),
            (
                "Windows 10 Enterprise".into(),
                "22H2".into(),
                "10.0.19045.5131".into()
            )
        );
    }

    #[test]
    fn servers_and_missing_values() {
        assert_eq!(
            d("Windows Server 2022 Standard", "21H2", "20348", None),
            (
                "Windows Server 2022 Standard".into(),
                "21H2".into(),
                "10.0.20348".into()
            )
        );
        assert_eq!(
            d("", "", "17763", None),
            ("Windows".into(), "17763".into(), "10.0.17763".into())
        );
        assert_eq!(
            d("", "", "", None),
            ("Windows".into(), "".into(), "".into())
        );
    }
}
