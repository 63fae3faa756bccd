use super::*;
use proptest::prelude::*;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn register(broker_id: i32, broker_epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id: id(1000 + broker_id as u128),
        broker_epoch,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + broker_id as u16,
        }],
        rack: None,
        fenced: true,
    }
}

fn unfence(broker_id: i32, broker_epoch: i64) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange {
        broker_id,
        broker_epoch,
        fenced: Some(false),
        in_controlled_shutdown: None,
    }
}

fn partition(topic: Uuid, partition_id: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id: topic,
        partition_id,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas[0],
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn change(
    topic: Uuid,
    partition_id: i32,
    leader: Option<i32>,
    isr: Option<&[i32]>,
) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id: topic,
        partition_id,
        leader,
        isr: isr.map(<[i32]>::to_vec),
        replicas: None,
    }
}

fn build(records: &[MetadataRecord]) -> Image {
    let mut image = Image::default();
    for r in records {
        image.apply(r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
    image
}

#[test]
fn a_cluster_history_builds_the_expected_image() {
    let t = id(1);
    let image = build(&[
        register(1, 10),
        register(2, 11),
        register(3, 12),
        unfence(1, 10),
        unfence(2, 11),
        MetadataRecord::Topic {
            name: "orders".into(),
            topic_id: t,
        },
        partition(t, 0, &[1, 2, 3]),
        partition(t, 1, &[2, 3, 1]),
        // Broker 1 is lost: partition 0's ISR shrinks and leadership moves.
        change(t, 0, Some(2), Some(&[2, 3])),
        // An ISR change alone bumps the partition epoch, not the leader epoch.
        change(t, 1, None, Some(&[2, 3])),
        MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        },
        MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 10,
            next_producer_id: 1000,
        },
        register(1, 20),
    ]);
    let p0 = &image.topic_by_name("orders").unwrap().partitions[&0];
    assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (2, 1, 1));
    assert_eq!(p0.isr, vec![2, 3]);
    let p1 = &image.topics[&t].partitions[&1];
    assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (2, 0, 1));
    assert!(!image.brokers[&2].fenced && image.brokers[&3].fenced);
    // A re-registration is a new incarnation: a new epoch, fenced until it catches up.
    assert_eq!(image.brokers[&1].broker_epoch, 20);
    assert!(image.brokers[&1].fenced);
    assert_eq!(image.next_producer_id, 1000);
    assert_eq!(
        image.configs[&ConfigResource::Topic("orders".into())]["retention.ms"],
        "1000"
    );

    let mut removed = image.clone();
    removed
        .apply(&MetadataRecord::RemoveTopic { topic_id: t })
        .unwrap();
    assert!(removed.topic_by_name("orders").is_none());
    assert!(
        removed.configs.is_empty(),
        "a removed topic's configs go with it"
    );
    assert_eq!(build(&image.to_records()), image, "snapshot round trip");
}

#[test]
fn a_record_the_image_cannot_apply_is_refused_and_changes_nothing() {
    let t = id(1);
    let image = build(&[
        register(1, 5),
        MetadataRecord::Topic {
            name: "a".into(),
            topic_id: t,
        },
        partition(t, 0, &[1]),
    ]);
    let refused: Vec<(MetadataRecord, ApplyError)> = vec![
        (
            register(1, 5),
            ApplyError::BrokerEpochNotNewer {
                broker_id: 1,
                current: 5,
                got: 5,
            },
        ),
        (
            unfence(1, 4),
            ApplyError::StaleBrokerEpoch {
                broker_id: 1,
                current: 5,
                got: 4,
            },
        ),
        (unfence(9, 1), ApplyError::UnknownBroker(9)),
        (
            MetadataRecord::Topic {
                name: "a".into(),
                topic_id: id(2),
            },
            ApplyError::TopicNameTaken("a".into()),
        ),
        (
            MetadataRecord::Topic {
                name: "b".into(),
                topic_id: t,
            },
            ApplyError::TopicIdTaken(t),
        ),
        (partition(id(2), 0, &[1]), ApplyError::UnknownTopicId(id(2))),
        (
            partition(t, 0, &[1]),
            ApplyError::PartitionExists {
                topic_id: t,
                partition_id: 0,
            },
        ),
        (
            partition(t, 2, &[1]),
            ApplyError::PartitionGap {
                topic_id: t,
                partition_id: 2,
                expected: 1,
            },
        ),
        (
            change(t, 5, Some(1), None),
            ApplyError::UnknownPartition {
                topic_id: t,
                partition_id: 5,
            },
        ),
        (
            MetadataRecord::Config {
                resource: ConfigResource::Topic("missing".into()),
                name: "retention.ms".into(),
                value: Some("1".into()),
            },
            ApplyError::UnknownTopicName("missing".into()),
        ),
        (
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 5,
                next_producer_id: -5,
            },
            ApplyError::ProducerIdsBackwards {
                current: 0,
                got: -5,
            },
        ),
        (
            MetadataRecord::RemoveTopic { topic_id: id(3) },
            ApplyError::UnknownTopicId(id(3)),
        ),
    ];
    for (record, error) in refused {
        let mut after = image.clone();
        assert_eq!(after.apply(&record), Err(error), "{record:?}");
        assert_eq!(after, image, "a refused {record:?} changed the image");
    }
    // Assignments that break the partition invariants.
    for (replicas, isr, leader) in [
        (vec![], vec![], NO_LEADER),
        (vec![1, 1], vec![1], 1),
        (vec![1, 2], vec![3], NO_LEADER),
        (vec![1, 2], vec![1], 2),
    ] {
        let mut after = image.clone();
        let r = MetadataRecord::PartitionChange {
            topic_id: t,
            partition_id: 0,
            leader: Some(leader),
            isr: Some(isr),
            replicas: Some(replicas),
        };
        assert!(
            matches!(after.apply(&r), Err(ApplyError::InvalidAssignment { .. })),
            "{r:?}"
        );
        assert_eq!(after, image);
    }
}

