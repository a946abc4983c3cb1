//! Whole-system power from the BMC through IPMI DCMI, for the `IPMI_DCMI` measurement
//! of servers without an ACPI power meter.
//!
//! The BMC measures the machine's input power at its power supplies; DCMI's "Get Power
//! Reading" gives it. The agent asks through `ipmitool dcmi power reading` rather than
//! speaking IPMI to the kernel device itself: ipmitool is the tool admins already
//! trust on these machines, and its output is stable. The command is a side effect
//! (a process, a request to the BMC), so it sits behind [`DcmiTool`]: [`Ipmitool`]
//! runs it, [`FakeDcmiTool`] replays captured outputs and records the calls.
//!
//! ipmitool prints (`ipmi_dcmi.c`):
//!
//! ```text
//!     Instantaneous power reading:                   220 Watts
//!     Minimum during sampling period:                 20 Watts
//!     Maximum during sampling period:                600 Watts
//!     Average power reading over sample period:      230 Watts
//!     IPMI timestamp:                           Thu Jan  1 00:00:00 1970
//!     Sampling period:                          00000005 Seconds.
//!     Power reading state is:                   activated
//! ```
//!
//! The average is used when its sampling period fits in the tick (a mean over part of
//! the tick beats one instant); the instantaneous reading otherwise (a window longer
//! than the tick would smear earlier ticks into this one). A "deactivated" power
//! reading state means the BMC is not measuring: its figures are not readings.
//!
//! # Platform-specific behaviour
//!
//! Linux: needs the kernel's IPMI device (`/dev/ipmi0`, `/dev/ipmi/0` or
//! `/dev/ipmidev/0`, from `ipmi_devintf`) and `ipmitool` on `PATH`; without either the
//! meter is not available, said once at start, and never retried. Each reading starts
//! one ipmitool process, bounded by [`IPMITOOL_TIMEOUT`]: the sampler waits for it, and
//! a BMC that does not answer costs that tick its reading, nothing more. Other
//! platforms have no such device: discovery finds nothing.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Host;
use super::power_meter::{MAX_PLAUSIBLE_W, MeterError, WholeSystemMeter};
use veille_proto::v1::EnergySource;

/// The kernel's IPMI character devices, relative to the host root (the names differ
/// by distribution and udev rules).
pub const IPMI_DEVICES: [&str; 3] = ["dev/ipmi0", "dev/ipmi/0", "dev/ipmidev/0"];

/// The tool's name on `PATH`.
const IPMITOOL: &str = "ipmitool";

/// Longest wait for one reading. A local BMC answers in well under a second; a busy
/// one may take a few. The sampler waits this long at most, once per tick.
pub const IPMITOOL_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a running ipmitool is checked for exit while waiting.
const POLL: Duration = Duration::from_millis(20);

/// Milliseconds per second, to compare a sampling period (s) with a tick (ms).
const MS_PER_SECOND: u64 = veille_proto::units::MS_PER_SECOND as u64;

/// Why DCMI gave no reading.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IpmiError {
    #[error("no IPMI device (/dev/ipmi0, /dev/ipmi/0, /dev/ipmidev/0; is ipmi_devintf loaded?)")]
    NoDevice,
    #[error("ipmitool not on PATH")]
    NoTool,
    #[error("cannot run {program}: {reason}")]
    Spawn { program: PathBuf, reason: String },
    #[error("ipmitool gave no answer within {0:?}")]
    Timeout(Duration),
    #[error("ipmitool failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("no power reading in ipmitool's output: {0}")]
    Unparsable(String),
    #[error("the BMC's power reading is deactivated")]
    Deactivated,
}

/// Runs `ipmitool dcmi power reading` (or replays it).
pub trait DcmiTool: Send {
    /// The command's standard output, or why it gave none.
    fn power_reading(&mut self) -> Result<String, IpmiError>;
}

/// The real tool, started once per reading.
#[derive(Debug, Clone)]
pub struct Ipmitool {
    program: PathBuf,
    timeout: Duration,
}

impl Ipmitool {
    pub fn new(program: PathBuf) -> Self {
        Self {
            program,
            timeout: IPMITOOL_TIMEOUT,
        }
    }
}

