//! `klamm topic produce`: stdin lines → records, batched per partition.
//!
//! A batch is sent when it holds `--batch-records` records or when stdin has been quiet for
//! `--linger` (so typed lines go out at once and piped input is batched).

use super::super::format::{parse_headers, RecordFormat};
use super::super::{print_json, Ctx};
use anyhow::{bail, Result};
use bytes::Bytes;
use clap::Args;
use klamm_client::records::{encode_batch, parse_compression, partition_for_key, ProducerRecord};
use klamm_client::Client;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to. Input: one record per stdin line, parsed with -f (default: the
    /// whole line is the value; `json`: {"key","value","headers","partition","timestamp"}).
    topic: String,
    /// Key for every record (a `%k` in the format takes precedence).
    #[arg(short = 'k', long)]
    key: Option<String>,
    /// Header for every record, key=value; repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Partition for every record [default: by key hash (Kafka's murmur2), else round robin].
    #[arg(short = 'p', long)]
    partition: Option<i32>,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(short = 'z', long, default_value = "none")]
    compression: String,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Most records in one batch.
    #[arg(long, default_value_t = 1000)]
    batch_records: usize,
    /// Send what is buffered after stdin has been quiet this long.
    #[arg(long, default_value = "20ms", value_parser = super::super::parse_duration)]
    linger: Duration,
}

pub fn parse_acks(acks: &str) -> Result<i16> {
    Ok(match acks {
        "all" | "-1" => -1,
        "1" => 1,
        "0" => 0,
        other => bail!("--acks {other:?}: expected all, -1, 1 or 0"),
    })
}

struct Producer {
    topic: String,
    partitions: i32,
    compression: kafka_protocol::records::Compression,
    acks: i16,
    pending: BTreeMap<i32, Vec<ProducerRecord>>,
    round_robin: i32,
    produced: u64,
    failed: u64,
    /// partition → (first offset, last offset) acknowledged.
    offsets: BTreeMap<i32, (i64, i64)>,
}

pub async fn run(ctx: Ctx, args: ProduceArgs) -> Result<bool> {
    let acks = parse_acks(&args.acks)?;
    let compression = parse_compression(&args.compression)?;
    let json_input = ctx.args.format == "json";
    let format = match ctx.args.format.as_str() {
        "text" | "json" => RecordFormat::parse("%v")?,
        f => RecordFormat::parse(f)?,
    };
    let fixed_headers = parse_headers(&args.headers.join(","))?;
    let mut client = ctx.client().await?;
    let partitions = client.partitions(&args.topic).await?.len() as i32;
    let mut producer = Producer {
        topic: args.topic.clone(),
        partitions,
        compression,
        acks,
        pending: BTreeMap::new(),
        round_robin: 0,
        produced: 0,
        failed: 0,
        offsets: BTreeMap::new(),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut buffered = 0usize;
    loop {
        let line = if buffered == 0 {
            lines.next_line().await?
        } else {
            match tokio::time::timeout(args.linger, lines.next_line()).await {
                Ok(line) => line?,
                Err(_) => {
                    producer.flush(&ctx, &mut client).await?;
                    buffered = 0;
                    continue;
                }
            }
        };
        let Some(line) = line else { break };
        let (mut record, partition) = if json_input {
            json_record(&line)?
        } else {
            format.parse_line(&line)?
        };
        if record.key.is_none() {
            record.key = args
                .key
                .as_ref()
                .map(|k| Bytes::copy_from_slice(k.as_bytes()));
        }
        record.headers.extend(fixed_headers.iter().cloned());
        if record.timestamp_ms == 0 {
            record.timestamp_ms = now_ms();
        }
        producer.add(record, partition.or(args.partition))?;
        buffered += 1;
        if buffered >= args.batch_records {
            producer.flush(&ctx, &mut client).await?;
            buffered = 0;
        }
    }
    producer.flush(&ctx, &mut client).await?;
    if ctx.json() {
        let parts: serde_json::Map<String, serde_json::Value> = producer
            .offsets
            .iter()
            .map(|(p, (a, b))| (p.to_string(), json!({"first_offset": a, "last_offset": b})))
            .collect();
        print_json(
            &json!({"topic": producer.topic, "records": producer.produced,
                           "failed": producer.failed, "partitions": parts}),
        );
    } else {
        ctx.hint(&format!(
            "produced {} records to {}{}",
            producer.produced,
            producer.topic,
            if producer.failed > 0 {
                format!(", {} failed", producer.failed)
            } else {
                String::new()
            }
        ));
    }
    Ok(producer.failed == 0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `{"key": .., "value": .., "headers": {..}, "partition": N, "timestamp": MS}`; all optional.
fn json_record(line: &str) -> Result<(ProducerRecord, Option<i32>)> {
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("line {line:?} is not a JSON object: {e}"))?;
    let text = |field: &str| {
        v.get(field).and_then(|x| match x {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
            other => Some(Bytes::from(other.to_string())),
        })
    };
    let mut record = ProducerRecord {
        key: text("key"),
        value: text("value"),
        timestamp_ms: v.get("timestamp").and_then(|t| t.as_i64()).unwrap_or(0),
        ..Default::default()
    };
    if let Some(headers) = v.get("headers").and_then(|h| h.as_object()) {
        for (k, hv) in headers {
            let value = hv.as_str().map(|s| Bytes::copy_from_slice(s.as_bytes()));
            record.headers.push((k.clone(), value));
        }
    }
    let partition = v
        .get("partition")
        .and_then(|p| p.as_i64())
        .map(|p| p as i32);
    Ok((record, partition))
}

impl Producer {
    fn add(&mut self, record: ProducerRecord, partition: Option<i32>) -> Result<()> {
        let partition = match (partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, self.partitions),
            (None, None) => {
                self.round_robin = (self.round_robin + 1) % self.partitions.max(1);
                self.round_robin
            }
        };
        if partition < 0 || partition >= self.partitions {
            bail!(
                "partition {partition} does not exist: {} has {} partitions",
                self.topic,
                self.partitions
            );
        }
        self.pending.entry(partition).or_default().push(record);
        Ok(())
    }

    async fn flush(&mut self, ctx: &Ctx, client: &mut Client) -> Result<()> {
        for (partition, records) in std::mem::take(&mut self.pending) {
            let count = records.len() as u64;
            let batch = encode_batch(&records, self.compression)?;
            let response = client
                .produce(&self.topic, partition, batch, self.acks)
                .await?;
            if response.error_code != 0 {
                self.failed += count;
                let message = response
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                eprintln!(
                    "{}-{partition}: {} record(s) not written: {} {message}",
                    self.topic,
                    count,
                    ctx.paint_error(&klamm_protocol::errors::error_name(response.error_code))
                );
                continue;
            }
            self.produced += count;
            if response.base_offset >= 0 {
                let last = response.base_offset + count as i64 - 1;
                let entry = self
                    .offsets
                    .entry(partition)
                    .or_insert((response.base_offset, last));
                entry.1 = last;
                if ctx.args.verbose > 0 {
                    eprintln!(
                        "{}-{partition}: offsets {}..={last}",
                        self.topic, response.base_offset
                    );
                }
            }
        }
        Ok(())
    }
}
