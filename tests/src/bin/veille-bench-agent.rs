//! Agent footprint: RSS and CPU seconds of `veille-agent run` over a period (default
//! 5 minutes, default sampling and report intervals) against a real collector, side by
//! side with a baseline process measured in the same run: `prometheus-node-exporter`
//! when installed (the agent a sysadmin would otherwise run), else `sleep` (the floor
//! of the measurement itself). Node exporter is scraped every 10 s over HTTP for the
//! whole period, as a Prometheus server would scrape it (an unscraped exporter does
//! almost nothing and would flatter it); the veille-agent needs no scraping, it pushes.
//!
//! It also prints the size on disk of both binaries (the agent as built, and the
//! exporter's).
//!
//! `cargo build --release --workspace --bins && target/release/veille-bench-agent --seconds 300`
//!
//! `--agent PATH` measures another build of the agent (the `agent` profile's, see the
//! workspace Cargo.toml: `cargo build --profile agent -p veille-agent` writes
//! `target/agent/veille-agent`) against this build's collector.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use veille_tests::{Collector, Proc, bin};

struct Usage {
    peak_rss_kib: u64,
    last_rss_kib: u64,
    cpu_s: f64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `VmHWM` (the kernel's own peak, between the 1 s samples too), `RssAnon` (heap and
/// stacks) and `RssFile` (the binary's and libraries' pages) from /proc/<pid>/status,
/// KiB: where the RSS goes.
fn memory_kib(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("RssAnon:")?, field("RssFile:")?))
}

fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// How often a Prometheus server scrapes an exporter (its common `scrape_interval`).
const SCRAPE_EVERY: Duration = Duration::from_secs(10);

/// One `GET /metrics` over plain HTTP/1.0; the body's size in bytes.
fn scrape(addr: &str) -> Option<usize> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body);
    text.starts_with("HTTP/1.")
        .then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.len()))
        .flatten()
}

fn watch(pids: &[u32], seconds: u64, scrape_addr: Option<&str>) -> (Vec<Usage>, usize, usize) {
    let (mut scrapes, mut scraped_bytes) = (0usize, 0usize);
    let mut next_scrape = Instant::now();
    let mut usage: Vec<Usage> = pids
        .iter()
        .map(|_| Usage {
            peak_rss_kib: 0,
            last_rss_kib: 0,
            cpu_s: 0.0,
        })
        .collect();
    let start = Instant::now();
    let mut next_print = 60;
    while start.elapsed() < Duration::from_secs(seconds) {
        if let Some(addr) = scrape_addr
            && Instant::now() >= next_scrape
        {
            next_scrape += SCRAPE_EVERY;
            if let Some(n) = scrape(addr) {
                scrapes += 1;
                scraped_bytes = n;
            }
        }
        for (u, pid) in usage.iter_mut().zip(pids) {
            if let Some(r) = rss_kib(*pid) {
                u.peak_rss_kib = u.peak_rss_kib.max(r);
                u.last_rss_kib = r;
            }
        }
        if start.elapsed().as_secs() >= next_print {
            eprintln!("… {} s of {seconds}", start.elapsed().as_secs());
            next_print += 60;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for (u, pid) in usage.iter_mut().zip(pids) {
        u.cpu_s = cpu_s(*pid).unwrap_or(f64::NAN);
    }
    (usage, scrapes, scraped_bytes)
}

/// The value after `--name` on the command line.
fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn size_kib(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len() / 1024)
}

fn main() {
    let seconds = arg("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    let agent_bin = arg("--agent").map_or_else(|| bin("veille-agent"), Into::into);
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let mut cmd = Command::new(&agent_bin);
    cmd.arg("run")
        .arg("--state-dir")
        .arg(state.path())
        .arg("--collector")
        .arg(collector.url())
        .arg("--token")
        .arg(collector.token());
    let mut agent = Proc::spawn("agent", cmd);
    agent.wait_for_line("agent started");

    let exporter_addr = format!("127.0.0.1:{}", veille_tests::free_port());
    let exporter = which("prometheus-node-exporter");
    let (baseline_name, mut baseline, scrape_addr) = match exporter.clone() {
        Some(p) => (
            "prometheus-node-exporter",
            Command::new(p)
                .arg(format!("--web.listen-address={exporter_addr}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start node exporter"),
            Some(exporter_addr.as_str()),
        ),
        None => (
            "sleep (measurement floor)",
            Command::new("sleep")
                .arg((seconds + 30).to_string())
                .spawn()
                .expect("start sleep"),
            None,
        ),
    };
    eprintln!("measuring for {seconds} s…");
    let (usage, scrapes, scraped_bytes) =
        watch(&[agent.child.id(), baseline.id()], seconds, scrape_addr);
    let _ = baseline.kill();
    let _ = baseline.wait();
    println!("veille-agent footprint over {seconds} s (sample every 10 s, report every 60 s)");
    println!(
        "{:<32} {:>14} {:>14} {:>12}",
        "process", "peak RSS KiB", "last RSS KiB", "CPU s"
    );
    for (name, u) in [("veille-agent run", &usage[0]), (baseline_name, &usage[1])] {
        println!(
            "{:<32} {:>14} {:>14} {:>12.2}",
            name, u.peak_rss_kib, u.last_rss_kib, u.cpu_s
        );
    }
    if scrape_addr.is_some() {
        println!(
            "{baseline_name} scraped {scrapes} times (every {} s, last /metrics {scraped_bytes} bytes)",
            SCRAPE_EVERY.as_secs()
        );
    }
    if usage[1].peak_rss_kib > 0 {
        let cpu_ratio = if usage[1].cpu_s >= 0.05 {
            format!("{:.2}", usage[0].cpu_s / usage[1].cpu_s)
        } else {
            "n/a (baseline CPU below the clock-tick resolution)".to_owned()
        };
        println!(
            "ratio agent/baseline: RSS {:.2}, CPU {cpu_ratio}",
            usage[0].peak_rss_kib as f64 / usage[1].peak_rss_kib as f64,
        );
    }
    println!(
        "binary size: veille-agent {} KiB ({}), prometheus-node-exporter {}",
        size_kib(&agent_bin).unwrap_or(0),
        agent_bin.display(),
        exporter
            .as_deref()
            .and_then(size_kib)
            .map_or("not installed".to_owned(), |k| format!("{k} KiB")),
    );
    if let Some((hwm, anon, file)) = memory_kib(agent.child.id()) {
        println!(
            "veille-agent at the end: VmHWM {hwm} KiB, RssAnon {anon} KiB, RssFile {file} KiB"
        );
    }
    let stopped = agent.stop();
    println!("agent exit code after SIGTERM: {stopped:?}");
    drop(collector);
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| Path::new(p).is_file())
    })
}
