//! The broker's internal topics (`__consumer_offsets`, `__transaction_state`): what clients
//! may and may not do with them.
//!
//! Their records are the coordinators' state, so only the broker writes, creates or reshapes
//! them: a forged record in `__consumer_offsets` would change another group's committed
//! offsets at the next replay, DeleteRecords would erase every group's offsets, and a
//! different partition count would move groups to other partitions (whose replay order then
//! makes committed offsets go backwards). As Kafka, clients may read them and change the
//! configs that do not change their meaning (retention, segment size).

use crate::admin_error::AdminError;
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;

/// The group coordinator's state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Every internal topic. A later internal topic is one more row here (and one more arm in
/// `State::internal_topic`, which creates them).
pub const INTERNAL_TOPICS: [&str; 2] = [OFFSETS_TOPIC, TXN_TOPIC];

/// Topic configs an internal topic keeps whatever a client asks: both are compacted logs of
/// keyed state, and `delete` would drop live state with old segments.
const FIXED_CONFIGS: [(&str, &str); 1] = [("cleanup.policy", "compact")];

pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Produce to an internal topic (Kafka: INVALID_TOPIC_EXCEPTION, "Cannot append to internal
/// topic"). Only the coordinators append, through their own partition handles.
pub fn refuse_append(name: &str) -> Option<AdminError> {
    is_internal(name).then(|| {
        AdminError::new(
            ResponseError::InvalidTopicException,
            format!("Cannot append to internal topic {name}"),
        )
    })
}

/// DeleteRecords on an internal topic (Kafka: "Cannot delete records of internal topic").
pub fn refuse_delete_records(name: &str) -> Option<AdminError> {
    is_internal(name).then(|| {
        AdminError::new(
            ResponseError::InvalidTopicException,
            format!("Cannot delete records of internal topic {name}"),
        )
    })
}

/// CreateTopics of an internal name: the broker creates it, on first use, with its own
/// partition count and configs.
pub fn refuse_create(name: &str) -> Option<AdminError> {
    is_internal(name).then(|| {
        AdminError::new(
            ResponseError::InvalidRequest,
            format!(
                "{name} is an internal topic: the broker creates it on first use with its own \
                 settings (offsets.topic.num.partitions, transaction.state.log.num.partitions)"
            ),
        )
    })
}

/// CreatePartitions on an internal topic: a group's (or transactional id's) partition is a
/// hash modulo the count, so a new count moves it and replay would mix old and new records.
pub fn refuse_new_partitions(name: &str) -> Option<AdminError> {
    is_internal(name).then(|| {
        AdminError::new(
            ResponseError::InvalidRequest,
            format!(
                "the partition count of the internal topic {name} is fixed: a new count would \
                 move coordinator state to other partitions"
            ),
        )
    })
}

/// A config change on an internal topic that would change what its records mean.
pub fn check_configs(name: &str, overrides: &BTreeMap<String, String>) -> Result<(), AdminError> {
    if !is_internal(name) {
        return Ok(());
    }
    for (key, fixed) in FIXED_CONFIGS {
        if overrides.get(key).is_some_and(|v| v != fixed) || !overrides.contains_key(key) {
            return Err(AdminError::new(
                ResponseError::InvalidConfig,
                format!("{key} of the internal topic {name} is fixed at {fixed}"),
            ));
        }
    }
    Ok(())
}

/// The segment-size config an internal topic is created with, from its broker key
/// (`offsets.topic.segment.bytes`, `transaction.state.log.segment.bytes`). Those keys keep
/// Kafka's floor of 1 byte, so a value below `segment.bytes`'s 1 MiB minimum (tests
/// compacting tiny segments) is stored under the internal test key instead.
pub fn segment_config(bytes: u64) -> (String, Option<String>) {
    let below_floor = i64::try_from(bytes).is_ok_and(|b| b < klamm_config::SEGMENT_BYTES_MIN);
    let key = if below_floor {
        "internal.segment.bytes"
    } else {
        "segment.bytes"
    };
    (key.to_string(), Some(bytes.to_string()))
}

/// Topic keys under `internal.` (today `internal.segment.bytes`) let tests go below
/// `segment.bytes`'s 1 MiB floor. A client may set them only on a broker whose operator
/// opted in with the broker key `internal.log.segment.bytes`; otherwise one client could
/// make every segment 14 bytes and spend the broker's file descriptors.
pub fn refuse_test_keys<'a>(
    config: &klamm_config::Config,
    mut keys: impl Iterator<Item = &'a str>,
) -> Option<AdminError> {
    let opted_in = config
        .get("internal.log.segment.bytes")
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|v| v > 0);
    let key = keys.find(|k| k.starts_with("internal."))?;
    (!opted_in).then(|| {
        AdminError::new(
            ResponseError::InvalidConfig,
            format!(
                "{key} is a test key: a client may set it only when the broker runs with \
                 internal.log.segment.bytes set; use segment.bytes (at least 1048576)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_names_and_fixed_configs() {
        assert!(is_internal("__consumer_offsets"));
        assert!(is_internal("__transaction_state"));
        assert!(!is_internal("__consumer_offsets2"));
        assert!(!is_internal("orders"));
        let compact = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        assert!(check_configs("__consumer_offsets", &compact).is_ok());
        let delete = BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]);
        assert!(check_configs("__consumer_offsets", &delete).is_err());
        assert!(check_configs("__transaction_state", &BTreeMap::new()).is_err());
        assert!(check_configs("orders", &delete).is_ok());
    }
}
