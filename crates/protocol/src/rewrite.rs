//! Rewriting stored record batches: the records section decompressed, walked record by record
//! without decoding keys and values into owned buffers, filtered, and assembled into a new
//! batch with the same codec. Used by the log cleaner (compaction) and by broker-side
//! recompression; never on the plain produce or fetch path.
//!
//! A v2 record is `length:varint · attributes:i8 · timestamp_delta:varlong ·
//! offset_delta:varint · key_length:varint · key · value_length:varint · value ·
//! header_count:varint · headers`. Kept records are copied byte for byte, except that their
//! timestamp delta is re-encoded when the batch's base timestamp changes (the delete horizon
//! of KIP-534, which Kafka stores in the base timestamp field).

use crate::batch::{compute_crc, BatchError, BatchHeader, BATCH_HEADER_BYTES};
use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor, Decompressor};

/// Attribute bit 6: the base timestamp holds the delete horizon (KIP-534): tombstones and
/// transaction markers in this batch may be removed once the clock passes it.
pub const ATTR_DELETE_HORIZON: i16 = 0x40;
const ATTR_COMPRESSION_MASK: i16 = 0x07;

/// One record inside a decompressed records section, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// The value's bytes (None for a tombstone).
    pub value: Option<&'a [u8]>,
    /// The bytes after the timestamp delta: offset delta, key, value and headers.
    tail: &'a [u8],
    /// The whole record including its length prefix.
    whole: &'a [u8],
}

impl RawRecord<'_> {
    /// The record's whole encoding, length prefix included.
    pub fn bytes(&self) -> &[u8] {
        self.whole
    }
}

fn get_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| BatchError::Corrupt("record ends inside a varint".into()))?;
        *pos += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("varint longer than 10 bytes".into()))
}

/// Appends `value` zigzag-encoded as a varint (Kafka's varint and varlong share the format).
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: i64) -> Result<Option<&'a [u8]>, BatchError> {
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| BatchError::Corrupt("record field runs past its record".into()))?;
    let slice = &buf[*pos..end];
    *pos = end;
    Ok(Some(slice))
}

/// Parses the records of an uncompressed records section (`records_count` of them).
pub fn raw_records(section: &[u8], records_count: i32) -> Result<Vec<RawRecord<'_>>, BatchError> {
    let mut out = Vec::with_capacity(records_count.clamp(0, 4096) as usize);
    let mut pos = 0usize;
    for _ in 0..records_count.max(0) {
        let start = pos;
        let len = get_varlong(section, &mut pos)?;
        let body = take(section, &mut pos, len)?
            .ok_or_else(|| BatchError::Corrupt("negative record length".into()))?;
        let whole = &section[start..pos];
        let mut p = 0usize;
        let attributes = *body
            .first()
            .ok_or_else(|| BatchError::Corrupt("empty record".into()))?;
        p += 1;
        let timestamp_delta = get_varlong(body, &mut p)?;
        let tail = &body[p..];
        let offset_delta = get_varlong(body, &mut p)? as i32;
        let key_len = get_varlong(body, &mut p)?;
        let key = take(body, &mut p, key_len)?;
        let value_len = get_varlong(body, &mut p)?;
        let value = take(body, &mut p, value_len)?;
        out.push(RawRecord {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            tail,
            whole,
        });
    }
    Ok(out)
}

/// The records section of one stored batch (`batch` is exactly the batch's bytes),
/// decompressed; borrowed without a copy when the batch is uncompressed.
pub fn records_section<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
    max_decompressed_bytes: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, BatchError> {
    let body = batch
        .get(BATCH_HEADER_BYTES..header.total_bytes())
        .ok_or_else(|| BatchError::Corrupt("batch shorter than its header says".into()))?;
    match header.compression_codec() {
        0 => Ok(std::borrow::Cow::Borrowed(body)),
        codec => Ok(std::borrow::Cow::Owned(
            decompress(codec, body, max_decompressed_bytes)?.to_vec(),
        )),
    }
}

/// Decompresses a records section stored with `codec` (0 none, 1 gzip, 2 snappy, 3 lz4,
/// 4 zstd), refusing (`TooLarge`) to produce more than `limit` bytes
/// (`message.max.decompressed.bytes`: a compression bomb, a small batch that inflates to
/// gigabytes, is refused before it can take the broker's memory): gzip, lz4 and zstd are
/// streamed and cut off at the limit; snappy declares each block's size, which is checked
/// before anything is inflated.
pub fn decompress(codec: i16, body: &[u8], limit: usize) -> Result<Bytes, BatchError> {
    let corrupt =
        |e: std::io::Error| BatchError::Corrupt(format!("cannot decompress records: {e}"));
    match codec {
        0 => Ok(Bytes::copy_from_slice(body)),
        1 => read_bounded(flate2::read::MultiGzDecoder::new(body), limit),
        2 => {
            let declared = snappy_declared_bytes(body)?;
            if declared > limit {
                return Err(too_large(declared, limit));
            }
            let mut input = Bytes::copy_from_slice(body);
            cmpr::Snappy::decompress(&mut input, |b: &mut Bytes| Ok(std::mem::take(b)))
                .map_err(|e| BatchError::Corrupt(format!("cannot decompress records: {e}")))
        }
        3 => read_bounded(lz4::Decoder::new(body).map_err(corrupt)?, limit),
        4 => read_bounded(
            zstd::stream::read::Decoder::new(body).map_err(corrupt)?,
            limit,
        ),
        other => Err(BatchError::Corrupt(format!("unknown codec {other}"))),
    }
}

