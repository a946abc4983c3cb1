//! Bad input on the gRPC port gets a clear error, stores nothing, and the collector
//! keeps serving the next good request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use prost::Message;
use tonic::Code;
use veille_tests::grpc::{self, batch, send, send_raw};
use veille_tests::{Collector, devices_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_request_gets_a_clear_error_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), "127.0.0.1:0");
    let token = collector.token();
    let url = collector.url();

    // 1. Random bytes on the raw TCP port: the connection is closed, nothing else.
    let mut tcp = TcpStream::connect(&collector.grpc).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let garbage: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    let _ = tcp.write_all(&garbage);
    let mut sink = Vec::new();
    let _ = tcp.read_to_end(&mut sink);

    // 2. A truncated protobuf inside a well-formed gRPC call.
    let good = batch("dev-bad", 1..=5);
    let bytes = good.encode_to_vec();
    let status = send_raw(&url, &token, bytes[..bytes.len() / 2].to_vec())
        .await
        .expect_err("a truncated protobuf must be refused");
    assert!(
        matches!(status.code(), Code::InvalidArgument | Code::Internal),
        "{status:?}"
    );
    assert!(status.message().contains("decode"), "unclear: {status:?}");

    let mut client = grpc::client(&url).await;

    // 3. A wrong token.
    let status = send(&mut client, "not-the-token", batch("dev-bad", 1..=5))
        .await
        .expect_err("a wrong token must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // 4. end < start.
    let mut b = batch("dev-bad", 1..=3);
    b.reports[1].end_unix_ms = b.reports[1].start_unix_ms - 1;
    let status = send(&mut client, &token, b).await.expect_err("end < start");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("reports[1].end_unix_ms"),
        "{status:?}"
    );

    // 5. State times that do not sum to the interval.
    let mut b = batch("dev-bad", 1..=3);
    b.reports[2].idle_ms += 7;
    let status = send(&mut client, &token, b).await.expect_err("bad sum");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("reports[2].active_ms+idle_ms+sleep_ms"),
        "{status:?}"
    );

    // 6. A timestamp a day ahead.
    let mut b = batch("dev-bad", 1..=3);
    for r in &mut b.reports {
        r.start_unix_ms += 86_400_000;
        r.end_unix_ms += 86_400_000;
    }
    let status = send(&mut client, &token, b).await.expect_err("future");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("in the future"), "{status:?}");

    // Nothing of the above was stored.
    assert_eq!(devices_json(dir.path()), Vec::<serde_json::Value>::new());

    // The server still serves a good request, on the same connection and a new one.
    let ack = send(&mut client, &token, batch("dev-good", 1..=5))
        .await
        .expect("good batch after bad ones");
    assert_eq!((ack.highest_durable_seq, ack.stored), (5, 5));
    let mut fresh = grpc::client(&url).await;
    let ack = send(&mut fresh, &token, batch("dev-good", 6..=7))
        .await
        .unwrap();
    assert_eq!(ack.highest_durable_seq, 7);
    let devices = devices_json(dir.path());
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["device_id"], "dev-good");
    assert_eq!(devices[0]["reports"], 7);
}
