//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` and `postgres`
//! from Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`, or the
//! directory in `VEILLE_TEST_PG_BIN`), on a free port of 127.0.0.1, in a directory of
//! its own under the system temp dir (`/tmp` as root). Never the system service.
//!
//! Compiled into the library (not `#[cfg(test)]`) so that the collector's integration
//! tests and the ingest benchmark start clusters the same way as the unit tests.
//!
//! The server runs under a small `sh` watchdog whose standard input is a pipe from
//! this process: when this process ends — normally, by a panic, or SIGKILLed — the pipe
//! closes, the watchdog stops the server at once (SIGQUIT: immediate shutdown) and
//! removes the directory. A cluster kept in a `static` (which Rust never drops) is
//! therefore cleaned up too, and no test run leaves a server behind.
//!
//! When this process runs as root (CI, the development machines), `initdb` and the
//! server run as the `postgres` user, which Debian's package creates: PostgreSQL
//! refuses to run as root.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a starting server may take to accept connections (a loaded 2-core CI
/// machine replays WAL slowly after an immediate stop).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Enough for the suite's parallel tests: each store holds a writer and a few readers.
const MAX_CONNECTIONS: u32 = 200;

/// The watchdog: starts the server, waits for a line (or EOF) on stdin, stops the
/// server; removes the directory unless the line was `keep` (a restart follows).
/// Arguments: $0 postgres binary, $1 data dir, $2 port, $3 cluster dir (socket, log),
/// $4 max_connections.
const WATCHDOG: &str = r#"
"$0" -D "$1" -p "$2" -k "$3" -h 127.0.0.1 -c fsync=on -c max_connections="$4" \
  -c shared_buffers=32MB >>"$3/log" 2>&1 &
pid=$!
read cmd
kill -QUIT "$pid"
wait "$pid"
[ "$cmd" = keep ] || rm -rf "$3"
"#;

/// One cluster; stopped (and its directory removed) on drop.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Mutex<Option<Child>>,
    databases: AtomicU32,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The one cluster of this test process, started on first use. Panics with what to
/// install when PostgreSQL is missing: a skipped engine would hide its failures.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        Cluster::start().unwrap_or_else(|e| {
            panic!("cannot start a test PostgreSQL cluster: {e} (apt-get install postgresql)")
        })
    })
}

/// A URL to a new, empty database on the [`shared`] cluster.
pub fn fresh_database() -> String {
    shared()
        .create_database()
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"))
}

fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("VEILLE_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/initdb".to_owned())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Cluster {
    /// `initdb` then start, in a new directory.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin()?;
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        static N: AtomicU32 = AtomicU32::new(0);
        // As root, /tmp: the `postgres` user must be able to reach the directory, and
        // a TMPDIR under root's home would not let it.
        let base = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "veille-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(&dir))?;
        }
        let cluster = Cluster {
            port: free_port()?,
            dir,
            bin,
            as_postgres,
            watchdog: Mutex::new(None),
            databases: AtomicU32::new(0),
        };
        // --no-sync: initdb's own files need no fsync for a throwaway cluster; the
        // server itself runs with fsync on, as the engine's durability assumes.
        run(cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            .arg("--no-sync"))?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` from the cluster's bin directory, as the `postgres` user when root.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start_server(&self) -> Result<(), String> {
        let postgres = self.bin.join("postgres");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", WATCHDOG]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", WATCHDOG]);
            c
        };
        cmd.arg(postgres)
            .arg(self.data())
            .arg(self.port.to_string())
            .arg(&self.dir)
            .arg(MAX_CONNECTIONS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
        *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let started = Instant::now();
        loop {
            match postgres::Client::connect(&self.url("postgres"), postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > START_DEADLINE => {
                    let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                    return Err(format!(
                        "server on port {} not up after {START_DEADLINE:?}: {e}\n{log}",
                        self.port
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` (user `postgres`, trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!("t_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("CREATE DATABASE {name}: {e:?}"))?;
        Ok(self.url(&name))
    }

    /// Stops the server at once (immediate shutdown, as a crash would), keeping its
    /// data for [`Cluster::restart`].
    pub fn stop(&self) {
        if let Some(mut child) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"keep\n");
            }
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.start_server()
    }

    /// The cluster's directory (data, socket, server log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let child = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match child {
            // Closing stdin (EOF) stops the server and removes the directory.
            Some(mut child) => {
                drop(child.stdin.take());
                let _ = child.wait();
            }
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}
