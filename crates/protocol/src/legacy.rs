//! Produce v0–v2: advertised (older librdkafka stops compressing otherwise) but refused.
//!
//! The crate decodes Produce from v3 on. The v0–v2 request bodies are v3's without the
//! leading `transactional_id`, so the broker decodes them as v3 after a null id; the
//! responses differ by version and are small, so they are encoded here by hand.

use bytes::{BufMut, Bytes, BytesMut};

/// A framed Produce v0–v2 response answering every partition with `error_code`.
/// `topics` is `(name, partition indexes)` in request order.
pub fn produce_error_response(
    version: i16,
    correlation_id: i32,
    topics: &[(String, Vec<i32>)],
    error_code: i16,
) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i32(0);
    b.put_i32(correlation_id);
    b.put_i32(topics.len() as i32);
    for (name, partitions) in topics {
        b.put_i16(name.len() as i16);
        b.put_slice(name.as_bytes());
        b.put_i32(partitions.len() as i32);
        for &p in partitions {
            b.put_i32(p);
            b.put_i16(error_code);
            b.put_i64(-1); // base_offset
            if version >= 2 {
                b.put_i64(-1); // log_append_time_ms
            }
        }
    }
    if version >= 1 {
        b.put_i32(0); // throttle_time_ms
    }
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_by_version() {
        let topics = vec![("t".to_string(), vec![0, 1])];
        let len = |v| produce_error_response(v, 1, &topics, 35).len();
        // prefix 4 + corr 4 + count 4 + name 3 + count 4 + 2 × (4+2+8) = 47
        assert_eq!(len(0), 47);
        assert_eq!(len(1), 51);
        assert_eq!(len(2), 67);
    }
}
