//! Bearer-key authentication. Keys are compared in constant time against every tenant's key, so
//! the time taken does not reveal how much of a key was right.

use axum::http::HeaderMap;
use streamlake_core::TenantId;
use subtle::ConstantTimeEq;

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A key no tenant has.
    Unknown,
}

/// Tenants' keys, for authentication only.
#[derive(Default)]
pub(crate) struct Keys {
    keys: Vec<(TenantId, Vec<u8>)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("tenants", &self.keys.len())
            .finish()
    }
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

impl Keys {
    pub(crate) fn insert(&mut self, tenant: TenantId, key: &str) {
        self.keys.push((tenant, key.as_bytes().to_vec()));
    }

    /// The tenant whose key the request carries.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<&TenantId, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Missing)?;
        self.lookup(token).ok_or(AuthError::Unknown)
    }

    /// The tenant whose key `token` is.
    pub(crate) fn lookup(&self, token: &str) -> Option<&TenantId> {
        let mut found = None;
        // Compare against every key, without stopping early.
        for (tenant, key) in &self.keys {
            if bool::from(key.as_slice().ct_eq(token.as_bytes())) {
                found = Some(tenant);
            }
        }
        found
    }
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
