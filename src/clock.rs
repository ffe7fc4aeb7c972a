//! Wall-clock time as the store and the wire carry it: milliseconds since the Unix epoch.

/// Milliseconds since the epoch (0 if the system clock is set before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
