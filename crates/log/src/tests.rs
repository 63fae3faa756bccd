use super::*;
use klamm_protocol::batch::{build_test_batch, validate_produce, ProduceLimits};

const LIMITS: ProduceLimits = ProduceLimits {
    max_batch_bytes: 1 << 20,
    produce_version: 9,
};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: u64::MAX / 4,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
    }
}

fn append(log: &mut PartitionLog, records: i32, ts: i64) -> AppendInfo {
    let batch = build_test_batch(records, 100, ts);
    let parsed = validate_produce(&batch, LIMITS).unwrap();
    log.append(&batch, &parsed, ts, 0, false).unwrap()
}

fn offsets_in(bytes: &[u8]) -> Vec<(i64, i64)> {
    batch::headers(bytes)
        .map(|(_, h)| (h.base_offset, h.last_offset()))
        .collect()
}

#[test]
fn append_read_roll_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    for i in 0..100 {
        let info = append(&mut log, 3, 1000 + i);
        assert_eq!(info.base_offset, i * 3);
    }
    assert_eq!(log.log_end_offset(), 300);
    assert!(
        log.segment_count() > 5,
        "rolled into {} segments",
        log.segment_count()
    );
    // Reads start at the batch holding the offset and return whole batches.
    let got = log.read(151, 300, 1 << 20, true).unwrap();
    let offs = offsets_in(&got);
    assert_eq!(offs[0], (150, 152));
    for b in batch::headers(&got) {
        batch::check_batch(&got[b.0..]).unwrap();
    }
    // At-least-one: a tiny max_bytes still returns one whole batch.
    assert_eq!(offsets_in(&log.read(0, 300, 1, true).unwrap()).len(), 1);
    assert!(log.read(0, 300, 1, false).unwrap().is_empty());
    // The upper bound (high watermark) is respected.
    let capped = log.read(0, 6, 1 << 20, true).unwrap();
    assert_eq!(offsets_in(&capped), vec![(0, 2), (3, 5)]);
    assert!(log.read(300, 300, 100, true).unwrap().is_empty());
    assert!(matches!(
        log.read(301, 400, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));

    // Sealed segments hold one descriptor (their log); their indexes live on the maps.
    let sealed = log.segment_count() - 1;
    assert_eq!(log.open_files(), sealed + 3);
    log.close().unwrap();
    drop(log);
    for clean in [true, false] {
        let (log, report) = PartitionLog::open(&pdir, small_config(), clean).unwrap();
        assert_eq!(log.log_end_offset(), 300, "clean={clean}");
        assert_eq!(log.open_files(), sealed + 3, "clean={clean}");
        assert_eq!(report.truncated_bytes, 0);
        let all: Vec<_> = (0..100).map(|i| (i * 3, i * 3 + 2)).collect();
        let mut seen = Vec::new();
        let mut at = 0;
        while at < 300 {
            let bytes = log.read(at, 300, 1 << 20, true).unwrap();
            let offs = offsets_in(&bytes);
            at = offs.last().unwrap().1 + 1;
            seen.extend(offs);
        }
        assert_eq!(seen, all);
    }
}

#[test]
fn recovery_truncates_torn_and_corrupt_tails() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, LogConfig::default()).unwrap();
    for i in 0..10 {
        append(&mut log, 2, i);
    }
    let path = pdir.join("00000000000000000000.log");
    let full = fs::metadata(&path).unwrap().len();
    drop(log);

    // A torn write: half a batch at the end.
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full - 50).unwrap();
    let (log, report) = PartitionLog::open(&pdir, LogConfig::default(), false).unwrap();
    assert_eq!(log.log_end_offset(), 18);
    assert!(report.truncated_bytes > 0 && report.reason.is_some());
    drop(log);

    // A flipped bit in the 5th batch: everything from it on is cut.
    let mut bytes = fs::read(&path).unwrap();
    let batch_len = bytes.len() / 9;
    bytes[4 * batch_len + 70] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let (mut log, report) = PartitionLog::open(&pdir, LogConfig::default(), false).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert!(report.reason.unwrap().contains("CRC"));
    // Appends continue after the cut with the next offset.
    assert_eq!(append(&mut log, 1, 99).base_offset, 8);
}

#[test]
fn timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), small_config()).unwrap();
    for i in 0..50 {
        append(&mut log, 2, 1000 + i * 10);
    }
    // The batch of timestamp 1000+i*10 holds offsets 2i, 2i+1 (all records share it).
    assert_eq!(log.offset_for_timestamp(0, 100).unwrap(), Some((0, 1000)));
    assert_eq!(
        log.offset_for_timestamp(1000, 100).unwrap(),
        Some((0, 1000))
    );
    assert_eq!(
        log.offset_for_timestamp(1001, 100).unwrap(),
        Some((2, 1010))
    );
    assert_eq!(
        log.offset_for_timestamp(1250, 100).unwrap(),
        Some((50, 1250))
    );
    assert_eq!(log.offset_for_timestamp(1491, 100).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(1250, 50).unwrap(), None);
    assert_eq!(log.max_timestamp_record(100).unwrap(), Some((98, 1490)));
}

