//! Agent footprint: RSS and CPU seconds of `veille-agent run` over a period (default
//! 5 minutes, default sampling and report intervals) against a real collector, side by
//! side with a baseline process measured in the same run: `prometheus-node-exporter`
//! when installed (the agent a sysadmin would otherwise run), else `sleep` (the floor
//! of the measurement itself).
//!
//! `cargo build --release --workspace --bins && target/release/veille-bench-agent --seconds 300`

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

fn watch(pids: &[u32], seconds: u64) -> Vec<Usage> {
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
    usage
}

fn main() {
    let seconds = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    let mut cmd = Command::new(bin("veille-agent"));
    cmd.arg("run")
        .arg("--state-dir")
        .arg(state.path())
        .arg("--collector")
        .arg(collector.url())
        .arg("--token")
        .arg(collector.token());
    let mut agent = Proc::spawn("agent", cmd);
    agent.wait_for_line("agent started");

    let (baseline_name, mut baseline) = match which("prometheus-node-exporter") {
        Some(p) => (
            "prometheus-node-exporter",
            Command::new(p)
                .arg("--web.listen-address=127.0.0.1:0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start node exporter"),
        ),
        None => (
            "sleep (measurement floor)",
            Command::new("sleep")
                .arg((seconds + 30).to_string())
                .spawn()
                .expect("start sleep"),
        ),
    };
    eprintln!("measuring for {seconds} s…");
    let usage = watch(&[agent.child.id(), baseline.id()], seconds);
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
