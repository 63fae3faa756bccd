//! The versions Kafka 3.9 served that the kafka-protocol crate no longer decodes: the crate
//! starts each API at Kafka 4's baseline (KIP-896), while clients in the field (sarama,
//! kafka-go, optiopay, old librdkafka) still send older versions and Kafka 3.x answers them.
//!
//! Each old request body is rewritten into the body of the oldest version the crate decodes
//! ([`upgrade_request`]), so handlers see one struct per API; each response is encoded from
//! that struct in the old layout by hand ([`encode_response`]). Every rewrite is a pure
//! function of bytes with its field layout written beside it. Produce v0–v2 and Fetch v0–v3
//! also change the records: see [`message_set`] (up- and down-conversion).
//!
//! Invariant: [`oldest_version`] is the lowest version [`upgrade_request`] accepts for an
//! API; the registry serves nothing below it.

pub mod message_set;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// The lowest version Klamm can decode for `api`: below the crate's minimum only where this
/// module rewrites the old versions.
pub fn oldest_version(api: ApiKey) -> i16 {
    match api {
        ApiKey::Produce
        | ApiKey::Fetch
        | ApiKey::ListOffsets
        | ApiKey::OffsetCommit
        | ApiKey::OffsetFetch
        | ApiKey::CreateTopics
        | ApiKey::DeleteTopics
        | ApiKey::DescribeConfigs
        | ApiKey::OffsetForLeaderEpoch
        | ApiKey::DescribeLogDirs
        | ApiKey::AlterReplicaLogDirs => 0,
        other => other.valid_versions().min,
    }
}

/// Whether `version` of `api` is one this module translates (below the crate's range).
pub fn is_legacy(api: ApiKey, version: i16) -> bool {
    version < api.valid_versions().min && version >= oldest_version(api)
}

