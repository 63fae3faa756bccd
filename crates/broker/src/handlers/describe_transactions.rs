//! DescribeTransactions (v0): state, producer, timeout and partitions of transactional ids;
//! TRANSACTIONAL_ID_NOT_FOUND for ids the coordinator does not know.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use klamm_coordinator::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: DescribeTransactionsRequest) -> Reply {
    let txns = broker.txns.lock();
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            let Some(m) = txns.get(id.0.as_str()) else {
                return state.with_error_code(ErrorCode::TransactionalIdNotFound.code());
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                topics.entry(t).or_default().push(*p);
            }
            state
                .with_transaction_state(StrBytes::from_static_str(m.status.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
        })
        .collect();
    Reply::Now(ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    ))
}
