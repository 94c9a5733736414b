//! Which partition a keyed record lands on, computed without writing it: the same function the
//! producer's `partitioner` property selects in librdkafka. StreamLake's producers default to
//! `murmur2_random`, the Java client's placement (murmur2 of the key bytes, positive, modulo the
//! partition count), so a tenant that also produces from Java, Kafka Connect or Kafka Streams
//! keeps each key in one partition and its order with it.

/// A librdkafka `partitioner` whose placement of a keyed record is known in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// `murmur2` / `murmur2_random`: Java-compatible (the default).
    Murmur2,
    /// `consistent` / `consistent_random`: CRC32 of the key (librdkafka's own default).
    Crc32,
}

/// The partitioner StreamLake's producers use unless `[kafka.producer] partitioner` says
/// otherwise.
pub const DEFAULT_PARTITIONER: &str = "murmur2_random";

impl Partitioner {
    /// The partitioner a librdkafka `partitioner` value names; `None` for `random` (whose
    /// placement is not a function of the key) and for the ones without a preview here
    /// (`fnv1a`).
    pub fn from_property(name: &str) -> Option<Self> {
        match name {
            "murmur2" | "murmur2_random" => Some(Self::Murmur2),
            "consistent" | "consistent_random" => Some(Self::Crc32),
            _ => None,
        }
    }

    /// The partition of `partitions` (at least 1) that a record with `key` lands on.
    pub fn partition(self, key: &[u8], partitions: i32) -> i32 {
        let partitions = partitions.max(1);
        match self {
            // As Java's `Utils.toPositive(Utils.murmur2(key)) % partitions`.
            Self::Murmur2 => {
                let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
                (hash % partitions as u32) as i32
            }
            Self::Crc32 => (crc32fast::hash(key) % partitions as u32) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients_placement() {
        // Placements printed by Kafka 4.4.0's BuiltInPartitioner.partitionForKey for 6
        // partitions (the integration test compares many more keys against Java itself).
        for (key, partition) in [("a", 4), ("107", 3), ("sensor-1", 1)] {
            assert_eq!(
                Partitioner::Murmur2.partition(key.as_bytes(), 6),
                partition,
                "{key}"
            );
        }
    }

    #[test]
    fn partitioner_names_are_librdkafkas() {
        assert_eq!(
            Partitioner::from_property(DEFAULT_PARTITIONER),
            Some(Partitioner::Murmur2)
        );
        assert_eq!(
            Partitioner::from_property("consistent_random"),
            Some(Partitioner::Crc32)
        );
        assert_eq!(Partitioner::from_property("random"), None);
    }
}
