//! What the writer knows: every tenant's aggregate, the public link tokens across tenants, and
//! the idempotency records. All of it is folded from the log, so a restart rebuilds it exactly.

use events::{Envelope, InviteEvent, LinkToken, StreamId, Tenant, TenantId};
use std::collections::HashMap;

/// One stream's change made by a command: enough to answer the command again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRef {
    pub stream: StreamId,
    pub version: u64,
    pub event_type: &'static str,
}

/// What a command with an `Idempotency-Key` did: its request fingerprint and its changes.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyRecord {
    pub request_hash: Option<String>,
    pub changes: Vec<ChangeRef>,
}

#[derive(Default)]
pub struct WriterState {
    pub tenants: HashMap<TenantId, Tenant>,
    /// Public links are followed without credentials: the token alone names the tenant.
    pub tokens: HashMap<LinkToken, TenantId>,
    pub idempotency: HashMap<(TenantId, String), IdempotencyRecord>,
    pub events: u64,
}

impl WriterState {
    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.get(&id)
    }

    /// Folds one committed (or just decided) event in.
    pub fn apply(&mut self, envelope: &Envelope) {
        self.apply_owned(envelope.clone())
    }

    /// [`WriterState::apply`] taking the envelope by value (a replay moves it in).
    pub fn apply_owned(&mut self, envelope: Envelope) {
        let meta = &envelope.meta;
        if let Some((_, InviteEvent::Created(created))) = envelope.invite_event() {
            self.tokens.insert(created.token.clone(), meta.tenant_id);
        }
        if let Some(key) = &meta.idempotency_key {
            let record = self.idempotency.entry((meta.tenant_id, key.clone())).or_default();
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
