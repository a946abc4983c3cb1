//! Secrets kept in the data directory: the operator token (always) and the token of the
//! `default` organisation (when the configuration names no org). Both are generated at
//! first start (32 random bytes, hex) and written with mode 0600.
//!
//! The collector only verifies org tokens, so it keeps only their SHA-256
//! (`default-org.token.sha256`; `token_sha256` in `[[orgs]]`, see [`crate::auth`] for
//! why SHA-256 suffices). The clear `default-org.token` is written once, at creation, for
//! the operator to copy into agents' configuration; the collector never reads it again
//! except to migrate a data directory from before the hash file existed, and it may be
//! deleted once agents are enrolled. The operator token stays in clear: the local CLI
//! presents it to the running server.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::auth::TokenHash;
use crate::config::OrgConfig;

pub use crate::config::DEFAULT_ORG_ID;
/// File holding the `default` org's token in clear, in the data directory: written at
/// creation for the operator, never needed by the collector afterwards.
pub const DEFAULT_ORG_TOKEN_FILE: &str = "default-org.token";
/// File holding the SHA-256 (hex) of the `default` org's token: what the collector
/// verifies against on every start.
pub const DEFAULT_ORG_TOKEN_HASH_FILE: &str = "default-org.token.sha256";
/// File holding the operator token (HTTP API, local CLI), in the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write token file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token file {path} is empty or holds spaces; delete it to generate a new token")]
    Malformed { path: PathBuf },
    #[error(
        "token hash file {path} does not hold 64 hex digits; delete it (and {DEFAULT_ORG_TOKEN_FILE} \
         if you no longer have the token) to generate a new token"
    )]
    MalformedHash { path: PathBuf },
    #[error("orgs entry {org:?} has neither a token nor a valid token_sha256")]
    NoToken { org: String },
}

/// The tokens in force for one run of the server.
#[derive(Clone)]
pub struct Tokens {
    /// (org id, token digest) pairs, from the configuration or the `default` org.
    pub orgs: Vec<(String, TokenHash)>,
    /// The operator token.
    pub operator: String,
    /// The `default` org's token when this call generated it (first start): the only
    /// time the collector holds it in clear, to show it once.
    pub created_default_org: Option<String>,
    /// Set when this call wrote the hash file from an existing clear token file (a data
    /// directory from before tokens were hashed at rest).
    pub migrated_default_org: bool,
    /// Set when the `default` org is in force: where its clear token was written.
    pub default_org_token_file: Option<PathBuf>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "orgs",
                &self.orgs.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("created_default_org", &self.created_default_org.is_some())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The token digest of org `id`, if that org is in force.
    pub fn org_hash(&self, id: &str) -> Option<TokenHash> {
        self.orgs.iter().find(|(org, _)| org == id).map(|(_, h)| *h)
    }
}

/// Reads the token files of `data_dir`, creating the missing ones (and `data_dir`), and
/// migrating a clear `default-org.token` without its hash file.
pub fn load_or_create(data_dir: &Path, orgs: &[OrgConfig]) -> Result<Tokens, TokenError> {
    std::fs::create_dir_all(data_dir).map_err(|source| TokenError::Write {
        path: data_dir.to_owned(),
        source,
    })?;
    let (operator, _) = read_or_create(&data_dir.join(OPERATOR_TOKEN_FILE))?;
    if !orgs.is_empty() {
        let orgs = orgs
            .iter()
            .map(|o| {
                o.token_hash()
                    .map(|h| (o.id.clone(), h))
                    .ok_or_else(|| TokenError::NoToken { org: o.id.clone() })
            })
            .collect::<Result<_, _>>()?;
        return Ok(Tokens {
            orgs,
            operator,
            created_default_org: None,
            migrated_default_org: false,
            default_org_token_file: None,
        });
    }
    let clear = data_dir.join(DEFAULT_ORG_TOKEN_FILE);
    let hash_path = data_dir.join(DEFAULT_ORG_TOKEN_HASH_FILE);
    let write_hash = |hash: TokenHash| {
        write_secret(&hash_path, &format!("{}\n", hash.to_hex())).map_err(|source| {
            TokenError::Write {
                path: hash_path.clone(),
                source,
            }
        })
    };
    let (hash, created, migrated) = match read_hash(&hash_path) {
        Ok(hash) => (hash, None, false),
        Err(TokenError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            // Clear file first, hash second: a crash in between leaves a clear file that
            // the next start migrates, never a hash whose token nobody saw.
            let (token, created) = read_or_create(&clear)?;
            let hash = TokenHash::of(&token);
            write_hash(hash)?;
            if created {
                (hash, Some(token), false)
            } else {
                (hash, None, true)
            }
        }
        Err(e) => return Err(e),
    };
    Ok(Tokens {
        orgs: vec![(DEFAULT_ORG_ID.to_owned(), hash)],
        operator,
        created_default_org: created,
        migrated_default_org: migrated,
        default_org_token_file: Some(clear),
    })
}

/// The `default` org's clear token from `data_dir`, for a local client of this very
/// collector (the demo's agent); fails once the operator deleted the file.
pub fn read_default_org_token(data_dir: &Path) -> Result<String, TokenError> {
    read_token(&data_dir.join(DEFAULT_ORG_TOKEN_FILE))
}

fn read_hash(path: &Path) -> Result<TokenHash, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    // `sha256sum` prints "<hex>  -": take the first word so its output can be pasted.
    let hex = text.split_whitespace().next().unwrap_or_default();
    TokenHash::from_hex(hex).ok_or_else(|| TokenError::MalformedHash {
        path: path.to_owned(),
    })
}