/// Reads the fixed-width and length-prefixed fields of an old (non-flexible) body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("body ends at byte {} inside a field", self.buf.len()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }

    /// A (nullable) string's whole encoding, length prefix included.
    fn string(&mut self) -> Result<&'a [u8], String> {
        let start = self.pos;
        let len = self.i16()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(&self.buf[start..self.pos])
    }

    /// An array's element count; negative (null) reads as 0 elements.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        // Each element takes at least one byte: a count beyond what is left is garbage,
        // refused before anything is sized by it.
        if n > 0 && n as usize > self.buf.len() - self.pos {
            return Err(format!(
                "array of {n} elements in {} bytes",
                self.buf.len() - self.pos
            ));
        }
        Ok(n.max(0) as usize)
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// Copies `topics[name · partitions[…]]` from `r` to `out`, each partition rewritten by
/// `partition` (the one part of these layouts that changed between versions).
fn rewrite_partitions(
    r: &mut Reader<'_>,
    out: &mut BytesMut,
    mut partition: impl FnMut(&mut Reader<'_>, &mut BytesMut) -> Result<(), String>,
) -> Result<(), String> {
    let topics = r.count()?;
    out.put_i32(topics as i32);
    for _ in 0..topics {
        out.put_slice(r.string()?);
        let partitions = r.count()?;
        out.put_i32(partitions as i32);
        for _ in 0..partitions {
            partition(r, out)?;
        }
    }
    Ok(())
}

/// The body of an old `version` of `api` rewritten as the body of the version returned
/// beside it (the crate's oldest), which the crate then decodes. Field layouts are
/// Kafka's, from its message definitions.
pub fn upgrade_request(api: ApiKey, version: i16, body: &[u8]) -> Result<(Bytes, i16), String> {
    let mut out = BytesMut::with_capacity(body.len() + 16);
    let mut r = Reader::new(body);
    let to = api.valid_versions().min;
    match api {
        // v0–v2: acks · timeout · topics. v3 adds transactional_id in front.
        ApiKey::Produce => {
            out.put_i16(-1);
            out.put_slice(body);
        }
        // v0–v2: replica_id · max_wait · min_bytes · topics; v3 adds max_bytes after
        // min_bytes, v4 isolation_level after that (0: read_uncommitted, all that v0–v3 had).
        ApiKey::Fetch => {
            let fixed = r.take(12)?;
            out.put_slice(fixed);
            if version >= 3 {
                out.put_slice(r.take(4)?);
            } else {
                // No response limit before v3 (Kafka uses INT_MAX; fetch.max.bytes caps it).
                out.put_i32(i32::MAX);
            }
            out.put_i8(0);
            out.put_slice(r.rest());
        }
        // v0: replica_id · topics[name · partitions[index · timestamp · max_num_offsets]];
        // v1 drops max_num_offsets (v0 answers one offset per partition here).
        ApiKey::ListOffsets => {
            out.put_slice(r.take(4)?);
            rewrite_partitions(&mut r, &mut out, |r, out| {
                out.put_slice(r.take(4 + 8)?);
                r.take(4)?;
                Ok(())
            })?;
        }
        // v0: group_id · topics[name · partitions[index · offset · metadata]].
        // v1: group_id · generation_id · member_id · topics[name · partitions[index · offset
        //     · commit_timestamp · metadata]].
        // v2: group_id · generation_id · member_id · retention_time_ms · topics as in v0.
        // The v1 commit timestamp is dropped: the broker stamps commits itself, and expiry
        // follows `offsets.retention.minutes` as for retention -1.
        ApiKey::OffsetCommit => {
            out.put_slice(r.string()?);
            if version == 0 {
                out.put_i32(-1);
                out.put_i16(0);
            } else {
                out.put_slice(r.take(4)?);
                out.put_slice(r.string()?);
            }
            out.put_i64(-1);
            rewrite_partitions(&mut r, &mut out, |r, out| {
                out.put_slice(r.take(4 + 8)?);
                if version == 1 {
                    r.take(8)?;
                }
                out.put_slice(r.string()?);
                Ok(())
            })?;
        }
        // v0 and v1 are the same on the wire (v0 once read offsets from ZooKeeper).
        ApiKey::OffsetFetch | ApiKey::DeleteTopics => out.put_slice(body),
        // v0: topics · timeout_ms; v1 adds validate_only; v2 is v1 (its response differs).
        ApiKey::CreateTopics => {
            out.put_slice(body);
            if version == 0 {
                out.put_i8(0);
            }
        }
        // v0: resources; v1 adds include_synonyms.
        ApiKey::DescribeConfigs => {
            out.put_slice(body);
            out.put_i8(0);
        }
        // v0–v1: topics[name · partitions[partition · leader_epoch]]; v2 adds
        // current_leader_epoch before leader_epoch (-1: not checked).
        ApiKey::OffsetForLeaderEpoch => {
            rewrite_partitions(&mut r, &mut out, |r, out| {
                out.put_slice(r.take(4)?);
                out.put_i32(-1);
                out.put_slice(r.take(4)?);
                Ok(())
            })?;
        }
        // v0 and v1 are the same on the wire (v1 changed only throttling).
        ApiKey::DescribeLogDirs | ApiKey::AlterReplicaLogDirs => out.put_slice(body),
        other => return Err(format!("{other:?} v{version} has no legacy form")),
    }
    Ok((out.freeze(), to))
}

fn put_str(out: &mut impl BufMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut impl BufMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

/// Appends the body of `response` in the old `version`'s layout. Fetch records must
/// already be in the old format (the fetch handler down-converts them); they are written
/// with one `put_slice` each, so a buffer that passes record bytes through (the broker's
/// `ChunkedBuf`) does not copy them.
pub fn encode_response<B: ByteBufMut>(
    api: ApiKey,
    version: i16,
    response: &ResponseKind,
    out: &mut B,
) -> anyhow::Result<()> {
    let oldest = api.valid_versions().min;
    match response {
        // v0: responses[name · partitions[index · error · base_offset]]; v1 adds
        // throttle_time_ms at the end, v2 log_append_time_ms per partition.
        ResponseKind::Produce(r) => {
            out.put_i32(r.responses.len() as i32);
            for t in &r.responses {
                put_str(out, &t.name);
                out.put_i32(t.partition_responses.len() as i32);
                for p in &t.partition_responses {
                    out.put_i32(p.index);
                    out.put_i16(p.error_code);
                    out.put_i64(p.base_offset);
                    if version >= 2 {
                        out.put_i64(p.log_append_time_ms);
                    }
                }
            }
            if version >= 1 {
                out.put_i32(r.throttle_time_ms);
            }
        }
        // v0: responses[topic · partitions[index · error · high_watermark · records]];
        // v1–v3 add throttle_time_ms in front.
        ResponseKind::Fetch(r) => {
            if version >= 1 {
                out.put_i32(r.throttle_time_ms);
            }
            out.put_i32(r.responses.len() as i32);
            for t in &r.responses {
                put_str(out, &t.topic);
                out.put_i32(t.partitions.len() as i32);
                for p in &t.partitions {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                    out.put_i64(p.high_watermark);
                    message_set::put_field(out, Some(p.records.as_deref().unwrap_or_default()));
                }
            }
        }
        // v0: topics[name · partitions[index · error · old_style_offsets[]]].
        ResponseKind::ListOffsets(r) => {
            out.put_i32(r.topics.len() as i32);
            for t in &r.topics {
                put_str(out, &t.name);
                out.put_i32(t.partitions.len() as i32);
                for p in &t.partitions {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                    if p.error_code == 0 && p.offset >= 0 {
                        out.put_i32(1);
                        out.put_i64(p.offset);
                    } else {
                        out.put_i32(0);
                    }
                }
            }
        }
        // v0: topics[name · error]; v1 adds error_message (v2 adds throttle in front).
        ResponseKind::CreateTopics(r) => {
            out.put_i32(r.topics.len() as i32);
            for t in &r.topics {
                put_str(out, &t.name);
                out.put_i16(t.error_code);
                if version >= 1 {
                    put_nullable_str(out, t.error_message.as_deref());
                }
            }
        }
        // v0: responses[name · error] (v1 adds throttle in front).
        ResponseKind::DeleteTopics(r) => {
            out.put_i32(r.responses.len() as i32);
            for t in &r.responses {
                put_nullable_str(out, t.name.as_ref().map(|n| n.as_str()));
                out.put_i16(t.error_code);
            }
        }
        // v0: throttle · results[error · message · type · name · configs[name · value ·
        // read_only · is_default · is_sensitive]]; v1 replaced is_default with
        // config_source and added synonyms.
        ResponseKind::DescribeConfigs(r) => {
            const DEFAULT_CONFIG: i8 = 5;
            out.put_i32(r.throttle_time_ms);
            out.put_i32(r.results.len() as i32);
            for res in &r.results {
                out.put_i16(res.error_code);
                put_nullable_str(out, res.error_message.as_deref());
                out.put_i8(res.resource_type);
                put_str(out, &res.resource_name);
                out.put_i32(res.configs.len() as i32);
                for c in &res.configs {
                    put_str(out, &c.name);
                    put_nullable_str(out, c.value.as_deref());
                    out.put_i8(c.read_only as i8);
                    out.put_i8((c.config_source == DEFAULT_CONFIG) as i8);
                    out.put_i8(c.is_sensitive as i8);
                }
            }
        }
        // v0: topics[name · partitions[error · partition · end_offset]]; v1 adds
        // leader_epoch before end_offset (v2 adds throttle in front).
        ResponseKind::OffsetForLeaderEpoch(r) => {
            out.put_i32(r.topics.len() as i32);
            for t in &r.topics {
                put_str(out, &t.topic);
                out.put_i32(t.partitions.len() as i32);
                for p in &t.partitions {
                    out.put_i16(p.error_code);
                    out.put_i32(p.partition);
                    if version >= 1 {
                        out.put_i32(p.leader_epoch);
                    }
                    out.put_i64(p.end_offset);
                }
            }
        }
        // The same layout as the crate's oldest version.
        ResponseKind::OffsetCommit(r) => r.encode(out, oldest)?,
        ResponseKind::OffsetFetch(r) => r.encode(out, oldest)?,
        ResponseKind::DescribeLogDirs(r) => r.encode(out, oldest)?,
        ResponseKind::AlterReplicaLogDirs(r) => r.encode(out, oldest)?,
        other => anyhow::bail!("{api:?} v{version} has no legacy response form for {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;

    fn upgraded<T: Decodable>(api: ApiKey, version: i16, body: &[u8]) -> T {
        let (bytes, to) = upgrade_request(api, version, body).unwrap();
        T::decode(&mut bytes.clone(), to).unwrap()
    }

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&(v.len() as i16).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }

    #[test]
    fn every_legacy_api_is_one_the_crate_starts_above() {
        for api in ApiKey::iter() {
            let oldest = oldest_version(api);
            assert!(oldest <= api.valid_versions().min, "{api:?}");
            if oldest < api.valid_versions().min {
                // Every legacy version is upgradable (even an empty body fails cleanly).
                for v in oldest..api.valid_versions().min {
                    let _ = upgrade_request(api, v, &[]);
                    assert!(is_legacy(api, v));
                }
            }
        }
    }

    #[test]
    fn fetch_v0_and_v3_become_v4() {
        let mut v0 = Vec::new();
        v0.extend_from_slice(&(-1i32).to_be_bytes());
        v0.extend_from_slice(&500i32.to_be_bytes());
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.extend_from_slice(&1i32.to_be_bytes());
        s(&mut v0, "t");
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.extend_from_slice(&3i32.to_be_bytes());
        v0.extend_from_slice(&42i64.to_be_bytes());
        v0.extend_from_slice(&1024i32.to_be_bytes());
        let r: FetchRequest = upgraded(ApiKey::Fetch, 0, &v0);
        assert_eq!(
            (r.max_wait_ms, r.min_bytes, r.max_bytes),
            (500, 1, i32::MAX)
        );
        assert_eq!(r.isolation_level, 0);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.partition, p.fetch_offset, p.partition_max_bytes),
            (3, 42, 1024)
        );
        let mut v3 = v0[..12].to_vec();
        v3.extend_from_slice(&777i32.to_be_bytes());
        v3.extend_from_slice(&v0[12..]);
        let r: FetchRequest = upgraded(ApiKey::Fetch, 3, &v3);
        assert_eq!(r.max_bytes, 777);
        assert_eq!(r.topics[0].partitions[0].fetch_offset, 42);
    }

    #[test]
    fn offset_commit_v0_and_v1_become_v2() {
        let mut v0 = Vec::new();
        s(&mut v0, "g");
        v0.extend_from_slice(&1i32.to_be_bytes());
        s(&mut v0, "t");
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.extend_from_slice(&2i32.to_be_bytes());
        v0.extend_from_slice(&9i64.to_be_bytes());
        s(&mut v0, "meta");
        let r: OffsetCommitRequest = upgraded(ApiKey::OffsetCommit, 0, &v0);
        assert_eq!(
            (r.generation_id_or_member_epoch, r.member_id.as_str()),
            (-1, "")
        );
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.committed_offset), (2, 9));
        assert_eq!(p.committed_metadata.as_deref(), Some("meta"));

        let mut v1 = Vec::new();
        s(&mut v1, "g");
        v1.extend_from_slice(&5i32.to_be_bytes());
        s(&mut v1, "m-1");
        v1.extend_from_slice(&1i32.to_be_bytes());
        s(&mut v1, "t");
        v1.extend_from_slice(&1i32.to_be_bytes());
        v1.extend_from_slice(&2i32.to_be_bytes());
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(&123i64.to_be_bytes()); // commit timestamp
        v1.extend_from_slice(&(-1i16).to_be_bytes()); // null metadata
        let r: OffsetCommitRequest = upgraded(ApiKey::OffsetCommit, 1, &v1);
        assert_eq!(
            (r.generation_id_or_member_epoch, r.member_id.as_str()),
            (5, "m-1")
        );
        assert_eq!(r.retention_time_ms, -1);
        assert_eq!(r.topics[0].partitions[0].committed_offset, 9);
        assert_eq!(r.topics[0].partitions[0].committed_metadata, None);
        // A truncated body is an error, never a panic.
        for cut in 0..v1.len() {
            let _ = upgrade_request(ApiKey::OffsetCommit, 1, &v1[..cut]);
        }
    }

    #[test]
    fn list_offsets_v0_drops_max_num_offsets_and_answers_one_offset() {
        let mut v0 = Vec::new();
        v0.extend_from_slice(&(-1i32).to_be_bytes());
        v0.extend_from_slice(&1i32.to_be_bytes());
        s(&mut v0, "t");
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.extend_from_slice(&0i32.to_be_bytes());
        v0.extend_from_slice(&(-1i64).to_be_bytes());
        v0.extend_from_slice(&1i32.to_be_bytes());
        let r: ListOffsetsRequest = upgraded(ApiKey::ListOffsets, 0, &v0);
        assert_eq!(r.topics[0].partitions[0].timestamp, -1);

        use list_offsets_response::*;
        let resp = ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(vec![
            ListOffsetsTopicResponse::default()
                .with_name(TopicName("t".into()))
                .with_partitions(vec![ListOffsetsPartitionResponse::default().with_offset(17)]),
        ]));
        let mut out = BytesMut::new();
        encode_response(ApiKey::ListOffsets, 0, &resp, &mut out).unwrap();
        // count 1 · "t" · count 1 · index 0 · error 0 · offsets [17]
        assert_eq!(out.len(), 4 + 3 + 4 + 4 + 2 + 4 + 8);
        assert_eq!(&out[out.len() - 8..], &17i64.to_be_bytes());
    }

    #[test]
    fn create_topics_and_describe_configs_v0_decode() {
        let mut v0 = Vec::new();
        v0.extend_from_slice(&1i32.to_be_bytes());
        s(&mut v0, "t");
        v0.extend_from_slice(&3i32.to_be_bytes());
        v0.extend_from_slice(&1i16.to_be_bytes());
        v0.extend_from_slice(&0i32.to_be_bytes()); // assignments
        v0.extend_from_slice(&0i32.to_be_bytes()); // configs
        v0.extend_from_slice(&5000i32.to_be_bytes());
        let r: CreateTopicsRequest = upgraded(ApiKey::CreateTopics, 0, &v0);
        assert_eq!((r.topics[0].num_partitions, r.timeout_ms), (3, 5000));
        assert!(!r.validate_only);

        let mut d0 = Vec::new();
        d0.extend_from_slice(&1i32.to_be_bytes());
        d0.push(2);
        s(&mut d0, "t");
        d0.extend_from_slice(&(-1i32).to_be_bytes());
        let r: DescribeConfigsRequest = upgraded(ApiKey::DescribeConfigs, 0, &d0);
        assert_eq!(r.resources[0].resource_name.as_str(), "t");
        assert_eq!(r.resources[0].configuration_keys, None);
    }

    #[test]
    fn produce_responses_by_version() {
        use produce_response::*;
        let resp = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default()
                .with_name(TopicName("t".into()))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default(),
                    PartitionProduceResponse::default().with_index(1),
                ]),
        ]));
        let len = |v| {
            let mut out = BytesMut::new();
            encode_response(ApiKey::Produce, v, &resp, &mut out).unwrap();
            out.len()
        };
        // count 4 + name 3 + count 4 + 2 × (4+2+8) = 39; v1 +4 throttle; v2 +2 × 8
        assert_eq!(len(0), 39);
        assert_eq!(len(1), 43);
        assert_eq!(len(2), 59);
    }
}
