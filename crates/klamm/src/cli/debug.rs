//! `klamm debug dump-segment FILE` and `klamm debug check-dir DIR`: offline, read-only
//! inspection of a data directory (no broker needed; safe on a stopped broker's files).
//! `klamm debug dynamic-config list|delete DIR`: the dynamic broker configs stored in a
//! stopped broker's data directory, and the way out when one of them locks clients out.

use super::{print_json, Ctx, Table};
use anyhow::{Context, Result};
use clap::Subcommand;
use klamm_log::verify::{self, SegmentReport};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Print the batches of a .log file (offsets, timestamps, producer ids, CRC check), or
    /// the entries of an .index / .timeindex file. Exit 1 when something is corrupt.
    DumpSegment {
        /// A segment's .log, .index or .timeindex file.
        file: PathBuf,
        /// Also decode and print each record (offset, timestamp, key, value).
        #[arg(long)]
        records: bool,
    },
    /// Verify every segment and index of a data directory (log.dirs) or of one partition
    /// directory. Exit 1 when anything is corrupt.
    CheckDir {
        /// A log.dirs directory, or one <topic>-<partition> directory in it.
        dir: PathBuf,
    },
    /// Dynamic broker configs stored in a data directory (set by AlterConfigs /
    /// IncrementalAlterConfigs and restored at every start). Run on a STOPPED broker's
    /// directory: a running broker keeps its values and rewrites the file.
    #[command(subcommand)]
    DynamicConfig(DynamicConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum DynamicConfigCommand {
    /// Print every stored dynamic broker config: layer (cluster, or a broker id), key, value.
    List {
        /// The broker's log.dirs directory (holds klamm-metadata.json).
        dir: PathBuf,
    },
    /// Remove keys from the stored dynamic configs (every layer, unless --broker or
    /// --cluster names one), so the next start uses the static value. Exit 1 if a key was
    /// not stored.
    Delete {
        /// The broker's log.dirs directory (holds klamm-metadata.json).
        dir: PathBuf,
        /// Config keys to remove, e.g. max.connections.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Only this broker's own layer (resource "<id>").
        #[arg(long, conflicts_with = "cluster")]
        broker: Option<i32>,
        /// Only the cluster-wide layer (resource "").
        #[arg(long)]
        cluster: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: DebugCommand) -> Result<bool> {
    ctx.check_plain_format()?;
    match cmd {
        DebugCommand::DumpSegment { file, records } => dump(ctx, &file, records),
        DebugCommand::CheckDir { dir } => check_dir(ctx, &dir),
        DebugCommand::DynamicConfig(DynamicConfigCommand::List { dir }) => list_dynamic(ctx, &dir),
        DebugCommand::DynamicConfig(DynamicConfigCommand::Delete {
            dir,
            keys,
            broker,
            cluster,
        }) => {
            let layer = match (broker, cluster) {
                (Some(id), _) => Some(id.to_string()),
                (None, true) => Some(String::new()),
                (None, false) => None,
            };
            delete_dynamic(&dir, &keys, layer.as_deref())
        }
    }
}

/// The name operators see for a stored layer: `""` is the cluster-wide default.
fn layer_name(layer: &str) -> String {
    if layer.is_empty() {
        "(cluster)".to_string()
    } else {
        format!("broker {layer}")
    }
}

fn list_dynamic(ctx: &Ctx, dir: &Path) -> Result<bool> {
    let image = klamm_broker::metadata::MetadataStore::new(dir).load_existing()?;
    if ctx.json() {
        print_json(&json!(image.broker_configs));
        return Ok(true);
    }
    let mut table = Table::new(&["LAYER", "KEY", "VALUE"]);
    for (layer, values) in &image.broker_configs {
        for (key, value) in values {
            table.row(vec![layer_name(layer), key.clone(), value.clone()]);
        }
    }
    table.print();
    Ok(true)
}

fn delete_dynamic(dir: &Path, keys: &[String], layer: Option<&str>) -> Result<bool> {
    let store = klamm_broker::metadata::MetadataStore::new(dir);
    let mut image = store.load_existing()?;
    let mut all_found = true;
    for key in keys {
        let mut found = false;
        for (name, values) in image.broker_configs.iter_mut() {
            if layer.is_some_and(|l| l != name) {
                continue;
            }
            if let Some(old) = values.remove(key) {
                found = true;
                println!("deleted {key}={old} from {}", layer_name(name));
            }
        }
        if !found {
            all_found = false;
            eprintln!(
                "{key}: not stored as a dynamic config{}",
                match layer {
                    Some(l) => format!(" in {}", layer_name(l)),
                    None => String::new(),
                }
            );
        }
    }
    image.broker_configs.retain(|_, values| !values.is_empty());
    store.save(&mut image)?;
    Ok(all_found)
}

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn dump(ctx: &Ctx, file: &Path, with_records: bool) -> Result<bool> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("index") => return dump_offset_index(ctx, file),
        Some("timeindex") => return dump_time_index(ctx, file),
        _ => {}
    }
    let report =
        verify::verify_log_file(file).with_context(|| format!("reading {}", file.display()))?;
    let data = if with_records {
        std::fs::read(file)?
    } else {
        Vec::new()
    };
    let mut documents = Vec::new();
    let mut table = Table::new(&[
        "POSITION",
        "BASE-OFFSET",
        "LAST-OFFSET",
        "COUNT",
        "BASE-TIMESTAMP",
        "MAX-TIMESTAMP",
        "PRODUCER-ID",
        "EPOCH",
        "SEQUENCE",
        "CODEC",
        "FLAGS",
        "BYTES",
        "CRC",
    ]);
    for b in &report.batches {
        let h = &b.header;
        let codec = CODECS
            .get(h.compression_codec() as usize)
            .copied()
            .unwrap_or("?");
        let mut flags = Vec::new();
        if h.is_transactional() {
            flags.push("txn");
        }
        if h.is_control() {
            flags.push("control");
        }
        if h.is_log_append_time() {
            flags.push("log-append-time");
        }
        let crc = match &b.error {
            None => "ok".to_string(),
            Some(e) => ctx.paint_error(&format!("BAD ({e})")),
        };
        let records = if with_records && b.error.is_none() {
            decode_records(&data[b.position as usize..b.position as usize + h.total_bytes()])
        } else {
            Vec::new()
        };
        if ctx.json() {
            documents.push(json!({"position": b.position, "base_offset": h.base_offset,
                "last_offset": h.last_offset(), "records_count": h.records_count,
                "base_timestamp": h.base_timestamp, "max_timestamp": h.max_timestamp,
                "producer_id": h.producer_id, "producer_epoch": h.producer_epoch,
                "base_sequence": h.base_sequence, "partition_leader_epoch": h.partition_leader_epoch,
                "compression": codec, "transactional": h.is_transactional(), "control": h.is_control(),
                "bytes": h.total_bytes(), "crc": format!("{:#010x}", h.crc), "crc_ok": b.error.is_none(),
                "error": b.error, "records": records}));
            continue;
        }
        table.row(vec![
            b.position.to_string(),
            h.base_offset.to_string(),
            h.last_offset().to_string(),
            h.records_count.to_string(),
            h.base_timestamp.to_string(),
            h.max_timestamp.to_string(),
            h.producer_id.to_string(),
            h.producer_epoch.to_string(),
            h.base_sequence.to_string(),
            codec.to_string(),
            if flags.is_empty() {
                "-".into()
            } else {
                flags.join(",")
            },
            h.total_bytes().to_string(),
            crc,
        ]);
        for r in records {
            table.row(vec![
                String::new(),
                format!("  {}", r["offset"]),
                String::new(),
                String::new(),
                r["timestamp"].to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("key={} value={}", r["key"], r["value"]),
                String::new(),
                String::new(),
            ]);
        }
    }
    let ok = report.problems.is_empty();
    if ctx.json() {
        print_json(
            &json!({"file": file.display().to_string(), "base_offset": report.base_offset,
            "size_bytes": report.size_bytes, "batches": documents, "records": report.records(),
            "problems": report.problems, "ok": ok}),
        );
    } else {
        table.print();
        outln!();
        outln!(
            "{}: {} batches, {} records, {} bytes",
            file.display(),
            report.batches.len(),
            report.records(),
            report.size_bytes
        );
        for p in &report.problems {
            outln!("{}", ctx.paint_error(&format!("CORRUPT: {p}")));
        }
    }
    Ok(ok)
}

