//! Temperatures (CPU package, inlet/ambient, others) for a report's `temperatures`.
//!
//! Temperatures are a level, not an accumulation: one read at each report cut is
//! enough, and a missed read loses nothing but that report's snapshot.
//!
//! # Platform-specific behaviour
//!
//! Linux: `/sys/class/hwmon/hwmon*/`, one directory per chip driver, with `name` (the
//! driver: `coretemp`, `k10temp`, `zenpower`, `acpitz`, `nvme`, ...), `tempN_input` in
//! millidegrees Celsius and, where the driver names its sensors, `tempN_label`:
//!
//! ```text
//! hwmon0  name "acpitz"    temp1_input 27800                    -> acpitz.temp1
//! hwmon1  name "coretemp"  temp1_label "Package id 0"           -> coretemp.package_id_0  (CPU package)
//!                          temp2_label "Core 0"                 -> coretemp.core_0
//! hwmon2  name "k10temp"   temp1_label "Tctl"                   -> k10temp.tctl           (CPU package)
//! hwmon3  name "nct6775"   temp1_label "Inlet Temp"             -> nct6775.inlet_temp     (inlet)
//! ```
//!
//! Sensor ids are `name.label` (or `name.tempN` without a label), lowercased, spaces
//! as `_`, other characters than `[a-z0-9._-]` dropped, so they pass the contract's id
//! check. A value that cannot be read (some ACPI zones answer `EIO` or `ENODATA`), is
//! not an integer or lies outside −60..200 °C (a disconnected thermistor reads −128 or
//! 255 °C) is skipped and counted ([`Thermometers::skipped`]), never reported.
//! Virtual machines usually have no hwmon device at all: [`Thermometers::discover`]
//! then gives `None`. Other platforms have no probe.

use super::Host;
use veille_proto::v1::Temperature;

/// Where the hwmon devices are listed, relative to the host root.
const HWMON: &str = "sys/class/hwmon";

/// At most this many sensors per report (the contract allows 64; a 2-socket server
/// with per-core sensors has more than 16, and the roles that matter sort first).
pub const MAX_SENSORS: usize = 16;

/// Plausible range, °C, the contract's own: outside it a value is a fault, not a level.
const MIN_C: f64 = -60.0;
const MAX_C: f64 = 200.0;

/// The contract's limit on a sensor id, in bytes.
const MAX_ID_LEN: usize = 128;

/// What a sensor measures, as far as its driver says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SensorRole {
    /// The CPU package (coretemp "Package id N", k10temp/zenpower "Tctl"/"Tdie").
    CpuPackage,
    /// Air entering the machine (a label containing "inlet" or "ambient").
    Inlet,
    /// Anything else: cores, chipset, ACPI zones, drives.
    Other,
}

/// One discovered sensor.
#[derive(Debug, Clone)]
struct Sensor {
    /// `sys/class/hwmon/hwmon1/temp1_input`, relative to the host root.
    input: String,
    id: String,
    role: SensorRole,
}

/// The machine's temperature sensors, found once at start.
#[derive(Debug, Clone)]
pub struct Thermometers {
    host: Host,
    /// CPU package sensors first, then inlet, then the rest, each in discovery order.
    sensors: Vec<Sensor>,
    skipped: u64,
}

impl Thermometers {
    /// The sensors, or `None` when this machine exposes no hwmon temperature (a VM);
    /// logged here, once, since a caller discovers once at start.
    pub fn discover(host: &Host) -> Option<Thermometers> {
        let sensors = find_sensors(host);
        if sensors.is_empty() {
            tracing::info!("no hwmon temperature sensor; reports carry no temperature");
            return None;
        }
        let found = Thermometers {
            host: host.clone(),
            sensors,
            skipped: 0,
        };
        tracing::info!(sensors = ?found.sensors(), "hwmon temperature sensors found");
        Some(found)
    }

    /// The sensors as (id, role), in the order [`read`](Self::read) reports them.
    pub fn sensors(&self) -> Vec<(&str, SensorRole)> {
        self.sensors
            .iter()
            .map(|s| (s.id.as_str(), s.role))
            .collect()
    }

    /// The current temperatures, at most [`MAX_SENSORS`], CPU package and inlet first.
    /// A sensor that cannot be read or gives an implausible value is left out of this
    /// read and counted in [`skipped`](Self::skipped).
    pub fn read(&mut self) -> Vec<Temperature> {
        let mut out = Vec::new();
        for sensor in &self.sensors {
            if out.len() == MAX_SENSORS {
                break;
            }
            match self
                .host
                .read_to_string(&sensor.input)
                .ok()
                .and_then(|text| parse_millidegrees(&text))
            {
                Some(celsius) => out.push(Temperature {
                    sensor: sensor.id.clone(),
                    celsius,
                }),
                None => self.skipped += 1,
            }
        }
        out
    }

