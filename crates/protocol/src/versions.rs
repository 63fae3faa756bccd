//! The one table of API versions Klamm serves. ApiVersions is derived from it, and the broker
//! checks every request against it (never against the crate's `valid_versions()`, which lists
//! what the crate can *encode*, not what Klamm implements).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One API Klamm implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    pub api: ApiKey,
    /// Lowest version advertised in ApiVersions.
    pub advertised_min: i16,
    /// Lowest version actually served. Produce advertises 0 (older librdkafka stops
    /// compressing otherwise, and Kafka 4 does the same) but answers v0–v2 with
    /// UNSUPPORTED_VERSION.
    pub served_min: i16,
    pub max: i16,
}

const fn api(api: ApiKey, min: i16, max: i16) -> ApiSupport {
    ApiSupport {
        api,
        advertised_min: min,
        served_min: min,
        max,
    }
}

/// Every API Klamm answers, with the versions it serves. Advertise an API only once its
/// handler exists: clients pick features from these maxima.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    ApiSupport {
        api: ApiKey::Produce,
        advertised_min: 0,
        served_min: 3,
        max: 12,
    },
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    // v9+ carry KIP-848 member epochs; classic clients use up to v8.
    api(ApiKey::OffsetCommit, 2, 8),
    api(ApiKey::OffsetFetch, 1, 8),
    // v6 reports unknown groups as GROUP_ID_NOT_FOUND; up to v5 they are described as Dead.
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DeleteRecords, 0, 2),
    // Transactions (KIP-98), in the client forms: AddPartitionsToTxn v4+ is the
    // broker-to-broker batch, and v4/v5 of these belong to KIP-890's second protocol.
    api(ApiKey::AddPartitionsToTxn, 0, 3),
    api(ApiKey::AddOffsetsToTxn, 0, 3),
    api(ApiKey::EndTxn, 0, 3),
    api(ApiKey::TxnOffsetCommit, 0, 3),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
    api(ApiKey::DescribeTransactions, 0, 0),
    // Answered with errors on every listener until security lands, so a client configured
    // for SASL against a PLAINTEXT listener reports why instead of seeing a closed socket.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
];

/// The table row for a raw api key, if Klamm implements that API.
pub fn supported(api_key: i16) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|s| s.api as i16 == api_key)
}

/// Whether Klamm serves `(api_key, version)`.
pub fn is_served(api_key: i16, version: i16) -> bool {
    supported(api_key).is_some_and(|s| (s.served_min..=s.max).contains(&version))
}

/// The ApiVersions response body for `error_code` (0, or UNSUPPORTED_VERSION for the
/// fallback), listing the whole table.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.api as i16)
                .with_min_version(s.advertised_min)
                .with_max_version(s.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_what_the_crate_can_decode() {
        for s in SUPPORTED_APIS {
            let crate_range = s.api.valid_versions();
            assert!(
                s.served_min >= crate_range.min && s.max <= crate_range.max,
                "{:?}: serves {}..={} but crate supports {}",
                s.api,
                s.served_min,
                s.max,
                crate_range
            );
            assert!(s.advertised_min <= s.served_min && s.served_min <= s.max);
        }
    }

    #[test]
    fn keys_are_unique() {
        for (i, a) in SUPPORTED_APIS.iter().enumerate() {
            for b in &SUPPORTED_APIS[i + 1..] {
                assert_ne!(a.api, b.api);
            }
        }
    }

    #[test]
    fn client_expectations() {
        // aiokafka infers the broker version from these maxima.
        assert!(supported(ApiKey::Produce as i16).unwrap().max >= 8);
        assert!(supported(ApiKey::Fetch as i16).unwrap().max >= 11);
        assert_eq!(supported(ApiKey::Produce as i16).unwrap().advertised_min, 0);
        assert!(!is_served(ApiKey::Produce as i16, 2));
        assert!(is_served(ApiKey::Produce as i16, 3));
        assert!(is_served(ApiKey::Metadata as i16, 0));
        assert!(!is_served(999, 0));
        assert_eq!(
            api_versions_response(35).api_keys.len(),
            SUPPORTED_APIS.len()
        );
    }
}
