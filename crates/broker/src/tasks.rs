//! Every background task of the broker, supervised in one `JoinSet`: the flushers, the group
//! and transaction tickers, producer-id expiry, retention, the cleaner and the admin HTTP
//! listener. Each task waits on its [`Stop`] only between units of work (a tick, a
//! retention pass, a partition's compaction, an fsync round), so stopping never cuts a write.
//! A task that ends before the stop signal — a panic or a return — is logged and fails the
//! broker (`server.rs` shuts down and the process exits non-zero) instead of vanishing.
//!
//! Invariant: no other module spawns a long-lived task; connections are `server.rs`'s and
//! are drained before these stop, so their acknowledgements still get their fsyncs.

use crate::broker::Broker;
use crate::partition::{self, Partition};
use crate::shutdown::{self, Stop, StopSender};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};

/// How often the coordinators' timers are looked at (sessions, join deadlines, offset
/// expiry, transaction timeouts; the coordinators apply their own intervals).
const COORDINATOR_TICK_MS: u64 = 100;
/// How often idempotent-producer state is checked for expiry.
const PRODUCER_EXPIRY_CHECK_MS: u64 = 60_000;

pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    stop: StopSender,
    /// The flushers: stopped only once every other task has, since a task finishing its
    /// unit of work (a timed-out transaction's markers) may wait for an fsync.
    last: std::collections::HashSet<Id>,
    stop_last: StopSender,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks::new()
    }
}

