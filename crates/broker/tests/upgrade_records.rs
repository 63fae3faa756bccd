//! A single-node data dir moves into the cluster's metadata log with nothing lost: the
//! metadata image written by the release before cluster mode (fixture from commit 37382af:
//! two topics with ids and overrides, a dynamic cluster-wide config, a producer-id block)
//! becomes records that build a cluster image holding all of it.

use klamm_broker::metadata::MetadataStore;
use klamm_cluster::{ConfigResource, Image};
use std::path::Path;
use uuid::Uuid;

#[test]
fn a_single_node_image_becomes_metadata_records_with_nothing_lost() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/single-node-37382af");
    let old = MetadataStore::new(&dir).load_existing().unwrap();
    assert_eq!(old.changes, 0, "the old format has no change count");

    let records = old.to_cluster_records(1).unwrap();
    let mut image = Image::default();
    for r in &records {
        image.apply(r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }

    let orders = image.topic_by_name("orders").unwrap();
    assert_eq!(
        orders.id,
        Uuid::parse_str("10df7143-3bfb-4f41-93e9-c74b6d5645cf").unwrap()
    );
    assert_eq!(orders.partitions.len(), 3);
    for p in orders.partitions.values() {
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1], vec![1], 1)
        );
    }
    assert_eq!(image.topic_by_name("payments").unwrap().partitions.len(), 1);
    let overrides = &image.configs[&ConfigResource::Topic("orders".into())];
    assert_eq!(overrides["cleanup.policy"], "compact");
    assert_eq!(overrides["retention.ms"], "86400000");
    assert!(!image
        .configs
        .contains_key(&ConfigResource::Topic("payments".into())));
    assert_eq!(
        image.configs[&ConfigResource::Broker(None)]["log.retention.ms"],
        "604800000"
    );
    assert_eq!(image.next_producer_id, 1000);
}

#[test]
fn a_broker_config_key_that_is_no_node_id_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/single-node-37382af");
    let mut old = MetadataStore::new(&dir).load_existing().unwrap();
    old.broker_configs.insert(
        "broker-one".into(),
        [("a".to_string(), "b".to_string())].into(),
    );
    let err = old.to_cluster_records(1).unwrap_err();
    assert!(err.contains("broker-one"), "{err}");
}
