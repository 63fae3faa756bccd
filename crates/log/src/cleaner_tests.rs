use super::*;
use crate::LogConfig;
use bytes::BytesMut;
use klamm_protocol::batch::{validate_produce, ProduceLimits};
use klamm_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;

const LIMITS: ProduceLimits = ProduceLimits {
    max_batch_bytes: 1 << 20,
    produce_version: 9,
};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: u64::MAX / 4,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
    }
}

fn cleaner_config() -> CleanerConfig {
    CleanerConfig {
        delete_retention_ms: 1_000,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.0,
        dedupe_buffer_bytes: 1 << 20,
        segment_bytes: 2048,
        max_decompressed_bytes: 128 << 20,
    }
}

type Kv = (String, Option<String>);

/// Encodes records (offsets from 0) with a codec and optional producer id.
fn encode(records: &[Kv], ts: i64, compression: Compression, pid: i64, seq: i32) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if pid >= 0 { seq + i as i32 } else { -1 },
            timestamp: ts + i as i64,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

fn put(log: &mut PartitionLog, records: &[Kv], ts: i64, compression: Compression) {
    let batch = encode(records, ts, compression, -1, -1);
    let parsed = validate_produce(&batch, LIMITS).unwrap();
    log.append(&batch, &parsed, ts, 0, false).unwrap();
}

/// Every record from the log start, in order: (offset, key, value).
fn read_all(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, log.log_end_offset(), 1 << 20, true).unwrap();
        if bytes.is_empty() {
            break;
        }
        for (pos, h) in batch::headers(&bytes) {
            batch::check_batch(&bytes[pos..]).unwrap();
            let mut one = Bytes::copy_from_slice(&bytes[pos..pos + h.total_bytes()]);
            let set = RecordBatchDecoder::decode(&mut one).unwrap();
            for r in set.records {
                let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                out.push((r.offset, key, value));
            }
            next = h.last_offset() + 1;
        }
    }
    out
}

/// The latest record per key among `all`, in offset order (what compaction must leave).
fn latest(
    all: &[(i64, String, Option<String>)],
    keep_tombstones: bool,
) -> Vec<(i64, String, Option<String>)> {
    let mut by_key: BTreeMap<&str, &(i64, String, Option<String>)> = BTreeMap::new();
    for r in all {
        by_key.insert(&r.1, r);
    }
    let mut out: Vec<_> = by_key
        .values()
        .filter(|r| keep_tombstones || r.2.is_some())
        .map(|r| (*r).clone())
        .collect();
    out.sort();
    out
}

fn compact(log: &mut PartitionLog, now: i64, cfg: &CleanerConfig) -> Option<CleanStats> {
    let plan = log.plan_cleaning(now, cfg, log.log_end_offset())?;
    let result = clean(&plan, cfg, now, &mut |_| {}, &mut |n| log.create_cleaned(n)).unwrap();
    let stats = result.stats.clone();
    log.install_cleaned(result).unwrap();
    Some(stats)
}

/// 20 keys updated 15 times each in batches of 5, then tombstones for keys 0..5, then a
/// roll so all of it is sealed.
fn fill(log: &mut PartitionLog, compression: Compression) {
    let mut n = 0;
    for round in 0..15 {
        for chunk in 0..4 {
            let recs: Vec<Kv> = (0..5)
                .map(|i| {
                    n += 1;
                    (
                        format!("key-{}", chunk * 5 + i),
                        Some(format!("value-{round}-{n}")),
                    )
                })
                .collect();
            put(log, &recs, 1_000 + n, compression);
        }
    }
    let tombstones: Vec<Kv> = (0..5).map(|i| (format!("key-{i}"), None)).collect();
    put(log, &tombstones, 2_000, compression);
    log.roll().unwrap();
}

