//! Tenants' API keys, for authentication by any surface (HTTP ingestion, the admin API, the
//! console). A key is compared in constant time against every tenant's key, so the time taken
//! does not reveal how much of a key was right.

use streamlake_config::Config;
use streamlake_core::TenantId;
use subtle::ConstantTimeEq;

/// Tenants' keys.
#[derive(Default)]
pub struct TenantKeys {
    keys: Vec<(TenantId, Vec<u8>)>,
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKeys")
            .field("tenants", &self.keys.len())
            .finish()
    }
}

impl TenantKeys {
    /// The keys of every tenant of `config` that has one.
    pub fn from_config(config: &Config) -> Self {
        let keys = config
            .tenants
            .values()
            .filter_map(|t| {
                let key = t.api_key.as_ref()?;
                Some((t.id.clone(), key.expose_secret().as_bytes().to_vec()))
            })
            .collect();
        Self { keys }
    }

    /// The tenant whose key `token` is.
    pub fn lookup(&self, token: &str) -> Option<&TenantId> {
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
