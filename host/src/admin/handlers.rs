//! The admin API's request handlers: each authenticates, authorizes from the path alone,
//! then calls [`HostControl`] on the blocking pool and logs one line per request. They hold
//! no state of their own and never decide anything about pipelines.
//!
//! Each request sees the host through a [`Scoped`] of its own, so a tenant is never shown
//! the operator's host paths. The request log cannot be flooded: every value taken from the
//! request is cut to [`LOG_VALUE_CHARS`] characters ([`bounded`]), and refusals of
//! unauthenticated requests (401) are logged at most [`ANONYMOUS_LINES_PER_SECOND`] a
//! second per API (one per host), then one line a second counting those not logged.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

mod console;
mod scoped;
mod shadow;

pub(super) use console::{activity, asset, index, live, overview, whoami};
pub(super) use shadow::{deploy_shadow, discard, promote, schema, shadow};

use super::AdminLimits;
use super::auth::{authenticate, authorize_operator, authorize_tenant};
pub(super) use super::error::ApiError;
use crate::serve::PipelineId;
use crate::serve::control::{ControlError, HostControl, Principal, TenantView};
use scoped::Scoped;

/// The content type of `GET /metrics`: Prometheus text exposition format 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The router's state: the host behind the API, and the deploys in flight per tenant.
///
/// axum clones it for every request, and each clone sees the host through a [`Scoped`] of
/// its own (`control`): what a request authenticates through it decides whether host paths
/// are cut from what it is shown. So one clone must never serve two requests.
pub(super) struct Admin {
    /// The host as this request's caller sees it.
    control: Arc<dyn HostControl>,
    /// The host itself, for the next clone's `control`.
    host: Arc<dyn HostControl>,
    /// Refusals of unauthenticated requests logged and not logged, for every request.
    refusals: Arc<Mutex<AnonymousLog>>,
    uploads: Arc<Mutex<HashMap<String, usize>>>,
    max_uploads: usize,
    /// Live streams open per tenant (the operator counts as `""`), and under
    /// `activity:<tenant>` its activity requests being served ([`ACTIVITY_SLOTS`]).
    streams: Arc<Mutex<HashMap<String, usize>>>,
    max_body_bytes: usize,
    /// Turns true when the server shuts down: live streams end.
    closing: tokio::sync::watch::Receiver<bool>,
}

/// Completes once `closing` turns true; never, if its sender is gone without having sent
/// it (a router served by someone else's server).
async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *closing.borrow_and_update() {
            return;
        }
        if closing.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One of a tenant's upload or live-stream slots, given back when dropped (the request
/// finished, failed, or was cut off; the stream ended).
pub(super) struct Slot {
    map: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = slots.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                slots.remove(&self.key);
            }
        }
    }
}

impl Clone for Admin {
    fn clone(&self) -> Self {
        Self {
            control: Arc::new(Scoped::new(
                Arc::clone(&self.host),
                Arc::clone(&self.refusals),
            )),
            host: Arc::clone(&self.host),
            refusals: Arc::clone(&self.refusals),
            uploads: Arc::clone(&self.uploads),
            max_uploads: self.max_uploads,
            streams: Arc::clone(&self.streams),
            max_body_bytes: self.max_body_bytes,
            closing: self.closing.clone(),
        }
    }
}

impl Admin {
    pub(super) fn new(
        host: Arc<dyn HostControl>,
        limits: &AdminLimits,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let refusals = Arc::default();
        Self {
            control: Arc::new(Scoped::new(Arc::clone(&host), Arc::clone(&refusals))),
            host,
            refusals,
            uploads: Arc::new(Mutex::new(HashMap::new())),
            max_uploads: limits.max_uploads_per_tenant,
            streams: Arc::new(Mutex::new(HashMap::new())),
            max_body_bytes: limits.max_body_bytes,
            closing,
        }
    }

    /// Takes one of `tenant`'s upload slots, or refuses with 429 when all are in use. The
    /// map holds only tenants with uploads in flight, and only names that passed
    /// authorization, so it is bounded by the tenants of the host.
    fn upload_slot(&self, tenant: &str) -> Result<Slot, ApiError> {
        take_slot(&self.uploads, tenant, self.max_uploads, |n| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_uploads",
                format!(
                    "tenant {tenant} already has {n} deploys in flight (admin.max_uploads_per_tenant); wait for one to finish and try again"
                ),
            )
        })
    }

    /// Takes one of the caller's [`MAX_STREAMS`] live-stream slots, or refuses with 429: a
    /// token cannot hold the admin API's connections open with streams.
    fn stream_slot(&self, principal: &Principal) -> Result<Slot, ApiError> {
        let owner = match principal {
            Principal::Operator => "",
            Principal::Tenant(t) => t.as_str(),
        };
        take_slot(&self.streams, owner, MAX_STREAMS, |n| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "this token already has {n} live streams open (at most {MAX_STREAMS}); close a console tab and try again"
                ),
            )
        })
    }
}

