//! Message sets of magic 0 and 1, the formats before KIP-98's record batches, converted to
//! and from v2 batches as Kafka 3.x does: up on produce (Produce v0–v2 carry them), down on
//! fetch (Fetch v0–v3 consumers read only them). The log holds v2 batches only.
//!
//! A message set is `offset:i64 · message_size:i32 · message`, repeated. A message is
//! `crc:u32 · magic:i8 · attributes:i8 · timestamp:i64 (magic 1 only) · key:bytes ·
//! value:bytes`, the CRC-32 (IEEE) covering everything after the CRC. Attribute bits 0–2
//! are the codec, bit 3 (magic 1) LogAppendTime. A compressed message (a "wrapper") holds,
//! as its value, the compressed message set of its inner messages; Kafka allows exactly one
//! level of this, so a compressed inner message is INVALID_RECORD.

use crate::batch::{self, BatchError};
use crate::rewrite;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Bytes before a message's key: crc, magic, attributes (and a magic 1 timestamp).
const MAGIC_0_HEADER_BYTES: usize = 6;
const MAGIC_1_HEADER_BYTES: usize = 14;
/// `offset` and `message_size` before each message.
const ENTRY_OVERHEAD_BYTES: usize = 12;
const ATTR_CODEC_MASK: i8 = 0x07;
const ATTR_LOG_APPEND_TIME: i8 = 0x08;
/// The v2 batch attribute bit for LogAppendTime.
const BATCH_ATTR_LOG_APPEND_TIME: i16 = 0x08;

/// One message of an old-format set, its fields borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message<'a> {
    offset: i64,
    magic: i8,
    attributes: i8,
    /// -1 for magic 0 (no timestamp).
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

fn corrupt(why: impl Into<String>) -> BatchError {
    BatchError::Corrupt(why.into())
}

fn get<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], BatchError> {
    buf.get(at..at + N)
        .map(|b| b.try_into().expect("N bytes"))
        .ok_or_else(|| corrupt("message ends inside a field"))
}

fn get_bytes<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = i32::from_be_bytes(get::<4>(buf, *at)?);
    *at += 4;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| corrupt("message field runs past its message"))?;
    let field = &buf[*at..end];
    *at = end;
    Ok(Some(field))
}

/// Parses one message (`body` is exactly its `message_size` bytes), checking its CRC.
fn parse_message(offset: i64, body: &[u8]) -> Result<Message<'_>, BatchError> {
    let stored_crc = u32::from_be_bytes(get::<4>(body, 0)?);
    let computed = crc32fast::hash(&body[4..]);
    if stored_crc != computed {
        return Err(corrupt(format!(
            "message at offset {offset}: CRC-32 mismatch, stored {stored_crc:#010x}, computed {computed:#010x}"
        )));
    }
    let [magic, attributes] = get::<2>(body, 4)?.map(|b| b as i8);
    let (timestamp, mut at) = match magic {
        0 => (-1, MAGIC_0_HEADER_BYTES),
        1 => (i64::from_be_bytes(get::<8>(body, 6)?), MAGIC_1_HEADER_BYTES),
        other => return Err(BatchError::UnsupportedMagic(other)),
    };
    let key = get_bytes(body, &mut at)?;
    let value = get_bytes(body, &mut at)?;
    if at != body.len() {
        return Err(corrupt(format!(
            "message at offset {offset}: {} bytes after its value",
            body.len() - at
        )));
    }
    Ok(Message {
        offset,
        magic,
        attributes,
        timestamp,
        key,
        value,
    })
}

/// The messages of a set, in order; every byte must belong to a whole message (a producer
/// never sends a partial one).
fn parse_set(set: &[u8]) -> Result<Vec<Message<'_>>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < set.len() {
        let offset = i64::from_be_bytes(get::<8>(set, pos)?);
        let size = i32::from_be_bytes(get::<4>(set, pos + 8)?);
        let start = pos + ENTRY_OVERHEAD_BYTES;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|&e| e <= set.len())
            .ok_or_else(|| corrupt(format!("message size {size} runs past the message set")))?;
        // A v2 batch keeps its magic at the same position; name it rather than fail its CRC.
        if let Some(&magic) = set.get(start + 4) {
            if magic as i8 >= 2 {
                return Err(BatchError::Invalid(format!(
                    "a magic {magic} batch in a Produce request below v3"
                )));
            }
        }
        out.push(parse_message(offset, &set[start..end])?);
        pos = end;
    }
    Ok(out)
}

