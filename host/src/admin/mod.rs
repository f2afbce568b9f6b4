//! The admin HTTP API of `weir serve` and the blocking client the `weir plugin` CLI uses to
//! talk to it. It owns authentication (bearer tokens), authorization (operator or one
//! tenant), the wire format and the request log; it owns no pipeline state: every decision
//! about pipelines is made behind [`HostControl`].
//!
//! Routes (JSON bodies; errors are [`ErrorBody`] `{"error": "...", "reason": "..."}`):
//!
//! | Method and path                                      | Who              | Success            |
//! |------------------------------------------------------|------------------|--------------------|
//! | `GET /healthz`                                       | anyone           | `ok`               |
//! | `GET /v1/tenants`                                    | operator, tenant | `[TenantView]`     |
//! | `GET /v1/tenants/{tenant}/pipelines`                 | operator, tenant | `[PipelineView]`   |
//! | `POST /v1/tenants/{tenant}/pipelines/{p}/deploy`     | operator, tenant | `VersionView`      |
//! | `POST /v1/tenants/{tenant}/pipelines/{p}/rollback`   | operator, tenant | `VersionView`      |
//! | `POST /v1/tenants/{tenant}/pipelines/{p}/pause`      | operator, tenant | `PipelineView`     |
//! | `POST /v1/tenants/{tenant}/pipelines/{p}/resume`     | operator, tenant | `PipelineView`     |
//! | `GET /metrics`                                       | operator         | Prometheus text    |
//! | `GET /v1/whoami`                                     | operator, tenant | [`WhoAmI`]         |
//! | `GET /v1/overview`                                   | operator, tenant | `[OverviewItem]`   |
//! | `GET /v1/tenants/{tenant}/pipelines/{p}/activity`    | operator, tenant | [`Activity`]       |
//! | `GET /v1/tenants/{tenant}/pipelines/{p}/live`        | operator, tenant | SSE of `Activity`  |
//! | `GET /`, `GET /console/{file}`                       | anyone           | the console page   |
//!
//! The console ([`crate::console`]) is a page served here with no token (it holds no
//! data); it asks for a token in a login form, keeps it in the tab's `sessionStorage`
//! (never in a URL), and sends it as a bearer token on every read above. `activity` takes
//! `?sample=&row=&error=`, the last sequence numbers the page has, and returns the oldest
//! records past them that fit about a megabyte (error records a quarter of it), its `next`
//! going on from the last one returned; one tenant (or the operator) has at most 4 served
//! at once, each until its response is sent (429 `too_many_requests`). `live` sends an
//! `activity` event (the same budget) at most once a second with what changed and is not
//! cut by the request timeout (it ends when the server shuts down); one tenant (or the
//! operator) may hold at most 16 open at once (429 `too_many_streams`), so streams cannot
//! take every connection. What the console keeps per pipeline and per tenant is bounded by
//! `[console]` in the host config ([`crate::console::Limits`]).
//!
//! A tenant token lists only its own tenant and gets 403 on any other tenant's path, whether
//! or not that tenant or pipeline exists: authorization is decided from the token and the
//! path alone, before anything is looked up. A missing or unknown token gets 401 with
//! `WWW-Authenticate: Bearer`. Deploy takes the raw component as the body
//! (`application/wasm` or `application/octet-stream`), at most [`AdminLimits::max_body_bytes`];
//! the body is read only after the caller is authorized and has an upload slot.
//!
//! Slow and greedy clients ([`AdminLimits`]): headers must arrive within `header_timeout`
//! (hyper's `header_read_timeout`, else the connection is closed); a whole request within
//! `request_timeout` (`tower_http`'s timeout layer: 408, and the request's body and future
//! are dropped); at most `max_connections` connections are served at once (the accept loop
//! takes a semaphore permit before accepting, so more wait in the kernel's backlog); at most
//! `max_uploads_per_tenant` deploys per tenant are in flight (429 `too_many_uploads`,
//! decided after authorization and before the body is read).
//!
//! Every request is logged in one line, never with its token; a value taken from the request
//! (a tenant or pipeline name in its path) is cut to 64 characters, and refusals of requests
//! without a valid token (401) are logged at most 10 a second, then counted once a second,
//! so anonymous clients cannot flood the log. What a tenant token is answered never holds
//! the operator's host paths (they are cut to file names, [`crate::serve::control::Redactor`]);
//! the operator token sees them whole. A pipeline that has failed or finished answers deploy,
//! rollback, pause and resume with 409 `conflict`.

mod auth;
pub mod client;
mod error;
mod handlers;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;

pub use crate::serve::control::HostControl;
pub use crate::serve::control::{Activity, OverviewItem, WhoAmI};
pub use client::{Client, ClientError};
pub use render::{render_pipelines, render_schema, render_shadow, render_versions};

/// The largest plugin component the deploy route accepts: 64 MiB. A larger body is refused
/// with 413 before it is read (from `Content-Length`) or as soon as it passes the limit.
pub const MAX_PLUGIN_BYTES: usize = 64 * 1024 * 1024;

