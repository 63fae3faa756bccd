//! Read-only verification of segment files, for offline tools (`klamm debug dump-segment`,
//! `klamm debug check-dir`). Unlike [`crate::segment::Segment::open`], nothing here writes,
//! truncates or maps a file for writing: files are read into memory and checked.
//!
//! Checks: every batch is whole, magic 2, CRC32C-valid; offsets increase across batches and
//! start at or after the segment's base offset; index entries point at batch starts with the
//! right offsets; time index entries are ordered and inside the segment.

use klamm_protocol::batch::{self, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One batch found in a log file.
#[derive(Debug, Clone)]
pub struct BatchEntry {
    pub position: u64,
    pub header: BatchHeader,
    /// Why the batch fails its checks (CRC, magic), if it does.
    pub error: Option<String>,
}

/// What a log file holds and what is wrong with it.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    pub path: PathBuf,
    /// From the file name (`00000000000000000042.log` → 42), if it follows Kafka's naming.
    pub base_offset: Option<i64>,
    pub size_bytes: u64,
    pub batches: Vec<BatchEntry>,
    /// Offset after the last batch, if any.
    pub next_offset: Option<i64>,
    pub problems: Vec<String>,
}

impl SegmentReport {
    pub fn records(&self) -> i64 {
        self.batches
            .iter()
            .map(|b| b.header.records_count as i64)
            .sum()
    }
}

/// Reads and checks one `.log` file.
pub fn verify_log_file(path: &Path) -> io::Result<SegmentReport> {
    let data = fs::read(path)?;
    let base_offset = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| s.len() == 20)
        .and_then(|s| s.parse::<i64>().ok());
    let mut report = SegmentReport {
        path: path.to_path_buf(),
        base_offset,
        size_bytes: data.len() as u64,
        batches: Vec::new(),
        next_offset: None,
        problems: Vec::new(),
    };
    let mut pos = 0usize;
    let mut expected_offset = base_offset;
    while pos < data.len() {
        let Some(header) = BatchHeader::parse(&data[pos..]) else {
            report.problems.push(format!(
                "position {pos}: {} trailing bytes, too few for a batch header (torn write)",
                data.len() - pos
            ));
            break;
        };
        let min_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
        if header.batch_length < min_length || pos + header.total_bytes() > data.len() {
            report.problems.push(format!(
                "position {pos}: batch_length {} does not fit the {} bytes left (torn write or corruption)",
                header.batch_length,
                data.len() - pos
            ));
            break;
        }
        let error = batch::check_batch(&data[pos..])
            .err()
            .map(|e| e.to_string());
        if let Some(e) = &error {
            report.problems.push(format!(
                "position {pos} (offset {}): {e}",
                header.base_offset
            ));
        }
        if let Some(expected) = expected_offset {
            if header.base_offset < expected {
                report.problems.push(format!(
                    "position {pos}: base offset {} is below {expected} (offsets must increase)",
                    header.base_offset
                ));
            }
        }
        if header.last_offset_delta < 0 {
            report.problems.push(format!(
                "position {pos}: negative last_offset_delta {}",
                header.last_offset_delta
            ));
        }
        expected_offset = Some(header.last_offset() + 1);
        report.batches.push(BatchEntry {
            position: pos as u64,
            header,
            error,
        });
        pos += header.total_bytes();
    }
    report.next_offset = report.batches.last().map(|b| b.header.last_offset() + 1);
    Ok(report)
}

