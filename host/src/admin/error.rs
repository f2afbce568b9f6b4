//! The admin API's refusals: [`ApiError`], a status with the [`ErrorBody`] sent back, and
//! how the host's [`ControlError`]s map onto HTTP. Authentication and the handlers both
//! build them; this file depends on neither.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};

use super::ErrorBody;
use crate::serve::control::ControlError;

/// A refused request: its status and the [`ErrorBody`] sent back.
#[derive(Debug, Clone)]
pub(in crate::admin) struct ApiError {
    pub(in crate::admin) status: StatusCode,
    pub(in crate::admin) kind: &'static str,
    pub(in crate::admin) reason: String,
}

impl ApiError {
    pub(in crate::admin) fn new(
        status: StatusCode,
        kind: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            reason: reason.into(),
        }
    }

    pub(in crate::admin) fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", reason)
    }

    pub(in crate::admin) fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", reason)
    }

    pub(in crate::admin) fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    pub(in crate::admin) fn bad_path(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }

    pub(in crate::admin) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "a plugin component may be at most {limit} bytes ({} MiB)",
                limit / (1024 * 1024)
            ),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::NotFound(reason) => Self::new(StatusCode::NOT_FOUND, "not_found", reason),
            ControlError::Rejected(reason) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", reason)
            }
            ControlError::Conflict(reason) => Self::new(StatusCode::CONFLICT, "conflict", reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.kind.to_string(),
            reason: self.reason,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
