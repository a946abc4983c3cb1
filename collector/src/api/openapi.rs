//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of the API, hand-written in
//! `openapi.json` beside this file (a generator would add a dependency and macros on
//! every handler for eleven routes). A test holds it to the routes
//! [`crate::api::registered`] lists, the same list the router is built from: a route
//! added to one and not the other fails it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::api::caller::Caller;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Like every `/api/v1` route, for a caller with a token.
pub async fn document(_caller: Caller) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

/// (method, path) of every operation the document describes, sorted.
pub fn described(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for method in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_exactly_the_registered_routes() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        let mut registered: Vec<(String, String)> = crate::api::registered()
            .into_iter()
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
            .collect();
        registered.sort();
        assert_eq!(described(&doc), registered);
        // Every operation has an id, a 200 and the shared error answers.
        for (method, path) in described(&doc) {
            let op = &doc["paths"][&path][method.to_lowercase()];
            assert!(op["operationId"].is_string(), "{method} {path}");
            for status in ["200", "401"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
}
