//! `klamm topic consume`: fetch from chosen partitions and print each record in a format.
//!
//! With `-g GROUP` the consumer starts from the group's committed offsets and commits its
//! position after every fetch, without joining the group (like a consumer with manual
//! assignment); the broker refuses such commits while the group has active members.

use super::super::format::{record_json, OffsetSpec, RecordFormat};
use super::super::group::{commit_offsets, committed_offsets};
use super::super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use klamm_client::records::decode_fetched;
use klamm_client::{Client, FetchOptions, LATEST_TIMESTAMP, READ_COMMITTED, READ_UNCOMMITTED};
use std::collections::BTreeMap;
use std::io::Write;

const OFFSET_OUT_OF_RANGE: i16 = 1;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topics to read.
    #[arg(required = true)]
    topics: Vec<String>,
    /// Where to start: start, end, N, +N (N after the start), -N (N before the end),
    /// @TIMESTAMP_MS [default: the group's committed offset with -g, else start].
    #[arg(short = 'o', long, allow_hyphen_values = true)]
    offset: Option<OffsetSpec>,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    num: Option<u64>,
    /// Stop at the end of each partition (its end offset when consuming started).
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// Use this consumer group's committed offsets and commit progress to it.
    #[arg(short = 'g', long)]
    group: Option<String>,
    /// Partitions to read, comma-separated [default: all].
    #[arg(short = 'p', long, value_delimiter = ',')]
    partitions: Vec<i32>,
    /// Read only committed transactional records (isolation_level=1).
    #[arg(long)]
    read_committed: bool,
    /// Longest wait of one fetch for new data.
    #[arg(long, default_value = "500ms", value_parser = super::super::parse_duration)]
    fetch_wait: std::time::Duration,
}

enum Output {
    Json,
    Format(RecordFormat),
}

type Tp = (String, i32);

pub async fn run(ctx: Ctx, args: ConsumeArgs) -> Result<bool> {
    let output = match ctx.args.format.as_str() {
        "json" => Output::Json,
        "text" => Output::Format(RecordFormat::parse("%v\\n")?),
        f => Output::Format(RecordFormat::parse(f)?),
    };
    let mut client = ctx.client().await?;
    let mut parts: Vec<Tp> = Vec::new();
    for topic in &args.topics {
        let available = client.partitions(topic).await?;
        if args.partitions.is_empty() {
            parts.extend(available.iter().map(|p| (topic.clone(), *p)));
            continue;
        }
        for p in &args.partitions {
            if !available.contains(p) {
                bail!("{topic} has no partition {p} (it has {})", available.len());
            }
            parts.push((topic.clone(), *p));
        }
    }
    let isolation = if args.read_committed {
        READ_COMMITTED
    } else {
        READ_UNCOMMITTED
    };
    let mut positions =
        start_positions(&mut client, &parts, args.offset, args.group.as_deref()).await?;
    let ends = if args.exit_at_end {
        // read_committed stops at the last stable offset, as its fetches do.
        let queries: Vec<_> = parts
            .iter()
            .map(|(t, p)| (t.clone(), *p, LATEST_TIMESTAMP))
            .collect();
        let marks = client.list_offsets(&queries, isolation).await?;
        parts
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    marks.get(tp).and_then(|m| m.ok()).map_or(0, |m| m.0),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let options = FetchOptions {
        max_wait_ms: args.fetch_wait.as_millis() as i32,
        isolation_level: isolation,
        ..FetchOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut consumed = 0u64;
    let mut ok = true;
    let mut line = Vec::new();
    'outer: loop {
        if args.num.is_some_and(|n| consumed >= n) {
            break;
        }
        if args.exit_at_end {
            positions.retain(|tp, pos| *pos < ends[tp]);
        }
        if positions.is_empty() {
            break;
        }
        let data = client.fetch(&positions, options).await?;
        let mut moved = BTreeMap::new();
        for (topic, pd) in data {
            let tp = (topic.clone(), pd.partition_index);
            let Some(&position) = positions.get(&tp) else {
                continue;
            };
            if pd.error_code == OFFSET_OUT_OF_RANGE {
                let start = client.watermarks(std::slice::from_ref(&tp)).await?;
                let reset = start.get(&tp).and_then(|m| m.ok()).map_or(0, |m| m.0);
                ctx.hint(&format!(
                    "{topic}-{}: offset {position} out of range, resuming at the log start {reset}",
                    tp.1
                ));
                positions.insert(tp, reset);
                continue;
            }
            if pd.error_code != 0 {
                eprintln!(
                    "{topic}-{}: {}",
                    tp.1,
                    ctx.paint_error(&klamm_protocol::errors::error_name(pd.error_code))
                );
                positions.remove(&tp);
                ok = false;
                continue;
            }
            let aborted = args
                .read_committed
                .then(|| pd.aborted_transactions.as_deref().unwrap_or_default());
            let fetched = decode_fetched(
                tp.1,
                pd.records.as_deref().unwrap_or_default(),
                position,
                aborted,
            )?;
            let mut next = fetched.next_offset.unwrap_or(position).max(position);
            for r in &fetched.records {
                line.clear();
                match &output {
                    Output::Json => {
                        serde_json::to_writer(&mut line, &record_json(&topic, r))?;
                        line.push(b'\n');
                    }
                    Output::Format(f) => f.format(&topic, r, &mut line),
                }
                if let Err(e) = out.write_all(&line) {
                    return broken_pipe_is_fine(e);
                }
                consumed += 1;
                if args.num.is_some_and(|n| consumed >= n) {
                    next = r.offset + 1;
                    positions.insert(tp.clone(), next);
                    moved.insert(tp.clone(), next);
                    break 'outer;
                }
            }
            if next != position {
                positions.insert(tp.clone(), next);
                moved.insert(tp, next);
            }
        }
        if let Err(e) = out.flush() {
            return broken_pipe_is_fine(e);
        }
        if let Some(group) = &args.group {
            ok &= commit_quietly(&ctx, &mut client, group, &moved).await?;
        }
    }
    if let Err(e) = out.flush() {
        return broken_pipe_is_fine(e);
    }
    if let Some(group) = &args.group {
        ok &= commit_quietly(&ctx, &mut client, group, &positions).await?;
    }
    if ctx.args.verbose > 0 {
        eprintln!("consumed {consumed} records");
    }
    Ok(ok)
}

fn broken_pipe_is_fine(e: std::io::Error) -> Result<bool> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(true)
    } else {
        Err(e.into())
    }
}

