use super::*;

const SESSION_MS: i32 = 10_000;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_check_interval_ms: 0,
        ..GroupConfig::default()
    }
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[(&str, &[u8])]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m)))
            .collect(),
        require_known_member_id: true,
    }
}

const RANGE: &[(&str, &[u8])] = &[("range", b"sub")];

/// Runs the KIP-394 handshake: returns the member id, parked.
fn new_member(c: &mut Coordinator, now: i64) -> (String, Effects) {
    let (answer, _) = c.join(join_req("", None, RANGE), now);
    let Answer::Now(o) = answer else {
        panic!("expected MEMBER_ID_REQUIRED")
    };
    assert_eq!(o.error, ErrorCode::MemberIdRequired);
    let (answer, effects) = c.join(join_req(&o.member_id, None, RANGE), now);
    assert!(matches!(answer, Answer::Parked { .. }));
    (o.member_id, effects)
}

fn sync(
    c: &mut Coordinator,
    member: &str,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
    now: i64,
) -> (Answer<SyncOutcome>, Effects) {
    c.sync(
        SyncRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        },
        now,
    )
}

#[test]
fn two_members_join_sync_and_heartbeat() {
    let mut c = Coordinator::new(config());
    let (a, effects) = new_member(&mut c, 0);
    // Alone: the join completes at once, generation 1, `a` leads.
    assert_eq!(effects.joins.len(), 1);
    let join_a = &effects.joins[0].2;
    assert_eq!(
        (
            join_a.generation,
            join_a.leader.as_str(),
            join_a.members.len()
        ),
        (1, a.as_str(), 1)
    );
    let (_, effects) = sync(
        &mut c,
        &a,
        1,
        vec![(a.clone(), Bytes::from_static(b"all"))],
        1,
    );
    assert_eq!(effects.syncs[0].2.assignment, Bytes::from_static(b"all"));
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);

    // `b` arrives: `a` learns of the rebalance through its heartbeat and rejoins.
    let (b, effects) = new_member(&mut c, 100);
    assert!(effects.joins.is_empty());
    assert_eq!(
        c.heartbeat("g", &a, None, 1, 150),
        ErrorCode::RebalanceInProgress
    );
    let (answer, effects) = c.join(join_req(&a, None, RANGE), 200);
    assert!(matches!(answer, Answer::Parked { .. }));
    assert_eq!(effects.joins.len(), 2);
    let leader_view = effects.joins.iter().find(|(_, m, _)| *m == a).unwrap();
    assert_eq!(
        (leader_view.2.generation, leader_view.2.members.len()),
        (2, 2)
    );
    let follower_view = effects.joins.iter().find(|(_, m, _)| *m == b).unwrap();
    assert!(follower_view.2.members.is_empty());

    // The follower syncs first and waits; the leader's sync answers both.
    let (answer, effects) = sync(&mut c, &b, 2, vec![], 210);
    assert!(matches!(answer, Answer::Parked { .. }) && effects.syncs.is_empty());
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"p0")),
        (b.clone(), Bytes::from_static(b"p1")),
    ];
    let (_, effects) = sync(&mut c, &a, 2, assignments, 220);
    assert_eq!(effects.syncs.len(), 2);
    assert_eq!(
        effects.records.len(),
        1,
        "group metadata is stored once stable"
    );
    assert_eq!(c.heartbeat("g", &b, None, 2, 300), ErrorCode::None);
    assert_eq!(
        c.heartbeat("g", &b, None, 1, 300),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        c.heartbeat("g", "nobody", None, 2, 300),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn session_timeout_removes_a_silent_member() {
    let mut c = Coordinator::new(config());
    let (a, _) = new_member(&mut c, 0);
    sync(&mut c, &a, 1, vec![], 0);
    let (b, _) = new_member(&mut c, 0);
    c.join(join_req(&a, None, RANGE), 0);
    sync(&mut c, &b, 2, vec![], 0);
    sync(&mut c, &a, 2, vec![], 0);
    // `a` keeps heartbeating; `b` goes silent.
    for t in (1000..SESSION_MS as i64 + 2000).step_by(1000) {
        let expected = if t <= SESSION_MS as i64 {
            ErrorCode::None
        } else {
            ErrorCode::RebalanceInProgress
        };
        assert_eq!(c.heartbeat("g", &a, None, 2, t), expected, "at {t} ms");
        c.tick(t);
    }
    let d = c.describe("g").unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.state, GroupState::PreparingRebalance);
    let (_, effects) = c.join(join_req(&a, None, RANGE), SESSION_MS as i64 + 2500);
    assert_eq!(effects.joins[0].2.generation, 3);
}

