//! Transactions (KIP-98) against a real broker: librdkafka (the `rdkafka` crate) commits,
//! aborts and times out transactions; raw requests check Kafka's errors for bad input
//! (fenced producers, EndTxn without partitions, data for a partition not in the
//! transaction, sequences from the future) and that nothing is written for them.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::{produce_request, str_bytes, topic_name, RawConn};
use common::{create_topic, Broker, CLIENT_TIMEOUT};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeProducersRequest, DescribeTransactionsRequest,
    EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ListTransactionsRequest,
    ProducerId, TransactionalId,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const PRODUCER_FENCED: i16 = 90;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn txn_producer(b: &Broker, id: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("transactional.id", id)
        .set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: BaseProducer = c.create().expect("transactional producer");
    p.init_transactions(CLIENT_TIMEOUT)
        .expect("init_transactions");
    p
}

fn send(p: &BaseProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .expect("enqueue");
}

/// Every value in partition 0 of `topic` under `isolation`, reading until idle.
fn read_values(b: &Broker, topic: &str, isolation: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "txn-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut idle = std::time::Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            idle = std::time::Instant::now();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_commit_and_abort() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let b = Broker::start();
        create_topic(&b, "txn", 1, &[]).await;
        let p = txn_producer(&b, "rd-tx", &[]);
        p.begin_transaction().unwrap();
        send(&p, "txn", 0, "committed-1");
        send(&p, "txn", 0, "committed-2");
        p.commit_transaction(CLIENT_TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "txn", 0, "aborted");
        p.flush(CLIENT_TIMEOUT).unwrap();
        p.abort_transaction(CLIENT_TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "txn", 0, "committed-3");
        p.commit_transaction(CLIENT_TIMEOUT).unwrap();
        assert_eq!(
            read_values(&b, "txn", "read_committed"),
            ["committed-1", "committed-2", "committed-3"]
        );
        assert_eq!(
            read_values(&b, "txn", "read_uncommitted"),
            ["committed-1", "committed-2", "aborted", "committed-3"]
        );
    })
    .await
    .expect("test exceeded its time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_transaction_timeout_aborts() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let b = Broker::start_with(&[(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "200",
        )]);
        create_topic(&b, "slow", 1, &[]).await;
        let p = txn_producer(&b, "rd-slow", &[("transaction.timeout.ms", "1500")]);
        p.begin_transaction().unwrap();
        send(&p, "slow", 0, "too-late");
        p.flush(CLIENT_TIMEOUT).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(p.commit_transaction(CLIENT_TIMEOUT).is_err());
        // The broker aborted the transaction: the LSO moved past it.
        let mut raw = RawConn::connect(b.port());
        let lso = raw_list_offset_committed(&mut raw, "slow");
        assert_eq!(lso, 2, "data + ABORT marker are stable");
        assert!(read_values(&b, "slow", "read_committed").is_empty());
        assert_eq!(read_values(&b, "slow", "read_uncommitted"), ["too-late"]);
    })
    .await
    .expect("test exceeded its time limit");
}

fn raw_list_offset_committed(raw: &mut RawConn, topic: &str) -> i64 {
    let req = RawConn::list_offsets_request(topic, 0, -1).with_isolation_level(1);
    let resp = raw.call(5, &req);
    resp.topics[0].partitions[0].offset
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn init(raw: &mut RawConn, id: &str) -> (i64, i16, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = raw.call(4, &req);
    (r.producer_id.0, r.producer_epoch, r.error_code)
}

fn add_partition(raw: &mut RawConn, version: i16, id: &str, pid: i64, epoch: i16, t: &str) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(t))
            .with_partitions(vec![0])]);
    let r = raw.call(version, &req);
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn end_txn(raw: &mut RawConn, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    raw.call(3, &req).error_code
}

fn txn_produce(raw: &mut RawConn, id: &str, topic: &str, batch: Bytes) -> i16 {
    let req = produce_request(topic, 0, batch, -1)
        .with_transactional_id(Some(TransactionalId(str_bytes(id))));
    let r = raw.call(9, &req);
    r.responses[0].partition_responses[0].error_code
}

fn log_end(raw: &mut RawConn, topic: &str) -> i64 {
    raw.list_offset(topic, 0, -1).offset
}