impl DcmiTool for Ipmitool {
    /// `-I open`: the local kernel device, never the network.
    fn power_reading(&mut self) -> Result<String, IpmiError> {
        let spawn_error = |e: std::io::Error| IpmiError::Spawn {
            program: self.program.clone(),
            reason: e.to_string(),
        };
        let mut child = Command::new(&self.program)
            .args(["-I", "open", "dcmi", "power", "reading"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let deadline = Instant::now() + self.timeout;
        // The output is a few hundred bytes: it fits in the pipe, so waiting for the
        // exit before reading cannot deadlock.
        let status = loop {
            match child.try_wait().map_err(spawn_error)? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(IpmiError::Timeout(self.timeout));
                }
                None => std::thread::sleep(POLL),
            }
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        if !status.success() {
            return Err(IpmiError::Failed {
                status: status.to_string(),
                stderr: first_line(&stderr),
            });
        }
        Ok(stdout)
    }
}

/// Replays scripted outputs, in order (the last one again once they run out; with none
/// scripted it answers like a missing tool), and counts the calls, so tests see how
/// often the real tool would have run.
#[derive(Debug, Clone)]
pub struct FakeDcmiTool {
    outputs: VecDeque<Result<String, IpmiError>>,
    calls: Arc<AtomicUsize>,
}

impl FakeDcmiTool {
    pub fn new(outputs: impl IntoIterator<Item = Result<String, IpmiError>>) -> Self {
        Self {
            outputs: outputs.into_iter().collect(),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Shared with the clones: read it after the fake has moved into a meter.
    pub fn calls(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }
}

impl DcmiTool for FakeDcmiTool {
    fn power_reading(&mut self) -> Result<String, IpmiError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.outputs.len() {
            0 => Err(IpmiError::NoTool),
            1 => self.outputs[0].clone(),
            _ => self.outputs.pop_front().unwrap_or(Err(IpmiError::NoTool)),
        }
    }
}

/// One parsed `dcmi power reading`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DcmiReading {
    pub instantaneous_w: f64,
    /// "Average power reading over sample period", when printed.
    pub average_w: Option<f64>,
    /// "Sampling period", seconds, when printed.
    pub sampling_period_s: Option<u64>,
}

impl DcmiReading {
    /// The best figure for a tick of `span_ms`: the average if its window fits in the
    /// tick, else the instantaneous reading.
    pub fn mean_over_w(&self, span_ms: u64) -> f64 {
        match (self.average_w, self.sampling_period_s) {
            (Some(average), Some(period_s))
                if period_s > 0 && period_s.saturating_mul(MS_PER_SECOND) <= span_ms =>
            {
                average
            }
            _ => self.instantaneous_w,
        }
    }
}

/// Parses ipmitool's output (see the module documentation). A 0 W or implausible
/// instantaneous reading, a missing one, or a deactivated state is an error; a bad
/// average line only drops the average.
pub fn parse_power_reading(output: &str) -> Result<DcmiReading, IpmiError> {
    let mut instantaneous = None;
    let mut average = None;
    let mut period = None;
    for line in output.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let first_number = || value.split_whitespace().next()?.parse::<u64>().ok();
        match key.trim() {
            "Instantaneous power reading" => instantaneous = first_number(),
            "Average power reading over sample period" => average = first_number(),
            "Sampling period" => period = first_number(),
            "Power reading state is" if value == "deactivated" => {
                return Err(IpmiError::Deactivated);
            }
            _ => {}
        }
    }
    let plausible = |w: u64| Some(w as f64).filter(|w| *w > 0.0 && *w <= MAX_PLAUSIBLE_W);
    let Some(instantaneous_w) = instantaneous.and_then(plausible) else {
        return Err(IpmiError::Unparsable(first_line(output)));
    };
    Ok(DcmiReading {
        instantaneous_w,
        average_w: average.and_then(plausible),
        sampling_period_s: period,
    })
}

/// The BMC's power meter, through a [`DcmiTool`].
#[derive(Debug)]
pub struct IpmiDcmiMeter<T: DcmiTool> {
    tool: T,
    /// The first reading's sampling period, for [`WholeSystemMeter::describe`].
    sampling_period_s: Option<u64>,
}

