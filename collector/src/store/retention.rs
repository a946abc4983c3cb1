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
            if let Some(cutoff) = cutoff_unix_ms(now, days) {
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.purge_raw_reports(cutoff)).await {
                    Ok(Ok(out)) if out.reports > 0 => tracing::info!(
                        reports = out.reports,
                        devices = out.devices,
                        days,
                        "purged raw reports past raw_retention_days (hourly rollups kept)"
                    ),
                    Ok(Ok(_)) => tracing::debug!("no raw report past the retention"),
                    Ok(Err(e)) => tracing::error!(error = %e, "purging raw reports failed"),
                    Err(e) => tracing::error!(error = %e, "the purge task failed"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PURGE_EVERY) => {}
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
}