#[test]
fn keeps_latest_per_key_then_drops_tombstones_after_the_horizon() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::create(&dir.path().join("t-0"), config()).unwrap();
        fill(&mut log, compression);
        let before = read_all(&log);
        assert_eq!(before.len(), 305);
        let end = log.log_end_offset();
        let cfg = cleaner_config();
        let stats = compact(&mut log, 10_000, &cfg).expect("due");
        assert_eq!(stats.records_read, 305);
        assert_eq!(read_all(&log), latest(&before, true), "{compression:?}");
        assert_eq!(log.log_end_offset(), end);
        // Nothing dirty and no tombstone due yet: nothing to do.
        assert!(log.plan_cleaning(10_500, &cfg, end).is_none());
        // After delete.retention.ms the tombstones go.
        let stats = compact(&mut log, 11_001, &cfg).expect("tombstones due");
        assert_eq!(stats.tombstones_removed, 5);
        let expected = latest(&before, false);
        assert_eq!(read_all(&log), expected);
        assert_eq!(expected.len(), 15);
        // Reopening (clean or not) gives the same log.
        drop(log);
        let (log, _) = PartitionLog::open(&dir.path().join("t-0"), config(), false).unwrap();
        assert_eq!(read_all(&log), expected);
        assert_eq!(log.log_end_offset(), end);
    }
}

#[test]
fn active_segment_and_young_segments_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config()).unwrap();
    for _ in 0..3 {
        put(
            &mut log,
            &[("k".into(), Some("v".into()))],
            1_000,
            Compression::None,
        );
    }
    // Only the active segment: nothing to clean.
    assert!(log.plan_cleaning(5_000, &cleaner_config(), 100).is_none());
    log.roll().unwrap();
    put(
        &mut log,
        &[("k".into(), Some("w".into()))],
        1_000,
        Compression::None,
    );
    // min.compaction.lag.ms: records 1000 ms old are too young for a 10 s lag.
    let lagged = CleanerConfig {
        min_compaction_lag_ms: 10_000,
        ..cleaner_config()
    };
    assert!(log.plan_cleaning(2_000, &lagged, 100).is_none());
    // The high watermark bounds it too.
    assert!(log.plan_cleaning(2_000, &cleaner_config(), 0).is_none());
    compact(&mut log, 20_000, &cleaner_config()).unwrap();
    // The active segment's record is not in the map: the sealed copy of "k" is superseded
    // only by what was cleaned, so the last sealed "k" stays, as does the active one.
    let all = read_all(&log);
    assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn dirty_ratio_gates_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config()).unwrap();
    fill(&mut log, Compression::None);
    let strict = CleanerConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..cleaner_config()
    };
    compact(&mut log, 10_000, &strict).expect("all dirty");
    // A little new dirty data against a larger clean section stays below 0.5...
    put(
        &mut log,
        &[("key-7".into(), Some("new".into()))],
        3_000,
        Compression::None,
    );
    log.roll().unwrap();
    let plan = log.plan_cleaning(10_000, &strict, log.log_end_offset());
    assert!(plan.is_none());
    // ...unless max.compaction.lag.ms says it has waited too long.
    let overdue = CleanerConfig {
        max_compaction_lag_ms: 1_000,
        ..strict
    };
    assert!(log
        .plan_cleaning(10_000, &overdue, log.log_end_offset())
        .is_some());
}

#[test]
fn a_small_offset_map_cleans_in_several_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config()).unwrap();
    // 100 distinct keys, each written twice.
    for round in 0..2 {
        for chunk in 0..20 {
            let recs: Vec<Kv> = (0..5)
                .map(|i| (format!("k{}", chunk * 5 + i), Some(format!("r{round}"))))
                .collect();
            put(&mut log, &recs, 1_000, Compression::None);
        }
    }
    log.roll().unwrap();
    let before = read_all(&log);
    let tiny = CleanerConfig {
        // 40 slots, 36 entries: each round gets at most 35 keys in.
        dedupe_buffer_bytes: 40 * OFFSET_MAP_SLOT_BYTES,
        ..cleaner_config()
    };
    let mut rounds = 0;
    while let Some(stats) = compact(&mut log, 10_000, &tiny) {
        assert!(stats.offset_map_memory_bytes <= tiny.dedupe_buffer_bytes);
        rounds += 1;
        assert!(rounds < 20);
    }
    assert!(rounds >= 5, "{rounds} rounds");
    assert_eq!(read_all(&log), latest(&before, true));
}

