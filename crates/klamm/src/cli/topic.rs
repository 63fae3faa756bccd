//! `klamm topic create|list|describe|delete|add-partitions|alter-config|produce|consume|
//! offsets|trim`.

mod consume;
mod produce;

pub use consume::ConsumeArgs;
pub use produce::{parse_acks, ProduceArgs};

use super::cluster::{alter_configs, config_source, set_ops, RESOURCE_TOPIC};
use super::{json_status, print_json, status_with_message, Ctx, Table};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, MetadataResponse,
};
use klamm_client::{str_bytes, topic_name, Client, Target, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use serde_json::{json, Value};

const TOPIC_ALREADY_EXISTS: i16 = 36;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create topics.
    Create(CreateArgs),
    /// List topics with their partition and replica counts.
    #[command(visible_alias = "ls")]
    List {
        /// Include internal topics such as __consumer_offsets.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Partitions (leader, replicas, offsets) and config overrides of topics.
    Describe {
        /// Topics to describe.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// Topics to delete.
        #[arg(required = true)]
        names: Vec<String>,
        /// Check that the topics exist, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add partitions to a topic.
    AddPartitions {
        /// Topic to grow.
        name: String,
        /// Partitions to add.
        #[arg(long, conflicts_with = "to", required_unless_present = "to")]
        num: Option<i32>,
        /// Total partition count wanted.
        #[arg(long)]
        to: Option<i32>,
        /// Validate on the broker, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Set or remove topic config overrides.
    AlterConfig {
        /// Topic to change.
        name: String,
        /// key=value to set; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Key whose override to remove; repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        deletes: Vec<String>,
        /// Validate on the broker, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Produce records read from stdin, one per line.
    Produce(ProduceArgs),
    /// Consume records and print them.
    Consume(ConsumeArgs),
    /// Start and end offsets of every partition, or the offsets at a time.
    Offsets {
        /// Topic to inspect.
        name: String,
        /// earliest, latest, or a timestamp in ms: the first offset at or after it.
        #[arg(long)]
        time: Option<String>,
    },
    /// Delete records below an offset (DeleteRecords): moves the log start offset.
    Trim {
        /// Topic to trim.
        name: String,
        /// Partitions, comma-separated [default: all].
        #[arg(short = 'p', long, value_delimiter = ',')]
        partitions: Vec<i32>,
        /// New log start offset, or `end` for everything written so far.
        #[arg(short = 'o', long)]
        offset: String,
        /// Show what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Topics to create.
    #[arg(required = true)]
    names: Vec<String>,
    /// Partitions [default: the broker's num.partitions].
    #[arg(short = 'p', long)]
    partitions: Option<i32>,
    /// Replication factor [default: the broker's default.replication.factor].
    #[arg(short = 'r', long)]
    replicas: Option<i16>,
    /// Topic config, key=value; repeatable.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Succeed when a topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    /// Validate on the broker, create nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(ctx: Ctx, cmd: TopicCommand) -> Result<bool> {
    match cmd {
        TopicCommand::Produce(args) => return produce::run(ctx, args).await,
        TopicCommand::Consume(args) => return consume::run(ctx, args).await,
        _ => ctx.check_plain_format()?,
    }
    let mut client = ctx.client().await?;
    match cmd {
        TopicCommand::Create(args) => create(&ctx, &mut client, args).await,
        TopicCommand::List { all } => list(&ctx, &mut client, all).await,
        TopicCommand::Describe { names } => describe(&ctx, &mut client, &names).await,
        TopicCommand::Delete { names, dry_run } => delete(&ctx, &mut client, &names, dry_run).await,
        TopicCommand::AddPartitions {
            name,
            num,
            to,
            dry_run,
        } => add_partitions(&ctx, &mut client, &name, num, to, dry_run).await,
        TopicCommand::AlterConfig {
            name,
            sets,
            deletes,
            dry_run,
        } => {
            if sets.is_empty() && deletes.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
            }
            let mut ops = set_ops(&sets)?;
            ops.extend(deletes.into_iter().map(|k| (k, None)));
            alter_configs(&ctx, &mut client, RESOURCE_TOPIC, &name, ops, dry_run).await
        }
        TopicCommand::Offsets { name, time } => offsets(&ctx, &mut client, &name, time).await,
        TopicCommand::Trim {
            name,
            partitions,
            offset,
            dry_run,
        } => trim(&ctx, &mut client, &name, partitions, &offset, dry_run).await,
        TopicCommand::Produce(_) | TopicCommand::Consume(_) => unreachable!("handled above"),
    }
}

/// Prints per-item status rows (`NAME`, `STATUS`) or their JSON; returns whether all are OK.
fn print_status_rows(
    ctx: &Ctx,
    header: &'static str,
    rows: Vec<(String, i16, Option<String>, Value)>,
) -> bool {
    let ok = rows.iter().all(|r| r.1 == 0);
    if ctx.json() {
        let items: Vec<Value> = rows
            .into_iter()
            .map(|(name, code, message, extra)| {
                let mut obj = json_status(code, message.as_deref());
                obj.insert(header.to_lowercase(), name.into());
                if let Value::Object(extra) = extra {
                    obj.extend(extra);
                }
                Value::Object(obj)
            })
            .collect();
        print_json(&items.into());
    } else {
        let mut table = Table::new(&[header, "STATUS"]);
        for (name, code, message, _) in rows {
            table.row(vec![
                name,
                status_with_message(ctx, code, message.as_deref()),
            ]);
        }
        table.print();
    }
    ok
}

async fn create(ctx: &Ctx, client: &mut Client, args: CreateArgs) -> Result<bool> {
    let configs: Vec<CreatableTopicConfig> = set_ops(&args.configs)?
        .into_iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(&k))
                .with_value(v.as_deref().map(str_bytes))
        })
        .collect();
    let topics: Vec<CreatableTopic> = args
        .names
        .iter()
        .map(|n| {
            CreatableTopic::default()
                .with_name(topic_name(n))
                .with_num_partitions(args.partitions.unwrap_or(-1))
                .with_replication_factor(args.replicas.unwrap_or(-1))
                .with_configs(configs.clone())
        })
        .collect();
    let timeout_ms = client.timeout().as_millis() as i32;
    let response = client
        .call(Target::Any, |_| {
            CreateTopicsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(timeout_ms)
                .with_validate_only(args.dry_run)
        })
        .await?;
    let rows = response
        .topics
        .into_iter()
        .map(|t| {
            let mut code = t.error_code;
            if code == TOPIC_ALREADY_EXISTS && args.if_not_exists {
                code = 0;
            }
            let message = t.error_message.map(|m| m.to_string());
            let extra = json!({"partitions": t.num_partitions, "replication_factor": t.replication_factor,
                               "validate_only": args.dry_run});
            let name = if args.dry_run && code == 0 {
                format!("{} (dry run)", t.name.as_str())
            } else {
                t.name.to_string()
            };
            (if ctx.json() { t.name.to_string() } else { name }, code, message, extra)
        })
        .collect();
    Ok(print_status_rows(ctx, "TOPIC", rows))
}

async fn list(ctx: &Ctx, client: &mut Client, all: bool) -> Result<bool> {
    let metadata = client.metadata(None).await?;
    let mut topics: Vec<_> = metadata
        .topics
        .iter()
        .filter(|t| all || !t.is_internal)
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let name = |t: &&kafka_protocol::messages::metadata_response::MetadataResponseTopic| {
        t.name.as_ref().map(|n| n.to_string()).unwrap_or_default()
    };
    if ctx.json() {
        let rows: Vec<Value> = topics
            .iter()
            .map(|t| {
                json!({"name": name(t), "partitions": t.partitions.len(),
                       "replicas": t.partitions.first().map_or(0, |p| p.replica_nodes.len()),
                       "internal": t.is_internal, "error": error_or_null(t.error_code)})
            })
            .collect();
        print_json(&rows.into());
        return Ok(true);
    }
    let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
    for t in topics {
        table.row(vec![
            name(&t),
            t.partitions.len().to_string(),
            t.partitions
                .first()
                .map_or(0, |p| p.replica_nodes.len())
                .to_string(),
        ]);
    }
    table.print();
    Ok(true)
}

fn error_or_null(code: i16) -> Value {
    if code == 0 {
        Value::Null
    } else {
        klamm_protocol::errors::error_name(code).into()
    }
}

async fn describe(ctx: &Ctx, client: &mut Client, names: &[String]) -> Result<bool> {
    let metadata: MetadataResponse = client.metadata(Some(names)).await?;
    let mut ok = true;
    let mut documents = Vec::new();
    for (i, t) in metadata.topics.iter().enumerate() {
        let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            ok = false;
            if ctx.json() {
                let mut obj = json_status(t.error_code, None);
                obj.insert("topic".into(), name.into());
                documents.push(Value::Object(obj));
            } else {
                outln!("{name}: {}", ctx.status(t.error_code));
            }
            continue;
        }
        let mut partitions: Vec<_> = t.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        let parts: Vec<(String, i32)> = partitions
            .iter()
            .map(|p| (name.clone(), p.partition_index))
            .collect();
        let marks = client.watermarks(&parts).await?;
        let configs = topic_overrides(client, &name).await?;
        if ctx.json() {
            let rows: Vec<Value> = partitions
                .iter()
                .map(|p| {
                    let m = marks.get(&(name.clone(), p.partition_index)).cloned();
                    let (start, end) = match m {
                        Some(Ok((s, e))) => (json!(s), json!(e)),
                        _ => (Value::Null, Value::Null),
                    };
                    json!({"partition": p.partition_index, "leader": p.leader_id.0,
                           "leader_epoch": p.leader_epoch,
                           "replicas": p.replica_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
                           "isr": p.isr_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
                           "log_start_offset": start, "high_watermark": end,
                           "error": error_or_null(p.error_code)})
                })
                .collect();
            let cfg: serde_json::Map<String, Value> = configs
                .iter()
                .map(|(k, v, _)| (k.clone(), v.clone().into()))
                .collect();
            documents.push(json!({"topic": name, "topic_id": t.topic_id.to_string(),
                                  "internal": t.is_internal, "partitions": rows, "configs": cfg,
                                  "error_code": 0, "error": null}));
            continue;
        }
        if i > 0 {
            outln!();
        }
        outln!("NAME         {name}");
        outln!("TOPIC-ID     {}", t.topic_id);
        outln!("INTERNAL     {}", t.is_internal);
        outln!("PARTITIONS   {}", t.partitions.len());
        if !configs.is_empty() {
            outln!();
            let mut table = Table::new(&["KEY", "VALUE", "SOURCE"]);
            for (k, v, source) in &configs {
                table.row(vec![
                    k.clone(),
                    v.clone().unwrap_or("-".into()),
                    source.to_string(),
                ]);
            }
            table.print();
        }
        outln!();
        let mut table = Table::new(&[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START-OFFSET",
            "HIGH-WATERMARK",
        ]);
        for p in partitions {
            let (start, end) = match marks.get(&(name.clone(), p.partition_index)) {
                Some(Ok((s, e))) => (s.to_string(), e.to_string()),
                Some(Err(code)) => (ctx.status(*code), "-".into()),
                None => ("-".into(), "-".into()),
            };
            let ids = |v: &[kafka_protocol::messages::BrokerId]| {
                v.iter()
                    .map(|b| b.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            table.row(vec![
                p.partition_index.to_string(),
                p.leader_id.0.to_string(),
                p.leader_epoch.to_string(),
                ids(&p.replica_nodes),
                ids(&p.isr_nodes),
                start,
                end,
            ]);
        }
        table.print();
    }
    if ctx.json() {
        print_json(&documents.into());
    }
    Ok(ok)
}

/// A topic's config overrides: `(key, value, source)`.
async fn topic_overrides(
    client: &mut Client,
    name: &str,
) -> Result<Vec<(String, Option<String>, &'static str)>> {
    let response = client
        .call(Target::Any, |_| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(str_bytes(name))
                    .with_configuration_keys(None),
            ])
        })
        .await?;
    Ok(response
        .results
        .iter()
        .filter(|r| r.error_code == 0)
        .flat_map(|r| r.configs.iter())
        .filter(|c| c.config_source == 1)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                config_source(c.config_source),
            )
        })
        .collect())
}

