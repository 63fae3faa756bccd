//! Test harness shared by the integration tests: a real `klamm` process on a free loopback
//! port with its own data directory, plus helpers for rdkafka clients and raw protocol I/O.
//!
//! Every wait here is bounded; a broker that does not come up, does not stop on SIGTERM or
//! exits early fails the test with the tail of its log.
#![allow(dead_code)]

pub mod raw;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::metadata::Metadata;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long the broker may take to accept connections after spawn (includes recovery).
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the broker may take to exit after SIGTERM (contract: 5 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout for one rdkafka metadata/admin round trip.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped) `klamm serve` process.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    sets: Vec<String>,
    /// Time from spawn to the first successful TCP connect, for the last (re)start.
    pub last_ready_after: Duration,
}

/// A loopback port that refuses connections for as long as the returned socket lives:
/// bound, never listening, so no other process can take it meanwhile.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("create socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let port = socket.local_addr().expect("local_addr").port();
    (socket, port)
}

/// The `PLAINTEXT` port a broker wrote to its `ready.file`, once the file is there.
fn ready_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PLAINTEXT "))
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
}

impl Broker {
    /// Starts a broker with default configuration in a fresh temporary directory.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker in a fresh temporary directory with `--set key=value` for each pair.
    pub fn start_with(sets: &[(&str, &str)]) -> Broker {
        let tmp = tempfile::Builder::new()
            .prefix("klamm-it-")
            .tempdir()
            .expect("create tempdir");
        let root = tmp.path().to_path_buf();
        Broker::start_at(root, Some(tmp), sets)
    }

    /// Starts a broker whose data and log live under `root` (kept after the test).
    pub fn start_in(root: &Path, sets: &[(&str, &str)]) -> Broker {
        std::fs::create_dir_all(root).expect("create root dir");
        Broker::start_at(root.to_path_buf(), None, sets)
    }

