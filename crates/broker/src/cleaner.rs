//! The log-cleaner task: every `log.cleaner.backoff.ms`, each partition of a topic with
//! `cleanup.policy` containing `compact` is compacted if due (see `klamm_log::cleaner` for the
//! algorithm and its crash safety). It runs on a blocking thread; the partition lock is held
//! only to plan and to swap the cleaned segments in, never while reading or writing them.

use crate::broker::Broker;
use crate::shutdown::Stop;
use crate::state::Topic;
use klamm_log::cleaner::{self, CleanerConfig};
use std::time::{Duration, Instant};

/// Sleeps so that bytes read plus written stay under `log.cleaner.io.max.bytes.per.second`.
struct Throttle {
    bytes_per_second: f64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    fn account(&mut self, bytes: u64) {
        if let Some(pause) = self.pause_after(bytes, self.started.elapsed()) {
            std::thread::sleep(pause);
        }
    }

    /// Counts `bytes` more at `elapsed` since the round started; returns how long to
    /// pause so the average rate stays at the limit (None: under it, or unlimited).
    fn pause_after(&mut self, bytes: u64, elapsed: Duration) -> Option<Duration> {
        self.bytes += bytes;
        if !(self.bytes_per_second.is_finite() && self.bytes_per_second > 0.0) {
            return None;
        }
        let due_s = self.bytes as f64 / self.bytes_per_second;
        let elapsed_s = elapsed.as_secs_f64();
        (due_s > elapsed_s + 0.005).then(|| Duration::from_secs_f64(due_s - elapsed_s))
    }
}

pub fn cleaner_config(broker: &Broker, topic: &Topic) -> CleanerConfig {
    let s = &topic.settings;
    let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
    CleanerConfig {
        delete_retention_ms: clamp(s.delete_retention_ms),
        min_compaction_lag_ms: clamp(s.min_compaction_lag_ms),
        max_compaction_lag_ms: clamp(s.max_compaction_lag_ms),
        min_cleanable_dirty_ratio: s.min_cleanable_dirty_ratio,
        dedupe_buffer_bytes: broker.config().cleaner().dedupe_buffer_bytes,
        segment_bytes: s.segment_bytes,
        max_decompressed_bytes: s.max_decompressed_bytes,
    }
}

/// One round over the compacted partitions; stops between partitions once `stop` is set.
pub fn clean_all(broker: &Broker, stop: &Stop) {
    let mut throttle = Throttle {
        bytes_per_second: broker.config().cleaner().io_max_bytes_per_second,
        started: Instant::now(),
        bytes: 0,
    };
    for topic in broker.topics() {
        if !topic.settings.cleanup_policy_compact {
            continue;
        }
        let config = cleaner_config(broker, &topic);
        let roll_age_ms = config
            .max_compaction_lag_ms
            .min(topic.settings.segment_ms.min(i64::MAX as u64) as i64);
        for p in &topic.partitions {
            if stop.is_set() {
                return;
            }
            let now = broker.now_ms();
            let plan = {
                let mut log = p.log();
                if let Err(e) = log.roll_if_older_than(now, roll_age_ms) {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "roll failed");
                }
                // Only decided data may be cleaned: below the last stable offset, every
                // transactional batch is committed or aborted (Kafka's bound too).
                let hw = p.high_watermark();
                let lso = log
                    .first_unstable_offset()
                    .map_or(hw, |first| first.min(hw));
                log.plan_cleaning(now, &config, lso)
            };
            let Some(plan) = plan else { continue };
            let started = Instant::now();
            // Each output file is created under the partition lock, so a topic deleted
            // meanwhile gets none in the recreated topic's directory of the same name.
            let result = match cleaner::clean(
                &plan,
                &config,
                now,
                &mut |b| throttle.account(b),
                &mut |name| p.log().create_cleaned(name),
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "compaction failed");
                    continue;
                }
            };
            drop(plan);
            let stats = result.stats.clone();
            match p.log().install_cleaned(result) {
                Ok(groups) => {
                    if broker.settings.metrics_enabled {
                        let m = crate::metrics::metrics();
                        m.cleaner_bytes_read.inc_by(stats.bytes_read);
                        m.cleaner_bytes_written.inc_by(stats.bytes_written);
                    }
                    tracing::info!(
                        topic = %topic.name,
                        partition = p.index,
                        groups,
                        bytes_read = stats.bytes_read,
                        bytes_written = stats.bytes_written,
                        records_kept = stats.records_kept,
                        records_read = stats.records_read,
                        tombstones_removed = stats.tombstones_removed,
                        markers_removed = stats.markers_removed,
                        keys = stats.offset_map_entries,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "compacted"
                    );
                }
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "installing compacted segments failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_keeps_the_average_rate_at_the_limit() {
        let mut t = Throttle {
            bytes_per_second: 1_000_000.0,
            started: Instant::now(),
            bytes: 0,
        };
        // 500 KB at once is 0.5 s of budget: pause for it.
        assert_eq!(
            t.pause_after(500_000, Duration::ZERO),
            Some(Duration::from_millis(500))
        );
        // Behind schedule already (1 MB due by 1 s, 1.2 s passed): no pause.
        assert_eq!(t.pause_after(500_000, Duration::from_millis(1_200)), None);
        // 1.5 MB due by 1.5 s, 1.25 s passed: pause the difference.
        let pause = t
            .pause_after(500_000, Duration::from_millis(1_250))
            .unwrap();
        assert!((pause.as_secs_f64() - 0.25).abs() < 1e-9, "{pause:?}");
        // Unlimited (the default): never pauses.
        let mut free = Throttle {
            bytes_per_second: f64::MAX,
            started: Instant::now(),
            bytes: 0,
        };
        assert_eq!(free.pause_after(u64::MAX / 2, Duration::ZERO), None);
    }
}
