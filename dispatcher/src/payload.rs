//! The body of each webhook message, rendered once when the event is read (a retry or a resend
//! sends the same bytes), in the endpoint's format.
//!
//! - `standard`: the event as the history endpoint shows it, in the Standard Webhooks shape
//!   `{type, timestamp, data}` plus the envelope (`id`, `tenant_id`, `stream`, `version`, `actor`,
//!   `correlation_id`, `schema_version`). The link token is never sent: `data` carries its SHA-256.
//! - `vortex`: `{id, type, timestamp, accountId, environmentId, sourceTable, operation, data}`
//!   with Vortex's type names ([`vortex_type`]); events without a Vortex name are not sent in it.

use events::{DeliveryMethod, DeliveryStatus, DomainEvent, EngagementKind, Envelope, InviteEvent};
use serde_json::{json, Value};
use service_kit::webhooks::Format;

/// The type name an endpoint of this format filters on and receives; `None`: not sent in it.
/// `method` is the delivery's, for a delivery's events.
pub fn type_name(format: Format, envelope: &Envelope, method: Option<DeliveryMethod>) -> Option<&'static str> {
    match format {
        Format::Standard => Some(envelope.event.event_type()),
        Format::Vortex => vortex_type(&envelope.event, method),
    }
}

/// Vortex's name of an event: `invitation.created`, `invitation.accepted`, `invitation.declined`,
/// `invitation.deactivated` (revoked, expired, accepted elsewhere), `invitation.{email,sms}.{sent,
/// delivered,opened,bounced,failed}`, `invitation.link.clicked`, `invitation.viewed`,
/// `invitation.shared`. Every name is one of `dialects::vortex::WEBHOOK_EVENT_TYPES`.
pub fn vortex_type(event: &DomainEvent, method: Option<DeliveryMethod>) -> Option<&'static str> {
    let DomainEvent::Invite(event) = event else { return None };
    Some(match event {
        InviteEvent::Created(_) => "invitation.created",
        InviteEvent::Accepted(_) => "invitation.accepted",
        InviteEvent::Declined(_) => "invitation.declined",
        InviteEvent::Revoked(_) | InviteEvent::Expired(_) | InviteEvent::AcceptedElsewhere(_) => {
            "invitation.deactivated"
        }
        InviteEvent::Engaged(e) => match e.kind {
            EngagementKind::Click => "invitation.link.clicked",
            EngagementKind::View => "invitation.viewed",
            EngagementKind::Share => "invitation.shared",
            EngagementKind::Unfurl => return None,
        },
        InviteEvent::Sent(_) | InviteEvent::PersonalDataErased(_) => return None,
        InviteEvent::DeliveryStatusChanged(c) => match (method?, c.status) {
            (DeliveryMethod::Email, DeliveryStatus::Sent) => "invitation.email.sent",
            (DeliveryMethod::Email, DeliveryStatus::Delivered) => "invitation.email.delivered",
            (DeliveryMethod::Email, DeliveryStatus::Opened) => "invitation.email.opened",
            (DeliveryMethod::Email, DeliveryStatus::Bounced) => "invitation.email.bounced",
            (DeliveryMethod::Email, DeliveryStatus::Failed) => "invitation.email.failed",
            (DeliveryMethod::Sms, DeliveryStatus::Sent) => "invitation.sms.sent",
            (DeliveryMethod::Sms, DeliveryStatus::Delivered) => "invitation.sms.delivered",
            (DeliveryMethod::Sms, DeliveryStatus::Failed | DeliveryStatus::Bounced) => "invitation.sms.failed",
            _ => return None,
        },
    })
}

/// The message body for an endpoint of `format`, or `None` when the event has no name in it.
pub fn body(format: Format, envelope: &Envelope, method: Option<DeliveryMethod>) -> Option<String> {
    let meta = &envelope.meta;
    let data = service_kit::secrets::redact_token(envelope.event.to_data());
    let value = match format {
        Format::Standard => json!({
            "id": meta.event_id,
            "type": envelope.event.event_type(),
            "schema_version": envelope.event.schema_version(),
            "timestamp": meta.occurred_at,
            "tenant_id": meta.tenant_id,
            "stream": { "kind": meta.stream.kind(), "id": meta.stream.as_uuid() },
            "version": meta.version,
            "actor": { "kind": meta.actor.kind.as_str(), "id": meta.actor.id },
            "correlation_id": meta.correlation_id,
            "data": data,
        }),
        Format::Vortex => {
            let name = vortex_type(&envelope.event, method)?;
            let (table, operation) = match &envelope.event {
                DomainEvent::Invite(InviteEvent::Created(_)) => ("invitations", "insert"),
                DomainEvent::Invite(InviteEvent::DeliveryStatusChanged(_)) => ("invitation_deliveries", "update"),
                DomainEvent::Invite(InviteEvent::Engaged(_)) => ("invitation_engagements", "insert"),
                _ => ("invitations", "update"),
            };
            let mut data = match data {
                Value::Object(map) => map,
                _ => Default::default(),
            };
            data.insert("invitationId".into(), json!(meta.stream.as_uuid()));
            data.insert("version".into(), json!(meta.version));
            json!({
                "id": meta.event_id,
                "type": name,
                "timestamp": meta.occurred_at,
                "accountId": meta.tenant_id,
                "environmentId": meta.tenant_id,
                "sourceTable": table,
                "operation": operation,
                "data": data,
            })
        }
    };
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{DeliveryStatus, EngagementKind};

    /// Every name an event gets in the Vortex format is one an endpoint may ask for.
    #[test]
    fn every_vortex_name_is_in_the_vocabulary_endpoints_filter_on() {
        let id = events::DeliveryId::from_uuid(uuid::Uuid::nil());
        let mut events = vec![
            InviteEvent::Accepted(events::event::InviteAccepted {
                accepted_by: None,
                target: None,
                target_index: None,
            }),
            InviteEvent::Declined(events::event::InviteClosed { reason: None }),
            InviteEvent::Revoked(events::event::InviteClosed { reason: None }),
            InviteEvent::Expired(events::event::InviteClosed { reason: None }),
        ];
        for kind in [EngagementKind::Click, EngagementKind::View, EngagementKind::Share, EngagementKind::Unfurl] {
            events.push(InviteEvent::Engaged(events::event::InviteEngaged { kind, source: None }));
        }
        for status in [
            DeliveryStatus::Queued,
            DeliveryStatus::Sending,
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Opened,
            DeliveryStatus::Bounced,
            DeliveryStatus::Failed,
        ] {
            events.push(InviteEvent::DeliveryStatusChanged(events::event::DeliveryStatusChanged {
                delivery_id: id,
                status,
                detail: None,
            }));
        }
        let mut named = 0;
        for event in &events {
            for method in [DeliveryMethod::Email, DeliveryMethod::Sms, DeliveryMethod::InApp, DeliveryMethod::Link] {
                if let Some(name) = vortex_type(&DomainEvent::Invite(event.clone()), Some(method)) {
                    assert!(Format::Vortex.knows(name), "{name}");
                    named += 1;
                }
            }
        }
        assert!(named > 20, "{named}");
    }
}
