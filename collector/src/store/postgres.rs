//! The PostgreSQL engine, for several collectors on one database.

use std::sync::Arc;

use crate::store::StoreError;
use crate::store::engine::Engine;

/// Connects to the database at `url`, migrating its schema.
pub fn connect(url: &str) -> Result<Arc<dyn Engine>, StoreError> {
    Err(StoreError::Unavailable(format!(
        "PostgreSQL backend not available in this build ({})",
        redact(url)
    )))
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
