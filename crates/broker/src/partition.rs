//! A partition as the broker sees it: the one writer of its [`PartitionLog`], its high
//! watermark, and its place in the group-commit flusher.
//!
//! The log sits behind a `std::sync::Mutex` that is never held across an `.await`: appends
//! are short page-cache work, a read only plans under it (what to read, from which maps)
//! and reads after releasing it, and every fsync (the one that makes `acks=all` durable, a
//! roll's) happens in the flusher, outside the lock.

use crate::clock::Clock;
use crate::shutdown::Stop;
use bytes::Bytes;
use klamm_config::FlushPolicy;
use klamm_log::{AppendError, AppendInfo, LogConfig, LogError, PartitionLog};
use klamm_protocol::batch::BatchHeader;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Single-node leader epoch: there has only ever been one leader.
pub const LEADER_EPOCH: i32 = 0;

pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog>,
    /// Offsets below this are visible to consumers and acknowledged for `acks=all`: under
    /// `log.flush.policy=always`, what has been fsync'd; otherwise the log end.
    high_watermark: watch::Sender<i64>,
    /// Set when data was appended that the flusher has not yet picked up.
    dirty: AtomicBool,
    shared: Arc<Shared>,
    /// Topic `flush.messages` / `flush.ms`: under `log.flush.policy` interval or never, an
    /// append that brings the unflushed messages to this count, or comes this long after
    /// the last fsync, queues an fsync (under `always` every append is fsync'd anyway).
    flush_messages: AtomicU64,
    flush_ms: AtomicU64,
    unflushed_messages: AtomicU64,
    last_flush_ms: AtomicI64,
}

/// What every partition of one broker shares.
pub struct Shared {
    pub policy: FlushPolicy,
    pub flusher: mpsc::UnboundedSender<Arc<Partition>>,
    /// The broker's clock, for `flush.ms`.
    pub clock: Arc<dyn Clock>,
    /// `metrics.enabled`: whether fsync durations are recorded.
    pub metrics_enabled: bool,
}

/// What a read returned, with the partition's offsets at that moment.
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Offsets below this hold no open transaction (at most the high watermark).
    pub last_stable_offset: i64,
    /// For read_committed reads: `(producer_id, first_offset)` of the aborted transactions
    /// overlapping the records returned.
    pub aborted_transactions: Vec<(i64, i64)>,
}

