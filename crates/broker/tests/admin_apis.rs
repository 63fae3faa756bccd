//! The admin APIs of the cluster's layout, answered for one node: DescribeLogDirs,
//! AlterReplicaLogDirs, DescribeTopicPartitions (with its cursor), ElectLeaders, the two
//! reassignment APIs and DescribeQuorum; and WriteTxnMarkers from a client. Real requests
//! through `handlers::dispatch`; the Java and kafka-python suites drive the same calls
//! over a socket.

mod common;

use common::{call, open, TestBroker};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest,
    BrokerId, CreateTopicsRequest, DescribeLogDirsRequest, DescribeQuorumRequest,
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ElectLeadersRequest,
    InitProducerIdRequest, ListPartitionReassignmentsRequest, ProducerId, TopicName,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const REPLICA_NOT_AVAILABLE: i16 = 9;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const LOG_DIR_NOT_FOUND: i16 = 57;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create(t: &TestBroker, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5_000);
    let response = call(&t.broker, 5, &request).await;
    assert_eq!(response.topics[0].error_code, 0, "create {topic}");
}

#[tokio::test]
async fn describe_log_dirs_reports_the_dir_its_partitions_and_its_space() {
    let t = open(&[]);
    create(&t, "sizes", 2).await;
    let records = common::batch(5, common::START_MS, None);
    let batch_bytes = records.len();
    common::produce(&t, "sizes", records, None).await;
    let dir = std::path::absolute(t.broker.data_dir()).unwrap();

    let all = call(
        &t.broker,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    )
    .await;
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1, "one log dir");
    let result = &all.results[0];
    assert_eq!(result.error_code, 0);
    assert_eq!(result.log_dir.as_str(), dir.display().to_string());
    assert!(
        result.total_bytes > 0,
        "total bytes: {}",
        result.total_bytes
    );
    assert!((0..=result.total_bytes).contains(&result.usable_bytes));
    let topic = result
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "sizes")
        .expect("the topic is listed");
    let mut sizes: Vec<(i32, i64, i64)> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size, p.offset_lag))
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![(0, batch_bytes as i64, 0), (1, 0, 0)]);

    // Named partitions: what exists is listed, the rest left out (as Kafka leaves out what
    // it does not host). v1 has no total/usable bytes.
    let some = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(name("sizes"))
            .with_partitions(vec![1, 7]),
        DescribableLogDirTopic::default()
            .with_topic(name("missing"))
            .with_partitions(vec![0]),
    ]));
    let some = call(&t.broker, 1, &some).await;
    let topics = &some.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.0.as_str(), "sizes");
    let indexes: Vec<i32> = topics[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(indexes, vec![1]);
}

#[tokio::test]
async fn alter_replica_log_dirs_accepts_the_current_dir_only() {
    let t = open(&[]);
    create(&t, "moves", 1).await;
    let ours = std::path::absolute(t.broker.data_dir()).unwrap();
    let dir = |path: String, partitions: Vec<i32>| {
        AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(path))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(name("moves"))
                .with_partitions(partitions)])
    };
    let request = AlterReplicaLogDirsRequest::default().with_dirs(vec![
        dir(ours.display().to_string(), vec![0, 3]),
        dir(format!("{}/", ours.display()), vec![0]),
        dir("/nowhere/klamm".into(), vec![0]),
        dir("relative/dir".into(), vec![0]),
    ]);
    let response = call(&t.broker, 2, &request).await;
    let codes: Vec<Vec<i16>> = response
        .results
        .iter()
        .map(|r| r.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(
        codes,
        vec![
            vec![0, REPLICA_NOT_AVAILABLE],
            vec![0],
            vec![LOG_DIR_NOT_FOUND],
            vec![LOG_DIR_NOT_FOUND]
        ]
    );
}

/// `(topic, error, partitions)` of each topic of a page.
type PageTopics = Vec<(String, i16, Vec<i32>)>;

/// The topics of a page, and its cursor.
fn page(r: &DescribeTopicPartitionsResponse) -> (PageTopics, Option<(String, i32)>) {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().0.to_string(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

fn describe_request(names: &[&str], cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| TopicRequest::default().with_name(name(n)))
                .collect(),
        )
        .with_response_partition_limit(2000)
        .with_cursor(cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(name(topic))
                .with_partition_index(partition)
        }))
}

