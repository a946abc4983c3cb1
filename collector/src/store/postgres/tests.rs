//! What only the PostgreSQL engine has: migrations, partitions, a database that goes
//! away and comes back, several collectors writing the same devices. The rules every
//! engine shares are tested once for both in `store::tests`.

use super::*;
use crate::store::testpg::{self, Cluster};
use crate::store::{Location, Store};
use veille_domain::energy::rollup::HOUR_MS;
use veille_proto::v1::{Report, ReportBatch};

const DAY_MS: i64 = veille_proto::units::MS_PER_DAY;

fn open(url: &str) -> Store {
    Store::open_location(&Location::Postgres {
        url: url.to_owned(),
    })
    .unwrap()
}

fn sql(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap()
}

fn count(url: &str, table: &str) -> i64 {
    sql(url)
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// Minute reports `seqs` of boot `b1`, the first starting at `t0`.
fn batch(device: &str, t0: i64, seqs: std::ops::RangeInclusive<u64>) -> ReportBatch {
    let first = *seqs.start();
    ReportBatch {
        device_id: device.into(),
        reports: seqs
            .map(|seq| {
                let start = t0 + (seq - first) as i64 * 60_000;
                Report {
                    boot_id: "b1".into(),
                    seq,
                    start_unix_ms: start,
                    end_unix_ms: start + 60_000,
                    boot_time_unix_s: t0 / 1000 - 60,
                    uptime_s: 60,
                    active_ms: 20_000 + seq,
                    idle_ms: 40_000 - seq,
                    cpu_util: 0.25,
                    ..Default::default()
                }
            })
            .collect(),
        inventory: None,
        agent_version: "0.1.0".into(),
    }
}

#[test]
fn urls_are_shown_without_their_password() {
    assert_eq!(
        redact("postgres://veille:s3cret@db:5432/veille"),
        "postgres://veille:***@db:5432/veille"
    );
    assert_eq!(redact("postgres://veille@db/v"), "postgres://veille@db/v");
    assert_eq!(redact("postgres://db/v"), "postgres://db/v");
}

#[test]
fn a_refused_connection_is_unavailable_and_names_the_url_without_its_password() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Postgres::connect(&format!("postgres://veille:s3cret@127.0.0.1:{port}/v")).unwrap_err();
    assert!(e.is_transient(), "{e}");
    let text = e.to_string();
    assert!(text.contains("veille:***@127.0.0.1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn a_malformed_url_is_refused_as_such() {
    let e = Postgres::connect("postgres://u:pw@host:notaport/db").unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e}");
    assert!(!e.to_string().contains("pw@"), "{e}");
}

#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    let url = testpg::fresh_database();
    open(&url);
    open(&url);
    let versions: Vec<i32> = sql(&url)
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=schema::current_version()).collect::<Vec<_>>()
    );

    let newer = schema::current_version() + 1;
    sql(&url)
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&newer],
        )
        .unwrap();
    let e = Store::open_location(&Location::Postgres { url }).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!(
            "schema version {newer}, newer than this collector's"
        )),
        "{e}"
    );
}

#[test]
fn partitions_are_made_on_demand_and_a_purge_empties_the_old_ones() {
    let url = testpg::fresh_database();
    let store = open(&url);
    // Forty days ago: neither its day nor (most of the time) its month was made at
    // connect. One hour into that UTC day, whatever the time now: the purge at t0 + 2 h
    // below must fall inside the day (from 22:00 UTC on, "now − 40 days + 2 h" was the
    // next day, and the day's partition was dropped instead of emptied).
    let t0 = (crate::clock::now_ms() - 40 * DAY_MS).div_euclid(DAY_MS) * DAY_MS + HOUR_MS;
    let raw = schema::Table::RawHours.partition_of(t0).unwrap();
    let month = schema::Table::RollupDays.partition_of(t0).unwrap();
    assert_eq!(
        count(&url, &format!("pg_class WHERE relname = '{}'", raw.name)),
        0
    );
    let o = store
        .apply_batch("acme", &batch("dev-1", t0, 1..=30), t0)
        .unwrap();
    assert_eq!(o.stored, 30);
    assert_eq!(
        count(&url, &raw.name),
        1,
        "one packed device-hour in its day"
    );
    assert!(count(&url, &month.name) >= 1, "its rollup day in its month");
    assert_eq!(count(&url, "raw_hours_default"), 0);

    // A time out of the partitioned years still lands, in the default partition.
    let y1999 = 915_148_800_000;
    store
        .apply_batch("acme", &batch("old-clock", y1999, 1..=1), t0)
        .unwrap();
    assert_eq!(count(&url, "raw_hours_default"), 1);
    assert_eq!(count(&url, "rollup_days_default"), 1);

    // A second store (another collector) knows nothing of the new partition: it learns
    // it from the catalog instead of creating it again.
    let other = open(&url);
    let o = other
        .apply_batch("acme", &batch("dev-2", t0, 1..=5), t0)
        .unwrap();
    assert_eq!(o.stored, 5);
    assert_eq!(count(&url, &raw.name), 2);

    // A purge inside the day empties rows but keeps the day's partition.
    let out = store.purge_raw_reports(t0 + 2 * HOUR_MS).unwrap();
    assert_eq!(out.reports, 36);
    assert_eq!(
        count(&url, &raw.name),
        0,
        "the old day's partition is empty"
    );
    assert_eq!(count(&url, "raw_hours_default"), 0);
    assert!(count(&url, &month.name) >= 2, "rollups stay");
    assert_eq!(store.report_count(), 0);
    let exists = |name: &str| count(&url, &format!("pg_class WHERE relname = '{name}'")) == 1;
    let today = schema::Table::RawHours
        .partition_of(crate::clock::now_ms())
        .unwrap();
    assert!(exists(&raw.name) && exists(&today.name));

    // Once the cutoff passes the day's end, the emptied partition is dropped; today's,
    // the default and the rollups' stay.
    store.purge_raw_reports(raw.to + HOUR_MS).unwrap();
    assert!(!exists(&raw.name), "{} dropped", raw.name);
    assert!(exists(&today.name) && exists("raw_hours_default") && exists(&month.name));
    // A late report of that day (clock set back, seq above the purged ones) is still
    // stored. A collector whose cache still names the dropped partition lands it in
    // the default partition, which then keeps that day's range.
    let o = other
        .apply_batch("acme", &batch("dev-3", t0, 1..=2), t0)
        .unwrap();
    assert_eq!(o.stored, 2);
    assert_eq!(count(&url, "raw_hours_default"), 1);
    let o = store
        .apply_batch("acme", &batch("dev-4", t0, 1..=2), t0)
        .unwrap();
    assert_eq!(o.stored, 2);
    assert_eq!(count(&url, "raw_hours_default"), 2);
    assert_eq!(store.report_count(), 4);
}