/// The high watermark once it reaches `want` (markers become visible after their fsync,
/// which the EndTxn answer does not wait for).
fn log_end_reaches(raw: &mut RawConn, topic: &str, want: i64) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let end = log_end(raw, topic);
        if end >= want || std::time::Instant::now() > deadline {
            return end;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_transactional_input_gets_kafkas_errors_and_writes_nothing() {
    let b = Broker::start();
    let mut raw = RawConn::connect(b.port());
    raw.create_topic_ok("bad", 1);
    // FindCoordinator for a transactional id is this broker.
    let fc = raw.call(
        3,
        &FindCoordinatorRequest::default()
            .with_key(str_bytes("tx"))
            .with_key_type(1),
    );
    assert_eq!(fc.error_code, 0);
    assert_eq!(fc.port, b.port() as i32);

    let (pid, epoch, code) = init(&mut raw, "tx");
    assert_eq!((epoch, code), (0, 0));
    // EndTxn without any AddPartitionsToTxn.
    assert_eq!(end_txn(&mut raw, "tx", pid, epoch, true), INVALID_TXN_STATE);
    // Transactional data for a partition not in the transaction.
    assert_eq!(
        txn_produce(&mut raw, "tx", "bad", txn_batch(pid, epoch, 0, &["x"])),
        INVALID_TXN_STATE
    );
    assert_eq!(log_end(&mut raw, "bad"), 0);
    // An unknown partition is refused; nothing of the request is added.
    assert_eq!(
        add_partition(&mut raw, 3, "tx", pid, epoch, "nope"),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(add_partition(&mut raw, 3, "tx", pid, epoch, "bad"), 0);
    assert_eq!(
        txn_produce(&mut raw, "tx", "bad", txn_batch(pid, epoch, 0, &["a", "b"])),
        0
    );
    // A sequence from the future.
    assert_eq!(
        txn_produce(&mut raw, "tx", "bad", txn_batch(pid, epoch, 7, &["c"])),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(log_end(&mut raw, "bad"), 2);

    // A new instance fences this one; its open transaction is aborted first.
    let (_, _, code) = init(&mut raw, "tx");
    assert_eq!(code, CONCURRENT_TRANSACTIONS);
    let (pid2, epoch2, code) = init(&mut raw, "tx");
    assert_eq!((pid2, code), (pid, 0));
    assert!(epoch2 > epoch);
    let end = log_end_reaches(&mut raw, "bad", 3);
    assert_eq!(end, 3, "two records and the ABORT marker");
    // The zombie gets PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2) and writes nothing.
    assert_eq!(
        add_partition(&mut raw, 3, "tx", pid, epoch, "bad"),
        PRODUCER_FENCED
    );
    assert_eq!(
        add_partition(&mut raw, 1, "tx", pid, epoch, "bad"),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(end_txn(&mut raw, "tx", pid, epoch, true), PRODUCER_FENCED);
    assert_eq!(
        txn_produce(&mut raw, "tx", "bad", txn_batch(pid, epoch, 2, &["z"])),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(log_end(&mut raw, "bad"), end);

    // The new instance commits.
    assert_eq!(add_partition(&mut raw, 3, "tx", pid2, epoch2, "bad"), 0);
    assert_eq!(
        txn_produce(&mut raw, "tx", "bad", txn_batch(pid2, epoch2, 0, &["ok"])),
        0
    );
    assert_eq!(end_txn(&mut raw, "tx", pid2, epoch2, true), 0);
    assert_eq!(log_end_reaches(&mut raw, "bad", end + 2), end + 2);
    let _ = OPERATION_NOT_ATTEMPTED;

    // Admin visibility.
    let lt = raw.call(0, &ListTransactionsRequest::default());
    let states: Vec<(String, String)> = lt
        .transaction_states
        .iter()
        .map(|s| {
            (
                s.transactional_id.0.to_string(),
                s.transaction_state.to_string(),
            )
        })
        .collect();
    assert_eq!(states, [("tx".to_string(), "CompleteCommit".to_string())]);
    let dt = raw.call(
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![
            TransactionalId(str_bytes("tx")),
            TransactionalId(str_bytes("unknown")),
        ]),
    );
    assert_eq!(dt.transaction_states[0].error_code, 0);
    assert_eq!(dt.transaction_states[0].producer_id.0, pid);
    assert_eq!(
        dt.transaction_states[1].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    let dp = raw.call(
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name("bad"))
            .with_partition_indexes(vec![0])]),
    );
    let producers = &dp.topics[0].partitions[0].active_producers;
    assert_eq!(producers.len(), 1);
    assert_eq!(producers[0].producer_id.0, pid);
    assert_eq!(producers[0].producer_epoch, epoch2 as i32);
    assert_eq!(producers[0].current_txn_start_offset, -1);
}

#[test]
fn open_transaction_survives_a_crash_and_times_out() {
    // A transaction left open at a crash stays open (LSO held back) until it times out.
    let mut b = Broker::start_with(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "200",
    )]);
    let mut raw = RawConn::connect(b.port());
    raw.create_topic_ok("crash", 1);
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes("tx"))))
        .with_transaction_timeout_ms(3_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = raw.call(4, &req);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(add_partition(&mut raw, 3, "tx", pid, epoch, "crash"), 0);
    assert_eq!(
        txn_produce(&mut raw, "tx", "crash", txn_batch(pid, epoch, 0, &["a"])),
        0
    );
    drop(raw);
    b.kill9();
    b.start_again();
    let mut raw = RawConn::connect(b.port());
    assert_eq!(raw_list_offset_committed(&mut raw, "crash"), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while raw_list_offset_committed(&mut raw, "crash") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the open transaction was not aborted after its timeout"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prepared_commit_is_completed_after_a_crash() {
    use klamm_protocol::group_records::partition_for_group;
    use klamm_protocol::txn_records::{encode_key, TxnStatus, TxnValue};
    let mut b = Broker::start();
    let mut raw = RawConn::connect(b.port());
    raw.create_topic_ok("prep", 1);
    let (pid, epoch, code) = init(&mut raw, "tx");
    assert_eq!(code, 0);
    assert_eq!(add_partition(&mut raw, 3, "tx", pid, epoch, "prep"), 0);
    assert_eq!(
        txn_produce(
            &mut raw,
            "tx",
            "prep",
            txn_batch(pid, epoch, 0, &["a", "b"])
        ),
        0
    );
    assert_eq!(raw_list_offset_committed(&mut raw, "prep"), 0);
    drop(raw);
    b.kill9();
    // The state a crash between EndTxn's Prepare record and its markers leaves behind,
    // written as the coordinator would into the id's __transaction_state partition. No
    // client may produce to an internal topic, so it is appended to the log on disk while
    // the broker is down.
    let prepare = TxnValue {
        producer_id: pid,
        producer_epoch: epoch,
        timeout_ms: 60_000,
        status: TxnStatus::PrepareCommit,
        partitions: vec![("prep".to_string(), vec![0])],
        last_update_ms: common::now_ms(),
        start_ms: common::now_ms(),
    };
    let record = klamm_protocol::batch::encode_key_values(
        &[(encode_key("tx"), Some(prepare.encode()))],
        common::now_ms(),
    );
    let dir = b.data_dir().join(format!(
        "__transaction_state-{}",
        partition_for_group("tx", 50)
    ));
    let (mut log, _) = klamm_log::PartitionLog::open(&dir, klamm_log::LogConfig::default(), false)
        .expect("open the transaction log partition");
    let batches = klamm_protocol::batch::validate_produce(
        &record,
        klamm_protocol::batch::ProduceLimits {
            max_batch_bytes: 1 << 20,
            produce_version: 9,
        },
    )
    .expect("a valid batch");
    log.append(&record, &batches, common::now_ms(), 0, false)
        .expect("append the Prepare record");
    log.sync().expect("sync");
    drop(log);
    b.start_again();
    // Recovery writes the COMMIT marker: the data becomes stable.
    let mut raw = RawConn::connect(b.port());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while raw_list_offset_committed(&mut raw, "prep") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the prepared commit was not completed after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dt = raw.call(
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(str_bytes("tx"))]),
    );
    assert_eq!(
        dt.transaction_states[0].transaction_state.as_str(),
        "CompleteCommit"
    );
}
