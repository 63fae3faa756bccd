//! Timing behaviour on a clock the test holds: transaction timeouts, group session
//! timeouts and retention on the broker's `ManualClock` (one tick run by hand after each
//! move of the clock, so "not yet" and "now" are exact, one millisecond apart), and the
//! long-poll window on tokio's paused time. Real requests through `handlers::dispatch`;
//! the real-process suites keep a smoke test of each (`test_transactions.py`,
//! `test_retention.py`, `test_groups.py`).

mod common;

use bytes::Bytes;

use common::{batch, call, open, produce, produce_request, send, TestBroker};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeGroupsRequest, EndTxnRequest, FetchRequest, GroupId,
    InitProducerIdRequest, JoinGroupRequest, ProducerId, SyncGroupRequest, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use klamm_broker::{state, txn};
use std::sync::Arc;
use std::time::Duration;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_aborts_just_past_its_timeout() {
    // Every tick checks for timed-out transactions (the default checks every 10 s).
    let t = open(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "1",
    )]);
    let topic = t.broker.create_topic("txn", 1, 1, &[]).unwrap();
    let partition = topic.partition(0).unwrap().clone();
    let timeout_ms = 2_000;

    let init = call(
        &t.broker,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(name("tx-1"))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await;
    assert_eq!(init.error_code, 0);
    let producer = (init.producer_id.0, init.producer_epoch);
    let added = call(
        &t.broker,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(name("tx-1")))
            .with_v3_and_below_producer_id(init.producer_id)
            .with_v3_and_below_producer_epoch(init.producer_epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(name("txn")))
                .with_partitions(vec![0])]),
    )
    .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    produce(
        &t,
        "txn",
        batch(3, t.broker.now_ms(), Some(producer)),
        Some("tx-1"),
    )
    .await;
    assert_eq!(
        (partition.last_stable_offset(), partition.high_watermark()),
        (0, 3)
    );

    // At its timeout a tick leaves the transaction open (Kafka aborts once start +
    // timeout < now, strictly).
    t.clock.advance_ms(1);
    assert!(txn::tick_once(&t.broker).is_none(), "aborted at once");
    t.clock.advance_ms(timeout_ms as i64 - 1);
    assert!(
        txn::tick_once(&t.broker).is_none(),
        "aborted at its timeout"
    );
    assert_eq!(partition.last_stable_offset(), 0);

    // One millisecond later the broker aborts it: the ABORT marker makes the records stable.
    t.clock.advance_ms(1);
    let aborting = txn::tick_once(&t.broker).expect("not aborted past its timeout");
    aborting.await;
    assert_eq!(
        (partition.last_stable_offset(), partition.high_watermark()),
        (4, 4)
    );

    // The producer was fenced by the abort's epoch bump: its commit is refused.
    let end = call(
        &t.broker,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name("tx-1")))
            .with_producer_id(init.producer_id)
            .with_producer_epoch(init.producer_epoch)
            .with_committed(true),
    )
    .await;
    assert_ne!(end.error_code, 0, "a timed-out transaction was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_leaves_exactly_at_its_session_timeout() {
    let t = open(&[("group.initial.rebalance.delay.ms", "0")]);
    let session_ms = 6_000;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(name("g")))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(name("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(name("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0"))]);
    // The join is parked until the (zero) initial delay has been seen by a tick.
    let pending = send(&t.broker, 3, &join).await;
    t.broker.groups.tick(&t.broker);
    let joined = common::decode::<JoinGroupRequest>(3, pending.await);
    assert_eq!(joined.error_code, 0);
    let synced = call(
        &t.broker,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(name("g")))
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(Bytes::from_static(b"\0\0\0\0\0\0\0\0"))]),
    )
    .await;
    assert_eq!(synced.error_code, 0);
    let members = |t: &TestBroker| {
        let b = t.broker.clone();
        async move {
            let d = call(
                &b,
                5,
                &DescribeGroupsRequest::default().with_groups(vec![GroupId(name("g"))]),
            )
            .await;
            let g = &d.groups[0];
            (g.group_state.to_string(), g.members.len())
        }
    };
    assert_eq!(members(&t).await, ("Stable".to_string(), 1));

    t.clock.advance_ms(session_ms as i64 - 1);
    t.broker.groups.tick(&t.broker);
    assert_eq!(
        members(&t).await,
        ("Stable".to_string(), 1),
        "expired early"
    );

    t.clock.advance_ms(1);
    t.broker.groups.tick(&t.broker);
    assert_eq!(
        members(&t).await,
        ("Empty".to_string(), 0),
        "not expired at its timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_a_segment_exactly_when_its_newest_record_expires() {
    let t = open(&[]);
    let retention_ms = 1_500;
    let configs = [
        ("retention.ms".to_string(), Some(retention_ms.to_string())),
        ("segment.ms".to_string(), Some("200".to_string())),
    ];
    let topic = t.broker.create_topic("ret", 1, 1, &configs).unwrap();
    let partition = topic.partition(0).unwrap().clone();
    let first_ms = t.broker.now_ms();
    produce(&t, "ret", batch(10, first_ms, None), None).await;
    // Past segment.ms: the next append rolls, sealing the first segment.
    t.clock.advance_ms(300);
    produce(&t, "ret", batch(10, t.broker.now_ms(), None), None).await;
    assert_eq!(partition.log().log_start_offset(), 0);

    // The first segment's newest record is retention.ms old one millisecond later.
    t.clock.set_ms(first_ms + retention_ms);
    state::apply_retention(&t.broker);
    assert_eq!(
        partition.log().log_start_offset(),
        0,
        "deleted before it expired"
    );
    t.clock.advance_ms(1);
    state::apply_retention(&t.broker);
    assert_eq!(
        partition.log().log_start_offset(),
        10,
        "not deleted once expired"
    );
    assert_eq!(partition.high_watermark(), 20);
}