#[test]
fn static_member_restart_causes_no_rebalance() {
    let mut c = Coordinator::new(config());
    let (answer, effects) = c.join(join_req("", Some("i1"), RANGE), 0);
    assert!(matches!(answer, Answer::Parked { .. }));
    let first_id = effects.joins[0].1.clone();
    sync(
        &mut c,
        &first_id,
        1,
        vec![(first_id.clone(), Bytes::from_static(b"p0"))],
        0,
    );
    // Restarted process: no member id, same instance id.
    let (answer, _) = c.join(join_req("", Some("i1"), RANGE), 1000);
    let Answer::Now(o) = answer else {
        panic!("a static rejoin in a stable group answers at once")
    };
    assert_eq!((o.error, o.generation), (ErrorCode::None, 1));
    assert_ne!(o.member_id, first_id);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    // The old incarnation is fenced.
    assert_eq!(
        c.heartbeat("g", &first_id, Some("i1"), 1, 1000),
        ErrorCode::FencedInstanceId
    );
    let (answer, _) = sync(&mut c, &o.member_id, 1, vec![], 1001);
    let Answer::Now(s) = answer else { panic!() };
    assert_eq!(s.assignment, Bytes::from_static(b"p0"));
}

/// The Java client's subscription carries the partitions it owns and its generation, so a
/// restarted static member's bytes always differ: as in Kafka, only a change of the
/// group's selected protocol rebalances, and the restarted leader is told to keep the
/// current assignment (KIP-814's SkipAssignment).
#[test]
fn static_restart_with_new_subscription_bytes_keeps_the_assignment() {
    let mut c = Coordinator::new(config());
    let (_, effects) = c.join(join_req("", Some("i1"), RANGE), 0);
    let first_id = effects.joins[0].1.clone();
    sync(
        &mut c,
        &first_id,
        1,
        vec![(first_id.clone(), Bytes::from_static(b"p0"))],
        0,
    );
    let owned: &[(&str, &[u8])] = &[("range", b"sub+owned p0, generation 1")];
    let (answer, _) = c.join(join_req("", Some("i1"), owned), 1000);
    let Answer::Now(o) = answer else {
        panic!("new subscription bytes under the same protocol: no rebalance")
    };
    assert_eq!((o.error, o.generation), (ErrorCode::None, 1));
    assert!(
        o.skip_assignment,
        "the restarted leader keeps the assignment"
    );
    assert_eq!(o.members.len(), 1, "and still learns the members");
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    // A protocol the group would select instead does rebalance.
    let other: &[(&str, &[u8])] = &[("roundrobin", b"sub"), ("range", b"sub")];
    let (answer, _) = c.join(join_req("", Some("i1"), other), 2000);
    if let Answer::Now(o) = &answer {
        assert_eq!(o.error, ErrorCode::None, "{o:?}");
    }
    assert_ne!(c.describe("g").unwrap().state, GroupState::Stable);
}

#[test]
fn initial_rebalance_delay_gathers_members() {
    let mut c = Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 3000,
        ..GroupConfig::default()
    });
    let (_, effects) = new_member(&mut c, 0);
    assert!(effects.joins.is_empty(), "waits for the delay");
    let (_, effects) = new_member(&mut c, 1000);
    assert!(effects.joins.is_empty());
    assert!(c.tick(2999).joins.is_empty());
    let effects = c.tick(4001);
    assert_eq!(effects.joins.len(), 2);
}