#[test]
fn a_producers_last_batch_survives_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config()).unwrap();
    let b = encode(
        &[("a".into(), Some("1".into()))],
        1_000,
        Compression::None,
        42,
        0,
    );
    let parsed = validate_produce(&b, LIMITS).unwrap();
    log.append(&b, &parsed, 1_000, 0, false).unwrap();
    put(
        &mut log,
        &[("a".into(), Some("2".into()))],
        1_001,
        Compression::None,
    );
    log.roll().unwrap();
    compact(&mut log, 10_000, &cleaner_config()).unwrap();
    let bytes = log.read(0, 10, 1 << 20, true).unwrap();
    let headers: Vec<_> = batch::headers(&bytes).map(|(_, h)| h).collect();
    assert_eq!(headers.len(), 2);
    assert_eq!((headers[0].producer_id, headers[0].records_count), (42, 0));
    assert_eq!(headers[0].last_offset(), 0);
    assert_eq!(read_all(&log), vec![(1, "a".into(), Some("2".into()))]);
}

#[test]
fn timestamps_stay_exact_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config()).unwrap();
    fill(&mut log, Compression::Lz4);
    compact(&mut log, 10_000, &cleaner_config()).unwrap();
    let all = read_all(&log);
    // Record timestamps are 1000 + n for the n-th update; the first survivor at or after a
    // time is what ListOffsets must return.
    let first_survivor = all[0].0;
    let found = log.offset_for_timestamp(0, log.log_end_offset()).unwrap();
    assert_eq!(found.map(|f| f.0), Some(first_survivor));
    let mid = log
        .offset_for_timestamp(1_250, log.log_end_offset())
        .unwrap()
        .unwrap();
    assert!(mid.1 >= 1_250);
    assert!(all.iter().any(|r| r.0 == mid.0));
    assert!(all.iter().filter(|r| r.0 < mid.0).count() < all.len());
}

/// Right to erasure: after a tombstone and the cleanings that follow, no byte of the key's
/// earlier values remains in any file of the partition.
#[test]
fn erased_values_leave_no_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, config()).unwrap();
    for i in 0..30 {
        put(
            &mut log,
            &[("customer-7".into(), Some(format!("SECRET-{i:03}")))],
            1_000,
            Compression::Snappy,
        );
        put(
            &mut log,
            &[(format!("other-{i}"), Some("keep".into()))],
            1_000,
            Compression::Snappy,
        );
    }
    put(
        &mut log,
        &[("customer-7".into(), None)],
        1_000,
        Compression::Snappy,
    );
    log.roll().unwrap();
    compact(&mut log, 10_000, &cleaner_config()).unwrap();
    compact(&mut log, 20_000, &cleaner_config()).unwrap();
    for entry in fs::read_dir(&pdir).unwrap() {
        let data = fs::read(entry.unwrap().path()).unwrap();
        assert!(!data.windows(6).any(|w| w == b"SECRET"));
        assert!(!data.windows(10).any(|w| w == b"customer-7"));
    }
    assert_eq!(read_all(&log).len(), 30);
}

