//! Power-loss simulation: hundreds of crash points, each losing everything not yet fsync'd
//! and tearing what was written after the last fsync at a random byte.
//!
//! Each crash point: a fresh log with small segments (so rolls, and their fsyncs, happen),
//! a seeded random run of appends with an fsync now and then (an fsync is what makes an
//! `acks=all` produce acknowledged), then a power cut through the [`WriteObserver`] seam:
//! the log is dropped without closing, every segment file is cut back to its durable length
//! plus a random part of the bytes written after it (optionally with its last bytes zeroed,
//! as a torn sector), a never-synced newest segment may vanish, the active segment's
//! indexes are garbled, and the log is reopened as after a crash. Checked:
//! - every acknowledged batch is there, at its offset, byte for byte;
//! - every batch the reopened log serves passes its CRC and was appended at that offset;
//!   offsets are contiguous from 0 up to the acknowledged end (past it, a rolled segment
//!   that was never fsync'd may have lost its data while a later one kept some: a hole in
//!   unacknowledged data, which readers skip);
//! - the log accepts appends again, continuing at its end.
//!
//! Rolls do not fsync (the flusher does, later: `deferred_sync`), so sealed segments are
//! cut and torn too, and recovery must check every segment above the recovery point.
//!
//! `KLAMM_POWER_LOSS_POINTS` (default 300) and `KLAMM_POWER_LOSS_SEED` (printed) tune it.