/// Records of one checked batch as JSON values (keys and values shown as lossy UTF-8).
fn decode_records(batch: &[u8]) -> Vec<Value> {
    let mut buf = bytes::Bytes::copy_from_slice(batch);
    let lossy =
        |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set
            .records
            .iter()
            .map(|r| {
                json!({"offset": r.offset, "timestamp": r.timestamp,
                            "key": lossy(&r.key), "value": lossy(&r.value),
                            "headers": r.headers.len()})
            })
            .collect(),
        Err(e) => vec![json!({"error": e.to_string()})],
    }
}

fn dump_offset_index(ctx: &Ctx, file: &Path) -> Result<bool> {
    let base = base_offset(file);
    let entries = verify::read_offset_index(file)?;
    if ctx.json() {
        let rows: Vec<Value> = entries
            .iter()
            .map(|(r, p)| json!({"offset": base + *r as i64, "position": p}))
            .collect();
        print_json(&json!({"file": file.display().to_string(), "entries": rows}));
    } else {
        let mut table = Table::new(&["OFFSET", "POSITION"]);
        for (r, p) in entries {
            table.row(vec![(base + r as i64).to_string(), p.to_string()]);
        }
        table.print();
    }
    Ok(true)
}

fn dump_time_index(ctx: &Ctx, file: &Path) -> Result<bool> {
    let base = base_offset(file);
    let entries = verify::read_time_index(file)?;
    if ctx.json() {
        let rows: Vec<Value> = entries
            .iter()
            .map(|(t, r)| json!({"timestamp": t, "offset": base + *r as i64}))
            .collect();
        print_json(&json!({"file": file.display().to_string(), "entries": rows}));
    } else {
        let mut table = Table::new(&["TIMESTAMP", "OFFSET"]);
        for (t, r) in entries {
            table.row(vec![t.to_string(), (base + r as i64).to_string()]);
        }
        table.print();
    }
    Ok(true)
}