impl Tasks {
    pub fn new() -> Tasks {
        let (stop, _) = shutdown::channel();
        let (stop_last, _) = shutdown::channel();
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
            stop,
            last: std::collections::HashSet::new(),
            stop_last,
        }
    }

    /// A receiver of the signal [`Tasks::stop`] sends, for a task to be spawned.
    pub fn stop_signal(&self) -> Stop {
        self.stop.subscribe()
    }

    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Spawns a task stopped after all the others (`task` gets [`Tasks::last_stop_signal`]).
    pub fn spawn_last(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
        self.last.insert(handle.id());
    }

    /// The stop signal of the tasks spawned with [`Tasks::spawn_last`].
    pub fn last_stop_signal(&self) -> Stop {
        self.stop_last.subscribe()
    }

    /// Resolves when a task ends before the stop signal (never, while all run): the error
    /// names the task and its panic, and the broker must fail.
    pub async fn failed(&mut self) -> anyhow::Error {
        let Some(ended) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, why) = match ended {
            Ok((id, ())) => (id, "returned".to_string()),
            Err(e) if e.is_panic() => {
                let id = e.id();
                (id, format!("panicked: {}", panic_message(e.into_panic())))
            }
            Err(e) => (e.id(), "was cancelled".to_string()),
        };
        let name = self.names.remove(&id).unwrap_or("unnamed");
        self.last.remove(&id);
        tracing::error!(task = name, "background task {why}; the broker stops");
        anyhow::anyhow!("background task {name} {why}")
    }

    /// Sends the stop signal and waits up to `within` for every task to finish its unit of
    /// work — the ones spawned with [`Tasks::spawn_last`] are signalled once all others
    /// have ended; the ones still running at the deadline are aborted, and their names
    /// returned.
    pub async fn stop(mut self, within: Duration) -> Vec<&'static str> {
        self.stop.stop();
        // Tasks still running that are not spawned last.
        let mut first = self
            .names
            .keys()
            .filter(|id| !self.last.contains(id))
            .count();
        if first == 0 {
            self.stop_last.stop();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.set.join_next_with_id()).await {
                Ok(None) => return Vec::new(),
                Ok(Some(ended)) => {
                    let id = match &ended {
                        Ok((id, ())) => *id,
                        Err(e) => e.id(),
                    };
                    let name = self.names.remove(&id).unwrap_or("unnamed");
                    if let Err(e) = ended {
                        tracing::error!(task = name, error = %e, "background task failed while stopping");
                    }
                    if !self.last.remove(&id) {
                        first = first.saturating_sub(1);
                        if first == 0 {
                            self.stop_last.stop();
                        }
                    }
                }
                Err(_) => {
                    self.set.abort_all();
                    let mut cut: Vec<&'static str> = self.names.values().copied().collect();
                    cut.sort_unstable();
                    return cut;
                }
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Spawns the broker's tasks: the flusher matching `log.flush.policy`, the coordinator
/// tickers, producer-id expiry, retention and the cleaner.
pub fn spawn_broker_tasks(
    tasks: &mut Tasks,
    broker: &Arc<Broker>,
    queue: mpsc::UnboundedReceiver<Arc<Partition>>,
) {
    tasks.spawn_last(
        "flusher",
        partition::run_flusher(queue, tasks.last_stop_signal()),
    );
    tasks.spawn(
        "group-ticker",
        run_group_ticker(broker.clone(), tasks.stop_signal()),
    );
    tasks.spawn(
        "txn-ticker",
        run_txn_ticker(broker.clone(), tasks.stop_signal()),
    );
    tasks.spawn(
        "producer-expiry",
        run_producer_expiry(broker.clone(), tasks.stop_signal()),
    );
    tasks.spawn(
        "retention",
        run_retention(broker.clone(), tasks.stop_signal()),
    );
    tasks.spawn("cleaner", run_cleaner(broker.clone(), tasks.stop_signal()));
    if broker.settings.flush_policy == klamm_config::FlushPolicy::Interval {
        let (b, c) = (broker.clone(), broker.clone());
        tasks.spawn_last(
            "interval-flusher",
            partition::run_interval_flusher(
                move || b.all_partitions(),
                move || Duration::from_millis(c.config().broker().flush_interval_ms.max(1)),
                tasks.last_stop_signal(),
            ),
        );
    }
}

/// Waits for the next tick of `tick`, or returns false once `stop` is signalled.
async fn next_tick(tick: &mut tokio::time::Interval, stop: &mut Stop) -> bool {
    tokio::select! {
        _ = stop.wait() => false,
        _ = tick.tick() => true,
    }
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

/// Runs `work` on a blocking thread and waits for it; a panic there panics this task.
async fn blocking(work: impl FnOnce() + Send + 'static) {
    if let Err(e) = tokio::task::spawn_blocking(work).await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

async fn run_group_ticker(broker: Arc<Broker>, mut stop: Stop) {
    let mut tick = interval(Duration::from_millis(COORDINATOR_TICK_MS));
    while next_tick(&mut tick, &mut stop).await {
        broker.groups.tick(&broker);
    }
}

async fn run_txn_ticker(broker: Arc<Broker>, mut stop: Stop) {
    if let Some(completing) = crate::txn::recover(&broker) {
        completing.await;
    }
    let mut tick = interval(Duration::from_millis(COORDINATOR_TICK_MS));
    while next_tick(&mut tick, &mut stop).await {
        // Awaited here, not spawned: the markers of a timed-out transaction are written
        // (and durable) before the next tick, and before the task stops.
        if let Some(aborting) = crate::txn::tick_once(&broker) {
            aborting.await;
        }
    }
}

/// Forgets idempotent producers silent for `producer.id.expiration.ms`, as Kafka does.
async fn run_producer_expiry(broker: Arc<Broker>, mut stop: Stop) {
    let expiration_ms = broker.settings.producer_id_expiration_ms;
    let mut tick = interval(Duration::from_millis(PRODUCER_EXPIRY_CHECK_MS));
    while next_tick(&mut tick, &mut stop).await {
        let now = broker.now_ms();
        for p in broker.all_partitions() {
            p.log().expire_producers(now, expiration_ms);
        }
    }
}

/// Retention (`cleanup.policy` containing `delete`): every `log.retention.check.interval.ms`
/// each partition drops the sealed segments past `retention.ms` or beyond `retention.bytes`,
/// on a blocking thread; each partition is locked only for its own deletion.
async fn run_retention(broker: Arc<Broker>, mut stop: Stop) {
    let interval_ms = broker.settings.log_retention_check_interval_ms.max(1);
    // The first check comes one interval after start (Kafka waits too), not at start-up.
    let period = Duration::from_millis(interval_ms);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while next_tick(&mut tick, &mut stop).await {
        let b = broker.clone();
        blocking(move || crate::state::apply_retention(&b)).await;
    }
}

/// The log cleaner: every `log.cleaner.backoff.ms` one round over the compacted partitions
/// (`cleaner.rs`), which stops between partitions once the stop signal is sent.
async fn run_cleaner(broker: Arc<Broker>, mut stop: Stop) {
    if !broker.config().cleaner().enable {
        tracing::info!("log cleaner disabled (log.cleaner.enable=false)");
        return stop.wait().await;
    }
    loop {
        // Dynamic: read from the config in force for every round.
        let backoff_ms = broker.config().cleaner().backoff_ms;
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(backoff_ms.max(1))) => {}
        }
        let (b, round_stop) = (broker.clone(), stop.clone());
        blocking(move || crate::cleaner::clean_all(&b, &round_stop)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_fails_the_broker_and_is_named() {
        let mut tasks = Tasks::new();
        let mut stop = tasks.stop_signal();
        tasks.spawn("steady", async move { stop.wait().await });
        tasks.spawn("doomed", async { panic!("boom") });
        let e = tasks.failed().await.to_string();
        assert!(e.contains("doomed") && e.contains("boom"), "{e}");
        assert!(tasks.stop(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn a_task_that_returns_early_fails_the_broker_too() {
        let mut tasks = Tasks::new();
        tasks.spawn("quitter", async {});
        let e = tasks.failed().await.to_string();
        assert!(e.contains("quitter") && e.contains("returned"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_polite_tasks_and_cuts_the_rest_by_name() {
        let mut tasks = Tasks::new();
        let (mut a, mut b) = (tasks.stop_signal(), tasks.stop_signal());
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = finished.clone();
        tasks.spawn("polite", async move {
            a.wait().await;
            // Finishes its unit of work after the signal, within the timeout.
            tokio::time::sleep(Duration::from_millis(100)).await;
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        tasks.spawn("never-stops", std::future::pending());
        tasks.spawn("also-polite", async move { b.wait().await });
        let cut = tasks.stop(Duration::from_millis(500)).await;
        assert_eq!(cut, vec!["never-stops"]);
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_last_task_does_not_hold_back_the_stop_of_the_others() {
        let mut tasks = Tasks::new();
        let mut late = tasks.last_stop_signal();
        tasks.spawn_last("flusher", async { panic!("fsync thread gone") });
        tasks.spawn_last("interval-flusher", async move { late.wait().await });
        assert!(tasks.failed().await.to_string().contains("flusher"));
        // No first-stage task is left: the remaining last task is signalled at once.
        assert!(tasks.stop(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_tasks_stop_only_after_all_the_others() {
        let mut tasks = Tasks::new();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut early, mut late) = (tasks.stop_signal(), tasks.last_stop_signal());
        let o = order.clone();
        tasks.spawn("ticker", async move {
            early.wait().await;
            // Its last unit of work needs the flusher, which must still run.
            tokio::time::sleep(Duration::from_millis(200)).await;
            o.lock().unwrap().push("ticker");
        });
        let o = order.clone();
        tasks.spawn_last("flusher", async move {
            late.wait().await;
            o.lock().unwrap().push("flusher");
        });
        assert!(tasks.stop(Duration::from_secs(5)).await.is_empty());
        assert_eq!(*order.lock().unwrap(), vec!["ticker", "flusher"]);
    }
}
