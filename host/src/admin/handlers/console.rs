//! The console's routes: its static page (no token: it holds no data), and the reads the
//! page makes with the caller's bearer token — who am I, the overview, one pipeline's
//! activity as a poll or as server-sent events once a second. Authorization is the admin
//! API's: a tenant sees only its own pipelines, decided here on the server.
//!
//! An activity (a poll's answer, each live event) carries at most about a megabyte of
//! records ([`crate::console::Limits::response_bytes`]); a token has at most
//! [`MAX_ACTIVITY`](super::MAX_ACTIVITY) polls served at once, each holding its slot until
//! its response is sent (it is written out in [`CHUNK`]s).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::{Admin, ApiError, Log, Slot};
use crate::console::{Since, assets};
use crate::serve::control::Principal;
use crate::serve::control::{OverviewItem, WhoAmI};

/// How often the live stream sends what changed: at most once a second.
const LIVE_EVERY: Duration = Duration::from_secs(1);

/// The pieces an activity response is written in: hyper asks for the next only while it
/// buffers less than a few hundred KiB, so a reader that does not read holds its slot.
const CHUNK: usize = 64 << 10;

/// A response body that holds a request's [`Slot`] until hyper has taken its last
/// [`CHUNK`], and has an exact length (`Content-Length`).
struct Held {
    data: Bytes,
    _slot: Slot,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.data.len().min(CHUNK);
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.data.len() as u64)
    }
}

/// `value` as a JSON response whose body holds `slot` until it is sent.
fn json_holding<T: serde::Serialize>(value: &T, slot: Slot) -> Result<Response, ApiError> {
    let data = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "could not serialize an activity");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the host failed while handling the request; see its log",
        )
    })?;
    let body = Body::new(Held {
        data: data.into(),
        _slot: slot,
    });
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

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
/// pipeline did past the given sequence numbers (from the oldest kept when absent), as much
/// as fits one response; its `next` is where the following poll goes on from. At most
/// [`MAX_ACTIVITY`](super::MAX_ACTIVITY) of one token's are served at once (429
/// `too_many_requests`).
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
        let principal = log.principal.clone().unwrap_or(Principal::Operator);
        // Held until the response is sent, or the request is cut off.
        let slot = admin.activity_slot(&principal)?;
        let activity = admin
            .blocking(move |control| control.activity(&id, &since))
            .await?;
        json_holding(&activity, slot)
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
