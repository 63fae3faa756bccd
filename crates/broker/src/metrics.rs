//! Prometheus metrics (prefix `klamm_`, base units, `_total` counters).
//!
//! Two kinds: counters and histograms updated on the request path (one registry, created
//! once per process), and gauges computed at scrape time from the broker's state —
//! partition offsets and sizes, group membership and **consumer lag** — so that nothing
//! has to be kept in sync between scrapes. `metrics.enabled = false` skips the request-path
//! updates (to measure their cost); `metrics.partition.labels = false` aggregates
//! per-partition series per topic, bounding label cardinality.

use crate::state::Broker;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static METRICS: OnceLock<Metrics> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(true);

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub request_duration: HistogramVec,
    pub fetch_wait: Histogram,
    pub produce_bytes: IntCounterVec,
    pub produce_records: IntCounterVec,
    pub fetch_bytes: IntCounterVec,
    pub fetch_records: IntCounterVec,
    pub connections_active: IntGaugeVec,
    pub connections_accepted: IntCounterVec,
    pub connections_closed: IntCounterVec,
    pub flush_duration: Histogram,
    pub slow_requests: IntCounterVec,
    pub retention_deleted_segments: IntCounter,
    pub cleaner_bytes_read: IntCounter,
    pub cleaner_bytes_written: IntCounter,
}

