//! A private Mosquitto for a test: its own port, config, password file and the ACL
//! shipped in `deploy/mosquitto/acl`, in a temporary directory. Never the system
//! service. Needs the Debian packages `mosquitto` and `mosquitto-clients` (`.ci/run`
//! installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{DEADLINE, Proc, free_port};

/// The collectors' user in `deploy/mosquitto/acl`.
pub const COLLECTOR_USER: &str = "veille-collector";
/// Its password in the tests.
pub const COLLECTOR_PASSWORD: &str = "collector-password-for-tests";

pub struct Mosquitto {
    pub proc: Proc,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The listener speaks TLS (`mqtts://`).
    pub tls: bool,
}

/// `deploy/mosquitto/<name>` in the workspace.
pub fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/mosquitto")
        .join(name)
}

impl Mosquitto {
    /// Starts Mosquitto with `users` (username, password) plus the collectors' user.
    pub fn start(users: &[(&str, &str)]) -> Mosquitto {
        Self::start_with(users, None, "")
    }

    /// [`Mosquitto::start`] with a TLS listener (OpenSSL, as deployed) using the
    /// `ca.pem`, `server.pem` and `server.key` of `tls_dir` (`veille-collector init-tls`).
    pub fn start_tls(users: &[(&str, &str)], tls_dir: &Path) -> Mosquitto {
        Self::start_with(users, Some(tls_dir), "")
    }

    /// [`Mosquitto::start`] / [`Mosquitto::start_tls`] with `extra` lines appended to
    /// the config (`log_type debug` to see each `Denied PUBLISH`, `require_certificate
    /// true`, …).
    pub fn start_with(users: &[(&str, &str)], tls_dir: Option<&Path>, extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        let mut all = vec![(COLLECTOR_USER, COLLECTOR_PASSWORD)];
        all.extend_from_slice(users);
        for (i, (user, password)) in all.iter().enumerate() {
            let mut cmd = Command::new("mosquitto_passwd");
            if i == 0 {
                cmd.arg("-c");
            }
            let status = cmd
                .arg("-b")
                .arg(&passwd)
                .arg(user)
                .arg(password)
                .stdout(Stdio::null())
                .status()
                .expect("mosquitto_passwd (Debian package mosquitto) must be installed");
            assert!(status.success(), "mosquitto_passwd failed");
        }
        let acl = dir.path().join("acl");
        std::fs::copy(deploy_file("acl"), &acl).expect("copy deploy/mosquitto/acl");
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             acl_file {}\npersistence false\nmax_inflight_messages 100\n\
             max_queued_messages 100000\nmessage_size_limit 4259840\nlog_dest stderr\n\
             log_type error\nlog_type warning\nlog_type notice\n",
            passwd.display(),
            acl.display()
        );
        if let Some(t) = tls_dir {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\n",
                t.join("ca.pem").display(),
                t.join("server.pem").display(),
                t.join("server.key").display()
            ));
        }
        conf.push_str(extra);
        if !extra.is_empty() && !extra.ends_with('\n') {
            conf.push('\n');
        }
        // As root Mosquitto drops to user `mosquitto`, who cannot read a private tempdir.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            conf.push_str("user root\n");
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c").arg(&conf_path);
        let proc = Proc::spawn("mosquitto", cmd);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "mosquitto never listened on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Mosquitto {
            proc,
            port,
            dir,
            tls: tls_dir.is_some(),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A collector config file for external mode with `orgs` (id, token) and `client_id`.
    pub fn collector_config(&self, name: &str, orgs: &[(&str, &str)], client_id: &str) -> PathBuf {
        let mut text = String::new();
        for (id, token) in orgs {
            text.push_str(&format!("[[orgs]]\nid = \"{id}\"\ntoken = \"{token}\"\n"));
        }
        text.push_str(&format!(
            "[mqtt]\nbroker = \"{}\"\nusername = \"{COLLECTOR_USER}\"\npassword = \"{COLLECTOR_PASSWORD}\"\nclient_id = \"{client_id}\"\n",
            self.url()
        ));
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write collector config");
        path
    }
}

/// Runs `mosquitto_pub` once (`-V mqttv311`, QoS 1) with a payload file; returns whether
/// it exited 0.
pub fn publish(port: u16, user: &str, password: &str, topic: &str, payload: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("payload");
    std::fs::write(&file, payload).expect("write payload");
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv311",
            "-q",
            "1",
        ])
        .args(["-u", user, "-P", password, "-t", topic, "-f"])
        .arg(&file)
        .output()
        .expect("mosquitto_pub (Debian package mosquitto-clients) must be installed");
    eprintln!(
        "[mosquitto_pub {topic}] exit {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out.status.success()
}
