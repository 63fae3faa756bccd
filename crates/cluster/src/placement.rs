//! Where a new partition's replicas go.
//!
//! The live (unfenced) brokers are ordered so that racks alternate — rack by rack in name
//! order, each rack's brokers by id, taking one from each rack in turn — and partition `p`
//! gets the `replication_factor` brokers that follow position `start + p` in that order.
//! So leaders (each partition's first replica) are spread evenly over the brokers, and
//! when there are at least `replication_factor` racks of equal size no two replicas of a
//! partition share a rack. Brokers without `broker.rack` count as one rack. `start` is the
//! caller's (Kafka starts at a random broker so that small topics do not all lead on the
//! same one).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka's INVALID_REPLICATION_FACTOR.
    #[error("replication factor {replication_factor} is larger than the {live} live brokers")]
    NotEnoughBrokers {
        replication_factor: i16,
        live: usize,
    },
    #[error("replication factor must be at least 1, not {0}")]
    InvalidReplicationFactor(i16),
    /// Kafka's INVALID_PARTITIONS.
    #[error("the number of partitions must be at least 1, not {0}")]
    InvalidPartitionCount(i32),
}

/// The replicas of `partitions` new partitions, leader first.
pub fn place(
    brokers: &[BrokerInfo],
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if partitions < 1 {
        return Err(PlacementError::InvalidPartitionCount(partitions));
    }
    if replication_factor < 1 {
        return Err(PlacementError::InvalidReplicationFactor(replication_factor));
    }
    let order = rack_alternating(brokers);
    let n = order.len();
    let rf = replication_factor as usize;
    if rf > n {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            live: n,
        });
    }
    Ok((0..partitions as usize)
        .map(|p| (0..rf).map(|j| order[(start + p + j) % n]).collect())
        .collect())
}

/// The live brokers' ids, racks alternating.
fn rack_alternating(brokers: &[BrokerInfo]) -> Vec<i32> {
    let mut racks: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers.iter().filter(|b| !b.fenced) {
        racks.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    for ids in racks.values_mut() {
        ids.sort_unstable();
        ids.dedup();
    }
    let longest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn broker(id: i32, rack: Option<&str>) -> BrokerInfo {
        BrokerInfo {
            id,
            rack: rack.map(str::to_string),
            fenced: false,
        }
    }

    #[test]
    fn leaders_spread_and_replicas_are_distinct() {
        let brokers: Vec<_> = (1..=5).map(|id| broker(id, None)).collect();
        let placed = place(&brokers, 10, 3, 2).unwrap();
        let mut leaders = BTreeMap::new();
        for replicas in &placed {
            assert_eq!(replicas.len(), 3);
            assert_eq!(
                replicas.iter().collect::<BTreeSet<_>>().len(),
                3,
                "{replicas:?}"
            );
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 5]);
        // `start` picks the first leader.
        assert_eq!(placed[0][0], 3);
    }

    #[test]
    fn no_two_replicas_share_a_rack_when_racks_allow() {
        let brokers = vec![
            broker(1, Some("a")),
            broker(2, Some("a")),
            broker(3, Some("b")),
            broker(4, Some("b")),
            broker(5, Some("c")),
            broker(6, Some("c")),
        ];
        let rack = |id: i32| brokers.iter().find(|b| b.id == id).unwrap().rack.clone();
        for start in 0..6 {
            for replicas in place(&brokers, 12, 3, start).unwrap() {
                let racks: BTreeSet<_> = replicas.iter().map(|&id| rack(id)).collect();
                assert_eq!(racks.len(), 3, "start {start}: {replicas:?}");
            }
        }
    }

    #[test]
    fn fenced_brokers_get_nothing_and_limits_are_named() {
        let mut brokers: Vec<_> = (1..=3).map(|id| broker(id, None)).collect();
        brokers[1].fenced = true;
        let placed = place(&brokers, 4, 2, 0).unwrap();
        assert!(placed.iter().flatten().all(|&id| id != 2), "{placed:?}");
        assert_eq!(
            place(&brokers, 1, 3, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                live: 2
            })
        );
        assert_eq!(
            place(&brokers, 0, 1, 0),
            Err(PlacementError::InvalidPartitionCount(0))
        );
        assert_eq!(
            place(&brokers, 1, 0, 0),
            Err(PlacementError::InvalidReplicationFactor(0))
        );
        // One node: every partition on it.
        assert_eq!(
            place(&[broker(7, None)], 3, 1, 5).unwrap(),
            vec![vec![7], vec![7], vec![7]]
        );
    }
}
