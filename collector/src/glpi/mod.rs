//! The GLPI REST link's I/O edge: `veille-collector glpi sync [--dry-run]` and the
//! server's periodic sync.
//!
//! A sync opens a session (`initSession` with `Authorization: user_token …` and the
//! App-Token), reads every computer then every monitor page by page (`range`,
//! `Content-Range`, 206 until the last page; [`veille_domain::renewal::glpi_api`]
//! parses each page), and always closes the session (`killSession`), after an error
//! too. Only when every page has been read are the items matched and written, through
//! the CSV import's own path ([`crate::glpi::csv::apply_in`]: one transaction, a
//! re-sync of unchanged data writes nothing): a sync that fails half-way applies
//! nothing and names the request that failed, and the next one starts over.
//!
//! GLPI's refusals (`401 ["ERROR_GLPI_LOGIN_USER_TOKEN", "…"]`, an API that is
//! disabled or refuses this address, `400 ["ERROR_…", "…"]`) are reported with GLPI's
//! code and message. Tokens never appear in errors or logs.

pub mod csv;
pub mod http;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use tracing::{info, warn};

use crate::config::glpi::{BaseUrl, GlpiConfig};
use crate::glpi::csv::{self as import, ImportOutcome, Keep};
use crate::store::{Store, StoreError};
use veille_domain::renewal::fleet::AssetKind;
use veille_domain::renewal::glpi::GlpiExport;
use veille_domain::renewal::glpi_api::{self, ActiveFleet, ApiError, ApiItem, ItemType};
use veille_domain::renewal::horizon::Date;

/// Longest wait for one GLPI answer (a page of 1000 items with infocoms takes GLPI a
/// few seconds on a small server).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a sync stopped. Nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no GLPI link configured: set glpi.url (and glpi.user_token)")]
    Off,
    #[error("glpi.url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{request}: {reason}; nothing was applied")]
    Transport { request: String, reason: String },
    #[error("GLPI refused {request} ({status} {code}): {message}; nothing was applied")]
    Refused {
        request: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{request}: {source}; nothing was applied")]
    BadAnswer { request: String, source: ApiError },
    #[error("no store in {path}: has a collector run with this data directory?")]
    NoStore { path: std::path::PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// True when the operator's configuration is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SyncError::Off
                | SyncError::BadUrl { .. }
                | SyncError::Config(_)
                | SyncError::NoStore { .. }
        ) || matches!(
            self,
            SyncError::Refused {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// Every item GLPI holds, all pages read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    pub items: Vec<ApiItem>,
    /// Requests sent, `initSession` and `killSession` included (for the log).
    pub requests: usize,
}

/// One session with GLPI.
struct Session<'a> {
    base: &'a BaseUrl,
    app_token: &'a str,
    token: String,
    requests: usize,
}

/// Sends `GET base/path` with GLPI's headers; `auth` is the `Authorization` or
/// `Session-Token` header to add. Non-2xx answers become [`SyncError::Refused`].
async fn get(
    base: &BaseUrl,
    app_token: &str,
    path_and_query: &str,
    auth: (&str, &str),
) -> Result<crate::http_client::HttpResponse, SyncError> {
    let request = format!("GET {}", path_and_query);
    let mut headers = vec![(auth.0, auth.1), ("Content-Type", "application/json")];
    if !app_token.is_empty() {
        headers.push(("App-Token", app_token));
    }
    let path = format!("{}/{}", base.path, path_and_query);
    let resp = http::get(base, &path, &headers, REQUEST_TIMEOUT)
        .await
        .map_err(|reason| SyncError::Transport {
            request: request.clone(),
            reason,
        })?;
    if !(200..300).contains(&resp.status) {
        let (code, message) = glpi_api::parse_error_body(&resp.body).unwrap_or_else(|| {
            (
                "no GLPI error code".into(),
                String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned(),
            )
        });
        return Err(SyncError::Refused {
            request,
            status: resp.status,
            code,
            message,
        });
    }
    Ok(resp)
}

/// Opens a session, reads every computer and monitor, closes the session whatever
/// happened in between.
pub async fn fetch(config: &GlpiConfig) -> Result<Fetched, SyncError> {
    if !config.enabled() {
        return Err(SyncError::Off);
    }
    let base = BaseUrl::parse(&config.url).map_err(|reason| SyncError::BadUrl {
        url: config.url.clone(),
        reason,
    })?;
    let auth = format!("user_token {}", config.user_token);
    let resp = get(
        &base,
        &config.app_token,
        "initSession",
        ("Authorization", &auth),
    )
    .await?;
    let token = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("session_token")?.as_str().map(str::to_owned))
        .ok_or_else(|| SyncError::BadAnswer {
            request: "GET initSession".into(),
            source: ApiError::NotJson("no \"session_token\" in the answer".into()),
        })?;
    let mut session = Session {
        base: &base,
        app_token: &config.app_token,
        token,
        requests: 1,
    };
    let read = read_all(&mut session, config.page_size).await;
    // Always: a session left open holds a PHP session file on the GLPI server until
    // it expires.
    let killed = get(
        &base,
        &config.app_token,
        "killSession",
        ("Session-Token", &session.token),
    )
    .await;
    session.requests += 1;
    if let Err(e) = &killed {
        warn!(error = %e, "GLPI killSession failed (the session expires on its own)");
    }
    Ok(Fetched {
        items: read?,
        requests: session.requests,
    })
}

