//! Harness for the end-to-end tests: starts the real `veille-collector` and
//! `veille-agent` binaries on ephemeral ports, reads their bound addresses from their
//! log lines, and talks to them as a user or an agent would.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which the
//! README's test command does); the harness finds them next to the test executable.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod browser;
pub mod fleet;
pub mod grpc;
pub mod mosquitto;
pub mod savings_fleet;
pub mod windows;

/// Generous deadline for anything the tests wait for: a loaded 2-core CI machine is
/// slow, and a deadline only bounds how long a failing test takes.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Path of a workspace binary (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Tests live in target/<profile>/deps/, the bench binaries in target/<profile>/.
    let mut dir = exe.parent().expect("executable has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps has a parent");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A child process whose stderr is captured line by line (and echoed for the test log).
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Set by the reader thread once stderr is closed: every line is in `lines`.
    stderr_closed: Arc<std::sync::atomic::AtomicBool>,
    name: String,
    /// Started as the leader of its own process group ([`Proc::spawn_group`]): dropping
    /// it kills the whole group.
    group: bool,
}

impl Proc {
    /// [`Proc::spawn`] as the leader of a new process group, which dropping the `Proc`
    /// kills whole: chromedriver's Chromium processes would outlive it otherwise, and
    /// a test that panics between its steps never reaches its own clean-up.
    pub fn spawn_group(name: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut proc = Proc::spawn(name, cmd);
        proc.group = true;
        proc
    }

    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env(
                "VEILLE_LOG",
                "info,veille_agent=debug,veille_collector=debug",
            )
            .env("NO_COLOR", "1");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sink = lines.clone();
        let closed = stderr_closed.clone();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                sink.lock().unwrap().push(line);
            }
            closed.store(true, std::sync::atomic::Ordering::Release);
        });
        Proc {
            child,
            lines,
            stderr_closed,
            name: name.to_owned(),
            group: false,
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // The process is gone; its last lines may still be in the pipe. Wait
                // until the reader has read to the end (not a guessed delay: issue 23).
                while !self
                    .stderr_closed
                    .load(std::sync::atomic::Ordering::Acquire)
                {
                    assert!(
                        start.elapsed() < DEADLINE,
                        "{}'s stderr stayed open after it exited (a child holding it?)",
                        self.name
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                    return l;
                }
                panic!("{} exited ({status}) before logging {needle:?}", self.name);
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{} never logged {needle:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILL, as a crash or a power cut would.
    pub fn kill_hard(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if start.elapsed() > DEADLINE {
                self.kill_hard();
                panic!("{} did not stop within {DEADLINE:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory
            // is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Value of `key=VALUE` in a log line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

/// A running collector.
pub struct Collector {
    pub proc: Proc,
    pub data_dir: PathBuf,
    pub grpc: String,
    pub http: String,
    /// What the listening line says after `mqtt=`: the embedded broker's MQTT 3.1.1
    /// address, or the external broker's URL.
    pub mqtt: String,
    /// The embedded broker's MQTT 5 address (empty with an external broker).
    pub mqtt5: String,
    /// Whether the collector runs with TLS (`[tls]`): its listening line then shows
    /// `https://` and `mqtts://` URLs; the fields above hold the bare addresses.
    pub tls: bool,
}

/// `https://127.0.0.1:1` → (`127.0.0.1:1`, true); a bare address → (itself, false).
/// `mqtts://` is stripped too.
/// The listening line shows URLs with TLS on and bare addresses without.
pub fn strip_scheme(shown: &str) -> (String, bool) {
    for tls_scheme in ["https://", "mqtts://"] {
        if let Some(addr) = shown.strip_prefix(tls_scheme) {
            return (addr.to_owned(), true);
        }
    }
    // An external broker's `mqtt://host:port` label is kept as it is.
    (
        shown.strip_prefix("http://").unwrap_or(shown).to_owned(),
        false,
    )
}

impl Collector {
    /// Starts `veille-collector serve` with its data in `data_dir`, gRPC on `grpc_listen`
    /// (use `127.0.0.1:0` for an ephemeral port).
    pub fn start(data_dir: &Path, grpc_listen: &str) -> Collector {
        Self::start_with("collector", data_dir, grpc_listen, None, &[])
    }

    /// [`Collector::start`] with a config file and `VEILLE_*` variables. The embedded
    /// MQTT broker, if any, takes free ports.
    pub fn start_with(
        name: &str,
        data_dir: &Path,
        grpc_listen: &str,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Collector {
        Self::start_on(name, data_dir, grpc_listen, "127.0.0.1:0", config, env)
    }

    /// [`Collector::start_with`] with the embedded broker's MQTT 3.1.1 listener on
    /// `mqtt_listen` (a fixed port lets MQTT agents find a restarted collector; set
    /// `VEILLE_MQTT__LISTEN_V5` in `env` to fix the MQTT 5 one too).
    pub fn start_on(
        name: &str,
        data_dir: &Path,
        grpc_listen: &str,
        mqtt_listen: &str,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Collector {
        let mut cmd = Command::new(bin("veille-collector"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--grpc-listen")
            .arg(grpc_listen)
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .arg("--mqtt-listen")
            .arg(mqtt_listen);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.envs(env.iter().copied());
        let mut proc = Proc::spawn(name, cmd);
        let line = proc.wait_for_line("listening grpc=");
        let (grpc, tls) =
            strip_scheme(&field(&line, "grpc").expect("grpc address in the listening line"));
        let (http, _) =
            strip_scheme(&field(&line, "http").expect("http address in the listening line"));
        let (mqtt, _) = strip_scheme(&field(&line, "mqtt").unwrap_or_default());
        let (mqtt5, _) = strip_scheme(&field(&line, "mqtt5").unwrap_or_default());
        Collector {
            proc,
            data_dir: data_dir.to_owned(),
            grpc,
            http,
            mqtt,
            mqtt5,
            tls,
        }
    }

    /// The gRPC URL agents take: `http://…`, or `https://…` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.grpc)
    }

    /// The token of the default organisation created at first start.
    pub fn token(&self) -> String {
        token(&self.data_dir)
    }
}

pub fn token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("default-org.token"))
        .expect("default-org.token in the data dir")
        .trim()
        .to_owned()
}

/// Runs `veille-collector devices --format json` and parses its output.
pub fn devices_json(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(bin("veille-collector"))
        .arg("devices")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--format")
        .arg("json")
        .output()
        .expect("run veille-collector devices");
    assert!(
        out.status.success(),
        "devices failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "devices --format json printed invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A running agent.
pub struct Agent {
    pub proc: Proc,
    pub state_dir: PathBuf,
}

impl Agent {
    /// Starts `veille-agent run` sampling and reporting every second. `device_id`
    /// overrides the probed id so that several agents can run on one machine.
    pub fn start(
        name: &str,
        state_dir: &Path,
        collector_url: &str,
        token: &str,
        device_id: Option<&str>,
    ) -> Agent {
        Self::start_with(name, state_dir, collector_url, token, device_id, &[])
    }

    /// [`Agent::start`] over MQTT: `url` is `mqtt://host:port`, `version` 5 or 4. The
    /// ack timeout is short so that resends happen within a test's time.
    pub fn start_mqtt(
        name: &str,
        state_dir: &Path,
        url: &str,
        org: &str,
        token: &str,
        device_id: &str,
        version: u8,
    ) -> Agent {
        let version = version.to_string();
        Self::start_with(
            name,
            state_dir,
            url,
            token,
            Some(device_id),
            &[
                ("VEILLE_TRANSPORT", "mqtt"),
                ("VEILLE_ORG", org),
                ("VEILLE_MQTT__VERSION", &version),
                ("VEILLE_MQTT__ACK_TIMEOUT_S", "3"),
            ],
        )
    }

    /// [`Agent::start`] with extra `VEILLE_*` variables.
    pub fn start_with(
        name: &str,
        state_dir: &Path,
        collector_url: &str,
        token: &str,
        device_id: Option<&str>,
        env: &[(&str, &str)],
    ) -> Agent {
        let mut cmd = Command::new(bin("veille-agent"));
        cmd.arg("run")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--collector")
            .arg(collector_url)
            .arg("--token")
            .arg(token)
            .arg("--sample-interval-s")
            .arg("1")
            .arg("--report-interval-s")
            .arg("1")
            // Short backoff so a restarted collector is found again quickly.
            .env("VEILLE_BACKOFF__INITIAL_MS", "100")
            .env("VEILLE_BACKOFF__MAX_MS", "1000");
        if let Some(id) = device_id {
            cmd.env("VEILLE_DEVICE_ID", id);
        }
        cmd.envs(env.iter().copied());
        let mut proc = Proc::spawn(name, cmd);
        proc.wait_for_line("agent started");
        Agent {
            proc,
            state_dir: state_dir.to_owned(),
        }
    }

    /// Files waiting in the spool.
    pub fn spooled(&self) -> usize {
        spooled(&self.state_dir)
    }

    /// The agent's persisted state; `Null` before the agent first wrote it (it logs
    /// "agent started" a moment before).
    pub fn state(&self) -> serde_json::Value {
        match std::fs::read(self.state_dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).expect("state.json is JSON"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(e) => panic!("cannot read state.json: {e}"),
        }
    }
}

pub fn spooled(state_dir: &Path) -> usize {
    std::fs::read_dir(state_dir.join("spool"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pb"))
                .count()
        })
        .unwrap_or(0)
}

/// Polls `cond` every 100 ms until it holds or [`DEADLINE`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A DMI field of this machine (`/sys/class/dmi/id/<name>`), trimmed; `None` where
/// the host has none (containers, many VMs) or it is empty.
pub fn host_dmi(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/dmi/id/{name}"))
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The class this machine's SMBIOS chassis type gives (DMTF DSP0134, 7.4.1, "System
/// Enclosure or Chassis Types"), as the reports name it; `None` when the host has no
/// chassis type or one with no class. Tests that run the real agent on this machine
/// compare with it instead of assuming a host without DMI.
pub fn host_chassis_class() -> Option<&'static str> {
    let code: u8 = host_dmi("chassis_type")?.parse().ok()?;
    Some(match code {
        // Desktop, Low Profile Desktop, Pizza Box, Mini Tower, Tower, Space-saving,
        // Lunch Box, Sealed-case PC.
        3..=7 | 15 | 16 | 24 => "desktop",
        // Portable, Laptop, Notebook, Sub Notebook, Convertible, Detachable.
        8..=10 | 14 | 31 | 32 => "laptop",
        13 => "all_in_one",
        // Main Server Chassis, Rack Mount Chassis, Blade, Blade Enclosure.
        17 | 23 | 28 | 29 => "server",
        30 => "tablet",
        // Mini PC, Stick PC.
        35 | 36 => "mini_pc",
        _ => return None,
    })
}

/// The device id the agent will use on this machine, read the way the agent reads it.
pub fn this_device_id() -> String {
    let uuid = std::fs::read_to_string("/sys/class/dmi/id/product_uuid").ok();
    uuid.map(|u| u.trim().to_lowercase())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/etc/machine-id")
                .expect("/etc/machine-id")
                .trim()
                .to_owned()
        })
}

pub fn this_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot_id")
        .trim()
        .to_owned()
}

/// The date `offset_days` from today in the collector's default zone (`[energy]
/// timezone` of `deploy/collector.toml`), as `YYYY-MM-DD`: a report's `--from` and
/// `--to` are days of that zone. A test that named the UTC date asked, between
/// midnight in Paris and midnight UTC, for the day before the one its reports fell in
/// (CI runs at any hour).
pub fn collector_day(offset_days: i64) -> String {
    let zone = veille_domain::energy::consumption::EnergyConfig::default().timezone;
    let tz = jiff::tz::TimeZone::get(&zone).unwrap();
    jiff::Timestamp::now()
        .to_zoned(tz)
        .date()
        .checked_add(jiff::Span::new().days(offset_days))
        .unwrap()
        .to_string()
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every stored report of `device_id` (any org), in seq order, read from the store in
/// `data_dir` (running collector or not: the store takes a second process).
pub fn stored_reports(data_dir: &Path, device_id: &str) -> Vec<veille_proto::v1::Report> {
    use veille_collector::store::Store;
    let dir = data_dir.join(veille_collector::store::STORE_DIR);
    // A collector still creating the store may hold its write lock for a moment.
    let start = Instant::now();
    let store = loop {
        match Store::open(&dir) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                eprintln!("store not ready yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot open the store in {}: {e}", dir.display()),
        }
    };
    let orgs: Vec<String> = store
        .devices(None)
        .expect("devices")
        .into_iter()
        .filter(|d| d.device_id == device_id)
        .map(|d| d.org)
        .collect();
    assert_eq!(orgs.len(), 1, "{device_id} should be stored under one org");
    store
        .reports(&orgs[0], device_id, 0..=u64::MAX)
        .expect("reports")
}

/// A free TCP port on 127.0.0.1 (bound then released: for peers that cannot bind port 0
/// and report it, like Mosquitto).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Seqs of `device_id` stored under `org` in a stopped collector's store (empty when it
/// has none), in order.
pub fn stored_seqs(data_dir: &Path, org: &str, device_id: &str) -> Vec<u64> {
    use veille_collector::store::Store;
    let dir = data_dir.join(veille_collector::store::STORE_DIR);
    let start = Instant::now();
    let store = loop {
        match Store::open(&dir) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                eprintln!("store not ready yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot open the store in {}: {e}", dir.display()),
        }
    };
    store
        .reports(org, device_id, 0..=u64::MAX)
        .expect("reports")
        .iter()
        .map(|r| r.seq)
        .collect()
}

/// `veille-collector init-tls --data-dir DATA_DIR` with `args`; returns `<data_dir>/tls`.
pub fn init_tls(data_dir: &Path, args: &[&str]) -> PathBuf {
    let out = Command::new(bin("veille-collector"))
        .arg("init-tls")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run veille-collector init-tls");
    assert!(
        out.status.success(),
        "init-tls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    data_dir.join("tls")
}

/// `GET path` over HTTPS on `addr`, trusting only the CA in `ca_pem` (a real rustls
/// client, as a browser or `curl --cacert` would). Returns (status line, body), or the
/// TLS/IO error as text.
pub fn https_get(addr: &str, ca_pem: &Path, path: &str) -> Result<(String, String), String> {
    let (head, body) = https_request(addr, ca_pem, "GET", path, None)?;
    Ok((head.lines().next().unwrap_or_default().to_owned(), body))
}

/// One HTTPS request (`form`: an `application/x-www-form-urlencoded` body), trusting only
/// the CA in `ca_pem`. Returns (response head with every header, body).
pub fn https_request(
    addr: &str,
    ca_pem: &Path,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> Result<(String, String), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca_pem).map_err(|e| e.to_string())? {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned();
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let body = match form {
            Some(f) => format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{f}",
                f.len()
            ),
            None => "\r\n".to_owned(),
        };
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{body}");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        if let Err(e) = tls.read_to_end(&mut raw).await
            && raw.is_empty()
        {
            return Err(e.to_string());
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        Ok((head.to_owned(), body.to_owned()))
    })
}
