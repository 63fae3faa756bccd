//! The broker's shared state: settings, the topic table, and the persisted metadata image.
//!
//! Topics are immutable snapshots (`Arc<Topic>`) swapped in the table on change, so request
//! handlers read them without holding any lock. Admin changes (create, delete, add
//! partitions) are serialised by the `image` lock and persisted before they are visible.

use crate::clock::Clock;
use crate::metadata::{self, MetadataImage, MetadataStore, TopicRecord};
use crate::partition::Partition;
use crate::shutdown::{Stop, StopSender};
use crate::topic_name;
use kafka_protocol::error::ResponseError;
use klamm_config::{BrokerSettings, Config, DynamicScope, TopicSettings};
use klamm_log::{LogConfig, PartitionLog};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Marker written after a clean shutdown; its absence at startup means recovery must scan.
const CLEAN_SHUTDOWN_MARKER: &str = ".klamm_cleanshutdown";
/// Partitions one topic may have: each costs three open files and two maps.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// Producer ids reserved in the metadata image at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Threads that close partitions in parallel at shutdown.
const CLOSE_THREADS: usize = 8;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Validated topic-level overrides.
    pub configs: BTreeMap<String, String>,
    /// Effective settings: overrides, else broker defaults.
    pub settings: TopicSettings,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

pub use crate::admin_error::AdminError;

pub struct State {
    /// Swapped whole when a dynamic broker config changes; read it through [`State::config`].
    config: RwLock<Arc<Config>>,
    /// The startup values of the static keys. Dynamic keys (`max.connections`, the topic
    /// defaults, the cleaner's limits) must be read from [`State::config`] at use.
    pub settings: BrokerSettings,
    pub cluster_id: String,
    data_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    store: MetadataStore,
    image: Mutex<MetadataImage>,
    /// The flush policy, flusher queue and clock every partition shares.
    partition_shared: Arc<crate::partition::Shared>,
    /// `queued.max.request.bytes`, one permit per byte (at most `u32::MAX`): a connection
    /// holds permits for a request body from before it is read until it is handled.
    pub request_bytes: Option<(tokio::sync::Semaphore, u32)>,
    /// `max.partitions`, resolved against the open-file limit at start.
    pub max_partitions: usize,
    /// The wall clock every timestamp and timeout is read from (see `clock.rs`).
    clock: Arc<dyn Clock>,
    /// The unused rest of the reserved producer-id block (taken before the image lock).
    producer_ids: Mutex<std::ops::Range<i64>>,
    /// Sent when the shutdown drain begins: parked fetches answer with what they have.
    draining: StopSender,
}

pub fn log_config(settings: &TopicSettings) -> LogConfig {
    LogConfig {
        segment_bytes: settings.segment_bytes,
        segment_ms: settings.segment_ms,
        index_interval_bytes: settings.index_interval_bytes,
        segment_index_bytes: settings.segment_index_bytes,
    }
}

/// Kafka's topic name rule ([`topic_name::check`]) as an admin error.
pub fn validate_topic_name(name: &str) -> Result<(), AdminError> {
    topic_name::check(name)
        .map_err(|why| AdminError::new(ResponseError::InvalidTopicException, why))
}