#[test]
fn a_lost_database_is_unavailable_and_the_store_resumes_when_it_returns() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.create_database().unwrap();
    let store = open(&url);
    let t0 = crate::clock::now_ms() / HOUR_MS * HOUR_MS - 3 * HOUR_MS;
    store
        .apply_batch("acme", &batch("dev-1", t0, 1..=10), t0)
        .unwrap();
    store.flush().unwrap();

    cluster.stop();
    let e = store
        .apply_batch("acme", &batch("dev-1", t0, 11..=20), t0)
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(store.flush().unwrap_err().is_transient());
    assert!(store.devices(None).unwrap_err().is_transient());
    assert!(store.size_on_disk().unwrap_err().is_transient());
    assert!(!format!("{e}").contains("password"));

    cluster.restart().unwrap();
    // The kept connections died with the old server: the first write and flush after
    // its return go through on new ones, without a failed call first.
    let o = store
        .apply_batch("acme", &batch("dev-1", t0, 11..=20), t0)
        .unwrap();
    assert_eq!((o.stored, o.highest_durable_seq), (10, 20));
    store.flush().unwrap();
    let seqs: Vec<u64> = store
        .all_reports("acme", "dev-1")
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

/// Two collectors on one database receive the same batches (an agent that timed out
/// on one resends through the other): every seq is stored once, and the rollups are
/// those of one writer, bit for bit.
#[test]
fn two_stores_writing_the_same_devices_at_once_store_every_seq_once() {
    const DEVICES: usize = 6;
    const BATCHES: u64 = 12;
    const PER_BATCH: u64 = 25;
    let t0 = crate::clock::now_ms() / HOUR_MS * HOUR_MS - 6 * HOUR_MS;
    let batches: Vec<(String, ReportBatch)> = (0..BATCHES)
        .flat_map(|b| {
            (0..DEVICES).map(move |d| {
                let first = b * PER_BATCH + 1;
                let t = t0 + (first as i64 - 1) * 60_000;
                let org = if d % 2 == 0 { "acme" } else { "town" };
                (
                    org.to_owned(),
                    batch(&format!("dev-{d}"), t, first..=first + PER_BATCH - 1),
                )
            })
        })
        .collect();

    let url = testpg::fresh_database();
    let (a, b) = (open(&url), open(&url));
    let run = |store: &Store| {
        let mut stored = 0;
        for (org, batch) in &batches {
            stored += store.apply_batch(org, batch, t0).unwrap().stored;
            store.flush().unwrap();
        }
        stored
    };
    let stored: u32 = std::thread::scope(|s| {
        let (ha, hb) = (s.spawn(|| run(&a)), s.spawn(|| run(&b)));
        ha.join().unwrap() + hb.join().unwrap()
    });
    let total = DEVICES as u64 * BATCHES * PER_BATCH;
    assert_eq!(
        u64::from(stored),
        total,
        "each seq stored by exactly one collector"
    );
    assert_eq!(a.report_count() as u64, total);

    let single = open(&testpg::fresh_database());
    for (org, batch) in &batches {
        single.apply_batch(org, batch, t0).unwrap();
    }
    for d in 0..DEVICES {
        let org = if d % 2 == 0 { "acme" } else { "town" };
        let dev = format!("dev-{d}");
        let seqs: Vec<u64> = b
            .all_reports(org, &dev)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (1..=BATCHES * PER_BATCH).collect::<Vec<_>>(), "{dev}");
        let record = a.device(org, &dev).unwrap().unwrap();
        assert_eq!(record.reports, BATCHES * PER_BATCH);
        assert_eq!(record.conflicts, 0);
        let all = |s: &Store| s.rollups(org, &dev, i64::MIN / 2, i64::MAX / 2).unwrap();
        assert_eq!(all(&a), all(&single), "{dev}: rollups of one writer");
        assert!(!all(&a).is_empty());
    }
}
