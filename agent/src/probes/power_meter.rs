//! Whole-system power of servers, measured by the platform: which meter to use, and how
//! its readings become a report's joules.
//!
//! Two meters measure the whole machine at its power supply: the ACPI power meter
//! ([`super::acpi_power_meter`], hwmon `power_meter`) and the BMC through IPMI DCMI
//! ([`super::ipmi_dcmi`]). Where both exist they see the same power, so the agent sends
//! one: the ACPI meter, read from sysfs in microseconds without starting a process,
//! whose running average is the firmware's own. The measurement's [`EnergySource`]
//! says which one it was. RAPL is not one of them: it measures CPU packages and DRAM.
//!
//! Both give power (W), not an energy counter, so the agent integrates: at each
//! sampler tick it reads the meter and counts that reading over the tick
//! ([`MeanPowerIntegrator`]).
//!
//! # Platform-specific behaviour
//!
//! Linux only: elsewhere there is no hwmon tree and no IPMI device, so
//! [`discover`] finds nothing and reports carry no whole-system measurement.

use veille_proto::v1::EnergySource;

use super::Host;
use super::acpi_power_meter::{AcpiMeterUnavailable, AcpiPowerMeter};
use super::ipmi_dcmi::{IpmiDcmiMeter, IpmiError, Ipmitool};

/// hwmon power files count microwatts.
pub const MICROWATTS_PER_WATT: f64 = 1_000_000.0;

/// Above this a whole-system reading is a firmware fault, not a level: the largest
/// servers with accelerators draw a few kW at their inlet.
pub const MAX_PLAUSIBLE_W: f64 = 20_000.0;

/// Milliseconds per second, for watts × milliseconds → joules.
const MS_PER_SECOND: f64 = veille_proto::units::MS_PER_SECOND as f64;

/// A meter of the whole machine's power, read at every sampler tick.
pub trait WholeSystemMeter: Send {
    /// The contract's name for this meter, sent with its energy.
    fn source(&self) -> EnergySource;

    /// What was found, for logs and `veille-agent status` (`"ACPI power meter hwmon3
    /// (power1_average over 1000 ms)"`).
    fn describe(&self) -> String;

    /// The machine's mean power, in watts, over about the last `span_ms` (the tick
    /// that just ended), or why it cannot be read now. A failure is for this tick only:
    /// the caller asks again at the next one.
    fn read_w(&mut self, span_ms: u64) -> Result<f64, MeterError>;
}

