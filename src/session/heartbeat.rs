//! Heart-beat negotiation (STOMP 1.2, "Heart-beating"): pure arithmetic, no timers.

use std::time::Duration;

/// The intervals agreed for one session. `None`: no heart-beats that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartBeat {
    /// How often the server must send something.
    pub outgoing: Option<Duration>,
    /// How often the client promised to send something.
    pub incoming: Option<Duration>,
}

/// Parses a `heart-beat:cx,cy` header. Absent means `0,0`.
pub fn parse(header: Option<&str>) -> Option<(u64, u64)> {
    let Some(value) = header else {
        return Some((0, 0));
    };
    let (x, y) = value.split_once(',')?;
    Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
}

/// Negotiates from the client's `(cx, cy)` and the server's `(sx, sy)`: the server sends every
/// `max(sx, cy)` unless either is 0, and expects the client every `max(cx, sy)` unless either is
/// 0.
pub fn negotiate(client: (u64, u64), server: (u64, u64)) -> HeartBeat {
    let (cx, cy) = client;
    let (sx, sy) = server;
    let interval = |a: u64, b: u64| (a != 0 && b != 0).then(|| Duration::from_millis(a.max(b)));
    HeartBeat {
        outgoing: interval(sx, cy),
        incoming: interval(cx, sy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse(None), Some((0, 0)));
        assert_eq!(parse(Some("1000,2000")), Some((1000, 2000)));
        assert_eq!(parse(Some("1000")), None);
        assert_eq!(parse(Some("a,b")), None);
    }

    #[test]
    fn negotiation_follows_the_spec() {
        let hb = negotiate((4000, 6000), (5000, 5000));
        assert_eq!(hb.outgoing, Some(Duration::from_millis(6000)));
        assert_eq!(hb.incoming, Some(Duration::from_millis(5000)));
        let hb = negotiate((0, 6000), (5000, 0));
        assert_eq!(hb.outgoing, Some(Duration::from_millis(6000)));
        assert_eq!(hb.incoming, None);
        let hb = negotiate((1000, 0), (5000, 5000));
        assert_eq!(hb.outgoing, None);
    }
}
