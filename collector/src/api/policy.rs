//! The policy routes: `GET /api/v1/policy` (the [`PolicyShow`] JSON, or
//! `?format=table`; an org token sees its own org), `PUT /api/v1/policy` (a
//! [`PolicyFile`] as JSON; operator token only; 400 names the bad field, 409 for a
//! version not above the current one) and `POST /api/v1/policy/replay?from=&to=[&format=]`
//! with a draft [`PolicyFile`] (JSON) as body (operator token, or the draft's org's).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::caller::Caller;
use crate::api::error::{ApiError, blocking};
use crate::api::params::{PeriodParams, ShowParams};
use crate::api::reports::content_type;
use crate::auth::Principal;
use crate::policy::{PolicyError, PolicyFile, SetOutcome, set, show};

pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ShowParams>,
) -> Result<Response, ApiError> {
    let org = caller.own_org();
    let (store, key) = (state.store.clone(), state.policy_key.clone());
    let shown = blocking("policy show", move || show(&store, &key, org.as_deref()))
        .await?
        .map_err(|e| ApiError::internal("policy show", e))?;
    Ok(if q.format.as_deref() == Some("table") {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            shown.to_table(),
        )
            .into_response()
    } else {
        Json(shown).into_response()
    })
}

/// The body as a policy file, or a 400 naming what is wrong with it.
fn policy_file(body: &[u8]) -> Result<PolicyFile, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("policy file: {e}")))
}

pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.operator_only("setting a policy")?;
    let file = policy_file(&body)?;
    let (store, key) = (state.store.clone(), state.policy_key.clone());
    let (p, s) = blocking("policy set", move || set(&store, &key, &file))
        .await?
        .map_err(|e| match e {
            e @ PolicyError::NotNewer { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            e if e.is_usage() => ApiError::bad_request(e.to_string()),
            e => ApiError::internal("policy set", e),
        })?;
    state.policies.put(&p.org, s.clone());
    Ok(Json(SetOutcome::of(&p, &s)).into_response())
}

pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<PeriodParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let draft = policy_file(&body)?;
    if let Principal::Org(o) = &caller.0
        && *o != draft.org
    {
        return Err(ApiError::forbidden("a draft of another organisation"));
    }
    let (from, to, format) = p.checked()?;
    let (store, ctx) = (state.store.clone(), state.energy.clone());
    let f = format.clone();
    let body = blocking("policy replay", move || {
        crate::reports::compliance::replay_output(&store, &ctx, &draft, &from, &to, &f)
    })
    .await?
    .map_err(|e| {
        if e.is_usage() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal("policy replay", e)
        }
    })?;
    Ok(([(header::CONTENT_TYPE, content_type(&format))], body).into_response())
}