#[test]
fn records_survive_serialization() {
    let t = id(7);
    let records = vec![
        register(1, 3),
        MetadataRecord::Topic {
            name: "x".into(),
            topic_id: t,
        },
        partition(t, 0, &[1]),
        MetadataRecord::Config {
            resource: ConfigResource::Broker(None),
            name: "log.retention.ms".into(),
            value: None,
        },
        MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level: 21,
        },
    ];
    let json = serde_json::to_string(&records).unwrap();
    let back: Vec<MetadataRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, records);
}

/// Records over a small domain (3 brokers, 3 topic ids and names, 3 partitions), most of
/// them refused: the property is about what refusals and snapshots do, whatever the mix.
fn any_record() -> impl Strategy<Value = MetadataRecord> {
    let broker = 1..4i32;
    let topic = (1..4u128).prop_map(id);
    let name = prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_string);
    let replicas = prop::collection::vec(1..4i32, 1..4);
    prop_oneof![
        (broker.clone(), 0..4i64).prop_map(|(b, e)| register(b, e)),
        (
            broker.clone(),
            0..4i64,
            any::<Option<bool>>(),
            any::<Option<bool>>()
        )
            .prop_map(
                |(broker_id, broker_epoch, fenced, in_controlled_shutdown)| {
                    MetadataRecord::BrokerRegistrationChange {
                        broker_id,
                        broker_epoch,
                        fenced,
                        in_controlled_shutdown,
                    }
                }
            ),
        (broker.clone(), 0..4i64).prop_map(|(broker_id, broker_epoch)| {
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            }
        }),
        (name.clone(), topic.clone())
            .prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
        (topic.clone(), 0..3i32, replicas.clone()).prop_map(|(t, p, r)| partition(t, p, &r)),
        (
            topic.clone(),
            0..3i32,
            prop::option::of(-1..4i32),
            prop::option::of(replicas.clone())
        )
            .prop_map(|(t, p, leader, isr)| MetadataRecord::PartitionChange {
                topic_id: t,
                partition_id: p,
                leader,
                isr,
                replicas: None,
            }),
        topic
            .clone()
            .prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
        (name, prop::option::of("[0-9]{1,3}")).prop_map(|(n, value)| MetadataRecord::Config {
            resource: ConfigResource::Topic(n),
            name: "retention.ms".into(),
            value,
        }),
        (0..3000i64).prop_map(|next_producer_id| MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 0,
            next_producer_id,
        }),
    ]
}

proptest! {
    #[test]
    fn refusals_change_nothing_and_a_snapshot_rebuilds_the_image(
        records in prop::collection::vec(any_record(), 0..60),
    ) {
        let mut image = Image::default();
        for r in &records {
            let before = image.clone();
            if image.apply(r).is_err() {
                prop_assert_eq!(&image, &before);
            }
        }
        prop_assert_eq!(build(&image.to_records()), image);
    }
}
