//! Records of the `__transaction_state` topic, in Kafka's schemas (TransactionLogKey v0,
//! TransactionLogValue v0) so that tools reading that topic understand ours.
//!
//! Key: `version:int16 (0), transactional_id:string`.
//! Value (null = tombstone, the id expired): `version:int16 (0), producer_id:int64,
//! producer_epoch:int16, transaction_timeout_ms:int32, transaction_status:int8,
//! transaction_partitions:nullable [topic:string, partition_ids:[int32]],
//! transaction_last_update_timestamp_ms:int64, transaction_start_timestamp_ms:int64`.
//!
//! Also the end-transaction marker of control batches: key `version:int16 (0),
//! type:int16 (0 abort, 1 commit)`, value `version:int16 (0), coordinator_epoch:int32`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Kafka's `TransactionState` ids as stored in `transaction_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnStatus {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnStatus {
    pub fn from_i8(v: i8) -> Option<TxnStatus> {
        use TxnStatus::*;
        Some(match v {
            0 => Empty,
            1 => Ongoing,
            2 => PrepareCommit,
            3 => PrepareAbort,
            4 => CompleteCommit,
            5 => CompleteAbort,
            6 => Dead,
            7 => PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Kafka's admin APIs use (ListTransactions, DescribeTransactions).
    pub fn name(self) -> &'static str {
        use TxnStatus::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// `(topic, partitions)`, topics ascending.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRecordError {
    Truncated,
    UnknownVersion(i16),
    BadString,
    BadStatus(i8),
}

impl std::fmt::Display for TxnRecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxnRecordError::Truncated => write!(f, "record ends early"),
            TxnRecordError::UnknownVersion(v) => write!(f, "unknown record version {v}"),
            TxnRecordError::BadString => write!(f, "string is not UTF-8 or has a bad length"),
            TxnRecordError::BadStatus(s) => write!(f, "unknown transaction status {s}"),
        }
    }
}

impl std::error::Error for TxnRecordError {}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), TxnRecordError> {
        if self.0.remaining() < n {
            Err(TxnRecordError::Truncated)
        } else {
            Ok(())
        }
    }
    fn i8(&mut self) -> Result<i8, TxnRecordError> {
        self.need(1)?;
        Ok(self.0.get_i8())
    }
    fn i16(&mut self) -> Result<i16, TxnRecordError> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, TxnRecordError> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self) -> Result<i64, TxnRecordError> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }
    fn str(&mut self) -> Result<String, TxnRecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Err(TxnRecordError::BadString);
        }
        self.need(len as usize)?;
        let raw = self.0.split_to(len as usize);
        String::from_utf8(raw.to_vec()).map_err(|_| TxnRecordError::BadString)
    }
    /// An array count, checked against the bytes left (each element takes at least `min`).
    fn count(&mut self, min: usize) -> Result<i32, TxnRecordError> {
        let n = self.i32()?;
        if n > 0 && self.0.remaining() < n as usize * min {
            return Err(TxnRecordError::Truncated);
        }
        Ok(n)
    }
}

/// Every string stored here came off the wire as an INT16-length protocol string, or is a
/// member id the coordinator keeps short (`MEMBER_ID_PREFIX_MAX_BYTES`), so it fits.
fn put_str(b: &mut BytesMut, s: &str) {
    debug_assert!(s.len() <= i16::MAX as usize, "string of {} bytes", s.len());
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub fn decode_key(key: Bytes) -> Result<String, TxnRecordError> {
    let mut r = Reader(key);
    match r.i16()? {
        0 => r.str(),
        v => Err(TxnRecordError::UnknownVersion(v)),
    }
}

impl TxnValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(0);
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.timeout_ms);
        b.put_i8(self.status as i8);
        b.put_i32(self.partitions.len() as i32);
        for (topic, parts) in &self.partitions {
            put_str(&mut b, topic);
            b.put_i32(parts.len() as i32);
            for p in parts {
                b.put_i32(*p);
            }
        }
        b.put_i64(self.last_update_ms);
        b.put_i64(self.start_ms);
        b.freeze()
    }

    /// Reads value versions 0 and 1 (v1's tagged fields are ignored).
    pub fn decode(value: Bytes) -> Result<TxnValue, TxnRecordError> {
        let mut r = Reader(value);
        let version = r.i16()?;
        if version != 0 {
            // v1 is a flexible version (compact strings); Klamm writes v0 only.
            return Err(TxnRecordError::UnknownVersion(version));
        }
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let timeout_ms = r.i32()?;
        let raw = r.i8()?;
        let status = TxnStatus::from_i8(raw).ok_or(TxnRecordError::BadStatus(raw))?;
        let mut partitions = Vec::new();
        for _ in 0..r.count(6)?.max(0) {
            let topic = r.str()?;
            let n = r.count(4)?.max(0);
            let mut parts = Vec::with_capacity(n as usize);
            for _ in 0..n {
                parts.push(r.i32()?);
            }
            partitions.push((topic, parts));
        }
        Ok(TxnValue {
            producer_id,
            producer_epoch,
            timeout_ms,
            status,
            partitions,
            last_update_ms: r.i64()?,
            start_ms: r.i64()?,
        })
    }
}

/// The key and value of an end-transaction marker record.
pub fn encode_marker(commit: bool, coordinator_epoch: i32) -> (Bytes, Bytes) {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(commit as i16);
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    (key.freeze(), value.freeze())
}

/// Whether a control record's key is a COMMIT (true) or ABORT (false) marker; None for
/// other control types.
pub fn marker_is_commit(key: &[u8]) -> Option<bool> {
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = TxnValue {
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions: vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])],
            last_update_ms: 5,
            start_ms: 4,
        };
        assert_eq!(TxnValue::decode(v.encode()).unwrap(), v);
        assert_eq!(decode_key(encode_key("tx-1")).unwrap(), "tx-1");
        let enc = v.encode();
        assert_eq!(
            TxnValue::decode(enc.slice(..enc.len() - 3)),
            Err(TxnRecordError::Truncated)
        );
        let (k, _) = encode_marker(true, 0);
        assert_eq!(marker_is_commit(&k), Some(true));
        assert_eq!(marker_is_commit(&encode_marker(false, 0).0), Some(false));
    }

    #[test]
    fn hostile_counts_are_refused() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(1);
        b.put_i16(0);
        b.put_i32(1);
        b.put_i8(1);
        b.put_i32(i32::MAX);
        assert_eq!(TxnValue::decode(b.freeze()), Err(TxnRecordError::Truncated));
    }
}
