//! The ACPI power meter: whole-system power of many Dell, HP and Lenovo servers, for the
//! `ACPI_POWER_METER` measurement.
//!
//! The firmware measures the machine's input power at its power supplies (ACPI device
//! `ACPI000D`) and the kernel's `acpi_power_meter` driver exposes it as an hwmon device
//! named `power_meter`. Its reading is a running mean over the firmware's averaging
//! interval, which is what [`super::power_meter::MeanPowerIntegrator`] expects.
//!
//! # Platform-specific behaviour
//!
//! Linux: `/sys/class/hwmon/hwmon*/` whose `name` is `power_meter`:
//!
//! ```text
//! hwmon0  name "acpitz"        temp1_input ...            not a meter
//! hwmon3  name "power_meter"   power1_average 182000000   182 W (µW)
//!                              power1_average_interval 1000   (ms)
//! ```
//!
//! Kernels before the driver moved to the current hwmon API put `name` and the power
//! files on the ACPI device instead, `hwmonN/device/`: both places are looked at.
//! `power1_average` is used where it exists (the firmware's own mean, the right input
//! for integration); `power1_input` (an instantaneous reading some firmware gives
//! instead) otherwise. A value of 0 means the firmware has no reading (a machine cannot
//! run on 0 W) and, like a value above [`MAX_PLAUSIBLE_W`], is not a reading. With
//! several `power_meter` devices (rare) the first by index is used. Other platforms
//! have no hwmon tree: discovery finds nothing.

use std::path::PathBuf;

use super::power_meter::{MAX_PLAUSIBLE_W, MICROWATTS_PER_WATT, MeterError, WholeSystemMeter};
use super::{Host, ProbeError};
use veille_proto::v1::EnergySource;

/// Where the hwmon devices are listed, relative to the host root.
const HWMON: &str = "sys/class/hwmon";

/// The hwmon `name` of the `acpi_power_meter` driver.
const DRIVER_NAME: &str = "power_meter";

/// The power files, best first (see the module documentation).
const POWER_FILES: [&str; 2] = ["power1_average", "power1_input"];

/// A found ACPI power meter.
#[derive(Debug, Clone)]
pub struct AcpiPowerMeter {
    host: Host,
    /// `sys/class/hwmon/hwmon3` (or `.../hwmon3/device`), relative to the host root.
    dir: String,
    /// `power1_average` or `power1_input`.
    file: &'static str,
    /// `power1_average_interval`, when the driver gives it: the averaging window.
    interval_ms: Option<u64>,
}

/// Why there is no ACPI power meter.
#[derive(Debug, thiserror::Error)]
pub enum AcpiMeterUnavailable {
    #[error("no hwmon tree ({0})")]
    NoHwmon(std::io::Error),
    #[error("no hwmon device named \"power_meter\"")]
    NotFound,
    #[error("found but unreadable: {0}")]
    Unreadable(ProbeError),
}