impl State {
    /// Opens the data dir: loads metadata, recovers every partition (scanning the last
    /// segment of each after an unclean shutdown). Returns the state and the flusher's
    /// queue, which the caller must drive with `partition::run_flusher`.
    pub fn open(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<(State, mpsc::UnboundedReceiver<Arc<Partition>>)> {
        let settings = config.broker();
        let data_dir = settings.log_dirs.clone();
        fs::create_dir_all(&data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        if clean {
            fs::remove_file(&marker)?;
            klamm_log::sync_dir(&data_dir)?;
        }
        let store = MetadataStore::new(&data_dir);
        let image = store.load_or_init(settings.node_id)?;
        let mut config = config;
        for (scope, key) in [
            (DynamicScope::ClusterDefault, String::new()),
            (DynamicScope::Broker, settings.node_id.to_string()),
        ] {
            let stored = image.broker_configs.get(&key).cloned().unwrap_or_default();
            for warning in config.restore_dynamic(scope, &stored) {
                tracing::warn!("{warning}");
            }
        }
        crate::partition_dirs::sweep(&data_dir, &image);
        let (flusher, queue) = mpsc::unbounded_channel();
        let fd_limit = crate::fd_limit::raise();
        let max_partitions = settings
            .max_partitions
            .unwrap_or((fd_limit.saturating_mul(3) / 4 / FDS_PER_PARTITION) as usize);
        tracing::info!(
            open_file_limit = fd_limit,
            max_partitions,
            max_topics = settings.max_topics,
            "limits"
        );
        let request_bytes = settings.queued_max_request_bytes.map(|n| {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            (tokio::sync::Semaphore::new(n as usize), n)
        });
        let state = State {
            partition_shared: Arc::new(crate::partition::Shared {
                policy: settings.flush_policy,
                flusher,
                clock: clock.clone(),
                metrics_enabled: settings.metrics_enabled,
            }),
            settings,
            cluster_id: image.cluster_id.clone(),
            data_dir,
            topics: RwLock::new(BTreeMap::new()),
            store,
            image: Mutex::new(image.clone()),
            request_bytes,
            max_partitions,
            config: RwLock::new(Arc::new(config)),
            clock,
            draining: crate::shutdown::channel().0,
            producer_ids: Mutex::new(0..0),
        };
        let started = std::time::Instant::now();
        let mut recovered = 0usize;
        let mut unopened = Vec::new();
        for record in image.topics.values() {
            // A topic that cannot be opened (out of file descriptors, a damaged directory)
            // is reported and left out; the broker serves the rest instead of exiting, and
            // a restart with more room opens it (its record and files stay as they are).
            let topic = match state.open_topic(record, clean) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(topic = %record.name, partitions = record.partitions, error = %e,
                        "cannot open topic: not served until a start that can");
                    unopened.push(record.name.clone());
                    continue;
                }
            };
            recovered += topic.partitions.len();
            state
                .write_topics()
                .insert(topic.name.clone(), Arc::new(topic));
        }
        if !unopened.is_empty() {
            tracing::error!(topics = unopened.len(), first = %unopened[0],
                "serving without the topics that could not be opened (see above)");
        }
        tracing::info!(
            partitions = recovered,
            clean_shutdown = clean,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "logs loaded"
        );
        Ok((state, queue))
    }

    /// Milliseconds since the Unix epoch, on the broker's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tells parked long polls that the shutdown drain began (`Broker::begin_draining`).
    pub fn signal_draining(&self) {
        self.draining.stop();
    }

    /// Resolves once the shutdown drain began.
    pub fn draining(&self) -> Stop {
        self.draining.subscribe()
    }

    /// The configuration in force now, dynamic changes included.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces one layer of dynamic broker configs (values already validated): persisted
    /// first, then swapped in, and every topic whose effective settings moved is re-applied
    /// to its partitions without a restart.
    pub fn set_broker_configs(
        &self,
        scope: DynamicScope,
        values: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let mut image = self.lock_image();
        let next = self
            .config()
            .with_dynamic(scope, values)
            .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
        let key = match scope {
            DynamicScope::ClusterDefault => String::new(),
            DynamicScope::Broker => self.settings.node_id.to_string(),
        };
        let stored = next.dynamic(scope);
        let previous = if stored.is_empty() {
            image.broker_configs.remove(&key)
        } else {
            image.broker_configs.insert(key.clone(), stored.clone())
        };
        if let Err(e) = self.store.save(&mut image) {
            match previous {
                Some(p) => image.broker_configs.insert(key, p),
                None => image.broker_configs.remove(&key),
            };
            return Err(AdminError::new(
                ResponseError::KafkaStorageError,
                e.to_string(),
            ));
        }
        let next = Arc::new(next);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        let mut moved = 0usize;
        for topic in self.topics() {
            let settings = next.topic_settings(&topic.configs);
            if settings != topic.settings {
                moved += 1;
                self.install_topic_settings(&topic, topic.configs.clone(), settings);
            }
        }
        tracing::info!(
            scope = ?scope,
            configs = ?stored,
            topics_changed = moved,
            "dynamic broker configs changed"
        );
        Ok(())
    }

