//! Consumer-group coordination as a pure state machine.
//!
//! Every call takes the request and `now_ms` and returns its answer plus [`Effects`]: the
//! `__consumer_offsets` records to append, and join/sync answers owed to members whose
//! requests are parked (a JoinGroup waits for the rebalance to complete, a SyncGroup for the
//! leader's assignment). [`Coordinator::tick`] advances timers (session timeouts, join
//! deadlines, the initial rebalance delay, offset expiry); [`Coordinator::replay`] rebuilds
//! state from the records at start-up.
//!
//! Architecture invariant: no I/O, no clock, no tasks. The broker's driver owns the sockets,
//! the timers' ticking and the appends; this crate only decides.

mod error_code;
mod group;
mod offsets;
pub mod txn;

pub use txn::{Markers, TxnConfig, TxnCoordinator, TxnEffects, TxnMeta, TxnRecord};

pub use group::{
    GroupDescription, GroupState, JoinOutcome, JoinRequest, MemberDescription, SyncOutcome,
    SyncRequest,
};
pub use offsets::{CommitRequest, CommittedOffset};

use bytes::Bytes;
use group::Group;
use klamm_protocol::group_records::{GroupKey, GroupValue, OffsetValue};
use std::collections::BTreeMap;

pub use error_code::ErrorCode;

/// Limits and timings, from the broker's config (Kafka's names in the comments).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: a new group waits this long for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`: members per group.
    pub max_group_size: usize,
    /// `group.max.count` (Klamm): groups the coordinator holds. A JoinGroup or OffsetCommit
    /// that would create one more is refused with GROUP_MAX_SIZE_REACHED; groups restored
    /// from `__consumer_offsets` or a committed transaction are never refused (that data is
    /// already decided), so the count can exceed it after a lowered limit.
    pub max_groups: usize,
    /// `offsets.retention.minutes` in ms: offsets of an empty group live this long.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are removed and empty
    /// groups without offsets forgotten (until then such a group is listed as Empty).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: the metadata string of one committed offset.
    pub offset_metadata_max_bytes: usize,
    /// Protocol metadata (subscriptions) a member may send, all protocols together; and the
    /// assignment the leader may give one member. Bounds the memory a group holds.
    pub member_metadata_max_bytes: usize,
    /// `group.metadata.max.bytes` (Klamm): the protocol metadata and assignments of every
    /// member of every group together. A join that would pass it is refused with
    /// GROUP_MAX_SIZE_REACHED, so many members with large subscriptions cannot grow the
    /// broker's memory (or a leader's JoinGroup response) without bound.
    pub metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_group_size: 1_000,
            max_groups: 100_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            member_metadata_max_bytes: 1 << 20,
            metadata_max_bytes: 128 << 20,
        }
    }
}

/// A `__consumer_offsets` record: key, value (None = tombstone), and the group it belongs
/// to (which decides its partition).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub group: String,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// What a call asks the driver to do.
#[derive(Debug, Default)]
pub struct Effects {
    pub records: Vec<GroupRecord>,
    /// Records of a TxnOffsetCommit: appended as a transactional batch of producer
    /// `(id, epoch)`; they take effect when that producer's COMMIT marker follows.
    pub txn_records: Vec<(i64, i16, GroupRecord)>,
    /// Answers for parked JoinGroup requests: `(group, member_id, answer)`.
    pub joins: Vec<(String, String, JoinOutcome)>,
    /// Answers for parked SyncGroup requests.
    pub syncs: Vec<(String, String, SyncOutcome)>,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.records.extend(other.records);
        self.txn_records.extend(other.txn_records);
        self.joins.extend(other.joins);
        self.syncs.extend(other.syncs);
    }
}

/// The answer to a JoinGroup or SyncGroup: now, or once the rebalance gets there (the
/// driver parks the request under `(group, member_id)`).
#[derive(Debug)]
pub enum Answer<T> {
    Now(T),
    Parked { member_id: String },
}

/// How old the count of held metadata bytes may grow before a join recounts it.
const METADATA_RECOUNT_MS: i64 = 1_000;
/// The most of a client id (or group instance id) a generated member id keeps, so that
/// member ids stay far below the protocol's 32,767-byte string limit.
pub const MEMBER_ID_PREFIX_MAX_BYTES: usize = 255;