/// Live streams one tenant (or the operator) may hold open at once.
const MAX_STREAMS: usize = 16;

/// `activity` requests of one tenant (or the operator) served at once, from authorization
/// until the response is sent (but for the last few hundred KiB hyper buffers): each builds
/// up to a megabyte of JSON, so a token cannot make the host build many at once.
const MAX_ACTIVITY: usize = 4;

/// The prefix of the `streams` keys that count activity requests (`:` is in no tenant name).
const ACTIVITY_SLOTS: &str = "activity:";

impl Admin {
    /// Takes one of the caller's [`MAX_ACTIVITY`] activity slots, or refuses with 429
    /// `too_many_requests`.
    fn activity_slot(&self, principal: &Principal) -> Result<Slot, ApiError> {
        let owner = match principal {
            Principal::Operator => "",
            Principal::Tenant(t) => t.as_str(),
        };
        take_slot(
            &self.streams,
            &format!("{ACTIVITY_SLOTS}{owner}"),
            MAX_ACTIVITY,
            |n| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "this token already has {n} activity requests being served (at most {MAX_ACTIVITY}); wait for one to finish and try again, or follow the pipeline with its live stream"
                    ),
                )
            },
        )
    }
}

/// Takes a slot of `key` in `map` (at most `max` at once), or the error `refuse` makes of
/// the count in use. The slot is given back when dropped.
fn take_slot(
    map: &Arc<Mutex<HashMap<String, usize>>>,
    key: &str,
    max: usize,
    refuse: impl FnOnce(usize) -> ApiError,
) -> Result<Slot, ApiError> {
    {
        let mut slots = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = slots.entry(key.to_string()).or_insert(0);
        if *n >= max {
            return Err(refuse(*n));
        }
        *n += 1;
    }
    Ok(Slot {
        map: Arc::clone(map),
        key: key.to_string(),
    })
}

impl Admin {
    /// Runs `call` on the blocking pool, since deploys compile and other calls may wait on
    /// a pipeline; a panic in the host becomes a 500 without its message.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn HostControl) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let control = Arc::clone(&self.control);
        match tokio::task::spawn_blocking(move || call(control.as_ref())).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(error) => {
                tracing::error!(error = %error, "admin request handler panicked in the host");
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the host failed while handling the request; see its log",
                ))
            }
        }
    }

    /// Authenticates the caller and authorizes it for the tenant in `path`, recording both
    /// in `log`; returns the pipeline the path names.
    fn authorize_pipeline(
        &self,
        log: &mut Log,
        headers: &HeaderMap,
        path: Result<Path<(String, String)>, PathRejection>,
    ) -> Result<PipelineId, ApiError> {
        if let Ok(Path((tenant, pipeline))) = &path {
            log.tenant = Some(tenant.clone());
            log.pipeline = Some(pipeline.clone());
        }
        let principal = log.authenticate(self.control.as_ref(), headers)?;
        let Path((tenant, pipeline)) = path.map_err(ApiError::bad_path)?;
        authorize_tenant(&principal, &tenant)?;
        Ok(PipelineId::new(tenant, pipeline))
    }
}

/// The most characters of one value taken from a request (a tenant or pipeline name from
/// its path) that its log line holds.
pub(super) const LOG_VALUE_CHARS: usize = 64;

/// The most characters of a refusal's reason in a request's log line (a reason may quote
/// the request, e.g. its content type).
const LOG_REASON_CHARS: usize = 512;

/// Refusals of unauthenticated requests (401) logged per second by one API (a host has
/// one); the rest are counted, and the count logged once a second.
pub(super) const ANONYMOUS_LINES_PER_SECOND: u32 = 10;

/// `value` if it has at most `max` characters, else its first `max` characters, an
/// ellipsis and its length in bytes: a log line never holds more of a request than that.
pub(super) fn bounded(value: &str, max: usize) -> Cow<'_, str> {
    match value.char_indices().nth(max) {
        None => Cow::Borrowed(value),
        Some((end, _)) => Cow::Owned(format!("{}… ({} bytes)", &value[..end], value.len())),
    }
}

