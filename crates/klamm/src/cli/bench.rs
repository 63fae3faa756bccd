//! `klamm bench produce|consume|e2e`: the project's load generator (in the spirit of
//! kafka-producer-perf-test), speaking the Kafka protocol through `klamm-client`.
//!
//! Producers pipeline up to `--in-flight` Produce requests per connection (responses come
//! back in order on a Kafka connection); each acknowledged batch records its request latency
//! once per record in a histogram. Consumers fetch and count whole batches without decoding
//! records, except in `e2e`, where each value starts with the time it was produced.

use super::topic::parse_acks;
use super::{parse_duration, print_json, Ctx};
use anyhow::{bail, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest};
use klamm_client::records::{encode_batch, parse_compression, ProducerRecord};
use klamm_client::{produce_request, topic_name, Client, Connection, FetchOptions, Target};
use klamm_protocol::batch;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest latency the histograms track (values above are clamped).
const LATENCY_MAX_US: u64 = 600_000_000;
/// Bytes at the start of an e2e value: microseconds since the run's start.
const E2E_STAMP_BYTES: usize = 8;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce records as fast as allowed; report throughput and acknowledgement latency.
    Produce(ProduceBench),
    /// Consume a topic from the start; report throughput (record batch bytes) and fetch
    /// latency.
    Consume(ConsumeBench),
    /// Produce and consume at once; report produce-to-consume latency.
    E2e(ProduceBench),
}

#[derive(Args, Debug, Clone)]
pub struct ProduceBench {
    /// Topic to load (created when missing).
    topic: String,
    /// Value bytes per record.
    #[arg(short = 's', long, default_value_t = 100)]
    record_size: usize,
    /// Records to produce in total [default: 1000000 unless --duration is given].
    #[arg(short = 'n', long)]
    records: Option<u64>,
    /// Run for this long instead of a record count (e.g. 30s).
    #[arg(short = 'd', long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Records per second over all producers; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// all (-1), 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4, zstd.
    #[arg(short = 'z', long, default_value = "none")]
    compression: String,
    /// Partitions for the topic when the bench creates it [default: broker's num.partitions].
    #[arg(short = 'p', long)]
    partitions: Option<i32>,
    /// Concurrent producers, each with its own connections.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Concurrent consumers (e2e only).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Records per batch (one Produce request carries one batch).
    #[arg(long, default_value_t = 200)]
    batch_records: usize,
    /// Unacknowledged requests per connection.
    #[arg(long, default_value_t = 5)]
    in_flight: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeBench {
    /// Topic to read.
    topic: String,
    /// Stop after this many records [default: everything up to the end offsets at start].
    #[arg(short = 'n', long)]
    records: Option<u64>,
    /// Stop after this long.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Concurrent consumers; partitions are dealt out among them.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Largest fetch response.
    #[arg(long, default_value_t = 50 << 20)]
    fetch_max_bytes: i32,
}

/// Counters shared by the workers and the progress bar.
#[derive(Default)]
struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    consumed: AtomicU64,
    stop: AtomicBool,
}