impl<T: DcmiTool> IpmiDcmiMeter<T> {
    /// The meter, if the tool gives a reading now. One call: a BMC without DCMI power
    /// management answers an error, and is then never asked again.
    pub fn with_tool(mut tool: T) -> Result<Self, IpmiError> {
        let reading = parse_power_reading(&tool.power_reading()?)?;
        Ok(Self {
            tool,
            sampling_period_s: reading.sampling_period_s,
        })
    }
}

impl IpmiDcmiMeter<Ipmitool> {
    /// The real meter: the IPMI device under `host`, `ipmitool` on this process's
    /// `PATH`, and one good reading; or why not.
    pub fn try_discover_real(host: &Host) -> Result<Self, IpmiError> {
        if !has_ipmi_device(host) {
            return Err(IpmiError::NoDevice);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let program = find_on_path(IPMITOOL, &path).ok_or(IpmiError::NoTool)?;
        Self::with_tool(Ipmitool::new(program))
    }
}

impl<T: DcmiTool> WholeSystemMeter for IpmiDcmiMeter<T> {
    fn source(&self) -> EnergySource {
        EnergySource::IpmiDcmi
    }

    fn describe(&self) -> String {
        match self.sampling_period_s {
            Some(s) => format!("IPMI DCMI power reading (BMC sampling period {s} s)"),
            None => "IPMI DCMI power reading".to_owned(),
        }
    }

    fn read_w(&mut self, span_ms: u64) -> Result<f64, MeterError> {
        let reading = parse_power_reading(&self.tool.power_reading()?)?;
        Ok(reading.mean_over_w(span_ms))
    }
}

/// Whether one of [`IPMI_DEVICES`] exists under `host`.
pub fn has_ipmi_device(host: &Host) -> bool {
    IPMI_DEVICES.iter().any(|dev| host.path(dev).exists())
}

/// The first executable file `name` in the directories of a `PATH` value.
pub fn find_on_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    meta.is_file()
}

/// The first non-empty line, at most 120 characters, for an error message.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Dell PowerEdge-like answer: 5 s sampling window.
    const READING_5S: &str = "
    Instantaneous power reading:                   212 Watts
    Minimum during sampling period:                 98 Watts
    Maximum during sampling period:                344 Watts
    Average power reading over sample period:      230 Watts
    IPMI timestamp:                           Mon Dec  7 11:02:41 2026
    Sampling period:                          00000005 Seconds.
    Power reading state is:                   activated

";

    /// A BMC with a one-hour rolling window.
    const READING_1H: &str = "
    Instantaneous power reading:                   388 Watts
    Minimum during sampling period:                120 Watts
    Maximum during sampling period:                512 Watts
    Average power reading over sample period:      301 Watts
    IPMI timestamp:                           Mon Dec  7 11:02:41 2026
    Sampling period:                          00003600 Seconds.
    Power reading state is:                   activated

";

    /// Power management present but not enabled: zeros, deactivated.
    const DEACTIVATED: &str = "
    Instantaneous power reading:                     0 Watts
    Minimum during sampling period:                  0 Watts
    Maximum during sampling period:                  0 Watts
    Average power reading over sample period:        0 Watts
    IPMI timestamp:                           Thu Jan  1 00:00:00 1970
    Sampling period:                          00000000 Seconds.
    Power reading state is:                   deactivated

