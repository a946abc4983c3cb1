//! Wake-on-LAN through a relay agent, end to end (issue 19): the real collector, a real
//! agent over gRPC as the relay, a sleeping device known only from an earlier batch,
//! and `veille-collector wake`. The relay reports this machine's interfaces; the
//! sleeping device is given a MAC on the relay's first subnet, so the collector picks
//! the relay and the subnet's broadcast address. The test listens on a real UDP socket
//! (0.0.0.0, the port the agent is told with `wol_port`): the kernel delivers a
//! broadcast of a local subnet to local sockets too.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use veille_collector::store::{STORE_DIR, Store};
use veille_proto::v1::{EventKind, Inventory, NetworkInterface, ReportBatch};
use veille_tests::grpc;
use veille_tests::{Agent, Collector, bin, stored_reports, wait_until};

const TARGET_MAC: &str = "02:00:5e:10:00:99";

fn collector_cli(args: &[&str], data: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin("veille-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A dry-run policy: the agents pin the collector's key from it (wake requests are
/// checked against that key) and nothing is enforced.
fn set_dry_run_policy(data: &Path, files: &Path) {
    let path = files.join("dry-run.toml");
    std::fs::write(
        &path,
        "org = \"default\"\nmode = \"dry-run\"\nidle_threshold_s = 600\nwarning_s = 300\n\n\
         [[windows]]\ndays = [\"weekdays\"]\nstart = \"20:00\"\nend = \"07:00\"\n\
         time_zone = \"UTC\"\n",
    )
    .unwrap();
    let (code, _, err) = collector_cli(&["policy", "set", "--file", path.to_str().unwrap()], data);
    assert_eq!(code, Some(0), "policy set: {err}");
}

/// The interfaces the relay reported, once its inventory is stored.
fn relay_interfaces(data: &Path, device: &str) -> Vec<NetworkInterface> {
    let mut found = Vec::new();
    wait_until("the relay's inventory with its interfaces", || {
        let Ok(store) = Store::open(&data.join(STORE_DIR)) else {
            return false;
        };
        if let Ok(Some(inv)) = store.inventory("default", device) {
            found = inv.interfaces;
            return true;
        }
        false
    });
    found
}

/// Sends one batch with an inventory for a device that then "goes to sleep".
fn enroll_sleeper(url: &str, token: &str, device: &str, subnets: Vec<String>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = grpc::client(url).await;
        let mut batch: ReportBatch = grpc::batch(device, 1..=1);
        batch.inventory = Some(Inventory {
            hostname: format!("{device}.example"),
            interfaces: vec![NetworkInterface {
                name: "eth0".into(),
                mac: TARGET_MAC.into(),
                ipv4_subnets: subnets,
            }],
            ..Default::default()
        });
        grpc::send(&mut c, token, batch).await.unwrap();
    });
}

#[test]
fn the_wake_command_makes_an_awake_agent_of_the_subnet_send_the_magic_packet() {
    let (data, files, state) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let listener = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector::start(data.path(), "127.0.0.1:0");
    set_dry_run_policy(data.path(), files.path());
    let (url, token) = (collector.url(), collector.token());
    let mut relay = Agent::start_with(
        "wol-relay",
        state.path(),
        &url,
        &token,
        Some("relay-pc"),
        &[("VEILLE_WOL_PORT", &port.to_string())],
    );
    relay.proc.wait_for_line("new policy accepted");

    let interfaces = relay_interfaces(data.path(), "relay-pc");
    let subnet = interfaces
        .iter()
        .flat_map(|i| i.ipv4_subnets.iter())
        .next()
        .unwrap_or_else(|| {
            panic!(
                "this machine reports no interface with a MAC and an IPv4 subnet: {interfaces:?}"
            )
        })
        .clone();
    let (network, len) = veille_domain::policy::wake_relay::parse_subnet(&subnet).unwrap();
    let broadcast = veille_domain::policy::wake_relay::broadcast(network, len);
    enroll_sleeper(&url, &token, "sleeper-pc", vec![subnet.clone()]);
    // Another device alone on its subnet: nobody can wake it.
    enroll_sleeper(&url, &token, "lonely-pc", vec!["10.250.7.0/24".into()]);

    // By hostname, through the running server's API.
    let (code, out, err) = collector_cli(
        &[
            "wake",
            "--org",
            "default",
            "--hostname",
            "SLEEPER-PC.example",
        ],
        data.path(),
    );
    assert_eq!(code, Some(0), "wake: {err}");
    assert!(
        out.starts_with("queued: wake sleeper-pc (02:00:5e:10:00:99) through relay relay-pc"),
        "{out}"
    );
    assert!(
        out.contains(&format!("magic packet to {broadcast}")),
        "{out}"
    );

    listener
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = listener
        .recv_from(&mut buf)
        .expect("no magic packet within 30 s");
    let expected = veille_agent::wol::magic_packet(TARGET_MAC.parse().unwrap());
    assert_eq!(buf[..n], expected, "from {from}");

    // Reported: a WOL_SENT event naming the target reaches the store.
    let started = Instant::now();
    loop {
        let sent: Vec<String> = stored_reports(data.path(), "relay-pc")
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| e.kind == EventKind::WolSent as i32)
            .map(|e| e.detail.clone())
            .collect();
        if let Some(d) = sent.first() {
            assert_eq!(sent.len(), 1, "sent once: {sent:?}");
            assert!(
                d.starts_with(&format!(
                    "sleeper-pc {TARGET_MAC} to {broadcast}:{port} request sleeper-pc@"
                )),
                "{d}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no WOL_SENT event"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Asked again while the first request is pending: the same request, no second
    // packet.
    let (code, out, _) = collector_cli(
        &["wake", "--org", "default", "--device", "sleeper-pc"],
        data.path(),
    );
    assert_eq!(code, Some(0));
    assert!(out.starts_with("already pending: wake sleeper-pc"), "{out}");
    listener
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(
        listener.recv_from(&mut buf).is_err(),
        "a second packet was sent"
    );

    // Clear answers when nothing can be done: exit code 2 and the reason.
    let (code, _, err) = collector_cli(
        &["wake", "--org", "default", "--device", "lonely-pc"],
        data.path(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("lonely-pc"), "{err}");
    assert!(
        err.contains("no agent on 10.250.7.0/24 reported in the last 300 s"),
        "{err}"
    );
    let (code, _, err) = collector_cli(
        &["wake", "--org", "default", "--device", "no-such-pc"],
        data.path(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-such-pc"), "{err}");
    drop(relay);
}