    /// How many sensor reads were skipped (unreadable or implausible) since discovery.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// `tempN_input` content to °C: an integer of millidegrees within the plausible range.
fn parse_millidegrees(text: &str) -> Option<f64> {
    let milli: i64 = text.trim().parse().ok()?;
    let celsius = milli as f64 / 1000.0;
    (MIN_C..=MAX_C).contains(&celsius).then_some(celsius)
}

fn find_sensors(host: &Host) -> Vec<Sensor> {
    let Ok(entries) = std::fs::read_dir(host.path(HWMON)) else {
        return Vec::new();
    };
    let mut devices: Vec<(u32, String)> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let index = name.strip_prefix("hwmon")?.parse().ok()?;
            Some((index, name))
        })
        .collect();
    // Sorted by index so that ids and order are stable (read_dir order is not).
    devices.sort();

    let mut sensors: Vec<Sensor> = Vec::new();
    for (_, device) in devices {
        let dir = format!("{HWMON}/{device}");
        let driver = host
            .read_to_string(&format!("{dir}/name"))
            .ok()
            .map(|name| sanitize(&name))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| device.clone());
        let Ok(files) = std::fs::read_dir(host.path(&dir)) else {
            continue;
        };
        let mut inputs: Vec<u32> = files
            .filter_map(|file| {
                let name = file.ok()?.file_name().into_string().ok()?;
                name.strip_prefix("temp")?
                    .strip_suffix("_input")?
                    .parse()
                    .ok()
            })
            .collect();
        inputs.sort_unstable();
        for n in inputs {
            let raw_label = host
                .read_to_string(&format!("{dir}/temp{n}_label"))
                .unwrap_or_default();
            let label = Some(sanitize(&raw_label))
                .filter(|label| !label.is_empty())
                .unwrap_or_else(|| format!("temp{n}"));
            let mut id = truncate(format!("{driver}.{label}"));
            // Two chips of one driver (two NVMe drives) would give the same id.
            let mut k = 2;
            while sensors.iter().any(|s| s.id == id) {
                id = truncate(format!("{driver}.{label}_{k}"));
                k += 1;
            }
            sensors.push(Sensor {
                input: format!("{dir}/temp{n}_input"),
                role: role(&driver, &label),
                id,
            });
        }
    }
    // Stable: discovery order within a role.
    sensors.sort_by_key(|s| s.role);
    sensors
}

fn role(driver: &str, label: &str) -> SensorRole {
    match driver {
        "coretemp" if label.starts_with("package_id") => SensorRole::CpuPackage,
        "k10temp" | "zenpower" if label == "tctl" || label == "tdie" => SensorRole::CpuPackage,
        _ if label.contains("inlet") || label.contains("ambient") => SensorRole::Inlet,
        _ => SensorRole::Other,
    }
}

/// Lowercase, whitespace runs as one `_`, only `[a-z0-9._-]` kept.
fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(
            word.chars()
                .map(|c| c.to_ascii_lowercase())
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
        );
    }
    out
}

