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
use events::{DefinitionEvent, DefinitionRules, DeliveryStatus, DomainEvent, EngagementKind, EventMeta, InviteEvent};
use sqlx::{PgPool, Postgres, Transaction};
use std::borrow::Cow;
use std::collections::BTreeMap;
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
    // Set-based where most of the volume is: the history of the whole batch in one statement,
    // and runs of creations in a few; other changes one by one, in log order.
    let mut fresh = crate::bulk::record_history(tx, batch).await?;
    let mut applied = 0;
    let mut creations = Vec::new();
    for p in batch {
        // The history row is the guard: a (stream, version) seen before changes nothing.
        if !fresh.remove(&(*p.envelope.meta.stream.as_uuid(), p.envelope.meta.version as i64)) {
            continue;
        }
        applied += 1;
        match p.envelope.invite_event() {
            Some((_, InviteEvent::Created(c))) => creations.push((&p.envelope.meta, c.as_ref())),
            _ => {
                crate::bulk::insert_created(tx, &std::mem::take(&mut creations)).await?;
                apply_one(tx, p).await?;
            }
        }
    }
    crate::bulk::insert_created(tx, &creations).await?;
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

/// Stages an open invite moves through, in order; `accepted` last, for a multi-use invite that
/// was accepted and is still open. A stage never goes back.
const STAGES: &str = "ARRAY['created','queued','sending','sent','delivered','opened','unfurled','shared','accepted']";

