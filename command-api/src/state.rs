//! What the writer knows: every tenant's aggregate, the public link tokens across tenants, and
//! the idempotency records. All of it is folded from the log, so a restart rebuilds it exactly.

use events::{Envelope, InviteEvent, InviteId, LinkToken, Secrets, StreamId, Tenant, TenantId};
use std::collections::HashMap;

/// One stream's change made by a command: enough to answer the command again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRef {
    pub stream: StreamId,
    pub version: u64,
    pub event_type: &'static str,
}

/// A [`ChangeRef`] read back from a snapshot: its event type by name.
#[derive(serde::Deserialize)]
struct StoredChange {
    stream: StreamId,
    version: u64,
    event_type: String,
}

impl<'de> serde::Deserialize<'de> for ChangeRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = StoredChange::deserialize(d)?;
        let event_type = events::event::EVENT_TYPES
            .iter()
            .map(|(known, _)| *known)
            .find(|known| *known == c.event_type)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type {}", c.event_type)))?;
        Ok(Self { stream: c.stream, version: c.version, event_type })
    }
}

/// What a command with an `Idempotency-Key` did: its request fingerprint and its changes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: Option<String>,
    pub changes: Vec<ChangeRef>,
}

#[derive(Default)]
pub struct WriterState {
    pub tenants: HashMap<TenantId, Tenant>,
    /// Public links are followed without credentials: the token alone names the tenant. The
    /// recorded tokens of invites from before tokens were derived.
    pub tokens: HashMap<LinkToken, TenantId>,
    /// Every invite's tenant: a derived token names its invite.
    pub invite_tenants: HashMap<InviteId, TenantId>,
    /// Per tenant, by key.
    pub idempotency: HashMap<TenantId, HashMap<String, IdempotencyRecord>>,
    pub events: u64,
    /// Where each stream's and tenant's hash chain stands (tamper evidence).
    pub chains: crate::chains::Chains,
}

impl WriterState {
    /// The record of a tenant's idempotency key, if the key was used.
    pub fn idempotency_record(&self, tenant: TenantId, key: &str) -> Option<&IdempotencyRecord> {
        self.idempotency.get(&tenant)?.get(key)
    }

    /// Takes a tenant's state whole (from a snapshot), with the indexes across tenants.
    pub fn restore_tenant(&mut self, id: TenantId, tenant: Tenant, idempotency: HashMap<String, IdempotencyRecord>) {
        for invite in tenant.invite_ids() {
            self.invite_tenants.insert(invite, id);
        }
        for token in tenant.recorded_tokens() {
            self.tokens.insert(token.clone(), id);
        }
        if !idempotency.is_empty() {
            self.idempotency.insert(id, idempotency);
        }
        self.tenants.insert(id, tenant);
    }

    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.get(&id)
    }

    /// The tenant of the invite a public link token names, if the token holds.
    pub fn tenant_of_token(&self, token: &LinkToken, secrets: &Secrets) -> Option<TenantId> {
        if let Some(tenant) = self.tokens.get(token) {
            return Some(*tenant);
        }
        let tenant = *self.invite_tenants.get(&secrets.invite_of_token(token.as_str())?)?;
        self.tenant(tenant)?.invite_by_token(token, secrets).map(|_| tenant)
    }

    /// Folds one committed (or just decided) event in.
    pub fn apply(&mut self, envelope: &Envelope) {
        self.apply_owned(envelope.clone())
    }

    /// [`WriterState::apply`] taking the envelope by value (a replay moves it in).
    pub fn apply_owned(&mut self, mut envelope: Envelope) {
        if let events::DomainEvent::Invite(InviteEvent::Created(created)) = &mut envelope.event {
            events::invite::trim_for_decisions(created);
        }
        let meta = &envelope.meta;
        if let Some((id, InviteEvent::Created(created))) = envelope.invite_event() {
            if let Some(token) = &created.token {
                self.tokens.insert(token.clone(), meta.tenant_id);
            }
            self.invite_tenants.insert(id, meta.tenant_id);
        }
        if let Some(key) = &meta.idempotency_key {
            let record = self.idempotency.entry(meta.tenant_id).or_default().entry(key.clone()).or_default();
            record.request_hash.clone_from(&meta.request_hash);
            record.changes.push(ChangeRef {
                stream: meta.stream,
                version: meta.version,
                event_type: envelope.event_type(),
            });
        }
        let (tenant, stream) = (meta.tenant_id, meta.stream);
        self.tenants.entry(tenant).or_default().apply_owned(stream, envelope.event);
        self.events += 1;
    }
}