fn fetch_request(topic: &str, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(name(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

#[tokio::test(start_paused = true)]
async fn an_empty_long_poll_answers_at_max_wait_ms() {
    let t = open(&[]);
    t.broker.create_topic("poll", 1, 1, &[]).unwrap();
    let started = tokio::time::Instant::now();
    let resp = call(&t.broker, 11, &fetch_request("poll", 5_000)).await;
    assert_eq!(started.elapsed(), Duration::from_millis(5_000));
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 0));
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_answers_as_soon_as_data_arrives() {
    let t = Arc::new(open(&[]));
    t.broker.create_topic("wake", 1, 1, &[]).unwrap();
    let started = tokio::time::Instant::now();
    let waiting = send(&t.broker, 11, &fetch_request("wake", 5_000)).await;
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            produce(&t, "wake", batch(2, t.broker.now_ms(), None), None).await;
        })
    };
    let resp = common::decode::<FetchRequest>(11, waiting.await);
    assert_eq!(started.elapsed(), Duration::from_millis(1_200));
    writer.await.unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 2);
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_wakes_only_for_its_own_partitions() {
    let t = Arc::new(open(&[]));
    t.broker.create_topic("own", 2, 1, &[]).unwrap();
    // The counter is process-wide: nextest runs each test in its own process.
    let wakeups_before = klamm_broker::metrics::metrics().fetch_wakeups.get();
    let started = tokio::time::Instant::now();
    // Parked on partition 0 only.
    let waiting = send(&t.broker, 11, &fetch_request("own", 5_000)).await;
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            let mut other = produce_request("own", batch(1, t.broker.now_ms(), None), None);
            other.topic_data[0].partition_data[0].index = 1;
            let resp = call(&t.broker, 9, &other).await;
            assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            produce(&t, "own", batch(1, t.broker.now_ms(), None), None).await;
        })
    };
    let resp = common::decode::<FetchRequest>(11, waiting.await);
    writer.await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(2_000));
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 1);
    // Woken once, by its own partition; the append to partition 1 did not wake it.
    let wakeups = klamm_broker::metrics::metrics().fetch_wakeups.get() - wakeups_before;
    assert_eq!(wakeups, 1);
}
