//! Battery discharge power, for the `BATTERY_DISCHARGE` measurement of laptops.
//!
//! While a laptop runs from its battery, the battery feeds the whole machine (screen
//! included), so its discharge power is a whole-system measurement. On the wall it is
//! not: the charger feeds the machine and the battery's power is charging power, or
//! nothing. So power is measured only while discharging, and a report gets battery
//! energy only if its whole interval was on battery ([`EnergyIntegrator`]).
//!
//! # Platform-specific behaviour
//!
//! Linux: `/sys/class/power_supply/*/` with `type` "Battery". Batteries with `scope`
//! "Device" (a wireless mouse, a headset) do not power this machine and are ignored.
//! Power is `power_now` (µW) where the driver gives it, else `current_now` (µA) ×
//! `voltage_now` (µV). Some drivers report discharge as a negative current or power,
//! so the magnitude is used; a zero reading means "unknown" (the machine cannot run on
//! 0 W) and falls back to the other pair, then to no sample. The fuel gauge usually
//! averages over some seconds, and many update only every few seconds.

use super::Host;

/// Where the power supplies are listed, relative to the host root.
const POWER_SUPPLY: &str = "sys/class/power_supply";

/// The machine's batteries.
#[derive(Debug, Clone)]
pub struct BatteryMeter {
    host: Host,
    /// `sys/class/power_supply/BAT0`, relative to the host root.
    batteries: Vec<String>,
    /// Mains adapters (`type` "Mains"), whose `online` overrides a battery's status.
    mains: Vec<String>,
}

impl BatteryMeter {
    /// The meter, or `None` when this machine has no system battery (a desktop, a
    /// server, a VM). Found once: batteries are not hot-plugged often enough to matter.
    pub fn discover(host: &Host) -> Option<BatteryMeter> {
        let entries = std::fs::read_dir(host.path(POWER_SUPPLY)).ok()?;
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut batteries = Vec::new();
        let mut mains = Vec::new();
        for name in names {
            let dir = format!("{POWER_SUPPLY}/{name}");
            match read_word(host, &dir, "type").as_deref() {
                Some("Battery") if read_word(host, &dir, "scope").as_deref() != Some("Device") => {
                    batteries.push(dir)
                }
                Some("Mains") => mains.push(dir),
                _ => {}
            }
        }
        if batteries.is_empty() {
            return None;
        }
        Some(BatteryMeter {
            host: host.clone(),
            batteries,
            mains,
        })
    }

    /// Whole-system power in watts if the machine runs from its batteries now, else
    /// `None`: on the wall (any battery charging, a mains adapter online, no battery
    /// discharging), or a discharging battery whose power cannot be read.
    ///
    /// With two batteries (some ThinkPads) one discharges while the other waits ("Not
    /// charging", "Unknown"); the powers of the discharging ones are summed.
    pub fn sample_w(&self) -> Option<f64> {
        let mains_online = self
            .mains
            .iter()
            .any(|dir| read_word(&self.host, dir, "online").as_deref() == Some("1"));
        if mains_online {
            return None;
        }
        let mut total_w = 0.0;
        let mut discharging = 0;
        for dir in &self.batteries {
            match read_word(&self.host, dir, "status").as_deref() {
                Some("Discharging") => {
                    total_w += self.power_w(dir)?;
                    discharging += 1;
                }
                Some("Charging") | Some("Full") => return None,
                _ => {}
            }
        }
        (discharging > 0).then_some(total_w)
    }

    /// One discharging battery's power, from `power_now` or current × voltage.
    fn power_w(&self, dir: &str) -> Option<f64> {
        let micro = |file: &str| {
            read_word(&self.host, dir, file)?
                .parse::<i64>()
                .ok()
                .map(|v| v.unsigned_abs() as f64)
                .filter(|v| *v > 0.0)
        };
        if let Some(power_uw) = micro("power_now") {
            return Some(power_uw / 1e6);
        }
        let current_ua = micro("current_now")?;
        let voltage_uv = micro("voltage_now")?;
        Some(current_ua * voltage_uv / 1e12)
    }
}

