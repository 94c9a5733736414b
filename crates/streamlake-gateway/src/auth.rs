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

impl Keys {
    pub(crate) fn insert(&mut self, tenant: TenantId, key: &str) {
        self.keys.push((tenant, key.as_bytes().to_vec()));
    }

    /// The tenant whose key the request carries.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<&TenantId, AuthError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
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