/// How many refusals of unauthenticated requests were logged in the current second, and
/// how many were not since the last count was logged.
#[derive(Debug, Default)]
struct AnonymousLog {
    /// When the current one-second window started.
    window: Option<Instant>,
    /// Lines logged in it.
    logged: u32,
    /// Refusals not logged, not yet reported.
    unlogged: u64,
    /// Whether a task will report `unlogged` at the end of the window.
    report_pending: bool,
}

/// What to do about one refusal of an unauthenticated request.
#[derive(Debug, PartialEq, Eq)]
struct Admit {
    /// Log its line.
    log: bool,
    /// First log that this many earlier refusals were not logged.
    report: u64,
    /// Nothing reports the refusal not logged yet: report it in this long.
    report_in: Option<Duration>,
}

impl AnonymousLog {
    const WINDOW: Duration = Duration::from_secs(1);

    /// One refusal at `now`.
    fn admit(&mut self, now: Instant) -> Admit {
        let mut report = 0;
        if self.window.is_none_or(|w| now >= w + Self::WINDOW) {
            self.window = Some(now);
            self.logged = 0;
            report = std::mem::take(&mut self.unlogged);
        }
        if self.logged < ANONYMOUS_LINES_PER_SECOND {
            self.logged += 1;
            return Admit {
                log: true,
                report,
                report_in: None,
            };
        }
        self.unlogged += 1;
        let report_in = (!self.report_pending).then(|| {
            self.report_pending = true;
            let end = self.window.unwrap_or(now) + Self::WINDOW;
            end.saturating_duration_since(now)
        });
        Admit {
            log: false,
            report,
            report_in,
        }
    }

    /// The count to report at `now`, once the window with refusals not logged is over
    /// (none if a later refusal has reported them already), and how long to wait before
    /// asking again when the window of those not logged has not ended yet.
    fn due(&mut self, now: Instant) -> (u64, Option<Duration>) {
        match self.window.map(|w| w + Self::WINDOW) {
            Some(end) if now < end && self.unlogged > 0 => (0, Some(end - now)),
            _ => {
                self.report_pending = false;
                (std::mem::take(&mut self.unlogged), None)
            }
        }
    }
}

fn lock_log(log: &Mutex<AnonymousLog>) -> std::sync::MutexGuard<'_, AnonymousLog> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Logs that `n` refusals of unauthenticated requests were not logged.
fn report_unlogged(n: u64) {
    if n > 0 {
        tracing::warn!(
            principal = "anonymous",
            status = 401,
            not_logged = n,
            "{n} admin requests without a valid token were refused and not logged (at most {ANONYMOUS_LINES_PER_SECOND} such refusals are logged a second)"
        );
    }
}

/// Whether to log the refusal of an unauthenticated request now, as counted in `log`;
/// logs the count of those not logged before, or has it logged when the second ends.
fn admit_anonymous(log: &Arc<Mutex<AnonymousLog>>) -> bool {
    let admit = lock_log(log).admit(Instant::now());
    report_unlogged(admit.report);
    if let Some(wait) = admit.report_in {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let log = Arc::clone(log);
                runtime.spawn(async move {
                    let mut wait = wait;
                    loop {
                        tokio::time::sleep(wait).await;
                        let (n, again) = lock_log(&log).due(Instant::now());
                        report_unlogged(n);
                        match again {
                            Some(more) => wait = more,
                            None => break,
                        }
                    }
                });
            }
            // No runtime to wait on: the next refusal after this second reports them.
            Err(_) => lock_log(log).report_pending = false,
        }
    }
    admit.log
}

/// What one request was, for its log line. Never holds the token. `/healthz` and unknown
/// routes are not logged.
struct Log {
    route: &'static str,
    principal: Option<Principal>,
    tenant: Option<String>,
    pipeline: Option<String>,
    /// Log successes at debug level: the console's reads, made every second by every open
    /// page.
    quiet: bool,
    /// Where refusals of unauthenticated requests are counted, once authentication failed
    /// through a [`Scoped`] (always the case in the API's handlers; else they are all logged).
    refusals: Option<Arc<Mutex<AnonymousLog>>>,
}

impl Log {
    fn new(route: &'static str) -> Self {
        Self {
            route,
            principal: None,
            tenant: None,
            pipeline: None,
            quiet: false,
            refusals: None,
        }
    }

