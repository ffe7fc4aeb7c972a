//! Who a client is (login/passcode) and what it may touch (per-destination rules).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::broker::destination::Pattern;

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

/// What a client wants to do with a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// SUBSCRIBE.
    Read,
    /// SEND.
    Write,
}

/// One authorisation rule: for users matching `user` (a name or `*`), destinations matching
/// `destination` (a name or a pattern with `*`/`**`; `{user}` stands for the user's own name)
/// may be read and/or written. The first matching rule decides.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AclRule {
    /// A user name, or `*` for everyone.
    pub user: String,
    /// A destination or pattern.
    pub destination: String,
    /// May subscribe.
    #[serde(default)]
    pub read: bool,
    /// May send.
    #[serde(default)]
    pub write: bool,
}

/// The authorisation rules. After the configured ones come the defaults: a user may send to
/// their own `/user/{user}/...` destinations and nobody else's; everything else is allowed.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<AclRule>,
}

impl Acl {
    /// Rules from the configuration.
    pub fn new(rules: Vec<AclRule>) -> Self {
        Acl { rules }
    }

    /// Whether `user` may perform `access` on `destination`.
    pub fn allows(&self, user: &str, destination: &str, access: Access) -> bool {
        for rule in &self.rules {
            if rule.user != "*" && rule.user != user {
                continue;
            }
            let pattern = rule.destination.replace("{user}", user);
            let matched = match Pattern::compile(&pattern) {
                Some(p) => p.matches(destination),
                None => pattern == destination,
            };
            if matched {
                return match access {
                    Access::Read => rule.read,
                    Access::Write => rule.write,
                };
            }
        }
        // Default: another user's private destinations are off limits. (Subscriptions to
        // `/user/queue/...` always resolve to the subscriber's own.)
        if let Some(rest) = destination.strip_prefix("/user/") {
            let owner = rest.split('/').next().unwrap_or("");
            return owner == user || owner == "queue" || owner == "topic";
        }
        true
    }
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

    #[test]
    fn default_acl_keeps_users_apart() {
        let acl = Acl::default();
        assert!(acl.allows("ann", "/user/ann/queue/x", Access::Write));
        assert!(!acl.allows("ann", "/user/bob/queue/x", Access::Write));
        assert!(acl.allows("ann", "/topic/x", Access::Write));
    }

    #[test]
    fn rules_first_match_wins() {
        let acl = Acl::new(vec![
            AclRule {
                user: "admin".into(),
                destination: "/user/**".into(),
                read: true,
                write: true,
            },
            AclRule {
                user: "*".into(),
                destination: "/topic/admin/**".into(),
                read: true,
                write: false,
            },
        ]);
        assert!(acl.allows("admin", "/user/bob/queue/x", Access::Write));
        assert!(!acl.allows("ann", "/topic/admin/x", Access::Write));
        assert!(acl.allows("ann", "/topic/admin/x", Access::Read));
    }
}