";

    /// What ipmitool prints when the BMC lacks DCMI power management. Whether it exits
    /// non-zero after it depends on the version, so the parser must refuse it too.
    const UNSUPPORTED: &str = "DCMI request failed because: Invalid command (c1)\n";

    #[test]
    fn captured_outputs_parse() {
        assert_eq!(
            parse_power_reading(READING_5S).unwrap(),
            DcmiReading {
                instantaneous_w: 212.0,
                average_w: Some(230.0),
                sampling_period_s: Some(5),
            }
        );
        assert_eq!(
            parse_power_reading(READING_1H).unwrap().sampling_period_s,
            Some(3600)
        );
        assert!(matches!(
            parse_power_reading(DEACTIVATED),
            Err(IpmiError::Deactivated)
        ));
        assert!(matches!(
            parse_power_reading(UNSUPPORTED),
            Err(IpmiError::Unparsable(line)) if line.starts_with("DCMI request failed")
        ));
        assert!(matches!(
            parse_power_reading(""),
            Err(IpmiError::Unparsable(_))
        ));
        // Only the instantaneous line: still a reading, without an average.
        let bare = "Instantaneous power reading: 123 Watts\n";
        assert_eq!(
            parse_power_reading(bare).unwrap(),
            DcmiReading {
                instantaneous_w: 123.0,
                average_w: None,
                sampling_period_s: None,
            }
        );
    }

    #[test]
    fn the_average_is_used_only_when_its_window_fits_in_the_tick() {
        let r = parse_power_reading(READING_5S).unwrap();
        assert_eq!(r.mean_over_w(10_000), 230.0);
        assert_eq!(r.mean_over_w(5_000), 230.0);
        assert_eq!(r.mean_over_w(4_999), 212.0);
        let r = parse_power_reading(READING_1H).unwrap();
        assert_eq!(r.mean_over_w(10_000), 388.0);
    }

    #[test]
    fn the_meter_reads_through_the_tool_at_each_tick() {
        let fake = FakeDcmiTool::new([
            Ok(READING_5S.to_owned()),
            Ok(READING_5S.replace("230 Watts", "240 Watts")),
            Err(IpmiError::Timeout(IPMITOOL_TIMEOUT)),
            Ok(READING_5S.to_owned()),
        ]);
        let calls = fake.calls();
        let mut meter = IpmiDcmiMeter::with_tool(fake).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call to discover");
        assert_eq!(meter.source(), EnergySource::IpmiDcmi);
        assert_eq!(
            meter.describe(),
            "IPMI DCMI power reading (BMC sampling period 5 s)"
        );
        assert_eq!(meter.read_w(10_000).unwrap(), 240.0);
        assert!(matches!(
            meter.read_w(10_000),
            Err(MeterError::Ipmi(IpmiError::Timeout(_)))
        ));
        assert_eq!(meter.read_w(10_000).unwrap(), 230.0);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_bmc_without_a_reading_is_not_available_after_one_call() {
        for answer in [
            Err(IpmiError::Failed {
                status: "exit status: 1".into(),
                stderr: first_line(UNSUPPORTED),
            }),
            Ok(DEACTIVATED.to_owned()),
        ] {
            let fake = FakeDcmiTool::new([answer]);
            let calls = fake.calls();
            assert!(IpmiDcmiMeter::with_tool(fake).is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn no_device_is_not_available_before_looking_for_the_tool() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::at(dir.path());
        assert!(!has_ipmi_device(&host));
        assert!(matches!(
            IpmiDcmiMeter::try_discover_real(&host),
            Err(IpmiError::NoDevice)
        ));
        for dev in IPMI_DEVICES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(dev);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
            assert!(has_ipmi_device(&Host::at(dir.path())), "{dev}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn ipmitool_is_found_only_as_an_executable_on_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_on_path(IPMITOOL, &path), None);
        // Not executable in a, executable in b.
        std::fs::write(a.join(IPMITOOL), "").unwrap();
        let tool = b.join(IPMITOOL);
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_on_path(IPMITOOL, &path), Some(tool));
    }

    #[test]
    #[cfg(unix)]
    fn the_real_runner_reads_a_script_standing_in_for_ipmitool() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        // The arguments ipmitool gets are checked by the stand-in.
        let ok = script(
            "ok",
            r#"[ "$*" = "-I open dcmi power reading" ] || exit 9
echo '    Instantaneous power reading:                   150 Watts'"#,
        );
        let mut tool = Ipmitool::new(ok);
        assert_eq!(
            parse_power_reading(&tool.power_reading().unwrap())
                .unwrap()
                .instantaneous_w,
            150.0
        );

        let failing = script("failing", "echo 'Could not open device' >&2; exit 1");
        match Ipmitool::new(failing).power_reading() {
            Err(IpmiError::Failed { stderr, .. }) => assert_eq!(stderr, "Could not open device"),
            other => panic!("{other:?}"),
        }

        let hanging = script("hanging", "exec sleep 30");
        let mut tool = Ipmitool::new(hanging);
        tool.timeout = Duration::from_millis(200);
        let started = Instant::now();
        assert!(matches!(tool.power_reading(), Err(IpmiError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(5));

        let missing = Ipmitool::new(dir.path().join("absent")).power_reading();
        assert!(matches!(missing, Err(IpmiError::Spawn { .. })));
    }
}
