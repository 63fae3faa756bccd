//! Records of the `__consumer_offsets` topic, in Kafka's own schemas so that tools which
//! read that topic understand ours.
//!
//! Keys: `version:int16` then — version 0/1: `group:string, topic:string, partition:int32`
//! (a committed offset); version 2: `group:string` (group metadata).
//! Values (null = tombstone): OffsetCommitValue v3: `offset:int64, leader_epoch:int32,
//! metadata:string, commit_timestamp:int64`. GroupMetadataValue v3: `protocol_type:string,
//! generation:int32, protocol:nullable string, leader:nullable string,
//! current_state_timestamp:int64, members:[member_id:string, group_instance_id:nullable
//! string, client_id:string, client_host:string, rebalance_timeout:int32,
//! session_timeout:int32, subscription:bytes, assignment:bytes]`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecordError {
    Truncated,
    UnknownVersion(i16),
    BadString,
}

impl std::fmt::Display for GroupRecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupRecordError::Truncated => write!(f, "record ends early"),
            GroupRecordError::UnknownVersion(v) => write!(f, "unknown record version {v}"),
            GroupRecordError::BadString => {
                write!(f, "string is not UTF-8 or has a negative length")
            }
        }
    }
}

impl std::error::Error for GroupRecordError {}

/// Every string stored here came off the wire as an INT16-length protocol string, or is a
/// member id the coordinator keeps short (`MEMBER_ID_PREFIX_MAX_BYTES`), so it fits.
fn put_str(b: &mut BytesMut, s: &str) {
    debug_assert!(s.len() <= i16::MAX as usize, "string of {} bytes", s.len());
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

/// Subscriptions and assignments came in one request frame (`socket.request.max.bytes`,
/// at most 2 GiB), so their lengths fit an INT32.
fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    debug_assert!(v.len() <= i32::MAX as usize, "bytes of {} bytes", v.len());
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// A bounds-checked reader: every length is checked against the bytes left before use.
struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), GroupRecordError> {
        if self.0.remaining() < n {
            Err(GroupRecordError::Truncated)
        } else {
            Ok(())
        }
    }
    fn i16(&mut self) -> Result<i16, GroupRecordError> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, GroupRecordError> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self) -> Result<i64, GroupRecordError> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }
    fn opt_str(&mut self) -> Result<Option<String>, GroupRecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize)?;
        let raw = self.0.split_to(len as usize);
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| GroupRecordError::BadString)
    }
    fn str(&mut self) -> Result<String, GroupRecordError> {
        self.opt_str()?.ok_or(GroupRecordError::BadString)
    }
    fn bytes(&mut self) -> Result<Bytes, GroupRecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.need(len as usize)?;
        Ok(self.0.split_to(len as usize))
    }
}

impl GroupKey {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        match self {
            GroupKey::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            GroupKey::Group { group } => {
                b.put_i16(GROUP_KEY_VERSION);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    pub fn decode(key: Bytes) -> Result<GroupKey, GroupRecordError> {
        let mut r = Reader(key);
        match r.i16()? {
            0 | 1 => Ok(GroupKey::Offset {
                group: r.str()?,
                topic: r.str()?,
                partition: r.i32()?,
            }),
            2 => Ok(GroupKey::Group { group: r.str()? }),
            v => Err(GroupRecordError::UnknownVersion(v)),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32 + self.metadata.len());
        b.put_i16(OFFSET_VALUE_VERSION);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp_ms);
        b.freeze()
    }

    /// Reads versions 0–3 (v1 and v2 carry an expire timestamp, ignored; v3 adds the epoch).
    pub fn decode(value: Bytes) -> Result<OffsetValue, GroupRecordError> {
        let mut r = Reader(value);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(GroupRecordError::UnknownVersion(version));
        }
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.str()?;
        let commit_timestamp_ms = r.i64()?;
        if version == 1 {
            r.i64()?; // expire_timestamp
        }
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(128);
        b.put_i16(GROUP_VALUE_VERSION);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_opt_str(&mut b, self.protocol.as_deref());
        put_opt_str(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp_ms);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_opt_str(&mut b, m.group_instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    /// Reads versions 0–3.
    pub fn decode(value: Bytes) -> Result<GroupValue, GroupRecordError> {
        let mut r = Reader(value);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(GroupRecordError::UnknownVersion(version));
        }
        let protocol_type = r.str()?;
        let generation = r.i32()?;
        let protocol = r.opt_str()?;
        let leader = r.opt_str()?;
        let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
        let count = r.i32()?;
        // Each member takes at least 24 bytes: refuse counts the bytes cannot hold.
        r.need((count.max(0) as usize).saturating_mul(24))?;
        let mut members = Vec::with_capacity(count.max(0) as usize);
        for _ in 0..count.max(0) {
            let member_id = r.str()?;
            let group_instance_id = if version >= 3 { r.opt_str()? } else { None };
            let client_id = r.str()?;
            let client_host = r.str()?;
            let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout_ms = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                    session_timeout_ms
                } else {
                    rebalance_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

/// The `__consumer_offsets` partition that holds a group: Kafka's
/// `abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode` over UTF-16.
pub fn partition_for_group(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    // Kafka's Utils.abs: i32::MIN maps to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// Topics listed in a consumer-protocol subscription (`version:int16` then the
/// ConsumerProtocolSubscription body). Empty when the metadata does not parse.
pub fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if metadata.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]);
    let mut body = Bytes::copy_from_slice(&metadata[2..]);
    match ConsumerProtocolSubscription::decode(&mut body, version.clamp(0, 3)) {
        Ok(sub) => sub.topics.into_iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        for key in [
            GroupKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            GroupKey::Group {
                group: "inventory-service".into(),
            },
        ] {
            assert_eq!(GroupKey::decode(key.encode()).unwrap(), key);
        }
        let offset = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp_ms: 7,
        };
        assert_eq!(OffsetValue::decode(offset.encode()).unwrap(), offset);
        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(group.encode()).unwrap(), group);
    }

    #[test]
    fn hostile_values_are_errors() {
        assert_eq!(
            GroupKey::decode(Bytes::from_static(&[0, 1, 0, 9, b'a'])),
            Err(GroupRecordError::Truncated)
        );
        assert_eq!(
            GroupKey::decode(Bytes::from_static(&[0, 9])),
            Err(GroupRecordError::UnknownVersion(9))
        );
        let mut huge = BytesMut::new();
        huge.put_i16(3);
        put_str(&mut huge, "consumer");
        huge.put_i32(1);
        huge.put_i16(-1);
        huge.put_i16(-1);
        huge.put_i64(0);
        huge.put_i32(i32::MAX);
        assert_eq!(
            GroupValue::decode(huge.freeze()),
            Err(GroupRecordError::Truncated)
        );
    }

    #[test]
    fn partition_matches_java_hash() {
        // "test-group".hashCode() == 627841412 in Java (computed independently); % 50 == 12.
        assert_eq!(partition_for_group("test-group", 50), 12);
        assert_eq!(partition_for_group("", 50), 0);
    }
}