/// Reads the operator token of `data_dir` (for the local CLI); never creates it.
pub fn read_operator_token(data_dir: &Path) -> Result<String, TokenError> {
    read_token(&data_dir.join(OPERATOR_TOKEN_FILE))
}

/// A fresh token: 32 bytes from the thread-local CSPRNG, as 64 hex digits.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_token(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(TokenError::Malformed {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

/// Returns the token in `path` and whether it was just created.
fn read_or_create(path: &Path) -> Result<(String, bool), TokenError> {
    match read_token(path) {
        Ok(token) => Ok((token, false)),
        Err(TokenError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let token = generate_token();
            write_secret(path, &format!("{token}\n")).map_err(|source| TokenError::Write {
                path: path.to_owned(),
                source,
            })?;
            Ok((token, true))
        }
        Err(e) => Err(e),
    }
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename), readable by
/// the owner only.
///
/// # Platform-specific behaviour
/// On Unix the file is created with mode 0600; elsewhere it inherits the directory's ACL.
pub(crate) fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_org_token_is_created_once_then_verified_by_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &[]).unwrap();
        let token = first.created_default_org.clone().expect("created");
        assert_eq!(token.len(), 64);
        assert_eq!(first.orgs[0].0, DEFAULT_ORG_ID);
        assert_eq!(first.orgs[0].1, TokenHash::of(&token));
        assert_ne!(token, first.operator);
        let hash_file =
            std::fs::read_to_string(dir.path().join(DEFAULT_ORG_TOKEN_HASH_FILE)).unwrap();
        assert_eq!(hash_file.trim(), TokenHash::of(&token).to_hex());
        assert!(!hash_file.contains(&token));
        assert_eq!(read_default_org_token(dir.path()).unwrap(), token);

        // Later starts never read the clear file: deleting it changes nothing.
        std::fs::remove_file(dir.path().join(DEFAULT_ORG_TOKEN_FILE)).unwrap();
        let again = load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(again.created_default_org, None);
        assert!(!again.migrated_default_org);
        assert_eq!(again.org_hash(DEFAULT_ORG_ID), Some(TokenHash::of(&token)));
        assert_eq!(again.operator, first.operator);
        assert!(!dir.path().join(DEFAULT_ORG_TOKEN_FILE).exists());
        assert_eq!(read_operator_token(dir.path()).unwrap(), first.operator);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [DEFAULT_ORG_TOKEN_HASH_FILE, OPERATOR_TOKEN_FILE] {
                let mode = std::fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
    }

    #[test]
    fn a_data_dir_with_only_the_clear_token_is_migrated_and_keeps_its_token() {
        // A data directory written before tokens were hashed: only default-org.token.
        let dir = tempfile::tempdir().unwrap();
        let old = "0123456789abcdef0123456789abcdef";
        std::fs::write(dir.path().join(DEFAULT_ORG_TOKEN_FILE), format!("{old}\n")).unwrap();
        let t = load_or_create(dir.path(), &[]).unwrap();
        assert!(t.migrated_default_org);
        assert_eq!(t.created_default_org, None);
        assert_eq!(t.org_hash(DEFAULT_ORG_ID), Some(TokenHash::of(old)));
        let hash_file =
            std::fs::read_to_string(dir.path().join(DEFAULT_ORG_TOKEN_HASH_FILE)).unwrap();
        assert_eq!(hash_file.trim(), TokenHash::of(old).to_hex());
        let again = load_or_create(dir.path(), &[]).unwrap();
        assert!(!again.migrated_default_org);
        assert_eq!(again.org_hash(DEFAULT_ORG_ID), Some(TokenHash::of(old)));
    }

    #[test]
    fn a_pasted_sha256sum_line_is_accepted_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let h = TokenHash::of("some-token-0123456789");
        std::fs::write(
            dir.path().join(DEFAULT_ORG_TOKEN_HASH_FILE),
            format!("{}  -\n", h.to_hex()),
        )
        .unwrap();
        let t = load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(t.org_hash(DEFAULT_ORG_ID), Some(h));
        std::fs::write(dir.path().join(DEFAULT_ORG_TOKEN_HASH_FILE), "xyz\n").unwrap();
        let e = load_or_create(dir.path(), &[]).unwrap_err();
        assert!(matches!(e, TokenError::MalformedHash { .. }), "{e}");
    }

    #[test]
    fn configured_orgs_replace_the_default_org() {
        let dir = tempfile::tempdir().unwrap();
        let hashed = TokenHash::of("town-token-0123456789");
        let orgs = vec![
            OrgConfig {
                id: "acme".into(),
                name: String::new(),
                token: "0123456789abcdef".into(),
                token_sha256: String::new(),
                energy: None,
                profile: Default::default(),
            },
            OrgConfig {
                id: "town".into(),
                name: String::new(),
                token: String::new(),
                token_sha256: hashed.to_hex(),
                energy: None,
                profile: Default::default(),
            },
        ];
        let t = load_or_create(dir.path(), &orgs).unwrap();
        assert_eq!(t.org_hash("acme"), Some(TokenHash::of("0123456789abcdef")));
        assert_eq!(t.org_hash("town"), Some(hashed));
        assert!(!dir.path().join(DEFAULT_ORG_TOKEN_FILE).exists());
        assert!(!dir.path().join(DEFAULT_ORG_TOKEN_HASH_FILE).exists());
    }

    #[test]
    fn a_blank_token_file_is_an_error_not_a_silent_new_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OPERATOR_TOKEN_FILE), "  \n").unwrap();
        let e = load_or_create(dir.path(), &[]).unwrap_err();
        assert!(matches!(e, TokenError::Malformed { .. }), "{e}");
    }
}
