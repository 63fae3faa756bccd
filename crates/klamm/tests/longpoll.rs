//! Fetch long-polling: a waiting fetch returns as soon as data arrives, honours `max_wait_ms`
//! when none does, and `min_bytes = 0` returns at once.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{batch, decode_records, fetch_request, RawConn, Rec};
use common::{assign, consume_n, create_topic, Broker};
use kafka_protocol::messages::{ApiKey, FetchRequest};
use kafka_protocol::records::Compression;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset};

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_consumer_long_poll_wakes_on_new_data() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let b = Broker::start();
        let topic = "longpoll";
        create_topic(&b, topic, 1, &[]).await;
        let consumer = common::consumer(
            &b,
            &[("fetch.wait.max.ms", "5000"), ("fetch.min.bytes", "1")],
        );
        assign(&consumer, topic, &[0], Offset::Beginning);
        let producer = common::producer(&b, &[("linger.ms", "0")]);

        // Warm-up: connections, metadata and the first fetch position.
        producer
            .send(FutureRecord::<(), _>::to(topic).payload("warm-up").partition(0), Duration::from_secs(5))
            .await
            .expect("warm-up produce");
        let m = consume_n(&consumer, 1, Duration::from_secs(15)).await;
        assert_eq!(m[0].payload(), Some(&b"warm-up"[..]));

        let mut latencies = Vec::new();
        for round in 1..=3 {
            // Let the consumer's next Fetch park on the empty log end.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let payload = format!("round-{round}");
            let t0 = Instant::now();
            let d = producer
                .send(FutureRecord::<(), _>::to(topic).payload(&payload).partition(0), Duration::from_secs(5))
                .await
                .unwrap_or_else(|(e, _)| panic!("produce round {round}: {e}"));
            let acked = t0.elapsed();
            let m = consume_n(&consumer, 1, Duration::from_secs(10)).await;
            let seen = t0.elapsed();
            assert_eq!(m[0].payload(), Some(payload.as_bytes()), "round {round} payload");
            assert_eq!(m[0].offset(), d.offset, "round {round} offset");
            eprintln!("long-poll round {round}: produce acked after {acked:?}, consumed after {seen:?} (fetch.wait.max.ms=5000)");
            latencies.push(seen);
        }
        let worst = *latencies.iter().max().unwrap();
        assert!(
            worst < Duration::from_millis(1000),
            "end-to-end latency with a parked 5 s long-poll: {latencies:?}; expected < 1000 ms \
             (the waiting Fetch must wake on new data, not on its timeout)"
        );
    })
    .await
    .expect("test timed out");
}

#[test]
fn fetch_honours_max_wait_on_empty_partition() {
    let b = Broker::start();
    let mut c = RawConn::connect(b.port());
    c.create_topic_ok("empty", 1);
    let t0 = Instant::now();
    let data = c.fetch("empty", 0, 0, 1500, 1);
    let took = t0.elapsed();
    eprintln!("Fetch max_wait_ms=1500 min_bytes=1 on an empty partition returned after {took:?}");
    assert_eq!(data.error_code, 0, "Fetch error");
    assert!(
        decode_records(data.records).is_empty(),
        "records from an empty partition"
    );
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_millis(3000),
        "Fetch with max_wait_ms=1500 returned after {took:?}, expected ≈1.5 s"
    );

    let t0 = Instant::now();
    let data = c.fetch("empty", 0, 0, 5000, 0);
    let took = t0.elapsed();
    eprintln!("Fetch max_wait_ms=5000 min_bytes=0 returned after {took:?}");
    assert_eq!(data.error_code, 0, "Fetch error");
    assert!(
        took < Duration::from_millis(500),
        "Fetch with min_bytes=0 must answer at once, took {took:?}"
    );
}

#[test]
fn raw_fetch_wakes_when_data_arrives() {
    let b = Broker::start();
    let mut waiter = RawConn::connect(b.port());
    waiter.create_topic_ok("wake", 1);
    let fetch_v = waiter.pick_version(ApiKey::Fetch, 12);
    let mut producer = RawConn::connect(b.port());
    let produce_v = producer.pick_version(ApiKey::Produce, 9);

    let t0 = Instant::now();
    let corr = waiter.send(fetch_v, &fetch_request("wake", 0, 0, 5000, 1));
    std::thread::sleep(Duration::from_millis(500));
    let records: Bytes = batch(
        &[Rec {
            key: None,
            value: Some(b"wake up"),
            timestamp: common::now_ms(),
        }],
        Compression::None,
    );
    let p = producer.produce(produce_v, "wake", 0, records, -1);
    assert_eq!(p.error_code, 0, "produce error");
    let acked = t0.elapsed();
    let resp = waiter.recv::<FetchRequest>(fetch_v, corr);
    let answered = t0.elapsed();
    eprintln!(
        "raw Fetch (max_wait 5000 ms) parked 500 ms; produce acked at {acked:?}; fetch answered at {answered:?} ({:?} after the ack)",
        answered.saturating_sub(acked)
    );
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0, "Fetch error");
    let recs = decode_records(part.records.clone());
    assert_eq!(recs.len(), 1, "the waiting Fetch returns the new record");
    assert_eq!(recs[0].value.as_deref(), Some(&b"wake up"[..]));
    assert!(
        answered < Duration::from_millis(1500),
        "waiting Fetch answered {answered:?} after it was sent (record produced at 500 ms, max_wait 5000 ms)"
    );
}