#[test]
fn log_append_time_rewrites_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::create(&dir.path().join("t-0"), LogConfig::default()).unwrap();
    let batch = build_test_batch(2, 10, 5);
    let parsed = validate_produce(&batch, LIMITS).unwrap();
    let info = log.append(&batch, &parsed, 777, 0, true).unwrap();
    assert_eq!(info.log_append_time_ms, Some(777));
    let got = log.read(0, 10, 1 << 20, true).unwrap();
    let h = batch::check_batch(&got).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 777);
}

#[test]
fn segment_ms_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config).unwrap();
    append(&mut log, 1, 1000);
    append(&mut log, 1, 1050);
    assert_eq!(log.segment_count(), 1);
    let batch = build_test_batch(1, 10, 1200);
    let parsed = validate_produce(&batch, LIMITS).unwrap();
    log.append(&batch, &parsed, 1200, 0, false).unwrap();
    assert_eq!(log.segment_count(), 2);
}

/// Batches without a timestamp (-1: magic 0 data up-converted) do not make every append
/// roll: such a segment ages from its first append, as Kafka ages it from its creation.
#[test]
fn segment_ms_ages_a_segment_without_timestamps_from_its_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::create(&dir.path().join("t-0"), config).unwrap();
    let untimed = |log: &mut PartitionLog, now_ms: i64| {
        let batch = build_test_batch(1, 10, -1);
        let parsed = validate_produce(&batch, LIMITS).unwrap();
        log.append(&batch, &parsed, now_ms, 0, false).unwrap();
    };
    untimed(&mut log, 5_000);
    untimed(&mut log, 5_010);
    untimed(&mut log, 5_100);
    assert_eq!(
        log.segment_count(),
        1,
        "appends within segment.ms of the first"
    );
    untimed(&mut log, 5_101);
    assert_eq!(log.segment_count(), 2, "segment.ms after the first append");
}

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, records: i32) -> Vec<u8> {
    let mut b = build_test_batch(records, 10, 1);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn append_bytes(log: &mut PartitionLog, b: &[u8]) -> Result<AppendInfo, AppendError> {
    let parsed = validate_produce(b, LIMITS).unwrap();
    log.append(b, &parsed, 1, 0, false)
}

#[test]
fn idempotent_retries_are_not_written_twice_even_after_restart() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("t-0");
        let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
        append(&mut log, 2, 1); // a plain producer's batch at offsets 0..=1
        let first = idempotent_batch(5, 0, 0, 3);
        assert_eq!(append_bytes(&mut log, &first).unwrap().base_offset, 2);
        let retry = append_bytes(&mut log, &first).unwrap();
        assert!(retry.duplicate);
        assert_eq!((retry.base_offset, retry.last_offset), (2, 4));
        assert_eq!(log.log_end_offset(), 5);
        // Roll a few segments so the snapshot and the replayed tail both matter.
        for i in 0..40 {
            append(&mut log, 3, i);
        }
        let second = idempotent_batch(5, 0, 3, 2);
        let at = append_bytes(&mut log, &second).unwrap().base_offset;
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let (mut log, _) = PartitionLog::open(&pdir, small_config(), clean).unwrap();
        let end = log.log_end_offset();
        let retry = append_bytes(&mut log, &second).unwrap();
        assert!(retry.duplicate, "clean={clean}");
        assert_eq!(retry.base_offset, at);
        assert_eq!(log.log_end_offset(), end);
        let gap = idempotent_batch(5, 0, 9, 1);
        assert!(matches!(
            append_bytes(&mut log, &gap),
            Err(AppendError::Producer(
                producer_state::ProducerError::OutOfOrder {
                    expected: 5,
                    got: 9
                }
            ))
        ));
        let zombie = idempotent_batch(5, -1, 5, 1);
        assert!(matches!(
            append_bytes(&mut log, &zombie),
            Err(AppendError::Producer(_))
        ));
    }
}

