//! Criterion benchmarks for the append and read paths of the segment log.
//!
//! Run: `cargo bench -p klamm-benches` (about two minutes) or
//! `cargo bench -p klamm-benches -- --quick`. Set `KLAMM_BENCH_DIR` to put the logs somewhere
//! other than the system temp dir (e.g. `/dev/shm` for tmpfs). See docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use klamm_log::{LogConfig, PartitionLog};
use klamm_protocol::batch::{build_test_batch, validate_produce, BatchHeader, ProduceLimits};
use tempfile::TempDir;

/// Records per batch and value size: 16 records of 1 KiB, a ~16.6 KiB batch.
const RECORDS_PER_BATCH: i32 = 16;
const VALUE_BYTES: usize = 1024;
const NOW_MS: i64 = 1_700_000_000_000;
const MAX_BATCH_BYTES: usize = 1 << 20;
/// The append benchmarks start a fresh log (outside the timed region) once this much is written,
/// so a long run neither fills the disk nor rolls segments.
const APPEND_LOG_CAP_BYTES: u64 = 256 << 20;
/// Segment size for the read benchmarks, small so the filled log has several sealed segments.
const READ_SEGMENT_BYTES: u64 = 8 << 20;
/// Sealed segments in the read benchmarks' log (followed by a nearly full active one).
const READ_SEALED_SEGMENTS: usize = 5;
const ONE_MIB: u64 = 1 << 20;

fn bench_dir() -> TempDir {
    let base: PathBuf = std::env::var_os("KLAMM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("klamm-bench-")
        .tempdir_in(base)
        .expect("temp dir for the bench log")
}

fn limits() -> ProduceLimits {
    ProduceLimits {
        max_batch_bytes: MAX_BATCH_BYTES,
        produce_version: 9,
    }
}

/// One test batch and its validated header/range.
fn test_batch() -> (Vec<u8>, Vec<(BatchHeader, std::ops::Range<usize>)>) {
    let records = build_test_batch(RECORDS_PER_BATCH, VALUE_BYTES, NOW_MS);
    let batches = validate_produce(&records, limits()).expect("test batch validates");
    (records, batches)
}

fn new_log(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::create(&dir.join("bench-0"), config).expect("create log")
}

fn bench_validate(c: &mut Criterion) {
    let records = build_test_batch(RECORDS_PER_BATCH, VALUE_BYTES, NOW_MS);
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Bytes(records.len() as u64));
    g.bench_function("produce_batch_16x1KiB", |b| {
        b.iter(|| validate_produce(black_box(&records), limits()).expect("valid"))
    });
    g.finish();
}

/// Appends `iters` batches, fsyncing every `fsync_every` appends (0 = never), timing only the
/// appends and fsyncs. The log is replaced, untimed, whenever it passes the cap.
fn append_run(iters: u64, fsync_every: u64) -> Duration {
    let (records, batches) = test_batch();
    let mut dir = bench_dir();
    let mut log = new_log(dir.path(), LogConfig::default());
    let mut written = 0u64;
    let mut total = Duration::ZERO;
    let mut since_sync = 0u64;
    let mut start = Instant::now();
    for _ in 0..iters {
        if written >= APPEND_LOG_CAP_BYTES {
            total += start.elapsed();
            drop(log);
            dir = bench_dir();
            log = new_log(dir.path(), LogConfig::default());
            written = 0;
            start = Instant::now();
        }
        black_box(
            log.append(&records, &batches, NOW_MS, 0, false)
                .expect("append"),
        );
        written += records.len() as u64;
        since_sync += 1;
        if fsync_every != 0 && since_sync >= fsync_every {
            log.sync().expect("fsync");
            since_sync = 0;
        }
    }
    total += start.elapsed();
    drop(log);
    drop(dir);
    total
}

fn bench_append(c: &mut Criterion) {
    let batch_len = test_batch().0.len() as u64;
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Bytes(batch_len));
    for (name, every) in [
        ("no_fsync", 0u64),
        ("fsync_every_64", 64),
        ("fsync_every_1", 1),
    ] {
        g.bench_function(BenchmarkId::new("batch_16x1KiB", name), |b| {
            b.iter_custom(|iters| append_run(iters, every))
        });
    }
    g.finish();
}