/// Latency buckets from 100 µs to 30 s.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(crate::process_cpu::ProcessMetrics::for_self()))
            .expect("registered once");
        let build = IntGaugeVec::new(
            Opts::new("klamm_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.register(Box::new(build)).expect("registered once");
        let connections_active = IntGaugeVec::new(
            Opts::new("klamm_connections_active", "Open client connections."),
            &["listener"],
        )
        .expect("valid metric");
        r.register(Box::new(connections_active.clone()))
            .expect("registered once");
        Metrics {
            requests: counter_vec(
                &r,
                "klamm_requests_total",
                "Requests received, by Kafka API.",
                &["api"],
            ),
            request_errors: counter_vec(
                &r,
                "klamm_request_errors_total",
                "Error codes returned, by Kafka API and error name (one per failed item).",
                &["api", "error"],
            ),
            request_duration: histogram(
                &r,
                "klamm_request_duration_seconds",
                "Request handling time by API; for Fetch, excluding the long-poll wait.",
                &["api"],
            ),
            fetch_wait: histogram(
                &r,
                "klamm_fetch_wait_seconds",
                "Time Fetch requests spent waiting for data (long poll).",
                &[],
            )
            .with_label_values::<&str>(&[]),
            produce_bytes: counter_vec(
                &r,
                "klamm_produce_bytes_total",
                "Record-batch bytes appended by producers.",
                &["topic"],
            ),
            produce_records: counter_vec(
                &r,
                "klamm_produce_records_total",
                "Records appended by producers.",
                &["topic"],
            ),
            fetch_bytes: counter_vec(
                &r,
                "klamm_fetch_bytes_total",
                "Record-batch bytes returned by Fetch.",
                &["topic"],
            ),
            fetch_records: counter_vec(
                &r,
                "klamm_fetch_records_total",
                "Records returned by Fetch.",
                &["topic"],
            ),
            connections_active,
            connections_accepted: counter_vec(
                &r,
                "klamm_connections_accepted_total",
                "Client connections accepted.",
                &["listener"],
            ),
            connections_closed: counter_vec(
                &r,
                "klamm_connections_closed_total",
                "Client connections closed.",
                &["listener"],
            ),
            flush_duration: histogram(
                &r,
                "klamm_log_flush_duration_seconds",
                "fsync time of one partition's log (group commit).",
                &[],
            )
            .with_label_values::<&str>(&[]),
            slow_requests: counter_vec(
                &r,
                "klamm_slow_requests_total",
                "Requests slower than request.slow.log.ms.",
                &["api"],
            ),
            cleaner_bytes_read: {
                let c = IntCounter::new(
                    "klamm_cleaner_read_bytes_total",
                    "Bytes of log the cleaner (compaction) read.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("registered once");
                c
            },
            cleaner_bytes_written: {
                let c = IntCounter::new(
                    "klamm_cleaner_written_bytes_total",
                    "Bytes of compacted log the cleaner wrote.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("registered once");
                c
            },
            retention_deleted_segments: {
                let c = IntCounter::new(
                    "klamm_retention_deleted_segments_total",
                    "Segments deleted by retention (retention.ms / retention.bytes).",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("registered once");
                c
            },
            registry: r,
        }
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether request-path metrics are recorded (`metrics.enabled`).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Renders every metric in Prometheus text format; the scrape-time gauges are computed
/// from `broker` (None before recovery has finished).
pub fn render(broker: Option<&Broker>) -> String {
    let mut families = metrics().registry.gather();
    if let Some(b) = broker {
        families.extend(scrape_gauges(b));
    }
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(out).expect("Prometheus text is UTF-8")
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone()))
        .expect("registered once per scrape");
    g
}

fn scrape_gauges(broker: &Broker) -> Vec<prometheus::proto::MetricFamily> {
    let r = Registry::new();
    let per_partition = broker.config().get("metrics.partition.labels") != Some("false");
    let plabels: &[&str] = if per_partition {
        &["topic", "partition"]
    } else {
        &["topic"]
    };
    let hw = gauge(
        &r,
        "klamm_partition_high_watermark",
        "High watermark (sum over partitions without partition labels).",
        plabels,
    );
    let lso = gauge(
        &r,
        "klamm_partition_log_start_offset",
        "Log start offset (sum over partitions without partition labels).",
        plabels,
    );
    let size = gauge(
        &r,
        "klamm_partition_size_bytes",
        "Bytes of log on disk.",
        plabels,
    );
    let segments = gauge(
        &r,
        "klamm_partition_segments",
        "Segments in the log.",
        plabels,
    );
    let rolls = IntCounter::new(
        "klamm_log_segment_rolls_total",
        "Segments rolled since start.",
    )
    .expect("valid metric");
    let under = IntGauge::new(
        "klamm_under_replicated_partitions",
        "Partitions with fewer in-sync replicas than replicas (single node: 0).",
    )
    .expect("valid metric");
    let offline = IntGauge::new(
        "klamm_offline_partitions",
        "Partitions without a leader (single node: 0).",
    )
    .expect("valid metric");
    for m in [
        Box::new(rolls.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(under),
        Box::new(offline),
    ] {
        r.register(m).expect("registered once per scrape");
    }
    let mut high_watermarks: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in broker.topics() {
        for p in &topic.partitions {
            let idx = p.index.to_string();
            let labels: Vec<&str> = if per_partition {
                vec![&topic.name, &idx]
            } else {
                vec![&topic.name]
            };
            let log = p.log();
            let h = p.high_watermark();
            high_watermarks.insert((topic.name.clone(), p.index), h);
            hw.with_label_values(&labels).add(h);
            lso.with_label_values(&labels).add(log.log_start_offset());
            size.with_label_values(&labels).add(log.size_bytes() as i64);
            segments
                .with_label_values(&labels)
                .add(log.segment_count() as i64);
            rolls.inc_by(log.rolls());
        }
    }
    group_gauges(&r, broker, &high_watermarks, per_partition);
    r.gather()
}

fn group_gauges(
    r: &Registry,
    broker: &Broker,
    high_watermarks: &BTreeMap<(String, i32), i64>,
    per_partition: bool,
) {
    let members = gauge(
        r,
        "klamm_consumer_group_members",
        "Members of a consumer group.",
        &["group"],
    );
    let state = gauge(
        r,
        "klamm_consumer_group_state",
        "1 for the group's current state.",
        &["group", "state"],
    );
    // A counter: the generation only grows while the group lives (it restarts at 0 when
    // a deleted group's id comes back, which Prometheus reads as a counter reset).
    let rebalances = IntCounterVec::new(
        Opts::new(
            "klamm_consumer_group_rebalances_total",
            "Rebalances the group has completed (its generation).",
        ),
        &["group"],
    )
    .expect("valid metric");
    r.register(Box::new(rebalances.clone()))
        .expect("registered once per scrape");
    let lag_labels: &[&str] = if per_partition {
        &["group", "topic", "partition"]
    } else {
        &["group", "topic"]
    };
    let lag = gauge(
        r,
        "klamm_consumer_group_lag",
        "High watermark minus committed offset, computed at scrape time.",
        lag_labels,
    );
    let lag_sum = gauge(
        r,
        "klamm_consumer_group_lag_sum",
        "Total lag of a group over its committed partitions.",
        &["group"],
    );
    let lag_max = gauge(
        r,
        "klamm_consumer_group_lag_max",
        "Largest partition lag of a group.",
        &["group"],
    );
    let groups = broker.groups.read(|c| {
        c.list()
            .into_iter()
            .map(|(id, _, st)| {
                let d = c.describe(&id);
                let offsets = c.fetch_offsets(&id, None);
                let generation = c.generation(&id);
                (
                    id,
                    st,
                    d.map_or(0, |d| d.members.len()),
                    generation,
                    offsets,
                )
            })
            .collect::<Vec<_>>()
    });
    for (id, st, n, generation, offsets) in groups {
        members.with_label_values(&[&id]).set(n as i64);
        state.with_label_values(&[&id, st.kafka_name()]).set(1);
        rebalances
            .with_label_values(&[&id])
            .inc_by(generation.max(0) as u64);
        let (mut sum, mut max) = (0i64, 0i64);
        for (topic, partition, committed) in offsets {
            let (Some(c), Some(&hw)) =
                (committed, high_watermarks.get(&(topic.clone(), partition)))
            else {
                continue;
            };
            let l = (hw - c.offset).max(0);
            sum += l;
            max = max.max(l);
            let p = partition.to_string();
            let labels: Vec<&str> = if per_partition {
                vec![&id, &topic, &p]
            } else {
                vec![&id, &topic]
            };
            lag.with_label_values(&labels).add(l);
        }
        lag_sum.with_label_values(&[&id]).set(sum);
        lag_max.with_label_values(&[&id]).set(max);
    }
}