/// What a run measured.
struct Summary {
    kind: &'static str,
    records: u64,
    bytes: u64,
    errors: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
    /// e2e: produce acknowledgement latency, reported next to the end-to-end one.
    ack_latency_us: Option<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

pub async fn run(ctx: Ctx, cmd: BenchCommand) -> Result<bool> {
    ctx.check_plain_format()?;
    let summary = match cmd {
        BenchCommand::Produce(args) => produce_bench(&ctx, args, false).await?,
        BenchCommand::E2e(args) => produce_bench(&ctx, args, true).await?,
        BenchCommand::Consume(args) => consume_bench(&ctx, args).await?,
    };
    print_summary(&ctx, &summary);
    Ok(summary.errors == 0)
}

async fn ensure_topic(
    ctx: &Ctx,
    client: &mut Client,
    topic: &str,
    partitions: Option<i32>,
) -> Result<Vec<i32>> {
    match client.partitions(topic).await {
        Ok(parts) => {
            if partitions.is_some_and(|p| p as usize != parts.len()) {
                ctx.hint(&format!(
                    "{topic} exists with {} partitions; --partitions ignored",
                    parts.len()
                ));
            }
            Ok(parts)
        }
        Err(klamm_client::ClientError::Kafka { code: 3, .. }) => {
            let response = client
                .call(Target::Any, |_| {
                    CreateTopicsRequest::default()
                        .with_topics(vec![CreatableTopic::default()
                            .with_name(topic_name(topic))
                            .with_num_partitions(partitions.unwrap_or(-1))
                            .with_replication_factor(-1)])
                        .with_timeout_ms(10_000)
                })
                .await?;
            if let Some(t) = response
                .topics
                .first()
                .filter(|t| t.error_code != 0 && t.error_code != 36)
            {
                bail!(
                    "creating {topic}: {}",
                    klamm_protocol::errors::error_name(t.error_code)
                );
            }
            ctx.hint(&format!("created topic {topic}"));
            Ok(client.partitions(topic).await?)
        }
        Err(e) => Err(e.into()),
    }
}

fn progress_bar(
    ctx: &Ctx,
    total: Option<u64>,
    duration: Option<Duration>,
) -> Option<indicatif::ProgressBar> {
    if ctx.args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match (total, duration) {
        (_, Some(d)) => indicatif::ProgressBar::new(d.as_secs().max(1)),
        (Some(n), None) => indicatif::ProgressBar::new(n),
        (None, None) => indicatif::ProgressBar::new_spinner(),
    };
    let template = if duration.is_some() {
        "{elapsed_precise} [{bar:40}] {pos}/{len}s {msg}"
    } else {
        "{elapsed_precise} [{bar:40}] {pos}/{len} records {msg}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// Updates the bar from the counters until `stop` is set.
fn spawn_ticker(
    bar: Option<indicatif::ProgressBar>,
    progress: Arc<Progress>,
    by_time: bool,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(bar) = bar else { return };
        let mut last = (Instant::now(), 0u64);
        while !progress.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let n = progress
                .records
                .load(Ordering::Relaxed)
                .max(progress.consumed.load(Ordering::Relaxed));
            let rate = (n - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-6);
            last = (Instant::now(), n);
            bar.set_position(if by_time {
                start.elapsed().as_secs()
            } else {
                n
            });
            bar.set_message(format!("{n} records, {rate:.0} records/s"));
        }
        bar.finish_and_clear();
    })
}

/// Random uppercase letters (like kafka-producer-perf-test), so codecs see realistic data.
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

struct ProducerPlan {
    topic: String,
    partitions: Vec<i32>,
    records: Option<u64>,
    deadline: Option<Instant>,
    rate_per_producer: f64,
    batch: Option<Bytes>,
    args: ProduceBench,
    acks: i16,
    start: Instant,
}