#[test]
fn retention_deletes_old_and_excess_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    for i in 0..60 {
        append(&mut log, 3, 1000 + i * 100);
    }
    let segments = log.segment_count();
    assert!(segments > 4);
    // By time: everything older than 4000 ms at now = 8000 (batches carry 1000..6900).
    let deleted = log.apply_retention(8000, 4000, -1).unwrap();
    assert!(deleted > 0);
    let start = log.log_start_offset();
    assert!(start > 0 && log.read(start, 1000, 1 << 20, true).is_ok());
    assert!(matches!(
        log.read(start - 1, 1000, 1 << 20, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!pdir.join("00000000000000000000.log").exists());
    // By size: down to the active segment, never beyond it.
    log.apply_retention(8000, -1, 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    // An idle active segment whose data has all expired is rolled and deleted.
    let end_before = log.log_end_offset();
    assert_eq!(log.apply_retention(1_000_000, 1000, -1).unwrap(), 1);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (end_before, end_before)
    );
    assert_eq!(log.log_start_offset(), log.active().base_offset());
    // Nothing expires when retention is off, and the log survives a reopen.
    assert_eq!(log.apply_retention(i64::MAX, -1, -1).unwrap(), 0);
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    let (log, _) = PartitionLog::open(&pdir, small_config(), true).unwrap();
    assert_eq!((log.log_end_offset(), log.segment_count()), (end, 1));
}

#[test]
fn delete_records_moves_the_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    for i in 0..40 {
        append(&mut log, 3, i);
    }
    let segments = log.segment_count();
    assert_eq!(log.delete_records_before(50).unwrap(), 50);
    assert_eq!(log.log_start_offset(), 50);
    assert!(log.segment_count() < segments);
    assert!(matches!(
        log.read(49, 120, 1 << 20, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(50, 120, 1 << 20, true).is_ok());
    assert_eq!(
        log.delete_records_before(10).unwrap(),
        50,
        "the start never moves back"
    );
    drop(log);
    let (log, _) = PartitionLog::open(&pdir, small_config(), false).unwrap();
    assert_eq!(log.log_start_offset(), 50);
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, records: i32) -> Vec<u8> {
    let mut b = build_test_batch(records, 10, 1);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes()); // transactional
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn markers_stable_offset_and_aborted_index_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    // Producer 1 commits [0, 2], producer 2 aborts [3, 5] around a plain batch at 6.
    append_bytes(&mut log, &txn_batch(1, 0, 0, 3)).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(0));
    append_bytes(&mut log, &txn_batch(2, 0, 0, 3)).unwrap();
    append(&mut log, 1, 1);
    assert_eq!(log.append_marker((1, 0), true, 0, 2, 0).unwrap(), 7);
    // Producer 2's transaction still holds the stable offset.
    assert_eq!(log.first_unstable_offset(), Some(3));
    assert_eq!(log.append_marker((2, 0), false, 0, 2, 0).unwrap(), 8);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.aborted_transactions(0, 9), vec![(2, 3)]);
    assert_eq!(log.aborted_transactions(9, 20), vec![]);
    // A marker is a control batch with Kafka's marker record.
    let read = log.read(7, 9, 1 << 20, true).unwrap();
    let markers: Vec<Option<bool>> = batch::headers(&read)
        .map(|(pos, h)| batch::marker_of(&read[pos..pos + h.total_bytes()]))
        .collect();
    assert_eq!(markers, vec![Some(true), Some(false)]);
    // Producer 3 leaves a transaction open; then the broker crashes (no close).
    append_bytes(&mut log, &txn_batch(3, 0, 0, 2)).unwrap();
    drop(log);
    let _ = std::fs::remove_file(txn_index::path(&pdir, 0));
    let (log, _) = PartitionLog::open(&pdir, small_config(), false).unwrap();
    assert_eq!(log.aborted_transactions(0, 20), vec![(2, 3)]);
    assert_eq!(log.first_unstable_offset(), Some(9));
    assert!(txn_index::path(&pdir, 0).exists(), "the index is rebuilt");
    // A fenced producer's marker bumps its epoch: the zombie's next batch is refused.
    let mut log = log;
    log.append_marker((3, 1), false, 0, 3, 0).unwrap();
    assert_eq!(log.aborted_transactions(11, 20), vec![(3, 9)]);
    assert!(matches!(
        append_bytes(&mut log, &txn_batch(3, 0, 2, 1)),
        Err(AppendError::Producer(
            producer_state::ProducerError::StaleEpoch { .. }
        ))
    ));
    // A clean close and reopen keeps everything.
    log.close().unwrap();
    drop(log);
    let (log, _) = PartitionLog::open(&pdir, small_config(), true).unwrap();
    assert_eq!(log.aborted_transactions(0, 20), vec![(2, 3), (3, 9)]);
    assert_eq!(log.first_unstable_offset(), None);
}

/// Flips one record byte (not a header byte) of the middle batch of the segment at `base`:
/// damage only a CRC check finds.
fn corrupt_middle(dir: &Path, base: i64) {
    use std::os::unix::fs::FileExt;
    let path = dir.join(segment::file_stem(base)).with_extension("log");
    let bytes = fs::read(&path).unwrap();
    let batches: Vec<_> = batch::headers(&bytes).collect();
    let (pos, h) = batches[batches.len() / 2];
    let at = (pos + h.total_bytes() - 5) as u64;
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[bytes[at as usize] ^ 0xff], at).unwrap();
}

