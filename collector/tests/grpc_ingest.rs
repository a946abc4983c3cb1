//! The collector in-process on 127.0.0.1:0 with a temporary data directory, driven by the
//! real tonic client from `veille_proto` over loopback.

use std::time::Duration;

use tonic::{Code, Request};
use veille_collector::clock::now_ms;
use veille_collector::config::OrgConfig;
use veille_collector::http_client;
use veille_collector::store::Store;
use veille_collector::{Config, Listeners, Server, cli, listen_file, tokens};
use veille_domain::devices::DeviceRecord;
use veille_proto::v1::telemetry_client::TelemetryClient;
use veille_proto::v1::{Ack, Inventory, Report, ReportBatch};

const ACME: &str = "acme-token-0123456789";
const TOWN: &str = "town-token-0123456789";

fn config(dir: &std::path::Path, orgs: &[(&str, &str)]) -> Config {
    let mut c = Config::defaults().unwrap();
    c.data_dir = dir.to_string_lossy().into_owned();
    c.orgs = orgs
        .iter()
        .map(|(id, token)| OrgConfig {
            id: id.to_string(),
            name: String::new(),
            token: token.to_string(),
            token_sha256: String::new(),
            energy: None,
            profile: Default::default(),
        })
        .collect();
    c
}

/// Base time of every report in this process, so that a resend has identical bytes.
fn base_ms() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| now_ms() - 3 * 3_600_000)
}

fn report(seq: u64) -> Report {
    // One second per seq, from three hours ago.
    let start = base_ms() + seq as i64 * 1_000;
    Report {
        boot_id: "boot-a".into(),
        seq,
        start_unix_ms: start,
        end_unix_ms: start + 1_000,
        boot_time_unix_s: (base_ms() - 3_600_000) / 1000,
        uptime_s: 10_000,
        active_ms: 400,
        idle_ms: 600,
        cpu_util: 0.2,
        ..Default::default()
    }
}

fn batch(device: &str, seqs: std::ops::RangeInclusive<u64>) -> ReportBatch {
    ReportBatch {
        device_id: device.into(),
        reports: seqs.map(report).collect(),
        inventory: None,
        agent_version: "0.1.0".into(),
    }
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn send(
    client: &mut TelemetryClient<tonic::transport::Channel>,
    b: ReportBatch,
    token: &str,
) -> Result<Ack, tonic::Status> {
    client
        .report(authed(b, token))
        .await
        .map(|r| r.into_inner())
}

fn ack(highest: u64, stored: u32, duplicates: u32, conflicts: u32) -> Ack {
    Ack {
        highest_durable_seq: highest,
        stored,
        duplicates,
        conflicts,
        ..Ack::default()
    }
}

/// A message that is not a `ReportBatch`: field 1 (device_id, a string) as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct NotABatch {
    #[prost(uint64, tag = "1")]
    device_id_as_number: u64,
    #[prost(bytes = "vec", tag = "99")]
    padding: Vec<u8>,
}

async fn send_raw(
    channel: tonic::transport::Channel,
    msg: NotABatch,
    token: &str,
) -> Result<Ack, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let codec: tonic_prost::ProstCodec<NotABatch, Ack> = tonic_prost::ProstCodec::default();
    grpc.unary(
        authed(msg, token),
        tonic::codegen::http::uri::PathAndQuery::from_static("/veille.v1.Telemetry/Report"),
        codec,
    )
    .await
    .map(|r| r.into_inner())
}

async fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, String) {
    let r = http_client::get(server.http_addr(), path, token, Duration::from_secs(5))
        .await
        .unwrap();
    (r.status, String::from_utf8(r.body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_auth_validation_and_idempotency_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[("acme", ACME), ("town", TOWN)]);
    let server = Server::start(&config, Listeners::loopback_ephemeral().await.unwrap())
        .await
        .unwrap();
    let info = listen_file::read(dir.path()).unwrap().expect("listen.json");
    assert_eq!(info.grpc, server.grpc_addr());
    assert_eq!(info.http, server.http_addr());
    assert_eq!(info.pid, std::process::id());

    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TelemetryClient::new(channel.clone());

    // A good batch, with an inventory.
    let mut first = batch("pc-1", 1..=3);
    first.inventory = Some(Inventory {
        hostname: "mairie-accueil".into(),
        ..Default::default()
    });
    assert_eq!(
        send(&mut client, first.clone(), ACME).await.unwrap(),
        ack(3, 3, 0, 0)
    );
    // The same batch again: duplicates, nothing doubled.
    assert_eq!(
        send(&mut client, first.clone(), ACME).await.unwrap(),
        ack(3, 0, 3, 0)
    );
    // Seq 3 with other content, plus a new seq 4.
    let mut changed = batch("pc-1", 3..=4);
    changed.reports[0].cpu_util = 0.9;
    assert_eq!(
        send(&mut client, changed, ACME).await.unwrap(),
        ack(4, 1, 0, 1)
    );
    // The same device id under another org is another device.
    assert_eq!(
        send(&mut client, batch("pc-1", 1..=1), TOWN).await.unwrap(),
        ack(1, 1, 0, 0)
    );

    // Wrong or missing token.
    let e = send(&mut client, batch("pc-1", 5..=5), "wrong-token-0123456789")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = client
        .report(Request::new(batch("pc-1", 5..=5)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // An invalid batch names the field and value; nothing of it is stored.
    let mut bad = batch("pc-1", 5..=6);
    bad.reports[1].end_unix_ms = bad.reports[1].start_unix_ms - 5;
    let e = send(&mut client, bad, ACME).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("reports[1].end_unix_ms"),
        "{}",
        e.message()
    );

    // Bytes that are not a ReportBatch, and a message over the size limit: tonic refuses
    // them, and the server keeps serving.
    let e = send_raw(
        channel.clone(),
        NotABatch {
            device_id_as_number: 7,
            padding: vec![],
        },
        ACME,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    let huge = NotABatch {
        device_id_as_number: 0,
        padding: vec![0; veille_proto::defaults::MAX_BATCH_BYTES + 1],
    };
    let e = send_raw(channel.clone(), huge, ACME).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );
    assert_eq!(
        send(&mut client, batch("pc-1", 5..=5), ACME).await.unwrap(),
        ack(5, 1, 0, 0)
    );

    // HTTP API.
    assert_eq!(get(&server, "/healthz", None).await, (200, "ok".into()));
    let (status, body) = get(&server, "/api/v1/devices", None).await;
    assert_eq!(status, 401);
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].is_string());
    assert_eq!(get(&server, "/api/v1/devices", Some("nope")).await.0, 401);
    let (status, body) = get(&server, "/api/v1/devices", Some(ACME)).await;
    assert_eq!(status, 200);
    let acme: Vec<DeviceRecord> = serde_json::from_str(&body).unwrap();
    assert_eq!(acme.len(), 1, "an org sees only its devices");
    let d = &acme[0];
    assert_eq!((d.org.as_str(), d.device_id.as_str()), ("acme", "pc-1"));
    assert_eq!((d.highest_seq, d.reports, d.conflicts), (5, 5, 1));
    assert_eq!(
        (
            d.hostname.as_str(),
            d.last_boot_id.as_str(),
            d.boot_sessions
        ),
        ("mairie-accueil", "boot-a", 1)
    );
    let operator = server.tokens().operator.clone();
    let (_, body) = get(&server, "/api/v1/devices", Some(&operator)).await;
    assert_eq!(
        serde_json::from_str::<Vec<DeviceRecord>>(&body)
            .unwrap()
            .len(),
        2
    );
    let (status, csv) = get(&server, "/api/v1/devices?format=csv", Some(&operator)).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.starts_with("org,device_id,hostname,"), "{csv}");
    assert_eq!(
        get(&server, "/api/v1/devices?format=xml", Some(&operator))
            .await
            .0,
        400
    );

    // The CLI reaches the running server through listen.json.
    let listed = cli::list_devices(&config).await.unwrap();
    assert_eq!(listed.len(), 2);

    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.rejected_unauthenticated, 2);
    assert_eq!(metrics.rejected_invalid, 1);
    assert_eq!(metrics.reports_stored, 6);
    assert_eq!(metrics.duplicates, 3);
    assert_eq!(metrics.conflicts, 1);

    drop(client);
    drop(channel);
    server.shutdown().await.unwrap();
    assert!(
        listen_file::read(dir.path()).unwrap().is_none(),
        "listen.json removed"
    );

    // After shutdown the CLI reads the store itself.
    let listed = cli::list_devices(&config).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].org, "acme");
    assert_eq!(listed[0].highest_seq, 5);

    let store = Store::open(&dir.path().join(veille_collector::store::STORE_DIR)).unwrap();
    assert_eq!(store.report_count(), 6);
    assert_eq!(
        store.reports("acme", "pc-1", 3..=3).unwrap()[0].cpu_util,
        0.2
    );
    assert_eq!(store.conflicts("acme", "pc-1").unwrap().len(), 1);
    assert!(store.reports("acme", "pc-1", 6..=6).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_are_all_acked_and_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[("acme", ACME)]);
    let server = Server::start(&config, Listeners::loopback_ephemeral().await.unwrap())
        .await
        .unwrap();
    let url = server.grpc_url();
    let (clients, batches, size) = (8u64, 15u64, 40u64);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = TelemetryClient::connect(url).await.unwrap();
            for b in 0..batches {
                let seqs = b * size + 1..=(b + 1) * size;
                let a = send(&mut client, batch(&format!("dev-{c}"), seqs), ACME)
                    .await
                    .unwrap();
                assert_eq!(a, ack((b + 1) * size, size as u32, 0, 0));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = server.metrics().snapshot();
    assert_eq!(m.batches, clients * batches);
    // Only a sanity bound: with a fast disk the groups may well be of one batch each.
    // That flushes are shared is checked where the flush can be slowed (issue 23:
    // `ingest::tests::concurrent_submissions_share_flushes_and_all_land`).
    assert!(m.flushes >= 1 && m.flushes <= m.batches, "{m:?}");
    server.shutdown().await.unwrap();

    let store = Store::open(&dir.path().join(veille_collector::store::STORE_DIR)).unwrap();
    assert_eq!(store.report_count() as u64, clients * batches * size);
    for c in 0..clients {
        let d = store.device("acme", &format!("dev-{c}")).unwrap().unwrap();
        assert_eq!(d.highest_seq, batches * size);
        assert_eq!(d.reports, batches * size);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_acked_during_shutdown_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[("acme", ACME)]);
    let server = Server::start(&config, Listeners::loopback_ephemeral().await.unwrap())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for c in 0..6 {
        let url = server.grpc_url();
        tasks.push(tokio::spawn(async move {
            let mut client = TelemetryClient::connect(url).await.unwrap();
            let mut acked = 0;
            for b in 0..200u64 {
                match send(
                    &mut client,
                    batch(&format!("dev-{c}"), b * 10 + 1..=b * 10 + 10),
                    ACME,
                )
                .await
                {
                    Ok(a) => acked = a.highest_durable_seq,
                    Err(_) => break,
                }
            }
            (format!("dev-{c}"), acked)
        }));
    }
    // Stop once some batches are durable and acked (the clients are then mid-stream:
    // 1,200 batches take far longer than the poll below), not after a guessed delay.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.metrics().snapshot().batches < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no batch stored within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await.unwrap();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    // The test means something only if batches were acked before the stop and the stop
    // came while clients were still sending.
    eprintln!("acked before shutdown: {results:?}");
    assert!(results.iter().any(|(_, a)| *a > 0), "{results:?}");
    assert!(results.iter().any(|(_, a)| *a < 2000), "{results:?}");
    let store = Store::open(&dir.path().join(veille_collector::store::STORE_DIR)).unwrap();
    for (device, acked) in results {
        let stored = store
            .device("acme", &device)
            .unwrap()
            .map_or(0, |d| d.highest_seq);
        assert!(
            stored >= acked,
            "{device}: acked {acked} but stored {stored}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_org_is_created_at_first_start_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[]);
    let server = Server::start(&config, Listeners::loopback_ephemeral().await.unwrap())
        .await
        .unwrap();
    let token = server
        .tokens()
        .created_default_org
        .clone()
        .expect("created at first start");
    let mut client = TelemetryClient::connect(server.grpc_url()).await.unwrap();
    assert_eq!(
        send(&mut client, batch("pc-9", 1..=2), &token)
            .await
            .unwrap(),
        ack(2, 2, 0, 0)
    );
    drop(client);
    server.shutdown().await.unwrap();

    let server = Server::start(&config, Listeners::loopback_ephemeral().await.unwrap())
        .await
        .unwrap();
    assert_eq!(server.tokens().created_default_org, None);
    assert_eq!(
        server.tokens().org_hash(tokens::DEFAULT_ORG_ID),
        Some(veille_collector::auth::TokenHash::of(&token))
    );
    let mut client = TelemetryClient::connect(server.grpc_url()).await.unwrap();
    assert_eq!(
        send(&mut client, batch("pc-9", 1..=2), &token)
            .await
            .unwrap(),
        ack(2, 0, 2, 0)
    );
    drop(client);
    server.shutdown().await.unwrap();
}

/// A data directory from before tokens were hashed at rest holds only the clear
/// `default-org.token`: its agents keep working, and the hash file appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_written_the_old_way_keeps_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let old = "old-clear-token-0123456789abcdef";
    std::fs::write(
        dir.path().join(tokens::DEFAULT_ORG_TOKEN_FILE),
        format!("{old}\n"),
    )
    .unwrap();
    let config = config(dir.path(), &[]);
    let server = Server::start(&config, Listeners::loopback_ephemeral().await.unwrap())
        .await
        .unwrap();
    assert!(server.tokens().migrated_default_org);
    let hash =
        std::fs::read_to_string(dir.path().join(tokens::DEFAULT_ORG_TOKEN_HASH_FILE)).unwrap();
    assert!(!hash.contains(old));
    let mut client = TelemetryClient::connect(server.grpc_url()).await.unwrap();
    assert_eq!(
        send(&mut client, batch("pc-old", 1..=2), old)
            .await
            .unwrap(),
        ack(2, 2, 0, 0)
    );
    let refused = send(&mut client, batch("pc-old", 3..=3), hash.trim())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "the digest is no token"
    );
    drop(client);
    server.shutdown().await.unwrap();
}
