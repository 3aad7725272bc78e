//! The set-based part of a projection batch: one `INSERT ... SELECT FROM UNNEST(...)` (or
//! `UPDATE ... FROM UNNEST(...)`) per table instead of one statement per row: the history, the
//! creations, and the changes to existing invites in rounds (see [`update_invites`]).

use crate::consumer::Positioned;
use crate::projection::Refused;
use anyhow::Context;
use events::event::InviteCreated;
use events::{DeliveryStatus, EngagementKind, EventMeta, InvitationType, InviteEvent};
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
    // Link tokens are derived, never kept: older invites' recorded tokens are not stored either.
    .bind(column!(|_| None::<String>))
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
            t.5.push(target.match_key());
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
            // What the reply-to filter matches: the blind index (an older invite: the address).
            r.3.push(c.reply_to_index.get(i).unwrap_or(address).clone());
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

/// How an event other than a creation moves its invite's row: a kind the update statement
/// switches on, and the stage it moves an open invite up to, if any (`events::derived`, the
/// one definition of the stages, their order and expiry).
fn change(event: &InviteEvent) -> (&'static str, Option<&'static str>) {
    let kind = match event {
        InviteEvent::Created(_) => unreachable!("creations are inserted, not updated"),
        InviteEvent::Sent(_) => "sent",
        InviteEvent::DeliveryStatusChanged(d) => match d.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Opened => "opened",
            _ => "status",
        },
        InviteEvent::Engaged(g) => match g.kind {
            EngagementKind::View => "view",
            EngagementKind::Click => "click",
            EngagementKind::Share => "share",
            EngagementKind::Unfurl => "unfurl",
        },
        InviteEvent::Accepted(_) => "accepted",
        InviteEvent::AcceptedElsewhere(_) => "accepted_elsewhere",
        InviteEvent::Declined(_) => "declined",
        InviteEvent::Revoked(_) => "revoked",
        InviteEvent::Expired(_) => "expired",
        // The data is sealed in the rows already: its key is gone, so it reads as erased.
        InviteEvent::PersonalDataErased(_) => "erased",
    };
    (kind, events::derived::stage_of(event).map(|s| s.as_str()))
}

