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
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<String, (Principal, Instant)>>,
    codes: Mutex<HashMap<String, (Principal, Instant)>>,
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

impl Ops {
    /// Opens a session for `who`; its id goes in the browser's cookie.
    pub fn open_session(&self, who: Principal) -> String {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions.sessions);
        sessions.retain(|_, (_, expires)| *expires > now);
        if sessions.len() >= MAX_SESSIONS {
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

    /// The principal of an open, unexpired session.
    pub fn session(&self, id: &str) -> Option<Principal> {
        let sessions = lock(&self.sessions.sessions);
        sessions
            .get(id)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(who, _)| who.clone())
    }

    /// Ends a session (sign-out).
    pub fn close_session(&self, id: &str) {
        lock(&self.sessions.sessions).remove(id);
    }

    /// A one-time sign-in code for `token`'s principal, valid for [`CODE_TTL`]; `None` when the
    /// token is neither the admin token nor a tenant's key. For the process's own use (the link
    /// `up` prints): no HTTP route mints codes.
    pub fn sign_in_code(&self, token: &str) -> Option<String> {
        let who = self.principal(token)?;
        let now = Instant::now();
        let mut codes = lock(&self.sessions.codes);
        codes.retain(|_, (_, expires)| *expires > now);
        let code = random_id();
        codes.insert(code.clone(), (who, now + CODE_TTL));
        Some(code)
    }

    /// Opens a session from a one-time code, which is then spent.
    pub fn redeem_code(&self, code: &str) -> Option<String> {
        let (who, expires) = lock(&self.sessions.codes).remove(code)?;
        (expires > Instant::now()).then(|| self.open_session(who))
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
}
