//! One consumer group under Kafka's classic rebalance protocol.
//!
//! States: Empty → PreparingRebalance (members (re)join; completes when all have, or at the
//! join deadline) → CompletingRebalance (the leader's SyncGroup brings the assignment) →
//! Stable. A new or departing member, a changed subscription or a session timeout sends a
//! Stable group back to PreparingRebalance.

use crate::{Answer, Effects, ErrorCode, GroupConfig, GroupRecord};
use bytes::Bytes;
use klamm_protocol::group_records::{self, GroupKey, GroupValue, MemberValue};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The state names Kafka's DescribeGroups and ListGroups use.
    pub fn kafka_name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinOutcome {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader only: `(member_id, group_instance_id, metadata)` of every member.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// JoinGroup v9 (KIP-814): a static leader rejoining a stable group gets the members
    /// but must not compute a new assignment; the current one stands.
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// From the leader: `(member_id, assignment)`.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ErrorCode) -> SyncOutcome {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: bool,
    awaiting_sync: bool,
    heartbeat_deadline_ms: i64,
    /// Join order: the earliest member still present leads when the leader is gone.
    seq: u64,
}

impl Member {
    fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, awaiting the rejoin; with deadlines.
    pending: BTreeMap<String, i64>,
    join_deadline_ms: Option<i64>,
    /// While a new group waits for more members: `(deadline, latest possible deadline)`.
    initial_delay: Option<(i64, i64)>,
    pub state_timestamp_ms: i64,
    seq: u64,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending: BTreeMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
            state_timestamp_ms: now_ms,
            seq: 0,
        }
    }

    /// Whether the group holds nothing but (maybe) offsets.
    pub fn is_idle(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    pub fn members_len(&self) -> usize {
        self.members.len()
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Protocols every current member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            names.retain(|n| m.protocols.iter().any(|(mn, _)| mn == n));
        }
        names
    }

    /// Bytes of protocol metadata and assignments this group's members hold.
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.members
            .values()
            .map(|m| {
                m.assignment.len()
                    + m.protocols
                        .iter()
                        .map(|(n, b)| n.len() + b.len())
                        .sum::<usize>()
            })
            .sum()
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Each member votes for its most preferred candidate; the most votes win (ties go to
    /// the earlier candidate in the first member's order).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    fn current_join(&self, member_id: &str) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            let mut ms: Vec<&Member> = self.members.values().collect();
            ms.sort_by_key(|m| m.seq);
            ms.iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata(self.protocol.as_deref()),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        new_id: Option<String>,
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Answer<JoinOutcome>, Effects) {
        let now = |o: JoinOutcome| (Answer::Now(o), Effects::default());
        if !self.supports(&req.protocol_type, &req.protocols) {
            return now(JoinOutcome::error(
                ErrorCode::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        let Some(id) = new_id else {
            return self.join_known(req, config, now_ms);
        };
        if let Some(instance) = &req.group_instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                return self.replace_static(&old_id, id, req, config, now_ms);
            }
        } else if req.require_known_member_id {
            if self.members.len() + self.pending.len() >= config.max_group_size {
                return now(JoinOutcome::error(ErrorCode::GroupMaxSizeReached, ""));
            }
            self.pending
                .insert(id.clone(), now_ms + req.session_timeout_ms as i64);
            return now(JoinOutcome::error(ErrorCode::MemberIdRequired, &id));
        }
        if self.members.len() >= config.max_group_size {
            return now(JoinOutcome::error(ErrorCode::GroupMaxSizeReached, ""));
        }
        self.add_member(id, req, config, now_ms)
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Answer<JoinOutcome>, Effects) {
        let id = req.member_id.clone();
        let now = |o: JoinOutcome| (Answer::Now(o), Effects::default());
        if self.pending.remove(&id).is_some() {
            return self.add_member(id, req, config, now_ms);
        }
        if let Some(err) = self.fenced(&id, req.group_instance_id.as_deref()) {
            return now(JoinOutcome::error(err, &id));
        }
        let Some(member) = self.members.get_mut(&id) else {
            return now(JoinOutcome::error(ErrorCode::UnknownMemberId, &id));
        };
        let changed = member.protocols != req.protocols;
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.heartbeat_deadline_ms = now_ms + req.session_timeout_ms as i64;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        // A stable group's leader rejoining asks for a new assignment (Kafka rebalances).
        let leader_rejoins_stable = is_leader && self.state == GroupState::Stable;
        let answer_now = !(changed || leader_rejoins_stable);
        match self.state {
            GroupState::PreparingRebalance => {}
            GroupState::CompletingRebalance | GroupState::Stable if answer_now => {
                // The member lost our join answer, or rejoins without changes: no rebalance.
                return now(self.current_join(&id));
            }
            _ => {}
        }
        let mut effects = Effects::default();
        if self.state != GroupState::PreparingRebalance {
            effects.merge(self.prepare_rebalance(config, now_ms));
        }
        if let Some(m) = self.members.get_mut(&id) {
            m.awaiting_join = true;
        }
        effects.merge(self.try_complete_join(now_ms));
        (Answer::Parked { member_id: id }, effects)
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Answer<JoinOutcome>, Effects) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.seq += 1;
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: true,
                awaiting_sync: false,
                heartbeat_deadline_ms: now_ms + req.session_timeout_ms as i64,
                seq: self.seq,
            },
        );
        let mut effects = Effects::default();
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some((deadline, latest)) = self.initial_delay {
                    // Another member arrived during the initial delay: wait a little longer.
                    let extended = (now_ms + config.initial_rebalance_delay_ms).min(latest);
                    self.initial_delay = Some((deadline.max(extended), latest));
                }
            }
            _ => effects.merge(self.prepare_rebalance(config, now_ms)),
        }
        effects.merge(self.try_complete_join(now_ms));
        (Answer::Parked { member_id: id }, effects)
    }

    /// A static member restarted (KIP-345): it takes over its old member's place under a new
    /// member id; the old id is fenced. In a stable group with an unchanged subscription this
    /// causes no rebalance.
    fn replace_static(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Answer<JoinOutcome>, Effects) {
        let mut effects = Effects::default();
        let Some(mut member) = self.members.remove(old_id) else {
            return (
                Answer::Now(JoinOutcome::error(ErrorCode::UnknownMemberId, "")),
                effects,
            );
        };
        if member.awaiting_join {
            effects.joins.push((
                self.id.clone(),
                old_id.to_string(),
                JoinOutcome::error(ErrorCode::FencedInstanceId, old_id),
            ));
        }
        if member.awaiting_sync {
            effects.syncs.push((
                self.id.clone(),
                old_id.to_string(),
                SyncOutcome::error(ErrorCode::FencedInstanceId),
            ));
        }
        member.id = new_id.clone();
        member.protocols = req.protocols;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.heartbeat_deadline_ms = now_ms + req.session_timeout_ms as i64;
        member.awaiting_join = false;
        member.awaiting_sync = false;
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        // As Kafka: a stable group rebalances only if the restarted member's protocols would
        // change the protocol the group selects. Its subscription bytes differ anyway (the
        // Java client's carry the partitions it owns and its generation), and the new ones
        // are kept for the next rebalance.
        if self.state == GroupState::Stable && self.select_protocol() == self.protocol {
            effects.records.push(self.record());
            let mut joined = self.current_join(&new_id);
            joined.skip_assignment = self.leader.as_deref() == Some(new_id.as_str());
            return (Answer::Now(joined), effects);
        }
        if self.state != GroupState::PreparingRebalance {
            effects.merge(self.prepare_rebalance(config, now_ms));
        }
        if let Some(m) = self.members.get_mut(&new_id) {
            m.awaiting_join = true;
        }
        effects.merge(self.try_complete_join(now_ms));
        (Answer::Parked { member_id: new_id }, effects)
    }

    /// FENCED_INSTANCE_ID when `instance_id` belongs to another member id.
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> Option<ErrorCode> {
        let instance = instance_id?;
        match self.static_members.get(instance) {
            Some(known) if known != member_id => Some(ErrorCode::FencedInstanceId),
            _ => None,
        }
    }

    fn prepare_rebalance(&mut self, config: &GroupConfig, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut().filter(|m| m.awaiting_sync) {
                m.awaiting_sync = false;
                effects.syncs.push((
                    self.id.clone(),
                    m.id.clone(),
                    SyncOutcome::error(ErrorCode::RebalanceInProgress),
                ));
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.set_state(GroupState::PreparingRebalance, now_ms);
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0);
        if was_empty && config.initial_rebalance_delay_ms > 0 {
            let deadline = now_ms + config.initial_rebalance_delay_ms.min(rebalance_timeout_ms);
            self.initial_delay = Some((deadline, now_ms + rebalance_timeout_ms));
            self.join_deadline_ms = None;
        } else {
            self.initial_delay = None;
            self.join_deadline_ms = Some(now_ms + rebalance_timeout_ms);
        }
        effects
    }

    fn try_complete_join(&mut self, now_ms: i64) -> Effects {
        let all_joined = self.members.values().all(|m| m.awaiting_join) && self.pending.is_empty();
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && all_joined
        {
            self.complete_join(now_ms)
        } else {
            Effects::default()
        }
    }

    fn complete_join(&mut self, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        self.join_deadline_ms = None;
        self.initial_delay = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            effects.records.push(self.record());
            return effects;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.current_join(&id);
            let m = self.members.get_mut(&id).expect("listed above");
            m.awaiting_join = false;
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
            effects.joins.push((self.id.clone(), id, outcome));
        }
        effects
    }

    pub fn sync(
        &mut self,
        req: SyncRequest,
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Answer<SyncOutcome>, Effects) {
        let now = |e: ErrorCode| (Answer::Now(SyncOutcome::error(e)), Effects::default());
        if let Some(err) = self.fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return now(err);
        }
        if !self.members.contains_key(&req.member_id) {
            return now(ErrorCode::UnknownMemberId);
        }
        if req.generation != self.generation {
            return now(ErrorCode::IllegalGeneration);
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_mismatch || name_mismatch {
            return now(ErrorCode::InconsistentGroupProtocol);
        }
        let member = self.members.get_mut(&req.member_id).expect("checked above");
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms as i64;
        match self.state {
            GroupState::Empty => now(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => now(ErrorCode::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = member.assignment.clone();
                (
                    Answer::Now(self.sync_outcome(assignment)),
                    Effects::default(),
                )
            }
            GroupState::CompletingRebalance => {
                member.awaiting_sync = true;
                let mut effects = Effects::default();
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    if req
                        .assignments
                        .iter()
                        .any(|(_, a)| a.len() > config.member_metadata_max_bytes)
                    {
                        member.awaiting_sync = false;
                        return now(ErrorCode::InvalidRequest);
                    }
                    effects = self.complete_sync(req.assignments, now_ms);
                }
                (
                    Answer::Parked {
                        member_id: req.member_id,
                    },
                    effects,
                )
            }
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now_ms: i64) -> Effects {
        let mut by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        self.set_state(GroupState::Stable, now_ms);
        let mut effects = Effects::default();
        effects.records.push(self.record());
        let waiting: Vec<(String, Bytes)> = self
            .members
            .values()
            .filter(|m| m.awaiting_sync)
            .map(|m| (m.id.clone(), m.assignment.clone()))
            .collect();
        for (id, assignment) in waiting {
            self.members
                .get_mut(&id)
                .expect("listed above")
                .awaiting_sync = false;
            effects
                .syncs
                .push((self.id.clone(), id, self.sync_outcome(assignment)));
        }
        effects
    }

    /// A request from `member_id` of `generation`: the member must exist (not fenced by a
    /// newer instance of its static id) and be of the current generation; its session is
    /// then extended. Shared by Heartbeat and OffsetCommit.
    fn touch_member(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if let Some(err) = self.fenced(member_id, instance_id) {
            return Err(err);
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(ErrorCode::UnknownMemberId);
        };
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms as i64;
        Ok(())
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if let Err(e) = self.touch_member(member_id, instance_id, generation, now_ms) {
            return e;
        }
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            _ => ErrorCode::None,
        }
    }

    /// Validates an OffsetCommit from this group's member (or a standalone committer).
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if generation < 0 && member_id.is_empty() && self.members.is_empty() {
            return ErrorCode::None;
        }
        if let Err(e) = self.touch_member(member_id, instance_id, generation, now_ms) {
            return e;
        }
        // As Kafka: a member of the current generation may commit while the group is
        // PreparingRebalance (eager consumers commit in their revoke callback, cooperative
        // ones keep consuming their retained partitions through the rebalance). Only
        // between JoinGroup and SyncGroup, when the member has not got its new
        // assignment yet, is the commit refused with a retriable error.
        match self.state {
            GroupState::CompletingRebalance => ErrorCode::RebalanceInProgress,
            _ => ErrorCode::None,
        }
    }

    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Vec<ErrorCode>, Effects) {
        let mut effects = Effects::default();
        let mut errs = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for (member_id, instance_id) in members {
            let id = match instance_id {
                Some(instance) => match self.static_members.get(instance) {
                    Some(known) if !member_id.is_empty() && known != member_id => {
                        errs.push(ErrorCode::FencedInstanceId);
                        continue;
                    }
                    Some(known) => known.clone(),
                    None => {
                        errs.push(ErrorCode::UnknownMemberId);
                        continue;
                    }
                },
                None => member_id.clone(),
            };
            if self.pending.remove(&id).is_some() {
                errs.push(ErrorCode::None);
                continue;
            }
            if !self.members.contains_key(&id) {
                errs.push(ErrorCode::UnknownMemberId);
                continue;
            }
            effects.merge(self.remove_member(&id));
            removed_any = true;
            errs.push(ErrorCode::None);
        }
        if removed_any {
            effects.merge(self.after_removal(config, now_ms));
        }
        (errs, effects)
    }

    fn remove_member(&mut self, id: &str) -> Effects {
        let mut effects = Effects::default();
        if let Some(m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(id) {
                    self.static_members.remove(instance);
                }
            }
            if m.awaiting_join {
                effects.joins.push((
                    self.id.clone(),
                    m.id.clone(),
                    JoinOutcome::error(ErrorCode::UnknownMemberId, &m.id),
                ));
            }
            if m.awaiting_sync {
                effects.syncs.push((
                    self.id.clone(),
                    m.id.clone(),
                    SyncOutcome::error(ErrorCode::UnknownMemberId),
                ));
            }
        }
        effects
    }

    fn after_removal(&mut self, config: &GroupConfig, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                effects.merge(self.prepare_rebalance(config, now_ms));
                effects.merge(self.try_complete_join(now_ms));
            }
            GroupState::PreparingRebalance => effects.merge(self.try_complete_join(now_ms)),
            GroupState::Empty => {}
        }
        effects
    }

    pub fn tick(&mut self, config: &GroupConfig, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        let expired_pending: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, &d)| d <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired_pending {
            self.pending.remove(id);
        }
        if let Some((deadline, latest)) = self.initial_delay {
            if now_ms >= deadline {
                self.initial_delay = None;
                self.join_deadline_ms = Some(latest.max(now_ms));
            }
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline_ms.is_some_and(|d| now_ms >= d)
        {
            // Members that did not rejoin in time are out; the rest carry on.
            let late: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.awaiting_join)
                .map(|m| m.id.clone())
                .collect();
            for id in late {
                effects.merge(self.remove_member(&id));
            }
            self.pending.clear();
            effects.merge(self.complete_join(now_ms));
            return effects;
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.heartbeat_deadline_ms <= now_ms)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            effects.merge(self.remove_member(id));
        }
        if !expired.is_empty() {
            effects.merge(self.after_removal(config, now_ms));
        } else {
            // Expired pending members (or the end of the initial delay) may complete a join.
            effects.merge(self.try_complete_join(now_ms));
        }
        effects
    }

    pub fn describe(&self) -> GroupDescription {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            members: members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(self.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Topics the members subscribe to (consumer protocol only), for OffsetDelete.
    pub fn subscribed_topics(&self) -> Vec<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let mut topics: Vec<String> = self
            .members
            .values()
            .flat_map(|m| group_records::subscription_topics(&m.metadata(self.protocol.as_deref())))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The group's metadata record (Kafka's GroupMetadataValue).
    fn record(&self) -> GroupRecord {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        let value = GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: members
                .into_iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(self.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        GroupRecord {
            group: self.id.clone(),
            key: GroupKey::Group {
                group: self.id.clone(),
            }
            .encode(),
            value: Some(value.encode()),
        }
    }

    /// Rebuilds a group from its last metadata record. Members get a fresh session from
    /// `now_ms`, so clients that reconnect after a broker restart keep their place.
    pub fn restore(id: &str, v: GroupValue, now_ms: i64) -> Group {
        let mut g = Group::new(id, now_ms);
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.protocol = v.protocol;
        g.leader = v.leader;
        for m in v.members {
            g.seq += 1;
            if let Some(instance) = &m.group_instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let protocols = g
                .protocol
                .clone()
                .map(|p| vec![(p, m.subscription.clone())])
                .unwrap_or_default();
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: false,
                    awaiting_sync: false,
                    heartbeat_deadline_ms: now_ms + m.session_timeout_ms as i64,
                    seq: g.seq,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }
}
