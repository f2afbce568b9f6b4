//! The blocking client of the admin API, used by the `weir plugin` CLI: one method per
//! route, typed answers, and errors that carry the HTTP status and the server's reason. It
//! speaks plain HTTP only (the API listens on loopback by default); it does not parse
//! command lines or print anything.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use ureq::http::Response;

use super::{ErrorBody, MAX_PLUGIN_BYTES};
use crate::serve::control::{PipelineView, ShadowView, TenantView, VersionView};

/// How long to wait for a connection to the admin API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all; a deploy compiles the component before it answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status, e.g.
    /// `deploy acme/stocks rejected (422): describe() has no column "price"`; a 401 also
    /// says how to give the CLI a token.
    #[error("{action} {} ({status}): {reason}{}", kind.replace('_', " "), hint(*status))]
    Refused {
        /// What was asked, e.g. `deploy acme/stocks`.
        action: String,
        /// The HTTP status.
        status: u16,
        /// The server's machine-readable kind (`rejected`, `forbidden`, …; see
        /// [`ErrorBody::error`]), or `failed` when the body was not an [`ErrorBody`].
        kind: String,
        /// The server's reason.
        reason: String,
    },
    /// No connection to the admin API could be made.
    #[error(
        "{action}: could not reach the weir admin API at {url} ({cause}); check that \
         `weir serve` is running and that --url (or WEIR_URL, or `url` in weir.toml) names \
         its admin address"
    )]
    Unreachable {
        /// What was asked.
        action: String,
        /// The URL that was tried.
        url: String,
        /// The transport error.
        cause: ureq::Error,
    },
    /// The request failed after connecting, or could not be made.
    #[error("{action}: request to {url} failed: {cause}")]
    Transport {
        /// What was asked.
        action: String,
        /// The URL that was tried.
        url: String,
        /// The transport error.
        cause: ureq::Error,
    },
    /// A success status with a body that is not what the API sends.
    #[error("{action}: {url} answered with something that is not the weir admin API: {detail}")]
    BadResponse {
        /// What was asked.
        action: String,
        /// The URL that answered.
        url: String,
        /// What was wrong with the answer.
        detail: String,
    },
}

/// What a refusal with `status` adds to its reason: for a 401, how to pass a token.
fn hint(status: u16) -> &'static str {
    match status {
        401 => "; set WEIR_TOKEN or pass --token with your tenant's token (the operator gives it)",
        _ => "",
    }
}

