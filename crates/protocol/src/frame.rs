//! Request framing: `size:int32` followed by `size` bytes of header and body.
//!
//! The size is checked against the configured maximum *before* any buffer is allocated, and
//! the api key, version and correlation id are peeked by hand before the generated decoders
//! run, so an unknown api key is a clean error rather than a decoder failure.

use kafka_protocol::messages::ApiKey;

/// Bytes of the size prefix in front of every request and response.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// The smallest request header: api_key(2) + api_version(2) + correlation_id(4) + client_id
/// length(2).
pub const MIN_REQUEST_BYTES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A negative size: never valid.
    NegativeSize(i32),
    /// Larger than `socket.request.max.bytes`.
    TooLarge { size_bytes: usize, max_bytes: usize },
    /// Too short to hold a request header.
    TooSmall(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NegativeSize(s) => write!(f, "negative frame size {s}"),
            FrameError::TooLarge {
                size_bytes,
                max_bytes,
            } => write!(
                f,
                "frame of {size_bytes} bytes exceeds socket.request.max.bytes={max_bytes}"
            ),
            FrameError::TooSmall(s) => write!(f, "frame of {s} bytes is too small for a request"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks a request's size prefix. Returns the body length to read.
pub fn request_size(
    prefix: [u8; SIZE_PREFIX_BYTES],
    max_bytes: usize,
) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size_bytes = size as usize;
    if size_bytes > max_bytes {
        return Err(FrameError::TooLarge {
            size_bytes,
            max_bytes,
        });
    }
    if size_bytes < MIN_REQUEST_BYTES {
        return Err(FrameError::TooSmall(size_bytes));
    }
    Ok(size_bytes)
}

/// The first fields of every request header, read without the generated decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPeek {
    /// Raw api key; [`HeaderPeek::api`] says whether it is one Kafka defines.
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderPeek {
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }
}

/// Peeks api key, version and correlation id. `None` if the frame is shorter than 8 bytes.
pub fn peek_header(frame: &[u8]) -> Option<HeaderPeek> {
    if frame.len() < 8 {
        return None;
    }
    Some(HeaderPeek {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(request_size(100i32.to_be_bytes(), 1000), Ok(100));
        assert_eq!(
            request_size((-1i32).to_be_bytes(), 1000),
            Err(FrameError::NegativeSize(-1))
        );
        assert!(matches!(
            request_size(i32::MAX.to_be_bytes(), 1000),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            request_size(3i32.to_be_bytes(), 1000),
            Err(FrameError::TooSmall(3))
        );
    }

    #[test]
    fn peek() {
        let frame = [0, 18, 0, 3, 0, 0, 0, 7, 0, 0];
        let h = peek_header(&frame).unwrap();
        assert_eq!(h.api(), Some(ApiKey::ApiVersions));
        assert_eq!((h.api_version, h.correlation_id), (3, 7));
        assert_eq!(peek_header(&frame[..5]), None);
        let unknown = peek_header(&[3, 231, 0, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!(unknown.api(), None);
    }
}
