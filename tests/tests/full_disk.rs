//! The embedded store on a full disk: the collector says so in one log line, answers
//! ingest with UNAVAILABLE (agents keep their spool and retry), loses and corrupts
//! nothing, and takes reports again by itself once space returns.
//!
//! The data directory is a 4 MiB tmpfs this test mounts (CI runs as root; without the
//! right to mount, the test fails with that reason rather than skipping).

use std::path::{Path, PathBuf};
use std::process::Command;

use tonic::Code;
use veille_tests::grpc::{self, batch, send};
use veille_tests::{Collector, devices_json, stored_seqs, wait_until};

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with one file until it refuses a byte more.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_unavailable_loses_nothing_and_recovers_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _fs = Tmpfs::mount(&data, "4m");
    let mut collector = Collector::start(&data, "127.0.0.1:0");
    let token = collector.token();
    let mut client = grpc::client(&collector.url()).await;

    // Before: stored and acknowledged.
    let ack = send(&mut client, &token, batch("pc-1", 1..=50))
        .await
        .unwrap();
    assert_eq!(ack.highest_durable_seq, 50);

    let filler = data.join("filler");
    fill(&filler);
    // Full: refused as UNAVAILABLE, every time, with the cause in the message.
    let mut refused = None;
    for n in 0..20u64 {
        let from = 51 + n * 100;
        match send(&mut client, &token, batch("pc-1", from..=from + 99)).await {
            Ok(_) => continue, // the WAL may still have room for a batch or two
            Err(status) => {
                refused = Some((status, from));
                break;
            }
        }
    }
    let (status, first_refused) = refused.expect("a full disk must refuse ingest at some point");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("full"),
        "the refusal names the cause: {status:?}"
    );
    wait_until("the collector logs the full disk", || {
        collector.proc.log().iter().any(|l| l.contains("full"))
    });

    // Space returns: the same batch (an agent's retry) is taken, and new ones too.
    std::fs::remove_file(&filler).unwrap();
    let ack = send(
        &mut client,
        &token,
        batch("pc-1", first_refused..=first_refused + 99),
    )
    .await
    .expect("ingest resumes once space returns");
    assert_eq!(ack.highest_durable_seq, first_refused + 99);
    let last = first_refused + 199;
    let ack = send(
        &mut client,
        &token,
        batch("pc-1", first_refused + 100..=last),
    )
    .await
    .unwrap();
    assert_eq!(ack.highest_durable_seq, last);
    collector.proc.stop();

    // Nothing lost, nothing twice, nothing corrupt: every seq up to the last once.
    let seqs = stored_seqs(&data, "default", "pc-1");
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    let devices = devices_json(&data);
    assert_eq!(devices[0]["highest_seq"], last);
}
