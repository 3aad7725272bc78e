//! How events change the read models. Every change of one batch, and the positions after it,
//! commit together or not at all.
//!
//! The read models enforce only what holds under any interleaving of partitions. Each stream's
//! events come in order (one partition, consecutive versions), but the order in which two
//! partitions are read is the projector's accident, not the writer's decision: a live projector
//! restarting on a backlog, a replay, a rebuild each read them differently. So every row depends on
//! its own stream alone (the version guard and the history row are per stream), and no constraint
//! or statement may depend on the relative order of two streams. A uniqueness that spans streams
//! (a definition's handle per tenant) is the writer's to decide, which it does
//! (`events::Tenant`); as a read-model constraint it would refuse, in some order, what the writer
//! rightly accepted. Counters that several streams add to are sums, which commute. `projector
//! verify --partition-order` checks it on any log.

use crate::consumer::Positioned;
use anyhow::Context;
use events::{DefinitionEvent, DefinitionRules, DomainEvent, EventMeta, InviteEvent};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Serializes projection batches with a rebuild's swap: every batch holds it shared, the swap
/// exclusively, so no batch straddles the moment the read-model schemas change places.
pub const SWAP_LOCK: i64 = 0x7273_7670_7377_6170; // "rsvpswap"

/// The read models refuse an event on its own merits: the previous version of its stream is not
/// there, or a row breaks a constraint. Retrying cannot help, so such an event is parked.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether a failed batch says something about its events ([`Refused`], or PostgreSQL rejecting
/// the data: SQLSTATE classes 22 and 23) rather than about the database (a restart, a dropped
/// connection, a full pool), which is a passing fault to wait out, never a reason to park.
pub fn is_refusal(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<Refused>()
            || matches!(cause.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db))
                if db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")))
    })
}

/// Time spent applying, by event type: each statement's time shared among the event types of
/// the events it wrote, in proportion to their number (so the shares add up to the whole).
#[derive(Debug, Default)]
pub struct Costs(pub BTreeMap<&'static str, (u64, Duration)>);

impl Costs {
    /// Charges `spent` to `types` (one entry per event the statement covered).
    fn charge(&mut self, types: impl IntoIterator<Item = &'static str>, spent: Duration) {
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for t in types {
            *counts.entry(t).or_default() += 1;
        }
        let total: u64 = counts.values().sum();
        for (t, n) in counts {
            self.0.entry(t).or_default().1 += spent.mul_f64(n as f64 / total as f64);
        }
    }

    fn count(&mut self, event_type: &'static str) {
        self.0.entry(event_type).or_default().0 += 1;
    }
}

/// Applies a batch and stores the positions after it (`next`: partition → next offset to read);
/// returns how many events changed something (the rest had been applied before).
pub async fn apply_batch(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    batch: &[Positioned],
    next: &BTreeMap<i32, i64>,
) -> anyhow::Result<usize> {
    apply_batch_costed(pool, consumer, topic, batch, next, &mut Costs::default()).await
}

/// [`apply_batch`], adding to `costs` what the batch's event types cost.
pub async fn apply_batch_costed(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    batch: &[Positioned],
    next: &BTreeMap<i32, i64>,
    costs: &mut Costs,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await.context("cannot begin a projection transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)").bind(SWAP_LOCK).execute(&mut *tx).await?;
    let applied = apply_costed(&mut tx, consumer, topic, batch, next, costs).await?;
    tx.commit().await.context("cannot commit a projection transaction")?;
    Ok(applied)
}

/// [`apply_batch`] inside a transaction the caller owns.
pub async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    topic: &str,
    batch: &[Positioned],
    next: &BTreeMap<i32, i64>,
) -> anyhow::Result<usize> {
    apply_costed(tx, consumer, topic, batch, next, &mut Costs::default()).await
}