async fn produce_bench(ctx: &Ctx, args: ProduceBench, e2e: bool) -> Result<Summary> {
    if args.producers == 0 || args.batch_records == 0 || args.in_flight == 0 {
        bail!("--producers, --batch-records and --in-flight must be at least 1");
    }
    let acks = parse_acks(&args.acks)?;
    if e2e && acks == 0 {
        bail!("bench e2e needs acknowledgements: use --acks 1 or all");
    }
    let compression = parse_compression(&args.compression)?;
    let mut client = ctx.client().await?;
    let partitions = ensure_topic(ctx, &mut client, &args.topic, args.partitions).await?;
    let records_total = match (args.records, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(1_000_000),
    };
    let start_offsets = if e2e {
        let parts: Vec<(String, i32)> = partitions
            .iter()
            .map(|p| (args.topic.clone(), *p))
            .collect();
        let marks = client.watermarks(&parts).await?;
        Some(
            parts
                .iter()
                .map(|tp| {
                    (
                        tp.clone(),
                        marks.get(tp).and_then(|m| m.ok()).map_or(0, |m| m.1),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        )
    } else {
        None
    };
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let ticker = spawn_ticker(
        progress_bar(ctx, records_total, args.duration),
        progress.clone(),
        args.duration.is_some(),
        start,
    );
    // Non-e2e producers send the same pre-encoded batch over and over.
    let batch = if e2e {
        None
    } else {
        let value = Bytes::from(payload(args.record_size, 0x9e37_79b9));
        let records: Vec<ProducerRecord> = (0..args.batch_records)
            .map(|_| ProducerRecord {
                value: Some(value.clone()),
                timestamp_ms: now_ms(),
                ..Default::default()
            })
            .collect();
        Some(encode_batch(&records, compression)?)
    };
    let e2e_latency = Arc::new(Mutex::new(histogram()));
    let mut consumers = Vec::new();
    if let Some(offsets) = start_offsets {
        let n = args.consumers.max(1);
        for i in 0..n {
            let mine = deal(&offsets, i, n);
            if mine.is_empty() {
                continue;
            }
            let (ctx, progress, latency) = (ctx.clone(), progress.clone(), e2e_latency.clone());
            consumers.push(tokio::spawn(async move {
                e2e_consumer(ctx, mine, progress, latency, start).await
            }));
        }
    }
    let mut producers = Vec::new();
    for i in 0..args.producers {
        let share = records_total
            .map(|n| n / args.producers as u64 + u64::from((i as u64) < n % args.producers as u64));
        let plan = ProducerPlan {
            topic: args.topic.clone(),
            partitions: partitions
                .iter()
                .copied()
                .filter(|p| {
                    partitions.len() < args.producers || (*p as usize) % args.producers == i
                })
                .collect(),
            records: share,
            deadline,
            rate_per_producer: args.rate as f64 / args.producers as f64,
            batch: batch.clone(),
            args: args.clone(),
            acks,
            start,
        };
        let (ctx, progress) = (ctx.clone(), progress.clone());
        producers.push(tokio::spawn(async move {
            producer(ctx, plan, compression, progress).await
        }));
    }
    let mut ack_latency = histogram();
    let mut first_error = None;
    for p in producers {
        match p.await? {
            Ok(h) => ack_latency.add(&h).expect("same bounds"),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let produced_elapsed = start.elapsed();
    let produced = progress.records.load(Ordering::Relaxed);
    if !consumers.is_empty() {
        // Wait for the consumers to see every acknowledged record (bounded by --timeout).
        let wait_until = Instant::now() + ctx.args.timeout;
        while progress.consumed.load(Ordering::Relaxed) < produced && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    progress.stop.store(true, Ordering::Relaxed);
    for c in consumers {
        if let Err(e) = c.await? {
            first_error.get_or_insert(e);
        }
    }
    let _ = ticker.await;
    if let Some(e) = first_error {
        return Err(e);
    }
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let mut errors = progress.errors.load(Ordering::Relaxed);
    if e2e {
        let consumed = progress.consumed.load(Ordering::Relaxed);
        if consumed < produced {
            eprintln!(
                "e2e: {} of {produced} acknowledged records were not consumed within --timeout",
                produced - consumed
            );
            errors += produced - consumed;
        }
        let latency = e2e_latency.lock().expect("e2e latency lock").clone();
        return Ok(Summary {
            kind: "e2e",
            records: produced,
            bytes,
            errors,
            elapsed: start.elapsed(),
            latency_us: latency,
            ack_latency_us: Some(ack_latency),
        });
    }
    Ok(Summary {
        kind: "produce",
        records: produced,
        bytes,
        errors,
        elapsed: produced_elapsed,
        latency_us: ack_latency,
        ack_latency_us: None,
    })
}

/// Worker `i` of `n` takes every n-th partition.
fn deal<V: Copy>(
    all: &BTreeMap<(String, i32), V>,
    i: usize,
    n: usize,
) -> BTreeMap<(String, i32), V> {
    let mut mine = BTreeMap::new();
    for (j, (tp, v)) in all.iter().enumerate() {
        if j % n == i {
            mine.insert(tp.clone(), *v);
        }
    }
    mine
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One request awaiting its response.
struct InFlight {
    correlation_id: i32,
    version: i16,
    sent: Instant,
    records: u64,
    bytes: u64,
}

/// One producer: its own connections (one per leader), pipelined requests, paced to its
/// share of `--rate`. Returns its acknowledgement-latency histogram.
async fn producer(
    ctx: Ctx,
    plan: ProducerPlan,
    compression: kafka_protocol::records::Compression,
    progress: Arc<Progress>,
) -> Result<Histogram<u64>> {
    let mut client = ctx.client().await?;
    let mut conns: BTreeMap<i32, (Connection, VecDeque<InFlight>)> = BTreeMap::new();
    let mut leaders = Vec::new();
    for p in &plan.partitions {
        let leader = client.leader(&plan.topic, *p).await?;
        if let std::collections::btree_map::Entry::Vacant(slot) = conns.entry(leader) {
            slot.insert((client.open_connection(leader).await?, VecDeque::new()));
        }
        leaders.push(leader);
    }
    let mut latency = histogram();
    let mut sent = 0u64;
    let mut next = 0usize;
    let value = payload(plan.args.record_size.max(E2E_STAMP_BYTES), 0x2545_f491);
    loop {
        let remaining = plan.records.map_or(u64::MAX, |n| n - sent);
        if remaining == 0 || plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let count = (plan.args.batch_records as u64).min(remaining);
        if plan.rate_per_producer > 0.0 {
            // Read the acknowledgements first, as they arrive: an unread response would
            // count the pause as latency.
            for (conn, queue) in conns.values_mut() {
                while let Some(done) = queue.pop_front() {
                    complete(conn, done, &mut latency, &progress).await?;
                }
            }
            let due = plan.start + Duration::from_secs_f64(sent as f64 / plan.rate_per_producer);
            tokio::time::sleep_until(due.into()).await;
        }
        let records = match &plan.batch {
            Some(b) if count == plan.args.batch_records as u64 => b.clone(),
            _ => e2e_batch(
                &value,
                plan.args.record_size,
                count,
                plan.start,
                compression,
            )?,
        };
        let bytes = count * plan.args.record_size as u64;
        let partition = plan.partitions[next % plan.partitions.len()];
        let leader = leaders[next % leaders.len()];
        next += 1;
        let (conn, queue) = conns.get_mut(&leader).expect("connection per leader");
        if queue.len() >= plan.args.in_flight {
            let done = queue.pop_front().expect("non-empty queue");
            complete(conn, done, &mut latency, &progress).await?;
        }
        let request = produce_request(&plan.topic, partition, records, plan.acks, ctx.args.timeout);
        let version = conn.pick_version::<ProduceRequest>(3, 9)?;
        let correlation_id = conn.send(version, &request).await?;
        sent += count;
        if plan.acks == 0 {
            progress.records.fetch_add(count, Ordering::Relaxed);
            progress.bytes.fetch_add(bytes, Ordering::Relaxed);
        } else {
            queue.push_back(InFlight {
                correlation_id,
                version,
                sent: Instant::now(),
                records: count,
                bytes,
            });
        }
    }
    for (conn, queue) in conns.values_mut() {
        while let Some(done) = queue.pop_front() {
            complete(conn, done, &mut latency, &progress).await?;
        }
    }
    Ok(latency)
}

fn e2e_batch(
    value: &[u8],
    record_size: usize,
    count: u64,
    start: Instant,
    compression: kafka_protocol::records::Compression,
) -> Result<Bytes> {
    let mut stamped = value[..record_size.max(E2E_STAMP_BYTES)].to_vec();
    stamped[..E2E_STAMP_BYTES].copy_from_slice(&(start.elapsed().as_micros() as u64).to_be_bytes());
    let stamped = Bytes::from(stamped);
    let records: Vec<ProducerRecord> = (0..count)
        .map(|_| ProducerRecord {
            value: Some(stamped.clone()),
            timestamp_ms: now_ms(),
            ..Default::default()
        })
        .collect();
    Ok(encode_batch(&records, compression)?)
}

async fn complete(
    conn: &mut Connection,
    done: InFlight,
    latency: &mut Histogram<u64>,
    progress: &Progress,
) -> Result<()> {
    let response = conn
        .recv::<ProduceRequest>(done.version, done.correlation_id)
        .await?;
    let code = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .map(|p| p.error_code)
        .find(|c| *c != 0)
        .unwrap_or(0);
    if code != 0 {
        if progress.errors.fetch_add(done.records, Ordering::Relaxed) == 0 {
            eprintln!(
                "produce error: {}",
                klamm_protocol::errors::error_name(code)
            );
        }
        return Ok(());
    }
    let micros = (done.sent.elapsed().as_micros() as u64).clamp(1, LATENCY_MAX_US);
    latency
        .record_n(micros, done.records)
        .expect("clamped into bounds");
    progress.records.fetch_add(done.records, Ordering::Relaxed);
    progress.bytes.fetch_add(done.bytes, Ordering::Relaxed);
    Ok(())
}

/// Consumes from `positions` until stopped, recording each record's produce-to-consume time.
async fn e2e_consumer(
    ctx: Ctx,
    mut positions: BTreeMap<(String, i32), i64>,
    progress: Arc<Progress>,
    latency: Arc<Mutex<Histogram<u64>>>,
    start: Instant,
) -> Result<()> {
    let mut client = ctx.client().await?;
    let options = FetchOptions {
        max_wait_ms: 100,
        ..FetchOptions::default()
    };
    let mut local = histogram();
    while !progress.stop.load(Ordering::Relaxed) {
        for (topic, pd) in client.fetch(&positions, options).await? {
            let tp = (topic, pd.partition_index);
            let from = positions[&tp];
            let fetched = klamm_client::records::decode_fetched(
                tp.1,
                pd.records.as_deref().unwrap_or_default(),
                from,
                None,
            )?;
            let now_us = start.elapsed().as_micros() as u64;
            for r in &fetched.records {
                if let Some(v) = r.value.as_deref().filter(|v| v.len() >= E2E_STAMP_BYTES) {
                    let sent_us =
                        u64::from_be_bytes(v[..E2E_STAMP_BYTES].try_into().expect("8 bytes"));
                    local
                        .record(now_us.saturating_sub(sent_us).clamp(1, LATENCY_MAX_US))
                        .expect("clamped");
                }
            }
            progress
                .consumed
                .fetch_add(fetched.records.len() as u64, Ordering::Relaxed);
            if let Some(next) = fetched.next_offset {
                positions.insert(tp, next.max(from));
            }
        }
    }
    latency
        .lock()
        .expect("e2e latency lock")
        .add(&local)
        .expect("same bounds");
    Ok(())
}

async fn consume_bench(ctx: &Ctx, args: ConsumeBench) -> Result<Summary> {
    let mut client = ctx.client().await?;
    let partitions = client.partitions(&args.topic).await?;
    let parts: Vec<(String, i32)> = partitions
        .iter()
        .map(|p| (args.topic.clone(), *p))
        .collect();
    let marks = client.watermarks(&parts).await?;
    let mut ranges = BTreeMap::new();
    for tp in &parts {
        match marks.get(tp) {
            Some(Ok((s, e))) => {
                ranges.insert(tp.clone(), (*s, *e));
            }
            Some(Err(code)) => bail!(
                "{}-{}: {}",
                tp.0,
                tp.1,
                klamm_protocol::errors::error_name(*code)
            ),
            None => bail!("{}-{}: no offsets", tp.0, tp.1),
        }
    }
    let available: u64 = ranges.values().map(|(s, e)| (e - s) as u64).sum();
    let target = args.records.unwrap_or(available);
    if target == 0 && args.duration.is_none() {
        bail!(
            "{} is empty: produce first (e.g. klamm bench produce {})",
            args.topic,
            args.topic
        );
    }
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let ticker = spawn_ticker(
        progress_bar(ctx, Some(target), args.duration),
        progress.clone(),
        args.duration.is_some(),
        start,
    );
    let n = args.consumers.max(1);
    let mut workers = Vec::new();
    for i in 0..n {
        let mine = deal(&ranges, i, n);
        if mine.is_empty() {
            continue;
        }
        let (ctx, progress) = (ctx.clone(), progress.clone());
        let options = FetchOptions {
            max_bytes: args.fetch_max_bytes,
            partition_max_bytes: args.fetch_max_bytes,
            max_wait_ms: 100,
            ..FetchOptions::default()
        };
        let unbounded = args.records.is_some() || args.duration.is_some();
        workers.push(tokio::spawn(async move {
            bench_consumer(ctx, mine, options, progress, target, deadline, unbounded).await
        }));
    }
    let mut latency = histogram();
    let mut first_error = None;
    for w in workers {
        match w.await? {
            Ok(h) => latency.add(&h).expect("same bounds"),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    progress.stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Summary {
        kind: "consume",
        records: progress.consumed.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        errors: progress.errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latency_us: latency,
        ack_latency_us: None,
    })
}

/// Fetches its partitions from start to end (or until the shared target or deadline),
/// counting whole batches without decoding them. Returns its fetch-latency histogram.
async fn bench_consumer(
    ctx: Ctx,
    ranges: BTreeMap<(String, i32), (i64, i64)>,
    options: FetchOptions,
    progress: Arc<Progress>,
    target: u64,
    deadline: Option<Instant>,
    unbounded: bool,
) -> Result<Histogram<u64>> {
    let mut client = ctx.client().await?;
    let mut positions: BTreeMap<(String, i32), i64> =
        ranges.iter().map(|(k, (s, _))| (k.clone(), *s)).collect();
    let mut latency = histogram();
    loop {
        if !unbounded {
            positions.retain(|tp, pos| *pos < ranges[tp].1);
        }
        if positions.is_empty()
            || progress.consumed.load(Ordering::Relaxed) >= target
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let sent = Instant::now();
        let data = client.fetch(&positions, options).await?;
        latency
            .record((sent.elapsed().as_micros() as u64).clamp(1, LATENCY_MAX_US))
            .expect("clamped");
        for (topic, pd) in data {
            let tp = (topic, pd.partition_index);
            if pd.error_code != 0 {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "{}-{}: {}",
                    tp.0,
                    tp.1,
                    klamm_protocol::errors::error_name(pd.error_code)
                );
                positions.remove(&tp);
                continue;
            }
            let from = positions[&tp];
            let records = pd.records.as_deref().unwrap_or_default();
            let (mut count, mut bytes, mut next) = (0u64, 0u64, from);
            for (_, h) in batch::headers(records) {
                next = h.last_offset() + 1;
                if h.is_control() || h.last_offset() < from {
                    continue;
                }
                count += (h.last_offset() + 1 - h.base_offset.max(from)) as u64;
                bytes += h.total_bytes() as u64;
            }
            positions.insert(tp, next.max(from));
            progress.consumed.fetch_add(count, Ordering::Relaxed);
            progress.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    Ok(latency)
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| us as f64 / 1000.0;
    json!({"p50": ms(h.value_at_quantile(0.50)), "p95": ms(h.value_at_quantile(0.95)),
           "p99": ms(h.value_at_quantile(0.99)), "p99_9": ms(h.value_at_quantile(0.999)),
           "max": ms(h.max()), "mean": h.mean() / 1000.0, "samples": h.len()})
}

fn print_summary(ctx: &Ctx, s: &Summary) {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let records_per_s = s.records as f64 / secs;
    let mb_per_s = s.bytes as f64 / secs / 1e6;
    let latency_name = match s.kind {
        "produce" => "ack_latency_ms",
        "consume" => "fetch_latency_ms",
        _ => "e2e_latency_ms",
    };
    if ctx.json() {
        let mut doc = json!({"bench": s.kind, "records": s.records, "bytes": s.bytes,
            "errors": s.errors, "elapsed_s": secs, "records_per_s": records_per_s,
            "mb_per_s": mb_per_s, latency_name: percentiles(&s.latency_us)});
        if let Some(ack) = &s.ack_latency_us {
            doc["ack_latency_ms"] = percentiles(ack);
        }
        print_json(&doc);
        return;
    }
    outln!(
        "{}: {} records ({:.1} MB) in {:.2} s: {:.0} records/s, {:.2} MB/s{}",
        s.kind,
        s.records,
        s.bytes as f64 / 1e6,
        secs,
        records_per_s,
        mb_per_s,
        if s.errors > 0 {
            format!(", {} errors", s.errors)
        } else {
            String::new()
        }
    );
    let line = |name: &str, h: &Histogram<u64>| {
        let ms = |us: u64| us as f64 / 1000.0;
        outln!(
            "{name} ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.95)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        );
    };
    let label = match s.kind {
        "produce" => "ack latency",
        "consume" => "fetch latency",
        _ => "end-to-end latency",
    };
    line(label, &s.latency_us);
    if let Some(ack) = &s.ack_latency_us {
        line("ack latency", ack);
    }
}
