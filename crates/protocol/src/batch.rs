//! Record batches (magic 2): header parsing, validation and in-place stamping.
//!
//! Layout of the 61-byte header (offsets in bytes):
//! `base_offset:i64 @0 · batch_length:i32 @8 · partition_leader_epoch:i32 @12 · magic:i8 @16 ·
//! crc:u32 @17 · attributes:i16 @21 · last_offset_delta:i32 @23 · base_timestamp:i64 @27 ·
//! max_timestamp:i64 @35 · producer_id:i64 @43 · producer_epoch:i16 @51 · base_sequence:i32 @53 ·
//! records_count:i32 @57`. The CRC32C covers `[21, end)`, so base offset and leader epoch can
//! be stamped in place without touching it. Records are never decoded on the hot path.

use kafka_protocol::error::ResponseError;

/// Bytes of a v2 batch header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// `base_offset` and `batch_length`: bytes not counted by `batch_length`.
pub const LOG_OVERHEAD_BYTES: usize = 12;
const CRC_START: usize = 21;
const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
/// Highest compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
const MAX_COMPRESSION_CODEC: i16 = 4;
const ZSTD_CODEC: i16 = 4;
/// Produce v7 is the first that may carry zstd (KIP-110).
const ZSTD_MIN_PRODUCE_VERSION: i16 = 7;

/// A parsed batch header. `[base_offset, last_offset()]` is the offset range it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. `None` when fewer than 61 bytes are given.
    /// Nothing is validated here: see [`check_batch`].
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < BATCH_HEADER_BYTES {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes(buf[17..21].try_into().expect("4 bytes")),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Whole size on disk and on the wire, including the 12-byte log overhead.
    /// Only meaningful once `batch_length` has been checked to be non-negative.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The timestamp a time index should record for this batch.
    pub fn index_timestamp(&self) -> i64 {
        self.max_timestamp
    }
}

/// Why a batch was refused, each mapped to the Kafka error the client reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Lengths, CRC or counts are inconsistent: CORRUPT_MESSAGE.
    Corrupt(String),
    /// Magic 0/1 (dropped in Kafka 4) or unknown: UNSUPPORTED_FOR_MESSAGE_FORMAT.
    UnsupportedMagic(i8),
    /// Larger than `max.message.bytes`: MESSAGE_TOO_LARGE.
    TooLarge {
        batch_bytes: usize,
        max_bytes: usize,
    },
    /// A well-formed batch a producer may not send (e.g. a control batch): INVALID_RECORD.
    Invalid(String),
    /// zstd on a produce version below 7: UNSUPPORTED_COMPRESSION_TYPE.
    UnsupportedCompression(i16),
}

