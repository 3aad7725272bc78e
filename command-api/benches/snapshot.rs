//! Where the time of opening one shard's snapshot goes, without Kafka or PostgreSQL: folds N
//! invites (default 833,000: one shard of 10,000,000 events over 12 partitions) of T tenants
//! (default 83) into a writer's state, takes the snapshot of their shard as a writer does
//! (encode, compress, seal), then opens it as a take-over does, timing each step.
//!
//!   cargo bench -p command-api --bench snapshot -- [N] [--tenants=T] [--runs=R]

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: usize = 12;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(833_000);
    let arg = |name: &str, default: usize| {
        args.iter().find_map(|a| a.strip_prefix(name).and_then(|t| t.parse().ok())).unwrap_or(default)
    };
    let (tenants, runs) = (arg("--tenants=", 83), arg("--runs=", 3));
    let shard: Vec<events::TenantId> = std::iter::repeat_with(|| events::TenantId::from_uuid(uuid::Uuid::now_v7()))
        .filter(|t| events::shard_of(*t, PARTITIONS) == 0)
        .take(tenants)
        .collect();
    let at = chrono::Utc::now();
    let started = Instant::now();
    let mut state = command_api::state::WriterState::default();
    let mut chains = command_api::chains::Chains::default();
    for i in 0..n {
        let envelope = rsvp_tests::load::created_envelope(shard[i % shard.len()], at, i);
        chains.link(&envelope.meta, envelope.data_json().as_slice());
        state.apply_owned(envelope);
    }
    state.chains = chains;
    eprintln!("folded {n} invites of {tenants} tenants in {:.2?}", started.elapsed());
    let master = service_kit::vault::MasterKey::new("bench-master-key-bench-master-key-0123")?;
    let t = Instant::now();
    let encoded = command_api::snapshot::encode(&state, 0, PARTITIONS).expect("the shard has tenants");
    let encoding = t.elapsed();
    let t = Instant::now();
    let compressed = command_api::snapshot::compress(&encoded);
    let compressing = t.elapsed();
    let covered = command_api::snapshot::Covered { offset: n as i64, event_id: uuid::Uuid::now_v7() };
    let stored = command_api::snapshot::seal(&master, "bench", PARTITIONS, 0, covered, &compressed);
    eprintln!(
        "encoded {} bytes in {encoding:.2?} (on the writer thread), compressed to {} in {compressing:.2?}",
        encoded.len(),
        compressed.len()
    );
    drop((state, encoded, compressed));
    for run in 1..=runs {
        // One core, as before segments: open, decode, restore, one after the other.
        let t = Instant::now();
        let opened = command_api::snapshot::open(&master, &stored)?;
        let mut restored = command_api::state::WriterState::default();
        let mut buffer = Vec::new();
        for segment in command_api::snapshot::segments(&opened)? {
            command_api::snapshot::restore(&mut restored, command_api::snapshot::decode(&segment, &mut buffer)?);
        }
        let one_core = t.elapsed();
        assert_eq!(restored.tenants.len(), tenants);
        drop((restored, buffer));
        // As a take-over does it: the segments on every core.
        let t = Instant::now();
        let (restored, _) = command_api::rebuild::restored_state(&master, std::slice::from_ref(&stored))?;
        let every_core = t.elapsed();
        assert_eq!(restored.tenants.len(), tenants);
        let t = Instant::now();
        drop(restored);
        eprintln!(
            "run {run}: opened on one core in {one_core:.2?}, on every core in {every_core:.2?}; freed in {:.2?}",
            t.elapsed()
        );
    }
    Ok(())
}
