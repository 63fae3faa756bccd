//! ListTransactions (v0–v1): transactional ids this coordinator knows, filtered by state
//! names, producer ids and (v1) how long the transaction has been running.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use klamm_protocol::txn_records::TxnStatus;
use std::sync::Arc;

const STATES: [TxnStatus; 8] = [
    TxnStatus::Empty,
    TxnStatus::Ongoing,
    TxnStatus::PrepareCommit,
    TxnStatus::PrepareAbort,
    TxnStatus::CompleteCommit,
    TxnStatus::CompleteAbort,
    TxnStatus::Dead,
    TxnStatus::PrepareEpochFence,
];

pub fn handle(broker: &Arc<Broker>, request: ListTransactionsRequest) -> Reply {
    let wanted: Vec<&str> = request.state_filters.iter().map(|s| s.as_str()).collect();
    let unknown: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|s| !STATES.iter().any(|st| st.name() == s.as_str()))
        .cloned()
        .collect();
    let pids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let now = broker.now_ms();
    let states = broker
        .txns
        .lock()
        .all()
        .filter(|(_, m)| wanted.is_empty() || wanted.contains(&m.status.name()))
        .filter(|(_, m)| pids.is_empty() || pids.contains(&m.producer_id))
        .filter(|(_, m)| {
            // v1: only transactions running longer than the filter (-1 = no filter).
            request.duration_filter < 0
                || (m.status == TxnStatus::Ongoing && now - m.start_ms > request.duration_filter)
        })
        .map(|(id, m)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.status.name()))
        })
        .collect();
    Reply::Now(ResponseKind::ListTransactions(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states),
    ))
}
