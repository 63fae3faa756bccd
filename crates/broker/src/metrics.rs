//! Prometheus metrics (prefix `klamm_`, base units, `_total` counters).
//!
//! This module is the registry: counters and histograms updated on the request path (one
//! registry, created once per process). The gauges computed at scrape time from the
//! broker's state are `scrape.rs`'s. `metrics.enabled = false`
//! (`BrokerSettings::metrics_enabled`, checked where they are recorded) skips the
//! request-path updates, to measure their cost.
//!
//! Invariant: imports nothing from the crate but `process_cpu`, so every module may record.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use std::sync::OnceLock;

static METRICS: OnceLock<Metrics> = OnceLock::new();

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub request_duration: HistogramVec,
    pub fetch_wait: Histogram,
    pub fetch_wakeups: IntCounter,
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

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

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
            cleaner_bytes_read: counter(&r, "klamm_cleaner_read_bytes_total", "Bytes of log the cleaner (compaction) read."),
            cleaner_bytes_written: counter(&r, "klamm_cleaner_written_bytes_total", "Bytes of compacted log the cleaner wrote."),
            fetch_wakeups: counter(&r, "klamm_fetch_wakeups_total", "Times a parked long-poll Fetch was woken by a high watermark move of one of its own partitions."),
            retention_deleted_segments: counter(&r, "klamm_retention_deleted_segments_total", "Segments deleted by retention (retention.ms / retention.bytes)."),
            registry: r,
        }
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// Every registered metric's current values, for a scrape.
pub fn gather() -> Vec<prometheus::proto::MetricFamily> {
    metrics().registry.gather()
}
