//! InitProducerId (v0–v5). Without a transactional id: a new producer id with epoch 0, or
//! (v3+, KIP-360) the same id with the next epoch when a producer asks to bump its own.
//! With one: the transaction coordinator bumps the id's epoch (fencing older instances),
//! aborting a transaction the previous instance left open first (answering
//! CONCURRENT_TRANSACTIONS meanwhile, so the client retries).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use klamm_coordinator::ErrorCode;
use std::sync::Arc;

/// InitProducerId v4 introduced PRODUCER_FENCED.
const FENCED_SINCE_VERSION: i16 = 4;

pub fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest, version: i16) -> Reply {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = &request.transactional_id {
        return transactional(broker, id.0.as_str(), &request, version, response);
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

fn transactional(
    broker: &Arc<Broker>,
    id: &str,
    request: &InitProducerIdRequest,
    version: i16,
    response: InitProducerIdResponse,
) -> Reply {
    // A new id may be needed: reserve its block now (on the blocking thread the row sends
    // this request to when the block is used up), not under the transaction lock.
    if let Err(e) = broker.reserve_producer_id_block() {
        return Reply::Now(ResponseKind::InitProducerId(
            response.with_error_code(e.error.code()),
        ));
    }
    let expected =
        (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
    let (result, waits, complete) = broker.txns.with(broker, |c| {
        c.init_producer_id(
            id,
            request.transaction_timeout_ms,
            expected,
            broker.now_ms(),
            // The one way allocation fails: the new block could not be persisted.
            || {
                broker
                    .allocate_producer_id()
                    .map_err(|_| ErrorCode::KafkaStorageError)
            },
        )
    });
    let response = match result {
        Ok((pid, epoch)) => response
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(code) => {
            response.with_error_code(crate::txn::for_version(code, version, FENCED_SINCE_VERSION))
        }
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        crate::txn::finish(broker, waits, complete).await;
        ResponseKind::InitProducerId(response)
    }))
}
