//! `klamm group list|describe|seek|delete|offset-delete`, and the committed-offset helpers
//! `topic consume -g` uses.

use super::format::OffsetSpec;
use super::{json_status, print_json, status_with_message, Ctx, Table};
use anyhow::{bail, Result};
use bytes::Buf;
use clap::Subcommand;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use klamm_client::{str_bytes, topic_name, Client, Target};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

type Tp = (String, i32);

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    #[command(visible_alias = "ls")]
    List,
    /// Members, committed offsets and lag (CURRENT-OFFSET, LOG-END-OFFSET, LAG, TOTAL-LAG).
    Describe {
        /// Groups to describe.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets; refused while the group has active members.
    Seek {
        /// Group whose offsets to move.
        group: String,
        /// start, end, OFFSET, @TIMESTAMP_MS, or +N / -N to shift the committed offsets.
        #[arg(long, allow_hyphen_values = true)]
        to: OffsetSpec,
        /// Topics to move, comma-separated [default: the topics the group has offsets for].
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Print the new offsets, commit nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups (they must have no active members).
    Delete {
        /// Groups to delete.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete a group's committed offsets for topics or partitions.
    OffsetDelete {
        /// Group whose offsets to delete.
        group: String,
        /// TOPIC or TOPIC:P1,P2; repeatable.
        #[arg(long = "topic", required = true, value_name = "TOPIC[:P,...]")]
        topics: Vec<String>,
    },
}

pub async fn run(ctx: Ctx, cmd: GroupCommand) -> Result<bool> {
    ctx.check_plain_format()?;
    let mut client = ctx.client().await?;
    match cmd {
        GroupCommand::List => list(&ctx, &mut client).await,
        GroupCommand::Describe { groups } => describe(&ctx, &mut client, &groups).await,
        GroupCommand::Seek {
            group,
            to,
            topics,
            dry_run,
        } => seek(&ctx, &mut client, &group, to, &topics, dry_run).await,
        GroupCommand::Delete { groups } => delete(&ctx, &mut client, &groups).await,
        GroupCommand::OffsetDelete { group, topics } => {
            offset_delete(&ctx, &mut client, &group, &topics).await
        }
    }
}

/// Committed offsets of `group` (for `parts`, or every partition it has offsets for when
/// `parts` is empty). Offsets of -1 (none committed) are left out.
pub async fn committed_offsets(
    client: &mut Client,
    group: &str,
    parts: &[Tp],
) -> Result<BTreeMap<Tp, i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = (!parts.is_empty()).then(|| {
        by_topic
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(ps.clone())
            })
            .collect()
    });
    let response = client
        .call(Target::Coordinator(group.to_string()), |_| {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(topics)
        })
        .await?;
    if response.error_code != 0 {
        bail!(
            "OffsetFetch for group {group}: {}",
            klamm_protocol::errors::error_name(response.error_code)
        );
    }
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Commits offsets for `group` without being a member (generation -1, as admin tools do).
/// Returns each partition's error code.
pub async fn commit_offsets(
    client: &mut Client,
    group: &str,
    offsets: &BTreeMap<Tp, i64>,
) -> Result<BTreeMap<Tp, i16>> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), offset) in offsets {
        by_topic.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(str_bytes(""))),
        );
    }
    let response = client
        .call(Target::Coordinator(group.to_string()), |v| {
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(str_bytes(""))
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            if (2..=4).contains(&v) {
                request.with_retention_time_ms(-1)
            } else {
                request
            }
        })
        .await?;
    Ok(response
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.to_string();
            t.partitions
                .into_iter()
                .map(move |p| ((name.clone(), p.partition_index), p.error_code))
        })
        .collect())
}