#[test]
fn inconsistent_protocols_and_bad_input() {
    let mut c = Coordinator::new(config());
    new_member(&mut c, 0);
    let (answer, _) = c.join(join_req("", None, &[("roundrobin", b"x")]), 0);
    let Answer::Now(o) = answer else { panic!() };
    assert_eq!(o.error, ErrorCode::InconsistentGroupProtocol);
    let mut bad = join_req("", None, RANGE);
    bad.session_timeout_ms = 1;
    let Answer::Now(o) = c.join(bad, 0).0 else {
        panic!()
    };
    assert_eq!(o.error, ErrorCode::InvalidSessionTimeout);
    let mut huge = join_req("", None, &[]);
    huge.protocols = vec![("range".into(), Bytes::from(vec![0u8; 2 << 20]))];
    let Answer::Now(o) = c.join(huge, 0).0 else {
        panic!()
    };
    assert_ne!(o.error, ErrorCode::None);
}

fn commit(
    c: &mut Coordinator,
    member: &str,
    generation: i32,
    offset: i64,
    now: i64,
) -> (Vec<ErrorCode>, Effects) {
    c.commit(
        CommitRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            generation,
            offsets: vec![("t".into(), 0, offset, 0, Some("meta".into()))],
        },
        |t, _| t == "t",
        now,
    )
}

#[test]
fn offsets_commit_fetch_replay_and_expire() {
    let mut c = Coordinator::new(config());
    // A standalone consumer commits with generation -1.
    let (errs, effects) = commit(&mut c, "", -1, 42, 0);
    assert_eq!(errs, vec![ErrorCode::None]);
    let fetched = c.fetch_offsets("g", None);
    assert_eq!(
        fetched[0]
            .2
            .as_ref()
            .map(|v| (v.offset, v.metadata.as_str())),
        Some((42, "meta"))
    );
    assert_eq!(c.fetch_offsets("g", Some(&[("t".into(), 5)]))[0].2, None);
    // Replaying the records rebuilds the same state.
    let mut replayed = Coordinator::new(config());
    for r in &effects.records {
        replayed.replay(r.key.clone(), r.value.clone(), 0).unwrap();
    }
    assert_eq!(
        replayed.fetch_offsets("g", None)[0]
            .2
            .as_ref()
            .unwrap()
            .offset,
        42
    );
    // Members must commit with their generation.
    let (a, _) = new_member(&mut c, 10);
    assert_eq!(
        commit(&mut c, &a, 0, 1, 20).0,
        vec![ErrorCode::IllegalGeneration]
    );
    sync(&mut c, &a, 1, vec![], 30);
    assert_eq!(commit(&mut c, &a, 1, 50, 40).0, vec![ErrorCode::None]);
    assert_eq!(
        commit(&mut c, "x", 1, 50, 40).0,
        vec![ErrorCode::UnknownMemberId]
    );
    // Leaving empties the group; its offsets expire after the retention.
    let (_, errs, _) = c.leave("g", &[(a.clone(), None)], 50);
    assert_eq!(errs, vec![ErrorCode::None]);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    let retention = c.config().offsets_retention_ms;
    assert!(c.tick(retention).records.is_empty());
    let effects = c.tick(retention + 100);
    assert!(effects.records.iter().any(|r| r.value.is_none()));
    assert!(c.fetch_offsets("g", None).is_empty());
    assert!(
        c.describe("g").is_none(),
        "an empty group without offsets is forgotten"
    );
}

#[test]
fn delete_group_and_offsets() {
    let mut c = Coordinator::new(config());
    commit(&mut c, "", -1, 1, 0);
    let (err, errs, effects) = c.delete_offsets("g", &[("t".into(), 0)]);
    assert_eq!((err, errs), (ErrorCode::None, vec![ErrorCode::None]));
    assert_eq!(effects.records.len(), 1);
    assert_eq!(c.delete_group("nope").0, ErrorCode::GroupIdNotFound);
    new_member(&mut c, 0);
    assert_eq!(c.delete_group("g").0, ErrorCode::NonEmptyGroup);
}

