//! The one table of the APIs Klamm serves: one row per API with its advertised and served
//! versions, its handler and where its response carries error codes. Routing
//! ([`super::dispatch`]), ApiVersions and `klamm_request_errors_total` are all derived from
//! it, so an API cannot be half-added: a row is the whole of it.
//!
//! Invariant: a row's handler is called only with its own request kind (the version check
//! and the decoder both come from the row's key).

// A row names every value a handler may take; each handler uses some of them.
#![allow(unused_variables)]

use super::*;
use kafka_protocol::messages::ApiKey;
use klamm_protocol::versions::ApiSupport;

/// What a handler may use besides its request.
pub struct Context<'a> {
    pub broker: &'a Arc<Broker>,
    pub header: &'a RequestHeader,
    pub version: i16,
    pub info: &'a ConnectionInfo,
}

pub struct Row {
    pub support: ApiSupport,
    /// Calls the API's handler; the request is of the row's kind.
    pub handle: fn(&Context<'_>, RequestKind) -> Result<Reply, DispatchError>,
    /// The error codes in a response of the row's kind, one per failed item.
    pub errors: fn(&ResponseKind) -> Vec<i16>,
    /// Whether this request's handler writes to disk and waits for it (an fsync of the
    /// metadata image), so it must run on a blocking thread, not the connection task.
    pub on_blocking_thread: fn(&Broker, &RequestKind) -> bool,
}

macro_rules! row {
    (@blocking) => { |_, _| false };
    (@blocking $blocking:expr) => { $blocking };
    ($kind:ident, $min:expr, $max:expr,
     |$broker:ident, $header:ident, $r:ident, $v:ident, $info:ident| $call:expr,
     errors: none $(, on_blocking_thread: $blocking:expr)?) => {
        row!($kind, $min, $max,
            |$broker, $header, $r, $v, $info| $call,
            errors: |response| { let _ = response; Vec::new() }
            $(, on_blocking_thread: $blocking)?)
    };
    ($kind:ident, $min:expr, $max:expr,
     |$broker:ident, $header:ident, $r:ident, $v:ident, $info:ident| $call:expr,
     errors: |$e:ident| $errors:expr $(, on_blocking_thread: $blocking:expr)?) => {
        Row {
            support: ApiSupport {
                api: ApiKey::$kind,
                min: $min,
                max: $max,
            },
            handle: |ctx, request| {
                let ($broker, $header, $v, $info) = (ctx.broker, ctx.header, ctx.version, ctx.info);
                match request {
                    RequestKind::$kind($r) => Ok($call),
                    _ => Err(close(concat!(
                        "routed to the ",
                        stringify!($kind),
                        " handler by mistake"
                    ))),
                }
            },
            errors: |response| match response {
                ResponseKind::$kind($e) => $errors,
                _ => Vec::new(),
            },
            on_blocking_thread: row!(@blocking $($blocking)?),
        }
    };
}

/// For the rows of APIs that always write the metadata image.
fn always(_: &Broker, _: &RequestKind) -> bool {
    true
}

/// For the rows that may create an internal topic on first use (group and transaction
/// coordination).
fn lacks_internal_topics(broker: &Broker, _: &RequestKind) -> bool {
    crate::internal::INTERNAL_TOPICS
        .iter()
        .any(|name| broker.topic(name).is_none())
}

/// Every API Klamm answers, in every version Kafka 3.9 served from its oldest (those the
/// crate no longer decodes are rewritten by `klamm_protocol::legacy`). Advertise an API only
/// once its handler exists: clients pick features from these maxima.
pub static ROWS: &[Row] = &[
    row!(Produce, 0, 12,
        |broker, header, r, v, info| produce::handle(broker, r, v),
        errors: |r| r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect(),
        on_blocking_thread: |b, r| matches!(r, RequestKind::Produce(p) if produce::may_create_topics(b, p))),
    row!(Fetch, 0, 17,
        |broker, header, r, v, info| fetch::handle(broker, r, v),
        errors: |r| r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .chain([r.error_code])
            .collect()),
    row!(ListOffsets, 0, 10,
        |broker, header, r, v, info| list_offsets::handle(broker, r, v),
        errors: |r| r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()),
    row!(Metadata, 0, 12,
        |broker, header, r, v, info| metadata::handle(broker, r, v, info),
        errors: |r| r.topics.iter().map(|t| t.error_code).collect(),
        on_blocking_thread: |b, r| matches!(r, RequestKind::Metadata(m) if metadata::may_create_topics(b, m))),
    row!(OffsetForLeaderEpoch, 0, 4,
        |broker, header, r, v, info| offset_for_leader_epoch::handle(broker, r),
        errors: none),
    row!(ApiVersions, 0, 4,
        |broker, header, r, v, info| api_versions::handle(r, v, info),
        errors: none),
    row!(CreateTopics, 0, 7,
        |broker, header, r, v, info| create_topics::handle(broker, r, v),
        errors: |r| r.topics.iter().map(|t| t.error_code).collect(),
        on_blocking_thread: always),
    row!(DeleteTopics, 0, 6,
        |broker, header, r, v, info| delete_topics::handle(broker, r, v),
        errors: |r| r.responses.iter().map(|t| t.error_code).collect(),
        on_blocking_thread: always),
    row!(DescribeConfigs, 0, 4,
        |broker, header, r, v, info| describe_configs::handle(broker, r, v),
        errors: none),
    row!(CreatePartitions, 0, 3,
        |broker, header, r, v, info| create_partitions::handle(broker, r),
        errors: none,
        on_blocking_thread: always),
    row!(DescribeCluster, 0, 1,
        |broker, header, r, v, info| describe_cluster::handle(broker, r, info),
        errors: none),
    row!(FindCoordinator, 0, 6,
        |broker, header, r, v, info| find_coordinator::handle(broker, r, v, info),
        errors: |r| r
            .coordinators
            .iter()
            .map(|c| c.error_code)
            .chain([r.error_code])
            .collect(),
        on_blocking_thread: lacks_internal_topics),
    row!(JoinGroup, 0, 9,
        |broker, header, r, v, info| join_group::handle(broker, header, r, v, info),
        errors: |r| vec![r.error_code],
        on_blocking_thread: lacks_internal_topics),
    row!(SyncGroup, 0, 5,
        |broker, header, r, v, info| sync_group::handle(broker, r),
        errors: |r| vec![r.error_code]),
    row!(Heartbeat, 0, 4,
        |broker, header, r, v, info| heartbeat::handle(broker, r),
        errors: |r| vec![r.error_code]),
    row!(LeaveGroup, 0, 5,
        |broker, header, r, v, info| leave_group::handle(broker, r, v),
        errors: |r| vec![r.error_code]),
    // v9+ carry KIP-848 member epochs; classic clients use up to v8.
    row!(OffsetCommit, 0, 8,
        |broker, header, r, v, info| offset_commit::handle(broker, r),
        errors: |r| r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        on_blocking_thread: lacks_internal_topics),
    row!(OffsetFetch, 0, 8,
        |broker, header, r, v, info| offset_fetch::handle(broker, r, v),
        errors: none),
    // v6 reports unknown groups as GROUP_ID_NOT_FOUND; up to v5 they are described as Dead.
    row!(DescribeGroups, 0, 5,
        |broker, header, r, v, info| describe_groups::handle(broker, r),
        errors: none),
    row!(ListGroups, 0, 5,
        |broker, header, r, v, info| list_groups::handle(broker, r),
        errors: none),
    row!(DeleteGroups, 0, 2,
        |broker, header, r, v, info| delete_groups::handle(broker, r),
        errors: none),
    row!(OffsetDelete, 0, 0,
        |broker, header, r, v, info| offset_delete::handle(broker, r),
        errors: none),
    row!(InitProducerId, 0, 5,
        |broker, header, r, v, info| init_producer_id::handle(broker, r, v),
        errors: |r| vec![r.error_code],
        on_blocking_thread: |b, _| b.producer_id_block_used_up()),
    row!(AlterConfigs, 0, 2,
        |broker, header, r, v, info| alter_configs::handle(broker, r),
        errors: none,
        on_blocking_thread: always),
    row!(IncrementalAlterConfigs, 0, 1,
        |broker, header, r, v, info| incremental_alter_configs::handle(broker, r),
        errors: none,
        on_blocking_thread: always),
    row!(DeleteRecords, 0, 2,
        |broker, header, r, v, info| delete_records::handle(broker, r),
        errors: none,
        on_blocking_thread: always),
    // Transactions (KIP-98), in the client forms: AddPartitionsToTxn v4+ is the
    // broker-to-broker batch, and v4/v5 of these belong to KIP-890's second protocol.
    row!(AddPartitionsToTxn, 0, 3,
        |broker, header, r, v, info| add_partitions_to_txn::handle(broker, r, v),
        errors: |r| r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                    t.results_by_partition
                        .iter()
                        .map(|p| p.partition_error_code)
                })
            .collect()),
    row!(AddOffsetsToTxn, 0, 3,
        |broker, header, r, v, info| add_offsets_to_txn::handle(broker, r, v),
        errors: |r| vec![r.error_code],
        on_blocking_thread: lacks_internal_topics),
    row!(EndTxn, 0, 3,
        |broker, header, r, v, info| end_txn::handle(broker, r, v),
        errors: |r| vec![r.error_code]),
    row!(TxnOffsetCommit, 0, 3,
        |broker, header, r, v, info| txn_offset_commit::handle(broker, r),
        errors: |r| r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        on_blocking_thread: lacks_internal_topics),
    // Markers from a client, to end a hanging transaction (the admin's abortTransaction).
    row!(WriteTxnMarkers, 1, 1,
        |broker, header, r, v, info| write_txn_markers::handle(broker, r),
        errors: |r| r
            .markers
            .iter()
            .flat_map(|m| m.topics.iter())
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()),
    row!(DescribeProducers, 0, 0,
        |broker, header, r, v, info| describe_producers::handle(broker, r),
        errors: none),
    row!(ListTransactions, 0, 1,
        |broker, header, r, v, info| list_transactions::handle(broker, r),
        errors: none),
    row!(DescribeTransactions, 0, 0,
        |broker, header, r, v, info| describe_transactions::handle(broker, r),
        errors: none),
    // Admin APIs of the cluster's layout, answered for the one node there is; they keep
    // their meaning when there are more (see each handler).
    row!(DescribeLogDirs, 0, 4,
        |broker, header, r, v, info| describe_log_dirs::handle(broker, r),
        errors: |r| r.results.iter().map(|d| d.error_code).chain([r.error_code]).collect()),
    row!(AlterReplicaLogDirs, 0, 2,
        |broker, header, r, v, info| alter_replica_log_dirs::handle(broker, r),
        errors: |r| r
            .results
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()),
    row!(DescribeTopicPartitions, 0, 0,
        |broker, header, r, v, info| describe_topic_partitions::handle(broker, r),
        errors: |r| r.topics.iter().map(|t| t.error_code).collect()),
    row!(ElectLeaders, 0, 2,
        |broker, header, r, v, info| elect_leaders::handle(broker, r),
        errors: |r| r
            .replica_election_results
            .iter()
            .flat_map(|t| t.partition_result.iter().map(|p| p.error_code))
            .chain([r.error_code])
            .collect()),
    row!(ListPartitionReassignments, 0, 0,
        |broker, header, r, v, info| list_partition_reassignments::handle(r),
        errors: |r| vec![r.error_code]),
    row!(AlterPartitionReassignments, 0, 1,
        |broker, header, r, v, info| alter_partition_reassignments::handle(broker, r),
        errors: |r| r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .chain([r.error_code])
            .collect()),
    row!(DescribeQuorum, 0, 2,
        |broker, header, r, v, info| describe_quorum::handle(broker, r, v),
        errors: |r| r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .chain([r.error_code])
            .collect()),
    // Answered with errors on every listener until security lands, so a client configured
    // for SASL against a PLAINTEXT listener reports why instead of seeing a closed socket.
    row!(SaslHandshake, 0, 1,
        |broker, header, r, v, info| sasl_handshake::handle(r, info),
        errors: |r| vec![r.error_code]),
    row!(SaslAuthenticate, 0, 2,
        |broker, header, r, v, info| sasl_authenticate::handle(info),
        errors: |r| vec![r.error_code]),
];

