//! Prometheus scrape: the registry's metrics plus gauges computed at scrape time from the
//! broker's state — partition offsets and sizes, group membership and **consumer lag** — so
//! that nothing has to be kept in sync between scrapes. `metrics.partition.labels = false`
//! aggregates per-partition series per topic, bounding label cardinality.

use crate::broker::Broker;
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;

/// Renders every metric in Prometheus text format; the scrape-time gauges are computed
/// from `broker` (None before recovery has finished).
pub fn render(broker: Option<&Broker>) -> String {
    let mut families = crate::metrics::gather();
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
    let per_partition = broker.config().broker().metrics_partition_labels;
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
