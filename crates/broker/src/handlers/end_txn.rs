//! EndTxn (v0–v3): commits or aborts the producer's transaction. The PrepareCommit /
//! PrepareAbort record is made durable first (from then on the outcome survives a crash),
//! then the markers are appended to every partition of the transaction and the Complete
//! record to `__transaction_state`, and only then does the answer go out, so the producer's
//! next transaction never meets CONCURRENT_TRANSACTIONS. Readers see the markers once they
//! are durable.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};
use std::sync::Arc;

/// EndTxn v2 introduced PRODUCER_FENCED.
const FENCED_SINCE_VERSION: i16 = 2;

pub fn handle(broker: &Arc<Broker>, request: EndTxnRequest, version: i16) -> Reply {
    let (code, waits, complete) = broker.txns.with(broker, |c| {
        c.end_txn(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            broker.now_ms(),
        )
    });
    let code = crate::txn::for_version(code, version, FENCED_SINCE_VERSION);
    let response = EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        crate::txn::finish(broker, waits, complete).await;
        ResponseKind::EndTxn(response)
    }))
}
