//! How a command-line verb reaches the data: while a collector runs, the CLI asks it
//! over HTTP (found through `listen.json`, authenticated with the operator token), so
//! the answer is the server's own (its caches, its policy key, its config); when none
//! answers, the CLI opens the store itself (both engines take a second process, so a
//! stale `listen.json` is only logged). Every verb that reads or changes the store
//! goes through [`run`], so they all tell a refusal and a missing store apart in the
//! same words.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::http_client;
use crate::listen_file::{self, ListenFileError};
use crate::store::{Location, Store, StoreError};
use crate::tokens::{self, TokenError};

/// How long a verb waits for a running server before reading the store itself.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest part of a refusal's body quoted in an error.
const QUOTED_BODY_CHARS: usize = 300;

/// The request a running server answers in place of the local path.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub json_body: Option<&'a [u8]>,
}

impl<'a> ApiCall<'a> {
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            json_body: None,
        }
    }
}

/// What the local path does when the data directory has no store yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStore {
    /// Reading must not create an empty store as a side effect: answer [`Answer::NoStore`].
    Report,
    /// Writing may come before the first `serve` (a policy, a room): create it.
    Create,
}

/// Where the answer came from.
#[derive(Debug)]
pub enum Answer<T> {
    /// The running server's 200 body.
    Server(Vec<u8>),
    /// The local path's result.
    Local(T),
    /// No server runs and no store exists at this path.
    NoStore(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    ListenFile(#[from] ListenFileError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("the collector at {addr} answered {status}: {body}")]
    Refused {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store task failed: {0}")]
    Task(String),
}

impl RouteError {
    /// The HTTP status of a refusal, to let callers map 400/409 to a usage error.
    pub fn refused_status(&self) -> Option<u16> {
        match self {
            RouteError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `call` on the running server, or `local` on the store `config` names when no server
/// answers. Errors of `local` pass through untouched; the route's own errors become `E`.
pub async fn run<T, E>(
    config: &Config,
    call: ApiCall<'_>,
    no_store: NoStore,
    local: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<Answer<T>, E>
where
    T: Send + 'static,
    E: From<RouteError> + Send + 'static,
{
    let data_dir = &config.data_dir();
    if let Some(info) = listen_file::read(data_dir).map_err(RouteError::from)? {
        let token = tokens::read_operator_token(data_dir).map_err(RouteError::from)?;
        let sent = http_client::request(
            &info,
            call.method,
            call.path,
            Some(&token),
            call.json_body,
            API_TIMEOUT,
        )
        .await;
        match sent {
            Ok(resp) if resp.status == 200 => return Ok(Answer::Server(resp.body)),
            Ok(resp) => {
                return Err(RouteError::Refused {
                    addr: info.http,
                    status: resp.status,
                    body: refusal_text(&resp.body),
                }
                .into());
            }
            Err(e) => {
                tracing::debug!(addr = %info.http, error = %e,
                    "listen.json is stale (no collector answers); using the store directly");
            }
        }
    }
    if no_store == NoStore::Report
        && let Location::Embedded { dir, .. } = config.store_location()
        && !dir.exists()
    {
        return Ok(Answer::NoStore(dir));
    }
    let config = config.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let store = config.open_store()?;
        Ok::<_, StoreError>(local(&store))
    })
    .await
    .map_err(|e| RouteError::Task(e.to_string()))?;
    match opened {
        Ok(result) => result.map(Answer::Local),
        Err(e) => Err(RouteError::Store(e).into()),
    }
}

/// The server's refusal as one line: its JSON `error` field when it sent one (the API's
/// error shape), else its text, trimmed and bounded.
fn refusal_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| text.into_owned());
    message.trim().chars().take(QUOTED_BODY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::STORE_DIR;
    use std::path::Path;

    #[test]
    fn refusal_text_prefers_the_json_error_field() {
        assert_eq!(
            refusal_text(br#"{"error":"version 3 is not above 4"}"#),
            "version 3 is not above 4"
        );
        assert_eq!(refusal_text(b"  plain text\n"), "plain text");
        assert_eq!(refusal_text(br#"{"other":1}"#), r#"{"other":1}"#);
        assert_eq!(refusal_text(&[b'x'; 1000]).len(), QUOTED_BODY_CHARS);
    }

    fn config_in(dir: &Path) -> Config {
        let mut c = Config::defaults().unwrap();
        c.data_dir = dir.to_string_lossy().into_owned();
        c
    }

    #[tokio::test]
    async fn without_server_or_store_a_read_reports_no_store_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let answer = run::<(), RouteError>(
            &config_in(dir.path()),
            ApiCall::get("/api/v1/devices"),
            NoStore::Report,
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert!(matches!(answer, Answer::NoStore(p) if p == dir.path().join(STORE_DIR)));
        assert!(!dir.path().join(STORE_DIR).exists());
    }

    #[tokio::test]
    async fn without_server_a_write_creates_the_store_and_runs_locally() {
        let dir = tempfile::tempdir().unwrap();
        let answer = run::<usize, RouteError>(
            &config_in(dir.path()),
            ApiCall::get("/api/v1/devices"),
            NoStore::Create,
            |store| Ok(store.devices(None).map_err(RouteError::Store)?.len()),
        )
        .await
        .unwrap();
        assert!(matches!(answer, Answer::Local(0)));
        assert!(dir.path().join(STORE_DIR).exists());
    }

    #[tokio::test]
    async fn a_stale_listen_file_falls_back_to_the_store_another_process_holds_open() {
        let dir = tempfile::tempdir().unwrap();
        let held = Store::open(&dir.path().join(STORE_DIR)).unwrap();
        held.put_assets(&[("acme".into(), "d1".into(), Default::default())])
            .unwrap();
        // A listen.json pointing at a port nobody listens on: a stale file.
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = unused.local_addr().unwrap();
        drop(unused);
        listen_file::write(
            dir.path(),
            &listen_file::ListenInfo {
                grpc: addr,
                http: addr,
                pid: std::process::id(),
                mqtt: None,
                mqtt5: None,
                tls_cert: None,
            },
        )
        .unwrap();
        std::fs::write(dir.path().join(tokens::OPERATOR_TOKEN_FILE), "t0ken\n").unwrap();
        let answer = run::<bool, RouteError>(
            &config_in(dir.path()),
            ApiCall::get("/api/v1/devices"),
            NoStore::Report,
            |store| {
                Ok(store
                    .asset("acme", "d1")
                    .map_err(RouteError::Store)?
                    .is_some())
            },
        )
        .await
        .unwrap();
        assert!(matches!(answer, Answer::Local(true)));
    }

    #[tokio::test]
    async fn a_data_directory_of_veille_0_1_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(crate::store::OLD_SLED_DIR);
        std::fs::create_dir_all(&old).unwrap();
        // sled's files: a `conf` and a `db` beside `blobs/`.
        std::fs::write(old.join("conf"), "segment_size: 524288\n").unwrap();
        std::fs::write(old.join("db"), [0u8; 64]).unwrap();
        let err = run::<(), RouteError>(
            &config_in(dir.path()),
            ApiCall::get("/api/v1/devices"),
            NoStore::Create,
            |_| Ok(()),
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("Veille 0.1 store (sled)"), "{msg}");
        assert!(msg.contains("move it away"), "{msg}");
        assert!(
            !dir.path().join(STORE_DIR).exists(),
            "no empty store beside it"
        );
    }
}
