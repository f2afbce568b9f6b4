//! The console's routes: its static page (no token: it holds no data), and the reads the
//! page makes with the caller's bearer token — who am I, the overview, one pipeline's
//! activity as a poll or as server-sent events once a second. Authorization is the admin
//! API's: a tenant sees only its own pipelines, decided here on the server.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::{Admin, ApiError, Log};
use crate::console::{OverviewItem, Since, WhoAmI, assets};
use crate::serve::control::Principal;

/// How often the live stream sends what changed: at most once a second.
const LIVE_EVERY: Duration = Duration::from_secs(1);

/// `asset` with the headers every console file gets: no caching across versions of the
/// binary without a check, and a strict content security policy.
fn static_file(asset: assets::Asset) -> Response {
    (
        [
            (CONTENT_TYPE, asset.content_type),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, assets::CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
        ],
        asset.body,
    )
        .into_response()
}

fn console_off() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "the console is off on this host ([console] enabled = false in its config)",
    )
    .into_response()
}

/// `GET /` and `GET /console/`: the console's page.
pub(in crate::admin) async fn index(State(admin): State<Admin>) -> Response {
    if !admin.control.console() {
        return console_off();
    }
    static_file(assets::INDEX)
}

/// `GET /console/{file}`: the page's script, styles and chart library.
pub(in crate::admin) async fn asset(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Response {
    if !admin.control.console() {
        return console_off();
    }
    match assets::get(&name) {
        Some(asset) => static_file(asset),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the console has no file {name}"),
        )
        .into_response(),
    }
}

/// `GET /v1/whoami`: the caller's principal, and whether control actions are offered.
pub(in crate::admin) async fn whoami(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let mut log = Log::quiet("whoami");
    let result = async {
        let principal = log.authenticate(admin.control.as_ref(), &headers)?;
        let controls = admin.control.controls();
        Ok(Json(WhoAmI {
            principal,
            controls,
        })
        .into_response())
    }
    .await;
    log.finish(result)
}

/// `GET /v1/overview`: every pipeline the caller may see (the operator: all; a tenant: its
/// own), each with its newest sample.
pub(in crate::admin) async fn overview(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let mut log = Log::quiet("overview");
    let result = async {
        let principal = log.authenticate(admin.control.as_ref(), &headers)?;
        let items = admin
            .blocking(move |control| {
                let mut items = Vec::new();
                for tenant in control.tenants() {
                    if let Principal::Tenant(own) = &principal
                        && *own != tenant.name
                    {
                        continue;
                    }
                    for pipeline in control.pipelines(&tenant.name)? {
                        let sample = control.latest_sample(&pipeline.id());
                        items.push(OverviewItem { pipeline, sample });
                    }
                }
                Ok(items)
            })
            .await?;
        Ok(Json(items).into_response())
    }
    .await;
    log.finish(result)
}

/// `GET /v1/tenants/{tenant}/pipelines/{pipeline}/activity?sample=&row=&error=`: what the
/// pipeline did past the given sequence numbers (everything kept when absent).
pub(in crate::admin) async fn activity(
    State(admin): State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    since: Result<Query<Since>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let mut log = Log::quiet("activity");
    let result = async {
        let id = admin.authorize_pipeline(&mut log, &headers, path)?;
        let Query(since) = since.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let activity = admin
            .blocking(move |control| control.activity(&id, &since))
            .await?;
        Ok(Json(activity).into_response())
    }
    .await;
    log.finish(result)
}

/// `GET /v1/tenants/{tenant}/pipelines/{pipeline}/live`: server-sent events, one
/// `activity` event a second with what changed since the one before (the first has
/// everything kept). It ends when the pipeline goes away or the host shuts down.
pub(in crate::admin) async fn live(
    State(admin): State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let mut log = Log::new("live");
    let result = async {
        let id = admin.authorize_pipeline(&mut log, &headers, path)?;
        let principal = log.principal.clone().unwrap_or(Principal::Operator);
        // Held by the stream until it ends.
        let slot = admin.stream_slot(&principal)?;
        // Refuse an unknown pipeline now, with a status, rather than as an empty stream.
        let first = {
            let id = id.clone();
            admin
                .blocking(move |control| control.activity(&id, &Since::default()))
                .await?
        };
        let state = (admin, id, Some(first), Since::default(), slot);
        let stream =
            futures_util::stream::unfold(state, |(admin, id, first, since, slot)| async move {
                let activity = match first {
                    Some(a) => a,
                    None => {
                        let mut closing = admin.closing.clone();
                        tokio::select! {
                            () = tokio::time::sleep(LIVE_EVERY) => {}
                            () = super::closed(&mut closing) => return None,
                        }
                        let id = id.clone();
                        match admin
                            .blocking(move |control| control.activity(&id, &since))
                            .await
                        {
                            Ok(a) => a,
                            Err(_) => return None,
                        }
                    }
                };
                let next = activity.next;
                let event = Event::default().event("activity").json_data(&activity);
                Some((event, (admin, id, None, next, slot)))
            });
        Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response())
    }
    .await;
    log.finish(result)
}