/// At most the contract's id length (the id is ASCII, so any byte is a boundary).
fn truncate(mut id: String) -> String {
    id.truncate(MAX_ID_LEN);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn chip(root: &Path, hwmon: &str, files: &[(&str, &str)]) {
        let dir = root.join(HWMON).join(hwmon);
        fs::create_dir_all(&dir).unwrap();
        for (file, content) in files {
            fs::write(dir.join(file), format!("{content}\n")).unwrap();
        }
    }

    fn readings(t: &mut Thermometers) -> Vec<(String, f64)> {
        t.read()
            .into_iter()
            .map(|t| (t.sensor, t.celsius))
            .collect()
    }

    #[test]
    fn coretemp_package_and_cores_with_labels() {
        let dir = tempfile::tempdir().unwrap();
        chip(
            dir.path(),
            "hwmon3",
            &[
                ("name", "coretemp"),
                ("temp2_label", "Core 0"),
                ("temp2_input", "45000"),
                ("temp1_label", "Package id 0"),
                ("temp1_input", "52500"),
                ("temp3_label", "Core 1"),
                ("temp3_input", "47000"),
            ],
        );
        let mut t = Thermometers::discover(&Host::at(dir.path())).unwrap();
        assert_eq!(
            t.sensors(),
            vec![
                ("coretemp.package_id_0", SensorRole::CpuPackage),
                ("coretemp.core_0", SensorRole::Other),
                ("coretemp.core_1", SensorRole::Other),
            ]
        );
        assert_eq!(
            readings(&mut t),
            vec![
                ("coretemp.package_id_0".into(), 52.5),
                ("coretemp.core_0".into(), 45.0),
                ("coretemp.core_1".into(), 47.0),
            ]
        );
        assert_eq!(t.skipped(), 0);
    }

    #[test]
    fn k10temp_tctl_acpitz_without_labels_and_an_inlet_sort_first() {
        let dir = tempfile::tempdir().unwrap();
        chip(
            dir.path(),
            "hwmon0",
            &[("name", "acpitz"), ("temp1_input", "27800")],
        );
        chip(
            dir.path(),
            "hwmon1",
            &[
                ("name", "nct6775"),
                ("temp1_label", "Inlet Temp"),
                ("temp1_input", "-5000"),
            ],
        );
        chip(
            dir.path(),
            "hwmon2",
            &[
                ("name", "k10temp"),
                ("temp1_label", "Tctl"),
                ("temp1_input", "61250"),
            ],
        );
        let mut t = Thermometers::discover(&Host::at(dir.path())).unwrap();
        assert_eq!(
            t.sensors(),
            vec![
                ("k10temp.tctl", SensorRole::CpuPackage),
                ("nct6775.inlet_temp", SensorRole::Inlet),
                ("acpitz.temp1", SensorRole::Other),
            ]
        );
        assert_eq!(
            readings(&mut t),
            vec![
                ("k10temp.tctl".into(), 61.25),
                ("nct6775.inlet_temp".into(), -5.0),
                ("acpitz.temp1".into(), 27.8),
            ]
        );
    }

    #[test]
    fn bad_values_are_skipped_and_counted_never_reported() {
        let dir = tempfile::tempdir().unwrap();
        chip(
            dir.path(),
            "hwmon0",
            &[
                ("name", "Weird Chip (v2)\u{7}"),
                // A label without its input: not a sensor.
                ("temp1_label", "Ghost"),
                ("temp2_input", "not a number \u{1b}[31m"),
                ("temp3_input", "250000"),
                ("temp4_input", "-128000"),
                ("temp5_input", "40000"),
                ("temp6_input", ""),
            ],
        );
        // Not UTF-8 at all.
        fs::write(
            dir.path().join(HWMON).join("hwmon0/temp7_input"),
            [0xff, 0xfe, 0x00],
        )
        .unwrap();
        // Not an hwmon device.
        chip(dir.path(), "power", &[("temp1_input", "30000")]);
        let mut t = Thermometers::discover(&Host::at(dir.path())).unwrap();
        assert_eq!(t.sensors().len(), 6, "{:?}", t.sensors());
        assert!(
            t.sensors()
                .iter()
                .all(|(id, _)| id.starts_with("weird_chip_v2."))
        );
        assert_eq!(readings(&mut t), vec![("weird_chip_v2.temp5".into(), 40.0)]);
        assert_eq!(t.skipped(), 5);
        // Counted again at each read; a sensor that recovers is reported again.
        fs::write(dir.path().join(HWMON).join("hwmon0/temp3_input"), "70000\n").unwrap();
        assert_eq!(readings(&mut t).len(), 2);
        assert_eq!(t.skipped(), 9);
    }

    #[test]
    fn at_most_sixteen_sensors_cpu_package_first_and_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let mut cores: Vec<(String, String)> = (2..=20)
            .flat_map(|n| {
                [
                    (format!("temp{n}_label"), format!("Core {n}")),
                    (format!("temp{n}_input"), "40000".to_string()),
                ]
            })
            .collect();
        cores.push(("name".into(), "coretemp".into()));
        cores.push(("temp21_input".into(), "41000".into()));
        cores.push(("temp21_label".into(), "Package id 0".into()));
        let files: Vec<(&str, &str)> = cores
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        chip(dir.path(), "hwmon1", &files);
        for hwmon in ["hwmon2", "hwmon3"] {
            chip(
                dir.path(),
                hwmon,
                &[
                    ("name", "nvme"),
                    ("temp1_label", "Composite"),
                    ("temp1_input", "35000"),
                ],
            );
        }
        let mut t = Thermometers::discover(&Host::at(dir.path())).unwrap();
        let ids: Vec<&str> = t.sensors().iter().map(|(id, _)| *id).collect();
        assert!(ids.contains(&"nvme.composite") && ids.contains(&"nvme.composite_2"));
        let read = t.read();
        assert_eq!(read.len(), MAX_SENSORS);
        assert_eq!(read[0].sensor, "coretemp.package_id_0");
        assert_eq!(read[0].celsius, 41.0);
    }

    #[test]
    fn no_hwmon_tree_or_no_temperature_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Thermometers::discover(&Host::at(dir.path())).is_none());
        chip(
            dir.path(),
            "hwmon0",
            &[("name", "fan_only"), ("fan1_input", "1200")],
        );
        assert!(Thermometers::discover(&Host::at(dir.path())).is_none());
    }

    #[test]
    fn sanitized_ids_pass_the_contract() {
        assert_eq!(sanitize(" Package  id 0\n"), "package_id_0");
        assert_eq!(sanitize("CPU\tTemp/é+1"), "cpu_temp1");
        assert_eq!(truncate("x".repeat(300)).len(), MAX_ID_LEN);
        assert_eq!(parse_millidegrees("200000\n"), Some(200.0));
        assert_eq!(parse_millidegrees("200001"), None);
        assert_eq!(parse_millidegrees("-60000"), Some(-60.0));
        assert_eq!(parse_millidegrees("1e3"), None);
    }
}