fn too_large(batch_bytes: usize, max_bytes: usize) -> BatchError {
    BatchError::TooLarge {
        batch_bytes,
        max_bytes,
    }
}

fn read_bounded(reader: impl std::io::Read, limit: usize) -> Result<Bytes, BatchError> {
    use std::io::Read;
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Corrupt(format!("cannot decompress records: {e}")))?;
    if out.len() > limit {
        return Err(too_large(out.len(), limit));
    }
    Ok(Bytes::from(out))
}

/// Total uncompressed size a snappy records section declares: xerial framing (Kafka's
/// Java clients: a 16-byte magic header, then `u32` length-prefixed raw blocks) or one raw
/// snappy block, whose header carries its uncompressed length.
fn snappy_declared_bytes(body: &[u8]) -> Result<usize, BatchError> {
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    let bad = |e: snap::Error| BatchError::Corrupt(format!("cannot decompress records: {e}"));
    if body.len() < 16 || !body.starts_with(XERIAL_MAGIC) {
        return snap::raw::decompress_len(body).map_err(bad);
    }
    let mut total = 0usize;
    let mut pos = 16;
    while pos < body.len() {
        let len_bytes = body
            .get(pos..pos + 4)
            .ok_or_else(|| BatchError::Corrupt("truncated snappy block length".into()))?;
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let block = body
            .get(pos + 4..pos + 4 + len)
            .ok_or_else(|| BatchError::Corrupt("truncated snappy block".into()))?;
        total = total.saturating_add(snap::raw::decompress_len(block).map_err(bad)?);
        pos += 4 + len;
    }
    Ok(total)
}

/// Compresses an uncompressed records section with `codec`.
pub fn compress(codec: i16, section: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = BytesMut::new();
    let put = |tmp: &mut BytesMut| {
        tmp.extend_from_slice(section);
        Ok(())
    };
    let result = match codec {
        0 => return Ok(section.to_vec()),
        1 => cmpr::Gzip::compress(&mut out, put),
        2 => cmpr::Snappy::compress(&mut out, put),
        3 => cmpr::Lz4::compress(&mut out, put),
        4 => cmpr::Zstd::compress(&mut out, put),
        other => return Err(BatchError::Corrupt(format!("unknown codec {other}"))),
    };
    result.map_err(|e| BatchError::Corrupt(format!("cannot compress records: {e}")))?;
    Ok(out.to_vec())
}

/// How to rebuild a batch from some of its records.
#[derive(Debug, Clone, Copy)]
pub struct Rebuild {
    /// Codec of the new batch (the original's, unless recompressing).
    pub codec: i16,
    /// New base timestamp for a delete horizon (sets attribute bit 6); None keeps the base.
    pub delete_horizon_ms: Option<i64>,
}

