//! Who a client is: logins checked against the configured users (open mode without any).
//! What a user may touch is the broker's business (`broker::acl`).

use std::collections::BTreeMap;

/// A failed login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong passcode (one message for both: no user enumeration).
    #[error("authentication failed: unknown login or wrong passcode")]
    BadCredentials,
}

/// Checks logins against the configured users, or accepts any in open mode.
#[derive(Debug, Clone)]
pub struct Authenticator {
    users: BTreeMap<String, String>,
}

impl Authenticator {
    /// Users to check; empty means open mode.
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Authenticator { users }
    }

    /// True when any login is accepted.
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// The user name for a CONNECT's `login`/`passcode`. In open mode the login is taken as
    /// given, and a session without one gets `anonymous`'s generated name.
    pub fn authenticate(
        &self,
        login: Option<&str>,
        passcode: Option<&str>,
        anonymous: impl FnOnce() -> String,
    ) -> Result<String, AuthError> {
        if self.is_open() {
            return Ok(match login {
                Some(l) if !l.is_empty() => l.to_owned(),
                _ => anonymous(),
            });
        }
        let login = login.ok_or(AuthError::BadCredentials)?;
        match self.users.get(login) {
            Some(expected)
                if constant_time_eq(expected.as_bytes(), passcode.unwrap_or("").as_bytes()) =>
            {
                Ok(login.to_owned())
            }
            _ => Err(AuthError::BadCredentials),
        }
    }
}

/// Compares without an early exit, so response time does not reveal how much of a password
/// matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_mode_takes_login_as_given() {
        let auth = Authenticator::new(BTreeMap::new());
        assert_eq!(
            auth.authenticate(Some("ann"), None, || "x".into()),
            Ok("ann".into())
        );
        assert_eq!(
            auth.authenticate(None, None, || "anon-1".into()),
            Ok("anon-1".into())
        );
    }

    #[test]
    fn users_are_checked() {
        let auth = Authenticator::new([("ann".to_string(), "pw".to_string())].into());
        assert_eq!(
            auth.authenticate(Some("ann"), Some("pw"), || "x".into()),
            Ok("ann".into())
        );
        assert!(auth
            .authenticate(Some("ann"), Some("no"), || "x".into())
            .is_err());
        assert!(auth
            .authenticate(Some("bob"), Some("pw"), || "x".into())
            .is_err());
        assert!(auth.authenticate(None, None, || "x".into()).is_err());
    }
}