async fn apply_costed(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    topic: &str,
    batch: &[Positioned],
    next: &BTreeMap<i32, i64>,
    costs: &mut Costs,
) -> anyhow::Result<usize> {
    // Set-based throughout: the history of the whole batch in one statement, the creations in a
    // few, then the changes to existing invites in rounds of one event per invite (an invite's
    // first change of the batch in the first round, its second in the second...), a few
    // statements each. A batch from a live log has most invites once, so one or two rounds.
    let started = Instant::now();
    let mut fresh = crate::bulk::record_history(tx, batch).await?;
    costs.charge(batch.iter().map(|p| p.envelope.event_type()), started.elapsed());
    let mut applied = 0;
    let mut creations = Vec::new();
    let mut rounds: Vec<Vec<(&EventMeta, &InviteEvent, &'static str)>> = Vec::new();
    let mut changes_so_far: HashMap<Uuid, usize> = HashMap::new();
    let mut definitions = Vec::new();
    for p in batch {
        // The history row is the guard: a (stream, version) seen before changes nothing.
        if !fresh.remove(&(*p.envelope.meta.stream.as_uuid(), p.envelope.meta.version as i64)) {
            continue;
        }
        applied += 1;
        costs.count(p.envelope.event_type());
        match p.envelope.invite_event() {
            Some((_, InviteEvent::Created(c))) => creations.push((&p.envelope.meta, c.as_ref())),
            Some((id, event)) => {
                let round = changes_so_far.entry(*id.as_uuid()).or_default();
                if rounds.len() == *round {
                    rounds.push(Vec::new());
                }
                rounds[*round].push((&p.envelope.meta, event, p.envelope.event_type()));
                *round += 1;
            }
            None => definitions.push(p),
        }
    }
    let started = Instant::now();
    crate::bulk::insert_created(tx, &creations).await?;
    costs.charge(creations.iter().map(|_| "InviteCreated"), started.elapsed());
    for round in &rounds {
        let started = Instant::now();
        let changes: Vec<_> = round.iter().map(|&(m, e, _)| (m, e)).collect();
        crate::bulk::update_invites(tx, &changes).await?;
        costs.charge(round.iter().map(|&(_, _, t)| t), started.elapsed());
    }
    for p in definitions {
        let started = Instant::now();
        apply_definition(tx, p).await?;
        costs.charge([p.envelope.event_type()], started.elapsed());
    }
    if !next.is_empty() {
        let (partitions, offsets): (Vec<i32>, Vec<i64>) = next.iter().map(|(&p, &o)| (p, o)).unzip();
        sqlx::query(
            "INSERT INTO projector_offsets (consumer, topic, partition, next_offset) \
             SELECT $1, $2, * FROM UNNEST($3::int4[], $4::int8[]) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
        )
        .bind(consumer)
        .bind(topic)
        .bind(&partitions)
        .bind(&offsets)
        .execute(&mut **tx)
        .await
        .context("cannot store the projector positions")?;
    }
    Ok(applied)
}

async fn apply_definition(tx: &mut Transaction<'_, Postgres>, p: &Positioned) -> anyhow::Result<()> {
    let (e, m) = (&p.envelope, &p.envelope.meta);
    let DomainEvent::Definition(DefinitionEvent::Created(r) | DefinitionEvent::Updated(r)) = &e.event else {
        unreachable!("invite events go through the bulk path")
    };
    definition(tx, m, r).await.with_context(|| format!("cannot project {}", e.event_type()))
}

/// A definition's row: its first version creates it, each later one needs the one before (the
/// version guard, as for invites), so a parked event freezes the stream until it is re-driven,
/// rather than letting a later version through that a re-driven earlier one would then undo.
async fn definition(tx: &mut Transaction<'_, Postgres>, m: &EventMeta, r: &DefinitionRules) -> anyhow::Result<()> {
    let version = m.version as i64;
    let sql = if version == 1 {
        "INSERT INTO definitions (definition_id, tenant_id, handle, max_invites_per_inviter, starts_at, ends_at, \
         max_send_count, default_expiry_days, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)"
    } else {
        "UPDATE definitions SET handle = $3, max_invites_per_inviter = $4, starts_at = $5, ends_at = $6, \
         max_send_count = $7, default_expiry_days = $8, updated_at = $9, version = $10 \
         WHERE definition_id = $1 AND tenant_id = $2 AND version = $10 - 1"
    };
    let updated = sqlx::query(sql)
        .bind(m.stream.as_uuid())
        .bind(m.tenant_id.as_uuid())
        .bind(&r.handle)
        .bind(r.max_invites_per_inviter.map(|n| n as i32))
        .bind(r.starts_at)
        .bind(r.ends_at)
        .bind(r.max_send_count.map(|n| n as i32))
        .bind(r.default_expiry_days.map(|n| n as i32))
        .bind(m.occurred_at)
        .bind(version)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if updated != 1 {
        return Err(Refused(format!("definition {} is not at version {}", m.stream.as_uuid(), version - 1)).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_read_models_refuse_is_a_refusal_however_it_is_wrapped() {
        let gap = anyhow::Error::from(Refused("invite x is not at version 1".into()));
        assert!(is_refusal(&gap.context("applying a batch")));
        for passing in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::WorkerCrashed] {
            assert!(!is_refusal(&anyhow::Error::from(passing).context("cannot begin a projection transaction")));
        }
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(!is_refusal(&anyhow::Error::from(io)));
    }
}
