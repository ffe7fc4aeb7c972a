//! Who a client is: logins checked against the configured users (open mode without any).
//! What a user may touch is the broker's business (`broker::acl`).
//!
//! Passwords are stored as argon2id hashes (`stompede passwd`) or, with a warning at start, as
//! plain text (`password.rs`). Hashing is slow on purpose, so it runs off the async threads, a
//! password once verified is remembered for a while (as a keyed digest, never in clear), and
//! failed logins slow down further attempts per name and per address (`guard.rs`).

mod guard;
mod password;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use password::{hash as hash_password, Stored};

/// How long a verified password is remembered.
const REMEMBER: Duration = Duration::from_secs(300);

/// A failed login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong passcode (one message for both: no user enumeration).
    #[error("authentication failed: unknown login or wrong passcode")]
    BadCredentials,
    /// Too many failed logins for this name or from this address.
    #[error("too many failed logins; retry in {retry_after_s} s")]
    TooManyFailures {
        /// Seconds to wait.
        retry_after_s: u64,
    },
}

/// Checks logins against the configured users, or accepts any in open mode.
#[derive(Debug)]
pub struct Authenticator {
    users: BTreeMap<String, Stored>,
    guard: guard::Guard,
    /// Per user: the keyed digest of the password last verified, and when.
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    key: [u8; 32],
    /// Verified for unknown names when passwords are hashed, so that an unknown name takes as
    /// long to refuse as a wrong password.
    decoy: Option<Arc<Stored>>,
    /// Where refused logins are recorded.
    audit: Option<crate::audit::Audit>,
}

impl Authenticator {
    /// Records refused logins in `audit`.
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    fn refused(&self, login: &str, address: &str, error: &AuthError) {
        if let Some(audit) = &self.audit {
            let outcome = match error {
                AuthError::BadCredentials => crate::audit::Outcome::Denied,
                AuthError::TooManyFailures { .. } => crate::audit::Outcome::Throttled,
            };
            audit.record(
                login,
                address,
                "login",
                outcome,
                serde_json::json!({ "reason": error.to_string() }),
            );
        }
    }

    /// Users and their stored passwords (hashes or plain text); empty means open mode.
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let users: BTreeMap<String, Stored> = users
            .into_iter()
            .map(|(name, value)| (name, Stored::parse(&value)))
            .collect();
        let decoy = users
            .values()
            .any(|s| matches!(s, Stored::Hashed(_)))
            .then(|| {
                password::hash("decoy")
                    .ok()
                    .map(|h| Arc::new(Stored::Hashed(h)))
            })
            .flatten();
        let mut key = [0u8; 32];
        // Without randomness the cache is keyed by zeros: still never the password itself.
        let _ = getrandom::fill(&mut key);
        Authenticator {
            users,
            guard: guard::Guard::default(),
            verified: Mutex::new(HashMap::new()),
            key,
            decoy,
            audit: None,
        }
    }

    /// True when any login is accepted.
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// The users whose passwords are stored in plain text (for the warning at start).
    pub fn plain_text_users(&self) -> Vec<&str> {
        self.users
            .iter()
            .filter(|(_, s)| matches!(s, Stored::Plain(_)))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self, user: &str, digest: &[u8; 32], now: Instant) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.get(user).is_some_and(|(known, at)| {
            now.duration_since(*at) < REMEMBER && password::constant_time_eq(known, digest)
        })
    }

    /// The user name for a login and passcode from `address`. In open mode the login is taken
    /// as given, and a client without one gets `anonymous`'s generated name.
    pub async fn authenticate(
        &self,
        login: Option<&str>,
        passcode: Option<&str>,
        address: &str,
        anonymous: impl FnOnce() -> String,
    ) -> Result<String, AuthError> {
        if self.is_open() {
            return Ok(match login {
                Some(l) if !l.is_empty() => l.to_owned(),
                _ => anonymous(),
            });
        }
        let login = login.unwrap_or_default();
        let passcode = passcode.unwrap_or_default();
        let now = Instant::now();
        if let Some(wait) = self.guard.wait(login, address, now) {
            let error = AuthError::TooManyFailures {
                retry_after_s: wait.as_secs().max(1),
            };
            self.refused(login, address, &error);
            return Err(error);
        }
        let digest = self.digest(passcode);
        let stored = self.users.get(login);
        let ok = match stored {
            Some(Stored::Plain(_)) => stored.is_some_and(|s| s.verify(passcode)),
            Some(Stored::Hashed(_)) if self.remembered(login, &digest, now) => true,
            Some(hashed @ Stored::Hashed(_)) => {
                verify_off_thread(Arc::new(hashed.clone()), passcode).await
            }
            None => {
                if let Some(decoy) = &self.decoy {
                    verify_off_thread(decoy.clone(), passcode).await;
                }
                false
            }
        };
        if ok {
            self.guard.succeeded(login);
            if matches!(stored, Some(Stored::Hashed(_))) {
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded by the configured users.
                verified.insert(login.to_owned(), (digest, now));
            }
            Ok(login.to_owned())
        } else {
            self.guard.failed(login, address, now);
            self.refused(login, address, &AuthError::BadCredentials);
            Err(AuthError::BadCredentials)
        }
    }
}

/// Verifies on the blocking pool: an argon2 hash takes tens of milliseconds of a core.
async fn verify_off_thread(stored: Arc<Stored>, password: &str) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || stored.verify(&password))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn open_mode_takes_login_as_given() {
        let auth = Authenticator::new(BTreeMap::new());
        assert_eq!(
            auth.authenticate(Some("ann"), None, "a", || "x".into())
                .await,
            Ok("ann".into())
        );
        assert_eq!(
            auth.authenticate(None, None, "a", || "anon-1".into()).await,
            Ok("anon-1".into())
        );
    }

    #[tokio::test]
    async fn users_are_checked_against_plain_and_hashed_passwords() {
        let hashed = hash_password("secret").unwrap();
        let auth = Authenticator::new(
            [
                ("ann".to_string(), "pw".to_string()),
                ("bob".to_string(), hashed),
            ]
            .into(),
        );
        let login = |user: &'static str, pass: &'static str| {
            let auth = &auth;
            async move {
                auth.authenticate(Some(user), Some(pass), "a", || "x".into())
                    .await
            }
        };
        assert_eq!(login("ann", "pw").await, Ok("ann".into()));
        assert_eq!(login("bob", "secret").await, Ok("bob".into()));
        // Remembered: the second time needs no hashing, and still checks the password.
        assert_eq!(login("bob", "secret").await, Ok("bob".into()));
        assert!(login("bob", "secreT").await.is_err());
        assert!(login("ann", "no").await.is_err());
        assert!(login("carl", "pw").await.is_err());
        assert!(auth
            .authenticate(None, None, "b", || "x".into())
            .await
            .is_err());
        assert_eq!(auth.plain_text_users(), vec!["ann"]);
    }

    #[tokio::test]
    async fn repeated_failures_are_refused_without_checking() {
        let auth = Authenticator::new([("ann".to_string(), "pw".to_string())].into());
        for _ in 0..5 {
            assert_eq!(
                auth.authenticate(Some("ann"), Some("guess"), "10.0.0.1", || "x".into())
                    .await,
                Err(AuthError::BadCredentials)
            );
        }
        // Even the right password waits now.
        assert!(matches!(
            auth.authenticate(Some("ann"), Some("pw"), "10.0.0.1", || "x".into())
                .await,
            Err(AuthError::TooManyFailures { .. })
        ));
    }
}