impl ClientError {
    /// The HTTP status, when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's reason, when it answered with an error.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// A blocking client of one host's admin API, authenticated by one bearer token.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the admin API at `base_url` (e.g. `http://127.0.0.1:9400`; `http://` is
    /// assumed when no scheme is given) that sends `token` as its bearer token. An empty
    /// token sends no `Authorization` header.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        let base = base_url.into();
        let base = base.trim().trim_end_matches('/');
        let base = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        Self {
            base,
            token: token.into(),
            agent,
        }
    }

    /// Every tenant the token may see: all of them for the operator, its own for a tenant.
    pub fn tenants(&self) -> Result<Vec<TenantView>, ClientError> {
        let url = format!("{}/v1/tenants", self.base);
        let response = self.authorized(self.agent.get(&url)).call();
        json(
            self.answer("list tenants", &url, response)?,
            "list tenants",
            &url,
        )
    }

    /// One tenant's pipelines.
    pub fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ClientError> {
        let action = format!("list {tenant}");
        let url = format!("{}/v1/tenants/{}/pipelines", self.base, segment(tenant));
        let response = self.authorized(self.agent.get(&url)).call();
        json(self.answer(&action, &url, response)?, &action, &url)
    }

    /// The pipelines of `tenant`, or with `None` of every tenant the token may see, in the
    /// order the host lists tenants.
    pub fn list(&self, tenant: Option<&str>) -> Result<Vec<PipelineView>, ClientError> {
        match tenant {
            Some(tenant) => self.pipelines(tenant),
            None => {
                let mut all = Vec::new();
                for tenant in self.tenants()? {
                    all.extend(self.pipelines(&tenant.name)?);
                }
                Ok(all)
            }
        }
    }

    /// Deploys `wasm` (a component's bytes, at most [`MAX_PLUGIN_BYTES`]) to one pipeline
    /// and returns the new live version. A rejected component is a
    /// [`ClientError::Refused`] with status 422 and the host's reason; the running version
    /// is untouched.
    pub fn deploy(
        &self,
        tenant: &str,
        pipeline: &str,
        wasm: Vec<u8>,
    ) -> Result<VersionView, ClientError> {
        self.deploy_with(tenant, pipeline, wasm, false)
    }

    /// [`Client::deploy`], confirming with `allow_output_change` that the version may
    /// remove or rename output columns (the pipeline's operator must allow it too).
    pub fn deploy_with(
        &self,
        tenant: &str,
        pipeline: &str,
        wasm: Vec<u8>,
        allow_output_change: bool,
    ) -> Result<VersionView, ClientError> {
        let mut url = self.pipeline_url(tenant, pipeline, "deploy");
        if allow_output_change {
            url.push_str("?allow_output_change=true");
        }
        self.upload(&format!("deploy {tenant}/{pipeline}"), &url, wasm)
    }

    /// Posts component `wasm` to `url` and reads the JSON answer.
    fn upload<T: DeserializeOwned>(
        &self,
        action: &str,
        url: &str,
        wasm: Vec<u8>,
    ) -> Result<T, ClientError> {
        // `Expect: 100-continue` lets the server refuse (401, 403, 413) before the upload.
        let response = self
            .authorized(self.agent.post(url))
            .header("Content-Type", "application/wasm")
            .header("Expect", "100-continue")
            .send(wasm);
        json(self.answer(action, url, response)?, action, url)
    }

    /// Runs `wasm` as a pipeline's shadow (validated as a deploy is) with `options`, and
    /// returns its view.
    pub fn deploy_shadow(
        &self,
        tenant: &str,
        pipeline: &str,
        wasm: Vec<u8>,
        options: crate::serve::control::ShadowOptions,
    ) -> Result<ShadowView, ClientError> {
        let mut url = self.pipeline_url(tenant, pipeline, "shadow");
        let mut query = vec![format!(
            "allow_output_change={}",
            options.allow_output_change
        )];
        if let Some(p) = options.promote_after {
            query.push(format!(
                "promote_after_windows={}&promote_after_differing={}",
                p.windows, p.differing
            ));
        }
        url.push('?');
        url.push_str(&query.join("&"));
        self.upload(
            &format!("deploy a shadow to {tenant}/{pipeline}"),
            &url,
            wasm,
        )
    }

    /// What a pipeline's plugin must match: fields, key, window, watermark, params.
    pub fn schema(
        &self,
        tenant: &str,
        pipeline: &str,
    ) -> Result<crate::serve::SchemaView, ClientError> {
        let action = format!("schema of {tenant}/{pipeline}");
        let url = self.pipeline_url(tenant, pipeline, "schema");
        let response = self.authorized(self.agent.get(&url)).call();
        json(self.answer(&action, &url, response)?, &action, &url)
    }

    /// A pipeline's last shadow run: where it stands and what it found.
    pub fn shadow(&self, tenant: &str, pipeline: &str) -> Result<ShadowView, ClientError> {
        let action = format!("diff {tenant}/{pipeline}");
        let url = self.pipeline_url(tenant, pipeline, "shadow");
        let response = self.authorized(self.agent.get(&url)).call();
        json(self.answer(&action, &url, response)?, &action, &url)
    }

    /// Makes a pipeline's shadow the live version and returns it.
    pub fn promote(&self, tenant: &str, pipeline: &str) -> Result<VersionView, ClientError> {
        self.post_action("shadow/promote", tenant, pipeline)
    }

    /// Ends a pipeline's shadow run and returns its last view.
    pub fn discard(&self, tenant: &str, pipeline: &str) -> Result<ShadowView, ClientError> {
        self.post_action("shadow/discard", tenant, pipeline)
    }

    /// Makes the version before the live one live again and returns it; 409 when there is
    /// none.
    pub fn rollback(&self, tenant: &str, pipeline: &str) -> Result<VersionView, ClientError> {
        self.post_action("rollback", tenant, pipeline)
    }

    /// Pauses a pipeline (input is not read, state is kept) and returns its new view.
    pub fn pause(&self, tenant: &str, pipeline: &str) -> Result<PipelineView, ClientError> {
        self.post_action("pause", tenant, pipeline)
    }

    /// Resumes a paused pipeline and returns its new view.
    pub fn resume(&self, tenant: &str, pipeline: &str) -> Result<PipelineView, ClientError> {
        self.post_action("resume", tenant, pipeline)
    }

    /// The host's metrics in Prometheus text format (operator token only).
    pub fn metrics(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", self.base);
        let response = self.authorized(self.agent.get(&url)).call();
        self.answer("metrics", &url, response)
    }

    /// `request` with the bearer token, unless the token is empty.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        if self.token.is_empty() {
            request
        } else {
            request.header("Authorization", format!("Bearer {}", self.token))
        }
    }

    fn pipeline_url(&self, tenant: &str, pipeline: &str, verb: &str) -> String {
        format!(
            "{}/v1/tenants/{}/pipelines/{}/{verb}",
            self.base,
            segment(tenant),
            segment(pipeline)
        )
    }

    fn post_action<T: DeserializeOwned>(
        &self,
        verb: &str,
        tenant: &str,
        pipeline: &str,
    ) -> Result<T, ClientError> {
        let action = format!("{verb} {tenant}/{pipeline}");
        let url = self.pipeline_url(tenant, pipeline, verb);
        let response = self.authorized(self.agent.post(&url)).send_empty();
        json(self.answer(&action, &url, response)?, &action, &url)
    }

    /// The body of a success response, or the error the exchange amounts to.
    fn answer(
        &self,
        action: &str,
        url: &str,
        response: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ClientError> {
        let mut response = response.map_err(|cause| transport_error(action, url, cause))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_PLUGIN_BYTES as u64)
            .read_to_string()
            .map_err(|cause| transport_error(action, url, cause))?;
        if status.is_success() {
            return Ok(body);
        }
        let (kind, reason) = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(ErrorBody { error, reason }) => (error, reason),
            Err(_) if body.trim().is_empty() => (
                "failed".to_string(),
                status.canonical_reason().unwrap_or("no reason").to_string(),
            ),
            Err(_) => ("failed".to_string(), body.trim().to_string()),
        };
        Err(ClientError::Refused {
            action: action.to_string(),
            status: status.as_u16(),
            kind,
            reason,
        })
    }
}

