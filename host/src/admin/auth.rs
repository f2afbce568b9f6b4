//! Who is calling and what they may touch: bearer-token parsing and the authorization
//! rules of the admin API. Token lookup itself belongs to [`HostControl::authenticate`].

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::error::ApiError;
use crate::serve::control::{HostControl, Principal};

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The principal the request's bearer token belongs to; 401 when there is no token or
/// `control` does not know it.
pub(super) fn authenticate(
    control: &dyn HostControl,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
    })?;
    control
        .authenticate(token)
        .ok_or_else(|| ApiError::unauthorized("unknown token"))
}

/// 403 unless `principal` may act on `tenant`. Decided from names alone, so a refusal says
/// nothing about whether `tenant` exists.
pub(super) fn authorize_tenant(principal: &Principal, tenant: &str) -> Result<(), ApiError> {
    match principal {
        Principal::Operator => Ok(()),
        Principal::Tenant(own) if own == tenant => Ok(()),
        Principal::Tenant(own) => Err(ApiError::forbidden(format!(
            "the token of tenant {own} may only touch tenant {own}'s pipelines"
        ))),
    }
}

/// 403 unless `principal` is the operator.
pub(super) fn authorize_operator(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Operator => Ok(()),
        Principal::Tenant(_) => Err(ApiError::forbidden("only the operator token may do this")),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_takes_the_token_of_a_bearer_header_only() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("abc")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_tenant_may_touch_only_itself_and_the_operator_everything() {
        let acme = Principal::Tenant("acme".into());
        assert!(authorize_tenant(&acme, "acme").is_ok());
        assert_eq!(
            authorize_tenant(&acme, "globex")
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert_eq!(
            authorize_tenant(&acme, "acme2")
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert!(authorize_tenant(&Principal::Operator, "anyone").is_ok());
        assert_eq!(authorize_operator(&acme).unwrap_err().status.as_u16(), 403);
        assert!(authorize_operator(&Principal::Operator).is_ok());
    }
}
