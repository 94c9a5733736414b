//! Console sessions: a browser holds an opaque session id, never a token, and the id maps to
//! the principal that signed in, until it expires or is closed. One-time sign-in codes let the
//! operator who started the process open the console from a printed link without putting a
//! token in a URL; a code is minted only by the process itself (never over HTTP), so another
//! site cannot make a browser sign in to an account of its choosing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::service::{Ops, Principal};

/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// How long a one-time sign-in code stays valid.
pub const CODE_TTL: Duration = Duration::from_secs(15 * 60);

/// Most sessions held at once; the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;

/// Open sessions and unused sign-in codes, by their random ids.
#[derive(Debug)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<String, (Principal, Instant)>>,
    codes: Mutex<HashMap<String, (Principal, Instant)>>,
    /// Most sessions held at once.
    max: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            codes: Mutex::default(),
            max: MAX_SESSIONS,
        }
    }
}

/// 244 random bits, URL- and cookie-safe.
fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    /// Opens a session for `who` until `now + SESSION_TTL`; expired ones go, and the oldest
    /// when `max` are open.
    fn open(&self, who: Principal, now: Instant) -> String {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, (_, expires)| *expires > now);
        if sessions.len() >= self.max {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        let id = random_id();
        sessions.insert(id.clone(), (who, now + SESSION_TTL));
        id
    }

    fn get(&self, id: &str, now: Instant) -> Option<Principal> {
        lock(&self.sessions)
            .get(id)
            .filter(|(_, expires)| *expires > now)
            .map(|(who, _)| who.clone())
    }

    fn close(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Ends every tenant's session and unused code (the admin's stay: its token did not change).
    fn end_tenants(&self) {
        lock(&self.sessions).retain(|_, (who, _)| *who == Principal::Admin);
        lock(&self.codes).retain(|_, (who, _)| *who == Principal::Admin);
    }

    fn mint(&self, who: Principal, now: Instant) -> String {
        let mut codes = lock(&self.codes);
        codes.retain(|_, (_, expires)| *expires > now);
        let code = random_id();
        codes.insert(code.clone(), (who, now + CODE_TTL));
        code
    }

    /// Spends `code`: a new session when it was minted and has not expired.
    fn redeem(&self, code: &str, now: Instant) -> Option<String> {
        let (who, expires) = lock(&self.codes).remove(code)?;
        (expires > now).then(|| self.open(who, now))
    }
}

impl Ops {
    /// Opens a session for `who`; its id goes in the browser's cookie.
    pub fn open_session(&self, who: Principal) -> String {
        self.sessions.open(who, Instant::now())
    }

    /// The principal of an open, unexpired session.
    pub fn session(&self, id: &str) -> Option<Principal> {
        self.sessions.get(id, Instant::now())
    }

    /// Ends a session (sign-out).
    pub fn close_session(&self, id: &str) {
        self.sessions.close(id);
    }

    /// Replaces the tenants' API keys with those of `config` (on SIGHUP) and ends every
    /// tenant's console session, so a key removed is refused everywhere at once: its holder
    /// signs in again with a key that still holds.
    pub fn reload_keys(&self, config: &streamlake_config::Config) {
        self.keys.replace(config);
        self.sessions.end_tenants();
    }

    /// A one-time sign-in code for `token`'s principal, valid for [`CODE_TTL`]; `None` when the
    /// token is neither the admin token nor a tenant's key. For the process's own use (the link
    /// `up` prints): no HTTP route mints codes.
    pub fn sign_in_code(&self, token: &str) -> Option<String> {
        Some(self.sessions.mint(self.principal(token)?, Instant::now()))
    }

    /// Opens a session from a one-time code, which is then spent.
    pub fn redeem_code(&self, code: &str) -> Option<String> {
        self.sessions.redeem(code, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_random_and_distinct() {
        let (a, b) = (random_id(), random_id());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn sessions_expire_and_the_oldest_goes_when_full() {
        let s = Sessions {
            max: 2,
            ..Sessions::default()
        };
        let t0 = Instant::now();
        let first = s.open(Principal::Admin, t0);
        let second = s.open(Principal::Admin, t0 + Duration::from_secs(1));
        let third = s.open(Principal::Admin, t0 + Duration::from_secs(2));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(s.get(&first, now), None, "the oldest went");
        assert_eq!(s.get(&second, now), Some(Principal::Admin));
        assert_eq!(s.get(&third, now), Some(Principal::Admin));
        assert_eq!(
            s.get(&third, t0 + SESSION_TTL + Duration::from_secs(3)),
            None
        );
        s.close(&second);
        assert_eq!(s.get(&second, now), None);
    }

    #[test]
    fn a_code_signs_in_once_and_not_after_it_expired() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let code = s.mint(Principal::Admin, t0);
        let session = s.redeem(&code, t0).expect("a fresh code signs in");
        assert_eq!(s.get(&session, t0), Some(Principal::Admin));
        assert_eq!(s.redeem(&code, t0), None, "spent");
        let late = s.mint(Principal::Admin, t0);
        assert_eq!(
            s.redeem(&late, t0 + CODE_TTL + Duration::from_secs(1)),
            None
        );
    }
}