use klamm_log::durability::WriteObserver;
use klamm_log::{LogConfig, PartitionLog};
use klamm_protocol::batch::{self, ProduceLimits};
use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Per file: bytes written so far (the file's length in the page cache) and the durable
/// length.
#[derive(Default)]
struct Disk {
    files: Mutex<HashMap<PathBuf, (u64, u64)>>,
}

impl WriteObserver for Disk {
    fn written(&self, path: &Path, position: u64, len_bytes: u64) {
        let mut files = self.files.lock().unwrap();
        let e = files.entry(path.to_path_buf()).or_default();
        e.0 = e.0.max(position + len_bytes);
    }
    fn truncated(&self, path: &Path, len_bytes: u64) {
        let mut files = self.files.lock().unwrap();
        let e = files.entry(path.to_path_buf()).or_default();
        e.0 = len_bytes;
        e.1 = e.1.min(len_bytes);
    }
    fn synced(&self, path: &Path) {
        let mut files = self.files.lock().unwrap();
        let e = files.entry(path.to_path_buf()).or_default();
        e.1 = e.0;
    }
}

/// A small deterministic generator (xorshift64*): no dependency, reproducible by seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

fn append(log: &mut PartitionLog, rng: &mut Rng, n: i64) -> (i64, Vec<u8>) {
    let records = 1 + rng.below(5) as i32;
    let value_bytes = rng.below(400) as usize;
    let b = batch::build_test_batch(records, value_bytes, 1_700_000_000_000 + n);
    let limits = ProduceLimits {
        max_batch_bytes: 1 << 20,
        produce_version: 9,
    };
    let batches = batch::validate_produce(&b, limits).unwrap();
    let info = log.append(&b, &batches, 0, 0, false).unwrap();
    // Offsets and epoch are stamped into the first 16 bytes; the rest is what must survive.
    (info.base_offset, b[16..].to_vec())
}

/// Cuts `path` to its durable length plus a torn part of its unsynced tail.
fn power_cut(path: &Path, written: u64, durable: u64, rng: &mut Rng) {
    if !path.exists() {
        return;
    }
    if durable == 0 && written > 0 && rng.below(4) == 0 {
        // A file never fsync'd may not exist at all after the cut.
        std::fs::remove_file(path).unwrap();
        return;
    }
    let kept = durable + rng.below(written - durable + 1);
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(kept).unwrap();
    use std::os::unix::fs::FileExt;
    if kept > durable && rng.below(2) == 0 {
        // A torn sector: the last few bytes that made it are zeros.
        let zeros = rng.below((kept - durable).min(512)) + 1;
        f.write_all_at(&vec![0u8; zeros as usize], kept - zeros)
            .unwrap();
    }
    if kept > durable && rng.below(4) == 0 {
        // A block that was never written holds what it held before: one garbage byte
        // somewhere in the unsynced part (whole batches included, which only a CRC check
        // finds). Not in a batch's first 12 bytes: its base offset and length are outside
        // the batch CRC in Kafka's format, so damage there can pass every check (a batch
        // at a wrong offset) — a limit of the format this rig does not model.
        let at = durable + rng.below(kept - durable);
        let bytes = std::fs::read(path).unwrap();
        let in_offset_or_length =
            batch::headers(&bytes).any(|(pos, _)| (pos as u64..pos as u64 + 12).contains(&at));
        if !in_offset_or_length {
            f.write_all_at(&[0xa5], at).unwrap();
        }
    }
}

/// What one crash point did: batches appended, batches read back, and whether recovery
/// cut a sealed segment (and dropped the segments after it).
struct Outcome {
    appended: usize,
    read_back: usize,
    sealed_cut: bool,
}

fn crash_point(seed: u64) -> Result<Outcome, String> {
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let disk = Arc::new(Disk::default());
    let mut log = PartitionLog::create(&pdir, config()).unwrap();
    log.set_write_observer(disk.clone());

    let mut sent: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut acked_end = 0i64;
    let ops = 5 + rng.below(120) as i64;
    for n in 0..ops {
        let (base, rest) = append(&mut log, &mut rng, n);
        sent.insert(base, rest);
        if rng.below(6) == 0 {
            acked_end = log.sync().unwrap();
        }
    }
    drop(log); // power cut: no close, no flush
    let mut files: Vec<(PathBuf, (u64, u64))> = disk
        .files
        .lock()
        .unwrap()
        .iter()
        .map(|(p, s)| (p.clone(), *s))
        .collect();
    // In name order, so a seed replays the same cuts (a HashMap's order is random).
    files.sort();
    for (path, (written, durable)) in files {
        power_cut(&path, written, durable, &mut rng);
    }
    // Index files are mapped and fsync'd only after a roll (sealed ones) or never (the
    // active one's): garble whatever there is of them.
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        let is_index = p
            .extension()
            .is_some_and(|e| e == "index" || e == "timeindex");
        if is_index && rng.below(3) == 0 {
            let len = std::fs::metadata(&p).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(rng.below(len + 1))
                .unwrap();
        }
    }

    let (mut log, report) =
        PartitionLog::open(&pdir, config(), false).map_err(|e| format!("reopen failed: {e}"))?;
    let end = log.log_end_offset();
    if end < acked_end {
        return Err(format!("log ends at {end}, {acked_end} were acknowledged"));
    }
    let start = log.log_start_offset();
    if start > 0 && acked_end > 0 {
        return Err(format!(
            "log starts at {start}, {acked_end} were acknowledged"
        ));
    }
    // Read everything back: contiguous up to the acknowledged end, CRC-valid, acknowledged
    // batches intact.
    let mut offset = start;
    let mut batches_read = 0;
    while offset < end {
        let bytes = log
            .read(offset, end, 1 << 20, true)
            .map_err(|e| format!("read at {offset}: {e}"))?;
        if bytes.is_empty() && offset >= acked_end {
            // A hole at the tail (a rolled segment's data lost, the next one empty):
            // readers wait there for new data, which is served past the hole.
            break;
        }
        if bytes.is_empty() {
            return Err(format!("nothing served at {offset} below the end {end}"));
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let h = batch::check_batch(&bytes[pos..])
                .map_err(|e| format!("served a bad batch at offset {offset}: {e}"))?;
            let hole_past_acks = h.base_offset > offset && offset >= acked_end;
            if h.base_offset != offset && !hole_past_acks {
                return Err(format!(
                    "batch at {} where {offset} was expected",
                    h.base_offset
                ));
            }
            let total = h.total_bytes();
            if let Some(rest) = sent.get(&h.base_offset) {
                if &bytes[pos + 16..pos + total] != rest.as_slice() {
                    return Err(format!("batch at {offset} differs from what was appended"));
                }
            } else {
                return Err(format!("batch at {offset} was never appended"));
            }
            offset = h.last_offset() + 1;
            pos += total;
            batches_read += 1;
        }
    }
    // And it takes appends again, at its end.
    let (base, _) = append(&mut log, &mut rng, ops);
    if base != end {
        return Err(format!("append after recovery went to {base}, not {end}"));
    }
    Ok(Outcome {
        appended: ops as usize,
        read_back: batches_read,
        sealed_cut: report
            .reason
            .is_some_and(|r| r.contains("after it deleted")),
    })
}

#[test]
fn acknowledged_data_survives_power_loss_and_nothing_bad_is_served() {
    let points: u64 = std::env::var("KLAMM_POWER_LOSS_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("KLAMM_POWER_LOSS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("power-loss seed {seed} (rerun: KLAMM_POWER_LOSS_SEED={seed}), {points} crash points");
    let mut failures = Vec::new();
    let (mut appended, mut recovered, mut sealed_cuts) = (0, 0, 0);
    for i in 0..points {
        let point_seed = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        match crash_point(point_seed) {
            Ok(o) => {
                appended += o.appended;
                recovered += o.read_back;
                sealed_cuts += o.sealed_cut as usize;
            }
            Err(e) => failures.push(format!("crash point {i} (seed {point_seed}): {e}")),
        }
    }
    println!(
        "power loss: {points} crash points, {appended} batches appended, {recovered} read back \
         after recovery, {sealed_cuts} with a sealed segment cut, {} violations",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // About one crash point in four tears a rolled, not yet fsync'd segment.
    assert!(
        points < 100 || sealed_cuts > 0,
        "no crash point tore a sealed segment: the rig no longer tests deferred roll fsyncs"
    );
    assert!(recovered > 0, "the rig recovered nothing at all");
}
