//! Property-based fuzzing (stable toolchain: proptest, since cargo-fuzz needs nightly) of
//! everything that reads bytes from the network: the size prefix, the header peek, the
//! broker's own `handlers::decode` and `handlers::dispatch` for every `(api, version)` in
//! the registry (the handlers run against a real in-process broker), and record-batch
//! validation and parsing.
//!
//! Inputs are (a) real client frames captured by `scripts/capture-corpus` into
//! `tests/corpus/`, mutated (bit flips, byte overwrites, truncation, insertion, 4-byte
//! fields set to extremes) and (b) synthetic frames: a valid header for every served
//! `(api, version)` followed by arbitrary bytes, and (c) record batches mutated with their
//! CRC recomputed, so the record parser is reached instead of the CRC check.
//!
//! The property: no panic and no abort, whatever the bytes. The global allocator is the
//! broker's, as in `klamm serve`, so a hostile array count behaves as in production.
//! Cases per property: `PROPTEST_CASES`, default 20,000 (about a second each in a release
//! build); a long run is
//! `PROPTEST_CASES=5000000 cargo nextest run --release -p klamm-broker --test fuzz_requests`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};
use klamm_broker::broker::Broker;
use klamm_broker::handlers::{self, registry, ConnectionInfo, Decoded};
use klamm_config::{Config, LoadOptions};
use klamm_protocol::batch::{self, ProduceLimits};
use klamm_protocol::frame;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

#[global_allocator]
static ALLOCATOR: klamm_broker::alloc::GuardedAlloc = klamm_broker::alloc::GuardedAlloc;

fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
        let mut frames: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/capture-corpus)", dir.display()))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        frames.sort();
        assert!(frames.len() >= 40, "corpus too small: {}", frames.len());
        frames
    })
}

/// An in-process broker on a temporary data dir, with small limits so that hostile
/// CreateTopics and Produce requests stay cheap; one per test process.
fn broker() -> &'static Arc<Broker> {
    static BROKER: OnceLock<(tempfile::TempDir, Arc<Broker>)> = OnceLock::new();
    &BROKER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let flags = [
                ("log.dirs", dir.path().display().to_string()),
                ("log.flush.policy", "never".into()),
                ("num.partitions", "1".into()),
                ("max.partitions", "300".into()),
                ("max.topics", "100".into()),
                ("offsets.topic.num.partitions", "2".into()),
                ("transaction.state.log.num.partitions", "2".into()),
            ];
            let (config, _) = Config::load(&LoadOptions {
                flags: flags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                ..LoadOptions::default()
            })
            .unwrap();
            let (broker, _flush_queue) = Broker::open(config).unwrap();
            (dir, broker)
        })
        .1
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A frame through the broker's own front half (`handlers::decode`), the batch checks on
/// any Produce payload it decodes, and then the whole of `handlers::dispatch` on a real
/// in-process broker: decoding, routing and each handler's synchronous part, where the
/// bytes meet the broker's state, on a blocking thread for the requests whose row says so
/// (the answer's future is dropped, as when a client disconnects). Returns whether the
/// frame decoded.
fn process(frame_bytes: &[u8]) -> bool {
    let frame = Bytes::copy_from_slice(frame_bytes);
    let Ok(decoded) = handlers::decode(frame.clone()) else {
        return false;
    };
    if let Decoded::Request {
        peek,
        request: RequestKind::Produce(p),
        ..
    } = &decoded
    {
        for topic in &p.topic_data {
            for part in &topic.partition_data {
                if let Some(records) = &part.records {
                    check_records(records, peek.api_version);
                }
            }
        }
    }
    let info = ConnectionInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        listener: "PLAINTEXT".into(),
    };
    let _ = runtime().block_on(handlers::dispatch(broker(), frame, &info));
    true
}

