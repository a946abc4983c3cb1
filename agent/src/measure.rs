//! Energy the platform measures itself, accumulated per report.
//!
//! RAPL counts CPU package + DRAM only: it goes into a report as `RAPL` and the
//! collector shows it beside the model, never as whole-system power. Battery discharge
//! is whole-system power, but only for a report spent entirely on battery; a report
//! partly on AC carries no battery measurement at all rather than a partial one.
//! A server's power meter (ACPI power meter, else IPMI DCMI: [`crate::probes::power_meter`])
//! is whole-system power too, sent under its own source, and likewise only for a report
//! where it answered at every tick.
//!
//! Meters are read on every sample, not once per report, because a RAPL counter can
//! wrap within minutes at high power and a report may last up to an hour.
//!
//! Temperatures are a level, not an accumulation: they are read once, when a report is
//! cut ([`Measurements::temperatures`]).

use veille_proto::v1::{EnergySource, Measurement, Temperature};

use crate::probes::{
    BatteryMeter, EnergyIntegrator, Host, MeanPowerIntegrator, RaplMeter, Thermometers,
    WholeSystemMeter, power_meter,
};
use crate::sampler::Sample;

pub struct Measurements {
    rapl: Option<RaplMeter>,
    battery: Option<BatteryMeter>,
    integrator: EnergyIntegrator,
    thermometers: Option<Thermometers>,
    /// The server's whole-system meter, if it has one.
    meter: Option<Box<dyn WholeSystemMeter>>,
    meter_integrator: MeanPowerIntegrator,
    /// The meter failed at the last tick: the failure was logged, and is not logged
    /// again until it has answered once (one line per outage, not one per tick).
    meter_failing: bool,
    rapl_j: f64,
    /// False once a suspend interrupted this report: RAPL counters may restart on
    /// resume, so the report gets no RAPL figure rather than a wrong one.
    rapl_valid: bool,
}

impl Measurements {
    /// Finds the meters and thermometers this machine has (none on a VM: reports then
    /// carry no measurement and no temperature).
    pub fn discover(host: &Host) -> Self {
        Self::with_meter(host, power_meter::discover(host))
    }

    /// As [`discover`](Self::discover), with this whole-system meter (tests give a fake
    /// IPMI tool here).
    pub fn with_meter(host: &Host, meter: Option<Box<dyn WholeSystemMeter>>) -> Self {
        Self {
            rapl: RaplMeter::discover(host),
            battery: BatteryMeter::discover(host),
            integrator: EnergyIntegrator::new(),
            thermometers: Thermometers::discover(host),
            meter,
            meter_integrator: MeanPowerIntegrator::new(),
            meter_failing: false,
            rapl_j: 0.0,
            rapl_valid: true,
        }
    }

    /// The whole-system meter in use, described, if any.
    pub fn meter(&self) -> Option<String> {
        self.meter.as_ref().map(|m| m.describe())
    }

    /// Reads the meters after a sample.
    pub fn tick(&mut self, sample: &Sample) {
        if sample.sleep_ms > 0 {
            if let Some(r) = self.rapl.as_mut() {
                r.rebaseline();
            }
            self.rapl_valid = false;
            self.integrator.interrupt();
            self.meter_integrator.interrupt();
        }
        if let Some(j) = self.rapl.as_mut().and_then(RaplMeter::read_delta_j) {
            self.rapl_j += j;
        }
        let watts = self.battery.as_ref().and_then(BatteryMeter::sample_w);
        self.integrator.add(sample.elapsed_ms, watts);
        if let Some(meter) = self.meter.as_mut() {
            let awake_ms = sample.elapsed_ms.saturating_sub(sample.sleep_ms);
            let reading = match meter.read_w(awake_ms) {
                Ok(w) => {
                    if std::mem::take(&mut self.meter_failing) {
                        tracing::info!(meter = %meter.describe(), "power meter answers again");
                    }
                    Some(w)
                }
                Err(error) => {
                    if !std::mem::replace(&mut self.meter_failing, true) {
                        tracing::warn!(
                            meter = %meter.describe(),
                            %error,
                            "power meter gave no reading: reports stay modelled until it answers"
                        );
                    }
                    None
                }
            };
            self.meter_integrator.add(awake_ms, reading);
        }
    }