/// Builds a batch with `header`'s offsets, producer fields and last offset delta (so the
/// producer's last sequence survives, as Kafka does), holding only `records`. An empty
/// `records` gives an empty batch (header only), which Kafka keeps for a producer's last
/// batch. Max timestamp is recomputed from the kept records (CreateTime).
pub fn rebuild_batch(
    header: &BatchHeader,
    records: &[RawRecord<'_>],
    how: Rebuild,
) -> Result<Vec<u8>, BatchError> {
    let base_ts = how.delete_horizon_ms.unwrap_or(header.base_timestamp);
    let mut section = Vec::new();
    let mut max_ts = i64::MIN;
    for r in records {
        let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
        max_ts = max_ts.max(ts);
        if base_ts == header.base_timestamp {
            section.extend_from_slice(r.whole);
        } else {
            let mut body = Vec::with_capacity(r.tail.len() + 11);
            body.push(r.attributes);
            put_varlong(&mut body, ts.wrapping_sub(base_ts));
            body.extend_from_slice(r.tail);
            put_varlong(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
    }
    if records.is_empty() || header.is_log_append_time() {
        max_ts = header.max_timestamp;
    }
    let body = compress(how.codec, &section)?;
    let mut attributes = (header.attributes & !ATTR_COMPRESSION_MASK) | how.codec;
    if how.delete_horizon_ms.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    let batch_length = (BATCH_HEADER_BYTES - 12 + body.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0u8; 4]); // CRC, filled below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_ts.to_be_bytes());
    out.extend_from_slice(&max_ts.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Calls `visit(record_index, record, timestamp)` for every record of one batch, for the
/// per-record produce checks (keys on compacted topics, timestamp bounds).
pub fn visit_records(
    header: &BatchHeader,
    batch: &[u8],
    max_decompressed_bytes: usize,
    mut visit: impl FnMut(usize, &RawRecord<'_>, i64),
) -> Result<(), BatchError> {
    let section = records_section(header, batch, max_decompressed_bytes)?;
    for (i, r) in raw_records(&section, header.records_count)?
        .iter()
        .enumerate()
    {
        visit(i, r, header.base_timestamp.wrapping_add(r.timestamp_delta));
    }
    Ok(())
}

/// The delete horizon of a batch, if one was set by a previous cleaning.
pub fn delete_horizon_ms(header: &BatchHeader) -> Option<i64> {
    (header.attributes & ATTR_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::check_batch;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn batch(compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: 100 + i,
                sequence: 10 + i as i32,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("k{}", i % 2))),
                value: (i != 3).then(|| Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn filter_and_rebuild_every_codec() {
        for (codec, compression) in [
            (0, Compression::None),
            (1, Compression::Gzip),
            (2, Compression::Snappy),
            (3, Compression::Lz4),
            (4, Compression::Zstd),
        ] {
            let original = batch(compression);
            let header = check_batch(&original).unwrap();
            assert_eq!(header.compression_codec(), codec);
            let section = records_section(&header, &original, 1 << 20).unwrap();
            let records = raw_records(&section, header.records_count).unwrap();
            assert_eq!(records.len(), 4);
            assert_eq!(records[3].key, Some(&b"k1"[..]));
            assert!(records[3].value.is_none());
            let kept = [records[1], records[3]];
            for horizon in [None, Some(50_000)] {
                let how = Rebuild {
                    codec,
                    delete_horizon_ms: horizon,
                };
                let rebuilt = rebuild_batch(&header, &kept, how).unwrap();
                let h = check_batch(&rebuilt).unwrap();
                assert_eq!((h.base_offset, h.last_offset()), (100, 103));
                assert_eq!((h.records_count, h.max_timestamp), (2, 1_003));
                assert_eq!(delete_horizon_ms(&h), horizon);
                let set = RecordBatchDecoder::decode(&mut Bytes::from(rebuilt)).unwrap();
                let got: Vec<(i64, i64, Option<Bytes>)> = set
                    .records
                    .iter()
                    .map(|r| (r.offset, r.timestamp, r.value.clone()))
                    .collect();
                assert_eq!(
                    got,
                    vec![(101, 1_001, Some(Bytes::from("v1"))), (103, 1_003, None)]
                );
                assert_eq!(set.records[0].producer_id, 7);
            }
        }
    }

    #[test]
    fn empty_batch_keeps_producer_fields() {
        let original = batch(Compression::None);
        let header = check_batch(&original).unwrap();
        let how = Rebuild {
            codec: 0,
            delete_horizon_ms: None,
        };
        let empty = rebuild_batch(&header, &[], how).unwrap();
        let h = check_batch(&empty).unwrap();
        assert_eq!(
            (h.records_count, h.last_offset(), h.producer_id),
            (0, 103, 7)
        );
        assert_eq!(h.base_sequence, header.base_sequence);
    }

    #[test]
    fn hostile_sections_are_errors() {
        assert!(raw_records(&[0x80], 1).is_err());
        assert!(raw_records(&[0x7f], 1).is_err());
        assert!(raw_records(&[0x02, 0x00], 1).is_err());
        assert!(raw_records(&[], 1).is_err());
    }

    #[test]
    fn compression_bombs_are_refused_at_the_limit_for_every_codec() {
        // 8 MiB of zeros compresses to a few KiB with every codec.
        let section = vec![0u8; 8 << 20];
        for codec in 1..=4i16 {
            let small = compress(codec, &section).unwrap();
            assert!(
                small.len() < 1 << 20,
                "codec {codec}: {} bytes",
                small.len()
            );
            match decompress(codec, &small, 1 << 20) {
                Err(BatchError::TooLarge { max_bytes, .. }) => assert_eq!(max_bytes, 1 << 20),
                other => panic!(
                    "codec {codec}: expected TooLarge, got {:?}",
                    other.map(|b| b.len())
                ),
            }
            let whole = decompress(codec, &small, 8 << 20).unwrap();
            assert_eq!(
                whole.len(),
                8 << 20,
                "codec {codec}: exactly at the limit is fine"
            );
        }
    }
}