#[test]
fn a_roll_fsyncs_nothing_and_recovery_checks_every_segment_above_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    for i in 0..40 {
        append(&mut log, 3, 1000 + i);
    }
    let bases: Vec<i64> = log.segments.keys().copied().collect();
    assert!(bases.len() >= 3, "rolled into {bases:?}");
    // The rolls wait for a flush; nothing below the first roll is known durable yet.
    assert!(log.has_pending_rolls());
    assert_eq!(log.recovery_point(), 0);
    let target = log.flush_target();
    assert_eq!(target.covered, log.log_end_offset());
    target.sync().unwrap();
    log.mark_synced(&target);
    assert!(!log.has_pending_rolls());
    let active_base = *bases.last().unwrap();
    assert_eq!(log.recovery_point(), active_base);
    assert_eq!(deferred_sync::read_recovery_point(&pdir), Some(active_base));
    // Two more rolls, not flushed: a crash now, with the sealed, never fsync'd segment
    // damaged mid-file.
    let end_before = log.log_end_offset();
    while log.segments.len() < bases.len() + 2 {
        append(&mut log, 3, 2000);
    }
    let unsynced: Vec<i64> = log
        .segments
        .keys()
        .copied()
        .filter(|b| *b >= active_base)
        .collect();
    drop(log);
    assert_eq!(unsynced.len(), 3, "{unsynced:?}");
    corrupt_middle(&pdir, unsynced[1]);
    let (log, report) = PartitionLog::open(&pdir, small_config(), false).unwrap();
    // The damaged segment was above the recovery point, so it was checked and cut, and the
    // segments after it are gone; everything that was flushed is intact.
    assert!(report.truncated_bytes > 0, "{report:?}");
    assert!(
        report
            .reason
            .as_deref()
            .unwrap()
            .contains("after it deleted"),
        "{report:?}"
    );
    let end = log.log_end_offset();
    assert!(
        end >= end_before && end < unsynced[2],
        "end {end}, {unsynced:?}"
    );
    assert_eq!(log.segments.keys().next_back(), Some(&unsynced[1]));
    let mut offset = 0;
    while offset < end {
        let got = log.read(offset, end, 1 << 20, true).unwrap();
        offset = offsets_in(&got).last().unwrap().1 + 1;
    }
    // And it is writable again at its end.
    drop(log);
    let (mut log, _) = PartitionLog::open(&pdir, small_config(), false).unwrap();
    assert_eq!(append(&mut log, 1, 3000).base_offset, end);
}

#[test]
fn segments_below_the_recovery_point_are_trusted_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    for i in 0..40 {
        append(&mut log, 3, 1000 + i);
    }
    let end = log.sync().unwrap();
    let first = *log.segments.keys().next().unwrap();
    drop(log);
    corrupt_middle(&pdir, first);
    // Not scanned at open (it was durable before the crash, so it is trusted): the damage
    // is found by the read instead, and refused rather than served.
    let (log, report) = PartitionLog::open(&pdir, small_config(), false).unwrap();
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(log.log_end_offset(), end);
    let mut offset = 0;
    let refused = loop {
        match log.read(offset, end, 1 << 20, true) {
            Ok(got) => offset = offsets_in(&got).last().unwrap().1 + 1,
            Err(e) => break e,
        }
    };
    assert!(refused.to_string().contains("corrupt"), "{refused}");
}

#[test]
fn a_planned_read_runs_on_the_segments_as_they_were_planned() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let mut log = PartitionLog::create(&pdir, small_config()).unwrap();
    for i in 0..60 {
        append(&mut log, 3, 1000 + i * 100);
    }
    let end = log.log_end_offset();
    let expected = log.read(0, end, 1 << 20, true).unwrap();
    // Planned (as under the partition lock), then the log moves on before the read runs:
    // more appends, and retention deleting the very segment the read starts in.
    let plan = log.plan_read(0, end, 1 << 20, true).unwrap();
    for i in 0..10 {
        append(&mut log, 3, 9000 + i);
    }
    assert!(log.apply_retention(1_000_000, 1000, -1).unwrap() > 0);
    assert!(!pdir.join("00000000000000000000.log").exists());
    let got = plan.run().unwrap();
    assert_eq!(
        got, expected,
        "the planned read serves the bytes as they were"
    );
    assert_eq!(offsets_in(&got)[0].0, 0);
    // Nothing appended after the plan is in it, even from the same segment.
    assert!(offsets_in(&got).iter().all(|(_, last)| *last < end));
}
