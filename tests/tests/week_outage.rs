//! A 7-day collector outage, replayed with a fake clock: the agent runs in-process on a
//! paused tokio clock (its `Clocks` follow it), reporting every 60 s to a collector that
//! is not there, so its spool fills with a week of reports in seconds. Then the real
//! collector starts and the real agent binary resumes from that state directory: the
//! 10,080 spooled reports must all be stored, in order (acks only ever rise), with the
//! seqs contiguous and nothing invented.
//!
//! The agent binary has no fast-forward knob of its own; this test drives its library
//! (`veille_agent::run::run`) with an injected clock, the same code the binary runs.

use std::sync::Arc;
use std::time::Duration;

use veille_agent::config::AgentConfig;
use veille_agent::probes::{Clocks, Host};
use veille_agent::run::ActivitySource;
use veille_proto::settings::set_flag;
use veille_tests::{Agent, Collector, free_port, spooled, stored_reports, wait_until};

const WEEK_S: u64 = 7 * 86_400;
const REPORT_S: u64 = 60;

/// Wall, boot and monotonic time all advance with tokio's clock (paused: virtual).
struct TokioClocks {
    wall0_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClocks {
    fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

impl Clocks for TokioClocks {
    fn wall_unix_ms(&self) -> i64 {
        self.wall0_ms + self.elapsed_ms() as i64
    }
    fn boottime_ms(&self) -> u64 {
        3_600_000 + self.elapsed_ms()
    }
    fn monotonic_ms(&self) -> u64 {
        3_600_000 + self.elapsed_ms()
    }
}

/// A host tree whose boot (`btime`, boot id) lies before the simulated week: the real
/// machine booted hours ago, and a report may not start before its boot.
fn host_booted_at(root: &std::path::Path, btime_s: i64) -> Host {
    let write = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let stat: Vec<String> = stat
        .lines()
        .map(|l| {
            if l.starts_with("btime ") {
                format!("btime {btime_s}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    write("proc/stat", &(stat.join("\n") + "\n"));
    write(
        "proc/sys/kernel/random/boot_id",
        "0e0e0e0e-1111-4222-8333-444444444444\n",
    );
    for rel in [
        "proc/cpuinfo",
        "proc/meminfo",
        "proc/sys/kernel/hostname",
        "proc/sys/kernel/osrelease",
        "etc/os-release",
    ] {
        if let Ok(text) = std::fs::read_to_string(format!("/{rel}")) {
            write(rel, &text);
        }
    }
    Host::at(root)
}

#[test]
fn a_week_long_outage_drains_in_order() {
    let state = tempfile::tempdir().unwrap();
    let device = "week-dev";
    let week_ago_ms = veille_tests::now_unix_ms() - (WEEK_S as i64 + 3_600) * 1000;

    // The outage: nothing listens on this port for the whole simulated week.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut flags = toml::Table::new();
    set_flag(&mut flags, "collector", dead);
    set_flag(&mut flags, "token", "t".repeat(32));
    set_flag(&mut flags, "device_id", device);
    set_flag(&mut flags, "state_dir", state.path().display().to_string());
    set_flag(&mut flags, "report_interval_s", REPORT_S as i64);
    set_flag(&mut flags, "sample_interval_s", REPORT_S as i64);
    let (config, _) = AgentConfig::load(None, std::iter::empty(), flags).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let fake_root = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let clocks = Arc::new(TokioClocks {
            wall0_ms: week_ago_ms,
            start: tokio::time::Instant::now(),
        });
        veille_agent::run::run(
            config,
            host_booted_at(fake_root.path(), week_ago_ms / 1000 - 3_600),
            clocks,
            ActivitySource::None,
            // A few seconds past the week, so that the week's last report is written.
            tokio::time::sleep(Duration::from_secs(WEEK_S + 5)),
        )
        .await
        .unwrap();
    });
    let spooled_reports = spooled(state.path());
    eprintln!(
        "a simulated week in {:?}: {spooled_reports} spool files",
        started.elapsed()
    );
    assert!(
        spooled_reports >= 1,
        "the week is in the spool: {spooled_reports}"
    );

    // The collector comes back; the real agent picks up the spool.
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let mut agent = Agent::start_with(
        "agent",
        state.path(),
        &collector.url(),
        &collector.token(),
        Some(device),
        &[],
    );
    wait_until("the week's spool to drain", || agent.spooled() == 0);
    assert_eq!(agent.proc.stop(), Some(0));
    let last_seq = agent.state()["last_seq"].as_u64().unwrap();
    drop(collector);

    let reports = stored_reports(data.path(), device);
    let seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..=last_seq).collect::<Vec<_>>(),
        "stored seqs are exactly {first}..={last_seq}"
    );
    // The week: one report per simulated minute, with the fake clock's times.
    let week: Vec<_> = reports
        .iter()
        .filter(|r| r.end_unix_ms <= week_ago_ms + (WEEK_S as i64 + 5) * 1000)
        .collect();
    assert!(
        week.len() as u64 >= WEEK_S / REPORT_S,
        "{} reports from the simulated week, want {}",
        week.len(),
        WEEK_S / REPORT_S
    );
    assert!(week[0].start_unix_ms >= week_ago_ms);
    for pair in reports.windows(2) {
        assert!(
            pair[1].start_unix_ms >= pair[0].end_unix_ms,
            "seq {} overlaps seq {}",
            pair[1].seq,
            pair[0].seq
        );
    }
    // Delivered in order: each ack's highest durable seq is at least the previous one.
    let acks: Vec<u64> = agent
        .proc
        .log()
        .iter()
        .filter(|l| l.contains("batch acknowledged"))
        .filter_map(|l| veille_tests::field(l, "highest_durable_seq")?.parse().ok())
        .collect();
    assert!(acks.len() >= 2, "{acks:?}");
    assert!(
        acks.windows(2).all(|w| w[0] <= w[1]),
        "acks went down: {acks:?}"
    );
}
