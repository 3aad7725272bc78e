//! The set-based part of a projection batch: one `INSERT ... SELECT FROM UNNEST(...)` per table
//! instead of one statement per row. Most of a log's volume is history rows and creations.

use crate::consumer::Positioned;
use anyhow::Context;
use events::event::InviteCreated;
use events::{EventMeta, InvitationType};
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// Writes the batch's history rows; returns the (stream, version) pairs that were new.
pub async fn record_history(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Positioned],
) -> anyhow::Result<HashSet<(Uuid, i64)>> {
    if batch.is_empty() {
        return Ok(HashSet::new());
    }
    let col = |f: &dyn Fn(&Positioned) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let streams: Vec<Uuid> = batch.iter().map(|p| *p.envelope.meta.stream.as_uuid()).collect();
    let versions: Vec<i64> = batch.iter().map(|p| p.envelope.meta.version as i64).collect();
    let tenants: Vec<Uuid> = batch.iter().map(|p| *p.envelope.meta.tenant_id.as_uuid()).collect();
    let ids: Vec<Uuid> = batch.iter().map(|p| p.envelope.meta.event_id).collect();
    let schema_versions: Vec<i32> = batch.iter().map(|p| p.envelope.event.schema_version() as i32).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = batch.iter().map(|p| p.envelope.meta.occurred_at).collect();
    let correlations: Vec<Option<Uuid>> = batch.iter().map(|p| p.envelope.meta.correlation_id).collect();
    let causations: Vec<Option<Uuid>> = batch.iter().map(|p| p.envelope.meta.causation_id).collect();
    let keys: Vec<Option<String>> = batch.iter().map(|p| p.envelope.meta.idempotency_key.clone()).collect();
    let data: Vec<serde_json::Value> = batch.iter().map(|p| p.envelope.event.to_data()).collect();
    let partitions: Vec<i32> = batch.iter().map(|p| p.partition).collect();
    let offsets: Vec<i64> = batch.iter().map(|p| p.offset).collect();
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "INSERT INTO events (stream_id, version, stream_kind, tenant_id, event_id, event_type, schema_version, \
         occurred_at, actor_kind, actor_id, correlation_id, causation_id, idempotency_key, data, kafka_partition, \
         kafka_offset) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::int4[], \
         $8::timestamptz[], $9::text[], $10::text[], $11::uuid[], $12::uuid[], $13::text[], $14::jsonb[], $15::int4[], \
         $16::int8[]) \
         ON CONFLICT (stream_id, version) DO NOTHING RETURNING stream_id, version",
    )
    .bind(&streams)
    .bind(&versions)
    .bind(col(&|p| p.envelope.meta.stream.kind().to_owned()))
    .bind(&tenants)
    .bind(&ids)
    .bind(col(&|p| p.envelope.event_type().to_owned()))
    .bind(&schema_versions)
    .bind(&times)
    .bind(col(&|p| p.envelope.meta.actor.kind.as_str().to_owned()))
    .bind(col(&|p| p.envelope.meta.actor.id.clone()))
    .bind(&correlations)
    .bind(&causations)
    .bind(&keys)
    .bind(&data)
    .bind(&partitions)
    .bind(&offsets)
    .fetch_all(&mut **tx)
    .await
    .context("cannot record the event history")?;
    Ok(rows.into_iter().collect())
}