/// Applies one round of changes to existing invites: at most one event per invite, each the next
/// version of its invite (the version guard), every table in one statement. A batch's changes go
/// in rounds (an invite's first change of the batch in the first round, its second in the
/// second...), so each round sees the rows the one before left, as one-by-one application would.
/// An event whose invite is not at the previous version makes the whole round [`Refused`].
pub async fn update_invites(
    tx: &mut Transaction<'_, Postgres>,
    round: &[(&EventMeta, &InviteEvent)],
) -> anyhow::Result<()> {
    if round.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($f:expr) => {
            round.iter().map($f).collect::<Vec<_>>()
        };
    }
    let ids = column!(|(m, _)| *m.stream.as_uuid());
    let versions = column!(|(m, _)| m.version as i64);
    let times = column!(|(m, _)| m.occurred_at);
    let changes = column!(|(_, e)| change(e));
    let deliveries = column!(|(_, e)| match e {
        InviteEvent::DeliveryStatusChanged(d) => Some(*d.delivery_id.as_uuid()),
        _ => None,
    });
    // Every column reads the row as it was before this round (SQL evaluates SET against the old
    // row): `open` for a stage, `accept_count` for a multi-use invite's last accept. An `opened`
    // report counts the delivery when no `delivered` came first; the delivery rows still hold the
    // status the event found, since they move on after this statement.
    let sql = format!(
        "UPDATE invites i SET version = u.version, updated_at = u.at, \
         send_count = i.send_count + (u.kind = 'sent')::int, \
         first_sent_at = CASE WHEN u.kind = 'sent' THEN coalesce(i.first_sent_at, u.at) ELSE i.first_sent_at END, \
         last_sent_at = CASE WHEN u.kind = 'sent' THEN u.at ELSE i.last_sent_at END, \
         delivery_count = i.delivery_count + CASE u.kind WHEN 'delivered' THEN 1 \
           WHEN 'opened' THEN (SELECT count(*) FROM deliveries d WHERE d.delivery_id = u.delivery \
             AND d.status IN ('queued', 'sending', 'sent'))::int ELSE 0 END, \
         delivered_at = CASE WHEN u.kind IN ('delivered', 'opened') THEN coalesce(i.delivered_at, u.at) ELSE i.delivered_at END, \
         viewed_at = CASE WHEN u.kind IN ('opened', 'view') THEN coalesce(i.viewed_at, u.at) ELSE i.viewed_at END, \
         view_count = i.view_count + (u.kind = 'view')::int, \
         click_count = i.click_count + (u.kind = 'click')::int, \
         clicked_at = CASE WHEN u.kind = 'click' THEN coalesce(i.clicked_at, u.at) ELSE i.clicked_at END, \
         share_count = i.share_count + (u.kind = 'share')::int, \
         unfurl_count = i.unfurl_count + (u.kind = 'unfurl')::int, \
         accept_count = i.accept_count + (u.kind = 'accepted')::int, \
         accepted_at = CASE WHEN u.kind = 'accepted' THEN coalesce(i.accepted_at, u.at) ELSE i.accepted_at END, \
         accepted_elsewhere_at = CASE WHEN u.kind = 'accepted_elsewhere' THEN u.at ELSE i.accepted_elsewhere_at END, \
         declined_at = CASE WHEN u.kind = 'declined' THEN u.at ELSE i.declined_at END, \
         revoked_at = CASE WHEN u.kind = 'revoked' THEN u.at ELSE i.revoked_at END, \
         expired_at = CASE WHEN u.kind = 'expired' THEN u.at ELSE i.expired_at END, \
         open = CASE WHEN u.kind = 'accepted' THEN i.invitation_type = 'multi_use' \
             AND (i.max_accepts IS NULL OR i.accept_count + 1 < i.max_accepts) \
           WHEN u.kind IN ('accepted_elsewhere', 'declined', 'revoked', 'expired') THEN false ELSE i.open END, \
         status = CASE WHEN u.kind IN ('accepted', 'accepted_elsewhere', 'declined', 'revoked', 'expired') THEN u.kind \
           WHEN i.open THEN {advance} ELSE i.status END \
         FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[], $4::text[], $5::text[], $6::uuid[]) \
           AS u(id, version, at, kind, stage, delivery) \
         WHERE i.invite_id = u.id AND i.version = u.version - 1 \
         RETURNING i.invite_id",
        advance = events::derived::sql::advance("i.status", "u.stage")
    );
    let updated: Vec<Uuid> = sqlx::query_scalar(&sql)
        .bind(&ids)
        .bind(&versions)
        .bind(&times)
        .bind(changes.iter().map(|(kind, _)| kind.to_string()).collect::<Vec<_>>())
        .bind(changes.iter().map(|(_, stage)| stage.map(str::to_owned)).collect::<Vec<_>>())
        .bind(&deliveries)
        .fetch_all(&mut **tx)
        .await
        .context("cannot update invites")?;
    if updated.len() != round.len() {
        let updated: HashSet<Uuid> = updated.into_iter().collect();
        let (m, _) = round.iter().find(|(m, _)| !updated.contains(m.stream.as_uuid())).expect("one was not updated");
        return Err(Refused(format!("invite {} is not at version {}", m.stream.as_uuid(), m.version - 1)).into());
    }

    // Deliveries: new ones, then the status of reported ones, then one history row each.
    let mut new = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut moved = (Vec::new(), Vec::new(), Vec::new());
    let mut history = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut accepts = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut erased: Vec<(Uuid, bool, Vec<String>)> = Vec::new();
    for (m, e) in round {
        let (id, tenant, version, at) = (*m.stream.as_uuid(), *m.tenant_id.as_uuid(), m.version as i64, m.occurred_at);
        match e {
            InviteEvent::Sent(s) => {
                new.0.push(*s.delivery_id.as_uuid());
                new.1.push(id);
                new.2.push(tenant);
                new.3.push(s.method.as_str().to_owned());
                new.4.push(s.target.clone());
                new.5.push(s.resend);
                new.6.push(at);
                history.0.push(*s.delivery_id.as_uuid());
                history.1.push(version);
                history.2.push("queued".to_owned());
                history.3.push(None);
                history.4.push(at);
            }
            InviteEvent::DeliveryStatusChanged(d) => {
                moved.0.push(*d.delivery_id.as_uuid());
                moved.1.push(d.status.as_str().to_owned());
                moved.2.push(at);
                history.0.push(*d.delivery_id.as_uuid());
                history.1.push(version);
                history.2.push(d.status.as_str().to_owned());
                history.3.push(d.detail.clone());
                history.4.push(at);
            }
            InviteEvent::PersonalDataErased(e) => erased.push((id, e.all, e.subjects.clone())),
            InviteEvent::Accepted(a) => {
                accepts.0.push(id);
                accepts.1.push(version);
                accepts.2.push(tenant);
                accepts.3.push(a.accepted_by.clone());
                accepts.4.push(a.target.clone());
                accepts.5.push(at);
            }
            _ => {}
        }
    }
    // An erased address is forgotten by the filters too: its match keys become `erased`, so a
    // list filtered on it (or on a later invite's same address) no longer finds this invite.
    for (id, all, subjects) in &erased {
        for (table, column) in [("invite_targets", "normalized"), ("invite_reply_to", "address")] {
            sqlx::query(&format!(
                "UPDATE {table} SET {column} = 'erased' WHERE invite_id = $1 AND ($2 OR {column} = ANY($3))"
            ))
            .bind(id)
            .bind(all)
            .bind(subjects)
            .execute(&mut **tx)
            .await
            .with_context(|| format!("cannot forget the erased addresses of {table}"))?;
        }
    }
    if !new.0.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (delivery_id, invite_id, tenant_id, method, target, resend, status, sent_at, updated_at) \
             SELECT u.id, u.invite, u.tenant, u.method, u.target, u.resend, 'queued', u.at, u.at \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[], $7::timestamptz[]) \
             AS u(id, invite, tenant, method, target, resend, at)",
        )
        .bind(&new.0)
        .bind(&new.1)
        .bind(&new.2)
        .bind(&new.3)
        .bind(&new.4)
        .bind(&new.5)
        .bind(&new.6)
        .execute(&mut **tx)
        .await
        .context("cannot create deliveries")?;
    }
    if !moved.0.is_empty() {
        sqlx::query(
            "UPDATE deliveries d SET status = u.status, updated_at = u.at \
             FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS u(id, status, at) WHERE d.delivery_id = u.id",
        )
        .bind(&moved.0)
        .bind(&moved.1)
        .bind(&moved.2)
        .execute(&mut **tx)
        .await
        .context("cannot move deliveries on")?;
    }
    if !history.0.is_empty() {
        sqlx::query(
            "INSERT INTO delivery_status_history (delivery_id, invite_version, status, detail, at) \
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[])",
        )
        .bind(&history.0)
        .bind(&history.1)
        .bind(&history.2)
        .bind(&history.3)
        .bind(&history.4)
        .execute(&mut **tx)
        .await
        .context("cannot record delivery statuses")?;
    }
    if !accepts.0.is_empty() {
        sqlx::query(
            "INSERT INTO invite_accepts (invite_id, invite_version, tenant_id, accepted_by, target, at) \
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[])",
        )
        .bind(&accepts.0)
        .bind(&accepts.1)
        .bind(&accepts.2)
        .bind(&accepts.3)
        .bind(&accepts.4)
        .bind(&accepts.5)
        .execute(&mut **tx)
        .await
        .context("cannot record accepts")?;
        // Several accepted invites may share an inviter: count them together.
        sqlx::query(
            "UPDATE inviter_counters c SET invites_accepted = c.invites_accepted + a.n \
             FROM (SELECT i.tenant_id, coalesce(i.definition_id, '00000000-0000-0000-0000-000000000000') AS definition_id, \
                   i.inviter_id, count(*)::int AS n \
                   FROM invites i JOIN UNNEST($1::uuid[]) AS u(id) ON i.invite_id = u.id GROUP BY 1, 2, 3) a \
             WHERE c.tenant_id = a.tenant_id AND c.definition_id = a.definition_id AND c.inviter_id = a.inviter_id",
        )
        .bind(&accepts.0)
        .execute(&mut **tx)
        .await
        .context("cannot count accepts per inviter")?;
    }
    Ok(())
}