    /// The measurements of the report being cut; starts the next report's.
    pub fn take_for_report(&mut self) -> Vec<Measurement> {
        let mut out = Vec::new();
        if self.rapl.is_some() && self.rapl_valid {
            out.push(Measurement {
                energy_j: self.rapl_j,
                source: EnergySource::Rapl as i32,
            });
        }
        if let Some(j) = self.integrator.finish_report() {
            out.push(Measurement {
                energy_j: j,
                source: EnergySource::BatteryDischarge as i32,
            });
        }
        if let Some(meter) = self.meter.as_ref()
            && let Some(j) = self.meter_integrator.finish_report()
        {
            out.push(Measurement {
                energy_j: j,
                source: meter.source() as i32,
            });
        }
        self.rapl_j = 0.0;
        self.rapl_valid = true;
        out
    }

    /// The temperatures now, for the report being cut (at most 16, CPU package and
    /// inlet first; empty where the platform exposes none).
    pub fn temperatures(&mut self) -> Vec<Temperature> {
        self.thermometers
            .as_mut()
            .map(Thermometers::read)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veille_proto::v1::Measurement;

    fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn awake(ms: u64) -> Sample {
        Sample {
            elapsed_ms: ms,
            idle_ms: ms,
            ..Default::default()
        }
    }

    #[test]
    fn rapl_and_battery_reach_the_report_and_suspend_voids_rapl() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let zone = "sys/class/powercap/intel-rapl:0";
        write(root, &format!("{zone}/name"), "package-0\n");
        write(
            root,
            &format!("{zone}/max_energy_range_uj"),
            "262143328850\n",
        );
        write(root, &format!("{zone}/energy_uj"), "1000000\n");
        let bat = "sys/class/power_supply/BAT0";
        write(root, &format!("{bat}/type"), "Battery\n");
        write(root, &format!("{bat}/status"), "Discharging\n");
        write(root, &format!("{bat}/power_now"), "10000000\n");
        let host = Host::at(root);
        let mut m = Measurements::discover(&host);
        m.tick(&awake(10_000));
        write(root, &format!("{zone}/energy_uj"), "6000000\n");
        m.tick(&awake(10_000));
        let first = m.take_for_report();
        // The first report has no battery figure: its first span has no start sample,
        // so it is not known to be all on battery.
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].source, EnergySource::Rapl as i32);
        assert!((first[0].energy_j - 5.0).abs() < 1e-9);
        m.tick(&awake(10_000));
        let second = m.take_for_report();
        assert_eq!(second.len(), 2, "{second:?}");
        assert_eq!(second[0].energy_j, 0.0, "RAPL counter did not move");
        assert_eq!(second[1].source, EnergySource::BatteryDischarge as i32);
        assert!((second[1].energy_j - 100.0).abs() < 1e-6, "10 W for 10 s");

        write(root, &format!("{zone}/energy_uj"), "7000000\n");
        m.tick(&Sample {
            elapsed_ms: 60_000,
            sleep_ms: 50_000,
            idle_ms: 10_000,
            ..Default::default()
        });
        let after_sleep = m.take_for_report();
        assert!(
            after_sleep
                .iter()
                .all(|x| x.source != EnergySource::Rapl as i32),
            "no RAPL figure for a report cut by a suspend: {after_sleep:?}"
        );
    }

    fn report_with(
        m: &mut Measurements,
        builder: &mut crate::builder::Builder,
    ) -> veille_proto::v1::Report {
        let mut report = builder.cut(1, 3600).unwrap();
        report.measurements = m.take_for_report();
        report
    }

    #[test]
    fn a_servers_acpi_power_meter_puts_measured_energy_into_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // RAPL beside the meter, and other hwmon devices before it.
        let zone = "sys/class/powercap/intel-rapl:0";
        write(root, &format!("{zone}/name"), "package-0\n");
        write(
            root,
            &format!("{zone}/max_energy_range_uj"),
            "262143328850\n",
        );
        write(root, &format!("{zone}/energy_uj"), "0\n");
        write(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
        write(root, "sys/class/hwmon/hwmon0/temp1_input", "45000\n");
        let meter = "sys/class/hwmon/hwmon1";
        write(root, &format!("{meter}/name"), "power_meter\n");
        write(root, &format!("{meter}/power1_average"), "200000000\n");
        write(root, &format!("{meter}/power1_average_interval"), "10000\n");
        let mut m = Measurements::discover(&Host::at(root));
        assert_eq!(
            m.meter().as_deref(),
            Some(
                "ACPI power meter /sys/class/hwmon/hwmon1/power1_average (averaged over 10000 ms)"
            )
        );
        let now = 1_700_000_000_000;
        let mut builder = crate::builder::Builder::new(
            crate::builder::BootSession {
                boot_id: "b".into(),
                boot_time_unix_s: now / 1000 - 3600,
            },
            now - 30_000,
        );
        // 200 W, then 250 W, then 180 W, over three 10 s ticks: 6.3 kJ.
        for watts_uw in ["200000000", "250000000", "180000000"] {
            write(root, &format!("{meter}/power1_average"), watts_uw);
            builder.add(&awake(10_000));
            m.tick(&awake(10_000));
        }
        write(root, &format!("{zone}/energy_uj"), "900000000\n");
        m.tick(&awake(0));
        let report = report_with(&mut m, &mut builder);
        assert_eq!(
            report.measurements,
            vec![
                Measurement {
                    energy_j: 900.0,
                    source: EnergySource::Rapl as i32,
                },
                Measurement {
                    energy_j: 6_300.0,
                    source: EnergySource::AcpiPowerMeter as i32,
                },
            ]
        );
        veille_proto::validate::validate_report("report", &report, now).unwrap();

        // The reading disappears mid-report: that report stays modelled, whole; the
        // next one, all read, is measured again.
        builder.add(&awake(10_000));
        m.tick(&awake(10_000));
        std::fs::remove_file(root.join(meter).join("power1_average")).unwrap();
        builder.add(&awake(10_000));
        m.tick(&awake(10_000));
        let partial = report_with(&mut m, &mut builder);
        assert!(
            partial
                .measurements
                .iter()
                .all(|x| x.source != EnergySource::AcpiPowerMeter as i32),
            "{partial:?}"
        );
        write(root, &format!("{meter}/power1_average"), "100000000\n");
        builder.add(&awake(10_000));
        m.tick(&awake(10_000));
        let back = report_with(&mut m, &mut builder);
        assert_eq!(
            back.measurements.last(),
            Some(&Measurement {
                energy_j: 1_000.0,
                source: EnergySource::AcpiPowerMeter as i32,
            })
        );
    }

    #[test]
    fn without_an_acpi_meter_ipmi_dcmi_is_the_source_and_a_suspend_voids_it() {
        use crate::probes::ipmi_dcmi::{FakeDcmiTool, IpmiDcmiMeter};
        let reading = |w: u32| {
            Ok(format!(
                "    Instantaneous power reading:  {w} Watts\n    Power reading state is:   activated\n"
            ))
        };
        let fake = FakeDcmiTool::new([reading(300), reading(300), reading(320)]);
        let calls = fake.calls();
        let meter = IpmiDcmiMeter::with_tool(fake).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut m = Measurements::with_meter(&Host::at(dir.path()), Some(Box::new(meter)));
        m.tick(&awake(10_000));
        m.tick(&awake(5_000));
        assert_eq!(
            m.take_for_report(),
            vec![Measurement {
                energy_j: 300.0 * 10.0 + 320.0 * 5.0,
                source: EnergySource::IpmiDcmi as i32,
            }]
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        m.tick(&Sample {
            elapsed_ms: 60_000,
            sleep_ms: 50_000,
            idle_ms: 10_000,
            ..Default::default()
        });
        assert!(m.take_for_report().is_empty(), "a suspend voids the report");
    }

    #[test]
    fn a_machine_without_meters_reports_no_measurement() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Measurements::discover(&Host::at(dir.path()));
        m.tick(&awake(10_000));
        assert!(m.take_for_report().is_empty());
        assert!(m.temperatures().is_empty());
    }

    #[test]
    fn a_cut_report_carries_the_temperatures_read_at_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
        write(root, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
        write(root, "sys/class/hwmon/hwmon0/temp1_input", "55000\n");
        write(root, "sys/class/hwmon/hwmon1/name", "acpitz\n");
        write(root, "sys/class/hwmon/hwmon1/temp1_input", "250000\n");
        let mut m = Measurements::discover(&Host::at(root));
        let now = 1_700_000_000_000;
        let mut builder = crate::builder::Builder::new(
            crate::builder::BootSession {
                boot_id: "b".into(),
                boot_time_unix_s: now / 1000 - 3600,
            },
            now - 10_000,
        );
        builder.add(&awake(10_000));
        m.tick(&awake(10_000));
        // Read at the cut, not at the tick: a later value is the one reported.
        write(root, "sys/class/hwmon/hwmon0/temp1_input", "56500\n");
        let mut report = builder.cut(1, 3600).unwrap();
        report.measurements = m.take_for_report();
        report.temperatures = m.temperatures();
        assert_eq!(
            report.temperatures,
            vec![Temperature {
                sensor: "coretemp.package_id_0".into(),
                celsius: 56.5,
            }],
            "the 250 °C ACPI zone is left out"
        );
        veille_proto::validate::validate_report("report", &report, now).unwrap();
    }
}
