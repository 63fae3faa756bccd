//! End-to-end tests of `klamm bench`, the offline `klamm debug` tools (on a data dir with a
//! deliberately corrupted segment), `klamm completion` and the help texts.

mod common;

use common::Broker;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn klamm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KLAMM_BROKERS")
        .output()
        .expect("run klamm")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn ok_json(args: &[&str]) -> Value {
    let out = klamm(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    json(&out)
}

#[test]
fn bench_produce_consume_and_e2e() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let produced = ok_json(&[
        "-b",
        &b,
        "bench",
        "produce",
        "perf",
        "-n",
        "3000",
        "-s",
        "64",
        "-p",
        "2",
        "--batch-records",
        "100",
        "--producers",
        "2",
        "-z",
        "zstd",
        "-f",
        "json",
    ]);
    assert_eq!(produced["bench"], "produce");
    assert_eq!(produced["records"], 3000);
    assert_eq!(produced["bytes"], 3000 * 64);
    assert_eq!(produced["errors"], 0);
    let latency = &produced["ack_latency_ms"];
    assert_eq!(latency["samples"], 3000);
    for p in ["p50", "p95", "p99", "p99_9", "max"] {
        assert!(latency[p].as_f64().unwrap() > 0.0, "{p}: {produced}");
    }
    assert!(latency["p50"].as_f64() <= latency["max"].as_f64());
    assert!(produced["records_per_s"].as_f64().unwrap() > 0.0);

    let consumed = ok_json(&[
        "-b",
        &b,
        "bench",
        "consume",
        "perf",
        "--consumers",
        "2",
        "-f",
        "json",
    ]);
    assert_eq!(consumed["records"], 3000, "{consumed}");
    assert!(consumed["fetch_latency_ms"]["samples"].as_u64().unwrap() >= 1);

    let e2e = ok_json(&[
        "-b", &b, "bench", "e2e", "perf", "-n", "500", "--rate", "5000", "-f", "json",
    ]);
    assert_eq!(e2e["records"], 500, "{e2e}");
    assert_eq!(e2e["errors"], 0);
    assert_eq!(e2e["e2e_latency_ms"]["samples"], 500);

    // by duration, rate-limited: about rate × duration records
    let timed = ok_json(&[
        "-b",
        &b,
        "bench",
        "produce",
        "perf",
        "-d",
        "1s",
        "--rate",
        "2000",
        "--batch-records",
        "50",
        "-f",
        "json",
    ]);
    let n = timed["records"].as_u64().unwrap();
    assert!((1000..=2600).contains(&n), "{timed}");

    // the text summary names its figures
    let out = klamm(&["-b", &b, "bench", "produce", "perf", "-n", "200", "-q"]);
    let summary = text(&out);
    assert!(out.status.success(), "{summary}");
    for word in ["records/s", "MB/s", "p50", "p95", "p99", "p99.9", "max"] {
        assert!(summary.contains(word), "{word}: {summary}");
    }
}

/// Flips one byte at `at` (inside a batch's CRC-covered bytes).
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn debug_tools_find_corruption_offline() {
    let mut broker = Broker::start();
    let b = broker.bootstrap();
    let out = klamm(&[
        "-b",
        &b,
        "bench",
        "produce",
        "logs",
        "-n",
        "1000",
        "-s",
        "50",
        "-p",
        "1",
        "--batch-records",
        "100",
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    broker.stop();
    let data = broker.data_dir();
    let data_s = data.to_str().unwrap();
    let segment = data.join("logs-0").join("00000000000000000000.log");
    let segment_s = segment.to_str().unwrap();

    // a clean data dir
    let check = ok_json(&["debug", "check-dir", data_s, "-f", "json"]);
    assert_eq!(check["ok"], true, "{check}");
    let logs = check["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == "logs-0")
        .unwrap()
        .clone();
    assert_eq!(
        (logs["records"].as_i64(), logs["batches"].as_i64()),
        (Some(1000), Some(10))
    );
    let dump = ok_json(&["debug", "dump-segment", segment_s, "-f", "json"]);
    let batches = dump["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 10);
    assert!(batches
        .iter()
        .all(|b| b["crc_ok"] == true && b["producer_id"] == -1));
    assert_eq!(batches[3]["base_offset"], 300);
    let with_records = ok_json(&[
        "debug",
        "dump-segment",
        segment_s,
        "--records",
        "-f",
        "json",
    ]);
    assert_eq!(
        with_records["batches"][0]["records"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    let index = ok_json(&[
        "debug",
        "dump-segment",
        segment.with_extension("index").to_str().unwrap(),
        "-f",
        "json",
    ]);
    assert_eq!(index["entries"][0]["offset"], 0);
    let table = klamm(&["debug", "dump-segment", segment_s]);
    assert!(
        table.status.success() && String::from_utf8_lossy(&table.stdout).contains("BASE-OFFSET")
    );

    // one flipped byte in the fifth batch's records: CRC mismatch, exit 1
    let fifth = batches[4]["position"].as_u64().unwrap() as usize;
    flip(&segment, fifth + 100);
    let out = klamm(&["debug", "check-dir", data_s]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("logs-0")
            && report.contains("CRC32C mismatch")
            && report.contains("CORRUPT"),
        "{report}"
    );
    let out = klamm(&["debug", "dump-segment", segment_s, "-f", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dump = json(&out);
    assert_eq!(dump["batches"][4]["crc_ok"], false);
    assert_eq!(
        dump["batches"][5]["crc_ok"], true,
        "later batches are still walked"
    );
    flip(&segment, fifth + 100);

    // a torn tail and an index entry pointing nowhere
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0u8; 20]);
    std::fs::write(&segment, &bytes).unwrap();
    let out = klamm(&[
        "debug",
        "check-dir",
        data.join("logs-0").to_str().unwrap(),
        "-f",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let problems = json(&out)["partitions"][0]["problems"].to_string();
    assert!(problems.contains("trailing bytes"), "{problems}");
    bytes.truncate(bytes.len() - 20);
    std::fs::write(&segment, &bytes).unwrap();
    let index_path = segment.with_extension("index");
    let mut index = std::fs::read(&index_path).unwrap();
    if index.len() >= 16 {
        index[12..16].copy_from_slice(&7u32.to_be_bytes());
        std::fs::write(&index_path, &index).unwrap();
        let out = klamm(&["debug", "check-dir", data_s]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("not the start of a batch"),
            "{}",
            text(&out)
        );
    }

    // a directory without segments is an error, not a silent success
    let empty = tempfile::tempdir().unwrap();
    let out = klamm(&["debug", "check-dir", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn completion_help_and_config() {
    for shell in ["bash", "zsh", "fish"] {
        let out = klamm(&["completion", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && script.contains("klamm") && script.contains("consume"),
            "{shell}"
        );
    }
    let help = klamm(&["--help"]);
    let help_text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for cmd in [
        "serve",
        "config",
        "health",
        "cluster",
        "topic",
        "group",
        "bench",
        "debug",
        "completion",
        "--bootstrap-server",
    ] {
        assert!(
            help_text.contains(cmd),
            "{cmd} missing from --help:\n{help_text}"
        );
    }
    for group in ["cluster", "topic", "group", "bench", "debug"] {
        let out = klamm(&[group, "--help"]);
        assert!(out.status.success(), "{group} --help: {}", text(&out));
    }
    let out = klamm(&["config", "show", "--effective", "--set", "num.partitions=7"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("num.partitions"),
        "{}",
        text(&out)
    );
}