impl AcpiPowerMeter {
    /// The meter, or why there is none. The power file must give a reading now: a
    /// meter whose firmware answers nothing at start is not used (the driver does not
    /// start measuring later).
    pub fn try_discover(host: &Host) -> Result<AcpiPowerMeter, AcpiMeterUnavailable> {
        let entries = std::fs::read_dir(host.path(HWMON)).map_err(AcpiMeterUnavailable::NoHwmon)?;
        let mut devices: Vec<(u32, String)> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let index = name.strip_prefix("hwmon")?.parse().ok()?;
                Some((index, name))
            })
            .collect();
        // Sorted by index so that "the first" is stable (read_dir order is not).
        devices.sort();

        let mut first_error = None;
        for (_, device) in devices {
            for dir in [
                format!("{HWMON}/{device}"),
                format!("{HWMON}/{device}/device"),
            ] {
                let is_meter = host
                    .read_to_string(&format!("{dir}/name"))
                    .is_ok_and(|name| name.trim() == DRIVER_NAME);
                if !is_meter {
                    continue;
                }
                let Some(file) = POWER_FILES
                    .into_iter()
                    .find(|file| host.path(&format!("{dir}/{file}")).exists())
                else {
                    continue;
                };
                let interval_ms = host
                    .read_to_string(&format!("{dir}/power1_average_interval"))
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                let meter = AcpiPowerMeter {
                    host: host.clone(),
                    dir,
                    file,
                    interval_ms,
                };
                match meter.read_power_w() {
                    Ok(_) => return Ok(meter),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        Err(match first_error {
            Some(error) => AcpiMeterUnavailable::Unreadable(error),
            None => AcpiMeterUnavailable::NotFound,
        })
    }

    /// The power file, relative to the host root.
    pub fn power_file(&self) -> String {
        format!("{}/{}", self.dir, self.file)
    }

    /// The firmware's averaging window, if the driver says.
    pub fn interval_ms(&self) -> Option<u64> {
        self.interval_ms
    }

    /// Whole-system power now, in watts.
    pub fn read_power_w(&self) -> Result<f64, ProbeError> {
        let file = self.power_file();
        let text = self.host.read_to_string(&file)?;
        parse_microwatts(&text).ok_or_else(|| {
            ProbeError::malformed(
                self.host.path(&file),
                format!(
                    "not a power reading: {:?}",
                    text.trim().chars().take(40).collect::<String>()
                ),
            )
        })
    }

    fn path(&self) -> PathBuf {
        self.host.path(&self.power_file())
    }
}

impl WholeSystemMeter for AcpiPowerMeter {
    fn source(&self) -> EnergySource {
        EnergySource::AcpiPowerMeter
    }

    fn describe(&self) -> String {
        let file = self.path();
        let shown = file
            .strip_prefix(self.host.root())
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_else(|_| file.display().to_string());
        match self.interval_ms {
            Some(ms) => format!("ACPI power meter {shown} (averaged over {ms} ms)"),
            None => format!("ACPI power meter {shown}"),
        }
    }

    /// The meter's own mean: the window is the firmware's, whatever `span_ms`.
    fn read_w(&mut self, _span_ms: u64) -> Result<f64, MeterError> {
        Ok(self.read_power_w()?)
    }
}

/// A power file's content (µW, an integer) to watts: `None` for anything else, for 0
/// (no reading) and above [`MAX_PLAUSIBLE_W`].
fn parse_microwatts(text: &str) -> Option<f64> {
    let microwatts: u64 = text.trim().parse().ok()?;
    let watts = microwatts as f64 / MICROWATTS_PER_WATT;
    (watts > 0.0 && watts <= MAX_PLAUSIBLE_W).then_some(watts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn device(root: &Path, dir: &str, files: &[(&str, &str)]) {
        let dir = root.join(HWMON).join(dir);
        fs::create_dir_all(&dir).unwrap();
        for (file, content) in files {
            fs::write(dir.join(file), format!("{content}\n")).unwrap();
        }
    }

    /// A rack server's hwmon devices: thermal zone, CPU, a drive, then the meter.
    fn server(root: &Path) {
        device(
            root,
            "hwmon0",
            &[("name", "acpitz"), ("temp1_input", "27800")],
        );
        device(
            root,
            "hwmon1",
            &[("name", "coretemp"), ("temp1_input", "45000")],
        );
        // A power reading that is not the machine's: a drive's own power sensor.
        device(
            root,
            "hwmon2",
            &[("name", "nvme"), ("power1_input", "7000000")],
        );
        device(
            root,
            "hwmon10",
            &[
                ("name", "power_meter"),
                ("power1_average", "182500000"),
                ("power1_average_interval", "1000"),
                ("power1_model_number", "Dell PSU"),
            ],
        );
    }

    #[test]
    fn the_meter_is_found_among_other_hwmon_devices_and_microwatts_are_watts() {
        let dir = tempfile::tempdir().unwrap();
        server(dir.path());
        let mut meter = AcpiPowerMeter::try_discover(&Host::at(dir.path())).unwrap();
        assert_eq!(meter.power_file(), "sys/class/hwmon/hwmon10/power1_average");
        assert_eq!(meter.interval_ms(), Some(1000));
        assert_eq!(meter.source(), EnergySource::AcpiPowerMeter);
        assert_eq!(
            meter.describe(),
            "ACPI power meter /sys/class/hwmon/hwmon10/power1_average (averaged over 1000 ms)"
        );
        assert_eq!(meter.read_w(10_000).unwrap(), 182.5);
        fs::write(
            dir.path().join(HWMON).join("hwmon10/power1_average"),
            "1250\n",
        )
        .unwrap();
        assert_eq!(meter.read_w(10_000).unwrap(), 0.00125);
    }

    #[test]
    fn power1_input_is_used_without_an_average_and_old_kernels_put_it_under_device() {
        let dir = tempfile::tempdir().unwrap();
        device(
            dir.path(),
            "hwmon0/device",
            &[("name", "power_meter"), ("power1_input", "95000000")],
        );
        let mut meter = AcpiPowerMeter::try_discover(&Host::at(dir.path())).unwrap();
        assert_eq!(
            meter.power_file(),
            "sys/class/hwmon/hwmon0/device/power1_input"
        );
        assert_eq!(meter.interval_ms(), None);
        assert_eq!(meter.read_w(10_000).unwrap(), 95.0);
    }

    #[test]
    fn a_reading_that_disappears_mid_run_is_an_error_then_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        server(dir.path());
        let mut meter = AcpiPowerMeter::try_discover(&Host::at(dir.path())).unwrap();
        let file = dir.path().join(HWMON).join("hwmon10/power1_average");
        fs::remove_file(&file).unwrap();
        assert!(matches!(
            meter.read_w(10_000),
            Err(MeterError::Acpi(ProbeError::Unavailable { .. }))
        ));
        for bad in ["", "abc", "-5", "1.5", "0", "20000000001"] {
            fs::write(&file, bad).unwrap();
            assert!(
                matches!(
                    meter.read_w(10_000),
                    Err(MeterError::Acpi(ProbeError::Malformed { .. }))
                ),
                "{bad:?}"
            );
        }
        fs::write(&file, "200000000\n").unwrap();
        assert_eq!(meter.read_w(10_000).unwrap(), 200.0);
    }

    #[test]
    fn no_tree_no_meter_or_a_silent_meter_is_not_available() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::at(dir.path());
        assert!(matches!(
            AcpiPowerMeter::try_discover(&host),
            Err(AcpiMeterUnavailable::NoHwmon(_))
        ));
        device(
            dir.path(),
            "hwmon0",
            &[("name", "coretemp"), ("temp1_input", "45000")],
        );
        // Named like the meter but without a power file.
        device(dir.path(), "hwmon1", &[("name", "power_meter")]);
        assert!(matches!(
            AcpiPowerMeter::try_discover(&host),
            Err(AcpiMeterUnavailable::NotFound)
        ));
        // The firmware answers 0: no reading at start, not used.
        device(
            dir.path(),
            "hwmon2",
            &[("name", "power_meter"), ("power1_average", "0")],
        );
        assert!(matches!(
            AcpiPowerMeter::try_discover(&host),
            Err(AcpiMeterUnavailable::Unreadable(
                ProbeError::Malformed { .. }
            ))
        ));
    }

    #[test]
    fn microwatts_parse_within_the_plausible_range() {
        assert_eq!(parse_microwatts("182500000\n"), Some(182.5));
        assert_eq!(parse_microwatts("20000000000"), Some(MAX_PLAUSIBLE_W));
        assert_eq!(parse_microwatts("20000000001"), None);
        assert_eq!(parse_microwatts("0"), None);
        assert_eq!(parse_microwatts("1e6"), None);
    }
}