impl Partition {
    pub fn new(topic: &str, index: i32, log: PartitionLog, shared: Arc<Shared>) -> Arc<Partition> {
        // Whatever recovery kept is on disk (recovery fsyncs what it scans), so it is visible.
        let hw = log.log_end_offset();
        Arc::new(Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            high_watermark: watch::Sender::new(hw),
            dirty: AtomicBool::new(false),
            flush_messages: AtomicU64::new(u64::MAX),
            flush_ms: AtomicU64::new(u64::MAX),
            unflushed_messages: AtomicU64::new(0),
            last_flush_ms: AtomicI64::new(shared.clock.now_ms()),
            shared,
        })
    }

    /// Applies the topic's `flush.messages` and `flush.ms`.
    pub fn set_flush_limits(&self, messages: u64, ms: u64) {
        self.flush_messages.store(messages, Ordering::Relaxed);
        self.flush_ms.store(ms, Ordering::Relaxed);
    }

    /// `flush.messages` / `flush.ms` reached: hand the partition to the flusher.
    fn flush_if_due(self: &Arc<Self>, appended_messages: u64, now_ms: i64) {
        let unflushed = self
            .unflushed_messages
            .fetch_add(appended_messages, Ordering::AcqRel)
            + appended_messages;
        let since_ms = now_ms.saturating_sub(self.last_flush_ms.load(Ordering::Relaxed));
        let due = unflushed >= self.flush_messages.load(Ordering::Relaxed)
            || since_ms as u64 >= self.flush_ms.load(Ordering::Relaxed);
        if due {
            // Counted from now on, so one fsync is queued per limit reached.
            self.unflushed_messages.store(0, Ordering::Release);
            self.last_flush_ms.store(now_ms, Ordering::Relaxed);
            self.dirty.store(true, Ordering::Release);
            let _ = self.shared.flusher.send(self.clone());
        }
    }

    /// Locks the log. A poisoned lock means a panic mid-append: the in-memory state may not
    /// match the files, so keep going only as far as the next restart's recovery would.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends validated batches and arranges for them to become visible: immediately, or
    /// after the next group-commit fsync under `log.flush.policy=always`.
    pub fn append(
        self: &Arc<Self>,
        records: &[u8],
        batches: &[(BatchHeader, Range<usize>)],
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendInfo, AppendError> {
        let info = {
            let mut log = self.log();
            let info = log.append(records, batches, now_ms, LEADER_EPOCH, log_append_time)?;
            self.flush_rolls(&log);
            info
        };
        if info.duplicate {
            return Ok(info);
        }
        self.appended(
            info.last_offset,
            (info.last_offset + 1 - info.base_offset) as u64,
            now_ms,
        );
        Ok(info)
    }

    /// Writes a transaction marker (COMMIT or ABORT) for producer `(id, epoch)`; it becomes
    /// visible like any append. Returns its offset.
    pub fn append_marker(
        self: &Arc<Self>,
        producer: (i64, i16),
        commit: bool,
        now_ms: i64,
    ) -> std::io::Result<i64> {
        self.append_marker_locked(self.log(), producer, commit, 0, now_ms)
    }

    /// A marker a client sent (WriteTxnMarkers, as the admin's abortTransaction does), with
    /// its coordinator epoch. As Kafka refuses a non-replicated marker whose producer epoch
    /// is older than the partition's, the marker is written only if its epoch is at least
    /// the producer's current one; otherwise `Ok(Err(current epoch))` and nothing is
    /// written. The check and the append are one step under the log lock.
    pub fn append_client_marker(
        self: &Arc<Self>,
        producer: (i64, i16),
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> std::io::Result<Result<i64, i16>> {
        let log = self.log();
        if let Some(current) = log.producer_state().get(producer.0) {
            if current.epoch > producer.1 {
                return Ok(Err(current.epoch));
            }
        }
        self.append_marker_locked(log, producer, commit, coordinator_epoch, now_ms)
            .map(Ok)
    }

    /// Appends a marker to the locked log, then releases the lock before telling waiters.
    fn append_marker_locked(
        self: &Arc<Self>,
        mut log: MutexGuard<'_, PartitionLog>,
        producer: (i64, i16),
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> std::io::Result<i64> {
        let offset =
            log.append_marker(producer, commit, coordinator_epoch, now_ms, LEADER_EPOCH)?;
        self.flush_rolls(&log);
        drop(log);
        self.appended(offset, 1, now_ms);
        Ok(offset)
    }

    /// A roll leaves its fsyncs to the flusher (no fsync runs under this lock): queue one,
    /// whatever the flush policy, as Kafka flushes a rolled segment in the background.
    /// Call with the log locked, after anything that may roll.
    pub fn flush_rolls(self: &Arc<Self>, log: &PartitionLog) {
        if log.has_pending_rolls() && !self.dirty.swap(true, Ordering::AcqRel) {
            let _ = self.shared.flusher.send(self.clone());
        }
    }

    /// Arranges for an append of `messages` ending at `last_offset` to become visible:
    /// immediately, or after the next group-commit fsync under `log.flush.policy=always`.
    fn appended(self: &Arc<Self>, last_offset: i64, messages: u64, now_ms: i64) {
        match self.shared.policy {
            FlushPolicy::Always => {
                if !self.dirty.swap(true, Ordering::AcqRel) {
                    // The flusher lives as long as the broker; a send error means shutdown.
                    let _ = self.shared.flusher.send(self.clone());
                }
            }
            FlushPolicy::Interval => {
                self.dirty.store(true, Ordering::Release);
                self.advance_high_watermark(last_offset + 1);
                self.flush_if_due(messages, now_ms);
            }
            FlushPolicy::Never => {
                self.advance_high_watermark(last_offset + 1);
                self.flush_if_due(messages, now_ms);
            }
        }
    }

    fn advance_high_watermark(&self, offset: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that sees every later move of the high watermark (a parked fetch waits on
    /// the ones of its own partitions); it reports an error once the partition is gone.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Resolves once the high watermark is above `offset` (the record is durable/visible).
    pub async fn wait_visible(&self, offset: i64) {
        let mut rx = self.high_watermark.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|hw| *hw > offset).await;
    }

    /// Calls `visit(header, batch bytes)` for every batch from the log start to the high
    /// watermark, for the coordinators' replay at start-up. Damage on disk must not keep the
    /// broker from starting (a crash loop): what precedes it is replayed, the rest of the
    /// partition is skipped and logged. `visit`'s own error stops the replay.
    pub fn replay(
        &self,
        mut visit: impl FnMut(&BatchHeader, &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        /// Bytes read per step.
        const REPLAY_READ_BYTES: u64 = 4 << 20;
        let mut at = self.log().log_start_offset();
        loop {
            let read = match self.read(at, REPLAY_READ_BYTES, true) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(
                        topic = %self.topic,
                        partition = self.index,
                        offset = at,
                        error = %e,
                        "cannot replay past this offset: the rest of the partition is skipped"
                    );
                    return Ok(());
                }
            };
            if read.records.is_empty() {
                return Ok(());
            }
            for (pos, h) in klamm_protocol::batch::headers(&read.records) {
                at = h.last_offset() + 1;
                visit(&h, &read.records[pos..pos + h.total_bytes()])?;
            }
        }
    }

    /// Reads whole batches from `from_offset` up to the high watermark.
    pub fn read(
        &self,
        from_offset: i64,
        max_bytes: u64,
        at_least_one: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_isolated(from_offset, max_bytes, at_least_one, false)
    }

    /// Reads whole batches from `from_offset` up to the high watermark, or with
    /// `read_committed` up to the last stable offset, listing the aborted transactions in
    /// what was read.
    pub fn read_isolated(
        &self,
        from_offset: i64,
        max_bytes: u64,
        at_least_one: bool,
        read_committed: bool,
    ) -> Result<ReadResult, LogError> {
        let high_watermark = self.high_watermark();
        // Planned under the lock, read without it: the header walk and CRC checks may fault
        // cold pages in from disk, which must not hold up appends.
        let (plan, last_stable_offset, log_start_offset) = {
            let log = self.log();
            let last_stable_offset = stable(&log, high_watermark);
            let upper = if read_committed {
                last_stable_offset
            } else {
                high_watermark
            };
            let plan = log.plan_read(from_offset, upper, max_bytes, at_least_one)?;
            (plan, last_stable_offset, log.log_start_offset())
        };
        let records = plan.run()?;
        let aborted_transactions = if read_committed && !records.is_empty() {
            let end = klamm_protocol::batch::headers(&records)
                .last()
                .map_or(from_offset, |(_, h)| h.last_offset() + 1);
            self.log().aborted_transactions(from_offset, end)
        } else {
            Vec::new()
        };
        Ok(ReadResult {
            records,
            high_watermark,
            log_start_offset,
            last_stable_offset,
            aborted_transactions,
        })
    }

    /// The last stable offset: the high watermark, held back by the oldest open transaction.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        stable(&self.log(), hw)
    }

    /// fsyncs whatever was appended up to now, then publishes it. Runs on a blocking thread.
    pub fn flush_now(&self) -> std::io::Result<std::time::Duration> {
        self.dirty.store(false, Ordering::Release);
        self.unflushed_messages.store(0, Ordering::Release);
        self.last_flush_ms
            .store(self.shared.clock.now_ms(), Ordering::Relaxed);
        let target = self.log().flush_target();
        let started = Instant::now();
        target.sync()?;
        let took = started.elapsed();
        if target.needs_report() {
            self.log().mark_synced(&target);
        }
        let covered = target.covered;
        if self.shared.metrics_enabled {
            crate::metrics::metrics()
                .flush_duration
                .observe(took.as_secs_f64());
        }
        self.advance_high_watermark(covered);
        Ok(took)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }

    /// Flushes and closes the log for a clean shutdown.
    pub fn close(&self) -> std::io::Result<()> {
        self.log().close()
    }
}

fn stable(log: &PartitionLog, high_watermark: i64) -> i64 {
    log.first_unstable_offset()
        .map_or(high_watermark, |first| first.min(high_watermark))
}

/// The group-commit flusher: waits for partitions with unflushed appends, fsyncs each one
/// once for everything that arrived meanwhile, and publishes the new high watermarks.
/// Appends that land during an fsync re-queue their partition, so they ride the next one.
/// Stops between fsync rounds once `stop` is signalled (closing the partitions fsyncs the rest).
pub async fn run_flusher(mut queue: mpsc::UnboundedReceiver<Arc<Partition>>, mut stop: Stop) {
    loop {
        let first = tokio::select! {
            _ = stop.wait() => return,
            first = queue.recv() => match first {
                Some(first) => first,
                None => return stop.wait().await,
            },
        };
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let flushes = batch.into_iter().map(|p| {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = p.flush_now() {
                    // Not acknowledged, so nothing is lost: the producer times out and retries.
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "fsync failed");
                }
            })
        });
        for f in flushes.collect::<Vec<_>>() {
            let _ = f.await;
        }
    }
}

/// `log.flush.policy=interval`: fsyncs dirty partitions every `interval`.
pub async fn run_interval_flusher(
    partitions: impl Fn() -> Vec<Arc<Partition>> + Send + 'static,
    interval: impl Fn() -> std::time::Duration + Send + 'static,
    mut stop: Stop,
) {
    // The period is read at least every second, so a change of the dynamic
    // `log.flush.interval.ms` applies within a second, not after the old period.
    const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
    let mut last_flush = tokio::time::Instant::now();
    loop {
        let period = interval();
        let due = last_flush + period;
        if tokio::time::Instant::now() < due {
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep_until(due.min(tokio::time::Instant::now() + RECHECK)) => {}
            }
            continue;
        }
        last_flush = tokio::time::Instant::now();
        let dirty: Vec<_> = partitions().into_iter().filter(|p| p.is_dirty()).collect();
        if dirty.is_empty() {
            continue;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for p in dirty {
                if let Err(e) = p.flush_now() {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "fsync failed");
                }
            }
        })
        .await;
    }
}
