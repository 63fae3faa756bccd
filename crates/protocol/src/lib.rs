//! Everything Klamm knows about the Kafka wire format, and nothing about I/O.
//!
//! - [`frame`]: the 4-byte size prefix and the request-header peek, checked before any
//!   allocation or decoding, so a hostile peer cannot make the broker allocate what it merely
//!   declares.
//! - [`versions`]: the one table of API versions Klamm serves; ApiVersions is derived from it.
//! - [`batch`]: record-batch (magic 2) header parsing, validation (lengths, CRC32C, counts,
//!   size limits) and in-place stamping of base offset and leader epoch.
//! - [`rewrite`]: decompress, filter and rebuild stored batches (log cleaner, recompression).
//! - [`errors`]: Kafka error names as users search for them (`UNKNOWN_TOPIC_OR_PARTITION`).
//!
//! Architecture invariant: this crate does no I/O and spawns nothing; every function is a
//! pure transformation of bytes, so it can be fuzzed and property-tested in isolation.

pub mod batch;
pub mod errors;
pub mod frame;
pub mod group_records;
pub mod legacy;
pub mod rewrite;
pub mod txn_records;
pub mod versions;

pub use kafka_protocol;