    /// Applies new effective settings to a topic's partitions and swaps in its snapshot.
    /// Callers hold the image lock, which serialises config changes.
    fn install_topic_settings(
        &self,
        current: &Topic,
        configs: BTreeMap<String, String>,
        settings: TopicSettings,
    ) {
        let log_config = log_config(&settings);
        for p in &current.partitions {
            p.set_config(log_config);
            p.set_flush_limits(settings.flush_messages, settings.flush_ms);
        }
        let changed = Topic {
            name: current.name.clone(),
            id: current.id,
            configs,
            settings,
            partitions: current.partitions.clone(),
        };
        self.write_topics()
            .insert(current.name.clone(), Arc::new(changed));
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_image(&self) -> std::sync::MutexGuard<'_, MetadataImage> {
        self.image.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    /// Undoes a creation that failed before the image was saved: the partitions' new
    /// directories go (their logs are already dropped, so nothing writes to them).
    fn discard_partitions(&self, topic: &str, indexes: std::ops::Range<i32>) {
        let mut doomed = Vec::new();
        for i in indexes {
            let dir = self.partition_dir(topic, i);
            match crate::partition_dirs::move_aside(&self.data_dir, &dir, topic, i) {
                Ok(to) => doomed.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Left for the next start's sweep: no image record claims it.
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a partition of a failed creation")
                }
            }
        }
        crate::partition_dirs::remove_in_background(doomed);
    }

    fn open_partition(
        &self,
        topic: &str,
        id: Uuid,
        index: i32,
        config: LogConfig,
        clean: bool,
    ) -> anyhow::Result<Arc<Partition>> {
        let dir = self.partition_dir(topic, index);
        if dir.exists() && !crate::partition_dirs::belongs_to(&dir, id) {
            // Another topic's files under this name (a deletion whose move failed): never
            // opened. Moving it aside must work, or the partition is not created at all.
            let to = crate::partition_dirs::move_aside(&self.data_dir, &dir, topic, index)?;
            tracing::warn!(dir = %dir.display(), moved_to = %to.display(),
                "partition directory of another topic id: moved aside, removed in the background");
            crate::partition_dirs::remove_in_background(vec![to]);
        }
        let log = if dir.exists() {
            let (log, report) = PartitionLog::open(&dir, config, clean)?;
            if report.truncated_bytes > 0 {
                tracing::warn!(
                    partition = %format!("{topic}-{index}"),
                    truncated_bytes = report.truncated_bytes,
                    reason = report.reason.as_deref().unwrap_or(""),
                    "recovery truncated the log at the first bad batch"
                );
            }
            if let Some(&(from, to)) = report.offset_gaps.first() {
                let missing: i64 = report.offset_gaps.iter().map(|(f, t)| t - f).sum();
                tracing::warn!(
                    partition = %format!("{topic}-{index}"),
                    gaps = report.offset_gaps.len(),
                    missing_offsets = missing,
                    first_gap = %format!("{from}..{to}"),
                    "offsets missing between segments: a segment file lost or cut short; \
                     readers skip the gap"
                );
            }
            metadata::write_partition_metadata(&dir, id, false)?;
            log
        } else {
            let log = PartitionLog::create(&dir, config)?;
            metadata::write_partition_metadata(&dir, id, true)?;
            log
        };
        Ok(Partition::new(
            topic,
            index,
            log,
            self.partition_shared.clone(),
        ))
    }