/// A crash after the cleaned files were written, or after the swap was committed, or half
/// way through deleting the old segments, leaves a correct log on the next open.
#[test]
fn crashes_at_every_step_leave_a_correct_log() {
    for step in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("t-0");
        let mut log = PartitionLog::create(&pdir, config()).unwrap();
        fill(&mut log, Compression::None);
        let before = read_all(&log);
        let cfg = cleaner_config();
        let plan = log
            .plan_cleaning(10_000, &cfg, log.log_end_offset())
            .unwrap();
        let result = clean(&plan, &cfg, 10_000, &mut |_| {}, &mut |n| {
            log.create_cleaned(n)
        })
        .unwrap();
        assert!(result.groups.len() > 1);
        let g = &result.groups[0];
        if step >= 1 {
            fs::rename(
                pdir.join(&g.cleaned_name),
                swap_path(&pdir, g.base_offset, g.end_offset),
            )
            .unwrap();
        }
        if step >= 2 {
            // Kill half way through deleting the old segments.
            for (base, _) in &g.replaces[..g.replaces.len().div_ceil(2)] {
                remove_segment_files(&pdir, *base).unwrap();
            }
        }
        if step >= 3 {
            let log_path = pdir
                .join(segment::file_stem(g.base_offset))
                .with_extension("log");
            for (base, _) in &g.replaces {
                remove_segment_files(&pdir, *base).unwrap();
            }
            fs::rename(swap_path(&pdir, g.base_offset, g.end_offset), log_path).unwrap();
        }
        drop(result);
        drop(plan);
        drop(log);
        let (mut log, _) = PartitionLog::open(&pdir, config(), false).unwrap();
        let after = read_all(&log);
        if step == 0 {
            assert_eq!(after, before);
        } else {
            // The first group is compacted, the rest not: every key's latest value is there,
            // and every record is one of the originals at its own offset.
            assert!(after.len() < before.len());
            assert!(after.iter().all(|r| before.contains(r)));
            assert!(latest(&before, true).iter().all(|r| after.contains(r)));
        }
        let leftovers = fs::read_dir(&pdir)
            .unwrap()
            .filter(|e| {
                let n = e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                n.ends_with(".cleaned") || n.ends_with(".swap")
            })
            .count();
        assert_eq!(leftovers, 0);
        // And the next compaction finishes the job.
        compact(&mut log, 10_000, &cfg);
        compact(&mut log, 10_000, &cfg);
        assert_eq!(read_all(&log), latest(&before, true), "step {step}");
    }
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// DeleteTopics + CreateTopics of the same name while a cleaning round runs without the
/// lock: the deleted log's `.cleaned` files are created, and removed, only in its own
/// (moved) directory, never in the recreated topic's directory of the same name.
#[test]
fn a_deleted_topics_cleaning_never_touches_the_recreated_directory() {
    let cfg = cleaner_config();
    // Deleted before the round creates its files: creation is refused.
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, config()).unwrap();
    fill(&mut log, Compression::None);
    let plan = log
        .plan_cleaning(10_000, &cfg, log.log_end_offset())
        .unwrap();
    let moved = dir.path().join("t-0.moved-delete");
    fs::rename(&pdir, &moved).unwrap();
    log.retire(Some(moved.clone()));
    let recreated = PartitionLog::create(&pdir, config()).unwrap();
    let err = clean(&plan, &cfg, 10_000, &mut |_| {}, &mut |n| {
        log.create_cleaned(n)
    })
    .err()
    .expect("a retired log refuses to create cleaned files");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(files_ending(&pdir, ".cleaned").is_empty());
    assert!(files_ending(&moved, ".cleaned").is_empty());
    drop(recreated);

    // Deleted after the files were written: installing removes them from the moved
    // directory and leaves the recreated one alone.
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, config()).unwrap();
    fill(&mut log, Compression::None);
    let plan = log
        .plan_cleaning(10_000, &cfg, log.log_end_offset())
        .unwrap();
    let result = clean(&plan, &cfg, 10_000, &mut |_| {}, &mut |n| {
        log.create_cleaned(n)
    })
    .unwrap();
    drop(plan);
    let names: Vec<String> = result
        .groups
        .iter()
        .map(|g| g.cleaned_name.clone())
        .collect();
    assert!(!names.is_empty());
    let moved = dir.path().join("t-0.moved-delete");
    fs::rename(&pdir, &moved).unwrap();
    log.retire(Some(moved.clone()));
    let recreated = PartitionLog::create(&pdir, config()).unwrap();
    // The recreated topic's own file of the same name must survive.
    fs::write(pdir.join(&names[0]), b"recreated topic's").unwrap();
    assert_eq!(log.install_cleaned(result).unwrap(), 0);
    assert!(
        files_ending(&moved, ".cleaned").is_empty(),
        "left in the moved dir"
    );
    assert_eq!(
        fs::read(pdir.join(&names[0])).unwrap(),
        b"recreated topic's"
    );
    assert_eq!(recreated.log_end_offset(), 0);
    drop(recreated);
}

#[test]
fn offset_map_is_bounded_and_exact() {
    let mut map = OffsetMap::new(24 * 100, u64::MAX);
    assert_eq!(map.memory_bytes(), 2400);
    for i in 0..90 {
        assert!(map.has_room(1));
        map.put(key_digest(format!("k{i}").as_bytes()), i);
    }
    assert!(!map.has_room(1));
    map.put(key_digest(b"k3"), 1000);
    assert_eq!(map.len(), 90);
    assert_eq!(map.get(key_digest(b"k3")), Some(1000));
    assert_eq!(map.get(key_digest(b"k89")), Some(89));
    assert_eq!(map.get(key_digest(b"nope")), None);
    // Sized by the keys that can exist when that is smaller than the memory allowed.
    assert_eq!(OffsetMap::new(1 << 30, 900).memory_bytes(), 1001 * 24);
}

