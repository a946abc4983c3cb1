//! The one authentication prologue of the HTTP API: an extractor that turns the
//! request's `Authorization: Bearer <token>` into a [`Principal`] or a 401. Every
//! `/api/v1` handler takes a [`Caller`]; none reads the header itself, so the accepted
//! header forms (scheme in any case, spaces around the token) cannot drift between
//! routes again.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::auth::{Auth, Principal, bearer_token};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Principal);

impl Caller {
    /// The principal behind `headers`' bearer token, or why it is refused.
    pub fn from_headers(auth: &Auth, headers: &axum::http::HeaderMap) -> Result<Self, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match token.map(|t| auth.principal(t)) {
            Some(Some(p)) => Ok(Caller(p)),
            Some(None) => Err(ApiError::unauthorized("unknown token")),
            None => Err(ApiError::unauthorized(
                "missing token: send `Authorization: Bearer <operator or organisation token>`",
            )),
        }
    }

    /// The org whose data the caller reads: its own for an org token, every org
    /// (`None`) for the operator.
    pub fn own_org(&self) -> Option<String> {
        match &self.0 {
            Principal::Operator => None,
            Principal::Org(id) => Some(id.clone()),
        }
    }

    /// The org the caller may see when it asks for `asked`: the operator gets what it
    /// asks (or every org); an org token gets its own, and a 403 for another's.
    pub fn scope(&self, asked: Option<String>, what: &str) -> Result<Option<String>, ApiError> {
        match &self.0 {
            Principal::Operator => Ok(asked),
            Principal::Org(id) => match asked {
                Some(a) if &a != id => Err(ApiError::forbidden(format!("another org's {what}"))),
                _ => Ok(Some(id.clone())),
            },
        }
    }

    /// A 403 unless the caller holds the operator token.
    pub fn operator_only(&self, what: &str) -> Result<(), ApiError> {
        match self.0 {
            Principal::Operator => Ok(()),
            Principal::Org(_) => Err(ApiError::forbidden(format!(
                "{what} needs the operator token"
            ))),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller::from_headers(&state.auth, &parts.headers)
    }
}
