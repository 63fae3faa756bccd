//! Durability across process death: every write acknowledged with acks=all survives SIGKILL,
//! exactly once, at the offset it was acknowledged at; a clean stop/restart keeps topics,
//! partition counts, configs, offsets and topic IDs.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::RawConn;
use common::{
    admin, admin_opts, assign, consume_n, create_topic, partition_count, watermarks, Broker, Rng,
};
use rdkafka::admin::ResourceSpecifier;
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// (topic name, topic id, partition count) for every non-internal topic, via raw Metadata v12.
fn topic_ids(b: &Broker) -> Vec<(String, String, usize)> {
    let mut c = RawConn::connect(b.port());
    let md = c.metadata(12, None, false);
    let mut v: Vec<(String, String, usize)> = md
        .topics
        .iter()
        // Internal topics (__consumer_offsets) appear once a consumer group is used.
        .filter(|t| {
            !t.is_internal
                && !t
                    .name
                    .as_ref()
                    .is_some_and(|n| n.as_str().starts_with("__"))
        })
        .map(|t| {
            (
                t.name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                t.topic_id.to_string(),
                t.partitions.len(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Reads every record of `topic` up to the high watermark: `(partition, offset) → payload`.
async fn read_all(b: &Broker, topic: &str, partitions: i32) -> BTreeMap<(i32, i64), Vec<u8>> {
    let mut total = 0usize;
    let mut his = Vec::new();
    for p in 0..partitions {
        let (lo, hi) = watermarks(b, topic, p);
        assert_eq!(lo, 0, "log start offset of partition {p}");
        his.push(hi);
        total += hi as usize;
    }
    let c = common::consumer(b, &[("fetch.wait.max.ms", "100")]);
    assign(
        &c,
        topic,
        &(0..partitions).collect::<Vec<_>>(),
        Offset::Beginning,
    );
    let msgs = consume_n(&c, total, Duration::from_secs(60)).await;
    let mut out = BTreeMap::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    for m in msgs {
        let e = next.entry(m.partition()).or_insert(0);
        assert_eq!(
            m.offset(),
            *e,
            "gap or reordering in partition {}",
            m.partition()
        );
        *e += 1;
        let prev = out.insert(
            (m.partition(), m.offset()),
            m.payload().unwrap_or_default().to_vec(),
        );
        assert!(
            prev.is_none(),
            "offset {} of partition {} delivered twice",
            m.offset(),
            m.partition()
        );
    }
    for p in 0..partitions {
        assert_eq!(
            next.get(&p).copied().unwrap_or(0),
            his[p as usize],
            "records read from partition {p}"
        );
    }
    out
}

struct Pending {
    payload: String,
    future: DeliveryFuture,
}

/// Sends paced records until `stop`; returns the delivery futures.
async fn send_until(
    p: FutureProducer,
    topic: String,
    partitions: i32,
    cycle: u32,
    stop: Arc<AtomicBool>,
) -> Vec<Pending> {
    let mut pending = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..50 {
            let payload = format!("cycle{cycle}-rec{i}");
            let rec = FutureRecord::<(), _>::to(&topic)
                .payload(&payload)
                .partition((i % partitions as u64) as i32);
            match p.send_result(rec) {
                Ok(future) => pending.push(Pending { payload, future }),
                Err((e, _)) => panic!("enqueue failed (local queue full?): {e}"),
            }
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_exactly_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (mut rng, seed) = Rng::from_env_or_time("acknowledged_writes_survive_sigkill_exactly_once");
        let mut b = Broker::start();
        let topic = "crash";
        let partitions = 3;
        create_topic(&b, topic, partitions, &[]).await;
        let ids = topic_ids(&b);

        // payload → (partition, offset) for every acknowledged record
        let mut acked: HashMap<String, (i32, i64)> = HashMap::new();
        let mut failed = 0usize;
        for cycle in 0..2u32 {
            let producer = common::producer(
                &b,
                &[
                    ("acks", "all"),
                    ("linger.ms", "2"),
                    ("retries", "0"), // a resend after the kill could duplicate an unacked record
                    ("message.timeout.ms", "4000"),
                    ("request.timeout.ms", "3000"),
                ],
            );
            let stop = Arc::new(AtomicBool::new(false));
            let sender = tokio::spawn(send_until(producer.clone(), topic.to_string(), partitions, cycle, stop.clone()));
            let kill_after = Duration::from_millis(700 + rng.below(900));
            tokio::time::sleep(kill_after).await;
            b.kill9();
            stop.store(true, Ordering::Relaxed);
            let pending = sender.await.expect("sender task");
            let sent = pending.len();
            let mut cycle_acked = 0;
            for Pending { payload, future } in pending {
                let r = tokio::time::timeout(Duration::from_secs(20), future)
                    .await
                    .expect("delivery report did not arrive within 20 s of the kill")
                    .expect("delivery future canceled");
                match r {
                    Ok(d) => {
                        cycle_acked += 1;
                        let prev = acked.insert(payload.clone(), (d.partition, d.offset));
                        assert!(prev.is_none(), "{payload} acknowledged twice");
                    }
                    Err(_) => failed += 1,
                }
            }
            drop(producer);
            b.start_again();
            eprintln!(
                "cycle {cycle} (seed {seed}): killed after {kill_after:?}; sent {sent}, acknowledged {cycle_acked}; restart ready after {:?}",
                b.last_ready_after
            );
            assert!(cycle_acked > 0, "cycle {cycle}: nothing was acknowledged before the kill");
        }
        eprintln!("total acknowledged {}, failed {failed}", acked.len());

        assert_eq!(topic_ids(&b), ids, "topics/ids/partition counts after SIGKILL + restart");
        let log = read_all(&b, topic, partitions).await;
        // Each payload at most once in the log.
        let mut where_: HashMap<&[u8], (i32, i64)> = HashMap::new();
        for (pos, payload) in &log {
            if let Some(first) = where_.insert(payload.as_slice(), *pos) {
                panic!(
                    "payload {:?} stored twice: at {first:?} and {pos:?}",
                    String::from_utf8_lossy(payload)
                );
            }
            assert!(payload.starts_with(b"cycle"), "foreign record {pos:?}: {payload:?}");
        }
        let mut lost = Vec::new();
        for (payload, pos) in &acked {
            match log.get(pos) {
                Some(v) if v == payload.as_bytes() => {}
                other => lost.push(format!(
                    "{payload} acked at {pos:?}, log has {:?}",
                    other.map(|v| String::from_utf8_lossy(v).into_owned())
                )),
            }
        }
        lost.sort();
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged records lost or moved (seed {seed}); first: {:#?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(10)]
        );

        // Offsets continue after the recovered end; nothing is reused.
        let his: Vec<i64> = (0..partitions).map(|p| watermarks(&b, topic, p).1).collect();
        let p = common::producer(&b, &[]);
        for part in 0..partitions {
            let d = p
                .send(FutureRecord::<(), _>::to(topic).payload("after").partition(part), Duration::from_secs(5))
                .await
                .unwrap_or_else(|(e, _)| panic!("produce after recovery: {e}"));
            assert_eq!(d.offset, his[part as usize], "first offset after recovery in partition {part}");
        }
    })
    .await
    .expect("test timed out");
}

async fn topic_retention(b: &Broker, topic: &str) -> Option<String> {
    let a = admin(b);
    let spec = ResourceSpecifier::Topic(topic);
    let res = tokio::time::timeout(
        common::CLIENT_TIMEOUT,
        a.describe_configs([&spec], &admin_opts()),
    )
    .await
    .expect("DescribeConfigs timed out")
    .expect("DescribeConfigs failed");
    let r = res[0].as_ref().expect("DescribeConfigs topic error");
    r.get("retention.ms").and_then(|e| e.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_keeps_topics_partitions_offsets_configs_and_ids() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut b = Broker::start();
        create_topic(&b, "keep-a", 1, &[("retention.ms", "12345")]).await;
        create_topic(&b, "keep-b", 4, &[]).await;
        let p = common::producer(&b, &[("linger.ms", "5")]);
        let mut futures = Vec::new();
        for part in 0..4 {
            for i in 0..50 {
                let v = format!("b-{part}-{i}");
                futures.push(
                    p.send_result(
                        FutureRecord::<(), _>::to("keep-b")
                            .payload(&v)
                            .partition(part),
                    )
                    .ok()
                    .unwrap(),
                );
            }
        }
        for i in 0..30 {
            let v = format!("a-{i}");
            futures.push(
                p.send_result(FutureRecord::<(), _>::to("keep-a").payload(&v).partition(0))
                    .ok()
                    .unwrap(),
            );
        }
        for f in futures {
            tokio::time::timeout(Duration::from_secs(20), f)
                .await
                .expect("delivery timed out")
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
        drop(p);

        let ids = topic_ids(&b);
        let before_a = read_all(&b, "keep-a", 1).await;
        let before_b = read_all(&b, "keep-b", 4).await;
        assert_eq!(
            (before_a.len(), before_b.len()),
            (30, 200),
            "records before restart"
        );

        for round in 0..2 {
            let took = b.stop();
            eprintln!("graceful stop {round} took {took:?}");
            b.start_again();
            eprintln!("restart {round} ready after {:?}", b.last_ready_after);
            assert_eq!(
                topic_ids(&b),
                ids,
                "round {round}: topics, ids and partition counts"
            );
            assert_eq!(
                partition_count(&b, "keep-b"),
                Some(4),
                "round {round}: keep-b partitions"
            );
            assert_eq!(
                read_all(&b, "keep-b", 4).await,
                before_b,
                "round {round}: keep-b content"
            );
            assert_eq!(
                topic_retention(&b, "keep-a").await.as_deref(),
                Some("12345"),
                "round {round}: keep-a retention.ms"
            );
        }
        let after_a = read_all(&b, "keep-a", 1).await;
        assert_eq!(after_a, before_a, "keep-a content after restarts");
        let p = common::producer(&b, &[]);
        let d = p
            .send(
                FutureRecord::<(), _>::to("keep-a")
                    .payload("next")
                    .partition(0),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce after restart: {e}"));
        assert_eq!(d.offset, 30, "offset after restart continues the log");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_busy_clients_exits_cleanly() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut b = Broker::start();
        create_topic(&b, "busy", 2, &[]).await;
        // A consumer parked in a long-poll and a producer streaming records.
        let c = common::consumer(&b, &[("fetch.wait.max.ms", "5000")]);
        assign(&c, "busy", &[0, 1], Offset::End);
        let p = common::producer(&b, &[("message.timeout.ms", "3000"), ("retries", "0")]);
        // One acknowledged record before the load starts, so the check below is never vacuous.
        let warm = p
            .send(
                FutureRecord::<(), _>::to("busy")
                    .payload("warm-up")
                    .partition(0),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("warm-up produce: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let sender = tokio::spawn(send_until(p.clone(), "busy".into(), 2, 0, stop.clone()));
        tokio::time::sleep(Duration::from_millis(800)).await;
        let t0 = Instant::now();
        let took = b.stop();
        eprintln!("SIGTERM under load: exited after {took:?}");
        stop.store(true, Ordering::Relaxed);
        let pending = sender.await.unwrap();
        let mut acked: Vec<(i32, i64, String)> =
            vec![(warm.partition, warm.offset, "warm-up".into())];
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for Pending { payload, future } in pending {
            match tokio::time::timeout(Duration::from_secs(10), future)
                .await
                .expect("delivery report")
            {
                Ok(Ok(d)) => acked.push((d.partition, d.offset, payload)),
                Ok(Err((e, _))) => *errors.entry(e.to_string()).or_default() += 1,
                Err(_) => *errors.entry("canceled".into()).or_default() += 1,
            }
        }
        eprintln!("delivery failures around the SIGTERM: {errors:?}");
        drop(p);
        drop(c);
        assert!(t0.elapsed() < Duration::from_secs(30));
        // Everything acknowledged before/while shutting down is there after the restart.
        b.start_again();
        let log = read_all(&b, "busy", 2).await;
        for (part, off, payload) in &acked {
            assert_eq!(
                log.get(&(*part, *off)).map(|v| v.as_slice()),
                Some(payload.as_bytes()),
                "acked record at ({part}, {off}) after graceful stop"
            );
        }
        eprintln!(
            "{} records acknowledged around the SIGTERM, all present",
            acked.len()
        );
    })
    .await
    .expect("test timed out");
}