fn rss_anon_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Compaction throughput and memory for one million distinct keys, each written twice
/// (2 M records of 100-byte values, in batches of 100). Run with
/// `cargo test --release -p klamm-log cleaner_benchmark -- --ignored --nocapture`.
#[test]
#[ignore]
fn cleaner_benchmark_one_million_keys() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 << 20,
        segment_ms: u64::MAX / 4,
        index_interval_bytes: 4096,
        segment_index_bytes: 10 << 20,
    };
    let mut log = PartitionLog::create(&dir.path().join("bench-0"), config).unwrap();
    let keys = 1_000_000;
    let value = "v".repeat(100);
    for pass in 0..2 {
        for chunk in 0..keys / 100 {
            let recs: Vec<Kv> = (0..100)
                .map(|i| {
                    (
                        format!("key-{:07}", chunk * 100 + i),
                        Some(format!("{pass}{value}")),
                    )
                })
                .collect();
            put(&mut log, &recs, 1_000, Compression::None);
        }
    }
    log.roll().unwrap();
    let dirty_bytes = log.size_bytes();
    let cfg = CleanerConfig {
        dedupe_buffer_bytes: 128 << 20,
        segment_bytes: 64 << 20,
        ..cleaner_config()
    };
    let before_kib = rss_anon_kib();
    let peak = AtomicU64::new(before_kib);
    let done = AtomicBool::new(false);
    let (stats, elapsed) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon_kib(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let started = std::time::Instant::now();
        let stats = compact(&mut log, 10_000, &cfg).unwrap();
        let elapsed = started.elapsed();
        done.store(true, Ordering::Relaxed);
        (stats, elapsed)
    });
    let mb = dirty_bytes as f64 / 1e6;
    println!(
        "compacted {mb:.1} MB of dirty log ({} records, {} distinct keys) in {:.2} s: {:.1} MB/s; \
         kept {} records, wrote {:.1} MB; offset map {:.1} MiB ({} entries); \
         peak anonymous memory +{:.1} MiB over the {:.1} MiB before",
        stats.records_read,
        stats.offset_map_entries,
        elapsed.as_secs_f64(),
        mb / elapsed.as_secs_f64(),
        stats.records_kept,
        stats.bytes_written as f64 / 1e6,
        stats.offset_map_memory_bytes as f64 / (1 << 20) as f64,
        stats.offset_map_entries,
        (peak.load(Ordering::Relaxed) - before_kib) as f64 / 1024.0,
        before_kib as f64 / 1024.0,
    );
    assert_eq!(stats.records_kept, keys as u64);
}

#[test]
fn aborted_transaction_index_follows_merged_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(dir.path(), config()).unwrap();
    // Many small segments, each with an aborted transaction of its own producer.
    for pid in 0..12i64 {
        txn(
            &mut log,
            &[(format!("k{pid}"), Some("v".into()))],
            pid,
            0,
            false,
        );
        log.roll().unwrap();
    }
    let before = log.aborted_transactions(0, i64::MAX);
    assert_eq!(before.len(), 12);
    let segments = log.segment_count();
    compact(&mut log, 10_000, &cleaner_config()).expect("a cleaning round");
    assert!(log.segment_count() < segments, "segments were merged");
    assert_eq!(log.aborted_transactions(0, i64::MAX), before);
    log.close().unwrap();
    drop(log);
    // Reopened (clean or not), the index is read from the rewritten files.
    for clean in [true, false] {
        let (log, _) = PartitionLog::open(dir.path(), config(), clean).unwrap();
        assert_eq!(log.aborted_transactions(0, i64::MAX), before);
    }
}