/// Creates the rows of newly created invites: invites, targets, scopes, reply-to addresses, and
/// the per-inviter counters.
pub async fn insert_created(
    tx: &mut Transaction<'_, Postgres>,
    created: &[(&EventMeta, &InviteCreated)],
) -> anyhow::Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($f:expr) => {
            created.iter().map($f).collect::<Vec<_>>()
        };
    }
    let ids = column!(|(m, _)| *m.stream.as_uuid());
    let tenants = column!(|(m, _)| *m.tenant_id.as_uuid());
    let kinds = column!(|(_, c)| match c.invitation_type {
        InvitationType::SingleUse => "single_use".to_owned(),
        InvitationType::MultiUse { .. } => "multi_use".to_owned(),
    });
    let max_accepts = column!(|(_, c)| match c.invitation_type {
        InvitationType::MultiUse { max_accepts } => max_accepts.map(|n| n as i32),
        InvitationType::SingleUse => None,
    });
    let documents = created.iter().map(|(_, c)| serde_json::to_value(c)).collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "INSERT INTO invites (invite_id, tenant_id, status, open, inviter_id, inviter_name, inviter_email, \
         invitation_type, max_accepts, message, definition_id, landing_url, widget_id, flow_id, template_id, \
         link_token, expires_at, created_at, updated_at, version, created) \
         SELECT u.id, u.tenant, 'created', true, u.inviter_id, u.inviter_name, u.inviter_email, u.kind, u.max_accepts, \
         u.message, u.definition_id, u.landing_url, u.widget_id, u.flow_id, u.template_id, u.token, u.expires_at, \
         u.at, u.at, u.version, u.created \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::text[], \
         $9::uuid[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[], \
         $16::timestamptz[], $17::int8[], $18::jsonb[]) \
         AS u(id, tenant, inviter_id, inviter_name, inviter_email, kind, max_accepts, message, definition_id, \
         landing_url, widget_id, flow_id, template_id, token, expires_at, at, version, created)",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(column!(|(_, c)| c.inviter.id.clone()))
    .bind(column!(|(_, c)| c.inviter.name.clone()))
    .bind(column!(|(_, c)| c.inviter.email.clone()))
    .bind(&kinds)
    .bind(&max_accepts)
    .bind(column!(|(_, c)| c.message.clone()))
    .bind(column!(|(_, c)| c.definition_id.map(|d| *d.as_uuid())))
    .bind(column!(|(_, c)| c.landing_url.clone()))
    .bind(column!(|(_, c)| c.widget_id.clone()))
    .bind(column!(|(_, c)| c.flow_id.clone()))
    .bind(column!(|(_, c)| c.template_id.clone()))
    .bind(column!(|(_, c)| c.token.as_str().to_owned()))
    .bind(column!(|(_, c)| c.expires_at))
    .bind(column!(|(m, _)| m.occurred_at))
    .bind(column!(|(m, _)| m.version as i64))
    .bind(&documents)
    .execute(&mut **tx)
    .await
    .context("cannot create invite rows")?;

    // Targets, scopes and reply-to addresses, flattened with their invite and position.
    let mut t = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut s = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut r = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut counters: BTreeMap<(Uuid, Uuid, String), i32> = BTreeMap::new();
    for (m, c) in created {
        let (id, tenant) = (*m.stream.as_uuid(), *m.tenant_id.as_uuid());
        for (i, target) in c.targets.iter().enumerate() {
            t.0.push(id);
            t.1.push(i as i32);
            t.2.push(tenant);
            t.3.push(target.kind.as_str().to_owned());
            t.4.push(target.value.clone());
            t.5.push(target.normalized());
            t.6.push(target.name.clone());
        }
        for (i, scope) in c.scopes.iter().enumerate() {
            s.0.push(id);
            s.1.push(i as i32);
            s.2.push(tenant);
            s.3.push(scope.kind.clone());
            s.4.push(scope.id.clone());
            s.5.push(scope.name.clone());
        }
        for (i, address) in c.reply_to.iter().enumerate() {
            r.0.push(id);
            r.1.push(i as i32);
            r.2.push(tenant);
            r.3.push(address.clone());
        }
        let definition = c.definition_id.map_or(Uuid::nil(), |d| *d.as_uuid());
        *counters.entry((tenant, definition, c.inviter.id.clone())).or_default() += 1;
    }
    sqlx::query(
        "INSERT INTO invite_targets (invite_id, position, tenant_id, kind, value, normalized, name) \
         SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])",
    )
    .bind(&t.0)
    .bind(&t.1)
    .bind(&t.2)
    .bind(&t.3)
    .bind(&t.4)
    .bind(&t.5)
    .bind(&t.6)
    .execute(&mut **tx)
    .await
    .context("cannot store targets")?;
    if !s.0.is_empty() {
        sqlx::query(
            "INSERT INTO invite_scopes (invite_id, position, tenant_id, scope_type, scope_id, name) \
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::text[], $5::text[], $6::text[])",
        )
        .bind(&s.0)
        .bind(&s.1)
        .bind(&s.2)
        .bind(&s.3)
        .bind(&s.4)
        .bind(&s.5)
        .execute(&mut **tx)
        .await
        .context("cannot store scopes")?;
    }
    if !r.0.is_empty() {
        sqlx::query(
            "INSERT INTO invite_reply_to (invite_id, position, tenant_id, address) \
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::text[])",
        )
        .bind(&r.0)
        .bind(&r.1)
        .bind(&r.2)
        .bind(&r.3)
        .execute(&mut **tx)
        .await
        .context("cannot store reply-to addresses")?;
    }
    let (keys, counts): (Vec<_>, Vec<i32>) = counters.into_iter().unzip();
    let (tenants, definitions, inviters): (Vec<Uuid>, Vec<Uuid>, Vec<String>) =
        keys.into_iter().fold((Vec::new(), Vec::new(), Vec::new()), |mut acc, (t, d, i)| {
            acc.0.push(t);
            acc.1.push(d);
            acc.2.push(i);
            acc
        });
    sqlx::query(
        "INSERT INTO inviter_counters (tenant_id, definition_id, inviter_id, invites_created) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int4[]) \
         ON CONFLICT (tenant_id, definition_id, inviter_id) \
         DO UPDATE SET invites_created = inviter_counters.invites_created + EXCLUDED.invites_created",
    )
    .bind(&tenants)
    .bind(&definitions)
    .bind(&inviters)
    .bind(&counts)
    .execute(&mut **tx)
    .await
    .context("cannot count invites per inviter")?;
    Ok(())
}
