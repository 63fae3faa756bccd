//! The throughput cost of idempotence and of transactions relative to plain `acks=all`,
//! measured in one run against one broker (librdkafka through the `rdkafka` crate):
//!
//! ```sh
//! cargo test --release -p klamm --test txn_throughput -- --ignored --nocapture
//! ```
//!
//! Records of 100 bytes go to a one-partition topic per mode: plain (`acks=all`, no
//! idempotence) and idempotent (`enable.idempotence=true`), `TXN_BENCH_RECORDS` each
//! (default 2,000,000); transactional, `TXN_BENCH_TXNS` (default 1000) transactions of 100
//! records, each committed before the next begins (a consume-transform-produce loop's shape).

mod common;

use std::time::{Duration, Instant};

use common::{create_topic, Broker, CLIENT_TIMEOUT};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const RECORD_BYTES: usize = 100;
const TXN_RECORDS: usize = 100;

fn producer(b: &Broker, extra: &[(&str, &str)]) -> BaseProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

fn produce(p: &BaseProducer, topic: &str, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .partition(0)
        .payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                // Queue full: let deliveries drain.
                p.poll(Duration::from_millis(1));
                record = r;
            }
        }
    }
}

fn run_plain(b: &Broker, topic: &str, n: usize, extra: &[(&str, &str)]) -> Duration {
    let p = producer(b, extra);
    let payload = vec![b'x'; RECORD_BYTES];
    // Warm-up: connections, metadata and (idempotent) the producer id are not measured.
    produce(&p, topic, &payload);
    drain(&p);
    let started = Instant::now();
    for _ in 0..n {
        produce(&p, topic, &payload);
        p.poll(Duration::ZERO);
    }
    drain(&p);
    started.elapsed()
}

fn run_transactional(b: &Broker, topic: &str, n: usize) -> Duration {
    let p = producer(b, &[("transactional.id", "bench-tx")]);
    p.init_transactions(CLIENT_TIMEOUT).expect("init");
    let payload = vec![b'x'; RECORD_BYTES];
    let started = Instant::now();
    for _ in 0..n.div_ceil(TXN_RECORDS) {
        p.begin_transaction().expect("begin");
        for _ in 0..TXN_RECORDS {
            produce(&p, topic, &payload);
        }
        drain(&p);
        p.commit_transaction(Duration::from_secs(60))
            .expect("commit");
    }
    started.elapsed()
}

/// Serves delivery reports until none are outstanding. (The crate's `flush`, and
/// librdkafka's inside `commit_transaction`, wait in 100 ms steps under the crate's event
/// API: that would measure the client, not the broker.)
fn drain(p: &BaseProducer) {
    while p.in_flight_count() > 0 {
        p.poll(Duration::from_micros(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn idempotence_and_transaction_cost() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("TXN_BENCH_RECORDS", 2_000_000);
    let txn_n = env("TXN_BENCH_TXNS", 1000) * TXN_RECORDS;
    let b = Broker::start();
    for t in ["plain", "idem", "txn"] {
        create_topic(&b, t, 1, &[]).await;
    }
    let plain = run_plain(&b, "plain", n, &[("enable.idempotence", "false")]);
    let idem = run_plain(&b, "idem", n, &[("enable.idempotence", "true")]);
    let txn = run_transactional(&b, "txn", txn_n);
    let plain_rate = n as f64 / plain.as_secs_f64();
    println!("{RECORD_BYTES}-byte records, one partition, log.flush.policy=always");
    for (name, records, d) in [
        ("plain acks=all", n, plain),
        ("idempotent", n, idem),
        ("transactional (100/txn)", txn_n, txn),
    ] {
        let rate = records as f64 / d.as_secs_f64();
        println!(
            "{name:>24}: {records:>8} records in {:>6.2} s = {rate:>9.0} records/s, {:>5.1}% of plain",
            d.as_secs_f64(),
            100.0 * rate / plain_rate
        );
    }
}