async fn commit_quietly(
    ctx: &Ctx,
    client: &mut Client,
    group: &str,
    offsets: &BTreeMap<Tp, i64>,
) -> Result<bool> {
    if offsets.is_empty() {
        return Ok(true);
    }
    let mut ok = true;
    for ((t, p), code) in commit_offsets(client, group, offsets).await? {
        if code != 0 {
            ok = false;
            eprintln!(
                "commit {group} {t}-{p}: {}",
                ctx.paint_error(&klamm_protocol::errors::error_name(code))
            );
        }
    }
    Ok(ok)
}

/// The first offset to read per partition.
async fn start_positions(
    client: &mut Client,
    parts: &[Tp],
    spec: Option<OffsetSpec>,
    group: Option<&str>,
) -> Result<BTreeMap<Tp, i64>> {
    let committed = match (group, spec) {
        (Some(g), None) => committed_offsets(client, g, parts).await?,
        _ => BTreeMap::new(),
    };
    let marks = client.watermarks(parts).await?;
    let mut by_time = BTreeMap::new();
    if let Some(OffsetSpec::Timestamp(ts)) = spec {
        let queries: Vec<_> = parts.iter().map(|(t, p)| (t.clone(), *p, ts)).collect();
        by_time = client.list_offsets(&queries, READ_UNCOMMITTED).await?;
    }
    let mut positions = BTreeMap::new();
    for tp in parts {
        let (start, end) = match marks.get(tp) {
            Some(Ok(m)) => *m,
            Some(Err(code)) => bail!(
                "{}-{}: {}",
                tp.0,
                tp.1,
                klamm_protocol::errors::error_name(*code)
            ),
            None => bail!("{}-{}: no offsets", tp.0, tp.1),
        };
        let position = match spec {
            None => committed
                .get(tp)
                .copied()
                .filter(|o| *o >= 0)
                .unwrap_or(start),
            Some(OffsetSpec::Start) => start,
            Some(OffsetSpec::End) => end,
            Some(OffsetSpec::At(n)) => n,
            Some(OffsetSpec::Plus(n)) => start.saturating_add(n).min(end),
            Some(OffsetSpec::Minus(n)) => end.saturating_sub(n).max(start),
            Some(OffsetSpec::Timestamp(_)) => match by_time.get(tp) {
                Some(Ok((offset, _))) if *offset >= 0 => *offset,
                // No record at or after the timestamp: start at the end.
                _ => end,
            },
        };
        positions.insert(tp.clone(), position);
    }
    Ok(positions)
}
