//! Response framing, with record bytes passed through without a copy.
//!
//! Fetch responses carry record batches that point into the segment files' memory maps.
//! [`ChunkedBuf`] is the buffer the generated encoder writes into: it copies the small
//! fields as usual, but when asked to copy one of the registered record `Bytes` it keeps a
//! reference to it instead, so the response is a list of chunks written to the socket with
//! vectored writes, and record bytes go from the page cache to the socket without passing
//! through a buffer of ours.
#![allow(unsafe_code)]

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// Record stretches smaller than this are copied: a separate chunk costs more than it saves.
const ZERO_COPY_MIN_BYTES: usize = 4096;

pub struct ChunkedBuf {
    done: Vec<Bytes>,
    /// Bytes of every chunk in `done`.
    done_bytes: usize,
    current: BytesMut,
    /// Record bytes that may be referenced instead of copied.
    candidates: Vec<Bytes>,
}

impl ChunkedBuf {
    pub fn new(candidates: Vec<Bytes>) -> ChunkedBuf {
        ChunkedBuf {
            done: Vec::new(),
            done_bytes: 0,
            current: BytesMut::with_capacity(512),
            candidates,
        }
    }

    /// The finished chunks, in order.
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.done.push(self.current.freeze());
        }
        self.done
    }

    fn candidate_for(&self, src: &[u8]) -> Option<Bytes> {
        if src.len() < ZERO_COPY_MIN_BYTES {
            return None;
        }
        self.candidates
            .iter()
            .find(|c| c.as_ptr() == src.as_ptr() && c.len() == src.len())
            .cloned()
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, whose `BufMut` implementation
// upholds the trait's contract; `put_slice` only adds whole, already-initialised chunks.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded unchanged; the caller's guarantee applies to `current`.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.candidate_for(src) {
            Some(records) => {
                let head = self.current.split().freeze();
                self.done_bytes += head.len() + records.len();
                if !head.is_empty() {
                    self.done.push(head);
                }
                self.done.push(records);
            }
            None => self.current.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.done_bytes + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(
            offset >= self.done_bytes,
            "cannot seek into a passed-through chunk"
        );
        self.current.resize(offset - self.done_bytes, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        assert!(
            r.start >= self.done_bytes,
            "cannot rewrite a passed-through chunk"
        );
        let base = self.done_bytes;
        &mut self.current[r.start - base..r.end - base]
    }
}

/// A framed response: size, header (in the version the API prescribes — always v0 for
/// ApiVersions), body. `records` are the record stretches that may be passed through.
pub fn encode(
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    body: &ResponseKind,
    records: Vec<Bytes>,
) -> anyhow::Result<Vec<Bytes>> {
    let mut buf = ChunkedBuf::new(records);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))?;
    match body {
        // Versions the crate no longer encodes, in their old layouts (down-converted fetch
        // records pass through as the handler built them).
        _ if klamm_protocol::legacy::is_legacy(api, version) => {
            klamm_protocol::legacy::encode_response(api, version, body, &mut buf)?
        }
        // The one response that carries record bytes goes through the chunking buffer.
        ResponseKind::Fetch(fetch) => fetch.encode(&mut buf, version)?,
        // Everything else is small: encode straight into the current chunk.
        other => other.encode(&mut buf.current, version)?,
    }
    // Responses are bounded far below 2 GiB (`fetch.max.bytes`, `socket.request.max.bytes`
    // for what a request can name); should one ever not be, it is an error, never a
    // wrapped size prefix.
    let size = i32::try_from(buf.offset() - 4)
        .map_err(|_| anyhow::anyhow!("response of {} bytes exceeds a frame", buf.offset() - 4))?;
    let mut chunks = buf.into_chunks();
    let first = chunks
        .first_mut()
        .expect("the size prefix is always in the first chunk");
    let mut head = BytesMut::from(&first[..]);
    head[..4].copy_from_slice(&size.to_be_bytes());
    *first = head.freeze();
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn records_are_passed_through_and_the_frame_is_identical() {
        let records = Bytes::from(vec![7u8; 10_000]);
        let small = Bytes::from(vec![9u8; 10]);
        let response = ResponseKind::Fetch(FetchResponse::default().with_responses(
            vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![
                PartitionData::default().with_records(Some(records.clone())),
                PartitionData::default().with_partition_index(1).with_records(Some(small.clone())),
            ])],
        ));
        let chunks = encode(
            5,
            ApiKey::Fetch,
            12,
            &response,
            vec![records.clone(), small],
        )
        .unwrap();
        assert!(
            chunks.iter().any(|c| c.as_ptr() == records.as_ptr()),
            "records were copied"
        );
        // An old version's layout (down-converted records) passes them through too.
        let old = encode(5, ApiKey::Fetch, 2, &response, vec![records.clone()]).unwrap();
        assert!(
            old.iter().any(|c| c.as_ptr() == records.as_ptr()),
            "Fetch v2 records were copied"
        );
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let copied = encode(5, ApiKey::Fetch, 12, &response, vec![]).unwrap();
        assert_eq!(copied.len(), 1);
        assert_eq!(joined, copied[0].to_vec());
        assert_eq!(
            i32::from_be_bytes(joined[..4].try_into().unwrap()) as usize,
            joined.len() - 4
        );
    }
}