async fn delete(ctx: &Ctx, client: &mut Client, names: &[String], dry_run: bool) -> Result<bool> {
    if dry_run {
        let metadata = client.metadata(Some(names)).await?;
        let rows = metadata
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                let label = if t.error_code == 0 && !ctx.json() {
                    format!(
                        "{name} (dry run: would delete {} partitions)",
                        t.partitions.len()
                    )
                } else {
                    name
                };
                (label, t.error_code, None, json!({"validate_only": true}))
            })
            .collect();
        return Ok(print_status_rows(ctx, "TOPIC", rows));
    }
    let timeout_ms = client.timeout().as_millis() as i32;
    let response = client
        .call(Target::Any, |v| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
            if v >= 6 {
                request.with_topics(
                    names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                        .collect(),
                )
            } else {
                request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
            }
        })
        .await?;
    let rows = response
        .responses
        .into_iter()
        .map(|r| {
            let name = r.name.map(|n| n.to_string()).unwrap_or_default();
            (
                name,
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                Value::Null,
            )
        })
        .collect();
    Ok(print_status_rows(ctx, "TOPIC", rows))
}

async fn add_partitions(
    ctx: &Ctx,
    client: &mut Client,
    name: &str,
    num: Option<i32>,
    to: Option<i32>,
    dry_run: bool,
) -> Result<bool> {
    let total = match (num, to) {
        (_, Some(total)) => total,
        (Some(n), None) => client.partitions(name).await?.len() as i32 + n,
        (None, None) => bail!("give --num N (partitions to add) or --to TOTAL"),
    };
    let timeout_ms = client.timeout().as_millis() as i32;
    let response = client
        .call(Target::Any, |_| {
            CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(total)
                    .with_assignments(None)])
                .with_timeout_ms(timeout_ms)
                .with_validate_only(dry_run)
        })
        .await?;
    let rows = response
        .results
        .into_iter()
        .map(|r| {
            let label = if ctx.json() {
                r.name.to_string()
            } else {
                format!(
                    "{} → {total} partitions{}",
                    r.name.as_str(),
                    if dry_run { " (dry run)" } else { "" }
                )
            };
            (
                label,
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                json!({"partitions": total, "validate_only": dry_run}),
            )
        })
        .collect();
    Ok(print_status_rows(ctx, "TOPIC", rows))
}