async fn list(ctx: &Ctx, client: &mut Client) -> Result<bool> {
    let metadata = client.metadata(Some(&[])).await?;
    let mut targets: Vec<Target> = metadata
        .brokers
        .iter()
        .map(|b| Target::Node(b.node_id.0))
        .collect();
    if targets.is_empty() {
        targets.push(Target::Any);
    }
    let mut groups = BTreeMap::new();
    let mut ok = true;
    for target in targets {
        let response = client
            .call(target, |_| ListGroupsRequest::default())
            .await?;
        if response.error_code != 0 {
            ok = false;
            eprintln!("ListGroups: {}", ctx.status(response.error_code));
        }
        for g in response.groups {
            groups.insert(
                g.group_id.to_string(),
                (g.group_state.to_string(), g.protocol_type.to_string()),
            );
        }
    }
    if ctx.json() {
        let rows: Vec<Value> = groups
            .iter()
            .map(|(g, (state, kind))| json!({"group": g, "state": state, "protocol_type": kind}))
            .collect();
        print_json(&rows.into());
    } else {
        let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
        for (g, (state, kind)) in groups {
            let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
            table.row(vec![g, dash(state), dash(kind)]);
        }
        table.print();
    }
    Ok(ok)
}

async fn describe_group(client: &mut Client, group: &str) -> Result<DescribedGroup> {
    let response = client
        .call(Target::Coordinator(group.to_string()), |_| {
            DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))])
        })
        .await?;
    response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("DescribeGroups: empty response"))
}