#[test]
fn an_empty_group_is_listed_until_the_retention_check() {
    let mut c = Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_check_interval_ms: 600_000,
        ..GroupConfig::default()
    });
    c.tick(0);
    let (a, _) = new_member(&mut c, 0);
    c.leave("g", &[(a, None)], 10);
    c.tick(1000);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    c.tick(600_001);
    assert!(c.describe("g").is_none());
}

#[test]
fn commits_during_a_rebalance_follow_kafka() {
    let mut c = Coordinator::new(config());
    let (a, _) = new_member(&mut c, 0);
    sync(&mut c, &a, 1, vec![], 0);
    // `b` arrives: the group is PreparingRebalance, generation 1 is still current, and
    // `a` may commit what it consumed (its revoke callback, or cooperative consumption).
    let (b, _) = new_member(&mut c, 100);
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    assert_eq!(commit(&mut c, &a, 1, 5, 110).0, vec![ErrorCode::None]);
    // Both joined, no sync yet: CompletingRebalance refuses with a retriable error.
    c.join(join_req(&a, None, RANGE), 120);
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::CompletingRebalance
    );
    assert_eq!(
        commit(&mut c, &a, 2, 6, 130).0,
        vec![ErrorCode::RebalanceInProgress]
    );
    sync(&mut c, &b, 2, vec![], 140);
    sync(&mut c, &a, 2, vec![], 150);
    // Stable again: the old generation is refused, the new one accepted.
    assert_eq!(
        commit(&mut c, &a, 1, 7, 160).0,
        vec![ErrorCode::IllegalGeneration]
    );
    assert_eq!(commit(&mut c, &b, 2, 8, 170).0, vec![ErrorCode::None]);
}

#[test]
fn group_max_size_refuses_the_member_over_the_limit() {
    let mut c = Coordinator::new(GroupConfig {
        max_group_size: 2,
        ..config()
    });
    new_member(&mut c, 0);
    new_member(&mut c, 0);
    let (answer, _) = c.join(join_req("", None, RANGE), 0);
    let Answer::Now(o) = answer else {
        panic!("expected an immediate refusal")
    };
    assert_eq!(o.error, ErrorCode::GroupMaxSizeReached);
    assert_eq!(c.describe("g").unwrap().members.len(), 2);
}

#[test]
fn offset_metadata_above_the_limit_is_refused_per_partition() {
    let mut c = Coordinator::new(GroupConfig {
        offset_metadata_max_bytes: 16,
        ..config()
    });
    let (errs, _) = c.commit(
        CommitRequest {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            generation: -1,
            offsets: vec![
                ("t".into(), 0, 5, 0, Some("x".repeat(17))),
                ("t".into(), 1, 6, 0, Some("x".repeat(16))),
            ],
        },
        |t, _| t == "t",
        0,
    );
    assert_eq!(
        errs,
        vec![ErrorCode::OffsetMetadataTooLarge, ErrorCode::None]
    );
    let fetched = c.fetch_offsets("g", None);
    assert_eq!(
        fetched.len(),
        1,
        "only the partition within the limit was stored"
    );
}

