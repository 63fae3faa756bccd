//! AddOffsetsToTxn (v0–v3): the group's `__consumer_offsets` partition joins the producer's
//! transaction, so that its TxnOffsetCommit records get the transaction's marker.

use super::Reply;
use crate::broker::Broker;
use crate::internal::OFFSETS_TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};
use klamm_protocol::group_records::partition_for_group;
use std::sync::Arc;

/// AddOffsetsToTxn v2 introduced PRODUCER_FENCED.
const FENCED_SINCE_VERSION: i16 = 2;

pub fn handle(broker: &Arc<Broker>, request: AddOffsetsToTxnRequest, version: i16) -> Reply {
    let topic = match broker.internal_topic(OFFSETS_TOPIC) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e.message, "cannot create __consumer_offsets");
            return Reply::Now(ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default()
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            ));
        }
    };
    let group = request.group_id.0.as_str();
    if group.is_empty() {
        return Reply::Now(ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default()
                .with_error_code(ResponseError::InvalidGroupId.code()),
        ));
    }
    let partition = (
        OFFSETS_TOPIC.to_string(),
        partition_for_group(group, topic.partitions.len() as i32),
    );
    let (code, waits, complete) = broker.txns.with(broker, |c| {
        c.add_partitions(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[partition],
            broker.now_ms(),
        )
    });
    let code = crate::txn::for_version(code, version, FENCED_SINCE_VERSION);
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        crate::txn::finish(broker, waits, complete).await;
        ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
    }))
}
