//! A gRPC client for the tests, able to send well-formed batches and also bytes that no
//! real agent would send (a truncated protobuf), over real loopback HTTP/2.

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};
use veille_proto::v1::telemetry_client::TelemetryClient;
use veille_proto::v1::{Ack, Report, ReportBatch};

pub async fn client(url: &str) -> TelemetryClient<Channel> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("valid url")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    TelemetryClient::new(channel)
}

pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token"),
    );
    r
}

pub async fn send(
    client: &mut TelemetryClient<Channel>,
    token: &str,
    batch: ReportBatch,
) -> Result<Ack, Status> {
    client
        .report(authed(batch, token))
        .await
        .map(|r| r.into_inner())
}

/// A valid report of one minute ending at `end_ms`.
pub fn report(boot_id: &str, seq: u64, end_ms: i64) -> Report {
    Report {
        boot_id: boot_id.to_owned(),
        seq,
        start_unix_ms: end_ms - 60_000,
        end_unix_ms: end_ms,
        boot_time_unix_s: (end_ms - 3_600_000) / 1000,
        uptime_s: 3600,
        active_ms: 20_000,
        idle_ms: 40_000,
        sleep_ms: 0,
        cpu_util: 0.2,
        ..Default::default()
    }
}

/// Consecutive minute reports `seqs` for `device_id`, ending before now.
pub fn batch(device_id: &str, seqs: std::ops::RangeInclusive<u64>) -> ReportBatch {
    let now = crate::now_unix_ms();
    let first = *seqs.start();
    let n = seqs.clone().count() as i64;
    let reports = seqs
        .map(|s| report("boot-1", s, now - (n - (s - first) as i64) * 60_000))
        .collect();
    ReportBatch {
        device_id: device_id.to_owned(),
        reports,
        inventory: None,
        agent_version: "test".into(),
    }
}

/// Sends raw bytes as the body of a `Telemetry/Report` call.
pub async fn send_raw(url: &str, token: &str, body: Vec<u8>) -> Result<Ack, Status> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("valid url")
        .connect()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/veille.v1.Telemetry/Report");
    grpc.unary(authed(body, token), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[derive(Default, Clone, Copy)]
struct RawCodec;
struct RawEncoder;
struct AckDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Ack;
    type Encoder = RawEncoder;
    type Decoder = AckDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> AckDecoder {
        AckDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for AckDecoder {
    type Item = Ack;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Ack>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ack::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}