async fn read_all(session: &mut Session<'_>, page_size: u32) -> Result<Vec<ApiItem>, SyncError> {
    let mut items = Vec::new();
    for itemtype in ItemType::ALL {
        let mut start = 0u64;
        loop {
            let path = format!(
                "{}?expand_dropdowns=true&with_infocoms=true&get_hateoas=false&range={}",
                itemtype.as_str(),
                glpi_api::range_param(start, page_size)
            );
            let request = format!("GET {path}");
            let resp = get(
                session.base,
                session.app_token,
                &path,
                ("Session-Token", &session.token),
            )
            .await?;
            session.requests += 1;
            let bad = |source| SyncError::BadAnswer {
                request: request.clone(),
                source,
            };
            let page = glpi_api::parse_page(itemtype, &resp.body).map_err(bad)?;
            let next = glpi_api::next_start(resp.status, resp.header("Content-Range"), start)
                .map_err(bad)?;
            info!(
                itemtype = itemtype.as_str(),
                from = start,
                items = page.len(),
                "GLPI page read"
            );
            let empty = page.is_empty();
            items.extend(page);
            match next {
                // An empty partial page would ask for the same range forever.
                Some(n) if !empty => start = n,
                Some(_) => {
                    return Err(bad(ApiError::RangeMismatch {
                        asked: start,
                        got: "an empty page with items remaining".into(),
                    }));
                }
                None => break,
            }
        }
    }
    Ok(items)
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    pub org: String,
    pub fleet: ActiveFleet,
    pub computers: usize,
    pub monitors: usize,
    pub import: ImportOutcome,
}

/// Matches the active items against `org`'s devices and, unless `dry_run`, writes
/// them in one transaction (blocking: call it off the async runtime's workers).
pub fn apply(
    store: &Store,
    org: &str,
    items: &[ApiItem],
    today: Date,
    dry_run: bool,
    now_ms: i64,
) -> Result<SyncOutcome, StoreError> {
    let fleet = glpi_api::active_rows(items, today);
    let export = GlpiExport {
        separator: ';',
        ignored_columns: Vec::new(),
        rows: fleet.matchable_rows(),
    };
    // Every active item without an agent is kept: unmatched computers and monitors.
    let kind = |t| match t {
        ItemType::Computer => AssetKind::Computer,
        ItemType::Monitor => AssetKind::Monitor,
    };
    let mut keep = Keep {
        org: org.to_owned(),
        kinds: ItemType::ALL.into_iter().map(kind).collect(),
        rows_kind: AssetKind::Computer,
        ids: Default::default(),
        extra: Vec::new(),
    };
    for (row, (t, id)) in fleet.rows.iter().zip(&fleet.items) {
        match t {
            ItemType::Computer => {
                keep.ids.insert(row.line, *id);
            }
            t => keep.extra.push((kind(*t), *id, row.clone())),
        }
    }
    let import = import::apply_in(store, &export, Some(org), Some(&keep), dry_run, now_ms)?;
    let count = |t| items.iter().filter(|i| i.itemtype == t).count();
    Ok(SyncOutcome {
        org: org.to_owned(),
        computers: count(ItemType::Computer),
        monitors: count(ItemType::Monitor),
        fleet,
        import,
    })
}

