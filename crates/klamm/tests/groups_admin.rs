//! Consumer-group administration with a real client (librdkafka through `rdkafka`):
//! ListGroups + DescribeGroups (`fetch_group_list`), DeleteGroups (`AdminClient::delete_groups`),
//! OffsetCommit/OffsetFetch (`commit`, `committed_offsets`), and OffsetDelete — which rdkafka
//! 0.39's `AdminClient` lacks — over the raw protocol.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::raw::{str_bytes, topic_name, RawConn};
use common::{admin, admin_opts, base_config, create_topic, unique, Broker, CLIENT_TIMEOUT};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetDeleteRequest, OffsetDeleteResponse};
use rdkafka::admin::GroupResult;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Short rebalance delay and session minimum: rebalances take milliseconds, not seconds.
const GROUP_SETS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.min.session.timeout.ms", "1000"),
    ("offsets.topic.num.partitions", "5"),
];
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const GROUP_ID_NOT_FOUND: i16 = 69;

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test exceeded its time limit");
}

/// A group member (subscribe) or, with `subscribe = None`, a plain client of the group.
fn group_consumer(
    b: &Broker,
    group: &str,
    client_id: &str,
    subscribe: Option<&str>,
) -> BaseConsumer {
    let c: BaseConsumer = base_config(b)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("create group consumer");
    if let Some(t) = subscribe {
        c.subscribe(&[t]).expect("subscribe");
    }
    c
}

/// Polls until the member owns `n` partitions (a blocking loop: run in `block_in_place`).
fn wait_assigned(c: &BaseConsumer, n: usize) {
    let t0 = Instant::now();
    loop {
        let _ = c.poll(Duration::from_millis(100));
        let got = c.assignment().expect("assignment").count();
        if got == n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "member owns {got} partitions after 30 s, expected {n}"
        );
    }
}

fn tpl(entries: &[(&str, i32, Option<i64>)]) -> TopicPartitionList {
    let mut l = TopicPartitionList::new();
    for (t, p, o) in entries {
        match o {
            Some(o) => {
                l.add_partition_offset(t, *p, Offset::Offset(*o))
                    .expect("add_partition_offset");
            }
            None => {
                l.add_partition(t, *p);
            }
        }
    }
    l
}

/// Committed offsets `(topic, partition) → offset` (OffsetFetch); `None` where none.
fn committed(c: &BaseConsumer, parts: &[(&str, i32)]) -> BTreeMap<(String, i32), Option<i64>> {
    let q = tpl(&parts
        .iter()
        .map(|(t, p)| (*t, *p, None))
        .collect::<Vec<_>>());
    let got = c
        .committed_offsets(q, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("OffsetFetch {parts:?}: {e}"));
    got.elements()
        .iter()
        .map(|e| {
            assert!(
                e.error().is_ok(),
                "OffsetFetch {}:{}: {:?}",
                e.topic(),
                e.partition(),
                e.error()
            );
            let o = match e.offset() {
                Offset::Offset(o) => Some(o),
                Offset::Invalid => None,
                other => panic!("unexpected committed offset {other:?}"),
            };
            ((e.topic().to_string(), e.partition()), o)
        })
        .collect()
}

/// What DescribeGroups said about one group (owned copy of rdkafka's borrowed `GroupInfo`).
#[derive(Debug)]
struct Described {
    name: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<DescribedMember>,
}

#[derive(Debug)]
struct DescribedMember {
    id: String,
    client_id: String,
    client_host: String,
    metadata: Option<Vec<u8>>,
    assignment: Option<Vec<u8>>,
}

impl Described {
    fn of(g: &GroupInfo) -> Described {
        Described {
            name: g.name().to_string(),
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            protocol: g.protocol().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| DescribedMember {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    client_host: m.client_host().to_string(),
                    metadata: m.metadata().map(<[u8]>::to_vec),
                    assignment: m.assignment().map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}

fn describe(c: &BaseConsumer, group: &str) -> Option<Described> {
    let list = c
        .fetch_group_list(Some(group), CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("DescribeGroups {group}: {e}"));
    let groups: Vec<Described> = list.groups().iter().map(Described::of).collect();
    assert!(
        groups.len() <= 1,
        "DescribeGroups {group}: several answers {groups:?}"
    );
    groups.into_iter().next()
}

fn list_all(c: &BaseConsumer) -> BTreeMap<String, (String, String)> {
    let list = c
        .fetch_group_list(None, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListGroups: {e}"));
    list.groups()
        .iter()
        .map(|g| {
            (
                g.name().to_string(),
                (g.state().to_string(), g.protocol_type().to_string()),
            )
        })
        .collect()
}

async fn delete_groups(b: &Broker, groups: &[&str]) -> Vec<GroupResult> {
    let a = admin(b);
    tokio::time::timeout(CLIENT_TIMEOUT, a.delete_groups(groups, &admin_opts()))
        .await
        .unwrap_or_else(|_| panic!("DeleteGroups {groups:?}: no answer within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("DeleteGroups {groups:?}: request failed: {e}"))
}

fn offset_delete(
    b: &Broker,
    group: &str,
    parts: &[(&str, i32)],
) -> (i16, BTreeMap<(String, i32), i16>) {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        topics.entry(t).or_default().push(*p);
    }
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let mut conn = RawConn::connect(b.port());
    let resp: OffsetDeleteResponse = conn.call(0, &req);
    let per = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    (t.name.0.as_str().to_string(), p.partition_index),
                    p.error_code,
                )
            })
        })
        .collect();
    (resp.error_code, per)
}

