//! A private `dbus-daemon` for tests that talk D-Bus to a fake peer (logind): the
//! real bus protocol, without the machine's system bus.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

/// A private message bus, killed when dropped.
pub struct Bus {
    pub address: String,
    _daemon: tokio::process::Child,
    _dir: tempfile::TempDir,
}

pub async fn start_bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let config = dir.path().join("bus.conf");
    std::fs::write(
        &config,
        BUS_CONFIG.replace("SOCKET", &socket.display().to_string()),
    )
    .unwrap();
    // Its stderr goes to a file: as root it complains that it cannot raise its fd
    // limit, which is noise unless it fails to start.
    let log = dir.path().join("dbus-daemon.log");
    let mut daemon = tokio::process::Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start dbus-daemon ({err}): this test needs it; \
                 install the Debian package `dbus-daemon` (apt-get install -y dbus-daemon)"
            )
        });
    let stdout = daemon.stdout.take().unwrap();
    let mut address = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut address),
    )
    .await
    .expect("dbus-daemon did not print its address within 10 s")
    .unwrap();
    let address = address.trim().to_owned();
    assert!(
        address.starts_with("unix:"),
        "dbus-daemon failed to start (printed {address:?}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Bus {
        address,
        _daemon: daemon,
        _dir: dir,
    }
}
