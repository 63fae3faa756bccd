//! Records as the CLI sees them, encoded to and decoded from v2 record batches with the
//! `kafka-protocol` crate. Fetched data is split into whole batches with
//! `klamm_protocol::batch::headers` first, because a fetch may end in a partial batch.

use crate::error::{ClientError, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use klamm_protocol::batch;
use std::collections::{BTreeMap, BTreeSet};

/// One record to produce.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

/// One fetched record.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Parses a codec name as used by Kafka's `compression.type`.
pub fn parse_compression(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(ClientError::Invalid(format!(
                "unknown compression {other:?} (none, gzip, snappy, lz4, zstd)"
            )))
        }
    })
}

/// Encodes `records` as one v2 batch with offsets from 0 and no producer id.
pub fn encode_batch(records: &[ProducerRecord], compression: Compression) -> Result<Bytes> {
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &encoded, &options)
        .map_err(|e| ClientError::Invalid(format!("cannot encode records: {e}")))?;
    Ok(buf.freeze())
}

/// Decodes the whole batches of a fetched record set, skipping control batches and, when
/// `aborted` is given (read_committed), the batches of aborted transactions. Records below
/// `from_offset` (a fetch returns the whole batch containing it) are dropped.
pub fn decode_fetched(
    partition: i32,
    records: &[u8],
    from_offset: i64,
    aborted: Option<&[AbortedTransaction]>,
) -> Result<Vec<ConsumedRecord>> {
    // Producer id → first offsets of its aborted transactions not yet passed.
    let mut pending_aborts: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for t in aborted.unwrap_or_default() {
        pending_aborts
            .entry(t.producer_id.0)
            .or_default()
            .insert(t.first_offset);
    }
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    let mut out = Vec::new();
    for (pos, header) in batch::headers(records) {
        let whole = &records[pos..pos + header.total_bytes()];
        if aborted.is_some() && header.is_transactional() {
            let pid = header.producer_id;
            if let Some(firsts) = pending_aborts.get_mut(&pid) {
                while firsts.first().is_some_and(|&f| f <= header.last_offset()) {
                    firsts.pop_first();
                    aborting.insert(pid);
                }
            }
            if header.is_control() {
                // The marker ends this producer's transaction, committed or aborted.
                aborting.remove(&pid);
                continue;
            }
            if aborting.contains(&pid) {
                continue;
            }
        }
        if header.is_control() || header.last_offset() < from_offset {
            continue;
        }
        let mut buf = Bytes::copy_from_slice(whole);
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
            ClientError::Invalid(format!(
                "partition {partition}: cannot decode the batch at offset {}: {e}",
                header.base_offset
            ))
        })?;
        out.extend(
            set.records
                .into_iter()
                .filter(|r| r.offset >= from_offset)
                .map(|r| ConsumedRecord {
                    partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    log_append_time: r.timestamp_type == TimestampType::LogAppend,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_headers_and_compression() {
        let records = vec![
            ProducerRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v1")),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp_ms: 5,
            },
            ProducerRecord {
                value: None,
                timestamp_ms: 6,
                ..Default::default()
            },
        ];
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let batch = encode_batch(&records, parse_compression(codec).unwrap()).unwrap();
            let got = decode_fetched(0, &batch, 1, None).unwrap();
            assert_eq!(got.len(), 1, "{codec}");
            assert_eq!((got[0].offset, got[0].timestamp_ms), (1, 6));
            let got = decode_fetched(0, &batch[..batch.len() - 1], 0, None).unwrap();
            assert!(got.is_empty(), "a partial batch is not decoded");
        }
    }
}
