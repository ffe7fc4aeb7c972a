//! Authorisation: which destinations a user may read (SUBSCRIBE) and write (SEND), from the
//! configured rules and the defaults. The broker asks it in one place (`admission.rs` for
//! reading, routing for writing).

use serde::Deserialize;

use super::destination::Pattern;

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
