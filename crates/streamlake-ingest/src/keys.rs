//! Tenants' API keys, for authentication by any surface (HTTP ingestion, the admin API, the
//! console). A tenant may hold several keys at once (rotation without downtime): the one from
//! `api_key_env` (or `dev_api_key`), and any number of `api_keys` stored as SHA-256 hashes in
//! the configuration. A token is compared in constant time against every key, so the time taken
//! does not reveal how much of a key was right. The keys can be replaced while the process runs
//! ([`TenantKeys::replace`], on SIGHUP): a key removed from the configuration is refused from
//! that moment.

use std::sync::{Arc, RwLock};

use sha2::{Digest as _, Sha256};
use streamlake_config::Config;
use streamlake_core::TenantId;
use subtle::ConstantTimeEq;

/// One accepted key.
enum Secret {
    /// The key itself (from the environment or `dev_api_key`).
    Plain(Vec<u8>),
    /// Its SHA-256 (`api_keys`).
    Hashed([u8; 32]),
}

/// The keys of every tenant.
#[derive(Default)]
struct Keys {
    keys: Vec<(TenantId, Secret)>,
}

/// Tenants' keys, shared by the surfaces that authenticate and replaceable while they run.
/// Cheap to clone; clones share the keys.
#[derive(Clone, Default)]
pub struct TenantKeys {
    current: Arc<RwLock<Keys>>,
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKeys")
            .field("keys", &self.read().keys.len())
            .finish()
    }
}

fn keys_of(config: &Config) -> Keys {
    let mut keys = Vec::new();
    for t in config.tenants.values() {
        if let Some(key) = &t.api_key {
            keys.push((
                t.id.clone(),
                Secret::Plain(key.expose_secret().as_bytes().to_vec()),
            ));
        }
        for hashed in &t.api_key_hashes {
            keys.push((t.id.clone(), Secret::Hashed(hashed.sha256)));
        }
    }
    Keys { keys }
}

impl TenantKeys {
    /// The keys of every tenant of `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            current: Arc::new(RwLock::new(keys_of(config))),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // Replaced whole under the lock: a panic elsewhere cannot leave it half-written.
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces every key with those of `config`; returns how many keys each tenant now has.
    pub fn replace(&self, config: &Config) -> Vec<(TenantId, usize)> {
        let keys = keys_of(config);
        let counts = config
            .tenants
            .values()
            .map(|t| {
                let n = keys.keys.iter().filter(|(id, _)| id == &t.id).count();
                (t.id.clone(), n)
            })
            .collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = keys;
        counts
    }

    /// The tenant whose key `token` is.
    pub fn lookup(&self, token: &str) -> Option<TenantId> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let keys = self.read();
        let mut found = None;
        // Compare against every key, without stopping early.
        for (tenant, secret) in &keys.keys {
            let same = match secret {
                Secret::Plain(key) => key.as_slice().ct_eq(token.as_bytes()),
                Secret::Hashed(hash) => hash.ct_eq(&digest),
            };
            if bool::from(same) {
                found = Some(tenant);
            }
        }
        found.cloned()
    }
}

/// The SHA-256 of `key` in hex, as `api_keys` entries hold it.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