    fn open_topic(&self, record: &TopicRecord, clean: bool) -> anyhow::Result<Topic> {
        let settings = self.config().topic_settings(&record.configs);
        let log_config = log_config(&settings);
        let partitions = (0..record.partitions)
            .map(|i| self.open_partition(&record.name, record.id, i, log_config, clean))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for p in &partitions {
            p.set_flush_limits(settings.flush_messages, settings.flush_ms);
        }
        Ok(Topic {
            name: record.name.clone(),
            id: record.id,
            configs: record.configs.clone(),
            settings,
            partitions,
        })
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().values().cloned().collect()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.read_topics()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// `max.topics` and `max.partitions`: whether `more` partitions (of a new topic if
    /// `name` does not exist yet) fit. Internal topics are the broker's own and always fit.
    fn check_capacity(&self, name: &str, more: usize) -> Result<(), AdminError> {
        if crate::internal::is_internal(name) {
            return Ok(());
        }
        let topics = self.read_topics();
        let user = || {
            topics
                .values()
                .filter(|t| !crate::internal::is_internal(&t.name))
        };
        let new_topic = !topics.contains_key(name);
        if new_topic && user().count() >= self.settings.max_topics {
            return Err(AdminError::new(
                ResponseError::PolicyViolation,
                format!(
                    "this broker holds its limit of {} topics (max.topics)",
                    self.settings.max_topics
                ),
            ));
        }
        let held: usize = user().map(|t| t.partitions.len()).sum();
        if held + more > self.max_partitions {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "{more} more partitions would pass this broker's limit of {} (max.partitions; \
                     {held} held); each partition holds open files",
                    self.max_partitions
                ),
            ));
        }
        Ok(())
    }

    /// Validates a topic creation without performing it: name, partition count,
    /// replication factor and every config override.
    pub fn check_new_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        configs: &[(String, Option<String>)],
    ) -> Result<(i32, BTreeMap<String, String>), AdminError> {
        validate_topic_name(name)?;
        if self.read_topics().contains_key(name) {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(other) = self
            .read_topics()
            .keys()
            .find(|other| topic_name::collide(name, other))
        {
            return Err(AdminError::new(
                ResponseError::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {other}"),
            ));
        }
        let partitions = if num_partitions == -1 {
            self.settings.num_partitions
        } else {
            num_partitions
        };
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}, got {num_partitions}."),
            ));
        }
        self.check_capacity(name, partitions as usize)?;
        let replication = if replication_factor == -1 {
            self.settings.default_replication_factor
        } else {
            replication_factor
        };
        if replication != 1 {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Replication factor must be 1 on a single broker, got {replication_factor}."
                ),
            ));
        }
        let mut overrides = BTreeMap::new();
        for (key, value) in configs {
            let Some(value) = value else {
                return Err(AdminError::new(
                    ResponseError::InvalidConfig,
                    format!("Null value not supported for topic config {key}"),
                ));
            };
            let normalized = klamm_config::validate_topic_config(key, value)
                .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
            overrides.insert(key.clone(), normalized);
        }
        Ok((partitions, overrides))
    }

    /// Creates a topic: persists its record, then its partition directories.
    pub fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        configs: &[(String, Option<String>)],
    ) -> Result<Arc<Topic>, AdminError> {
        let mut image = self.lock_image();
        let (partitions, overrides) =
            self.check_new_topic(name, num_partitions, replication_factor, configs)?;
        if image.topics.contains_key(name) {
            // In the image but not served: it could not be opened at start-up. Its files
            // are kept for a start that can open them, never replaced by a new topic.
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' exists but could not be opened at start-up; see the broker log."),
            ));
        }
        let record = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs: overrides,
        };
        let storage_error = |e: &dyn std::fmt::Display| {
            AdminError::new(ResponseError::KafkaStorageError, e.to_string())
        };
        // The partitions first, then the image: a topic is saved only once its files exist,
        // so a creation that fails (out of file descriptors, disk full) leaves no record
        // that every later start would fail to open. A crash before the save leaves
        // directories of no topic, which the next start sweeps away.
        let topic = match self.open_topic(&record, true) {
            Ok(t) => t,
            Err(e) => {
                self.discard_partitions(name, 0..partitions);
                return Err(storage_error(&e));
            }
        };
        image.topics.insert(name.to_string(), record.clone());
        if let Err(e) = self.store.save(&mut image) {
            image.topics.remove(name);
            drop(topic);
            self.discard_partitions(name, 0..partitions);
            return Err(storage_error(&e));
        }
        let topic = Arc::new(topic);
        self.write_topics().insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// The internal topic `name` (`__consumer_offsets`, `__transaction_state`), created on
    /// first use with its coordinator's partition count and segment size, compacted. This
    /// is the only way an internal topic comes to exist (never through auto-create).
    pub fn internal_topic(&self, name: &str) -> Result<Arc<Topic>, AdminError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        let config = self.config();
        let (partitions, segment_bytes) = match name {
            crate::internal::OFFSETS_TOPIC => {
                let g = config.groups();
                (
                    g.offsets_topic_num_partitions,
                    g.offsets_topic_segment_bytes,
                )
            }
            crate::internal::TXN_TOPIC => {
                let t = config.txns();
                (t.state_log_num_partitions, t.state_log_segment_bytes)
            }
            _ => {
                return Err(AdminError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{name} is not an internal topic"),
                ))
            }
        };
        let configs = vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            crate::internal::segment_config(segment_bytes),
        ];
        match self.create_topic(name, partitions, 1, &configs) {
            Ok(t) => Ok(t),
            // Created meanwhile by another request.
            Err(e) if e.error == ResponseError::TopicAlreadyExists => self.topic(name).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Whether [`Self::get_or_auto_create`] would create `name` now (and so write the
    /// metadata image): handlers that may call it run on a blocking thread then.
    pub fn would_auto_create(&self, name: &str) -> bool {
        self.topic(name).is_none()
            && (crate::internal::is_internal(name) || self.settings.auto_create_topics_enable)
    }

    /// The topic, created with broker defaults if `auto.create.topics.enable` allows.
    pub fn get_or_auto_create(&self, name: &str) -> Result<Arc<Topic>, AdminError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if crate::internal::is_internal(name) {
            // Created by its coordinator with its own settings, never as a plain topic.
            return self.internal_topic(name);
        }
        if !self.settings.auto_create_topics_enable {
            return Err(AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                "unknown topic",
            ));
        }
        match self.create_topic(name, -1, -1, &[]) {
            Ok(t) => Ok(t),
            // Lost a race with another creator: fine.
            Err(e) if e.error == ResponseError::TopicAlreadyExists => self.topic(name).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic: forgets it (persisted), then removes its files in the background.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        if crate::internal::is_internal(name) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("the internal topic {name} cannot be deleted"),
            ));
        }
        if !self.settings.delete_topic_enable {
            return Err(AdminError::new(
                ResponseError::TopicDeletionDisabled,
                "delete.topic.enable is false",
            ));
        }
        let mut image = self.lock_image();
        let record = image.topics.remove(name).ok_or_else(|| {
            AdminError::new(ResponseError::UnknownTopicOrPartition, "unknown topic")
        })?;
        crate::crash_point::reached("delete.before_save");
        if let Err(e) = self.store.save(&mut image) {
            image.topics.insert(name.to_string(), record);
            return Err(AdminError::new(
                ResponseError::KafkaStorageError,
                e.to_string(),
            ));
        }
        // Saved: the deletion is decided, and a crash from here on is finished by the next
        // start (`partition_dirs::sweep`). Now each partition's log is retired under its
        // lock while its directory moves, so a request still holding the partition can
        // neither write a file by path into a recreated topic's directory of the same name
        // nor append anywhere.
        crate::crash_point::reached("delete.saved");
        let removed = self.write_topics().remove(name);
        let mut doomed = Vec::new();
        for i in 0..record.partitions {
            let dir = self.partition_dir(name, i);
            let partition = removed.as_ref().and_then(|t| t.partition(i));
            let mut log = partition.map(|p| p.log());
            let moved = crate::partition_dirs::move_aside(&self.data_dir, &dir, name, i);
            match &moved {
                Ok(to) => doomed.push(to.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!(dir = %dir.display(), error = %e,
                    "cannot move a deleted partition aside: it stays, is never opened again \
                     (its topic id is not the image's), and the next start retries"),
            }
            if let Some(log) = log.as_mut() {
                log.retire(moved.ok());
            }
            crate::crash_point::reached("delete.moved");
        }
        drop(removed);
        crate::crash_point::reached("delete.retired");
        crate::partition_dirs::remove_in_background(doomed);
        tracing::info!(
            topic = name,
            partitions = record.partitions,
            "topic deleted"
        );
        Ok(record.id)
    }

    /// Grows a topic to `total` partitions.
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let mut image = self.lock_image();
        let current = self.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )
        })?;
        let have = current.partitions.len() as i32;
        if total <= have {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {have} partitions, which is higher than or equal to the requested {total}."),
            ));
        }
        if total > PARTITIONS_PER_TOPIC_MAX {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions per topic"),
            ));
        }
        self.check_capacity(name, (total - have) as usize)?;
        if validate_only {
            return Ok(());
        }
        let storage = |e: &dyn std::fmt::Display| {
            AdminError::new(ResponseError::KafkaStorageError, e.to_string())
        };
        // New partitions first, then the image (as in `create_topic`).
        let log_config = log_config(&current.settings);
        let mut partitions = current.partitions.clone();
        for i in have..total {
            match self.open_partition(name, current.id, i, log_config, true) {
                Ok(p) => {
                    p.set_flush_limits(current.settings.flush_messages, current.settings.flush_ms);
                    partitions.push(p);
                }
                Err(e) => {
                    partitions.truncate(have as usize);
                    self.discard_partitions(name, have..i + 1);
                    return Err(storage(&e));
                }
            }
        }
        let record = image
            .topics
            .get_mut(name)
            .expect("topic table and image agree");
        record.partitions = total;
        if let Err(e) = self.store.save(&mut image) {
            image.topics.get_mut(name).expect("still there").partitions = have;
            partitions.truncate(have as usize);
            self.discard_partitions(name, have..total);
            return Err(storage(&e));
        }
        let grown = Topic {
            name: current.name.clone(),
            id: current.id,
            configs: current.configs.clone(),
            settings: current.settings.clone(),
            partitions,
        };
        self.write_topics()
            .insert(name.to_string(), Arc::new(grown));
        Ok(())
    }

    /// Replaces a topic's config overrides (already validated and normalized): persisted
    /// first, then applied to every partition's log without a restart.
    pub fn set_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        crate::internal::check_configs(name, &overrides)?;
        let mut image = self.lock_image();
        let current = self.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )
        })?;
        let record = image
            .topics
            .get_mut(name)
            .expect("topic table and image agree");
        let previous = std::mem::replace(&mut record.configs, overrides.clone());
        if let Err(e) = self.store.save(&mut image) {
            image.topics.get_mut(name).expect("still there").configs = previous;
            return Err(AdminError::new(
                ResponseError::KafkaStorageError,
                e.to_string(),
            ));
        }
        let settings = self.config().topic_settings(&overrides);
        self.install_topic_settings(&current, overrides, settings);
        tracing::info!(topic = name, "topic configs changed");
        Ok(())
    }

    /// Hands out a new producer id. Ids come from blocks of [`PRODUCER_ID_BLOCK_SIZE`]
    /// reserved in the metadata image (as Kafka's `AllocateProducerIds` does): a block is
    /// persisted before its first id is returned, so no id is ever given twice, even across
    /// crashes (a crash skips the rest of the block), and the image is rewritten once per
    /// block rather than once per producer.
    ///
    /// The reservation writes (and fsyncs) the image: InitProducerId's row sends the
    /// request to a blocking thread when [`Self::producer_id_block_used_up`], and the
    /// handler calls [`Self::reserve_producer_id_block`] there before it takes the
    /// transaction lock, so the call below reserves only if concurrent InitProducerIds used
    /// the new block up meanwhile.
    pub fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        self.reserve_producer_id_block()?;
        let mut block = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if block.start >= block.end {
            drop(block);
            return self.allocate_producer_id();
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    /// No producer id is left in the reserved block: the next allocation reserves one.
    pub fn producer_id_block_used_up(&self) -> bool {
        let block = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        block.start >= block.end
    }

    /// Reserves the next block of producer ids if the current one is used up (a metadata
    /// image write and fsync).
    pub fn reserve_producer_id_block(&self) -> Result<(), AdminError> {
        let mut block = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if block.start >= block.end {
            let mut image = self.lock_image();
            let start = image.next_producer_id;
            image.next_producer_id = start.saturating_add(PRODUCER_ID_BLOCK_SIZE);
            if let Err(e) = self.store.save(&mut image) {
                image.next_producer_id = start;
                return Err(AdminError::new(
                    ResponseError::KafkaStorageError,
                    e.to_string(),
                ));
            }
            *block = start..image.next_producer_id;
            tracing::debug!(start, end = block.end, "producer-id block reserved");
        }
        Ok(())
    }

    /// Clean shutdown: every log flushed and closed, then the marker that lets the next start
    /// skip recovery.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        let partitions = self.all_partitions();
        let failed = std::sync::atomic::AtomicBool::new(false);
        // Closing fsyncs each changed partition; spread the fsyncs over a few threads so a
        // broker with thousands of partitions still stops within shutdown.timeout.ms.
        let workers = CLOSE_THREADS.min(partitions.len()).max(1);
        let chunk = partitions.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| {
            for part in partitions.chunks(chunk) {
                let failed = &failed;
                scope.spawn(move || {
                    for p in part {
                        if let Err(e) = p.close() {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "close failed");
                        }
                    }
                });
            }
        });
        if !failed.into_inner() {
            fs::write(self.data_dir.join(CLEAN_SHUTDOWN_MARKER), b"")?;
            klamm_log::sync_dir(&self.data_dir)?;
        }
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log dir as Kafka reports it to clients: an absolute path (not resolved through
    /// symlinks, as Java's `getAbsolutePath`).
    pub fn log_dir_absolute(&self) -> PathBuf {
        std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone())
    }

    /// Metadata changes saved so far (see [`MetadataImage::changes`]).
    pub fn metadata_changes(&self) -> i64 {
        self.lock_image().changes
    }
}

/// Files a partition of one segment holds open: `.log`, `.index`, `.timeindex`.
const FDS_PER_PARTITION: u64 = 3;

/// One retention pass at the broker clock's now (the task runs it every interval).
pub fn apply_retention(broker: &State) {
    let now = broker.now_ms();
    for topic in broker.topics() {
        let s = &topic.settings;
        if !s.cleanup_policy_delete {
            continue;
        }
        for p in &topic.partitions {
            let applied = {
                let mut log = p.log();
                let applied = log.apply_retention(now, s.retention_ms, s.retention_bytes);
                // A time-based roll may have happened.
                p.flush_rolls(&log);
                applied
            };
            match applied {
                Ok(0) => {}
                Ok(n) => {
                    crate::metrics::metrics()
                        .retention_deleted_segments
                        .inc_by(n as u64);
                    tracing::info!(topic = %topic.name, partition = p.index, segments = n, "retention deleted segments");
                }
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }
}
