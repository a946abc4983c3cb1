//! A small simulated fleet for the web and metrics tests: devices with an inventory
//! (site, chassis, hostname, tags) and a run of minute reports, sent over real gRPC;
//! and a plain HTTP/1.1 client that carries a cookie (the web page's session).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use veille_proto::v1::{ChassisClass, Inventory, ReportBatch};

use crate::grpc;

/// One simulated device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    pub device_id: &'static str,
    pub hostname: &'static str,
    pub site: &'static str,
    pub tags: &'static [&'static str],
    pub chassis: ChassisClass,
}

/// The fleet the tests use: two sites, three classes, one device with a hostname that
/// needs escaping in HTML.
pub fn sample_fleet() -> Vec<SimDevice> {
    vec![
        SimDevice {
            device_id: "pc-lyon-1",
            hostname: "accueil-01",
            site: "Lyon",
            tags: &["accueil"],
            chassis: ChassisClass::Desktop,
        },
        SimDevice {
            device_id: "pc-lyon-2",
            hostname: "compta<&>02",
            site: "Lyon",
            tags: &["compta"],
            chassis: ChassisClass::Laptop,
        },
        SimDevice {
            device_id: "srv-paris-1",
            hostname: "srv-fichiers",
            site: "Paris",
            tags: &[],
            chassis: ChassisClass::Server,
        },
    ]
}

/// Sends `minutes` one-minute reports for each device, ending a minute ago, each
/// device in one batch with its inventory. Returns the number of reports sent.
pub async fn seed(grpc_url: &str, token: &str, fleet: &[SimDevice], minutes: u64) -> u64 {
    let mut client = grpc::client(grpc_url).await;
    let now = crate::now_unix_ms();
    let mut sent = 0;
    for (i, d) in fleet.iter().enumerate() {
        let reports = (1..=minutes)
            .map(|seq| {
                let end = now - 60_000 - (minutes - seq) as i64 * 60_000;
                let mut r = grpc::report("boot-web", seq, end);
                // Vary the devices: the server mostly active, the laptop mostly asleep.
                match i % 3 {
                    0 => (r.active_ms, r.idle_ms, r.sleep_ms) = (20_000, 40_000, 0),
                    1 => (r.active_ms, r.idle_ms, r.sleep_ms) = (5_000, 10_000, 45_000),
                    _ => (r.active_ms, r.idle_ms, r.sleep_ms) = (45_000, 15_000, 0),
                }
                r
            })
            .collect::<Vec<_>>();
        sent += reports.len() as u64;
        let batch = ReportBatch {
            device_id: d.device_id.to_owned(),
            reports,
            inventory: Some(Inventory {
                hostname: d.hostname.to_owned(),
                os_name: "Debian GNU/Linux".into(),
                os_version: "12".into(),
                manufacturer: "Dell Inc.".into(),
                model: "OptiPlex 7090".into(),
                serial: format!("SN-{}", d.device_id),
                chassis: d.chassis as i32,
                cpu_model: "Intel(R) Core(TM) i5-10500".into(),
                cpu_cores: 6,
                ram_bytes: 16 << 30,
                bios_release_date: "2021-03-15".into(),
                site: d.site.to_owned(),
                tags: d.tags.iter().map(|t| t.to_string()).collect(),
                agent_version: "test".into(),
                ..Default::default()
            }),
            agent_version: "test".into(),
        };
        let ack = grpc::send(&mut client, token, batch)
            .await
            .unwrap_or_else(|e| panic!("seed {}: {e}", d.device_id));
        assert_eq!(ack.highest_durable_seq, minutes, "{ack:?}");
    }
    sent
}

/// An HTTP/1.1 response, headers lower-cased.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`), with optional `Cookie`
/// header and form body. Blocking; loopback only.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if let Some(body) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..nl])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
    out
}
