//! `<data_dir>/listen.json`: where a running server listens, so that read subcommands
//! (`veille-collector devices`) and tests get the server's own answer (its caches, its
//! config) rather than reading the store beside it.
//!
//! Format (stable): `{"grpc": "127.0.0.1:41233", "http": "127.0.0.1:41234", "pid": 1234,
//! "mqtt": "127.0.0.1:1883", "mqtt5": "127.0.0.1:1884"}` (the MQTT keys only with the
//! embedded broker; `"tls_cert": "/path/server.pem"` only with TLS on).
//! Written atomically (temporary file + rename) once both listeners are bound, removed
//! on clean exit. A file left by a crashed server is harmless: its addresses do not
//! answer and readers fall back to the store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the data directory.
pub const LISTEN_FILE: &str = "listen.json";

/// Contents of `listen.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenInfo {
    /// Bound gRPC address.
    pub grpc: SocketAddr,
    /// Bound HTTP address.
    pub http: SocketAddr,
    /// Process id of the server.
    pub pid: u32,
    /// MQTT 3.1.1 listener of the embedded broker; absent with an external broker or
    /// MQTT off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<SocketAddr>,
    /// MQTT 5 listener of the embedded broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt5: Option<SocketAddr>,
    /// With TLS on (`[tls]`): the server certificate file. The local CLI speaks TLS to
    /// the HTTP API and trusts exactly this certificate. Absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenFileError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Path of `listen.json` in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(LISTEN_FILE)
}

/// Writes `info` atomically.
pub fn write(data_dir: &Path, info: &ListenInfo) -> Result<(), ListenFileError> {
    let target = path(data_dir);
    let tmp = data_dir.join(format!(".{LISTEN_FILE}.{}", std::process::id()));
    let err = |source| ListenFileError::Write {
        path: target.clone(),
        source,
    };
    // Serialising two addresses and an integer cannot fail.
    let text = serde_json::to_string(info).unwrap_or_default();
    std::fs::write(&tmp, text + "\n").map_err(err)?;
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Reads `listen.json`; `Ok(None)` when there is none (no server running).
pub fn read(data_dir: &Path) -> Result<Option<ListenInfo>, ListenFileError> {
    let p = path(data_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ListenFileError::Read { path: p, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ListenFileError::Parse { path: p, source })
}

/// Removes `listen.json` if it names this process (a newer server's file is left alone).
pub fn remove(data_dir: &Path) {
    if let Ok(Some(info)) = read(data_dir)
        && info.pid != std::process::id()
    {
        return;
    }
    let _ = std::fs::remove_file(path(data_dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let info = ListenInfo {
            grpc: "127.0.0.1:1".parse().unwrap(),
            http: "127.0.0.1:2".parse().unwrap(),
            pid: std::process::id(),
            mqtt: None,
            mqtt5: None,
            tls_cert: None,
        };
        write(dir.path(), &info).unwrap();
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert_eq!(
            text.trim(),
            format!(
                r#"{{"grpc":"127.0.0.1:1","http":"127.0.0.1:2","pid":{}}}"#,
                info.pid
            )
        );
        assert_eq!(read(dir.path()).unwrap(), Some(info));
        remove(dir.path());
        assert!(!path(dir.path()).exists());
    }
}
