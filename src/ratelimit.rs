//! Fixed-window rate limiting per bucket (an API key, or a client address for
//! failed authentications), as the Node server's express-rate-limit did.

use std::collections::HashMap;
use std::sync::Mutex;

const WINDOW_MS: i64 = 60_000;
/// Past this many buckets, finished windows are swept on the next check.
const SWEEP_AT: usize = 10_000;

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the window resets, Unix milliseconds (what X-RateLimit-Reset carries).
    pub reset_ms: i64,
    /// Whole seconds until the reset (for Retry-After), at least 1.
    pub retry_after_secs: u64,
}

/// Request counters; `limit` 0 turns limiting off.
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32) -> RateLimiter {
        RateLimiter {
            limit: limit_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Counts one request against `bucket` at `now_ms`.
    pub fn check(&self, bucket: &str, now_ms: i64) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_AT {
            windows.retain(|_, (start, _)| now_ms - *start < WINDOW_MS);
        }
        let entry = windows.entry(bucket.to_string()).or_insert((now_ms, 0));
        if now_ms - entry.0 >= WINDOW_MS {
            *entry = (now_ms, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let reset_ms = entry.0 + WINDOW_MS;
        Verdict {
            allowed: entry.1 <= self.limit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(entry.1),
            reset_ms,
            retry_after_secs: ((reset_ms - now_ms).max(1) as u64).div_ceil(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_bucket_and_resets_after_a_minute() {
        let rl = RateLimiter::new(3);
        let t = 1_000_000;
        for left in [2, 1, 0] {
            let v = rl.check("key:a", t);
            assert!(v.allowed);
            assert_eq!(v.remaining, left);
        }
        let v = rl.check("key:a", t + 1_500);
        assert!(!v.allowed);
        assert_eq!(v.reset_ms, t + 60_000);
        assert_eq!(v.retry_after_secs, 59);
        assert!(rl.check("ip:1.2.3.4", t).allowed);
        assert!(rl.check("key:a", t + 60_000).allowed);
    }
}