/// Parses a success body as `T`.
fn json<T: DeserializeOwned>(body: String, action: &str, url: &str) -> Result<T, ClientError> {
    serde_json::from_str(&body).map_err(|error| ClientError::BadResponse {
        action: action.to_string(),
        url: url.to_string(),
        detail: error.to_string(),
    })
}

/// Sorts a transport failure into "could not connect" and anything else.
fn transport_error(action: &str, url: &str, cause: ureq::Error) -> ClientError {
    let (action, url) = (action.to_string(), url.to_string());
    let unreachable = match &cause {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(timeout) => {
            matches!(timeout, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NotFound
        ),
        _ => false,
    };
    if unreachable {
        ClientError::Unreachable { action, url, cause }
    } else {
        ClientError::Transport { action, url, cause }
    }
}

/// `name` as one URL path segment: everything but RFC 3986 unreserved characters is
/// percent-encoded.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("acme-1.x_y~z"), "acme-1.x_y~z");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn the_base_url_gets_a_scheme_and_loses_its_trailing_slash() {
        assert_eq!(
            Client::new("127.0.0.1:9400/", "t").base,
            "http://127.0.0.1:9400"
        );
        assert_eq!(
            Client::new("http://localhost:1", "t").base,
            "http://localhost:1"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:1", "s3cret-token");
        assert!(!format!("{client:?}").contains("s3cret"));
    }

    #[test]
    fn refusals_read_as_action_kind_status_reason() {
        let error = ClientError::Refused {
            action: "deploy acme/stocks".into(),
            status: 422,
            kind: "rejected".into(),
            reason: "wrong world".into(),
        };
        assert_eq!(
            error.to_string(),
            "deploy acme/stocks rejected (422): wrong world"
        );
        let error = ClientError::Refused {
            action: "list globex".into(),
            status: 404,
            kind: "not_found".into(),
            reason: "no tenant globex".into(),
        };
        assert_eq!(
            error.to_string(),
            "list globex not found (404): no tenant globex"
        );
    }

    #[test]
    fn a_missing_or_unknown_token_says_how_to_give_one() {
        let error = ClientError::Refused {
            action: "deploy acme/stocks".into(),
            status: 401,
            kind: "unauthorized".into(),
            reason: "unknown token".into(),
        };
        assert_eq!(
            error.to_string(),
            "deploy acme/stocks unauthorized (401): unknown token; set WEIR_TOKEN or pass \
             --token with your tenant's token (the operator gives it)"
        );
    }
}