/// The summary: the items read and left out, the active monitors, then the CSV
/// import's own lines for the computers ("line N" is the item's position in the sync).
pub fn render(o: &SyncOutcome) -> String {
    let mut out = format!(
        "GLPI API: {} items ({} computers, {} monitors) for org {}; {} left out\n",
        o.computers + o.monitors,
        o.computers,
        o.monitors,
        o.org,
        o.fleet.left_out.len()
    );
    for l in &o.fleet.left_out {
        out.push_str(&format!(
            "  left out: {} {} {:?} ({})\n",
            l.itemtype.as_str(),
            l.id,
            l.name.as_deref().unwrap_or(""),
            l.reason
        ));
    }
    let monitors = o.fleet.active(ItemType::Monitor);
    if monitors > 0 {
        out.push_str(&format!(
            "active monitors: {monitors} (no agent runs on a monitor: kept without agent)\n"
        ));
    }
    out.push_str(&import::render_outcome(&o.import));
    out
}

/// The whole command: open the store, fetch, apply. Returns the summary.
pub async fn sync(
    config: &crate::config::Config,
    dry_run: bool,
    now_ms: i64,
) -> Result<String, SyncError> {
    let org = config.glpi.org_id(&config.org_ids())?;
    if !config.glpi.enabled() {
        return Err(SyncError::Off);
    }
    if let crate::store::Location::Embedded { dir, .. } = config.store_location()
        && !dir.exists()
    {
        // Opening would create an empty store; every computer would be "unmatched".
        return Err(SyncError::NoStore { path: dir });
    }
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || config.open_store())
            .await
            .map_err(|e| SyncError::Transport {
                request: "opening the store".into(),
                reason: e.to_string(),
            })??
    };
    sync_into(Arc::new(store), &config.glpi, org, dry_run, now_ms).await
}

/// One sync into an open store (the server's, or the CLI's). "Today" (for
/// decommission dates) is `now_ms`'s UTC day, as in the renewal report.
pub async fn sync_into(
    store: Arc<Store>,
    config: &GlpiConfig,
    org: String,
    dry_run: bool,
    now_ms: i64,
) -> Result<String, SyncError> {
    let today = Date::from_days_since_epoch(now_ms.div_euclid(86_400_000) as i32);
    let fetched = fetch(config).await?;
    info!(
        items = fetched.items.len(),
        requests = fetched.requests,
        "GLPI read"
    );
    tokio::task::spawn_blocking(move || {
        let outcome = apply(&store, &org, &fetched.items, today, dry_run, now_ms)?;
        Ok(render(&outcome))
    })
    .await
    .map_err(|e| SyncError::Transport {
        request: "applying the sync".into(),
        reason: e.to_string(),
    })?
}

/// The server's periodic sync (`glpi.sync_every_minutes`): one sync at start, then
/// one per period, each logged with the summary `glpi sync` prints (or the error, and
/// the next period starts over). `None` when the link or the period is off.
pub fn spawn_periodic(
    store: Arc<Store>,
    config: &crate::config::Config,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let glpi = config.glpi.clone();
    if !glpi.enabled() || glpi.sync_every_minutes == 0 {
        return None;
    }
    // Checked by Config::validate: a set URL has a resolvable org.
    let org = glpi.org_id(&config.org_ids()).ok()?;
    let every = Duration::from_secs(u64::from(glpi.sync_every_minutes) * 60);
    Some(tokio::spawn(async move {
        loop {
            let run = sync_into(
                store.clone(),
                &glpi,
                org.clone(),
                false,
                crate::clock::now_ms(),
            );
            tokio::select! {
                r = run => match r {
                    Ok(summary) => info!(org = %org, %summary, "GLPI sync"),
                    Err(e) => tracing::error!(org = %org, error = %e, "GLPI sync failed"),
                },
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }))
}

#[cfg(test)]
mod tests;
