//! The broker's wall clock, held by the broker and passed in, so tests can hold it still.
//!
//! Everything that stamps or compares Kafka timestamps (record and commit times, session and
//! transaction timeouts, retention, segment age, producer expiry) reads [`Clock::now_ms`] from
//! the broker's clock: [`SystemClock`] in production, a [`ManualClock`] in tests, which moves
//! only when the test says so. Waiting (long-poll windows, tick periods, deadlines on
//! sockets) uses tokio's monotonic time, which tests pause with `start_paused`.
//!
//! Invariant: a leaf — this module imports nothing from the crate.

use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to.
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(start_ms),
        }
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance_ms(250);
        assert_eq!(c.now_ms(), 1_250);
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }
}
