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
//!
//! A tenant token lists only its own tenant and gets 403 on any other tenant's path, whether
//! or not that tenant or pipeline exists: authorization is decided from the token and the
//! path alone, before anything is looked up. A missing or unknown token gets 401 with
//! `WWW-Authenticate: Bearer`. Deploy takes the raw component as the body
//! (`application/wasm` or `application/octet-stream`), at most [`MAX_PLUGIN_BYTES`]; the
//! body is read only after the caller is authorized.

mod auth;
pub mod client;
mod handlers;
pub mod render;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use crate::serve::control::HostControl;
pub use client::{Client, ClientError};
pub use render::{render_pipelines, render_versions};

/// The largest plugin component the deploy route accepts: 64 MiB. A larger body is refused
/// with 413 before it is read (from `Content-Length`) or as soon as it passes the limit.
pub const MAX_PLUGIN_BYTES: usize = 64 * 1024 * 1024;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable, machine-readable kind: `unauthorized`, `forbidden`, `not_found`,
    /// `rejected`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `bad_request` or `internal`.
    pub error: String,
    /// What went wrong, for a human; for `rejected`, why the plugin was refused.
    pub reason: String,
}

/// The admin API's routes over `control`, without a listener; [`serve`] runs it.
pub fn router(control: Arc<dyn HostControl>) -> Router {
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
        .fallback(handlers::no_route)
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES))
        .with_state(handlers::Admin::new(control))
}

/// Serves the admin API on `listener` until `shutdown` completes, then lets requests in
/// flight finish.
///
/// # Errors
///
/// The listener failed in a way the server cannot recover from.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<dyn HostControl>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
    }
    axum::serve(listener, router(control))
        .with_graceful_shutdown(shutdown)
        .await
}
