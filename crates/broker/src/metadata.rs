//! Cluster metadata that must survive restarts: the cluster id and, per topic, its id,
//! partition count and config overrides.
//!
//! Single-node form of the metadata log: one JSON document, `klamm-metadata.json` at the
//! root of the data dir, replaced atomically (write a temp file, fsync, rename, fsync the
//! directory) on every change. Kafka's own files are written beside it so operators recognise
//! the layout: `meta.properties` at the root and `partition.metadata` (topic id) in each
//! partition directory.

use klamm_cluster::{ConfigResource, MetadataRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

const METADATA_FILE: &str = "klamm-metadata.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides, validated and normalized.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    pub version: u32,
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicRecord>,
    /// The next idempotent-producer id to hand out (ids are never reused).
    #[serde(default)]
    pub next_producer_id: i64,
    /// Dynamic broker configs (AlterConfigs on a broker resource), normalized: key `""` is
    /// the cluster-wide default, a node id that broker's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Changes saved since the data dir was made: the offset a metadata log would have
    /// reached, which DescribeQuorum reports until the cluster's Raft log replaces it.
    #[serde(default)]
    pub changes: i64,
}

impl MetadataImage {
    /// This image as records of the cluster's metadata log, for the move of a single-node
    /// data dir into it (issue 18): every topic with its id, its partitions on `node_id`
    /// alone (leader and only replica, at `partition::LEADER_EPOCH`), its config
    /// overrides, the dynamic broker configs (key `""` the cluster default, a node id that
    /// broker's own) and the producer ids handed out. Registering the broker is not part of
    /// the image: a broker registers itself each time it starts.
    pub fn to_cluster_records(&self, node_id: i32) -> Result<Vec<MetadataRecord>, String> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            for partition_id in 0..t.partitions {
                out.push(MetadataRecord::Partition {
                    topic_id: t.id,
                    partition_id,
                    replicas: vec![node_id],
                    isr: vec![node_id],
                    leader: node_id,
                    leader_epoch: crate::partition::LEADER_EPOCH,
                    partition_epoch: 0,
                });
            }
            for (name, value) in &t.configs {
                out.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(t.name.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (key, values) in &self.broker_configs {
            let broker = match key.as_str() {
                "" => None,
                id => Some(id.parse::<i32>().map_err(|_| {
                    format!("broker_configs key {id:?} is neither \"\" nor a node id")
                })?),
            };
            for (name, value) in values {
                out.push(MetadataRecord::Config {
                    resource: ConfigResource::Broker(broker),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: node_id,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        Ok(out)
    }
}

/// Reads and writes the metadata image of one data dir.
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    pub fn new(dir: &Path) -> MetadataStore {
        MetadataStore {
            dir: dir.to_path_buf(),
        }
    }

    /// Loads the image, or creates a fresh one (new cluster id) for an empty data dir.
    pub fn load_or_init(&self, node_id: i32) -> io::Result<MetadataImage> {
        fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(METADATA_FILE);
        let image = match fs::read(&path) {
            Ok(bytes) => parse_image(&path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut image = MetadataImage {
                    version: FORMAT_VERSION,
                    cluster_id: kafka_base64(Uuid::new_v4()),
                    topics: BTreeMap::new(),
                    next_producer_id: 0,
                    broker_configs: BTreeMap::new(),
                    changes: 0,
                };
                self.save(&mut image)?;
                image
            }
            Err(e) => return Err(e),
        };
        let props = format!(
            "#Written by klamm\nversion=1\ncluster.id={}\nnode.id={node_id}\n",
            image.cluster_id
        );
        write_atomic(&self.dir, "meta.properties", props.as_bytes())?;
        Ok(image)
    }

    /// Loads the image of an existing data dir, for offline tools: nothing is created or
    /// rewritten, and a dir without one is an error.
    pub fn load_existing(&self) -> io::Result<MetadataImage> {
        let path = self.dir.join(METADATA_FILE);
        let bytes = fs::read(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
        })?;
        parse_image(&path, &bytes)
    }

    /// Saves `image` as one more change; on failure it is left as it was.
    pub fn save(&self, image: &mut MetadataImage) -> io::Result<()> {
        image.changes += 1;
        let saved = serde_json::to_vec_pretty(image)
            .map_err(io::Error::other)
            .and_then(|json| write_atomic(&self.dir, METADATA_FILE, &json));
        if saved.is_err() {
            image.changes -= 1;
        }
        saved
    }
}

/// Writes `name` in `dir` so that a crash leaves either the old or the new content.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    crate::crash_point::reached(&format!("{name}.tmp_written"));
    fs::rename(&tmp, dir.join(name))?;
    crate::crash_point::reached(&format!("{name}.renamed"));
    klamm_log::sync_dir(dir)
}

/// The image in `bytes` (read from `path`), refused if it is not JSON of this format version.
fn parse_image(path: &Path, bytes: &[u8]) -> io::Result<MetadataImage> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let image: MetadataImage = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("{} is not valid metadata: {e}", path.display())))?;
    if image.version != FORMAT_VERSION {
        return Err(invalid(format!(
            "{} has format version {}, this klamm reads {FORMAT_VERSION}",
            path.display(),
            image.version
        )));
    }
    Ok(image)
}

/// Kafka prints UUIDs (cluster and topic ids) as URL-safe base64 without padding.
pub fn kafka_base64(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    out
}

/// Writes Kafka's `partition.metadata` (the topic id) and `leader-epoch-checkpoint` into a
/// partition directory when they are missing. Not fsync'd: both are derived from the
/// metadata image (which is), and every start rewrites them if a crash lost them.
pub fn write_partition_metadata(
    partition_dir: &Path,
    topic_id: Uuid,
    fresh: bool,
) -> io::Result<()> {
    let files: [(&str, String); 2] = [
        (
            "partition.metadata",
            format!("version: 0\ntopic_id: {}\n", kafka_base64(topic_id)),
        ),
        // Single node: leader epoch 0 from offset 0, in Kafka's checkpoint format.
        ("leader-epoch-checkpoint", "0\n1\n0 0\n".to_string()),
    ];
    for (name, body) in files {
        let path = partition_dir.join(name);
        if fresh || fs::read(&path).ok().as_deref() != Some(body.as_bytes()) {
            fs::write(path, body)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_kafka() {
        // Kafka prints the all-zero uuid as AAAAAAAAAAAAAAAAAAAAAA.
        assert_eq!(kafka_base64(Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = Uuid::from_u128(0xffff_ffff_ffff_ffff_ffff_ffff_ffff_ffff);
        assert_eq!(kafka_base64(id), "_____________________w");
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(dir.path());
        let mut image = store.load_or_init(1).unwrap();
        image.topics.insert(
            "t".into(),
            TopicRecord {
                name: "t".into(),
                id: Uuid::new_v4(),
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
        );
        store.save(&mut image).unwrap();
        // One change for the fresh image, one for the topic.
        assert_eq!(image.changes, 2);
        assert_eq!(store.load_or_init(1).unwrap(), image);
        assert!(dir.path().join("meta.properties").exists());
    }
}