/// What the admin API allows one client, and all of them together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Time to send a request's headers (default 10 s, `admin.header_timeout`).
    pub header_timeout: Duration,
    /// Time for a whole request, body and handling included (default 60 s,
    /// `admin.request_timeout`); over it: 408.
    pub request_timeout: Duration,
    /// Connections served at once (default 256, `admin.max_connections`); more wait to be
    /// accepted.
    pub max_connections: usize,
    /// Deploys of one tenant in flight at once (default 2, `admin.max_uploads_per_tenant`);
    /// more: 429.
    pub max_uploads_per_tenant: usize,
    /// The largest deploy body (default [`MAX_PLUGIN_BYTES`]; `weir serve` uses
    /// `plugins.max_bytes`); larger: 413.
    pub max_body_bytes: usize,
}

impl AdminLimits {
    /// The limits a host config sets: its `[admin]` section, with the deploy body capped at
    /// `plugins.max_bytes`.
    pub fn of(cfg: &crate::config::HostConfig) -> Self {
        let admin = &cfg.admin;
        AdminLimits {
            header_timeout: admin.header_timeout.duration(),
            request_timeout: admin.request_timeout.duration(),
            max_connections: admin.max_connections,
            max_uploads_per_tenant: admin.max_uploads_per_tenant,
            max_body_bytes: cfg.plugins.max_bytes.usize(),
        }
    }
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_uploads_per_tenant: 2,
            max_body_bytes: MAX_PLUGIN_BYTES,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable, machine-readable kind: `unauthorized`, `forbidden`, `not_found`,
    /// `rejected`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `too_many_uploads`, `too_many_streams`, `too_many_requests`, `bad_request` or
    /// `internal`.
    pub error: String,
    /// What went wrong, for a human; for `rejected`, why the plugin was refused.
    pub reason: String,
}

/// The admin API's routes over `control`, without a listener, with the default
/// [`AdminLimits`]; [`serve`] runs it.
pub fn router(control: Arc<dyn HostControl>) -> Router {
    router_with(control, &AdminLimits::default())
}

/// The admin API's routes over `control` under `limits` (the upload cap, the body cap and
/// the request timeout; the connection limits are [`serve_with`]'s).
pub fn router_with(control: Arc<dyn HostControl>, limits: &AdminLimits) -> Router {
    // Nobody closes this router's live streams but their clients: with the sender gone,
    // they never see a close.
    let (_, closing) = tokio::sync::watch::channel(false);
    router_closing(control, limits, closing)
}

/// [`router_with`], whose live streams end when `closing` turns true.
fn router_closing(
    control: Arc<dyn HostControl>,
    limits: &AdminLimits,
    closing: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let pipeline = "/v1/tenants/{tenant}/pipelines/{pipeline}";
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/v1/tenants", get(handlers::tenants))
        .route("/v1/tenants/{tenant}/pipelines", get(handlers::pipelines))
        .route(&format!("{pipeline}/deploy"), post(handlers::deploy))
        .route(&format!("{pipeline}/rollback"), post(handlers::rollback))
        .route(&format!("{pipeline}/pause"), post(handlers::pause))
        .route(&format!("{pipeline}/resume"), post(handlers::resume))
        .route(
            &format!("{pipeline}/shadow"),
            post(handlers::deploy_shadow).get(handlers::shadow),
        )
        .route(&format!("{pipeline}/schema"), get(handlers::schema))
        .route(
            &format!("{pipeline}/shadow/promote"),
            post(handlers::promote),
        )
        .route(
            &format!("{pipeline}/shadow/discard"),
            post(handlers::discard),
        )
        .route("/v1/whoami", get(handlers::whoami))
        .route("/v1/overview", get(handlers::overview))
        .route(&format!("{pipeline}/activity"), get(handlers::activity))
        .route("/", get(handlers::index))
        .route("/console", get(handlers::index))
        .route("/console/", get(handlers::index))
        .route("/console/{file}", get(handlers::asset))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        // Added after the timeout layer: a live stream lasts as long as its page.
        .route(&format!("{pipeline}/live"), get(handlers::live))
        .fallback(handlers::no_route)
        .with_state(handlers::Admin::new(control, limits, closing))
}

/// Serves the admin API on `listener` with the default [`AdminLimits`] until `shutdown`
/// completes; see [`serve_with`].
///
/// # Errors
///
/// The listener failed in a way the server cannot recover from.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<dyn HostControl>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, control, AdminLimits::default(), shutdown).await
}

/// Serves the admin API on `listener` under `limits` until `shutdown` completes, then lets
/// requests in flight finish (for at most `request_timeout`).
///
/// Each connection is served by hyper's HTTP/1 server with `header_read_timeout`; the
/// accept loop holds one of `max_connections` permits per open connection and stops
/// accepting while none is free.
///
/// # Errors
///
/// The listener failed in a way the server cannot recover from.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    control: Arc<dyn HostControl>,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
    }
    let (close, closing) = tokio::sync::watch::channel(false);
    let app = router_closing(control, &limits, closing);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    let mut full_logged = false;
    loop {
        if permits.available_permits() == 0 && !full_logged {
            tracing::warn!(
                max_connections = limits.max_connections,
                "admin API at its connection limit (admin.max_connections); new connections wait"
            );
        }
        full_logged = permits.available_permits() == 0;
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Per-connection errors (reset before accept, out of file descriptors):
                    // wait a little instead of spinning, and go on.
                    tracing::warn!(error = %e, "admin API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "admin API connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Live streams end now; other requests in flight may finish.
    let _ = close.send(true);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin API requests still in flight at shutdown were cut off");
    }
    Ok(())
}