fn check_records(records: &[u8], produce_version: i16) {
    let limits = ProduceLimits {
        max_batch_bytes: 1 << 20,
        produce_version,
    };
    if batch::validate_produce(records, limits).is_ok() {
        // What the log, compaction and tests do with stored batches.
        let _ = batch::record_timestamps(records);
        let _ = batch::decode_key_values(records);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Overwrite(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// Sets 4 bytes to an extreme value: the shape of array counts and lengths.
    Extreme(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                0u32,
                1,
                0x7fff_ffff,
                0x8000_0000,
                0xffff_ffff,
                0xffff,
                0x0fff_ffff
            ])
        )
            .prop_map(|(i, v)| Mutation::Extreme(i, v)),
    ]
}

fn apply(frame_bytes: &mut Vec<u8>, m: &Mutation) {
    if frame_bytes.is_empty() {
        return;
    }
    let n = frame_bytes.len();
    match m {
        Mutation::FlipBit(i, b) => frame_bytes[i % n] ^= 1 << b,
        Mutation::Overwrite(i, v) => frame_bytes[i % n] = *v,
        Mutation::Truncate(i) => frame_bytes.truncate(i % n),
        Mutation::Insert(i, v) => {
            let at = i % n;
            frame_bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Extreme(i, v) => {
            let at = i % n;
            for (k, b) in v.to_be_bytes().iter().enumerate() {
                if let Some(slot) = frame_bytes.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
    }
}

/// Recomputes the CRC of every batch-shaped region so mutations of record contents reach
/// the record parser instead of stopping at the CRC check.
fn fix_crcs(records: &mut [u8]) {
    let mut pos = 0;
    while let Some(h) = batch::BatchHeader::parse(&records[pos..]) {
        let total = h.total_bytes();
        if h.batch_length < 49 || pos + total > records.len() {
            break;
        }
        let crc = batch::compute_crc(&records[pos..pos + total]);
        records[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos += total;
    }
}

fn served_pairs() -> Vec<(i16, i16)> {
    registry::ROWS
        .iter()
        .map(|r| r.support)
        .flat_map(|s| (s.min..=s.max).map(move |v| (s.api as i16, v)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_client_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut f = pick.get(corpus()).clone();
        for m in &mutations {
            apply(&mut f, m);
        }
        process(&f);
    }

    #[test]
    fn arbitrary_bodies_for_every_served_api_never_panic(
        pair in prop::sample::select(served_pairs()),
        client_id in prop::option::of("[a-z]{0,12}"),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let (api_key, version) = pair;
        let api = ApiKey::try_from(api_key).unwrap();
        let mut f = BytesMut::new();
        f.extend_from_slice(&api_key.to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&7i32.to_be_bytes());
        match &client_id {
            Some(id) => {
                f.extend_from_slice(&(id.len() as i16).to_be_bytes());
                f.extend_from_slice(id.as_bytes());
            }
            None => f.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        if api.request_header_version(version) >= 2 {
            f.extend_from_slice(&[0]); // no tagged fields
        }
        f.extend_from_slice(&body);
        process(&f);
    }

    #[test]
    fn mutated_record_batches_with_valid_crc_never_panic(
        value_bytes in 0usize..300,
        count in 1i32..20,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut b = batch::build_test_batch(count, value_bytes, 1_700_000_000_000);
        for m in &mutations {
            apply(&mut b, m);
        }
        fix_crcs(&mut b);
        check_records(&b, 9);
    }

    #[test]
    fn size_prefix_and_header_peek_never_panic(
        prefix in any::<[u8; 4]>(),
        max in 0usize..(1 << 30),
        head in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let _ = frame::request_size(prefix, max);
        let _ = frame::peek_header(&head);
    }
}

#[test]
fn every_corpus_frame_decodes_unmutated() {
    // The seed corpus itself must be valid: a capture that recorded garbage would make
    // the mutation tests start from the wrong place.
    let bad: Vec<usize> = corpus()
        .iter()
        .enumerate()
        .filter(|(_, f)| !process(f))
        .map(|(i, _)| i)
        .collect();
    assert!(bad.is_empty(), "corpus frames that do not decode: {bad:?}");
    // The handlers ran: the corpus's CreateTopics and Produce frames made topics.
    assert!(
        !broker().topics().is_empty(),
        "dispatch did not reach the handlers"
    );
}