async fn apply_one(tx: &mut Transaction<'_, Postgres>, p: &Positioned) -> anyhow::Result<()> {
    let e = &p.envelope;
    let m = &e.meta;
    match &e.event {
        DomainEvent::Invite(event) => {
            let id = *m.stream.as_uuid();
            invite(tx, id, m, event).await.with_context(|| format!("cannot project {}", e.event_type()))?
        }
        DomainEvent::Definition(DefinitionEvent::Created(r) | DefinitionEvent::Updated(r)) => {
            definition(tx, m, r).await.with_context(|| format!("cannot project {}", e.event_type()))?
        }
    }
    Ok(())
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

async fn invite(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    m: &EventMeta,
    event: &InviteEvent,
) -> anyhow::Result<()> {
    let (at, version, tenant) = (m.occurred_at, m.version as i64, *m.tenant_id.as_uuid());
    // Every other event moves the row on by one version, and says how.
    let (set, stage): (Cow<'static, str>, Option<&str>) = match event {
        InviteEvent::Created(_) => unreachable!("creations are projected in bulk"),
        InviteEvent::Sent(_) => (
            "send_count = send_count + 1, first_sent_at = coalesce(first_sent_at, $3), last_sent_at = $3".into(),
            Some("queued"),
        ),
        InviteEvent::DeliveryStatusChanged(d) => match d.status {
            DeliveryStatus::Delivered => (
                "delivery_count = delivery_count + 1, delivered_at = coalesce(delivered_at, $3)".into(),
                Some("delivered"),
            ),
            DeliveryStatus::Sending => ("".into(), Some("sending")),
            DeliveryStatus::Sent => ("".into(), Some("sent")),
            // Opened means it arrived, reported before or without `delivered`: count it then, once.
            // (This runs before the delivery row moves on, so it sees the status the event found.)
            DeliveryStatus::Opened => (
                format!(
                    "viewed_at = coalesce(viewed_at, $3), delivered_at = coalesce(delivered_at, $3), \
                     delivery_count = delivery_count + (SELECT count(*) FROM deliveries \
                     WHERE delivery_id = '{}' AND status IN ('queued', 'sending', 'sent'))::integer",
                    d.delivery_id.as_uuid()
                )
                .into(),
                Some("opened"),
            ),
            _ => ("".into(), None),
        },
        InviteEvent::Engaged(g) => match g.kind {
            EngagementKind::View => {
                ("view_count = view_count + 1, viewed_at = coalesce(viewed_at, $3)".into(), Some("opened"))
            }
            EngagementKind::Click => {
                ("click_count = click_count + 1, clicked_at = coalesce(clicked_at, $3)".into(), Some("opened"))
            }
            EngagementKind::Share => ("share_count = share_count + 1".into(), Some("shared")),
            EngagementKind::Unfurl => ("unfurl_count = unfurl_count + 1".into(), Some("unfurled")),
        },
        InviteEvent::Accepted(_) => (
            "accept_count = accept_count + 1, accepted_at = coalesce(accepted_at, $3), status = 'accepted', \
             open = invitation_type = 'multi_use' AND (max_accepts IS NULL OR accept_count + 1 < max_accepts)"
                .into(),
            None,
        ),
        InviteEvent::AcceptedElsewhere(_) => {
            ("status = 'accepted_elsewhere', open = false, accepted_elsewhere_at = $3".into(), None)
        }
        InviteEvent::Declined(_) => ("status = 'declined', open = false, declined_at = $3".into(), None),
        InviteEvent::Revoked(_) => ("status = 'revoked', open = false, revoked_at = $3".into(), None),
        InviteEvent::Expired(_) => ("status = 'expired', open = false, expired_at = $3".into(), None),
    };
    let mut sql = String::from("UPDATE invites SET version = $2, updated_at = $3");
    if !set.is_empty() {
        sql.push_str(", ");
        sql.push_str(&set);
    }
    if let Some(stage) = stage {
        sql.push_str(&format!(
            ", status = CASE WHEN open AND coalesce(array_position({STAGES}, status), 0) < array_position({STAGES}, '{stage}') \
             THEN '{stage}' ELSE status END"
        ));
    }
    // The version guard: only the next event of this invite applies.
    sql.push_str(" WHERE invite_id = $1 AND version = $2 - 1");
    let updated = sqlx::query(&sql).bind(id).bind(version).bind(at).execute(&mut **tx).await?.rows_affected();
    if updated != 1 {
        return Err(Refused(format!("invite {id} is not at version {}", version - 1)).into());
    }

    match event {
        InviteEvent::Sent(s) => {
            sqlx::query(
                "INSERT INTO deliveries (delivery_id, invite_id, tenant_id, method, target, resend, status, sent_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)",
            )
            .bind(s.delivery_id.as_uuid())
            .bind(id)
            .bind(tenant)
            .bind(s.method.as_str())
            .bind(&s.target)
            .bind(s.resend)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            delivery_history(tx, *s.delivery_id.as_uuid(), version, "queued", None, at).await?;
        }
        InviteEvent::DeliveryStatusChanged(d) => {
            sqlx::query("UPDATE deliveries SET status = $2, updated_at = $3 WHERE delivery_id = $1")
                .bind(d.delivery_id.as_uuid())
                .bind(d.status.as_str())
                .bind(at)
                .execute(&mut **tx)
                .await?;
            delivery_history(tx, *d.delivery_id.as_uuid(), version, d.status.as_str(), d.detail.as_deref(), at).await?;
        }
        InviteEvent::Accepted(a) => {
            sqlx::query(
                "INSERT INTO invite_accepts (invite_id, invite_version, tenant_id, accepted_by, target, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(version)
            .bind(tenant)
            .bind(&a.accepted_by)
            .bind(&a.target)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE inviter_counters c SET invites_accepted = invites_accepted + 1 FROM invites i \
                 WHERE i.invite_id = $1 AND c.tenant_id = i.tenant_id \
                 AND c.definition_id = coalesce(i.definition_id, '00000000-0000-0000-0000-000000000000') \
                 AND c.inviter_id = i.inviter_id",
            )
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn delivery_history(
    tx: &mut Transaction<'_, Postgres>,
    delivery: Uuid,
    version: i64,
    status: &str,
    detail: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_status_history (delivery_id, invite_version, status, detail, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(delivery)
    .bind(version)
    .bind(status)
    .bind(detail)
    .bind(at)
    .execute(&mut **tx)
    .await?;
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