    fn quiet(route: &'static str) -> Self {
        Self {
            quiet: true,
            ..Self::new(route)
        }
    }

    fn authenticate(
        &mut self,
        control: &dyn HostControl,
        headers: &HeaderMap,
    ) -> Result<Principal, ApiError> {
        let principal = authenticate(control, headers).inspect_err(|_| {
            let control: &dyn std::any::Any = control;
            self.refusals = control
                .downcast_ref::<Scoped>()
                .map(|s| Arc::clone(s.refusals()));
        })?;
        self.principal = Some(principal.clone());
        Ok(principal)
    }

    /// Logs the outcome and turns it into the response.
    fn finish(self, result: Result<Response, ApiError>) -> Response {
        let principal = match &self.principal {
            None => "anonymous".to_string(),
            Some(Principal::Operator) => "operator".to_string(),
            Some(Principal::Tenant(tenant)) => format!("tenant:{tenant}"),
        };
        let tenant = self.tenant.as_deref().map(|t| bounded(t, LOG_VALUE_CHARS));
        let pipeline = self
            .pipeline
            .as_deref()
            .map(|p| bounded(p, LOG_VALUE_CHARS));
        let (tenant, pipeline) = (tenant.as_deref(), pipeline.as_deref());
        let route = self.route;
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                if self.quiet {
                    tracing::debug!(principal, route, tenant, pipeline, status, "admin request");
                } else {
                    tracing::info!(principal, route, tenant, pipeline, status, "admin request");
                }
                response
            }
            Err(error) => {
                let status = error.status.as_u16();
                let reason = bounded(&error.reason, LOG_REASON_CHARS);
                let reason = reason.as_ref();
                if error.status == StatusCode::UNAUTHORIZED
                    && let Some(refusals) = &self.refusals
                    && !admit_anonymous(refusals)
                {
                    return error.into_response();
                }
                if error.status.is_server_error() {
                    tracing::error!(
                        principal,
                        route,
                        tenant,
                        pipeline,
                        status,
                        reason,
                        "admin request failed"
                    );
                } else if matches!(
                    error.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) {
                    tracing::warn!(
                        principal,
                        route,
                        tenant,
                        pipeline,
                        status,
                        reason,
                        "admin request refused"
                    );
                } else {
                    tracing::info!(
                        principal,
                        route,
                        tenant,
                        pipeline,
                        status,
                        reason,
                        "admin request refused"
                    );
                }
                error.into_response()
            }
        }
    }
}

/// `GET /healthz`: always `ok`, without authentication.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Any path that is not a route: 404 in the API's error format.
pub(super) async fn no_route(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {method} {}", uri.path()),
    )
    .into_response()
}