const LZ4_CODEC: i8 = 3;

/// An lz4 frame with its header checksum recomputed. Kafka before 0.10 (and clients
/// writing magic 0 since) hashed the frame's magic number into it too (KAFKA-3160); Kafka
/// ignores the checksum of magic 0 frames, and the decoder here checks it, so it is made
/// right first. Layout: magic:u32le · FLG · BD · content size (8, if FLG bit 3) · dictionary
/// id (4, if FLG bit 0) · HC, HC being byte 1 of xxHash32 over FLG..HC.
fn with_lz4_header_checksum(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    let Some(&flags) = frame.get(4) else {
        return out;
    };
    let hc_at = 6 + if flags & 0x08 != 0 { 8 } else { 0 } + if flags & 0x01 != 0 { 4 } else { 0 };
    if hc_at < out.len() {
        out[hc_at] = (xxhash_rust::xxh32::xxh32(&frame[4..hc_at], 0) >> 8) as u8;
    }
    out
}

fn compression_of(codec: i8) -> Result<Compression, BatchError> {
    match codec {
        0 => Ok(Compression::None),
        1 => Ok(Compression::Gzip),
        2 => Ok(Compression::Snappy),
        3 => Ok(Compression::Lz4),
        // zstd came with the v2 format (KIP-110): Kafka refuses it in older messages.
        4 => Err(BatchError::UnsupportedCompression(4)),
        other => Err(corrupt(format!("unknown compression codec {other}"))),
    }
}

/// A whole old-format message set (one partition's data in Produce v0–v2) as one v2 batch,
/// offsets from 0, compressed with the codec of its first compressed message as Kafka does
/// with `compression.type=producer`. Errors: a wrong CRC is `Corrupt` (CORRUPT_MESSAGE),
/// compression inside compression `Invalid` (INVALID_RECORD), zstd
/// `UnsupportedCompression`, and decompressed bytes beyond `max_decompressed_bytes`
/// `TooLarge`. Magic 0 messages have no timestamp: their records carry -1, as in Kafka.
pub fn up_convert(set: &[u8], max_decompressed_bytes: usize) -> Result<Bytes, BatchError> {
    let outer = parse_set(set)?;
    if outer.is_empty() {
        return Err(corrupt("no message in produce request"));
    }
    let mut codec = None;
    let mut budget = max_decompressed_bytes;
    let mut records = Vec::new();
    let mut push = |m: &Message<'_>, timestamp: i64, log_append_time: bool| {
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: if log_append_time {
                TimestampType::LogAppend
            } else {
                TimestampType::Creation
            },
            offset: records.len() as i64,
            // The encoder keeps records in one batch while offset − sequence is constant,
            // and takes the batch's base sequence from the first: -1, no sequence.
            sequence: records.len() as i32 - 1,
            timestamp,
            key: m.key.map(Bytes::copy_from_slice),
            value: m.value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
    };
    for wrapper in &outer {
        let wrapper_codec = wrapper.attributes & ATTR_CODEC_MASK;
        let log_append_time = wrapper.magic == 1 && wrapper.attributes & ATTR_LOG_APPEND_TIME != 0;
        if wrapper_codec == 0 {
            push(wrapper, wrapper.timestamp, log_append_time);
            continue;
        }
        let compression = compression_of(wrapper_codec)?;
        codec.get_or_insert(compression);
        let compressed = wrapper.value.ok_or_else(|| {
            BatchError::Invalid(format!(
                "compressed message at offset {} has a null value",
                wrapper.offset
            ))
        })?;
        let fixed;
        let compressed = if wrapper.magic == 0 && wrapper_codec == LZ4_CODEC {
            fixed = with_lz4_header_checksum(compressed);
            &fixed[..]
        } else {
            compressed
        };
        let inner_bytes = rewrite::decompress(wrapper_codec as i16, compressed, budget)?;
        budget -= inner_bytes.len();
        let inner = parse_set(&inner_bytes)?;
        if inner.is_empty() {
            return Err(BatchError::Invalid(format!(
                "compressed message at offset {} holds no message",
                wrapper.offset
            )));
        }
        for m in &inner {
            if m.attributes & ATTR_CODEC_MASK != 0 {
                return Err(BatchError::Invalid(
                    "a compressed message inside a compressed message (Kafka allows one level)"
                        .into(),
                ));
            }
            if m.magic != wrapper.magic {
                return Err(BatchError::Invalid(format!(
                    "an inner message of magic {} in a magic {} wrapper",
                    m.magic, wrapper.magic
                )));
            }
            // A LogAppendTime wrapper's timestamp is every inner message's.
            let timestamp = if log_append_time {
                wrapper.timestamp
            } else {
                m.timestamp
            };
            push(m, timestamp, log_append_time);
        }
    }
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec.unwrap_or(Compression::None),
    };
    RecordBatchEncoder::encode(&mut out, &records, &options)
        .map_err(|e| corrupt(format!("cannot build a v2 batch from the messages: {e}")))?;
    Ok(out.freeze())
}

