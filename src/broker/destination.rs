//! Destination names: what kind each is, and wildcard patterns for topic subscriptions.
//!
//! The contract is written down in `protocol/docs/destinations.md`.

/// Longest destination accepted, in bytes.
pub const MAX_DESTINATION_LEN: usize = 1024;

/// Where a SEND goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget<'a> {
    /// `/topic/...`: every matching subscription gets a copy.
    Topic(&'a str),
    /// `/queue/...`: one consumer gets it.
    Queue(&'a str),
    /// `/user/{name}/queue/...` or `/user/{name}/topic/...`: every session of `user` subscribed
    /// to the user destination `/user/queue/...` (or `/user/topic/...`).
    User {
        /// The recipient.
        user: &'a str,
        /// The destination as the recipient subscribed to it, e.g. `/user/queue/progress`.
        local: String,
    },
    /// `/app/...`: handed to a server-side handler.
    App(&'a str),
}

/// What a SUBSCRIBE listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeTarget<'a> {
    /// A topic name or pattern (`*` one segment, `**` any number).
    Topic(&'a str),
    /// A queue.
    Queue(&'a str),
    /// A user destination (`/user/queue/x`), as subscribed.
    User(&'a str),
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Longer than [`MAX_DESTINATION_LEN`].
    #[error("destination longer than {MAX_DESTINATION_LEN} bytes")]
    TooLong,
    /// Does not start with a known prefix, or has an empty name.
    #[error("unsupported destination {0:?}: use /topic/<name>, /queue/<name>, /user/queue/<name>, /user/<user>/queue/<name> or /app/<name>")]
    Unsupported(String),
    /// A wildcard where one cannot be used.
    #[error("wildcards (* and **) are only allowed in topic subscriptions: {0:?}")]
    Wildcard(String),
    /// A control character (a line break, a NUL, ...): it would reach logs, metrics and the
    /// dashboard as a forged line.
    #[error("destination names may not contain control characters: {0:?}")]
    ControlCharacter(String),
}

fn check_name(destination: &str) -> Result<(), DestinationError> {
    if destination.len() > MAX_DESTINATION_LEN {
        return Err(DestinationError::TooLong);
    }
    if destination.chars().any(char::is_control) {
        return Err(DestinationError::ControlCharacter(destination.to_owned()));
    }
    Ok(())
}

fn named<'a>(destination: &'a str, prefix: &str) -> Option<&'a str> {
    destination
        .strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && !rest.starts_with('/'))
        .map(|_| destination)
}

fn has_wildcard(destination: &str) -> bool {
    destination.split('/').any(|s| s == "*" || s == "**")
}

/// Classifies a SEND destination.
pub fn parse_send(destination: &str) -> Result<SendTarget<'_>, DestinationError> {
    check_name(destination)?;
    if has_wildcard(destination) {
        return Err(DestinationError::Wildcard(destination.to_owned()));
    }
    if let Some(d) = named(destination, "/topic/") {
        return Ok(SendTarget::Topic(d));
    }
    if let Some(d) = named(destination, "/queue/") {
        return Ok(SendTarget::Queue(d));
    }
    if let Some(d) = named(destination, "/app/") {
        return Ok(SendTarget::App(d));
    }
    if let Some(rest) = destination.strip_prefix("/user/") {
        if let Some((user, tail)) = rest.split_once('/') {
            let tail = format!("/{tail}");
            if !user.is_empty()
                && (named(&tail, "/queue/").is_some() || named(&tail, "/topic/").is_some())
            {
                return Ok(SendTarget::User {
                    user,
                    local: format!("/user{tail}"),
                });
            }
        }
    }
    Err(DestinationError::Unsupported(destination.to_owned()))
}

/// User destinations where the server publishes to each user (job progress, job lists,
/// rejected submissions), as their owner subscribes to them.
const SERVER_OWNED_USER_QUEUES: [&str; 3] = [
    "/user/queue/progress",
    "/user/queue/jobs",
    "/user/queue/errors",
];

/// True when only the server may publish to `target`: the job topics (`/topic/jobs` and all
/// below it), `/topic/stats`, and every user's progress, jobs and errors queues. A client that
/// could write there could forge job events that every watcher of a job, or its owner, would
/// take for the engine's.
pub fn is_server_owned(target: &SendTarget<'_>) -> bool {
    match target {
        SendTarget::Topic(name) => {
            *name == "/topic/stats" || *name == "/topic/jobs" || name.starts_with("/topic/jobs/")
        }
        SendTarget::User { local, .. } => SERVER_OWNED_USER_QUEUES.contains(&local.as_str()),
        SendTarget::Queue(_) | SendTarget::App(_) => false,
    }
}

/// True for destinations whose messages describe this node only and stay on it in a cluster:
/// `/topic/stats` (each node's job figures; a cluster-wide view is later work).
pub fn is_node_local(key: &str) -> bool {
    key == "/topic/stats"
}

/// Classifies a SUBSCRIBE destination.
pub fn parse_subscribe(destination: &str) -> Result<SubscribeTarget<'_>, DestinationError> {
    check_name(destination)?;
    if let Some(d) = named(destination, "/topic/") {
        return Ok(SubscribeTarget::Topic(d));
    }
    if has_wildcard(destination) {
        return Err(DestinationError::Wildcard(destination.to_owned()));
    }
    if let Some(d) = named(destination, "/queue/") {
        return Ok(SubscribeTarget::Queue(d));
    }
    if named(destination, "/user/queue/").is_some() || named(destination, "/user/topic/").is_some()
    {
        return Ok(SubscribeTarget::User(destination));
    }
    Err(DestinationError::Unsupported(destination.to_owned()))
}

