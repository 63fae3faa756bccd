//! DeleteRecords (v0–v2): moves a partition's log start offset (durably) so records below
//! it are gone for every reader; `-1` means the high watermark. An offset past the high
//! watermark is OFFSET_OUT_OF_RANGE.

use super::Reply;
use crate::broker::Broker;
use crate::partition::Partition;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use std::sync::Arc;

/// "Up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub fn handle(broker: &Arc<Broker>, request: DeleteRecordsRequest) -> Reply {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let refused = crate::internal::refuse_delete_records(t.name.0.as_str());
            let topic = broker.topic(t.name.0.as_str());
            let partitions =
                t.partitions
                    .iter()
                    .map(|p| {
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1);
                        if let Some(e) = &refused {
                            return result.with_error_code(e.error.code());
                        }
                        match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                            None => result
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Some(partition) => match delete(partition, p.offset) {
                                Ok(low) => result.with_low_watermark(low),
                                Err(e) => result.with_error_code(e.code()),
                            },
                        }
                    })
                    .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::DeleteRecords(
        DeleteRecordsResponse::default().with_topics(topics),
    ))
}

fn delete(partition: &Partition, offset: i64) -> Result<i64, ResponseError> {
    let hw = partition.high_watermark();
    let target = if offset == HIGH_WATERMARK { hw } else { offset };
    if target < 0 || target > hw {
        return Err(ResponseError::OffsetOutOfRange);
    }
    partition.log().delete_records_before(target).map_err(|e| {
        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "DeleteRecords failed");
        ResponseError::KafkaStorageError
    })
}
