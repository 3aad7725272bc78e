//! `as-of`: the state of one invite, or of every invite of a tenant, as it was at a given time,
//! from the log alone (the read models are not consulted).

use chrono::{DateTime, Utc};
use events::{Invite, InviteId, StreamId, Tenant, TenantId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What to show.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Invite(InviteId),
    Tenant(TenantId),
}

/// Folds every event that occurred at or before `at` and renders the subject as JSON.
pub fn as_of(brokers: &str, topic: &str, at: DateTime<Utc>, subject: Subject) -> anyhow::Result<Value> {
    let mut tenants: HashMap<TenantId, Tenant> = HashMap::new();
    let mut owner: HashMap<InviteId, TenantId> = HashMap::new();
    service_kit::kafka::read_to_end(brokers, topic, &HashMap::new(), Duration::from_secs(3600), |_, _, message| {
        // Poison events are the dead-letter topic's business; history is what decodes.
        let Ok(envelope) = service_kit::kafka::envelope_of(message) else { return Ok(()) };
        if envelope.meta.occurred_at > at {
            return Ok(());
        }
        let wanted = match subject {
            Subject::Invite(id) => {
                envelope.meta.stream == StreamId::Invite(id) || envelope.meta.stream.kind() == "definition"
            }
            Subject::Tenant(t) => envelope.meta.tenant_id == t,
        };
        if wanted {
            if let StreamId::Invite(id) = envelope.meta.stream {
                owner.insert(id, envelope.meta.tenant_id);
            }
            tenants.entry(envelope.meta.tenant_id).or_default().apply(envelope.meta.stream, &envelope.event);
        }
        Ok(())
    })?;
    Ok(match subject {
        Subject::Invite(id) => {
            let invite = owner.get(&id).and_then(|t| tenants.get(t)).and_then(|t| t.invite(id));
            invite.map_or(Value::Null, |i| render(id, i, at))
        }
        Subject::Tenant(t) => {
            let tenant = tenants.remove(&t).unwrap_or_default();
            let invites: BTreeMap<String, Value> = owner
                .iter()
                .filter(|(_, owner)| **owner == t)
                .filter_map(|(id, _)| Some((id.to_string(), render(*id, tenant.invite(*id)?, at))))
                .collect();
            json!({ "tenant_id": t, "as_of": at, "invites": invites.into_values().collect::<Vec<_>>() })
        }
    })
}

fn render(id: InviteId, i: &Invite, at: DateTime<Utc>) -> Value {
    let c = &i.created;
    json!({
        "id": id,
        "as_of": at,
        "status": i.status_at(at).as_str(),
        "version": i.version,
        "inviter": c.inviter,
        "targets": c.targets,
        "scopes": c.scopes,
        "invitation_type": c.invitation_type,
        "expires_at": c.expires_at,
        "expired": i.is_expired_at(at),
        "definition_id": c.definition_id,
        "counters": {
            "sends": i.counters.sends,
            "deliveries": i.counters.deliveries,
            "views": i.counters.views,
            "clicks": i.counters.clicks,
            "shares": i.counters.shares,
            "unfurls": i.counters.unfurls,
            "accepts": i.accepts.len(),
        },
        "deliveries": i.deliveries.iter().map(|d| json!({
            "id": d.id, "method": d.method.as_str(), "target": d.target, "status": d.status.as_str()
        })).collect::<Vec<_>>(),
        "accepts": i.accepts.iter().map(|a| json!({ "accepted_by": a.accepted_by, "target": a.target })).collect::<Vec<_>>(),
    })
}
