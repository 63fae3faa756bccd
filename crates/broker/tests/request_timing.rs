//! In-process: `klamm_request_duration_seconds` and `request.slow.log.ms` time the whole
//! request, including the handler's synchronous part. A Produce whose append waits for
//! the partition lock must show that wait in the histogram (the timer used to start after
//! the handler returned, so an append measured about nothing).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use klamm_broker::broker::Broker;
use klamm_broker::handlers::{self, ConnectionInfo, Outcome};
use klamm_config::{Config, LoadOptions};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const PRODUCE_VERSION: i16 = 9;

fn produce_frame(topic: &str) -> Bytes {
    let records = klamm_protocol::batch::encode_key_values(
        &[(Bytes::from_static(b"k"), Some(Bytes::from_static(b"v")))],
        1_000,
    );
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let header = RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("timing-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ProduceRequest::header_version(PRODUCE_VERSION))
        .unwrap();
    request.encode(&mut buf, PRODUCE_VERSION).unwrap();
    buf.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_append_shows_in_the_request_histogram_and_the_slow_log() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = Config::load(&LoadOptions {
        flags: vec![
            ("log.dirs".into(), dir.path().display().to_string()),
            ("request.slow.log.ms".into(), "100".into()),
        ],
        ..LoadOptions::default()
    })
    .unwrap();
    let (broker, _flush_queue) = Broker::open(config).unwrap();
    let topic = broker.create_topic("timed", 1, 1, &[]).unwrap();
    let partition = topic.partition(0).unwrap().clone();

    // Another thread holds the partition lock for 300 ms once the test says so.
    let hold = Duration::from_millis(300);
    let (locked_tx, locked_rx) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _log = partition.log();
        locked_tx.send(()).unwrap();
        std::thread::sleep(hold);
    });
    locked_rx.recv().unwrap();

    let info = ConnectionInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        listener: "PLAINTEXT".into(),
    };
    let b: Arc<Broker> = broker.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let pending = block_on(handlers::dispatch(&b, produce_frame("timed"), &info))
            .unwrap_or_else(|_| panic!("dispatch refused the produce"));
        block_on(pending)
    })
    .await
    .unwrap();
    holder.join().unwrap();
    assert!(matches!(outcome, Outcome::Respond(_)));

    let m = klamm_broker::metrics::metrics();
    let histogram = m.request_duration.with_label_values(&["Produce"]);
    assert_eq!(histogram.get_sample_count(), 1);
    let seconds = histogram.get_sample_sum();
    assert!(
        seconds >= hold.as_secs_f64() * 0.9,
        "the produce waited {hold:?} for the lock; the histogram saw {seconds} s"
    );
    assert_eq!(m.slow_requests.with_label_values(&["Produce"]).get(), 1);
}

/// Drives a future to completion on this (blocking) thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}