fn base_offset(file: &Path) -> i64 {
    file.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Partition directories under `dir` (or `dir` itself when it holds segments).
fn partition_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let has_logs = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
        })
    };
    if has_logs(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && has_logs(p))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn check_dir(ctx: &Ctx, dir: &Path) -> Result<bool> {
    let dirs = partition_dirs(dir)?;
    if dirs.is_empty() {
        anyhow::bail!(
            "{}: no partition directories with .log segments (is this a log.dirs directory?)",
            dir.display()
        );
    }
    let mut table = Table::new(&[
        "PARTITION",
        "SEGMENTS",
        "BATCHES",
        "RECORDS",
        "OFFSETS",
        "BYTES",
        "STATUS",
    ]);
    let mut rows = Vec::new();
    let mut problems_total = 0;
    let mut details = Vec::new();
    for d in &dirs {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reports: Vec<SegmentReport> = verify::verify_partition_dir(d)?;
        let batches: usize = reports.iter().map(|r| r.batches.len()).sum();
        let records: i64 = reports.iter().map(|r| r.records()).sum();
        let bytes: u64 = reports.iter().map(|r| r.size_bytes).sum();
        let first = reports
            .iter()
            .find_map(|r| r.batches.first().map(|b| b.header.base_offset));
        let end = reports.iter().rev().find_map(|r| r.next_offset);
        let offsets = match (first, end) {
            (Some(a), Some(b)) => format!("[{a}, {b})"),
            _ => "-".to_string(),
        };
        let problems: Vec<String> = reports
            .iter()
            .flat_map(|r| {
                let file = r
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = name.clone();
                r.problems
                    .iter()
                    .map(move |p| format!("{name}/{file}: {p}"))
            })
            .collect();
        problems_total += problems.len();
        let status = if problems.is_empty() {
            "OK".to_string()
        } else {
            ctx.paint_error(&format!("CORRUPT ({} problems)", problems.len()))
        };
        table.row(vec![
            name.clone(),
            reports.len().to_string(),
            batches.to_string(),
            records.to_string(),
            offsets,
            bytes.to_string(),
            status,
        ]);
        rows.push(
            json!({"partition": name, "segments": reports.len(), "batches": batches,
            "records": records, "first_offset": first, "end_offset": end, "bytes": bytes,
            "ok": problems.is_empty(), "problems": problems}),
        );
        details.extend(problems);
    }
    if ctx.json() {
        print_json(
            &json!({"dir": dir.display().to_string(), "partitions": rows,
                           "problems": problems_total, "ok": problems_total == 0}),
        );
    } else {
        table.print();
        for p in &details {
            outln!("{}", ctx.paint_error(&format!("CORRUPT: {p}")));
        }
    }
    Ok(problems_total == 0)
}