/// A transactional batch of `records` for producer `pid` (epoch 0, first sequence `seq`).
fn txn_batch(records: &[Kv], pid: i64, seq: i32) -> Vec<u8> {
    let mut batch = encode(records, 1_000, Compression::None, pid, seq);
    batch[21..23].copy_from_slice(&0x10i16.to_be_bytes()); // transactional
    let crc = batch::compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn aborted_updates_never_shadow_committed_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(dir.path(), config()).unwrap();
    let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    put(
        &mut log,
        &[kv("a", "a-committed"), kv("b", "b-old")],
        1_000,
        Compression::None,
    );
    // Producer 7 updates `a` in a transaction that aborts; producer 8 updates `b` and commits.
    for (pid, key, value, commit) in [(7, "a", "a-aborted", false), (8, "b", "b-new", true)] {
        txn(&mut log, &[kv(key, value)], pid, 0, commit);
    }
    log.roll().unwrap();
    compact(&mut log, 10_000, &cleaner_config()).expect("a cleaning round");
    // What is left of the data (markers aside): the committed value of each key.
    let mut left = Vec::new();
    let end = log.log_end_offset();
    let bytes = log.read(0, end, 1 << 20, true).unwrap();
    for (pos, h) in batch::headers(&bytes) {
        if h.is_control() {
            continue;
        }
        let mut one = Bytes::copy_from_slice(&bytes[pos..pos + h.total_bytes()]);
        for r in RecordBatchDecoder::decode(&mut one).unwrap().records {
            left.push((
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    left.sort();
    assert_eq!(
        left,
        vec![
            ("a".into(), "a-committed".into()),
            ("b".into(), "b-new".into())
        ],
        "an aborted update must neither survive nor remove the committed value"
    );
}

/// Appends one transaction of producer `pid` (sequence `seq`) and its marker.
fn txn(log: &mut PartitionLog, records: &[Kv], pid: i64, seq: i32, commit: bool) {
    let batch = txn_batch(records, pid, seq);
    let parsed = validate_produce(&batch, LIMITS).unwrap();
    log.append(&batch, &parsed, 1_000, 0, false).unwrap();
    log.append_marker((pid, 0), commit, 0, 1_000, 0).unwrap();
}

/// Offsets and kinds (`true` = COMMIT) of the markers in the log.
fn markers(log: &PartitionLog) -> Vec<(i64, bool)> {
    let bytes = log.read(0, log.log_end_offset(), 1 << 20, true).unwrap();
    batch::headers(&bytes)
        .filter(|(_, h)| h.is_control())
        .map(|(pos, h)| (h.base_offset, batch::marker_of(&bytes[pos..]).unwrap()))
        .collect()
}

#[test]
fn markers_go_after_their_transaction_and_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(dir.path(), config()).unwrap();
    let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    // Producer 9: x=1 committed (superseded below), y aborted, then x=2 committed.
    txn(&mut log, &[kv("x", "1")], 9, 0, true); // data 0, COMMIT 1
    txn(&mut log, &[kv("y", "aborted")], 9, 1, false); // data 2, ABORT 3
    txn(&mut log, &[kv("x", "2")], 9, 2, true); // data 4, COMMIT 5
                                                // Producer 10: z committed and never superseded.
    txn(&mut log, &[kv("z", "1")], 10, 0, true); // data 6, COMMIT 7
    log.roll().unwrap();
    let all = vec![(1, true), (3, false), (5, true), (7, true)];
    assert_eq!(markers(&log), all);
    assert_eq!(log.aborted_transactions(0, i64::MAX), vec![(9, 2)]);

    // First round: the data of the first two transactions goes; their markers get a
    // delete horizon but stay, so a reader that saw the data can still see them.
    let cfg = cleaner_config();
    compact(&mut log, 10_000, &cfg).expect("a cleaning round");
    assert_eq!(markers(&log), all);
    let data: Vec<_> = read_all(&log)
        .into_iter()
        .filter(|(o, _, _)| !all.iter().any(|(m, _)| m == o))
        .collect();
    let sv = |o: i64, k: &str, v: &str| (o, k.to_string(), Some(v.to_string()));
    assert_eq!(data, vec![sv(4, "x", "2"), sv(6, "z", "1")]);
    // Before the horizon (10_000 + delete.retention.ms) nothing more goes.
    let early = compact(&mut log, 10_500, &cfg).map_or(0, |s| s.markers_removed);
    assert_eq!((early, markers(&log)), (0, all.clone()));
    // After it, both markers go and the ABORT leaves the aborted index. The COMMIT of
    // producer 9's kept data and producer 10's (its latest, and it has data) stay.
    let stats = compact(&mut log, 11_001, &cfg).expect("the horizon triggers a round");
    assert_eq!(stats.markers_removed, 2);
    assert_eq!(markers(&log), vec![(5, true), (7, true)]);
    assert_eq!(log.aborted_transactions(0, i64::MAX), vec![]);
    // The index files agree after a restart.
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(), false).unwrap();
    assert_eq!(log.aborted_transactions(0, i64::MAX), vec![]);
    assert_eq!(markers(&log), vec![(5, true), (7, true)]);
}

#[test]
fn a_stale_aborted_index_entry_is_dropped_on_open() {
    // A crash after a compaction dropped an ABORT marker but before the index files were
    // rewritten leaves the entry on disk; the log must not trust it.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(dir.path(), config()).unwrap();
    let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    txn(&mut log, &[kv("y", "aborted")], 9, 0, false); // data 0, ABORT 1
    txn(&mut log, &[kv("x", "1")], 9, 1, true); // data 2, COMMIT 3
    log.roll().unwrap();
    let cfg = cleaner_config();
    compact(&mut log, 10_000, &cfg).expect("stamps the horizon");
    compact(&mut log, 11_001, &cfg).expect("drops the ABORT marker");
    assert_eq!(markers(&log), vec![(3, true)]);
    let base = log.segments.keys().next().copied().unwrap();
    drop(log);
    let stale = crate::AbortedTxn {
        producer_id: 9,
        first_offset: 0,
        last_offset: 1,
        last_stable_offset: 2,
    };
    crate::txn_index::append(dir.path(), base, &stale).unwrap();
    for clean in [true, false] {
        let (log, _) = PartitionLog::open(dir.path(), config(), clean).unwrap();
        assert_eq!(log.aborted_transactions(0, i64::MAX), vec![]);
    }
    assert_eq!(crate::txn_index::read(dir.path(), base), vec![]);
}

#[test]
fn groups_after_a_discarded_one_are_not_installed() {
    // A later group may drop a marker only because an earlier group dropped its
    // transaction's data: if the earlier group is discarded, so must the later one be.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(dir.path(), config()).unwrap();
    let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    put(&mut log, &[kv("a", "1")], 1_000, Compression::None); // 0
    log.roll().unwrap();
    txn(&mut log, &[kv("y", "aborted")], 9, 0, false); // data 1, ABORT 2
    log.roll().unwrap();
    txn(&mut log, &[kv("x", "1")], 9, 1, true); // data 3, COMMIT 4
    log.roll().unwrap();
    // One group per segment.
    let cfg = CleanerConfig {
        segment_bytes: 100,
        ..cleaner_config()
    };
    let plan = log
        .plan_cleaning(10_000, &cfg, log.log_end_offset())
        .unwrap();
    let result = clean(&plan, &cfg, 10_000, &mut |_| {}, &mut |n| {
        log.create_cleaned(n)
    })
    .unwrap();
    drop(plan);
    assert!(result.groups.len() >= 2, "{:?}", result.groups);
    // DeleteRecords removes the first segment while the round runs.
    log.delete_records_before(1).unwrap();
    assert_eq!(log.install_cleaned(result).unwrap(), 0);
    // Nothing changed: the ABORT marker has no delete horizon yet.
    let bytes = log.read(2, 3, 1 << 20, true).unwrap();
    let (_, h) = batch::headers(&bytes).next().unwrap();
    assert!(h.is_control() && rewrite::delete_horizon_ms(&h).is_none());
}

#[test]
fn a_fencing_marker_of_a_live_producer_stays() {
    // A timed-out transaction is aborted with a bumped epoch; that marker is the only record
    // of the new epoch, so it stays while the producer is live, even with no data before it.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(dir.path(), config()).unwrap();
    let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    txn(&mut log, &[kv("x", "1")], 9, 0, true); // data 0, COMMIT 1
    txn(&mut log, &[kv("x", "2")], 9, 1, true); // data 2, COMMIT 3
    log.append_marker((9, 1), false, 0, 1_000, 0).unwrap(); // ABORT 4, epoch 1
    log.roll().unwrap();
    let cfg = cleaner_config();
    compact(&mut log, 10_000, &cfg).expect("stamps horizons");
    compact(&mut log, 11_001, &cfg).expect("drops what may go");
    assert_eq!(markers(&log), vec![(3, true), (4, false)]);
}