impl BatchError {
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            BatchError::Corrupt(_) => ResponseError::CorruptMessage,
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::Invalid(_) => ResponseError::InvalidRecord,
            BatchError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Corrupt(why) => write!(f, "corrupt record batch: {why}"),
            BatchError::UnsupportedMagic(m) => {
                write!(f, "record batch magic {m} is not supported (only magic 2)")
            }
            BatchError::TooLarge {
                batch_bytes,
                max_bytes,
            } => write!(
                f,
                "record batch of {batch_bytes} bytes exceeds max.message.bytes={max_bytes}"
            ),
            BatchError::Invalid(why) => write!(f, "invalid record batch: {why}"),
            BatchError::UnsupportedCompression(c) => {
                write!(f, "compression codec {c} needs a newer produce version")
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// CRC32C of a whole batch as stored (`[21, end)`).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Checks one batch at the start of `buf` for structure and integrity: header present,
/// magic 2, `batch_length` consistent with `buf`, CRC32C. Returns the header and the batch's
/// total size. Used on append and on recovery alike.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf).ok_or_else(|| {
        BatchError::Corrupt(format!(
            "{} bytes cannot hold a {BATCH_HEADER_BYTES}-byte batch header",
            buf.len()
        ))
    })?;
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let min_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
    if header.batch_length < min_length {
        return Err(BatchError::Corrupt(format!(
            "batch_length {} is below the minimum {min_length}",
            header.batch_length
        )));
    }
    let total = header.total_bytes();
    if total > buf.len() {
        return Err(BatchError::Corrupt(format!(
            "batch_length {} runs past the {} bytes given",
            header.batch_length,
            buf.len()
        )));
    }
    let actual_crc = compute_crc(&buf[..total]);
    if actual_crc != header.crc {
        return Err(BatchError::Corrupt(format!(
            "CRC32C mismatch: stored {:#010x}, computed {actual_crc:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// Limits that apply to batches a producer sends.
#[derive(Debug, Clone, Copy)]
pub struct ProduceLimits {
    /// `max.message.bytes` of the topic: the largest batch, log overhead included.
    pub max_batch_bytes: usize,
    /// The Produce request version (zstd needs v7+).
    pub produce_version: i16,
}

/// Validates the records a producer sent for one partition: one or more whole batches,
/// each passing [`check_batch`] plus the producer-side rules (count, codec, size, no control
/// batches). Returns each batch's header and byte range within `records`.
pub fn validate_produce(
    records: &[u8],
    limits: ProduceLimits,
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Corrupt(
            "no record batch in produce request".into(),
        ));
    }
    let mut batches = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let header = check_batch(&records[pos..])?;
        let total = header.total_bytes();
        if total > limits.max_batch_bytes {
            return Err(BatchError::TooLarge {
                batch_bytes: total,
                max_bytes: limits.max_batch_bytes,
            });
        }
        check_producer_rules(&header, limits.produce_version)?;
        batches.push((header, pos..pos + total));
        pos += total;
    }
    Ok(batches)
}

fn check_producer_rules(header: &BatchHeader, produce_version: i16) -> Result<(), BatchError> {
    if header.records_count <= 0 {
        return Err(BatchError::Invalid(format!(
            "a batch needs at least one record, got {}",
            header.records_count
        )));
    }
    if header.last_offset_delta < 0
        || header.records_count as i64 != header.last_offset_delta as i64 + 1
    {
        return Err(BatchError::Corrupt(format!(
            "records_count {} does not match last_offset_delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    let codec = header.compression_codec();
    if codec > MAX_COMPRESSION_CODEC {
        return Err(BatchError::Corrupt(format!(
            "unknown compression codec {codec}"
        )));
    }
    if codec == ZSTD_CODEC && produce_version < ZSTD_MIN_PRODUCE_VERSION {
        return Err(BatchError::UnsupportedCompression(codec));
    }
    if header.is_control() {
        return Err(BatchError::Invalid(
            "producers may not send control batches".into(),
        ));
    }
    Ok(())
}

/// Writes the broker-assigned base offset and leader epoch into a batch's header. Neither is
/// covered by the CRC, so the producer's bytes stay valid.
pub fn stamp_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// The stamped first 16 bytes of a batch (base offset, length, leader epoch), for writers
/// that send the header apart from the producer's unchanged remainder.
pub fn stamped_prefix(batch: &[u8], base_offset: i64, leader_epoch: i32) -> [u8; 16] {
    let mut prefix: [u8; 16] = batch[..16].try_into().expect("16 bytes");
    stamp_offset_and_epoch(&mut prefix, base_offset, leader_epoch);
    prefix
}

/// LogAppendTime: sets the timestamp-type attribute and the max timestamp to `now_ms`, then
/// recomputes the CRC (the only case where the broker changes CRC-covered bytes).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Walks whole batches in `buf` (a stretch of a log segment) from its start. Stops at the end,
/// or at the first batch whose header is incomplete or whose length runs past `buf`. No CRC
/// check: recovery uses [`check_batch`]; readers trust what recovery left.
pub fn headers(buf: &[u8]) -> impl Iterator<Item = (usize, BatchHeader)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(&buf[pos..])?;
        let total = header.total_bytes();
        if header.batch_length < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32
            || pos + total > buf.len()
        {
            return None;
        }
        let at = pos;
        pos += total;
        Some((at, header))
    })
}

/// Builds a valid uncompressed batch of `records_count` empty-key records with `value_bytes`
/// each. For tests and benchmarks only: real batches come from producers.
pub fn build_test_batch(records_count: i32, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..records_count {
        let mut body = Vec::new();
        body.push(0u8); // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // key: null
        put_varint(&mut body, value_bytes as i64);
        body.extend(std::iter::repeat_n(b'v', value_bytes));
        put_varint(&mut body, 0); // headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut batch = vec![0u8; BATCH_HEADER_BYTES];
    let batch_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    batch[16] = 2;
    batch[23..27].copy_from_slice(&(records_count - 1).to_be_bytes());
    batch[27..35].copy_from_slice(&timestamp_ms.to_be_bytes());
    batch[35..43].copy_from_slice(&timestamp_ms.to_be_bytes());
    batch[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    batch[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    batch[57..61].copy_from_slice(&records_count.to_be_bytes());
    batch.extend_from_slice(&records);
    let crc = compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
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

/// `(offset, timestamp)` of every record in one stored batch, decompressing if needed. Only
/// for the rare paths that need per-record timestamps (ListOffsets by time); never on
/// produce or fetch. For LogAppendTime batches every record carries the batch's max timestamp.
pub fn record_timestamps(batch: &[u8]) -> Result<Vec<(i64, i64)>, BatchError> {
    let header = check_batch(batch)?;
    if header.is_log_append_time() {
        return Ok((header.base_offset..=header.last_offset())
            .map(|offset| (offset, header.max_timestamp))
            .collect());
    }
    let mut buf = bytes::Bytes::copy_from_slice(&batch[..header.total_bytes()]);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| BatchError::Corrupt(format!("cannot decode records: {e}")))?;
    Ok(set
        .records
        .iter()
        .map(|r| (r.offset, r.timestamp))
        .collect())
}

/// Encodes key/value records (value None = tombstone) as one uncompressed v2 batch with
/// offsets from 0, for the broker's own internal topics.
pub fn encode_key_values(
    records: &[(bytes::Bytes, Option<bytes::Bytes>)],
    timestamp_ms: i64,
) -> bytes::Bytes {
    encode_batch(records, timestamp_ms, None, false)
}

/// Like [`encode_key_values`], as a transactional batch of producer `(id, epoch)` without a
/// sequence (the broker's own transactional writes: TxnOffsetCommit).
pub fn encode_txn_key_values(
    records: &[(bytes::Bytes, Option<bytes::Bytes>)],
    timestamp_ms: i64,
    producer: (i64, i16),
) -> bytes::Bytes {
    encode_batch(records, timestamp_ms, Some(producer), false)
}

/// A control batch holding one end-transaction marker (COMMIT or ABORT) of producer
/// `(id, epoch)`, in Kafka's control record schema.
pub fn encode_marker_batch(
    producer: (i64, i16),
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> bytes::Bytes {
    let (key, value) = crate::txn_records::encode_marker(commit, coordinator_epoch);
    encode_batch(&[(key, Some(value))], timestamp_ms, Some(producer), true)
}

/// For a control batch: `Some(true)` for a COMMIT marker, `Some(false)` for ABORT.
pub fn marker_of(batch: &[u8]) -> Option<bool> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || header.compression_codec() != 0 {
        return None;
    }
    let mut one = bytes::Bytes::copy_from_slice(batch.get(..header.total_bytes())?);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut one).ok()?;
    let key = set.records.first()?.key.clone()?;
    crate::txn_records::marker_is_commit(&key)
}

fn encode_batch(
    records: &[(bytes::Bytes, Option<bytes::Bytes>)],
    timestamp_ms: i64,
    producer: Option<(i64, i16)>,
    control: bool,
) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: timestamp_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .expect("in-memory encoding of valid records cannot fail");
    buf.freeze()
}

/// A record's key and value (None = null).
pub type KeyValue = (Option<bytes::Bytes>, Option<bytes::Bytes>);

/// `(key, value)` of every record in the batches of `buf` (decompressing as needed),
/// skipping control batches. For replaying internal topics at start-up.
pub fn decode_key_values(buf: &[u8]) -> Result<Vec<KeyValue>, BatchError> {
    let mut out = Vec::new();
    for (pos, header) in headers(buf) {
        if header.is_control() {
            continue;
        }
        let mut one = bytes::Bytes::copy_from_slice(&buf[pos..pos + header.total_bytes()]);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut one)
            .map_err(|e| BatchError::Corrupt(format!("cannot decode records: {e}")))?;
        out.extend(set.records.into_iter().map(|r| (r.key, r.value)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ProduceLimits = ProduceLimits {
        max_batch_bytes: 1 << 20,
        produce_version: 9,
    };

    #[test]
    fn valid_batch_round_trips() {
        let batch = build_test_batch(3, 10, 1_000);
        let parsed = validate_produce(&batch, LIMITS).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0.records_count, 3);
        assert_eq!(parsed[0].1, 0..batch.len());
    }

    #[test]
    fn two_batches() {
        let mut two = build_test_batch(1, 1, 1);
        two.extend(build_test_batch(2, 1, 2));
        let parsed = validate_produce(&two, LIMITS).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(headers(&two).count(), 2);
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut batch = build_test_batch(2, 5, 7);
        stamp_offset_and_epoch(&mut batch, 42, 3);
        let h = check_batch(&batch).unwrap();
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.last_offset()),
            (42, 3, 43)
        );
        let prefix = stamped_prefix(&batch, 99, 1);
        assert_eq!(i64::from_be_bytes(prefix[..8].try_into().unwrap()), 99);
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut batch = build_test_batch(1, 5, 7);
        set_log_append_time(&mut batch, 12345);
        let h = check_batch(&batch).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 12345);
    }

    #[test]
    fn rejects() {
        let good = build_test_batch(2, 5, 7);
        let check = |bytes: &[u8], limits: ProduceLimits| {
            validate_produce(bytes, limits).unwrap_err().kafka_error()
        };
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert_eq!(check(&bad_crc, LIMITS), ResponseError::CorruptMessage);
        assert_eq!(
            check(&good[..good.len() - 1], LIMITS),
            ResponseError::CorruptMessage
        );
        assert_eq!(check(&good[..30], LIMITS), ResponseError::CorruptMessage);
        assert_eq!(check(&[], LIMITS), ResponseError::CorruptMessage);
        let mut magic1 = good.clone();
        magic1[16] = 1;
        assert_eq!(
            check(&magic1, LIMITS),
            ResponseError::UnsupportedForMessageFormat
        );
        let small = ProduceLimits {
            max_batch_bytes: 10,
            ..LIMITS
        };
        assert_eq!(check(&good, small), ResponseError::MessageTooLarge);
        let mut neg_len = good.clone();
        neg_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(check(&neg_len, LIMITS), ResponseError::CorruptMessage);
        let mut huge_len = good.clone();
        huge_len[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(check(&huge_len, LIMITS), ResponseError::CorruptMessage);
    }

    #[test]
    fn rejects_after_valid_crc() {
        // Fields under the CRC: fix the CRC after editing, so only the rule under test fails.
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = build_test_batch(2, 5, 7);
            f(&mut b);
            let crc = compute_crc(&b);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            validate_produce(&b, LIMITS).unwrap_err().kafka_error()
        };
        assert_eq!(
            edit(&|b| b[57..61].copy_from_slice(&5i32.to_be_bytes())),
            ResponseError::CorruptMessage
        );
        assert_eq!(
            edit(&|b| b[21..23].copy_from_slice(&0x20i16.to_be_bytes())),
            ResponseError::InvalidRecord
        );
        assert_eq!(
            edit(&|b| b[21..23].copy_from_slice(&7i16.to_be_bytes())),
            ResponseError::CorruptMessage
        );
        let mut zstd = build_test_batch(1, 1, 1);
        zstd[21..23].copy_from_slice(&4i16.to_be_bytes());
        let crc = compute_crc(&zstd);
        zstd[17..21].copy_from_slice(&crc.to_be_bytes());
        let v3 = ProduceLimits {
            produce_version: 3,
            ..LIMITS
        };
        assert_eq!(
            validate_produce(&zstd, v3).unwrap_err().kafka_error(),
            ResponseError::UnsupportedCompressionType
        );
    }
}