// ---- ConsumerProtocol decoding (what the broker stores and DescribeGroups returns) ----

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.0.len() >= n, "truncated consumer protocol bytes");
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        h
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.i16();
        String::from_utf8(self.take(n as usize).to_vec()).expect("utf-8 string")
    }
}

/// ConsumerProtocolSubscription: version, topics (then user data etc., ignored).
fn subscription_topics(bytes: &[u8]) -> Vec<String> {
    let mut r = Reader(bytes);
    let _version = r.i16();
    let n = r.i32();
    (0..n).map(|_| r.string()).collect()
}

/// ConsumerProtocolAssignment: version, [topic, [partition]] (then user data, ignored).
fn assignment_partitions(bytes: &[u8]) -> BTreeMap<String, Vec<i32>> {
    let mut r = Reader(bytes);
    let _version = r.i16();
    let n = r.i32();
    (0..n)
        .map(|_| {
            let t = r.string();
            let k = r.i32();
            let mut ps: Vec<i32> = (0..k).map(|_| r.i32()).collect();
            ps.sort();
            (t, ps)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// ListGroups / DescribeGroups
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_groups() {
    bounded(async {
        let b = Broker::start_with(GROUP_SETS);
        let topic = unique("grp-topic");
        create_topic(&b, &topic, 3, &[]).await;
        let group = unique("described");
        let simple = unique("simple");
        tokio::task::block_in_place(|| {
            let m = group_consumer(&b, &group, "member-a", Some(&topic));
            wait_assigned(&m, 3);

            // A "simple" group: a client that assigns partitions itself and only commits.
            let s = group_consumer(&b, &simple, "simple-committer", None);
            s.assign(&tpl(&[(&topic, 0, Some(0))])).expect("assign");
            s.commit(&tpl(&[(&topic, 0, Some(1))]), CommitMode::Sync)
                .expect("commit as a simple consumer (generation -1)");

            let g = describe(&m, &group).expect("described group");
            assert_eq!(g.name, group);
            assert_eq!(g.state, "Stable");
            assert_eq!(g.protocol_type, "consumer");
            assert!(
                ["range", "roundrobin"].contains(&g.protocol.as_str()),
                "protocol {:?}",
                g.protocol
            );
            assert_eq!(g.members.len(), 1, "one member expected: {g:?}");
            let member = &g.members[0];
            assert_eq!(member.client_id, "member-a");
            assert!(
                member.client_host.contains("127.0.0.1"),
                "client host {:?}",
                member.client_host
            );
            assert!(!member.id.is_empty(), "empty member id");
            let meta = member.metadata.as_deref().expect("member metadata");
            assert_eq!(subscription_topics(meta), vec![topic.clone()]);
            let assignment = member.assignment.as_deref().expect("member assignment");
            assert_eq!(
                assignment_partitions(assignment),
                BTreeMap::from([(topic.clone(), vec![0, 1, 2])])
            );

            let s_desc = describe(&m, &simple).expect("described simple group");
            assert_eq!(
                (
                    s_desc.state.as_str(),
                    s_desc.protocol_type.as_str(),
                    s_desc.members.len()
                ),
                ("Empty", "", 0)
            );

            let all = list_all(&m);
            assert_eq!(
                all.get(&group),
                Some(&("Stable".to_string(), "consumer".to_string())),
                "ListGroups: {all:?}"
            );
            assert_eq!(
                all.get(&simple).map(|(_, pt)| pt.as_str()),
                Some(""),
                "ListGroups: {all:?}"
            );
            assert!(
                !all.contains_key("__consumer_offsets"),
                "a topic listed as a group: {all:?}"
            );

            // An unknown group is described as Dead, without members.
            let unknown = unique("unknown");
            if let Some(g) = describe(&m, &unknown) {
                assert_eq!((g.state.as_str(), g.members.len()), ("Dead", 0));
            }

            // After the member leaves, the group (which has offsets) is Empty, without members.
            m.commit(&tpl(&[(&topic, 1, Some(1))]), CommitMode::Sync)
                .expect("commit as a member");
            drop(m);
            let g = describe(&s, &group).expect("described group after leave");
            assert_eq!((g.state.as_str(), g.members.len()), ("Empty", 0));
        });
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// DeleteGroups
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_groups_empty_non_empty_and_unknown() {
    bounded(async {
        let mut b = Broker::start_with(GROUP_SETS);
        let topic = unique("del-topic");
        create_topic(&b, &topic, 2, &[]).await;
        let group = unique("doomed");
        let unknown = unique("never-existed");

        let m = tokio::task::block_in_place(|| {
            let m = group_consumer(&b, &group, "doomed-member", Some(&topic));
            wait_assigned(&m, 2);
            m.commit(
                &tpl(&[(&topic, 0, Some(3)), (&topic, 1, Some(4))]),
                CommitMode::Sync,
            )
            .expect("commit as a member");
            m
        });

        let res = delete_groups(&b, &[&group, &unknown]).await;
        let by_name: BTreeMap<String, Result<(), RDKafkaErrorCode>> = res
            .into_iter()
            .map(|r| match r {
                Ok(n) => (n, Ok(())),
                Err((n, code)) => (n, Err(code)),
            })
            .collect();
        assert_eq!(
            by_name,
            BTreeMap::from([
                (group.clone(), Err(RDKafkaErrorCode::NonEmptyGroup)),
                (unknown.clone(), Err(RDKafkaErrorCode::GroupIdNotFound)),
            ])
        );

        let probe = tokio::task::block_in_place(|| {
            drop(m); // LeaveGroup: the group is now empty but keeps its offsets
            let probe = group_consumer(&b, &group, "probe", None);
            let want =
                BTreeMap::from([((topic.clone(), 0), Some(3)), ((topic.clone(), 1), Some(4))]);
            assert_eq!(committed(&probe, &[(&topic, 0), (&topic, 1)]), want);
            assert_eq!(
                describe(&probe, &group).map(|g| g.state).as_deref(),
                Some("Empty")
            );
            probe
        });

        let res = delete_groups(&b, &[&group]).await;
        assert_eq!(res, vec![Ok(group.clone())]);
        tokio::task::block_in_place(|| {
            let gone = BTreeMap::from([((topic.clone(), 0), None), ((topic.clone(), 1), None)]);
            assert_eq!(
                committed(&probe, &[(&topic, 0), (&topic, 1)]),
                gone,
                "offsets outlived their group"
            );
            assert!(
                !list_all(&probe).contains_key(&group),
                "deleted group still listed"
            );
        });
        drop(probe);
        let res = delete_groups(&b, &[&group]).await;
        assert_eq!(
            res,
            vec![Err((group.clone(), RDKafkaErrorCode::GroupIdNotFound))]
        );

        // Deleted for good: a crash and restart does not bring group or offsets back.
        b.kill9();
        b.start_again();
        tokio::task::block_in_place(|| {
            let probe = group_consumer(&b, &unique("other"), "probe2", None);
            assert!(
                !list_all(&probe).contains_key(&group),
                "deleted group back after restart"
            );
            drop(probe);
            let probe = group_consumer(&b, &group, "probe3", None);
            let gone = BTreeMap::from([((topic.clone(), 0), None), ((topic.clone(), 1), None)]);
            assert_eq!(
                committed(&probe, &[(&topic, 0), (&topic, 1)]),
                gone,
                "offsets back after restart"
            );
        });
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// OffsetDelete (raw: rdkafka 0.39 has no API for it)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_spares_subscribed_topics_and_survives_restart() {
    bounded(async {
        let mut b = Broker::start_with(GROUP_SETS);
        let (consumed, other) = (unique("od-consumed"), unique("od-other"));
        create_topic(&b, &consumed, 2, &[]).await;
        create_topic(&b, &other, 1, &[]).await;
        let group = unique("od-group");

        tokio::task::block_in_place(|| {
            let m = group_consumer(&b, &group, "od-member", Some(&consumed));
            wait_assigned(&m, 2);
            m.commit(
                &tpl(&[
                    (&consumed, 0, Some(5)),
                    (&consumed, 1, Some(6)),
                    (&other, 0, Some(7)),
                ]),
                CommitMode::Sync,
            )
            .expect("commit");

            // The group consumes `consumed`: only `other`'s offset may go.
            let (code, per) = offset_delete(&b, &group, &[(&consumed, 0), (&other, 0)]);
            assert_eq!(code, 0);
            assert_eq!(
                per,
                BTreeMap::from([
                    ((consumed.clone(), 0), GROUP_SUBSCRIBED_TO_TOPIC),
                    ((other.clone(), 0), 0),
                ])
            );
            let want = BTreeMap::from([
                ((consumed.clone(), 0), Some(5)),
                ((consumed.clone(), 1), Some(6)),
                ((other.clone(), 0), None),
            ]);
            assert_eq!(
                committed(&m, &[(&consumed, 0), (&consumed, 1), (&other, 0)]),
                want
            );

            let (code, per) = offset_delete(&b, &unique("no-such-group"), &[(&consumed, 0)]);
            assert_eq!((code, per.len()), (GROUP_ID_NOT_FOUND, 0));

            // Once the member has left, the group consumes nothing: deletion allowed.
            drop(m);
            let (code, per) = offset_delete(&b, &group, &[(&consumed, 0)]);
            assert_eq!(
                (code, per),
                (0, BTreeMap::from([((consumed.clone(), 0), 0)]))
            );
        });

        b.restart();
        tokio::task::block_in_place(|| {
            let probe = group_consumer(&b, &group, "od-probe", None);
            let want = BTreeMap::from([
                ((consumed.clone(), 0), None),
                ((consumed.clone(), 1), Some(6)),
                ((other.clone(), 0), None),
            ]);
            assert_eq!(
                committed(&probe, &[(&consumed, 0), (&consumed, 1), (&other, 0)]),
                want,
                "offsets after OffsetDelete and a restart"
            );
        });
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Commit / fetch with metadata, and a member's view after a crash
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_with_metadata_survive_a_crash() {
    bounded(async {
        let mut b = Broker::start_with(GROUP_SETS);
        let topic = unique("meta-topic");
        create_topic(&b, &topic, 3, &[]).await;
        let group = unique("meta-group");
        tokio::task::block_in_place(|| {
            let m = group_consumer(&b, &group, "meta-member", Some(&topic));
            wait_assigned(&m, 3);
            let mut l = TopicPartitionList::new();
            for p in 0..3 {
                let mut e = l.add_partition(&topic, p);
                e.set_offset(Offset::Offset(10 * (p as i64 + 1)))
                    .expect("set_offset");
                e.set_metadata(format!("md-{p}"));
            }
            m.commit(&l, CommitMode::Sync)
                .expect("commit with metadata");
            let got = m
                .committed_offsets(
                    tpl(&[(&topic, 0, None), (&topic, 1, None), (&topic, 2, None)]),
                    CLIENT_TIMEOUT,
                )
                .expect("OffsetFetch");
            for e in got.elements() {
                assert_eq!(e.offset(), Offset::Offset(10 * (e.partition() as i64 + 1)));
                assert_eq!(e.metadata(), format!("md-{}", e.partition()));
            }
        });
        b.kill9();
        b.start_again();
        tokio::task::block_in_place(|| {
            let probe = group_consumer(&b, &group, "meta-probe", None);
            let got = probe
                .committed_offsets(
                    tpl(&[(&topic, 0, None), (&topic, 1, None), (&topic, 2, None)]),
                    CLIENT_TIMEOUT,
                )
                .expect("OffsetFetch after crash");
            let seen: Vec<(i32, Offset, String)> = got
                .elements()
                .iter()
                .map(|e| (e.partition(), e.offset(), e.metadata().to_string()))
                .collect();
            assert_eq!(
                seen,
                (0..3)
                    .map(|p| (p, Offset::Offset(10 * (p as i64 + 1)), format!("md-{p}")))
                    .collect::<Vec<_>>()
            );
        });
    })
    .await
}

/// Kafka keeps an empty group without offsets (state Empty) until its periodic cleanup
/// (`offsets.retention.check.interval.ms`, 10 minutes by default) turns it Dead; tools such as
/// `kafka-consumer-groups --describe` rely on it right after the last consumer stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_without_offsets_stays_empty_after_last_member_leaves() {
    bounded(async {
        let b = Broker::start_with(GROUP_SETS);
        let topic = unique("nooff-topic");
        create_topic(&b, &topic, 1, &[]).await;
        let group = unique("nooff");
        tokio::task::block_in_place(|| {
            let m = group_consumer(&b, &group, "nooff-member", Some(&topic));
            wait_assigned(&m, 1);
            drop(m); // LeaveGroup, nothing ever committed
            let probe = group_consumer(&b, &unique("probe"), "probe", None);
            std::thread::sleep(Duration::from_millis(500)); // several coordinator ticks
            let g = describe(&probe, &group).unwrap_or_else(|| {
                panic!(
                    "DescribeGroups {group} right after its last member left: the broker described \
                     it as Dead (gone) — Kafka answers Empty until its periodic cleanup"
                )
            });
            assert_eq!(
                (g.state.as_str(), g.protocol_type.as_str(), g.members.len()),
                ("Empty", "consumer", 0),
                "right after its last member left, the group should still exist (Empty)"
            );
            assert!(
                list_all(&probe).contains_key(&group),
                "group not listed after its last member left"
            );
        });
    })
    .await
}
