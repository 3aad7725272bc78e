//! `as-of`: the state of one invite, or of every invite of a tenant, as it was at a given time,
//! from the log alone (the read models are not consulted).

use chrono::{DateTime, Utc};
use events::{DeliveryId, Invite, InviteEvent, InviteId, StreamId, Tenant, TenantId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What to show.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Invite(InviteId),
    Tenant(TenantId),
}

/// When an invite's changes happened: the state holds the facts, the envelopes their times.
#[derive(Debug, Default)]
struct Times {
    created: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
    /// In the order of the invite's accepts.
    accepts: Vec<DateTime<Utc>>,
    sent: HashMap<DeliveryId, DateTime<Utc>>,
    delivery_updated: HashMap<DeliveryId, DateTime<Utc>>,
}

impl Times {
    fn record(&mut self, event: &InviteEvent, at: DateTime<Utc>) {
        self.updated = Some(at);
        match event {
            InviteEvent::Created(_) => self.created = Some(at),
            InviteEvent::Accepted(_) => self.accepts.push(at),
            InviteEvent::Sent(s) => {
                self.sent.insert(s.delivery_id, at);
                self.delivery_updated.insert(s.delivery_id, at);
            }
            InviteEvent::DeliveryStatusChanged(d) => {
                self.delivery_updated.insert(d.delivery_id, at);
            }
            _ => {}
        }
    }
}

/// Folds every event that occurred at or before `at` and renders the subject as JSON, with the
/// tenant it belongs to (its personal data is sealed, and opens with that tenant's keys).
pub fn as_of(
    brokers: &str,
    topic: &str,
    at: DateTime<Utc>,
    subject: Subject,
) -> anyhow::Result<(Value, Option<TenantId>)> {
    let mut tenants: HashMap<TenantId, Tenant> = HashMap::new();
    let mut owner: HashMap<InviteId, TenantId> = HashMap::new();
    let mut times: HashMap<InviteId, Times> = HashMap::new();
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
            if let Some((id, event)) = envelope.invite_event() {
                owner.insert(id, envelope.meta.tenant_id);
                times.entry(id).or_default().record(event, envelope.meta.occurred_at);
            }
            tenants.entry(envelope.meta.tenant_id).or_default().apply(envelope.meta.stream, &envelope.event);
        }
        Ok(())
    })?;
    Ok(match subject {
        Subject::Invite(id) => {
            let invite = owner.get(&id).and_then(|t| tenants.get(t)).and_then(|t| t.invite(id));
            (invite.map_or(Value::Null, |i| render(id, i, &times[&id], at)), owner.get(&id).copied())
        }
        Subject::Tenant(t) => {
            let tenant = tenants.remove(&t).unwrap_or_default();
            let invites: BTreeMap<String, Value> = owner
                .iter()
                .filter(|(_, owner)| **owner == t)
                .filter_map(|(id, _)| Some((id.to_string(), render(*id, tenant.invite(*id)?, &times[id], at))))
                .collect();
            (json!({ "tenant_id": t, "as_of": at, "invites": invites.into_values().collect::<Vec<_>>() }), Some(t))
        }
    })
}

fn render(id: InviteId, i: &Invite, times: &Times, at: DateTime<Utc>) -> Value {
    let c = &i.created;
    json!({
        "id": id,
        "as_of": at,
        "created_at": times.created,
        "updated_at": times.updated,
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
            "id": d.id, "method": d.method.as_str(), "target": d.target, "status": d.status.as_str(),
            "sent_at": times.sent.get(&d.id), "updated_at": times.delivery_updated.get(&d.id),
        })).collect::<Vec<_>>(),
        "accepts": i.accepts.iter().zip(&times.accepts).map(|(a, at)| json!({
            "accepted_by": a.accepted_by, "target": a.target, "at": at,
        })).collect::<Vec<_>>(),
    })
}