/// A log of five full 8 MiB segments and a nearly full active one, plus the first offset of each
/// segment (the last one is the active segment).
struct FilledLog {
    _dir: TempDir,
    log: PartitionLog,
    segment_bases: Vec<i64>,
}

fn filled_log() -> FilledLog {
    let (records, batches) = test_batch();
    let dir = bench_dir();
    let config = LogConfig {
        segment_bytes: READ_SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let mut log = new_log(dir.path(), config);
    let batch_len = records.len() as u64;
    let mut segment_bases = vec![0i64];
    let mut in_segment = 0u64;
    // Fill READ_SEALED_SEGMENTS segments, then the active one until one more batch would roll it.
    loop {
        let rolls = in_segment > 0 && in_segment + batch_len > READ_SEGMENT_BYTES;
        if rolls {
            if segment_bases.len() > READ_SEALED_SEGMENTS {
                break;
            }
            // Mirror the log's roll rule to learn where each segment starts.
            segment_bases.push(log.log_end_offset());
            in_segment = 0;
        }
        log.append(&records, &batches, NOW_MS, 0, false)
            .expect("append");
        in_segment += batch_len;
    }
    log.sync().expect("fsync");
    assert_eq!(
        log.segment_count(),
        segment_bases.len(),
        "segment bases mirror the roll rule"
    );
    FilledLog {
        _dir: dir,
        log,
        segment_bases,
    }
}

fn read_len(log: &PartitionLog, from: i64, max_bytes: u64) -> Bytes {
    let end = log.log_end_offset();
    let bytes = log.read(from, end, max_bytes, true).expect("read");
    assert!(!bytes.is_empty(), "read at {from} returned nothing");
    bytes
}

/// Registers a zero-copy read of `[from, end)` within 1 MiB, and the same read followed by a
/// copy of the bytes into a user-space buffer (what a `write` of the response costs at least).
fn bench_read_at(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    log: &PartitionLog,
    name: &str,
    mut next_from: impl FnMut() -> i64,
) {
    let end = log.log_end_offset();
    let first = next_from();
    let bytes = read_len(log, first, ONE_MIB).len() as u64;
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(BenchmarkId::new(name, "zero_copy"), |b| {
        b.iter(|| black_box(log.read(next_from(), end, ONE_MIB, true).expect("read")))
    });
    let mut buf: Vec<u8> = Vec::with_capacity(2 * ONE_MIB as usize);
    g.bench_function(BenchmarkId::new(name, "copy"), |b| {
        b.iter(|| {
            let bytes = log.read(next_from(), end, ONE_MIB, true).expect("read");
            buf.clear();
            buf.extend_from_slice(&bytes);
            black_box(&buf);
        })
    });
}

fn bench_read(c: &mut Criterion) {
    let filled = filled_log();
    let log = &filled.log;
    let end = log.log_end_offset();
    let per_batch = RECORDS_PER_BATCH as i64;
    let batches_per_mib = (ONE_MIB / test_batch().0.len() as u64) as i64;
    let sealed = filled.segment_bases[..filled.segment_bases.len() - 1].to_vec();
    let active_base = *filled.segment_bases.last().expect("a segment");
    assert!(sealed.len() >= 2, "the filled log has sealed segments");

    let mut g = c.benchmark_group("read");

    // 1 MiB from the middle of each sealed segment in turn (an index lookup, then a walk over
    // batch headers): a consumer catching up on old data.
    let mid = (READ_SEGMENT_BYTES / 2 / test_batch().0.len() as u64) as i64 * per_batch;
    let mut i = 0usize;
    bench_read_at(&mut g, log, "sealed_1MiB", move || {
        i = (i + 1) % sealed.len();
        sealed[i] + mid
    });

    // 1 MiB from the middle of the (nearly full) active segment.
    bench_read_at(&mut g, log, "active_1MiB", move || active_base + mid);

    // The last ~1 MiB before the log end: a consumer slightly behind.
    let tail_from = (end - batches_per_mib * per_batch).max(active_base);
    bench_read_at(&mut g, log, "tail_1MiB", move || tail_from);

    // Only the newest batch: a caught-up consumer.
    bench_read_at(&mut g, log, "tail_last_batch", move || end - per_batch);
    g.finish();
}

fn config() -> Criterion {
    // Short by default: the benchmarks run on shared 2-core machines.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_validate, bench_append, bench_read
}
criterion_main!(benches);
