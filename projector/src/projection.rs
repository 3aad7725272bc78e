//! How events change the read models. Every change of one batch, and the positions after it,
//! commit together or not at all.

use crate::consumer::Positioned;
use anyhow::Context;
use events::{InvitationType, InviteEvent};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeMap;

/// Serializes projection batches with a rebuild's swap: every batch holds it shared, the swap
/// exclusively, so no batch straddles the moment the read-model schemas change places.
pub const SWAP_LOCK: i64 = 0x7273_7670_7377_6170; // "rsvpswap"

/// Applies a batch and stores the positions after it (`next`: partition → next offset to read);
/// returns how many events changed something (the rest had been applied before).
pub async fn apply_batch(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    batch: &[Positioned],
    next: &BTreeMap<i32, i64>,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await.context("cannot begin a projection transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)").bind(SWAP_LOCK).execute(&mut *tx).await?;
    let applied = apply_in(&mut tx, consumer, topic, batch, next).await?;
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
    let mut applied = 0;
    for p in batch {
        if apply_one(tx, p).await? {
            applied += 1;
        }
    }
    for (&partition, &next_offset) in next {
        sqlx::query(
            "INSERT INTO projector_offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
        )
        .bind(consumer)
        .bind(topic)
        .bind(partition)
        .bind(next_offset)
        .execute(&mut **tx)
        .await
        .context("cannot store the projector position")?;
    }
    Ok(applied)
}

async fn apply_one(tx: &mut Transaction<'_, Postgres>, p: &Positioned) -> anyhow::Result<bool> {
    let m = &p.envelope.meta;
    // The history row is the version guard: a (invite, version) seen before changes nothing.
    let inserted = sqlx::query(
        "INSERT INTO invite_events (invite_id, version, tenant_id, event_id, event_type, schema_version, \
         occurred_at, actor_kind, actor_id, correlation_id, causation_id, idempotency_key, data, \
         kafka_partition, kafka_offset) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (invite_id, version) DO NOTHING",
    )
    .bind(m.invite_id.as_uuid())
    .bind(m.version as i64)
    .bind(m.tenant_id.as_uuid())
    .bind(m.event_id)
    .bind(p.envelope.event_type())
    .bind(p.envelope.event.schema_version() as i32)
    .bind(m.occurred_at)
    .bind(m.actor.kind.as_str())
    .bind(&m.actor.id)
    .bind(m.correlation_id)
    .bind(m.causation_id)
    .bind(&m.idempotency_key)
    .bind(p.envelope.event.to_data())
    .bind(p.partition)
    .bind(p.offset)
    .execute(&mut **tx)
    .await
    .context("cannot record event history")?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    match &p.envelope.event {
        InviteEvent::Created(e) => {
            let (kind, max_accepts) = match e.invitation_type {
                InvitationType::SingleUse => ("single_use", None),
                InvitationType::MultiUse { max_accepts } => ("multi_use", max_accepts.map(|n| n as i32)),
            };
            sqlx::query(
                "INSERT INTO invites (invite_id, tenant_id, status, inviter_id, inviter_name, inviter_email, \
                 invitation_type, max_accepts, message, definition_id, landing_url, expires_at, created_at, \
                 updated_at, version, created) \
                 VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14) \
                 ON CONFLICT (invite_id) DO NOTHING",
            )
            .bind(m.invite_id.as_uuid())
            .bind(m.tenant_id.as_uuid())
            .bind(&e.inviter.id)
            .bind(&e.inviter.name)
            .bind(&e.inviter.email)
            .bind(kind)
            .bind(max_accepts)
            .bind(&e.message)
            .bind(e.definition_id.map(|d| *d.as_uuid()))
            .bind(&e.landing_url)
            .bind(e.expires_at)
            .bind(m.occurred_at)
            .bind(m.version as i64)
            .bind(p.envelope.event.to_data())
            .execute(&mut **tx)
            .await
            .context("cannot project InviteCreated")?;
        }
    }
    Ok(true)
}