#[tokio::test]
async fn describe_topic_partitions_pages_in_name_order_with_a_cursor() {
    // The broker's limit (2) is below the request's (2000): the smaller one holds.
    let t = open(&[("max.request.partition.size.limit", "2")]);
    create(&t, "a", 3).await;
    create(&t, "b", 1).await;
    create(&t, "c", 2).await;
    let names = ["c", "missing", "b", "a", "bad/name"];
    let s = |x: &str| x.to_string();

    let first = call(&t.broker, 0, &describe_request(&names, None)).await;
    assert_eq!(
        page(&first),
        (vec![(s("a"), 0, vec![0, 1])], Some((s("a"), 2)))
    );
    let topic = &first.topics[0];
    assert_eq!(topic.topic_id, t.broker.topic("a").unwrap().id);
    assert_eq!(topic.partitions[0].leader_id, BrokerId(1));
    assert_eq!(topic.partitions[0].replica_nodes, vec![BrokerId(1)]);

    // Only the cursor's topic starts at the cursor's partition; filling the page exactly
    // points the cursor at the next topic's start, whether or not it exists.
    let second = call(&t.broker, 0, &describe_request(&names, Some(("a", 2)))).await;
    assert_eq!(
        page(&second),
        (
            vec![(s("a"), 0, vec![2]), (s("b"), 0, vec![0])],
            Some((s("bad/name"), 0))
        )
    );
    // Topics that do not exist are answered with an error and use none of the limit.
    let third = call(
        &t.broker,
        0,
        &describe_request(&names, Some(("bad/name", 0))),
    )
    .await;
    assert_eq!(
        page(&third),
        (
            vec![
                (s("bad/name"), INVALID_TOPIC_EXCEPTION, vec![]),
                (s("c"), 0, vec![0, 1])
            ],
            Some((s("missing"), 0))
        )
    );
    let last = call(
        &t.broker,
        0,
        &describe_request(&names, Some(("missing", 0))),
    )
    .await;
    assert_eq!(
        page(&last),
        (
            vec![(s("missing"), UNKNOWN_TOPIC_OR_PARTITION, vec![])],
            None
        )
    );

    // Every topic (an empty list) lists no error entries; a cursor must name a requested
    // topic, else the whole request is refused.
    let every = call(&t.broker, 0, &describe_request(&[], Some(("b", 0)))).await;
    assert_eq!(
        page(&every),
        (
            vec![(s("b"), 0, vec![0]), (s("c"), 0, vec![0])],
            Some((s("c"), 1))
        )
    );
    let stray = call(&t.broker, 0, &describe_request(&["a", "b"], Some(("c", 0)))).await;
    assert_eq!(
        page(&stray),
        (
            vec![
                (s("a"), INVALID_REQUEST, vec![]),
                (s("b"), INVALID_REQUEST, vec![])
            ],
            None
        )
    );
}

#[tokio::test]
async fn elect_leaders_is_never_needed_on_one_node() {
    let t = open(&[]);
    create(&t, "elect", 2).await;
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(5_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(name("elect"))
            .with_partitions(vec![0, 1, 9])]));
    for version in [0, 1, 2] {
        let response = call(&t.broker, version, &request).await;
        assert_eq!(response.error_code, 0);
        let codes: Vec<(i32, i16)> = response.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| (p.partition_id, p.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (0, ELECTION_NOT_NEEDED),
                (1, ELECTION_NOT_NEEDED),
                (9, UNKNOWN_TOPIC_OR_PARTITION)
            ],
            "v{version}"
        );
    }
    // Every partition: only those where an election took place are listed.
    let all = call(&t.broker, 2, &request.clone().with_topic_partitions(None)).await;
    assert_eq!(all.error_code, 0);
    assert!(all.replica_election_results.is_empty());
}

#[tokio::test]
async fn reassignments_validate_their_target_and_none_are_in_progress() {
    let t = open(&[]);
    create(&t, "moving", 2).await;
    let list = call(
        &t.broker,
        0,
        &ListPartitionReassignmentsRequest::default().with_topics(None),
    )
    .await;
    assert_eq!((list.error_code, list.topics.len()), (0, 0));

    let target = |index: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(name("moving"))
                .with_partitions(vec![
                    target(0, Some(vec![1])),
                    target(1, Some(vec![2])),
                    target(1, None),
                    target(9, Some(vec![1])),
                ]),
            ReassignableTopic::default()
                .with_name(name("missing"))
                .with_partitions(vec![target(0, Some(vec![1]))]),
        ]);
    for version in [0, 1] {
        let response = call(&t.broker, version, &request).await;
        assert_eq!(response.error_code, 0);
        let codes: Vec<Vec<i16>> = response
            .responses
            .iter()
            .map(|r| r.partitions.iter().map(|p| p.error_code).collect())
            .collect();
        assert_eq!(
            codes,
            vec![
                vec![
                    0,
                    INVALID_REPLICA_ASSIGNMENT,
                    NO_REASSIGNMENT_IN_PROGRESS,
                    UNKNOWN_TOPIC_OR_PARTITION
                ],
                vec![UNKNOWN_TOPIC_OR_PARTITION]
            ],
            "v{version}"
        );
        let message = response.responses[0].partitions[1].error_message.as_ref();
        assert!(
            message.is_some_and(|m| m.contains("broker 2")),
            "the message names the unknown broker: {message:?}"
        );
    }
}