#[test]
fn group_max_count_refuses_a_new_group_but_not_known_ones() {
    let mut c = Coordinator::new(GroupConfig {
        max_groups: 2,
        ..config()
    });
    let join = |c: &mut Coordinator, group: &str| {
        let req = JoinRequest {
            group_id: group.into(),
            ..join_req("", None, RANGE)
        };
        match c.join(req, 0).0 {
            Answer::Now(o) => o.error,
            Answer::Parked { .. } => ErrorCode::None,
        }
    };
    let commit = |c: &mut Coordinator, group: &str| {
        let req = CommitRequest {
            group_id: group.into(),
            member_id: String::new(),
            group_instance_id: None,
            generation: -1,
            offsets: vec![("t".into(), 0, 5, 0, None)],
        };
        c.commit(req, |_, _| true, 0).0
    };
    assert_eq!(join(&mut c, "a"), ErrorCode::MemberIdRequired);
    assert_eq!(commit(&mut c, "b"), vec![ErrorCode::None]);
    // Two groups exist: a third is refused, whether it joins or only commits.
    assert_eq!(join(&mut c, "c"), ErrorCode::GroupMaxSizeReached);
    assert_eq!(commit(&mut c, "c"), vec![ErrorCode::GroupMaxSizeReached]);
    assert!(c.describe("c").is_none());
    // Known groups carry on.
    assert_eq!(join(&mut c, "a"), ErrorCode::MemberIdRequired);
    assert_eq!(commit(&mut c, "b"), vec![ErrorCode::None]);
    // Deleting one makes room.
    assert_eq!(c.delete_group("a").0, ErrorCode::None);
    assert_eq!(commit(&mut c, "c"), vec![ErrorCode::None]);
}

#[test]
fn group_metadata_max_bytes_bounds_every_group_together() {
    // Each member holds "range" + "sub" = 8 bytes; two fit under 20, in any groups.
    let mut c = Coordinator::new(GroupConfig {
        metadata_max_bytes: 20,
        ..config()
    });
    let (a, _) = new_member(&mut c, 0);
    new_member(&mut c, 0);
    let join_h = |c: &mut Coordinator, member: &str, now: i64| {
        let req = JoinRequest {
            group_id: "h".into(),
            ..join_req(member, None, RANGE)
        };
        match c.join(req, now).0 {
            Answer::Now(o) => o.error,
            Answer::Parked { .. } => ErrorCode::None,
        }
    };
    // Refused at the handshake's first join already (it would be at the second).
    assert_eq!(join_h(&mut c, "", 10), ErrorCode::GroupMaxSizeReached);
    // Once a member leaves, its bytes are free again (the next count sees it).
    let (code, _, _) = c.leave("g", &[(a, None)], 20);
    assert_eq!(code, ErrorCode::None);
    assert_eq!(join_h(&mut c, "", 30), ErrorCode::MemberIdRequired);
}

/// A client id may be a whole protocol string (32,767 bytes): the member id made from it
/// must still fit an INT16-length string, and the group record holding both round-trips.
#[test]
fn member_ids_from_the_longest_client_id_fit_the_protocol() {
    let mut c = Coordinator::new(config());
    // "é" is two bytes, so the 255-byte cut falls inside a character.
    let client_id = format!("a{}", "é".repeat(16_383));
    assert_eq!(client_id.len(), 32_767);
    let mut req = join_req("", None, RANGE);
    req.client_id = client_id.clone();
    let (answer, _) = c.join(req.clone(), 1_000);
    let Answer::Now(o) = answer else {
        panic!("expected MEMBER_ID_REQUIRED")
    };
    assert_eq!(o.error, ErrorCode::MemberIdRequired);
    assert!(
        o.member_id.len() <= MEMBER_ID_PREFIX_MAX_BYTES + 40,
        "{}",
        o.member_id.len()
    );
    assert!(o.member_id.starts_with(&client_id[..253]));
    req.member_id = o.member_id.clone();
    c.join(req, 1_000);
    let assignment = vec![(o.member_id.clone(), Bytes::from_static(b"a"))];
    let (_, effects) = sync(&mut c, &o.member_id, 1, assignment, 1_000);
    let record = effects
        .records
        .iter()
        .find_map(|r| r.value.clone())
        .expect("the completed join writes the group record");
    let value = GroupValue::decode(record).unwrap();
    assert_eq!(value.members.len(), 1);
    assert_eq!(value.members[0].member_id, o.member_id);
    assert_eq!(value.members[0].client_id, client_id);
}