/// `GET /metrics`: the host's Prometheus text, for the operator only.
pub(super) async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let mut log = Log::new("metrics");
    let result = async {
        authorize_operator(&log.authenticate(admin.control.as_ref(), &headers)?)?;
        let text = admin.blocking(|control| Ok(control.metrics())).await?;
        Ok(([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response())
    }
    .await;
    log.finish(result)
}

/// `GET /v1/tenants`: every tenant for the operator, only its own for a tenant.
pub(super) async fn tenants(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let mut log = Log::new("tenants");
    let result = async {
        let principal = log.authenticate(admin.control.as_ref(), &headers)?;
        let all = admin.blocking(|control| Ok(control.tenants())).await?;
        let visible: Vec<TenantView> = match principal {
            Principal::Operator => all,
            Principal::Tenant(own) => all.into_iter().filter(|t| t.name == own).collect(),
        };
        Ok(Json(visible).into_response())
    }
    .await;
    log.finish(result)
}

/// `GET /v1/tenants/{tenant}/pipelines`.
pub(super) async fn pipelines(
    State(admin): State<Admin>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let mut log = Log::new("pipelines");
    let result = async {
        if let Ok(Path(tenant)) = &path {
            log.tenant = Some(tenant.clone());
        }
        let principal = log.authenticate(admin.control.as_ref(), &headers)?;
        let Path(tenant) = path.map_err(ApiError::bad_path)?;
        authorize_tenant(&principal, &tenant)?;
        let pipelines = admin
            .blocking(move |control| control.pipelines(&tenant))
            .await?;
        Ok(Json(pipelines).into_response())
    }
    .await;
    log.finish(result)
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/deploy` with the component as the body.
pub(super) async fn deploy(
    State(admin): State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<DeployQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let mut log = Log::new("deploy");
    let result = async {
        let id = admin.authorize_pipeline(&mut log, request.headers(), path)?;
        let confirm = query
            .map_err(|e| ApiError::bad_request(format!("the query: {e}")))?
            .allow_output_change;
        // Held until the deploy is answered (or the request is cut off).
        let _slot = admin.upload_slot(&id.tenant)?;
        let wasm = read_component(request, admin.max_body_bytes).await?;
        let version = admin
            .blocking(move |control| {
                if confirm {
                    control.deploy_changing_outputs(&id, wasm)
                } else {
                    control.deploy(&id, wasm)
                }
            })
            .await?;
        Ok(Json(version).into_response())
    }
    .await;
    log.finish(result)
}

/// The query of `POST …/deploy`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct DeployQuery {
    /// The tenant confirms the version may remove or rename output columns.
    #[serde(default)]
    allow_output_change: bool,
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/rollback`.
pub(super) async fn rollback(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "rollback", path, headers, |control, id| {
        control.rollback(id)
    })
    .await
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/pause`.
pub(super) async fn pause(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "pause", path, headers, |control, id| {
        control.pause(id)
    })
    .await
}

/// `POST /v1/tenants/{tenant}/pipelines/{pipeline}/resume`.
pub(super) async fn resume(
    state: State<Admin>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    pipeline_action(state, "resume", path, headers, |control, id| {
        control.resume(id)
    })
    .await
}

/// A bodiless action on one pipeline, answered with the JSON of what `action` returns.
async fn pipeline_action<T: Serialize + Send + 'static>(
    State(admin): State<Admin>,
    route: &'static str,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    action: impl FnOnce(&dyn HostControl, &PipelineId) -> Result<T, ControlError> + Send + 'static,
) -> Response {
    let mut log = Log::new(route);
    let result = async {
        let id = admin.authorize_pipeline(&mut log, &headers, path)?;
        let view = admin.blocking(move |control| action(control, &id)).await?;
        Ok(Json(view).into_response())
    }
    .await;
    log.finish(result)
}

/// Reads a deploy body once the caller is authorized. An oversized `Content-Length` is
/// refused before any of the body is read, so a client that sent `Expect: 100-continue`
/// never uploads it.
async fn read_component(request: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let headers = request.headers();
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("");
        let essence = essence.trim().to_ascii_lowercase();
        if essence != "application/wasm" && essence != "application/octet-stream" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type {essence:?} is not a component: send the .wasm bytes as \
                     application/wasm or application/octet-stream"
                ),
            ));
        }
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(format!(
                    "could not read the body: {}",
                    rejection.body_text()
                ))
            }
        })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send the component's .wasm bytes",
        ));
    }
    Ok(Vec::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHost;

    impl HostControl for NoHost {
        fn authenticate(&self, _: &str) -> Option<Principal> {
            None
        }
        fn tenants(&self) -> Vec<TenantView> {
            Vec::new()
        }
        fn pipelines(
            &self,
            _: &str,
        ) -> Result<Vec<crate::serve::control::PipelineView>, ControlError> {
            Ok(Vec::new())
        }
        fn deploy(
            &self,
            _: &PipelineId,
            _: Vec<u8>,
        ) -> Result<crate::serve::control::VersionView, ControlError> {
            Err(ControlError::Conflict(String::new()))
        }
        fn rollback(
            &self,
            _: &PipelineId,
        ) -> Result<crate::serve::control::VersionView, ControlError> {
            Err(ControlError::Conflict(String::new()))
        }
        fn pause(
            &self,
            _: &PipelineId,
        ) -> Result<crate::serve::control::PipelineView, ControlError> {
            Err(ControlError::Conflict(String::new()))
        }
        fn resume(
            &self,
            _: &PipelineId,
        ) -> Result<crate::serve::control::PipelineView, ControlError> {
            Err(ControlError::Conflict(String::new()))
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }

    #[test]
    fn bounded_cuts_long_values_with_an_ellipsis_and_their_length() {
        assert_eq!(bounded("acme", 64), "acme");
        let exact = "a".repeat(64);
        assert_eq!(bounded(&exact, 64), exact);
        let long = "x".repeat(60_000);
        let cut = bounded(&long, 64);
        assert_eq!(cut, format!("{}… (60000 bytes)", "x".repeat(64)));
        // Characters, not bytes: a multi-byte character is never split.
        let wide = "é".repeat(100);
        assert_eq!(bounded(&wide, 3), "ééé… (200 bytes)");
    }

    #[test]
    fn anonymous_refusals_are_logged_ten_a_second_then_counted_once_a_second() {
        let mut log = AnonymousLog::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for i in 0..ANONYMOUS_LINES_PER_SECOND {
            let a = log.admit(ms(u64::from(i)));
            assert!(a.log && a.report == 0 && a.report_in.is_none(), "{a:?}");
        }
        // The 11th in the same second is counted, and a report is due at the second's end.
        let a = log.admit(ms(100));
        assert_eq!(
            a,
            Admit {
                log: false,
                report: 0,
                report_in: Some(Duration::from_millis(900)),
            }
        );
        // More are counted without another report scheduled.
        for i in 0..989 {
            let a = log.admit(ms(101 + i % 800));
            assert!(!a.log && a.report_in.is_none(), "{a:?}");
        }
        // Before the second ends, nothing is due yet: ask again at its end.
        assert_eq!(log.due(ms(500)), (0, Some(Duration::from_millis(500))));
        // At its end, the count of the 990 not logged.
        assert_eq!(log.due(ms(1000)), (990, None));
        assert_eq!(log.due(ms(1001)), (0, None), "reported once");
        // A new second logs again.
        assert!(log.admit(ms(1000)).log);
        // If a refusal of the next second comes before the report, it reports the count.
        let mut log = AnonymousLog::default();
        for i in 0..15 {
            log.admit(ms(i));
        }
        let a = log.admit(ms(1500));
        assert!(a.log && a.report == 5, "{a:?}");
        assert_eq!(log.due(ms(1500)), (0, None), "nothing left to report");
    }

    #[test]
    fn upload_slots_are_per_tenant_and_given_back_on_drop() {
        let limits = AdminLimits {
            max_uploads_per_tenant: 2,
            ..AdminLimits::default()
        };
        let (_open, closing) = tokio::sync::watch::channel(false);
        let admin = Admin::new(Arc::new(NoHost), &limits, closing);
        let a1 = admin.upload_slot("acme").unwrap();
        let _a2 = admin.upload_slot("acme").unwrap();
        let refused = admin.upload_slot("acme").err().expect("third refused");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.reason.contains("max_uploads_per_tenant"),
            "{}",
            refused.reason
        );
        let _g = admin
            .upload_slot("globex")
            .expect("another tenant is not affected");
        drop(a1);
        let _a3 = admin.upload_slot("acme").expect("a slot given back");
        drop((_a2, _a3, _g));
        assert!(
            admin.uploads.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn live_streams_are_capped_per_token_owner() {
        let (_open, closing) = tokio::sync::watch::channel(false);
        let admin = Admin::new(Arc::new(NoHost), &AdminLimits::default(), closing);
        let acme = Principal::Tenant("acme".into());
        let held: Vec<Slot> = (0..MAX_STREAMS)
            .map(|_| admin.stream_slot(&acme).unwrap())
            .collect();
        let refused = admin.stream_slot(&acme).err().expect("one too many");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.kind, "too_many_streams");
        let _other = admin
            .stream_slot(&Principal::Tenant("globex".into()))
            .expect("another tenant is not affected");
        let _operator = admin
            .stream_slot(&Principal::Operator)
            .expect("nor the operator");
        drop(held);
        assert!(admin.stream_slot(&acme).is_ok(), "slots given back");
    }

    #[test]
    fn activity_requests_are_capped_per_token_owner_apart_from_streams() {
        let (_open, closing) = tokio::sync::watch::channel(false);
        let admin = Admin::new(Arc::new(NoHost), &AdminLimits::default(), closing);
        let acme = Principal::Tenant("acme".into());
        let held: Vec<Slot> = (0..MAX_ACTIVITY)
            .map(|_| admin.activity_slot(&acme).unwrap())
            .collect();
        let refused = admin.activity_slot(&acme).err().expect("one too many");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.kind, "too_many_requests");
        assert!(refused.reason.contains("wait"), "{}", refused.reason);
        let _stream = admin
            .stream_slot(&acme)
            .expect("a live stream is counted apart");
        let _other = admin
            .activity_slot(&Principal::Tenant("globex".into()))
            .expect("another tenant is not affected");
        let _operator = admin
            .activity_slot(&Principal::Operator)
            .expect("nor the operator");
        drop(held);
        assert!(admin.activity_slot(&acme).is_ok(), "slots given back");
    }
}
