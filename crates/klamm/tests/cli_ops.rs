//! End-to-end tests of the operator CLI against a real broker: `klamm topic …`,
//! `klamm group …`, `klamm cluster …`, and error exits. JSON output is parsed and checked.

mod common;

use common::Broker;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `klamm -b <broker> ARGS` (no colour, 10 s timeout per request).
fn klamm(bootstrap: &str, args: &[&str]) -> Output {
    klamm_stdin(bootstrap, args, "")
}

fn klamm_stdin(bootstrap: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(["-b", bootstrap, "--timeout", "10s"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KLAMM_BROKERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn klamm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for klamm")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts exit 0 and returns stdout.
fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts exit 0 and parses stdout as one JSON document.
fn ok_json(out: Output) -> Value {
    let stdout = ok(out);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Asserts exit 1 and returns stdout + stderr.
fn fails(out: Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    text(&out)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect()
}

#[test]
fn topic_admin_produce_and_consume() {
    let broker = Broker::start();
    let b = &broker.bootstrap();

    // create: status rows, JSON, idempotence and dry run
    let created = ok_json(klamm(
        b,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-c",
            "retention.ms=3600000",
            "-f",
            "json",
        ],
    ));
    assert_eq!(created[0]["topic"], "orders");
    assert_eq!(created[0]["error"], Value::Null);
    let again = fails(klamm(b, &["topic", "create", "orders", "-p", "3"]));
    assert!(again.contains("TOPIC_ALREADY_EXISTS"), "{again}");
    ok(klamm(b, &["topic", "create", "orders", "--if-not-exists"]));
    ok(klamm(b, &["topic", "create", "dry", "--dry-run"]));

    // list and describe
    let list = ok_json(klamm(b, &["topic", "list", "-f", "json"]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"], "the dry run created nothing: {list}");
    assert_eq!(list[0]["partitions"], 3);
    let described = ok_json(klamm(b, &["topic", "describe", "orders", "-f", "json"]));
    assert_eq!(described[0]["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(described[0]["configs"]["retention.ms"], "3600000");
    let table = ok(klamm(b, &["topic", "describe", "orders"]));
    assert!(
        table.contains("LOG-START-OFFSET") && table.contains("HIGH-WATERMARK"),
        "{table}"
    );

    // alter-config and add-partitions
    ok(klamm(
        b,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=7200000",
        ],
    ));
    let described = ok_json(klamm(b, &["topic", "describe", "orders", "-f", "json"]));
    assert_eq!(described[0]["configs"]["retention.ms"], "7200000");
    let bad = fails(klamm(
        b,
        &["topic", "alter-config", "orders", "--set", "no.such.key=1"],
    ));
    assert!(
        bad.contains("INVALID_CONFIG") || bad.contains("UNKNOWN"),
        "{bad}"
    );
    ok(klamm(
        b,
        &["topic", "add-partitions", "orders", "--num", "1"],
    ));
    let list = ok_json(klamm(b, &["topic", "list", "-f", "json"]));
    assert_eq!(list[0]["partitions"], 4);

    // produce with the format language, a fixed header and compression
    let before_ms = common::now_ms();
    let input = "k1 hello\nk2 world\nk3 with spaces\nk1 again\n";
    let out = klamm_stdin(
        b,
        &[
            "topic", "produce", "orders", "-f", "%k %v\\n", "-H", "src=test", "-z", "lz4",
        ],
        input,
    );
    let stderr = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("produced 4 records to orders"), "{stderr}");

    // consume everything as JSON lines
    let lines = json_lines(&ok(klamm(
        b,
        &["topic", "consume", "orders", "-e", "-f", "json"],
    )));
    assert_eq!(lines.len(), 4, "{lines:?}");
    let mut values: Vec<&str> = lines.iter().map(|l| l["value"].as_str().unwrap()).collect();
    values.sort();
    assert_eq!(values, ["again", "hello", "with spaces", "world"]);
    for l in &lines {
        assert_eq!(l["topic"], "orders");
        assert_eq!(l["headers"]["src"], "test");
        assert!(l["timestamp"].as_i64().unwrap() >= before_ms);
    }
    // the same key always lands in the same partition (Kafka's murmur2 partitioner)
    let k1: Vec<i64> = lines
        .iter()
        .filter(|l| l["key"] == "k1")
        .map(|l| l["partition"].as_i64().unwrap())
        .collect();
    assert_eq!(k1.len(), 2);
    assert_eq!(k1[0], k1[1]);
    let pn = k1[0];
    let p = pn.to_string();

    // offset language, partitions, -n, format strings, read_committed
    let mut in_p: Vec<&Value> = lines.iter().filter(|l| l["partition"] == pn).collect();
    in_p.sort_by_key(|l| l["offset"].as_i64());
    let kv = |l: &Value| {
        format!(
            "{}={}@{}",
            l["key"].as_str().unwrap(),
            l["value"].as_str().unwrap(),
            l["offset"]
        )
    };
    let values_from = |i: usize| {
        in_p[i..]
            .iter()
            .map(|l| format!("{}\n", l["value"].as_str().unwrap()))
            .collect::<String>()
    };
    let one = ok(klamm(
        b,
        &[
            "topic",
            "consume",
            "orders",
            "-p",
            &p,
            "-o",
            "-1",
            "-e",
            "-f",
            "%k=%v@%o\\n",
        ],
    ));
    assert_eq!(one, format!("{}\n", kv(in_p.last().unwrap())));
    let first = ok(klamm(
        b,
        &[
            "topic",
            "consume",
            "orders",
            "-p",
            &p,
            "-o",
            "start",
            "-n",
            "1",
            "-f",
            "%t %p %k %h\\n",
        ],
    ));
    assert_eq!(
        first,
        format!("orders {p} {} src=test\n", in_p[0]["key"].as_str().unwrap())
    );
    let plus = ok(klamm(
        b,
        &["topic", "consume", "orders", "-p", &p, "-o", "+1", "-e"],
    ));
    assert_eq!(plus, values_from(1));
    let at = ok(klamm(
        b,
        &[
            "topic",
            "consume",
            "orders",
            "-p",
            &p,
            "-o",
            "1",
            "-e",
            "--read-committed",
        ],
    ));
    assert_eq!(at, values_from(1));
    let future = ok(klamm(
        b,
        &[
            "topic",
            "consume",
            "orders",
            "-o",
            &format!("@{}", common::now_ms() + 60_000),
            "-e",
        ],
    ));
    assert_eq!(future, "", "nothing at or after a future timestamp");
    let since = ok(klamm(
        b,
        &[
            "topic",
            "consume",
            "orders",
            "-o",
            &format!("@{before_ms}"),
            "-e",
        ],
    ));
    assert_eq!(since.lines().count(), 4);
    let two = ok(klamm(
        b,
        &["topic", "consume", "orders", "-o", "start", "-n", "2"],
    ));
    assert_eq!(two.lines().count(), 2);

    // offsets and trim
    let offsets = ok_json(klamm(b, &["topic", "offsets", "orders", "-f", "json"]));
    let row = offsets["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partition"] == pn)
        .unwrap()
        .clone();
    assert_eq!(
        (row["start"].as_i64(), row["end"].as_i64()),
        (Some(0), Some(in_p.len() as i64))
    );
    let dry = ok_json(klamm(
        b,
        &[
            "topic",
            "trim",
            "orders",
            "-p",
            &p,
            "-o",
            "1",
            "--dry-run",
            "-f",
            "json",
        ],
    ));
    assert_eq!(dry["partitions"][0]["new_log_start_offset"], 1);
    ok(klamm(b, &["topic", "trim", "orders", "-p", &p, "-o", "1"]));
    let offsets = ok_json(klamm(b, &["topic", "offsets", "orders", "-f", "json"]));
    let row = offsets["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partition"] == pn)
        .unwrap()
        .clone();
    assert_eq!(row["start"], 1);
    let too_far = fails(klamm(b, &["topic", "trim", "orders", "-p", &p, "-o", "99"]));
    assert!(too_far.contains("OFFSET_OUT_OF_RANGE"), "{too_far}");

    // unknown topics and bad input are errors with exit 1
    let unknown = fails(klamm_stdin(b, &["topic", "produce", "nope"], "x\n"));
    assert!(
        unknown.contains("UNKNOWN_TOPIC_OR_PARTITION") && unknown.contains("nope"),
        "{unknown}"
    );
    let unknown = fails(klamm(b, &["topic", "consume", "nope", "-e"]));
    assert!(unknown.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{unknown}");
    let bad_line = fails(klamm_stdin(
        b,
        &["topic", "produce", "orders", "-f", "%k|%v"],
        "no delimiter\n",
    ));
    assert!(bad_line.contains("does not match the format"), "{bad_line}");

    // JSON lines in, JSON summary out
    ok(klamm(b, &["topic", "create", "j", "-p", "2"]));
    let summary = ok_json(klamm_stdin(
        b,
        &["topic", "produce", "j", "-f", "json"],
        "{\"key\":\"a\",\"value\":\"x\",\"partition\":1,\"headers\":{\"h\":\"1\"}}\n{\"value\":\"y\",\"partition\":1}\n",
    ));
    assert_eq!(summary["records"], 2);
    assert_eq!(summary["partitions"]["1"]["last_offset"], 1);
    let got = ok(klamm(
        b,
        &["topic", "consume", "j", "-e", "-f", "%k:%v:%h\\n"],
    ));
    assert_eq!(got, "a:x:h=1\n:y:\n");
    ok(klamm(b, &["topic", "delete", "j"]));

    ok(klamm(
        b,
        &["topic", "consume", "orders", "-g", "gx", "-n", "1"],
    ));

    // delete: dry run keeps the topic, then it is gone
    ok(klamm(b, &["topic", "delete", "orders", "--dry-run"]));
    assert_eq!(
        ok_json(klamm(b, &["topic", "list", "-f", "json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let deleted = ok_json(klamm(b, &["topic", "delete", "orders", "-f", "json"]));
    assert_eq!(deleted[0]["error"], Value::Null);
    let gone = fails(klamm(b, &["topic", "describe", "orders"]));
    assert!(gone.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{gone}");
    // a group with offsets for a deleted topic still describes, without log end offsets
    let described = ok_json(klamm(b, &["group", "describe", "gx", "-f", "json"]));
    assert_eq!(
        described[0]["partitions"][0]["log_end_offset"],
        Value::Null,
        "{described}"
    );
    let gone = fails(klamm(b, &["topic", "delete", "orders", "missing"]));
    assert!(gone.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{gone}");
}

#[test]
fn groups_describe_seek_and_delete() {
    let broker = Broker::start_with(&[("group.initial.rebalance.delay.ms", "0")]);
    let b = &broker.bootstrap();
    ok(klamm(b, &["topic", "create", "events", "-p", "2"]));
    let lines: String = (0..10).map(|i| format!("{}|v{i}\n", i % 2)).collect();
    ok(klamm_stdin(
        b,
        &["topic", "produce", "events", "-f", "%p|%v"],
        &lines,
    ));
    let t0 = common::now_ms();

    // a consumer that commits to the group without joining it
    let got = ok(klamm(
        b,
        &[
            "topic", "consume", "events", "-g", "g1", "-p", "0", "-n", "3",
        ],
    ));
    assert_eq!(got, "v0\nv2\nv4\n");
    // resuming from the committed offset
    let got = ok(klamm(
        b,
        &[
            "topic", "consume", "events", "-g", "g1", "-p", "0", "-n", "1",
        ],
    ));
    assert_eq!(got, "v6\n");

    let groups = ok_json(klamm(b, &["group", "list", "-f", "json"]));
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "g1"),
        "{groups}"
    );
    let described = ok_json(klamm(b, &["group", "describe", "g1", "-f", "json"]));
    let g = &described[0];
    assert_eq!(g["state"], "Empty");
    assert_eq!(g["total_lag"], 1);
    assert_eq!(g["partitions"][0]["current_offset"], 4);
    assert_eq!(g["partitions"][0]["log_end_offset"], 5);
    assert_eq!(g["partitions"][0]["lag"], 1);
    let table = ok(klamm(b, &["group", "describe", "g1"]));
    for header in ["CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "TOTAL-LAG"] {
        assert!(table.contains(header), "{header} missing:\n{table}");
    }

    // seek: dry run changes nothing; start, end, shift, offset, timestamp, --topics
    let seek = |args: &[&str]| {
        let mut all = vec!["group", "seek", "g1"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-f", "json"]);
        ok_json(klamm(b, &all))
    };
    let committed = |b: &str| {
        let d = ok_json(klamm(b, &["group", "describe", "g1", "-f", "json"]));
        d[0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap(),
                    p["current_offset"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let dry = seek(&["--to", "start", "--dry-run"]);
    assert_eq!(dry["partitions"][0]["new_offset"], 0);
    assert_eq!(committed(b), [(0, 4)]);
    seek(&["--to", "-3"]);
    assert_eq!(committed(b), [(0, 1)]);
    seek(&["--to", "+100"]);
    assert_eq!(committed(b), [(0, 5)], "a shift is clamped to the log end");
    seek(&["--to", "2"]);
    assert_eq!(committed(b), [(0, 2)]);
    seek(&["--to", "start", "--topics", "events"]);
    assert_eq!(committed(b), [(0, 0), (1, 0)]);
    seek(&["--to", "end"]);
    assert_eq!(committed(b), [(0, 5), (1, 5)]);
    seek(&["--to", &format!("@{t0}")]);
    assert_eq!(
        committed(b),
        [(0, 5), (1, 5)],
        "no record after t0: the end"
    );
    seek(&["--to", "@0"]);
    assert_eq!(committed(b), [(0, 0), (1, 0)]);

    // an active member (a real librdkafka consumer) blocks seek, delete and offset-delete
    let member = {
        let mut config = common::consumer_config(&broker, &[]);
        config.set("group.id", "g1");
        let consumer: rdkafka::consumer::BaseConsumer = config.create().unwrap();
        rdkafka::consumer::Consumer::subscribe(&consumer, &["events"]).unwrap();
        let t = Instant::now();
        while rdkafka::consumer::Consumer::assignment(&consumer)
            .unwrap()
            .count()
            == 0
        {
            assert!(t.elapsed() < Duration::from_secs(20), "no assignment");
            let _ = consumer.poll(Duration::from_millis(100));
        }
        consumer
    };
    let described = ok_json(klamm(b, &["group", "describe", "g1", "-f", "json"]));
    assert_eq!(described[0]["state"], "Stable");
    assert_eq!(described[0]["members"].as_array().unwrap().len(), 1);
    assert!(
        described[0]["partitions"][0]["consumer_id"].is_string(),
        "{described}"
    );
    let refused = fails(klamm(b, &["group", "seek", "g1", "--to", "end"]));
    assert!(refused.contains("active member"), "{refused}");
    let refused = fails(klamm(b, &["group", "delete", "g1"]));
    assert!(refused.contains("NON_EMPTY_GROUP"), "{refused}");
    let refused = fails(klamm(
        b,
        &["group", "offset-delete", "g1", "--topic", "events:0"],
    ));
    assert!(refused.contains("GROUP_SUBSCRIBED_TO_TOPIC"), "{refused}");
    drop(member);

    // once the member has left: offset-delete, then delete
    let t = Instant::now();
    loop {
        let d = ok_json(klamm(b, &["group", "describe", "g1", "-f", "json"]));
        if d[0]["members"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "member did not leave: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deleted = ok_json(klamm(
        b,
        &[
            "group",
            "offset-delete",
            "g1",
            "--topic",
            "events:0",
            "-f",
            "json",
        ],
    ));
    assert_eq!(deleted["partitions"][0]["error"], Value::Null, "{deleted}");
    assert_eq!(committed(b).len(), 1);
    ok(klamm(b, &["group", "delete", "g1"]));
    let gone = fails(klamm(b, &["group", "describe", "g1"]));
    assert!(gone.contains("GROUP_ID_NOT_FOUND"), "{gone}");
    let gone = fails(klamm(b, &["group", "delete", "g1"]));
    assert!(gone.contains("GROUP_ID_NOT_FOUND"), "{gone}");
}

#[test]
fn cluster_commands_and_error_exits() {
    let broker = Broker::start();
    let b = &broker.bootstrap();
    let info = ok_json(klamm(b, &["cluster", "info", "-f", "json"]));
    assert!(!info["cluster_id"].as_str().unwrap().is_empty());
    assert_eq!(info["brokers"][0]["port"], broker.port());
    let text_info = ok(klamm(b, &["cluster", "info"]));
    assert!(text_info.contains("CLUSTER-ID"), "{text_info}");
    let apis = ok_json(klamm(b, &["cluster", "api-versions", "-f", "json"]));
    let produce = apis["apis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Produce")
        .unwrap()
        .clone();
    assert_eq!(produce["api_key"], 0);
    let configs = ok_json(klamm(
        b,
        &["cluster", "config", "get", "num.partitions", "-f", "json"],
    ));
    assert_eq!(configs["configs"][0]["name"], "num.partitions");
    assert_eq!(configs["configs"][0]["value"], "1");

    // broker config changes get a status row per key; the exit status follows it
    let set = |args: &[&str]| {
        let out = klamm(b, &[&["cluster", "config"], args, &["-f", "json"]].concat());
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.success(), rows)
    };
    let (ok_set, rows) = set(&["set", "log.retention.ms=1000"]);
    assert_eq!(rows[0]["key"], "log.retention.ms");
    assert!(ok_set && rows[0]["error"].is_null(), "{rows}");
    let source = |key: &str| {
        let got = ok_json(klamm(b, &["cluster", "config", "get", key, "-f", "json"]));
        let row = &got["configs"][0];
        (
            row["value"].as_str().unwrap_or("").to_string(),
            row["source"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        source("log.retention.ms"),
        ("1000".into(), "DYNAMIC_DEFAULT_BROKER_CONFIG".into())
    );
    // --broker sets this broker's own layer, which beats the cluster-wide one.
    let (ok_set, _) = set(&["set", "--broker", "1", "log.retention.ms=2000"]);
    assert!(ok_set);
    assert_eq!(
        source("log.retention.ms"),
        ("2000".into(), "DYNAMIC_BROKER_CONFIG".into())
    );
    // A static key is refused with INVALID_CONFIG and a non-zero exit.
    let (ok_set, rows) = set(&["set", "log.dirs=/elsewhere"]);
    assert!(!ok_set);
    assert_eq!(rows[0]["error"], "INVALID_CONFIG", "{rows}");
    for args in [
        &["delete", "log.retention.ms"][..],
        &["delete", "--broker", "1", "log.retention.ms"],
    ] {
        assert!(set(args).0);
    }
    assert_eq!(source("log.retention.ms").1, "DEFAULT_CONFIG");

    // acks=0: nothing to wait for, the records still arrive
    ok(klamm(b, &["topic", "create", "fire-and-forget"]));
    ok(klamm_stdin(
        b,
        &["topic", "produce", "fire-and-forget", "--acks", "0"],
        "1\n2\n3\n",
    ));
    let t = Instant::now();
    while ok(klamm(b, &["topic", "consume", "fire-and-forget", "-e"])) != "1\n2\n3\n" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "acks=0 records never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // the bootstrap list falls through to a live broker
    let (_refusing, dead_port) = common::refusing_port();
    let dead = format!("127.0.0.1:{dead_port}");
    ok(klamm(&format!("{dead},{b}"), &["topic", "list"]));

    // an unreachable broker: exit 1, naming the address and what to check
    let t = Instant::now();
    let out = fails(klamm(&dead, &["topic", "list"]));
    assert!(
        out.contains(&dead) && out.contains("-b/--bootstrap-server"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // a broker advertising an address nobody listens on: the error says so
    let dead_port = dead_port.to_string();
    let advertised = format!("PLAINTEXT://127.0.0.1:{dead_port}");
    let misconfigured = Broker::start_with(&[("advertised.listeners", &advertised)]);
    let m = &misconfigured.bootstrap();
    ok(klamm(m, &["topic", "create", "t"]));
    let out = fails(klamm_stdin(m, &["topic", "produce", "t"], "x\n"));
    assert!(
        out.contains(&dead_port) && out.contains("advertised.listeners"),
        "{out}"
    );

    // KLAMM_BROKERS is the default bootstrap
    let out = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(["cluster", "info", "-f", "json"])
        .env("KLAMM_BROKERS", b)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // usage errors
    let out = klamm(b, &["topic", "list", "-f", "yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = klamm(b, &["topic", "consume", "x", "-o", "sideways"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
