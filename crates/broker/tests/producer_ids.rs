//! Producer ids come from blocks reserved in the metadata image: one image write per
//! block, never an id twice — not after a crash that skipped the rest of a block either.

use klamm_broker::broker::Broker;
use klamm_broker::state::PRODUCER_ID_BLOCK_SIZE;
use klamm_config::{Config, LoadOptions};
use std::path::Path;

fn open(dir: &Path) -> std::sync::Arc<Broker> {
    let (config, _) = Config::load(&LoadOptions {
        flags: vec![("log.dirs".into(), dir.display().to_string())],
        ..LoadOptions::default()
    })
    .unwrap();
    Broker::open(config).unwrap().0
}

fn persisted_next_id(dir: &Path) -> i64 {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("klamm-metadata.json")).unwrap()).unwrap();
    json["next_producer_id"].as_i64().unwrap()
}

#[test]
fn ids_come_in_persisted_blocks_and_never_repeat_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let first: Vec<i64> = (0..PRODUCER_ID_BLOCK_SIZE + 5)
        .map(|_| broker.allocate_producer_id().unwrap())
        .collect();
    assert_eq!(first, (0..PRODUCER_ID_BLOCK_SIZE + 5).collect::<Vec<_>>());
    // Two blocks reserved, each persisted before its first id was handed out.
    assert_eq!(persisted_next_id(dir.path()), 2 * PRODUCER_ID_BLOCK_SIZE);
    // A crash (no shutdown): the rest of the second block is skipped, never reused.
    drop(broker);
    let broker = open(dir.path());
    assert_eq!(
        broker.allocate_producer_id().unwrap(),
        2 * PRODUCER_ID_BLOCK_SIZE
    );
    assert_eq!(persisted_next_id(dir.path()), 3 * PRODUCER_ID_BLOCK_SIZE);
}