async fn offsets(ctx: &Ctx, client: &mut Client, name: &str, time: Option<String>) -> Result<bool> {
    let partitions = client.partitions(name).await?;
    let parts: Vec<(String, i32)> = partitions.iter().map(|p| (name.to_string(), *p)).collect();
    let mut ok = true;
    if let Some(time) = time {
        let ts = match time.as_str() {
            "earliest" | "start" => EARLIEST_TIMESTAMP,
            "latest" | "end" => LATEST_TIMESTAMP,
            other => other.parse::<i64>().map_err(|_| {
                anyhow::anyhow!("--time {other:?}: expected earliest, latest or a timestamp in ms")
            })?,
        };
        let queries: Vec<_> = parts.iter().map(|(t, p)| (t.clone(), *p, ts)).collect();
        let results = client.list_offsets(&queries, 0).await?;
        let mut table = Table::new(&["PARTITION", "OFFSET", "TIMESTAMP", "STATUS"]);
        let mut rows = Vec::new();
        for (t, p) in &parts {
            let r = results.get(&(t.clone(), *p)).cloned().unwrap_or(Err(3));
            let (offset, timestamp, code) = match r {
                Ok((o, ts)) => (o, ts, 0),
                Err(c) => (-1, -1, c),
            };
            ok &= code == 0;
            table.row(vec![
                p.to_string(),
                offset.to_string(),
                timestamp.to_string(),
                ctx.status(code),
            ]);
            let mut row = json_status(code, None);
            row.insert("partition".into(), (*p).into());
            row.insert("offset".into(), offset.into());
            row.insert("timestamp".into(), timestamp.into());
            rows.push(Value::Object(row));
        }
        if ctx.json() {
            print_json(&json!({"topic": name, "partitions": rows}));
        } else {
            table.print();
        }
        return Ok(ok);
    }
    let marks = client.watermarks(&parts).await?;
    let mut table = Table::new(&["PARTITION", "START", "END", "RECORDS", "STATUS"]);
    let mut rows = Vec::new();
    for (t, p) in &parts {
        let (start, end, code) = match marks.get(&(t.clone(), *p)).cloned().unwrap_or(Err(3)) {
            Ok((s, e)) => (s, e, 0),
            Err(c) => (-1, -1, c),
        };
        ok &= code == 0;
        table.row(vec![
            p.to_string(),
            start.to_string(),
            end.to_string(),
            (end - start).max(0).to_string(),
            ctx.status(code),
        ]);
        let mut row = json_status(code, None);
        row.insert("partition".into(), (*p).into());
        row.insert("start".into(), start.into());
        row.insert("end".into(), end.into());
        rows.push(Value::Object(row));
    }
    if ctx.json() {
        print_json(&json!({"topic": name, "partitions": rows}));
    } else {
        table.print();
    }
    Ok(ok)
}