/// The row of a raw api key, if Klamm serves that API.
pub fn row(api_key: i16) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.support.api as i16 == api_key)
}

impl Row {
    /// Whether this API is served in `version`.
    pub fn serves(&self, version: i16) -> bool {
        (self.support.min..=self.support.max).contains(&version)
    }
}

/// Whether Klamm serves `(api_key, version)`.
pub fn is_served(api_key: i16, version: i16) -> bool {
    row(api_key).is_some_and(|r| r.serves(version))
}

/// The ApiVersions response for `error_code` (0, or UNSUPPORTED_VERSION for the fallback).
pub fn api_versions_response(error_code: i16) -> kafka_protocol::messages::ApiVersionsResponse {
    klamm_protocol::versions::api_versions_response(ROWS.iter().map(|r| r.support), error_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_within_what_the_crate_can_decode() {
        for r in ROWS {
            let s = r.support;
            let crate_range = s.api.valid_versions();
            let oldest = klamm_protocol::legacy::oldest_version(s.api);
            assert!(
                s.min >= oldest && s.max <= crate_range.max,
                "{:?}: serves {}..={} but only {oldest}..={} can be decoded",
                s.api,
                s.min,
                s.max,
                crate_range.max
            );
            assert!(s.min <= s.max);
        }
    }

    #[test]
    fn keys_are_unique() {
        for (i, a) in ROWS.iter().enumerate() {
            for b in &ROWS[i + 1..] {
                assert_ne!(a.support.api, b.support.api);
            }
        }
    }

    #[test]
    fn client_expectations() {
        // aiokafka infers the broker version from these maxima.
        let max = |api: ApiKey| row(api as i16).unwrap().support.max;
        assert!(max(ApiKey::Produce) >= 8);
        assert!(max(ApiKey::Fetch) >= 11);
        assert_eq!(row(ApiKey::Produce as i16).unwrap().support.min, 0);
        assert!(is_served(ApiKey::Produce as i16, 0));
        assert!(is_served(ApiKey::Fetch as i16, 0));
        assert!(is_served(ApiKey::Metadata as i16, 0));
        assert!(!is_served(999, 0));
        assert_eq!(api_versions_response(35).api_keys.len(), ROWS.len());
    }

    #[test]
    fn a_row_counts_the_errors_of_its_own_responses() {
        use kafka_protocol::messages::{HeartbeatResponse, JoinGroupResponse};
        let hb = ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(27));
        assert_eq!(
            (row(ApiKey::Heartbeat as i16).unwrap().errors)(&hb),
            vec![27]
        );
        // Another API's response is not this row's to count.
        assert!((row(ApiKey::JoinGroup as i16).unwrap().errors)(&hb).is_empty());
        let join = ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(79));
        assert_eq!(
            (row(ApiKey::JoinGroup as i16).unwrap().errors)(&join),
            vec![79]
        );
    }
}