/// Partitions assigned to a member under the `consumer` protocol.
fn assigned_partitions(assignment: &[u8]) -> Vec<Tp> {
    let mut buf = bytes::Bytes::copy_from_slice(assignment);
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .flat_map(|tp| {
                let topic = tp.topic.to_string();
                tp.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn describe(ctx: &Ctx, client: &mut Client, groups: &[String]) -> Result<bool> {
    let mut ok = true;
    let mut documents = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let described = describe_group(client, group).await?;
        let dead = described.group_state.as_str() == "Dead";
        if described.error_code != 0 || dead {
            // Unknown groups: DescribeGroups v6+ says GROUP_ID_NOT_FOUND, older ones "Dead".
            let code = if described.error_code != 0 {
                described.error_code
            } else {
                69
            };
            ok = false;
            if ctx.json() {
                let mut obj = json_status(code, None);
                obj.insert("group".into(), group.clone().into());
                documents.push(Value::Object(obj));
            } else {
                outln!("{group}: {}", ctx.status(code));
            }
            continue;
        }
        let mut owner: BTreeMap<Tp, usize> = BTreeMap::new();
        if described.protocol_type.as_str() == "consumer" {
            for (m, member) in described.members.iter().enumerate() {
                for tp in assigned_partitions(&member.member_assignment) {
                    owner.insert(tp, m);
                }
            }
        }
        let committed = committed_offsets(client, group, &[]).await?;
        let parts: BTreeSet<Tp> = committed.keys().chain(owner.keys()).cloned().collect();
        let parts: Vec<Tp> = parts.into_iter().collect();
        let marks = client.watermarks(&parts).await?;
        let mut total_lag = 0i64;
        let mut rows = Vec::new();
        let mut table = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]);
        for tp in &parts {
            let current = committed.get(tp).copied();
            let end = marks.get(tp).and_then(|m| m.ok()).map(|m| m.1);
            let lag = match (current, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            total_lag += lag.unwrap_or(0);
            let member = owner.get(tp).map(|m| &described.members[*m]);
            let dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            table.row(vec![
                tp.0.clone(),
                tp.1.to_string(),
                dash(current),
                dash(end),
                dash(lag),
                member.map_or("-".into(), |m| m.member_id.to_string()),
                member.map_or("-".into(), |m| m.client_host.to_string()),
                member.map_or("-".into(), |m| m.client_id.to_string()),
            ]);
            rows.push(
                json!({"topic": tp.0, "partition": tp.1, "current_offset": current,
                             "log_end_offset": end, "lag": lag,
                             "consumer_id": member.map(|m| m.member_id.to_string()),
                             "host": member.map(|m| m.client_host.to_string()),
                             "client_id": member.map(|m| m.client_id.to_string())}),
            );
        }
        if ctx.json() {
            let members: Vec<Value> = described
                .members
                .iter()
                .map(|m| {
                    json!({"member_id": m.member_id.as_str(), "client_id": m.client_id.as_str(),
                           "host": m.client_host.as_str(),
                           "group_instance_id": m.group_instance_id.as_ref().map(|s| s.to_string())})
                })
                .collect();
            documents.push(
                json!({"group": group, "state": described.group_state.as_str(),
                                  "protocol_type": described.protocol_type.as_str(),
                                  "protocol": described.protocol_data.as_str(),
                                  "members": members, "partitions": rows, "total_lag": total_lag,
                                  "error_code": 0, "error": null}),
            );
            continue;
        }
        if i > 0 {
            outln!();
        }
        outln!("GROUP        {group}");
        outln!("STATE        {}", described.group_state.as_str());
        let protocol = format!(
            "{} {}",
            described.protocol_type.as_str(),
            described.protocol_data.as_str()
        );
        outln!(
            "PROTOCOL     {}",
            if protocol.trim().is_empty() {
                "-"
            } else {
                protocol.trim()
            }
        );
        outln!("MEMBERS      {}", described.members.len());
        outln!("TOTAL-LAG    {total_lag}");
        outln!();
        table.print();
    }
    if ctx.json() {
        print_json(&documents.into());
    }
    Ok(ok)
}

async fn seek(
    ctx: &Ctx,
    client: &mut Client,
    group: &str,
    to: OffsetSpec,
    topics: &[String],
    dry_run: bool,
) -> Result<bool> {
    let described = describe_group(client, group).await?;
    if !described.members.is_empty() {
        bail!(
            "group {group} has {} active member(s) (state {}): stop its consumers before seeking",
            described.members.len(),
            described.group_state.as_str()
        );
    }
    let committed = committed_offsets(client, group, &[]).await?;
    let parts: Vec<Tp> = if topics.is_empty() {
        committed.keys().cloned().collect()
    } else {
        let mut parts = Vec::new();
        for t in topics {
            parts.extend(
                client
                    .partitions(t)
                    .await?
                    .into_iter()
                    .map(|p| (t.clone(), p)),
            );
        }
        parts
    };
    if parts.is_empty() {
        bail!("group {group} has no committed offsets: name the topics to seek with --topics");
    }
    let marks = client.watermarks(&parts).await?;
    let by_time = match to {
        OffsetSpec::Timestamp(ts) => {
            let queries: Vec<_> = parts.iter().map(|(t, p)| (t.clone(), *p, ts)).collect();
            client.list_offsets(&queries, 0).await?
        }
        _ => BTreeMap::new(),
    };
    let mut targets = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for tp in &parts {
        let (start, end) = match marks.get(tp) {
            Some(Ok(m)) => *m,
            Some(Err(code)) => {
                failed.insert(tp.clone(), *code);
                continue;
            }
            None => {
                failed.insert(tp.clone(), 3);
                continue;
            }
        };
        let current = committed.get(tp).copied().unwrap_or(start);
        let target = match to {
            OffsetSpec::Start => start,
            OffsetSpec::End => end,
            OffsetSpec::At(n) => n,
            OffsetSpec::Plus(n) => current.saturating_add(n),
            OffsetSpec::Minus(n) => current.saturating_sub(n),
            OffsetSpec::Timestamp(_) => match by_time.get(tp) {
                Some(Ok((o, _))) if *o >= 0 => *o,
                _ => end,
            },
        };
        targets.insert(tp.clone(), target.clamp(start, end));
    }
    let results = if dry_run || targets.is_empty() {
        targets.keys().map(|tp| (tp.clone(), 0)).collect()
    } else {
        commit_offsets(client, group, &targets).await?
    };
    let mut ok = failed.is_empty();
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
        "STATUS",
    ]);
    let mut rows = Vec::new();
    for tp in &parts {
        let code = failed
            .get(tp)
            .or_else(|| results.get(tp))
            .copied()
            .unwrap_or(0);
        ok &= code == 0;
        let current = committed.get(tp).copied();
        let new = targets.get(tp).copied();
        let status = if code == 0 && dry_run {
            "OK (dry run)".to_string()
        } else {
            ctx.status(code)
        };
        table.row(vec![
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or("-".into(), |c| c.to_string()),
            new.map_or("-".into(), |c| c.to_string()),
            status,
        ]);
        let mut row = json_status(code, None);
        row.insert("topic".into(), tp.0.clone().into());
        row.insert("partition".into(), tp.1.into());
        row.insert("current_offset".into(), current.into());
        row.insert("new_offset".into(), new.into());
        rows.push(Value::Object(row));
    }
    if ctx.json() {
        print_json(&json!({"group": group, "dry_run": dry_run, "partitions": rows}));
    } else {
        table.print();
    }
    Ok(ok)
}

