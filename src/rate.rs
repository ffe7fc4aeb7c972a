//! Rate limits as token buckets: one for the whole server (new connections), or one per key
//! (job submissions per user).

use std::sync::Mutex;
use std::time::Instant;

/// Admits at most `per_second` events per second, with a burst of one second's worth.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    // (tokens, last refill). A std Mutex: a few arithmetic operations, never held across await.
    bucket: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        TokenBucket {
            per_second,
            bucket: Mutex::new((per_second, Instant::now())),
        }
    }

    /// True when the bucket has refilled completely (an idle key).
    pub fn is_full(&self) -> bool {
        let bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        bucket.0 + bucket.1.elapsed().as_secs_f64() * self.per_second >= self.per_second
    }

    /// Takes a token if one is left.
    pub fn admit(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.1).as_secs_f64() * self.per_second;
        bucket.0 = (bucket.0 + refill).min(self.per_second);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let rate = TokenBucket::new(3);
        assert!(rate.admit());
        assert!(rate.admit());
        assert!(rate.admit());
        assert!(!rate.admit());
    }
}

/// One token bucket per key (per user), created on first use; buckets that refilled completely
/// are dropped when the map grows, so it stays bounded by the active keys.
#[derive(Debug)]
pub struct RateLimits {
    per_second: u32,
    // A std Mutex: a map lookup and some arithmetic.
    buckets: Mutex<std::collections::HashMap<String, TokenBucket>>,
}

impl RateLimits {
    /// `per_second` per key, bursts of one second's worth.
    pub fn new(per_second: u32) -> Self {
        RateLimits {
            per_second,
            buckets: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Takes a token for `key` if one is left.
    pub fn admit(&self, key: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, bucket| !bucket.is_full());
        }
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::new(self.per_second))
            .admit()
    }
}
