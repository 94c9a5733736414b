//! Bearer-key authentication over HTTP: the `Authorization` header read once, the key looked up
//! in the tenants' keys (`streamlake_ingest::TenantKeys`, constant time).

use axum::http::HeaderMap;
use streamlake_core::TenantId;

use crate::gateway::Gateway;

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A key no tenant has.
    Unknown,
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), if the
/// request carries a non-empty one. Every HTTP surface reads credentials through this.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The tenant whose key the request carries.
pub(crate) fn authenticate<'g>(
    gw: &'g Gateway,
    headers: &HeaderMap,
) -> Result<&'g TenantId, AuthError> {
    let token = bearer_token(headers).ok_or(AuthError::Missing)?;
    gw.tenant_of_key(token).ok_or(AuthError::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_read_with_the_scheme_in_any_case() {
        assert_eq!(bearer_token(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("bearer abc ")), Some("abc"));
        assert_eq!(bearer_token(&with("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(&with("Basic abc")), None);
        assert_eq!(bearer_token(&with("Bearer ")), None);
        assert_eq!(bearer_token(&with("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