/// Appends one set entry: `offset · message_size · crc`, then what `body` writes (magic
/// onwards), with the size and the CRC-32 over the body filled in after.
fn put_entry(out: &mut BytesMut, offset: i64, body: impl FnOnce(&mut BytesMut)) {
    out.put_i64(offset);
    let size_at = out.len();
    out.put_i32(0);
    let crc_at = out.len();
    out.put_u32(0);
    body(out);
    let size = (out.len() - crc_at) as i32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A `bytes` field: i32 length (-1 for null), then the bytes.
pub(super) fn put_field(out: &mut impl BufMut, field: Option<&[u8]>) {
    match field {
        Some(b) => {
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
        None => out.put_i32(-1),
    }
}

/// One uncompressed message; `timestamp` is `(ms, log_append_time)`, magic 1 only.
fn put_message(
    out: &mut BytesMut,
    magic: i8,
    offset: i64,
    timestamp: (i64, bool),
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    put_entry(out, offset, |out| {
        out.put_i8(magic);
        if magic == 1 {
            let (ts, log_append_time) = timestamp;
            out.put_i8(if log_append_time {
                ATTR_LOG_APPEND_TIME
            } else {
                0
            });
            out.put_i64(ts);
        } else {
            out.put_i8(0);
        }
        put_field(out, key);
        put_field(out, value);
    });
}

/// The records of `batches` (whole stored v2 batches, as a fetch read them) at offsets from
/// `fetch_offset` on, as an uncompressed message set of `magic` (0 for Fetch v0–v1, 1 for
/// v2–v3). Control batches are left out and record headers dropped, as Kafka's
/// down-conversion does. Bounded: it stops before the message that would take the set past
/// `max_bytes`, but always holds at least one message when there is one, so a consumer
/// whose fetch size is below one message still advances. A batch that cannot be
/// decompressed within `max_decompressed_bytes` ends the set there (an error if nothing
/// came before it).
pub fn down_convert(
    batches: &[u8],
    magic: i8,
    fetch_offset: i64,
    max_bytes: usize,
    max_decompressed_bytes: usize,
) -> Result<Bytes, BatchError> {
    let mut out = BytesMut::new();
    for (at, header) in batch::headers(batches) {
        if header.is_control() || header.last_offset() < fetch_offset {
            continue;
        }
        let whole = &batches[at..at + header.total_bytes()];
        let section = match rewrite::records_section(&header, whole, max_decompressed_bytes) {
            Ok(s) => s,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        };
        let log_append_time = header.attributes & BATCH_ATTR_LOG_APPEND_TIME != 0;
        for r in rewrite::raw_records(&section, header.records_count)? {
            let offset = header.base_offset + i64::from(r.offset_delta);
            if offset < fetch_offset {
                continue;
            }
            let timestamp = if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(r.timestamp_delta)
            };
            let before = out.len();
            put_message(
                &mut out,
                magic,
                offset,
                (timestamp, log_append_time),
                r.key,
                r.value,
            );
            if out.len() > max_bytes && before > 0 {
                out.truncate(before);
                return Ok(out.freeze());
            }
        }
    }
    Ok(out.freeze())
}

/// A message's key and value, borrowed (None = null).
pub type KeyValueRef<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A message set of `magic` holding `messages` (`(key, value)`) at offsets from 0, for tests
/// and for old-format clients' frames in the fuzzer corpus; compressed into one wrapper
/// when `codec` is not 0.
pub fn encode_for_test(
    magic: i8,
    codec: i8,
    timestamp_ms: i64,
    messages: &[KeyValueRef<'_>],
) -> Bytes {
    let mut inner = BytesMut::new();
    for (i, (key, value)) in messages.iter().enumerate() {
        put_message(
            &mut inner,
            magic,
            i as i64,
            (timestamp_ms, false),
            *key,
            *value,
        );
    }
    if codec == 0 {
        return inner.freeze();
    }
    let compressed = rewrite::compress(codec as i16, &inner).expect("in-memory compression");
    let mut out = BytesMut::new();
    put_entry(&mut out, messages.len() as i64 - 1, |out| {
        out.put_i8(magic);
        out.put_i8(codec);
        if magic == 1 {
            out.put_i64(timestamp_ms);
        }
        put_field(out, None);
        put_field(out, Some(&compressed));
    });
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn decode_v2(batch: &Bytes) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
        let mut b = batch.clone();
        let set = RecordBatchDecoder::decode(&mut b).unwrap();
        set.records
            .into_iter()
            .map(|r| (r.offset, r.timestamp, r.key, r.value))
            .collect()
    }

    const MESSAGES: &[KeyValueRef<'static>] = &[
        (Some(b"k0"), Some(b"v0")),
        (None, Some(b"v1")),
        (Some(b"k2"), None),
    ];

    #[test]
    fn every_magic_and_codec_up_converts_to_the_same_records() {
        for magic in [0, 1] {
            for codec in [0, 1, 2, 3] {
                let set = encode_for_test(magic, codec, 1_700_000_000_000, MESSAGES);
                let batch = up_convert(&set, 1 << 20).unwrap();
                let header = batch::check_batch(&batch).unwrap();
                assert_eq!(header.compression_codec(), codec as i16, "magic {magic}");
                assert_eq!(header.records_count, 3);
                assert_eq!((header.producer_id, header.base_sequence), (-1, -1));
                let ts = if magic == 0 { -1 } else { 1_700_000_000_000 };
                let got = decode_v2(&batch);
                let want: Vec<_> = MESSAGES
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        (
                            i as i64,
                            ts,
                            k.map(Bytes::copy_from_slice),
                            v.map(Bytes::copy_from_slice),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "magic {magic} codec {codec}");
            }
        }
    }

    #[test]
    fn a_wrong_crc_is_corrupt_and_nested_compression_invalid() {
        let mut set = encode_for_test(1, 0, 5, MESSAGES).to_vec();
        let last = set.len() - 1;
        set[last] ^= 0xff;
        assert!(matches!(
            up_convert(&set, 1 << 20),
            Err(BatchError::Corrupt(_))
        ));
        // A gzip wrapper whose inner message is itself a gzip wrapper.
        let inner = encode_for_test(1, 1, 5, MESSAGES);
        let compressed = rewrite::compress(1, &inner).unwrap();
        let mut nested = BytesMut::new();
        put_message(&mut nested, 1, 0, (5, false), None, Some(&compressed));
        nested[16 + 1] = 1; // attributes: gzip (magic at 16, attributes at 17)
        let crc = crc32fast::hash(&nested[16..]);
        nested[12..16].copy_from_slice(&crc.to_be_bytes());
        let err = up_convert(&nested, 1 << 20).unwrap_err();
        assert!(matches!(err, BatchError::Invalid(_)), "{err}");
        assert_eq!(
            err.kafka_error(),
            kafka_protocol::error::ResponseError::InvalidRecord
        );
    }

    #[test]
    fn zstd_a_v2_batch_and_bombs_are_refused() {
        let mut set = encode_for_test(1, 0, 5, MESSAGES).to_vec();
        set[17] = 4; // zstd attribute on the first message
                     // The CRC is checked first: recompute it over the whole first message.
        let first_size = i32::from_be_bytes(set[8..12].try_into().unwrap()) as usize;
        let crc = crc32fast::hash(&set[16..12 + first_size]);
        set[12..16].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            up_convert(&set, 1 << 20),
            Err(BatchError::UnsupportedCompression(4))
        );
        let v2 = batch::build_test_batch(2, 10, 5);
        assert!(matches!(
            up_convert(&v2, 1 << 20),
            Err(BatchError::Invalid(_))
        ));
        let big: Vec<u8> = vec![b'a'; 100_000];
        let bomb = encode_for_test(1, 1, 5, &[(None, Some(&big))]);
        assert!(matches!(
            up_convert(&bomb, 1000),
            Err(BatchError::TooLarge { .. })
        ));
        assert!(up_convert(&[], 1 << 20).is_err());
        assert!(up_convert(&[0, 0, 0], 1 << 20).is_err());
    }

    /// A magic 0 lz4 wrapper as pre-0.10 Kafka clients write it, its frame header checksum
    /// taken over the magic number too, is read; magic 1 keeps the strict check.
    #[test]
    fn magic_0_lz4_with_the_old_header_checksum_is_read() {
        let good = encode_for_test(0, 3, 5, MESSAGES);
        // The wrapper's value (the lz4 frame) starts after offset, size, crc, magic,
        // attributes, null key and value length: 8 + 4 + 4 + 1 + 1 + 4 + 4.
        let frame_at = 26;
        let mut broken = good.to_vec();
        let flags = broken[frame_at + 4];
        let hc_at = frame_at + 6 + if flags & 0x08 != 0 { 8 } else { 0 };
        broken[hc_at] = (xxhash_rust::xxh32::xxh32(&broken[frame_at..hc_at], 0) >> 8) as u8;
        assert_ne!(broken[hc_at], good[hc_at], "the old checksum differs");
        let crc = crc32fast::hash(&broken[16..]);
        broken[12..16].copy_from_slice(&crc.to_be_bytes());
        let batch = up_convert(&broken, 1 << 20).unwrap();
        assert_eq!(decode_v2(&batch).len(), 3);
        // The same bytes as magic 1 are refused as corrupt.
        let mut as_magic_1 = encode_for_test(1, 3, 5, MESSAGES).to_vec();
        let hc1 = frame_at + 8 + 6 + if flags & 0x08 != 0 { 8 } else { 0 };
        as_magic_1[hc1] ^= 0xff;
        let crc = crc32fast::hash(&as_magic_1[16..]);
        as_magic_1[12..16].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            up_convert(&as_magic_1, 1 << 20),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn down_conversion_round_trips_byte_exact_from_the_fetch_offset() {
        for magic in [0i8, 1] {
            let set = encode_for_test(magic, 1, 1_700_000_000_000, MESSAGES);
            let mut stored = up_convert(&set, 1 << 20).unwrap().to_vec();
            batch::stamp_offset_and_epoch(&mut stored, 100, 0);
            // From the start: exactly what an old producer of this magic would have sent
            // uncompressed, at the stored offsets.
            let down = down_convert(&stored, magic, 100, 1 << 20, 1 << 20).unwrap();
            let parsed = parse_set(&down).unwrap();
            assert_eq!(parsed.len(), 3);
            for (i, m) in parsed.iter().enumerate() {
                assert_eq!(m.offset, 100 + i as i64);
                assert_eq!((m.key, m.value), MESSAGES[i]);
                assert_eq!(m.magic, magic);
                assert_eq!(m.timestamp, if magic == 0 { -1 } else { 1_700_000_000_000 });
            }
            let from_mid = down_convert(&stored, magic, 101, 1 << 20, 1 << 20).unwrap();
            assert_eq!(parse_set(&from_mid).unwrap()[0].offset, 101);
            // Bounded: one byte of room still yields one message, never more.
            let one = down_convert(&stored, magic, 100, 1, 1 << 20).unwrap();
            assert_eq!(parse_set(&one).unwrap().len(), 1);
        }
    }

    #[test]
    fn control_batches_are_left_out_of_down_conversion() {
        let marker = batch::encode_marker_batch((7, 0), true, 0, 5);
        let data = batch::build_test_batch(2, 3, 5);
        let mut stored = marker.to_vec();
        let mut second = data.clone();
        batch::stamp_offset_and_epoch(&mut second, 1, 0);
        stored.extend_from_slice(&second);
        let down = down_convert(&stored, 1, 0, 1 << 20, 1 << 20).unwrap();
        let offsets: Vec<i64> = parse_set(&down).unwrap().iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![1, 2]);
    }
}
