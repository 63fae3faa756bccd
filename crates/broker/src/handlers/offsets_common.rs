//! What the offset APIs (OffsetCommit, TxnOffsetCommit, OffsetDelete) share: their requests
//! and responses are lists of topics with partitions, in the same shape but of different
//! generated types, so the shared parts are macros over the field names; and each commit is
//! answered once its record in `__consumer_offsets` is durable.

use super::Reply;
use crate::partition::Partition;
use kafka_protocol::messages::ResponseKind;
use std::sync::Arc;

/// `(topic, partition, offset, leader epoch, metadata)` of each partition of a commit
/// request's `topics` (OffsetCommit and TxnOffsetCommit name their fields alike).
macro_rules! commit_entries {
    ($topics:expr) => {
        $topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        t.name.0.as_str().to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata
                            .as_ref()
                            .map(|m| m.as_str().to_string()),
                    )
                })
            })
            .collect::<Vec<(String, i32, i64, i32, Option<String>)>>()
    };
}

/// The response topics for a request's `topics`, one error per partition in request order
/// from `errors` (an iterator of `ErrorCode`), as `$topic`/`$partition` response types.
macro_rules! per_partition_errors {
    ($topics:expr, $errors:expr, $topic:ty, $partition:ty) => {{
        let mut errors = $errors;
        $topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        <$partition>::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(errors.next().map_or(0, |e| e.code()))
                    })
                    .collect();
                <$topic>::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    }};
}

pub(super) use {commit_entries, per_partition_errors};

/// The response now, or once `durable` (the commit's last offset in its `__consumer_offsets`
/// partition) is visible, like `acks=all`.
pub fn when_durable(response: ResponseKind, durable: Option<(Arc<Partition>, i64)>) -> Reply {
    match durable {
        None => Reply::Now(response),
        Some((partition, last_offset)) => Reply::Later(Box::pin(async move {
            partition.wait_visible(last_offset).await;
            response
        })),
    }
}
