//! Where a tenant's events live: every event of a tenant goes to one partition of the events
//! topic, its shard, so that every rule spanning invites is decided in one place (see
//! `docs/writer-shards.md`). The partition is Kafka's own default for a record keyed by the
//! tenant id (Java-compatible murmur2), so any client in any language computes the same one.

use crate::ids::TenantId;

/// The partition of a topic of `partitions` partitions that holds `tenant`'s events.
pub fn shard_of(tenant: TenantId, partitions: usize) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    partition_of_key(tenant.to_string().as_bytes(), partitions)
}

/// The partition Kafka's default partitioner gives a record key: positive murmur2 modulo the
/// partition count, as `org.apache.kafka.common.utils.Utils.toPositive(murmur2(key)) % n`.
pub fn partition_of_key(key: &[u8], partitions: usize) -> i32 {
    ((murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff) % partitions as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`: the writer places a tenant where a
    /// Java producer keyed by the tenant id would.
    #[test]
    fn the_hash_is_kafkas_murmur2() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, java) in cases {
            assert_eq!(murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32, java, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn a_tenant_has_one_shard_in_range_and_tenants_spread_over_all() {
        let mut seen = [0usize; 12];
        for _ in 0..1200 {
            let tenant = TenantId::from_uuid(uuid::Uuid::new_v4());
            let p = shard_of(tenant, 12);
            assert_eq!(p, shard_of(tenant, 12));
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{seen:?}");
    }
}
