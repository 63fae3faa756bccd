//! AlterReplicaLogDirs (v0–v2): move replicas between log dirs. Klamm has one log dir, so
//! the only move it can be asked is to where a replica already is, which Kafka answers with
//! success; a dir that is not the broker's gets LOG_DIR_NOT_FOUND, and a partition this
//! broker does not host REPLICA_NOT_AVAILABLE (Kafka keeps that code here for
//! compatibility rather than NOT_LEADER_OR_FOLLOWER).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ResponseKind,
};
use std::path::Path;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: AlterReplicaLogDirsRequest) -> Reply {
    let ours = broker.log_dir_absolute();
    let results = request
        .dirs
        .into_iter()
        .flat_map(|dir| {
            let known = is_same_dir(Path::new(dir.path.as_str()), &ours);
            dir.topics.into_iter().map(move |t| {
                let topic = broker.topic(t.name.0.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|&index| {
                        let error = if !known {
                            ResponseError::LogDirNotFound.code()
                        } else if topic.as_ref().and_then(|t| t.partition(index)).is_none() {
                            ResponseError::ReplicaNotAvailable.code()
                        } else {
                            0
                        };
                        AlterReplicaLogDirPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(error)
                    })
                    .collect();
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions)
            })
        })
        .collect();
    Reply::Now(ResponseKind::AlterReplicaLogDirs(
        AlterReplicaLogDirsResponse::default().with_results(results),
    ))
}

/// Whether a client's `path` names the broker's log dir: Kafka compares absolute paths;
/// the same dir reached through a symlink or with a trailing slash is accepted too.
fn is_same_dir(path: &Path, ours: &Path) -> bool {
    if !path.is_absolute() {
        return false;
    }
    path.components().eq(ours.components())
        || matches!(
            (path.canonicalize(), ours.canonicalize()),
            (Ok(a), Ok(b)) if a == b
        )
}
