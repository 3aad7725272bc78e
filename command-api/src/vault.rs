//! The writer's side of crypto-shredding: it alone makes and destroys data keys, so it holds them
//! all in memory (loaded from the key store when it takes the lease) and seals every personal
//! field of the events it decides (`events::personal` says which fields, and whose). A key it
//! makes or destroys travels with the records to the committer, which stores the change before
//! it appends them.

use anyhow::Context as _;
use events::personal::{self, Field, Secrets, Subject};
use events::{Change, DomainEvent, InviteEvent, StreamId, TargetKind, Tenant, TenantId};
use service_kit::vault::{store, DataKey, KeyChange, MasterKey};
use std::collections::HashMap;

pub struct Vault {
    master: MasterKey,
    secrets: Secrets,
    keys: HashMap<(TenantId, String), DataKey>,
}

impl Vault {
    /// Every stored key, unwrapped. A key that does not unwrap (another master key) is a
    /// misconfiguration the writer refuses to start with: it would seal new data under new keys
    /// while every older value stayed unreadable.
    /// Only the keys of the tenants `mine` says this writer decides for.
    pub fn load(
        master: MasterKey,
        pool: &sqlx::PgPool,
        runtime: &tokio::runtime::Handle,
        mine: impl Fn(TenantId) -> bool,
    ) -> anyhow::Result<Self> {
        let rows = runtime.block_on(store::load_all(pool))?;
        let mut keys = HashMap::with_capacity(rows.len());
        for (tenant, subject, key_id, wrapped) in rows.into_iter().filter(|(tenant, ..)| mine(*tenant)) {
            let key = master.unwrap(tenant, &subject, key_id, &wrapped).with_context(|| {
                format!("data key {key_id} does not open with RSVP_MASTER_KEY: is it the right one?")
            })?;
            keys.insert((tenant, subject), key);
        }
        tracing::info!(keys = keys.len(), "data keys loaded");
        Ok(Self { secrets: master.secrets(), master, keys })
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Seals every personal field of a decided event in place, making the keys it needs.
    pub fn seal(&mut self, tenant_id: TenantId, tenant: &Tenant, change: &mut Change, made: &mut Vec<KeyChange>) {
        let (StreamId::Invite(id), DomainEvent::Invite(event)) = (change.stream, &mut change.event) else { return };
        let created = tenant.invite(id).map(|i| &*i.created);
        let created = match (&*event, created) {
            (InviteEvent::Created(_), _) => None,
            (_, c) => c,
        };
        personal::for_each(id, created, event, &mut |subject, field| {
            let key = self.key_for(tenant_id, subject, made);
            match field {
                // A value copied from the invite (a delivery's target) is sealed already.
                Field::Text(text) if personal::is_sealed(text) => {}
                Field::Text(text) => *text = key.seal_text(tenant_id, text),
                Field::Json(value) => *value = serde_json::Value::String(key.seal_json(tenant_id, value)),
            }
        });
    }

    fn key_for(&mut self, tenant: TenantId, subject: &Subject, made: &mut Vec<KeyChange>) -> &DataKey {
        let name = subject.key();
        self.keys.entry((tenant, name.clone())).or_insert_with(|| {
            let key = DataKey::generate();
            made.push(KeyChange::Made {
                tenant,
                wrapped: self.master.wrap(tenant, &name, &key),
                subject: name,
                key_id: key.id,
            });
            key
        })
    }

    /// Destroys an address's key, or every key of the tenant (`None`). A later invite to the
    /// address gets a new key: what was erased stays erased.
    pub fn destroy(&mut self, tenant: TenantId, address: Option<&(TargetKind, String)>, changes: &mut Vec<KeyChange>) {
        match address {
            Some((kind, value)) => {
                let subject = Subject::Address(self.secrets.for_tenant(tenant).blind_index(*kind, value)).key();
                if let Some(key) = self.keys.remove(&(tenant, subject)) {
                    changes.push(KeyChange::Destroyed { key_id: key.id });
                }
            }
            None => {
                self.keys.retain(|(t, _), _| *t != tenant);
                changes.push(KeyChange::DestroyedAll { tenant });
            }
        }
    }
}