/// The longest prefix of `s` of at most `max_bytes` that ends on a character boundary.
fn truncate_at_char(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub struct Coordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    offsets: offsets::OffsetStore,
    /// Makes member ids unique within this coordinator's life.
    member_counter: u64,
    /// When expired offsets and dead groups were last cleaned up.
    last_cleanup_ms: Option<i64>,
    /// An upper bound of the metadata bytes all members hold: counted over every group at
    /// `metadata_counted_ms`, plus every join accepted since (leaves are seen only at the
    /// next count, at most [`METADATA_RECOUNT_MS`] later, so the bound errs on the safe side).
    metadata_bytes: usize,
    metadata_counted_ms: Option<i64>,
    /// Offsets committed inside transactions not yet ended, per producer id:
    /// (group, topic, partition) → offset.
    pending_txn_offsets: BTreeMap<i64, BTreeMap<(String, String, i32), OffsetValue>>,
}

/// A TxnOffsetCommit.
#[derive(Debug, Clone)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Empty, or the member committing (v3+), checked against the group like OffsetCommit.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// -1 when the producer does not know the consumer's generation.
    pub generation: i32,
    /// `(topic, partition, offset, leader_epoch, metadata)`.
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            groups: BTreeMap::new(),
            offsets: offsets::OffsetStore::default(),
            member_counter: 0,
            last_cleanup_ms: None,
            metadata_bytes: 0,
            metadata_counted_ms: None,
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn next_member_id(
        &mut self,
        client_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> String {
        self.member_counter += 1;
        let prefix = instance_id.unwrap_or(client_id);
        // Kafka's member id is `<client id>-<uuid>`; a client id may be a whole protocol
        // string (32,767 bytes), and a member id that long plus the suffix would not fit
        // the INT16-length string of the JoinGroup response or the group record.
        let prefix = truncate_at_char(prefix, MEMBER_ID_PREFIX_MAX_BYTES);
        format!("{prefix}-{now_ms:x}-{:x}", self.member_counter)
    }

    pub fn join(&mut self, req: JoinRequest, now_ms: i64) -> (Answer<JoinOutcome>, Effects) {
        if req.group_id.is_empty() {
            return (
                Answer::Now(JoinOutcome::error(
                    ErrorCode::InvalidGroupId,
                    &req.member_id,
                )),
                Effects::default(),
            );
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return (
                Answer::Now(JoinOutcome::error(
                    ErrorCode::InvalidSessionTimeout,
                    &req.member_id,
                )),
                Effects::default(),
            );
        }
        let metadata_bytes: usize = req.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if metadata_bytes > self.config.member_metadata_max_bytes || req.protocols.is_empty() {
            return (
                Answer::Now(JoinOutcome::error(
                    ErrorCode::InconsistentGroupProtocol,
                    &req.member_id,
                )),
                Effects::default(),
            );
        }
        // The first join of the KIP-394 handshake only learns its member id: it holds nothing.
        let holds = !(req.member_id.is_empty() && req.require_known_member_id);
        if !self.has_metadata_room_for(metadata_bytes, holds, now_ms) {
            return (
                Answer::Now(JoinOutcome::error(
                    ErrorCode::GroupMaxSizeReached,
                    &req.member_id,
                )),
                Effects::default(),
            );
        }
        if !self.has_room_for(&req.group_id) {
            return (
                Answer::Now(JoinOutcome::error(
                    ErrorCode::GroupMaxSizeReached,
                    &req.member_id,
                )),
                Effects::default(),
            );
        }
        let new_id = if req.member_id.is_empty() {
            Some(self.next_member_id(&req.client_id, req.group_instance_id.as_deref(), now_ms))
        } else {
            None
        };
        let config = self.config.clone();
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now_ms));
        group.join(req, new_id, &config, now_ms)
    }

    /// Whether a join with `bytes` of metadata fits under `group.metadata.max.bytes`; if so,
    /// and the join `holds` them, they are counted as held (a rejoin counts again until the
    /// next recount).
    fn has_metadata_room_for(&mut self, bytes: usize, holds: bool, now_ms: i64) -> bool {
        let stale = self
            .metadata_counted_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= METADATA_RECOUNT_MS);
        let max = self.config.metadata_max_bytes;
        let fits = |held: usize| held.saturating_add(bytes) <= max;
        if stale || !fits(self.metadata_bytes) {
            self.metadata_bytes = self.groups.values().map(Group::metadata_bytes).sum();
            self.metadata_counted_ms = Some(now_ms);
        }
        if !fits(self.metadata_bytes) {
            return false;
        }
        if holds {
            self.metadata_bytes += bytes;
        }
        true
    }

    /// Whether `group_id` exists or one more group fits under `group.max.count`.
    fn has_room_for(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id) || self.groups.len() < self.config.max_groups
    }

    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> (Answer<SyncOutcome>, Effects) {
        let config = self.config.clone();
        match self.groups.get_mut(&req.group_id) {
            None => (
                Answer::Now(SyncOutcome::error(ErrorCode::UnknownMemberId)),
                Effects::default(),
            ),
            Some(g) => g.sync(req, &config, now_ms),
        }
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> ErrorCode {
        match self.groups.get_mut(group_id) {
            None => ErrorCode::UnknownMemberId,
            Some(g) => g.heartbeat(member_id, instance_id, generation, now_ms),
        }
    }

    /// Removes members; per member `(member_id, instance_id, error)`.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (ErrorCode, Vec<ErrorCode>, Effects) {
        let config = self.config.clone();
        match self.groups.get_mut(group_id) {
            None => (
                ErrorCode::UnknownMemberId,
                vec![ErrorCode::UnknownMemberId; members.len()],
                Effects::default(),
            ),
            Some(g) => {
                let (errs, effects) = g.leave(members, &config, now_ms);
                (ErrorCode::None, errs, effects)
            }
        }
    }

    /// Validates the committer and stores offsets. Returns the group-level error (which then
    /// applies to every partition) or per-partition errors.
    pub fn commit(
        &mut self,
        req: CommitRequest,
        topic_exists: impl Fn(&str, i32) -> bool,
        now_ms: i64,
    ) -> (Vec<ErrorCode>, Effects) {
        if req.group_id.is_empty() {
            return (
                vec![ErrorCode::InvalidGroupId; req.offsets.len()],
                Effects::default(),
            );
        }
        let room = self.has_room_for(&req.group_id);
        let group_error = match self.groups.get_mut(&req.group_id) {
            Some(g) => g.check_commit(
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation,
                now_ms,
            ),
            None if req.generation < 0 && !room => ErrorCode::GroupMaxSizeReached,
            None if req.generation < 0 => {
                // A consumer that assigns partitions itself commits with generation -1: the
                // group exists only to hold its offsets.
                self.groups
                    .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
                ErrorCode::None
            }
            None => ErrorCode::IllegalGeneration,
        };
        if group_error != ErrorCode::None {
            return (vec![group_error; req.offsets.len()], Effects::default());
        }
        self.offsets
            .commit(&req, &self.config, topic_exists, now_ms)
    }

    /// TxnOffsetCommit: validates the committer (when it names a generation) and holds the
    /// offsets pending until the producer's transaction ends ([`Coordinator::end_txn`]).
    pub fn txn_commit(
        &mut self,
        req: TxnCommitRequest,
        topic_exists: impl Fn(&str, i32) -> bool,
        now_ms: i64,
    ) -> (Vec<ErrorCode>, Effects) {
        let mut effects = Effects::default();
        if req.group_id.is_empty() {
            return (vec![ErrorCode::InvalidGroupId; req.offsets.len()], effects);
        }
        if !self.has_room_for(&req.group_id) {
            let refused = vec![ErrorCode::GroupMaxSizeReached; req.offsets.len()];
            return (refused, effects);
        }
        if req.generation >= 0 || !req.member_id.is_empty() {
            let group_error = match self.groups.get_mut(&req.group_id) {
                Some(g) => g.check_commit(
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    req.generation,
                    now_ms,
                ),
                None => ErrorCode::IllegalGeneration,
            };
            if group_error != ErrorCode::None {
                return (vec![group_error; req.offsets.len()], effects);
            }
        }
        let mut errs = Vec::with_capacity(req.offsets.len());
        for entry in &req.offsets {
            let (topic, partition) = (&entry.0, entry.1);
            let value = match offsets::checked_value(entry, &self.config, &topic_exists, now_ms) {
                Ok(value) => value,
                Err(code) => {
                    errs.push(code);
                    continue;
                }
            };
            let record = offsets::record(&req.group_id, topic, partition, Some(&value));
            effects
                .txn_records
                .push((req.producer_id, req.producer_epoch, record));
            self.pending_txn_offsets
                .entry(req.producer_id)
                .or_default()
                .insert((req.group_id.clone(), topic.clone(), partition), value);
            errs.push(ErrorCode::None);
        }
        (errs, effects)
    }

    /// A COMMIT or ABORT marker of `producer_id` reached `__consumer_offsets`: its pending
    /// offsets become committed, or are dropped. No record is needed: the marker is one.
    pub fn end_txn(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for ((group, topic, partition), value) in pending {
            self.offsets.put(&group, &topic, partition, value);
            self.groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now_ms));
        }
    }

    /// Whether a partition's offset for the group waits on a transaction (OffsetFetch with
    /// `require_stable` then answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (group_id.to_string(), topic.to_string(), partition);
        self.pending_txn_offsets
            .values()
            .any(|m| m.contains_key(&key))
    }

    /// Replays a record of a transactional batch of `producer_id` at start-up.
    pub fn replay_txn(
        &mut self,
        producer_id: i64,
        key: Bytes,
        value: Option<Bytes>,
    ) -> Result<(), String> {
        if let GroupKey::Offset {
            group,
            topic,
            partition,
        } = GroupKey::decode(key).map_err(|e| e.to_string())?
        {
            if let Some(v) = value {
                let v = OffsetValue::decode(v).map_err(|e| e.to_string())?;
                self.pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .insert((group, topic, partition), v);
            }
        }
        Ok(())
    }

    /// Committed offsets of a group: all of them, or those of the given partitions (-1 for
    /// none committed).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        self.offsets.fetch(group_id, partitions)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.groups.get(group_id).map(|g| g.describe())
    }

    /// The group's generation: how many rebalances it has completed.
    pub fn generation(&self, group_id: &str) -> i32 {
        self.groups.get(group_id).map_or(0, |g| g.generation)
    }

    /// `(group_id, protocol_type, state)` of every group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        self.groups
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect()
    }

    /// Deletes an empty group and its offsets.
    pub fn delete_group(&mut self, group_id: &str) -> (ErrorCode, Effects) {
        let Some(g) = self.groups.get(group_id) else {
            return (ErrorCode::GroupIdNotFound, Effects::default());
        };
        if g.members_len() > 0 {
            return (ErrorCode::NonEmptyGroup, Effects::default());
        }
        self.groups.remove(group_id);
        let mut effects = self.offsets.delete_group(group_id);
        effects.records.push(GroupRecord {
            group: group_id.to_string(),
            key: GroupKey::Group {
                group: group_id.to_string(),
            }
            .encode(),
            value: None,
        });
        (ErrorCode::None, effects)
    }

    /// Deletes committed offsets of partitions the group does not consume.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (ErrorCode, Vec<ErrorCode>, Effects) {
        let Some(g) = self.groups.get(group_id) else {
            return (ErrorCode::GroupIdNotFound, Vec::new(), Effects::default());
        };
        let subscribed = g.subscribed_topics();
        let mut errs = Vec::with_capacity(partitions.len());
        let mut deletable = Vec::new();
        for (topic, p) in partitions {
            if subscribed.contains(topic) {
                errs.push(ErrorCode::GroupSubscribedToTopic);
            } else {
                errs.push(ErrorCode::None);
                deletable.push((topic.clone(), *p));
            }
        }
        let effects = self.offsets.delete(group_id, &deletable);
        (ErrorCode::None, errs, effects)
    }

    /// Advances every timer to `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        let config = self.config.clone();
        for g in self.groups.values_mut() {
            effects.merge(g.tick(&config, now_ms));
        }
        let due = self
            .last_cleanup_ms
            .is_none_or(|last| now_ms - last >= config.offsets_retention_check_interval_ms);
        if !due {
            return effects;
        }
        self.last_cleanup_ms = Some(now_ms);
        let empty_since: BTreeMap<String, i64> = self
            .groups
            .values()
            .filter(|g| g.state == GroupState::Empty)
            .map(|g| (g.id.clone(), g.state_timestamp_ms))
            .collect();
        effects.merge(self.offsets.expire(
            &empty_since,
            &self.groups,
            config.offsets_retention_ms,
            now_ms,
        ));
        // An empty group with no offsets left is forgotten (Kafka's Dead state).
        let dead: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.is_idle() && !self.offsets.has_group(&g.id))
            .map(|g| g.id.clone())
            .collect();
        for id in dead {
            self.groups.remove(&id);
            effects.records.push(GroupRecord {
                group: id.clone(),
                key: GroupKey::Group { group: id }.encode(),
                value: None,
            });
        }
        effects
    }

    /// Applies one `__consumer_offsets` record at start-up. Undecodable records are
    /// reported, not fatal: they are skipped.
    pub fn replay(&mut self, key: Bytes, value: Option<Bytes>, now_ms: i64) -> Result<(), String> {
        match GroupKey::decode(key).map_err(|e| e.to_string())? {
            GroupKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(v) => {
                    let v = OffsetValue::decode(v).map_err(|e| e.to_string())?;
                    self.offsets.put(&group, &topic, partition, v);
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now_ms));
                }
                None => self.offsets.remove(&group, &topic, partition),
            },
            GroupKey::Group { group } => match value {
                Some(v) => {
                    let v = GroupValue::decode(v).map_err(|e| e.to_string())?;
                    self.groups
                        .insert(group.clone(), Group::restore(&group, v, now_ms));
                }
                None => {
                    self.groups.remove(&group);
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
