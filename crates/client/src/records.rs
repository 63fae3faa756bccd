//! Records as the CLI sees them, encoded to and decoded from v2 record batches with the
//! `kafka-protocol` crate. Fetched data is split into whole batches with
//! `klamm_protocol::batch::headers` first, because a fetch may end in a partial batch.

use crate::error::{ClientError, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
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
            // The encoder starts a new batch wherever `offset - sequence` changes; counting
            // up from -1 keeps one batch whose base sequence is -1 (no producer id).
            sequence: i as i32 - 1,
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

/// Records decoded from one partition's fetched data.
#[derive(Debug, Default)]
pub struct Fetched {
    pub records: Vec<ConsumedRecord>,
    /// The offset after the last whole batch seen (control and aborted batches included):
    /// where the next fetch starts. `None` when no whole batch was returned.
    pub next_offset: Option<i64>,
}

/// Decodes the whole batches of a fetched record set, skipping control batches and, when
/// `aborted` is given (read_committed), the batches of aborted transactions. Records below
/// `from_offset` (a fetch returns the whole batch containing it) are dropped.
pub fn decode_fetched(
    partition: i32,
    records: &[u8],
    from_offset: i64,
    aborted: Option<&[AbortedTransaction]>,
) -> Result<Fetched> {
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
    let mut next_offset = None;
    for (pos, header) in batch::headers(records) {
        let whole = &records[pos..pos + header.total_bytes()];
        next_offset = Some(header.last_offset() + 1);
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
    Ok(Fetched {
        records: out,
        next_offset,
    })
}

/// Kafka's default partitioner for keyed records: `murmur2(key) & 0x7fffffff % partitions`,
/// so keys land where Java and librdkafka (`murmur2_random`) producers put them.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The 32-bit murmur2 hash with Kafka's seed.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Apache Kafka's UtilsTest.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

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
            assert_eq!(got.records.len(), 1, "{codec}");
            assert_eq!((got.records[0].offset, got.records[0].timestamp_ms), (1, 6));
            assert_eq!(got.next_offset, Some(2));
            let got = decode_fetched(0, &batch[..batch.len() - 1], 0, None).unwrap();
            assert!(
                got.records.is_empty(),
                "{codec}: a partial batch is not decoded: {got:?}"
            );
            assert_eq!(got.next_offset, None);
        }
    }
}