/// Entries of an index file with `entry_bytes`-sized entries. A preallocated tail (all-zero
/// entries after the first, left by an index that was not trimmed) is not returned.
fn index_entries(data: &[u8], entry_bytes: usize) -> Vec<&[u8]> {
    let mut entries: Vec<&[u8]> = data.chunks_exact(entry_bytes).collect();
    while entries.len() > 1 && entries.last().is_some_and(|e| e.iter().all(|b| *b == 0)) {
        entries.pop();
    }
    entries
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

/// `(relative offset, position)` entries of an `.index` file.
pub fn read_offset_index(path: &Path) -> io::Result<Vec<(u32, u32)>> {
    let data = fs::read(path)?;
    Ok(index_entries(&data, 8)
        .into_iter()
        .map(|e| (be_u32(e), be_u32(&e[4..])))
        .collect())
}

/// `(timestamp, relative offset)` entries of a `.timeindex` file.
pub fn read_time_index(path: &Path) -> io::Result<Vec<(i64, u32)>> {
    let data = fs::read(path)?;
    Ok(index_entries(&data, 12)
        .into_iter()
        .map(|e| {
            (
                i64::from_be_bytes(e[..8].try_into().expect("8 bytes")),
                be_u32(&e[8..]),
            )
        })
        .collect())
}

/// Checks the `.index` and `.timeindex` next to a log file against its batches. Missing
/// index files are reported (Klamm always writes both).
pub fn verify_indexes(segment: &SegmentReport) -> Vec<String> {
    let mut problems = Vec::new();
    let base = segment.base_offset.unwrap_or(0);
    let index_path = segment.path.with_extension("index");
    match fs::metadata(&index_path).map(|m| m.len()) {
        Err(e) => problems.push(format!("{}: {e}", index_path.display())),
        Ok(len) if len % 8 != 0 => problems.push(format!(
            "{}: {len} bytes is not a whole number of 8-byte entries",
            index_path.display()
        )),
        Ok(_) => {}
    }
    if let Ok(entries) = read_offset_index(&index_path) {
        let mut previous: Option<(u32, u32)> = None;
        for (i, (relative, position)) in entries.iter().copied().enumerate() {
            let at = segment
                .batches
                .iter()
                .find(|b| b.position == position as u64);
            let problem = match at {
                None => Some(format!("position {position} is not the start of a batch")),
                Some(b) if b.header.base_offset != base + relative as i64 => Some(format!(
                    "offset {} but the batch there starts at {}",
                    base + relative as i64,
                    b.header.base_offset
                )),
                _ => None,
            }
            .or_else(|| match previous {
                Some((r, p)) if relative <= r || position <= p => {
                    Some("entries out of order".to_string())
                }
                _ => None,
            });
            if let Some(p) = problem {
                problems.push(format!("{} entry {i}: {p}", index_path.display()));
            }
            previous = Some((relative, position));
        }
    }
    let time_path = segment.path.with_extension("timeindex");
    match fs::metadata(&time_path).map(|m| m.len()) {
        Err(e) => problems.push(format!("{}: {e}", time_path.display())),
        Ok(len) if len % 12 != 0 => problems.push(format!(
            "{}: {len} bytes is not a whole number of 12-byte entries",
            time_path.display()
        )),
        Ok(_) => {}
    }
    if let Ok(entries) = read_time_index(&time_path) {
        let next = segment.next_offset.unwrap_or(base);
        let mut previous: Option<(i64, u32)> = None;
        for (i, (timestamp, relative)) in entries.iter().copied().enumerate() {
            let offset = base + relative as i64;
            let problem = if segment.batches.is_empty() {
                None
            } else if offset >= next {
                Some(format!("offset {offset} is past the segment's end {next}"))
            } else if previous.is_some_and(|(t, r)| timestamp < t || relative < r) {
                Some("entries out of order".to_string())
            } else {
                None
            };
            if let Some(p) = problem {
                problems.push(format!("{} entry {i}: {p}", time_path.display()));
            }
            previous = Some((timestamp, relative));
        }
    }
    problems
}

/// Every segment of one partition directory, in offset order, checked with its indexes and
/// for continuity (each segment starts at or after the previous one's end).
pub fn verify_partition_dir(dir: &Path) -> io::Result<Vec<SegmentReport>> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let mut reports = Vec::new();
    let mut previous_end: Option<i64> = None;
    let compacted_below = crate::cleaner::CleanerState::load(dir).first_dirty_offset;
    for log in logs {
        let mut report = verify_log_file(&log)?;
        let index_problems = verify_indexes(&report);
        report.problems.extend(index_problems);
        if let (Some(end), Some(base)) = (previous_end, report.base_offset) {
            if base < end {
                report.problems.push(format!(
                    "segment base offset {base} overlaps the previous segment, which ends at {end}"
                ));
            } else if base > end && base > compacted_below {
                // Compaction may leave gaps below its first dirty offset; anywhere else a
                // gap means a segment file was lost or cut short.
                report.problems.push(format!(
                    "offsets {end}..{base} are missing before this segment (a lost or \
                     truncated segment file?)"
                ));
            }
        }
        previous_end = report.next_offset.or(previous_end);
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_protocol::batch::{build_test_batch, stamp_offset_and_epoch};

    fn segment(dir: &Path, batches: &[(i64, i32)]) -> PathBuf {
        let mut bytes = Vec::new();
        for (base, count) in batches {
            let mut b = build_test_batch(*count, 10, 1_000);
            stamp_offset_and_epoch(&mut b, *base, 0);
            bytes.extend(b);
        }
        let path = dir.join("00000000000000000000.log");
        fs::write(&path, bytes).unwrap();
        fs::write(path.with_extension("index"), [0u8, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        fs::write(path.with_extension("timeindex"), []).unwrap();
        path
    }

    #[test]
    fn clean_segment() {
        let dir = tempfile::tempdir().unwrap();
        segment(dir.path(), &[(0, 2), (2, 3)]);
        let reports = verify_partition_dir(dir.path()).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].problems, Vec::<String>::new());
        assert_eq!((reports[0].records(), reports[0].next_offset), (5, Some(5)));
    }

    #[test]
    fn finds_crc_order_torn_tail_and_bad_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment(dir.path(), &[(0, 2), (1, 3)]);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        bytes.extend([0u8; 7]);
        fs::write(&path, &bytes).unwrap();
        fs::write(path.with_extension("index"), [0u8, 0, 0, 1, 0, 0, 0, 9]).unwrap();
        let report = &verify_partition_dir(dir.path()).unwrap()[0];
        let all = report.problems.join("\n");
        assert!(all.contains("CRC32C mismatch"), "{all}");
        assert!(all.contains("below 2"), "{all}");
        assert!(all.contains("7 trailing bytes"), "{all}");
        assert!(all.contains("not the start of a batch"), "{all}");
    }
}