async fn trim(
    ctx: &Ctx,
    client: &mut Client,
    name: &str,
    partitions: Vec<i32>,
    offset: &str,
    dry_run: bool,
) -> Result<bool> {
    let offset: i64 = match offset {
        // DeleteRecords takes -1 as "the high watermark".
        "end" => -1,
        n => n
            .parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| anyhow::anyhow!("--offset {n:?}: expected an offset or `end`"))?,
    };
    let partitions = if partitions.is_empty() {
        client.partitions(name).await?
    } else {
        partitions
    };
    let parts: Vec<(String, i32)> = partitions.iter().map(|p| (name.to_string(), *p)).collect();
    let marks = client.watermarks(&parts).await?;
    let mut table = Table::new(&[
        "PARTITION",
        "LOG-START-OFFSET",
        "NEW-LOG-START-OFFSET",
        "STATUS",
    ]);
    let mut rows = Vec::new();
    let mut ok = true;
    for (t, p) in &parts {
        let (start, end, code) = match marks.get(&(t.clone(), *p)).cloned().unwrap_or(Err(3)) {
            Ok((s, e)) => (s, e, 0),
            Err(c) => (-1, -1, c),
        };
        let target = if offset < 0 { end } else { offset };
        let (new_start, code) = if code != 0 || dry_run {
            // OFFSET_OUT_OF_RANGE, as the broker would answer.
            let code = if code == 0 && target > end { 1 } else { code };
            (target.max(start), code)
        } else {
            let leader = client.leader(t, *p).await?;
            let timeout_ms = client.timeout().as_millis() as i32;
            let response = client
                .call(Target::Node(leader), |_| {
                    DeleteRecordsRequest::default()
                        .with_timeout_ms(timeout_ms)
                        .with_topics(vec![DeleteRecordsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(vec![DeleteRecordsPartition::default()
                                .with_partition_index(*p)
                                .with_offset(offset)])])
                })
                .await?;
            let r = response
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .next()
                .ok_or_else(|| anyhow::anyhow!("DeleteRecords: empty response"))?;
            (r.low_watermark, r.error_code)
        };
        ok &= code == 0;
        table.row(vec![
            p.to_string(),
            start.to_string(),
            format!("{new_start}{}", if dry_run { " (dry run)" } else { "" }),
            ctx.status(code),
        ]);
        let mut row = json_status(code, None);
        row.insert("partition".into(), (*p).into());
        row.insert("log_start_offset".into(), start.into());
        row.insert("new_log_start_offset".into(), new_start.into());
        row.insert("dry_run".into(), dry_run.into());
        rows.push(Value::Object(row));
    }
    if ctx.json() {
        print_json(&json!({"topic": name, "partitions": rows}));
    } else {
        table.print();
    }
    Ok(ok)
}
