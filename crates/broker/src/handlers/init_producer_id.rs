//! InitProducerId (v0–v5) for idempotent producers: a new producer id with epoch 0, or
//! (v3+, KIP-360) the same id with the next epoch when a producer asks to bump its own.
//! Transactional ids are refused until the transaction coordinator exists.

use super::Reply;
use crate::state::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest) -> Reply {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = &request.transactional_id {
        tracing::warn!(transactional_id = %id.0.as_str(), "transactions are not supported yet; InitProducerId refused");
        return Reply::Now(ResponseKind::InitProducerId(
            response.with_error_code(ResponseError::InvalidRequest.code()),
        ));
    }
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let bumped = (pid >= 0 && (0..i16::MAX - 1).contains(&epoch)).then_some((pid, epoch + 1));
    let result = match bumped {
        Some(ids) => Ok(ids),
        None => broker.allocate_producer_id().map(|id| (id, 0)),
    };
    let response = match result {
        Ok((id, epoch)) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => response.with_error_code(e.error.code()),
    };
    Reply::Now(ResponseKind::InitProducerId(response))
}