#[tokio::test]
async fn describe_quorum_is_one_voter_whose_offset_counts_metadata_changes() {
    let t = open(&[]);
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(name("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let before = call(&t.broker, 2, &request).await;
    assert_eq!(before.error_code, 0);
    let p = &before.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.leader_id, p.leader_epoch),
        (0, BrokerId(1), 1)
    );
    assert_eq!(p.current_voters.len(), 1);
    assert!(p.observers.is_empty());
    let voter = &p.current_voters[0];
    assert_eq!(voter.replica_id, BrokerId(1));
    assert_eq!(voter.log_end_offset, p.high_watermark);
    assert_eq!(voter.last_fetch_timestamp, common::START_MS);
    assert_eq!(before.nodes.len(), 1);
    assert_eq!(before.nodes[0].node_id, BrokerId(1));
    assert!(!before.nodes[0].listeners.is_empty());

    create(&t, "one-more-change", 1).await;
    for version in [0, 1, 2] {
        let after = call(&t.broker, version, &request).await;
        assert_eq!(
            after.topics[0].partitions[0].high_watermark,
            p.high_watermark + 1,
            "a topic creation is one metadata change (v{version})"
        );
    }

    // Any other partition is not a quorum Klamm has.
    let other = request.clone().with_topics(vec![TopicData::default()
        .with_topic_name(name("one-more-change"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let other = call(&t.broker, 0, &other).await;
    assert_eq!(other.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(other.topics.is_empty());
}

#[tokio::test]
async fn write_txn_markers_ends_a_hanging_transaction_and_refuses_a_stale_epoch() {
    let t = open(&[]);
    create(&t, "hanging", 1).await;
    let partition = t.broker.topic("hanging").unwrap().partitions[0].clone();
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-hang"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // Twice: the second bumps the epoch to 1, so an epoch-0 marker is a stale one.
    call(&t.broker, 4, &init).await;
    let init = call(&t.broker, 4, &init).await;
    assert_eq!((init.error_code, init.producer_epoch), (0, 1));
    let added = call(
        &t.broker,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str(
                "tx-hang",
            )))
            .with_v3_and_below_producer_id(init.producer_id)
            .with_v3_and_below_producer_epoch(init.producer_epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name("hanging"))
                .with_partitions(vec![0])]),
    )
    .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let producer = (init.producer_id.0, init.producer_epoch);
    common::produce(
        &t,
        "hanging",
        common::batch(3, common::START_MS, Some(producer)),
        Some("tx-hang"),
    )
    .await;
    assert_eq!(
        (partition.last_stable_offset(), partition.high_watermark()),
        (0, 3)
    );

    let abort = |epoch: i16, partitions: Vec<i32>| {
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(init.producer_id)
            .with_producer_epoch(epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name("hanging"))
                .with_partition_indexes(partitions)])])
    };
    let codes = |r: &kafka_protocol::messages::WriteTxnMarkersResponse| -> Vec<(i32, i16)> {
        r.markers[0].topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect()
    };
    let stale = call(&t.broker, 1, &abort(0, vec![0, 5])).await;
    assert_eq!(
        codes(&stale),
        vec![(0, INVALID_PRODUCER_EPOCH), (5, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(
        partition.high_watermark(),
        3,
        "a refused marker was written"
    );

    let done = call(&t.broker, 1, &abort(1, vec![0])).await;
    assert_eq!(done.markers[0].producer_id, init.producer_id);
    assert_eq!(codes(&done), vec![(0, 0)]);
    // The ABORT marker ends the transaction here: everything is stable, and the aborted
    // records are listed for read_committed consumers.
    assert_eq!(
        (partition.last_stable_offset(), partition.high_watermark()),
        (4, 4)
    );
    assert_eq!(
        partition.log().aborted_transactions(0, 4),
        vec![(init.producer_id.0, 0)]
    );
}
