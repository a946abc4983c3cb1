//! `raw_retention_days`: raw per-interval reports say when someone worked, which is
//! personal data, so they are deleted once they are older than the retention; the
//! hourly rollups that the energy reports read stay. A background task of the server
//! purges once at start and then every [`PURGE_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

/// How often the server looks for reports past the retention.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How soon a purge the store could not take now (database down, disk full) is tried
/// again: sooner than [`PURGE_EVERY`], so that a collector started while PostgreSQL was
/// down does not keep an hour of reports past the retention once it is back.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long the task waits after a purge attempt. A store that is down is the
/// ingest's condition to report (one log line when writes start failing), not an error
/// of the purge, which is simply tried again soon.
fn wait_after(result: &Result<(), crate::store::StoreError>) -> Duration {
    match result {
        Err(e) if e.is_transient() => RETRY_AFTER,
        _ => PURGE_EVERY,
    }
}

use veille_proto::units::MS_PER_DAY as DAY_MS;

/// Reports ending before this instant are past a retention of `days`; `None` when
/// `days` is 0 (keep raw reports forever).
pub fn cutoff_unix_ms(now_unix_ms: i64, days: u32) -> Option<i64> {
    (days > 0).then(|| now_unix_ms.saturating_sub(i64::from(days) * DAY_MS))
}

/// Starts the purge task; it ends when `stop` turns true.
pub fn spawn(store: Arc<Store>, days: u32, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if days == 0 {
            tracing::info!("raw_retention_days = 0: raw reports are kept forever");
            return;
        }
        loop {
            let now = crate::clock::now_ms();
            let mut wait = PURGE_EVERY;
            if let Some(cutoff) = cutoff_unix_ms(now, days) {
                let s = store.clone();
                let outcome = match tokio::task::spawn_blocking(move || s.purge_raw_reports(cutoff))
                    .await
                {
                    Ok(Ok(out)) => {
                        if out.reports > 0 {
                            tracing::info!(
                                reports = out.reports,
                                devices = out.devices,
                                days,
                                "purged raw reports past raw_retention_days (hourly rollups kept)"
                            );
                        } else {
                            tracing::debug!("no raw report past the retention");
                        }
                        Ok(())
                    }
                    Ok(Err(e)) => {
                        if e.is_transient() {
                            tracing::warn!(error = %e, retry_in = ?RETRY_AFTER, "raw-report purge postponed: the store cannot take writes now");
                        } else {
                            tracing::error!(error = %e, "purging raw reports failed");
                        }
                        Err(e)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the purge task failed");
                        Ok(())
                    }
                };
                wait = wait_after(&outcome);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_now_minus_whole_days_and_zero_disables() {
        assert_eq!(cutoff_unix_ms(1_000 * DAY_MS, 90), Some(910 * DAY_MS));
        assert_eq!(cutoff_unix_ms(1_000 * DAY_MS, 0), None);
        assert_eq!(cutoff_unix_ms(i64::MIN + 5, 1), Some(i64::MIN));
    }

    #[test]
    fn a_store_that_is_down_is_retried_within_a_minute_other_failures_hourly() {
        use crate::store::StoreError;
        assert_eq!(wait_after(&Ok(())), PURGE_EVERY);
        assert_eq!(
            wait_after(&Err(StoreError::Unavailable("database gone".into()))),
            RETRY_AFTER
        );
        assert_eq!(
            wait_after(&Err(StoreError::Engine("bad row".into()))),
            PURGE_EVERY
        );
        assert!(RETRY_AFTER < PURGE_EVERY);
    }
}
