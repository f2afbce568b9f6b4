//! The routes of a tenant trying a version: the schema a candidate must match, then deploy
//! it as a pipeline's shadow, read its diff, promote or discard it. Authorization is the
//! pipeline's, as for a deploy.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Admin, ApiError, Log, pipeline_action, read_component};
use crate::pipeline::PromoteAfter;
use crate::serve::control::ShadowOptions;

/// The query of `POST …/shadow`: the optional promotion policy, and the tenant's
/// confirmation of an output change.
#[derive(Debug, Default, Deserialize)]
pub(in crate::admin) struct ShadowQuery {
    /// Promote by itself once this many windows were compared …
    promote_after_windows: Option<u64>,
    /// … with at most this many differing or failed (default 0).
    promote_after_differing: Option<u64>,
    /// The tenant confirms its promotion may remove or rename output columns.
    #[serde(default)]
    allow_output_change: bool,
}

impl ShadowQuery {
    fn options(&self) -> Result<ShadowOptions, ApiError> {
        let promote_after = match (self.promote_after_windows, self.promote_after_differing) {
            (Some(windows), differing) => Some(PromoteAfter {
                windows,
                differing: differing.unwrap_or(0),
            }),
            (None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "promote_after_differing needs promote_after_windows: how many windows to compare before promoting",
                ));
            }
            (None, None) => None,
        };
        Ok(ShadowOptions {
            promote_after,
            allow_output_change: self.allow_output_change,
        })
    }
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/shadow`: the body is the candidate
/// component.
pub(in crate::admin) async fn deploy_shadow(
    State(admin): State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ShadowQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let mut log = Log::new("shadow");
    let result = async {
        let id = admin.authorize_pipeline(&mut log, request.headers(), path)?;
        let options = query
            .map_err(|e| ApiError::bad_request(format!("the query: {e}")))?
            .options()?;
        let _slot = admin.upload_slot(&id.tenant)?;
        let wasm = read_component(request, admin.max_body_bytes).await?;
        let view = admin
            .blocking(move |control| control.deploy_shadow(&id, wasm, options))
            .await?;
        Ok(Json(view).into_response())
    }
    .await;
    log.finish(result)
}

/// `GET /v1/tenants/{tenant}/pipelines/{pipeline}/shadow`: the last shadow run's diff.
pub(in crate::admin) async fn shadow(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "shadow", path, headers, |control, id| {
        control.shadow(id)
    })
    .await
}

/// `GET /v1/tenants/{tenant}/pipelines/{pipeline}/schema`: what its plugin must match.
pub(in crate::admin) async fn schema(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "schema", path, headers, |control, id| {
        control.schema(id)
    })
    .await
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/shadow/promote`.
pub(in crate::admin) async fn promote(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "promote", path, headers, |control, id| {
        control.promote(id)
    })
    .await
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/shadow/discard`.
pub(in crate::admin) async fn discard(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "discard", path, headers, |control, id| {
        control.discard(id)
    })
    .await
}