/// The internal key under which user `user`'s subscriptions to `local` (`/user/queue/x`) are
/// indexed. Lives outside `/topic/`, so no topic pattern can ever match it.
pub fn user_key(user: &str, local: &str) -> String {
    let tail = local.strip_prefix("/user").unwrap_or(local);
    format!("/user/{user}{tail}")
}

/// A topic subscription pattern, split into segments once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    One,
    Any,
}

impl Pattern {
    /// Compiles a pattern, or `None` when it has no wildcard (index it by name instead).
    pub fn compile(pattern: &str) -> Option<Pattern> {
        if !has_wildcard(pattern) {
            return None;
        }
        let segments = pattern
            .split('/')
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Any,
                other => Segment::Literal(other.into()),
            })
            .collect();
        Some(Pattern { segments })
    }

    /// True when `destination` matches. `**` matches zero or more segments.
    pub fn matches(&self, destination: &str) -> bool {
        let parts: Vec<&str> = destination.split('/').collect();
        // reachable[j]: the first i pattern segments can match the first j parts.
        let mut reachable = vec![false; parts.len() + 1];
        reachable[0] = true;
        for segment in &self.segments {
            let mut next = vec![false; parts.len() + 1];
            for j in 0..=parts.len() {
                match segment {
                    Segment::Any => next[j] = reachable[j] || (j > 0 && next[j - 1]),
                    Segment::One => next[j] = j > 0 && reachable[j - 1],
                    Segment::Literal(lit) => {
                        next[j] = j > 0 && reachable[j - 1] && parts[j - 1] == &**lit
                    }
                }
            }
            reachable = next;
        }
        reachable[parts.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_in_every_kind_of_destination() {
        for bad in [
            "/topic/a\nb",
            "/queue/x\u{0}",
            "/user/queue/p\r",
            "/app/jobs\t",
        ] {
            assert!(
                matches!(parse_send(bad), Err(DestinationError::ControlCharacter(_))),
                "{bad:?}"
            );
            assert!(parse_subscribe(bad).is_err(), "{bad:?}");
        }
        assert!(parse_send("/topic/relevé").is_ok());
    }

    #[test]
    fn send_targets() {
        assert_eq!(parse_send("/topic/a"), Ok(SendTarget::Topic("/topic/a")));
        assert_eq!(
            parse_send("/queue/a.b"),
            Ok(SendTarget::Queue("/queue/a.b"))
        );
        assert_eq!(parse_send("/app/jobs"), Ok(SendTarget::App("/app/jobs")));
        assert_eq!(
            parse_send("/user/bob/queue/progress"),
            Ok(SendTarget::User {
                user: "bob",
                local: "/user/queue/progress".into()
            })
        );
        assert!(parse_send("/topic/").is_err());
        assert!(parse_send("/topic/a/*").is_err());
        assert!(parse_send("/user/queue/x").is_err());
        assert!(parse_send("/elsewhere").is_err());
    }

    #[test]
    fn server_owned_destinations() {
        for owned in [
            "/topic/jobs/01JABC",
            "/topic/jobs/01JABC/chunks",
            "/topic/stats",
            "/user/bob/queue/progress",
            "/user/ann/queue/jobs",
            "/user/ann/queue/errors",
        ] {
            assert!(is_server_owned(&parse_send(owned).unwrap()), "{owned}");
        }
        for open in [
            "/topic/jobsx",
            "/topic/news",
            "/topic/stats/more",
            "/queue/jobs",
            "/user/bob/queue/inbox",
            "/user/bob/topic/progress",
        ] {
            assert!(!is_server_owned(&parse_send(open).unwrap()), "{open}");
        }
    }

    #[test]
    fn subscribe_targets() {
        assert_eq!(
            parse_subscribe("/topic/jobs/**"),
            Ok(SubscribeTarget::Topic("/topic/jobs/**"))
        );
        assert_eq!(
            parse_subscribe("/user/queue/x"),
            Ok(SubscribeTarget::User("/user/queue/x"))
        );
        assert!(parse_subscribe("/queue/*").is_err());
        assert_eq!(user_key("bob", "/user/queue/x"), "/user/bob/queue/x");
    }

    #[test]
    fn patterns() {
        let p = Pattern::compile("/topic/jobs/**").unwrap();
        assert!(p.matches("/topic/jobs/1"));
        assert!(p.matches("/topic/jobs/1/chunks"));
        assert!(p.matches("/topic/jobs"));
        assert!(!p.matches("/topic/other/1"));
        let p = Pattern::compile("/topic/*/price").unwrap();
        assert!(p.matches("/topic/eur/price"));
        assert!(!p.matches("/topic/eur/usd/price"));
        let p = Pattern::compile("/topic/**/end").unwrap();
        assert!(p.matches("/topic/a/b/c/end"));
        assert!(p.matches("/topic/end"));
        assert!(!p.matches("/topic/a/endx"));
        assert!(Pattern::compile("/topic/plain").is_none());
    }
}