/// A small sysfs file's trimmed content, `None` when it cannot be read.
fn read_word(host: &Host, dir: &str, file: &str) -> Option<String> {
    host.read_to_string(&format!("{dir}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Joules of one report from power samples, or nothing if the report was not all on
/// battery.
///
/// The sampler calls [`add`](Self::add) at every tick with the time since the previous
/// tick and [`BatteryMeter::sample_w`], and [`finish_report`](Self::finish_report) at
/// each report boundary (right after the tick taken at that boundary). Pure: no clock,
/// no I/O.
///
/// Integration is by trapezoids: the span between two ticks gets the mean of their two
/// samples times its length. A span is covered only if the samples at both of its ends
/// were discharging; a span that starts or ends on the wall (or unreadable) means the
/// report's interval was not all on battery, and the report gets `None`. The last sample
/// of a report starts the first span of the next, so back-to-back reports on battery are
/// all covered except the very first after start-up or unplugging.
#[derive(Debug, Clone)]
pub struct EnergyIntegrator {
    /// The previous tick's sample (`None` also at start and after an interruption).
    last_w: Option<f64>,
    energy_j: f64,
    /// Every span of this report so far was on battery.
    covered: bool,
    spans: u32,
}

impl Default for EnergyIntegrator {
    fn default() -> Self {
        Self::new()
    }
}

impl EnergyIntegrator {
    pub fn new() -> Self {
        Self {
            last_w: None,
            energy_j: 0.0,
            covered: true,
            spans: 0,
        }
    }

    /// A tick `elapsed_ms` after the previous one (awake time: the monotonic clock),
    /// with its power sample (`None`: not on battery, or unreadable). A negative or
    /// non-finite sample counts as `None`.
    pub fn add(&mut self, elapsed_ms: u64, sample_w: Option<f64>) {
        let sample_w = sample_w.filter(|w| w.is_finite() && *w >= 0.0);
        match (self.last_w, sample_w) {
            (Some(before), Some(now)) => {
                self.energy_j += (before + now) / 2.0 * (elapsed_ms as f64 / 1000.0);
            }
            _ => self.covered = false,
        }
        self.spans += 1;
        self.last_w = sample_w;
    }

    /// The machine slept (or the sampler stalled) since the last tick: the span across
    /// it is unmeasured, so this report gets no battery energy.
    pub fn interrupt(&mut self) {
        self.last_w = None;
        self.covered = false;
    }

    /// Ends the current report: its joules if every span was on battery, else `None`.
    /// Starts the next report either way (the last sample is kept as its first end).
    pub fn finish_report(&mut self) -> Option<f64> {
        let energy_j = (self.covered && self.spans > 0).then_some(self.energy_j);
        self.energy_j = 0.0;
        self.covered = true;
        self.spans = 0;
        energy_j
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn supply(root: &Path, name: &str, files: &[(&str, &str)]) {
        let dir = root.join(POWER_SUPPLY).join(name);
        fs::create_dir_all(&dir).unwrap();
        for (file, content) in files {
            fs::write(dir.join(file), format!("{content}\n")).unwrap();
        }
    }

    fn set(root: &Path, name: &str, file: &str, content: &str) {
        fs::write(root.join(POWER_SUPPLY).join(name).join(file), content).unwrap();
    }

    fn laptop(battery: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        supply(dir.path(), "AC", &[("type", "Mains"), ("online", "0")]);
        supply(dir.path(), "BAT0", battery);
        let host = Host::at(dir.path());
        (dir, host)
    }

    #[test]
    fn discharging_power_is_read_from_power_now() {
        let (_dir, host) = laptop(&[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("power_now", "12345000"),
            ("current_now", "999"),
            ("voltage_now", "999"),
        ]);
        let meter = BatteryMeter::discover(&host).unwrap();
        assert_eq!(meter.sample_w(), Some(12.345));
    }

    #[test]
    fn discharging_power_is_current_times_voltage_without_power_now() {
        let (_dir, host) = laptop(&[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("current_now", "1500000"),
            ("voltage_now", "11400000"),
        ]);
        let meter = BatteryMeter::discover(&host).unwrap();
        assert!((meter.sample_w().unwrap() - 17.1).abs() < 1e-9);
    }

    #[test]
    fn negative_current_and_zero_power_now_are_handled() {
        let (_dir, host) = laptop(&[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("power_now", "0"),
            ("current_now", "-2000000"),
            ("voltage_now", "12000000"),
        ]);
        let meter = BatteryMeter::discover(&host).unwrap();
        assert_eq!(meter.sample_w(), Some(24.0));
    }

    #[test]
    fn on_the_wall_there_is_no_sample() {
        let (dir, host) = laptop(&[
            ("type", "Battery"),
            ("status", "Charging"),
            ("power_now", "30000000"),
        ]);
        let meter = BatteryMeter::discover(&host).unwrap();
        assert_eq!(meter.sample_w(), None);
        for status in ["Full", "Not charging", "Unknown", ""] {
            set(dir.path(), "BAT0", "status", status);
            assert_eq!(meter.sample_w(), None, "{status:?}");
        }
        // A battery that says "Discharging" while the adapter is online (a firmware
        // quirk at a charge threshold) is not whole-system power either.
        set(dir.path(), "BAT0", "status", "Discharging");
        set(dir.path(), "AC", "online", "1");
        assert_eq!(meter.sample_w(), None);
        set(dir.path(), "AC", "online", "0");
        assert_eq!(meter.sample_w(), Some(30.0));
    }

    #[test]
    fn unreadable_or_malformed_power_gives_no_sample() {
        let (dir, host) = laptop(&[("type", "Battery"), ("status", "Discharging")]);
        let meter = BatteryMeter::discover(&host).unwrap();
        assert_eq!(meter.sample_w(), None);
        for bad in ["", "abc", "1.5", "99999999999999999999999", "0"] {
            set(dir.path(), "BAT0", "power_now", bad);
            assert_eq!(meter.sample_w(), None, "{bad:?}");
        }
    }

    #[test]
    fn two_batteries_sum_the_discharging_ones() {
        let (dir, host) = laptop(&[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("power_now", "8000000"),
        ]);
        supply(
            dir.path(),
            "BAT1",
            &[
                ("type", "Battery"),
                ("status", "Not charging"),
                ("power_now", "0"),
            ],
        );
        let meter = BatteryMeter::discover(&host).unwrap();
        assert_eq!(meter.sample_w(), Some(8.0));
        set(dir.path(), "BAT1", "status", "Discharging");
        set(dir.path(), "BAT1", "power_now", "2000000");
        assert_eq!(meter.sample_w(), Some(10.0));
    }

    #[test]
    fn no_system_battery_gives_no_meter() {
        let dir = tempfile::tempdir().unwrap();
        assert!(BatteryMeter::discover(&Host::at(dir.path())).is_none());
        supply(dir.path(), "AC", &[("type", "Mains"), ("online", "1")]);
        supply(
            dir.path(),
            "hidpp_battery_0",
            &[
                ("type", "Battery"),
                ("scope", "Device"),
                ("status", "Discharging"),
                ("power_now", "1000"),
            ],
        );
        assert!(BatteryMeter::discover(&Host::at(dir.path())).is_none());
    }

    #[test]
    fn integrator_sums_trapezoids_of_a_report_on_battery() {
        let mut integrator = EnergyIntegrator::new();
        integrator.add(0, Some(10.0)); // first sample: no span before it
        assert_eq!(integrator.finish_report(), None);
        integrator.add(10_000, Some(10.0)); // 100 J
        integrator.add(10_000, Some(20.0)); // 150 J
        integrator.add(5_000, Some(20.0)); // 100 J
        assert_eq!(integrator.finish_report(), Some(350.0));
        // The next report starts from the last sample.
        integrator.add(1_000, Some(30.0)); // 25 J
        assert_eq!(integrator.finish_report(), Some(25.0));
    }

    #[test]
    fn integrator_gives_nothing_for_a_report_partly_on_the_wall() {
        let mut integrator = EnergyIntegrator::new();
        integrator.add(0, Some(10.0));
        integrator.finish_report();
        integrator.add(10_000, Some(10.0));
        integrator.add(10_000, None); // plugged in
        integrator.add(10_000, Some(12.0)); // unplugged again
        assert_eq!(integrator.finish_report(), None);
        // Reset: the next report, all on battery, is covered.
        integrator.add(10_000, Some(12.0));
        assert_eq!(integrator.finish_report(), Some(120.0));
        // A report with no tick at all is not covered either.
        assert_eq!(integrator.finish_report(), None);
    }

    #[test]
    fn integrator_gives_nothing_across_an_interruption_or_bad_sample() {
        let mut integrator = EnergyIntegrator::new();
        integrator.add(0, Some(10.0));
        integrator.finish_report();
        integrator.add(10_000, Some(10.0));
        integrator.interrupt(); // suspended
        integrator.add(10_000, Some(10.0));
        assert_eq!(integrator.finish_report(), None);
        integrator.add(10_000, Some(f64::NAN));
        assert_eq!(integrator.finish_report(), None);
        integrator.add(10_000, Some(5.0));
        integrator.add(10_000, Some(-1.0));
        assert_eq!(integrator.finish_report(), None);
    }
}