/// Why a meter gave no reading at one tick.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error(transparent)]
    Acpi(#[from] super::ProbeError),
    #[error(transparent)]
    Ipmi(#[from] IpmiError),
}

/// The whole-system meter of this machine, ACPI power meter first, then IPMI DCMI; or
/// `None`, with one log line saying why neither is available (a desktop, a laptop, a
/// VM, a server whose firmware exposes no meter). Called once at start.
pub fn discover(host: &Host) -> Option<Box<dyn WholeSystemMeter>> {
    match find(host) {
        Ok(meter) => {
            tracing::info!(
                meter = %meter.describe(),
                "whole-system power meter found: reports carry measured energy"
            );
            Some(meter)
        }
        Err(reason) => {
            tracing::info!(%reason, "no whole-system power meter; energy stays modelled");
            None
        }
    }
}

/// The meter `discover` would use, or why there is none (both reasons), for
/// `veille-agent status`. Runs `ipmitool` once where it may.
pub fn find(host: &Host) -> Result<Box<dyn WholeSystemMeter>, NoMeter> {
    let acpi = match AcpiPowerMeter::try_discover(host) {
        Ok(meter) => return Ok(Box::new(meter)),
        Err(reason) => reason,
    };
    let ipmi = match IpmiDcmiMeter::<Ipmitool>::try_discover_real(host) {
        Ok(meter) => return Ok(Box::new(meter)),
        Err(reason) => reason,
    };
    Err(NoMeter { acpi, ipmi })
}

/// What `veille-agent status` says about this machine's meter: the source the reports
/// carry and the meter (`ACPI_POWER_METER: ACPI power meter /sys/class/hwmon/...`), or
/// `none` and why, so an operator sees why a server stays modelled.
pub fn status_line(host: &Host) -> String {
    match find(host) {
        Ok(meter) => format!("{}: {}", meter.source().as_str_name(), meter.describe()),
        Err(reason) => format!("none, energy modelled ({reason})"),
    }
}

/// Why this machine has no whole-system meter: one reason per kind.
#[derive(Debug, thiserror::Error)]
#[error("ACPI power meter: {acpi}; IPMI DCMI: {ipmi}")]
pub struct NoMeter {
    pub acpi: AcpiMeterUnavailable,
    pub ipmi: IpmiError,
}

/// Joules of one report from a meter that gives mean power.
///
/// At each tick the sampler calls [`add`](Self::add) with the tick's length and the
/// meter's reading taken at its end, and [`finish_report`](Self::finish_report) at each
/// report boundary. Pure: no clock, no I/O.
///
/// Energy is Σ reading × tick length (a rectangle per tick, its height read at the
/// tick's end). That is the right rule for an averaging meter: the ACPI meter's
/// `power1_average` (and DCMI's average reading) is already the mean power over the
/// window that ends when it is read, so with a window about the tick's length it *is*
/// the tick's energy divided by its length. Trapezoids between two readings (as for a
/// battery's instantaneous power) would mix the previous window into this tick and lag
/// by half a tick. Where the window is shorter than the tick, the reading is an
/// unbiased sample of the tick's power; where longer, it smooths over earlier ticks, and
/// the sum over a report still carries every watt, one window late.
///
/// A report gets its joules only if every one of its ticks had a reading: the collector
/// takes a whole-system measurement as covering the report's whole awake time, so a
/// partial sum would read as a machine that drew less. A tick without a reading (the
/// meter stopped answering) or a suspend ([`interrupt`](Self::interrupt)) leaves the
/// report to the model; the next report is measured again.
#[derive(Debug, Clone)]
pub struct MeanPowerIntegrator {
    energy_j: f64,
    /// Every tick of this report so far had a reading.
    covered: bool,
    ticks: u32,
}

impl Default for MeanPowerIntegrator {
    fn default() -> Self {
        Self::new()
    }
}

impl MeanPowerIntegrator {
    pub fn new() -> Self {
        Self {
            energy_j: 0.0,
            covered: true,
            ticks: 0,
        }
    }

    /// A tick of `span_ms` (awake time) whose reading, taken at its end, was `mean_w`
    /// (`None`: no reading). A negative or non-finite reading counts as none.
    pub fn add(&mut self, span_ms: u64, mean_w: Option<f64>) {
        match mean_w.filter(|w| w.is_finite() && *w >= 0.0) {
            Some(w) => self.energy_j += w * (span_ms as f64 / MS_PER_SECOND),
            None => self.covered = false,
        }
        self.ticks += 1;
    }

    /// The machine slept during this report: the meter's reading says nothing about the
    /// awake part of that tick alone, so the report gets no measurement.
    pub fn interrupt(&mut self) {
        self.covered = false;
    }

    /// Ends the current report: its joules if every tick had a reading, else `None`
    /// (also for a report without any tick). Starts the next report either way.
    pub fn finish_report(&mut self) -> Option<f64> {
        let energy_j = (self.covered && self.ticks > 0).then_some(self.energy_j);
        *self = Self::new();
        energy_j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_which_meter_or_why_none() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::at(dir.path());
        assert_eq!(
            status_line(&host).split(" (ACPI").next(),
            Some("none, energy modelled")
        );
        assert!(
            status_line(&host).ends_with("IPMI DCMI: no IPMI device (/dev/ipmi0, /dev/ipmi/0, /dev/ipmidev/0; is ipmi_devintf loaded?))"),
            "{}",
            status_line(&host)
        );
        let meter = dir.path().join("sys/class/hwmon/hwmon4");
        std::fs::create_dir_all(&meter).unwrap();
        std::fs::write(meter.join("name"), "power_meter\n").unwrap();
        std::fs::write(meter.join("power1_average"), "145000000\n").unwrap();
        assert_eq!(
            status_line(&host),
            "ACPI_POWER_METER: ACPI power meter /sys/class/hwmon/hwmon4/power1_average"
        );
        // Where there is an IPMI device too, the ACPI meter is the one used (and
        // ipmitool is not run).
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/ipmi0"), "").unwrap();
        assert_eq!(find(&host).unwrap().source(), EnergySource::AcpiPowerMeter);
    }

    #[test]
    fn energy_is_each_mean_reading_times_its_tick() {
        let mut i = MeanPowerIntegrator::new();
        i.add(10_000, Some(200.0)); // 2 kJ
        i.add(10_000, Some(250.0)); // 2.5 kJ
        i.add(5_000, Some(100.0)); // 0.5 kJ
        assert_eq!(i.finish_report(), Some(5_000.0));
        // The first tick of the next report is covered by its own reading.
        i.add(1_000, Some(300.0));
        assert_eq!(i.finish_report(), Some(300.0));
        // No tick at all: nothing known.
        assert_eq!(i.finish_report(), None);
    }

    #[test]
    fn a_missing_reading_or_a_suspend_voids_only_its_report() {
        let mut i = MeanPowerIntegrator::new();
        i.add(10_000, Some(200.0));
        i.add(10_000, None); // the meter did not answer
        i.add(10_000, Some(200.0));
        assert_eq!(i.finish_report(), None);
        i.add(10_000, Some(150.0));
        assert_eq!(i.finish_report(), Some(1_500.0));
        i.add(10_000, Some(150.0));
        i.interrupt();
        assert_eq!(i.finish_report(), None);
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            i.add(10_000, Some(bad));
            assert_eq!(i.finish_report(), None, "{bad}");
        }
    }
}