async fn delete(ctx: &Ctx, client: &mut Client, groups: &[String]) -> Result<bool> {
    let mut ok = true;
    let mut table = Table::new(&["GROUP", "STATUS"]);
    let mut rows = Vec::new();
    for group in groups {
        let code = match client
            .call(Target::Coordinator(group.clone()), |_| {
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))])
            })
            .await
        {
            Ok(response) => response.results.first().map_or(0, |r| r.error_code),
            Err(klamm_client::ClientError::Kafka { code, .. }) => code,
            Err(e) => return Err(e.into()),
        };
        ok &= code == 0;
        table.row(vec![group.clone(), ctx.status(code)]);
        let mut row = json_status(code, None);
        row.insert("group".into(), group.clone().into());
        rows.push(Value::Object(row));
    }
    if ctx.json() {
        print_json(&rows.into());
    } else {
        table.print();
    }
    Ok(ok)
}

async fn offset_delete(
    ctx: &Ctx,
    client: &mut Client,
    group: &str,
    specs: &[String],
) -> Result<bool> {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for spec in specs {
        let (topic, parts) = match spec.split_once(':') {
            Some((t, ps)) => {
                let parsed: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse()).collect();
                let parsed = parsed.map_err(|_| {
                    anyhow::anyhow!("--topic {spec:?}: expected TOPIC or TOPIC:P1,P2")
                })?;
                (t.to_string(), parsed)
            }
            None => (spec.clone(), client.partitions(spec).await?),
        };
        topics.entry(topic).or_default().extend(parts);
    }
    let response = client
        .call(Target::Coordinator(group.to_string()), |_| {
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            OffsetDeleteRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    ps.iter()
                                        .map(|p| {
                                            OffsetDeleteRequestPartition::default()
                                                .with_partition_index(*p)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .await?;
    let mut ok = response.error_code == 0;
    let mut table = Table::new(&["TOPIC", "PARTITION", "STATUS"]);
    let mut rows = Vec::new();
    if response.error_code != 0 {
        eprintln!(
            "{group}: {}",
            status_with_message(ctx, response.error_code, None)
        );
    }
    for t in &response.topics {
        for p in &t.partitions {
            ok &= p.error_code == 0;
            table.row(vec![
                t.name.to_string(),
                p.partition_index.to_string(),
                ctx.status(p.error_code),
            ]);
            let mut row = json_status(p.error_code, None);
            row.insert("topic".into(), t.name.to_string().into());
            row.insert("partition".into(), p.partition_index.into());
            rows.push(Value::Object(row));
        }
    }
    if ctx.json() {
        let mut obj = json_status(response.error_code, None);
        obj.insert("group".into(), group.into());
        obj.insert("partitions".into(), rows.into());
        print_json(&obj.into());
    } else {
        table.print();
    }
    Ok(ok)
}