    fn start_at(root: PathBuf, tmp: Option<tempfile::TempDir>, sets: &[(&str, &str)]) -> Broker {
        let mut b = Broker {
            child: None,
            // The first start binds port 0 and reports the port it got (`ready.file`);
            // restarts reuse it, so clients' bootstrap addresses stay valid.
            port: 0,
            root,
            _tmp: tmp,
            sets: sets.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            last_ready_after: Duration::ZERO,
        };
        b.spawn();
        b
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("broker.log")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Panics (with the log tail) unless the process is still alive.
    pub fn assert_alive(&mut self, context: &str) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                panic!(
                    "broker process died ({status}) {context}\n--- broker log tail ---\n{}",
                    self.log_tail(80)
                );
            }
        } else {
            panic!("broker is not running {context}");
        }
    }

    /// Last `lines` lines of the broker's stderr/stdout log (all starts appended).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        all[from..].join("\n")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn while a broker is running");
        std::fs::create_dir_all(self.data_dir()).expect("create data dir");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open broker log");
        writeln!(
            log,
            "===== klamm test harness: starting broker on 127.0.0.1:{} =====",
            self.port
        )
        .ok();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_klamm"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listeners")
            .arg(format!("PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--set")
            .arg(format!("ready.file={}", self.ready_file().display()));
        let _ = std::fs::remove_file(self.ready_file());
        // Brokers run side by side in tests: none takes the default admin port 9644.
        if !self.sets.iter().any(|s| s.starts_with("admin.listener")) {
            cmd.arg("--set").arg("admin.listener=");
        }
        for s in &self.sets {
            cmd.arg("--set").arg(s);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .env("RUST_BACKTRACE", "1");
        let started = Instant::now();
        let child = cmd.spawn().expect("spawn klamm binary");
        self.child = Some(child);
        self.wait_ready(started);
    }

    /// Panics with the log tail if the process exited during start-up.
    fn assert_started(&mut self) {
        let status = self.child.as_mut().unwrap().try_wait().expect("try_wait");
        if let Some(status) = status {
            self.child = None;
            panic!(
                "broker exited during startup with {status}\n--- broker log tail ---\n{}",
                self.log_tail(80)
            );
        }
    }

    fn ready_file(&self) -> PathBuf {
        self.root.join("ready")
    }

    /// Waits for the broker's `ready.file` (written once its listener accepts
    /// connections), learns the port from it, then checks a connect succeeds.
    fn wait_ready(&mut self, started: Instant) {
        loop {
            if let Some(port) = ready_port(&self.ready_file()) {
                assert!(
                    self.port == 0 || self.port == port,
                    "restart bound port {port}, not {}",
                    self.port
                );
                self.port = port;
                break;
            }
            self.assert_started();
            if started.elapsed() > READY_TIMEOUT {
                break; // reported below
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let addr = self.addr();
        loop {
            self.assert_started();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.last_ready_after = started.elapsed();
                return;
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = self.child.as_mut().unwrap().kill();
                let _ = self.child.as_mut().unwrap().wait();
                self.child = None;
                panic!(
                    "broker did not accept connections on {addr} within {READY_TIMEOUT:?}\n--- broker log tail ---\n{}",
                    self.log_tail(80)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM; asserts the process exits with status 0 within 5 s. Returns the time it took.
    pub fn stop(&mut self) -> Duration {
        let mut child = self.child.take().expect("stop: broker is not running");
        let pid = child.id();
        let t0 = Instant::now();
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill -TERM");
        assert!(ok.success(), "kill -TERM {pid} failed");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let took = t0.elapsed();
                assert_exit_ok(status, took, || self.log_tail(60));
                return took;
            }
            if t0.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {STOP_TIMEOUT:?} after SIGTERM\n--- broker log tail ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: broker is not running");
        child.kill().expect("SIGKILL broker");
        child.wait().expect("wait for killed broker");
    }

    /// Starts the broker again on the same data dir and port (after `stop` or `kill9`).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Graceful stop (asserting exit 0 within 5 s), then start on the same dir and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Resident set size and its high-water mark of the broker process, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

fn assert_exit_ok(status: ExitStatus, took: Duration, tail: impl FnOnce() -> String) {
    assert!(
        status.success(),
        "broker exited with {status} (after {took:?}) on SIGTERM, expected exit 0\n--- broker log tail ---\n{}",
        tail()
    );
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- broker log tail ({}) ---\n{}\n--- end of broker log ---",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name unique within this test process, e.g. `unique("topic")` → `topic-1234-5`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Deterministic xorshift PRNG; tests print the seed they use.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn from_env_or_time(name: &str) -> (Rng, u64) {
        let seed = std::env::var("KLAMM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{name}: seed {seed} (rerun with KLAMM_TEST_SEED={seed})");
        (Rng::new(seed), seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// rdkafka clients
// ---------------------------------------------------------------------------------------------

/// Common client settings. `KLAMM_TEST_RDKAFKA_DEBUG=protocol,broker` turns on librdkafka debug.
pub fn base_config(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("client.id", "klamm-it")
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    if let Ok(d) = std::env::var("KLAMM_TEST_RDKAFKA_DEBUG") {
        c.set("debug", d);
        c.set_log_level(RDKafkaLogLevel::Debug);
    } else {
        c.set_log_level(RDKafkaLogLevel::Warning);
    }
    c
}

pub fn producer_config(b: &Broker, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = base_config(b);
    c.set("acks", "all")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

pub fn producer(b: &Broker, extra: &[(&str, &str)]) -> FutureProducer {
    producer_config(b, extra)
        .create()
        .expect("create FutureProducer")
}

/// Consumer for `assign()` use only: a group.id (librdkafka needs one for assign) but no commits.
pub fn consumer_config(b: &Broker, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = base_config(b);
    c.set("group.id", unique("klamm-it-group"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "200")
        .set("allow.auto.create.topics", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

pub fn consumer(b: &Broker, extra: &[(&str, &str)]) -> StreamConsumer {
    consumer_config(b, extra)
        .create()
        .expect("create StreamConsumer")
}

/// A group-less consumer used only for metadata and watermark queries (never auto-creates).
pub fn metadata_client(b: &Broker) -> BaseConsumer {
    let mut c = base_config(b);
    c.set("allow.auto.create.topics", "false");
    c.create().expect("create BaseConsumer")
}

pub fn admin(b: &Broker) -> AdminClient<DefaultClientContext> {
    base_config(b).create().expect("create AdminClient")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates a topic and panics unless the broker reports success.
pub async fn create_topic(b: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(b);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = tokio::time::timeout(CLIENT_TIMEOUT, admin.create_topics([&t], &admin_opts()))
        .await
        .unwrap_or_else(|_| panic!("CreateTopics {name}: no answer within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("CreateTopics {name}: request failed: {e}"));
    assert_eq!(
        res.len(),
        1,
        "CreateTopics {name}: one result expected, got {res:?}"
    );
    if let Err((n, code)) = &res[0] {
        panic!("CreateTopics {n} ({partitions} partitions): expected success, got {code:?}");
    }
}

/// Fetches cluster metadata (blocking call on a metadata-only client).
pub fn metadata(b: &Broker, topic: Option<&str>) -> Metadata {
    let c = metadata_client(b);
    c.fetch_metadata(topic, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("Metadata({topic:?}) failed: {e}"))
}

/// Names and partition counts of all topics, from a raw Metadata v12 request for all topics.
/// (Deliberately not through librdkafka, whose all-topics request is tested on its own.)
pub fn list_topics(b: &Broker) -> std::collections::BTreeMap<String, usize> {
    let mut c = raw::RawConn::connect(b.port());
    let md = c.metadata(12, None, false);
    md.topics
        .iter()
        .filter(|t| t.error_code == 0)
        .map(|t| {
            (
                t.name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                t.partitions.len(),
            )
        })
        .collect()
}

/// Partition count of `topic` as listed by Metadata (all topics), `None` if not listed.
pub fn partition_count(b: &Broker, topic: &str) -> Option<usize> {
    list_topics(b).get(topic).copied()
}

pub fn watermarks(b: &Broker, topic: &str, partition: i32) -> (i64, i64) {
    let c = metadata_client(b);
    c.fetch_watermarks(topic, partition, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("fetch_watermarks({topic}, {partition}) failed: {e}"))
}

pub fn assign(consumer: &StreamConsumer, topic: &str, partitions: &[i32], offset: Offset) {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, offset)
            .expect("add_partition_offset");
    }
    consumer.assign(&tpl).expect("assign");
}

/// Receives exactly `n` messages (errors are collected and reported, not returned).
/// Panics if they do not all arrive within `within`.
pub async fn consume_n(consumer: &StreamConsumer, n: usize, within: Duration) -> Vec<OwnedMessage> {
    let mut out = Vec::with_capacity(n);
    let mut errors: Vec<KafkaError> = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => panic!(
                "consumed {} of {n} expected messages within {within:?}; consumer errors: {:?}",
                out.len(),
                errors.iter().take(10).collect::<Vec<_>>()
            ),
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => {
                if errors.len() < 100 {
                    errors.push(e);
                }
            }
        }
    }
    out
}

/// After reading what was expected, checks that nothing more arrives within `quiet`.
pub async fn assert_no_more(consumer: &StreamConsumer, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    loop {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => return,
            Ok(Ok(m)) => panic!(
                "unexpected extra message: partition {} offset {} value {:?}",
                m.partition(),
                m.offset(),
                m.payload().map(String::from_utf8_lossy)
            ),
            Ok(Err(_)) => {}
        }
    }
}
